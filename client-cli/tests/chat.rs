//! `parley` end to end: a real `parley-server` on an ephemeral loopback
//! port and real `parley` processes.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;

fn s(a: std::net::SocketAddr) -> String {
    a.to_string()
}

#[test]
fn send_is_delivered_and_listen_prints_it() {
    let srv = server();
    let server = s(srv.addr);
    let (bob, _) = Parley::listen(srv.addr, "bob", &[]);
    let (bobj, _) = Parley::listen(srv.addr, "bobj", &["--json"]);
    let r = send(&server, "alice", "bob", &["hello", "bob"]).ok();
    assert!(
        r.stdout.starts_with("delivered to bob (direct"),
        "{}",
        r.stdout
    );
    assert_eq!(wait_line(&bob.out, "hello", T), "[alice] hello bob");
    // --json says the path the acknowledgement came by, for scripts.
    let r = send(&server, "alan", "bob", &["--json", "again"]).ok();
    assert!(
        r.stdout
            .starts_with(r#"{"to":"bob","delivered":true,"path":"direct","ms":"#),
        "{}",
        r.stdout
    );
    send(&server, "alice", "bobj", &["say \"hi\""]).ok();
    assert_eq!(
        wait_line(&bobj.out, "alice", T),
        r#"{"from":"alice","text":"say \"hi\"","seed":false,"authenticated":true}"#
    );
    // The sender signed off: its id is free again at once.
    let r = parley(&["lookup", "--server", &server, "alice"], T);
    assert_eq!(r.code, Some(1));
    let r = parley(&["who", "--server", &server], T);
    assert_eq!(r.code, Some(0));
    let mut who: Vec<&str> = r.stdout.lines().collect();
    who.sort();
    assert_eq!(who, ["bob", "bobj"]);
}

#[test]
fn listen_stops_cleanly_on_ctrl_c_and_signs_off() {
    let srv = server();
    let (mut bob, addr) = Parley::listen(srv.addr, "bob", &[]);
    let r = parley(&["lookup", "--server", &s(srv.addr), "bob"], T);
    assert_eq!(r.stdout, format!("bob {addr}"));
    bob.interrupt();
    assert_eq!(bob.wait_exit(T), Some(0));
    parley(&["lookup", "--server", &s(srv.addr), "bob"], T)
        .fails_with(1, "cannot find bob: nobody with that id is online");
}

/// The acceptance test: 20% loss, duplicates and reordering on every
/// datagram (server traffic too); every message shown exactly once.
#[test]
fn exactly_once_through_a_lossy_relay() {
    let srv = server();
    let relay = Relay::start(
        srv.addr,
        Faults {
            loss: 20,
            dup: 10,
            delay_ms: 40,
            seed: 0x5eed_1234,
        },
    );
    let front = s(relay.front());
    // Without local addresses, so that chat goes the way the server saw
    // them: through the lossy relay.
    let (bob, _) = Parley::listen(relay.front(), "bob", &["--no-local"]);
    let mut alice = Parley::spawn(&["--server", &front, "--id", "alice", "--no-local"]);
    wait_line(&alice.out, "You are alice", T);
    let long: String = (0..3000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let started = Instant::now();
    let mut sent = Vec::new();
    for i in 0..30 {
        let text = if i == 15 {
            format!("long {long}")
        } else {
            format!("message number {i}")
        };
        alice.type_line(&format!("/msg bob {text}"));
        sent.push(format!("[alice] {text}"));
        std::thread::sleep(Duration::from_millis(30));
    }
    // Wait until bob has shown them all (or give up).
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let got = bob.out_seen.lock().unwrap().len();
        if got >= sent.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // A little longer, for any duplicate to show up if it were going to.
    std::thread::sleep(Duration::from_secs(3));
    let mut got = bob.out_seen.lock().unwrap().clone();
    got.sort();
    sent.sort();
    assert_eq!(got, sent, "every message exactly once");
    let alice_out = alice.out_seen.lock().unwrap().join("\n");
    assert!(!alice_out.contains("not delivered"), "{alice_out}");
    let st = relay.stats();
    eprintln!(
        "relay: {st:?}; {} messages shown exactly once in {:.1} s",
        sent.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        st.dropped > 20 && st.duplicated > 5,
        "faults happened: {st:?}"
    );
    alice.type_line("/quit");
    assert_eq!(alice.wait_exit(T), Some(0));
}

#[test]
fn reregisters_after_a_server_restart() {
    let srv = server();
    let addr = srv.addr;
    let (bob, _) = Parley::listen(addr, "bob", &["--keepalive", "1"]);
    srv.stop();
    let srv = server_on(addr);
    let line = wait_line(&bob.err, "registered again", T);
    assert!(line.contains("registered again as bob"), "{line}");
    send(&s(srv.addr), "alice", "bob", &["back?"]).ok();
    assert_eq!(wait_line(&bob.out, "back?", T), "[alice] back?");
}

#[test]
fn error_paths_say_what_went_wrong() {
    let srv = server();
    let server = s(srv.addr);
    // Unknown peer.
    send(&server, "alice", "nobody", &["hi"]).fails_with(
        1,
        "message to nobody not delivered: nobody with that id is online",
    );
    // Id taken.
    let (_bob, _) = Parley::listen(srv.addr, "bob", &[]);
    send(&server, "bob", "x", &["hi"]).fails_with(1, "that id is already taken by someone else");
    parley(&["listen", "--server", &server, "--id", "bob"], T).fails_with(1, "already taken");
    // Bad usage.
    for args in [
        &["send", "--id", "a", "hi"][..],
        &["send", "--to", "b", "hi"],
        &["send", "--id", "a b", "--to", "b", "hi"],
        &["--server", "nowhere", "who"],
        &["frobnicate"],
        &["who", "extra"],
        &["--timeout", "0", "who"],
    ] {
        let r = parley(args, T);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("parley: "), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn server_down_is_reported() {
    // A port nobody serves: bind one, note it, let it go.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = s(port);
    let started = Instant::now();
    send(&server, "alice", "bob", &["hi"]).fails_with(
        1,
        &format!("cannot register with {server}: the server did not answer"),
    );
    assert!(started.elapsed() < T);
    for cmd in [&["who"][..], &["ping"], &["lookup", "x"]] {
        let mut args = vec!["--server", &server, "--timeout", "3"];
        args.extend_from_slice(cmd);
        let r = parley(&args, T);
        assert_eq!(r.code, Some(1), "{cmd:?}");
        assert!(r.stderr.starts_with("parley: "), "{cmd:?}: {}", r.stderr);
    }
}

#[test]
fn ping_shows_the_round_trip_and_the_observed_address() {
    let srv = server();
    let r = parley(&["ping", "--server", &s(srv.addr)], T).ok();
    assert!(
        r.stdout
            .starts_with(&format!("reply from {}: round trip ", srv.addr)),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(" ms, it sees you as 127.0.0.1:"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_raw_seed_message_is_shown() {
    let srv = server();
    let (bob, addr) = Parley::listen(srv.addr, "bob", &[]);
    let seed = UdpSocket::bind("127.0.0.1:0").unwrap();
    seed.send_to(b"Message hi from the seed", addr).unwrap();
    assert_eq!(
        wait_line(&bob.out, "seed", T),
        "[someone (unverified, seed client)] hi from the seed"
    );
}

#[test]
fn a_seed_registered_peer_gets_message_text() {
    let srv = server();
    let server = s(srv.addr);
    let carol = UdpSocket::bind("127.0.0.1:0").unwrap();
    carol
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    carol.send_to(b"ID carol", srv.addr).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = carol.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"List ['carol']");
    // Known to be a seed client: `Message <text>` at once, exit 0.
    let r = send(&server, "alice", "carol", &["--seed", "hello", "carol"]).ok();
    assert!(
        r.stdout.contains("sent to carol as a seed message"),
        "{}",
        r.stdout
    );
    let next_message = |carol: &UdpSocket| -> String {
        let mut buf = [0u8; 2048];
        loop {
            let (n, _) = carol.recv_from(&mut buf).expect("a datagram for carol");
            let t = String::from_utf8_lossy(&buf[..n]).into_owned();
            if t.starts_with("Message") {
                return t;
            }
        }
    };
    assert_eq!(next_message(&carol), "Message hello carol");
    // Not said: probes go unanswered, then it goes the seed's way anyway,
    // and the sender says delivery could not be confirmed.
    send(&server, "alice", "carol", &["are you there?"])
        .fails_with(1, "carol did not answer as a Parley client");
    assert_eq!(next_message(&carol), "Message are you there?");
}

#[test]
fn interactive_mode_driven_through_a_pipe() {
    let srv = server();
    let server = s(srv.addr);
    let (bob, _) = Parley::listen(srv.addr, "bob", &[]);
    let mut ann = Parley::spawn(&["--server", &server, "--id", "ann"]);
    wait_line(&ann.out, "You are ann", T);
    assert!(wait_line(&ann.out, "* online", T).contains("bob"));
    ann.type_line("/msg bob hi from ann");
    assert_eq!(wait_line(&bob.out, "hi from ann", T), "[ann] hi from ann");
    // Plain lines go to the current conversation.
    ann.type_line("and a plain line");
    assert_eq!(wait_line(&bob.out, "plain", T), "[ann] and a plain line");
    let who = ann.ask("/who", "* online");
    assert!(who.contains("ann") && who.contains("bob"), "{who}");
    // Someone writes to ann.
    send(&server, "carl", "ann", &["yo ann"]).ok();
    wait_line(&ann.out, "[carl] yo ann", T);
    // Join and leave notices come from presence events.
    let (dan, _) = Parley::listen(srv.addr, "dan", &[]);
    wait_line(&ann.out, "* dan joined", T);
    drop(dan);
    ann.type_line("/msg nobody hello?");
    wait_line(
        &ann.out,
        "! message to nobody not delivered: nobody with that id is online; plain lines go to bob again",
        T,
    );
    // ...so a plain line after a /msg to nobody still reaches bob.
    ann.type_line("back to bob");
    assert_eq!(wait_line(&bob.out, "back to", T), "[ann] back to bob");
    // How chat with bob travels: straight to him on this host.
    ann.type_line("/path bob");
    assert!(
        wait_line(&ann.out, "* bob: ", T).starts_with("* bob: direct (127.0.0.1:"),
        "the path"
    );
    ann.ask("/path zed", "* zed: no session");
    ann.ask("/frob", "unknown command /frob");
    ann.type_line("/quit");
    assert_eq!(ann.wait_exit(T), Some(0));
    let r = parley(&["lookup", "--server", &server, "ann"], T);
    assert_eq!(r.code, Some(1), "ann signed off");
}

#[test]
fn help_and_version() {
    let r = parley(&["--help"], T);
    assert_eq!(r.code, Some(0));
    for needle in [
        "parley send",
        "parley listen",
        "/msg ID TEXT",
        "/quit",
        "--server HOST:PORT",
        "parley whoami",
        "parley verify ID",
        "/whoami",
        "/verify ID",
        "/accept ID",
        "--identity FILE",
        "--known-peers FILE",
        "--accept-new-key",
    ] {
        assert!(r.stdout.contains(needle), "{needle}");
    }
    let r = parley(&["--version"], T);
    assert_eq!(r.stdout, format!("parley {}", env!("CARGO_PKG_VERSION")));
}

/// The interactive mode in a real terminal: tmux, when it is installed.
/// Checks what a person sees: a message arriving while they type lands
/// above their half-typed line, which survives intact.
#[test]
fn interactive_mode_in_a_real_terminal_under_tmux() {
    use std::process::Command;
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("tmux not installed; skipping");
        return;
    }
    let srv = server();
    let sock = format!("parley-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        let out = Command::new("tmux")
            .args(["-L", &sock])
            .args(args)
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    struct Kill<'a>(&'a dyn Fn(&[&str]) -> String);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            (self.0)(&["kill-server"]);
        }
    }
    let _kill = Kill(&tmux);
    let cfg = tempfile::tempdir().unwrap();
    let cmd = format!(
        "env XDG_CONFIG_HOME={} {PARLEY} --server {} --id tia",
        cfg.path().display(),
        srv.addr
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "120",
        "-y",
        "20",
        &cmd,
    ]);
    let screen = || tmux(&["capture-pane", "-p", "-t", "t"]);
    let wait_screen = |needle: &str| -> String {
        let deadline = Instant::now() + T;
        loop {
            let s = screen();
            if s.contains(needle) {
                return s;
            }
            assert!(Instant::now() < deadline, "no {needle:?} on screen:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_screen("You are tia");
    tmux(&["send-keys", "-t", "t", "half a li"]);
    wait_screen("half a li");
    send(&s(srv.addr), "uma", "tia", &["knock knock"]).ok();
    let shown = wait_screen("[uma] knock knock");
    let lines: Vec<&str> = shown.lines().filter(|l| !l.trim().is_empty()).collect();
    let msg = lines
        .iter()
        .position(|l| l.contains("[uma] knock knock"))
        .unwrap();
    let typed = lines.iter().position(|l| l.contains("half a li")).unwrap();
    assert!(
        msg < typed,
        "the message is printed above the line being typed:\n{shown}"
    );
    // The half-typed line is intact and can be finished; it goes to the
    // current conversation (uma, the first to write), who has left since.
    let (uma, _) = Parley::listen(srv.addr, "uma2", &[]);
    tmux(&["send-keys", "-t", "t", "ne", "Enter"]);
    wait_screen("! message to uma not delivered: nobody with that id is online");
    tmux(&["send-keys", "-t", "t", "/msg uma2 the whole line", "Enter"]);
    assert_eq!(wait_line(&uma.out, "whole", T), "[tia] the whole line");
    tmux(&["send-keys", "-t", "t", "/quit", "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux(&["list-sessions"]).contains("t:") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !tmux(&["list-sessions"]).contains("t:"),
        "parley left on /quit"
    );
}
