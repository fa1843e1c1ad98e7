//! The second port, for STUN only (`--stun-port2`): a client that asks
//! both ports learns whether its NAT keeps one mapping for every
//! destination (`parley netcheck`). Same `Poll`, same core, same rate
//! limits; answers leave from this port, as STUN requires.

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;
use mio::{Interest, Poll, Token};
use proto_core::server::{Server, VecOutbox};

/// The socket of the STUN-only port.
pub struct StunPort {
    socket: UdpSocket,
    out: VecOutbox<2>,
    buf: Box<[u8; 2048]>,
    /// Answers the kernel refused (a client asks again).
    pub send_failed: u64,
}

impl StunPort {
    /// Bind `addr` and watch it for readable under `token`.
    pub fn bind(addr: SocketAddr, poll: &Poll, token: Token) -> io::Result<StunPort> {
        let mut socket = UdpSocket::bind(addr)?;
        poll.registry()
            .register(&mut socket, token, Interest::READABLE)?;
        Ok(StunPort {
            socket,
            out: VecOutbox::new(),
            buf: Box::new([0; 2048]),
            send_failed: 0,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Read until the socket would block, answering each datagram at once.
    pub fn drain(&mut self, server: &mut Server<'_>, now: proto_core::Instant) -> io::Result<()> {
        loop {
            let (n, src) = match self.socket.recv_from(&mut self.buf[..]) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            };
            server.handle_stun_port(now, src, &self.buf[..n], &mut self.out);
            while let Some((dst, d)) = self.out.pop() {
                if self.socket.send_to(&d, dst).is_err() {
                    self.send_failed += 1;
                }
            }
        }
    }
}
