//! A subscriber owed more changes than one `EVENTS` datagram holds gets all
//! of them, in order, over the following intervals, even when nothing else
//! changes afterwards ("subscribers always end up with the latest state").

use std::net::SocketAddr;

use proto_core::Instant;
use proto_core::server::{Config, Server, VecOutbox};
use proto_core::time::Millis;
use proto_core::wire::reply::Change;
use proto_core::wire::{Reply, Token};
use testkit::tables::Tables;

type Out = VecOutbox<16>;

fn cookie(s: &mut Server<'_>, out: &mut Out, src: SocketAddr, now: Instant) -> String {
    let hello = format!("HELLO 1 {}", ".".repeat(92));
    s.handle(now, src, hello.as_bytes(), out);
    let (_, b) = out.pop().expect("a COOKIE");
    match Reply::parse(&b) {
        Ok(Reply::Cookie { cookie, .. }) => cookie.to_string(),
        other => panic!("expected COOKIE, got {other:?}"),
    }
}

fn register(
    s: &mut Server<'_>,
    out: &mut Out,
    src: SocketAddr,
    now: Instant,
    c: &str,
    id: &str,
) -> Token {
    // The reply goes to its own outbox; presence datagrams stay in `out`.
    let mut reply = Out::new();
    s.handle(now, src, format!("REG 1 {c} {id}").as_bytes(), &mut reply);
    let (_, b) = reply.pop().expect("a REGD");
    assert!(reply.is_empty() && out.len() < 16);
    match Reply::parse(&b) {
        Ok(Reply::Registered { token, .. }) => token,
        other => panic!("expected REGD for {id}, got {other:?}"),
    }
}

#[test]
fn a_backlog_longer_than_one_datagram_is_delivered_in_full() {
    let mut tables = Tables::new(1024);
    let storage = tables.storage();
    let mut s = Server::new(Config::default(), storage, [1; 32]).unwrap();
    let mut out = Out::new();
    let alice: SocketAddr = "192.0.2.1:1000".parse().unwrap();
    let bob: SocketAddr = "192.0.2.2:2000".parse().unwrap();
    let mut now = Instant::from_secs(100);

    let ca = cookie(&mut s, &mut out, alice, now);
    let token = register(&mut s, &mut out, alice, now, &ca, "alice");
    s.handle(
        now,
        alice,
        format!("SUB 2 {ca} alice {token}").as_bytes(),
        &mut out,
    );
    assert!(matches!(
        Reply::parse(&out.pop().unwrap().1),
        Ok(Reply::Subscribed { seq: 1, .. })
    ));
    let cb = cookie(&mut s, &mut out, bob, now);

    // 40 ids of 32 bytes join within one presence interval: about 1350
    // bytes of changes, more than one datagram holds.
    let ids: Vec<String> = (0..40)
        .map(|i| format!("{i:02}{}", "x".repeat(30)))
        .collect();
    for id in &ids {
        now = now + Millis(1);
        register(&mut s, &mut out, bob, now, &cb, id);
        s.tick(now, &mut out);
    }
    // Then nothing changes. Run the timers as an event loop would, for 2 s.
    let end = now + Millis(2000);
    let mut wake = now;
    while wake <= end {
        now = wake;
        wake = s.tick(now, &mut out).unwrap_or(end + Millis(1));
        if wake <= now {
            wake = now + Millis(1);
        }
    }

    let mut datagrams = 0;
    let mut next_seq = 2; // alice's own join was 1
    let mut joined = Vec::new();
    while let Some((dst, bytes)) = out.pop() {
        assert_eq!(dst, alice, "only alice subscribes");
        assert!(bytes.len() <= proto_core::MAX_DATAGRAM);
        let Ok(Reply::Events {
            first,
            last,
            changes,
        }) = Reply::parse(&bytes)
        else {
            panic!("expected EVENTS, got {:?}", String::from_utf8_lossy(&bytes));
        };
        assert_eq!(first, next_seq, "events must not skip or repeat");
        let before = joined.len();
        for c in changes.iter() {
            match c {
                Change::Join(id) => joined.push(id.as_str().to_string()),
                Change::Leave(id) => panic!("nobody left, yet -{id}"),
            }
        }
        assert_eq!(
            (last - first + 1) as usize,
            joined.len() - before,
            "first..last counts the changes carried"
        );
        next_seq = last + 1;
        datagrams += 1;
    }
    assert!(
        datagrams >= 2,
        "the backlog should need more than one datagram"
    );
    assert_eq!(joined, ids, "alice must hear of every join, in order");
}
