//! Any sequence of datagrams, from the server or from peers, is handled
//! without a panic.

use super::*;
use proptest::prelude::*;

/// Datagrams that look like the real thing with fields drawn at random.
fn datagram() -> impl Strategy<Value = (bool, Vec<u8>)> {
    let verb = prop::sample::select(vec![
        "COOKIE", "REGD", "ALIVE", "AT", "PAGE", "SUBD", "BYE", "ERR", "PUNCH", "EVENTS", "RESYNC",
        "CHAT", "ACK", "PROBE", "PROBED", "Message", "NOISE IK", "NOISE XX",
    ]);
    let field = prop::sample::select(vec![
        "1",
        "2",
        "0",
        "4294967295",
        "bob",
        "alice",
        "carol",
        "0000000000000001",
        "00000000000000aa",
        "127.0.0.1:5",
        "10.0.0.3:6000",
        "1/1",
        "1/2",
        "2/2",
        "16/16",
        "no-such-id",
        "bad-cookie",
        "not-owner",
        "id-taken",
        "+bob",
        "-bob",
        "-",
        "x",
        "0000abcd",
        "00",
        "5f0c2a1b9d8e7f605f0c2a1b9d8e7f605f0c2a1b9d8e7f605f0c2a1b9d8e7f60",
    ]);
    (
        any::<bool>(),
        verb,
        proptest::collection::vec(field, 0..7),
        proptest::collection::vec(any::<u8>(), 0..40),
        any::<bool>(),
        // Sealed binary kinds (response, transport, confirm) with junk after.
        prop::sample::select(vec![0u8, 0xF9, 0xFA, 0xFB]),
    )
        .prop_map(|(from_server, verb, fields, junk, raw, sealed)| {
            let mut d = verb.as_bytes().to_vec();
            for f in fields {
                d.push(b' ');
                d.extend_from_slice(f.as_bytes());
            }
            if raw {
                d = junk;
                if sealed != 0 {
                    d.insert(0, sealed);
                }
            }
            (from_server, d)
        })
}

proptest! {
    #[test]
    fn any_datagram_sequence_is_handled_without_panic(
        ds in proptest::collection::vec(datagram(), 0..60),
        sends in proptest::collection::vec(0u8..4, 0..6),
    ) {
        let mut c = Box::new(Client::new(Net::config("alice"), Instant(0), [1; 32], Keypair::from_secret([1; 32])));
        for (k, s) in sends.iter().enumerate() {
            let to = ["bob", "carol", "dan", "bob"][usize::from(*s)];
            let _ = c.send_message(Instant(k as u64), id(to), "hello");
        }
        let mut now = 0u64;
        for (from_server, d) in &ds {
            now += 97;
            let src = if *from_server { addr(SERVER) } else { addr("10.0.0.3:6000") };
            c.handle(Instant(now), src, d);
            // What the datagram made the client send at once: nothing
            // unauthenticated is answered with more than came in.
            while let Some(t) = c.poll_transmit() {
                prop_assert!(t.payload.len() <= MAX_DATAGRAM);
                if !*from_server && t.dst == src {
                    prop_assert!(t.payload.len() <= d.len());
                }
            }
            // Its own timers' sends (handshakes it started) are not answers.
            if let Some(t) = c.poll_timeout() {
                if t.0 <= now {
                    c.handle_timeout(Instant(now));
                }
            }
            while let Some(t) = c.poll_transmit() {
                prop_assert!(t.payload.len() <= MAX_DATAGRAM);
            }
            while let Some(e) = c.poll_event() {
                // Nothing that did not authenticate is shown as verified.
                if let Event::Message { verified, .. } = e {
                    prop_assert!(!verified);
                }
            }
        }
        // Time runs on: everything in flight ends one way or another.
        for _ in 0..10_000 {
            let Some(t) = c.poll_timeout() else { break };
            now = now.max(t.0);
            c.handle_timeout(Instant(now));
            // No busy loop: what was due is done or rescheduled.
            if let Some(t) = c.poll_timeout() {
                prop_assert!(t.0 > now, "due again at once: {} <= {}", t.0, now);
            }
            while c.poll_transmit().is_some() {}
            while c.poll_event().is_some() {}
            if c.in_flight() == 0 && now > 200_000 {
                break;
            }
        }
        prop_assert_eq!(c.in_flight(), 0);
    }
}
