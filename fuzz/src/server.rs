//! The `server` target: the whole sans-IO server under arbitrary traffic.
//!
//! An input is a configuration (small leases, a table of 1 to 12 slots,
//! strict or not, limits on or off, a small fan-out budget) followed by up
//! to 200 steps. A step moves the clock forward, then either ticks or
//! delivers one datagram from one of a few IPv4 and IPv6 sources. Datagrams
//! are mostly well-formed requests built from templates, with the cookies
//! and tokens the sources were really given (or stale, foreign or random
//! ones), plus mutated templates and raw bytes.
//!
//! After every step the harness checks, against a model it keeps of what
//! the server may and must hold:
//!
//! - `Server::audit` passes and occupancy stays within capacity;
//! - every datagram sent parses, fits 1200 bytes, and a seed `List` fits
//!   1024 bytes;
//! - no expired registration is served (`AT`, `Peer`, `ALIVE`, `PAGE`,
//!   `List`), and no live one is lost (a `NoPeer` or `no-such-id` for an id
//!   the model knows is registered);
//! - an id is served at an address that may own it, a token-owned id is
//!   never taken over or renewed without its token, no id is listed twice;
//! - a registration's key never changes while it lives: a `REG` that
//!   carries another key is never answered `REGD`, `key-taken` answers only
//!   a `REG` that brings a key other than the live one, and `AT` and
//!   `PUNCH` report the key the registration was made with (`seed` never
//!   for a token-owned id);
//! - a cookie not issued to the source, or stale, is refused, and a fresh
//!   one is accepted;
//! - fan-out never exceeds `fanout_per_sec` (a token bucket with a burst of
//!   one second);
//! - in strict mode no seed verb has any effect or reply;
//! - an `ERR` reply, to any verb, or a seed refusal leaves every live
//!   registration exactly as it was (address, lease, owner, subscription);
//! - `ID2 ` from an address that holds no seed id starts no list round;
//! - an address that never proved it receives (echoed its cookie; in
//!   non-strict mode, or sent a seed verb) is sent at most 3x the bytes it
//!   sent.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use arbitrary::{Result, Unstructured};
use proto_core::limit::NetLimits;
use proto_core::registry::{Entry, Owner};
use proto_core::server::{Config, Server, VecOutbox};
use proto_core::time::Millis;
use proto_core::wire::request::Owned;
use proto_core::wire::seed::Refusal;
use proto_core::wire::{
    Cookie, ErrorCode, PeerKind, PublicKey, Reply, Request, SeedReply, SeedRequest, Token,
};
use proto_core::{Instant, MAX_DATAGRAM, SEED_MAX_LIST};
use testkit::tables::Tables;

use crate::make::{self, same_ext};

/// Steps per input at most.
const MAX_STEPS: usize = 200;
/// The admin token of configurations that have one.
const ADMIN: Token = Token(0xad_0000_0000_00ad);
/// The public keys templates register with.
const KEYS: [PublicKey; 2] = [PublicKey([0x11; 32]), PublicKey([0x22; 32])];

/// The sources: loopback and not, IPv4 and IPv6, two in one /64, an
/// IPv4-mapped one, and one with a flow label and a scope id.
fn sources() -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = [
        "127.0.0.1:10520",
        "127.0.0.1:10107",
        "127.0.0.2:10128",
        "192.0.2.7:4000",
        "[::1]:7000",
        "[2001:db8::1]:9",
        "[2001:db8::2]:9",
        "[::ffff:192.0.2.7]:4001",
    ]
    .iter()
    .map(|s| s.parse().expect("valid address"))
    .collect();
    v.push(SocketAddr::V6(SocketAddrV6::new(
        "fe80::1".parse().expect("valid address"),
        9,
        5,
        3,
    )));
    v
}

/// The ids templates use; an arbitrary one now and then.
const IDS: [&str; 6] = [
    "120",
    "150",
    "170",
    "alice",
    "bob",
    "x-very-long-id-of-32-characters-",
];

/// Run one input: a script (see [`script`]) if it starts with `#!parley`,
/// else arbitrary bytes.
pub fn check(data: &[u8]) {
    if let Some(script) = data.strip_prefix(SCRIPT) {
        return run_script(script);
    }
    let mut u = Unstructured::new(data);
    let Ok((cfg, capacity, entropy)) = config(&mut u) else {
        return;
    };
    with_harness(cfg, capacity, entropy, |h| {
        for _ in 0..MAX_STEPS {
            if u.is_empty() || h.step(&mut u).is_err() {
                break;
            }
        }
    });
}

/// What a script starts with.
pub const SCRIPT: &[u8] = b"#!parley";

/// Run a script: the corpus's form for exchanges from the seed document and
/// `docs/PROTOCOL.md` (see `fuzz/make-corpus`), line by line:
///
/// - first line: `#!parley` or `#!parley strict`;
/// - `> datagram` or `>N datagram`: source `N` (default 0) sends it; a
///   request's cookie and token are replaced by the ones the server really
///   gave that source and id, so documented exchanges run as written;
/// - `+N`: the clock moves `N` ms; `tick`: the server ticks;
/// - anything else (`< reply`, comments) is ignored.
///
/// The checks are those of arbitrary input, under the default configuration.
pub fn script(data: &[u8]) {
    run_script(data.strip_prefix(SCRIPT).unwrap_or(data));
}

fn run_script(script: &[u8]) {
    let mut lines = script.split(|&b| b == b'\n');
    let strict = lines.next().is_some_and(|l| l.trim_ascii() == b"strict");
    let cfg = Config {
        strict,
        ..Config::default()
    };
    with_harness(cfg, 16, [7; 32], |h| {
        for line in lines.take(1_000) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line == b"tick" {
                h.tick();
            } else if let Some(ms) = line.strip_prefix(b"+") {
                let ms: u64 = std::str::from_utf8(ms)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                h.now = Instant(h.now.0 + ms.min(1 << 40));
            } else if let Some(rest) = line.strip_prefix(b">") {
                let (n, d) = match rest.split_first() {
                    Some((&c, d)) if c.is_ascii_digit() => (usize::from(c - b'0'), d),
                    _ => (0, rest),
                };
                let d = d.strip_prefix(b" ").unwrap_or(d);
                let src = h.sources[n % h.sources.len()];
                let d = h.personalize(src, d);
                h.deliver(src, &d);
            }
            if h.due.is_some_and(|t| t <= h.now) {
                h.tick();
            }
        }
    });
}

/// A server of `capacity` over fresh tables, with its model, for `f`; the
/// state is checked before `f` and traced after.
fn with_harness(cfg: Config, capacity: usize, entropy: [u8; 32], f: impl FnOnce(&mut Harness<'_>)) {
    let mut tables = Tables::new(capacity);
    let storage = tables.storage();
    let server = Server::new(cfg.clone(), storage, entropy).expect("a valid configuration");
    let mut h = Harness {
        server,
        out: Box::new(VecOutbox::new()),
        model: Model::new(cfg, capacity),
        now: Instant::from_secs(1_000),
        due: Some(Instant::from_secs(1_000)),
        sources: sources(),
    };
    h.check_state();
    f(&mut h);
    h.trace();
}

fn config(u: &mut Unstructured<'_>) -> Result<(Config, usize, [u8; 32])> {
    let lease_min = u.int_in_range(1..=5)?;
    let lease_max = lease_min + u.int_in_range(0..=10)?;
    let cfg = Config {
        lease_min,
        lease_max,
        lease_default: u.int_in_range(lease_min..=lease_max)?,
        seed_lease: u.int_in_range(1..=15)?,
        presence_interval: Millis(u.int_in_range(0..=2_000)?),
        fanout_per_sec: u.int_in_range(1..=20)?,
        quota_per_source: u.int_in_range(1..=4)?,
        rate_per_sec: u.int_in_range(1..=50)?,
        rate_burst: u.int_in_range(0..=50)?,
        error_rate_per_sec: u.int_in_range(0..=20)?,
        limits: u.arbitrary()?,
        strict: u.arbitrary()?,
        admin_token: if u.arbitrary()? { Some(ADMIN) } else { None },
        cookie_window: Millis(u.int_in_range(1_000..=30_000)?),
        // Fixed, so that the corpus's bytes still mean what they meant.
        stun_per_sec: 20,
        relay_bytes_per_sec: 100_000,
    };
    let capacity = u.int_in_range(1..=12)?;
    Ok((cfg, capacity, u.arbitrary()?))
}

/// What the harness knows about one id.
#[derive(Clone, Debug, Default)]
struct IdState {
    /// Every address the id may be bound to now (a superset).
    addrs: BTreeSet<SocketAddr>,
    /// Its lease certainly ends by then (ms); 0: never registered.
    max_exp: u64,
    /// It is certainly registered, token-owned, until then (ms).
    sure_until: u64,
    /// Its owner token, when `sure_until` is in force.
    token: Option<Token>,
}

/// What the harness knows about the server.
struct Model {
    cfg: Config,
    capacity: usize,
    ids: BTreeMap<String, IdState>,
    /// Cookies each source was given, with the window they were issued in.
    cookies: BTreeMap<SocketAddr, Vec<(u64, Cookie)>>,
    /// Tokens the server handed out, by id.
    tokens: BTreeMap<String, Token>,
    /// The kind of the registration each token (by value) was issued for: the server
    /// never issues a token twice, and a registration's key never changes,
    /// so a token names one kind for good.
    kinds: BTreeMap<u64, PeerKind>,
    bytes_in: BTreeMap<SocketAddr, u64>,
    bytes_out: BTreeMap<SocketAddr, u64>,
    /// Sources that echoed a cookie the server accepted.
    validated: BTreeSet<SocketAddr>,
    /// Sources that sent a seed verb (non-strict only: the seed protocol
    /// has no address validation, by design).
    seed_senders: BTreeSet<SocketAddr>,
    /// The fan-out budget as a token bucket, in thousandths.
    fan_tokens: u64,
    fan_last: Option<Instant>,
    fanout_seen: u64,
}

impl Model {
    fn new(cfg: Config, capacity: usize) -> Self {
        Model {
            fan_tokens: u64::from(cfg.fanout_per_sec) * 1000,
            cfg,
            capacity,
            ids: BTreeMap::new(),
            cookies: BTreeMap::new(),
            tokens: BTreeMap::new(),
            kinds: BTreeMap::new(),
            bytes_in: BTreeMap::new(),
            bytes_out: BTreeMap::new(),
            validated: BTreeSet::new(),
            seed_senders: BTreeSet::new(),
            fan_last: None,
            fanout_seen: 0,
        }
    }

    fn window(&self, now: Instant) -> u64 {
        now.0 / self.cfg.cookie_window.0
    }

    /// `Some(true)`: issued to `src` in this window or the last; `Some(false)`:
    /// issued, but stale or to someone else; `None`: never issued (guessed).
    fn cookie_valid(&self, now: Instant, src: SocketAddr, c: Cookie) -> Option<bool> {
        let w = self.window(now);
        let mine = self.cookies.get(&src).into_iter().flatten();
        if mine
            .clone()
            .any(|&(iw, ic)| ic == c && (iw == w || iw + 1 == w))
        {
            return Some(true);
        }
        let anywhere = self.cookies.values().flatten().any(|&(_, ic)| ic == c);
        anywhere.then_some(false)
    }

    fn id(&mut self, id: &str) -> &mut IdState {
        self.ids.entry(id.to_owned()).or_default()
    }

    fn live(&self, id: &str, now: Instant) -> Option<&IdState> {
        self.ids.get(id).filter(|s| now.0 < s.max_exp)
    }

    fn surely_live(&self, id: &str, now: Instant) -> bool {
        self.ids.get(id).is_some_and(|s| now.0 < s.sure_until)
    }

    /// `id` is served at `addr` at `now`: it must be live and may own `addr`.
    fn served(&self, id: &str, addr: SocketAddr, now: Instant, exact: bool) {
        let s = self.live(id, now).unwrap_or_else(|| {
            panic!(
                "{id} served at {now:?} after its lease ended: {:?}",
                self.ids.get(id)
            )
        });
        let ok = s
            .addrs
            .iter()
            .any(|&a| if exact { a == addr } else { same_ext(a, addr) });
        assert!(ok, "{id} served at {addr}, which never held it: {s:?}");
    }

    /// The kind the live registration of `id` must be reported with, if
    /// the model knows it.
    fn known_kind(&self, id: &str, now: Instant) -> Option<PeerKind> {
        let s = self.ids.get(id).filter(|s| now.0 < s.sure_until)?;
        self.kinds.get(&s.token?.0).copied()
    }

    /// `id` was reported (in `AT` or `PUNCH`) with `kind` at `now`.
    fn reported(&self, id: &str, kind: PeerKind, now: Instant) {
        if let Some(k) = self.known_kind(id, now) {
            assert_eq!(kind, k, "{id} reported as {kind:?}, registered as {k:?}");
        }
        if kind == PeerKind::Seed {
            assert!(
                !self.surely_live(id, now),
                "{id}, token-owned, reported as a seed client"
            );
        }
    }

    /// `id` was reported missing at `now`.
    fn missing(&self, id: &str, now: Instant) {
        assert!(
            !self.surely_live(id, now),
            "{id} reported missing at {now:?} while registered: {:?}",
            self.ids.get(id)
        );
    }

    /// A reply to a request naming `id` that is none of its successes:
    /// `no-such-id` must be true, any other error (or silence) may be,
    /// and anything else is a bug.
    fn not_served(&self, verb: &str, id: &str, now: Instant, rep: &Option<Reply<'_>>) {
        match rep {
            Some(Reply::Error {
                code: ErrorCode::NoSuchId,
                ..
            }) => self.missing(id, now),
            None | Some(Reply::Error { .. }) => {}
            r => panic!("{verb} answered with {r:?}"),
        }
    }

    /// A request that names `id` with `token` succeeded.
    fn owned_by(&self, id: &str, token: Token, now: Instant) {
        if let Some(s) = self.ids.get(id).filter(|s| now.0 < s.sure_until) {
            assert_eq!(
                s.token,
                Some(token),
                "{id} accepted a token that does not own it"
            );
        }
        assert!(
            self.live(id, now).is_some(),
            "{id} used after its lease ended"
        );
    }

    /// `id` is now certainly token-owned by `token`, at `src`, until `until`.
    fn definite(&mut self, id: &str, src: SocketAddr, until: u64, token: Token) {
        let s = self.id(id);
        s.addrs = BTreeSet::from([src]);
        s.max_exp = until;
        s.sure_until = until;
        s.token = Some(token);
    }

    /// Take one fan-out datagram from the budget at `now`.
    fn fan_out(&mut self, now: Instant) {
        let burst = u64::from(self.cfg.fanout_per_sec) * 1000;
        if let Some(last) = self.fan_last {
            let refill = now.since(last) * u64::from(self.cfg.fanout_per_sec);
            self.fan_tokens = (self.fan_tokens + refill).min(burst);
        }
        self.fan_last = Some(now);
        assert!(
            self.fan_tokens >= 1000,
            "fan-out beyond {} per second at {now:?}",
            self.cfg.fanout_per_sec
        );
        self.fan_tokens -= 1000;
        self.fanout_seen += 1;
    }

    fn exempt(&self, a: SocketAddr) -> bool {
        self.validated.contains(&a) || (!self.cfg.strict && self.seed_senders.contains(&a))
    }
}

/// One datagram as the server sent it.
enum Sent {
    Ext(String),
    Seed(String),
}

struct Harness<'s> {
    server: Server<'s>,
    out: Box<VecOutbox<64>>,
    model: Model,
    now: Instant,
    due: Option<Instant>,
    sources: Vec<SocketAddr>,
}

impl Harness<'_> {
    fn step(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let dt: u64 = match u.int_in_range(0u8..=7)? {
            0..=2 => 0,
            3 | 4 => u.int_in_range(1..=1_000)?,
            5 | 6 => u.int_in_range(1_000..=10_000)?,
            _ => u.int_in_range(10_000..=200_000)?,
        };
        self.now = Instant(self.now.0 + dt);
        if u.ratio(1, 6)? {
            self.tick();
        } else {
            let src = *u.choose(&self.sources)?;
            let d = self.datagram(u, src)?;
            self.deliver(src, &d);
        }
        // The event loop ticks when the server asked to be woken.
        if self.due.is_some_and(|t| t <= self.now) {
            self.tick();
        }
        Ok(())
    }

    fn pick_id(&self, u: &mut Unstructured<'_>) -> Result<String> {
        if u.ratio(1, 10)? {
            make::id(u)
        } else {
            Ok(u.choose(&IDS)?.to_string())
        }
    }

    fn pick_cookie(&self, u: &mut Unstructured<'_>, src: SocketAddr) -> Result<String> {
        let mine = self
            .model
            .cookies
            .get(&src)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        // Mostly the latest cookie the source was given, so requests get
        // past the cookie check and reach the table.
        let c = match u.int_in_range(0u8..=15)? {
            0 => return Ok("-".into()),
            1 => Cookie(u.arbitrary()?),
            2 => {
                let other = u.choose(&self.sources)?;
                match self.model.cookies.get(other).and_then(|v| v.last()) {
                    Some(&(_, c)) => c,
                    None => return Ok("-".into()),
                }
            }
            3 if !mine.is_empty() => u.choose(mine)?.1,
            _ => match mine.last() {
                Some(&(_, c)) => c,
                None => return Ok("-".into()),
            },
        };
        Ok(c.to_string())
    }

    fn pick_token(&self, u: &mut Unstructured<'_>, id: &str) -> Result<Token> {
        Ok(match u.int_in_range(0u8..=5)? {
            0 => Token(u.arbitrary()?),
            1 => {
                let all: Vec<Token> = self.model.tokens.values().copied().collect();
                if all.is_empty() {
                    Token(0)
                } else {
                    *u.choose(&all)?
                }
            }
            _ => self.model.tokens.get(id).copied().unwrap_or(Token(1)),
        })
    }

    /// A datagram: mostly a template with live material, else mutated or raw.
    fn datagram(&self, u: &mut Unstructured<'_>, src: SocketAddr) -> Result<Vec<u8>> {
        let kind = u.int_in_range(0u8..=19)?;
        if kind == 19 {
            let len = u.int_in_range(0..=1_300)?;
            return Ok(u.bytes(len.min(u.len()))?.to_vec());
        }
        let tx = make::txid(u)?;
        let id = self.pick_id(u)?;
        let other = self.pick_id(u)?;
        let c = self.pick_cookie(u, src)?;
        let t = self.pick_token(u, &id)?;
        let mut d = match kind {
            0 | 1 => {
                // A COOKIE is sent only if no longer than its HELLO.
                let pad = if u.ratio(3, 4)? {
                    u.int_in_range(60..=120)?
                } else {
                    u.int_in_range(0..=120)?
                };
                if pad == 0 {
                    format!("HELLO {tx}")
                } else {
                    format!("HELLO {tx} {}", ".".repeat(pad))
                }
            }
            2 | 3 => match u.int_in_range(0u8..=5)? {
                0 => format!("REG {tx} {c} {id}"),
                1 => format!("REG {tx} {c} {id} {}", u.int_in_range(0..=30)?),
                2 => format!("REG {tx} {c} {id} - {t}"),
                3 => format!("REG {tx} {c} {id} {} {t}", u.int_in_range(0..=30)?),
                4 => format!("REG {tx} {c} {id} - - {}", u.choose(&KEYS)?),
                _ => format!("REG {tx} {c} {id} - {t} {}", u.choose(&KEYS)?),
            },
            4 => format!("KEEP {tx} {c} {id} {t}"),
            5 => format!("LOOKUP {tx} {c} {id}"),
            6 => format!("INTRO {tx} {c} {id} {t} {other}"),
            7 => format!("LIST {tx} {c} {}", u.int_in_range(0..=13)?),
            8 => format!("SUB {tx} {c} {id} {t}"),
            9 => format!("UNSUB {tx} {c} {id} {t}"),
            10 => format!("QUIT {tx} {c} {id} {t}"),
            11 => {
                if u.arbitrary()? {
                    format!("STATS {tx} {c} {ADMIN}")
                } else {
                    format!("STATS {tx} {c}")
                }
            }
            12 | 13 => format!("ID {id}"),
            14 => format!("Peer {id}"),
            15 => format!("Quit {id}"),
            16 => "ID2 ".into(),
            _ => {
                // A template with one byte changed, or cut short.
                let mut b = format!("REG {tx} {c} {id} 5 {t}").into_bytes();
                let at = u.int_in_range(0..=b.len() - 1)?;
                if u.arbitrary()? {
                    b[at] = u.arbitrary()?;
                } else {
                    b.truncate(at);
                }
                return Ok(b);
            }
        }
        .into_bytes();
        match u.int_in_range(0u8..=9)? {
            0 => d.push(b'\n'),
            1 => d.extend_from_slice(b"\r\n"),
            _ => {}
        }
        Ok(d)
    }

    /// With `PARLEY_FUZZ_TRACE` set, print what the run reached (for
    /// judging the corpus: `cargo fuzz run server corpus/server -- -runs=0`).
    fn trace(&self) {
        if std::env::var_os("PARLEY_FUZZ_TRACE").is_some() {
            let s = self.server.stats();
            eprintln!(
                "trace strict={} limits={} requests={:?} errors={:?} registrations={} expired={} fanout={} occupancy={}/{}",
                self.model.cfg.strict,
                self.model.cfg.limits,
                s.requests,
                s.errors,
                s.registrations,
                s.expired,
                s.fanout_sent,
                s.occupancy,
                s.capacity
            );
        }
    }

    /// `d` with its cookie and token replaced by those `src` really holds.
    fn personalize(&self, src: SocketAddr, d: &[u8]) -> Vec<u8> {
        let Ok(mut req) = Request::parse(d) else {
            return d.to_vec();
        };
        let latest = self
            .model
            .cookies
            .get(&src)
            .and_then(|v| v.last())
            .map(|c| c.1);
        let token_of = |id: proto_core::wire::Id<'_>, t: &mut Token| {
            if let Some(&mine) = self.model.tokens.get(id.as_str()) {
                *t = mine;
            }
        };
        match &mut req {
            Request::Hello { .. } => return d.to_vec(),
            Request::Register { h, id, token, .. } => {
                if let Some(t) = token {
                    token_of(*id, t);
                }
                if h.cookie.is_some() {
                    h.cookie = latest.or(h.cookie);
                }
            }
            Request::Keepalive(Owned { h, id, token })
            | Request::Introduce {
                by: Owned { h, id, token },
                ..
            }
            | Request::Subscribe(Owned { h, id, token })
            | Request::Unsubscribe(Owned { h, id, token })
            | Request::Quit(Owned { h, id, token }) => {
                token_of(*id, token);
                if h.cookie.is_some() {
                    h.cookie = latest.or(h.cookie);
                }
            }
            Request::Lookup { h, .. } | Request::List { h, .. } | Request::Stats { h, .. } => {
                if h.cookie.is_some() {
                    h.cookie = latest.or(h.cookie);
                }
            }
        }
        let mut buf = vec![0u8; MAX_DATAGRAM];
        match req.emit(&mut buf) {
            Ok(n) => buf[..n].to_vec(),
            Err(_) => d.to_vec(),
        }
    }

    fn tick(&mut self) {
        let next = self.server.tick(self.now, &mut *self.out);
        if let Some(t) = next {
            assert!(t >= self.now, "tick asked to run in the past");
        }
        self.due = next;
        let sent = self.drain();
        for (dst, msg) in sent {
            match &msg {
                Sent::Seed(text) => {
                    let Ok(SeedReply::List(list)) = SeedReply::parse(text.as_bytes()) else {
                        panic!("tick sent {text:?}");
                    };
                    assert!(!self.model.cfg.strict, "a seed List in strict mode");
                    assert!(
                        self.model.seed_senders.contains(&dst),
                        "a List to {dst}, which never sent a seed verb"
                    );
                    let mut seen = BTreeSet::new();
                    for id in list.iter() {
                        assert!(seen.insert(id.as_str()), "{id} listed twice");
                        assert!(
                            self.model.live(id.as_str(), self.now).is_some(),
                            "List has {id} after its lease ended"
                        );
                    }
                }
                Sent::Ext(text) => {
                    match Reply::parse(text.as_bytes()) {
                        // Changes first..=last, one each, in order.
                        Ok(Reply::Events {
                            first,
                            last,
                            changes,
                        }) => assert_eq!(
                            changes.iter().count() as u64,
                            u64::from(last.wrapping_sub(first)) + 1,
                            "{text:?}"
                        ),
                        Ok(Reply::Resync { .. }) => {}
                        _ => panic!("tick sent {text:?}"),
                    }
                    assert!(
                        self.model.validated.contains(&dst),
                        "presence to {dst}, which never echoed a cookie"
                    );
                }
            }
            self.model.fan_out(self.now);
        }
        self.check_state();
    }

    /// Take every datagram from the outbox, checking sizes and counting bytes.
    fn drain(&mut self) -> Vec<(SocketAddr, Sent)> {
        let mut v = Vec::new();
        while let Some((dst, bytes)) = self.out.pop() {
            assert!(
                bytes.len() <= MAX_DATAGRAM,
                "a {}-byte datagram",
                bytes.len()
            );
            *self.model.bytes_out.entry(dst).or_default() += bytes.len() as u64;
            let text = String::from_utf8(bytes.to_vec()).expect("the server sends UTF-8");
            let sent = if Reply::parse(&bytes).is_ok() {
                Sent::Ext(text)
            } else {
                match SeedReply::parse(&bytes) {
                    Ok(SeedReply::Message(_)) | Err(_) => panic!("the server sent {text:?}"),
                    Ok(SeedReply::Refused(_)) => Sent::Seed(text),
                    Ok(SeedReply::List(_)) => {
                        assert!(bytes.len() <= SEED_MAX_LIST, "a {}-byte List", bytes.len());
                        Sent::Seed(text)
                    }
                    Ok(_) => Sent::Seed(text),
                }
            };
            v.push((dst, sent));
        }
        v
    }

    /// The live registrations, by id: what an error must leave alone.
    fn live_entries(&self) -> BTreeMap<String, Entry> {
        self.server
            .entries()
            .filter(|e| e.expires > self.now)
            .map(|e| (String::from_utf8_lossy(e.id.as_bytes()).into_owned(), *e))
            .collect()
    }

    fn deliver(&mut self, src: SocketAddr, d: &[u8]) {
        *self.model.bytes_in.entry(src).or_default() += d.len() as u64;
        let before = self.server.stats().clone();
        let table_before = self.live_entries();
        // Whether `src` holds a seed id: surely (a live one), or perhaps (an
        // expired one the server has not reclaimed yet still counts).
        let seed_holder = |e: &Entry| e.owner == Owner::Address && e.addr == src;
        let holds_surely = table_before.values().any(seed_holder);
        let holds_perhaps = self.server.entries().any(seed_holder);
        self.server.handle(self.now, src, d, &mut *self.out);
        let sent = self.drain();
        let is_seed = d.starts_with(b"ID ")
            || d.starts_with(b"ID2")
            || d.starts_with(b"Peer ")
            || d.starts_with(b"Quit ");
        let mut to_src = Vec::new();
        let mut others = Vec::new();
        for (dst, msg) in sent {
            match msg {
                Sent::Ext(t) if t.starts_with("PUNCH ") => others.push((dst, t)),
                Sent::Ext(t) | Sent::Seed(t) if dst == src => to_src.push(t),
                Sent::Ext(t) | Sent::Seed(t) => panic!("{d:?} made the server send {t:?} to {dst}"),
            }
        }
        assert!(to_src.len() <= 1, "{d:?} got {to_src:?}");
        let reply = to_src.pop();
        let refused = reply.as_deref().is_some_and(|r| {
            matches!(Reply::parse(r.as_bytes()), Ok(Reply::Error { .. }))
                || matches!(SeedReply::parse(r.as_bytes()), Ok(SeedReply::Refused(_)))
        });
        if refused {
            assert_eq!(
                self.live_entries(),
                table_before,
                "{:?} from {src} was refused with {reply:?}, yet changed the table",
                String::from_utf8_lossy(d)
            );
        }
        let after = self.server.stats();
        let taken = after.requests_of("seed_id2") > before.requests_of("seed_id2");
        if taken && d.starts_with(b"ID2") {
            // Refused (counted, no round) exactly when the sender holds no
            // seed id; a wrong "holds" would need two hash collisions at once.
            let refused = after.seed_refused > before.seed_refused;
            if !holds_perhaps {
                assert!(refused, "ID2 from {src}, which holds no seed id, was taken");
            }
            if holds_surely {
                assert!(
                    !refused,
                    "ID2 from {src}, which holds a seed id, was refused"
                );
            }
        }
        if is_seed {
            assert!(others.is_empty(), "a seed verb sent {others:?}");
            self.seed(src, d, reply.as_deref(), &before);
        } else {
            self.ext(src, d, reply.as_deref(), &others);
        }
        self.check_state();
    }

    fn seed(
        &mut self,
        src: SocketAddr,
        d: &[u8],
        reply: Option<&str>,
        before: &proto_core::server::Stats,
    ) {
        let now = self.now;
        if self.model.cfg.strict {
            assert_eq!(reply, None, "strict mode answered {d:?}");
            let after = self.server.stats();
            // Occupancy may fall (an expired lease found by a lookup is
            // reclaimed) but a seed verb must add nothing.
            assert!(
                after.occupancy <= before.occupancy,
                "strict mode let a seed verb register"
            );
            assert_eq!(after.registrations, before.registrations);
            for verb in ["seed_id", "seed_peer", "seed_quit", "seed_id2"] {
                assert_eq!(after.requests_of(verb), 0, "strict mode took {verb}");
            }
            return;
        }
        self.model.seed_senders.insert(src);
        let Ok(req) = SeedRequest::parse(d) else {
            assert_eq!(reply, None, "a malformed seed verb was answered");
            return;
        };
        match req {
            SeedRequest::Id(id) => {
                let refusal = reply.map(|r| match SeedReply::parse(r.as_bytes()) {
                    Ok(SeedReply::Refused(why)) => why,
                    other => panic!("ID answered with {other:?}"),
                });
                if let Some(Refusal::Taken(taken)) = refusal {
                    assert_eq!(taken, id, "the refusal names the id asked for");
                    assert!(
                        self.model.live(id.as_str(), now).is_some(),
                        "{id} refused as taken, but its lease had ended"
                    );
                }
                let id = id.as_str();
                if refusal.is_none() && !self.model.surely_live(id, now) {
                    let until = now.0 + u64::from(self.model.cfg.seed_lease) * 1000;
                    let s = self.model.id(id);
                    s.addrs.insert(src);
                    s.max_exp = s.max_exp.max(until);
                    s.token = None;
                }
            }
            SeedRequest::Peer(id) => match reply.map(|r| SeedReply::parse(r.as_bytes())) {
                None => {}
                Some(Ok(SeedReply::Peer(a))) => self.model.served(id.as_str(), a, now, true),
                Some(Ok(SeedReply::NoPeer)) => self.model.missing(id.as_str(), now),
                Some(other) => panic!("Peer answered with {other:?}"),
            },
            SeedRequest::Quit(_) | SeedRequest::Id2 => {
                assert_eq!(reply, None, "{d:?} is never answered");
            }
        }
    }

    fn ext(
        &mut self,
        src: SocketAddr,
        d: &[u8],
        reply: Option<&str>,
        punches: &[(SocketAddr, String)],
    ) {
        let now = self.now;
        let m = &mut self.model;
        let rep = reply.map(|r| Reply::parse(r.as_bytes()).expect("sorted as extended"));
        let req = match Request::parse(d) {
            Ok(req) => req,
            Err(_) => {
                assert!(punches.is_empty());
                match rep {
                    None | Some(Reply::Error { .. }) => {}
                    Some(r) => panic!("{d:?} did not parse, yet got {r:?}"),
                }
                if let Some(r) = reply {
                    assert!(r.len() <= d.len(), "an error larger than its request");
                }
                return;
            }
        };
        if let Some(Reply::Error { tx: Some(tx), .. }) = rep {
            assert_eq!(tx, req.tx(), "the error echoes the transaction id");
        }
        // Over its rate, a request is dropped unread; the source may be
        // told so, in no more bytes than it sent.
        if let Some(Reply::Error {
            code: ErrorCode::RateLimited,
            ..
        }) = rep
        {
            assert!(punches.is_empty());
            assert!(
                reply.unwrap_or_default().len() <= d.len(),
                "rate-limited larger than its request"
            );
            return;
        }
        if let Request::Hello { tx, .. } = req {
            match rep {
                None => {}
                Some(Reply::Cookie {
                    tx: t,
                    cookie,
                    addr,
                }) => {
                    assert_eq!(t, tx);
                    assert!(same_ext(addr, src), "COOKIE shows {addr}, not {src}");
                    assert!(
                        reply.unwrap_or_default().len() <= d.len(),
                        "COOKIE larger than HELLO"
                    );
                    let w = m.window(now);
                    m.cookies.entry(src).or_default().push((w, cookie));
                }
                Some(r) => panic!("HELLO answered with {r:?}"),
            }
            return;
        }
        let h = req
            .header()
            .expect("only HELLO has no header, and it returned above");
        // The cookie, as the model sees it, and as the server did.
        let valid = h.cookie.and_then(|c| m.cookie_valid(now, src, c));
        let refused = matches!(
            rep,
            Some(Reply::Error {
                code: ErrorCode::BadCookie,
                ..
            })
        );
        if refused {
            assert_ne!(
                valid,
                Some(true),
                "a fresh cookie of {src} was refused: {d:?}"
            );
            assert!(
                reply.unwrap_or_default().len() <= d.len(),
                "bad-cookie larger than its request"
            );
        }
        if rep.is_some() && !refused {
            assert!(
                h.cookie.is_some() && valid != Some(false),
                "{d:?} from {src} was accepted without a valid cookie"
            );
            m.validated.insert(src);
        }
        if refused {
            return;
        }
        if !matches!(req, Request::Introduce { .. }) {
            assert!(punches.is_empty(), "{d:?} sent {punches:?}");
        }
        let err = |r: &Option<Reply<'_>>| matches!(r, None | Some(Reply::Error { .. }));
        match req {
            Request::Register {
                id,
                lease,
                token,
                key,
                ..
            } => match rep {
                Some(Reply::Registered {
                    tx,
                    id: rid,
                    lease: l,
                    addr,
                    token: t,
                }) => {
                    assert_eq!((tx, rid), (h.tx, id));
                    assert!(same_ext(addr, src));
                    let want = lease
                        .unwrap_or(m.cfg.lease_default)
                        .clamp(m.cfg.lease_min, m.cfg.lease_max);
                    assert_eq!(l, want, "granted lease");
                    // A REG with a token renews a live registration and keeps
                    // the token; for an id that lapsed it registers afresh. A
                    // REG without one for a live id is a retransmission from
                    // the registering socket itself (its REGD was lost), and
                    // gets the same token back.
                    if m.surely_live(id.as_str(), now) {
                        let s = &m.ids[id.as_str()];
                        match token {
                            Some(_) => {
                                assert_eq!(Some(t), token, "a renewal keeps its token");
                                assert_eq!(
                                    s.token, token,
                                    "{id} taken over while registered: {s:?}"
                                );
                            }
                            None => {
                                assert_eq!(
                                    s.token,
                                    Some(t),
                                    "{id} taken over while registered: {s:?}"
                                );
                                assert!(
                                    s.addrs.contains(&src),
                                    "{id} handed its token to {src}, not its own address: {s:?}"
                                );
                            }
                        }
                    }
                    // A token never seen names a new registration, which
                    // takes the key it brings; an old one keeps its key.
                    match (m.kinds.get(&t.0).copied(), key) {
                        (None, k) => {
                            m.kinds
                                .insert(t.0, k.map_or(PeerKind::Keyless, PeerKind::Key));
                        }
                        (Some(was), Some(k)) => {
                            assert_eq!(was, PeerKind::Key(k), "{id} renewed under another key")
                        }
                        (Some(_), None) => {}
                    }
                    let until = now.0 + u64::from(l) * 1000;
                    m.definite(id.as_str(), src, until, t);
                    m.tokens.insert(id.as_str().to_owned(), t);
                }
                Some(Reply::Error {
                    code: ErrorCode::KeyTaken,
                    ..
                }) => {
                    let k = key.expect("key-taken for a REG without a key");
                    assert_ne!(
                        m.known_kind(id.as_str(), now),
                        Some(PeerKind::Key(k)),
                        "key-taken for {id}'s own key"
                    );
                }
                ref r if err(r) => {}
                r => panic!("REG answered with {r:?}"),
            },
            Request::Keepalive(Owned { id, token, .. }) => match rep {
                Some(Reply::Alive {
                    tx, lease, addr, ..
                }) => {
                    assert_eq!(tx, h.tx);
                    assert!(same_ext(addr, src));
                    assert!((m.cfg.lease_min..=m.cfg.lease_max).contains(&lease));
                    m.owned_by(id.as_str(), token, now);
                    let until = now.0 + u64::from(lease) * 1000;
                    m.definite(id.as_str(), src, until, token);
                }
                r => m.not_served("KEEP", id.as_str(), now, &r),
            },
            Request::Lookup { id, .. } => match rep {
                Some(Reply::At {
                    tx,
                    id: rid,
                    addr,
                    kind,
                }) => {
                    assert_eq!((tx, rid), (h.tx, id));
                    m.served(id.as_str(), addr, now, false);
                    m.reported(id.as_str(), kind, now);
                }
                r => m.not_served("LOOKUP", id.as_str(), now, &r),
            },
            Request::Introduce {
                by: Owned { id, token, .. },
                target,
                local,
            } => match rep {
                Some(Reply::At {
                    tx,
                    id: rid,
                    addr,
                    kind,
                }) => {
                    assert_eq!((tx, rid), (h.tx, target));
                    m.owned_by(id.as_str(), token, now);
                    m.reported(target.as_str(), kind, now);
                    let s = m.id(id.as_str());
                    s.addrs = BTreeSet::from([src]);
                    if id != target {
                        m.served(target.as_str(), addr, now, false);
                    } else {
                        assert!(same_ext(addr, src));
                    }
                    assert_eq!(punches.len(), 1, "one PUNCH per introduction");
                    let (dst, p) = &punches[0];
                    assert!(same_ext(*dst, addr), "PUNCH went to {dst}, not {addr}");
                    match Reply::parse(p.as_bytes()) {
                        Ok(Reply::Punch {
                            id: pid,
                            addr: pa,
                            kind: pk,
                            local: pl,
                        }) => {
                            assert_eq!(pid, id);
                            // Local addresses are passed on as they came,
                            // to the target only.
                            assert_eq!(pl, local);
                            assert!(same_ext(pa, src));
                            m.reported(id.as_str(), pk, now);
                        }
                        other => panic!("{other:?}"),
                    }
                    assert!(
                        m.exempt(*dst),
                        "PUNCH to {dst}, which never proved its address"
                    );
                }
                ref r if err(r) => assert!(punches.is_empty()),
                r => panic!("INTRO answered with {r:?}"),
            },
            Request::List { cursor, .. } => match rep {
                Some(Reply::Page { tx, next, ids }) => {
                    assert_eq!(tx, h.tx);
                    assert!(next == 0 || (next > cursor && next as usize <= m.capacity));
                    let mut seen = BTreeSet::new();
                    for id in ids.iter() {
                        assert!(seen.insert(id.as_str()), "{id} twice on a page");
                        assert!(
                            m.live(id.as_str(), now).is_some(),
                            "PAGE has {id} after its lease"
                        );
                    }
                }
                ref r if err(r) => {}
                r => panic!("LIST answered with {r:?}"),
            },
            Request::Subscribe(Owned { id, token, .. })
            | Request::Unsubscribe(Owned { id, token, .. }) => match rep {
                Some(Reply::Subscribed { tx, .. } | Reply::Unsubscribed { tx }) => {
                    assert_eq!(tx, h.tx);
                    m.owned_by(id.as_str(), token, now);
                    m.id(id.as_str()).addrs = BTreeSet::from([src]);
                }
                r => m.not_served("SUB/UNSUB", id.as_str(), now, &r),
            },
            Request::Quit(Owned { id, token, .. }) => match rep {
                Some(Reply::Bye { tx, id: rid }) => {
                    assert_eq!((tx, rid), (h.tx, id));
                    m.owned_by(id.as_str(), token, now);
                    let s = m.id(id.as_str());
                    s.addrs.clear();
                    s.max_exp = now.0;
                    s.sure_until = 0;
                    s.token = None;
                }
                r => m.not_served("QUIT", id.as_str(), now, &r),
            },
            Request::Stats { admin, .. } => match rep {
                Some(Reply::Stats { tx, stats }) => {
                    assert_eq!(tx, h.tx);
                    let allowed = src.ip().to_canonical().is_loopback()
                        || (m.cfg.admin_token.is_some() && admin == m.cfg.admin_token);
                    assert!(allowed, "STATS to {src} without the admin token");
                    for (k, v) in stats.iter() {
                        if k == "occupancy" {
                            assert!(v as usize <= m.capacity);
                        }
                    }
                }
                ref r if err(r) => {}
                r => panic!("STATS answered with {r:?}"),
            },
            Request::Hello { .. } => unreachable!(),
        }
    }

    /// The invariants that hold between any two steps.
    /// No source and no network holds more live ids than its quota: per
    /// IPv4 address or IPv6 /64, per IPv4 /24, per IPv6 /56 and /48 (the
    /// server counts in hashed cells, where a collision only makes a limit
    /// stricter, so the exact counts here can never exceed them).
    fn check_quotas(&self) {
        let nets = NetLimits::for_capacity(self.model.capacity, self.model.cfg.quota_per_source);
        let mut held: BTreeMap<(u8, Vec<u8>), u16> = BTreeMap::new();
        for e in self.server.entries().filter(|e| self.now < e.expires) {
            let ip = e.addr.ip().to_canonical();
            let prefixes: Vec<(u8, Vec<u8>, u16)> = match ip {
                IpAddr::V4(v4) => {
                    let o = v4.octets();
                    vec![
                        (32, o.to_vec(), self.model.cfg.quota_per_source),
                        (24, o[..3].to_vec(), nets.v4_24),
                    ]
                }
                IpAddr::V6(v6) => {
                    let o = v6.octets();
                    vec![
                        (64, o[..8].to_vec(), self.model.cfg.quota_per_source),
                        (56, o[..7].to_vec(), nets.v6_56),
                        (48, o[..6].to_vec(), nets.v6_48),
                    ]
                }
            };
            for (len, prefix, limit) in prefixes {
                let n = held.entry((len, prefix.clone())).or_insert(0);
                *n += 1;
                assert!(
                    *n <= limit,
                    "/{len} {prefix:?} holds {n} live ids, over its quota of {limit}"
                );
            }
        }
    }

    fn check_state(&self) {
        if let Err(e) = self.server.audit(self.now) {
            panic!("audit at {:?}: {e}", self.now);
        }
        if let Err(e) = self.server.audit_relay() {
            panic!("relay audit at {:?}: {e}", self.now);
        }
        let stats = self.server.stats();
        assert!(
            stats.occupancy as usize <= self.model.capacity,
            "occupancy beyond capacity"
        );
        assert_eq!(stats.capacity as usize, self.model.capacity);
        assert_eq!(stats.drop_outbox_full, 0, "the harness outbox never fills");
        assert_eq!(
            stats.fanout_sent, self.model.fanout_seen,
            "fan-out counted as sent"
        );
        let live_sure = self
            .model
            .ids
            .values()
            .filter(|s| self.now.0 < s.sure_until)
            .count();
        assert!(live_sure <= self.model.capacity, "more live ids than slots");
        if self.model.cfg.strict {
            assert_eq!(stats.seed_refused, 0);
        }
        if self.model.cfg.limits {
            self.check_quotas();
        }
        for (a, &out) in &self.model.bytes_out {
            if !self.model.exempt(*a) {
                let got = self.model.bytes_in.get(a).copied().unwrap_or(0);
                assert!(
                    out <= 3 * got,
                    "{out} bytes sent to unvalidated {a}, which sent {got}"
                );
            }
        }
    }
}
