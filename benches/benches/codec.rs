//! Parse and emit of every message of the seed and extended protocols.
//!
//! `cargo bench -p benches --bench codec`: one `parse/<message>` and one
//! `emit/<message>` benchmark each, in ns per message; `loadgen/...` is what
//! `parley-loadgen` spends per request on the codec (writing a request,
//! reading an answer).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use parley_loadgen::msg::{self, IdKind, IdRef, Req, Rx};
use proto_core::wire::seed::emit_list;
use proto_core::wire::{EmitError, Id, ParseError, Reply, Request, SeedReply, SeedRequest};

/// Seed requests (figures 6-13 of the seed document).
const SEED_REQUESTS: &[(&str, &str)] = &[
    ("seed_id", "ID 120"),
    ("seed_peer", "Peer 150"),
    ("seed_quit", "Quit 150"),
    ("seed_id2", "ID2 "),
];

/// Seed replies and the peer-to-peer message.
const SEED_REPLIES: &[(&str, &str)] = &[
    ("seed_list3", "List ['120', '150', '170']"),
    ("seed_peer_v4", "Peer ('127.0.0.1', 10107)"),
    ("seed_peer_v6", "Peer ('2001:db8::1', 10107, 0, 0)"),
    ("seed_nopeer", "NoPeer"),
    ("seed_message", "Message hello2"),
];

/// Extended requests, as a client sends them.
const REQUESTS: &[(&str, &str)] = &[
    ("reg", "REG 17 0123456789abcdef alice 120"),
    (
        "reg_renew",
        "REG 17 0123456789abcdef alice 120 00000000deadbeef",
    ),
    ("keep", "KEEP 18 0123456789abcdef alice 00000000deadbeef"),
    ("lookup", "LOOKUP 19 0123456789abcdef alice"),
    (
        "intro",
        "INTRO 20 0123456789abcdef alice 00000000deadbeef bob",
    ),
    ("list", "LIST 21 0123456789abcdef 4096"),
    ("sub", "SUB 22 0123456789abcdef alice 00000000deadbeef"),
    ("unsub", "UNSUB 23 0123456789abcdef alice 00000000deadbeef"),
    ("quit", "QUIT 24 0123456789abcdef alice 00000000deadbeef"),
    ("stats", "STATS 25 0123456789abcdef"),
];

/// Extended replies and unsolicited messages (a full `PAGE` separately).
const REPLIES: &[(&str, &str)] = &[
    ("cookie", "COOKIE 16 0123456789abcdef 127.0.0.1:10520"),
    ("regd", "REGD 17 alice 120 127.0.0.1:10520 00000000deadbeef"),
    ("alive", "ALIVE 18 120 [2001:db8::1]:10520 4711"),
    ("at", "AT 19 alice 127.0.0.1:10520 -"),
    ("subd", "SUBD 22 4711"),
    ("unsubd", "UNSUBD 23"),
    ("bye", "BYE 24 alice"),
    (
        "stats_reply",
        "STATS 25 datagrams_in=123456 datagrams_out=123450 occupancy=1000000",
    ),
    ("err", "ERR 19 no-such-id"),
    ("punch", "PUNCH alice 127.0.0.1:10520 -"),
    ("events", "EVENTS 4700 4711 +carol +dave -dave -erin +frank"),
    ("resync", "RESYNC 4711"),
];

/// A `PAGE` as full as a datagram allows: ~90 ids of 12 characters.
fn full_page() -> String {
    let mut s = String::from("PAGE 21 8192");
    let mut i = 0;
    while s.len() + 13 <= 1200 {
        s.push_str(&format!(" user-{i:07}"));
        i += 1;
    }
    s
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
}

fn bench_pair<'a, M: Copy>(
    c: &mut Criterion,
    name: &str,
    text: &'a str,
    parse: impl Fn(&'a [u8]) -> M,
    emit: impl Fn(&M, &mut [u8]) -> usize,
) {
    let bytes = text.as_bytes();
    c.bench_function(&format!("parse/{name}"), |b| {
        b.iter(|| parse(black_box(bytes)))
    });
    let m = parse(bytes);
    let mut buf = [0u8; 1200];
    assert_eq!(emit(&m, &mut buf), bytes.len(), "{name} re-emits");
    c.bench_function(&format!("emit/{name}"), |b| {
        b.iter(|| emit(black_box(&m), &mut buf))
    });
}

/// [`bench_pair`] for each `(name, text)` of `cases`, all of one message
/// type, which `parse` reads and `emit` writes.
fn bench_all<'a, M: Copy>(
    c: &mut Criterion,
    cases: &[(&str, &'a str)],
    parse: impl Fn(&'a [u8]) -> Result<M, ParseError>,
    emit: impl Fn(&M, &mut [u8]) -> Result<usize, EmitError>,
) {
    for &(name, text) in cases {
        bench_pair(
            c,
            name,
            text,
            |b| parse(b).expect("valid"),
            |m, buf| emit(m, buf).expect("fits"),
        );
    }
}

fn codec(c: &mut Criterion) {
    bench_all(c, SEED_REQUESTS, SeedRequest::parse, SeedRequest::emit);
    bench_all(c, SEED_REPLIES, SeedReply::parse, SeedReply::emit);
    let hello = format!("HELLO 16 {}", ".".repeat(64));
    let mut requests: Vec<(&str, &str)> = vec![("hello", hello.as_str())];
    requests.extend_from_slice(REQUESTS);
    bench_all(c, &requests, Request::parse, Request::emit);
    let page = full_page();
    let mut replies: Vec<(&str, &str)> = vec![("page_full", page.as_str())];
    replies.extend_from_slice(REPLIES);
    bench_all(c, &replies, Reply::parse, Reply::emit);
    // The seed List the server builds for each seed subscriber: as many ids
    // as fit the seed client's 1024 bytes.
    let owned: Vec<String> = (0..200).map(|i| format!("user-{i:04}")).collect();
    let ids: Vec<Id<'_>> = owned.iter().map(|s| Id::new(s).expect("valid")).collect();
    let mut buf = [0u8; proto_core::SEED_MAX_LIST];
    c.bench_function("emit/seed_list_full", |b| {
        b.iter(|| emit_list(black_box(&ids).iter().copied(), &mut buf).expect("room"))
    });
    let (n, _) = emit_list(ids.iter().copied(), &mut buf).expect("room");
    let full = buf[..n].to_vec();
    c.bench_function("parse/seed_list_full", |b| {
        b.iter(|| SeedReply::parse(black_box(&full)).expect("valid"))
    });
}

fn loadgen(c: &mut Criterion) {
    let id = IdRef {
        kind: IdKind::Prefill,
        n: 123_456,
    };
    let (tx, cookie) = (msg::txid(77, 1234), 0x0123_4567_89ab_cdef);
    let mut buf = [0u8; 1200];
    for (name, req) in [("lookup", Req::Lookup(id)), ("reg", Req::Reg(id, 3600))] {
        c.bench_function(&format!("loadgen/emit_{name}"), |b| {
            b.iter(|| msg::write_req(&mut buf, b"lg", black_box(req), tx, cookie).expect("fits"))
        });
    }
    let mut echoed_reg = [0u8; 1200];
    let n = msg::write_req(&mut echoed_reg, b"lg", Req::Reg(id, 3600), tx, cookie).expect("fits");
    let answers: [(&str, &[u8]); 3] = [
        ("at", b"AT 4d2004d lgp123456 127.0.1.3:40000 2d3c58a1f0e94b7c2d3c58a1f0e94b7c2d3c58a1f0e94b7c2d3c58a1f0e94b7c"),
        ("regd", b"REGD 4d2004d lgf123456 3600 127.0.1.3:40000 00000000000000bb"),
        ("echoed_reg", &echoed_reg[..n]),
    ];
    for (name, d) in answers {
        assert!(matches!(msg::classify(d), Rx::Answer { .. }), "{name}");
        c.bench_function(&format!("loadgen/classify_{name}"), |b| {
            b.iter(|| msg::classify(black_box(d)))
        });
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = codec, loadgen
}
criterion_main!(benches);
