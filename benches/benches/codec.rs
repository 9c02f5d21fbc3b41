//! Frame codec and voice header micro-benchmarks (issue 2, item 6).
//!
//! Run: `cargo bench -p banter-benches --bench codec`. Results: `benches/README.md`.

use std::hint::black_box;

use banter_protocol::bounded::{List, Text};
use banter_protocol::datagram::{MAX_HEADER_LEN, VoiceHeader};
use banter_protocol::frame::{DEFAULT_MAX_FRAME_SIZE, FrameDecoder};
use banter_protocol::ids::{RoomId, Timestamp, UserId};
use banter_protocol::message::{EventMeta, HistoryMessage, PageEnd, Posted, ReactionCount};
use banter_protocol::{Frame, Message};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn chat_post() -> Posted {
    Posted {
        event_seq: 1_234_567,
        meta: EventMeta {
            room: RoomId(42),
            seq: 987_654,
            ts: Timestamp(1_790_000_000_000),
            sender: UserId(31_337),
        },
        client_msg_id: None,
        reply_to: Some(987_600),
        text: Text::new(
            "a typical chat line of about eighty bytes, with a question: lunch at noon?",
        )
        .unwrap(),
    }
}

/// The frames of a 100-message HISTORY answer (before PAGE_END).
fn history_messages() -> Vec<HistoryMessage> {
    (0..100u64)
        .map(|i| HistoryMessage {
            meta: EventMeta {
                room: RoomId(42),
                seq: 1000 - i,
                ts: Timestamp(1_790_000_000_000 + i),
                sender: UserId(i % 7),
            },
            reply_to: None,
            text: Text::new(format!("message number {i} in a page of one hundred")).unwrap(),
            edited: (i % 10 == 0).then_some((1001 + i, Timestamp(1_790_000_100_000))),
            deleted_by: None,
            reactions: List::new(vec![ReactionCount {
                emoji: Text::new("👍").unwrap(),
                count: 3,
                me: i % 2 == 0,
            }])
            .unwrap(),
        })
        .collect()
}

fn encode_page(messages: &[HistoryMessage], out: &mut Vec<u8>) {
    for message in messages {
        message.encode_frame(out);
    }
    PageEnd { room: RoomId(42), next: Some(900) }.encode_frame(out);
}

fn codec(c: &mut Criterion) {
    let posted = chat_post();
    let mut frame = Vec::new();
    posted.encode_frame(&mut frame);

    let mut group = c.benchmark_group("chat_post");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            out.clear();
            black_box(&posted).encode_frame(&mut out);
            black_box(out.len())
        })
    });
    group.bench_function("decode", |b| {
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_SIZE);
        b.iter(|| {
            decoder.push(black_box(&frame));
            black_box(decoder.next_message().unwrap().unwrap())
        })
    });
    group.finish();

    let messages = history_messages();
    let mut page = Vec::new();
    encode_page(&messages, &mut page);
    let mut group = c.benchmark_group("history_page_100");
    group.throughput(Throughput::Elements(100));
    group.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(page.len());
        b.iter(|| {
            out.clear();
            encode_page(black_box(&messages), &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("decode", |b| {
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_SIZE);
        b.iter(|| {
            decoder.push(black_box(&page));
            let mut n = 0;
            while let Some(message) = decoder.next_message().unwrap() {
                n += matches!(message, Message::HistoryMessage(_)) as usize;
            }
            black_box(n)
        })
    });
    group.finish();

    let header = VoiceHeader::opus(1234, 65_000, false);
    let mut datagram = vec![0u8; MAX_HEADER_LEN];
    let header_len = header.write(&mut datagram).unwrap();
    datagram.truncate(header_len);
    datagram.extend_from_slice(&[0x55; 160]); // a 20 ms Opus frame at 64 kbit/s
    let mut group = c.benchmark_group("voice_header");
    group.throughput(Throughput::Elements(1));
    group.bench_function("write", |b| {
        let mut buf = [0u8; MAX_HEADER_LEN];
        b.iter(|| black_box(black_box(&header).write(&mut buf)))
    });
    group.bench_function("parse", |b| {
        b.iter(|| black_box(VoiceHeader::parse(black_box(&datagram))))
    });
    group.bench_function("relay_rewrite", |b| {
        // What the server does per recipient: parse, stamp the source, write a new header in
        // front of the borrowed payload.
        let mut buf = [0u8; MAX_HEADER_LEN];
        b.iter(|| {
            let (mut h, payload) = VoiceHeader::parse(black_box(&datagram)).unwrap();
            h.source = 77;
            let n = h.write(&mut buf).unwrap();
            black_box((n, payload.len()))
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
