//! Talking to the server: registration, keepalives, recovering when the
//! server restarts or forgets the id, lookup, list, ping, quit, presence.

use super::*;
use crate::client::request::HELLO_LEN;

/// Alice, registered and subscribed to presence events.
fn subscribed_alice(net: &mut Net) -> SocketAddr {
    let mut cfg = Net::config("alice");
    cfg.subscribe = true;
    let [a] = net.registered([(ALICE, cfg)]);
    a
}

#[test]
fn registration_pads_hello_and_registers() {
    let mut net = Net::new();
    let [a] = net.registered([(ALICE, Net::config("alice"))]);
    let hello = &net.sent(a, "HELLO ")[0].2;
    assert_eq!(hello.len(), HELLO_LEN, "HELLO is padded: {hello}");
    let cookie = &net.sent(addr(SERVER), "COOKIE ")[0].2;
    assert!(cookie.len() <= hello.len());
    assert_eq!(net.sent(a, "REG ").len(), 1);
    assert!(net.client(a).is_registered());
    assert_eq!(net.client(a).observed_addr(), Some(a));
}

#[test]
fn keepalives_every_9_to_12_seconds_with_jitter() {
    let mut net = Net::new();
    let a = net.add("10.0.0.2:5000", Net::config("alice"));
    let b = net.add("10.0.0.3:5000", Net::config("bob"));
    net.run(600_000);
    for c in [a, b] {
        let keeps: Vec<u64> = net.sent(c, "KEEP ").iter().map(|k| k.0.millis()).collect();
        assert!(keeps.len() >= 48, "{} keepalives in 10 min", keeps.len());
        let gaps: Vec<u64> = keeps.windows(2).map(|w| w[1] - w[0]).collect();
        // Never 15 s of silence: a NAT that forgets a mapping after 15 s
        // keeps it, and the server's PUNCH still reaches us.
        assert!(
            gaps.iter().all(|g| (9_000..=12_000).contains(g)),
            "{gaps:?}"
        );
        let distinct: std::collections::BTreeSet<_> = gaps.iter().collect();
        assert!(distinct.len() > 5, "jittered: {gaps:?}");
        // The cookie is refreshed before it ages out: no request is refused.
        assert!(net.sent(addr(SERVER), "ERR").is_empty());
        assert!(net.client(c).is_registered());
    }
}

#[test]
fn registration_retries_with_backoff_then_gives_up() {
    let mut net = Net::new();
    net.server = None;
    let a = net.add("10.0.0.2:5000", Net::config("alice"));
    net.run(60_000);
    let hellos: Vec<u64> = net.sent(a, "HELLO").iter().map(|h| h.0.millis()).collect();
    assert_eq!(hellos.len(), 10, "{hellos:?}");
    let gaps: Vec<u64> = hellos.windows(2).map(|w| w[1] - w[0]).collect();
    for w in gaps.windows(2) {
        assert!(w[1] > w[0] || w[1] >= 1600, "backoff grows: {gaps:?}");
    }
    for g in &gaps {
        assert!(*g <= 2400, "the backoff stops at 2 s (jittered): {gaps:?}");
    }
    assert_eq!(
        net.take(a),
        [
            "server unreachable",
            "registration failed: the server did not answer"
        ]
    );
    assert!(net.client(a).poll_timeout().is_none(), "nothing left to do");
}

#[test]
fn an_id_taken_is_reported_as_a_sentence() {
    let mut net = Net::new();
    let a = net.add("10.0.0.2:5000", Net::config("alice"));
    net.run(1000);
    let b = net.add("10.0.0.3:5000", Net::config("alice"));
    net.run(1000);
    assert_eq!(net.take(a), ["registered alice again=false"]);
    assert_eq!(
        net.take(b),
        ["registration failed: that id is already taken by someone else"]
    );
}

#[test]
fn server_restart_means_a_silent_reregistration() {
    let (mut net, a, b) = two();
    // The server restarts with a new secret and an empty table.
    net.server = Some(server(ServerConfig::default(), 7));
    net.run(60_000);
    assert_eq!(net.take(a), ["registered alice again=true"]);
    assert_eq!(net.take(b), ["registered bob again=true"]);
    // bad-cookie -> HELLO -> no-such-id -> REG.
    let errs: Vec<String> = net
        .sent(addr(SERVER), "ERR")
        .iter()
        .filter(|e| e.1 == a)
        .map(|e| e.2.split(' ').nth(2).unwrap().to_string())
        .collect();
    assert_eq!(errs, ["bad-cookie", "no-such-id"]);
    // Chat works through the new server.
    net.chat(a, b, "still here", 2000);
}

#[test]
fn server_down_for_a_while_then_back() {
    let (mut net, a, _) = two();
    let saved = net.server.take();
    net.run(60_000);
    assert_eq!(net.take(a), ["server unreachable"]);
    net.server = saved;
    net.run(40_000);
    assert_eq!(net.take(a), ["server back"]);
    assert!(net.client(a).is_registered());
}

#[test]
fn a_forgotten_id_is_registered_again() {
    // A lease shorter than the keepalive: the server forgets the id.
    let mut net = Net::with_server(ServerConfig {
        lease_min: 1,
        lease_default: 1,
        ..ServerConfig::default()
    });
    let mut cfg = Net::config("alice");
    cfg.keepalive_min = Millis(3000);
    cfg.keepalive_max = Millis(3000);
    let a = net.add("10.0.0.2:5000", cfg);
    net.run(500);
    assert_eq!(net.take(a), ["registered alice again=false"]);
    net.run(10_000);
    let events = net.take(a);
    assert!(events.iter().all(|e| e == "registered alice again=true"));
    assert!(!events.is_empty());
}

#[test]
fn lookup_list_ping_and_quit() {
    let (mut net, a, b) = two();
    let mut cfg = Config::new(addr(SERVER), None);
    cfg.register = false;
    let anon = net.add("10.0.0.4:7000", cfg);
    let now = net.now;
    net.client(anon).lookup(now, id("bob")).unwrap();
    net.client(anon).lookup(now, id("zed")).unwrap();
    net.client(anon).list(now, 0).unwrap();
    net.client(anon).ping(now).unwrap();
    net.run(1000);
    let mut got = net.take(anon);
    got.sort();
    assert_eq!(
        got,
        [
            "failed Lookup Some(Id(zed)): nobody with that id is online".to_string(),
            format!("found bob {b}"),
            "page 0 [alice bob]".to_string(),
            "pong 10.0.0.4:7000".to_string(),
        ]
    );
    net.quit(a).unwrap();
    net.run(1000);
    assert_eq!(net.take(a), ["bye"]);
    net.lookup(anon, id("alice")).unwrap();
    net.run(1000);
    assert_eq!(
        net.take(anon),
        ["failed Lookup Some(Id(alice)): nobody with that id is online"]
    );
    // No keepalive after quitting.
    let keeps = net.sent(a, "KEEP").len();
    net.run(60_000);
    assert_eq!(net.sent(a, "KEEP").len(), keeps);
}

#[test]
fn presence_events_become_joined_and_left() {
    let mut net = Net::new();
    let a = subscribed_alice(&mut net);
    let b = net.add("10.0.0.3:6000", Net::config("bob"));
    net.run(1000);
    net.quit(b).unwrap();
    net.run(1000);
    assert_eq!(net.take(a), ["joined bob", "left bob"]);
}

#[test]
fn a_lost_events_datagram_is_reported_as_resync() {
    let mut net = Net::new();
    let a = subscribed_alice(&mut net);
    // The EVENTS telling alice that bob joined is lost.
    net.cut.push(a);
    net.add("10.0.0.3:6000", Net::config("bob"));
    net.run(1000);
    net.cut.clear();
    net.add("10.0.0.4:7000", Net::config("carol"));
    net.run(1000);
    assert_eq!(net.take(a), ["resync", "joined carol"]);
}

#[test]
fn a_quit_refused_as_busy_can_be_tried_again() {
    let (mut net, a, _) = two();
    // Fill the request table with lookups that cannot be answered yet.
    net.cut.push(a);
    let now = net.now;
    let mut n = 0;
    while net.client(a).lookup(now, id("bob")).is_ok() {
        n += 1;
        assert!(n <= MAX_REQUESTS);
    }
    assert_eq!(net.quit(a), Err(CommandError::Busy));
    net.cut.clear();
    net.run(5000);
    net.take(a);
    assert_eq!(net.quit(a), Ok(()));
    net.run(1000);
    assert_eq!(net.sent(a, "QUIT ").len(), 1);
    assert_eq!(net.take(a), ["bye"]);
}
