//! STUN Binding (RFC 8489), the part a STUN server and a NAT check need.
//!
//! ```text
//! message    = header *attribute             ; binary, all numbers big-endian
//! header     = type length magic-cookie transaction-id
//! type       = 2 bits 00, then 14 bits of method and class:
//!              %x0001 Binding request, %x0101 Binding success response,
//!              %x0111 Binding error response
//! length     = 2 octets: the octets of attributes after the header,
//!              a multiple of 4
//! magic-cookie = %x21.12.A4.42
//! transaction-id = 12 octets, chosen by the client, echoed in the response
//! attribute  = atype alen value padding      ; padding: to a multiple of 4
//! atype      = 2 octets; below %x8000 comprehension-required
//! alen       = 2 octets: the octets of value, without padding
//!
//! XOR-MAPPED-ADDRESS (atype %x0020):
//! value      = %x00 family x-port x-address
//! family     = %x01 (IPv4, 4-octet address) / %x02 (IPv6, 16-octet address)
//! x-port     = port XOR the cookie's first 2 octets
//! x-address  = IPv4 XOR the cookie / IPv6 XOR (the cookie, then the transaction id)
//! MAPPED-ADDRESS (atype %x0001): the same, not XORed (RFC 3489 servers)
//! ```
//!
//! A datagram is STUN, not Parley text, when its first two bits are 0 and
//! it carries the magic cookie at octets 4 to 8 ([`is_stun`]), as WebRTC
//! stacks tell STUN from other traffic on one port: every text message
//! starts with a letter (the top bits of a letter are `01`), and no text
//! message has the control character %x12 at octet 5.
//!
//! A server answers only a well-formed Binding request that carries no
//! comprehension-required attribute (Parley knows none: it has no
//! credentials, so a request with `USERNAME` or `MESSAGE-INTEGRITY` cannot
//! be checked and gets no answer). The answer is a Binding success with one
//! XOR-MAPPED-ADDRESS: 32 octets for an IPv4 source, 44 for IPv6, for a
//! request of at least 20.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::EmitError;

/// The magic cookie of every RFC 5389 / 8489 message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Octets of the header.
pub const HEADER_LEN: usize = 20;
/// Octets of a Binding request without attributes.
pub const REQUEST_LEN: usize = HEADER_LEN;
/// The largest Binding success Parley emits (IPv6).
pub const MAX_SUCCESS_LEN: usize = HEADER_LEN + 4 + 20;

const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;
const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
const FAMILY_V4: u8 = 0x01;
const FAMILY_V6: u8 = 0x02;

/// A transaction id: 12 octets the client chose.
pub type TransactionId = [u8; 12];

/// Why a datagram is not a STUN message Parley accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StunError {
    /// No STUN header: too short, a top bit set, or no magic cookie.
    NotStun,
    /// The length field disagrees with the datagram, or an attribute runs
    /// past the end.
    Malformed,
    /// A STUN message of another method or class than the one expected.
    WrongType(u16),
    /// A comprehension-required attribute Parley does not implement.
    UnknownAttribute(u16),
    /// A Binding error response came back.
    ErrorResponse,
    /// A Binding success without a (XOR-)MAPPED-ADDRESS Parley can read.
    NoAddress,
}

impl fmt::Display for StunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StunError::NotStun => f.write_str("the datagram is not a STUN message"),
            StunError::Malformed => f.write_str("the STUN message's lengths do not add up"),
            StunError::WrongType(t) => write!(
                f,
                "the STUN message is of type {t:#06x}, not the one expected"
            ),
            StunError::UnknownAttribute(t) => {
                write!(
                    f,
                    "the STUN message has attribute {t:#06x}, which must be understood and is not"
                )
            }
            StunError::ErrorResponse => f.write_str("the STUN server answered with an error"),
            StunError::NoAddress => f.write_str("the STUN response carries no mapped address"),
        }
    }
}

/// Whether `d` has a STUN header: first two bits 0 and the magic cookie
/// at octets 4 to 8 (cheap enough for every datagram of the hot path).
#[inline]
pub fn is_stun(d: &[u8]) -> bool {
    d.len() >= HEADER_LEN && d[0] & 0xC0 == 0 && d[4..8] == MAGIC_COOKIE.to_be_bytes()
}

fn u16_at(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

/// Check the header and the attribute lengths; the message type and the
/// transaction id.
fn header(d: &[u8]) -> Result<(u16, TransactionId), StunError> {
    if !is_stun(d) {
        return Err(StunError::NotStun);
    }
    let len = usize::from(u16_at(d, 2));
    if len % 4 != 0 || HEADER_LEN + len != d.len() {
        return Err(StunError::Malformed);
    }
    let mut tx = [0u8; 12];
    tx.copy_from_slice(&d[8..20]);
    Ok((u16_at(d, 0), tx))
}

/// The attributes of a checked message, as `(type, value)`, or `Malformed`
/// where one runs past the end.
fn attributes(d: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), StunError>> {
    let mut at = HEADER_LEN;
    core::iter::from_fn(move || {
        if at >= d.len() {
            return None;
        }
        if d.len() - at < 4 {
            at = d.len();
            return Some(Err(StunError::Malformed));
        }
        let ty = u16_at(d, at);
        let len = usize::from(u16_at(d, at + 2));
        let padded = (len + 3) & !3;
        if d.len() - at - 4 < padded {
            at = d.len();
            return Some(Err(StunError::Malformed));
        }
        let value = &d[at + 4..at + 4 + len];
        at += 4 + padded;
        Some(Ok((ty, value)))
    })
}

/// A Binding request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingRequest {
    /// Echoed in the response.
    pub transaction: TransactionId,
}

impl BindingRequest {
    /// Parse a Binding request that a server may answer: well-formed, and
    /// with no comprehension-required attribute (comprehension-optional
    /// ones such as SOFTWARE and FINGERPRINT are skipped).
    pub fn parse(d: &[u8]) -> Result<Self, StunError> {
        let (ty, transaction) = header(d)?;
        if ty != BINDING_REQUEST {
            return Err(StunError::WrongType(ty));
        }
        for attr in attributes(d) {
            let (ty, _) = attr?;
            if ty < 0x8000 {
                return Err(StunError::UnknownAttribute(ty));
            }
        }
        Ok(BindingRequest { transaction })
    }

    /// Octets [`BindingRequest::emit`] writes.
    pub const fn len(&self) -> usize {
        REQUEST_LEN
    }

    /// Never empty: a request is at least its header.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Write the request (no attributes) into `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let out = buf.get_mut(..REQUEST_LEN).ok_or(EmitError::TooLong)?;
        out[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
        out[2..4].copy_from_slice(&0u16.to_be_bytes());
        out[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out[8..20].copy_from_slice(&self.transaction);
        Ok(REQUEST_LEN)
    }
}

/// A Binding success response carrying the address the server saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingSuccess {
    /// The request's transaction id.
    pub transaction: TransactionId,
    /// The request's source address as the server saw it. IPv6 flow
    /// information and scope are not carried (they parse as 0).
    pub mapped: SocketAddr,
}

/// XOR `addr` and `port` with the cookie and transaction id (the same
/// operation both ways).
fn xor_addr(ip: IpAddr, port: u16, tx: &TransactionId) -> (IpAddr, u16) {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = port ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match ip {
        IpAddr::V4(v4) => {
            let mut o = v4.octets();
            for (b, k) in o.iter_mut().zip(cookie) {
                *b ^= k;
            }
            IpAddr::V4(Ipv4Addr::from(o))
        }
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            for (b, k) in o.iter_mut().zip(cookie.iter().chain(tx.iter())) {
                *b ^= k;
            }
            IpAddr::V6(Ipv6Addr::from(o))
        }
    };
    (ip, port)
}

/// Read an address value (`MAPPED-ADDRESS` layout).
fn read_addr(v: &[u8]) -> Option<(IpAddr, u16)> {
    match (v.first(), v.get(1), v.len()) {
        (Some(0), Some(&FAMILY_V4), 8) => {
            let o: [u8; 4] = v[4..8].try_into().ok()?;
            Some((IpAddr::V4(Ipv4Addr::from(o)), u16_at(v, 2)))
        }
        (Some(0), Some(&FAMILY_V6), 20) => {
            let o: [u8; 16] = v[4..20].try_into().ok()?;
            Some((IpAddr::V6(Ipv6Addr::from(o)), u16_at(v, 2)))
        }
        _ => None,
    }
}

fn socket(ip: IpAddr, port: u16) -> SocketAddr {
    match ip {
        IpAddr::V4(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
        IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, port, 0, 0)),
    }
}

impl BindingSuccess {
    /// Octets [`BindingSuccess::emit`] writes: 32 for IPv4, 44 for IPv6.
    pub const fn len(&self) -> usize {
        match self.mapped {
            SocketAddr::V4(_) => HEADER_LEN + 4 + 8,
            SocketAddr::V6(_) => HEADER_LEN + 4 + 20,
        }
    }

    /// Never empty: a response is at least its header.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Write the response, with one XOR-MAPPED-ADDRESS, into `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let n = self.len();
        let out = buf.get_mut(..n).ok_or(EmitError::TooLong)?;
        let (ip, port) = xor_addr(self.mapped.ip(), self.mapped.port(), &self.transaction);
        out[0..2].copy_from_slice(&BINDING_SUCCESS.to_be_bytes());
        out[2..4].copy_from_slice(&((n - HEADER_LEN) as u16).to_be_bytes());
        out[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out[8..20].copy_from_slice(&self.transaction);
        out[20..22].copy_from_slice(&ATTR_XOR_MAPPED_ADDRESS.to_be_bytes());
        out[22..24].copy_from_slice(&((n - HEADER_LEN - 4) as u16).to_be_bytes());
        out[24] = 0;
        out[26..28].copy_from_slice(&port.to_be_bytes());
        match ip {
            IpAddr::V4(v4) => {
                out[25] = FAMILY_V4;
                out[28..32].copy_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                out[25] = FAMILY_V6;
                out[28..44].copy_from_slice(&v6.octets());
            }
        }
        Ok(n)
    }

    /// Parse a Binding success (a client's side): the XOR-MAPPED-ADDRESS,
    /// or else a MAPPED-ADDRESS; other attributes are skipped.
    pub fn parse(d: &[u8]) -> Result<Self, StunError> {
        let (ty, transaction) = header(d)?;
        match ty {
            BINDING_SUCCESS => {}
            BINDING_ERROR => return Err(StunError::ErrorResponse),
            other => return Err(StunError::WrongType(other)),
        }
        let (mut xored, mut plain) = (None, None);
        for attr in attributes(d) {
            match attr? {
                (ATTR_XOR_MAPPED_ADDRESS, v) if xored.is_none() => xored = read_addr(v),
                (ATTR_MAPPED_ADDRESS, v) if plain.is_none() => plain = read_addr(v),
                _ => {}
            }
        }
        let (ip, port) = match (xored, plain) {
            (Some((ip, port)), _) => xor_addr(ip, port, &transaction),
            (None, Some(a)) => a,
            (None, None) => return Err(StunError::NoAddress),
        };
        Ok(BindingSuccess {
            transaction,
            mapped: socket(ip, port),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testgen;

    const TX: TransactionId = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];

    /// RFC 5769 section 2.2, the IPv4 response's XOR-MAPPED-ADDRESS value.
    #[test]
    fn xor_mapped_address_matches_rfc_5769_ipv4() {
        let r = BindingSuccess {
            transaction: TX,
            mapped: "192.0.2.1:32853".parse().unwrap(),
        };
        let mut buf = [0u8; 64];
        let n = r.emit(&mut buf).unwrap();
        assert_eq!(n, 32);
        assert_eq!(
            &buf[20..32],
            &[
                0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43
            ]
        );
        assert_eq!(BindingSuccess::parse(&buf[..n]), Ok(r));
    }

    /// RFC 5769 section 2.3, the IPv6 response's XOR-MAPPED-ADDRESS value.
    #[test]
    fn xor_mapped_address_matches_rfc_5769_ipv6() {
        let r = BindingSuccess {
            transaction: TX,
            mapped: "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                .parse()
                .unwrap(),
        };
        let mut buf = [0u8; 64];
        let n = r.emit(&mut buf).unwrap();
        assert_eq!(n, 44);
        let want = [
            0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3,
            0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
        ];
        assert_eq!(&buf[20..44], &want);
        assert_eq!(BindingSuccess::parse(&buf[..n]), Ok(r));
    }

    /// RFC 5769 section 2.1: a request with SOFTWARE, PRIORITY, ICE-CONTROLLED,
    /// USERNAME, MESSAGE-INTEGRITY and FINGERPRINT. USERNAME is
    /// comprehension-required and Parley has no credentials: refused.
    #[test]
    fn a_request_with_credentials_is_refused() {
        let mut d = [0u8; 28];
        BindingRequest { transaction: TX }.emit(&mut d).unwrap();
        d[3] = 8;
        d[20..24].copy_from_slice(&[0x00, 0x06, 0x00, 0x04]);
        d[24..28].copy_from_slice(b"evtj");
        assert_eq!(
            BindingRequest::parse(&d),
            Err(StunError::UnknownAttribute(6))
        );
    }

    #[test]
    fn a_request_roundtrips_and_optional_attributes_are_skipped() {
        let mut d = [0u8; 40];
        let n = BindingRequest { transaction: TX }.emit(&mut d).unwrap();
        assert_eq!(n, 20);
        assert!(is_stun(&d[..n]));
        assert_eq!(
            BindingRequest::parse(&d[..n]),
            Ok(BindingRequest { transaction: TX })
        );
        // SOFTWARE "abc" (padded to 4) and FINGERPRINT.
        d[3] = 16;
        d[20..28].copy_from_slice(&[0x80, 0x22, 0x00, 0x03, b'a', b'b', b'c', 0]);
        d[28..36].copy_from_slice(&[0x80, 0x28, 0x00, 0x04, 1, 2, 3, 4]);
        assert_eq!(
            BindingRequest::parse(&d[..36]),
            Ok(BindingRequest { transaction: TX })
        );
    }

    #[test]
    fn malformed_and_other_messages_are_refused() {
        let mut d = [0u8; 40];
        BindingRequest { transaction: TX }.emit(&mut d).unwrap();
        let ok = d;
        // Length field disagrees with the datagram.
        assert_eq!(BindingRequest::parse(&d[..24]), Err(StunError::Malformed));
        d[3] = 4;
        assert_eq!(BindingRequest::parse(&d[..20]), Err(StunError::Malformed));
        // Four zero octets: an attribute of type 0, which must be understood.
        assert_eq!(
            BindingRequest::parse(&d[..24]),
            Err(StunError::UnknownAttribute(0))
        );
        // Not a multiple of 4.
        d[3] = 3;
        assert_eq!(BindingRequest::parse(&d[..23]), Err(StunError::Malformed));
        // An attribute running past the end.
        d[3] = 8;
        d[20..24].copy_from_slice(&[0x80, 0x22, 0x00, 0x08]);
        assert_eq!(BindingRequest::parse(&d[..28]), Err(StunError::Malformed));
        // Another method (Allocate, 0x0003) and a response class.
        let mut d = ok;
        d[1] = 3;
        assert_eq!(
            BindingRequest::parse(&d[..20]),
            Err(StunError::WrongType(3))
        );
        d[0] = 1;
        d[1] = 1;
        assert_eq!(
            BindingRequest::parse(&d[..20]),
            Err(StunError::WrongType(0x0101))
        );
        // No cookie, a top bit set, too short.
        let mut d = ok;
        d[4] = 0;
        assert_eq!(BindingRequest::parse(&d[..20]), Err(StunError::NotStun));
        let mut d = ok;
        d[0] = 0x40;
        assert_eq!(BindingRequest::parse(&d[..20]), Err(StunError::NotStun));
        assert_eq!(BindingRequest::parse(&ok[..19]), Err(StunError::NotStun));
    }

    /// The example of docs/PROTOCOL.md's STUN section, octet for octet.
    #[test]
    fn the_protocol_doc_example_is_what_the_code_emits() {
        let req = [
            0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
            0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        ];
        assert_eq!(
            BindingRequest::parse(&req),
            Ok(BindingRequest { transaction: TX })
        );
        let mut buf = [0u8; 64];
        let n = BindingSuccess {
            transaction: TX,
            mapped: "203.0.113.10:40001".parse().unwrap(),
        }
        .emit(&mut buf)
        .unwrap();
        let mut want = [0u8; 32];
        want[..20].copy_from_slice(&req);
        want[..4].copy_from_slice(&[0x01, 0x01, 0x00, 0x0c]);
        want[20..].copy_from_slice(&[
            0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xbd, 0x53, 0xea, 0x12, 0xd5, 0x48,
        ]);
        assert_eq!(&buf[..n], &want);
    }

    #[test]
    fn no_text_message_looks_like_stun() {
        testgen::refuses_all(
            |d| !is_stun(d),
            &[
                b"HELLO 1 ....................",
                b"ID 120 and some more text here",
                b"LOOKUP 3 749c9004def162f8 bob",
                b"Message hi there, a long one",
            ],
        );
    }

    #[test]
    fn a_response_without_an_address_or_an_error_is_not_a_success() {
        let mut d = [0u8; 20];
        BindingRequest { transaction: TX }.emit(&mut d).unwrap();
        d[0] = 0x01;
        d[1] = 0x01;
        assert_eq!(BindingSuccess::parse(&d), Err(StunError::NoAddress));
        d[1] = 0x11;
        assert_eq!(BindingSuccess::parse(&d), Err(StunError::ErrorResponse));
    }

    #[test]
    fn a_plain_mapped_address_is_read_when_no_xor_one_is_there() {
        let mut d = [0u8; 32];
        BindingRequest { transaction: TX }.emit(&mut d).unwrap();
        d[0..4].copy_from_slice(&[0x01, 0x01, 0x00, 12]);
        d[20..32].copy_from_slice(&[0x00, 0x01, 0x00, 0x08, 0, 1, 0x1f, 0x90, 198, 51, 100, 7]);
        let r = BindingSuccess::parse(&d).unwrap();
        assert_eq!(r.mapped, "198.51.100.7:8080".parse().unwrap());
    }

    extern crate std;
    proptest::proptest! {
        #[test]
        fn parsing_never_panics(d in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let mut d = d;
            if d.len() >= 8 {
                d[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                d[0] &= 0x3f;
            }
            let _ = BindingRequest::parse(&d);
            let _ = BindingSuccess::parse(&d);
        }
    }
}
