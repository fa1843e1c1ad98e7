//! Socket addresses in the two textual forms the protocol uses.
//!
//! ```text
//! addr      = IPv4 ":" port / "[" IPv6 "]" ":" port    ; Rust's SocketAddr Display
//! locals    = 0*4(SP addr)    ; a client's own (host) addresses, in INTRO and PUNCH
//! py-tuple  = "('" IPv4 "', " port ")"
//!           / "('" IPv6 "', " port ", " flowinfo ", " scope-id ")"
//! ```
//!
//! The extended protocol uses Rust's form. The seed's `Peer` reply uses
//! Python's repr of the address tuple that `recvfrom` returns, because the
//! seed client passes it through `ast.literal_eval` straight to `sendto`.
//! Only the canonical form parses, so every address re-emits byte for byte.

#[cfg(test)]
use core::net::Ipv4Addr;
use core::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::text::{Fields, Writer, parse_u32};
use super::{EmitError, ParseError};

/// Longest text of an address in Rust's form (`[v6%scope]:port`).
pub const MAX_ADDR_LEN: usize = 64;

// The text codec's readers and writers learn addresses here, so that
// `text` knows nothing of them and the two modules do not import each other.
impl Fields<'_> {
    /// The next field, an address in Rust's form.
    pub fn addr(&mut self) -> Result<SocketAddr, ParseError> {
        parse(self.raw()?)
    }
}

impl Writer<'_> {
    /// A space, then an address in Rust's form.
    pub fn addr(&mut self, a: SocketAddr) -> Result<&mut Self, EmitError> {
        self.put(b" ")?;
        write(self, a)
    }
}

/// Write `a` in Rust's form.
///
/// Written by hand: an address is in most replies on the hot path, and
/// `core::fmt` (argument tables, padding checks, integer `Display`) costs
/// more than the rest of the reply. The output is byte for byte `SocketAddr`'s
/// `Display` (the tests compare the two over arbitrary addresses).
pub(crate) fn write<'w, 'b>(
    w: &'w mut Writer<'b>,
    a: SocketAddr,
) -> Result<&'w mut Writer<'b>, EmitError> {
    match a {
        SocketAddr::V4(v4) => write_v4(w, v4.ip().octets())?
            .put(b":")?
            .u64(u64::from(v4.port())),
        SocketAddr::V6(v6) => {
            write_v6(w.put(b"[")?, v6.ip())?;
            if v6.scope_id() != 0 {
                w.put(b"%")?.u64(u64::from(v6.scope_id()))?;
            }
            w.put(b"]:")?.u64(u64::from(v6.port()))
        }
    }
}

/// Write an IPv6 address as `Ipv6Addr`'s `Display` does (RFC 5952): an
/// IPv4-mapped address as `::ffff:a.b.c.d`, otherwise lowercase hex groups
/// without leading zeros, the first longest run of two or more zero groups
/// written `::`.
fn write_v6<'w, 'b>(w: &'w mut Writer<'b>, ip: &Ipv6Addr) -> Result<&'w mut Writer<'b>, EmitError> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return write_v4(w.put(b"::ffff:")?, v4.octets());
    }
    let seg = ip.segments();
    let (mut zero_at, mut zero_len) = (0, 0);
    let mut run = 0;
    for (i, &s) in seg.iter().enumerate() {
        run = if s == 0 { run + 1 } else { 0 };
        if run > zero_len {
            zero_len = run;
            zero_at = i + 1 - run;
        }
    }
    // At most 39 bytes (eight groups of four and seven colons).
    let mut buf = [0u8; 39];
    let mut n = 0;
    let groups = |buf: &mut [u8; 39], n: &mut usize, part: &[u16]| {
        for (i, &s) in part.iter().enumerate() {
            if i > 0 {
                buf[*n] = b':';
                *n += 1;
            }
            let mut shift = 12;
            while shift > 0 && (s >> shift) == 0 {
                shift -= 4;
            }
            loop {
                buf[*n] = b"0123456789abcdef"[usize::from((s >> shift) & 0xf)];
                *n += 1;
                if shift == 0 {
                    break;
                }
                shift -= 4;
            }
        }
    };
    if zero_len > 1 {
        groups(&mut buf, &mut n, &seg[..zero_at]);
        buf[n] = b':';
        buf[n + 1] = b':';
        n += 2;
        groups(&mut buf, &mut n, &seg[zero_at + zero_len..]);
    } else {
        groups(&mut buf, &mut n, &seg);
    }
    w.put(&buf[..n])
}

/// Write a dotted-quad IPv4 address, as `Ipv4Addr`'s `Display` does.
fn write_v4<'w, 'b>(w: &'w mut Writer<'b>, o: [u8; 4]) -> Result<&'w mut Writer<'b>, EmitError> {
    // At most 15 bytes ("255.255.255.255"): build it on the stack, then copy
    // once, so the writer's bounds check runs once.
    let mut buf = [0u8; 15];
    let mut n = 0;
    for (i, &b) in o.iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if b >= 100 {
            buf[n] = b'0' + b / 100;
            n += 1;
        }
        if b >= 10 {
            buf[n] = b'0' + (b / 10) % 10;
            n += 1;
        }
        buf[n] = b'0' + b % 10;
        n += 1;
    }
    w.put(&buf[..n])
}

/// Parse an address in Rust's canonical form.
pub fn parse(b: &[u8]) -> Result<SocketAddr, ParseError> {
    let s = core::str::from_utf8(b).map_err(|_| ParseError::Malformed)?;
    let a: SocketAddr = s.parse().map_err(|_| ParseError::Malformed)?;
    // Refuse non-canonical spellings (leading zeros, uncompressed IPv6) so
    // that parsing and emitting are inverses.
    canonical::<MAX_ADDR_LEN>(b, a, |w, a| write(w, a).map(drop))
}

/// `a`, if `write` spells it as exactly `b` in at most `N` bytes; any
/// other spelling of it is malformed.
fn canonical<const N: usize>(
    b: &[u8],
    a: SocketAddr,
    write: impl FnOnce(&mut Writer<'_>, SocketAddr) -> Result<(), EmitError>,
) -> Result<SocketAddr, ParseError> {
    let mut buf = [0u8; N];
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
    match a {
        SocketAddr::V4(v4) => write_v4(w.put(b"('")?, v4.ip().octets())?
            .put(b"', ")?
            .u64(u64::from(v4.port()))?
            .put(b")"),
        SocketAddr::V6(v6) => write_v6(w.put(b"('")?, v6.ip())?
            .put(b"', ")?
            .u64(u64::from(v6.port()))?
            .put(b", ")?
            .u64(u64::from(v6.flowinfo()))?
            .put(b", ")?
            .u64(u64::from(v6.scope_id()))?
            .put(b")"),
    }
}

/// Parse Python's repr of an address tuple, as `write_py` writes it.
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
    canonical::<96>(b, a, |w, a| write_py(w, a).map(drop))
}

fn py_int(s: Option<&str>) -> Result<u32, ParseError> {
    parse_u32(s.ok_or(ParseError::Malformed)?.as_bytes())
}

/// An IPv6 address's text never exceeds this; used by tests.
#[allow(dead_code)]
const LONGEST_V6: Ipv6Addr = Ipv6Addr::new(
    0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
);

/// A client's local (host) addresses, as `INTRO` announces them and
/// `PUNCH` passes them on: at most [`super::MAX_LOCAL`], in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Locals {
    len: u8,
    addrs: [SocketAddr; super::MAX_LOCAL],
}

impl Default for Locals {
    fn default() -> Self {
        Locals::EMPTY
    }
}

impl Locals {
    /// No addresses.
    pub const EMPTY: Locals = Locals {
        len: 0,
        addrs: [SocketAddr::V4(SocketAddrV4::new(core::net::Ipv4Addr::UNSPECIFIED, 0));
            super::MAX_LOCAL],
    };

    /// Up to [`super::MAX_LOCAL`] of `addrs` (the rest are left out).
    pub fn new(addrs: &[SocketAddr]) -> Locals {
        let mut l = Locals::EMPTY;
        for a in addrs {
            if l.push(*a).is_err() {
                break;
            }
        }
        l
    }

    /// Add `a`; `Err` when full.
    pub fn push(&mut self, a: SocketAddr) -> Result<(), ParseError> {
        let slot = self
            .addrs
            .get_mut(usize::from(self.len))
            .ok_or(ParseError::Malformed)?;
        *slot = a;
        self.len += 1;
        Ok(())
    }

    /// The addresses.
    pub fn as_slice(&self) -> &[SocketAddr] {
        &self.addrs[..usize::from(self.len)]
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Read the rest of a line's fields as addresses.
    pub(crate) fn parse_rest(f: &mut super::text::Fields<'_>) -> Result<Locals, ParseError> {
        let mut l = Locals::EMPTY;
        while f.end().is_err() {
            l.push(f.addr()?)?;
        }
        Ok(l)
    }

    /// Write each address after a space.
    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        for a in self.as_slice() {
            w.addr(*a)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::format;

    use proptest::prelude::*;

    use super::*;
    use crate::wire::testgen;

    /// `a` is written (in the seed's tuple form if `py`) as exactly
    /// `want`, and parses back to itself.
    fn emits_as(a: SocketAddr, py: bool, want: &str) -> Result<(), TestCaseError> {
        let (b, n) = emit(a, py);
        prop_assert_eq!(&b[..n], want.as_bytes());
        let back = if py {
            parse_py(&b[..n])
        } else {
            parse(&b[..n])
        };
        prop_assert_eq!(back, Ok(a));
        Ok(())
    }

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
    fn every_octet_and_every_port_is_written_as_display_writes_it() {
        for v in 0..=255u8 {
            let a = SocketAddr::from(([v, 255 - v, v / 2, v % 7], u16::from(v)));
            let (b, n) = emit(a, false);
            assert_eq!(&b[..n], format!("{a}").as_bytes());
        }
        for p in 0..=u16::MAX {
            let a = SocketAddr::from(([10, 0, 0, 1], p));
            let (b, n) = emit(a, false);
            assert_eq!(&b[..n], format!("{a}").as_bytes());
        }
    }

    /// An IPv4 address whose octets often sit on a digit-count boundary.
    fn v4() -> impl Strategy<Value = Ipv4Addr> {
        let octet = prop_oneof![
            Just(0u8),
            Just(9),
            Just(10),
            Just(99),
            Just(100),
            Just(255),
            any::<u8>()
        ];
        [octet.clone(), octet.clone(), octet.clone(), octet].prop_map(Ipv4Addr::from)
    }

    fn port() -> impl Strategy<Value = u16> {
        prop_oneof![
            Just(0u16),
            Just(9),
            Just(10),
            Just(9999),
            Just(10000),
            Just(u16::MAX),
            any::<u16>()
        ]
    }

    /// An IPv6 address rich in zero groups (runs of every length, ties),
    /// IPv4-mapped and -compatible forms, and groups of every digit count.
    fn v6() -> impl Strategy<Value = Ipv6Addr> {
        let group = prop_oneof![
            6 => Just(0u16),
            1 => Just(1u16),
            1 => Just(0xffff),
            1 => 0u16..0x10,
            1 => 0x10u16..0x100,
            1 => 0x100u16..0x1000,
            2 => any::<u16>(),
        ];
        prop_oneof![
            proptest::array::uniform8(group).prop_map(Ipv6Addr::from),
            any::<u32>().prop_map(|v| Ipv4Addr::from(v).to_ipv6_mapped()),
            any::<u32>().prop_map(|v| Ipv4Addr::from(v).to_ipv6_compatible()),
            any::<u128>().prop_map(Ipv6Addr::from),
        ]
    }

    proptest! {
        #[test]
        fn v6_form_is_byte_for_byte_display(
            ip in v6(),
            port in port(),
            scope in prop_oneof![Just(0u32), Just(1), Just(u32::MAX), any::<u32>()],
        ) {
            let a = SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope));
            emits_as(a, false, &format!("{a}"))?;
        }

        #[test]
        fn rust_form_is_byte_for_byte_display(a in testgen::addr()) {
            emits_as(a, false, &format!("{a}"))?;
        }

        #[test]
        fn v4_form_is_byte_for_byte_display(ip in v4(), port in port()) {
            let a = SocketAddr::V4(SocketAddrV4::new(ip, port));
            emits_as(a, false, &format!("{a}"))?;
        }

        #[test]
        fn v4_python_tuple_is_byte_for_byte_format(ip in v4(), port in port()) {
            let a = SocketAddr::V4(SocketAddrV4::new(ip, port));
            emits_as(a, true, &format!("('{ip}', {port})"))?;
        }

        #[test]
        fn v6_python_tuple_is_byte_for_byte_format(
            ip in v6(),
            port in port(),
            flow in prop_oneof![Just(0u32), any::<u32>()],
            scope in prop_oneof![Just(0u32), any::<u32>()],
        ) {
            let a = SocketAddr::V6(SocketAddrV6::new(ip, port, flow, scope));
            emits_as(a, true, &format!("('{ip}', {port}, {flow}, {scope})"))?;
        }

        #[test]
        fn a_full_buffer_is_refused_not_overrun(ip in v4(), port in port(), room in 0usize..24) {
            let a = SocketAddr::V4(SocketAddrV4::new(ip, port));
            let text = format!("{a}");
            let mut buf = [0u8; 24];
            let mut w = Writer::new(&mut buf[..room]);
            let r = write(&mut w, a).map(|w| w.finish());
            if text.len() <= room {
                prop_assert_eq!(r, Ok(text.len()));
                prop_assert_eq!(&buf[..text.len()], text.as_bytes());
            } else {
                prop_assert!(r.is_err());
            }
        }
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
