//! The relay of the real `parley-server` on loopback: a paired session
//! forwards frames unchanged, and a third socket that knows the channel
//! gets nothing through.

mod common;

use std::time::Duration;

use common::{Server, ask, client, recv, register};
use proto_core::wire::relay::{Frame, RelayReply};

#[test]
fn a_paired_session_forwards_and_strangers_are_ignored() {
    let server = Server::start(&[]);
    let (a, b, stranger) = (client(), client(), client());
    let (ca, ta) = register(&a, server.addr, "alice");
    let (cb, tb) = register(&b, server.addr, "bob");
    let r = ask(&a, server.addr, &format!("RELAY 1 {ca} alice {ta} bob"));
    let ch = RelayReply::parse(r.as_bytes()).unwrap().channel;
    let r = ask(&b, server.addr, &format!("RELAY 2 {cb} bob {tb} alice"));
    assert!(RelayReply::parse(r.as_bytes()).unwrap().ready, "{r}");

    let mut buf = [0u8; 1300];
    let n = Frame {
        channel: ch,
        payload: &[0xff; 1190],
    }
    .emit(&mut buf)
    .unwrap();
    a.send_to(&buf[..n], server.addr).unwrap();
    let mut got = [0u8; 1500];
    b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let (m, _) = b.recv_from(&mut got).expect("relayed");
    assert_eq!(&got[..m], &buf[..n], "forwarded unchanged");

    // The stranger sends on alice's channel: neither peer hears of it.
    stranger.send_to(&buf[..n], server.addr).unwrap();
    assert_eq!(recv(&a), None);
    assert_eq!(recv(&b), None);
    assert_eq!(recv(&stranger), None);
}
