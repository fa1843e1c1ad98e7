//! The protocol core's cost per request, without the kernel: `LOOKUP` of
//! random ids handled the way parley-server handles a received batch
//! (`Plans::plan` over the batch, then `Plans::take` and
//! `Server::handle_planned` for each).
//!
//! `cargo bench -p benches --bench server`, in ns per request (divide the
//! time of a batch by 48). The tables are sized as `benches/run` sizes the
//! server's (the ids plus 65536) and put on transparent huge pages as
//! parley-server does, so the 1M case sees the same cache and TLB misses
//! as the real server. What the kernel adds per
//! datagram is measured by `benches/run`, not here.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parley_loadgen::msg::{IdKind, IdRef, Req, write_req};
use parley_server::prefetch::Plans;
use proto_core::Instant;
use proto_core::limit::{QuotaCell, RateCell};
use proto_core::registry::Slot;
use proto_core::server::{Config, Layout, Outbox, OutboxFull, Server, Storage};
use testkit::rng::XorShift;

/// Datagrams per batch, about what one `recvmmsg` returns under load.
const BATCH: usize = 48;
const _: () = assert!(BATCH <= parley_server::net::BATCH);
const PREFIX: &[u8] = b"lg";

/// An outbox that keeps only a checksum of what it was given.
#[derive(Default)]
struct Sink {
    sent: u64,
    found: u64,
    bytes: u64,
}

impl Outbox for Sink {
    fn send(&mut self, _dst: SocketAddr, payload: &[u8]) -> Result<(), OutboxFull> {
        self.sent += 1;
        self.found += u64::from(payload.starts_with(b"AT "));
        self.bytes += payload.len() as u64;
        Ok(())
    }
}

/// `n` elements of `value` in memory that asked for huge pages first.
fn table<T: Copy>(n: usize, value: T) -> &'static mut [T] {
    let mut v: Vec<T> = Vec::with_capacity(n);
    #[cfg(target_os = "linux")]
    {
        let start = v.as_ptr() as usize;
        let bytes = n * std::mem::size_of::<T>();
        let huge = 2 << 20;
        let from = start.next_multiple_of(huge);
        let to = (start + bytes) & !(huge - 1);
        if to > from {
            // SAFETY: advice on memory this Vec owns and has not touched yet.
            unsafe { libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE) };
        }
    }
    v.resize(n, value);
    Vec::leak(v)
}

fn prefilled(n: u32) -> IdRef {
    IdRef {
        kind: IdKind::Prefill,
        n,
    }
}

/// A server of `capacity` slots holding ids `0..filled`, and a cookie for `src`.
fn filled_server(capacity: usize, filled: u32, src: SocketAddr) -> (Server<'static>, u64) {
    let l = Layout::for_capacity(capacity);
    let storage = Storage {
        slots: table(l.slots, Slot::EMPTY),
        index: table(l.index, 0u32),
        rate: table(l.rate, RateCell::EMPTY),
        quota: table(l.quota, QuotaCell::EMPTY),
    };
    let cfg = Config {
        limits: false,
        ..Config::default()
    };
    let mut server = Server::new(cfg, storage, [7; 32]).expect("a valid layout");
    let now = Instant(1000);
    let mut out = proto_core::server::VecOutbox::<4>::new();
    let mut buf = [0u8; 256];
    let n = write_req(&mut buf, PREFIX, Req::Hello, 1, 0).expect("fits");
    server.handle(now, src, &buf[..n], &mut out);
    let (_, reply) = out.pop().expect("a COOKIE reply");
    let text = std::str::from_utf8(&reply).expect("text");
    let cookie = u64::from_str_radix(text.split(' ').nth(2).expect("a cookie"), 16).expect("hex");
    let mut sink = Sink::default();
    for i in 0..filled {
        let n = write_req(&mut buf, PREFIX, Req::Reg(prefilled(i), 3600), 2, cookie).expect("fits");
        server.handle(now, src, &buf[..n], &mut sink);
    }
    assert_eq!(
        server.stats().occupancy,
        u64::from(filled),
        "every id registered"
    );
    (server, cookie)
}

/// Batches of `LOOKUP` datagrams of scattered ids below `filled`.
fn lookups(filled: u32, cookie: u64, batches: usize) -> Vec<Vec<Vec<u8>>> {
    let mut x = XorShift::default();
    (0..batches)
        .map(|b| {
            (0..BATCH)
                .map(|i| {
                    let id = prefilled(x.below(u64::from(filled)) as u32);
                    let mut buf = [0u8; 256];
                    let tx = (b * BATCH + i) as u64;
                    let n = write_req(&mut buf, PREFIX, Req::Lookup(id), tx, cookie).expect("fits");
                    buf[..n].to_vec()
                })
                .collect()
        })
        .collect()
}

fn lookup(c: &mut Criterion) {
    let src: SocketAddr = "127.0.1.1:40000".parse().expect("an address");
    let mut g = c.benchmark_group("server");
    g.throughput(Throughput::Elements(BATCH as u64));
    // Sized as benches/run starts parley-server: the ids plus 65536.
    for (name, filled) in [("lookup_10k", 10_000u32), ("lookup_1M", 1_000_000)] {
        let capacity = filled as usize + 65_536;
        let (mut server, cookie) = filled_server(capacity, filled, src);
        let batches = lookups(filled, cookie, 4096);
        let mut sink = Sink::default();
        let mut plans = Plans::default();
        let mut k = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                let batch = &batches[k % batches.len()];
                k += 1;
                plans.plan(&server, batch.iter().map(|d| Some(&d[..])));
                for (i, d) in batch.iter().enumerate() {
                    let plan = plans.take(&server, i);
                    server.handle_planned(Instant(2000), src, d, plan, &mut sink);
                }
            })
        });
        // Every lookup was answered, and with the id found.
        assert_eq!(sink.found, sink.sent, "every LOOKUP found its id");
        black_box(sink.bytes);
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = lookup
}
criterion_main!(benches);
