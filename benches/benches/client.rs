//! The client side of end-to-end chat, on one core and without a kernel:
//! two sans-IO [`Client`]s handing each other their datagrams.
//!
//! - `client/handshake`: a full Noise IK handshake between two fresh
//!   clients (alice learns bob's address and key from a `PUNCH`, sends the
//!   initiation, bob answers, alice's first transport datagram confirms),
//!   client construction included.
//! - `client/acked_message`: one chat message from alice to bob on an
//!   established session, sealed, opened, shown, acknowledged (sealed
//!   again) and reported delivered.
//!
//! `cargo bench -p benches --bench client`; the inverse of each time is
//! handshakes and acknowledged messages per second on one core.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use proto_core::Instant;
use proto_core::client::{Client, Event, Outcome};
use proto_core::wire::Id;
use testkit::peers::{ALICE, BOB, SERVER, addr, client};

/// Hand every datagram each side wants to send to the other (the server's
/// are dropped) until both are quiet; returns how many were moved.
fn shuttle(a: &mut Client, b: &mut Client, now: Instant) -> usize {
    let (aa, ba) = (addr(ALICE), addr(BOB));
    let mut moved = 0;
    loop {
        let mut any = false;
        while let Some(t) = a.poll_transmit() {
            if t.dst == ba {
                b.handle(now, aa, &t.payload);
                moved += 1;
            }
            any = true;
        }
        while let Some(t) = b.poll_transmit() {
            if t.dst == aa {
                a.handle(now, ba, &t.payload);
                moved += 1;
            }
            any = true;
        }
        if !any {
            return moved;
        }
    }
}

/// Two clients with a live session.
fn pair(seed: u8) -> (Box<Client>, Box<Client>) {
    let mut a = client("alice", seed);
    let mut b = client("bob", seed.wrapping_add(1));
    let now = Instant(2);
    let punch = format!("PUNCH bob {BOB} {}", b.public_key());
    a.handle(now, addr(SERVER), punch.as_bytes());
    shuttle(&mut a, &mut b, now);
    assert!(a.peer_key(Id::new("bob").expect("id")).is_some());
    while a.poll_event().is_some() {}
    while b.poll_event().is_some() {}
    (a, b)
}

fn handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("client");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(20);
    let mut seed = 0u8;
    g.bench_function("handshake", |bench| {
        bench.iter(|| {
            seed = seed.wrapping_add(2);
            let (a, b) = pair(seed);
            black_box((a.stats().handshakes_done, b.stats().handshakes_done))
        })
    });
    let (mut a, mut b) = pair(7);
    let bob = Id::new("bob").expect("id");
    let mut now = 10u64;
    g.bench_function("acked_message", |bench| {
        bench.iter(|| {
            now += 1;
            let t = Instant(now);
            let m = a
                .send_message(t, bob, "hello bob, how are you today?")
                .expect("room");
            shuttle(&mut a, &mut b, t);
            let mut shown = 0;
            while let Some(e) = b.poll_event() {
                shown += usize::from(matches!(e, Event::Message { .. }));
            }
            let mut delivered = false;
            while let Some(e) = a.poll_event() {
                delivered |=
                    matches!(e, Event::Sent { msg, outcome: Outcome::Delivered, .. } if msg == m);
            }
            assert!(shown == 1 && delivered);
        })
    });
    g.finish();
}

criterion_group!(benches, handshake);
criterion_main!(benches);
