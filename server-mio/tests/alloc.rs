//! No heap allocation per datagram in steady state: run the real event loop
//! in this process under a counting allocator and count what the server
//! thread allocates while it serves thousands of requests of every kind.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use parley_server::{Hooks, Options};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Only the server thread counts; the test's own clients allocate freely.
    static TRACKED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if TRACKED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if TRACKED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn exchange(s: &UdpSocket, to: SocketAddr, req: &str) -> String {
    s.send_to(req.as_bytes(), to).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = s.recv_from(&mut buf).expect("a reply");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// One round of every kind of request, from a fresh id each time.
fn round(s: &UdpSocket, watcher: &UdpSocket, to: SocketAddr, i: usize) {
    let hello = format!("HELLO h{i} {}", ".".repeat(90));
    let c = exchange(s, to, &hello)
        .split(' ')
        .nth(2)
        .unwrap()
        .to_string();
    let id = format!("user{i}");
    let regd = exchange(s, to, &format!("REG r {c} {id} 60"));
    let token = regd.rsplit(' ').next().unwrap().to_string();
    for req in [
        format!("KEEP k {c} {id} {token}"),
        format!("LOOKUP l {c} {id}"),
        format!("LOOKUP l {c} nobody"),
        format!("INTRO i {c} {id} {token} watcher"),
        format!("LIST p {c} 0"),
        format!("SUB s {c} {id} {token}"),
        format!("UNSUB u {c} {id} {token}"),
        format!("STATS t {c}"),
        format!("REG bad - {id}-with-no-cookie"),
        format!("NONSENSE {i} with enough bytes to earn an error reply"),
        format!("QUIT q {c} {id} {token}"),
    ] {
        exchange(s, to, &req);
    }
    let seed = format!("s{i}");
    exchange(s, to, &format!("ID {seed}"));
    exchange(s, to, &format!("Peer {seed}"));
    s.send_to(b"ID2 ", to).unwrap();
    s.send_to(format!("Quit {seed}").as_bytes(), to).unwrap();
    s.send_to(b"\xff\xfe garbage", to).unwrap();
    // The watcher is told of every change, and the seed id's list updates
    // come to `s`: drain both (short timeouts; the interval is 1 ms).
    s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    while watcher.recv_from(&mut [0u8; 2048]).is_ok() {}
    while s.recv_from(&mut [0u8; 2048]).is_ok() {}
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
}

#[test]
fn steady_state_serves_without_allocating() {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let mut opts = Options {
        bind: "127.0.0.1:0".parse().unwrap(),
        capacity: 4096,
        ..Options::default()
    };
    opts.config.limits = false;
    opts.config.presence_interval = proto_core::time::Millis(1);
    let hooks = Hooks {
        on_ready: Some(Arc::new(move |a| tx.send(a).unwrap())),
        stop: Some(stop.clone()),
    };
    let server = std::thread::spawn(move || {
        TRACKED.with(|t| t.set(true));
        parley_server::run(&opts, hooks)
    });
    let to = rx.recv_timeout(Duration::from_secs(10)).unwrap();

    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let watcher = UdpSocket::bind("127.0.0.2:0").unwrap();
    watcher
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    // The watcher registers and subscribes, so fan-out runs throughout.
    let hello = format!("HELLO w {}", ".".repeat(90));
    let c = exchange(&watcher, to, &hello)
        .split(' ')
        .nth(2)
        .unwrap()
        .to_string();
    let regd = exchange(&watcher, to, &format!("REG r {c} watcher 3600"));
    let token = regd.rsplit(' ').next().unwrap().to_string();
    exchange(&watcher, to, &format!("SUB s {c} watcher {token}"));

    for i in 0..50 {
        round(&s, &watcher, to, i);
    }
    let warm = ALLOCATIONS.load(Ordering::Relaxed);
    let rounds = 300;
    for i in 50..50 + rounds {
        round(&s, &watcher, to, i);
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);

    stop.store(true, Ordering::Relaxed);
    s.send_to(b"wake up", to).unwrap();
    let (stats, _) = server.join().unwrap().unwrap();
    let per_round = 12 + 5;
    assert!(
        stats.datagrams_in >= (rounds * per_round) as u64,
        "the server saw {} datagrams",
        stats.datagrams_in
    );
    assert_eq!(
        after - warm,
        0,
        "the server thread allocated {} times while serving {} requests",
        after - warm,
        rounds * per_round
    );
}
