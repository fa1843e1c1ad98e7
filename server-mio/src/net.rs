//! Batched UDP I/O: `recvmmsg`/`sendmmsg` on Linux, one datagram per call
//! elsewhere. On loopback the kernel's per-call cost is the ceiling, so
//! moving 64 datagrams per system call is most of the server's speed.
//!
//! Every buffer is allocated once, when the server starts.

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;
use proto_core::MAX_DATAGRAM;
use proto_core::server::{Outbox, OutboxFull};

/// Datagrams moved per system call.
pub const BATCH: usize = 64;
/// Receive buffer per datagram. Larger than any valid datagram, so a
/// truncated one is known to be oversized and is dropped whole.
pub const RX_BUF: usize = 2048;

/// A received datagram: where from and what, or `Oversized` if it did not
/// fit [`RX_BUF`] (the kernel truncated it).
pub enum Received<'a> {
    /// A datagram that fit.
    Datagram(SocketAddr, &'a [u8]),
    /// A datagram longer than [`RX_BUF`] bytes.
    Oversized,
}

/// The `mmsghdr` arrays of one batch call, kept between calls: zeroing
/// them on every call (13 KiB) shows in the server's profile under load
/// (benches/RESULTS.md).
/// Their pointers are set again before every call, so nothing stale is
/// ever handed to the kernel. Public for the load generator's echo floor,
/// which must make the very same calls.
#[cfg(target_os = "linux")]
pub struct MmsgHdrs {
    names: [libc::sockaddr_storage; BATCH],
    iovs: [libc::iovec; BATCH],
    msgs: [libc::mmsghdr; BATCH],
}

// SAFETY: the raw pointers inside are scratch, rewritten before each use to
// point into buffers owned alongside; they are never dereferenced elsewhere.
#[cfg(target_os = "linux")]
unsafe impl Send for MmsgHdrs {}

#[cfg(target_os = "linux")]
impl MmsgHdrs {
    /// Headers pointing nowhere yet.
    pub fn new() -> Box<MmsgHdrs> {
        // SAFETY: all-zero is a valid value for these plain C structs.
        Box::new(unsafe { std::mem::zeroed() })
    }

    /// Point entry `i` at `buf` and at its own address slot, which holds
    /// `namelen` meaningful bytes.
    fn aim(&mut self, i: usize, buf: &mut [u8], namelen: libc::socklen_t) {
        self.iovs[i].iov_base = buf.as_mut_ptr().cast();
        self.iovs[i].iov_len = buf.len();
        let h = &mut self.msgs[i].msg_hdr;
        h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = namelen;
        h.msg_iov = &mut self.iovs[i];
        h.msg_iovlen = 1;
    }

    /// Point every entry at its receive buffer in `bufs` and at room for
    /// any source address, before a `recvmmsg`.
    fn aim_rx(&mut self, bufs: &mut [[u8; RX_BUF]]) {
        let room = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        for (i, buf) in bufs.iter_mut().enumerate().take(BATCH) {
            self.aim(i, buf, room);
        }
    }

    /// Receive up to [`BATCH`] datagrams from `fd` into `bufs` with the
    /// given `recvmmsg` flags; how many came. Entry `i`'s length, flags and
    /// source are then in [`MmsgHdrs::msgs`].
    #[inline]
    pub fn recv_into(
        &mut self,
        fd: std::os::fd::RawFd,
        bufs: &mut [[u8; RX_BUF]],
        flags: libc::c_int,
    ) -> io::Result<usize> {
        self.aim_rx(bufs);
        let room = bufs.len().min(BATCH);
        // SAFETY: the first `room` entries point into `bufs` and `names`,
        // which outlive the call, with their lengths; the kernel writes
        // within them.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                room as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// The headers, as aimed, for `recvmmsg` and `sendmmsg`.
    pub fn msgs(&mut self) -> &mut [libc::mmsghdr; BATCH] {
        &mut self.msgs
    }
}

/// Receive buffers for one batch.
pub struct RxBatch {
    #[cfg(target_os = "linux")]
    hdrs: Box<MmsgHdrs>,
    bufs: Box<[[u8; RX_BUF]]>,
    lens: [usize; BATCH],
    truncated: [bool; BATCH],
    addrs: [Option<SocketAddr>; BATCH],
    count: usize,
}

impl Default for RxBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RxBatch {
    /// Buffers for [`BATCH`] datagrams.
    pub fn new() -> Self {
        RxBatch {
            #[cfg(target_os = "linux")]
            hdrs: MmsgHdrs::new(),
            bufs: vec![[0u8; RX_BUF]; BATCH].into_boxed_slice(),
            lens: [0; BATCH],
            truncated: [false; BATCH],
            addrs: [None; BATCH],
            count: 0,
        }
    }

    /// The datagrams of the last successful [`RxBatch::recv`].
    pub fn iter(&self) -> impl Iterator<Item = Received<'_>> {
        (0..self.count).map(move |i| match (self.truncated[i], self.addrs[i]) {
            (false, Some(a)) => Received::Datagram(a, &self.bufs[i][..self.lens[i]]),
            _ => Received::Oversized,
        })
    }

    /// Receive up to [`BATCH`] datagrams; `Err(WouldBlock)` when none wait.
    #[cfg(target_os = "linux")]
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let got = self
            .hdrs
            .recv_into(sock.as_raw_fd(), &mut self.bufs, libc::MSG_DONTWAIT);
        let n = match got {
            Ok(n) => n,
            Err(e) => {
                self.count = 0;
                return Err(e);
            }
        };
        let MmsgHdrs { names, msgs, .. } = &*self.hdrs;
        for i in 0..n {
            self.lens[i] = msgs[i].msg_len as usize;
            self.truncated[i] = msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.addrs[i] = sockaddr_to_std(&names[i]);
        }
        self.count = n;
        Ok(n)
    }

    /// The most datagrams one [`RxBatch::recv`] can return: a call that
    /// returns fewer found the socket's queue empty.
    pub fn capacity(&self) -> usize {
        if cfg!(target_os = "linux") { BATCH } else { 1 }
    }

    /// Receive one datagram; `Err(WouldBlock)` when none waits.
    #[cfg(not(target_os = "linux"))]
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        self.count = 0;
        let (len, from) = sock.recv_from(&mut self.bufs[0])?;
        self.lens[0] = len;
        // Without MSG_TRUNC we cannot tell; a full buffer is treated as oversized.
        self.truncated[0] = len == RX_BUF;
        self.addrs[0] = Some(from);
        self.count = 1;
        Ok(1)
    }
}

#[cfg(target_os = "linux")]
fn sockaddr_to_std(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(s as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                u32::from_be(a.sin6_flowinfo),
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(target_os = "linux")]
fn std_to_sockaddr(a: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let s: &mut libc::sockaddr_in =
                unsafe { &mut *(out as *mut _ as *mut libc::sockaddr_in) };
            s.sin_family = libc::AF_INET as libc::sa_family_t;
            s.sin_port = v4.port().to_be();
            s.sin_addr = libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let s: &mut libc::sockaddr_in6 =
                unsafe { &mut *(out as *mut _ as *mut libc::sockaddr_in6) };
            s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            s.sin6_port = v6.port().to_be();
            s.sin6_flowinfo = v6.flowinfo().to_be();
            s.sin6_addr = libc::in6_addr {
                s6_addr: v6.ip().octets(),
            };
            s.sin6_scope_id = v6.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[derive(Clone, Copy)]
struct TxSlot {
    dst: SocketAddr,
    len: u16,
    buf: [u8; MAX_DATAGRAM],
}

/// What a flush achieved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Datagrams handed to the kernel.
    pub sent: u64,
    /// Datagrams the kernel refused outright (unreachable, not permitted...).
    pub failed: u64,
    /// Whether datagrams are left because the socket would block.
    pub blocked: bool,
}

/// The outgoing queue: a fixed ring of datagrams, filled by the protocol
/// core through [`Outbox`] and drained by [`TxRing::flush`]. When the socket
/// would block, what is left simply stays queued; when the ring is full the
/// core is told so and counts the drop. Nothing grows.
pub struct TxRing {
    #[cfg(target_os = "linux")]
    hdrs: Box<MmsgHdrs>,
    slots: Box<[TxSlot]>,
    head: usize,
    len: usize,
}

impl TxRing {
    /// A ring of `capacity` datagrams.
    pub fn new(capacity: usize) -> Self {
        let empty = TxSlot {
            dst: SocketAddr::from(([0, 0, 0, 0], 0)),
            len: 0,
            buf: [0; MAX_DATAGRAM],
        };
        TxRing {
            #[cfg(target_os = "linux")]
            hdrs: MmsgHdrs::new(),
            slots: vec![empty; capacity.max(BATCH)].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    /// Datagrams waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn pop_front(&mut self, n: usize) {
        self.head = (self.head + n) % self.slots.len();
        self.len -= n;
        if self.len == 0 {
            // Start over at the front: a ring that keeps up then reuses the
            // same few slots, warm in the cache, instead of writing every
            // reply into a slot of its 5 MiB that the caches lost long ago.
            self.head = 0;
        }
    }

    /// Send what is queued until the queue is empty or the socket would block.
    pub fn flush(&mut self, sock: &UdpSocket) -> Flushed {
        let mut f = Flushed::default();
        while self.len > 0 {
            // Only a contiguous run of the ring goes in one call.
            let run = self.len.min(self.slots.len() - self.head).min(BATCH);
            match self.send_run(sock, run) {
                Ok(n) => {
                    f.sent += n as u64;
                    self.pop_front(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    f.blocked = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // The first datagram of the run was refused (its
                    // destination is unreachable, say): drop it, go on.
                    f.failed += 1;
                    self.pop_front(1);
                }
            }
        }
        f
    }

    #[cfg(target_os = "linux")]
    fn send_run(&mut self, sock: &UdpSocket, run: usize) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let hdrs = &mut *self.hdrs;
        for i in 0..run {
            let slot = &mut self.slots[self.head + i];
            let namelen = std_to_sockaddr(slot.dst, &mut hdrs.names[i]);
            hdrs.aim(i, &mut slot.buf[..usize::from(slot.len)], namelen);
        }
        let msgs = &mut hdrs.msgs;
        // SAFETY: the first `run` entries point into live buffers with
        // their true lengths; the kernel only reads them.
        let n =
            unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), run as libc::c_uint, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    #[cfg(not(target_os = "linux"))]
    fn send_run(&mut self, sock: &UdpSocket, _run: usize) -> io::Result<usize> {
        let slot = &self.slots[self.head];
        sock.send_to(&slot.buf[..usize::from(slot.len)], slot.dst)?;
        Ok(1)
    }
}

impl Outbox for TxRing {
    /// The next free slot's buffer: the core writes its reply straight
    /// into the ring.
    fn reserve(&mut self) -> Option<&mut [u8]> {
        if self.len == self.slots.len() {
            return None;
        }
        let i = (self.head + self.len) % self.slots.len();
        Some(&mut self.slots[i].buf)
    }

    fn commit(&mut self, dst: SocketAddr, len: usize) -> Result<(), OutboxFull> {
        if self.len == self.slots.len() || len > MAX_DATAGRAM {
            return Err(OutboxFull);
        }
        let i = (self.head + self.len) % self.slots.len();
        let slot = &mut self.slots[i];
        slot.dst = dst;
        slot.len = len as u16;
        self.len += 1;
        Ok(())
    }

    fn send(&mut self, dst: SocketAddr, payload: &[u8]) -> Result<(), OutboxFull> {
        if payload.len() > MAX_DATAGRAM {
            return Err(OutboxFull);
        }
        let buf = self.reserve().ok_or(OutboxFull)?;
        buf[..payload.len()].copy_from_slice(payload);
        self.commit(dst, payload.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_refuses_when_full_and_wraps() {
        let mut r = TxRing::new(BATCH);
        let dst: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for _ in 0..BATCH {
            r.send(dst, b"x").unwrap();
        }
        assert_eq!(r.send(dst, b"x"), Err(OutboxFull));
        r.pop_front(10);
        for _ in 0..10 {
            r.send(dst, b"y").unwrap();
        }
        assert_eq!(r.len(), BATCH);
        assert_eq!(r.slots[(r.head + BATCH - 1) % BATCH].buf[0], b'y');
    }

    #[test]
    fn replies_written_in_place_are_queued_only_when_committed() {
        let mut r = TxRing::new(BATCH);
        let dst: SocketAddr = "127.0.0.1:9".parse().unwrap();
        r.reserve().unwrap()[..3].copy_from_slice(b"abc");
        assert!(r.is_empty(), "reserving queues nothing");
        r.reserve().unwrap()[..3].copy_from_slice(b"xyz");
        r.commit(dst, 3).unwrap();
        r.send(dst, b"sent").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(&r.slots[0].buf[..usize::from(r.slots[0].len)], b"xyz");
        assert_eq!(&r.slots[1].buf[..usize::from(r.slots[1].len)], b"sent");
        // A full ring has no buffer to give and refuses a commit.
        while r.len() < BATCH {
            r.send(dst, b"x").unwrap();
        }
        assert!(r.reserve().is_none());
        assert_eq!(r.commit(dst, 1), Err(OutboxFull));
        assert_eq!(r.commit(dst, MAX_DATAGRAM + 1), Err(OutboxFull));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn addresses_survive_the_trip_through_a_kernel_name() {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let zero = || -> libc::sockaddr_storage { unsafe { std::mem::zeroed() } };
        for a in [
            "127.0.0.1:9",
            "10.1.2.3:65535",
            "[::1]:9999",
            "[2001:db8::7]:40001",
            "[::ffff:127.0.0.1]:5",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            let mut n = zero();
            std_to_sockaddr(a, &mut n);
            assert_eq!(sockaddr_to_std(&n), Some(a));
        }
        let v6 = SocketAddr::V6(std::net::SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            7,
            0x12345,
            3,
        ));
        let mut n = zero();
        std_to_sockaddr(v6, &mut n);
        assert_eq!(sockaddr_to_std(&n), Some(v6), "flow info and scope kept");
        assert_eq!(sockaddr_to_std(&zero()), None, "no family, no address");
    }

    #[test]
    fn an_emptied_ring_starts_again_at_its_front() {
        let mut r = TxRing::new(256);
        let dst: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for _ in 0..100 {
            r.send(dst, b"x").unwrap();
        }
        r.pop_front(60);
        assert_eq!(
            (r.head, r.len()),
            (60, 40),
            "a partly sent ring keeps its place"
        );
        r.pop_front(40);
        assert_eq!((r.head, r.len()), (0, 0));
        r.send(dst, b"z").unwrap();
        assert_eq!(
            r.slots[0].buf[0], b'z',
            "the next reply goes in the first slot"
        );
    }

    #[test]
    fn batches_cross_a_real_socket() {
        let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut ring = TxRing::new(256);
        for i in 0..100u8 {
            ring.send(b.local_addr().unwrap(), &[i; 10]).unwrap();
        }
        let f = ring.flush(&a);
        assert_eq!(f.sent, 100);
        let mut buf = [0u8; 64];
        for i in 0..100u8 {
            let (n, from) = b.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&[i; 10][..], a.local_addr().unwrap()));
        }
        // And back, through the batch receiver, with an oversized one.
        b.send_to(&[7u8; 5], a.local_addr().unwrap()).unwrap();
        b.send_to(&vec![1u8; RX_BUF + 1], a.local_addr().unwrap())
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut rx = RxBatch::new();
        let n = rx.recv(&a).unwrap();
        assert_eq!(n, 2);
        let got: Vec<bool> = rx
            .iter()
            .map(|r| matches!(r, Received::Datagram(_, d) if d == [7u8; 5]))
            .collect();
        assert_eq!(got, [true, false]);
        assert_eq!(
            rx.recv(&a).map_err(|e| e.kind()).unwrap_err(),
            io::ErrorKind::WouldBlock
        );
    }
}
