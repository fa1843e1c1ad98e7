//! A spoiled hole punch heals. Two hosts behind port-preserving Linux NATs
//! (`masquerade`); before they are introduced, a datagram from alice's
//! port reaches bob's router, which accepts it and remembers the flow, so
//! bob's own datagrams to alice get another port and her router drops
//! them (the failure issue 13 describes). Their chat goes through the
//! relay; once the routers have forgotten that flow, a new round of
//! punching, started on both sides at once, finds the direct path.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use testkit::natlab::Nat;
use testkit::parley;
use testkit::process::Running;

const ALICE_PORT: u16 = 42000;
const BOB_PORT: u16 = 41000;
/// The routers forget an unanswered flow after 30 s; the clients stay
/// quiet 40 s after their first round of probes, which takes ~7 s.
const HEALS_WITHIN: Duration = Duration::from_secs(75);
/// A message is typed this often while waiting, as in a conversation
/// (a relay nobody uses is let go).
const TALK_EVERY: Duration = Duration::from_secs(10);

#[test]
fn a_punch_spoiled_by_an_early_datagram_heals_once_the_nats_forget() {
    let Some(mut served) = parley::served_lab("heal") else {
        return;
    };
    let lab = &mut served.lab;
    let mut ra = lab.router("ra", Nat::Masquerade).unwrap();
    let a = lab.host_behind(&mut ra, "a").unwrap();
    let mut rb = lab.router("rb", Nat::Masquerade).unwrap();
    let b = lab.host_behind(&mut rb, "b").unwrap();
    let dir = parley::scratch_dir("heal");
    let known = |who: &str| dir.join(format!("known-{who}")).display().to_string();
    let bind = |port: u16| format!("0.0.0.0:{port}");

    let (kb, ka) = (known("bob"), known("alice"));
    let mut listen = parley::client(
        &b,
        &[
            "--known-peers",
            &kb,
            "--id",
            "bob",
            "--bind",
            &bind(BOB_PORT),
            "listen",
        ],
    )
    .unwrap();
    let bob = Running::spawn(&mut listen).unwrap();
    bob.wait_for("listening as", Duration::from_secs(10))
        .unwrap();

    // The early datagram, from the port alice will use, to the port bob's
    // router keeps for him (masquerade keeps the host's port).
    let early = a.udp_socket(ALICE_PORT).unwrap();
    early
        .send_to(b"early", SocketAddr::from((rb.node.ip, BOB_PORT)))
        .unwrap();
    drop(early);

    let mut chat = parley::client(
        &a,
        &[
            "--known-peers",
            &ka,
            "--id",
            "alice",
            "--bind",
            &bind(ALICE_PORT),
        ],
    )
    .unwrap();
    let mut alice = Running::spawn(&mut chat).unwrap();
    alice
        .wait_for("You are alice", Duration::from_secs(10))
        .unwrap();
    alice.type_line("/msg bob first").unwrap();
    bob.wait_for("[alice] first", Duration::from_secs(10))
        .unwrap();
    // The lab reproduces the failure: no direct path, the relay carries it.
    let first = parley::path_until(&mut alice, "bob", "relayed", Duration::from_secs(3));
    assert!(first.is_ok(), "not relayed at first: {first:?}");

    let start = Instant::now();
    let mut n = 0;
    let healed = loop {
        n += 1;
        alice.type_line(&format!("/msg bob tick {n}")).unwrap();
        bob.wait_for(&format!("[alice] tick {n}"), Duration::from_secs(10))
            .unwrap();
        match parley::path_until(&mut alice, "bob", "direct (", TALK_EVERY) {
            Ok(line) => break Ok(line),
            Err(last) if start.elapsed() >= HEALS_WITHIN => break Err(last),
            Err(_) => {}
        }
    };
    let healed = healed.unwrap_or_else(|last| {
        panic!(
            "still not direct {:?} after the first message: {last}",
            start.elapsed()
        )
    });
    eprintln!(
        "direct {:?} after the first message: {healed}",
        start.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
