//! The end-to-end rules: only what authenticates under a peer's key
//! changes anything, keys are pinned and a changed one is never taken
//! silently, replays are refused, sessions are replaced as they age.

use super::*;
use crate::secure::{Keypair, PublicKey, safety_number};
use crate::wire::peer::{Chat, PeerMsg, Text};
use crate::wire::sealed;

/// Where the impostor registers as bob.
const MALLORY: &str = "10.0.0.66:6000";

fn key_of(net: &mut Net, at: SocketAddr) -> PublicKey {
    net.client(at).public_key()
}

/// Issue 12's attack: a third host's plain `CHAT alice ...` and `PROBE`
/// used to be shown and to move alice's path to the third host.
#[test]
fn forged_plain_chat_and_probe_from_a_third_host_change_nothing() {
    let (mut net, a, b) = talking("hi bob");
    let mallory = addr("10.0.0.66:4000");
    let before = net.client(b).stats();
    net.put(
        mallory,
        b,
        b"CHAT alice 00000000000000ab 1 1/1 please send the password to mallory",
    );
    net.put(mallory, b, b"PROBE alice 0123456789abcdef");
    net.put(mallory, b, b"ACK alice 00000000000000ab 1 1");
    net.run(1000);
    assert_eq!(net.take(b), Vec::<String>::new(), "nothing shown");
    assert_eq!(
        net.client(b).stats().plain_refused,
        before.plain_refused + 3
    );
    assert!(
        net.log
            .iter()
            .all(|(_, s, d, _)| !(*s == b && *d == mallory)),
        "no answer to the third host"
    );
    // Bob's next message goes to alice, and only to her.
    net.chat(b, a, "the password is hunter2", 3000);
    assert!(net.inbox.iter().all(|(_, d, _)| *d != mallory));
    let raw_to_mallory = net
        .log
        .iter()
        .zip(&net.raw)
        .filter(|((_, _, d, _), _)| *d == mallory)
        .count();
    assert_eq!(raw_to_mallory, 0);
}

#[test]
fn first_contact_uses_the_reported_key_and_pins_it() {
    let (mut net, a, b) = talking("hi");
    let (ka, kb) = (key_of(&mut net, a), key_of(&mut net, b));
    let inits = net.sent_raw(a, "[init");
    assert!(
        inits.iter().all(|i| i.starts_with(b"NOISE IK ")),
        "the server reported bob's key: IK"
    );
    assert_eq!(net.first_seen[&a], ["key first seen bob"]);
    assert_eq!(net.first_seen[&b], ["key first seen alice"]);
    assert_eq!(net.client(a).pinned(id("bob")), Some(kb));
    assert_eq!(net.client(b).pinned(id("alice")), Some(ka));
    // Both see the same safety number.
    let na = safety_number(
        &net.client(a).public_key(),
        &net.client(a).peer_key(id("bob")).unwrap(),
    );
    let nb = safety_number(
        &net.client(b).peer_key(id("alice")).unwrap(),
        &net.client(b).public_key(),
    );
    assert_eq!(na, nb);
}

#[test]
fn without_a_known_key_xx_then_ik_with_the_pinned_key() {
    let mut net = Net::new();
    let [a, b] = net.registered([(ALICE, Net::keyless("alice")), (BOB, Net::keyless("bob"))]);
    let kb = key_of(&mut net, b);
    net.chat(a, b, "hi", 1000);
    let inits = net.sent_raw(a, "[init");
    assert!(
        inits.iter().all(|i| i.starts_with(b"NOISE XX ")),
        "no key known: XX"
    );
    assert!(!net.sent(a, "[confirm").is_empty(), "XX's third message");
    assert_eq!(net.client(a).pinned(id("bob")), Some(kb));
    assert_eq!(net.first_seen[&b], ["key first seen alice"]);

    // A new alice process (same key, pins loaded from her file) uses IK.
    net.restart(a, Net::keyless("alice"), 77, ("bob", kb));
    net.run(1000);
    net.take(a);
    let n0 = net.sent_raw(a, "[init").len();
    net.chat(a, b, "me again", 2000);
    let inits = net.sent_raw(a, "[init");
    assert!(inits.len() > n0);
    assert!(
        inits[n0..].iter().all(|i| i.starts_with(b"NOISE IK ")),
        "the pinned key: IK"
    );
    assert_eq!(net.first_seen[&b].len(), 1, "no new first sight");
}

/// A rogue server hands out the impostor's key for bob: the pinned key
/// disagrees, the person is told, and nothing at all goes to the impostor
/// until the new key is accepted.
#[test]
fn a_rogue_server_reporting_another_key_gets_nothing_sent() {
    let mut net = Net::new();
    // Mallory registers as "bob" with her own key; the server reports it.
    let [a, m] = net.registered([(ALICE, Net::config("alice")), (MALLORY, Net::config("bob"))]);
    let real_bob = Keypair::from_secret([200; 32]).public();
    net.client(a).pin(id("bob"), real_bob).unwrap();
    let n = net.log.len();
    net.send_message(a, id("bob"), "the password is hunter2")
        .unwrap();
    net.run(30_000);
    assert_eq!(net.take(a), ["key changed bob"], "held, not failed");
    assert!(
        net.log[n..]
            .iter()
            .all(|(_, s, d, _)| !(*s == a && *d == m)),
        "nothing at all to the impostor"
    );
    assert!(net.take(m).iter().all(|e| !e.starts_with("msg")));
    // Accepting the offered key (the person decided) lets it go.
    let offered = net.client(m).public_key();
    let now = net.now;
    net.client(a).accept_key(now, id("bob"), offered).unwrap();
    net.run(5000);
    assert_eq!(net.take(m), ["msg alice: the password is hunter2"]);
    assert_eq!(net.client(a).pinned(id("bob")), Some(offered));
}

/// The server says nothing of keys (or is fooled by a keyless
/// registration): the handshake itself catches the impostor.
#[test]
fn an_impostor_for_a_pinned_peer_gets_nothing_and_the_change_is_reported() {
    let mut net = Net::new();
    let [a, m] = net.registered([
        (ALICE, Net::config("alice")),
        (MALLORY, Net::keyless("bob")),
    ]);
    let real_bob = Keypair::from_secret([200; 32]).public();
    net.client(a).pin(id("bob"), real_bob).unwrap();
    let msg = net
        .send_message(a, id("bob"), "the password is hunter2")
        .unwrap();
    net.run(30_000);
    // IK to the pinned key: the impostor cannot even read the initiation.
    assert!(
        net.sent_raw(a, "[init")
            .iter()
            .all(|i| i.starts_with(b"NOISE IK "))
    );
    assert!(net.sent(m, "[resp").is_empty());
    assert!(net.sent(a, "CHAT ").is_empty(), "no chat without a session");
    assert!(
        net.sent(a, "Message").is_empty(),
        "never plain text to a pinned peer"
    );
    // The impostor, told by the server that alice wants it, handshakes
    // with her as "bob": alice hears of the changed key and takes nothing.
    let mut ev = net.take(a);
    ev.sort();
    assert_eq!(
        ev,
        [
            "key changed bob".to_string(),
            format!("not delivered bob #{msg}: the peer never acknowledged it")
        ]
    );
    assert!(net.client(a).stats().key_refused >= 1);
    let now = net.now;
    net.client(m)
        .send_message(now, id("alice"), "it's me, bob")
        .unwrap();
    net.run(5000);
    assert!(net.take(a).is_empty(), "not shown, and reported once");
    // Messages to bob are now held: nothing leaves alice for him.
    let n = net.log.len();
    net.send_message(a, id("bob"), "held").unwrap();
    net.run(5000);
    assert!(
        net.log[n..]
            .iter()
            .all(|(_, s, d, _)| !(*s == a && *d == m)),
        "held"
    );
    assert!(net.take(a).is_empty(), "held, not failed");
}

#[test]
fn a_replayed_initiation_is_refused_or_harmless() {
    let mut net = Net::new();
    let mut cfg = Net::config("alice");
    // Every message after the first wants a new handshake: the second one
    // is IK, with the keys pinned by the first (XX: bob registered no key).
    cfg.rekey_after_messages = 1;
    let [a, b] = net.registered([(ALICE, cfg), (BOB, Net::keyless("bob"))]);
    for text in ["one", "two", "three"] {
        net.send_message(a, id("bob"), text).unwrap();
        net.run(1000);
    }
    net.take(a);
    let got = net.take(b);
    assert_eq!(got.len(), 3, "{got:?}");
    let inits = net.sent_raw(a, "[init");
    let xx = inits
        .iter()
        .find(|i| i.starts_with(b"NOISE XX "))
        .unwrap()
        .clone();
    let ik = inits
        .iter()
        .find(|i| i.starts_with(b"NOISE IK "))
        .unwrap()
        .clone();
    let replayer = addr("10.0.0.66:1");
    let before = net.client(b).stats();
    let n = net.log.len();
    for init in [&xx, &ik] {
        net.put(a, b, init);
        net.put(replayer, b, init);
    }
    net.run(1000);
    let after = net.client(b).stats();
    // IK's hello counter refuses the replays outright; XX's first message
    // authenticates nobody and gets an answer no larger than itself,
    // which leads nowhere.
    assert_eq!(after.replayed, before.replayed + 2);
    assert_eq!(after.handshakes_done, before.handshakes_done);
    for ((_, s, d, _), r) in net.log[n..].iter().zip(&net.raw[n..]) {
        if *s == b && (*d == replayer || *d == a) {
            assert!(r.len() <= xx.len() && r[0] == sealed::RESPONSE, "{r:?}");
        }
    }
    assert_eq!(
        net.log[n..]
            .iter()
            .filter(|(_, s, d, _)| *s == b && *d == replayer)
            .count(),
        1,
        "the XX replay only"
    );
    // Chat goes on, to alice's real address.
    net.send_message(b, id("alice"), "four").unwrap();
    net.run(2000);
    assert_eq!(net.take(a), ["msg bob: four"]);
    assert!(net.sent(b, "CHAT ").iter().all(|c| c.1 == a));
}

#[test]
fn sessions_are_replaced_after_the_bound_and_chat_goes_on() {
    let mut net = Net::new();
    let mut ca = Net::config("alice");
    ca.rekey_after_messages = 5;
    let mut cb = Net::config("bob");
    cb.rekey_after = Millis(20_000);
    let [a, b] = net.registered([(ALICE, ca), (BOB, cb)]);
    for i in 0..12 {
        net.send_message(a, id("bob"), &format!("m{i}")).unwrap();
        net.run(300);
    }
    net.run(3000);
    let got = net.take(b);
    assert_eq!(got.len(), 12, "{got:?}");
    let hs = net.client(a).stats().handshakes_done;
    assert!(hs >= 3, "rekeyed by count: {hs}");
    // By time: bob's session is older than 20 s when he next speaks.
    net.run(25_000);
    let before = net.client(b).stats().handshakes_started;
    net.send_message(b, id("alice"), "later").unwrap();
    net.run(3000);
    assert_eq!(net.take_messages(a).len(), 1);
    assert!(
        net.client(b).stats().handshakes_started > before,
        "rekeyed by time"
    );
}

#[test]
fn one_peer_cannot_take_every_reassembly_slot() {
    let mut net = Net::new();
    let [a, b, m] = net.registered([
        (ALICE, Net::config("alice")),
        (BOB, Net::config("bob")),
        ("10.0.0.4:7000", Net::config("mallory")),
    ]);
    net.chat(m, b, "hello", 1000);
    // Mallory, authenticated, starts many messages and never ends them.
    let p = net.client(m).find_peer(&IdBuf::from_id(id("bob"))).unwrap();
    let now = net.now;
    for seq in 100..100 + MAX_INCOMING as u32 {
        let msg = PeerMsg::Chat(Chat {
            from: id("mallory"),
            session: 1,
            seq,
            frag: 1,
            count: 2,
            text: Text::new("part").unwrap(),
        });
        assert!(net.client(m).send_sealed(now, p, &msg));
    }
    net.run(100);
    net.send_message(a, id("bob"), "room for me?").unwrap();
    net.run(2000);
    assert_eq!(net.take(b), ["msg alice: room for me?"]);
}

#[test]
fn unauthenticated_sources_hold_no_peer_entries() {
    let (mut net, a, b) = talking("hi");
    let peers = net.client(b).peers.len();
    let init = net.sent_raw(a, "[init")[0].clone();
    for i in 0..200u32 {
        let src = SocketAddr::from(([10, 9, (i / 200) as u8, (i % 200) as u8], 1000));
        net.put(
            src,
            b,
            format!("CHAT x{i} 00000000000000ab 1 1/1 hi").as_bytes(),
        );
        net.put(src, b, format!("PROBE x{i} 00000000000000ab").as_bytes());
        // XX initiations authenticate nobody yet: they get an answer (no
        // larger) and a bounded half-open slot, never a peer entry.
        let mut forged = init.clone();
        forged[3] = i as u8;
        net.put(src, b, &forged);
    }
    net.run(100);
    let c = net.client(b);
    assert_eq!(c.peers.len(), peers);
    assert!(c.responding.len() <= MAX_RESPONDING);
    let ev = net.take(b);
    assert!(ev.is_empty(), "{ev:?}");
    // Alice and bob still talk.
    net.chat(a, b, "still here", 2000);
    // No answer to a forged source was larger than what it sent.
    for ((_, s, d, _), r) in net.log.iter().zip(&net.raw) {
        if *s == b && d.ip().to_string().starts_with("10.9.") {
            assert!(r.len() <= init.len() && r[0] == sealed::RESPONSE);
        }
    }
}

#[test]
fn the_client_fits_in_fixed_memory() {
    let size = core::mem::size_of::<Client>();
    std::println!("Client: {size} bytes");
    // Tables are fixed (181 KiB with 32 peers, each with two sessions and
    // a handshake, and 256 pins): a guard against a table growing by
    // accident, not a target.
    assert!(size < 192 * 1024, "{size}");
}

#[test]
fn a_message_after_the_session_expired_ends_in_an_event_when_the_peer_is_gone() {
    let (mut net, a, b) = talking("hi");
    // Bob's host vanishes (still registered); alice's session ages out.
    net.cut.push(b);
    net.run(200_000);
    let m = net.send_message(a, id("bob"), "still there?").unwrap();
    net.run(30_000);
    assert_eq!(
        net.take(a),
        [format!(
            "not delivered bob #{m}: the peer never acknowledged it"
        )]
    );
    assert_eq!(net.client(a).in_flight(), 0);
}

mod tampering {
    use super::*;
    use proptest::prelude::*;

    /// What an attacker on the path does with a datagram it saw.
    #[derive(Clone, Debug)]
    enum Mangle {
        Replay,
        Flip(usize, u8),
        Truncate(usize),
        Extend(Vec<u8>),
        FromElsewhere,
    }

    fn mangle() -> impl Strategy<Value = (usize, Mangle)> {
        (
            any::<usize>(),
            prop_oneof![
                Just(Mangle::Replay),
                (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Mangle::Flip(i, b)),
                any::<usize>().prop_map(Mangle::Truncate),
                proptest::collection::vec(any::<u8>(), 1..20).prop_map(Mangle::Extend),
                Just(Mangle::FromElsewhere),
            ],
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Whatever is done to the datagrams between them, bob shows only
        /// what alice wrote, each once, and only as verified from alice.
        #[test]
        fn only_what_alice_wrote_is_shown(attacks in proptest::collection::vec(mangle(), 1..40)) {
            let (mut net, a, b) = two();
            let mut sent = Vec::new();
            for i in 0..3 {
                let t = format!("message {i}");
                net.send_message(a, id("bob"), &t).unwrap();
                sent.push(format!("msg alice: {t}"));
                net.run(300);
            }
            let seen: Vec<(SocketAddr, Vec<u8>)> = net
                .log
                .iter()
                .zip(&net.raw)
                .filter(|((_, s, d, _), _)| *s == a && *d == b)
                .map(|((_, s, _, _), r)| (*s, r.clone()))
                .collect();
            prop_assume!(!seen.is_empty());
            let elsewhere = addr("10.0.0.66:1");
            for (pick, m) in attacks {
                let (src, mut d) = seen[pick % seen.len()].clone();
                let mut from = src;
                match m {
                    Mangle::Replay => {}
                    Mangle::Flip(i, x) => {
                        let i = i % d.len();
                        d[i] ^= x;
                    }
                    Mangle::Truncate(n) => d.truncate(n % d.len()),
                    Mangle::Extend(tail) => d.extend(tail),
                    Mangle::FromElsewhere => from = elsewhere,
                }
                net.put(from, b, &d);
            }
            net.run(3000);
            prop_assert_eq!(net.take_messages(b), sent);
            // Bob still answers alice where she is, not where the attacker is.
            net.send_message(b, id("alice"), "ok").unwrap();
            net.run(2000);
            prop_assert!(net.take(a).contains(&"msg bob: ok".to_string()));
            prop_assert!(
                net.log.iter().all(|(_, s, d, _)| !(*s == b && *d == elsewhere)),
                "nothing to the attacker's address"
            );
        }
    }
}

#[test]
fn a_flood_of_xx_initiations_cannot_push_out_an_ik_handshake() {
    use crate::client::tunnel::{RespState, Responding};
    use crate::secure::{Handshake, Pattern};
    let (mut net, _, b) = two();
    let now = net.now;
    let bob_key = Keypair::from_secret([7; 32]);
    // A real IK session, as bob holds it until the first transport datagram.
    let alice = Keypair::from_secret([8; 32]);
    let mut i = Handshake::initiator(
        &alice,
        &Keypair::from_secret([9; 32]),
        Some(bob_key.public()),
    );
    let mut r = Handshake::responder(&bob_key, &Keypair::from_secret([10; 32]), Pattern::IK);
    let (mut m, mut p) = ([0u8; 256], [0u8; 256]);
    let n = i.write(b"", &mut m).unwrap();
    r.read(&m[..n], &mut p).unwrap();
    r.write(b"", &mut m).unwrap();
    let session = r.into_session().unwrap();
    let c = net.client(b);
    assert!(c.keep_responding(
        now,
        Responding {
            local: 1,
            remote: 1,
            src: Via::Direct(addr("10.0.0.2:5000")),
            created: now,
            state: RespState::Ik {
                id: IdBuf::from_id(id("alice")),
                hello: (1, 1),
                session,
            },
        },
    ));
    for k in 0..100u32 {
        let hs = Handshake::responder(&bob_key, &Keypair::from_secret([11; 32]), Pattern::XX);
        c.keep_responding(
            now + Millis(u64::from(k)),
            Responding {
                local: 100 + k,
                remote: k,
                src: Via::Direct(SocketAddr::from((
                    [10, 9, (k / 250) as u8, (k % 250) as u8],
                    1,
                ))),
                created: now + Millis(u64::from(k)),
                state: RespState::Xx(hs),
            },
        );
        assert!(c.responding.len() <= MAX_RESPONDING);
    }
    assert!(
        c.responding.iter().any(|x| x.local == 1),
        "the IK handshake stays"
    );
    assert!(c.responding.iter().filter(|x| x.local >= 100).count() == MAX_RESPONDING - 1);
}

#[test]
fn a_peer_that_restarted_gets_a_new_session_and_the_message() {
    let (mut net, a, b) = talking("before");
    // Bob's process restarts with the same key: his sessions are gone,
    // alice's is not.
    let ka = key_of(&mut net, a);
    net.restart(b, Net::config("bob"), 99, ("alice", ka));
    net.run(2000);
    net.take(b);
    net.chat(a, b, "after", 20_000);
}

#[test]
fn a_peer_that_restarted_while_the_server_is_away_gets_a_new_handshake() {
    let (mut net, a, b) = talking("before");
    // The server is out of reach, and bob restarts (same key, his pins
    // loaded): only a new handshake from alice can reach him.
    net.cut.push(addr(SERVER));
    let ka = key_of(&mut net, a);
    net.restart(b, Net::config("bob"), 98, ("alice", ka));
    net.run(500);
    let m = net.send_message(a, id("bob"), "after").unwrap();
    net.run(20_000);
    assert_eq!(net.take_messages(b), ["msg alice: after"]);
    assert!(net.take(a).contains(&format!("delivered bob #{m}")));
}
