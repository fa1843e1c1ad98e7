//! A relayed conversation finds its direct path afterwards, wherever one
//! exists.
//!
//! - A spoiled hole punch heals. Two hosts behind port-preserving Linux
//!   NATs (`masquerade`); before they are introduced, a datagram from
//!   alice's port reaches bob's router, which accepts it and remembers the
//!   flow, so bob's own datagrams to alice get another port and her router
//!   drops them (what Linux NATs do to a punch that arrives early). Their chat goes through
//!   the relay; once the routers have forgotten that flow, a new round of
//!   punching, started on both sides at once, finds the direct path.
//! - Across two lossy routers (20% lost each way at each), the first
//!   message may go through the relay before a direct round trip is
//!   proven; the direct probes that go on find the path soon after.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use testkit::natlab::{Nat, Node};
use testkit::parley::{self, Served};
use testkit::process::Running;

const ALICE_PORT: u16 = 42000;
const BOB_PORT: u16 = 41000;
/// A message is typed this often while waiting, as in a conversation
/// (a relay nobody uses is let go).
const TALK_EVERY: Duration = Duration::from_secs(10);

/// Alice and bob, each behind a router of kind `nat`, bob listening.
struct Homes {
    alice_host: Node,
    bob_router: Ipv4Addr,
    bob: Running,
    dir: PathBuf,
    // Last: the lab goes after the processes in it.
    _served: Served,
}

impl Homes {
    fn new(tag: &str, nat: Nat) -> Option<Homes> {
        let mut served = parley::served_lab(tag)?;
        let lab = &mut served.lab;
        let mut ra = lab.router("ra", nat).unwrap();
        let a = lab.host_behind(&mut ra, "a").unwrap();
        let mut rb = lab.router("rb", nat).unwrap();
        let b = lab.host_behind(&mut rb, "b").unwrap();
        let dir = parley::scratch_dir(tag);
        let known = dir.join("known-bob").display().to_string();
        let bind = format!("0.0.0.0:{BOB_PORT}");
        let mut listen = parley::client(
            &b,
            &[
                "--known-peers",
                &known,
                "--id",
                "bob",
                "--bind",
                &bind,
                "listen",
            ],
        )
        .unwrap();
        let bob = Running::spawn(&mut listen).unwrap();
        bob.wait_for("listening as", Duration::from_secs(20))
            .unwrap();
        Some(Homes {
            alice_host: a,
            bob_router: rb.node.ip,
            bob,
            dir,
            _served: served,
        })
    }

    /// Alice's chat, from [`ALICE_PORT`]; her first message to bob shown.
    fn alice_says_hi(&self) -> Running {
        let known = self.dir.join("known-alice").display().to_string();
        let bind = format!("0.0.0.0:{ALICE_PORT}");
        let mut chat = parley::client(
            &self.alice_host,
            &["--known-peers", &known, "--id", "alice", "--bind", &bind],
        )
        .unwrap();
        let mut alice = Running::spawn(&mut chat).unwrap();
        alice
            .wait_for("You are alice", Duration::from_secs(20))
            .unwrap();
        alice.type_line("/msg bob first").unwrap();
        self.bob
            .wait_for("[alice] first", Duration::from_secs(15))
            .unwrap();
        alice
    }

    /// Keep the conversation going until alice's path to bob is direct, for
    /// at most `limit`: how long that took.
    fn direct_within(&self, alice: &mut Running, limit: Duration) -> Duration {
        let start = Instant::now();
        let mut n = 0;
        loop {
            let last = match parley::path_until(alice, "bob", "direct (", TALK_EVERY) {
                Ok(_) => return start.elapsed(),
                Err(last) => last,
            };
            assert!(
                start.elapsed() < limit,
                "still not direct {:?} after the first message: {last}",
                start.elapsed()
            );
            n += 1;
            alice.type_line(&format!("/msg bob tick {n}")).unwrap();
            self.bob
                .wait_for(&format!("[alice] tick {n}"), Duration::from_secs(15))
                .unwrap();
        }
    }
}

impl Drop for Homes {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_punch_spoiled_by_an_early_datagram_heals_once_the_nats_forget() {
    let Some(homes) = Homes::new("heal", Nat::Masquerade) else {
        return;
    };
    // The early datagram, from the port alice will use, to the port bob's
    // router keeps for him (masquerade keeps the host's port).
    let early = homes.alice_host.udp_socket(ALICE_PORT).unwrap();
    early
        .send_to(b"early", SocketAddr::from((homes.bob_router, BOB_PORT)))
        .unwrap();
    drop(early);
    let mut alice = homes.alice_says_hi();
    // The lab reproduces the failure: no direct path, the relay carries it.
    let first = parley::path_until(&mut alice, "bob", "relayed", Duration::from_secs(3));
    assert!(first.is_ok(), "not relayed at first: {first:?}");
    // The routers forget an unanswered flow after 30 s; the clients stay
    // quiet 40 s after their first round of probes (about 7 s).
    let took = homes.direct_within(&mut alice, Duration::from_secs(75));
    eprintln!("direct {took:?} after the first message");
}

#[test]
fn across_two_lossy_routers_the_path_is_direct_soon() {
    let Some(homes) = Homes::new("lossy", Nat::Lossy) else {
        return;
    };
    let mut alice = homes.alice_says_hi();
    // Within the first round of direct probes, or the one after its
    // quiet spell should loss spoil the first.
    let took = homes.direct_within(&mut alice, Duration::from_secs(75));
    eprintln!("direct {took:?} after the first message");
}
