//! banterd internals (issue 8): access-token verification, done on every HELLO and RESUME, and
//! the group commit that every acknowledged write waits for: how the cost of one sync is
//! shared as more writers queue up; and the fan-out of one post to a room's sessions.
//!
//! Run: `cargo bench -p banter-benches --bench server`. Results: `benches/README.md`.

use std::hint::black_box;
use std::sync::Arc;

use banter_protocol::ids::{SessionId, UserId};
use banter_server::auth::TokenKeys;
use banter_server::bench::Fanout;
use banter_server::store::{SledEngine, Store};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn tokens(c: &mut Criterion) {
    let keys = TokenKeys::new(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
    let (token, _) = keys.issue(UserId(3), SessionId(4), 1_000, 900_000);
    c.bench_function("access token verify", |b| {
        b.iter(|| keys.verify(black_box(&token), 2_000).unwrap())
    });
    c.bench_function("access token issue", |b| {
        b.iter(|| keys.issue(UserId(3), SessionId(4), black_box(1_000), 900_000))
    });
}

/// `writers` concurrent writes of one 100-byte record each, all acknowledged (durable).
fn group_commit(c: &mut Criterion) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(Arc::new(SledEngine::open(dir.path()).unwrap()), 4096).unwrap();
    let mut group = c.benchmark_group("group commit");
    group.sample_size(20);
    let mut next = 0u64;
    for writers in [1u64, 64, 512] {
        group.throughput(Throughput::Elements(writers));
        group.bench_function(format!("{writers} concurrent acked writes"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let mut acks = Vec::with_capacity(writers as usize);
                    for _ in 0..writers {
                        next += 1;
                        let mut key = b"\x70bench".to_vec();
                        key.extend_from_slice(&next.to_be_bytes());
                        let store = store.clone();
                        acks.push(tokio::spawn(async move {
                            store
                                .write(
                                    move |txn| {
                                        txn.put(key, &[0u8; 100].as_slice());
                                        Ok::<_, ()>(())
                                    },
                                    |()| (),
                                )
                                .await
                                .unwrap()
                        }));
                    }
                    for ack in acks {
                        ack.await.unwrap();
                    }
                });
            })
        });
    }
    group.finish();
    runtime.block_on(store.close());
}

/// One durable post fanned out in process to every session of a room's members: encoded
/// once, stamped per session, queued, taken by the writer and acknowledged.
fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("in-process fan-out");
    for members in [10usize, 100, 1000] {
        let mut room = Fanout::new(members);
        group.throughput(Throughput::Elements(members as u64));
        group.bench_function(format!("one post to {members} sessions"), |b| {
            b.iter(|| assert_eq!(room.publish_one(), members))
        });
    }
    group.finish();
}

criterion_group!(benches, tokens, group_commit, fanout);
criterion_main!(benches);
