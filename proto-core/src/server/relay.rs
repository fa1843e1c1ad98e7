//! Relay sessions: the server forwards opaque frames between two peers
//! that no direct path joins (TURN's allocations and channels, RFC 8656,
//! cut down to what two Parley peers need).
//!
//! Rules, each with a test below:
//! - **Only two registered peers, both asking.** A session pairs `a` and
//!   `b` only when each has sent `RELAY` naming the other, with its owner
//!   token and a cookie bound to its source: the server introduces them
//!   to each other by pairing them, and nobody can relay to a peer that
//!   did not ask.
//! - **Only proven addresses.** The two ends are the sources of those
//!   cookie-checked requests, never an address from a payload; a frame is
//!   forwarded only from one proven end to the other, and from nowhere
//!   else.
//! - **Never more out than in.** A frame is forwarded unchanged, once:
//!   each session counts the octets it took in and sent out.
//! - **Limits.** At most [`PER_ID`] sessions per id and [`PER_SOURCE`]
//!   per source address (IPv4 address, IPv6 /64), [`SESSIONS`] in all;
//!   each session [`SESSION_BYTES_PER_SEC`] and lives [`IDLE`] past the
//!   last `RELAY` from either end, [`MAX_LIFE`] at most; all sessions
//!   together `Config::relay_bytes_per_sec` (0 turns relaying off). A
//!   `QUIT` ends the sessions of the id that signs off.

use core::hash::Hasher;
use core::net::{IpAddr, SocketAddr};

use siphasher::sip128::{Hasher128, SipHasher24};

use super::{Outbox, Server, send_bytes};
use crate::MAX_DATAGRAM;
use crate::registry::Owner;
use crate::time::{Instant, Millis};
use crate::wire::relay::{Frame, RelayReply, RelayRequest};
use crate::wire::{ErrorCode, Id};

/// Sessions the server holds, pending or paired. The table lives in the
/// server's own struct (about 140 octets a session), not in the storage
/// handed in, so it is kept small; growing it with the capacity would
/// take a slice in `Storage`.
pub const SESSIONS: usize = 64;
/// Sessions one id may take part in.
pub const PER_ID: usize = 4;
/// Sessions whose ends are at one source (IPv4 address, IPv6 /64).
pub const PER_SOURCE: usize = 16;
/// A session ends this long after the last `RELAY` from either end.
pub const IDLE: Millis = Millis(60_000);
/// A session ends this long after it began, however it is refreshed.
pub const MAX_LIFE: Millis = Millis(3_600_000);
/// Octets a second one session may forward (and twice that at once).
pub const SESSION_BYTES_PER_SEC: u64 = 512 * 1024;

/// A byte-counting token bucket.
#[derive(Clone, Copy, Debug)]
struct Bytes {
    per_sec: u64,
    tokens: u64,
    last: Instant,
}

impl Bytes {
    fn new(per_sec: u64, now: Instant) -> Self {
        Bytes {
            per_sec,
            tokens: per_sec * 2,
            last: now,
        }
    }

    fn take(&mut self, now: Instant, n: u64) -> bool {
        let refill = now.since(self.last).saturating_mul(self.per_sec) / 1000;
        if refill > 0 {
            self.tokens = self.tokens.saturating_add(refill).min(self.per_sec * 2);
            self.last = now;
        }
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Session {
    channel: u64,
    /// The ends' ids, as keyed hashes ([`Relay::id_key`]): the table is
    /// part of the server's own struct and stays small.
    a: u64,
    b: u64,
    a_addr: Option<SocketAddr>,
    b_addr: Option<SocketAddr>,
    created: Instant,
    expires: Instant,
    bucket: Bytes,
    bytes_in: u64,
    bytes_out: u64,
}

/// The relay's state: a fixed table of sessions.
pub(super) struct Relay {
    sessions: [Option<Session>; SESSIONS],
    key: [u8; 16],
    serial: u64,
    global: Option<Bytes>,
}

/// A source's share of the per-source limit: IPv4 address or IPv6 /64.
fn source(ip: IpAddr) -> [u8; 8] {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            [0, 0, 0, 0, o[0], o[1], o[2], o[3]]
        }
        IpAddr::V6(v6) => {
            let mut p = [0u8; 8];
            p.copy_from_slice(&v6.octets()[..8]);
            p[0] |= 0x80;
            p
        }
    }
}

impl Relay {
    pub(super) fn new(entropy: &[u8; 32], bytes_per_sec: u32) -> Self {
        let mut h = SipHasher24::new_with_key(&[0x5e; 16]);
        h.write(entropy);
        h.write(b"parley relay channel");
        Relay {
            sessions: [None; SESSIONS],
            key: h.finish128().as_bytes(),
            serial: 0,
            global: (bytes_per_sec > 0).then(|| Bytes::new(u64::from(bytes_per_sec), Instant(0))),
        }
    }

    /// A fresh, unguessable channel for slot `i`: the slot in the top 16
    /// bits (so a frame finds its session at once), a keyed PRF of a
    /// counter below.
    fn channel(&mut self, i: usize) -> u64 {
        self.serial += 1;
        let mut h = siphasher::sip::SipHasher24::new_with_key(&self.key);
        h.write_u64(self.serial);
        ((i as u64) << 48) | (h.finish() & 0xffff_ffff_ffff)
    }

    fn live(&mut self, i: usize, now: Instant) -> Option<&mut Session> {
        let s = self.sessions.get_mut(i)?;
        if s.is_some_and(|s| s.expires <= now) {
            *s = None;
        }
        s.as_mut()
    }

    /// Where a frame from `src` goes: its session's slot, the session,
    /// and the other end; `None` if the frame is malformed, names no live
    /// session, or does not come from a proven end whose peer is proven.
    fn route(
        &mut self,
        now: Instant,
        src: SocketAddr,
        d: &[u8],
    ) -> Option<(usize, &mut Session, SocketAddr)> {
        let frame = Frame::parse(d).ok()?;
        let i = (frame.channel >> 48) as usize;
        let s = self.live(i, now).filter(|s| s.channel == frame.channel)?;
        let dst = match (s.a_addr, s.b_addr) {
            (Some(a), Some(b)) if src == a => b,
            (Some(a), Some(b)) if src == b => a,
            _ => return None,
        };
        Some((i, s, dst))
    }

    /// A keyed 64-bit hash standing for an id in the table.
    fn id_key(&self, id: Id<'_>) -> u64 {
        let mut h = siphasher::sip::SipHasher24::new_with_key(&self.key);
        h.write(id.as_bytes());
        h.finish()
    }

    /// End every session `id` takes part in (it signed off: its relays
    /// lead nowhere, and should not hold places in the limits for a
    /// minute more).
    pub(super) fn end_for(&mut self, id: Id<'_>) {
        let k = self.id_key(id);
        for s in self.sessions.iter_mut() {
            if s.is_some_and(|x| x.a == k || x.b == k) {
                *s = None;
            }
        }
    }

    /// Sessions live now.
    pub(super) fn count(&mut self, now: Instant) -> usize {
        (0..SESSIONS)
            .filter(|&i| self.live(i, now).is_some())
            .count()
    }
}

impl Server<'_> {
    /// `RELAY tx cookie id token peer` (see the module's rules).
    pub(super) fn handle_relay_request(
        &mut self,
        now: Instant,
        src: SocketAddr,
        d: &[u8],
        out: &mut impl Outbox,
    ) {
        self.stats.relay_requests += 1;
        let unvalidated = d.len();
        let req = match RelayRequest::parse(d) {
            Ok(r) => r,
            Err(_) => {
                let tx = crate::wire::classify::tx(d);
                self.send_error(now, out, src, tx, ErrorCode::Malformed, unvalidated);
                return;
            }
        };
        if !req
            .h
            .cookie
            .is_some_and(|c| self.cookies.check(now, src, c))
        {
            self.send_error(
                now,
                out,
                src,
                Some(req.h.tx),
                ErrorCode::BadCookie,
                unvalidated,
            );
            return;
        }
        match self.relay_pair(now, src, &req) {
            Ok((channel, ready)) => {
                let reply = RelayReply {
                    tx: req.h.tx,
                    peer: req.peer,
                    channel,
                    ready,
                };
                let mut buf = [0u8; MAX_DATAGRAM];
                if let Ok(n) = reply.emit(&mut buf) {
                    send_bytes(out, &mut self.stats, src, &buf[..n]);
                }
            }
            Err(code) => self.send_error(now, out, src, Some(req.h.tx), code, MAX_DATAGRAM),
        }
    }

    /// Join or open the session of `req.id` and `req.peer`; its channel and
    /// whether both ends are proven.
    fn relay_pair(
        &mut self,
        now: Instant,
        src: SocketAddr,
        req: &RelayRequest<'_>,
    ) -> Result<(u64, bool), ErrorCode> {
        let me = self.find_live(now, req.id).ok_or(ErrorCode::NoSuchId)?;
        match self.reg.get(me).owner {
            Owner::Token(t) if t == req.token => {}
            _ => return Err(ErrorCode::NotOwner),
        }
        if req.peer == req.id || self.find_live(now, req.peer).is_none() {
            return Err(ErrorCode::NoSuchId);
        }
        if self.relay.global.is_none() {
            return Err(ErrorCode::Forbidden);
        }
        // The cookie proved `src`; the registration follows it, as INTRO's does.
        self.rebind(me, src)?;
        let (me_id, peer_id) = (self.relay.id_key(req.id), self.relay.id_key(req.peer));
        let refresh = |s: &mut Session| {
            s.expires = (now + IDLE).min(s.created + MAX_LIFE);
        };
        let mut free = None;
        let (mut per_id, mut per_src) = (0, 0);
        for i in 0..SESSIONS {
            let Some(s) = self.relay.live(i, now) else {
                free.get_or_insert(i);
                continue;
            };
            if s.a == me_id && s.b == peer_id {
                s.a_addr = Some(src);
                refresh(s);
                return Ok((s.channel, s.b_addr.is_some()));
            }
            if s.a == peer_id && s.b == me_id {
                if s.b_addr.is_none() {
                    self.stats.relay_sessions += 1;
                }
                s.b_addr = Some(src);
                refresh(s);
                return Ok((s.channel, s.a_addr.is_some()));
            }
            if s.a == me_id || s.b == me_id {
                per_id += 1;
            }
            let here = source(src.ip());
            if [s.a_addr, s.b_addr]
                .iter()
                .flatten()
                .any(|a| source(a.ip()) == here)
            {
                per_src += 1;
            }
        }
        if self.cfg.limits && (per_id >= PER_ID || per_src >= PER_SOURCE) {
            return Err(ErrorCode::OverQuota);
        }
        let i = free.ok_or(ErrorCode::TableFull)?;
        let channel = self.relay.channel(i);
        self.relay.sessions[i] = Some(Session {
            channel,
            a: me_id,
            b: peer_id,
            a_addr: Some(src),
            b_addr: None,
            created: now,
            expires: now + IDLE,
            bucket: Bytes::new(SESSION_BYTES_PER_SEC, now),
            bytes_in: 0,
            bytes_out: 0,
        });
        Ok((channel, false))
    }

    /// A frame: forward it, unchanged, to the other end of its session.
    pub(super) fn handle_relay_frame(
        &mut self,
        now: Instant,
        src: SocketAddr,
        d: &[u8],
        out: &mut impl Outbox,
    ) {
        let limits = self.cfg.limits;
        let n = d.len() as u64;
        let Some((i, s, dst)) = self.relay.route(now, src, d) else {
            self.stats.drop_relay += 1;
            return;
        };
        if limits && !s.bucket.take(now, n) {
            self.stats.drop_relay_budget += 1;
            return;
        }
        s.bytes_in += n;
        if limits && !self.relay.global.as_mut().is_some_and(|g| g.take(now, n)) {
            self.stats.drop_relay_budget += 1;
            return;
        }
        if send_bytes(out, &mut self.stats, dst, d) {
            if let Some(s) = self.relay.live(i, now) {
                s.bytes_out += n;
            }
            self.stats.relay_forwarded += 1;
        }
    }

    /// Relay sessions live at `now`, paired or waiting for the peer.
    pub fn relay_sessions(&mut self, now: Instant) -> usize {
        self.relay.count(now)
    }

    /// Check that no session ever sent more octets than it took in (for
    /// tests and fuzzing).
    pub fn audit_relay(&self) -> Result<(), &'static str> {
        for s in self.relay.sessions.iter().flatten() {
            if s.bytes_out > s.bytes_in {
                return Err("a relay session sent more octets than it received");
            }
            if s.channel >> 48 >= SESSIONS as u64 {
                return Err("a relay channel names no slot");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::format;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    use core::net::SocketAddr;

    use super::{PER_ID, SESSIONS};
    use crate::server::Config;
    use crate::server::testing::{Harness, addr, configured};
    use crate::wire::relay::{Frame, RelayReply};

    impl Harness {
        fn relay(&mut self, from: &str, c: &str, id: &str, t: &str, peer: &str) -> String {
            self.text(from, &format!("RELAY x {c} {id} {t} {peer}"))
        }

        fn frame(
            &mut self,
            from: &str,
            channel: u64,
            payload: &[u8],
        ) -> Vec<(SocketAddr, Vec<u8>)> {
            let mut buf = [0u8; 1300];
            let n = Frame { channel, payload }.emit(&mut buf).unwrap();
            self.exchange(from, &buf[..n])
        }
    }

    fn channel(r: &str) -> (u64, bool) {
        let r = RelayReply::parse(r.as_bytes()).unwrap_or_else(|e| panic!("{r}: {e}"));
        (r.channel, r.ready)
    }

    const ALICE: &str = "203.0.113.10:40001";
    const BOB: &str = "198.51.100.20:51000";
    const MALLORY: &str = "192.0.2.66:6666";

    /// alice and bob paired: (harness, channel).
    fn paired() -> (Harness, u64) {
        let mut h = Harness::new(1024, Config::default());
        let (ca, ta) = h.register_with(ALICE, "alice", "");
        let (cb, tb) = h.register_with(BOB, "bob", "");
        let (ch, ready) = channel(&h.relay(ALICE, &ca, "alice", &ta, "bob"));
        assert!(!ready);
        let (ch2, ready) = channel(&h.relay(BOB, &cb, "bob", &tb, "alice"));
        assert_eq!((ch2, ready), (ch, true));
        (h, ch)
    }

    #[test]
    fn a_paired_session_forwards_frames_both_ways_unchanged() {
        let (mut h, ch) = paired();
        let r = h.frame(ALICE, ch, b"\x01secret to bob");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, addr(BOB));
        assert_eq!(Frame::parse(&r[0].1).unwrap().payload, b"\x01secret to bob");
        let r = h.frame(BOB, ch, b"back");
        assert_eq!(
            (r[0].0, Frame::parse(&r[0].1).unwrap().payload),
            (addr(ALICE), &b"back"[..])
        );
        assert_eq!(h.server.stats().relay_forwarded, 2);
        assert_eq!(h.server.stats().relay_sessions, 1);
        h.server.audit_relay().unwrap();
    }

    #[test]
    fn nothing_is_forwarded_before_the_peer_asks() {
        let mut h = Harness::new(1024, Config::default());
        let (ca, ta) = h.register_with(ALICE, "alice", "");
        h.register_with(BOB, "bob", "");
        let (ch, _) = channel(&h.relay(ALICE, &ca, "alice", &ta, "bob"));
        // bob is registered, but never asked: alice cannot reach him.
        assert!(h.frame(ALICE, ch, b"unwanted").is_empty());
        assert_eq!(h.server.stats().drop_relay, 1);
    }

    #[test]
    fn frames_from_unproven_sources_or_unknown_channels_are_dropped() {
        let (mut h, ch) = paired();
        // A third address that knows the channel: nothing.
        assert!(h.frame(MALLORY, ch, b"spoof").is_empty());
        // alice's IP, another port: not the proven address.
        assert!(h.frame("203.0.113.10:40002", ch, b"x").is_empty());
        // A channel of the right slot with another tag, and one of no slot.
        assert!(h.frame(ALICE, ch ^ 1, b"x").is_empty());
        assert!(h.frame(ALICE, u64::MAX, b"x").is_empty());
        assert_eq!(h.server.stats().drop_relay, 4);
        assert_eq!(h.server.stats().relay_forwarded, 0);
    }

    #[test]
    fn a_relay_needs_the_token_the_cookie_and_a_registered_peer() {
        let mut h = Harness::new(1024, Config::default());
        let (ca, ta) = h.register_with(ALICE, "alice", "");
        h.register_with(BOB, "bob", "");
        let bad_token = format!("{:016x}", u64::from_str_radix(&ta, 16).unwrap() ^ 1);
        assert_eq!(
            h.relay(ALICE, &ca, "alice", &bad_token, "bob"),
            "ERR x not-owner"
        );
        assert_eq!(
            h.relay(ALICE, &ca, "alice", &ta, "carol"),
            "ERR x no-such-id"
        );
        assert_eq!(
            h.relay(ALICE, &ca, "alice", &ta, "alice"),
            "ERR x no-such-id"
        );
        // mallory replays alice's cookie from its own address.
        let r = h.exchange(MALLORY, format!("RELAY x {ca} alice {ta} bob").as_bytes());
        assert!(
            r.iter().all(|(_, d)| d.starts_with(b"ERR x bad-cookie")),
            "{r:?}"
        );
        assert_eq!(h.server.relay_sessions(h.now), 0);
    }

    #[test]
    fn the_relay_never_sends_to_an_address_a_payload_names() {
        let (mut h, ch) = paired();
        let r = h.frame(ALICE, ch, MALLORY.as_bytes());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, addr(BOB));
        // Every datagram the server sent went to alice or bob.
        h.server.audit_relay().unwrap();
    }

    #[test]
    fn no_more_octets_leave_than_arrive() {
        let (mut h, ch) = paired();
        let mut sent_in = 0;
        let mut sent_out = 0;
        for len in [0usize, 1, 100, 1190] {
            let p = vec![7u8; len];
            sent_in += 10 + len;
            for (_, d) in h.frame(ALICE, ch, &p) {
                sent_out += d.len();
            }
        }
        assert_eq!(sent_out, sent_in);
        h.server.audit_relay().unwrap();
    }

    #[test]
    fn per_id_limit_holds() {
        let mut h = Harness::new(1024, Config::default());
        let (ca, ta) = h.register_with(ALICE, "alice", "");
        for i in 0..PER_ID + 2 {
            let peer = format!("p{i}");
            h.register(&format!("198.51.100.{i}:4000"), &peer);
            let r = h.relay(ALICE, &ca, "alice", &ta, &peer);
            if i < PER_ID {
                assert!(r.starts_with("RELAYD"), "{r}");
            } else {
                assert_eq!(r, "ERR x over-quota");
            }
        }
    }

    #[test]
    fn per_source_and_table_limits_hold() {
        let mut h = Harness::new(1024, configured(|c| c.quota_per_source = 64));
        // Many ids at one source address: the source's share runs out.
        let src = MALLORY;
        let c = h.cookie(src);
        let mut ok = 0;
        for i in 0..40 {
            let (_, t) = h.register_with(src, &format!("m{i}"), "");
            if i == 0 {
                continue;
            }
            // Refusals are `over-quota`, as far as the error budget sends them.
            let r = h.exchange(src, format!("RELAY x {c} m{i} {t} m0").as_bytes());
            match r.first() {
                Some((_, d)) if d.starts_with(b"RELAYD") => ok += 1,
                Some((_, d)) => assert_eq!(d.as_slice(), b"ERR x over-quota"),
                None => {}
            }
        }
        assert_eq!(ok, super::PER_SOURCE);
        assert!(h.server.relay_sessions(h.now) <= SESSIONS);
    }

    #[test]
    fn a_session_is_limited_in_rate_and_all_sessions_in_total() {
        let (mut h, ch) = paired();
        let p = vec![0u8; 1190];
        let mut passed = 0;
        for _ in 0..2000 {
            passed += h.frame(ALICE, ch, &p).len();
        }
        // A burst of twice the per-second budget, then nothing in the same ms.
        let burst = (2 * super::SESSION_BYTES_PER_SEC) as usize / 1200;
        assert!(passed <= burst + 1, "{passed} > {burst}");
        assert!(h.server.stats().drop_relay_budget > 0);
        // The global budget binds before the session's.
        let mut h2 = Harness::new(1024, configured(|c| c.relay_bytes_per_sec = 12_000));
        let (ca, ta) = h2.register_with(ALICE, "alice", "");
        let (cb, tb) = h2.register_with(BOB, "bob", "");
        let (ch, _) = channel(&h2.relay(ALICE, &ca, "alice", &ta, "bob"));
        channel(&h2.relay(BOB, &cb, "bob", &tb, "alice"));
        let passed: usize = (0..100).map(|_| h2.frame(ALICE, ch, &p).len()).sum();
        assert_eq!(passed, 24_000 / 1200);
    }

    #[test]
    fn a_session_ends_when_nobody_refreshes_it() {
        let (mut h, ch) = paired();
        h.advance(super::IDLE.0 + 1);
        assert!(h.frame(ALICE, ch, b"late").is_empty());
        assert_eq!(h.server.relay_sessions(h.now), 0);
    }

    #[test]
    fn quit_ends_the_sessions_of_the_id_and_frees_its_places() {
        let mut h = Harness::new(1024, Config::default());
        let (ca, ta) = h.register_with(ALICE, "alice", "");
        let (cb, tb) = h.register_with(BOB, "bob", "");
        let (cc, tc) = h.register_with(MALLORY, "carol", "");
        h.relay(ALICE, &ca, "alice", &ta, "bob");
        let (ch, _) = channel(&h.relay(BOB, &cb, "bob", &tb, "alice"));
        h.relay(MALLORY, &cc, "carol", &tc, "bob");
        let (cb2, _) = channel(&h.relay(BOB, &cb, "bob", &tb, "carol"));
        assert_eq!(h.server.relay.count(h.now), 2);
        assert_eq!(h.text(BOB, &format!("QUIT q {cb} bob {tb}")), "BYE q bob");
        assert_eq!(
            h.server.relay.count(h.now),
            0,
            "bob's sessions end with him"
        );
        assert!(h.frame(ALICE, ch, b"x").is_empty());
        assert!(h.frame(MALLORY, cb2, b"x").is_empty());
        // alice and carol's own sessions are untouched.
        h.relay(ALICE, &ca, "alice", &ta, "carol");
        let (ch3, ready) = channel(&h.relay(MALLORY, &cc, "carol", &tc, "alice"));
        assert!(ready);
        assert_eq!(
            h.text(ALICE, &format!("QUIT q {ca} alice {ta}")),
            "BYE q alice"
        );
        assert!(h.frame(MALLORY, ch3, b"x").is_empty());
        h.server.audit_relay().unwrap();
    }

    #[test]
    fn relay_off_refuses_sessions() {
        let mut h = Harness::new(1024, configured(|c| c.relay_bytes_per_sec = 0));
        let (ca, ta) = h.register_with(ALICE, "alice", "");
        h.register_with(BOB, "bob", "");
        assert_eq!(h.relay(ALICE, &ca, "alice", &ta, "bob"), "ERR x forbidden");
    }
}
