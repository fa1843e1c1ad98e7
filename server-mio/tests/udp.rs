//! The real server over real UDP on loopback: every verb, the refusals,
//! the limits, bad input, signals and restarts.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;

#[test]
fn seed_verbs_byte_for_byte() {
    let srv = Server::start(&[]);
    let a = client();
    let b = client();
    assert_eq!(ask(&a, srv.addr, "ID 120"), "List ['120']");
    b.send_to(b"ID 150", srv.addr).unwrap();
    assert_eq!(recv(&b).unwrap(), "List ['120', '150']");
    assert_eq!(recv(&a).unwrap(), "List ['120', '150']");
    let b_port = b.local_addr().unwrap().port();
    assert_eq!(
        ask(&a, srv.addr, "Peer 150"),
        format!("Peer ('127.0.0.1', {b_port})")
    );
    assert_eq!(ask(&a, srv.addr, "Peer 999"), "NoPeer");
    b.send_to(b"Quit 150", srv.addr).unwrap();
    assert_eq!(recv(&a).unwrap(), "List ['120']");
}

#[test]
fn extended_verbs_end_to_end() {
    let srv = Server::start(&[]);
    let a = client();
    let b = client_on("127.0.0.2");
    let (ca, ta) = register(&a, srv.addr, "alice");
    let (cb, tb) = register(&b, srv.addr, "bob");
    let a_addr = a.local_addr().unwrap();
    let b_addr = b.local_addr().unwrap();
    assert_eq!(
        ask(&b, srv.addr, &format!("LOOKUP 1 {cb} alice")),
        format!("AT 1 alice {a_addr} -")
    );
    let r = ask(&a, srv.addr, &format!("KEEP 2 {ca} alice {ta}"));
    assert!(r.starts_with(&format!("ALIVE 2 120 {a_addr} ")), "{r}");
    // Introduction: bob hears of alice, alice learns where bob is.
    a.send_to(format!("INTRO 3 {ca} alice {ta} bob").as_bytes(), srv.addr)
        .unwrap();
    assert_eq!(recv(&b).unwrap(), format!("PUNCH alice {a_addr} -"));
    assert_eq!(recv(&a).unwrap(), format!("AT 3 bob {b_addr} -"));
    // Presence: bob subscribes, carol arrives.
    let r = ask(&b, srv.addr, &format!("SUB 4 {cb} bob {tb}"));
    assert!(r.starts_with("SUBD 4 "), "{r}");
    let c = client_on("127.0.0.3");
    register(&c, srv.addr, "carol");
    let ev = recv(&b).unwrap();
    assert!(ev.starts_with("EVENTS ") && ev.ends_with(" +carol"), "{ev}");
    let page = ask(&a, srv.addr, &format!("LIST 5 {ca} 0"));
    let mut ids: Vec<&str> = page.split(' ').skip(3).collect();
    ids.sort();
    assert_eq!(ids, ["alice", "bob", "carol"], "{page}");
    let stats = ask(&a, srv.addr, &format!("STATS 6 {ca}"));
    assert!(stats.contains(" requests_reg=3 "), "{stats}");
    assert_eq!(
        ask(&a, srv.addr, &format!("QUIT 7 {ca} alice {ta}")),
        "BYE 7 alice"
    );
    assert_eq!(
        ask(&b, srv.addr, &format!("LOOKUP 8 {cb} alice")),
        "ERR 8 no-such-id"
    );
    assert!(recv(&b).unwrap().ends_with(" -alice"));
}

#[test]
fn hijacks_are_refused() {
    let srv = Server::start(&[]);
    let owner = client();
    let thief = client_on("127.0.0.9");
    assert_eq!(ask(&owner, srv.addr, "ID 120"), "List ['120']");
    // A refused ID is told in a Message the seed client prints; a refused
    // Quit gets nothing (the seed client expects nothing).
    assert_eq!(
        ask(&thief, srv.addr, "ID 120"),
        "Message parley-server: the id 120 is taken"
    );
    thief.send_to(b"Quit 120", srv.addr).unwrap();
    assert_eq!(recv(&thief), None, "Quit is never answered");
    let own_port = owner.local_addr().unwrap().port();
    assert_eq!(
        ask(&thief, srv.addr, "Peer 120"),
        format!("Peer ('127.0.0.1', {own_port})")
    );
    let (_, token) = register(&owner, srv.addr, "alice");
    let c = cookie(&thief, srv.addr);
    assert_eq!(
        ask(&thief, srv.addr, &format!("REG 1 {c} alice")),
        "ERR 1 id-taken"
    );
    let forged = if token.starts_with('0') { "1" } else { "0" }.to_string() + &token[1..];
    assert_eq!(
        ask(&thief, srv.addr, &format!("QUIT 2 {c} alice {forged}")),
        "ERR 2 not-owner"
    );
    assert_eq!(
        ask(&thief, srv.addr, "REG 3 - alice-the-second"),
        "ERR 3 bad-cookie"
    );
}

#[test]
fn a_full_table_says_so_and_keeps_everyone() {
    let srv = Server::start(&["--capacity", "1024", "--no-limits"]);
    let (s, c) = with_cookie("127.0.0.1", srv.addr);
    // Pipeline the registrations in windows to keep the test quick.
    for chunk in (0..1024).collect::<Vec<_>>().chunks(64) {
        for i in chunk {
            s.send_to(format!("REG {i} {c} id{i}").as_bytes(), srv.addr)
                .unwrap();
        }
        for _ in chunk {
            let r = recv(&s).expect("REGD");
            assert!(r.starts_with("REGD "), "{r}");
        }
    }
    assert_eq!(
        ask(&s, srv.addr, &format!("REG x {c} one-too-many")),
        "ERR x table-full"
    );
    for i in [0, 511, 1023] {
        let r = ask(&s, srv.addr, &format!("LOOKUP l {c} id{i}"));
        assert!(r.starts_with(&format!("AT l id{i} ")), "{r}");
    }
}

#[test]
fn quotas_and_rate_limits_hold() {
    let srv = Server::start(&["--quota", "2", "--rate", "20", "--burst", "20"]);
    let (s, c) = with_cookie("127.0.0.4", srv.addr);
    for id in ["q1", "q2"] {
        assert!(ask(&s, srv.addr, &format!("REG r {c} {id}")).starts_with("REGD"));
    }
    assert_eq!(
        ask(&s, srv.addr, &format!("REG r {c} q3")),
        "ERR r over-quota"
    );
    let f = client_on("127.0.0.5");
    for _ in 0..100 {
        f.send_to(b"Peer nobody", srv.addr).unwrap();
    }
    let mut answered = 0;
    while recv(&f).is_some() {
        answered += 1;
    }
    assert!((20..=25).contains(&answered), "answered {answered} of 100");
}

#[test]
fn garbage_and_giant_datagrams_do_not_hurt() {
    let srv = Server::start(&["--no-limits"]);
    let s = client();
    let mut rng = testkit::rng::XorShift::default();
    for len in (0..2000).step_by(7) {
        let junk: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        s.send_to(&junk, srv.addr).unwrap();
    }
    s.send_to(&vec![b'A'; 65507], srv.addr).unwrap();
    s.send_to(&[], srv.addr).unwrap();
    while recv(&s).is_some() {}
    let c = cookie(&s, srv.addr);
    let stats = ask(&s, srv.addr, &format!("STATS 1 {c}"));
    assert!(stats.starts_with("STATS 1 datagrams_in="), "{stats}");
}

#[test]
fn sigterm_stops_cleanly_with_a_last_stats_line() {
    let mut srv = Server::start(&[]);
    let s = client();
    assert_eq!(ask(&s, srv.addr, "ID 1"), "List ['1']");
    let pid = srv.child.id() as i32;
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let line = srv.wait_log("stopping:");
    assert!(line.contains("datagrams in 1 out 1"), "{line}");
    let status = srv.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn clients_recover_after_a_restart() {
    let srv = Server::start(&[]);
    let addr = srv.addr;
    let s = client();
    let (_, token) = register(&s, addr, "phoenix");
    drop(srv);
    let srv = Server::start(&["--bind", &addr.to_string()]);
    // The old cookie and token mean nothing to the new server...
    let c = cookie(&s, srv.addr);
    assert_eq!(
        ask(&s, srv.addr, &format!("KEEP k {c} phoenix {token}")),
        "ERR k no-such-id"
    );
    // ...so the client registers again, as parley does on that error.
    register(&s, srv.addr, "phoenix");
}

#[test]
fn ipv6_loopback_works() {
    let Ok(probe) = std::net::UdpSocket::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    drop(probe);
    let srv = Server::start(&["--bind", "[::1]:0"]);
    let s = client_on("[::1]");
    let port = s.local_addr().unwrap().port();
    assert_eq!(ask(&s, srv.addr, "ID six"), "List ['six']");
    assert_eq!(
        ask(&s, srv.addr, "Peer six"),
        format!("Peer ('::1', {port}, 0, 0)")
    );
    let (c, _) = register(&s, srv.addr, "v6");
    assert_eq!(
        ask(&s, srv.addr, &format!("LOOKUP 1 {c} v6")),
        format!("AT 1 v6 [::1]:{port} -")
    );
}

#[test]
fn metrics_endpoint_serves_prometheus_text() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let maddr = probe.local_addr().unwrap();
    drop(probe);
    let srv = Server::start(&["--metrics", &maddr.to_string()]);
    let s = client();
    ask(&s, srv.addr, "ID m");
    let mut conn = std::net::TcpStream::connect(maddr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    conn.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.0 200 OK"), "{body}");
    assert!(body.contains("\nparley_datagrams_in 1\n"), "{body}");
    assert!(body.contains("\nparley_occupancy 1\n"), "{body}");
}

#[test]
fn help_and_version_and_bad_flags() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("--capacity N") && help.contains("MiB"));
    let out = std::process::Command::new(BIN)
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .starts_with("parley-server ")
    );
    let out = std::process::Command::new(BIN)
        .args(["--capacity", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("between 1024")
    );
}
