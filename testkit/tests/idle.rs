//! Keepalives hold a NAT's mappings open: behind a router that forgets a
//! UDP mapping after 15 s of silence (`timeout-15s`), a listener that sat
//! idle longer than that is still reachable, and a chat that paused
//! longer than that still goes straight to it. (The other side is on the
//! public segment, so that the first path is direct on every try and
//! only the router's timeout is under test.)

use std::time::Duration;

use testkit::natlab::Nat;
use testkit::parley;
use testkit::process::Running;

/// Longer than the routers' 15 s mapping timeout.
const SILENCE: Duration = Duration::from_secs(22);
/// A message on a live path arrives well within this.
const PROMPT: Duration = Duration::from_secs(3);
/// What `/path` says of a direct path proven both ways.
const DIRECT: &str = "direct (";

#[test]
fn keepalives_outlast_a_15_second_nat_mapping_timeout() {
    let Some(mut served) = parley::served_lab("idle") else {
        return;
    };
    let lab = &mut served.lab;
    let a = lab.public_host("a").unwrap();
    let mut rb = lab.router("rb", Nat::ShortTimeout).unwrap();
    let b = lab.host_behind(&mut rb, "b").unwrap();
    let dir = parley::scratch_dir("idle");
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
    parley::path_until(&mut alice, "bob", DIRECT, PROMPT).unwrap();

    // The conversation pauses; the path must still be there after.
    std::thread::sleep(SILENCE);
    alice.type_line("/msg bob second").unwrap();
    bob.wait_for("[alice] second", PROMPT).unwrap();
    parley::path_until(&mut alice, "bob", DIRECT, PROMPT).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
