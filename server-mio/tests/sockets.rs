//! The server's two sockets from outside: replies leave from the address
//! clients sent to, the address stays the server's alone, `--one-socket`
//! keeps the old way, and a full send buffer holds replies back without
//! losing them, with either layout.

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use common::*;
use parley_server::{Hooks, IoStats, Options, Sockets};

/// Ask `req` and return the reply and where it came from.
fn ask_from(s: &UdpSocket, to: SocketAddr, req: &str) -> (String, SocketAddr) {
    s.send_to(req.as_bytes(), to).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = s.recv_from(&mut buf).expect("a reply");
    (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
}

/// A cookie request, padded to earn its reply.
fn hello(tag: usize) -> String {
    format!("HELLO {tag} {}", ".".repeat(90))
}

fn v6() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

#[test]
fn replies_come_from_the_bound_address() {
    let mut cases = vec![("127.0.0.1:0", "127.0.0.1")];
    if v6() {
        cases.push(("[::1]:0", "[::1]"));
    }
    for (bind, ip) in cases {
        let srv = Server::start(&["--bind", bind]);
        every_reply_comes_from(&client_on(ip), srv.addr);
    }
}

/// Twenty `HELLO`s from `s` to `server`: each answered, from `server`.
fn every_reply_comes_from(s: &UdpSocket, server: SocketAddr) {
    for i in 0..20 {
        let (r, from) = ask_from(s, server, &hello(i));
        assert!(r.starts_with("COOKIE "), "{r}");
        assert_eq!(from, server);
    }
}

#[test]
fn the_start_line_says_where_replies_leave_from() {
    let split = cfg!(target_os = "linux");
    let line = started_line(&[]);
    assert_eq!(
        line.contains("replies from a separate socket"),
        split,
        "{line}"
    );
    let line = started_line(&["--one-socket"]);
    assert!(line.contains("replies from the receiving socket"), "{line}");
}

/// The `listening on` line of a server started with `args`.
fn started_line(args: &[&str]) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(["--bind", "127.0.0.1:0"]).args(args);
    let mut child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("listening on") {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    line.expect("a `listening on` line")
}

#[test]
fn a_second_server_on_the_same_address_fails_loudly() {
    for args in [&[][..], &["--one-socket"][..]] {
        let srv = Server::start(args);
        let addr = srv.addr.to_string();
        let e = UdpSocket::bind(srv.addr).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        // The binary: exit status 1 and the reason.
        let out = Command::new(BIN)
            .args(["--bind", &addr, "--capacity", "1024"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("cannot bind UDP {addr}: Address already in use")),
            "{err}"
        );
        // `run` in this process, either way of binding.
        for one_socket in [false, true] {
            let opts = Options {
                bind: srv.addr,
                capacity: 1024,
                one_socket,
                ..Options::default()
            };
            let e = parley_server::run(&opts, Hooks::default()).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        }
        // The first server is untouched: all its replies still come.
        every_reply_comes_from(&client(), srv.addr);
    }
}

#[test]
fn one_socket_mode_serves_as_before() {
    let srv = Server::start(&["--one-socket"]);
    let s = client();
    let (_, token) = register(&s, srv.addr, "solo");
    assert!(!token.is_empty());
    let (r, from) = ask_from(&s, srv.addr, "ID solo2");
    assert!(r.contains("'solo2'"), "{r}");
    assert_eq!(from, srv.addr);
}

/// Serve bursts of requests through a send socket with the smallest
/// buffer; every reply must come, from the bound address.
#[cfg(target_os = "linux")]
fn burst_through_a_full_send_buffer(one_socket: bool) -> Option<IoStats> {
    testkit::netns::on_thread(&[testkit::netns::SLOW_LOOPBACK], move || {
        let addr = "127.0.0.1:0".parse().unwrap();
        let sockets = if one_socket {
            Sockets::bind_one(addr).unwrap()
        } else {
            Sockets::bind(addr).unwrap()
        };
        assert_eq!(sockets.is_split(), !one_socket && cfg!(target_os = "linux"));
        shrink_send_buffer(sockets.send_socket());
        let bound = sockets.local_addr().unwrap();
        let mut opts = Options {
            capacity: 1024,
            ..Options::default()
        };
        opts.config.limits = false;
        let stop = Arc::new(AtomicBool::new(false));
        let hooks = Hooks {
            on_ready: None,
            stop: Some(stop.clone()),
        };
        let server = std::thread::spawn(move || parley_server::run_on(sockets, &opts, hooks));

        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (bursts, each) = (20, 100);
        let mut buf = [0u8; 2048];
        for b in 0..bursts {
            for i in 0..each {
                s.send_to(hello(b * each + i).as_bytes(), bound).unwrap();
            }
            let mut tags = HashSet::new();
            for _ in 0..each {
                let (n, from) = s.recv_from(&mut buf).expect("every reply comes");
                assert_eq!(from, bound);
                let r = String::from_utf8_lossy(&buf[..n]).into_owned();
                assert!(r.starts_with("COOKIE "), "{r}");
                tags.insert(r.split(' ').nth(1).unwrap().to_string());
            }
            assert_eq!(tags.len(), each, "a reply came twice");
        }
        stop.store(true, Ordering::Relaxed);
        s.send_to(b"wake up", bound).unwrap();
        let (stats, io) = server.join().unwrap().unwrap();
        assert_eq!(stats.datagrams_out, (bursts * each) as u64);
        assert_eq!(io.send_failed, 0);
        io
    })
}

/// The smallest send buffer the kernel gives (it raises the 1 byte asked
/// for to its minimum).
#[cfg(target_os = "linux")]
fn shrink_send_buffer(sock: &mio::net::UdpSocket) {
    socket2::SockRef::from(sock)
        .set_send_buffer_size(1)
        .expect("SO_SNDBUF");
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_send_buffer_delays_replies_but_loses_none() {
    for one_socket in [false, true] {
        let Some(io) = burst_through_a_full_send_buffer(one_socket) else {
            eprintln!("cannot make a network namespace with a slow loopback here; skipping");
            return;
        };
        eprintln!("one socket {one_socket}: {io:?}");
        assert!(
            io.send_blocked > 0,
            "the send buffer never filled (one socket: {one_socket})"
        );
    }
}
