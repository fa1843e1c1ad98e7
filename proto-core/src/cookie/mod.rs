//! Stateless address validation, in the manner of BEP 15's connection id
//! and QUIC's Retry token.
//!
//! A cookie is a keyed hash of the source address (IP and port) and the
//! current time window. The server remembers nothing per client: to check a
//! cookie it recomputes the hash. A source that echoes a valid cookie has
//! shown it receives datagrams at the address it claims, so spoofed sources
//! cannot register ids or draw large replies.
//!
//! The low 4 bits of the cookie carry the low bits of its window number, so
//! checking computes one MAC, not one per window it might belong to.
//!
//! ```
//! use proto_core::cookie::CookieJar;
//! use proto_core::time::{Instant, Millis};
//! let jar = CookieJar::new([1; 16], Millis::from_secs(120));
//! let src = "192.0.2.1:4000".parse().unwrap();
//! let c = jar.issue(Instant::from_secs(10), src);
//! assert!(jar.check(Instant::from_secs(200), src, c)); // the next window
//! assert!(!jar.check(Instant::from_secs(250), src, c)); // two windows on
//! ```

use core::hash::Hasher;
use core::net::{IpAddr, SocketAddr};

use siphasher::sip::SipHasher24;

use crate::time::{Instant, Millis};
use crate::wire::Cookie;

const WINDOW_BITS: u32 = 4;
const WINDOW_MASK: u64 = (1 << WINDOW_BITS) - 1;

/// Issues and checks cookies. Holds only its key and window length.
#[derive(Clone)]
pub struct CookieJar {
    key: (u64, u64),
    window_ms: u64,
}

impl core::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the key.
        f.debug_struct("CookieJar")
            .field("window_ms", &self.window_ms)
            .finish_non_exhaustive()
    }
}

impl CookieJar {
    /// A jar with a secret `key`; cookies live for one `window` and the next.
    pub fn new(key: [u8; 16], window: Millis) -> Self {
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        k0.copy_from_slice(&key[..8]);
        k1.copy_from_slice(&key[8..]);
        CookieJar {
            key: (u64::from_le_bytes(k0), u64::from_le_bytes(k1)),
            window_ms: window.0.max(1),
        }
    }

    fn mac(&self, window: u64, src: SocketAddr) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.key.0, self.key.1);
        h.write_u64(window);
        match src.ip() {
            IpAddr::V4(ip) => {
                h.write_u8(4);
                h.write(&ip.octets());
            }
            IpAddr::V6(ip) => {
                h.write_u8(6);
                h.write(&ip.octets());
            }
        }
        h.write_u16(src.port());
        (h.finish() & !WINDOW_MASK) | (window & WINDOW_MASK)
    }

    /// The cookie for `src` at `now`.
    pub fn issue(&self, now: Instant, src: SocketAddr) -> Cookie {
        Cookie(self.mac(now.0 / self.window_ms, src))
    }

    /// Whether `cookie` was issued to `src` in this window or the one before.
    pub fn check(&self, now: Instant, src: SocketAddr, cookie: Cookie) -> bool {
        let current = now.0 / self.window_ms;
        let window = if cookie.0 & WINDOW_MASK == current & WINDOW_MASK {
            current
        } else if current > 0 && cookie.0 & WINDOW_MASK == (current - 1) & WINDOW_MASK {
            current - 1
        } else {
            return false;
        };
        // Constant-time enough: the comparison is of two u64s.
        self.mac(window, src) == cookie.0
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::format;

    use proptest::prelude::*;

    use super::*;

    fn jar() -> CookieJar {
        CookieJar::new([7; 16], Millis::from_secs(120))
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_mac_is_pinned() {
        // Pinned values: a change to what the MAC covers, or how, must be
        // deliberate (docs/PROTOCOL.md's examples are replayed with a fixed
        // key too).
        let j = CookieJar::new(*b"0123456789abcdef", Millis::from_secs(120));
        let now = Instant::from_secs(1000);
        for (src, want) in [
            ("192.0.2.1:4000", 0x77a1_1353_b6da_dc48),
            ("127.0.0.1:9999", 0x45f6_4f64_0af0_4e78),
            ("[2001:db8::1]:443", 0xdb4c_f21f_f456_d888),
            ("[::ffff:10.0.0.1]:1", 0x2c97_7014_5010_b668),
        ] {
            assert_eq!(j.issue(now, a(src)).0, want, "{src}");
        }
    }

    #[test]
    fn a_cookie_passes_in_its_window_and_the_next_only() {
        let src = a("203.0.113.5:5000");
        // (window, issued at, [(checked at, passes)]), in milliseconds.
        #[allow(clippy::type_complexity)]
        let cases: &[(u64, u64, &[(u64, bool)])] = &[
            // 16 windows later the low bits match again; the MAC must not.
            (
                120_000,
                100_000,
                &[
                    (100_000, true),
                    (119_000, true),
                    (239_000, true),
                    (240_000, false),
                    (100_000 + 16 * 120_000, false),
                ],
            ),
            // Issued in the last millisecond of window 4, valid through
            // the last millisecond of window 5 and not a millisecond
            // longer; nor before its window began (a clock never runs
            // back, but a cookie from the next window must not pass for
            // this one).
            (
                1000,
                4999,
                &[
                    (4000, true),
                    (5000, true),
                    (5999, true),
                    (6000, false),
                    (3999, false),
                ],
            ),
            // The first window has no previous one: window 15 shares its
            // low bits with "window -1".
            (1000, 15_000, &[(0, false)]),
            (1000, 999, &[(0, true)]),
            // A zero window counts as one millisecond.
            (0, 10, &[(11, true), (12, false)]),
        ];
        for &(window, issued, checks) in cases {
            let j = CookieJar::new([7; 16], Millis(window));
            let c = j.issue(Instant(issued), src);
            for &(at, passes) in checks {
                assert_eq!(
                    j.check(Instant(at), src, c),
                    passes,
                    "{window} {issued} {at}"
                );
            }
        }
    }

    #[test]
    fn bound_to_ip_and_port() {
        let j = jar();
        let c = j.issue(Instant::from_secs(1), a("203.0.113.5:5000"));
        assert!(!j.check(Instant::from_secs(1), a("203.0.113.5:5001"), c));
        assert!(!j.check(Instant::from_secs(1), a("203.0.113.6:5000"), c));
        assert!(!j.check(Instant::from_secs(1), a("[::ffff:203.0.113.5]:5000"), c));
    }

    #[test]
    fn bound_to_the_key() {
        let src = a("[2001:db8::1]:7");
        let c = jar().issue(Instant::from_secs(1), src);
        let other = CookieJar::new([8; 16], Millis::from_secs(120));
        assert!(!other.check(Instant::from_secs(1), src, c));
    }

    #[test]
    fn forged_cookies_fail() {
        let j = jar();
        let src = a("203.0.113.5:5000");
        let now = Instant::from_secs(1);
        let real = j.issue(now, src);
        for bit in 0..64 {
            assert!(!j.check(now, src, Cookie(real.0 ^ (1 << bit))), "bit {bit}");
        }
        assert!(!j.check(now, src, Cookie(0)));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let shown = format!("{:?}", CookieJar::new([0xab; 16], Millis(5)));
        assert!(shown.contains("window_ms"));
        let half = format!("{}", u64::from_le_bytes([0xab; 8]));
        assert!(!shown.contains("key") && !shown.contains(&half), "{shown}");
    }

    fn sock() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
            (any::<[u16; 8]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        ]
    }

    proptest! {
        /// A cookie passes exactly in the window it was issued in and the
        /// next, and only for the address it was issued to.
        #[test]
        fn valid_exactly_for_its_address_and_two_windows(
            key in any::<[u8; 16]>(),
            window in 1u64..1_000_000,
            issued in 0u64..1 << 40,
            later in 0u64..4_000_000,
            src in sock(),
            other in sock(),
        ) {
            let j = CookieJar::new(key, Millis(window));
            let c = j.issue(Instant(issued), src);
            let now = issued + later;
            let age = now / window - issued / window;
            prop_assert_eq!(j.check(Instant(now), src, c), age <= 1);
            if other != src {
                prop_assert!(!j.check(Instant(issued), other, c));
            }
        }
    }
}
