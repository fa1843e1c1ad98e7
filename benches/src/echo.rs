//! The floor: a server that sends every datagram straight back, with the
//! same batched system calls as parley-server (`recvmmsg` then `sendmmsg`)
//! and nothing else. Whatever rate it reaches is what the kernel lets a
//! single-threaded UDP server do on this machine with this generator.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parley_server::net::MmsgHdrs;

use crate::net::{BATCH, RX_BUF, set_buffers};

/// Datagrams echoed and system calls made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EchoStats {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams sent back.
    pub sent: u64,
}

/// How the floor waits for datagrams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Block in `recvmmsg` (`MSG_WAITFORONE`): the cheapest the kernel allows.
    Recv,
    /// Register the socket with an edge-triggered epoll, read with
    /// `MSG_DONTWAIT` and wait in `epoll_wait` after a short batch: the
    /// structure of parley-server's loop (mio), without the protocol.
    Epoll,
}

/// An epoll instance watching one socket, closed when dropped.
struct Epoll(libc::c_int);

impl Epoll {
    fn watch(fd: libc::c_int) -> io::Result<Epoll> {
        // SAFETY: plain system calls on descriptors we own.
        unsafe {
            let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            if ep < 0 {
                return Err(io::Error::last_os_error());
            }
            let ep = Epoll(ep);
            let mut ev = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                u64: 0,
            };
            if libc::epoll_ctl(ep.0, libc::EPOLL_CTL_ADD, fd, &mut ev) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(ep)
        }
    }

    fn wait(&self, ms: libc::c_int) {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 4];
        // SAFETY: `evs` has room for the 4 events asked for.
        unsafe { libc::epoll_wait(self.0, evs.as_mut_ptr(), 4, ms) };
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own this descriptor.
        unsafe { libc::close(self.0) };
    }
}

/// Echo on `sock` until `stop` is set or `duration` passes.
pub fn serve(
    sock: &UdpSocket,
    duration: Option<Duration>,
    stop: &Arc<AtomicBool>,
) -> io::Result<EchoStats> {
    serve_with(sock, duration, stop, Wait::Recv)
}

/// Echo on `sock`, waiting as `wait` says.
pub fn serve_with(
    sock: &UdpSocket,
    duration: Option<Duration>,
    stop: &Arc<AtomicBool>,
    wait: Wait,
) -> io::Result<EchoStats> {
    // Wake up now and then to notice `stop` and the deadline.
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    // The same buffers parley-server asks for, so the floor is no roomier.
    set_buffers(sock, 4 << 20);
    let deadline = duration.map(|d| Instant::now() + d);
    let mut bufs = vec![[0u8; RX_BUF]; BATCH];
    let mut hdrs = MmsgHdrs::new();
    let mut st = EchoStats::default();
    let fd = sock.as_raw_fd();
    let epoll = match wait {
        Wait::Epoll => Some(Epoll::watch(fd)?),
        Wait::Recv => None,
    };
    let flags = if epoll.is_some() {
        libc::MSG_DONTWAIT
    } else {
        libc::MSG_WAITFORONE
    };
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(st);
        }
        // Block for the first datagram, then take what else is waiting.
        let n = match hdrs.recv_into(fd, &mut bufs, flags) {
            Ok(n) => n,
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock if epoll.is_some() => {
                    if let Some(ep) = &epoll {
                        ep.wait(100);
                    }
                    continue;
                }
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted
                | io::ErrorKind::ConnectionRefused => continue,
                _ => return Err(e),
            },
        };
        let msgs = hdrs.msgs();
        st.received += n as u64;
        for m in msgs.iter_mut().take(n) {
            // Send back exactly what came, to where it came from.
            // SAFETY: msg_iov points at this entry's iovec in `iovs`.
            unsafe { (*m.msg_hdr.msg_iov).iov_len = m.msg_len as usize };
        }
        let mut done = 0;
        while done < n {
            // SAFETY: entries done..n hold the received datagrams and the
            // addresses they came from; the kernel only reads them.
            let r = unsafe {
                libc::sendmmsg(fd, msgs[done..].as_mut_ptr(), (n - done) as libc::c_uint, 0)
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // One peer is gone (ICMP refused): skip its datagram.
                done += 1;
                continue;
            }
            done += r as usize;
            st.sent += r as u64;
        }
        // As parley-server does: a short batch emptied the queue, so wait
        // for the next edge.
        if let (Some(ep), true) = (&epoll, n < BATCH) {
            ep.wait(100);
        }
    }
}

/// Bind `addr` and echo until `stop` is set or `duration` passes.
pub fn run(
    addr: SocketAddr,
    duration: Option<Duration>,
    stop: Arc<AtomicBool>,
    wait: Wait,
    df: bool,
) -> io::Result<EchoStats> {
    let sock = UdpSocket::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {addr}: {e}")))?;
    if df {
        // The server's own setting, so this floor differs from it in
        // nothing else.
        parley_server::sockets::dont_fragment(&sock, sock.local_addr()?);
    }
    eprintln!("echo listening on {}", sock.local_addr()?);
    serve_with(&sock, duration, &stop, wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_datagram_comes_back_to_its_sender() {
        echo_round(Wait::Recv);
        echo_round(Wait::Epoll);
    }

    fn echo_round(wait: Wait) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let t =
            std::thread::spawn(move || serve_with(&sock, Some(Duration::from_secs(20)), &s2, wait));
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.2:0").unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        for i in 0..50u8 {
            a.send_to(&[b'a', i], addr).unwrap();
            b.send_to(&vec![i; 1 + i as usize * 20], addr).unwrap();
        }
        let mut buf = [0u8; 2048];
        for i in 0..50u8 {
            let (n, from) = a.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&[b'a', i][..], addr));
            let (n, _) = b.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &vec![i; 1 + i as usize * 20][..]);
        }
        stop.store(true, Ordering::Relaxed);
        let st = t.join().unwrap().unwrap();
        assert_eq!((st.received, st.sent), (100, 100));
    }
}
