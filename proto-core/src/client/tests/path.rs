//! Finding a path to a peer: introductions, probes, candidate addresses,
//! and peers that run the seed's client.

use super::*;

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
    net.send_message(b, id("alice"), "hi alice").unwrap();
    net.run(1000);
    assert_eq!(net.take(a), ["msg bob: hi alice"]);
    assert_eq!(net.take(b), ["delivered alice #1"]);
    assert!(net.sent(b, "INTRO").is_empty() && net.sent(b, "LOOKUP").is_empty());
}

#[test]
fn a_seed_peer_gets_message_text() {
    let mut net = Net::new();
    let (a, _) = two(&mut net);
    // A seed client registers with the seed's verb; the server says so.
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
    assert!(net.sent(a, "[init").is_empty());
}

#[test]
fn the_first_address_that_answers_becomes_the_path() {
    let mut net = Net::new();
    let (a, b) = two(&mut net);
    // A stale introduction names an address where nobody answers.
    let dead = addr("10.0.0.77:1");
    net.put(addr(SERVER), a, b"PUNCH bob 10.0.0.77:1 -");
    net.run(50);
    let m = net.send_message(a, id("bob"), "which way?").unwrap();
    net.run(3000);
    assert_eq!(net.take(a), [format!("delivered bob #{m}")]);
    assert_eq!(net.take(b), ["msg alice: which way?"]);
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
fn a_peer_with_a_key_out_of_reach_is_never_sent_plain_text() {
    let mut net = Net::new();
    let (a, b) = two(&mut net);
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
    let m = net.send_message(a, id("bob"), "now?").unwrap();
    net.run(10_000);
    assert_eq!(net.take(a), [format!("delivered bob #{m}")]);
    assert_eq!(net.take(b), ["msg alice: now?"]);
}

#[test]
fn a_keyless_parley_peer_out_of_reach_is_never_sent_plain_text() {
    let mut net = Net::new();
    let a = net.add("10.0.0.2:5000", Net::config("alice"));
    let mut cfg = Net::config("bob");
    cfg.register_key = false;
    let b = net.add("10.0.0.3:6000", cfg);
    net.run(1000);
    net.take(a);
    net.take(b);
    net.cut.push(b);
    let m = net.send_message(a, id("bob"), "are you there?").unwrap();
    // Probes, then the relay the peer never joins: about 12 s.
    net.run(15_000);
    // The server says bob runs Parley (kind "-"): no seed guess, no
    // plain text, however long he is silent.
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
    let m = net.send_message(a, id("bob"), "now?").unwrap();
    net.run(10_000);
    assert_eq!(net.take(a), [format!("delivered bob #{m}")]);
    assert_eq!(net.take(b), ["msg alice: now?"]);
}
