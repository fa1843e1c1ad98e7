//! `parley-server`: Parley's rendezvous server on one thread and one mio `Poll`.
//!
//! The protocol lives in `proto-core`; this crate adds the sockets, the
//! clock, the entropy, signals and metrics. The loop is mio's UDP example
//! grown up: readable -> drain until `WouldBlock` -> handle each datagram
//! -> tick -> flush. Memory is taken once, at start.
//!
//! Datagrams arrive on a socket the `Poll` watches for readable. On Linux
//! replies leave from a second socket bound to the same address, which
//! the `Poll` watches only while its send buffer is full: a watched socket
//! pays an epoll wake-up for every datagram it sends (see [`sockets`]).
//! Where the second socket cannot be had, one socket does both, watched
//! for writable too while replies wait.

pub mod cli;
mod metrics;
pub mod net;
pub mod prefetch;
pub mod sockets;
pub mod state;
mod stun_port;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant as StdInstant};

use mio::{Events, Interest, Poll, Token};
use proto_core::limit::{QuotaCell, RateCell};
use proto_core::registry::Slot;
use proto_core::server::{Layout, Server, Stats, Storage};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

pub use cli::Options;
use metrics::Metrics;
use net::{Received, RxBatch, TxRing};
use prefetch::Plans;
pub use sockets::Sockets;

const UDP: Token = Token(0);
const SIGNALS: Token = Token(1);
const METRICS: Token = Token(2);
/// The send socket, registered only while its buffer is full.
const SEND: Token = Token(3);
/// The STUN-only second port (`--stun-port2`).
const STUN2: Token = Token(4);
/// Tokens from here on are metrics connections.
const FIRST_CONN: usize = 16;

/// Datagrams the send queue holds while the socket would block.
const TX_QUEUE: usize = 4096;
/// Longest the loop sleeps without a deadline of its own.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// Least time between two calls of the core's `tick` while datagrams keep
/// coming (the core's own deadlines, fan-out rounds included, are always
/// kept). A tick has fixed costs (the clock, the fan-out round); run on
/// every wake-up under load, when each tick also swept 4096 slots, it cost
/// an eighth of the server's time at 1M ids (perf, lookup workload).
/// Presence changes wait at most this long for their round to start, next
/// to a 100 ms presence interval.
const TICK_EVERY: proto_core::time::Millis = proto_core::time::Millis(10);

/// Ways for an embedding program (and the tests) to watch and stop the loop.
#[derive(Default, Clone)]
pub struct Hooks {
    /// Called once with the bound address, before the first poll.
    pub on_ready: Option<Arc<dyn Fn(SocketAddr) + Send + Sync>>,
    /// Set to stop the loop at its next wake-up (as SIGTERM does).
    pub stop: Option<Arc<AtomicBool>>,
}

/// Counters this crate keeps beside the core's.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IoStats {
    /// Datagrams longer than the receive buffer, dropped unread.
    pub drop_oversized: u64,
    /// Datagrams the kernel refused to send.
    pub send_failed: u64,
    /// Times the send socket's buffer was full.
    pub send_blocked: u64,
}

/// Set up the `log` facade at `level` (`info` by default).
pub fn init_logging(level: &str) {
    let _ = env_logger::Builder::new()
        .parse_filters(level)
        .format_timestamp_millis()
        .try_init();
}

fn entropy() -> io::Result<[u8; 32]> {
    use std::io::Read;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    Ok(seed)
}

/// The tables for `capacity` registrations, allocated once and kept for
/// the life of the process.
fn allocate(capacity: usize) -> Storage<'static> {
    let l = Layout::for_capacity(capacity);
    Storage {
        slots: table(l.slots, Slot::EMPTY),
        index: table(l.index, 0u32),
        rate: table(l.rate, RateCell::EMPTY),
        quota: table(l.quota, QuotaCell::EMPTY),
    }
}

/// Tables at least this large are put on transparent huge pages.
#[cfg(target_os = "linux")]
const HUGE: usize = 2 << 20;

/// `n` copies of `value`, never freed. On Linux a large table gets its own
/// mapping marked `MADV_HUGEPAGE`: lookups land on random slots of a table
/// of hundreds of MiB, and with 4 KiB pages nearly every one of them also
/// missed the TLB (perf, lookup workload at 1M ids).
fn table<T: Copy>(n: usize, value: T) -> &'static mut [T] {
    #[cfg(target_os = "linux")]
    {
        let bytes = n.saturating_mul(std::mem::size_of::<T>());
        if bytes >= HUGE && std::mem::align_of::<T>() <= 4096 {
            // SAFETY: a fresh private anonymous mapping, checked for failure;
            // every element is written before the slice is made, and the
            // mapping is never unmapped, so the 'static slice stays valid.
            unsafe {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    bytes,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                if p != libc::MAP_FAILED {
                    // Advice only: without THP the table simply stays on small pages.
                    libc::madvise(p, bytes, libc::MADV_HUGEPAGE);
                    let t = p.cast::<T>();
                    for i in 0..n {
                        t.add(i).write(value);
                    }
                    return std::slice::from_raw_parts_mut(t, n);
                }
            }
        }
    }
    Vec::leak(vec![value; n])
}

/// Everything the loop owns.
struct Runtime {
    poll: Poll,
    sockets: Sockets,
    signals: Signals,
    metrics: Option<Metrics>,
    server: Server<'static>,
    rx: RxBatch,
    plans: Plans,
    tx: TxRing,
    io: IoStats,
    start: StdInstant,
    /// The core's clock when `start` was taken: 0 on a first start, the
    /// saved clock plus the downtime after a restart from `--state`.
    base: u64,
    /// The secret the core was built with, saved with `--state`.
    entropy: [u8; 32],
    /// Whether the `Poll` waits for the send socket to be writable.
    writable_armed: bool,
    stun2: Option<stun_port::StunPort>,
}

/// Bind `opts.bind` and run the server until SIGINT, SIGTERM or
/// `hooks.stop`; returns the final counters.
pub fn run(opts: &Options, hooks: Hooks) -> io::Result<(Stats, IoStats)> {
    let sockets = if opts.one_socket {
        Sockets::bind_one(opts.bind)?
    } else {
        Sockets::bind(opts.bind)?
    };
    run_on(sockets, opts, hooks)
}

/// Run the server on `sockets` (`opts.bind` is not used) until SIGINT,
/// SIGTERM or `hooks.stop`; returns the final counters.
pub fn run_on(sockets: Sockets, opts: &Options, hooks: Hooks) -> io::Result<(Stats, IoStats)> {
    let mut rt = Runtime::start(opts, sockets)?;
    let bound = rt.sockets.local_addr()?;
    log::info!(
        "listening on {bound} (capacity {}, {} MiB of tables{}{}, replies from {})",
        opts.capacity,
        cli::table_cost(opts.capacity) >> 20,
        if opts.config.strict { ", strict" } else { "" },
        if opts.config.limits {
            ""
        } else {
            ", no limits"
        },
        if rt.sockets.is_split() {
            "a separate socket"
        } else {
            "the receiving socket"
        },
    );
    if let Some(warning) = cli::exposure_warning(bound, opts.config.strict) {
        log::warn!("{warning}");
    }
    if let Some(port) = opts.stun_port2 {
        let p = stun_port::StunPort::bind(SocketAddr::new(bound.ip(), port), &rt.poll, STUN2)?;
        log::info!("STUN only also on {}", p.local_addr()?);
        rt.stun2 = Some(p);
    }
    if let Some(f) = &hooks.on_ready {
        f(bound);
    }
    let mut events = Events::with_capacity(256);
    let mut deadline = rt.now();
    let mut last_tick = rt.now();
    loop {
        let timeout = rt.until(deadline);
        if let Err(e) = rt.poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut stop = hooks
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed));
        if events.is_empty() {
            // A wake-up by timeout: read anyway, in case a datagram is left
            // behind a short batch (see `drain`). One empty read a tick.
            rt.drain()?;
        }
        for event in events.iter() {
            match event.token() {
                UDP => {
                    if event.is_readable() {
                        rt.drain()?;
                    }
                }
                // The flush below, as after every wake-up, sends what waits.
                SEND => {}
                SIGNALS => stop |= rt.signalled(),
                STUN2 => rt.drain_stun2()?,
                METRICS => rt.accept_metrics(),
                token => rt.metrics_event(token, event.is_readable(), event.is_writable()),
            }
        }
        let now = rt.now();
        if now >= deadline || now.since(last_tick) >= TICK_EVERY.0 {
            deadline = rt.tick();
            last_tick = now;
            // The loop wakes at least once a second (MAX_SLEEP), so idle
            // metrics connections are closed on time even when nothing
            // else happens, and those waiting in the backlog let in.
            rt.expire_metrics();
        } else {
            // Datagrams handled since the last tick may owe presence
            // updates: tick again within TICK_EVERY.
            deadline = deadline.min(last_tick + TICK_EVERY);
        }
        rt.flush()?;
        if stop {
            break;
        }
    }
    let stats = rt.server.stats().clone();
    log::info!("stopping: {}", summary(&stats, &rt.io));
    if let Some(path) = &opts.state {
        let t = StdInstant::now();
        let n = state::save(path, &rt.server, rt.now(), &rt.entropy)?;
        log::info!(
            "saved {n} ids to {} in {:.3} s",
            path.display(),
            t.elapsed().as_secs_f64()
        );
    }
    Ok((stats, rt.io))
}

/// One log line of the counters that matter most.
fn summary(s: &Stats, io: &IoStats) -> String {
    format!(
        "datagrams in {} out {}, bytes in {} out {}, occupancy {}/{}, registrations {}, expired {}, \
         fan-out sent {} deferred {}, drops: rate {} errors {} amplification {} strict {} queue {} oversized {}, \
         send failures {}",
        s.datagrams_in,
        s.datagrams_out,
        s.bytes_in,
        s.bytes_out,
        s.occupancy,
        s.capacity,
        s.registrations,
        s.expired,
        s.fanout_sent,
        s.fanout_deferred,
        s.drop_rate_limited,
        s.drop_error_limited,
        s.drop_amplification,
        s.drop_strict,
        s.drop_outbox_full,
        io.drop_oversized,
        io.send_failed,
    )
}

impl Runtime {
    fn start(opts: &Options, mut sockets: Sockets) -> io::Result<Self> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut sockets.rx, UDP, Interest::READABLE)?;
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let metrics = match opts.metrics {
            Some(addr) => Some(Metrics::bind(addr, &poll, METRICS, FIRST_CONN)?),
            None => None,
        };
        // A state file is read and checked before anything is allocated,
        // and one that cannot be used stops the server here.
        let loaded = match &opts.state {
            Some(path) => {
                state::check_writable(path)?;
                state::load(path)?
            }
            None => None,
        };
        let entropy = match &loaded {
            Some(l) => l.entropy,
            None => entropy()?,
        };
        let mut server = Server::new(opts.config.clone(), allocate(opts.capacity), entropy)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let start = StdInstant::now();
        let mut base = 0;
        if let (Some(l), Some(path)) = (&loaded, &opts.state) {
            let wall = state::wall_ms();
            let at = l.resume_at(wall);
            let fresh = self::entropy()?;
            let jump = u64::from_le_bytes(fresh[..8].try_into().unwrap_or([1; 8]));
            let r = l.restore_into(&mut server, at, opts.capacity, jump)?;
            base = at.0;
            log::info!(
                "restored {} ids from {} ({} leases had ended; down for {:.1} s)",
                r.live,
                path.display(),
                r.expired,
                wall.saturating_sub(l.saved_wall_ms) as f64 / 1000.0
            );
        }
        drop(loaded);
        Ok(Runtime {
            poll,
            sockets,
            signals,
            metrics,
            server,
            rx: RxBatch::new(),
            plans: Plans::default(),
            tx: TxRing::new(TX_QUEUE),
            io: IoStats::default(),
            start,
            base,
            entropy,
            writable_armed: false,
            stun2: None,
        })
    }

    fn drain_stun2(&mut self) -> io::Result<()> {
        let now = self.now();
        match &mut self.stun2 {
            Some(p) => p.drain(&mut self.server, now),
            None => Ok(()),
        }
    }

    fn now(&self) -> proto_core::Instant {
        proto_core::Instant(self.base + self.start.elapsed().as_millis() as u64)
    }

    fn until(&self, deadline: proto_core::Instant) -> Duration {
        Duration::from_millis(deadline.since(self.now())).min(MAX_SLEEP)
    }

    /// Read until the socket would block, handing each datagram to the core.
    fn drain(&mut self) -> io::Result<()> {
        loop {
            let n = match self.rx.recv(&self.sockets.rx) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors from earlier sends surface here on some
                // systems; they concern one peer, not the server.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            };
            let now = self.now();
            self.plans.plan(
                &self.server,
                self.rx.iter().map(|d| match d {
                    Received::Datagram(_, bytes) => Some(bytes),
                    Received::Oversized => None,
                }),
            );
            for (i, d) in self.rx.iter().enumerate() {
                let plan = self.plans.take(&self.server, i);
                match d {
                    Received::Datagram(src, bytes) => {
                        self.server
                            .handle_planned(now, src, bytes, plan, &mut self.tx)
                    }
                    Received::Oversized => self.io.drop_oversized += 1,
                }
            }
            // Each batch's replies leave before the next batch is read: the
            // clients get them, and send again, while the server works.
            // Holding them until the queue filled starved both sides in
            // turn (lookup +3% at 1M ids, 4 alternating pairs).
            self.flush()?;
            // A short batch emptied the queue. Datagrams arriving after it
            // raise a new edge, so the usual empty read that would end in
            // `WouldBlock` can be skipped: one system call less per wake-up.
            // (Where a call returns one datagram, none is short: drain on.)
            if n < self.rx.capacity() {
                return Ok(());
            }
        }
    }

    fn tick(&mut self) -> proto_core::Instant {
        let now = self.now();
        self.server
            .tick(now, &mut self.tx)
            .unwrap_or(now + proto_core::time::Millis(1000))
    }

    /// Send what is queued; if the send socket is full, ask to hear when
    /// it is not.
    fn flush(&mut self) -> io::Result<()> {
        if self.tx.is_empty() && !self.writable_armed {
            return Ok(());
        }
        let f = self.tx.flush(self.sockets.send_socket());
        self.io.send_failed += f.failed;
        if f.blocked {
            self.io.send_blocked += 1;
        }
        let want_writable = !self.tx.is_empty();
        if want_writable != self.writable_armed {
            self.watch_writable(want_writable)?;
        }
        Ok(())
    }

    /// Start or stop waiting for the send socket to be writable. A socket
    /// of its own is registered only for that wait, so the `Poll` hears
    /// nothing of its sends otherwise; a shared one keeps its registration
    /// for readable and changes its interest. Registering a socket that is
    /// writable already raises the event at once: no edge is missed.
    fn watch_writable(&mut self, on: bool) -> io::Result<()> {
        let registry = self.poll.registry();
        match (&mut self.sockets.tx, on) {
            (Some(tx), true) => registry.register(tx, SEND, Interest::WRITABLE)?,
            (Some(tx), false) => registry.deregister(tx)?,
            (None, true) => registry.reregister(
                &mut self.sockets.rx,
                UDP,
                Interest::READABLE | Interest::WRITABLE,
            )?,
            (None, false) => registry.reregister(&mut self.sockets.rx, UDP, Interest::READABLE)?,
        }
        self.writable_armed = on;
        Ok(())
    }

    fn signalled(&mut self) -> bool {
        let mut stop = false;
        for sig in self.signals.pending() {
            log::info!("signal {sig} received");
            stop = true;
        }
        stop
    }

    fn accept_metrics(&mut self) {
        if let Some(m) = &mut self.metrics {
            m.accept(&self.poll);
        }
    }

    fn expire_metrics(&mut self) {
        if let Some(m) = &mut self.metrics {
            m.expire(&self.poll);
        }
    }

    fn metrics_event(&mut self, token: Token, readable: bool, writable: bool) {
        if let Some(m) = &mut self.metrics {
            m.event(
                &self.poll,
                token,
                readable,
                writable,
                self.server.stats(),
                &self.io,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(sockets: Sockets) -> Runtime {
        let opts = Options {
            capacity: cli::MIN_CAPACITY,
            ..Options::default()
        };
        Runtime::start(&opts, sockets).unwrap()
    }

    /// The tokens of the writable events one poll of `wait` brings.
    fn writable(rt: &mut Runtime, wait: Duration) -> Vec<Token> {
        let mut events = Events::with_capacity(16);
        rt.poll.poll(&mut events, Some(wait)).unwrap();
        events
            .iter()
            .filter(|e| e.is_writable())
            .map(|e| e.token())
            .collect()
    }

    /// Queue 100 datagrams behind a send buffer of the least size: the
    /// first flush blocks, and each later one follows a writable event
    /// of the socket replies leave from, until all are out.
    #[cfg(target_os = "linux")]
    fn blocked_flush_resumes_on_writable(one_socket: bool) {
        let addr = "127.0.0.1:0".parse().unwrap();
        let sockets = if one_socket {
            Sockets::bind_one(addr)
        } else {
            Sockets::bind(addr)
        };
        let sockets = sockets.unwrap();
        assert_eq!(sockets.is_split(), !one_socket);
        socket2::SockRef::from(sockets.send_socket())
            .set_send_buffer_size(1)
            .unwrap();
        let mut rt = runtime(sockets);
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let to = sink.local_addr().unwrap();
        use proto_core::server::Outbox;
        for i in 0..100u8 {
            rt.tx.send(to, &[i; 100]).unwrap();
        }
        rt.flush().unwrap();
        assert!(rt.io.send_blocked > 0 && rt.writable_armed);
        let token = if one_socket { UDP } else { SEND };
        let mut wakeups = 0;
        while !rt.tx.is_empty() {
            assert_eq!(writable(&mut rt, Duration::from_secs(5)), [token]);
            rt.flush().unwrap();
            wakeups += 1;
            assert!(wakeups <= 100, "a wake-up that sent nothing");
        }
        assert!(!rt.writable_armed);
        assert_eq!(writable(&mut rt, Duration::from_millis(50)), []);
        let mut buf = [0u8; 128];
        for i in 0..100u8 {
            let (n, from) = sink.recv_from(&mut buf).unwrap();
            assert_eq!(
                (&buf[..n], from),
                (&[i; 100][..], rt.sockets.local_addr().unwrap())
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_blocked_flush_resumes_when_the_send_socket_drains() {
        for one_socket in [false, true] {
            if testkit::netns::on_thread(&[testkit::netns::SLOW_LOOPBACK], move || {
                blocked_flush_resumes_on_writable(one_socket)
            })
            .is_none()
            {
                eprintln!("cannot make a network namespace with a slow loopback here; skipping");
                return;
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_send_socket_is_watched_only_while_asked() {
        let mut rt = runtime(Sockets::bind("127.0.0.1:0".parse().unwrap()).unwrap());
        assert!(rt.sockets.is_split(), "this test needs the socket pair");
        let short = Duration::from_millis(50);
        assert_eq!(writable(&mut rt, short), []);
        rt.watch_writable(true).unwrap();
        assert_eq!(writable(&mut rt, Duration::from_secs(5)), [SEND]);
        rt.watch_writable(false).unwrap();
        // Sends raise no event once it is deregistered...
        let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = c.local_addr().unwrap();
        for _ in 0..10 {
            rt.sockets.send_socket().send_to(b"x", to).unwrap();
        }
        assert_eq!(writable(&mut rt, short), []);
        // ...and it can be registered again.
        rt.watch_writable(true).unwrap();
        assert_eq!(writable(&mut rt, Duration::from_secs(5)), [SEND]);
        rt.watch_writable(false).unwrap();
        assert_eq!(writable(&mut rt, short), []);
    }

    #[test]
    fn one_socket_is_watched_for_writable_by_its_interest() {
        let mut rt = runtime(Sockets::bind_one("127.0.0.1:0".parse().unwrap()).unwrap());
        assert!(!rt.sockets.is_split());
        let short = Duration::from_millis(50);
        assert_eq!(writable(&mut rt, short), []);
        rt.watch_writable(true).unwrap();
        assert_eq!(writable(&mut rt, Duration::from_secs(5)), [UDP]);
        rt.watch_writable(false).unwrap();
        assert_eq!(writable(&mut rt, short), []);
        // Still readable.
        let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        c.send_to(b"x", rt.sockets.local_addr().unwrap()).unwrap();
        let mut events = Events::with_capacity(16);
        rt.poll
            .poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert!(events.iter().any(|e| e.token() == UDP && e.is_readable()));
    }
}
