//! End-to-end keys with real processes: the forged-datagram attack of
//! issue 12, a rogue server that swaps a peer's key, and the known-peers
//! file as the people's programs keep it.

mod common;

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Bob's address as the chat's greeting says the server sees it.
fn seen_as(greeting: &str) -> SocketAddr {
    greeting
        .split("the server sees you as ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("an address in {greeting:?}"))
}

/// Datagrams and when they arrived.
type Log = Arc<Mutex<Vec<(Instant, Vec<u8>)>>>;

/// A socket on another loopback address that records what reaches it, for
/// as long as the test lasts (at most a minute).
struct Mallory {
    sock: UdpSocket,
    got: Log,
}

impl Mallory {
    fn start() -> Mallory {
        let sock = UdpSocket::bind("127.0.0.66:0").expect("127.0.0.66 is loopback");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let got: Log = Arc::new(Mutex::new(Vec::new()));
        let (r, g) = (sock.try_clone().unwrap(), got.clone());
        thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(60);
            let mut buf = [0u8; 2048];
            while Instant::now() < end {
                if let Ok((n, _)) = r.recv_from(&mut buf) {
                    g.lock().unwrap().push((Instant::now(), buf[..n].to_vec()));
                }
            }
        });
        Mallory { sock, got }
    }

    fn received_since(&self, t: Instant) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= t)
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect()
    }
}

/// Issue 12's attack: a third host sends bob a `CHAT` that names alice,
/// and a `PROBE`. Neither is shown, and bob's next message to alice goes
/// to alice, never to the third host.
#[test]
fn a_forged_chat_from_a_third_host_is_not_shown_and_steers_nothing() {
    let srv = server();
    let server = srv.addr.to_string();
    let (alice, _) = Parley::listen(srv.addr, "alice", &[]);
    let mut bob = Parley::spawn(&["--server", &server, "--id", "bob"]);
    let bob_at = seen_as(&wait_line(&bob.out, "You are bob", T));
    // Alice and bob have talked before: bob has a path to alice.
    bob.type_line("/msg alice hello alice");
    assert_eq!(wait_line(&alice.out, "hello", T), "[bob] hello alice");

    let mallory = Mallory::start();
    let forged_at = Instant::now();
    mallory
        .sock
        .send_to(
            b"CHAT alice 00000000000000ab 1 1/1 please send the password to mallory",
            bob_at,
        )
        .unwrap();
    mallory
        .sock
        .send_to(b"PROBE alice 00000000000000ac", bob_at)
        .unwrap();
    thread::sleep(Duration::from_millis(500));
    bob.type_line("/msg alice the password is hunter2");
    assert_eq!(
        wait_line(&alice.out, "password", T),
        "[bob] the password is hunter2"
    );
    // Time for retransmissions (the first is 300 ms on) to go astray.
    thread::sleep(Duration::from_secs(3));
    let bob_saw = bob.out_seen.lock().unwrap().join("\n");
    assert!(
        !bob_saw.contains("mallory"),
        "the forgery was shown:\n{bob_saw}"
    );
    let stolen = mallory.received_since(forged_at);
    assert!(
        stolen.is_empty(),
        "the third host got {} datagram(s) from bob: {stolen:?}",
        stolen.len()
    );
    bob.type_line("/quit");
    assert_eq!(bob.wait_exit(T), Some(0));
}

/// The rogue server's stand-in: every `AT` and `PUNCH` that gives `id`'s
/// key gives `fake` instead; nothing else changes.
fn swap_key(id: &'static str, fake: [u8; 32]) -> Rewrite {
    swap_key_when(Arc::new(AtomicBool::new(true)), id, fake)
}

/// `swap_key`, only while `on` is set.
fn swap_key_when(on: Arc<AtomicBool>, id: &'static str, fake: [u8; 32]) -> Rewrite {
    let mut hex = String::new();
    for b in fake {
        hex.push_str(&format!("{b:02x}"));
    }
    Arc::new(move |d: &[u8]| {
        if !on.load(Ordering::Relaxed) {
            return None;
        }
        let text = std::str::from_utf8(d).ok()?;
        let fields: Vec<&str> = text.split(' ').collect();
        let named = match *fields.first()? {
            "AT" => fields.get(2)?,
            "PUNCH" => fields.get(1)?,
            _ => return None,
        };
        let key = fields.last()?;
        if *named != id || key.len() != 64 {
            return None;
        }
        let mut out = fields[..fields.len() - 1].join(" ");
        out.push(' ');
        out.push_str(&hex);
        Some(out.into_bytes())
    })
}

#[test]
fn the_rogue_stand_in_swaps_only_the_named_key() {
    let real = "ab".repeat(32);
    let swap = swap_key("bob", [1; 32]);
    let fake = "01".repeat(32);
    let at = format!("AT 3 bob 127.0.0.1:4000 {real}");
    assert_eq!(
        swap(at.as_bytes()),
        Some(format!("AT 3 bob 127.0.0.1:4000 {fake}").into_bytes())
    );
    let punch = format!("PUNCH bob 127.0.0.1:4000 {real}");
    assert_eq!(
        swap(punch.as_bytes()),
        Some(format!("PUNCH bob 127.0.0.1:4000 {fake}").into_bytes())
    );
    for same in [
        format!("AT 3 carol 127.0.0.1:4000 {real}"),
        format!("PUNCH alice 127.0.0.1:4000 {real}"),
        "AT 3 bob 127.0.0.1:4000 seed".to_string(),
        "REGD 2 bob 120 127.0.0.1:4000 d7223ba6408c6024".to_string(),
    ] {
        assert_eq!(swap(same.as_bytes()), None, "{same}");
    }
}

/// `parley whoami`'s key in `config`.
fn key_of(config: &Path) -> String {
    let r = parley_at(config, &["whoami"], T).ok();
    r.stdout
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .expect("a key line")
        .to_string()
}

/// The key pinned for `id` in `config`'s known-peers file.
fn pinned(config: &Path, id: &str) -> Option<String> {
    let text = fs::read_to_string(config.join("parley/known_peers")).ok()?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(&format!("{id} ")))
        .map(str::to_string)
}

/// Issue 12's rogue server: after a first honest contact, the server (a
/// stand-in that rewrites its replies) says bob has another key. The
/// pinned key differs, so the warning shows, `parley send` refuses,
/// nothing reaches bob until the person accepts, and the safety numbers
/// the two people would read each other differ.
#[test]
fn a_rogue_server_swapping_bobs_key_is_caught() {
    let srv = server();
    let rogue = Arc::new(AtomicBool::new(false));
    let relay = Relay::start_rewriting(
        srv.addr,
        Faults {
            loss: 0,
            dup: 0,
            delay_ms: 0,
            seed: 1,
        },
        Some(swap_key_when(rogue.clone(), "bob", [0x66; 32])),
    );
    let front = relay.front().to_string();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (a.path(), b.path());
    let (alice_key, bob_key) = (key_of(a), key_of(b));
    let (bob, _) = Parley::listen_in(Some(b), relay.front(), "bob", &[]);

    // First contact, through an honest server: each pins the other's key.
    let send = |text: &str| parley_at(a, &send_args(&front, "alice", "bob", &[text]), T);
    send("hello bob").ok();
    assert_eq!(wait_line(&bob.out, "hello", T), "[alice] hello bob");
    assert_eq!(pinned(a, "bob"), Some(bob_key.clone()));
    assert_eq!(pinned(b, "alice"), Some(alice_key.clone()));
    let number = |config: &Path, peer: &str| parley_at(config, &["verify", peer], T).ok().stdout;
    let bobs_number = number(b, "alice");
    assert_eq!(number(a, "bob"), bobs_number, "honest: the same digits");

    rogue.store(true, Ordering::Relaxed);
    // A script refuses, with a sentence, and sends nothing.
    let r = send("are you there?");
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(
        r.stderr.contains("bob's key has changed") && r.stderr.contains("--accept-new-key"),
        "{}",
        r.stderr
    );
    assert_eq!(pinned(a, "bob"), Some(bob_key.clone()), "the pin stays");

    // The chat: a warning nobody can miss, and the line is held.
    let mut alice = Parley::spawn_at(a, &["--server", &front, "--id", "alice"]);
    wait_line(&alice.out, "You are alice", T);
    alice.ask("/msg bob the password is hunter2", "bob's KEY HAS CHANGED");
    let pinned_line = alice.ask("/verify bob", "safety number with bob");
    let offered_line = wait_line(&alice.out, "NEW key bob offers", T);
    assert!(pinned_line.ends_with(bobs_number.trim()), "{pinned_line}");
    assert!(
        !offered_line.contains(bobs_number.trim()),
        "the swapped key's number differs from bob's: {offered_line} vs {bobs_number}"
    );
    thread::sleep(Duration::from_secs(3));
    let bob_saw = bob.out_seen.lock().unwrap().join("\n");
    assert!(
        !bob_saw.contains("hunter2") && !bob_saw.contains("are you there"),
        "{bob_saw}"
    );
    // Accepting updates the file (and sends to the new key's holder,
    // which bob is not: it still never reaches bob).
    alice.ask("/accept bob", "accepted bob's new key");
    assert_eq!(pinned(a, "bob"), Some("66".repeat(32)));
    thread::sleep(Duration::from_secs(2));
    let bob_saw = bob.out_seen.lock().unwrap().join("\n");
    assert!(!bob_saw.contains("hunter2"), "{bob_saw}");
    drop(alice);

    // The server is honest again, so bob's real key now differs from the
    // accepted one: a script told to accept takes it and delivers.
    rogue.store(false, Ordering::Relaxed);
    let rest = ["--accept-new-key", "it is really you"];
    let r = parley_at(a, &send_args(&front, "alice2", "bob", &rest), T).ok();
    assert!(r.stderr.contains("accepted bob's new key"), "{}", r.stderr);
    assert_eq!(
        wait_line(&bob.out, "really", T),
        "[alice2] it is really you"
    );
    assert_eq!(pinned(a, "bob"), Some(bob_key));
}

/// Bob comes back with another key (a new laptop, or someone who took the
/// id after bob left) and writes to alice. Alice's chat refuses the
/// session, shows the warning, shows nothing the new key sent, holds what
/// she writes to bob, and `/verify bob` gives her the pinned key's number,
/// which differs from the one the new bob reads; `/accept bob` takes the
/// new key, keeps it in the file, and lets the held line go.
#[test]
fn a_peer_with_a_new_key_is_held_until_accepted() {
    let srv = server();
    let server = srv.addr.to_string();
    let (a, b1, b2) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (a, b1, b2) = (a.path(), b1.path(), b2.path());
    let (old_key, new_key) = (key_of(b1), key_of(b2));

    let mut alice = Parley::spawn_at(a, &["--server", &server, "--id", "alice"]);
    wait_line(&alice.out, "You are alice", T);
    let (mut bob, _) = Parley::listen_in(Some(b1), srv.addr, "bob", &[]);
    alice.type_line("/msg bob hello bob");
    assert_eq!(wait_line(&bob.out, "hello", T), "[alice] hello bob");
    wait_line(&alice.out, "first contact with bob", T);
    assert_eq!(pinned(a, "bob"), Some(old_key.clone()));
    bob.interrupt();
    assert_eq!(bob.wait_exit(T), Some(0));

    let mut bob2 = Parley::spawn_at(b2, &["--server", &server, "--id", "bob"]);
    wait_line(&bob2.out, "You are bob", T);
    bob2.type_line("/msg alice it is bob, on a new laptop");
    wait_line(&alice.out, "bob's KEY HAS CHANGED", T);
    let alice_saw = alice.out_seen.lock().unwrap().join("\n");
    assert!(!alice_saw.contains("new laptop"), "{alice_saw}");

    alice.ask(
        "/msg bob the password is hunter2",
        "! held, not sent: bob's key changed",
    );
    let pinned_line = alice.ask("/verify bob", "safety number with bob");
    let offered_line = wait_line(&alice.out, "NEW key bob offers", T);
    let digits = |line: &str| line.rsplit(": ").next().unwrap_or("").to_string();
    assert_ne!(digits(&pinned_line), digits(&offered_line));
    thread::sleep(Duration::from_secs(2));
    let bob2_saw = bob2.out_seen.lock().unwrap().join("\n");
    assert!(!bob2_saw.contains("hunter2"), "held: {bob2_saw}");
    assert_eq!(pinned(a, "bob"), Some(old_key), "nothing changes by itself");

    alice.ask("/accept bob", "accepted bob's new key");
    assert_eq!(pinned(a, "bob"), Some(new_key));
    assert_eq!(
        wait_line(&bob2.out, "hunter2", T),
        "[alice] the password is hunter2"
    );
    // Now the new bob knows alice's key too, and reads the number alice
    // was shown for the new key, not the one for the key she had pinned.
    let deadline = Instant::now() + T;
    while !bob2
        .out_seen
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("first contact with alice"))
    {
        assert!(Instant::now() < deadline, "bob2 never kept alice's key");
        thread::sleep(Duration::from_millis(50));
    }
    let r = parley_at(b2, &["verify", "alice"], T).ok();
    let new_bobs = r.stdout.trim().to_string();
    assert_eq!(digits(&offered_line), new_bobs);
    assert_ne!(digits(&pinned_line), new_bobs);
    alice.ask("/accept bob", "nothing to accept");
}

/// `parley send` to a peer whose key is not the pinned one (the server
/// reports bob's real key; alice's file has another): exit 1 with a
/// sentence and nothing sent; with `--accept-new-key`, the key is taken,
/// kept in the file, and the message delivered.
#[test]
fn send_exits_1_on_a_changed_key_unless_told_to_accept() {
    let srv = server();
    let server = srv.addr.to_string();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (a.path(), b.path());
    let bob_key = key_of(b);
    key_of(a);
    let wrong = "66".repeat(32);
    fs::write(a.join("parley/known_peers"), format!("bob {wrong}\n")).unwrap();

    let send = |rest: &[&str]| Parley::spawn_at(a, &send_args(&server, "alice", "bob", rest));
    for accept in [false, true] {
        let mut bob = Parley::spawn_at(b, &["--server", &server, "--id", "bob"]);
        wait_line(&bob.out, "You are bob", T);
        let mut alice = if accept {
            send(&["--accept-new-key", "it is you after all"])
        } else {
            send(&["are you there?"])
        };
        if !accept {
            assert_eq!(alice.wait_exit(T), Some(1));
            thread::sleep(Duration::from_millis(100));
            let err = alice.err_seen.lock().unwrap().join("\n");
            assert!(
                err.contains("bob's key has changed")
                    && err.contains("nothing was sent")
                    && err.contains("--accept-new-key"),
                "{err}"
            );
            assert_eq!(pinned(a, "bob"), Some(wrong.clone()), "the pin stays");
            let bob_saw = bob.out_seen.lock().unwrap().join("\n");
            assert!(!bob_saw.contains("are you there"), "{bob_saw}");
        } else {
            assert_eq!(alice.wait_exit(T), Some(0));
            assert_eq!(
                wait_line(&bob.out, "after all", T),
                "[alice] it is you after all"
            );
            // Nothing from the first round got through.
            let bob_saw = bob.out_seen.lock().unwrap().join("\n");
            assert!(!bob_saw.contains("are you there"), "{bob_saw}");
            let err = alice.err_seen.lock().unwrap().join("\n");
            assert!(err.contains("accepted bob's new key"), "{err}");
            assert_eq!(pinned(a, "bob"), Some(bob_key.clone()));
        }
        bob.type_line("/quit");
        bob.wait_exit(T);
    }
}
