//! The PostgreSQL engine (issue 17): the same key-value semantics as sled, serializable group
//! commits that two nodes cannot both win, and a whole banterd serving chat from it — each
//! against a PostgreSQL of the test's own (`banter_tests::postgres`).

use banter_client::protocol::message::{History, Message};
use banter_server::config::StoreKind;
use banter_server::store::{Engine, PgEngine, SledEngine, StoreError};
use banter_tests::TestServer;
use banter_tests::postgres::TestPostgres;

/// The same batches and reads against an engine; what the reads returned.
fn exercise(engine: &dyn Engine) -> Vec<String> {
    let mut seen = Vec::new();
    let key = |n: u8| vec![0x30, 0, n];
    engine.apply((1..=5).map(|n| (key(n), Some(vec![n; usize::from(n)]))).collect()).unwrap();
    engine
        .apply(vec![(key(3), None), (key(4), Some(b"four".to_vec())), (vec![0x31], Some(vec![]))])
        .unwrap();
    engine.sync().unwrap();
    seen.push(format!("{:?}", engine.get(&key(2)).unwrap()));
    seen.push(format!("{:?}", engine.get(&key(3)).unwrap()));
    // Many at once, in the order asked, a missing or repeated key included.
    let many = [key(4), key(3), vec![0x31], key(2), key(4)];
    seen.push(format!("{:?}", engine.get_many(&many).unwrap()));
    seen.push(format!("{:?}", engine.range(&key(0), &[0x30, 0xff], false, 10).unwrap()));
    seen.push(format!("{:?}", engine.range(&key(0), &[0x30, 0xff], true, 2).unwrap()));
    seen.push(format!("{:?}", engine.range(&[0x31], &[0x32], false, usize::MAX).unwrap()));
    // A transaction sees its engine, and commits all of its writes at once.
    let transaction = engine.begin().unwrap();
    seen.push(format!("{:?}", transaction.get(&key(4)).unwrap()));
    transaction.commit(vec![(key(6), Some(vec![6])), (key(1), None)]).unwrap();
    seen.push(format!("{:?}", engine.range(&key(0), &[0x30, 0xff], false, 10).unwrap()));
    // An abandoned transaction leaves nothing behind.
    drop(engine.begin().unwrap());
    seen.push(format!("{:?}", engine.get(&key(6)).unwrap()));
    seen
}

#[test]
fn the_postgres_engine_reads_and_writes_as_sled_does() {
    let postgres = TestPostgres::start();
    let pg = PgEngine::open(&postgres.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sled = SledEngine::open(dir.path()).unwrap();
    assert_eq!(exercise(&pg), exercise(&sled));
}

#[test]
fn two_nodes_appending_at_once_conflict_instead_of_taking_the_same_seq() {
    let postgres = TestPostgres::start();
    let (a, b) =
        (PgEngine::open(&postgres.url()).unwrap(), PgEngine::open(&postgres.url()).unwrap());
    let head = b"head".to_vec();
    a.apply(vec![(head.clone(), Some(vec![1]))]).unwrap();
    // Both nodes read head 1 and append entry 2, each their own.
    let (first, second) = (a.begin().unwrap(), b.begin().unwrap());
    assert_eq!(first.get(&head).unwrap(), Some(vec![1]));
    assert_eq!(second.get(&head).unwrap(), Some(vec![1]));
    let append =
        |by: u8| vec![(head.clone(), Some(vec![2])), (b"entry 2".to_vec(), Some(vec![by]))];
    first.commit(append(b'a')).unwrap();
    let lost = second.commit(append(b'b'));
    assert!(matches!(lost, Err(StoreError::Conflict)), "{lost:?}");
    assert_eq!(b.get(b"entry 2").unwrap(), Some(vec![b'a']), "the winner's entry, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banterd_on_postgres_serves_chat_and_keeps_it_across_a_restart() {
    let postgres = TestPostgres::start();
    let url = postgres.url();
    let mut server = TestServer::node(|config| {
        config.store = StoreKind::Postgres;
        config.database_url = url;
        config.metrics = true;
    })
    .await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let room = ada.create_room("general", false).await;
    bob.join(room).await.unwrap();
    let mut acked = Vec::new();
    for text in ["hello", "from", "postgres"] {
        acked.push(ada.post(room, text).await.unwrap().seq);
    }
    assert!(acked.windows(2).all(|w| w[1] == w[0] + 1), "gap-free: {acked:?}");

    server.restart().await;
    let ada = server.login("ada").await;
    let page = ada.conn.request(History { room, before: None, limit: 10 }).await.unwrap();
    let texts: Vec<String> = page
        .iter()
        .filter_map(|m| match m {
            Message::HistoryMessage(h) => Some(h.text.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["postgres", "from", "hello"], "newest first, all kept");

    // Health says when the database is gone.
    let metrics = server.metrics_addr().expect("metrics on");
    assert_eq!(banter_tests::http_get(metrics, "/healthz").await.0, 200);
    drop(postgres);
    let (status, body) = banter_tests::http_get(metrics, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("storage"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_community_moves_into_postgres_by_import_and_checks_clean() {
    use banter_server::admin::{AdminRequest, import_from_sled, socket};

    let mut sled = TestServer::node(|_| {}).await;
    let ada = sled.user("ada").await;
    let room = ada.create_room("general", false).await;
    for text in ["one", "two"] {
        ada.post(room, text).await.unwrap();
    }
    sled.stop().await;

    let postgres = TestPostgres::start();
    let target = PgEngine::open(&postgres.url()).unwrap();
    let copied = import_from_sled(sled.data_dir(), &target).unwrap();
    assert!(copied > 10, "{copied} records");
    let again = import_from_sled(sled.data_dir(), &target).unwrap_err();
    assert!(again.to_string().contains("not empty"), "{again}");
    drop(target);

    let url = postgres.url();
    let cluster = TestServer::node(|config| {
        config.store = StoreKind::Postgres;
        config.database_url = url;
    })
    .await;
    let report = socket::call(cluster.data_dir(), &AdminRequest::Check).unwrap();
    assert!(matches!(report, Some(socket::Reply::Ok(_))), "{report:?}");
    let ada = cluster.login("ada").await;
    let page = ada.conn.request(History { room, before: None, limit: 10 }).await.unwrap();
    let posts = page.iter().filter(|m| matches!(m, Message::HistoryMessage(_))).count();
    assert_eq!(posts, 2);
    ada.post(room, "three").await.unwrap();
}
