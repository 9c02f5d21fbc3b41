//! `banter_client`: a logged-in, reconnecting client with its own runtime, and the blocking
//! calls over it.

use std::collections::{HashMap, VecDeque};
use std::ffi::{c_char, c_void};
use std::io::{PipeReader, PipeWriter, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use ::banter_client::{Client, ClientConfig, ConnectionState, Options, Update, new_client_msg_id};
use banter_protocol::bounded::Text;
use banter_protocol::ids::{RoomId, UserId};
use banter_protocol::message::{
    Logout, Message, Post, PresenceStatus, RoomCreate, TypingState, Visibility,
};

use crate::config::banter_config;
use crate::event::banter_event;
use crate::status::banter_status::*;
use crate::status::*;

/// How long a blocking call waits for a connection or an answer.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A callback for events: `user_data` as given to banter_client_set_callback(), and an event
/// borrowed for the duration of the call.
pub type banter_event_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const banter_event)>;

/// A logged-in client. Create with banter_register() or banter_login(); free with
/// banter_client_free(). Usable from any thread.
#[derive(Debug)]
pub struct banter_client {
    pub(crate) runtime: Option<tokio::runtime::Runtime>,
    pub(crate) client: Client,
    shared: Arc<Shared>,
    fingerprint: Option<[u8; 32]>,
    username: String,
    dispatcher: Option<std::thread::JoinHandle<()>>,
    voice: Mutex<Option<Voice>>,
}

/// The client's voice room, if it joined one. What it hears has its own lock, so a pull that
/// waits for audio never holds up push, mute or leave.
#[derive(Debug)]
struct Voice {
    session: ::banter_client::voice::VoiceSession,
    heard: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<banter_codec::Frame>>>,
    muted: bool,
}

#[derive(Debug)]
struct Queue {
    events: VecDeque<banter_event>,
    callback: Option<(unsafe extern "C" fn(*mut c_void, *const banter_event), usize)>,
    /// Calls started so far; a call's number is its place in that count.
    calls: u64,
    /// The number of the call running on the dispatcher thread, if one is (set and cleared
    /// under this lock, so whoever replaces the callback can wait for the calls of the old
    /// one, and only those).
    calling: Option<u64>,
}

/// The event queue, shared by the forwarding task, the dispatcher thread and callers.
/// Invariant: the pipe holds one byte exactly while the queue is not empty, so the read end
/// (banter_client_event_fd) is readable exactly while events wait.
#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    reader: Mutex<PipeReader>,
    writer: Mutex<PipeWriter>,
    names: Mutex<HashMap<UserId, String>>,
    stop: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn push(&self, event: banter_event) {
        let mut queue = lock(&self.queue);
        if queue.events.is_empty() {
            let _ = lock(&self.writer).write_all(&[1]);
        }
        queue.events.push_back(event);
        self.ready.notify_all();
    }

    fn pop_locked(&self, queue: &mut Queue) -> Option<banter_event> {
        let event = queue.events.pop_front()?;
        if queue.events.is_empty() {
            let mut byte = [0u8; 1];
            let _ = lock(&self.reader).read_exact(&mut byte);
        }
        Some(event)
    }
}

pub(crate) fn client_ref<'a>(client: *const banter_client) -> Result<&'a banter_client, Failure> {
    // SAFETY: every exported function requires a live handle or NULL.
    unsafe { handle(client) }
}

impl banter_client {
    pub(crate) fn block_on<F: Future>(&self, future: F) -> Result<F::Output, Failure> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| Failure::new(BANTER_INTERNAL, "client is shutting down"))?;
        runtime
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, future).await })
            .map_err(|_| Failure::new(BANTER_TIMEOUT, "no answer in time"))
    }

    fn request(&self, request: impl Into<Message>) -> Result<Vec<Message>, Failure> {
        let request = request.into();
        Ok(self.block_on(self.client.request(request))??)
    }

    pub(crate) fn request_one(&self, request: impl Into<Message>) -> Result<Message, Failure> {
        let mut answer = self.request(request)?;
        answer.pop().ok_or_else(|| Failure::new(BANTER_INTERNAL, "empty answer"))
    }
}

pub(crate) fn text<const N: usize>(value: &str) -> Result<Text<N>, Failure> {
    Text::new(value).map_err(|e| Failure::new(BANTER_INVALID_ARGUMENT, e.to_string()))
}

/// Connects, authenticates and starts a client.
fn start(
    config: &banter_config,
    username: &str,
    password: &str,
    register: bool,
) -> Result<banter_client, Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("libbanter")
        .enable_all()
        .build()
        .map_err(|e| Failure::new(BANTER_INTERNAL, e.to_string()))?;
    // HOST:PORT, or a cluster's nodes separated by commas; a name may resolve to several.
    let mut addrs = Vec::new();
    for server in config.server.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let resolved = runtime.block_on(tokio::net::lookup_host(server)).map_err(|e| {
            Failure::new(BANTER_CONNECT_FAILED, format!("cannot resolve {server}: {e}"))
        })?;
        addrs.extend(resolved);
    }
    if addrs.is_empty() {
        return Err(Failure::new(BANTER_CONNECT_FAILED, "no server address"));
    }
    let first = config.server.split(',').next().unwrap_or_default().trim();
    let host = first.rsplit_once(':').map_or(first, |(h, _)| h).trim_matches(['[', ']']);
    let trust = config.trust.clone().ok_or_else(|| {
        Failure::new(
            BANTER_CERTIFICATE_UNTRUSTED,
            "no certificate trust configured: set a pinned fingerprint or a CA file (or accept \
             any certificate explicitly)",
        )
    })?;
    let options = Options::new(trust, host);
    let (credentials, fingerprint) = runtime
        .block_on(Client::authenticate(&addrs, options.clone(), username, password, register))
        .map_err(|e| match e {
            ::banter_client::RequestError::Connection(message) => {
                Failure::new(BANTER_CONNECT_FAILED, message)
            }
            other => Failure::from(other),
        })?;
    let me = credentials.user;
    let (client, mut updates) = {
        let _context = runtime.enter();
        Client::start(
            ClientConfig { addrs, options, outbox: None, known_rooms: HashMap::new() },
            credentials,
        )
        .map_err(|e| Failure::new(BANTER_INTERNAL, e.to_string()))?
    };
    let (reader, writer) =
        std::io::pipe().map_err(|e| Failure::new(BANTER_INTERNAL, e.to_string()))?;
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            events: VecDeque::new(),
            callback: None,
            calls: 0,
            calling: None,
        }),
        ready: Condvar::new(),
        reader: Mutex::new(reader),
        writer: Mutex::new(writer),
        names: Mutex::new(HashMap::from([(me, username.to_owned())])),
        stop: AtomicBool::new(false),
    });
    let forward = shared.clone();
    runtime.spawn(async move {
        // Reconnect attempts are reported once, when a live connection is lost; the first
        // connection attempt (inside this function) is not a disconnection.
        let mut connected = false;
        while let Some(update) = updates.recv().await {
            match &update {
                Update::Room(Message::Membership(m)) => {
                    lock(&forward.names).insert(m.user, m.username.to_string());
                }
                Update::Connection(ConnectionState::Connected) => connected = true,
                Update::Connection(
                    ConnectionState::Connecting { .. } | ConnectionState::Waiting { .. },
                ) if !connected => continue,
                Update::Connection(_) => connected = false,
                _ => {}
            }
            let event = banter_event::from_update(&update, &lock(&forward.names));
            if let Some(event) = event {
                forward.push(event);
            }
        }
    });
    let mut handle = banter_client {
        runtime: Some(runtime),
        client,
        shared,
        fingerprint,
        username: username.to_owned(),
        dispatcher: None,
        voice: Mutex::new(None),
    };
    // From here a failure drops `handle`, which stops everything started so far.
    handle.block_on(handle.client.connection())??;
    learn_names(&handle);
    let dispatch = handle.shared.clone();
    handle.dispatcher = Some(
        std::thread::Builder::new()
            .name("libbanter-callbacks".into())
            .spawn(move || dispatch_callbacks(&dispatch))
            .map_err(|e| Failure::new(BANTER_INTERNAL, e.to_string()))?,
    );
    Ok(handle)
}

impl Drop for banter_client {
    /// Leaves voice, closes the connection cleanly, stops the dispatcher thread (after a
    /// callback in progress returns) and the runtime.
    fn drop(&mut self) {
        drop(lock(&self.voice).take());
        // A clean close: the server ends the session at once (spec §7.6).
        if let Some(runtime) = &self.runtime {
            let client = self.client.clone();
            runtime.block_on(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), client.close()).await;
            });
        }
        self.shared.stop.store(true, Ordering::Release);
        self.shared.ready.notify_all();
        if let Some(dispatcher) = self.dispatcher.take() {
            let _ = dispatcher.join();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// Loads the members of the user's rooms so events carry sender names.
fn learn_names(client: &banter_client) {
    let Ok(Ok(rooms)) = client.block_on(client.client.rooms()) else { return };
    for room in rooms {
        if let Ok(Ok(members)) = client.block_on(client.client.members(room.room)) {
            let mut names = lock(&client.shared.names);
            names.extend(members.into_iter().map(|m| (m.user, m.username.into_string())));
        }
    }
}

/// Calls the callback, if one is set, for each event, on this (the library's) thread.
fn dispatch_callbacks(shared: &Shared) {
    let mut queue = lock(&shared.queue);
    while !shared.stop.load(Ordering::Acquire) {
        match queue.callback {
            Some((callback, user)) if !queue.events.is_empty() => {
                let Some(event) = shared.pop_locked(&mut queue) else { continue };
                queue.calls += 1;
                queue.calling = Some(queue.calls);
                drop(queue);
                // SAFETY: the application registered this function for exactly this call
                // shape; the event lives until after the call.
                unsafe { callback(user as *mut c_void, &event) };
                queue = lock(&shared.queue);
                queue.calling = None;
                shared.ready.notify_all();
            }
            _ => {
                queue = shared
                    .ready
                    .wait_timeout(queue, Duration::from_millis(200))
                    .map_or_else(|e| e.into_inner().0, |(q, _)| q);
            }
        }
    }
}

/// # Safety
/// Pointer arguments follow the conventions in the crate docs.
unsafe fn authenticate(
    config: *const banter_config,
    username: *const c_char,
    username_len: usize,
    password: *const c_char,
    password_len: usize,
    out: *mut *mut banter_client,
    register: bool,
) -> banter_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let config = unsafe { handle(config) }?;
        // SAFETY: forwarded caller contract.
        let username = unsafe { str_arg(username, username_len) }?;
        // SAFETY: forwarded caller contract.
        let password = unsafe { str_arg(password, password_len) }?;
        if out.is_null() {
            return Err(Failure::new(BANTER_NULL_ARGUMENT, "NULL out-parameter"));
        }
        let client = start(config, username, password, register)?;
        // SAFETY: checked non-NULL above; the caller guarantees it is writable.
        unsafe { write_out(out, Box::into_raw(Box::new(client))) }
    })
}

/// Creates an account, logs in and returns a connected client in `*client_out`.
///
/// # Safety
/// `config` is a live config; strings are (pointer, length); `client_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_register(
    config: *const banter_config,
    username: *const c_char,
    username_len: usize,
    password: *const c_char,
    password_len: usize,
    client_out: *mut *mut banter_client,
) -> banter_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        authenticate(config, username, username_len, password, password_len, client_out, true)
    }
}

/// Logs in and returns a connected client in `*client_out`.
///
/// # Safety
/// `config` is a live config; strings are (pointer, length); `client_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_login(
    config: *const banter_config,
    username: *const c_char,
    username_len: usize,
    password: *const c_char,
    password_len: usize,
    client_out: *mut *mut banter_client,
) -> banter_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        authenticate(config, username, username_len, password, password_len, client_out, false)
    }
}

/// Disconnects and frees a client (events not yet polled are dropped). NULL is ignored.
///
/// # Safety
/// `client` is NULL or a live client; no other thread may use it during or after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_free(client: *mut banter_client) {
    if client.is_null() {
        return;
    }
    guard_value((), || {
        // SAFETY: from Box::into_raw in banter_register/banter_login, freed once.
        drop(unsafe { Box::from_raw(client) });
    });
}

/// The SHA-256 fingerprint of the server's certificate (to pin it), into `out` (32 bytes).
///
/// # Safety
/// `client` is a live client; `out` has room for 32 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_fingerprint(
    client: *const banter_client,
    out: *mut u8,
) -> banter_status {
    guard(|| {
        let fingerprint = client_ref(client)?
            .fingerprint
            .ok_or_else(|| Failure::new(BANTER_INTERNAL, "no certificate seen"))?;
        if out.is_null() {
            return Err(Failure::new(BANTER_NULL_ARGUMENT, "NULL out-parameter"));
        }
        // SAFETY: non-NULL, and the caller guarantees 32 writable bytes.
        unsafe { std::ptr::copy_nonoverlapping(fingerprint.as_ptr(), out, 32) };
        Ok(())
    })
}

/// Reads 32 bytes.
///
/// # Safety
/// `ptr` is NULL or points to 32 readable bytes.
unsafe fn bytes_32(ptr: *const u8) -> Result<[u8; 32], Failure> {
    if ptr.is_null() {
        return Err(Failure::new(BANTER_NULL_ARGUMENT, "NULL key"));
    }
    let mut bytes = [0u8; 32];
    // SAFETY: non-NULL, and the caller guarantees 32 readable bytes.
    unsafe { std::ptr::copy_nonoverlapping(ptr, bytes.as_mut_ptr(), 32) };
    Ok(bytes)
}

/// Registers the ed25519 key whose 32-byte private seed is `seed` for key login to this
/// account, proving possession to the server (the seed never leaves the process).
///
/// # Safety
/// `client` is a live client; `seed` points to 32 readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_key_add(
    client: *const banter_client,
    seed: *const u8,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        // SAFETY: forwarded caller contract.
        let key = ed25519_dalek::SigningKey::from_bytes(&unsafe { bytes_32(seed) }?);
        let public_key = key.verifying_key().to_bytes();
        let conn = client.block_on(client.client.connection())??;
        let sign = |bytes: &[u8]| ed25519_dalek::Signer::sign(&key, bytes).to_bytes();
        client.block_on(conn.add_key(&client.username, public_key, sign))??;
        Ok(())
    })
}

/// The account's login keys (public keys, 32 bytes each, oldest first): up to `capacity`
/// into `out`, and how many there are into `*count_out` (more than `capacity` means `out`
/// was too small).
///
/// # Safety
/// `client` is a live client; `out` has room for `capacity` × 32 bytes (NULL if 0);
/// `count_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_keys(
    client: *const banter_client,
    out: *mut u8,
    capacity: usize,
    count_out: *mut usize,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        if count_out.is_null() || (out.is_null() && capacity > 0) {
            return Err(Failure::new(BANTER_NULL_ARGUMENT, "NULL out-parameter"));
        }
        let conn = client.block_on(client.client.connection())??;
        let keys = client.block_on(conn.keys())??;
        for (i, key) in keys.iter().take(capacity).enumerate() {
            // SAFETY: i < capacity, and the caller guarantees capacity × 32 writable bytes.
            unsafe { std::ptr::copy_nonoverlapping(key.public_key.as_ptr(), out.add(i * 32), 32) };
        }
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { write_out(count_out, keys.len()) }
    })
}

/// Unregisters one of the account's login keys (`public_key`, 32 bytes): key login with it
/// fails from then on.
///
/// # Safety
/// `client` is a live client; `public_key` points to 32 readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_key_remove(
    client: *const banter_client,
    public_key: *const u8,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        // SAFETY: forwarded caller contract.
        let public_key = unsafe { bytes_32(public_key) }?;
        client.request_one(banter_protocol::message::KeyRemove { public_key })?;
        Ok(())
    })
}

/// Ends this login session on the server. The client then stops (a DISCONNECTED event).
///
/// # Safety
/// `client` is a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_logout(client: *const banter_client) -> banter_status {
    guard(|| {
        client_ref(client)?.request_one(Logout {})?;
        Ok(())
    })
}

/// Creates a room (`voice`: it carries voice) and returns its id in `*room_out`.
///
/// # Safety
/// `client` is a live client; `name` is (pointer, length); `room_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_create_room(
    client: *const banter_client,
    name: *const c_char,
    name_len: usize,
    private_room: bool,
    voice: bool,
    room_out: *mut u64,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        // SAFETY: forwarded caller contract.
        let name = unsafe { str_arg(name, name_len) }?;
        let request = RoomCreate {
            name: text(name)?,
            topic: Text::default(),
            category: Text::default(),
            visibility: if private_room { Visibility::Private } else { Visibility::Public },
            voice,
        };
        match client.request_one(request)? {
            // SAFETY: forwarded caller contract.
            Message::RoomInfo(info) => unsafe { write_out(room_out, info.room.room.0) },
            _ => Err(Failure::new(BANTER_INTERNAL, "unexpected answer")),
        }
    })
}

/// Finds a room by name (`#name` too, any case) or id among the user's rooms, then the public
/// ones; its id in `*room_out`.
///
/// # Safety
/// `client` is a live client; `name` is (pointer, length); `room_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_find_room(
    client: *const banter_client,
    name: *const c_char,
    name_len: usize,
    room_out: *mut u64,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        // SAFETY: forwarded caller contract.
        let name = unsafe { str_arg(name, name_len) }?;
        let conn = client.block_on(client.client.connection())??;
        match client.block_on(conn.find_room(name))?? {
            // SAFETY: forwarded caller contract.
            Some(room) => unsafe { write_out(room_out, room.room.0) },
            None => Err(Failure::new(BANTER_SERVER_ERROR, format!("no room {name}"))),
        }
    })
}

/// Joins a room.
///
/// # Safety
/// `client` is a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_join(
    client: *const banter_client,
    room: u64,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        client.block_on(client.client.join(RoomId(room)))??;
        learn_names(client);
        Ok(())
    })
}

/// Leaves a room.
///
/// # Safety
/// `client` is a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_leave(
    client: *const banter_client,
    room: u64,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        client.block_on(client.client.leave(RoomId(room)))??;
        Ok(())
    })
}

/// Sends a message and waits until the server acknowledges it as durable; its room_seq goes
/// to `*seq_out` (may be NULL). `reply_to` is the room_seq of the message answered, or 0.
/// A lost connection is retried with the same message id, so the message is stored once.
///
/// # Safety
/// `client` is a live client; `text` is (pointer, length); `seq_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_send(
    client: *const banter_client,
    room: u64,
    text_ptr: *const c_char,
    text_len: usize,
    reply_to: u64,
    seq_out: *mut u64,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        // SAFETY: forwarded caller contract.
        let body = unsafe { str_arg(text_ptr, text_len) }?;
        let post = Post {
            room: RoomId(room),
            client_msg_id: new_client_msg_id(),
            text: text(body)?,
            reply_to: (reply_to != 0).then_some(reply_to),
            anonymous: false,
        };
        let mut attempts = 0;
        let ack = loop {
            match client.request_one(post.clone()) {
                Ok(Message::EventAck(ack)) => break ack,
                Ok(_) => return Err(Failure::new(BANTER_INTERNAL, "unexpected answer")),
                Err(failure) if failure.status == BANTER_CONNECTION_LOST && attempts < 3 => {
                    attempts += 1
                }
                Err(failure) => return Err(failure),
            }
        };
        if !seq_out.is_null() {
            // SAFETY: non-NULL, and the caller guarantees it is writable.
            unsafe { seq_out.write(ack.seq) };
        }
        Ok(())
    })
}

/// Replaces the text of one's own message.
///
/// # Safety
/// `client` is a live client; `text` is (pointer, length).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_edit(
    client: *const banter_client,
    room: u64,
    target: u64,
    text_ptr: *const c_char,
    text_len: usize,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        // SAFETY: forwarded caller contract.
        let body = unsafe { str_arg(text_ptr, text_len) }?;
        client.block_on(client.client.edit(RoomId(room), target, body))??;
        Ok(())
    })
}

/// Deletes a message (one's own, or as a moderator).
///
/// # Safety
/// `client` is a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_delete(
    client: *const banter_client,
    room: u64,
    target: u64,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        client.block_on(client.client.delete(RoomId(room), target))??;
        Ok(())
    })
}

/// Adds (`on` true) or removes a reaction.
///
/// # Safety
/// `client` is a live client; `emoji` is (pointer, length).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_react(
    client: *const banter_client,
    room: u64,
    target: u64,
    emoji: *const c_char,
    emoji_len: usize,
    on: bool,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        // SAFETY: forwarded caller contract.
        let emoji = unsafe { str_arg(emoji, emoji_len) }?;
        client.block_on(client.client.react(RoomId(room), target, emoji, on))??;
        Ok(())
    })
}

/// Moves the read marker of a room to `seq` (it never goes back).
///
/// # Safety
/// `client` is a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_mark_read(
    client: *const banter_client,
    room: u64,
    seq: u64,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        client.block_on(client.client.mark_read(RoomId(room), seq, false))??;
        Ok(())
    })
}

/// Presence values for banter_client_set_presence().
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum banter_presence {
    /// Available.
    BANTER_PRESENCE_ONLINE = 0,
    /// Away.
    BANTER_PRESENCE_AWAY = 1,
    /// Do not disturb.
    BANTER_PRESENCE_DND = 2,
    /// Shown to others as offline.
    BANTER_PRESENCE_INVISIBLE = 3,
}

/// Sets presence (`status` a banter_presence value) and a status text.
///
/// # Safety
/// `client` is a live client; `text` is (pointer, length).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_set_presence(
    client: *const banter_client,
    status: u32,
    text_ptr: *const c_char,
    text_len: usize,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        // SAFETY: forwarded caller contract.
        let status_text = unsafe { str_arg(text_ptr, text_len) }?;
        let status = match status {
            0 => PresenceStatus::Online,
            1 => PresenceStatus::Away,
            2 => PresenceStatus::Dnd,
            3 => PresenceStatus::Invisible,
            _ => return Err(Failure::new(BANTER_INVALID_ARGUMENT, "unknown presence")),
        };
        client.block_on(client.client.set_presence(status, status_text))??;
        Ok(())
    })
}

/// Says whether the user is typing in a room.
///
/// # Safety
/// `client` is a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_typing(
    client: *const banter_client,
    room: u64,
    typing: bool,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        let state = if typing { TypingState::Active } else { TypingState::Stopped };
        client.block_on(client.client.typing(RoomId(room), state))??;
        Ok(())
    })
}

/// A page of history; free with banter_history_free().
#[derive(Debug)]
pub struct banter_history {
    events: Vec<banter_event>,
    next: u64,
}

/// Reads up to `limit` entries of a room's history before `before` (0 = the newest), newest
/// first, with edits and reactions folded in; the page goes to `*history_out`.
///
/// # Safety
/// `client` is a live client; `history_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_history(
    client: *const banter_client,
    room: u64,
    before: u64,
    limit: u32,
    history_out: *mut *mut banter_history,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        let limit = u16::try_from(limit).unwrap_or(u16::MAX);
        let (page, next) = client.block_on(client.client.history(
            RoomId(room),
            (before != 0).then_some(before),
            limit,
        ))??;
        let names = lock(&client.shared.names).clone();
        let events = page.iter().filter_map(|m| banter_event::from_message(m, &names)).collect();
        let history = Box::new(banter_history { events, next: next.unwrap_or(0) });
        // SAFETY: forwarded caller contract.
        unsafe { write_out(history_out, Box::into_raw(history)) }
    })
}

/// The number of events in a page (0 for NULL).
///
/// # Safety
/// `history` is NULL or a live page.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_history_len(history: *const banter_history) -> usize {
    // SAFETY: caller contract: NULL or live.
    unsafe { history.as_ref() }.map_or(0, |h| h.events.len())
}

/// Event `index` of a page (borrowed from the page; do not free), or NULL out of range.
///
/// # Safety
/// `history` is NULL or a live page.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_history_get(
    history: *const banter_history,
    index: usize,
) -> *const banter_event {
    // SAFETY: caller contract: NULL or live.
    unsafe { history.as_ref() }
        .and_then(|h| h.events.get(index))
        .map_or(std::ptr::null(), |e| e as *const _)
}

/// The `before` to pass for the next (older) page, or 0 when the start was reached.
///
/// # Safety
/// `history` is NULL or a live page.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_history_next(history: *const banter_history) -> u64 {
    // SAFETY: caller contract: NULL or live.
    unsafe { history.as_ref() }.map_or(0, |h| h.next)
}

/// Frees a page (and the events borrowed from it). NULL is ignored.
///
/// # Safety
/// `history` is NULL or a page from banter_client_history(), not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_history_free(history: *mut banter_history) {
    if !history.is_null() {
        // SAFETY: from Box::into_raw in banter_client_history, freed once.
        drop(unsafe { Box::from_raw(history) });
    }
}

/// Waits up to `timeout_ms` (0: do not wait; negative: wait indefinitely) for the next event;
/// on BANTER_OK `*event_out` is yours (free with banter_event_free()). BANTER_TIMEOUT when none
/// came. Do not mix with a callback: with a callback set, events go to the callback.
///
/// # Safety
/// `client` is a live client; `event_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_poll_event(
    client: *const banter_client,
    timeout_ms: i32,
    event_out: *mut *mut banter_event,
) -> banter_status {
    guard(|| {
        let shared = &client_ref(client)?.shared;
        if event_out.is_null() {
            return Err(Failure::new(BANTER_NULL_ARGUMENT, "NULL out-parameter"));
        }
        let deadline = (timeout_ms >= 0)
            .then(|| std::time::Instant::now() + Duration::from_millis(timeout_ms as u64));
        let mut queue = lock(&shared.queue);
        loop {
            if let Some(event) = shared.pop_locked(&mut queue) {
                // SAFETY: checked non-NULL; the caller guarantees it is writable.
                return unsafe { write_out(event_out, Box::into_raw(Box::new(event))) };
            }
            let wait = match deadline {
                Some(deadline) => {
                    match deadline.checked_duration_since(std::time::Instant::now()) {
                        Some(left) if !left.is_zero() => left,
                        _ => return Err(Failure::new(BANTER_TIMEOUT, "no event")),
                    }
                }
                None => Duration::from_secs(3600),
            };
            queue = shared
                .ready
                .wait_timeout(queue, wait)
                .map_or_else(|e| e.into_inner().0, |(q, _)| q);
        }
    })
}

/// A file descriptor that is readable exactly while events wait (for poll/select/epoll in
/// your own loop; do not read from or close it). -1 for NULL.
///
/// # Safety
/// `client` is NULL or a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_event_fd(client: *const banter_client) -> i32 {
    // SAFETY: caller contract: NULL or live.
    match unsafe { client.as_ref() } {
        #[cfg(unix)]
        Some(client) => std::os::fd::AsRawFd::as_raw_fd(&*lock(&client.shared.reader)),
        _ => -1,
    }
}

/// Sets (or, with NULL, clears) a callback that receives every event on a library thread.
/// The event is borrowed for the call. The callback may call any libbanter function except
/// banter_client_free() on this client. When this returns, the previous callback is not
/// running and will not be called again (so its `user_data` may be freed), unless this is
/// called from that callback, which then finishes on its own.
///
/// # Safety
/// `client` is a live client; `callback` stays callable and `user_data` valid until cleared.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_set_callback(
    client: *const banter_client,
    callback: banter_event_callback,
    user_data: *mut c_void,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        let shared = &client.shared;
        let mut queue = lock(&shared.queue);
        queue.callback = callback.map(|f| (f, user_data as usize));
        // Calls numbered up to here were of the old callback; later ones are the new one's.
        let replaced_after = queue.calls;
        shared.ready.notify_all();
        let on_dispatcher = client
            .dispatcher
            .as_ref()
            .is_some_and(|dispatcher| dispatcher.thread().id() == std::thread::current().id());
        while queue.calling.is_some_and(|call| call <= replaced_after) && !on_dispatcher {
            queue = shared.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    })
}

/// Samples in one voice frame: 20 ms of 48 kHz mono.
pub const BANTER_VOICE_FRAME_SAMPLES: usize = 960;
// A literal for cbindgen; it must equal the codec's frame.
const _: () = assert!(BANTER_VOICE_FRAME_SAMPLES == banter_codec::FRAME_SAMPLES);

/// Joins the voice of `room` (leaving any other). Push what the user says with
/// banter_client_voice_push() and pull what they hear with banter_client_voice_pull().
///
/// # Safety
/// `client` is a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_voice_join(
    client: *const banter_client,
    room: u64,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        let conn = client.block_on(client.client.connection())??;
        let settings = banter_codec::EncoderSettings::default();
        let (session, heard) = client.block_on(::banter_client::voice::VoiceSession::join(
            &conn,
            RoomId(room),
            settings,
        ))??;
        let heard = Arc::new(tokio::sync::Mutex::new(heard));
        *lock(&client.voice) = Some(Voice { session, heard, muted: false });
        Ok(())
    })
}

/// Leaves voice.
///
/// # Safety
/// `client` is a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_voice_leave(client: *const banter_client) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        let voice = lock(&client.voice)
            .take()
            .ok_or_else(|| Failure::new(BANTER_INVALID_ARGUMENT, "not in voice"))?;
        client.block_on(voice.session.leave())??;
        Ok(())
    })
}

/// Sends one frame the user spoke: exactly BANTER_VOICE_FRAME_SAMPLES 16-bit samples at
/// 48 kHz mono. Call it every 20 ms while talking; `end` marks the last frame of a spurt.
/// Ignored (BANTER_OK) while muted.
///
/// # Safety
/// `client` is a live client; `pcm` points to `samples` readable samples.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_voice_push(
    client: *const banter_client,
    pcm: *const i16,
    samples: usize,
    end: bool,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        if pcm.is_null() {
            return Err(Failure::new(BANTER_NULL_ARGUMENT, "NULL pcm"));
        }
        if samples != banter_codec::FRAME_SAMPLES {
            return Err(Failure::new(BANTER_INVALID_ARGUMENT, "a frame is 960 samples"));
        }
        let mut frame = [0i16; banter_codec::FRAME_SAMPLES];
        // SAFETY: non-NULL and the caller guarantees `samples` (checked = 960) readable samples.
        frame.copy_from_slice(unsafe { std::slice::from_raw_parts(pcm, samples) });
        let voice = lock(&client.voice);
        let voice =
            voice.as_ref().ok_or_else(|| Failure::new(BANTER_INVALID_ARGUMENT, "not in voice"))?;
        if !voice.muted {
            voice.session.send(&frame, end)?;
        }
        Ok(())
    })
}

/// Takes the next 20 ms of mixed audio of everyone else (BANTER_VOICE_FRAME_SAMPLES samples
/// into `out`), waiting up to `timeout_ms`; BANTER_TIMEOUT if none came. Frames come every
/// 20 ms while in voice (silence when nobody talks); pull them at that pace.
///
/// # Safety
/// `client` is a live client; `out` has room for `samples` samples.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_voice_pull(
    client: *const banter_client,
    out: *mut i16,
    samples: usize,
    timeout_ms: u32,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        if out.is_null() {
            return Err(Failure::new(BANTER_NULL_ARGUMENT, "NULL out"));
        }
        if samples != banter_codec::FRAME_SAMPLES {
            return Err(Failure::new(BANTER_INVALID_ARGUMENT, "a frame is 960 samples"));
        }
        let heard = lock(&client.voice)
            .as_ref()
            .map(|voice| voice.heard.clone())
            .ok_or_else(|| Failure::new(BANTER_INVALID_ARGUMENT, "not in voice"))?;
        let wait = Duration::from_millis(u64::from(timeout_ms));
        let runtime = client
            .runtime
            .as_ref()
            .ok_or_else(|| Failure::new(BANTER_INTERNAL, "shutting down"))?;
        let frame = runtime
            .block_on(async {
                tokio::time::timeout(wait, async { heard.lock().await.recv().await }).await
            })
            .map_err(|_| Failure::new(BANTER_TIMEOUT, "no audio in time"))?
            .ok_or_else(|| Failure::new(BANTER_CONNECTION_LOST, "voice ended"))?;
        // SAFETY: non-NULL and the caller guarantees room for `samples` (= 960) samples.
        unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), out, samples) };
        Ok(())
    })
}

/// Mutes (`true`) or unmutes the user: while muted nothing is sent, and the server is told
/// (others see the state).
///
/// # Safety
/// `client` is a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_voice_mute(
    client: *const banter_client,
    mute: bool,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        let room = {
            let mut voice = lock(&client.voice);
            let voice = voice
                .as_mut()
                .ok_or_else(|| Failure::new(BANTER_INVALID_ARGUMENT, "not in voice"))?;
            voice.muted = mute;
            voice.session.room()
        };
        client.request_one(banter_protocol::message::VoiceSelf { room, mute, deaf: false })?;
        Ok(())
    })
}
