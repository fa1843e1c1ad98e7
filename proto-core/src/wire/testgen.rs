//! What the codec's tests share: proptest strategies for the fields, the
//! round-trip properties of every message family, and the check that a
//! table of byte strings is refused.
//!
//! The messages borrow their text from the datagram, so the strategies make
//! owned strings and each test builds the borrowed message from them.

extern crate std;

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use proptest::prelude::*;

/// Check that `refused` holds for every one of `cases`; a failure names
/// the case that got through.
pub fn refuses_all(refused: impl Fn(&[u8]) -> bool, cases: &[&[u8]]) {
    for case in cases {
        assert!(
            refused(case),
            "not refused: {:?}",
            std::string::String::from_utf8_lossy(case)
        );
    }
}

/// A valid id: 1 to 32 bytes of the id alphabet.
pub fn id() -> impl Strategy<Value = std::string::String> {
    "[!#-&(-\\[\\]-~]{1,32}"
}

/// A valid transaction id.
pub fn txid() -> impl Strategy<Value = std::string::String> {
    "[a-zA-Z0-9]{1,16}"
}

/// Any IPv4 or IPv6 socket address that the extended protocol can carry.
///
/// Rust's `SocketAddr` text has no flow info, so IPv6 addresses have none.
pub fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))),
        (
            any::<u128>(),
            any::<u16>(),
            prop_oneof![Just(0u32), any::<u32>()]
        )
            .prop_map(|(ip, port, scope)| {
                SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, scope))
            }),
    ]
}

/// Any address a seed client's `recvfrom` can return, flow info included.
pub fn py_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))),
        (any::<u128>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
            |(ip, port, flow, scope)| {
                SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope))
            }
        ),
    ]
}

/// The round-trip properties every text message family keeps, as
/// proptests for `$msg` built by `$build` from values of `$parts`:
/// parsing inverts emitting; whatever parses re-emits to an equal
/// message; a valid message mangled in one byte, or cut short, never
/// makes the parser panic. The test module must have an `emitted`
/// function for `$msg`. A macro, as proptests are test functions.
macro_rules! round_trip_properties {
    ($msg:ident, $parts:expr, $build:expr) => {
        proptest! {
            #[test]
            fn parse_inverts_emit(p in $parts) {
                let m = $build(&p);
                let wire = emitted(&m);
                prop_assert!(wire.len() <= MAX_DATAGRAM);
                prop_assert_eq!($msg::parse(&wire), Ok(m));
            }

            #[test]
            fn no_byte_string_makes_parse_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
                if let Ok(m) = $msg::parse(&bytes) {
                    let wire = emitted(&m);
                    prop_assert_eq!($msg::parse(&wire), Ok(m));
                }
            }

            #[test]
            fn mangled_valid_messages_never_panic(p in $parts, at in any::<usize>(), byte in any::<u8>()) {
                let mut wire = emitted(&$build(&p));
                let i = at % wire.len();
                wire[i] = byte;
                let _ = $msg::parse(&wire);
                let _ = $msg::parse(&wire[..i]);
            }
        }
    };
}

pub(crate) use round_trip_properties;
