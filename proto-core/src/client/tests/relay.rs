//! Relay fallback: peers no direct path joins talk through the server's
//! relay, carrying the same sealed datagrams, and move to a direct path
//! as soon as one is proven.

use super::*;
use crate::wire::relay::{FRAME_MAGIC, is_frame};

fn route(net: &mut Net, at: SocketAddr, peer: &str) -> Option<String> {
    let now = net.now;
    net.client(at)
        .route(now, id(peer))
        .map(|r| r.word().to_string())
}

/// Relay frames `src` sent to the server.
fn frames(net: &Net, src: SocketAddr) -> usize {
    net.log
        .iter()
        .zip(&net.raw)
        .filter(|((_, s, d, _), raw)| *s == src && *d == addr(SERVER) && is_frame(raw))
        .count()
}

/// Alice's message `m` to bob was delivered; if not, the whole log is
/// shown, and what `context` says.
fn delivered_or_show_log(net: &mut Net, a: SocketAddr, b: SocketAddr, m: u32, context: &str) {
    let ev = net.take(a);
    if ev != [format!("delivered bob #{m}")] {
        net.dump_log();
        panic!("{context}{ev:?} {:?}", net.take(b));
    }
}

/// Alice, and bob behind a NAT (at `ib` inside, the port the server
/// sees outside), both registered.
fn bob_behind_a_nat(net: &mut Net) -> (SocketAddr, SocketAddr, SocketAddr) {
    let ib = addr("192.168.1.3:6000");
    net.nat.push((ib, addr("203.0.113.1:40001")));
    let [a, b] = net.registered([
        (ALICE, Net::config("alice")),
        ("192.168.1.3:6000", Net::config("bob")),
    ]);
    (a, b, ib)
}

#[test]
fn peers_no_direct_path_joins_talk_through_the_relay_exactly_once() {
    let (mut net, a, b) = two();
    net.blocked.push((a, b));
    let t0 = net.now;
    net.chat(a, b, "through the relay", 8_000);
    // Both asked (the server pairs only then), after the direct tries.
    let asked_a = net.sent(a, "RELAY ");
    let asked_b = net.sent(b, "RELAY ");
    assert!(!asked_a.is_empty() && !asked_b.is_empty());
    assert!(
        asked_a[0].0.since(t0) >= 1_900,
        "{}",
        asked_a[0].0.since(t0)
    );
    assert!(frames(&net, a) > 0 && frames(&net, b) > 0);
    // The server sees only ciphertext: no frame holds the text.
    for ((_, _, d, _), raw) in net.log.iter().zip(&net.raw) {
        if *d == addr(SERVER) || raw.first() == Some(&FRAME_MAGIC) {
            assert!(
                raw.windows(7).all(|w| w != b"through"),
                "plain text relayed"
            );
        }
    }
    assert_eq!(route(&mut net, a, "bob").as_deref(), Some("relayed"));
    assert_eq!(route(&mut net, b, "alice").as_deref(), Some("relayed"));
    // Never downgraded to the seed's plain text.
    assert!(net.sent(a, "Message").is_empty());
    // Later messages use the relay at once, both ways.
    net.chat(b, a, "back", 2_000);
}

/// When `src` first sent straight to `dst` at or after `from`.
fn first_direct(net: &Net, src: SocketAddr, dst: SocketAddr, from: Instant) -> Option<Instant> {
    net.log
        .iter()
        .find(|(t, s, d, _)| *t >= from && *s == src && *d == dst)
        .map(|(t, ..)| *t)
}

#[test]
fn a_failed_round_goes_quiet_then_both_sides_punch_again_together() {
    let (mut net, a, b) = two();
    net.blocked.push((a, b));
    net.chat(a, b, "one", 8_000);
    assert_eq!(route(&mut net, a, "bob").as_deref(), Some("relayed"));
    // The round of fast probes is over; the NATs forget what spoiled the
    // path, and it opens up.
    net.run(4_000);
    let quiet = net.now;
    net.blocked.clear();
    net.run(30_000);
    // Nothing went straight between them meanwhile (it would have kept
    // the spoiled mapping alive).
    assert_eq!(first_direct(&net, a, b, quiet), None);
    assert_eq!(first_direct(&net, b, a, quiet), None);
    assert_eq!(route(&mut net, a, "bob").as_deref(), Some("relayed"));
    // Then an introduction starts the next round on both sides at once.
    net.run(25_000);
    let (ta, tb) = (
        first_direct(&net, a, b, quiet).expect("alice punched again"),
        first_direct(&net, b, a, quiet).expect("bob punched again"),
    );
    assert!(ta.since(tb).max(tb.since(ta)) <= 5, "{ta:?} {tb:?}");
    assert_eq!(route(&mut net, a, "bob").as_deref(), Some("direct"));
    assert_eq!(route(&mut net, b, "alice").as_deref(), Some("direct"));
    let before = frames(&net, a);
    net.chat(a, b, "two", 2_000);
    assert_eq!(frames(&net, a), before, "direct now: nothing relayed");
}

/// Datagrams get through one way only (bob's reach alice, so alice knows
/// a path, unproven): during the quiet spell chat goes through the relay
/// alone, both ways; a copy straight to the peer would keep alive what
/// the spell waits for a NAT to forget.
#[test]
fn in_a_quiet_spell_chat_goes_only_through_the_relay() {
    let (mut net, a, b) = two();
    net.oneway.push((a, b));
    net.chat(a, b, "one", 8_000);
    assert_eq!(route(&mut net, a, "bob").as_deref(), Some("relayed"));
    // The first rounds of probes are over.
    net.run(6_000);
    let quiet = net.now;
    net.chat(a, b, "two", 3_000);
    net.chat(b, a, "three", 3_000);
    assert_eq!(first_direct(&net, a, b, quiet), None);
    assert_eq!(first_direct(&net, b, a, quiet), None);
}

#[test]
fn a_direct_path_needs_no_relay() {
    let (mut net, a, b) = two();
    net.chat(a, b, "hi", 10_000);
    assert!(net.sent(a, "RELAY ").is_empty() && net.sent(b, "RELAY ").is_empty());
    assert_eq!(route(&mut net, a, "bob").as_deref(), Some("direct"));
}

#[test]
fn the_relay_switch_loses_and_repeats_nothing_under_loss() {
    let (mut net, a, b) = two();
    net.blocked.push((a, b));
    net.faults = Faults::new(20, 10, 30);
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(net.send_message(a, id("bob"), &format!("m{i}")).unwrap());
        net.run(300);
    }
    net.run(6_000);
    // Open the direct path half way: some go relayed, some direct.
    net.blocked.clear();
    for i in 5..8 {
        sent.push(net.send_message(a, id("bob"), &format!("m{i}")).unwrap());
        net.run(300);
    }
    net.run(30_000);
    let got = net.take(b);
    for i in 0..8 {
        let want = format!("msg alice: m{i}");
        assert_eq!(got.iter().filter(|g| **g == want).count(), 1, "{got:?}");
    }
    let ev = net.take(a);
    for m in sent {
        assert!(ev.contains(&format!("delivered bob #{m}")), "{ev:?}");
    }
}

#[test]
fn a_relay_keeps_alive_while_used_and_the_server_keeps_it() {
    let (mut net, a, b) = two();
    net.blocked.push((a, b));
    net.send_message(a, id("bob"), "first").unwrap();
    net.run(8_000);
    let asked = net.sent(a, "RELAY ").len();
    // Two minutes of chat, past the server's one-minute idle timeout.
    for i in 0..12 {
        net.send_message(a, id("bob"), &format!("t{i}")).unwrap();
        net.run(10_000);
    }
    assert!(net.sent(a, "RELAY ").len() >= asked + 4, "refreshed");
    let got = net.take(b);
    assert_eq!(got.len(), 13, "{got:?}");
    assert!(net.take(a).iter().all(|e| e.starts_with("delivered")));
}

/// Two hosts behind one router that does not hairpin: alice and bob.
fn behind_one_router(net: &mut Net, announce: bool) -> (SocketAddr, SocketAddr) {
    let (ia, ib) = (addr("192.168.1.2:5000"), addr("192.168.1.3:6000"));
    net.nat.push((ia, addr("203.0.113.1:40000")));
    net.nat.push((ib, addr("203.0.113.1:40001")));
    let mut ca = Net::config("alice");
    let mut cb = Net::config("bob");
    if announce {
        ca.local = crate::wire::Locals::new(&[ia]);
        cb.local = crate::wire::Locals::new(&[ib]);
    }
    let [a, b] = net.registered([("192.168.1.2:5000", ca), ("192.168.1.3:6000", cb)]);
    (a, b)
}

/// Alice and bob behind one router, with their local addresses announced
/// or not: alice's message is delivered within `ms`, by the route
/// `via` (the same both ways).
fn next_door(announce: bool, ms: u64, via: &str) -> (Net, SocketAddr, SocketAddr) {
    let mut net = Net::new();
    let (a, b) = behind_one_router(&mut net, announce);
    net.chat(a, b, "next door", ms);
    assert_eq!(route(&mut net, a, "bob").as_deref(), Some(via));
    assert_eq!(route(&mut net, b, "alice").as_deref(), Some(via));
    (net, a, b)
}

#[test]
fn hosts_behind_one_router_talk_over_their_lan() {
    let (net, a, b) = next_door(true, 3_000, "lan");
    assert!(net.sent(a, "RELAY ").is_empty() && net.sent(b, "RELAY ").is_empty());
    // The server passed the addresses on and sent nothing to them.
    let punches = net.sent(addr(SERVER), "PUNCH ");
    assert!(
        punches
            .iter()
            .any(|(_, _, t)| t.ends_with(" 192.168.1.2:5000"))
    );
    assert!(
        punches
            .iter()
            .any(|(_, _, t)| t.ends_with(" 192.168.1.3:6000"))
    );
    assert!(
        net.log
            .iter()
            .all(|(_, s, d, _)| *s != addr(SERVER) || ![a, b].contains(d)),
        "the server sends only to the addresses it saw"
    );
}

/// Over the LAN, bob's answer reaches alice before his own announcement
/// (which goes through the server) can: the path is on alice's network
/// and is not where the server sees bob, so it is a LAN path already.
#[test]
fn a_peer_on_our_network_is_a_lan_path_before_it_announces_itself() {
    let mut net = Net::new();
    let (ia, ib) = (addr("192.168.1.2:5000"), addr("192.168.1.3:6000"));
    net.nat.push((ia, addr("203.0.113.1:40000")));
    net.nat.push((ib, addr("203.0.113.1:40001")));
    let mut ca = Net::config("alice");
    ca.local = crate::wire::Locals::new(&[ia]);
    let [a, b] = net.registered([
        ("192.168.1.2:5000", ca),
        ("192.168.1.3:6000", Net::config("bob")),
    ]);
    net.chat(a, b, "next door", 3_000);
    assert_eq!(route(&mut net, b, "alice").as_deref(), Some("lan"));
    assert_eq!(route(&mut net, a, "bob").as_deref(), Some("lan"));
}

#[test]
fn without_local_addresses_the_same_hosts_are_relayed() {
    next_door(false, 8_000, "relayed");
}

/// 10% loss on every link: about 20% each way between the peers
/// through the relay (two links), like the lab's lossy router.
#[test]
fn a_lossy_network_still_delivers_every_time() {
    for seed in 1..40u64 {
        let mut net = Net::new();
        net.dice = seeded(seed, 0x1234_5678_9abc);
        let (a, b) = alice_and_bob(&mut net);
        net.blocked.push((a, b));
        net.faults = Faults::new(10, 0, 20);
        let m = net.send_message(a, id("bob"), "lossy").unwrap();
        net.run(15_000);
        delivered_or_show_log(&mut net, a, b, m, &format!("seed {seed}: "));
    }
}

/// Loss on every link: whatever path a session ends up on, a direct one
/// is proven both ways in the end (probed until it is), never left
/// "unconfirmed" with no relay to fall back on.
#[test]
fn a_direct_path_is_proven_in_the_end_under_loss() {
    for seed in 1..60u64 {
        let mut net = Net::new();
        net.dice = seeded(seed, 0x005e_ed0f_1055);
        let (a, b) = alice_and_bob(&mut net);
        net.faults = Faults::new(30, 0, 20);
        net.send_message(a, id("bob"), "lossy").unwrap();
        net.run(30_000);
        let now = net.now;
        for (at, peer) in [(a, "bob"), (b, "alice")] {
            let r = net.client(at).route(now, id(peer)).map(|r| r.to_string());
            if let Some(r) = r {
                assert!(!r.contains("unconfirmed"), "seed {seed}: {peer}: {r}");
            }
        }
    }
}

#[test]
fn a_lost_punch_is_made_up_for() {
    let mut net = Net::new();
    let (a, b, _) = bob_behind_a_nat(&mut net);
    // The first introduction never reaches bob.
    net.blocked.push((addr(SERVER), addr("203.0.113.1:40001")));
    let m = net.send_message(a, id("bob"), "again").unwrap();
    net.run(1_000);
    net.blocked.clear();
    net.run(14_000);
    delivered_or_show_log(&mut net, a, b, m, "");
}

/// A NAT may give bob another port toward alice than toward the server;
/// his initiation, which his key proves, tells alice where, and her own
/// probes go there too.
#[test]
fn a_port_first_seen_in_a_peers_handshake_is_probed() {
    let mut net = Net::new();
    let (a, b, ib) = bob_behind_a_nat(&mut net);
    net.send_message(a, id("bob"), "hi").unwrap();
    // Until alice answered bob's initiation; then what bob sends her is
    // lost for a while (his first transport datagram among it).
    for _ in 0..100 {
        net.run(1);
        if !net.sent(a, "[resp").is_empty() {
            break;
        }
    }
    net.oneway.push((ib, a));
    net.run(1_500);
    assert!(
        net.sent(a, "[init").iter().any(|(_, d, _)| *d == ib),
        "alice probes the port bob's handshake came from"
    );
    net.oneway.clear();
    net.run(5_000);
    assert_eq!(net.take(b), ["msg alice: hi"]);
}
