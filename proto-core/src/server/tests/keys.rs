//! The key rules: a registration binds its id to a public key for the
//! whole lease, and the server repeats that key wherever it tells one
//! client about another.

extern crate std;

use std::format;
use std::string::String;

use super::{C120, C150, C170, Harness};
use crate::server::{Config, ErrorCode};

const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const K2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

impl Harness {
    /// Register `id` from `from` with `key`; the token.
    fn register_key(&mut self, from: &str, id: &str, key: &str) -> String {
        self.register_with(from, id, &format!(" - - {key}")).1
    }

    fn lookup(&mut self, from: &str, id: &str) -> String {
        self.ask(from, |c| format!("LOOKUP l {c} {id}"))
    }

    /// Send `REG 2` for alice from `from` with `fields` after the id, and
    /// see it refused as `key-taken`; the cookie it used.
    fn key_taken(&mut self, from: &str, fields: &str) -> String {
        let c = self.cookie(from);
        let r = self.one_reply(from, &format!("REG 2 {c} alice {fields}"));
        assert_eq!(r, "ERR 2 key-taken");
        c
    }
}

#[test]
fn at_and_punch_carry_the_key_or_say_seed_or_none() {
    let mut h = Harness::new(1024, Config::default());
    let ta = h.register_key(C120, "alice", K1);
    h.register(C150, "bob");
    h.send(C170, "ID carol");
    assert_eq!(h.lookup(C150, "alice"), format!("AT l alice {C120} {K1}"));
    assert_eq!(h.lookup(C120, "bob"), format!("AT l bob {C150} -"));
    assert_eq!(h.lookup(C120, "carol"), format!("AT l carol {C170} seed"));
    let c = h.cookie(C120);
    h.send(C120, &format!("INTRO 5 {c} alice {ta} bob"));
    assert_eq!(h.take_to(C150), [format!("PUNCH alice {C120} {K1}")]);
    assert_eq!(h.take_to(C120), [format!("AT 5 bob {C150} -")]);
    // The seed's own lookup is unchanged: no key in a seed reply.
    h.take();
    h.send(C150, "Peer alice");
    assert_eq!(h.take_to(C150), ["Peer ('127.0.0.1', 10520)"]);
}

#[test]
fn a_renewal_under_another_key_is_refused_and_changes_nothing() {
    let mut h = Harness::new(1024, Config::default());
    let t = h.register_key(C120, "alice", K1);
    // The token's holder, from a new address, with a shorter lease.
    let c = h.key_taken(C150, &format!("15 {t} {K2}"));
    assert_eq!(h.lookup(C170, "alice"), format!("AT l alice {C120} {K1}"));
    // The lease was not shortened to 15 s either.
    h.advance(60_000);
    assert_eq!(h.lookup(C170, "alice"), format!("AT l alice {C120} {K1}"));
    // The same key renews; no key renews and keeps the key.
    let r = h.one_reply(C150, &format!("REG 3 {c} alice 60 {t} {K1}"));
    assert_eq!(r, format!("REGD 3 alice 60 {C150} {t}"));
    let r = h.one_reply(C150, &format!("REG 4 {c} alice - {t}"));
    assert_eq!(r, format!("REGD 4 alice 120 {C150} {t}"));
    assert_eq!(h.lookup(C170, "alice"), format!("AT l alice {C150} {K1}"));
    assert_eq!(h.server.stats().errors_of(ErrorCode::KeyTaken), 1);
}

#[test]
fn a_retransmitted_reg_under_another_key_gets_no_token() {
    let mut h = Harness::new(1024, Config::default());
    let t = h.register_key(C120, "alice", K1);
    let c = h.key_taken(C120, &format!("- - {K2}"));
    let r = h.one_reply(C120, &format!("REG 3 {c} alice - - {K1}"));
    assert_eq!(r, format!("REGD 3 alice 120 {C120} {t}"));
    assert_eq!(h.lookup(C170, "alice"), format!("AT l alice {C120} {K1}"));
}

#[test]
fn a_keyless_registration_cannot_gain_a_key_while_it_lives() {
    let mut h = Harness::new(1024, Config::default());
    let t = h.register(C120, "alice");
    h.key_taken(C120, &format!("- {t} {K1}"));
    assert_eq!(h.lookup(C170, "alice"), format!("AT l alice {C120} -"));
}

#[test]
fn after_the_lease_ends_a_new_registration_may_bring_a_new_key() {
    let mut h = Harness::new(1024, Config::default());
    let r = h.ask(C120, |c| format!("REG 1 {c} alice 15 - {K1}"));
    assert!(r.starts_with("REGD 1 alice 15 "), "{r}");
    h.advance(15_000);
    h.register_key(C150, "alice", K2);
    assert_eq!(h.lookup(C170, "alice"), format!("AT l alice {C150} {K2}"));
}
