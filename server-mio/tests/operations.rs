//! The server's operational edges: the metrics listener under idle
//! connections, what counts as loopback, the warning for an exposed bind,
//! and the admin token kept off the command line.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use testkit::process::run_briefly;

fn free_tcp_port() -> std::net::SocketAddr {
    let probe = TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

#[test]
fn idle_connections_cannot_starve_the_scraper() {
    let maddr = free_tcp_port();
    let srv = Server::start(&["--metrics", &maddr.to_string()]);
    // Twenty connections that say nothing: more than the listener serves
    // at once (16); the rest wait in the backlog.
    let idle: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(maddr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let mut conn = TcpStream::connect(maddr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    conn.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.0 200 OK"), "{body:?}");
    assert!(body.contains("\nparley_capacity "), "{body}");
    // Idle connections are closed after 5 s, checked at least once a second.
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "the scrape took {:?}",
        started.elapsed()
    );
    drop(idle);
    drop(srv);
}

#[test]
fn a_mapped_loopback_client_on_a_dual_stack_socket_is_local() {
    // A dual-stack socket bound to the IPv4-mapped loopback address: an
    // IPv4 client on this host arrives as ::ffff:127.0.0.1.
    let srv = Server::start(&["--bind", "[::ffff:127.0.0.1]:0"]);
    let s = client();
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], srv.addr.port()));
    let c = cookie(&s, to);
    let r = ask(&s, to, &format!("STATS 1 {c}"));
    assert!(r.starts_with("STATS 1 datagrams_in="), "{r}");
    // Nor is that bind an exposed one: no warning.
    drop(srv);
}

#[test]
fn a_loopback_bind_is_not_warned_about() {
    let srv = Server::start(&[]);
    let s = client();
    ask(&s, srv.addr, "ID quiet");
    let mut child = srv;
    let _ = child.child.kill();
    let lines: Vec<String> = child.log.try_iter().collect();
    assert!(
        !lines.iter().any(|l| l.contains("without --strict")),
        "{lines:?}"
    );
}

/// Run `parley-server ARGS` for half a second in a network namespace of its
/// own whose loopback also carries 192.0.2.1; returns its log, or `None`
/// where no namespace can be made.
fn log_in_namespace(args: &str) -> Option<String> {
    let script = format!(
        "ip addr add 192.0.2.1/32 dev lo && \
         {{ {bin} {args} & srv=$!; sleep 0.5; kill $srv; wait $srv; }}",
        bin = BIN
    );
    let out = testkit::netns::sh(&script)?
        .output()
        .expect("run the server in a namespace");
    Some(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn an_exposed_bind_without_strict_is_warned_about() {
    let Some(log) = log_in_namespace("--bind 192.0.2.1:9999") else {
        eprintln!("cannot make a network namespace here; skipping");
        return;
    };
    assert!(log.contains("listening on 192.0.2.1:9999"), "{log}");
    let warning = log
        .lines()
        .find(|l| l.contains("without --strict"))
        .unwrap_or_else(|| panic!("no warning in {log}"));
    assert!(
        warning.contains("WARN") && warning.contains("spoofed"),
        "{warning}"
    );
    let log = log_in_namespace("--bind 192.0.2.1:9999 --strict").unwrap();
    assert!(log.contains("listening on 192.0.2.1:9999"), "{log}");
    assert!(!log.contains("without --strict"), "{log}");
}

#[test]
fn the_admin_token_can_stay_off_the_command_line() {
    let dir = std::env::temp_dir().join(format!("parley-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("token");
    std::fs::write(&path, "0123456789abcdef\n").unwrap();
    // A bad token is refused at start, naming where it came from.
    for (env, args, needle) in [
        (Some("xyz"), vec![], "PARLEY_ADMIN_TOKEN"),
        (
            None,
            vec!["--admin-token-file", "/nonexistent/token"],
            "cannot read",
        ),
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(&args).args(["--bind", "127.0.0.1:0"]);
        match env {
            Some(v) => cmd.env("PARLEY_ADMIN_TOKEN", v),
            None => cmd.env_remove("PARLEY_ADMIN_TOKEN"),
        };
        let (status, err) = run_briefly(&mut cmd, Duration::from_secs(5));
        let code = status.and_then(|s| s.code());
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{err}");
    }
    // A good one from a file starts the server.
    let srv = Server::start(&["--admin-token-file", path.to_str().unwrap()]);
    let s = client();
    assert_eq!(ask(&s, srv.addr, "Peer nobody"), "NoPeer");
    drop(srv);
    std::fs::remove_dir_all(&dir).unwrap();
}
