//! The registry at 1M entries: insert, lookup (hit and miss), expire.
//!
//! `cargo bench -p benches --bench registry`, in ns per operation. The
//! table has 2^20 slots holding 1,000,000 registrations, as a server
//! started with `--capacity 1048576` would after filling up; ids are looked
//! up in a scattered order so the index is cold as in real traffic.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant as Clock};

use criterion::{Criterion, criterion_group, criterion_main};
use proto_core::Instant;
use proto_core::registry::{Entry, Owner, Registry, Slot, Subscription, index_len_for};
use proto_core::wire::{Id, IdBuf, Token};
use testkit::rng::XorShift;

const CAPACITY: usize = 1 << 20;
const FILLED: usize = 1_000_000;
/// Inserts timed in one go before they are taken out again, untimed.
const CHUNK: usize = 40_000;

fn id_text(i: usize) -> String {
    format!("user-{i:08}")
}

fn entry(id: &IdBuf, i: usize, expires: Instant) -> Entry {
    let addr: SocketAddr = SocketAddr::from(([127, 0, (i >> 8) as u8, i as u8], 10_000));
    Entry {
        id: *id,
        addr,
        expires,
        lease: 120,
        owner: Owner::Token(Token(i as u64)),
        key: Some(proto_core::wire::PublicKey([i as u8; 32])),
        sub: Subscription::None,
        sub_seq: 0,
        sub_sent: Instant(0),
    }
}

/// Ids `0..n` as stored ids.
fn ids(n: usize) -> Vec<IdBuf> {
    (0..n)
        .map(|i| IdBuf::from_id(Id::new(&id_text(i)).expect("valid")))
        .collect()
}

/// A permutation of `0..n` that scatters accesses over the table.
fn scattered(n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut x = XorShift::default();
    for i in (1..n).rev() {
        v.swap(i, x.below(i as u64 + 1) as usize);
    }
    v
}

/// `iters` operations in rounds of at most [`CHUNK`]: `round(n)` does `n`
/// of them and returns how long its timed part took; the sum of those.
fn in_chunks(iters: u64, mut round: impl FnMut(usize) -> Duration) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let n = left.min(CHUNK);
        total += round(n);
        left -= n;
    }
    total
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

fn registry(c: &mut Criterion) {
    let mut slots = vec![Slot::EMPTY; CAPACITY];
    let mut index = vec![0u32; index_len_for(CAPACITY)];
    let mut reg = Registry::new(&mut slots, &mut index, [0x5a; 16]).expect("valid storage");
    let stored = ids(FILLED);
    let far = Instant::from_secs(1 << 30);
    for (i, id) in stored.iter().enumerate() {
        reg.insert(entry(id, i, far)).expect("room");
    }
    assert_eq!(reg.len(), FILLED);
    let order = scattered(FILLED);
    let probes: Vec<Id<'_>> = order
        .iter()
        .map(|&i| stored[i].as_id().expect("valid"))
        .collect();
    let fresh = ids(FILLED + 10 * CHUNK).split_off(FILLED);
    let missing: Vec<Id<'_>> = fresh.iter().map(|b| b.as_id().expect("valid")).collect();

    let mut g = c.benchmark_group("registry_1M");

    let mut at = 0usize;
    g.bench_function("lookup_hit", |b| {
        b.iter(|| {
            at = (at + 1) % probes.len();
            let h = reg.find(black_box(probes[at])).expect("stored");
            black_box(reg.get(h).addr)
        })
    });

    let mut at = 0usize;
    g.bench_function("lookup_miss", |b| {
        b.iter(|| {
            at = (at + 1) % missing.len();
            black_box(reg.find(black_box(missing[at])))
        })
    });

    // Insert a fresh id into the table of 1M (chunks of CHUNK timed, then
    // removed untimed so the table stays at 1M).
    g.bench_function("insert", |b| {
        b.iter_custom(|iters| {
            let mut handles = Vec::with_capacity(CHUNK);
            in_chunks(iters, |n| {
                let t = Clock::now();
                for (i, id) in fresh[..n].iter().enumerate() {
                    handles.push(reg.insert(entry(id, i, far)).expect("room"));
                }
                let took = t.elapsed();
                for h in handles.drain(..) {
                    reg.remove(h);
                }
                took
            })
        })
    });

    // Expire: the clock hand finds a lapsed lease and the entry is removed
    // (what `Server::tick` does per reclaimed registration). CHUNK entries
    // are made to lapse, reclaimed under the clock, and put back untimed.
    let past = Instant::from_secs(10);
    let now = Instant::from_secs(20);
    g.bench_function("expire", |b| {
        b.iter_custom(|iters| {
            in_chunks(iters, |n| {
                for (i, id) in fresh[..n].iter().enumerate() {
                    reg.insert(entry(id, i, past)).expect("room");
                }
                let t = Clock::now();
                let mut reclaimed = 0;
                while reclaimed < n {
                    // A budget like the server's tick: the hand walks past
                    // live entries to find the lapsed ones.
                    if let Some(h) = reg.next_expired(now, 4096) {
                        black_box(reg.remove(h));
                        reclaimed += 1;
                    }
                }
                t.elapsed()
            })
        })
    });
    g.finish();
    assert_eq!(reg.len(), FILLED, "the table is back where it started");
}

criterion_group! {
    name = benches;
    config = config();
    targets = registry
}
criterion_main!(benches);
