//! Keepalives hold a NAT's mappings open: behind a router that forgets a
//! UDP mapping after 15 s of silence (`timeout-15s`), a listener that sat
//! idle longer than that is still reachable, and a chat that paused
//! longer than that still goes straight to it. (The other side is on the
//! public segment, so that the first path is direct on every try and
//! only the router's timeout is under test.)

use std::time::{Duration, Instant};

use testkit::natlab::Nat;
use testkit::parley;
use testkit::process::Running;

/// Longer than the routers' 15 s mapping timeout.
const SILENCE: Duration = Duration::from_secs(22);
/// A message on a live path arrives well within this.
const PROMPT: Duration = Duration::from_secs(3);

#[test]
fn keepalives_outlast_a_15_second_nat_mapping_timeout() {
    let Some(mut served) = parley::served_lab("idle") else {
        return;
    };
    let lab = &mut served.lab;
    let a = lab.public_host("a").unwrap();
    let mut rb = lab.router("rb", Nat::ShortTimeout).unwrap();
    let b = lab.host_behind(&mut rb, "b").unwrap();
    let dir = tempdir();
    let known = |who: &str| dir.join(format!("known-{who}")).display().to_string();

    let (kb, ka) = (known("bob"), known("alice"));
    let mut listen = parley::client(&b, &["--known-peers", &kb, "--id", "bob", "listen"]).unwrap();
    let bob = Running::spawn(&mut listen).unwrap();
    bob.wait_for("listening as", Duration::from_secs(10))
        .unwrap();
    // Only bob's keepalives to the server keep his router's mapping, so
    // that the server's introduction still reaches him.
    std::thread::sleep(SILENCE);

    let mut chat = parley::client(&a, &["--known-peers", &ka, "--id", "alice"]).unwrap();
    let mut alice = Running::spawn(&mut chat).unwrap();
    alice
        .wait_for("You are alice", Duration::from_secs(10))
        .unwrap();
    alice.type_line("/msg bob first").unwrap();
    bob.wait_for("[alice] first", Duration::from_secs(10))
        .unwrap();
    // The first answer may still be on its way ("direct, unconfirmed").
    proven_direct(&mut alice).unwrap();

    // The conversation pauses; the path must still be there after.
    std::thread::sleep(SILENCE);
    alice.type_line("/msg bob second").unwrap();
    bob.wait_for("[alice] second", PROMPT).unwrap();
    proven_direct(&mut alice).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ask alice's chat for the path to bob until it is direct and proven,
/// for at most [`PROMPT`]; the last answer if it never was.
fn proven_direct(alice: &mut Running) -> Result<String, String> {
    let deadline = Instant::now() + PROMPT;
    let mut last = String::new();
    while Instant::now() < deadline {
        alice.type_line("/path bob").map_err(|e| e.to_string())?;
        last = alice.wait_for("* bob: ", PROMPT)?.text;
        if last.contains("* bob: direct (") {
            return Ok(last);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

/// A directory of this test's own for the known-peers files.
fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("parley-idle-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
