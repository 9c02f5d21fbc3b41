//! The scriptable subcommands.

mod act;

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::time::Duration;

use banter_client::{
    Client, ClientConfig, ConnectError, Connection, ConnectionState, Credentials, Event, Options,
    RequestError, Trust, Update,
};
use banter_protocol::ErrorCode;
use banter_protocol::bounded::{Blob, Text};
use banter_protocol::ids::{RoomId, UserId};
use banter_protocol::message::{
    ContactAction, ContactList, ContactSet, ContactState, History, InviteCreate, InviteUse,
    ListScope, Logout, Message, Post, Refresh, RoomCreate, RoomInvite, RoomJoin, RoomLeave,
    RoomSummary, Search, Visibility,
};
use clap::{Parser, Subcommand};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::profile::{KnownServers, Profile, format_fingerprint};
use crate::{login_key, output};

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "banter", version, about = "The Banter terminal client")]
pub(crate) struct Cli {
    /// The server, HOST:PORT, or a cluster's nodes as HOST:PORT,HOST:PORT (default: the
    /// profile's server, else 127.0.0.1:4433).
    #[arg(long, global = true, env = "BANTER_SERVER")]
    server: Option<String>,
    /// Which stored login to use.
    #[arg(long, global = true, env = "BANTER_PROFILE", default_value = "default")]
    profile: String,
    /// Trust and pin the server's certificate if this is the first connection to it.
    #[arg(long, global = true)]
    accept_new_cert: bool,
    /// Verify the server's certificate against these CA certificates (PEM) instead of pinning.
    #[arg(long, global = true, env = "BANTER_CA")]
    ca: Option<std::path::PathBuf>,
    /// Print one JSON object per line.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an account and log in (password from BANTER_PASSWORD, stdin, or a prompt).
    Register { user: String },
    /// Log in (password from BANTER_PASSWORD, stdin, or a prompt).
    Login { user: String },
    /// End this login session on the server and forget it here.
    Logout,
    /// List your rooms (or, with --public, the public ones).
    Rooms {
        #[arg(long)]
        public: bool,
    },
    /// Create a room.
    CreateRoom {
        name: String,
        #[arg(long)]
        private: bool,
        #[arg(long, default_value = "")]
        category: String,
        #[arg(long, default_value = "")]
        topic: String,
        #[arg(long)]
        voice: bool,
    },
    /// Join a room (by name or id).
    Join { room: String },
    /// Leave a room.
    Leave { room: String },
    /// Send TEXT to ROOM; TEXT `-` sends each line of stdin as a message, in order.
    Send { room: String, text: String },
    /// Send TEXT to USER in your direct conversation (opened if need be).
    Dm { user: String, text: String },
    /// React to message SEQ in ROOM with EMOJI (an emoji or a :shortcode: like :tada:).
    React {
        room: String,
        seq: u64,
        emoji: String,
        /// Take the reaction back.
        #[arg(long)]
        remove: bool,
    },
    /// Replace the text of your message SEQ in ROOM.
    Edit { room: String, seq: u64, text: String },
    /// Delete message SEQ in ROOM (yours, or any as a moderator).
    Delete { room: String, seq: u64 },
    /// Print a room's events as they come.
    Tail {
        room: String,
        /// First print what came after this room_seq.
        #[arg(long)]
        after: Option<u64>,
        /// Exit after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Join ROOM's voice: speak --input (48 kHz mono 16-bit WAV), record what is heard to
    /// --output, leave after --seconds.
    Voice {
        room: String,
        #[arg(long)]
        input: Option<std::path::PathBuf>,
        #[arg(long)]
        output: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Search the messages and files of your rooms (spec §6.10): words, "phrases", -word,
    /// from:USER, in:ROOM, before:/after:YYYY-MM-DD, has:file. Newest first.
    Search {
        query: String,
        /// Only this room (one you can read; not only your own).
        #[arg(long)]
        room: Option<String>,
        /// At most this many hits.
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
    /// Print a room's recent history, oldest first.
    History {
        room: String,
        #[arg(long, default_value_t = 50)]
        limit: u64,
        /// The whole history, from the first entry (pages through it).
        #[arg(long, conflicts_with = "limit")]
        all: bool,
    },
    /// Make an invite code for a room (moderators, for private rooms).
    Invite {
        room: String,
        /// How many may join with it (default: any number).
        #[arg(long)]
        uses: Option<u32>,
        /// Seconds until it expires (default: never).
        #[arg(long)]
        expires: Option<u64>,
    },
    /// Join the room of an invite code.
    AcceptInvite { code: String },
    /// Add USER to ROOM (moderators; in a public room, also members USER counts as a friend).
    Add { room: String, user: String },
    /// Login keys (bots log in with them): list (the default), add FILE, remove KEY.
    Keys {
        #[command(subcommand)]
        action: Option<KeysAction>,
    },
    /// Same as `keys add FILE`.
    #[command(hide = true)]
    KeyAdd { file: std::path::PathBuf },
    /// Same as `keys remove KEY`.
    #[command(hide = true)]
    KeyRemove { public_key: String },
    /// List friends, friend requests and blocks.
    Contacts,
    /// Ask USER to be friends (or accept their request).
    Friend { user: String },
    /// End a friendship, or decline or withdraw a request.
    Unfriend { user: String },
    /// Block USER: no direct messages from them, no presence to them.
    Block { user: String },
    /// Lift a block.
    Unblock { user: String },
    /// Share FILE in ROOM (an interrupted upload of the same file resumes).
    Upload { room: String, file: std::path::PathBuf },
    /// Fetch the file shared at SEQ in ROOM (an interrupted download resumes).
    Download {
        room: String,
        seq: u64,
        /// Where to save it (default: its name, in the current directory).
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Remove USER from ROOM (moderators).
    Kick {
        room: String,
        user: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Remove USER from ROOM and keep them out (moderators).
    Ban {
        room: String,
        user: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Lift the ban by itself after this many seconds (default, or 0: never).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Let a banned USER back into ROOM (moderators).
    Unban { room: String, user: String },
    /// Mute USER in ROOM's voice (moderators).
    Mute { room: String, user: String },
    /// Lift a voice mute (moderators).
    Unmute { room: String, user: String },
    /// Give USER a ROLE in ROOM: member, moderator, admin, or owner (hands the room over).
    Role { room: String, user: String, role: String },
    /// Slow mode: members may post once per SECONDS (`off` or 0 ends it).
    Slow { room: String, seconds: String },
    /// Lock ROOM: only moderators may post.
    Lock { room: String },
    /// Unlock ROOM.
    Unlock { room: String },
    /// Print ROOM's audit log (moderators), newest first.
    Audit {
        room: String,
        #[arg(long, default_value_t = 20)]
        limit: u16,
    },
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// List the login keys registered to your account.
    List,
    /// Register the ed25519 key in FILE for key login, proving you hold it; FILE is created
    /// (mode 0600) with a new key if it does not exist.
    Add { file: std::path::PathBuf },
    /// Unregister a login key (its public key, as `banter keys` shows it).
    Remove { public_key: String },
}

/// A failure with its exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

fn fail(code: u8, message: impl Into<String>) -> Failure {
    Failure { code, message: message.into() }
}

impl From<RequestError> for Failure {
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::Server {
                code:
                    ErrorCode::AUTH_FAILED
                    | ErrorCode::SESSION_REVOKED
                    | ErrorCode::TOKEN_EXPIRED
                    | ErrorCode::NOT_AUTHENTICATED,
                ..
            } => fail(4, error.to_string()),
            RequestError::Server { .. } => fail(5, error.to_string()),
            RequestError::Connection(_) => fail(3, error.to_string()),
            RequestError::Untrusted(_) => fail(6, error.to_string()),
            RequestError::Protocol(_) | RequestError::Local(_) => fail(1, error.to_string()),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        fail(1, error.to_string())
    }
}

type Result<T, E = Failure> = std::result::Result<T, E>;

/// Resolved global options.
struct Ctx {
    server: String,
    /// Every address of the server (a cluster's nodes), in the order given.
    addrs: Vec<SocketAddr>,
    host: String,
    profile: String,
    accept_new_cert: bool,
    ca: Option<std::path::PathBuf>,
    json: bool,
    /// Connections this command opened, closed cleanly when it ends.
    opened: std::sync::Mutex<Vec<Connection>>,
    /// When the command started (for `--json` timings).
    started: std::time::Instant,
}

pub(crate) async fn run(cli: Cli) -> Result<()> {
    let stored = Profile::load(&cli.profile)?;
    let server = cli
        .server
        .or_else(|| stored.as_ref().map(|p| p.server.clone()))
        .unwrap_or_else(|| "127.0.0.1:4433".to_owned());
    // HOST:PORT, or a cluster's nodes separated by commas; a name may resolve to several.
    let mut addrs = Vec::new();
    for node in server.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let resolved = tokio::net::lookup_host(node)
            .await
            .map_err(|e| fail(3, format!("cannot resolve {node}: {e}")))?;
        addrs.extend(resolved);
    }
    if addrs.is_empty() {
        return Err(fail(3, format!("cannot resolve {server}")));
    }
    let first = server.split(',').next().unwrap_or_default().trim();
    let host = first.rsplit_once(':').map_or(first, |(h, _)| h).trim_matches(['[', ']']).to_owned();
    let ctx = Ctx {
        server,
        addrs,
        host,
        profile: cli.profile,
        accept_new_cert: cli.accept_new_cert,
        ca: cli.ca,
        json: cli.json,
        opened: std::sync::Mutex::default(),
        started: std::time::Instant::now(),
    };
    let outcome = dispatch(&ctx, cli.command).await;
    // Every connection closes cleanly (NO_ERROR): the server ends its session at once rather
    // than keeping it resumable for a client that is gone.
    let opened = std::mem::take(&mut *ctx.opened.lock().unwrap_or_else(|e| e.into_inner()));
    for conn in opened {
        conn.close_and_flush().await;
    }
    outcome
}

async fn dispatch(ctx: &Ctx, command: Option<Command>) -> Result<()> {
    let Some(command) = command else {
        if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
            return Err(fail(
                2,
                "no subcommand and not a terminal; `banter --help` lists the subcommands",
            ));
        }
        return interactive(ctx).await;
    };
    match command {
        Command::Register { user } => authenticate(ctx, &user, true).await,
        Command::Login { user } => authenticate(ctx, &user, false).await,
        Command::Logout => logout(ctx).await,
        Command::Rooms { public } => rooms(ctx, public).await,
        Command::CreateRoom { name, private, category, topic, voice } => {
            create_room(ctx, &name, private, &category, &topic, voice).await
        }
        Command::Join { room } => join(ctx, &room).await,
        Command::Leave { room } => leave(ctx, &room).await,
        Command::Send { room, text } if text == "-" => send_lines(ctx, &room).await,
        Command::Send { room, text } => send(ctx, &room, &text).await,
        Command::Dm { user, text } => act::dm(ctx, &user, &text).await,
        Command::React { room, seq, emoji, remove } => {
            act::react(ctx, &room, seq, &emoji, !remove).await
        }
        Command::Edit { room, seq, text } => act::edit(ctx, &room, seq, &text).await,
        Command::Delete { room, seq } => act::delete(ctx, &room, seq).await,
        Command::Tail { room, after, count } => tail(ctx, &room, after, count).await,
        Command::Search { query, room, limit } => search(ctx, &query, room.as_deref(), limit).await,
        Command::History { room, limit, all } => {
            history(ctx, &room, if all { u64::MAX } else { limit }).await
        }
        Command::Voice { room, input, output, seconds } => {
            voice(ctx, &room, input, output, seconds).await
        }
        Command::Invite { room, uses, expires } => invite(ctx, &room, uses, expires).await,
        Command::AcceptInvite { code } => accept_invite(ctx, &code).await,
        Command::Add { room, user } => add(ctx, &room, &user).await,
        Command::Keys { action: None | Some(KeysAction::List) } => list_keys(ctx).await,
        Command::Keys { action: Some(KeysAction::Add { file }) } | Command::KeyAdd { file } => {
            add_key(ctx, &file).await
        }
        Command::Keys { action: Some(KeysAction::Remove { public_key }) }
        | Command::KeyRemove { public_key } => remove_key(ctx, &public_key).await,
        Command::Contacts => contacts(ctx).await,
        Command::Friend { user } => set_contact(ctx, &user, ContactAction::Request).await,
        Command::Unfriend { user } => set_contact(ctx, &user, ContactAction::Remove).await,
        Command::Block { user } => set_contact(ctx, &user, ContactAction::Block).await,
        Command::Unblock { user } => set_contact(ctx, &user, ContactAction::Unblock).await,
        Command::Upload { room, file } => upload(ctx, &room, &file).await,
        Command::Download { room, seq, output } => download(ctx, &room, seq, output).await,
        Command::Kick { room, user, reason } => {
            act::moderate(ctx, &room, &user, act::Moderation::Kick(reason)).await
        }
        Command::Ban { room, user, reason, seconds } => {
            // 0 seconds is no limit, as in libbanter.
            let seconds = seconds.filter(|s| *s > 0);
            act::moderate(ctx, &room, &user, act::Moderation::Ban(reason, seconds)).await
        }
        Command::Unban { room, user } => {
            act::moderate(ctx, &room, &user, act::Moderation::Unban).await
        }
        Command::Mute { room, user } => {
            act::moderate(ctx, &room, &user, act::Moderation::Mute(true)).await
        }
        Command::Unmute { room, user } => {
            act::moderate(ctx, &room, &user, act::Moderation::Mute(false)).await
        }
        Command::Role { room, user, role } => {
            let role = act::parse_role(&role)?;
            act::moderate(ctx, &room, &user, act::Moderation::Role(role)).await
        }
        Command::Slow { room, seconds } => {
            let seconds = match seconds.as_str() {
                "off" => 0,
                other => other
                    .trim_end_matches('s')
                    .parse()
                    .map_err(|_| fail(2, "slow mode is SECONDS or off"))?,
            };
            act::configure(ctx, &room, Some(seconds), None).await
        }
        Command::Lock { room } => act::configure(ctx, &room, None, Some(true)).await,
        Command::Unlock { room } => act::configure(ctx, &room, None, Some(false)).await,
        Command::Audit { room, limit } => act::audit(ctx, &room, limit).await,
    }
}

impl Ctx {
    /// How to trust the server: its pinned fingerprint, or (first contact) any certificate,
    /// which [`Ctx::check_new_server`] then decides on.
    fn trust(&self) -> Result<Trust> {
        if let Some(ca) = &self.ca {
            let roots = banter_client::tls::load_pem_certificates(ca)
                .map_err(|e| fail(6, e.to_string()))?;
            return Ok(Trust::CustomCa(roots));
        }
        Ok(match KnownServers::load()?.pin(&self.server) {
            Some(pin) => Trust::Pinned(pin),
            None => Trust::AcceptAny,
        })
    }

    fn options(&self) -> Result<Options> {
        Ok(Options::new(self.trust()?, self.host.clone()))
    }

    /// Trust on first use: pin a new server's certificate if the user (or --accept-new-cert)
    /// agrees.
    fn check_new_server(&self, fingerprint: Option<[u8; 32]>) -> Result<()> {
        if self.ca.is_some() {
            return Ok(()); // verified against the CA, nothing to pin
        }
        let mut known = KnownServers::load()?;
        if known.pin(&self.server).is_some() {
            return Ok(());
        }
        let fingerprint =
            fingerprint.ok_or_else(|| fail(6, "the server presented no certificate"))?;
        let shown = format_fingerprint(&fingerprint);
        if !self.accept_new_cert {
            if !std::io::stdin().is_terminal() {
                return Err(fail(
                    6,
                    format!(
                        "{} is not a known server; its certificate fingerprint is {shown}. Check it \
                         against what banterd printed and run again with --accept-new-cert",
                        self.server
                    ),
                ));
            }
            eprintln!("The certificate of {} has the SHA-256 fingerprint\n  {shown}", self.server);
            eprint!("Trust it from now on? [y/N] ");
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer).map_err(|e| fail(1, e.to_string()))?;
            if !answer.trim().eq_ignore_ascii_case("y") {
                return Err(fail(6, "certificate not trusted"));
            }
        }
        known.remember(&self.server, &fingerprint)?;
        Ok(())
    }

    /// Connects to the first of the server's addresses that answers (a cluster's nodes in
    /// turn); a certificate that is not trusted stops the search.
    async fn connect(&self) -> Result<(Connection, UnboundedReceiver<Event>)> {
        let mut failure = fail(3, format!("{}: no address", self.server));
        for &addr in &self.addrs {
            match Connection::connect(addr, self.options()?).await {
                Ok((conn, events)) => {
                    self.opened.lock().unwrap_or_else(|e| e.into_inner()).push(conn.clone());
                    self.check_new_server(conn.fingerprint())?;
                    return Ok((conn, events));
                }
                Err(e @ ConnectError::Untrusted(_)) if self.ca.is_none() => {
                    return Err(fail(
                        6,
                        format!(
                            "{}: the server's certificate changed since it was pinned. {e}",
                            self.server
                        ),
                    ));
                }
                Err(e @ ConnectError::Untrusted(_)) => {
                    return Err(fail(6, format!("{}: {e}", self.server)));
                }
                Err(other) => failure = fail(3, format!("{}: {other}", self.server)),
            }
        }
        Err(failure)
    }

    /// Whether the server's certificate is neither pinned nor checked against a CA yet.
    fn first_contact(&self) -> Result<bool> {
        Ok(self.ca.is_none() && KnownServers::load()?.pin(&self.server).is_none())
    }

    fn profile(&self) -> Result<Profile> {
        Profile::load(&self.profile)?
            .ok_or_else(|| fail(4, "not logged in: run `banter login USER` first"))
    }

    /// An authenticated connection (refreshing the access token first when it is stale).
    async fn session(&self) -> Result<(Connection, UnboundedReceiver<Event>, Profile)> {
        let mut profile = self.profile()?;
        let (conn, mut events) = self.connect().await?;
        let mut credentials = profile
            .credentials()
            .ok_or_else(|| fail(4, "the stored login is damaged; log in again"))?;
        if credentials.access_expires <= banter_client::wall_clock().0 + 30_000 {
            let refresh = Refresh {
                refresh_token: Blob::new(credentials.refresh_token.clone()).unwrap_or_default(),
            };
            match conn.request_one(refresh).await? {
                Message::AuthOk(ok) => {
                    credentials = Credentials::from(ok);
                    profile.update(&credentials);
                    profile.save(&self.profile)?;
                }
                other => {
                    return Err(fail(
                        1,
                        format!("unexpected answer to REFRESH: {:?}", other.frame_type()),
                    ));
                }
            }
        }
        conn.hello(&credentials.access_token);
        loop {
            match tokio::time::timeout(Duration::from_secs(15), events.recv()).await {
                Ok(Some(Event::Welcome(_))) => return Ok((conn, events, profile)),
                Ok(Some(Event::Rejected(error))) => {
                    return Err(fail(
                        4,
                        format!("{}: {} (log in again)", error.code, error.message),
                    ));
                }
                Ok(Some(Event::Closed { reason, .. })) => {
                    return Err(fail(3, format!("connection closed: {reason}")));
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return Err(fail(3, "no answer from the server")),
            }
        }
    }
}

fn password() -> Result<String> {
    if let Ok(password) = std::env::var("BANTER_PASSWORD") {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| fail(1, e.to_string()))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    rpassword::prompt_password("Password: ").map_err(|e| fail(1, e.to_string()))
}

async fn authenticate(ctx: &Ctx, user: &str, register: bool) -> Result<()> {
    let password = password()?;
    let (conn, _events) = ctx.connect().await?;
    let ok = if register {
        conn.register(user, &password).await?
    } else {
        conn.login(user, &password).await?
    };
    conn.close();
    let credentials = Credentials::from(ok);
    Profile::new(&ctx.server, user, &credentials).save(&ctx.profile)?;
    if ctx.json {
        output::line(&serde_json::json!({"user": credentials.user.0, "username": user, "session": credentials.session.0}).to_string());
    } else {
        output::line(&format!(
            "{} as {user} on {}",
            if register { "registered" } else { "logged in" },
            ctx.server
        ));
    }
    Ok(())
}

async fn logout(ctx: &Ctx) -> Result<()> {
    let (conn, _events, _profile) = ctx.session().await?;
    let result = conn.request_one(Logout {}).await;
    Profile::delete(&ctx.profile)?;
    result?;
    if !ctx.json {
        output::line("logged out");
    }
    Ok(())
}

/// A room by id, `#name` or name: the caller's rooms first, then public ones.
async fn resolve_room(conn: &Connection, spec: &str) -> Result<RoomSummary> {
    conn.find_room(spec).await?.ok_or_else(|| fail(5, format!("no room {spec}")))
}

async fn rooms(ctx: &Ctx, public: bool) -> Result<()> {
    let (conn, _events, mut profile) = ctx.session().await?;
    let scope = if public { ListScope::Public } else { ListScope::Joined };
    let mut changed = false;
    for room in conn.rooms(scope).await? {
        changed |= remember_room(&mut profile, &room);
        output::room(ctx.json, &room);
    }
    if changed {
        profile.save(&ctx.profile)?;
    }
    Ok(())
}

fn text<const N: usize>(field: &str, value: &str) -> Result<Text<N>> {
    Text::new(value).map_err(|e| fail(2, format!("{field}: {e}")))
}

async fn create_room(
    ctx: &Ctx,
    name: &str,
    private: bool,
    category: &str,
    topic: &str,
    voice: bool,
) -> Result<()> {
    let (conn, _events, mut profile) = ctx.session().await?;
    let request = RoomCreate {
        name: text("name", name)?,
        topic: text("topic", topic)?,
        category: text("category", category)?,
        visibility: if private { Visibility::Private } else { Visibility::Public },
        voice,
    };
    let Message::RoomInfo(info) = conn.request_one(request).await? else {
        return Err(fail(1, "unexpected answer to ROOM_CREATE"));
    };
    if remember_room(&mut profile, &info.room) {
        profile.save(&ctx.profile)?;
    }
    output::room(ctx.json, &info.room);
    Ok(())
}

async fn join(ctx: &Ctx, spec: &str) -> Result<()> {
    let (conn, _events, mut profile) = ctx.session().await?;
    let room = resolve_room(&conn, spec).await?;
    let Message::RoomInfo(info) = conn.request_one(RoomJoin { room: room.room }).await? else {
        return Err(fail(1, "unexpected answer to ROOM_JOIN"));
    };
    if remember_room(&mut profile, &info.room) {
        profile.save(&ctx.profile)?;
    }
    output::room(ctx.json, &info.room);
    Ok(())
}

async fn leave(ctx: &Ctx, spec: &str) -> Result<()> {
    let (conn, _events, mut profile) = ctx.session().await?;
    let room = resolve_room(&conn, spec).await?;
    conn.request_one(RoomLeave { room: room.room }).await?;
    if profile.rooms.remove(&room_key(&room.name)).is_some() {
        profile.save(&ctx.profile)?;
    }
    if !ctx.json {
        output::line(&format!("left {}", room.name));
    }
    Ok(())
}

async fn invite(ctx: &Ctx, spec: &str, uses: Option<u32>, expires: Option<u64>) -> Result<()> {
    let (conn, _events, _) = ctx.session().await?;
    let room = resolve_room(&conn, spec).await?;
    let request = InviteCreate { room: room.room, max_uses: uses, expires_in_s: expires };
    let Message::Invite(invite) = conn.request_one(request).await? else {
        return Err(fail(1, "unexpected answer to INVITE_CREATE"));
    };
    output::line(&if ctx.json {
        serde_json::json!({
            "code": invite.code.as_str(),
            "room": invite.room.0,
            "max_uses": invite.max_uses,
            "expires": invite.expires.map(|t| t.0),
        })
        .to_string()
    } else {
        invite.code.to_string()
    });
    Ok(())
}

async fn accept_invite(ctx: &Ctx, code: &str) -> Result<()> {
    let (conn, _events, _) = ctx.session().await?;
    let Message::RoomInfo(info) = conn.request_one(InviteUse { code: text("code", code)? }).await?
    else {
        return Err(fail(1, "unexpected answer to INVITE_USE"));
    };
    output::room(ctx.json, &info.room);
    Ok(())
}

async fn add(ctx: &Ctx, spec: &str, user: &str) -> Result<()> {
    let (conn, _events, _) = ctx.session().await?;
    let room = resolve_room(&conn, spec).await?;
    conn.request_one(RoomInvite { room: room.room, username: text("username", user)? }).await?;
    if !ctx.json {
        output::line(&format!("added {user} to {}", room.name));
    }
    Ok(())
}

async fn list_keys(ctx: &Ctx) -> Result<()> {
    let (conn, _events, _) = ctx.session().await?;
    for key in conn.keys().await? {
        let public_key = login_key::public_hex(&key.public_key);
        output::line(&if ctx.json {
            serde_json::json!({"public_key": public_key, "added": key.added.0}).to_string()
        } else {
            format!("{public_key}\tadded {}", output::clock(key.added.0))
        });
    }
    Ok(())
}

async fn add_key(ctx: &Ctx, file: &std::path::Path) -> Result<()> {
    let (key, new) = login_key::load_or_create(file).map_err(|e| fail(1, e.to_string()))?;
    let (conn, _events, profile) = ctx.session().await?;
    let public_key = key.verifying_key().to_bytes();
    conn.add_key(&profile.username, public_key, |bytes| {
        ed25519_dalek::Signer::sign(&key, bytes).to_bytes()
    })
    .await?;
    let public_key = login_key::public_hex(&public_key);
    output::line(&if ctx.json {
        serde_json::json!({"public_key": public_key, "created": new}).to_string()
    } else if new {
        format!("made a new key in {} and registered it: {public_key}", file.display())
    } else {
        format!("registered {public_key}")
    });
    Ok(())
}

async fn remove_key(ctx: &Ctx, public_key: &str) -> Result<()> {
    let public_key = login_key::parse_public(public_key)
        .ok_or_else(|| fail(2, "a public key is 64 hex digits (see `banter keys`)"))?;
    let (conn, _events, _) = ctx.session().await?;
    conn.remove_key(public_key).await?;
    Ok(())
}

async fn contacts(ctx: &Ctx) -> Result<()> {
    let (conn, _events, _) = ctx.session().await?;
    let Message::ContactListPage(page) = conn.request_one(ContactList {}).await? else {
        return Err(fail(1, "unexpected answer to CONTACT_LIST"));
    };
    for contact in page.contacts.iter() {
        let state = match contact.state {
            ContactState::Friend => "friend",
            ContactState::Outgoing => "request sent",
            ContactState::Incoming => "request received",
            ContactState::Blocked => "blocked",
        };
        output::line(&if ctx.json {
            serde_json::json!({"user": contact.user.0, "username": contact.username.as_str(), "state": state})
                .to_string()
        } else {
            format!("{}\t{state}", contact.username)
        });
    }
    Ok(())
}

async fn set_contact(ctx: &Ctx, user: &str, action: ContactAction) -> Result<()> {
    let (conn, _events, _) = ctx.session().await?;
    conn.request_one(ContactSet { username: text("username", user)?, action }).await?;
    Ok(())
}

async fn upload(ctx: &Ctx, spec: &str, file: &std::path::Path) -> Result<()> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| fail(2, format!("{} has no usable file name", file.display())))?;
    let (conn, _events, _) = ctx.session().await?;
    let room = resolve_room(&conn, spec).await?;
    let bar = progress_bar(name);
    let shared = conn
        .upload_with_progress(room.room, name, file, &|done, total| bar.show(done, total))
        .await;
    bar.finish();
    let ack = shared?;
    output::line(&if ctx.json {
        serde_json::json!({"room": ack.room.0, "seq": ack.seq}).to_string()
    } else {
        format!("shared {name} in {} at seq {}", room.name, ack.seq)
    });
    Ok(())
}

async fn download(
    ctx: &Ctx,
    spec: &str,
    seq: u64,
    output: Option<std::path::PathBuf>,
) -> Result<()> {
    let (conn, _events, _) = ctx.session().await?;
    let room = resolve_room(&conn, spec).await?;
    // Without --output, the file keeps its shared name (made safe, never replacing a file:
    // NAME (1) …); an interrupted download resumes from its NAME.part.
    let bar = progress_bar(&format!("#{seq}"));
    let progress = |done, total| bar.show(done, total);
    let fetched = match output {
        Some(path) => {
            let info = conn.download_with_progress(room.room, seq, &path, &progress).await;
            info.map(|info| (path, info))
        }
        None => {
            let here = std::path::Path::new(".");
            conn.download_into_with_progress(room.room, seq, here, &progress).await
        }
    };
    bar.finish();
    let (path, info) = fetched?;
    output::line(&if ctx.json {
        serde_json::json!({"path": path.display().to_string(), "size": info.size}).to_string()
    } else {
        format!("saved {} ({} bytes)", path.display(), info.size)
    });
    Ok(())
}

/// A transfer's progress bar on stderr, drawn only where stderr is a terminal (scripts see
/// nothing).
struct ProgressBar(Option<indicatif::ProgressBar>);

fn progress_bar(what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar(None);
    }
    let bar = indicatif::ProgressBar::new(0);
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    )
    .map(|style| style.progress_chars("=> "))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(output::one_line(what));
    ProgressBar(Some(bar))
}

impl ProgressBar {
    fn show(&self, done: u64, total: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// The interactive TUI.
async fn interactive(ctx: &Ctx) -> Result<()> {
    let (client, updates, profile) = client(ctx, HashMap::new()).await?;
    let credentials =
        profile.credentials().ok_or_else(|| fail(4, "the stored login is damaged"))?;
    let settings = crate::profile::Settings::load()?;
    log_to_file();
    let mut model = crate::tui::model::Model::new(credentials.user, &profile.username, &ctx.server);
    model.mouse = settings.mouse;
    model.bell_on_mention = settings.bell;
    model.notify = settings.notify;
    model.state.set_highlights(&settings.highlight);
    let mut saved = profile;
    let profile_name = ctx.profile.clone();
    crate::tui::run(client, updates, model, move |credentials| {
        saved.update(credentials);
        // A failed save only costs a re-login later; the session goes on.
        let _ = saved.save(&profile_name);
    })
    .await
    .map_err(|e| fail(1, e.to_string()))
}

/// The TUI logs to `$XDG_STATE_HOME/banter/banter.log`, never to the screen it draws on
/// (`RUST_LOG` filters it).
fn log_to_file() {
    let dir = crate::profile::state_dir();
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let Ok(file) =
        std::fs::OpenOptions::new().create(true).append(true).open(dir.join("banter.log"))
    else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}

/// The reconnecting client, for commands that stream (`send -`, `tail`): one connection,
/// and the token refreshed on it when stale. Returns once it is live.
async fn client(
    ctx: &Ctx,
    known: HashMap<RoomId, u64>,
) -> Result<(Client, UnboundedReceiver<Update>, Profile)> {
    let mut profile = ctx.profile()?;
    let credentials =
        profile.credentials().ok_or_else(|| fail(4, "the stored login is damaged"))?;
    if ctx.first_contact()? {
        // A server not met before: its certificate is checked (and pinned) on a connection
        // of its own before any token goes to it.
        ctx.connect().await?;
    }
    let config = ClientConfig {
        addrs: ctx.addrs.clone(),
        options: ctx.options()?,
        outbox: None,
        known_rooms: known,
    };
    let (client, mut updates) =
        Client::start(config, credentials).map_err(|e| fail(1, e.to_string()))?;
    // What comes before the client is live (its state, a presence snapshot) is kept and
    // handed on with the rest.
    let mut early = Vec::new();
    let live = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let update = updates.recv().await.ok_or_else(|| fail(3, "client stopped"))?;
            match &update {
                Update::Connection(ConnectionState::Connected) => {
                    early.push(update);
                    return Ok(());
                }
                Update::Connection(ConnectionState::Stopped(reason)) => {
                    return Err(fail(4, format!("{reason} (log in again)")));
                }
                Update::Credentials(credentials) => {
                    profile.update(credentials);
                    profile.save(&ctx.profile)?;
                }
                _ => {}
            }
            early.push(update);
        }
    });
    match live.await {
        Ok(Ok(())) => {}
        Ok(Err(failure)) => return Err(failure),
        Err(_) => {
            client.close().await;
            return Err(fail(3, format!("{}: no answer from the server", ctx.server)));
        }
    }
    let (forward, replay) = tokio::sync::mpsc::unbounded_channel();
    for update in early {
        let _ = forward.send(update);
    }
    tokio::spawn(async move {
        while let Some(update) = updates.recv().await {
            if forward.send(update).is_err() {
                return;
            }
        }
    });
    Ok((client, replay, profile))
}

/// `banter send ROOM TEXT`: one connection, and (with the room's id remembered from an
/// earlier lookup) one request round trip. A connection lost before the ack is retried with
/// the same client message id, which the server deduplicates: the post lands once.
async fn send(ctx: &Ctx, spec: &str, text: &str) -> Result<()> {
    let client_msg_id = banter_client::new_client_msg_id();
    let text: Text<{ banter_protocol::message::max::MESSAGE_TEXT }> = self::text("text", text)?;
    let mut attempt = 0;
    loop {
        let (conn, _events, mut profile) = ctx.session().await?;
        let (room, name) = cached_room(ctx, &conn, &mut profile, spec, false).await?;
        let post =
            Post { room, client_msg_id, text: text.clone(), reply_to: None, anonymous: false };
        let sent = std::time::Instant::now();
        let answer = match conn.request_one(post.clone()).await {
            // A remembered id that no longer names the room: look it up, once.
            Err(RequestError::Server { code: ErrorCode::NOT_FOUND, .. })
                if profile.rooms.contains_key(&room_key(spec)) =>
            {
                let (room, _) = cached_room(ctx, &conn, &mut profile, spec, true).await?;
                conn.request_one(Post { room, ..post }).await
            }
            other => other,
        };
        match answer {
            Ok(Message::EventAck(ack)) => {
                let round_trip = sent.elapsed();
                if ctx.json {
                    output::line(
                        &serde_json::json!({
                            "room": ack.room.0,
                            "seq": ack.seq,
                            "id": format!("{client_msg_id:032x}"),
                            "ts": ack.ts.0,
                            "round_trip_ms": round_trip.as_secs_f64() * 1e3,
                            "total_ms": ctx.started.elapsed().as_secs_f64() * 1e3,
                        })
                        .to_string(),
                    );
                } else {
                    output::ack(false, &name, &ack, client_msg_id);
                }
                return Ok(());
            }
            Ok(other) => {
                return Err(fail(
                    1,
                    format!("unexpected answer to POST: {:?}", other.frame_type()),
                ));
            }
            Err(RequestError::Connection(_)) if attempt < 2 => attempt += 1,
            Err(error) => return Err(error.into()),
        }
    }
}

/// A room's key in the profile's cache.
fn room_key(spec: &str) -> String {
    spec.trim_start_matches('#').to_lowercase()
}

/// The room `spec` names without asking the server: an id, or a name remembered.
fn remembered_room(profile: &Profile, spec: &str) -> Option<RoomId> {
    match spec.parse::<u64>() {
        Ok(id) => Some(RoomId(id)),
        Err(_) => profile.rooms.get(&room_key(spec)).map(|id| RoomId(*id)),
    }
}

/// Remembers a joined channel's id under its name in `profile`, for later commands; tells
/// whether that changed it (the caller saves it then).
fn remember_room(profile: &mut Profile, room: &RoomSummary) -> bool {
    let channel = room.kind != banter_protocol::message::RoomKind::Direct;
    room.joined
        && channel
        && profile.rooms.insert(room_key(&room.name), room.room.0) != Some(room.room.0)
}

/// The room `spec` names, and its name: a number is an id; a name is looked up once and
/// remembered in the profile (`fresh` looks it up again).
async fn cached_room(
    ctx: &Ctx,
    conn: &Connection,
    profile: &mut Profile,
    spec: &str,
    fresh: bool,
) -> Result<(RoomId, String)> {
    if let Some(room) = remembered_room(profile, spec).filter(|_| !fresh) {
        return Ok((room, room_key(spec)));
    }
    let room = resolve_room(conn, spec).await?;
    if remember_room(profile, &room) {
        profile.save(&ctx.profile)?;
    }
    Ok((room.room, room.name.into_string()))
}

/// `banter send ROOM -`: each line of stdin as a message, in order, through the
/// reconnecting client (a dropped connection loses nothing).
async fn send_lines(ctx: &Ctx, spec: &str) -> Result<()> {
    let (sender, mut updates, mut profile) = client(ctx, HashMap::new()).await?;
    let conn = sender.connection().await?;
    let room = resolve_room(&conn, spec).await?;
    // stdin is read on a thread so that acks print while later lines are still coming.
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(std::io::Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let (mut queued, mut done) = (0usize, 0usize);
    let mut input_open = true;
    let outcome = loop {
        if !input_open && done == queued {
            break Ok(());
        }
        tokio::select! {
            line = lines.recv(), if input_open => match line {
                Some(line) if line.is_empty() => {}
                Some(line) => {
                    sender.send(room.room, &line, None).map_err(|e| fail(1, e.to_string()))?;
                    queued += 1;
                }
                None => input_open = false,
            },
            update = updates.recv() => match update {
                Some(Update::Sent { client_msg_id, ack }) => {
                    output::ack(ctx.json, &room.name, &ack, client_msg_id);
                    done += 1;
                }
                Some(Update::SendFailed { error, .. }) => break Err(fail(5, error)),
                Some(Update::Credentials(credentials)) => {
                    profile.update(&credentials);
                    profile.save(&ctx.profile)?;
                }
                Some(Update::Connection(ConnectionState::Stopped(reason))) => break Err(fail(4, reason)),
                Some(_) => {}
                None => break Err(fail(3, "client stopped")),
            },
        }
    };
    sender.close().await;
    outcome
}

/// user id → name for a room's members (for printing senders).
async fn member_names(conn: &Connection, room: RoomId) -> Result<HashMap<UserId, String>> {
    let members = conn.members(room).await?;
    Ok(members.into_iter().map(|m| (m.user, m.username.into_string())).collect())
}

async fn tail(ctx: &Ctx, spec: &str, after: Option<u64>, count: Option<u64>) -> Result<()> {
    if count == Some(0) {
        return Ok(());
    }
    // The room must be known before the client starts, so that its catch-up from `after`
    // and the live entries meet without a gap: from the profile, else looked up once.
    let mut profile = ctx.profile()?;
    let room = match remembered_room(&profile, spec) {
        Some(room) => room,
        None => {
            let (conn, _events, _) = ctx.session().await?;
            let (room, _) = cached_room(ctx, &conn, &mut profile, spec, true).await?;
            conn.close_and_flush().await;
            room
        }
    };
    let known = after.map(|after| HashMap::from([(room, after)])).unwrap_or_default();
    let (client, mut updates, mut profile) = client(ctx, known).await?;
    let mut names = member_names(&client.connection().await?, room).await?;
    let mut printed = 0u64;
    let outcome = loop {
        let Some(update) = updates.recv().await else { break Err(fail(3, "client stopped")) };
        match update {
            Update::Room(message) => {
                if room_of(&message) != Some(room) {
                    continue;
                }
                if let Message::Membership(m) = &message {
                    names.insert(m.user, m.username.to_string());
                }
                output::entry(ctx.json, &names, &message);
                printed += 1;
                if count.is_some_and(|n| printed >= n) {
                    break Ok(());
                }
            }
            Update::Credentials(credentials) => {
                profile.update(&credentials);
                profile.save(&ctx.profile)?;
            }
            Update::Connection(ConnectionState::Stopped(reason)) => break Err(fail(4, reason)),
            _ => {}
        }
    };
    client.close().await;
    outcome
}

fn room_of(message: &Message) -> Option<RoomId> {
    message.entry_meta().map(|meta| meta.room)
}

/// Prints up to `limit` hits for `query` (spec §6.10), newest first, following SEARCH_END's
/// cursor from page to page; `room` keeps to one room.
async fn search(ctx: &Ctx, query: &str, room: Option<&str>, limit: u64) -> Result<()> {
    let (conn, _events, _) = ctx.session().await?;
    let room = match room {
        Some(spec) => Some(resolve_room(&conn, spec).await?.room),
        None => None,
    };
    let query = Text::new(query).map_err(|_| fail(2, "the query is longer than 512 bytes"))?;
    let mut hits = Vec::new();
    let mut cursor = None;
    while (hits.len() as u64) < limit {
        let want = u16::try_from((limit - hits.len() as u64).min(100)).unwrap_or(100);
        let request = Search { room, cursor, ..Search::new(query.clone(), want) };
        let (page, next) = conn.search(request).await?;
        hits.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    hits.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    // Names: the rooms the caller is in, and the members of the rooms hits came from.
    let rooms: HashMap<RoomId, String> = conn
        .rooms(ListScope::Joined)
        .await?
        .into_iter()
        .map(|r| (r.room, r.name.into_string()))
        .collect();
    let mut names = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for hit in &hits {
        if seen.insert(hit.room) {
            names.extend(member_names(&conn, hit.room).await.unwrap_or_default());
        }
    }
    for hit in &hits {
        output::search_hit(ctx.json, &rooms, &names, hit);
    }
    Ok(())
}

/// The newest `limit` entries of a room (`u64::MAX`: all of them), oldest first, paging
/// back as far as needed.
async fn history(ctx: &Ctx, spec: &str, limit: u64) -> Result<()> {
    let (conn, _events, _) = ctx.session().await?;
    let room = resolve_room(&conn, spec).await?;
    let names = member_names(&conn, room.room).await?;
    let mut entries = Vec::new();
    let mut before = None;
    while (entries.len() as u64) < limit {
        let want = u16::try_from((limit - entries.len() as u64).min(100)).unwrap_or(100);
        let page = conn.request(History { room: room.room, before, limit: want }).await?;
        let mut next = None;
        for message in page {
            match message {
                Message::PageEnd(end) => next = end.next,
                other => entries.push(other),
            }
        }
        match next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    for message in entries.iter().rev() {
        output::entry(ctx.json, &names, message);
    }
    Ok(())
}

/// Reads a 48 kHz mono 16-bit WAV into 20 ms frames (the last one padded with silence).
fn read_wav(path: &std::path::Path) -> Result<Vec<banter_codec::Frame>> {
    let mut reader =
        hound::WavReader::open(path).map_err(|e| fail(1, format!("{}: {e}", path.display())))?;
    let spec = reader.spec();
    if spec.sample_rate != banter_codec::SAMPLE_RATE
        || spec.channels != 1
        || spec.bits_per_sample != 16
    {
        return Err(fail(2, format!("{}: need 48000 Hz mono 16-bit PCM", path.display())));
    }
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| fail(1, e.to_string()))?;
    Ok(samples
        .chunks(banter_codec::FRAME_SAMPLES)
        .map(|chunk| {
            let mut frame = [0i16; banter_codec::FRAME_SAMPLES];
            frame[..chunk.len()].copy_from_slice(chunk);
            frame
        })
        .collect())
}

async fn voice(
    ctx: &Ctx,
    spec: &str,
    input: Option<std::path::PathBuf>,
    output: Option<std::path::PathBuf>,
    seconds: u64,
) -> Result<()> {
    let (conn, _events, _) = ctx.session().await?;
    let room = resolve_room(&conn, spec).await?;
    let speech = input.as_deref().map(read_wav).transpose()?.unwrap_or_default();
    let (session, mut heard) = banter_client::voice::VoiceSession::join(
        &conn,
        room.room,
        banter_codec::EncoderSettings::default(),
    )
    .await?;
    let mut writer = match &output {
        Some(path) => Some(
            hound::WavWriter::create(
                path,
                hound::WavSpec {
                    channels: 1,
                    sample_rate: banter_codec::SAMPLE_RATE,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                },
            )
            .map_err(|e| fail(1, format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    let frames = seconds * 50;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..frames as usize {
        tick.tick().await;
        if let Some(frame) = speech.get(i) {
            session.send(frame, i + 1 == speech.len()).map_err(Failure::from)?;
        }
        // Playout runs on the same clock; keep the recording in step without blocking.
        while let Ok(frame) = heard.try_recv() {
            if let Some(writer) = writer.as_mut() {
                for sample in frame {
                    writer.write_sample(sample).map_err(|e| fail(1, e.to_string()))?;
                }
            }
        }
    }
    if let Some(writer) = writer {
        writer.finalize().map_err(|e| fail(1, e.to_string()))?;
    }
    session.leave().await?;
    if !ctx.json {
        output::line(&format!("left voice of {} after {seconds} s", room.name));
    }
    Ok(())
}
