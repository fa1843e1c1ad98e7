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

use super::*;
use testkit::rng::XorShift;

use crate::secure::{Keypair, PublicKey};
use crate::server::testing::leaked_storage;
use crate::server::{Config as ServerConfig, Server, VecOutbox};

mod chat;
mod fuzz;
mod path;
mod relay;
mod secure;
mod server;

const SERVER: &str = "10.0.0.1:9999";
/// Where the tests' alice and bob usually live.
const ALICE: &str = "10.0.0.2:5000";
const BOB: &str = "10.0.0.3:6000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn id(s: &str) -> Id<'_> {
    Id::new(s).unwrap()
}

fn server(cfg: ServerConfig, entropy: u8) -> Server<'static> {
    Server::new(cfg, leaked_storage(64), [entropy; 32]).unwrap()
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
        Event::Message {
            from,
            text,
            seed,
            verified,
        } => {
            assert_eq!(*verified, !*seed, "only sealed chat is verified");
            let from = from.map_or("?".into(), |f| f.to_string());
            format!("msg {from}{}: {text}", if *seed { " (seed)" } else { "" })
        }
        Event::KeyFirstSeen { id, .. } => format!("key first seen {id}"),
        Event::KeyChanged { id, .. } => format!("key changed {id}"),
        Event::Sent { to, msg, outcome } => match outcome {
            Outcome::Delivered => format!("delivered {to} #{msg}"),
            Outcome::NotDelivered(reason) => format!("not delivered {to} #{msg}: {reason}"),
            Outcome::Unconfirmed => format!("unconfirmed {to} #{msg}"),
        },
        Event::Bye => "bye".into(),
    }
}

/// The generator for run `seed` of a test that repeats over seeds; `mix`
/// keeps one test's runs apart from another's.
fn seeded(seed: u64, mix: u64) -> XorShift {
    XorShift::new(XorShift::SEED ^ seed.wrapping_mul(mix))
}

#[derive(Clone, Copy, Default)]
struct Faults {
    loss: u64,
    dup: u64,
    /// Extra delay up to this many ms (reorders datagrams).
    jitter: u64,
}

impl Faults {
    /// `loss` and `dup` in percent, `jitter` in ms.
    const fn new(loss: u64, dup: u64, jitter: u64) -> Faults {
        Faults { loss, dup, jitter }
    }
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
    dice: XorShift,
    faults: Faults,
    /// Every datagram put on the wire: (time, src, dst, text).
    log: Vec<(Instant, SocketAddr, SocketAddr, String)>,
    /// The bytes of each datagram in `log`, in the same order.
    raw: Vec<Vec<u8>>,
    /// Clients whose events are left unread (the application is busy).
    unread: Vec<SocketAddr>,
    /// Addresses whose traffic (both ways) is dropped.
    cut: Vec<SocketAddr>,
    /// Addresses whose outgoing traffic is dropped.
    mute: Vec<SocketAddr>,
    /// Pairs of addresses between which nothing passes (either way): a
    /// NAT that lets only the server through.
    blocked: Vec<(SocketAddr, SocketAddr)>,
    /// (src, dst) pairs dropped in that direction only.
    oneway: Vec<(SocketAddr, SocketAddr)>,
    /// A router without hairpinning: (inside, outside) pairs. What an
    /// inside address sends the server comes from the outside address,
    /// what the server sends there goes inside; anything else sent to an
    /// outside address is dropped.
    nat: Vec<(SocketAddr, SocketAddr)>,
    /// Datagrams that reached addresses with no client (seed stand-ins).
    inbox: Vec<(SocketAddr, SocketAddr, String)>,
    next_entropy: u8,
    /// `KeyFirstSeen` events, per client.
    first_seen: BTreeMap<SocketAddr, Vec<String>>,
}

std::thread_local! {
    /// Sealed transport datagrams and the peer message inside each, as
    /// the sender sealed them: the test's view through the encryption.
    static SEALED: core::cell::RefCell<BTreeMap<Vec<u8>, String>> =
        const { core::cell::RefCell::new(BTreeMap::new()) };
}

/// Called by the client (test builds only) for every datagram it seals.
pub(super) fn tap(datagram: &[u8], inner: &[u8]) {
    SEALED.with(|m| {
        m.borrow_mut().insert(
            datagram.to_vec(),
            String::from_utf8_lossy(inner).into_owned(),
        )
    });
}

/// What a sealed transport datagram carries, if a client sealed it.
fn inside(datagram: &[u8]) -> Option<String> {
    SEALED.with(|m| m.borrow().get(datagram).cloned())
}

/// A datagram as the log shows it: text as text, a sealed transport
/// datagram as the peer message inside it (the test sees through the
/// encryption; [`Net::raw`] has the bytes on the wire), handshakes by kind.
fn label(bytes: &[u8]) -> String {
    use crate::wire::sealed;
    if let Some(inner) = inside(bytes) {
        return inner;
    }
    if bytes.starts_with(sealed::INITIATION) {
        return format!("[init {}]", bytes.len());
    }
    match bytes.first() {
        Some(&sealed::RESPONSE) => format!("[resp {}]", bytes.len()),
        Some(&sealed::CONFIRM) => format!("[confirm {}]", bytes.len()),
        Some(&sealed::TRANSPORT) => format!("[data {}]", bytes.len()),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
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
            dice: XorShift::new(0x2545_f491_4f6c_dd1d),
            faults: Faults::default(),
            log: Vec::new(),
            raw: Vec::new(),
            unread: Vec::new(),
            cut: Vec::new(),
            mute: Vec::new(),
            blocked: Vec::new(),
            oneway: Vec::new(),
            nat: Vec::new(),
            inbox: Vec::new(),
            next_entropy: 1,
            first_seen: BTreeMap::new(),
        }
    }

    fn config(name: &str) -> Config {
        Config::new(addr(SERVER), Some(id(name)))
    }

    /// A client that registers no key (the server reports it as `-`).
    fn keyless(name: &str) -> Config {
        let mut cfg = Net::config(name);
        cfg.register_key = false;
        cfg
    }

    /// Clients added at these addresses, with these configurations, each
    /// registered within a second (and its events read).
    fn registered<const N: usize>(&mut self, clients: [(&str, Config); N]) -> [SocketAddr; N] {
        let at = clients.map(|(at, cfg)| self.add(at, cfg));
        self.run(1000);
        for a in at {
            let me = self.name(a);
            assert_eq!(self.take(a), [format!("registered {me} again=false")]);
        }
        at
    }

    /// A client put in place of the one at `at`: a new process with the
    /// same key, `cfg`, the entropy `entropy`, and the pin `pin` loaded
    /// (from its known-peers file).
    fn restart(&mut self, at: SocketAddr, cfg: Config, entropy: u8, pin: (&str, PublicKey)) {
        let now = self.now;
        let secret = *self.client(at).identity.secret();
        let mut c = Box::new(Client::new(
            cfg,
            now,
            [entropy; 32],
            Keypair::from_secret(secret),
        ));
        c.pin(id(pin.0), pin.1).unwrap();
        self.clients.insert(at, c);
    }

    fn add(&mut self, at: &str, cfg: Config) -> SocketAddr {
        let a = addr(at);
        self.next_entropy += 1;
        let c = Box::new(Client::new(
            cfg,
            self.now,
            [self.next_entropy; 32],
            Keypair::from_secret([self.next_entropy.wrapping_add(100); 32]),
        ));
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

    /// The id of the client at `at`.
    fn name(&mut self, at: SocketAddr) -> String {
        self.client(at).id().unwrap().to_string()
    }

    /// `from` sends `text` to the client at `to`; `ms` later it was
    /// delivered, and shown at `to` once (and nothing else happened at
    /// either). The message's number.
    fn chat(&mut self, from: SocketAddr, to: SocketAddr, text: &str, ms: u64) -> u32 {
        let (f, t) = (self.name(from), self.name(to));
        let m = self.send_message(from, id(&t), text).unwrap();
        self.run(ms);
        assert_eq!(self.take(from), [format!("delivered {t} #{m}")]);
        assert_eq!(self.take(to), [format!("msg {f}: {text}")]);
        m
    }

    /// Put a datagram on the wire, with the network's faults.
    fn put(&mut self, src: SocketAddr, dst: SocketAddr, bytes: &[u8]) {
        self.log.push((self.now, src, dst, label(bytes)));
        self.raw.push(bytes.to_vec());
        if self.cut.contains(&src) || self.cut.contains(&dst) || self.mute.contains(&src) {
            return;
        }
        if self
            .blocked
            .iter()
            .any(|&(x, y)| (x, y) == (src, dst) || (y, x) == (src, dst))
            || self.oneway.contains(&(src, dst))
        {
            return;
        }
        let server = addr(SERVER);
        let (mut src, mut dst) = (src, dst);
        if let Some(&(_, out)) = self.nat.iter().find(|(i, _)| *i == src) {
            if dst == server {
                src = out;
            }
        }
        if let Some(&(inside, _)) = self.nat.iter().find(|(_, o)| *o == dst) {
            if src != server {
                return;
            }
            dst = inside;
        }
        let f = self.faults;
        if self.dice.percent(f.loss) {
            return;
        }
        let copies = if self.dice.percent(f.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = 1 + if f.jitter > 0 {
                self.dice.below(f.jitter)
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
            while !self.unread.contains(&a) {
                let c = self.clients.get_mut(&a).unwrap();
                let Some(e) = c.poll_event() else { break };
                let s = show(&e);
                // First sight of a key comes with every first contact:
                // kept apart so that the chat's events read as before.
                let list = if s.starts_with("key first seen") {
                    self.first_seen.entry(a).or_default()
                } else {
                    self.events.get_mut(&a).unwrap()
                };
                list.push(s);
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
                    self.inbox.push((src, dst, label(&bytes)));
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

    /// The messages shown at `at` (its other events dropped).
    fn take_messages(&mut self, at: SocketAddr) -> Vec<String> {
        let mut events = self.take(at);
        events.retain(|e| e.starts_with("msg"));
        events
    }

    /// Every datagram so far, to read why a test failed.
    fn dump_log(&self) {
        for (t, s, d, x) in &self.log {
            std::eprintln!(
                "{} {s} -> {d}: {}",
                t.0,
                x.chars().take(60).collect::<String>()
            );
        }
    }

    /// The bytes of the datagrams sent by `src` whose text starts with `prefix`.
    fn sent_raw(&self, src: SocketAddr, prefix: &str) -> Vec<Vec<u8>> {
        self.log
            .iter()
            .zip(&self.raw)
            .filter(|((_, s, _, t), _)| *s == src && t.starts_with(prefix))
            .map(|(_, r)| r.clone())
            .collect()
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

/// Alice and bob, registered on `net`.
fn alice_and_bob(net: &mut Net) -> (SocketAddr, SocketAddr) {
    let [a, b] = net.registered([(ALICE, Net::config("alice")), (BOB, Net::config("bob"))]);
    (a, b)
}

/// A fresh net where alice and bob registered.
fn two() -> (Net, SocketAddr, SocketAddr) {
    let mut net = Net::new();
    let (a, b) = alice_and_bob(&mut net);
    (net, a, b)
}

/// A fresh net where alice and bob registered and have a session between
/// them: alice's `text` was delivered and shown.
fn talking(text: &str) -> (Net, SocketAddr, SocketAddr) {
    let (mut net, a, b) = two();
    net.chat(a, b, text, 1000);
    (net, a, b)
}
