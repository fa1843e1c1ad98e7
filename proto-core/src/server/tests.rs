//! Table tests for every rule of the state machine, driven with explicit
//! times and addresses.

extern crate std;

use std::boxed::Box;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use core::net::SocketAddr;

use super::testing::{Harness, addr, configured, err_code, rate_limited, unlimited};
use super::*;
use crate::wire::{Cookie, Id, Reply, Token};

const C120: &str = "127.0.0.1:10520";
const C150: &str = "127.0.0.1:10107";
const C170: &str = "127.0.0.1:10128";

/// Figures 10 to 13 of the seed document, datagram by datagram.
#[test]
fn seed_session_of_figures_10_to_13() {
    const L120: &[&str] = &["List ['120']"];
    const L2: &[&str] = &["List ['120', '150']"];
    const L3: &[&str] = &["List ['120', '150', '170']"];
    const L120_170: &[&str] = &["List ['120', '170']"];
    // (sender, datagram, what each address then gets: a `Peer` question
    // its answer at once, anything else the lists of a tick 2 s later).
    #[allow(clippy::type_complexity)]
    let script: &[(&str, &str, &[(&str, &[&str])])] = &[
        (C120, "ID 120", &[(C120, L120)]),
        (C150, "ID 150", &[(C120, L2), (C150, L2)]),
        // 120 says y, 150: the server answers with 150's address...
        (C120, "Peer 150", &[(C120, &["Peer ('127.0.0.1', 10107)"])]),
        // ...120 sends "Message hi" to 150 directly, then "ID2 " to the server.
        (C120, "ID2 ", &[(C120, L2), (C150, L2)]),
        (C170, "ID 170", &[(C120, L3), (C150, L3), (C170, L3)]),
        (C170, "Peer 120", &[(C170, &["Peer ('127.0.0.1', 10520)"])]),
        (C170, "ID2 ", &[(C120, L3), (C150, L3), (C170, L3)]),
        (
            C150,
            "Quit 150",
            &[(C150, &[]), (C120, L120_170), (C170, L120_170)],
        ),
        (C120, "Peer 170", &[(C120, &["Peer ('127.0.0.1', 10128)"])]),
        (C120, "ID2 ", &[(C120, L120_170), (C170, L120_170)]),
        (C170, "Quit 170", &[(C120, L120)]),
        (C120, "Quit 120", &[]),
    ];
    let mut h = Harness::new(1024, Config::default());
    for (from, d, want) in script {
        h.send(from, d);
        if !d.starts_with("Peer ") {
            h.tick_after(2000);
        }
        for (to, got) in *want {
            assert_eq!(h.take_to(to), *got, "{to} after {d:?} from {from}");
        }
    }
    assert!(h.take().is_empty());
    assert_eq!(h.server.stats().occupancy, 0);
}

#[test]
fn seed_peer_for_unknown_id_is_nopeer() {
    let mut h = Harness::new(1024, Config::default());
    assert_eq!(h.one_reply(C120, "Peer 999"), "NoPeer");
}

#[test]
fn seed_ids_belong_to_the_address_that_registered_them() {
    let mut h = Harness::new(1024, Config::default());
    h.send(C120, "ID 120");
    h.tick();
    h.take();
    // Someone else claims 120 (and is told), then tries to quit it.
    h.send(C150, "ID 120");
    h.send(C150, "Quit 120");
    h.tick_after(1000);
    assert_eq!(
        h.take_to(C150),
        ["Message parley-server: the id 120 is taken"]
    );
    assert_eq!(h.one_reply(C170, "Peer 120"), "Peer ('127.0.0.1', 10520)");
    assert_eq!(h.server.stats().seed_refused, 2);
    // Registering again from the owner does not duplicate the id.
    h.send(C120, "ID 120");
    h.tick_after(1000);
    assert_eq!(h.take_to(C120), ["List ['120']"]);
}

#[test]
fn strict_mode_drops_seed_verbs() {
    let mut h = Harness::new(1024, configured(|c| c.strict = true));
    h.send(C120, "ID 120");
    h.send(C120, "Peer 120");
    h.tick();
    assert!(h.take().is_empty());
    assert_eq!(h.server.stats().drop_strict, 2);
    assert_eq!(h.server.stats().occupancy, 0);
}

#[test]
fn hello_is_answered_only_when_padded() {
    let mut h = Harness::new(1024, Config::default());
    h.send(C120, "HELLO 1");
    assert!(h.take().is_empty());
    assert_eq!(h.server.stats().drop_amplification, 1);
    let c = h.cookie(C120);
    assert_eq!(c.len(), 16);
}

#[test]
fn requests_without_a_valid_cookie_change_nothing() {
    let mut h = Harness::new(1024, Config::default());
    let r = h.one_reply(C120, "REG 1 - alice-the-first");
    assert_eq!(err_code(&r), ErrorCode::BadCookie);
    // A cookie issued to another address does not work either.
    let other = h.cookie(C150);
    let r = h.one_reply(C120, &format!("REG 2 {other} alice"));
    assert_eq!(err_code(&r), ErrorCode::BadCookie);
    assert_eq!(h.server.stats().occupancy, 0);
    // Nor does one from two windows ago.
    let c = h.cookie(C120);
    h.advance(2 * 120_000 + 1);
    let r = h.one_reply(C120, &format!("REG 3 {c} alice"));
    assert_eq!(err_code(&r), ErrorCode::BadCookie);
    assert_eq!(h.server.stats().occupancy, 0);
}

#[test]
fn errors_are_never_larger_than_an_unvalidated_request() {
    let mut h = Harness::new(1024, Config::default());
    // "ERR - malformed" is longer than these requests: no reply at all.
    for junk in ["x", "LOOKUP", "REG 1"] {
        h.send(C120, junk);
    }
    let replies = h.take();
    assert!(replies.is_empty(), "unexpected replies {replies:?}");
    // Garbage as long as its error gets the error.
    let r = h.one_reply(
        C120,
        "NONSENSE 42 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    );
    assert_eq!(err_code(&r), ErrorCode::UnknownVerb);
    assert!(r.starts_with("ERR 42 "));
}

#[test]
fn extended_lifecycle() {
    let mut h = Harness::new(1024, Config::default());
    let token = h.register(C120, "alice");
    let c = h.cookie(C150);
    let r = h.one_reply(C150, &format!("LOOKUP 7 {c} alice"));
    assert_eq!(r, format!("AT 7 alice {C120} -"));

    let c120 = h.cookie(C120);
    let r = h.one_reply(C120, &format!("KEEP 8 {c120} alice {token}"));
    assert!(r.starts_with(&format!("ALIVE 8 120 {C120} ")), "{r}");

    let r = h.one_reply(C120, &format!("QUIT 9 {c120} alice {token}"));
    assert_eq!(r, "BYE 9 alice");
    let r = h.one_reply(C150, &format!("LOOKUP 10 {c} alice"));
    assert_eq!(err_code(&r), ErrorCode::NoSuchId);
}

#[test]
fn a_retransmitted_reg_gets_the_same_token() {
    // The REGD was lost and the client sent the same REG again.
    let mut h = Harness::new(1024, Config::default());
    let token = h.register(C120, "alice");
    let r = h.ask(C120, |c| format!("REG 2 {c} alice"));
    assert_eq!(r, format!("REGD 2 alice 120 {C120} {token}"));
    // From any other address it is still taken.
    let r = h.ask(C150, |c| format!("REG 3 {c} alice"));
    assert_eq!(err_code(&r), ErrorCode::IdTaken);
}

#[test]
fn only_the_token_owns_an_extended_id() {
    let mut h = Harness::new(1024, Config::default());
    let token = h.register(C120, "alice");
    let c = h.cookie(C150);
    let wrong = Token(0x1234);
    let r = h.one_reply(C150, &format!("REG 1 {c} alice"));
    assert_eq!(err_code(&r), ErrorCode::IdTaken);
    let r = h.one_reply(C150, &format!("REG 2 {c} alice 60 {wrong}"));
    assert_eq!(err_code(&r), ErrorCode::IdTaken);
    for verb in ["KEEP", "QUIT", "SUB", "UNSUB"] {
        let r = h.one_reply(C150, &format!("{verb} 3 {c} alice {wrong}"));
        assert_eq!(err_code(&r), ErrorCode::NotOwner, "{verb}");
    }
    let r = h.one_reply(C150, &format!("LOOKUP 4 {c} alice"));
    assert_eq!(r, format!("AT 4 alice {C120} -"), "nothing moved");
    // The owner may renew from a new address (its NAT rebound).
    let r = h.one_reply(C150, &format!("REG 5 {c} alice 60 {token}"));
    assert_eq!(r, format!("REGD 5 alice 60 {C150} {token}"));
}

/// Where alice's NAT rebound her: not where she registered.
const MOVED: &str = "127.0.0.9:4000";

/// Register alice at `C120`, then send what `request` builds from a
/// cookie and her token from [`MOVED`]: its reply, and what a lookup
/// from there then says of alice.
fn from_moved(request: impl FnOnce(&str, &str) -> String) -> (String, String) {
    let mut h = Harness::new(1024, Config::default());
    let token = h.register(C120, "alice");
    let c = h.cookie(MOVED);
    let r = h.one_reply(MOVED, &request(&c, &token));
    (r, h.one_reply(MOVED, &format!("LOOKUP l {c} alice")))
}

#[test]
fn keepalive_follows_a_rebound_address() {
    let (r, at) = from_moved(|c, t| format!("KEEP 1 {c} alice {t}"));
    assert!(r.starts_with(&format!("ALIVE 1 120 {MOVED} ")), "{r}");
    assert_eq!(at, format!("AT l alice {MOVED} -"));
}

#[test]
fn leases_expire_and_are_never_served_after() {
    let mut h = Harness::new(1024, Config::default());
    let c = h.cookie(C120);
    let r = h.one_reply(C120, &format!("REG 1 {c} alice 1"));
    assert!(
        r.starts_with("REGD 1 alice 15 "),
        "clamped to lease_min: {r}"
    );
    h.advance(14_000);
    let r = h.one_reply(C120, &format!("LOOKUP 2 {c} alice"));
    assert!(r.starts_with("AT 2 alice"));
    h.advance(1_000);
    let r = h.one_reply(C120, &format!("LOOKUP 3 {c} alice"));
    assert_eq!(err_code(&r), ErrorCode::NoSuchId);
    assert_eq!(h.server.stats().occupancy, 0);
}

/// A harness on `capacity` slots whose clock hand has started, holding
/// the seed ids `s0` up to `s{n-1}` for the seed lease (an hour).
fn sown(capacity: usize, cfg: Config, n: usize) -> Harness {
    let mut h = Harness::new(capacity, cfg);
    h.tick();
    h.seed_ids(n);
    h
}

/// (ids expired, ids held): where the clock hand has got to.
fn swept(h: &Harness) -> (u64, u64) {
    let s = h.server.stats();
    (s.expired, s.occupancy)
}

#[test]
fn the_clock_hand_reclaims_without_lookups() {
    let mut h = sown(1024, Config::default(), 10);
    assert_eq!(h.server.stats().occupancy, 10);
    h.tick_after(3_600_000);
    assert_eq!(swept(&h), (10, 0));
}

#[test]
fn the_clock_hand_goes_round_in_ten_seconds_whatever_the_traffic() {
    // Seed registrations in slots 0..6000.
    let mut h = sown(16384, unlimited(), 6000);
    h.tick_after(3_599_000);
    assert_eq!(
        h.server.stats().expired,
        0,
        "a second before the leases end"
    );
    // One second's share of a 10 s round: slots 0..1638.
    h.tick_after(1000);
    assert_eq!(h.server.stats().expired, 1638);
    // Datagrams leave the sweep alone: no request waits on the clock hand.
    for _ in 0..20_000 {
        h.send("127.0.0.99:1", "HELLO 1");
    }
    h.out.clear();
    assert_eq!(h.server.stats().expired, 1638);
    // Nine seconds more finish the round.
    h.tick_after(9000);
    assert_eq!(swept(&h), (6000, 0));
}

#[test]
fn frequent_ticks_on_a_small_table_still_sweep() {
    let mut h = sown(1024, Config::default(), 10);
    h.tick_after(3_599_995);
    h.send("127.0.0.99:1", "ID fresh");
    assert_eq!(h.server.stats().expired, 0, "5 ms before the leases end");
    // A 1024-slot table is due one slot every 9.8 ms: ticks 5 ms apart
    // carry the remainder over, and ten seconds sweep it all.
    for _ in 0..2000 {
        h.tick_after(5);
    }
    assert_eq!(swept(&h), (10, 1), "only the fresh id is left");
}

#[test]
fn a_full_table_refuses_and_evicts_nobody() {
    let mut h = Harness::new(1024, unlimited());
    for i in 0..1024 {
        h.register(
            &format!("127.0.{}.{}:7", i / 250, i % 250 + 1),
            &format!("id{i}"),
        );
    }
    let c = h.cookie(C120);
    let r = h.one_reply(C120, &format!("REG 1 {c} late"));
    assert_eq!(err_code(&r), ErrorCode::TableFull);
    assert_eq!(
        h.one_reply(C120, "ID late2"),
        "Message parley-server: the table is full"
    );
    assert_eq!(h.server.stats().seed_refused, 1);
    for i in (0..1024).step_by(97) {
        let r = h.one_reply(C120, &format!("LOOKUP 2 {c} id{i}"));
        assert!(r.starts_with("AT 2 "), "{r}");
    }
    // Once leases run out there is room again.
    h.advance(121_000);
    let r = h.ask(C120, |c| format!("REG 3 {c} late"));
    assert!(r.starts_with("REGD 3 late "), "{r}");
}

#[test]
fn quota_per_source_address() {
    let mut h = Harness::new(1024, configured(|c| c.quota_per_source = 2));
    let t = h.register("127.0.0.1:1", "a");
    h.register("127.0.0.1:2", "b");
    let c = h.cookie("127.0.0.1:3");
    let r = h.one_reply("127.0.0.1:3", &format!("REG 1 {c} c"));
    assert_eq!(err_code(&r), ErrorCode::OverQuota);
    // Another address is not affected.
    h.register("127.0.0.2:3", "c");
    // Quitting gives the quota back.
    h.ask("127.0.0.1:1", |c| format!("QUIT 2 {c} a {t}"));
    let r = h.one_reply("127.0.0.1:3", &format!("REG 3 {c} d"));
    assert!(r.starts_with("REGD 3 d "), "{r}");
}

#[test]
fn a_flooding_source_is_rate_limited() {
    let mut h = Harness::new(1024, rate_limited(10, 20));
    for _ in 0..100 {
        h.send(C120, "Peer nobody");
    }
    let answered = h.take().len();
    assert!((20..=21).contains(&answered), "{answered}");
    assert_eq!(h.server.stats().drop_rate_limited, 100 - answered as u64);
    // Other sources are unaffected, and the source recovers with time.
    assert_eq!(h.one_reply("127.0.0.2:1", "Peer nobody"), "NoPeer");
    h.advance(1000);
    assert_eq!(h.one_reply(C120, "Peer nobody"), "NoPeer");
}

#[test]
fn a_flooding_extended_client_is_told_to_slow_down_within_the_error_budget() {
    let mut h = Harness::new(1024, rate_limited(10, 20));
    h.register("127.0.0.7:7", "bob");
    let c = h.cookie(C120);
    let mut sent = Vec::new();
    for i in 0..100 {
        let req = format!("LOOKUP q{i} {c} bob");
        h.send(C120, &req);
        sent.push(req.len());
    }
    let replies = h.take();
    let limited: Vec<&String> = replies
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.ends_with(" rate-limited"))
        .collect();
    // Requests with a valid cookie have a budget of their own (the
    // cookie's HELLO was charged to the other): the whole burst was answered.
    let dropped = h.server.stats().drop_rate_limited;
    assert_eq!(dropped, 100 - 20, "{replies:?}");
    let found = replies.iter().filter(|(_, r)| r.starts_with("AT ")).count();
    assert_eq!(found, 20);
    // Told, but no more often than the error budget allows...
    assert_eq!(limited.len(), 10, "{limited:?}");
    // ...with the request's own transaction id, and never larger than it.
    for r in &limited {
        let tx = r.split(' ').nth(1).unwrap();
        assert!(tx.starts_with('q'), "{r}");
        assert!(r.len() <= sent[0], "{r}");
    }
    // A seed flood is only dropped: the seed protocol has no such reply.
    for _ in 0..50 {
        h.send("127.0.0.9:1", "Peer nobody");
    }
    assert!(
        h.take().iter().all(|(_, r)| r == "NoPeer"),
        "seed clients get no ERR"
    );
}

#[test]
fn error_replies_are_rate_limited_per_source() {
    let mut h = Harness::new(1024, Config::default());
    for i in 0..50 {
        h.send(C120, &format!("REG {i} - alice-the-first"));
    }
    let errors = h.take().len() as u64;
    assert_eq!(errors, 10, "error_rate_per_sec");
    assert_eq!(h.server.stats().drop_error_limited, 40);
}

#[test]
fn introduction_tells_both_sides() {
    let mut h = Harness::new(1024, Config::default());
    let ta = h.register(C120, "a");
    h.register(C150, "b");
    let c = h.cookie(C120);
    h.send(C120, &format!("INTRO 5 {c} a {ta} b"));
    assert_eq!(h.take_to(C150), [format!("PUNCH a {C120} -")]);
    assert_eq!(h.take_to(C120), [format!("AT 5 b {C150} -")]);
    let r = h.one_reply(C120, &format!("INTRO 6 {c} a {ta} nobody"));
    assert_eq!(err_code(&r), ErrorCode::NoSuchId);
    let r = h.one_reply(C120, &format!("INTRO 7 {c} a {} b", Token(1)));
    assert_eq!(err_code(&r), ErrorCode::NotOwner);
}

#[test]
fn a_lightly_used_large_table_lists_in_one_page() {
    // Sixteen times what one page may scan: without the span, this takes
    // sixteen round trips for three ids.
    let mut h = Harness::new(65_536, unlimited());
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        h.send(&format!("127.0.0.{}:1", i + 1), &format!("ID {id}"));
    }
    h.send("127.0.0.2:1", "Quit b");
    let c = h.cookie(C120);
    let r = h.one_reply(C120, &format!("LIST p {c} 0"));
    assert_eq!(r, "PAGE p 0 a c d");
    // A cursor past the span is the end of the listing, not an error.
    let r = h.one_reply(C120, &format!("LIST p {c} 60000"));
    assert_eq!(r, "PAGE p 0");
}

#[test]
fn list_pages_cover_every_id_once() {
    let mut h = Harness::new(4096, unlimited());
    let mut want: Vec<String> = (0..700).map(|i| format!("user-{i:04}-padding")).collect();
    for (i, id) in want.iter().enumerate() {
        h.send(
            &format!("127.0.{}.{}:1", i / 250, i % 250 + 1),
            &format!("ID {id}"),
        );
    }
    let c = h.cookie(C120);
    let mut got = Vec::new();
    let mut cursor = 0;
    let mut pages = 0;
    loop {
        let r = h.one_reply(C120, &format!("LIST p {c} {cursor}"));
        assert!(r.len() <= crate::MAX_DATAGRAM);
        let Reply::Page { next, ids, .. } = Reply::parse(r.as_bytes()).unwrap() else {
            panic!("{r}");
        };
        got.extend(ids.iter().map(|id| id.as_str().to_string()));
        pages += 1;
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert!(pages > 1);
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn subscribers_get_coalesced_events_and_the_latest_state() {
    let mut h = Harness::new(1024, configured(|c| c.presence_interval = Millis(1000)));
    let t = h.register(C120, "watcher");
    let r = h.ask(C120, |c| format!("SUB 1 {c} watcher {t}"));
    let Reply::Subscribed { seq, .. } = Reply::parse(r.as_bytes()).unwrap() else {
        panic!("{r}")
    };
    h.register(C150, "bob");
    h.tick();
    assert_eq!(
        h.take_to(C120),
        [format!("EVENTS {} {} +bob", seq + 1, seq + 1)]
    );
    // Three changes inside one interval arrive as one datagram after it.
    h.register(C170, "carol");
    h.send("127.0.0.5:5", "ID dave");
    h.send("127.0.0.5:5", "Quit dave");
    h.tick();
    assert!(
        h.take_to(C120).is_empty(),
        "coalesced until the interval ends"
    );
    h.tick_after(1000);
    assert_eq!(
        h.take_to(C120),
        [format!("EVENTS {} {} +carol +dave -dave", seq + 2, seq + 4)]
    );
    h.tick();
    assert!(h.take_to(C120).is_empty());
}

#[test]
fn a_subscriber_too_far_behind_is_told_to_resync() {
    let cfg = configured(|c| {
        c.presence_interval = Millis(10_000);
        c.limits = false;
    });
    let mut h = Harness::new(4096, cfg);
    let t = h.register(C120, "watcher");
    h.ask(C120, |c| format!("SUB 1 {c} watcher {t}"));
    h.register(C150, "first");
    h.tick();
    assert_eq!(h.take_to(C120).len(), 1);
    for i in 0..crate::presence::LOG_LEN + 10 {
        h.send(C170, &format!("ID x{i}"));
    }
    h.tick_after(10_000);
    let got = h.take_to(C120);
    let latest = h.server.log.latest();
    assert_eq!(got, [format!("RESYNC {latest}")]);
    assert_eq!(h.server.stats().fanout_resync, 1);
}

#[test]
fn fan_out_stays_within_its_budget_and_catches_up() {
    let cfg = configured(|c| {
        c.fanout_per_sec = 10;
        c.presence_interval = Millis(1);
        c.limits = false;
    });
    let mut h = Harness::new(1024, cfg);
    // 50 seed subscribers.
    h.seed_ids(50);
    h.tick();
    let first = h.take();
    assert!(
        first.len() <= 10,
        "burst is one second of budget, sent {}",
        first.len()
    );
    assert!(h.server.stats().fanout_deferred >= 1);
    // Over the next seconds everyone gets the full, final list.
    let mut last: std::collections::HashMap<SocketAddr, String> = first.into_iter().collect();
    for _ in 0..100 {
        h.tick_after(100);
        for (dst, text) in h.take() {
            last.insert(dst, text);
        }
    }
    let sent = h.server.stats().fanout_sent;
    assert!(sent <= 10 + 10 * 10 + 1, "budget: {sent} in 10 s");
    assert_eq!(last.len(), 50);
    let full = last
        .values()
        .filter(|l| l.matches('\'').count() == 100)
        .count();
    assert_eq!(full, 50, "everyone ends with all 50 ids");
}

#[test]
fn seed_list_fits_the_seed_clients_buffer() {
    let mut h = Harness::new(1024, unlimited());
    for i in 0..200 {
        h.send(
            &format!("127.0.2.{}:1", i + 1),
            &format!("ID some-long-id-{i:03}"),
        );
    }
    h.tick();
    let lists = h.take();
    assert!(!lists.is_empty());
    for (_, l) in lists {
        assert!(l.len() <= crate::SEED_MAX_LIST, "{}", l.len());
        assert!(l.starts_with("List ['some-long-id-000', "));
        assert!(l.ends_with("']"));
    }
}

#[test]
fn stats_need_loopback_or_the_admin_token() {
    let admin = Token(0xfeed);
    let mut h = Harness::new(1024, configured(|c| c.admin_token = Some(admin)));
    let outside = "192.0.2.7:4000";
    let c = h.cookie(outside);
    let r = h.one_reply(outside, &format!("STATS 1 {c}"));
    assert_eq!(err_code(&r), ErrorCode::Forbidden);
    let r = h.one_reply(outside, &format!("STATS 2 {c} {admin}"));
    assert!(r.starts_with("STATS 2 datagrams_in="), "{r}");
    let r = h.ask(C120, |c| format!("STATS 3 {c}"));
    let Reply::Stats { stats, .. } = Reply::parse(r.as_bytes()).unwrap() else {
        panic!("{r}")
    };
    let hello = stats
        .iter()
        .find(|(k, _)| *k == "requests_hello")
        .unwrap()
        .1;
    assert_eq!(hello, 2);
}

#[test]
fn ids_and_cookies_parse_strictly() {
    let mut h = Harness::new(1024, Config::default());
    let r = h.ask(C120, |c| format!("REG 1 {c} it's"));
    assert_eq!(err_code(&r), ErrorCode::BadId);
    let _ = (Cookie(0), Id::new("x"));
}

/// An outbox that lets the server write in place, over a [`VecOutbox`].
struct InPlace {
    queue: VecOutbox<16>,
    buf: [u8; MAX_DATAGRAM],
    reserved: bool,
}

impl Outbox for InPlace {
    fn send(&mut self, dst: SocketAddr, payload: &[u8]) -> Result<(), OutboxFull> {
        self.queue.send(dst, payload)
    }

    fn reserve(&mut self) -> Option<&mut [u8]> {
        self.reserved = true;
        Some(&mut self.buf)
    }

    fn commit(&mut self, dst: SocketAddr, len: usize) -> Result<(), OutboxFull> {
        assert!(self.reserved, "commit without a reserve");
        self.reserved = false;
        self.queue.send(dst, &self.buf[..len])
    }
}

#[test]
fn replies_written_in_place_are_the_replies_sent_by_copy() {
    let script = [
        ("127.0.0.1:1", format!("HELLO 1 {}", ".".repeat(90))),
        // Unpadded: the COOKIE would be larger than the request, so nothing.
        ("127.0.0.1:1", "HELLO 2".to_string()),
        (
            "127.0.0.1:1",
            "LOOKUP 3 0123456789abcdef nobody".to_string(),
        ),
        ("127.0.0.2:2", "ID 130".to_string()),
        ("127.0.0.3:3", "Peer 130".to_string()),
        (
            "127.0.0.4:4",
            "garbage, long enough to be told so".to_string(),
        ),
    ];
    let mut copied = Box::new(Harness::new(1024, Config::default()));
    let mut in_place = Box::new(Harness::new(1024, Config::default()));
    let mut out = Box::new(InPlace {
        queue: VecOutbox::new(),
        buf: [0; MAX_DATAGRAM],
        reserved: false,
    });
    for (from, d) in &script {
        copied.send(from, d);
        in_place
            .server
            .handle(in_place.now, addr(from), d.as_bytes(), &mut *out);
    }
    let mut sent = Vec::new();
    while let Some((dst, bytes)) = out.queue.pop() {
        sent.push((dst, String::from_utf8(bytes.to_vec()).unwrap()));
    }
    assert_eq!(sent, copied.take());
    assert!(sent.len() >= 4, "{sent:?}");
    let (a, b) = (copied.server.stats(), in_place.server.stats());
    assert_eq!(
        (a.datagrams_out, a.bytes_out, a.drop_amplification),
        (b.datagrams_out, b.bytes_out, b.drop_amplification)
    );
    assert_eq!(b.drop_amplification, 1);
}

/// `n` seed clients registered from one address, ports 20000 and up; the
/// lists their registration caused are sent and thrown away.
fn seed_crowd(h: &mut Harness, n: u16) {
    for i in 0..n {
        h.send(
            &format!("127.0.0.40:{}", 20000 + i),
            &format!("ID crowd{i}"),
        );
    }
    h.advance(5_000);
    for _ in 0..20 {
        h.tick();
        h.advance(100);
    }
    h.take();
}

/// Lists sent over the next `ms` milliseconds, ticking every 10 ms.
fn lists_over(h: &mut Harness, ms: u64) -> usize {
    let mut lists = 0;
    for _ in 0..ms / 10 {
        h.tick_after(10);
        lists += h
            .take()
            .iter()
            .filter(|(_, t)| t.starts_with("List "))
            .count();
    }
    lists
}

#[test]
fn id2_from_a_source_that_holds_no_seed_id_changes_nothing() {
    let mut h = Harness::new(1024, Config::default());
    seed_crowd(&mut h, 40);
    // The measured attack: ten 4-byte datagrams, from an address (on the
    // crowd's own host) that holds nothing, were 400 lists.
    for _ in 0..10 {
        h.send("127.0.0.40:6666", "ID2 ");
    }
    assert_eq!(lists_over(&mut h, 3_000), 0);
    // An address that holds an extended id holds no seed id either.
    h.register("127.0.0.41:7", "ext");
    assert_eq!(lists_over(&mut h, 1_000), 40, "a join is a change");
    h.send("127.0.0.41:7", "ID2 ");
    assert_eq!(lists_over(&mut h, 3_000), 0);
}

#[test]
fn list_rounds_asked_for_are_one_a_second_across_the_server() {
    let mut h = Harness::new(1024, Config::default());
    seed_crowd(&mut h, 40);
    // Twenty ID2s from seed clients in two seconds were 880 lists; now one
    // round at once, and the rest coalesce into one a second.
    for i in 0..20 {
        h.send(&format!("127.0.0.40:{}", 20000 + i), "ID2 ");
        h.tick_after(100);
    }
    let lists = lists_over(&mut h, 3_000)
        + h.take()
            .iter()
            .filter(|(_, t)| t.starts_with("List "))
            .count();
    assert!(lists <= 40 * 3, "{lists} lists");
    // An ID that renews asks for a round too, under the same limit; the
    // round owed is never lost: everyone gets the list within the second.
    h.send("127.0.0.40:20000", "ID2 ");
    assert_eq!(lists_over(&mut h, 500), 40, "at once");
    h.send("127.0.0.40:20001", "ID crowd1");
    h.send("127.0.0.40:20002", "ID2 ");
    assert_eq!(lists_over(&mut h, 400), 0, "too soon: owed");
    assert_eq!(lists_over(&mut h, 700), 40, "one round for both, on time");
}

#[test]
fn seed_refusals_are_told_within_the_error_budget() {
    let mut h = Harness::new(1024, configured(|c| c.quota_per_source = 1));
    h.send(C120, "ID 120");
    h.take();
    assert_eq!(
        h.one_reply(C150, "ID 120"),
        "Message parley-server: the id 120 is taken"
    );
    assert_eq!(
        h.one_reply("127.0.0.1:5000", "ID other"),
        "Message parley-server: your network holds too many ids"
    );
    // A spoofed flood of refused IDs gets its target no more than the
    // error budget (10 a second), and none of them changes the table.
    h.advance(2_000);
    for _ in 0..100 {
        h.send("127.0.0.9:9", "ID 120");
    }
    assert_eq!(h.take_to("127.0.0.9:9").len(), 10);
    assert_eq!(h.server.stats().occupancy, 1);
    assert_eq!(
        h.one_reply(C150, "Peer 120"),
        format!("Peer ('127.0.0.1', 10520)")
    );
}

#[test]
fn one_network_cannot_fill_the_table() {
    // The measured attack: 32 /64s of one /48 took all 1024 ids.
    let mut h = Harness::new(1024, Config::default());
    let mut held = 0;
    for net in 0..32u32 {
        for i in 0..64u32 {
            let from = format!("[2001:db8:7:{net:x}::{}]:4000", i + 1);
            h.send(&from, &format!("ID n{net}x{i}"));
            held += 1;
        }
    }
    let taken = h.server.stats().occupancy;
    assert!(taken <= 1024 / 8, "one /48 holds {taken} of {held}");
    // A newcomer from another /48 is admitted; nobody was evicted.
    h.send("[2001:db8:8::1]:4000", "ID newcomer");
    assert_eq!(h.server.stats().occupancy, taken + 1);
    h.take();
    assert_eq!(
        h.one_reply(C120, "Peer n0x0"),
        "Peer ('2001:db8:7::1', 4000, 0, 0)"
    );
    // The same holds for IPv4 /24s and IPv6 /56s.
    let mut h = Harness::new(1024, Config::default());
    for i in 0..1024u32 {
        h.send(
            &format!("198.51.100.{}:{}", i % 250 + 1, 1000 + i),
            &format!("ID v4-{i}"),
        );
    }
    assert_eq!(h.server.stats().occupancy, 128, "a /24 holds an eighth");
    for i in 0..64u32 {
        h.send(&format!("[2001:db8:9:{i:x}::1]:1"), &format!("ID v6-{i}"));
    }
    assert_eq!(
        h.server.stats().occupancy,
        128 + 64,
        "a /56 holds 64 (the per-source quota)"
    );
}

#[test]
fn spoofed_traffic_does_not_silence_the_client_it_names() {
    let mut h = Harness::new(1024, rate_limited(10, 20));
    let token = h.register(C120, "alice");
    let c = h.cookie(C120);
    // Junk "from" alice's address: seed verbs, bad cookies, garbage.
    for i in 0..300 {
        let junk = match i % 3 {
            0 => "Peer nobody".to_string(),
            1 => format!("KEEP {i} 0123456789abcdef alice {token}"),
            _ => "garbage garbage garbage garbage".to_string(),
        };
        h.send(C120, &junk);
    }
    h.take();
    // Alice's own KEEPs echo her cookie: they are answered.
    for i in 0..10 {
        let r = h.one_reply(C120, &format!("KEEP k{i} {c} alice {token}"));
        assert!(r.starts_with(&format!("ALIVE k{i} ")), "{r}");
    }
}

#[test]
fn the_error_budget_pays_only_for_errors_sent() {
    let mut h = Harness::new(1024, Config::default());
    // Too short to be answered with an error (no amplification): nothing
    // is sent, so nothing is charged.
    for _ in 0..50 {
        h.send(C120, "x");
    }
    assert!(h.take().is_empty());
    let r = h.one_reply(
        C120,
        "NONSENSE 42 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    );
    assert_eq!(err_code(&r), ErrorCode::UnknownVerb);
}

#[test]
fn a_failed_introduction_moves_nobody() {
    let (r, at) = from_moved(|c, t| format!("INTRO 6 {c} alice {t} nobody"));
    assert_eq!(err_code(&r), ErrorCode::NoSuchId);
    assert_eq!(
        at,
        format!("AT l alice {C120} -"),
        "an error changes nothing"
    );
}

#[test]
fn a_mapped_loopback_source_is_local() {
    // On a dual-stack socket an IPv4 client on this host is ::ffff:127.0.0.1.
    let mut h = Harness::new(1024, Config::default());
    let from = "[::ffff:127.0.0.1]:5000";
    let r = h.ask(from, |c| format!("STATS 1 {c}"));
    assert!(r.starts_with("STATS 1 datagrams_in="), "{r}");
    let from = "[::ffff:192.0.2.1]:5000";
    let r = h.ask(from, |c| format!("STATS 2 {c}"));
    assert_eq!(err_code(&r), ErrorCode::Forbidden);
}

mod keys;
mod snapshot;

#[test]
fn a_planned_datagram_is_answered_as_an_unplanned_one() {
    let mut plain = Harness::new(64, Config::default());
    let mut planned = Harness::new(64, Config::default());
    let c = "127.0.0.1:5000";
    let ck = plain.cookie(c);
    assert_eq!(planned.cookie(c), ck);
    // Odd steps go with the plan of the step before, which names another
    // id: a plan must be used for its own id only.
    let script = [
        format!("REG 2 {ck} alice"),
        "ID carol".to_string(),
        format!("LOOKUP 3 {ck} alice"),
        "Peer carol".to_string(),
        format!("LOOKUP 4 {ck} bob"),
        "Quit carol".to_string(),
        "Peer carol".to_string(),
        format!("LOOKUP 5 {ck} alice"),
    ];
    let mut previous = None;
    for (k, d) in script.iter().enumerate() {
        plain.send(c, d);
        let own = planned.server.plan(d.as_bytes());
        let plan = if k % 2 == 0 { own } else { previous };
        previous = own;
        planned
            .server
            .handle_planned(planned.now, addr(c), d.as_bytes(), plan, &mut *planned.out);
        plain.tick();
        planned.tick();
        let answer = plain.take();
        assert!(!answer.is_empty() || d.starts_with("Quit"), "{d}");
        assert_eq!(planned.take(), answer, "{d}");
        planned.server.audit(planned.now).unwrap();
    }
}
