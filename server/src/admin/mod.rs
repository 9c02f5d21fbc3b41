//! Administration: what `banterd user|room|audit|backup|check` do.
//!
//! One executor, two ways in. While a banterd runs, it owns the database (sled locks it), so
//! the commands travel over the admin socket ([`socket`]) and run inside the server, where
//! they also reach live state: a disabled user's connections close at once, and a backup or
//! check sees one consistent moment between two group commits. With no server running, the
//! `banterd` process opens the data dir and runs the same executor itself.
//!
//! Console acts are audited with actor 0 (spec §10.8).

mod backup;
mod check;
mod import;
pub mod socket;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use banter_protocol::ErrorCode;
use banter_protocol::bounded::Text;
use banter_protocol::ids::{RoomId, SessionId, UserId};
use banter_protocol::message::{AuditAction, Role, RoomCreate, Visibility};
use serde::{Deserialize, Serialize};

pub use backup::Manifest;
pub use backup::restore;
pub use check::Report;
pub use import::import_from_sled;

use crate::auth::Passwords;
use crate::requests::{self, CONSOLE, RequestError, audit};
use crate::store::records::{AuditRecord, RoomRecord, RoomSettings, UserRecord};
use crate::store::{Store, StoreError, keys};

/// A server-wide role as the console names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ServerRole {
    /// An ordinary account.
    Member,
    /// Moderates every room and manages roles.
    Admin,
    /// Owns the server.
    Owner,
}

impl From<ServerRole> for Role {
    fn from(role: ServerRole) -> Self {
        match role {
            ServerRole::Member => Self::MEMBER,
            ServerRole::Admin => Self::ADMIN,
            ServerRole::Owner => Self::OWNER,
        }
    }
}

/// One administrative operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    /// Create an account.
    UserAdd {
        /// Its name.
        username: String,
        /// Its password.
        password: String,
        /// Its server-wide role.
        role: ServerRole,
    },
    /// List accounts.
    UserList,
    /// Set a new password and end the account's logins.
    UserPasswd {
        /// The account.
        username: String,
        /// The new password.
        password: String,
    },
    /// Disable an account: its logins end and it can no longer log in.
    UserDisable {
        /// The account.
        username: String,
    },
    /// Enable a disabled account.
    UserEnable {
        /// The account.
        username: String,
    },
    /// Set an account's server-wide role.
    UserPromote {
        /// The account.
        username: String,
        /// The role.
        role: ServerRole,
    },
    /// List rooms.
    RoomList,
    /// Create a channel (with no members; server admins may moderate it).
    RoomCreate {
        /// Its name.
        name: String,
        /// Its topic.
        topic: String,
        /// Its category.
        category: String,
        /// Only members see it.
        private: bool,
        /// It carries voice.
        voice: bool,
    },
    /// Archive a channel (read-only for everyone, unlisted), or bring it back.
    RoomArchive {
        /// The channel.
        name: String,
        /// Archive (`true`) or restore (`false`).
        archived: bool,
    },
    /// The newest audit entries.
    Audit {
        /// How many.
        limit: usize,
    },
    /// Write a consistent backup into a new directory (an absolute path).
    Backup {
        /// Where.
        dir: PathBuf,
    },
    /// Verify the database.
    Check,
}

/// Why an administrative operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request cannot be carried out as asked (unknown user, taken name, damaged backup).
    #[error("{0}")]
    Refused(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The integrity check found problems (the report lists them).
    #[error("{0}")]
    CheckFailed(Report),
}

impl From<RequestError> for AdminError {
    fn from(error: RequestError) -> Self {
        if error.code == ErrorCode::INTERNAL {
            Self::Refused("internal error (see the server log)".into())
        } else {
            Self::Refused(error.message)
        }
    }
}

impl From<crate::store::WriteError<RequestError>> for AdminError {
    fn from(error: crate::store::WriteError<RequestError>) -> Self {
        match error {
            crate::store::WriteError::Rejected(error) => error.into(),
            crate::store::WriteError::Store(error) => Self::Refused(error.to_string()),
        }
    }
}

/// What the executor works with.
#[derive(Debug)]
pub struct AdminCtx {
    pub(crate) store: Store,
    pub(crate) passwords: Passwords,
    /// The running server, when the command runs inside it (live connections to close).
    pub(crate) live: Option<Arc<crate::Shared>>,
    /// The keys, the certificate and the admin socket.
    pub(crate) data_dir: PathBuf,
    /// Shared files' contents ([`Config::files_root`](crate::config::Config::files_root)).
    pub(crate) files_dir: PathBuf,
    /// Where the search index is (for `check`).
    pub(crate) search: crate::search::Place,
}

impl AdminCtx {
    /// An executor over an opened store, outside any server.
    pub fn offline(store: Store, passwords: Passwords, config: &crate::config::Config) -> Self {
        let (data_dir, files_dir) = (config.data_dir.clone(), config.files_root());
        let search = crate::search::Place::of(config);
        Self { store, passwords, live: None, data_dir, files_dir, search }
    }

    /// Carries out one request; the answer is text for the operator.
    pub async fn execute(&self, request: AdminRequest) -> Result<String, AdminError> {
        match request {
            AdminRequest::UserAdd { username, password, role } => {
                self.user_add(username, password, role).await
            }
            AdminRequest::UserList => self.user_list(),
            AdminRequest::UserPasswd { username, password } => {
                self.user_passwd(username, password).await
            }
            AdminRequest::UserDisable { username } => self.user_enabled(username, false).await,
            AdminRequest::UserEnable { username } => self.user_enabled(username, true).await,
            AdminRequest::UserPromote { username, role } => self.user_promote(username, role).await,
            AdminRequest::RoomList => self.room_list(),
            AdminRequest::RoomCreate { name, topic, category, private, voice } => {
                self.room_create(name, topic, category, private, voice).await
            }
            AdminRequest::RoomArchive { name, archived } => self.room_archive(name, archived).await,
            AdminRequest::Audit { limit } => self.audit(limit),
            AdminRequest::Backup { dir } => self.backup(dir).await,
            AdminRequest::Check => self.check().await,
        }
    }

    async fn hash(&self, password: String) -> Result<String, AdminError> {
        requests::check_password(&password)?;
        self.passwords.hash(password).await.map_err(AdminError::Refused)
    }

    fn find_user(&self, username: &str) -> Result<UserId, AdminError> {
        requests::user_id(&self.store, username)?
            .ok_or_else(|| AdminError::Refused(format!("no user named {username:?}")))
    }

    /// Applies `change` to a user's record in one commit, with an audit entry; with
    /// `end_access`, also ends their login sessions (closing their connections) and removes
    /// their login keys.
    async fn update_user(
        &self,
        user: UserId,
        action: AuditAction,
        reason: String,
        end_access: bool,
        change: impl FnOnce(&mut UserRecord) + Send + 'static,
    ) -> Result<(), AdminError> {
        let ended = self
            .store
            .write(
                move |txn| {
                    let mut record: UserRecord =
                        txn.get(&keys::user(user))?.ok_or(ErrorCode::NOT_FOUND)?;
                    change(&mut record);
                    txn.put(keys::user(user), &record);
                    audit(txn, CONSOLE, action, None, Some(user), &reason)?;
                    if end_access { requests::end_all_access(txn, user) } else { Ok(Vec::new()) }
                },
                |ended| ended,
            )
            .await?;
        self.close_logins(&ended);
        Ok(())
    }

    fn close_logins(&self, logins: &[SessionId]) {
        if let Some(shared) = &self.live {
            shared.logins_ended(logins, "ended by the server operator");
        }
    }

    async fn user_add(
        &self,
        username: String,
        password: String,
        role: ServerRole,
    ) -> Result<String, AdminError> {
        let name = requests::normalize_username(&username)?;
        let hash = self.hash(password).await?;
        let (user, role) = self
            .store
            .write(
                move |txn| {
                    let user = requests::create_user(txn, &name, hash, role.into())?;
                    let role = txn.get::<UserRecord>(&keys::user(user))?.map(|u| Role(u.role));
                    let role = role.unwrap_or(Role::MEMBER);
                    audit(
                        txn,
                        CONSOLE,
                        AuditAction::USER_CREATE,
                        None,
                        Some(user),
                        &requests::role_reason(role),
                    )?;
                    Ok::<_, RequestError>((user, role))
                },
                |v| v,
            )
            .await?;
        Ok(format!("created user {} ({username}, {})", user.0, role.name().unwrap_or("?")))
    }

    fn user_list(&self) -> Result<String, AdminError> {
        let mut out = String::from("id\tusername\trole\tstate\tcreated_ms\n");
        self.store.scan::<UserRecord>(&[keys::tag::USER], |key, user| {
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}",
                keys::id_at(key, 1),
                user.username,
                Role(user.role).name().unwrap_or("?"),
                if user.disabled { "disabled" } else { "active" },
                user.created
            );
        })?;
        Ok(out)
    }

    async fn user_passwd(&self, username: String, password: String) -> Result<String, AdminError> {
        let user = self.find_user(&username)?;
        let hash = self.hash(password).await?;
        self.update_user(user, AuditAction::PASSWORD_RESET, String::new(), true, move |record| {
            record.password_hash = hash;
        })
        .await?;
        Ok(format!("password of {username} set; their logins ended"))
    }

    async fn user_enabled(&self, username: String, enabled: bool) -> Result<String, AdminError> {
        let user = self.find_user(&username)?;
        let action = if enabled { AuditAction::USER_ENABLE } else { AuditAction::USER_DISABLE };
        self.update_user(user, action, String::new(), !enabled, move |record| {
            record.disabled = !enabled;
        })
        .await?;
        Ok(if enabled {
            format!("{username} enabled")
        } else {
            format!("{username} disabled; their logins ended")
        })
    }

    async fn user_promote(&self, username: String, role: ServerRole) -> Result<String, AdminError> {
        let user = self.find_user(&username)?;
        let role = Role::from(role);
        self.update_user(
            user,
            AuditAction::ROLE_SET,
            requests::role_reason(role),
            false,
            move |r| {
                r.role = role.0;
            },
        )
        .await?;
        Ok(format!("{username} is now {}", role.name().unwrap_or("?")))
    }

    fn room_list(&self) -> Result<String, AdminError> {
        let mut out = String::from("id\tname\tkind\tmembers\tlast_seq\tcategory\n");
        let mut rooms = Vec::new();
        self.store.scan::<RoomRecord>(&[keys::tag::ROOM], |key, room| {
            rooms.push((keys::id_at(key, 1), room));
        })?;
        for (id, room) in rooms {
            let name = match room.direct_pair {
                Some((a, b)) => format!("{} + {}", self.username(a)?, self.username(b)?),
                None => room.name.clone(),
            };
            let mut kind = vec![if room.direct {
                "direct"
            } else if room.private {
                "private"
            } else {
                "public"
            }];
            if room.voice {
                kind.push("voice");
            }
            let settings: Option<RoomSettings> =
                self.store.get(&keys::room_settings(RoomId(id)))?;
            if settings.is_some_and(|s| s.archived) {
                kind.push("archived");
            }
            let _ = writeln!(
                out,
                "{id}\t{name}\t{}\t{}\t{}\t{}",
                kind.join(","),
                room.members,
                room.last_seq,
                room.category
            );
        }
        Ok(out)
    }

    fn username(&self, user: u64) -> Result<String, AdminError> {
        if UserId(user) == CONSOLE {
            return Ok("(console)".into());
        }
        Ok(self
            .store
            .get::<UserRecord>(&keys::user(UserId(user)))?
            .map_or_else(|| format!("#{user}"), |u| u.username))
    }

    async fn room_create(
        &self,
        name: String,
        topic: String,
        category: String,
        private: bool,
        voice: bool,
    ) -> Result<String, AdminError> {
        requests::check_room_fields(&name, &topic, &category)?;
        let too_long = |field: &str| AdminError::Refused(format!("the {field} is too long"));
        let request = RoomCreate {
            name: Text::new(name.as_str()).map_err(|_| too_long("name"))?,
            topic: Text::new(topic).map_err(|_| too_long("topic"))?,
            category: Text::new(category).map_err(|_| too_long("category"))?,
            visibility: if private { Visibility::Private } else { Visibility::Public },
            voice,
        };
        let room = self
            .store
            .write(
                move |txn| {
                    let (room, record) = requests::new_channel(txn, request)?;
                    txn.put(keys::room(room), &record);
                    audit(txn, CONSOLE, AuditAction::ROOM_CREATE, Some(room), None, &record.name)?;
                    Ok::<_, RequestError>(room)
                },
                |room: RoomId| room,
            )
            .await?;
        Ok(format!("created room {} ({name})", room.0))
    }

    async fn room_archive(&self, name: String, archived: bool) -> Result<String, AdminError> {
        let room = self
            .store
            .get::<u64>(&keys::room_name(&name))?
            .map(RoomId)
            .ok_or_else(|| AdminError::Refused(format!("no room named {name:?}")))?;
        let reason = if archived { "archived" } else { "restored" };
        self.store
            .write(
                move |txn| {
                    let key = keys::room_settings(room);
                    let mut settings: RoomSettings = txn.get(&key)?.unwrap_or_default();
                    settings.archived = archived;
                    txn.put(key, &settings);
                    let record: RoomRecord =
                        txn.get(&keys::room(room))?.ok_or(ErrorCode::NOT_FOUND)?;
                    if archived || record.private || record.direct {
                        txn.delete(keys::public_room(room));
                    } else {
                        txn.put(keys::public_room(room), &());
                    }
                    audit(txn, CONSOLE, AuditAction::ROOM_ARCHIVE, Some(room), None, reason)
                },
                |()| (),
            )
            .await?;
        Ok(format!("room {} ({name}) {reason}", room.0))
    }

    fn audit(&self, limit: usize) -> Result<String, AdminError> {
        let entries = self.store.range::<AuditRecord>(
            &keys::audit(0),
            &keys::audit(u64::MAX),
            true,
            limit,
        )?;
        let mut out = String::from("id\ttime_ms\tactor\taction\troom\ttarget\treason\n");
        for (key, entry) in entries {
            let action = AuditAction(entry.action);
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                keys::id_at(&key, 1),
                entry.ts,
                self.username(entry.actor)?,
                action.name().map_or_else(|| action.0.to_string(), str::to_owned),
                entry.room.map_or_else(|| "-".into(), |r| r.to_string()),
                entry.target.map(|t| self.username(t)).transpose()?.unwrap_or_else(|| "-".into()),
                entry.reason
            );
        }
        Ok(out)
    }

    async fn backup(&self, dir: PathBuf) -> Result<String, AdminError> {
        if !dir.is_absolute() {
            return Err(AdminError::Refused(
                "the backup directory must be an absolute path".into(),
            ));
        }
        backup::prepare(&dir)?;
        let target = dir.clone();
        let (records, sha256) =
            self.store.exclusive(move |engine| backup::dump(engine, &target)).await??;
        let manifest = backup::finish(&self.data_dir, &self.files_dir, &dir, records, sha256)?;
        Ok(format!(
            "backup of {} records written to {} (sha256 {})",
            manifest.records,
            dir.display(),
            manifest.sha256
        ))
    }

    async fn check(&self) -> Result<String, AdminError> {
        let files = crate::files::FileStore::new(&self.files_dir);
        let report = self.store.exclusive(move |engine| check::check(engine, files)).await??;
        if !report.ok() {
            return Err(AdminError::CheckFailed(report));
        }
        // The index is derived from the logs: how far behind it is, is reported, not a
        // failure (banterd catches up while it runs; `banterd reindex` rebuilds it).
        let search = match crate::search::status(&self.search, &self.store) {
            Ok(status) => status.to_string(),
            Err(error) => format!("search index: unreadable ({error}): run `banterd reindex`"),
        };
        Ok(format!("{report}\n{search}"))
    }
}
