//! STUN Binding on the server's port: any ICE agent, and `parley
//! netcheck`, can ask the server where it sees them.
//!
//! Safety rules, each with a test below:
//! - **Bounded amplification.** The answer to a request of at least 20
//!   octets is 32 octets (IPv4) or 44 (IPv6): at most 2.2 times the
//!   request, one answer per request, never more. Standard clients send
//!   20-octet requests, so the text protocol's rule of no answer longer
//!   than the request cannot hold here; instead the ratio is bounded and
//!   the rate is too:
//! - **Charged to the source's rate limit** (the same one as text
//!   requests), so a spoofed flood toward one victim gets at most the
//!   source's rate of answers, 44 octets each;
//! - **and to a global budget**, `Config::stun_per_sec` answers a second
//!   for all sources together (0 turns STUN off), so many spoofed sources
//!   together reflect at most that many times 44 octets a second.
//! - **Only well-formed Binding requests** are answered: any other method
//!   or class, a malformed message, or one with an attribute that must be
//!   understood gets nothing (not even an error response, which would be
//!   a reflection too).
//! - **Never to port 0**, where nothing listens and a reply only feeds
//!   ICMP back.

use core::net::SocketAddr;

use crate::limit::TokenBucket;
use crate::time::Instant;
use crate::wire::stun::{BindingRequest, BindingSuccess, MAX_SUCCESS_LEN};

use super::{Outbox, Server, send_bytes};

/// The global STUN budget.
pub(super) struct StunBudget {
    bucket: Option<TokenBucket>,
}

impl StunBudget {
    pub(super) fn new(per_sec: u32) -> Self {
        StunBudget {
            bucket: (per_sec > 0).then(|| TokenBucket::new(per_sec, per_sec)),
        }
    }
}

impl Server<'_> {
    /// Handle one datagram that arrived on a port that serves only STUN
    /// (`parley netcheck` asks two ports to see whether a NAT keeps one
    /// mapping for both). Text requests there get nothing; the datagram
    /// counts against its source's rate like any other.
    pub fn handle_stun_port(
        &mut self,
        now: Instant,
        src: SocketAddr,
        datagram: &[u8],
        out: &mut impl Outbox,
    ) {
        if self.arrived(datagram) == crate::wire::classify::Family::Stun {
            self.handle_stun(now, src, datagram, out);
        } else {
            self.stats.drop_stun += 1;
        }
    }

    /// Answer a datagram with a STUN header (see the module's rules).
    pub(super) fn handle_stun(
        &mut self,
        now: Instant,
        src: SocketAddr,
        datagram: &[u8],
        out: &mut impl Outbox,
    ) {
        if !self.charge_uncookied(now, src) {
            return;
        }
        let Ok(req) = BindingRequest::parse(datagram) else {
            self.stats.drop_stun += 1;
            return;
        };
        if src.port() == 0 {
            self.stats.drop_stun += 1;
            return;
        }
        let Some(bucket) = &mut self.stun.bucket else {
            self.stats.drop_stun += 1;
            return;
        };
        if self.cfg.limits && !bucket.take(now) {
            self.stats.drop_stun_budget += 1;
            return;
        }
        // A client on a dual-stack socket is an IPv4 client: answer with
        // the address it knows itself by.
        let mapped = SocketAddr::new(src.ip().to_canonical(), src.port());
        let reply = BindingSuccess {
            transaction: req.transaction,
            mapped,
        };
        let mut buf = [0u8; MAX_SUCCESS_LEN];
        let Ok(n) = reply.emit(&mut buf) else {
            return;
        };
        if send_bytes(out, &mut self.stats, src, &buf[..n]) {
            self.stats.stun_answered += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use core::net::SocketAddr;

    use crate::server::Config;
    use crate::server::testing::{Harness, addr, configured, rate_limited};
    use crate::wire::stun::{BindingRequest, BindingSuccess};

    const TX: [u8; 12] = *b"parley-stun!";

    fn request() -> [u8; 20] {
        let mut d = [0u8; 20];
        BindingRequest { transaction: TX }.emit(&mut d).unwrap();
        d
    }

    /// A Binding request from `src`: where the answer went and its
    /// mapped address, if it was answered.
    fn ask(h: &mut Harness, src: &str) -> Option<(SocketAddr, SocketAddr)> {
        let (to, d) = h.exchange(src, &request()).pop()?;
        Some((to, BindingSuccess::parse(&d).unwrap().mapped))
    }

    #[test]
    fn a_binding_request_gets_the_source_address_back() {
        let mut h = Harness::new(1024, Config::default());
        for src in ["203.0.113.10:40001", "[2001:db8::7]:5000"] {
            let (to, d) = h.exchange(src, &request()).pop().expect("an answer");
            assert_eq!(to, addr(src));
            let r = BindingSuccess::parse(&d).unwrap();
            assert_eq!((r.transaction, r.mapped), (TX, addr(src)));
            // The amplification bound the module states.
            assert!(d.len() <= 44 && d.len() * 10 <= request().len() * 22);
        }
        // A v4-mapped source (dual-stack socket) is told its IPv4 address.
        let (_, d) = h
            .exchange("[::ffff:198.51.100.9]:7", &request())
            .pop()
            .unwrap();
        assert_eq!(
            BindingSuccess::parse(&d).unwrap().mapped,
            addr("198.51.100.9:7")
        );
        assert_eq!(d.len(), 32);
        assert_eq!(h.server.stats().stun_answered, 3);
    }

    #[test]
    fn anything_but_a_clean_binding_request_gets_nothing() {
        let mut h = Harness::new(1024, Config::default());
        let mut other_method = request();
        other_method[1] = 0x03;
        let mut response = request();
        response[0] = 0x01;
        response[1] = 0x01;
        let mut bad_len = request();
        bad_len[3] = 4;
        let mut with_username = [0u8; 28];
        with_username[..20].copy_from_slice(&request());
        with_username[3] = 8;
        with_username[20..24].copy_from_slice(&[0x00, 0x06, 0x00, 0x04]);
        for d in [&other_method[..], &response, &bad_len, &with_username] {
            let sent = h.exchange("203.0.113.10:40001", d);
            assert!(sent.is_empty(), "{sent:?}");
        }
        assert_eq!(h.server.stats().drop_stun, 4);
        assert_eq!(h.server.stats().stun_answered, 0);
    }

    #[test]
    fn port_zero_is_never_answered() {
        let mut h = Harness::new(1024, Config::default());
        assert_eq!(ask(&mut h, "203.0.113.10:0"), None);
        assert_eq!(h.server.stats().drop_stun, 1);
    }

    #[test]
    fn stun_is_charged_to_the_source_rate() {
        let mut h = Harness::new(1024, rate_limited(1, 3));
        let src = "203.0.113.10:40001";
        let answered = (0..10).filter_map(|_| ask(&mut h, src)).count();
        // Only the burst is answered, and nothing (not a text ERR) beyond it.
        assert_eq!(answered, 3);
        assert_eq!(h.server.stats().drop_rate_limited, 7);
        // Text from the same source is limited too: STUN spent its budget.
        h.send(src, "LOOKUP 1 - bob....");
        assert_eq!(h.server.stats().drop_rate_limited, 8);
    }

    #[test]
    fn all_sources_together_stay_within_the_global_budget() {
        let mut h = Harness::new(1024, configured(|c| c.stun_per_sec = 5));
        let answered = |h: &mut Harness, net: &str| {
            (0..40)
                .filter_map(|i| ask(h, &std::format!("{net}.{i}:4000")))
                .count()
        };
        assert_eq!(answered(&mut h, "203.0.113"), 5);
        assert_eq!(h.server.stats().drop_stun_budget, 35);
        // A second later, five more.
        h.advance(1000);
        assert_eq!(answered(&mut h, "198.51.100"), 5);
    }

    #[test]
    fn a_zero_budget_turns_stun_off() {
        let mut h = Harness::new(1024, configured(|c| c.stun_per_sec = 0));
        assert_eq!(ask(&mut h, "203.0.113.10:40001"), None);
    }

    #[test]
    fn the_stun_port_answers_stun_only() {
        let mut h = Harness::new(1024, Config::default());
        let src = "203.0.113.10:40001";
        let mut d = [b'.'; 128];
        d[..8].copy_from_slice(b"HELLO 1 ");
        let port = |h: &mut Harness, d: &[u8]| {
            h.server.handle_stun_port(h.now, addr(src), d, &mut *h.out);
            h.take_bytes()
        };
        assert!(
            port(&mut h, &d).is_empty(),
            "a text request on the STUN port got an answer"
        );
        let (to, r) = port(&mut h, &request()).pop().unwrap();
        assert_eq!(to, addr(src));
        assert_eq!(BindingSuccess::parse(&r).unwrap().mapped, addr(src));
        assert_eq!(h.server.stats().datagrams_in, 2);
    }
}
