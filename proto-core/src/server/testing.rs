//! What the crate's unit tests share to stand a server up and talk to it.
//! Tests outside the crate use `testkit::tables`, which cannot serve here:
//! a unit test builds its own copy of this crate, whose types are not
//! testkit's.

extern crate std;

use std::boxed::Box;
use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use core::net::SocketAddr;

use super::{Config, Layout, Outbox, Server, Storage, VecOutbox};
use crate::limit::{QuotaCell, RateCell};
use crate::registry::Slot;
use crate::time::Instant;
use crate::wire::{ErrorCode, Reply};

/// Empty tables for `capacity` registrations, never freed: each test
/// builds a few, and `'static` lets a harness own its server.
pub(crate) fn leaked_storage(capacity: usize) -> Storage<'static> {
    fn leak<T: Clone>(v: T, n: usize) -> &'static mut [T] {
        Box::leak(vec![v; n].into_boxed_slice())
    }
    let l = Layout::for_capacity(capacity);
    Storage {
        slots: leak(Slot::EMPTY, l.slots),
        index: leak(0u32, l.index),
        rate: leak(RateCell::EMPTY, l.rate),
        quota: leak(QuotaCell::EMPTY, l.quota),
    }
}

/// A test's address, written as text.
pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The default configuration as `change` leaves it.
pub(crate) fn configured(change: impl FnOnce(&mut Config)) -> Config {
    let mut cfg = Config::default();
    change(&mut cfg);
    cfg
}

/// The default configuration with every limit off, for tests that fill
/// tables faster than any budget allows.
pub(crate) fn unlimited() -> Config {
    configured(|c| c.limits = false)
}

/// The default configuration with a per-source rate of `per_sec`
/// requests a second and bursts of `burst`.
pub(crate) fn rate_limited(per_sec: u32, burst: u32) -> Config {
    configured(|c| (c.rate_per_sec, c.rate_burst) = (per_sec, burst))
}

/// The code of an `ERR` reply; any other reply fails the test.
pub(crate) fn err_code(reply: &str) -> ErrorCode {
    match Reply::parse(reply.as_bytes()) {
        Ok(Reply::Error { code, .. }) => code,
        other => panic!("expected ERR, got {other:?} from {reply:?}"),
    }
}

/// A server with its own clock and outbox, driven one datagram at a time.
/// The outbox is boxed: a test thread's stack holds a few harnesses only
/// if their queues are elsewhere.
pub(crate) struct Harness {
    pub(crate) server: Server<'static>,
    pub(crate) out: Box<VecOutbox<256>>,
    pub(crate) now: Instant,
}

impl Harness {
    pub(crate) fn new(capacity: usize, cfg: Config) -> Self {
        let storage = leaked_storage(capacity);
        Harness {
            server: Server::new(cfg, storage, [42; 32]).unwrap(),
            out: Box::new(VecOutbox::new()),
            now: Instant::from_secs(1000),
        }
    }

    /// Hand the server a text datagram; what it sends waits in the outbox.
    pub(crate) fn send(&mut self, from: &str, d: &str) {
        self.server
            .handle(self.now, addr(from), d.as_bytes(), &mut *self.out);
    }

    /// Hand the server any datagram and take everything it sent.
    pub(crate) fn exchange(&mut self, from: &str, d: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
        self.server.handle(self.now, addr(from), d, &mut *self.out);
        self.take_bytes()
    }

    /// The one text datagram a request caused, which must go back to
    /// `from`: the server sent nothing else.
    pub(crate) fn text(&mut self, from: &str, d: &str) -> String {
        let r = self.exchange(from, d.as_bytes());
        assert_eq!(r.len(), 1, "{d}: {r:?}");
        assert_eq!(r[0].0, addr(from));
        String::from_utf8(r[0].1.clone()).unwrap()
    }

    pub(crate) fn tick(&mut self) {
        self.server.tick(self.now, &mut *self.out);
    }

    pub(crate) fn advance(&mut self, ms: u64) {
        self.now = Instant(self.now.0 + ms);
    }

    /// Let `ms` pass, then tick.
    pub(crate) fn tick_after(&mut self, ms: u64) {
        self.advance(ms);
        self.tick();
    }

    /// Every datagram sent since the last call, as (destination, octets).
    pub(crate) fn take_bytes(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut v = Vec::new();
        while let Some((dst, bytes)) = self.out.pop() {
            v.push((dst, bytes.to_vec()));
        }
        v
    }

    /// Every datagram sent since the last call, as (destination, text).
    pub(crate) fn take(&mut self) -> Vec<(SocketAddr, String)> {
        self.take_bytes()
            .into_iter()
            .map(|(dst, bytes)| (dst, String::from_utf8(bytes).unwrap()))
            .collect()
    }

    /// The datagrams sent to `to` since the last call (others are kept).
    pub(crate) fn take_to(&mut self, to: &str) -> Vec<String> {
        let to = addr(to);
        let all = self.take();
        let mut mine = Vec::new();
        for (dst, text) in all {
            if dst == to {
                mine.push(text);
            } else {
                self.out.send(dst, text.as_bytes()).unwrap();
            }
        }
        mine
    }

    /// The one reply to `from` that `d` caused (others are kept).
    pub(crate) fn one_reply(&mut self, from: &str, d: &str) -> String {
        self.send(from, d);
        let got = self.take_to(from);
        assert_eq!(got.len(), 1, "expected one reply to {d:?}, got {got:?}");
        got.into_iter().next().unwrap()
    }

    /// A cookie for `from`, from a padded `HELLO`.
    pub(crate) fn cookie(&mut self, from: &str) -> String {
        let hello = format!("HELLO c {}", ".".repeat(90));
        let r = self.one_reply(from, &hello);
        match Reply::parse(r.as_bytes()).unwrap() {
            Reply::Cookie {
                cookie, addr: a, ..
            } => {
                assert_eq!(a, addr(from));
                cookie.to_string()
            }
            other => panic!("expected COOKIE, got {other:?}"),
        }
    }

    /// The one reply to the request `request` builds around a fresh
    /// cookie for `from`.
    pub(crate) fn ask(&mut self, from: &str, request: impl FnOnce(&str) -> String) -> String {
        let c = self.cookie(from);
        self.one_reply(from, &request(&c))
    }

    /// Seed ids `s0` up to `s{n-1}`, each sent from an address of its own.
    pub(crate) fn seed_ids(&mut self, n: usize) {
        for i in 0..n {
            let from = format!("127.1.{}.{}:1", i / 250, i % 250 + 1);
            self.send(&from, &format!("ID s{i}"));
        }
    }

    /// Register `id` at `from` with the `REG` fields after it (lease,
    /// token, key, or nothing): the cookie it used and the token.
    pub(crate) fn register_with(&mut self, from: &str, id: &str, more: &str) -> (String, String) {
        let c = self.cookie(from);
        let r = self.one_reply(from, &format!("REG r {c} {id}{more}"));
        match Reply::parse(r.as_bytes()).unwrap() {
            Reply::Registered { token, .. } => (c, token.to_string()),
            other => panic!("expected REGD for {id}, got {other:?}"),
        }
    }

    /// Register `id` at `from` for the default lease: the token.
    pub(crate) fn register(&mut self, from: &str, id: &str) -> String {
        self.register_with(from, id, "").1
    }
}
