//! Links that take time, for the NAT lab: this kernel has no `netem`, so a
//! link is two TAP devices, one in each namespace, and a thread of the
//! test's process that carries every Ethernet frame from one to the other
//! a fixed delay later.
//!
//! Without delay two routers on one segment see each other's datagrams
//! within microseconds, so hole punching turns on which client the
//! scheduler ran first; on the internet a datagram between two homes takes
//! milliseconds, and the server's simultaneous introduction lets both
//! clients' first datagrams leave before either arrives. The lab should
//! test that, not the scheduler.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::natlab::{LabError, in_namespace};

/// Frames waiting in one direction of a link, at most; more are dropped,
/// as a full queue drops them.
const QUEUE: usize = 4096;

/// How long the thread sleeps at most, so that it sees new links and its
/// stop flag.
const TICK: Duration = Duration::from_millis(5);

/// The thread that carries every delayed link of a lab; it stops when
/// dropped.
pub struct Delays {
    stop: Arc<AtomicBool>,
    add: mpsc::Sender<Link>,
    thread: Option<JoinHandle<()>>,
}

struct Link {
    ends: [File; 2],
    waiting: [VecDeque<(Instant, Vec<u8>)>; 2],
    delay: Duration,
}

impl Delays {
    /// Start the (idle) thread.
    pub fn start() -> Delays {
        let stop = Arc::new(AtomicBool::new(false));
        let (add, links) = mpsc::channel();
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || carry(&flag, &links));
        Delays {
            stop,
            add,
            thread: Some(thread),
        }
    }

    /// A link with `delay` each way between a new TAP device `a` in
    /// namespace `ns_a` and a new TAP device `b` in `ns_b`; both are down
    /// and without addresses until the caller sets them up, and both go
    /// away with this thread.
    pub fn link(
        &self,
        (ns_a, a): (&str, &str),
        (ns_b, b): (&str, &str),
        delay: Duration,
    ) -> Result<(), LabError> {
        let ends = [open_tap(ns_a, a)?, open_tap(ns_b, b)?];
        self.add
            .send(Link {
                ends,
                waiting: [VecDeque::new(), VecDeque::new()],
                delay,
            })
            .map_err(|_| LabError::Io("the delay thread has stopped".into()))
    }
}

impl Drop for Delays {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread: read what each end's namespace sent, hold it, write it into
/// the other end when due.
fn carry(stop: &AtomicBool, new_links: &mpsc::Receiver<Link>) {
    let mut links: Vec<Link> = Vec::new();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        links.extend(new_links.try_iter());
        let now = Instant::now();
        let mut wake = now + TICK;
        for link in &mut links {
            for dir in 0..2 {
                while let Some((due, _)) = link.waiting[dir].front() {
                    if *due > now {
                        wake = wake.min(*due);
                        break;
                    }
                    if let Some((_, frame)) = link.waiting[dir].pop_front() {
                        // A frame the other end refuses is lost, as on a wire.
                        let _ = link.ends[1 - dir].write(&frame);
                    }
                }
            }
        }
        let mut fds: Vec<libc::pollfd> = links
            .iter()
            .flat_map(|l| l.ends.iter())
            .map(|f| libc::pollfd {
                fd: f.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = wake.saturating_duration_since(Instant::now()).as_millis();
        let timeout = i32::try_from(ms).unwrap_or(i32::MAX);
        // SAFETY: poll(2) over a buffer of `fds.len()` initialised pollfds.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        let now = Instant::now();
        for link in &mut links {
            for dir in 0..2 {
                loop {
                    match link.ends[dir].read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if link.waiting[dir].len() < QUEUE {
                                link.waiting[dir].push_back((now + link.delay, buf[..n].to_vec()));
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            }
        }
    }
}

/// `struct ifreq` as TUNSETIFF reads it: a name and the flags.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _rest: [u8; 22],
}

/// A new TAP device `name` in namespace `ns`, read and written through the
/// returned file without blocking; it lives as long as the file.
fn open_tap(ns: &str, name: &str) -> Result<File, LabError> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(LabError::Io(format!("bad device name {name:?}")));
    }
    in_namespace(ns, || {
        let tun = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/net/tun")
            .map_err(|e| LabError::Unavailable(format!("/dev/net/tun: {e}")))?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
            _rest: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads (and may write back) one `struct ifreq`,
        // which `IfReq` lays out, living across the call.
        if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req) } != 0 {
            return Err(LabError::Io(format!(
                "TUNSETIFF {name} in {ns}: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(tun)
    })
}
