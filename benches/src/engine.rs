//! The generator: lanes of connected sockets, a window of in-flight
//! requests per lane, phases (cookies, prefill, subscribe, measure, verify),
//! one thread that never sleeps while there is work.
//!
//! Every request occupies a slot of its lane until its reply arrives or its
//! timeout passes; the slot's number and generation are the transaction id,
//! so a reply finds its request in O(1) and a late reply to a reused slot
//! is counted as late, never as a success. Seed replies carry no
//! transaction id and are matched in order per lane.

use std::collections::VecDeque;
use std::io;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use proto_core::wire::ErrorCode;

use crate::cli::{Proto, RunOpts, Workload};
use crate::msg::{self, Answer, IdKind, IdRef, Req, Rx};
use crate::net::{self, BATCH, Batch};
use crate::report::{Counters, PhaseCounts, Report};

/// What a slot is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Hello,
    Prefill(u32),
    Sub(u32),
    /// A lookup of a prefilled id; `must`: it was acknowledged.
    Lookup(u32, bool),
    Fresh(u32),
    ActorReg(u32),
    ActorQuit(u32),
    ActorCheck(u32),
    Verify(u32),
    Stats,
    /// A STUN Binding request.
    Stun,
    /// Register relay end 0 or 1 of the lane.
    RelayReg(u8),
    /// Ask for the lane's relay session as end 0 or 1.
    RelayAsk(u8),
    /// A relay frame, forwarded back to the lane (both ends are its socket).
    Relay,
}

#[derive(Clone, Copy)]
struct Slot {
    generation: u32,
    busy: bool,
    measured: bool,
    sent: Instant,
    op: Op,
}

struct Lane {
    sock: UdpSocket,
    slots: Vec<Slot>,
    free: Vec<u16>,
    /// Seed replies are matched in order: (slot, generation) in send order.
    fifo: VecDeque<(u16, u32)>,
    cookie: Option<u64>,
    cookie_at: Instant,
    hello_pending: bool,
    /// Requests this lane has been due to send (open loop).
    issued: u64,
    /// This lane's next prefill / subscribe / verify index (stride = lanes).
    next: u64,
    /// The lane's relay session (relay workload).
    relay: RelayLane,
}

/// A lane's relay session: both ends are ids registered from the lane's
/// own socket, so the server forwards each frame back to it.
#[derive(Clone, Copy, Debug, Default)]
struct RelayLane {
    tokens: [Option<u64>; 2],
    asked: [bool; 2],
    channel: Option<u64>,
    pending: bool,
}

impl Lane {
    fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ActorState {
    Out,
    In,
    Checked,
}

#[derive(Clone, Copy)]
struct Actor {
    n: u32,
    token: u64,
    state: ActorState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Hello,
    Relay,
    Prefill,
    Subscribe,
    Measure,
    Verify,
    Stats,
}

/// Runs one load test.
pub struct Engine {
    o: RunOpts,
    lanes: Vec<Lane>,
    batch: Batch,
    /// What each queued datagram of the batch is: a slot, or `NO_SLOT`.
    batch_slot: [u16; BATCH],
    rng: u64,
    start: Instant,
    phase: Phase,
    phase_start: Instant,
    /// When the measured phase started and stopped sending.
    measure_start: Option<Instant>,
    measure_end: Option<Instant>,
    c: Counters,
    rtt: Histogram<u64>,
    lookup_rtt: Histogram<u64>,
    prefill: PhaseCounts,
    subscribe: PhaseCounts,
    verify: PhaseCounts,
    /// Prefilled ids the server acknowledged, one bit each.
    prefill_acked: Vec<u64>,
    /// Owner tokens of the prefilled ids that will subscribe.
    sub_tokens: Vec<u64>,
    fresh_next: u32,
    fresh_acked: Vec<u32>,
    actors: Vec<Actor>,
    idle: VecDeque<u32>,
    actor_next_id: u32,
    stats_body: Option<Vec<(String, u64)>>,
    events_first: Option<Instant>,
    events_last: Option<Instant>,
    last_progress: Instant,
    last_scan: Instant,
    /// When a request was last answered (or the phase began).
    last_answer: Instant,
}

const NO_SLOT: u16 = u16::MAX;

fn rtt_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(100, 60_000_000_000, 3).expect("valid histogram bounds")
}

impl Engine {
    /// Open the lanes.
    pub fn new(o: RunOpts) -> io::Result<Engine> {
        let mut lanes = Vec::with_capacity(o.lanes);
        let now = Instant::now();
        for i in 0..o.lanes {
            let ip = net::lane_ip(o.first_addr, &o.target, i)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let sock = net::lane_socket(ip, o.target)?;
            let slots = vec![
                Slot {
                    generation: 0,
                    busy: false,
                    measured: false,
                    sent: now,
                    op: Op::Stats,
                };
                o.window
            ];
            lanes.push(Lane {
                sock,
                slots,
                free: (0..o.window as u16).rev().collect(),
                fifo: VecDeque::new(),
                cookie: None,
                cookie_at: now,
                hello_pending: false,
                issued: 0,
                next: i as u64,
                relay: RelayLane::default(),
            });
        }
        let actors = o.lanes * o.window;
        let bits = (o.table as usize).div_ceil(64);
        Ok(Engine {
            lanes,
            batch: Batch::default(),
            batch_slot: [NO_SLOT; BATCH],
            rng: o.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            start: now,
            phase: Phase::Hello,
            phase_start: now,
            measure_start: None,
            measure_end: None,
            c: Counters::default(),
            rtt: rtt_hist(),
            lookup_rtt: rtt_hist(),
            prefill: PhaseCounts::default(),
            subscribe: PhaseCounts::default(),
            verify: PhaseCounts::default(),
            prefill_acked: vec![0; bits],
            sub_tokens: vec![0; o.subscribers as usize],
            fresh_next: 0,
            fresh_acked: Vec::new(),
            actors: (0..actors as u32)
                .map(|n| Actor {
                    n,
                    token: 0,
                    state: ActorState::Out,
                })
                .collect(),
            idle: (0..actors as u32).collect(),
            actor_next_id: actors as u32,
            stats_body: None,
            events_first: None,
            events_last: None,
            last_progress: now,
            last_scan: now,
            last_answer: now,
            o,
        })
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn ext(&self) -> bool {
        self.o.proto == Proto::Ext
    }

    fn acked(&self, n: u32) -> bool {
        self.prefill_acked
            .get(n as usize / 64)
            .is_some_and(|w| w >> (n % 64) & 1 == 1)
    }

    /// Run every phase and report.
    pub fn run(mut self) -> io::Result<Report> {
        let phases: &[Phase] = &[
            Phase::Hello,
            Phase::Relay,
            Phase::Prefill,
            Phase::Subscribe,
            Phase::Measure,
            Phase::Verify,
            Phase::Stats,
        ];
        for &p in phases {
            if self.skip(p) {
                continue;
            }
            self.phase = p;
            self.phase_start = Instant::now();
            self.last_answer = self.phase_start;
            if p == Phase::Measure {
                self.measure_start = Some(self.phase_start);
            }
            for (i, l) in self.lanes.iter_mut().enumerate() {
                l.next = i as u64;
                l.issued = 0;
            }
            self.pump()?;
            if p == Phase::Hello && self.lanes.iter().any(|l| l.cookie.is_none()) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no COOKIE from {} for every lane: is parley-server running there?",
                        self.o.target
                    ),
                ));
            }
            if p == Phase::Relay && self.lanes.iter().any(|l| l.relay.channel.is_none()) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no relay session from {} for every lane", self.o.target),
                ));
            }
        }
        Ok(self.report())
    }

    fn skip(&self, p: Phase) -> bool {
        let echo = self.o.echo;
        match p {
            Phase::Hello => !self.ext() && self.o.table == 0 && self.o.workload != Workload::Relay,
            Phase::Relay => echo || self.o.workload != Workload::Relay,
            Phase::Prefill => echo || self.o.table == 0,
            Phase::Subscribe => echo || self.o.subscribers == 0,
            Phase::Measure => false,
            Phase::Verify => {
                echo || !self.o.verify
                    || !matches!(self.o.workload, Workload::Register | Workload::Mixed)
            }
            Phase::Stats => echo || !self.ext(),
        }
    }

    /// Whether the seed's verbs are in use for this phase's requests.
    fn seed_phase(&self) -> bool {
        self.o.proto == Proto::Seed && matches!(self.phase, Phase::Measure | Phase::Verify)
    }

    /// Send and receive until the phase is done.
    fn pump(&mut self) -> io::Result<()> {
        let mut idle_since: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let mut busy = false;
            for li in 0..self.lanes.len() {
                busy |= self.recv_lane(li, now)?;
                busy |= self.fill_lane(li, now)?;
            }
            if now.duration_since(self.last_scan) >= Duration::from_millis(2) {
                self.last_scan = now;
                self.expire(now);
            }
            if now.duration_since(self.last_progress) >= Duration::from_secs(1) {
                self.last_progress = now;
                self.progress(now);
            }
            if self.phase_done(now) {
                return Ok(());
            }
            // Requests keep going out and nothing comes back: the server
            // is gone. Stop rather than time out a million requests one by one.
            let silent = now.duration_since(self.last_answer);
            if silent > (self.o.timeout * 3).max(Duration::from_secs(5))
                && self.lanes.iter().any(|l| l.in_flight() > 0)
            {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no answer from {} for {:.1} s (phase {:?}): the server stopped answering",
                        self.o.target,
                        silent.as_secs_f64(),
                        self.phase
                    ),
                ));
            }
            // Nothing moved: the server is slow or gone. Spin a while (the
            // generator has its own core), then stop burning it.
            if busy {
                idle_since = None;
            } else {
                let since = *idle_since.get_or_insert(now);
                if now.duration_since(since) > Duration::from_millis(20) {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }

    fn stopped_sending(&self, now: Instant) -> bool {
        match self.phase {
            Phase::Measure => {
                now.duration_since(self.phase_start) >= self.o.duration
                    || self.o.count.is_some_and(|c| self.c.sent >= c)
            }
            Phase::Hello => self.lanes.iter().all(|l| l.cookie.is_some()),
            Phase::Relay => {
                self.lanes.iter().all(|l| l.relay.asked == [true; 2])
                    || now.duration_since(self.phase_start) > Duration::from_secs(10)
            }
            Phase::Prefill => self.lanes.iter().all(|l| l.next >= u64::from(self.o.table)),
            Phase::Subscribe => self
                .lanes
                .iter()
                .all(|l| l.next >= u64::from(self.o.subscribers)),
            Phase::Verify => self
                .lanes
                .iter()
                .all(|l| l.next >= self.fresh_acked.len() as u64),
            Phase::Stats => self.stats_body.is_some(),
        }
    }

    fn phase_done(&mut self, now: Instant) -> bool {
        if self.phase == Phase::Hello {
            // Retry HELLOs until every lane has a cookie, for a while.
            if self.lanes.iter().all(|l| l.cookie.is_some()) {
                return true;
            }
            return now.duration_since(self.phase_start) > Duration::from_secs(5);
        }
        if self.phase == Phase::Stats {
            return self.stats_body.is_some()
                || now.duration_since(self.phase_start) > self.o.timeout * 3;
        }
        if !self.stopped_sending(now) {
            return false;
        }
        if self.phase == Phase::Measure && self.measure_end.is_none() {
            self.measure_end = Some(now);
        }
        // Wait for what is in flight; the timeout scan frees lost slots.
        self.lanes.iter().all(|l| l.in_flight() == 0)
    }

    fn progress(&self, now: Instant) {
        if self.o.quiet {
            return;
        }
        let t = now.duration_since(self.phase_start).as_secs_f64();
        let line = match self.phase {
            Phase::Hello => format!(
                "cookies: {} lanes of {}",
                self.lanes.iter().filter(|l| l.cookie.is_some()).count(),
                self.lanes.len()
            ),
            Phase::Relay => format!(
                "relay sessions: {} lanes of {}",
                self.lanes
                    .iter()
                    .filter(|l| l.relay.channel.is_some())
                    .count(),
                self.lanes.len()
            ),
            Phase::Prefill => format!(
                "prefill: {} of {} acknowledged, {} refused, {} lost",
                self.prefill.ok, self.o.table, self.prefill.failed, self.prefill.lost
            ),
            Phase::Subscribe => {
                format!("subscribe: {} of {}", self.subscribe.ok, self.o.subscribers)
            }
            Phase::Measure => format!(
                "{}: sent {} replies {} ({:.0}/s) lost {} events {}",
                self.o.workload.name(),
                self.c.sent,
                self.c.replies,
                self.c.replies as f64 / t.max(1e-9),
                self.c.lost,
                self.c.unsolicited
            ),
            Phase::Verify => format!(
                "verify: {} of {} found, {} missing",
                self.verify.ok,
                self.fresh_acked.len(),
                self.verify.failed
            ),
            Phase::Stats => "stats".into(),
        };
        eprintln!(
            "[{:6.1}s] {line}",
            now.duration_since(self.start).as_secs_f64()
        );
    }

    /// Receive and match everything waiting on lane `li`.
    fn recv_lane(&mut self, li: usize, now: Instant) -> io::Result<bool> {
        let mut any = false;
        loop {
            let n = self.batch.recv(&self.lanes[li].sock)?;
            if n == 0 {
                return Ok(any);
            }
            any = true;
            // Lend the buffers out so a reply can be handled in place.
            let rx = std::mem::take(&mut self.batch.rx);
            for (i, buf) in rx.iter().enumerate().take(n) {
                let len = self.batch.rx_len[i].min(buf.len());
                self.on_datagram(li, &buf[..len], now);
            }
            self.batch.rx = rx;
            if n < BATCH {
                return Ok(any);
            }
        }
    }

    fn on_datagram(&mut self, li: usize, d: &[u8], now: Instant) {
        let measuring = self.phase == Phase::Measure;
        match msg::classify(d) {
            Rx::Answer { tx, what } => {
                let (slot, generation) = msg::split_txid(tx);
                let lane = &mut self.lanes[li];
                let ok = lane
                    .slots
                    .get(slot as usize)
                    .is_some_and(|s| s.busy && s.generation == generation);
                if !ok {
                    self.c.late += 1;
                    return;
                }
                self.complete(li, slot, what, now);
            }
            Rx::SeedPeer | Rx::SeedNoPeer => {
                let found = matches!(msg::classify(d), Rx::SeedPeer);
                loop {
                    let Some((slot, generation)) = self.lanes[li].fifo.pop_front() else {
                        self.c.late += 1;
                        return;
                    };
                    let s = self.lanes[li].slots[slot as usize];
                    if s.busy && s.generation == generation {
                        let what = if found {
                            Answer::At(b"")
                        } else {
                            Answer::Error(ErrorCode::NoSuchId)
                        };
                        self.complete(li, slot, what, now);
                        return;
                    }
                }
            }
            Rx::Unsolicited => {
                if measuring {
                    self.c.unsolicited += 1;
                    self.events_first.get_or_insert(now);
                    self.events_last = Some(now);
                }
            }
            Rx::AnonError(_) => {
                if measuring {
                    self.c.anon_errors += 1;
                }
            }
            Rx::Unknown => self.c.unknown += 1,
        }
    }

    fn free_slot(&mut self, li: usize, slot: u16) -> Slot {
        let lane = &mut self.lanes[li];
        let s = &mut lane.slots[slot as usize];
        let copy = *s;
        s.busy = false;
        s.generation = s.generation.wrapping_add(1);
        lane.free.push(slot);
        copy
    }

    fn count_error(&mut self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|x| *x == code) {
            self.c.errors[i] += 1;
        }
    }

    /// A reply matched slot `slot` of lane `li`.
    fn complete(&mut self, li: usize, slot: u16, what: Answer<'_>, now: Instant) {
        self.last_answer = now;
        let s = self.free_slot(li, slot);
        let echo = matches!(what, Answer::Echo);
        if let Answer::Error(ErrorCode::BadCookie) = what {
            self.lanes[li].cookie = None;
        }
        if s.measured {
            self.c.replies += 1;
            let ns = now.duration_since(s.sent).as_nanos() as u64;
            let _ = self.rtt.record(ns.max(100));
            if matches!(s.op, Op::Lookup(..)) {
                self.c.lookup_replies += 1;
                let _ = self.lookup_rtt.record(ns.max(100));
            }
            if let Answer::Error(code) = what {
                self.count_error(code);
            }
        }
        let no_such = matches!(what, Answer::Error(ErrorCode::NoSuchId));
        match s.op {
            Op::Hello => {
                let lane = &mut self.lanes[li];
                lane.hello_pending = false;
                match what {
                    Answer::Cookie(c) => {
                        lane.cookie = Some(c);
                        lane.cookie_at = now;
                    }
                    Answer::Echo => {
                        lane.cookie = Some(0);
                        lane.cookie_at = now;
                    }
                    _ => {}
                }
            }
            Op::Prefill(n) => match what {
                Answer::Registered(t) => {
                    self.prefill.ok += 1;
                    self.prefill_acked[n as usize / 64] |= 1 << (n % 64);
                    if let Some(slot) = self.sub_tokens.get_mut(n as usize) {
                        *slot = t;
                    }
                }
                _ => self.prefill.failed += 1,
            },
            Op::Sub(_) => match what {
                Answer::Subscribed => self.subscribe.ok += 1,
                _ => self.subscribe.failed += 1,
            },
            Op::Lookup(n, must) => match what {
                Answer::At(got) => {
                    let id = IdRef {
                        kind: IdKind::Prefill,
                        n,
                    };
                    if got.is_empty() || msg::same_id(got, self.o.prefix.as_bytes(), id) {
                        self.c.found += 1;
                    } else {
                        self.c.wrong += 1;
                    }
                }
                Answer::Echo => {}
                _ if no_such && must => {
                    self.c.missing += 1;
                    self.c.lost_registrations += 1;
                }
                _ if no_such => self.c.not_registered += 1,
                _ => {}
            },
            Op::Fresh(n) => match what {
                Answer::Registered(_) => {
                    self.c.registered += 1;
                    self.fresh_acked.push(n);
                }
                Answer::Echo => self.c.registered += 1,
                _ => {}
            },
            Op::ActorReg(a) => {
                match what {
                    Answer::Registered(t) => {
                        self.c.registered += 1;
                        let actor = &mut self.actors[a as usize];
                        actor.token = t;
                        actor.state = ActorState::In;
                    }
                    Answer::Echo => self.actors[a as usize].state = ActorState::In,
                    // Someone holds the id (a lost REG got through): start afresh.
                    _ => self.retire(a),
                }
                self.idle.push_back(a);
            }
            Op::ActorQuit(a) => {
                match what {
                    Answer::Bye | Answer::Echo => {
                        self.c.quits += 1;
                        self.actors[a as usize].state = ActorState::Out;
                    }
                    _ if no_such => {
                        self.c.lost_registrations += 1;
                        self.retire(a);
                    }
                    _ => self.retire(a),
                }
                self.idle.push_back(a);
            }
            Op::ActorCheck(a) => {
                match what {
                    Answer::At(_) | Answer::Echo => {
                        self.c.found += 1;
                        self.actors[a as usize].state = ActorState::Checked;
                    }
                    _ if no_such => {
                        self.c.missing += 1;
                        self.c.lost_registrations += 1;
                        self.retire(a);
                    }
                    _ => {}
                }
                self.idle.push_back(a);
            }
            Op::Verify(_) => match what {
                Answer::At(_) => self.verify.ok += 1,
                _ if no_such => self.verify.failed += 1,
                _ => self.verify.other += 1,
            },
            Op::RelayReg(k) => {
                let r = &mut self.lanes[li].relay;
                r.pending = false;
                if let Answer::Registered(t) = what {
                    r.tokens[k as usize] = Some(t);
                }
            }
            Op::RelayAsk(k) => {
                let r = &mut self.lanes[li].relay;
                r.pending = false;
                if let Answer::RelayChannel(ch) = what {
                    r.asked[k as usize] = true;
                    r.channel = Some(ch);
                }
            }
            Op::Relay => match what {
                Answer::Relayed => self.c.found += 1,
                _ => self.c.wrong += 1,
            },
            Op::Stun => match what {
                Answer::Mapped => self.c.found += 1,
                Answer::Echo => {}
                _ => self.c.wrong += 1,
            },
            Op::Stats => {
                if let Answer::Stats(body) = what {
                    self.stats_body = Some(body.iter().map(|(k, v)| (k.to_string(), v)).collect());
                }
            }
        }
        let _ = echo;
    }

    /// Give actor `a` a new id: the state of its old one is unknown.
    fn retire(&mut self, a: u32) {
        let n = self.actor_next_id;
        self.actor_next_id += 1;
        self.actors[a as usize] = Actor {
            n,
            token: 0,
            state: ActorState::Out,
        };
    }

    /// Free the slots whose timeout passed.
    fn expire(&mut self, now: Instant) {
        let timeout = self.o.timeout;
        for li in 0..self.lanes.len() {
            for slot in 0..self.lanes[li].slots.len() {
                let s = self.lanes[li].slots[slot];
                if !s.busy || now.duration_since(s.sent) < timeout {
                    continue;
                }
                self.free_slot(li, slot as u16);
                if s.measured {
                    self.c.lost += 1;
                }
                match s.op {
                    Op::Hello => self.lanes[li].hello_pending = false,
                    Op::Prefill(_) => self.prefill.lost += 1,
                    Op::Sub(_) => self.subscribe.lost += 1,
                    Op::Verify(_) => self.verify.lost += 1,
                    Op::ActorReg(a) | Op::ActorQuit(a) | Op::ActorCheck(a) => {
                        self.retire(a);
                        self.idle.push_back(a);
                    }
                    Op::RelayReg(_) | Op::RelayAsk(_) => self.lanes[li].relay.pending = false,
                    Op::Lookup(..) | Op::Fresh(_) | Op::Stats | Op::Stun | Op::Relay => {}
                }
            }
        }
    }

    /// How many requests lane `li` may send now.
    fn allowance(&mut self, li: usize, now: Instant) -> usize {
        let free = self.lanes[li].free.len();
        if self.phase != Phase::Measure {
            return free;
        }
        let Some(rate) = self.o.rate else {
            return free;
        };
        let elapsed = now.duration_since(self.phase_start).as_nanos();
        let lanes = self.lanes.len() as u128;
        // This lane's share of the offered load, due by now.
        let due = (elapsed * u128::from(rate) / lanes / 1_000_000_000) as u64;
        let lane = &mut self.lanes[li];
        let owed = due.saturating_sub(lane.issued) as usize;
        if owed > free {
            // The window is full: these requests are not offered at all.
            self.c.window_full += (owed - free) as u64;
            lane.issued += (owed - free) as u64;
        }
        owed.min(free)
    }

    /// Queue requests for lane `li` and send them in one call.
    fn fill_lane(&mut self, li: usize, now: Instant) -> io::Result<bool> {
        if self.stopped_sending(now) {
            return Ok(false);
        }
        let mut room = self.allowance(li, now).min(BATCH);
        // Set-up phases speak the extended protocol whatever --proto says.
        let ext = !self.seed_phase();
        let needs_cookie = ext && self.phase != Phase::Hello;
        if ext {
            let lane = &self.lanes[li];
            let stale = lane.cookie.is_none()
                || now.duration_since(lane.cookie_at) >= self.o.cookie_refresh;
            if stale
                && !lane.hello_pending
                && !lane.free.is_empty()
                && (room > 0 || self.phase == Phase::Hello)
            {
                self.queue(li, Op::Hello, now);
                self.lanes[li].hello_pending = true;
                room = room.saturating_sub(1);
            }
        }
        if needs_cookie && self.lanes[li].cookie.is_none() {
            return self.flush(li, now);
        }
        while room > 0 && self.batch.tx_n < BATCH && !self.lanes[li].free.is_empty() {
            if self.phase == Phase::Measure && self.o.count.is_some_and(|c| self.c.sent >= c) {
                break;
            }
            let Some(op) = self.next_op(li) else {
                break;
            };
            room -= 1;
            match op {
                Next::Slot(op) => self.queue(li, op, now),
                Next::Fire(req) => self.queue_fire(li, req),
            }
            if self.phase == Phase::Measure {
                self.c.sent += 1;
                self.lanes[li].issued += 1;
                if self.o.garbage_per_mille > 0
                    && self.batch.tx_n < BATCH
                    && self.rand() % 1000 < u64::from(self.o.garbage_per_mille)
                {
                    let r = self.rand();
                    let i = self.batch.tx_n;
                    self.batch.tx_len[i] = msg::garbage(&mut self.batch.tx[i], r);
                    self.batch_slot[i] = NO_SLOT;
                    self.batch.tx_n += 1;
                    self.c.garbage += 1;
                }
            }
        }
        self.flush(li, now)
    }

    fn flush(&mut self, li: usize, _now: Instant) -> io::Result<bool> {
        let queued = self.batch.tx_n;
        if queued == 0 {
            return Ok(false);
        }
        let sent = self.batch.send(&self.lanes[li].sock)?;
        // What the kernel would not take was never sent: free its slots.
        for i in sent..queued {
            let slot = self.batch_slot[i];
            if slot != NO_SLOT {
                let s = self.free_slot(li, slot);
                if s.op == Op::Hello {
                    self.lanes[li].hello_pending = false;
                }
                if s.measured {
                    self.c.sent -= 1;
                    self.c.send_failed += 1;
                }
                if let Op::ActorReg(a) | Op::ActorQuit(a) | Op::ActorCheck(a) = s.op {
                    self.idle.push_back(a);
                }
            }
        }
        Ok(true)
    }

    /// Put a request that occupies a slot into the batch.
    fn queue(&mut self, li: usize, op: Op, now: Instant) {
        let seed = self.seed_phase();
        let prefix = std::mem::take(&mut self.o.prefix);
        let lease = self.o.lease;
        let lane = &mut self.lanes[li];
        let Some(slot) = lane.free.pop() else {
            self.o.prefix = prefix;
            return;
        };
        let cookie = lane.cookie.unwrap_or(0);
        let relay = lane.relay;
        let s = &mut lane.slots[slot as usize];
        let tx = msg::txid(slot, s.generation);
        let actor = |a: u32| IdRef {
            kind: IdKind::Actor,
            n: self.actors[a as usize].n,
        };
        let token = |a: u32| self.actors[a as usize].token;
        let prefilled = |n| IdRef {
            kind: IdKind::Prefill,
            n,
        };
        let fresh = |n| IdRef {
            kind: IdKind::Fresh,
            n,
        };
        let req = match op {
            Op::Hello => Req::Hello,
            Op::Prefill(n) => Req::Reg(prefilled(n), lease),
            Op::Sub(n) => Req::Sub(prefilled(n), self.sub_tokens[n as usize]),
            Op::Lookup(n, _) if seed => Req::SeedPeer(prefilled(n)),
            Op::Lookup(n, _) => Req::Lookup(prefilled(n)),
            Op::Fresh(n) => Req::Reg(fresh(n), lease),
            Op::ActorReg(a) => Req::Reg(actor(a), lease),
            Op::ActorQuit(a) => Req::Quit(actor(a), token(a)),
            Op::ActorCheck(a) => Req::Lookup(actor(a)),
            Op::Verify(n) if seed => Req::SeedPeer(fresh(n)),
            Op::Verify(n) => Req::Lookup(fresh(n)),
            Op::Stats => Req::Stats,
            Op::Stun => Req::Stun,
            Op::RelayReg(k) => Req::Reg(relay_end(li, k), lease),
            Op::RelayAsk(k) => Req::Relay(
                relay_end(li, k),
                relay.tokens[k as usize].unwrap_or(0),
                relay_end(li, 1 - k),
            ),
            Op::Relay => Req::Frame(relay.channel.unwrap_or(0)),
        };
        let i = self.batch.tx_n;
        let Some(len) = msg::write_req(&mut self.batch.tx[i], prefix.as_bytes(), req, tx, cookie)
        else {
            lane.free.push(slot);
            self.o.prefix = prefix;
            return;
        };
        self.o.prefix = prefix;
        s.busy = true;
        s.measured = self.phase == Phase::Measure && op != Op::Hello;
        s.sent = now;
        s.op = op;
        if seed {
            lane.fifo.push_back((slot, s.generation));
        }
        self.batch.tx_len[i] = len;
        self.batch_slot[i] = slot;
        self.batch.tx_n += 1;
    }

    /// Put a request without a reply (seed `ID`, `Quit`) into the batch.
    fn queue_fire(&mut self, _li: usize, req: Req) {
        let i = self.batch.tx_n;
        if let Some(len) =
            msg::write_req(&mut self.batch.tx[i], self.o.prefix.as_bytes(), req, 0, 0)
        {
            self.batch.tx_len[i] = len;
            self.batch_slot[i] = NO_SLOT;
            self.batch.tx_n += 1;
        }
    }

    /// The next request of the current phase for lane `li`.
    fn next_op(&mut self, li: usize) -> Option<Next> {
        let stride = self.lanes.len() as u64;
        match self.phase {
            Phase::Hello => None,
            Phase::Relay => {
                let r = self.lanes[li].relay;
                if r.pending {
                    return None;
                }
                let op = match (r.tokens, r.asked) {
                    ([None, _], _) => Op::RelayReg(0),
                    ([_, None], _) => Op::RelayReg(1),
                    (_, [false, _]) => Op::RelayAsk(0),
                    (_, [_, false]) => Op::RelayAsk(1),
                    _ => return None,
                };
                self.lanes[li].relay.pending = true;
                Some(Next::Slot(op))
            }
            Phase::Measure if self.o.workload == Workload::Relay => (self.o.echo
                || self.lanes[li].relay.channel.is_some())
            .then_some(Next::Slot(Op::Relay)),
            Phase::Prefill => {
                let lane = &mut self.lanes[li];
                if lane.next >= u64::from(self.o.table) {
                    return None;
                }
                let n = lane.next as u32;
                lane.next += stride;
                Some(Next::Slot(Op::Prefill(n)))
            }
            Phase::Subscribe => loop {
                let lane = &mut self.lanes[li];
                if lane.next >= u64::from(self.o.subscribers) {
                    return None;
                }
                let n = lane.next as u32;
                lane.next += stride;
                if self.acked(n) {
                    return Some(Next::Slot(Op::Sub(n)));
                }
                self.subscribe.failed += 1;
            },
            Phase::Verify => {
                let lane = &mut self.lanes[li];
                let n = self.fresh_acked.get(lane.next as usize).copied()?;
                lane.next += stride;
                Some(Next::Slot(Op::Verify(n)))
            }
            Phase::Stats => {
                if li == 0 && self.lanes[0].in_flight() == 0 && self.stats_body.is_none() {
                    Some(Next::Slot(Op::Stats))
                } else {
                    None
                }
            }
            Phase::Measure => self.measure_op(),
        }
    }

    fn measure_op(&mut self) -> Option<Next> {
        let kind = match self.o.workload {
            Workload::Lookup => Kind::Lookup,
            Workload::Register => Kind::Register,
            Workload::Churn => Kind::Churn,
            Workload::Stun => return Some(Next::Slot(Op::Stun)),
            Workload::Relay => return Some(Next::Slot(Op::Relay)),
            Workload::Mixed | Workload::Presence => {
                let m = self.o.mix;
                let r = (self.rand() % u64::from(m.total())) as u32;
                if r < m.lookup {
                    Kind::Lookup
                } else if r < m.lookup + m.register {
                    Kind::Register
                } else {
                    Kind::Churn
                }
            }
        };
        match kind {
            Kind::Lookup => {
                let n = (self.rand() % u64::from(self.o.table.max(1))) as u32;
                Some(Next::Slot(Op::Lookup(n, self.acked(n))))
            }
            Kind::Register => {
                let n = self.fresh_next;
                self.fresh_next += 1;
                if self.ext() {
                    Some(Next::Slot(Op::Fresh(n)))
                } else {
                    // The seed has no acknowledgement: every ID sent is
                    // checked with Peer afterwards.
                    self.fresh_acked.push(n);
                    Some(Next::Fire(Req::SeedId(IdRef {
                        kind: IdKind::Fresh,
                        n,
                    })))
                }
            }
            Kind::Churn => {
                let a = self.idle.pop_front()?;
                let actor = self.actors[a as usize];
                let id = IdRef {
                    kind: IdKind::Actor,
                    n: actor.n,
                };
                if !self.ext() {
                    let req = if actor.state == ActorState::Out {
                        Req::SeedId(id)
                    } else {
                        Req::SeedQuit(id)
                    };
                    self.actors[a as usize].state = if actor.state == ActorState::Out {
                        ActorState::In
                    } else {
                        ActorState::Out
                    };
                    self.idle.push_back(a);
                    return Some(Next::Fire(req));
                }
                Some(Next::Slot(match actor.state {
                    ActorState::Out => Op::ActorReg(a),
                    ActorState::In if self.o.check_churn => Op::ActorCheck(a),
                    ActorState::In | ActorState::Checked => Op::ActorQuit(a),
                }))
            }
        }
    }

    fn report(self) -> Report {
        let verify_expected = if self.skip(Phase::Verify) {
            0
        } else {
            self.fresh_acked.len() as u64
        };
        let measured = self.measure_end.map_or(Duration::ZERO, |e| {
            e.duration_since(self.phase_start_of_measure())
        });
        let events_span = match (self.events_first, self.events_last) {
            (Some(a), Some(b)) => b.duration_since(a),
            _ => Duration::ZERO,
        };
        Report {
            workload: self.o.workload.name(),
            proto: match self.o.proto {
                Proto::Ext => "ext",
                Proto::Seed => "seed",
            },
            echo: self.o.echo,
            target: self.o.target,
            lanes: self.o.lanes,
            window: self.o.window,
            rate: self.o.rate,
            table: self.o.table,
            subscribers: self.o.subscribers,
            seconds: measured.as_secs_f64(),
            c: self.c,
            rtt: self.rtt,
            lookup_rtt: self.lookup_rtt,
            prefill: self.prefill,
            subscribe: self.subscribe,
            verify: self.verify,
            verify_expected,
            events_seconds: events_span.as_secs_f64(),
            server: self.stats_body,
        }
    }

    fn phase_start_of_measure(&self) -> Instant {
        self.measure_start.unwrap_or(self.start)
    }
}

enum Next {
    Slot(Op),
    Fire(Req),
}

enum Kind {
    Lookup,
    Register,
    Churn,
}

/// The id of end `k` (0 or 1) of lane `li`'s relay session.
fn relay_end(li: usize, k: u8) -> IdRef {
    IdRef {
        kind: if k == 0 {
            IdKind::RelayA
        } else {
            IdKind::RelayB
        },
        n: li as u32,
    }
}
