//! Finding a path to a peer: introductions, probes, candidate addresses,
//! and peers that run the seed's client.

use super::*;

/// A seed client registered as carol (with the seed's verb), and where.
fn seed_carol(net: &mut Net) -> SocketAddr {
    let carol = addr("10.0.0.9:10520");
    net.put(carol, addr(SERVER), b"ID carol");
    net.run(500);
    carol
}

/// The datagrams from `src` that reached `dst`, a host with no client.
fn received(net: &Net, src: SocketAddr, dst: SocketAddr) -> Vec<&String> {
    net.inbox
        .iter()
        .filter(|(s, d, _)| *s == src && *d == dst)
        .map(|(_, _, t)| t)
        .collect()
}

#[test]
fn chat_goes_through_intro_punch_and_probes_then_is_acked() {
    let (mut net, a, b) = two();
    net.chat(a, b, "hi bob", 2000);
    // The introduction and the first initiations go in copies, and
    // every copy of an initiation is answered once.
    let copies = crate::client::path::PUNCH_COPIES;
    assert_eq!(net.sent(a, "INTRO ").len(), copies);
    assert_eq!(net.sent(addr(SERVER), "PUNCH alice ").len(), copies);
    assert_eq!(net.sent(a, "[init").len(), copies);
    assert_eq!(net.sent(b, "[resp").len(), 1);
    // The Noise initiation is the probe, from both sides (bob's opens his
    // NAT toward alice), and it is answered.
    assert!(!net.sent(a, "[init").is_empty());
    assert!(!net.sent(b, "[init").is_empty(), "both sides probe");
    assert!(!net.sent(b, "[resp").is_empty());
    // Nothing readable crosses the wire between them.
    for ((_, s, d, _), raw) in net.log.iter().zip(&net.raw) {
        if [a, b].contains(s) && [a, b].contains(d) {
            assert!(
                raw.windows(6).all(|w| w != b"hi bob"),
                "plain text on the wire"
            );
        }
    }
    let chats = net.sent(a, "CHAT alice ");
    assert_eq!(chats.len(), 1);
    assert_eq!(chats[0].1, b);
    assert!(chats[0].2.ends_with(" 1/1 hi bob"), "{}", chats[0].2);
    // The reply needs no new introduction: both know the path.
    assert_eq!(net.chat(b, a, "hi alice", 1000), 1);
    assert!(net.sent(b, "INTRO").is_empty() && net.sent(b, "LOOKUP").is_empty());
}

#[test]
fn a_seed_peer_gets_message_text() {
    let (mut net, a, _) = two();
    // A seed client registers with the seed's verb; the server says so.
    let carol = seed_carol(&mut net);
    let m = net.send_message(a, id("carol"), "hi carol").unwrap();
    net.run(10_000);
    assert_eq!(net.take(a), [format!("unconfirmed carol #{m}")]);
    let to_carol = received(&net, a, carol);
    assert!(
        to_carol.iter().all(|t| !t.starts_with("[init")),
        "no handshake with a client the server reports as a seed client"
    );
    assert_eq!(
        to_carol.iter().filter(|t| t.starts_with("Message")).count(),
        1
    );
    assert!(to_carol.contains(&&"Message hi carol".to_string()));
    assert!(
        to_carol.iter().all(|t| !t.starts_with("CHAT")),
        "no chat before a path answers"
    );
    // Known seed: the next one goes at once, without probes.
    let probes = net.sent(a, "[init").len();
    net.send_message(a, id("carol"), "again").unwrap();
    net.run(100);
    assert_eq!(net.take(a), ["unconfirmed carol #2"]);
    assert_eq!(net.sent(a, "[init").len(), probes);
    // A minute later still: what the server said is not a guess to check.
    net.run(60_000);
    net.send_message(a, id("carol"), "third").unwrap();
    net.run(10_000);
    assert_eq!(net.take(a), ["unconfirmed carol #3"]);
    assert_eq!(net.sent(a, "[init").len(), probes);
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
    let (mut net, a, _) = two();
    let carol = seed_carol(&mut net);
    let now = net.now;
    net.client(a).mark_seed(now, id("carol"));
    let text = "s".repeat(1500);
    net.client(a).send_message(now, id("carol"), &text).unwrap();
    net.run(1000);
    let got = received(&net, a, carol);
    assert_eq!(got.len(), 2, "{}", got.len());
    assert!(
        got.iter()
            .all(|t| t.starts_with("Message ") && t.len() <= 1024)
    );
    assert!(net.sent(a, "[init").is_empty());
}

#[test]
fn the_first_address_that_answers_becomes_the_path() {
    let (mut net, a, b) = two();
    // A stale introduction names an address where nobody answers.
    let dead = addr("10.0.0.77:1");
    net.put(addr(SERVER), a, b"PUNCH bob 10.0.0.77:1 -");
    net.run(50);
    net.chat(a, b, "which way?", 3000);
    assert!(
        net.sent(a, "[init").iter().any(|p| p.1 == dead),
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
    let (mut net, a, b) = talking("hi");
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

/// Whether bob registered his key or not: the server says he runs
/// Parley (his key, or kind "-"), so there is no seed guess and no plain
/// text, however long he is silent.
#[test]
fn a_parley_peer_out_of_reach_is_never_sent_plain_text() {
    for bob in [Net::config("bob"), Net::keyless("bob")] {
        let mut net = Net::new();
        let [a, b] = net.registered([(ALICE, Net::config("alice")), (BOB, bob)]);
        net.cut.push(b);
        let m = net.send_message(a, id("bob"), "are you there?").unwrap();
        // Probes, then the relay the peer never joins: about 12 s.
        net.run(15_000);
        assert_eq!(
            net.take(a),
            [format!(
                "not delivered bob #{m}: the peer never acknowledged it"
            )]
        );
        assert!(net.sent(a, "Message").is_empty(), "no downgrade");
        net.cut.clear();
        net.run(60_000);
        net.take(b);
        net.chat(a, b, "now?", 10_000);
    }
}

/// The times of the datagrams that went between `a` and `b`, either way,
/// from `since` on.
fn between(net: &Net, a: SocketAddr, b: SocketAddr, since: u64) -> Vec<u64> {
    let mut t: Vec<u64> = [(a, b), (b, a)]
        .iter()
        .flat_map(|&(x, y)| net.sent(x, "").into_iter().filter(move |s| s.1 == y))
        .map(|s| s.0.millis())
        .filter(|&t| t >= since)
        .collect();
    t.sort_unstable();
    t
}

#[test]
fn a_live_conversation_keeps_its_direct_path_open_then_lets_it_go() {
    let (mut net, a, b) = talking("hi bob");
    let start = net.now.millis();
    net.run(300_000);
    // Two minutes after the last line the path is still probed: it is
    // never 15 s silent (a NAT's mapping would lapse), and each probe is
    // answered.
    let live = between(&net, a, b, start);
    let live: Vec<u64> = live.into_iter().filter(|&t| t < start + 110_000).collect();
    let gaps: Vec<u64> = live.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(live.len() >= 20, "{live:?}");
    assert!(gaps.iter().all(|&g| g < 11_000), "{gaps:?}");
    let probes = net.sent(a, "PROBE ").len() + net.sent(b, "PROBE ").len();
    let answers = net.sent(a, "PROBED ").len() + net.sent(b, "PROBED ").len();
    assert!(probes >= 10 && answers >= probes - 1, "{probes} {answers}");
    // Then the conversation is over: the path is let go.
    assert_eq!(between(&net, a, b, start + 135_000), Vec::<u64>::new());
    // A new line brings it back.
    net.chat(a, b, "still there?", 10_000);
}
