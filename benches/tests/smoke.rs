//! Short, bounded runs of the generator over loopback: against the echo
//! floor and against a real parley-server started in this process.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parley_loadgen::cli::{Mix, Proto, RunOpts, Workload};
use parley_loadgen::echo::EchoStats;
use parley_loadgen::engine::Engine;
use parley_loadgen::report::Report;
use testkit::server::InProcess;

fn opts(target: SocketAddr, workload: Workload) -> RunOpts {
    RunOpts {
        target,
        workload,
        lanes: 3,
        window: 4,
        duration: Duration::from_millis(300),
        quiet: true,
        ..RunOpts::default()
    }
}

fn run(o: RunOpts) -> Report {
    Engine::new(o)
        .expect("lanes open")
        .run()
        .expect("run completes")
}

/// A parley-server on an ephemeral loopback port, without rate limits
/// and with a quick fan-out, stopped when dropped.
fn server_with(capacity: usize, tune: impl FnOnce(&mut proto_core::server::Config)) -> InProcess {
    let mut o = InProcess::options(capacity);
    o.config.limits = false;
    o.config.fanout_per_sec = 1000;
    tune(&mut o.config);
    InProcess::start(o)
}

fn server(capacity: usize) -> InProcess {
    server_with(capacity, |_| {})
}

/// The echo floor on an ephemeral loopback port, on a thread of its own
/// (for at most 30 s).
struct EchoFloor {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<std::io::Result<EchoStats>>,
}

impl EchoFloor {
    /// Its address, and the floor.
    fn start() -> (SocketAddr, EchoFloor) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            parley_loadgen::echo::serve(&sock, Some(Duration::from_secs(30)), &s2)
        });
        (addr, EchoFloor { stop, thread })
    }

    /// Stop it: what it echoed.
    fn stop(self) -> EchoStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap().unwrap()
    }
}

/// Every request of a run was answered, and each answer was the right one.
fn all_found(r: &Report) {
    assert!(r.c.replies > 100, "{}", r.text());
    assert_eq!(r.c.found, r.c.replies, "{}", r.text());
    assert_eq!(
        (r.c.lost, r.c.wrong, r.c.unknown),
        (0, 0, 0),
        "{}",
        r.text()
    );
}

#[test]
fn the_echo_floor_answers_every_request() {
    let (addr, echo) = EchoFloor::start();
    let mut o = opts(addr, Workload::Mixed);
    o.echo = true;
    o.table = 100;
    o.mix = Mix {
        lookup: 1,
        register: 1,
        churn: 1,
    };
    let r = run(o);
    let st = echo.stop();
    assert!(r.c.sent > 100, "{}", r.text());
    assert_eq!(r.c.replies, r.c.sent, "{}", r.text());
    assert_eq!((r.c.lost, r.c.late, r.c.unknown), (0, 0, 0), "{}", r.text());
    // Echoed lookups are replies, never "found".
    assert_eq!(r.c.found, 0);
    // Every request (and the HELLOs) went through the echo.
    assert!(st.received >= r.c.sent);
}

#[test]
fn registrations_into_a_real_server_are_all_found_afterwards() {
    let srv = server(65_536);
    let mut o = opts(srv.addr, Workload::Register);
    o.table = 200;
    o.count = Some(3000);
    let r = run(o);
    assert_eq!(r.prefill.ok, 200, "{}", r.text());
    assert!(r.c.registered > 0, "{}", r.text());
    assert_eq!(r.verify_expected, r.c.registered);
    assert_eq!(r.verify.ok, r.c.registered, "{}", r.text());
    assert_eq!(r.lost_registrations(), 0);
    let server = r.server.as_ref().expect("STATS after the run");
    let occupancy = server.iter().find(|(k, _)| k == "occupancy").unwrap().1;
    assert_eq!(occupancy, 200 + r.c.registered);
}

#[test]
fn lookups_find_the_prefilled_table_and_churn_is_checked() {
    let srv = server(4096);
    let mut o = opts(srv.addr, Workload::Mixed);
    o.table = 500;
    o.mix = Mix {
        lookup: 3,
        register: 0,
        churn: 1,
    };
    o.check_churn = true;
    o.garbage_per_mille = 50;
    let r = run(o);
    assert!(r.c.lookup_replies > 0, "{}", r.text());
    assert_eq!(r.c.missing, 0, "{}", r.text());
    assert_eq!(r.c.wrong, 0, "{}", r.text());
    assert!(r.c.registered > 0 && r.c.quits > 0, "{}", r.text());
    assert_eq!(r.lost_registrations(), 0, "{}", r.text());
    assert!(r.c.garbage > 0);
}

#[test]
fn a_registration_the_server_forgot_is_reported_lost() {
    // Leases of one second: the prefilled ids run out during the measured
    // phase, and the generator must count them as lost, not as "not found".
    let srv = server_with(4096, |c| {
        c.lease_min = 1;
        c.lease_default = 1;
    });
    let mut o = opts(srv.addr, Workload::Lookup);
    o.table = 50;
    o.lease = 1;
    o.duration = Duration::from_millis(2500);
    let r = run(o);
    assert_eq!(r.prefill.ok, 50, "{}", r.text());
    assert!(r.c.found > 0, "{}", r.text());
    assert!(r.c.missing > 0, "{}", r.text());
    assert_eq!(r.lost_registrations(), r.c.missing);
    assert_eq!(r.c.not_registered, 0);
}

#[test]
fn seed_lookups_are_matched_in_order() {
    let srv = server(4096);
    let mut o = opts(srv.addr, Workload::Lookup);
    o.proto = Proto::Seed;
    o.table = 100;
    let r = run(o);
    assert!(r.c.lookup_replies > 0, "{}", r.text());
    assert_eq!(r.c.found, r.c.lookup_replies, "{}", r.text());
    assert_eq!(r.lost_registrations(), 0);
}

#[test]
fn a_server_that_goes_away_is_an_error_not_a_hang() {
    // Prefill against a server that stops halfway: the generator gives up
    // after a few seconds of silence instead of timing out every request.
    let srv = server(65_536);
    let addr = srv.addr;
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(srv);
    });
    let mut o = opts(addr, Workload::Lookup);
    o.table = 50_000_000;
    o.rate = None;
    o.timeout = Duration::from_millis(200);
    let t = std::time::Instant::now();
    let e = Engine::new(o).unwrap().run().err().expect("an error");
    stopper.join().unwrap();
    assert!(e.to_string().contains("stopped answering"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(30));
}

#[test]
fn stun_bindings_are_all_answered_with_a_mapped_address() {
    let s = server(1024);
    let r = run(opts(s.addr, Workload::Stun));
    all_found(&r);
}

#[test]
fn relay_frames_all_come_back_through_the_server() {
    let s = server(1024);
    let r = run(opts(s.addr, Workload::Relay));
    all_found(&r);
    let forwarded = r.server.as_ref().and_then(|m| {
        m.iter()
            .find(|(k, _)| k == "relay_forwarded")
            .map(|(_, v)| *v)
    });
    assert!(forwarded.is_some_and(|f| f >= r.c.replies), "{forwarded:?}");
}

#[test]
fn relay_frames_come_back_from_the_echo_floor_too() {
    let (addr, echo) = EchoFloor::start();
    let r = run(RunOpts {
        echo: true,
        ..opts(addr, Workload::Relay)
    });
    echo.stop();
    assert!(r.c.replies > 100, "{}", r.text());
    assert_eq!(r.c.found, r.c.replies, "{}", r.text());
}
