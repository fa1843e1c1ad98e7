//! Batched datagram I/O for the generator and the echo floor:
//! `sendmmsg`/`recvmmsg`, so one system call moves up to [`BATCH`] datagrams.
//!
//! Lanes are connected sockets, so neither call needs addresses and the
//! kernel drops anything that does not come from the target.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// Datagrams per system call.
pub const BATCH: usize = 64;
/// Send buffer per datagram (requests are short).
pub const TX_BUF: usize = 256;
/// Receive buffer per datagram (presence datagrams reach 1200 bytes).
pub const RX_BUF: usize = 2048;

/// Buffers for one batch in each direction, shared by every lane (the
/// generator runs one lane at a time).
pub struct Batch {
    /// Outgoing datagrams.
    pub tx: Box<[[u8; TX_BUF]]>,
    /// Their lengths.
    pub tx_len: [usize; BATCH],
    /// How many are queued.
    pub tx_n: usize,
    /// Incoming datagrams.
    pub rx: Box<[[u8; RX_BUF]]>,
    /// Their lengths.
    pub rx_len: [usize; BATCH],
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            tx: vec![[0u8; TX_BUF]; BATCH].into_boxed_slice(),
            tx_len: [0; BATCH],
            tx_n: 0,
            rx: vec![[0u8; RX_BUF]; BATCH].into_boxed_slice(),
            rx_len: [0; BATCH],
        }
    }
}

impl Batch {
    /// Send the queued datagrams on a connected socket. Returns how many
    /// went; the rest are dropped (counted by the caller as not sent).
    pub fn send(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        let n = self.tx_n;
        self.tx_n = 0;
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            iovs[i].iov_base = self.tx[i].as_mut_ptr().cast();
            iovs[i].iov_len = self.tx_len[i];
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        let mut done = 0;
        while done < n {
            // SAFETY: entries done..n point into live buffers with their
            // true lengths; the kernel only reads them.
            let r = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    msgs[done..].as_mut_ptr(),
                    (n - done) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    // The target is not there (yet): an ICMP error came back.
                    io::ErrorKind::ConnectionRefused => return Ok(done),
                    io::ErrorKind::WouldBlock => return Ok(done),
                    _ => return Err(e),
                }
            }
            done += r as usize;
        }
        Ok(done)
    }

    /// Receive up to [`BATCH`] datagrams without waiting; 0 if none wait.
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        self.recv_flags(sock, libc::MSG_DONTWAIT)
    }

    /// Receive into the batch with the given `recvmmsg` flags.
    pub fn recv_flags(&mut self, sock: &UdpSocket, flags: libc::c_int) -> io::Result<usize> {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iovs[i].iov_base = self.rx[i].as_mut_ptr().cast();
            iovs[i].iov_len = RX_BUF;
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        loop {
            // SAFETY: every entry points into a live buffer of RX_BUF bytes.
            let r = unsafe {
                libc::recvmmsg(
                    sock.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    flags,
                    std::ptr::null_mut(),
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock | io::ErrorKind::ConnectionRefused => return Ok(0),
                    _ => return Err(e),
                }
            }
            let n = r as usize;
            for (len, m) in self.rx_len.iter_mut().zip(&msgs).take(n) {
                *len = m.msg_len as usize;
            }
            return Ok(n);
        }
    }
}

/// Set a socket's buffer sizes (the kernel caps them at its maximum).
pub fn set_buffers(sock: &UdpSocket, bytes: usize) {
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        let v = bytes as libc::c_int;
        // SAFETY: a valid fd and a pointer to a c_int of the given size.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// The source address of lane `i`: `first + i` for IPv4 (all of 127/8 is
/// local on Linux), `::1` for IPv6.
pub fn lane_ip(first: Ipv4Addr, target: &SocketAddr, i: usize) -> Result<IpAddr, String> {
    match target {
        SocketAddr::V6(_) => Ok(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        SocketAddr::V4(_) => {
            let a = u32::from(first)
                .checked_add(i as u32)
                .ok_or("too many lanes")?;
            let ip = Ipv4Addr::from(a);
            if ip.octets()[0] != 127 {
                return Err(format!(
                    "lane {i} would use {ip}, outside 127.0.0.0/8; use fewer lanes or a lower --first-addr"
                ));
            }
            Ok(IpAddr::V4(ip))
        }
    }
}

/// A lane's socket: bound to `ip`, connected to `target`, non-blocking.
pub fn lane_socket(ip: IpAddr, target: SocketAddr) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(SocketAddr::new(ip, 0))
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind a lane to {ip}: {e}")))?;
    s.connect(target)?;
    s.set_nonblocking(true)?;
    set_buffers(&s, 4 << 20);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_stay_inside_loopback() {
        let t: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let first = Ipv4Addr::new(127, 0, 1, 1);
        assert_eq!(lane_ip(first, &t, 0).unwrap(), IpAddr::from([127, 0, 1, 1]));
        assert_eq!(
            lane_ip(first, &t, 300).unwrap(),
            IpAddr::from([127, 0, 2, 45])
        );
        assert!(lane_ip(Ipv4Addr::new(127, 255, 255, 250), &t, 10).is_err());
        let t6: SocketAddr = "[::1]:9".parse().unwrap();
        assert_eq!(
            lane_ip(first, &t6, 5).unwrap(),
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
        );
    }

    #[test]
    fn a_batch_crosses_loopback_both_ways() {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let lane = lane_socket(IpAddr::from([127, 0, 3, 7]), peer.local_addr().unwrap()).unwrap();
        peer.connect(lane.local_addr().unwrap()).unwrap();
        let mut b = Batch::default();
        for i in 0..10u8 {
            b.tx[i as usize][..3].copy_from_slice(&[i, i, i]);
            b.tx_len[i as usize] = 3;
        }
        b.tx_n = 10;
        assert_eq!(b.send(&lane).unwrap(), 10);
        let mut got = [0u8; 8];
        for i in 0..10u8 {
            let (n, from) = peer.recv_from(&mut got).unwrap();
            assert_eq!(&got[..n], &[i, i, i]);
            assert_eq!(from.ip(), IpAddr::from([127, 0, 3, 7]));
            peer.send(&got[..n]).unwrap();
        }
        let mut seen = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen < 10 && std::time::Instant::now() < deadline {
            let n = b.recv(&lane).unwrap();
            for i in 0..n {
                assert_eq!(b.rx_len[i], 3);
                assert_eq!(b.rx[i][0], (seen + i) as u8);
            }
            seen += n;
        }
        assert_eq!(seen, 10);
        assert_eq!(b.recv(&lane).unwrap(), 0);
    }
}
