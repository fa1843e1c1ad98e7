//! The server's relay carries datagrams between two peers behind
//! symmetric NATs, where no direct path exists: real `parley-server`,
//! real kernel NATs, the protocol spoken from plain sockets.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use proto_core::wire::relay::{Frame, RelayReply};
use testkit::natlab::Nat;
use testkit::parley;
use testkit::udp::register_via;

fn ask(s: &UdpSocket, to: SocketAddr, req: &str) -> String {
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 1500];
    // The lab's links lose nothing here, but retry as a client would.
    for _ in 0..5 {
        s.send_to(req.as_bytes(), to).unwrap();
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            return String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    }
    panic!("no answer to {req}");
}

#[test]
fn two_peers_behind_symmetric_nats_talk_through_the_relay() {
    let Some(mut served) = parley::served_lab("relay") else {
        return;
    };
    let lab = &mut served.lab;
    let mut ra = lab.router("ra", Nat::Symmetric).unwrap();
    let mut rb = lab.router("rb", Nat::Symmetric).unwrap();
    let a = lab.host_behind(&mut ra, "a").unwrap();
    let b = lab.host_behind(&mut rb, "b").unwrap();
    let (sa, sb) = (a.udp_socket(0).unwrap(), b.udp_socket(0).unwrap());
    let to = parley::server_addr();
    let (ca, ta) = register_via(|r| ask(&sa, to, r), "alice");
    let (cb, tb) = register_via(|r| ask(&sb, to, r), "bob");

    let r = ask(&sa, to, &format!("RELAY 1 {ca} alice {ta} bob"));
    let first = RelayReply::parse(r.as_bytes()).unwrap();
    assert!(!first.ready, "{r}");
    let r = ask(&sb, to, &format!("RELAY 2 {cb} bob {tb} alice"));
    let joined = RelayReply::parse(r.as_bytes()).unwrap();
    assert!(joined.ready && joined.channel == first.channel, "{r}");

    let mut buf = [0u8; 1500];
    for (from, into, what) in [(&sa, &sb, &b"to bob"[..]), (&sb, &sa, b"to alice")] {
        let n = Frame {
            channel: first.channel,
            payload: what,
        }
        .emit(&mut buf)
        .unwrap();
        from.send_to(&buf[..n], to).unwrap();
        into.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (m, src) = into.recv_from(&mut buf).expect("the relayed frame");
        assert_eq!(src, to, "relayed frames come from the server");
        let f = Frame::parse(&buf[..m]).unwrap();
        assert_eq!((f.channel, f.payload), (first.channel, what));
    }
}
