//! Socket addresses in the two textual forms the protocol uses.
//!
//! ```text
//! addr      = IPv4 ":" port / "[" IPv6 "]" ":" port    ; Rust's SocketAddr Display
//! py-tuple  = "('" IPv4 "', " port ")"
//!           / "('" IPv6 "', " port ", " flowinfo ", " scope-id ")"
//! ```
//!
//! The extended protocol uses Rust's form. The seed's `Peer` reply uses
//! Python's repr of the address tuple that `recvfrom` returns, because the
//! seed client passes it through `ast.literal_eval` straight to `sendto`.
//! Only the canonical form parses, so every address re-emits byte for byte.

use core::fmt::Write;
use core::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::text::Writer;
use super::{EmitError, ParseError};

/// Longest text of an address in Rust's form (`[v6%scope]:port`).
pub const MAX_ADDR_LEN: usize = 64;

/// Write `a` in Rust's form.
pub(crate) fn write<'w, 'b>(
    w: &'w mut Writer<'b>,
    a: SocketAddr,
) -> Result<&'w mut Writer<'b>, EmitError> {
    write!(w, "{a}").map_err(|_| EmitError::TooLong)?;
    Ok(w)
}

/// Parse an address in Rust's canonical form.
pub fn parse(b: &[u8]) -> Result<SocketAddr, ParseError> {
    let s = core::str::from_utf8(b).map_err(|_| ParseError::Malformed)?;
    let a: SocketAddr = s.parse().map_err(|_| ParseError::Malformed)?;
    // Refuse non-canonical spellings (leading zeros, uncompressed IPv6) so
    // that parsing and emitting are inverses.
    let mut buf = [0u8; MAX_ADDR_LEN];
    let mut w = Writer::new(&mut buf);
    write(&mut w, a).map_err(|_| ParseError::Malformed)?;
    let n = w.finish();
    if &buf[..n] != b {
        return Err(ParseError::Malformed);
    }
    Ok(a)
}

/// Write `a` as Python's repr of a `recvfrom` address tuple.
pub(crate) fn write_py<'w, 'b>(
    w: &'w mut Writer<'b>,
    a: SocketAddr,
) -> Result<&'w mut Writer<'b>, EmitError> {
    let r = match a {
        SocketAddr::V4(v4) => write!(w, "('{}', {})", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => write!(
            w,
            "('{}', {}, {}, {})",
            v6.ip(),
            v6.port(),
            v6.flowinfo(),
            v6.scope_id()
        ),
    };
    r.map_err(|_| EmitError::TooLong)?;
    Ok(w)
}

/// Parse Python's repr of an address tuple, as [`write_py`] writes it.
pub fn parse_py(b: &[u8]) -> Result<SocketAddr, ParseError> {
    let s = core::str::from_utf8(b).map_err(|_| ParseError::Malformed)?;
    let inner = s
        .strip_prefix("('")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or(ParseError::Malformed)?;
    let (host, rest) = inner.split_once("', ").ok_or(ParseError::Malformed)?;
    let mut nums = rest.split(", ");
    let port = py_int(nums.next())?;
    let port = u16::try_from(port).map_err(|_| ParseError::Malformed)?;
    let ip: IpAddr = host.parse().map_err(|_| ParseError::Malformed)?;
    let a = match ip {
        IpAddr::V4(v4) => {
            if nums.next().is_some() {
                return Err(ParseError::Malformed);
            }
            SocketAddr::V4(SocketAddrV4::new(v4, port))
        }
        IpAddr::V6(v6) => {
            let flow = py_int(nums.next())?;
            let scope = py_int(nums.next())?;
            if nums.next().is_some() {
                return Err(ParseError::Malformed);
            }
            SocketAddr::V6(SocketAddrV6::new(v6, port, flow, scope))
        }
    };
    // Canonical form only, as for [`parse`].
    let mut buf = [0u8; 96];
    let mut w = Writer::new(&mut buf);
    write_py(&mut w, a).map_err(|_| ParseError::Malformed)?;
    let n = w.finish();
    if &buf[..n] != b {
        return Err(ParseError::Malformed);
    }
    Ok(a)
}

fn py_int(s: Option<&str>) -> Result<u32, ParseError> {
    super::text::parse_u32(s.ok_or(ParseError::Malformed)?.as_bytes())
}

/// An IPv6 address's text never exceeds this; used by tests.
#[allow(dead_code)]
const LONGEST_V6: Ipv6Addr = Ipv6Addr::new(
    0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn emit(a: SocketAddr, py: bool) -> ([u8; 96], usize) {
        let mut buf = [0u8; 96];
        let mut w = Writer::new(&mut buf);
        if py {
            write_py(&mut w, a).unwrap();
        } else {
            write(&mut w, a).unwrap();
        }
        let n = w.finish();
        (buf, n)
    }

    #[test]
    fn python_tuples_match_the_seed() {
        let a: SocketAddr = "127.0.0.1:10520".parse().unwrap();
        let (b, n) = emit(a, true);
        assert_eq!(&b[..n], b"('127.0.0.1', 10520)");
        assert_eq!(parse_py(&b[..n]), Ok(a));
        let a: SocketAddr = "[::1]:10520".parse().unwrap();
        let (b, n) = emit(a, true);
        assert_eq!(&b[..n], b"('::1', 10520, 0, 0)");
        assert_eq!(parse_py(&b[..n]), Ok(a));
    }

    #[test]
    fn rust_form_roundtrips_and_is_canonical() {
        for s in [
            "1.2.3.4:5",
            "[::1]:9999",
            "[2001:db8::1]:65535",
            "0.0.0.0:0",
        ] {
            let a: SocketAddr = s.parse().unwrap();
            let (b, n) = emit(a, false);
            assert_eq!(&b[..n], s.as_bytes());
            assert_eq!(parse(s.as_bytes()), Ok(a));
        }
        assert!(parse(b"[0:0:0:0:0:0:0:1]:5").is_err());
        assert!(parse(b"1.2.3.4:05").is_err());
        assert!(parse(b"1.2.3.4").is_err());
        let a = SocketAddr::new(LONGEST_V6.into(), 65535);
        assert!(emit(a, false).1 <= MAX_ADDR_LEN);
    }

    #[test]
    fn malformed_tuples_fail() {
        for s in [
            "('1.2.3.4', 5",
            "(1.2.3.4, 5)",
            "('1.2.3.4', 70000)",
            "('1.2.3.4', 5, 0, 0)",
            "('::1', 5)",
            "('::1', 5, 0, 0, 0)",
        ] {
            assert!(parse_py(s.as_bytes()).is_err(), "{s}");
        }
    }
}
