//! STUN Binding against the real `parley-server` on loopback: with
//! Parley's own codec, and with a third-party client (aioice, from PyPI).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::{Server, ask, recv};
use proto_core::wire::stun::{BindingRequest, BindingSuccess};

/// Send a Binding request from `s` to `to`; the mapped address answered.
fn binding(s: &UdpSocket, to: SocketAddr) -> Option<SocketAddr> {
    let tx = *b"from-a-test!";
    let mut req = [0u8; 20];
    BindingRequest { transaction: tx }.emit(&mut req).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    s.send_to(&req, to).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = s.recv_from(&mut buf).ok()?;
    assert_eq!(from, to, "the answer leaves from the port asked");
    let r = BindingSuccess::parse(&buf[..n]).expect("a Binding success");
    assert_eq!(r.transaction, tx);
    Some(r.mapped)
}

/// The STUN-only port from the server's log.
fn port2(server: &Server) -> SocketAddr {
    let line = server.wait_log("STUN only also on ");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn both_ports_answer_binding_and_the_second_answers_nothing_else() {
    let server = Server::start(&["--stun-port2", "0"]);
    let second = port2(&server);
    assert_ne!(second.port(), server.addr.port());
    let c = common::client();
    let me = c.local_addr().unwrap();
    assert_eq!(binding(&c, server.addr), Some(me));
    assert_eq!(binding(&c, second), Some(me));
    // The text protocol still works on the first port, not on the second.
    let hello = format!("HELLO h {}", ".".repeat(90));
    assert!(ask(&c, server.addr, &hello).starts_with("COOKIE h "));
    c.send_to(hello.as_bytes(), second).unwrap();
    assert_eq!(recv(&c), None);
}

#[test]
fn ipv6_sources_get_an_ipv6_mapping() {
    let Ok(probe) = UdpSocket::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    drop(probe);
    let server = Server::start(&["--bind", "[::1]:0"]);
    let c = common::client_on("[::1]");
    assert_eq!(binding(&c, server.addr), Some(c.local_addr().unwrap()));
}

#[test]
fn stun_off_means_no_answer() {
    let server = Server::start(&["--stun-per-sec", "0"]);
    let c = common::client();
    assert_eq!(binding(&c, server.addr), None);
}

/// aioice builds the request (with a FINGERPRINT) and checks the answer
/// with its own codec: transaction id, lengths, XOR-MAPPED-ADDRESS.
#[test]
fn aioice_reads_its_own_address_from_both_ports() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("venv-aioice");
    let Some(python) = testkit::python::venv_or_skip(&dir, "aioice", testkit::python::AIOICE)
    else {
        return;
    };
    let server = Server::start(&["--stun-port2", "0"]);
    let second = port2(&server);
    for to in [server.addr, second] {
        let (ip, port) = (to.ip().to_string(), to.port().to_string());
        let args = ["codec", &ip, &port];
        let w = testkit::python::aioice(&mut Command::new(&python), &args, "aioice");
        // "mapped 127.0.0.1 PORT local 127.0.0.1 PORT": the server saw
        // the socket's own address.
        assert_eq!((w[0].as_str(), w[3].as_str()), ("mapped", "local"));
        assert_eq!((&w[1], &w[2]), (&w[4], &w[5]), "{w:?}");
    }
}
