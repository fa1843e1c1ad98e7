//! Table tests of the client session against the real server state machine
//! over a simulated network with a fake clock: loss, duplication and
//! reordering come from a seeded generator, so every run is the same.

extern crate std;

use std::boxed::Box;
use std::collections::BTreeMap;
use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use core::net::SocketAddr;

use super::request::HELLO_LEN;
use super::*;
use crate::limit::{QuotaCell, RateCell};
use crate::registry::Slot;
use crate::server::{Config as ServerConfig, Layout, Server, Storage, VecOutbox};

const SERVER: &str = "10.0.0.1:9999";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn id(s: &str) -> Id<'_> {
    Id::new(s).unwrap()
}

fn leak<T: Clone>(v: T, n: usize) -> &'static mut [T] {
    Box::leak(vec![v; n].into_boxed_slice())
}

fn server(cfg: ServerConfig, entropy: u8) -> Server<'static> {
    let l = Layout::for_capacity(64);
    let storage = Storage {
        slots: leak(Slot::EMPTY, l.slots),
        index: leak(0u32, l.index),
        rate: leak(RateCell::EMPTY, l.rate),
        quota: leak(QuotaCell::EMPTY, l.quota),
    };
    Server::new(cfg, storage, [entropy; 32]).unwrap()
}

/// An event as text, for assertions.
fn show(e: &Event<'_>) -> String {
    match e {
        Event::Registered { id, again, .. } => format!("registered {id} again={again}"),
        Event::RegistrationFailed(f) => format!("registration failed: {f}"),
        Event::ServerUnreachable => "server unreachable".into(),
        Event::ServerBack => "server back".into(),
        Event::Pong { addr, .. } => format!("pong {addr}"),
        Event::Found { id, addr } => format!("found {id} {addr}"),
        Event::Failed { what, id, reason } => format!("failed {what:?} {id:?}: {reason}"),
        Event::Page { next, ids } => format!("page {next} [{}]", ids.as_str()),
        Event::Joined(i) => format!("joined {i}"),
        Event::Left(i) => format!("left {i}"),
        Event::Resync => "resync".into(),
        Event::Message { from, text, seed } => match from {
            Some(f) => format!("msg {f}{}: {text}", if *seed { " (seed)" } else { "" }),
            None => format!("msg ?{}: {text}", if *seed { " (seed)" } else { "" }),
        },
        Event::Delivered { to, msg } => format!("delivered {to} #{msg}"),
        Event::NotDelivered { to, msg, reason } => format!("not delivered {to} #{msg}: {reason}"),
        Event::SentUnconfirmed { to, msg } => format!("unconfirmed {to} #{msg}"),
        Event::Bye => "bye".into(),
    }
}

/// A tiny seeded generator for the network's faults.
struct Dice(u64);
impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Clone, Copy, Default)]
struct Faults {
    loss: u64,
    dup: u64,
    /// Extra delay up to this many ms (reorders datagrams).
    jitter: u64,
}

struct Net {
    server: Option<Server<'static>>,
    out: VecOutbox<128>,
    clients: BTreeMap<SocketAddr, Box<Client>>,
    events: BTreeMap<SocketAddr, Vec<String>>,
    /// (deliver at, order, src, dst, bytes)
    wire: Vec<(Instant, u64, SocketAddr, SocketAddr, Vec<u8>)>,
    order: u64,
    now: Instant,
    dice: Dice,
    faults: Faults,
    /// Every datagram put on the wire: (time, src, dst, text).
    log: Vec<(Instant, SocketAddr, SocketAddr, String)>,
    /// Addresses whose traffic (both ways) is dropped.
    cut: Vec<SocketAddr>,
    /// Datagrams that reached addresses with no client (seed stand-ins).
    inbox: Vec<(SocketAddr, SocketAddr, String)>,
    next_entropy: u8,
}

impl Net {
    fn new() -> Net {
        Net::with_server(ServerConfig::default())
    }

    fn with_server(cfg: ServerConfig) -> Net {
        Net {
            server: Some(server(cfg, 42)),
            out: VecOutbox::new(),
            clients: BTreeMap::new(),
            events: BTreeMap::new(),
            wire: Vec::new(),
            order: 0,
            now: Instant::from_secs(1000),
            dice: Dice(0x2545_f491_4f6c_dd1d),
            faults: Faults::default(),
            log: Vec::new(),
            cut: Vec::new(),
            inbox: Vec::new(),
            next_entropy: 1,
        }
    }

    fn config(name: &str) -> Config {
        Config::new(addr(SERVER), Some(id(name)))
    }

    fn add(&mut self, at: &str, cfg: Config) -> SocketAddr {
        let a = addr(at);
        self.next_entropy += 1;
        let c = Box::new(Client::new(cfg, self.now, [self.next_entropy; 32]));
        self.clients.insert(a, c);
        self.events.insert(a, Vec::new());
        self.flush();
        a
    }

    fn client(&mut self, at: SocketAddr) -> &mut Client {
        self.clients.get_mut(&at).unwrap()
    }

    fn send_message(
        &mut self,
        at: SocketAddr,
        to: Id<'_>,
        text: &str,
    ) -> Result<u32, CommandError> {
        let now = self.now;
        self.client(at).send_message(now, to, text)
    }

    fn quit(&mut self, at: SocketAddr) -> Result<(), CommandError> {
        let now = self.now;
        self.client(at).quit(now)
    }

    fn lookup(&mut self, at: SocketAddr, who: Id<'_>) -> Result<(), CommandError> {
        let now = self.now;
        self.client(at).lookup(now, who)
    }

    /// Put a datagram on the wire, with the network's faults.
    fn put(&mut self, src: SocketAddr, dst: SocketAddr, bytes: &[u8]) {
        self.log.push((
            self.now,
            src,
            dst,
            String::from_utf8_lossy(bytes).into_owned(),
        ));
        if self.cut.contains(&src) || self.cut.contains(&dst) {
            return;
        }
        let f = self.faults;
        if self.dice.chance(f.loss) {
            return;
        }
        let copies = if self.dice.chance(f.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = 1 + if f.jitter > 0 {
                self.dice.next() % f.jitter
            } else {
                0
            };
            self.order += 1;
            self.wire.push((
                self.now + Millis(delay),
                self.order,
                src,
                dst,
                bytes.to_vec(),
            ));
        }
    }

    /// Move everything clients and the server want sent onto the wire,
    /// and collect events.
    fn flush(&mut self) {
        let addrs: Vec<SocketAddr> = self.clients.keys().copied().collect();
        for a in addrs {
            loop {
                let t = self.client(a).poll_transmit();
                let Some(t) = t else { break };
                self.put(a, t.dst, &t.payload);
            }
            loop {
                let c = self.clients.get_mut(&a).unwrap();
                let Some(e) = c.poll_event() else { break };
                let s = show(&e);
                self.events.get_mut(&a).unwrap().push(s);
            }
        }
        while let Some((dst, bytes)) = self.out.pop() {
            self.put(addr(SERVER), dst, &bytes);
        }
    }

    /// Run the world until `until`, delivering datagrams and firing timers in order.
    fn run_until(&mut self, until: Instant) {
        for _ in 0..1_000_000 {
            self.flush();
            let mut next = until;
            if let Some(w) = self.wire.iter().map(|w| (w.0, w.1)).min() {
                next = next.min(w.0);
            }
            for c in self.clients.values() {
                if let Some(t) = c.poll_timeout() {
                    next = next.min(t);
                }
            }
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            // Deliver what is due, oldest first.
            self.wire.sort_by_key(|w| (w.0, w.1));
            let due: Vec<_> = {
                let n = self.wire.iter().take_while(|w| w.0 <= self.now).count();
                self.wire.drain(..n).collect()
            };
            for (_, _, src, dst, bytes) in due {
                if dst == addr(SERVER) {
                    if let Some(s) = self.server.as_mut() {
                        s.handle(self.now, src, &bytes, &mut self.out);
                    }
                } else if let Some(c) = self.clients.get_mut(&dst) {
                    c.handle(self.now, src, &bytes);
                } else {
                    self.inbox
                        .push((src, dst, String::from_utf8_lossy(&bytes).into_owned()));
                }
            }
            if let Some(s) = self.server.as_mut() {
                s.tick(self.now, &mut self.out);
            }
            let now = self.now;
            for c in self.clients.values_mut() {
                if c.poll_timeout().is_some_and(|t| t <= now) {
                    c.handle_timeout(now);
                }
            }
            if self.now >= until && self.wire.iter().all(|w| w.0 > until) {
                let idle = self
                    .clients
                    .values()
                    .all(|c| c.poll_timeout().is_none_or(|t| t > until));
                if idle {
                    break;
                }
            }
        }
        self.flush();
        self.now = self.now.max(until);
    }

    fn run(&mut self, ms: u64) {
        let until = self.now + Millis(ms);
        self.run_until(until);
    }

    fn take(&mut self, at: SocketAddr) -> Vec<String> {
        core::mem::take(self.events.get_mut(&at).unwrap())
    }

    /// Datagrams sent by `src` whose text starts with `prefix`.
    fn sent(&self, src: SocketAddr, prefix: &str) -> Vec<(Instant, SocketAddr, String)> {
        self.log
            .iter()
            .filter(|(_, s, _, t)| *s == src && t.starts_with(prefix))
            .map(|(t, _, d, x)| (*t, *d, x.clone()))
            .collect()
    }
}

fn two(net: &mut Net) -> (SocketAddr, SocketAddr) {
    let a = net.add("10.0.0.2:5000", Net::config("alice"));
    let b = net.add("10.0.0.3:6000", Net::config("bob"));
    net.run(1000);
    assert_eq!(net.take(a), ["registered alice again=false"]);
    assert_eq!(net.take(b), ["registered bob again=false"]);
    (a, b)
}

#[test]
fn registration_pads_hello_and_registers() {
    let mut net = Net::new();
    let a = net.add("10.0.0.2:5000", Net::config("alice"));
    net.run(1000);
    assert_eq!(net.take(a), ["registered alice again=false"]);
    let hello = &net.sent(a, "HELLO ")[0].2;
    assert_eq!(hello.len(), HELLO_LEN, "HELLO is padded: {hello}");
    let cookie = &net.sent(addr(SERVER), "COOKIE ")[0].2;
    assert!(cookie.len() <= hello.len());
    assert_eq!(net.sent(a, "REG ").len(), 1);
    assert!(net.client(a).is_registered());
    assert_eq!(net.client(a).observed_addr(), Some(a));
}

#[test]
fn keepalives_every_15_to_25_seconds_with_jitter() {
    let mut net = Net::new();
    let a = net.add("10.0.0.2:5000", Net::config("alice"));
    let b = net.add("10.0.0.3:5000", Net::config("bob"));
    net.run(600_000);
    for c in [a, b] {
        let keeps: Vec<u64> = net.sent(c, "KEEP ").iter().map(|k| k.0.millis()).collect();
        assert!(keeps.len() >= 24, "{} keepalives in 10 min", keeps.len());
        let gaps: Vec<u64> = keeps.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter().all(|g| (15_000..=25_000).contains(g)),
            "{gaps:?}"
        );
        let distinct: std::collections::BTreeSet<_> = gaps.iter().collect();
        assert!(distinct.len() > 5, "jittered: {gaps:?}");
        // The cookie is refreshed before it ages out: no request is refused.
        assert!(net.sent(addr(SERVER), "ERR").is_empty());
        assert!(net.client(c).is_registered());
    }
}

#[test]
fn registration_retries_with_backoff_then_gives_up() {
    let mut net = Net::new();
    net.server = None;
    let a = net.add("10.0.0.2:5000", Net::config("alice"));
    net.run(60_000);
    let hellos: Vec<u64> = net.sent(a, "HELLO").iter().map(|h| h.0.millis()).collect();
    assert_eq!(hellos.len(), 6, "{hellos:?}");
    let gaps: Vec<u64> = hellos.windows(2).map(|w| w[1] - w[0]).collect();
    for w in gaps.windows(2) {
        assert!(w[1] > w[0] || w[1] >= 3200, "backoff grows: {gaps:?}");
    }
    assert_eq!(
        net.take(a),
        [
            "server unreachable",
            "registration failed: the server did not answer"
        ]
    );
    assert!(net.client(a).poll_timeout().is_none(), "nothing left to do");
}

#[test]
fn an_id_taken_is_reported_as_a_sentence() {
    let mut net = Net::new();
    let a = net.add("10.0.0.2:5000", Net::config("alice"));
    net.run(1000);
    let b = net.add("10.0.0.3:5000", Net::config("alice"));
    net.run(1000);
    assert_eq!(net.take(a), ["registered alice again=false"]);
    assert_eq!(
        net.take(b),
        ["registration failed: that id is already taken by someone else"]
    );
}

#[test]
fn chat_goes_through_intro_punch_and_probes_then_is_acked() {
    let mut net = Net::new();
    let (a, b) = two(&mut net);
    let m = net.send_message(a, id("bob"), "hi bob").unwrap();
    net.run(2000);
    assert_eq!(net.take(a), [format!("delivered bob #{m}")]);
    assert_eq!(net.take(b), ["msg alice: hi bob"]);
    assert_eq!(net.sent(a, "INTRO ").len(), 1);
    assert_eq!(net.sent(addr(SERVER), "PUNCH alice ").len(), 1);
    assert!(!net.sent(a, "PROBE alice ").is_empty());
    assert!(!net.sent(b, "PROBE bob ").is_empty(), "both sides probe");
    assert!(!net.sent(b, "PROBED bob ").is_empty());
    let chats = net.sent(a, "CHAT alice ");
    assert_eq!(chats.len(), 1);
    assert_eq!(chats[0].1, b);
    assert!(chats[0].2.ends_with(" 1/1 hi bob"), "{}", chats[0].2);
    // The reply needs no new introduction: both know the path.
    net.send_message(b, id("alice"), "hi alice").unwrap();
    net.run(1000);
    assert_eq!(net.take(a), ["msg bob: hi alice"]);
    assert_eq!(net.take(b), ["delivered alice #1"]);
    assert!(net.sent(b, "INTRO").is_empty() && net.sent(b, "LOOKUP").is_empty());
}

#[test]
fn long_text_is_fragmented_and_reassembled_in_order() {
    let mut net = Net::new();
    net.faults = Faults {
        loss: 0,
        dup: 30,
        jitter: 200,
    };
    let mut cfg = Net::config("alice");
    cfg.fragment_text = 10;
    let a = net.add("10.0.0.2:5000", cfg);
    let b = net.add("10.0.0.3:6000", Net::config("bob"));
    net.run(2000);
    net.take(a);
    net.take(b);
    let text: String = (0..15).map(|i| format!("part{i:02}....")).collect();
    assert_eq!(text.len(), 150);
    net.send_message(a, id("bob"), &text).unwrap();
    net.run(5000);
    assert_eq!(net.take(b), [format!("msg alice: {text}")]);
    assert_eq!(net.take(a), ["delivered bob #1"]);
    let frags: std::collections::BTreeSet<String> = net
        .sent(a, "CHAT ")
        .iter()
        .map(|c| c.2.split(' ').nth(4).unwrap().to_string())
        .collect();
    assert_eq!(frags.len(), 15, "{frags:?}");
    // Too long for 16 fragments of 10 bytes.
    assert_eq!(
        net.send_message(a, id("bob"), &"y".repeat(161)),
        Err(CommandError::TooLong)
    );
    // Real-sized fragments: 4096 bytes of text in 4 datagrams of at most 1200.
    let big: String = (0..4096)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    net.send_message(b, id("alice"), &big).unwrap();
    net.run(5000);
    assert_eq!(net.take(a), [format!("msg bob: {big}")]);
    let sizes: Vec<usize> = net.sent(b, "CHAT ").iter().map(|c| c.2.len()).collect();
    assert!(
        sizes.len() >= 4 && sizes.iter().all(|&n| n <= MAX_DATAGRAM),
        "{sizes:?}"
    );
}

#[test]
fn bad_commands_are_refused_at_once() {
    let mut net = Net::new();
    let (a, _) = two(&mut net);
    let now = net.now;
    let c = net.client(a);
    assert_eq!(
        c.send_message(now, id("bob"), ""),
        Err(CommandError::BadText)
    );
    assert_eq!(
        c.send_message(now, id("bob"), "a\nb"),
        Err(CommandError::BadText)
    );
    assert_eq!(
        c.send_message(now, id("alice"), "me"),
        Err(CommandError::ToSelf)
    );
    assert_eq!(
        c.send_message(now, id("bob"), &"z".repeat(MAX_TEXT + 1)),
        Err(CommandError::TooLong)
    );
    for _ in 0..MAX_OUTGOING {
        c.send_message(now, id("bob"), "x").unwrap();
    }
    assert_eq!(c.send_message(now, id("bob"), "x"), Err(CommandError::Busy));
    let mut anon = Client::new(Config::new(addr(SERVER), None), now, [9; 32]);
    assert_eq!(
        anon.send_message(now, id("bob"), "x"),
        Err(CommandError::NoId)
    );
}

/// The acceptance test of the issue: 20% loss (both ways, every link),
/// duplicates and reordering; every message shown exactly once.
#[test]
fn messages_survive_loss_duplication_and_reordering_exactly_once() {
    for seed in [1u64, 2, 3, 4, 5] {
        let mut net = Net::new();
        net.dice = Dice(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0xbf58_476d_1ce4_e5b9));
        net.faults = Faults {
            loss: 20,
            dup: 10,
            jitter: 80,
        };
        let mut cfg = Net::config("alice");
        cfg.fragment_text = 40;
        let a = net.add("10.0.0.2:5000", cfg);
        let b = net.add("10.0.0.3:6000", Net::config("bob"));
        net.run(20_000);
        assert!(
            net.client(a).is_registered() && net.client(b).is_registered(),
            "{:?} {:?}",
            net.take(a),
            net.take(b)
        );
        net.take(a);
        net.take(b);
        let mut want_b = Vec::new();
        let mut want_a = Vec::new();
        for i in 0..40 {
            // Some messages need several fragments.
            let text = format!("message {i} {}", "=".repeat(i * 3));
            if net.send_message(a, id("bob"), &text).is_ok() {
                want_b.push(format!("msg alice: {text}"));
            }
            let reply = format!("reply {i}");
            if net.send_message(b, id("alice"), &reply).is_ok() {
                want_a.push(format!("msg bob: {reply}"));
            }
            net.run(700);
        }
        net.run(60_000);
        let got_b = net.take(b);
        let got_a = net.take(a);
        let shown = |got: &[String], want: &[String]| {
            let mut g: Vec<String> = got
                .iter()
                .filter(|e| e.starts_with("msg"))
                .cloned()
                .collect();
            let mut w = want.to_vec();
            g.sort();
            w.sort();
            assert_eq!(g, w, "seed {seed}: every message exactly once");
        };
        shown(&got_b, &want_b);
        shown(&got_a, &want_a);
        let delivered = got_a
            .iter()
            .filter(|e| e.starts_with("delivered bob"))
            .count();
        assert_eq!(delivered, want_b.len(), "seed {seed}: {got_a:?}");
        assert!(
            want_b.len() >= 30,
            "most sends were accepted: {}",
            want_b.len()
        );
        assert!(got_a.iter().all(|e| !e.starts_with("not delivered")));
        // Loss really happened: some chat datagrams were sent more than once.
        assert!(net.sent(a, "CHAT ").len() > want_b.len());
    }
}

#[test]
fn duplicates_are_acked_again_but_shown_once() {
    let mut net = Net::new();
    let (a, b) = two(&mut net);
    net.send_message(a, id("bob"), "once").unwrap();
    net.run(1000);
    assert_eq!(net.take(b), ["msg alice: once"]);
    let chat = net.sent(a, "CHAT ")[0].2.clone();
    let acks_before = net.sent(b, "ACK ").len();
    for _ in 0..3 {
        net.put(a, b, chat.as_bytes());
    }
    net.run(1000);
    assert_eq!(net.take(b), Vec::<String>::new());
    assert_eq!(net.sent(b, "ACK ").len(), acks_before + 3);
}

#[test]
fn retransmissions_back_off_then_not_delivered() {
    let mut net = Net::new();
    let (a, b) = two(&mut net);
    net.send_message(a, id("bob"), "first").unwrap();
    net.run(1000);
    net.take(a);
    // Bob vanishes without a word.
    net.cut.push(b);
    let m = net.send_message(a, id("bob"), "lost").unwrap();
    net.run(120_000);
    let events = net.take(a);
    assert!(
        events.contains(&format!(
            "not delivered bob #{m}: the peer never acknowledged it"
        )),
        "{events:?}"
    );
    let times: Vec<u64> = net
        .sent(a, "CHAT alice")
        .iter()
        .filter(|c| c.2.ends_with("lost"))
        .map(|c| c.0.millis())
        .collect();
    assert_eq!(times.len(), 14);
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[1] > gaps[0] && gaps[2] > gaps[1],
        "exponential: {gaps:?}"
    );
    assert!(gaps.iter().all(|&g| g <= 2400), "capped: {gaps:?}");
    // After three silent tries it asked the server where bob is now.
    assert!(net.sent(a, "INTRO").len() >= 2);
}

#[test]
fn an_unknown_peer_is_not_delivered_with_a_reason() {
    let mut net = Net::new();
    let (a, _) = two(&mut net);
    let m = net.send_message(a, id("nobody"), "hello?").unwrap();
    net.run(3000);
    assert_eq!(
        net.take(a),
        [format!(
            "not delivered nobody #{m}: nobody with that id is online"
        )]
    );
}

#[test]
fn server_restart_means_a_silent_reregistration() {
    let mut net = Net::new();
    let (a, b) = two(&mut net);
    // The server restarts with a new secret and an empty table.
    net.server = Some(server(ServerConfig::default(), 7));
    net.run(60_000);
    assert_eq!(net.take(a), ["registered alice again=true"]);
    assert_eq!(net.take(b), ["registered bob again=true"]);
    // bad-cookie -> HELLO -> no-such-id -> REG.
    let errs: Vec<String> = net
        .sent(addr(SERVER), "ERR")
        .iter()
        .filter(|e| e.1 == a)
        .map(|e| e.2.split(' ').nth(2).unwrap().to_string())
        .collect();
    assert_eq!(errs, ["bad-cookie", "no-such-id"]);
    // Chat works through the new server.
    net.send_message(a, id("bob"), "still here").unwrap();
    net.run(2000);
    assert_eq!(net.take(b), ["msg alice: still here"]);
}

#[test]
fn server_down_for_a_while_then_back() {
    let mut net = Net::new();
    let (a, _) = two(&mut net);
    let saved = net.server.take();
    net.run(60_000);
    assert_eq!(net.take(a), ["server unreachable"]);
    net.server = saved;
    net.run(40_000);
    assert_eq!(net.take(a), ["server back"]);
    assert!(net.client(a).is_registered());
}

#[test]
fn a_forgotten_id_is_registered_again() {
    // A lease shorter than the keepalive: the server forgets the id.
    let mut net = Net::with_server(ServerConfig {
        lease_min: 1,
        lease_default: 1,
        ..ServerConfig::default()
    });
    let mut cfg = Net::config("alice");
    cfg.keepalive_min = Millis(3000);
    cfg.keepalive_max = Millis(3000);
    let a = net.add("10.0.0.2:5000", cfg);
    net.run(500);
    assert_eq!(net.take(a), ["registered alice again=false"]);
    net.run(10_000);
    let events = net.take(a);
    assert!(events.iter().all(|e| e == "registered alice again=true"));
    assert!(!events.is_empty());
}

#[test]
fn a_seed_peer_gets_message_text() {
    let mut net = Net::new();
    let (a, _) = two(&mut net);
    // A seed client registers with the seed's verb and never answers probes.
    let carol = addr("10.0.0.9:10520");
    net.put(carol, addr(SERVER), b"ID carol");
    net.run(500);
    let m = net.send_message(a, id("carol"), "hi carol").unwrap();
    net.run(10_000);
    assert_eq!(net.take(a), [format!("unconfirmed carol #{m}")]);
    let to_carol: Vec<&String> = net
        .inbox
        .iter()
        .filter(|(s, d, _)| *s == a && *d == carol)
        .map(|(_, _, t)| t)
        .collect();
    assert!(to_carol.iter().any(|t| t.starts_with("PROBE alice ")));
    assert_eq!(
        to_carol.iter().filter(|t| t.starts_with("Message")).count(),
        1
    );
    assert!(to_carol.contains(&&"Message hi carol".to_string()));
    assert!(
        to_carol.iter().all(|t| !t.starts_with("CHAT")),
        "no chat before a path answers"
    );
    // Known seed now: the next one goes at once, without probes.
    let probes = net.sent(a, "PROBE").len();
    net.send_message(a, id("carol"), "again").unwrap();
    net.run(100);
    assert_eq!(net.take(a), ["unconfirmed carol #2"]);
    assert_eq!(net.sent(a, "PROBE").len(), probes);
    // A minute later the guess is checked again: probes first.
    net.run(60_000);
    net.send_message(a, id("carol"), "third").unwrap();
    net.run(10_000);
    assert_eq!(net.take(a), ["unconfirmed carol #3"]);
    assert!(net.sent(a, "PROBE").len() > probes, "probed again");
    // Carol answers the seed's way: shown with her id, known from her address.
    net.put(carol, a, b"Message hello alice");
    net.run(100);
    assert_eq!(net.take(a), ["msg carol (seed): hello alice"]);
    // From an address nobody knows: shown without an id.
    net.put(addr("10.0.0.10:10999"), a, b"Message who am i");
    net.run(100);
    assert_eq!(net.take(a), ["msg ? (seed): who am i"]);
}

#[test]
fn mark_seed_sends_message_at_once_split_at_1024_bytes() {
    let mut net = Net::new();
    let (a, _) = two(&mut net);
    let carol = addr("10.0.0.9:10520");
    net.put(carol, addr(SERVER), b"ID carol");
    net.run(500);
    let now = net.now;
    net.client(a).mark_seed(now, id("carol"));
    let text = "s".repeat(1500);
    net.client(a).send_message(now, id("carol"), &text).unwrap();
    net.run(1000);
    let got: Vec<&String> = net
        .inbox
        .iter()
        .filter(|(s, d, _)| *s == a && *d == carol)
        .map(|x| &x.2)
        .collect();
    assert_eq!(got.len(), 2, "{}", got.len());
    assert!(
        got.iter()
            .all(|t| t.starts_with("Message ") && t.len() <= 1024)
    );
    assert!(net.sent(a, "PROBE").is_empty());
}

#[test]
fn lookup_list_ping_and_quit() {
    let mut net = Net::new();
    let (a, b) = two(&mut net);
    let mut cfg = Config::new(addr(SERVER), None);
    cfg.register = false;
    let anon = net.add("10.0.0.4:7000", cfg);
    let now = net.now;
    net.client(anon).lookup(now, id("bob")).unwrap();
    net.client(anon).lookup(now, id("zed")).unwrap();
    net.client(anon).list(now, 0).unwrap();
    net.client(anon).ping(now).unwrap();
    net.run(1000);
    let mut got = net.take(anon);
    got.sort();
    assert_eq!(
        got,
        [
            "failed Lookup Some(Id(zed)): nobody with that id is online".to_string(),
            format!("found bob {b}"),
            "page 0 [alice bob]".to_string(),
            "pong 10.0.0.4:7000".to_string(),
        ]
    );
    net.quit(a).unwrap();
    net.run(1000);
    assert_eq!(net.take(a), ["bye"]);
    net.lookup(anon, id("alice")).unwrap();
    net.run(1000);
    assert_eq!(
        net.take(anon),
        ["failed Lookup Some(Id(alice)): nobody with that id is online"]
    );
    // No keepalive after quitting.
    let keeps = net.sent(a, "KEEP").len();
    net.run(60_000);
    assert_eq!(net.sent(a, "KEEP").len(), keeps);
}

#[test]
fn presence_events_become_joined_and_left() {
    let mut net = Net::new();
    let mut cfg = Net::config("alice");
    cfg.subscribe = true;
    let a = net.add("10.0.0.2:5000", cfg);
    net.run(1000);
    assert_eq!(net.take(a), ["registered alice again=false"]);
    let b = net.add("10.0.0.3:6000", Net::config("bob"));
    net.run(1000);
    net.quit(b).unwrap();
    net.run(1000);
    assert_eq!(net.take(a), ["joined bob", "left bob"]);
}

#[test]
fn reassembly_slots_are_bounded_and_recover() {
    let mut net = Net::new();
    let (a, b) = two(&mut net);
    // Fill bob's slots with partial messages that never complete.
    for seq in 0..MAX_INCOMING as u32 {
        let d = format!("CHAT mallory 00000000000000aa {seq} 1/2 part");
        net.put(addr("10.0.0.66:1"), b, d.as_bytes());
    }
    net.run(100);
    // Alice's message waits for room, then arrives once the partials expire.
    net.send_message(a, id("bob"), "patience").unwrap();
    net.run(90_000);
    let got = net.take(b);
    assert_eq!(got, ["msg alice: patience"]);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Datagrams that look like the real thing with fields drawn at random.
    fn datagram() -> impl Strategy<Value = (bool, Vec<u8>)> {
        let verb = prop::sample::select(vec![
            "COOKIE", "REGD", "ALIVE", "AT", "PAGE", "SUBD", "BYE", "ERR", "PUNCH", "EVENTS",
            "RESYNC", "CHAT", "ACK", "PROBE", "PROBED", "Message",
        ]);
        let field = prop::sample::select(vec![
            "1",
            "2",
            "0",
            "4294967295",
            "bob",
            "alice",
            "carol",
            "0000000000000001",
            "00000000000000aa",
            "127.0.0.1:5",
            "10.0.0.3:6000",
            "1/1",
            "1/2",
            "2/2",
            "16/16",
            "no-such-id",
            "bad-cookie",
            "not-owner",
            "id-taken",
            "+bob",
            "-bob",
            "-",
            "x",
        ]);
        (
            any::<bool>(),
            verb,
            proptest::collection::vec(field, 0..7),
            proptest::collection::vec(any::<u8>(), 0..40),
            any::<bool>(),
        )
            .prop_map(|(from_server, verb, fields, junk, raw)| {
                let mut d = verb.as_bytes().to_vec();
                for f in fields {
                    d.push(b' ');
                    d.extend_from_slice(f.as_bytes());
                }
                if raw {
                    d = junk;
                }
                (from_server, d)
            })
    }

    proptest! {
        #[test]
        fn any_datagram_sequence_is_handled_without_panic(
            ds in proptest::collection::vec(datagram(), 0..60),
            sends in proptest::collection::vec(0u8..4, 0..6),
        ) {
            let mut c = Box::new(Client::new(Net::config("alice"), Instant(0), [1; 32]));
            for (k, s) in sends.iter().enumerate() {
                let to = ["bob", "carol", "dan", "bob"][usize::from(*s)];
                let _ = c.send_message(Instant(k as u64), id(to), "hello");
            }
            let mut now = 0u64;
            for (from_server, d) in &ds {
                now += 97;
                let src = if *from_server { addr(SERVER) } else { addr("10.0.0.3:6000") };
                c.handle(Instant(now), src, d);
                if let Some(t) = c.poll_timeout() {
                    if t.0 <= now {
                        c.handle_timeout(Instant(now));
                    }
                }
                while let Some(t) = c.poll_transmit() {
                    prop_assert!(t.payload.len() <= MAX_DATAGRAM);
                }
                while c.poll_event().is_some() {}
            }
            // Time runs on: everything in flight ends one way or another.
            for _ in 0..10_000 {
                let Some(t) = c.poll_timeout() else { break };
                now = now.max(t.0);
                c.handle_timeout(Instant(now));
                // No busy loop: what was due is done or rescheduled.
                if let Some(t) = c.poll_timeout() {
                    prop_assert!(t.0 > now, "due again at once: {} <= {}", t.0, now);
                }
                while c.poll_transmit().is_some() {}
                while c.poll_event().is_some() {}
                if c.in_flight() == 0 && now > 200_000 {
                    break;
                }
            }
            prop_assert_eq!(c.in_flight(), 0);
        }
    }
}

#[test]
fn the_first_address_that_answers_becomes_the_path() {
    let mut net = Net::new();
    let (a, b) = two(&mut net);
    // A stale introduction names an address where nobody answers.
    let dead = addr("10.0.0.77:1");
    net.put(addr(SERVER), a, b"PUNCH bob 10.0.0.77:1");
    net.run(50);
    let m = net.send_message(a, id("bob"), "which way?").unwrap();
    net.run(3000);
    assert_eq!(net.take(a), [format!("delivered bob #{m}")]);
    assert_eq!(net.take(b), ["msg alice: which way?"]);
    assert!(
        net.sent(a, "PROBE ").iter().any(|p| p.1 == dead),
        "the stale one was tried"
    );
    let chats = net.sent(a, "CHAT ");
    assert!(
        !chats.is_empty() && chats.iter().all(|c| c.1 == b),
        "{chats:?}"
    );
}

#[test]
fn a_peer_that_left_is_reported_quickly() {
    let mut net = Net::new();
    let (a, b) = two(&mut net);
    net.send_message(a, id("bob"), "hi").unwrap();
    net.run(1000);
    net.take(a);
    // Bob signs off; alice still has his address.
    net.quit(b).unwrap();
    net.run(500);
    net.cut.push(b);
    let t0 = net.now;
    let m = net.send_message(a, id("bob"), "still there?").unwrap();
    net.run(10_000);
    let events = net.take(a);
    assert_eq!(
        events,
        [format!(
            "not delivered bob #{m}: nobody with that id is online"
        )]
    );
    // Three silent tries, then the server says bob is gone.
    let last_chat = net.sent(a, "CHAT ").last().unwrap().0;
    assert!(last_chat.since(t0) < 5000, "{}", last_chat.since(t0));
}

#[test]
fn a_parley_peer_out_of_reach_for_a_while_is_not_a_seed_client_forever() {
    let mut net = Net::new();
    let (a, b) = two(&mut net);
    net.cut.push(b);
    let m = net.send_message(a, id("bob"), "are you there?").unwrap();
    net.run(10_000);
    assert_eq!(net.take(a), [format!("unconfirmed bob #{m}")]);
    net.cut.clear();
    net.run(60_000);
    net.take(b);
    let m = net.send_message(a, id("bob"), "now?").unwrap();
    net.run(10_000);
    assert_eq!(net.take(a), [format!("delivered bob #{m}")]);
    assert_eq!(net.take(b), ["msg alice: now?"]);
}
