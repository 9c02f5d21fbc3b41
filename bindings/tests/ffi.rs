//! The C functions called from Rust: NULL and invalid arguments give errors, never crashes;
//! trust and connection failures are reported as such; callbacks can be cleared safely.

mod common;

use std::ffi::{CStr, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use banter::banter_event_type::*;
use banter::*;
use banter_tests::TestServer;
use common::{client, register};

#[test]
fn null_and_invalid_arguments_are_errors_with_a_message() {
    // SAFETY: every pointer passed is NULL, a live handle, or valid for the length given,
    // as the C API requires.
    unsafe {
        assert_eq!(
            banter_client_send(ptr::null(), 1, c"x".as_ptr(), 1, 0, ptr::null_mut()),
            banter_status::BANTER_NULL_ARGUMENT
        );
        let message = CStr::from_ptr(banter_last_error()).to_str().unwrap();
        assert!(message.contains("NULL"), "{message}");
        assert_eq!(
            banter_config_set_server(ptr::null_mut(), c"x".as_ptr(), 1),
            banter_status::BANTER_NULL_ARGUMENT
        );

        let config = banter_config_new();
        assert_eq!(
            banter_config_set_server(config, ptr::null(), 5),
            banter_status::BANTER_NULL_ARGUMENT
        );
        assert_eq!(
            banter_config_set_server(config, b"\xff\xfe".as_ptr().cast(), 2),
            banter_status::BANTER_INVALID_UTF8
        );
        assert_eq!(
            banter_config_set_server(config, c"".as_ptr(), 0),
            banter_status::BANTER_INVALID_ARGUMENT
        );
        assert_eq!(
            banter_config_set_server(config, c"127.0.0.1:9".as_ptr(), 11),
            banter_status::BANTER_OK
        );
        assert_eq!(CStr::from_ptr(banter_last_error()).to_bytes(), b"", "success clears the error");
        assert_eq!(
            banter_config_set_pinned_fingerprint(config, ptr::null()),
            banter_status::BANTER_NULL_ARGUMENT
        );
        let mut client = ptr::null_mut();
        assert_eq!(
            banter_login(config, c"ada".as_ptr(), 3, c"pw".as_ptr(), 2, ptr::null_mut()),
            banter_status::BANTER_NULL_ARGUMENT
        );
        assert_eq!(
            banter_login(ptr::null(), c"ada".as_ptr(), 3, c"pw".as_ptr(), 2, &mut client),
            banter_status::BANTER_NULL_ARGUMENT
        );
        assert!(client.is_null(), "out-parameters are written only on success");
        // No pin, no CA, no explicit choice: refused before any password leaves.
        assert_eq!(
            banter_login(config, c"ada".as_ptr(), 3, c"pw".as_ptr(), 2, &mut client),
            banter_status::BANTER_CERTIFICATE_UNTRUSTED
        );
        let error = CStr::from_ptr(banter_last_error()).to_string_lossy().into_owned();
        assert!(error.contains("no certificate trust configured"), "{error}");
        assert!(client.is_null());
        banter_config_free(config);

        let mut event = ptr::null_mut();
        assert_eq!(
            banter_client_poll_event(ptr::null(), 0, &mut event),
            banter_status::BANTER_NULL_ARGUMENT
        );
        assert_eq!(banter_event_get_type(ptr::null()), 0);
        assert_eq!(CStr::from_ptr(banter_event_text(ptr::null())).to_bytes(), b"");
        assert_eq!(banter_history_len(ptr::null()), 0);
        assert!(banter_history_get(ptr::null(), 0).is_null());
        assert_eq!(banter_search_page_len(ptr::null()), 0);
        assert!(banter_search_page_get(ptr::null(), 0).is_null());
        assert!(!banter_search_page_next(ptr::null(), ptr::null_mut()));
        assert_eq!(banter_client_event_fd(ptr::null()), -1);
        banter_client_free(ptr::null_mut());
        banter_config_free(ptr::null_mut());
        banter_event_free(ptr::null_mut());
        banter_history_free(ptr::null_mut());
        banter_search_page_free(ptr::null_mut());
    }
}

#[test]
fn versions_and_status_names_are_static_strings() {
    assert_eq!(banter_abi_version(), 1);
    // SAFETY: both return static NUL-terminated strings.
    unsafe {
        assert_eq!(CStr::from_ptr(banter_version()).to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        assert_eq!(
            CStr::from_ptr(banter_status_str(banter_status::BANTER_TIMEOUT as u32))
                .to_str()
                .unwrap(),
            "timed out"
        );
        // C may pass any int where the header declares the enum: not undefined behaviour.
        for unknown in [5, 98, 101, u32::MAX] {
            assert_eq!(
                CStr::from_ptr(banter_status_str(unknown)).to_str().unwrap(),
                "unknown status"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_certificate_does_not_match_the_pin_is_refused_as_untrusted() {
    let server = TestServer::start().await;
    let addr = server.addr().to_string();
    let (status, no_client, message) = tokio::task::spawn_blocking(move || {
        let (status, client, message) = register(&addr, "ada", Some(&[0; 32]));
        (status, client.is_null(), message)
    })
    .await
    .unwrap();
    assert!(no_client, "out-parameters are written only on success");
    assert_eq!(status, banter_status::BANTER_CERTIFICATE_UNTRUSTED, "{message}");
    assert!(message.contains("pinned fingerprint"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_reported_once_and_so_is_the_reconnection() {
    let mut server = TestServer::start().await;
    let addr = server.addr().to_string();
    let client = tokio::task::spawn_blocking(move || client(&addr, "ada") as usize).await.unwrap();
    server.restart().await;
    let seen = tokio::task::spawn_blocking(move || {
        let client = client as *mut banter_client;
        let mut seen = Vec::new();
        // SAFETY: a live client and a writable out-parameter; each event is freed once.
        unsafe {
            while seen.len() < 3 {
                let mut event = ptr::null_mut();
                let status = banter_client_poll_event(client, 15_000, &mut event);
                assert_eq!(status, banter_status::BANTER_OK, "only {seen:?} came");
                let kind = banter_event_get_type(event);
                if kind == BANTER_EVENT_CONNECTED as u32 || kind == BANTER_EVENT_DISCONNECTED as u32
                {
                    seen.push((kind, banter_event_value(event)));
                }
                banter_event_free(event);
            }
            banter_client_free(client);
        }
        seen
    })
    .await
    .unwrap();
    let (up, down) = (BANTER_EVENT_CONNECTED as u32, BANTER_EVENT_DISCONNECTED as u32);
    assert_eq!(seen, vec![(up, 0), (down, 0), (up, 0)], "value 0: the client keeps trying");
}

/// What the callbacks below record, shared with the test through `user_data`.
#[derive(Default)]
struct CallbackProbe {
    client: AtomicUsize,
    entered: AtomicBool,
    finished: AtomicBool,
    cleared_from_inside: AtomicU32,
}

/// Takes its time, so that the test can clear it while it runs.
unsafe extern "C" fn slow_callback(user_data: *mut c_void, _event: *const banter_event) {
    // SAFETY: the test passes a CallbackProbe that outlives the callback's registration.
    let probe = unsafe { &*user_data.cast::<CallbackProbe>() };
    probe.entered.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    probe.finished.store(true, Ordering::SeqCst);
}

/// Clears itself, which must not wait for itself.
unsafe extern "C" fn self_clearing_callback(user_data: *mut c_void, _event: *const banter_event) {
    // SAFETY: as above; `client` holds a live client.
    let probe = unsafe { &*user_data.cast::<CallbackProbe>() };
    let client = probe.client.load(Ordering::SeqCst) as *const banter_client;
    // SAFETY: a live client; NULL clears.
    let status = unsafe { banter_client_set_callback(client, None, ptr::null_mut()) };
    probe.cleared_from_inside.store(status as u32, Ordering::SeqCst);
    probe.finished.store(true, Ordering::SeqCst);
}

fn wait_until(flag: &AtomicBool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !flag.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the callback was never called");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_clearing_the_callback_waits_for_a_call_in_progress_unless_made_from_it() {
    let server = TestServer::start().await;
    let addr = server.addr().to_string();
    tokio::task::spawn_blocking(move || {
        // Each new client has its CONNECTED event queued, so a callback runs as soon as set.
        let (ada, bob) = (client(&addr, "ada"), client(&addr, "bob"));
        let probe = CallbackProbe::default();
        let user_data = (&raw const probe).cast_mut().cast::<c_void>();
        // SAFETY: live clients; the probe outlives both registrations (each is cleared, and
        // the clients freed, before it goes out of scope).
        unsafe {
            assert_eq!(
                banter_client_set_callback(ada, Some(slow_callback), user_data),
                banter_status::BANTER_OK
            );
            wait_until(&probe.entered);
            assert_eq!(
                banter_client_set_callback(ada, None, ptr::null_mut()),
                banter_status::BANTER_OK
            );
            // Once clearing returns, the application may free user_data: nothing still runs.
            assert!(probe.finished.load(Ordering::SeqCst), "cleared while the callback ran");

            let probe = CallbackProbe::default();
            probe.client.store(bob as usize, Ordering::SeqCst);
            let user_data = (&raw const probe).cast_mut().cast::<c_void>();
            assert_eq!(
                banter_client_set_callback(bob, Some(self_clearing_callback), user_data),
                banter_status::BANTER_OK
            );
            wait_until(&probe.finished);
            assert_eq!(
                probe.cleared_from_inside.load(Ordering::SeqCst),
                banter_status::BANTER_OK as u32
            );
            banter_client_free(ada);
            banter_client_free(bob);
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_keys_are_added_with_proof_listed_and_removed() {
    let server = TestServer::start().await;
    let addr = server.addr().to_string();
    tokio::task::spawn_blocking(move || {
        let ada = client(&addr, "ada");
        let seed = [42u8; 32];
        let public_key = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let mut listed = [0u8; 64];
        let mut count = 0usize;
        // SAFETY: a live client; buffers of the stated sizes; the client is freed once.
        unsafe {
            assert_eq!(banter_client_key_add(ada, seed.as_ptr()), banter_status::BANTER_OK);
            assert_eq!(
                banter_client_keys(ada, listed.as_mut_ptr(), 2, &mut count),
                banter_status::BANTER_OK
            );
            assert_eq!(count, 1);
            assert_eq!(listed[..32], public_key);
            assert_eq!(
                banter_client_key_remove(ada, public_key.as_ptr()),
                banter_status::BANTER_OK
            );
            assert_eq!(
                banter_client_keys(ada, ptr::null_mut(), 0, &mut count),
                banter_status::BANTER_OK
            );
            assert_eq!(count, 0);
            assert_eq!(
                banter_client_key_remove(ada, public_key.as_ptr()),
                banter_status::BANTER_SERVER_ERROR
            );
            assert_eq!(banter_last_server_error(), 0x41, "NOT_FOUND");
            banter_client_free(ada);
        }
    })
    .await
    .unwrap();
}

/// The user id of a client (from the event of its own join in `room`).
fn own_id(client: *mut banter_client, name: &str, room: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let mut event = ptr::null_mut();
        // SAFETY: a live client and a writable out-parameter; each event is freed once.
        unsafe {
            if banter_client_poll_event(client, 100, &mut event) != banter_status::BANTER_OK {
                continue;
            }
            let found = banter_event_room(event) == room
                && CStr::from_ptr(banter_event_sender_name(event)).to_str() == Ok(name);
            let sender = banter_event_sender(event);
            banter_event_free(event);
            if found {
                return sender;
            }
        }
    }
    panic!("no event from {name} in room {room}");
}

/// Searches until `want` hits come (the server indexes within about a second), or 10 s pass.
///
/// # Safety
/// `client` is a live client.
unsafe fn search_until(
    client: *mut banter_client,
    query: &str,
    want: usize,
) -> *mut banter_search_page {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut page = ptr::null_mut();
        // SAFETY: a live client, a (pointer, length) query and a writable out-parameter.
        let status = unsafe {
            banter_client_search(
                client,
                query.as_ptr().cast(),
                query.len(),
                0,
                ptr::null(),
                10,
                &mut page,
            )
        };
        assert_eq!(status, banter_status::BANTER_OK);
        // SAFETY: a live page, freed once.
        unsafe {
            if banter_search_page_len(page) == want || Instant::now() > deadline {
                return page;
            }
            banter_search_page_free(page);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A hit's snippet, and the text of each of its highlights.
///
/// # Safety
/// `hit` is a live hit.
unsafe fn snippet_and_matches(hit: *const banter_search_hit) -> (String, Vec<String>) {
    // SAFETY: a live hit: its snippet is NUL-terminated, its highlights as many as it says.
    unsafe {
        let snippet = CStr::from_ptr((*hit).snippet).to_str().unwrap().to_owned();
        let ranges = std::slice::from_raw_parts((*hit).highlights, (*hit).highlights_len);
        let matches = ranges.iter().map(|r| snippet[r.start as usize..r.end as usize].to_owned());
        (snippet.clone(), matches.collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_word_is_found_by_search_with_its_room_seq_and_highlight_and_pages_go_on() {
    // One node on sled, whatever the backend: a cluster has no search yet.
    let server = TestServer::node(|_| {}).await;
    let addr = server.addr().to_string();
    tokio::task::spawn_blocking(move || {
        let ada = client(&addr, "ada");
        // SAFETY: a live client; (pointer, length) strings; pages freed once; the client
        // freed once.
        unsafe {
            let mut room = 0;
            let status =
                banter_client_create_room(ada, c"lunch".as_ptr(), 5, false, false, &mut room);
            assert_eq!(status, banter_status::BANTER_OK);
            let mut seqs = [0; 2];
            for (text, seq) in
                ["meet me in Zanzibar at noon", "zanzibar again"].iter().zip(&mut seqs)
            {
                let status =
                    banter_client_send(ada, room, text.as_ptr().cast(), text.len(), 0, seq);
                assert_eq!(status, banter_status::BANTER_OK);
            }

            // Newest first: a page of one hit, then the page after it.
            let page = search_until(ada, "zanzibar", 2);
            assert_eq!(banter_search_page_len(page), 2);
            banter_search_page_free(page);
            let mut page = ptr::null_mut();
            let query = "zanzibar";
            let status = banter_client_search(
                ada,
                query.as_ptr().cast(),
                8,
                room,
                ptr::null(),
                1,
                &mut page,
            );
            assert_eq!(status, banter_status::BANTER_OK);
            assert_eq!(banter_search_page_len(page), 1);
            let hit = banter_search_page_get(page, 0);
            assert_eq!(((*hit).room, (*hit).seq, (*hit).file), (room, seqs[1], false));
            assert!(banter_search_page_get(page, 1).is_null());
            let mut cursor = banter_search_cursor { ts: 0, room: 0, seq: 0 };
            assert!(banter_search_page_next(page, &mut cursor));
            assert_eq!((cursor.room, cursor.seq), (room, seqs[1]));
            banter_search_page_free(page);
            let status =
                banter_client_search(ada, query.as_ptr().cast(), 8, room, &cursor, 1, &mut page);
            assert_eq!(status, banter_status::BANTER_OK);
            let hit = banter_search_page_get(page, 0);
            assert_eq!(((*hit).room, (*hit).seq), (room, seqs[0]));
            assert!((*hit).ts > 0 && (*hit).sender > 0);
            let (snippet, matches) = snippet_and_matches(hit);
            assert_eq!(
                (snippet.as_str(), matches),
                ("meet me in Zanzibar at noon", vec!["Zanzibar".to_owned()])
            );
            banter_search_page_free(page);

            // Arguments are checked as everywhere.
            let status =
                banter_client_search(ada, b"\xff".as_ptr().cast(), 1, 0, ptr::null(), 1, &mut page);
            assert_eq!(status, banter_status::BANTER_INVALID_UTF8);
            let status = banter_client_search(
                ada,
                query.as_ptr().cast(),
                8,
                0,
                ptr::null(),
                1,
                ptr::null_mut(),
            );
            assert_eq!(status, banter_status::BANTER_NULL_ARGUMENT);
            banter_client_free(ada);
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_contacts_and_moderation_through_the_c_api() {
    let server = TestServer::start().await;
    let addr = server.addr().to_string();
    tokio::task::spawn_blocking(move || {
        let ada = client(&addr, "ada");
        let grace = client(&addr, "grace");
        // SAFETY: live clients; (pointer, length) strings; buffers of the stated sizes; each
        // client is freed once.
        unsafe {
            let mut room = 0;
            let status = banter_client_create_room(ada, c"hq".as_ptr(), 2, true, true, &mut room);
            assert_eq!(status, banter_status::BANTER_OK);
            // An invite code into the private room, used by grace.
            let mut code = [0 as std::ffi::c_char; BANTER_INVITE_CODE_CAPACITY];
            let status = banter_client_invite_create(ada, room, 1, 0, code.as_mut_ptr(), 4);
            assert_eq!(status, banter_status::BANTER_INVALID_ARGUMENT, "buffer too small");
            let status =
                banter_client_invite_create(ada, room, 1, 0, code.as_mut_ptr(), code.len());
            assert_eq!(status, banter_status::BANTER_OK);
            let code = CStr::from_ptr(code.as_ptr()).to_str().unwrap().to_owned();
            let mut joined = 0;
            let status =
                banter_client_invite_use(grace, code.as_ptr().cast(), code.len(), &mut joined);
            assert_eq!(status, banter_status::BANTER_OK);
            assert_eq!(joined, room);
            let grace_id = own_id(ada, "grace", room);

            // Contacts: a request, seen from both sides.
            let status = banter_client_contact(
                ada,
                c"grace".as_ptr(),
                5,
                banter_contact_action::BANTER_CONTACT_REQUEST as u32,
            );
            assert_eq!(status, banter_status::BANTER_OK);
            let mut contacts = [banter_contact {
                user: 0,
                username: [0; BANTER_USERNAME_CAPACITY],
                state: banter_contact_state::BANTER_CONTACT_FRIEND,
            }; 4];
            let mut count = 0;
            let status = banter_client_contacts(grace, contacts.as_mut_ptr(), 4, &mut count);
            assert_eq!(status, banter_status::BANTER_OK);
            assert_eq!(count, 1);
            assert_eq!(CStr::from_ptr(contacts[0].username.as_ptr()).to_str(), Ok("ada"));
            assert_eq!(contacts[0].state, banter_contact_state::BANTER_CONTACT_INCOMING);
            let status = banter_client_contact(
                grace,
                c"ada".as_ptr(),
                3,
                banter_contact_action::BANTER_CONTACT_BLOCK as u32,
            );
            assert_eq!(status, banter_status::BANTER_OK);
            banter_client_contacts(grace, contacts.as_mut_ptr(), 4, &mut count);
            assert_eq!(contacts[0].state, banter_contact_state::BANTER_CONTACT_BLOCKED);
            // (While she blocks ada, ada cannot even find her to add her to a room.)
            let status = banter_client_room_add(ada, room, c"grace".as_ptr(), 5);
            assert_eq!(status, banter_status::BANTER_SERVER_ERROR);
            let status = banter_client_contact(
                grace,
                c"ada".as_ptr(),
                3,
                banter_contact_action::BANTER_CONTACT_UNBLOCK as u32,
            );
            assert_eq!(status, banter_status::BANTER_OK);

            // Moderation: not grace's to do; ada's roles, kick, ban, unban, add back.
            let status = banter_client_kick(grace, room, 1, c"".as_ptr(), 0);
            assert_eq!(status, banter_status::BANTER_SERVER_ERROR);
            let status = banter_client_set_role(ada, room, grace_id, 9);
            assert_eq!(status, banter_status::BANTER_INVALID_ARGUMENT);
            let status = banter_client_set_role(ada, room, grace_id, BANTER_ROLE_MODERATOR);
            assert_eq!(status, banter_status::BANTER_OK);
            let status = banter_client_set_role(ada, room, grace_id, BANTER_ROLE_MEMBER);
            assert_eq!(status, banter_status::BANTER_OK);
            let status = banter_client_voice_moderate(
                ada,
                room,
                grace_id,
                banter_voice_action::BANTER_VOICE_MUTE as u32,
            );
            assert_eq!(status, banter_status::BANTER_SERVER_ERROR, "grace is not in voice");
            let status = banter_client_kick(ada, room, grace_id, c"spam".as_ptr(), 4);
            assert_eq!(status, banter_status::BANTER_OK);
            let status = banter_client_room_add(ada, room, c"grace".as_ptr(), 5);
            assert_eq!(status, banter_status::BANTER_OK);
            let status = banter_client_ban(ada, room, grace_id, c"again".as_ptr(), 5, 0);
            assert_eq!(status, banter_status::BANTER_OK);
            let status = banter_client_join(grace, room);
            assert_eq!(status, banter_status::BANTER_SERVER_ERROR, "banned");
            let status = banter_client_unban(ada, room, grace_id);
            assert_eq!(status, banter_status::BANTER_OK);
            banter_client_free(grace);
            banter_client_free(ada);
        }
    })
    .await
    .unwrap();
}

unsafe extern "C" fn record_progress(user_data: *mut c_void, done: u64, total: u64) {
    // SAFETY: the test passes a live Vec for the duration of the call.
    let seen = unsafe { &mut *user_data.cast::<Vec<(u64, u64)>>() };
    seen.push((done, total));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_go_up_and_down_with_progress_on_the_calling_thread() {
    let server = TestServer::start().await;
    let addr = server.addr().to_string();
    tokio::task::spawn_blocking(move || {
        let ada = client(&addr, "ada");
        let work = tempfile::tempdir().unwrap();
        let original = work.path().join("data.bin");
        let content: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(&original, &content).unwrap();
        let path = original.to_str().unwrap();
        let copy = work.path().join("copy.bin");
        let copy_path = copy.to_str().unwrap();
        // SAFETY: a live client; (pointer, length) strings; the progress state outlives
        // the calls; the client is freed once.
        unsafe {
            let mut room = 0;
            banter_client_create_room(ada, c"files".as_ptr(), 5, false, false, &mut room);
            let mut seen: Vec<(u64, u64)> = Vec::new();
            let mut seq = 0;
            let status = banter_client_upload(
                ada,
                room,
                path.as_ptr().cast(),
                path.len(),
                c"".as_ptr(),
                0,
                Some(record_progress),
                (&raw mut seen).cast(),
                &mut seq,
            );
            assert_eq!(status, banter_status::BANTER_OK);
            assert!(seq > 0);
            let total = content.len() as u64;
            assert!(seen.len() >= 2, "{seen:?}");
            assert_eq!(seen.last(), Some(&(total, total)));
            assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");

            seen.clear();
            let status = banter_client_download(
                ada,
                room,
                seq,
                copy_path.as_ptr().cast(),
                copy_path.len(),
                Some(record_progress),
                (&raw mut seen).cast(),
            );
            assert_eq!(status, banter_status::BANTER_OK);
            assert_eq!(std::fs::read(&copy).unwrap(), content);
            assert_eq!(seen.last(), Some(&(total, total)));
            // An existing file is never replaced; NULL progress is fine.
            let status = banter_client_download(
                ada,
                room,
                seq,
                copy_path.as_ptr().cast(),
                copy_path.len(),
                None,
                ptr::null_mut(),
            );
            assert_eq!(status, banter_status::BANTER_INTERNAL);
            assert!(CStr::from_ptr(banter_last_error()).to_string_lossy().contains("exists"));
            banter_client_free(ada);
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_enum_arguments_out_of_range_are_invalid_not_undefined() {
    let server = TestServer::start().await;
    let addr = server.addr().to_string();
    tokio::task::spawn_blocking(move || {
        let ada = client(&addr, "ada");
        // SAFETY: a live client and valid strings; the client is freed once.
        unsafe {
            for action in [1, 5, u32::MAX] {
                let status = banter_client_contact(ada, c"grace".as_ptr(), 5, action);
                assert_eq!(status, banter_status::BANTER_INVALID_ARGUMENT, "{action}");
            }
            let status = banter_client_voice_moderate(ada, 1, 2, 4);
            assert_eq!(status, banter_status::BANTER_INVALID_ARGUMENT);
            // A NULL or short buffer is refused before the invite is made.
            let mut room = 0;
            banter_client_create_room(ada, c"r".as_ptr(), 1, true, false, &mut room);
            let status = banter_client_invite_create(ada, room, 0, 0, ptr::null_mut(), 64);
            assert_eq!(status, banter_status::BANTER_NULL_ARGUMENT);
            let mut short = [0 as std::ffi::c_char; 8];
            let status = banter_client_invite_create(ada, room, 0, 0, short.as_mut_ptr(), 8);
            assert_eq!(status, banter_status::BANTER_INVALID_ARGUMENT);
            banter_client_free(ada);
        }
    })
    .await
    .unwrap();
}
