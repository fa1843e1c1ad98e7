//! `--state FILE` with the real binary: a restart keeps the table, and a
//! damaged file stops the server and is left in place.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, Server, ask, client, client_on, recv, with_cookie};
use testkit::process::run_briefly;

const KEY: &str = "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f";

/// A fresh directory for test `name`, and the state file `file` in it.
fn scratch(name: &str, file: &str) -> (PathBuf, PathBuf) {
    let d = std::env::temp_dir().join(format!("parley-state-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    let state = d.join(file);
    (d, state)
}

/// The server with `--state STATE` and `extra` options.
fn serve(state: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--state", state.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// SIGTERM the server and wait for it to exit; it must exit 0.
fn stop(mut srv: Server) {
    let pid = srv.child.id() as i32;
    // SAFETY: a plain kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = srv.child.try_wait().unwrap() {
            assert!(status.success(), "parley-server exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "parley-server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run the server on `state`, which must refuse to start: its stderr.
fn refused(state: &Path) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(["--bind", "127.0.0.1:0", "--state"]).arg(state);
    let (status, err) = run_briefly(&mut cmd, Duration::from_secs(20));
    let status = status.expect("parley-server started on a damaged state file");
    assert!(!status.success(), "exit status {status}");
    err
}

#[test]
fn a_restart_keeps_ids_tokens_keys_and_cookies() {
    let (dir, state) = scratch("restart", "parley.state");
    let srv = serve(&state, &[]);

    // alice: extended, with a key; 120: a seed client; bob holds a cookie.
    let (a, ca) = with_cookie("127.0.0.1", srv.addr);
    let r = ask(&a, srv.addr, &format!("REG 1 {ca} alice - - {KEY}"));
    assert!(r.starts_with("REGD 1 alice 120 "), "{r}");
    let token = r.rsplit(' ').next().unwrap().to_string();
    let seed = client_on("127.0.0.2");
    seed.send_to(b"ID 120", srv.addr).unwrap();
    assert_eq!(recv(&seed).as_deref(), Some("List ['alice', '120']"));
    let (b, cb) = with_cookie("127.0.0.3", srv.addr);
    stop(srv);

    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the file holds the server's secret");
    assert_eq!(
        fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary file left"
    );

    let srv = serve(&state, &[]);
    // Cookies issued before the restart still validate; the token still owns.
    let r = ask(&a, srv.addr, &format!("KEEP 2 {ca} alice {token}"));
    assert!(r.starts_with("ALIVE 2 120 "), "{r}");
    let r = ask(&b, srv.addr, &format!("LOOKUP 3 {cb} alice"));
    assert_eq!(r, format!("AT 3 alice {} {KEY}", a.local_addr().unwrap()));
    // The seed client is still reachable, by both protocols.
    let seed_at = seed.local_addr().unwrap();
    let r = ask(&b, srv.addr, &format!("LOOKUP 4 {cb} 120"));
    assert_eq!(r, format!("AT 4 120 {seed_at} seed"));
    let r = ask(&b, srv.addr, "Peer 120");
    assert_eq!(r, format!("Peer ('127.0.0.2', {})", seed_at.port()));
    // Nobody else can take the ids.
    let r = ask(&b, srv.addr, &format!("REG 5 {cb} alice"));
    assert_eq!(r, "ERR 5 id-taken");
    let r = ask(&b, srv.addr, "ID 120");
    assert_eq!(r, "Message parley-server: the id 120 is taken");
    let r = ask(&b, srv.addr, "Peer 120");
    assert_eq!(r, format!("Peer ('127.0.0.2', {})", seed_at.port()));
    stop(srv);

    // And the next restart still has them.
    let srv = serve(&state, &[]);
    let r = ask(&b, srv.addr, &format!("LOOKUP 6 {cb} alice"));
    assert!(r.starts_with("AT 6 alice "), "{r}");
    drop(srv);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_file_starts_empty_and_is_written_on_stop() {
    let (dir, state) = scratch("first", "new.state");
    let srv = serve(&state, &[]);
    let (c, cc) = with_cookie("127.0.0.1", srv.addr);
    assert_eq!(
        ask(&c, srv.addr, &format!("LOOKUP 1 {cc} x")),
        "ERR 1 no-such-id"
    );
    stop(srv);
    assert!(state.exists());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_files_are_refused_and_left_in_place() {
    let (dir, state) = scratch("damaged", "parley.state");
    let srv = serve(&state, &[]);
    let seed = client();
    seed.send_to(b"ID 120", srv.addr).unwrap();
    assert!(recv(&seed).is_some());
    stop(srv);
    let good = fs::read(&state).unwrap();

    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("truncated", good[..good.len() - 7].to_vec(), "truncated"),
        (
            "corrupt",
            {
                let mut v = good.clone();
                v[100] ^= 0x40;
                v
            },
            "checksum",
        ),
        (
            "version",
            {
                let mut v = good.clone();
                v[8] = 9;
                v
            },
            "version 9",
        ),
        (
            "foreign",
            b"not a state file at all".to_vec(),
            "not a Parley state file",
        ),
    ];
    for (what, bytes, says) in cases {
        fs::write(&state, &bytes).unwrap();
        let err = refused(&state);
        assert!(err.contains(says), "{what}: {err}");
        assert_eq!(
            fs::read(&state).unwrap(),
            bytes,
            "{what}: the file was changed"
        );
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn leases_keep_running_while_the_server_is_down() {
    let (dir, state) = scratch("downtime", "parley.state");
    // Leases of 3 s: alice's has about 2.5 s left when the server stops.
    let srv = serve(&state, &["--lease", "3"]);
    let (a, ca) = with_cookie("127.0.0.1", srv.addr);
    let r = ask(&a, srv.addr, &format!("REG 1 {ca} alice"));
    assert!(r.starts_with("REGD 1 alice 3 "), "{r}");
    let registered = Instant::now();
    stop(srv);
    // Down for about 1.5 s: alice comes back with about 1 s left...
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(registered.elapsed()));
    let srv = serve(&state, &["--lease", "3"]);
    let (b, cb) = with_cookie("127.0.0.3", srv.addr);
    let r = ask(&b, srv.addr, &format!("LOOKUP 2 {cb} alice"));
    assert!(r.starts_with("AT 2 alice "), "{r}");
    // ...and is gone 3 s after her REG, not 3 s after the restart.
    std::thread::sleep(Duration::from_millis(3200).saturating_sub(registered.elapsed()));
    let r = ask(&b, srv.addr, &format!("LOOKUP 3 {cb} alice"));
    assert_eq!(r, "ERR 3 no-such-id");
    drop(srv);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn after_a_crash_no_token_is_issued_twice() {
    let (dir, state) = scratch("crash", "parley.state");
    stop(serve(&state, &[]));
    // A token issued after the last save, then a crash (no save)...
    let srv = serve(&state, &[]);
    let a = client();
    let (_, lost) = common::register(&a, srv.addr, "alice");
    let mut srv = srv;
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();
    drop(srv);
    // ...and the same registration on the server restarted from the older file.
    let srv = serve(&state, &[]);
    let (_, again) = common::register(&a, srv.addr, "alice");
    assert_ne!(
        again, lost,
        "the token of a registration lost in the crash was issued again"
    );
    drop(srv);
    fs::remove_dir_all(&dir).unwrap();
}
