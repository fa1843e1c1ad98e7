//! The server's UDP sockets: one it receives on and, on Linux, a second
//! bound to the same address that it sends from.
//!
//! Why two: while a socket has an epoll waiter on its wait queue, every
//! datagram it sent wakes that waiter when the kernel frees it after
//! delivery (`sock_wfree` -> `sk_write_space` -> `ep_poll_callback`, which
//! takes the epoll lock with interrupts off), a large share of the server's
//! time under load (benches/RESULTS.md). A socket epoll does not watch skips
//! all of that, so
//! replies go out on a socket of their own, watched only while its send
//! buffer is full (rare).
//!
//! How: both sockets set `SO_REUSEPORT` and bind the same address, so
//! replies carry the address clients sent to. A reuseport group spreads
//! incoming datagrams over its members, so the receive socket, bound
//! first and thus member 0, gets a one-instruction classic BPF program
//! (`return 0`) that steers every datagram to member 0: the send socket
//! never receives one.
//!
//! `SO_REUSEPORT` must not let a second server share the port silently, so
//! a plain socket (no `SO_REUSEPORT`) binds the address first: if anything
//! holds it, that bind fails with `AddrInUse` as any plain bind would. The probe
//! also turns port 0 into a concrete port: a port-0 bind with
//! `SO_REUSEPORT` may be given a port a reuseport group of the same user
//! already holds (the kernel's search skips only ports it could not share).
//!
//! The probe is closed and the pair bound at once. In the few microseconds
//! between, any binder without `SO_REUSEPORT`, or of another user, meets
//! `AddrInUse` (or makes us meet it: the server then fails to start, as it
//! would have a moment later). Only a socket of the same user that also
//! sets `SO_REUSEPORT` could slip in unnoticed, and as member 0 it would
//! be given every datagram. We accept that window: keeping the probe bound
//! would refuse our own pair, and clearing `SO_REUSEPORT` on the receive
//! socket once the pair is bound closes the group to newcomers on IPv6 but
//! not on IPv4 (tried: the kernel's conflict check stops at the first
//! compatible member of its hash chain). Likewise, while the server runs, a
//! socket of the same user that sets `SO_REUSEPORT` can join its group,
//! which a plain socket's port would refuse; the BPF program gives it nothing.
//!
//! If any step of the pair fails (an old kernel, a sandbox refusing the
//! BPF program), the server logs it once and receives and sends on one
//! socket. Elsewhere than Linux it always uses one.

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;

/// Bytes asked for the receive socket's receive buffer and the send
/// socket's send buffer (the kernel caps them at net.core.rmem_max /
/// wmem_max). The default, about 200 KiB, holds only a few hundred
/// datagrams: a millisecond's stall of the server under load (another
/// process on its core) overflowed it and lost requests.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// The send socket never receives: its receive buffer is asked for this
/// (the kernel raises it to its minimum, a few KiB).
#[cfg(target_os = "linux")]
const SEND_SOCKET_RCVBUF: usize = 1;

/// The socket datagrams arrive on and, where it could be set up, a second
/// one on the same address that replies leave from.
#[derive(Debug)]
pub struct Sockets {
    pub(crate) rx: UdpSocket,
    pub(crate) tx: Option<UdpSocket>,
}

impl Sockets {
    /// Bind `addr`: on Linux a receive socket and a send socket (see the
    /// module doc), falling back to one socket if the pair cannot be set
    /// up; one socket elsewhere. Fails with `AddrInUse` if anything holds
    /// `addr` already.
    pub fn bind(addr: SocketAddr) -> io::Result<Sockets> {
        #[cfg(target_os = "linux")]
        return bind_with(addr, pair);
        #[cfg(not(target_os = "linux"))]
        Sockets::bind_one(addr)
    }

    /// Bind `addr` with one socket for receiving and sending.
    pub fn bind_one(addr: SocketAddr) -> io::Result<Sockets> {
        one(probe(addr)?)
    }

    /// The socket datagrams arrive on.
    pub fn recv_socket(&self) -> &UdpSocket {
        &self.rx
    }

    /// The socket replies leave from: the send socket, or the receive
    /// socket if there is only one.
    pub fn send_socket(&self) -> &UdpSocket {
        self.tx.as_ref().unwrap_or(&self.rx)
    }

    /// Whether replies leave from a socket of their own.
    pub fn is_split(&self) -> bool {
        self.tx.is_some()
    }

    /// The address bound (port 0 resolved).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.rx.local_addr()
    }
}

fn cannot_bind(addr: SocketAddr, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot bind UDP {addr}: {e}"))
}

/// A plain bind of `addr`, exactly as the server has always bound it.
fn probe(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    std::net::UdpSocket::bind(addr).map_err(|e| cannot_bind(addr, e))
}

/// One socket that both receives and sends.
fn one(sock: std::net::UdpSocket) -> io::Result<Sockets> {
    sock.set_nonblocking(true)?;
    set_buffer(&sock, Buffer::Recv, SOCKET_BUFFER);
    set_buffer(&sock, Buffer::Send, SOCKET_BUFFER);
    if let Ok(local) = sock.local_addr() {
        dont_fragment(&sock, local);
    }
    Ok(Sockets {
        rx: UdpSocket::from_std(sock),
        tx: None,
    })
}

/// Probe `addr`, then bind the pair `pair` makes on the address the probe
/// got, or one socket there if `pair` fails. A parameter so the tests can
/// make the pair fail.
#[cfg(target_os = "linux")]
fn bind_with(
    addr: SocketAddr,
    pair: impl FnOnce(SocketAddr) -> io::Result<Sockets>,
) -> io::Result<Sockets> {
    let probe = probe(addr)?;
    let local = probe.local_addr()?;
    drop(probe);
    match pair(local) {
        Ok(s) => Ok(s),
        // Someone took the address in the moment it was free: as loud as
        // finding it taken.
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(cannot_bind(addr, e)),
        Err(e) => {
            log::info!("replies go out on the receiving socket: no socket of their own ({e})");
            one(probe_at(addr, local)?)
        }
    }
}

/// A plain bind of `local`, the concrete address `addr` was resolved to.
#[cfg(target_os = "linux")]
fn probe_at(addr: SocketAddr, local: SocketAddr) -> io::Result<std::net::UdpSocket> {
    std::net::UdpSocket::bind(local).map_err(|e| cannot_bind(addr, e))
}

/// The receive socket, its steering program, then the send socket, all on
/// `local` (a concrete port).
#[cfg(target_os = "linux")]
fn pair(local: SocketAddr) -> io::Result<Sockets> {
    let rx = reuseport_bound(local).map_err(|e| step("receive socket", e))?;
    steer_to_first(&rx).map_err(|e| step("SO_ATTACH_REUSEPORT_CBPF", e))?;
    let tx = reuseport_bound(local).map_err(|e| step("send socket", e))?;
    set_buffer(&rx, Buffer::Recv, SOCKET_BUFFER);
    set_buffer(&tx, Buffer::Send, SOCKET_BUFFER);
    set_buffer(&tx, Buffer::Recv, SEND_SOCKET_RCVBUF);
    dont_fragment(&tx, local);
    Ok(Sockets {
        rx: UdpSocket::from_std(rx.into()),
        tx: Some(UdpSocket::from_std(tx.into())),
    })
}

#[cfg(target_os = "linux")]
fn step(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// A non-blocking, close-on-exec UDP socket with `SO_REUSEPORT`, bound to
/// `addr`. `IPV6_V6ONLY` is left at the system's default, as std's
/// `UdpSocket::bind` leaves it.
#[cfg(target_os = "linux")]
fn reuseport_bound(addr: SocketAddr) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    // socket2 sets SOCK_CLOEXEC on every socket it makes.
    let s = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM.nonblocking(),
        Some(Protocol::UDP),
    )?;
    s.set_reuse_port(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// Attach to `sock`'s reuseport group the classic BPF program `return 0`:
/// every datagram goes to member 0, the first socket bound.
#[cfg(target_os = "linux")]
fn steer_to_first(sock: &socket2::Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut code = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: code.len() as u16,
        filter: code.as_mut_ptr(),
    };
    // SAFETY: a valid socket and a sock_fprog pointing at `code`, which
    // outlives the call; the kernel copies the program.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Send with the don't-fragment bit set, as QUIC stacks do: replies are
/// at most 1200 bytes, and one too large for a path is better dropped than
/// fragmented. `PROBE` sets the bit without consulting the kernel's cached
/// path MTU, so an ICMP message cannot make sends fail. With the bit set,
/// Linux gives IPv4 datagrams the id 0 instead of drawing one from its
/// shared, SipHash-keyed id table for each, a draw that shows in the
/// server's profile under load (benches/RESULTS.md).
#[cfg(target_os = "linux")]
pub fn dont_fragment(sock: &impl std::os::fd::AsRawFd, local: SocketAddr) {
    let v4 = (
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_PROBE,
    );
    let v6 = (
        libc::IPPROTO_IPV6,
        libc::IPV6_MTU_DISCOVER,
        libc::IPV6_PMTUDISC_PROBE,
    );
    // An IPv6 socket may send IPv4 too (dual stack): set both there. The
    // IPv4 option fails on a v6-only socket, harmlessly.
    let options: &[_] = match local {
        SocketAddr::V4(_) => &[v4],
        SocketAddr::V6(_) => &[v6, v4],
    };
    for &(level, name, value) in options {
        if let Err(e) = set_int(sock, level, name, value) {
            log::debug!("setsockopt MTU_DISCOVER (level {level}): {e}");
        }
    }
}

#[cfg(target_os = "linux")]
fn set_int(
    sock: &impl std::os::fd::AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a valid socket and a c_int option value that outlives the call.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Nothing, where the options are Linux's.
#[cfg(not(target_os = "linux"))]
pub fn dont_fragment<S>(_: &S, _: SocketAddr) {}

#[derive(Clone, Copy, Debug)]
enum Buffer {
    Recv,
    Send,
}

/// Ask for `bytes` of one of `sock`'s buffers; the kernel caps the request
/// at its configured maximum, and a refusal leaves the default in place.
#[cfg(unix)]
fn set_buffer(sock: &impl std::os::fd::AsFd, which: Buffer, bytes: usize) {
    let s = socket2::SockRef::from(sock);
    let r = match which {
        Buffer::Recv => s.set_recv_buffer_size(bytes),
        Buffer::Send => s.set_send_buffer_size(bytes),
    };
    if let Err(e) = r {
        log::debug!("setsockopt {which:?} buffer: {e}");
    }
}

#[cfg(not(unix))]
fn set_buffer<S>(_: &S, _: Buffer, _: usize) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn v6() -> bool {
        std::net::UdpSocket::bind("[::1]:0").is_ok()
    }

    /// Read `sock` until `want` datagrams came or 5 s passed; the count.
    fn count(sock: &UdpSocket, want: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut n = 0;
        let mut buf = [0u8; 64];
        while n < want && Instant::now() < deadline {
            match sock.recv_from(&mut buf) {
                Ok(_) => n += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        n
    }

    fn would_block(sock: &UdpSocket) -> bool {
        matches!(sock.recv_from(&mut [0u8; 64]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Many datagrams from many sources (so the group's hash would spread
    /// them) all reach the receive socket and none the send socket.
    fn every_datagram_reaches_rx(bind: &str, client: &str) {
        let s = Sockets::bind(bind.parse().unwrap()).unwrap();
        assert!(s.is_split());
        let client: std::net::IpAddr = client.parse().unwrap();
        let to = SocketAddr::new(client, s.local_addr().unwrap().port());
        let (sources, each) = (16, 40);
        for _ in 0..sources {
            let c = std::net::UdpSocket::bind(SocketAddr::new(client, 0)).unwrap();
            for i in 0..each {
                c.send_to(&[i as u8], to).unwrap();
            }
        }
        assert_eq!(count(&s.rx, sources * each), sources * each);
        assert!(would_block(&s.rx), "more datagrams than were sent");
        assert!(
            would_block(s.tx.as_ref().unwrap()),
            "the send socket got one"
        );
    }

    #[test]
    fn every_datagram_reaches_the_receive_socket_v4() {
        every_datagram_reaches_rx("127.0.0.1:0", "127.0.0.1");
    }

    #[test]
    fn every_datagram_reaches_the_receive_socket_v6() {
        if !v6() {
            eprintln!("no IPv6 loopback here; skipping");
            return;
        }
        every_datagram_reaches_rx("[::1]:0", "::1");
    }

    #[test]
    fn a_dual_stack_pair_steers_ipv4_too() {
        let dual =
            std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").is_ok_and(|v| v.trim() == "0");
        if !v6() || !dual {
            eprintln!("no dual-stack IPv6 here; skipping");
            return;
        }
        every_datagram_reaches_rx("[::]:0", "127.0.0.1");
        every_datagram_reaches_rx("[::]:0", "::1");
    }

    fn get_int(sock: &UdpSocket, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        use std::os::fd::AsRawFd;
        let mut v: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a valid socket, and `v` and `len` outlive the call.
        let r = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                level,
                name,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0, "{}", io::Error::last_os_error());
        v
    }

    #[test]
    fn replies_are_sent_without_fragmenting() {
        let ip = (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER);
        let ip6 = (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER);
        for s in [
            Sockets::bind("127.0.0.1:0".parse().unwrap()).unwrap(),
            Sockets::bind_one("127.0.0.1:0".parse().unwrap()).unwrap(),
        ] {
            assert_eq!(
                get_int(s.send_socket(), ip.0, ip.1),
                libc::IP_PMTUDISC_PROBE
            );
        }
        if v6() {
            let s = Sockets::bind("[::1]:0".parse().unwrap()).unwrap();
            assert_eq!(
                get_int(s.send_socket(), ip6.0, ip6.1),
                libc::IPV6_PMTUDISC_PROBE
            );
        }
    }

    fn replies_leave_from_the_bound_address(bind: &str, client: &str) {
        let s = Sockets::bind(bind.parse().unwrap()).unwrap();
        let bound = s.local_addr().unwrap();
        assert_ne!(bound.port(), 0);
        assert_eq!(s.send_socket().local_addr().unwrap(), bound);
        let c = std::net::UdpSocket::bind(format!("{client}:0")).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.send_socket()
            .send_to(b"reply", c.local_addr().unwrap())
            .unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"reply"[..], bound));
    }

    #[test]
    fn replies_leave_from_the_bound_address_v4_and_v6() {
        replies_leave_from_the_bound_address("127.0.0.1:0", "127.0.0.1");
        if v6() {
            replies_leave_from_the_bound_address("[::1]:0", "[::1]");
        }
    }

    #[test]
    fn a_busy_address_is_refused_whoever_holds_it() {
        let s = Sockets::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = s.local_addr().unwrap();
        let e = std::net::UdpSocket::bind(addr).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let e = Sockets::bind(addr).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(
            e.to_string(),
            format!("cannot bind UDP {addr}: Address already in use (os error 98)")
        );
        // A socket with SO_REUSEPORT of our own user would take a
        // reuseport bind into its group without a word: the probe refuses.
        let other = reuseport_bound("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = other.local_addr().unwrap().as_socket().unwrap();
        let e = Sockets::bind(addr).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let e = Sockets::bind_one(addr).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn the_send_socket_keeps_a_small_receive_buffer() {
        let s = Sockets::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let rx = socket2::SockRef::from(&s.rx).recv_buffer_size().unwrap();
        let tx = socket2::SockRef::from(s.tx.as_ref().unwrap())
            .recv_buffer_size()
            .unwrap();
        assert!(tx <= 8192 && rx > tx, "rx {rx} tx {tx}");
    }

    #[test]
    fn a_failed_pair_falls_back_to_one_socket() {
        let s = bind_with("127.0.0.1:0".parse().unwrap(), |_| {
            Err(io::Error::from_raw_os_error(libc::EPERM))
        })
        .unwrap();
        assert!(!s.is_split());
        let bound = s.local_addr().unwrap();
        assert_ne!(bound.port(), 0);
        assert_eq!(s.send_socket().local_addr().unwrap(), bound);
        let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send_to(b"ping", bound).unwrap();
        assert_eq!(count(s.recv_socket(), 1), 1);
        s.send_socket()
            .send_to(b"pong", c.local_addr().unwrap())
            .unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(c.recv_from(&mut buf).unwrap(), (4, bound));
        // Still alone on its port.
        let e = std::net::UdpSocket::bind(bound).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn losing_the_address_between_probe_and_pair_is_an_error() {
        let mut thief = None;
        let e = bind_with("127.0.0.1:0".parse().unwrap(), |local| {
            thief = Some(std::net::UdpSocket::bind(local).unwrap());
            pair(local)
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(
            e.to_string().starts_with("cannot bind UDP 127.0.0.1:0: "),
            "{e}"
        );
    }
}
