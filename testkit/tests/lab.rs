//! The lab's NATs behave as their names say: each test checks one kind
//! with plain UDP sockets opened inside the namespaces.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use testkit::natlab::{Lab, Nat, SERVER_IP, lab_or_skip};

fn recv(s: &UdpSocket, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = s.recv_from(&mut buf).ok()?;
    Some((buf[..n].to_vec(), from))
}

/// The source address the server's socket `srv` sees a datagram from `s`
/// at. UDP may lose one (seen once in CI, on a lab link without loss
/// rules): up to three tries, each datagram numbered so that a late copy
/// of an earlier one is not taken for it.
fn seen(s: &UdpSocket, srv: &UdpSocket) -> SocketAddr {
    static N: AtomicU32 = AtomicU32::new(0);
    let to = SocketAddr::from((SERVER_IP, srv.local_addr().unwrap().port()));
    let tag = format!("hi {}", N.fetch_add(1, Ordering::Relaxed));
    for _ in 0..3 {
        s.send_to(tag.as_bytes(), to).unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        while let Some(wait) = deadline.checked_duration_since(Instant::now()) {
            match recv(srv, wait.max(Duration::from_millis(1))) {
                Some((got, from)) if got == tag.as_bytes() => return from,
                Some(_) => {}
                None => break,
            }
        }
    }
    panic!("the server got none of three datagrams");
}

struct Net {
    _lab: Lab,
    srv1: UdpSocket,
    srv2: UdpSocket,
    host: UdpSocket,
    public: testkit::natlab::Node,
    router_ip: std::net::Ipv4Addr,
}

/// A server with two ports, one router of kind `nat` with one host, and
/// a public host.
fn net(tag: &str, nat: Nat) -> Option<Net> {
    let mut lab = lab_or_skip(tag)?;
    let server = lab.server().unwrap();
    let mut r = lab.router("r", nat).unwrap();
    let h = lab.host_behind(&mut r, "h").unwrap();
    let public = lab.public_host("pub").unwrap();
    Some(Net {
        srv1: server.udp_socket(3478).unwrap(),
        srv2: server.udp_socket(3479).unwrap(),
        host: h.udp_socket(40000).unwrap(),
        public,
        router_ip: r.node.ip,
        _lab: lab,
    })
}

impl Net {
    /// Where each of the server's two ports sees the host's socket.
    fn seen_by_both(&self) -> (SocketAddr, SocketAddr) {
        (seen(&self.host, &self.srv1), seen(&self.host, &self.srv2))
    }

    /// The server's socket `srv` answers the mapping `to`, and the host
    /// gets the answer.
    fn answer_reaches_the_host(&self, srv: &UdpSocket, to: SocketAddr) {
        srv.send_to(b"reply", to).unwrap();
        let got = recv(&self.host, Duration::from_secs(2)).expect("the answer");
        assert_eq!(got.0, b"reply");
    }
}

#[test]
fn masquerade_keeps_the_port_for_every_destination_and_filters() {
    let Some(n) = net("masq", Nat::Masquerade) else {
        return;
    };
    let (a, b) = n.seen_by_both();
    assert_eq!(a, SocketAddr::from((n.router_ip, 40000)));
    assert_eq!(a, b, "one mapping for both destinations");
    // The server may answer; a stranger may not.
    n.answer_reaches_the_host(&n.srv1, a);
    let stranger = n.public.udp_socket(5000).unwrap();
    stranger.send_to(b"unsolicited", a).unwrap();
    assert!(recv(&n.host, Duration::from_millis(700)).is_none());
}

#[test]
fn symmetric_gives_each_destination_its_own_port() {
    let Some(n) = net("sym", Nat::Symmetric) else {
        return;
    };
    let (a, b) = n.seen_by_both();
    assert_eq!(a.ip(), b.ip());
    assert_ne!(a.port(), b.port(), "a new mapping per destination");
    n.answer_reaches_the_host(&n.srv2, b);
}

#[test]
fn full_cone_lets_anyone_reach_a_used_port() {
    let Some(n) = net("cone", Nat::FullCone) else {
        return;
    };
    let a = seen(&n.host, &n.srv1);
    assert_eq!(a, SocketAddr::from((n.router_ip, 40000)));
    let stranger = n.public.udp_socket(5000).unwrap();
    stranger.send_to(b"unsolicited", a).unwrap();
    let (got, from) = recv(&n.host, Duration::from_secs(2)).expect("the stranger got through");
    assert_eq!(got, b"unsolicited");
    assert_eq!(from, SocketAddr::from((n.public.ip, 5000)));
}

#[test]
fn a_router_does_not_hairpin_and_a_nat_can_sit_behind_a_nat() {
    let Some(mut lab) = lab_or_skip("hairpin") else {
        return;
    };
    let server = lab.server().unwrap();
    let mut outer = lab.router("outer", Nat::Masquerade).unwrap();
    let a = lab.host_behind(&mut outer, "a").unwrap();
    let b = lab.host_behind(&mut outer, "b").unwrap();
    let mut inner = lab
        .router_behind(&mut outer, "inner", Nat::Masquerade)
        .unwrap();
    let c = lab.host_behind(&mut inner, "c").unwrap();
    let srv = server.udp_socket(3478).unwrap();
    let (sa, sb, sc) = (
        a.udp_socket(40001).unwrap(),
        b.udp_socket(40002).unwrap(),
        c.udp_socket(40003).unwrap(),
    );
    let seen_b = seen(&sb, &srv);
    assert_eq!(seen_b, SocketAddr::from((outer.node.ip, 40002)));
    // c is behind two NATs: the server sees the outer router's address.
    assert_eq!(seen(&sc, &srv).ip(), std::net::IpAddr::V4(outer.node.ip));
    // a sends to b's public mapping: the router does not loop it back...
    let _ = seen(&sa, &srv);
    sa.send_to(b"via the router", seen_b).unwrap();
    assert!(recv(&sb, Duration::from_millis(700)).is_none());
    // ...but the LAN path works.
    sa.send_to(b"over the LAN", SocketAddr::from((b.ip, 40002)))
        .unwrap();
    assert_eq!(
        recv(&sb, Duration::from_secs(2)).unwrap().0,
        b"over the LAN"
    );
}

#[test]
fn a_short_timeout_router_forgets_a_mapping_after_15_seconds() {
    let Some(n) = net("timeout", Nat::ShortTimeout) else {
        return;
    };
    let a = seen(&n.host, &n.srv1);
    std::thread::sleep(Duration::from_secs(5));
    n.srv1.send_to(b"early", a).unwrap();
    assert_eq!(recv(&n.host, Duration::from_secs(2)).unwrap().0, b"early");
    // The reply refreshed the entry: wait out 15 s of silence from then.
    std::thread::sleep(Duration::from_secs(17));
    n.srv1.send_to(b"late", a).unwrap();
    assert!(
        recv(&n.host, Duration::from_millis(700)).is_none(),
        "the mapping outlived its 15 s"
    );
}

#[test]
fn a_lossy_link_drops_about_a_fifth_each_way() {
    let Some(n) = net("lossy", Nat::Lossy) else {
        return;
    };
    let to = SocketAddr::from((SERVER_IP, 3478));
    let sent = 400;
    // Read while sending: the socket's buffer holds fewer than 400.
    let srv = n.srv1.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && recv(&srv, Duration::from_millis(500)).is_some() {
            got += 1;
        }
        got
    });
    for i in 0..sent {
        n.host.send_to(format!("{i}").as_bytes(), to).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    let got = reader.join().unwrap();
    // 80% expected; 400 draws put 70%..90% beyond 4 standard deviations.
    assert!(
        (sent * 70 / 100..=sent * 90 / 100).contains(&got),
        "{got} of {sent} arrived"
    );
}

#[test]
fn dropping_a_lab_removes_its_namespaces() {
    let Some(mut lab) = lab_or_skip("drop") else {
        return;
    };
    let mut r = lab.router("r", Nat::Masquerade).unwrap();
    lab.host_behind(&mut r, "h").unwrap();
    let names = lab.namespaces().to_vec();
    assert_eq!(names.len(), 3);
    for ns in &names {
        assert!(std::path::Path::new(&format!("/run/netns/{ns}")).exists());
    }
    drop(lab);
    for ns in &names {
        assert!(
            !std::path::Path::new(&format!("/run/netns/{ns}")).exists(),
            "{ns} is left"
        );
    }
}

#[test]
fn a_datagram_between_two_homes_takes_both_access_links() {
    let Some(n) = net("delay", Nat::Masquerade) else {
        return;
    };
    let far = n.public.udp_socket(5001).unwrap();
    let to = SocketAddr::from((n.public.ip, 5001));
    // The first datagram also waits for ARP; time the second.
    n.host.send_to(b"warm up", to).unwrap();
    let (_, from) = recv(&far, Duration::from_secs(2)).expect("the first datagram");
    let start = Instant::now();
    n.host.send_to(b"ping", to).unwrap();
    recv(&far, Duration::from_secs(2)).expect("the ping");
    far.send_to(b"pong", from).unwrap();
    recv(&n.host, Duration::from_secs(2)).expect("the pong");
    // Router to segment and segment to public host, each way; and homes
    // are milliseconds apart, which hole punching relies on.
    let four_links = 4 * testkit::natlab::ACCESS_DELAY;
    assert!(four_links >= Duration::from_millis(20));
    assert!(
        start.elapsed() >= four_links,
        "a round trip took {:?}",
        start.elapsed()
    );
}
