//! The `peer` target: the end-to-end rules under attack.
//!
//! Alice and bob (two sans-IO clients, no server: alice learns bob's
//! address and key from a `PUNCH`) complete a Noise handshake and alice
//! sends one message. The input then drives an attacker: each step takes
//! a datagram alice sent bob (or raw input bytes), replays it, flips,
//! truncates or extends it, and sends it to bob from alice's address or
//! another. After every step:
//!
//! - no panic;
//! - bob shows nothing verified but what alice wrote, and that once;
//! - bob sends the attacker's address nothing larger than it sent him,
//!   and never chat;
//! - at the end bob's reply still reaches alice, and only alice.

use std::collections::HashSet;

use proto_core::Instant;
use proto_core::client::{Client, Event};
use proto_core::wire::Id;
use testkit::peers::{ALICE, BOB, SERVER, addr, client};

const MALLORY: &str = "203.0.113.66:4000";

struct World {
    a: Box<Client>,
    b: Box<Client>,
    now: u64,
    /// Every datagram alice sent bob.
    seen: Vec<Vec<u8>>,
    /// What bob showed as verified.
    shown: Vec<String>,
    /// What alice showed.
    alice_shown: Vec<String>,
}

impl World {
    /// Move datagrams between alice and bob until both are quiet; bob's
    /// datagrams to anyone else are checked against what `sent_in` was.
    fn settle(&mut self, sent_in: usize) {
        let (aa, ba, ma) = (addr(ALICE), addr(BOB), addr(MALLORY));
        for _ in 0..64 {
            let mut any = false;
            while let Some(t) = self.a.poll_transmit() {
                if t.dst == ba {
                    self.seen.push(t.payload.to_vec());
                    self.b.handle(Instant(self.now), aa, &t.payload);
                }
                any = true;
            }
            while let Some(t) = self.b.poll_transmit() {
                if t.dst == aa {
                    self.a.handle(Instant(self.now), ba, &t.payload);
                } else if t.dst == ma {
                    assert!(
                        t.payload.len() <= sent_in,
                        "bob answered the attacker {} bytes for {sent_in}",
                        t.payload.len()
                    );
                    assert!(t.payload[0] != 0xFA, "no transport to the attacker");
                }
                any = true;
            }
            while let Some(e) = self.b.poll_event() {
                if let Event::Message {
                    text,
                    verified: true,
                    ..
                } = e
                {
                    self.shown.push(text.to_string());
                }
            }
            while let Some(e) = self.a.poll_event() {
                if let Event::Message { text, .. } = e {
                    self.alice_shown.push(text.to_string());
                }
            }
            if !any {
                return;
            }
        }
    }

    fn tick(&mut self, ms: u64) {
        self.now += ms;
        let t = Instant(self.now);
        if self.a.poll_timeout().is_some_and(|x| x <= t) {
            self.a.handle_timeout(t);
        }
        if self.b.poll_timeout().is_some_and(|x| x <= t) {
            self.b.handle_timeout(t);
        }
        self.settle(0);
    }
}

/// Run the attack `data` describes and check the rules.
pub fn check(data: &[u8]) {
    let mut w = World {
        a: client("alice", 1),
        b: client("bob", 2),
        now: 2,
        seen: Vec::new(),
        shown: Vec::new(),
        alice_shown: Vec::new(),
    };
    let punch = format!("PUNCH bob {BOB} {}", w.b.public_key());
    w.a.handle(Instant(w.now), addr(SERVER), punch.as_bytes());
    w.settle(0);
    let bob = Id::new("bob").expect("id");
    w.a.send_message(Instant(w.now), bob, "hello bob")
        .expect("room for one message");
    w.settle(0);
    let written: HashSet<&str> = ["hello bob"].into_iter().collect();

    let mut raw = data;
    for op in data.chunks(3) {
        let [kind, pick, arg] = [op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0)];
        let from_mallory = kind & 0x80 != 0;
        let src = if from_mallory {
            addr(MALLORY)
        } else {
            addr(ALICE)
        };
        let mut d = if w.seen.is_empty() {
            Vec::new()
        } else {
            w.seen[usize::from(pick) % w.seen.len()].clone()
        };
        match kind & 0x07 {
            0 => {}
            1 if !d.is_empty() => {
                let i = usize::from(arg) % d.len();
                d[i] ^= pick | 1;
            }
            2 => d.truncate(usize::from(arg)),
            3 => d.extend_from_slice(&raw[..raw.len().min(usize::from(arg))]),
            4 => {
                // Raw input bytes as a datagram of their own.
                let n = raw.len().min(usize::from(arg) + 1);
                d = raw[..n].to_vec();
                raw = &raw[n..];
            }
            5 => {
                w.tick(u64::from(arg) * 50);
                continue;
            }
            _ => {}
        }
        if d.is_empty() {
            continue;
        }
        w.b.handle(Instant(w.now), src, &d);
        w.settle(if from_mallory { d.len() } else { usize::MAX });
        for s in &w.shown {
            assert!(
                written.contains(s.as_str()),
                "bob showed {s:?}, which alice never wrote"
            );
        }
        assert!(w.shown.len() <= 1, "shown more than once: {:?}", w.shown);
    }
    // Bob answers alice, at alice.
    w.b.send_message(Instant(w.now), Id::new("alice").expect("id"), "hi alice")
        .expect("room for one message");
    for _ in 0..20 {
        w.tick(500);
    }
    assert_eq!(w.shown, ["hello bob"], "alice's message once");
    assert!(
        w.alice_shown.iter().any(|t| t == "hi alice"),
        "bob's reply reached alice: {:?}",
        w.alice_shown
    );
}
