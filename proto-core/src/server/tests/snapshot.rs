//! Restarts: a new server restored from a stopped one's entries carries on.

extern crate std;

use std::format;
use std::string::String;
use std::vec::Vec;

use super::{C120, C150, C170, Harness, configured};
use crate::registry::Entry;
use crate::server::{Config, RestoreError, Restored};
use crate::time::Instant;
use crate::wire::Reply;

const KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";

/// A restart: a new server with the same entropy, its clock moved on by `down` ms.
fn restart(h: &Harness, cfg: Config, down: u64) -> (Harness, Restored) {
    let mut n = Harness::new(h.server.reg.capacity(), cfg);
    n.now = Instant(h.now.0 + down);
    let saved: Vec<Entry> = h.server.entries().copied().collect();
    let r = n
        .server
        .restore(n.now, h.server.continuity(), saved)
        .unwrap();
    (n, r)
}

fn token_of(reply: &str) -> String {
    match Reply::parse(reply.as_bytes()).unwrap() {
        Reply::Registered { token, .. } => format!("{token}"),
        other => panic!("expected REGD, got {other:?}"),
    }
}

/// Run `f` on a thread with room for two servers and their outboxes on
/// its stack (a debug build's test thread has too little).
fn with_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(32 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_restarted_server_carries_on() {
    with_stack(carries_on);
}

fn carries_on() {
    let mut h = Harness::new(1024, Config::default());
    h.send(C170, "ID 170");
    let c = h.cookie(C120);
    let t = token_of(&h.one_reply(C120, &format!("REG 1 {c} alice - - {KEY}")));
    let cb = h.cookie(C150);
    let tb = token_of(&h.one_reply(C150, &format!("REG 2 {cb} bob")));
    h.one_reply(C150, &format!("SUB 3 {cb} bob {tb}"));
    h.tick();
    h.take();
    let before = h.server.continuity();

    let (mut n, r) = restart(&h, Config::default(), 30_000);
    assert_eq!(
        r,
        Restored {
            live: 3,
            expired: 0
        }
    );
    n.server.audit(n.now).unwrap();
    assert_eq!(n.server.continuity(), before);
    assert_eq!(n.server.stats().occupancy, 3);
    assert_eq!(n.server.reg.subscriber_count(), 2, "bob and the seed 170");
    // The cookie from before the restart still works; so does the token.
    let r = n.one_reply(C120, &format!("KEEP 4 {c} alice {t}"));
    assert!(r.starts_with(&format!("ALIVE 4 120 {C120} ")), "{r}");
    // The key stayed, and nobody else can take the ids.
    let r = n.one_reply(C150, &format!("LOOKUP 5 {cb} alice"));
    assert_eq!(r, format!("AT 5 alice {C120} {KEY}"));
    let r = n.one_reply(C150, &format!("REG 6 {cb} alice"));
    assert_eq!(r, "ERR 6 id-taken");
    let r = n.one_reply(C150, &format!("LOOKUP 7 {cb} 170"));
    assert_eq!(r, format!("AT 7 170 {C170} seed"));
    // Seed order is kept: the seed client's next list is the same.
    n.send(C150, "ID 150");
    n.tick_after(200);
    assert_eq!(n.take_to(C170), ["List ['170', 'alice', 'bob', '150']"]);
    // A new registration gets a token never issued before.
    let cn = n.cookie(C120);
    let t2 = token_of(&n.one_reply(C120, &format!("REG 8 {cn} carol")));
    assert_ne!(t2, t);
    assert_ne!(t2, tb);
}

#[test]
fn leases_run_on_through_the_downtime() {
    with_stack(leases_run_on);
}

fn leases_run_on() {
    let mut h = Harness::new(1024, Config::default());
    let c = h.cookie(C120);
    h.one_reply(C120, &format!("REG 1 {c} short 15"));
    h.one_reply(C120, &format!("REG 2 {c} long 600"));
    let (mut n, r) = restart(&h, Config::default(), 20_000);
    assert_eq!(
        r,
        Restored {
            live: 1,
            expired: 1
        }
    );
    let r = n.ask(C150, |c| format!("LOOKUP 3 {c} short"));
    assert_eq!(r, "ERR 3 no-such-id");
    n.advance(579_000);
    let c = n.cookie(C150);
    let r = n.one_reply(C150, &format!("LOOKUP 4 {c} long"));
    assert!(r.starts_with("AT 4 long"), "{r}");
    n.advance(1_000);
    let r = n.one_reply(C150, &format!("LOOKUP 5 {c} long"));
    assert_eq!(
        r, "ERR 5 no-such-id",
        "600 s from the REG, downtime included"
    );
}

/// A stopped server's entries: five seed ids, and its clock.
fn five_saved() -> (Vec<Entry>, crate::server::Continuity, Instant) {
    let mut h = Harness::new(1024, Config::default());
    for i in 0..5 {
        h.send(C120, &format!("ID s{i}"));
    }
    let saved = h.server.entries().copied().collect();
    (saved, h.server.continuity(), h.now)
}

#[test]
fn a_table_smaller_than_the_saved_live_count_is_refused() {
    let (saved, c, now) = five_saved();
    let mut small = Harness::new(4, Config::default());
    let err = small.server.restore(now, c, saved).unwrap_err();
    assert_eq!(
        err,
        RestoreError::TooMany {
            live: 5,
            capacity: 4
        }
    );
    assert!(format!("{err}").contains("holds 4"), "{err}");
}

#[test]
fn restore_goes_only_into_an_empty_table() {
    let (saved, c, now) = five_saved();
    let mut used = Harness::new(1024, Config::default());
    used.send(C150, "ID x");
    let err = used.server.restore(now, c, saved).unwrap_err();
    assert_eq!(err, RestoreError::NotEmpty);
}

#[test]
fn an_id_saved_twice_is_refused() {
    let (mut saved, c, now) = five_saved();
    saved.push(saved[0]);
    let mut fresh = Harness::new(1024, Config::default());
    let err = fresh.server.restore(now, c, saved).unwrap_err();
    assert_eq!(err, RestoreError::Duplicate);
}

#[test]
fn restored_ids_count_against_quotas_and_seed_holders_keep_asking_for_lists() {
    with_stack(quotas_and_holders);
}

/// A seed client on another address than C120's.
const OTHER: &str = "127.0.0.2:10150";

fn quotas_and_holders() {
    let cfg = configured(|c| c.quota_per_source = 2);
    let mut h = Harness::new(1024, cfg.clone());
    h.send(C120, "ID 120");
    h.register(C120, "alice");
    h.send(OTHER, "ID 150");
    h.tick();
    h.tick_after(2_000);
    h.take();
    let (mut n, r) = restart(&h, cfg, 1_000);
    assert_eq!(r.live, 3);
    // C120's address holds two ids, its quota: a third is refused.
    let r = n.ask(C120, |c| format!("REG 1 {c} bob"));
    assert_eq!(r, "ERR 1 over-quota");
    // 150 still holds a seed id, so its ID2 still asks for a list round.
    n.advance(2_000);
    n.send(OTHER, "ID2 ");
    n.tick_after(200);
    assert_eq!(n.take_to(OTHER), ["List ['120', 'alice', '150']"]);
    assert_eq!(n.take_to(C120), ["List ['120', 'alice', '150']"]);
}
