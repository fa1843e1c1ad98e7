//! Valid protocol fields built from arbitrary bytes.
//!
//! proto-core has no `Arbitrary` derives (it is `no_std` and keeps its
//! dependencies to the design's), so the fuzz crate builds owned text that
//! the codec's own validators accept, and the messages borrow from it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use arbitrary::{Result, Unstructured};
use proto_core::wire::fields::is_id_byte;

/// The bytes an id may hold, in order.
pub fn id_alphabet() -> Vec<u8> {
    (0u8..=0x7f).filter(|&b| is_id_byte(b)).collect()
}

/// A valid id (1 to 32 id bytes), biased towards short ones.
pub fn id(u: &mut Unstructured<'_>) -> Result<String> {
    let alphabet = id_alphabet();
    let len = if u.ratio(1, 8)? {
        u.int_in_range(1..=32)?
    } else {
        u.int_in_range(1..=6)?
    };
    let mut s = String::with_capacity(len);
    for _ in 0..len {
        s.push(char::from(*u.choose(&alphabet)?));
    }
    Ok(s)
}

/// A valid transaction id (1 to 16 letters or digits).
pub fn txid(u: &mut Unstructured<'_>) -> Result<String> {
    const ALNUM: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let len = if u.ratio(1, 8)? {
        u.int_in_range(1..=16)?
    } else {
        u.int_in_range(1..=3)?
    };
    (0..len)
        .map(|_| u.choose(ALNUM).map(|&b| char::from(b)))
        .collect()
}

/// Any socket address; `flowinfo` only when `with_flow` (Rust's textual
/// form, used by the extended protocol, has no place for it).
pub fn addr(u: &mut Unstructured<'_>, with_flow: bool) -> Result<SocketAddr> {
    let port: u16 = u.arbitrary()?;
    Ok(if u.arbitrary()? {
        SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(u.arbitrary::<u32>()?),
            port,
        ))
    } else {
        let ip = match u.int_in_range(0u8..=3)? {
            0 => Ipv6Addr::LOCALHOST,
            1 => Ipv4Addr::from(u.arbitrary::<u32>()?).to_ipv6_mapped(),
            2 => Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u.arbitrary()?),
            _ => Ipv6Addr::from(u.arbitrary::<u128>()?),
        };
        let flow = if with_flow { u.arbitrary()? } else { 0 };
        let scope = if u.arbitrary()? { u.arbitrary()? } else { 0 };
        SocketAddr::V6(SocketAddrV6::new(ip, port, flow, scope))
    })
}

/// `a` as the extended protocol can carry it: Rust's `SocketAddr` text has
/// no flow label, so that is the one part of an address that does not
/// survive the trip (`docs`: `addr` is "as Rust's SocketAddr prints it").
pub fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => {
            SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, v6.scope_id()))
        }
        v4 => v4,
    }
}

/// Whether two addresses are the same once written in the extended form.
pub fn same_ext(a: SocketAddr, b: SocketAddr) -> bool {
    canonical(a) == canonical(b)
}
