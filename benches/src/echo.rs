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

use crate::net::{BATCH, RX_BUF, set_buffers};

/// Datagrams echoed and system calls made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EchoStats {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams sent back.
    pub sent: u64,
}

/// Echo on `sock` until `stop` is set or `duration` passes.
pub fn serve(
    sock: &UdpSocket,
    duration: Option<Duration>,
    stop: &Arc<AtomicBool>,
) -> io::Result<EchoStats> {
    // Wake up now and then to notice `stop` and the deadline.
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    // The same buffers parley-server asks for, so the floor is no roomier.
    set_buffers(sock, 4 << 20);
    let deadline = duration.map(|d| Instant::now() + d);
    let mut bufs = vec![[0u8; RX_BUF]; BATCH];
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut names: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
    let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    let mut st = EchoStats::default();
    let fd = sock.as_raw_fd();
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(st);
        }
        for i in 0..BATCH {
            iovs[i].iov_base = bufs[i].as_mut_ptr().cast();
            iovs[i].iov_len = RX_BUF;
            let h = &mut msgs[i].msg_hdr;
            h.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
        }
        // Block for the first datagram, then take what else is waiting.
        // SAFETY: every entry points into live buffers of the sizes given.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted
                | io::ErrorKind::ConnectionRefused => continue,
                _ => return Err(e),
            }
        }
        let n = n as usize;
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
    }
}

/// Bind `addr` and echo until SIGINT/SIGTERM-style `stop` or `duration`.
pub fn run(
    addr: SocketAddr,
    duration: Option<Duration>,
    stop: Arc<AtomicBool>,
) -> io::Result<EchoStats> {
    let sock = UdpSocket::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {addr}: {e}")))?;
    eprintln!("echo listening on {}", sock.local_addr()?);
    serve(&sock, duration, &stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_datagram_comes_back_to_its_sender() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || serve(&sock, Some(Duration::from_secs(20)), &s2));
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
