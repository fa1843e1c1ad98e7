//! A real `parley-server` loop on a thread of the test's own process, on
//! an ephemeral loopback port unless told otherwise.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

/// A running server; stopped, and its thread joined, when dropped.
pub struct InProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl InProcess {
    /// Start with `opts`; waits until the server says where it listens.
    pub fn start(opts: parley_server::Options) -> InProcess {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let hooks = parley_server::Hooks {
            on_ready: Some(Arc::new(move |a| {
                let _ = tx.send(a);
            })),
            stop: Some(stop.clone()),
        };
        let thread = std::thread::spawn(move || {
            parley_server::run(&opts, hooks).expect("parley-server runs");
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server started");
        InProcess {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Options for `capacity` ids on an ephemeral loopback port.
    pub fn options(capacity: usize) -> parley_server::Options {
        parley_server::Options {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            capacity,
            ..Default::default()
        }
    }

    /// Stop and wait for the loop to end (it checks the flag at least once
    /// a second).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.halt();
    }
}
