//! Speaking the text protocol from a plain UDP socket, as the tests of a
//! real server do: ask, wait for the answer, get a cookie, register.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// A client socket on `ip` (port chosen by the kernel), with a short read
/// timeout so a missing answer fails a test instead of hanging it.
pub fn client_on(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind(format!("{ip}:0")).expect("bind a client socket");
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("set a read timeout");
    s
}

/// A client socket on 127.0.0.1.
pub fn client() -> UdpSocket {
    client_on("127.0.0.1")
}

/// Send `req` and return the next datagram, as text.
pub fn ask(s: &UdpSocket, to: SocketAddr, req: &str) -> String {
    s.send_to(req.as_bytes(), to).expect("send a request");
    recv(s).unwrap_or_else(|| panic!("no reply to {req:?}"))
}

/// The next datagram, or `None` after the socket's timeout.
pub fn recv(s: &UdpSocket) -> Option<String> {
    let mut buf = [0u8; 2048];
    match s.recv_from(&mut buf) {
        Ok((n, _)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(_) => None,
    }
}

/// A cookie for this socket.
pub fn cookie(s: &UdpSocket, to: SocketAddr) -> String {
    cookie_via(|req| ask(s, to, req))
}

/// A client socket on `ip` ([`client_on`]) and a cookie for it from `to`.
pub fn with_cookie(ip: &str, to: SocketAddr) -> (UdpSocket, String) {
    let s = client_on(ip);
    let c = cookie(&s, to);
    (s, c)
}

/// Register `id` on the extended protocol; returns (cookie, token).
pub fn register(s: &UdpSocket, to: SocketAddr, id: &str) -> (String, String) {
    register_via(|req| ask(s, to, req), id)
}

/// A cookie, asking through `ask` (which may, say, retry on a lossy
/// path). The `HELLO` is padded: the server answers nothing larger than
/// the request.
pub fn cookie_via(mut ask: impl FnMut(&str) -> String) -> String {
    let r = ask(&format!("HELLO h {}", ".".repeat(90)));
    assert!(r.starts_with("COOKIE h "), "{r}");
    r.split(' ').nth(2).expect("a cookie").to_string()
}

/// Register `id`, asking through `ask`; returns (cookie, token).
pub fn register_via(mut ask: impl FnMut(&str) -> String, id: &str) -> (String, String) {
    let c = cookie_via(&mut ask);
    let r = ask(&format!("REG r {c} {id}"));
    assert!(r.starts_with(&format!("REGD r {id} ")), "{r}");
    (c, r.rsplit(' ').next().expect("a token").to_string())
}
