//! `docs/PROTOCOL.md` is checked against the code, so the document cannot
//! drift from what Parley really sends.
//!
//! Every ```` ```exchange ```` block under the heading "Peer messages" must
//! hold client-to-client messages that [`PeerMsg`] parses and re-emits byte
//! for byte (or server messages, checked as below), with every kind shown.
//! Every block before that heading is read line by line (the format is described at the top of the document):
//!
//! - every `>` line must parse as the request of its family (an extended
//!   [`Request`], a seed [`SeedRequest`], or a seed `Message` to a peer) and
//!   every `<` line as a [`Reply`] or [`SeedReply`]; emitting the parsed
//!   message must give back exactly the same bytes;
//! - every `#> ` line (a deliberately invalid datagram) must *not* parse;
//! - a block that names a client by its address, `# alice (203.0.113.10:40001)`,
//!   is replayed through the real [`Server`] with a fixed key and a fixed
//!   clock: each datagram is handed to the server from the current client a
//!   second after the one before (`# 3 minutes later` moves the clock on;
//!   after a comment that says `at once`, the rest of the block's datagrams
//!   arrive at one instant),
//!   the server is ticked whenever it asks to be, and every `<` line must be
//!   exactly the next datagram the server sent to that client. A block ends
//!   with nothing unshown: every datagram the server sent is in the document.
//!   `# server: parley-server --quota 1` runs that block with those options.
//! - every request verb, every reply kind and every [`ErrorCode`] has at
//!   least one example, and all but the few that cannot be staged in a
//!   short session are replayed.
//! - the seed session block is the session of figures 10 to 13: each
//!   client receives exactly what the seed document's figures print.
//!
//! When the server changes on purpose (a new counter, a different token
//! derivation), `PARLEY_DOC_BLESS=1 cargo test -p proto-core --test
//! protocol_doc` rewrites the `<` lines that differ with what the server
//! now sends, carries changed cookies and tokens into the later `>` lines,
//! and checks the result again. Review the diff before committing it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;

use proto_core::Instant;
use proto_core::server::{Config, Outbox, OutboxFull, Server};
use proto_core::time::Millis;
use proto_core::wire::peer::PeerMsg;
use proto_core::wire::{ErrorCode, Reply, Request, SeedReply, SeedRequest, Token};
use testkit::tables::Tables;

/// The entropy every replayed server is built with.
const KEY: [u8; 32] = *b"parley docs/PROTOCOL.md examples";
/// The replay clock starts here: the start of a cookie window (120 s).
const T0: Instant = Instant::from_secs(960);
/// Table size when a block does not say: `parley-server`'s default.
const DEFAULT_CAPACITY: usize = 65_536;
/// Blocks from this heading on belong to the peer-to-peer codec.
const PEER_HEADING: &str = "## Peer messages (client to client)";

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/PROTOCOL.md")
}

/// One line of an exchange block.
#[derive(Clone, Debug)]
enum Line {
    /// `> datagram`: sent by the current client.
    Send(String),
    /// `#> datagram`: sent, and deliberately not a valid message.
    SendInvalid(String),
    /// `< datagram`: received by the current client.
    Recv(String),
    /// `# text`.
    Comment(String),
}

struct Block {
    /// 1-based line number of each line in the document.
    lines: Vec<(usize, Line)>,
}

/// Find the exchange blocks, and complain about any line out of format.
fn blocks(doc: &str, errors: &mut Vec<String>) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (i, raw) in doc.lines().enumerate() {
        let n = i + 1;
        if current.is_none() && raw.trim_end() == PEER_HEADING {
            break;
        }
        if let Some(block) = current.as_mut() {
            if raw == "```" {
                out.push(current.take().unwrap());
                continue;
            }
            let line = if let Some(d) = raw.strip_prefix("> ") {
                Line::Send(d.to_string())
            } else if let Some(d) = raw.strip_prefix("< ") {
                Line::Recv(d.to_string())
            } else if let Some(d) = raw.strip_prefix("#> ") {
                Line::SendInvalid(d.to_string())
            } else if let Some(c) = raw.strip_prefix('#') {
                Line::Comment(c.trim().to_string())
            } else {
                errors.push(format!(
                    "PROTOCOL.md:{n}: an exchange line must start with `> `, `< ` or `#`: {raw:?}"
                ));
                continue;
            };
            if let Line::Send(d) | Line::Recv(d) | Line::SendInvalid(d) = &line {
                if d.is_empty() || d.starts_with(' ') {
                    errors.push(format!(
                        "PROTOCOL.md:{n}: exactly one space, then a datagram: {raw:?}"
                    ));
                }
            }
            block.lines.push((n, line));
        } else if raw == "```exchange" {
            current = Some(Block { lines: Vec::new() });
        }
    }
    if current.is_some() {
        errors.push("PROTOCOL.md: an exchange block is never closed".into());
    }
    out
}

/// Whether a client datagram is one of the seed's verbs (the server's own
/// rule: they are mixed case, the extended verbs upper case).
fn is_seed_request(d: &str) -> bool {
    d.starts_with("ID ") || d.starts_with("ID2") || d.starts_with("Peer ") || d.starts_with("Quit ")
}

fn is_seed_reply(d: &str) -> bool {
    d.starts_with("List ") || d.starts_with("Peer ") || d == "NoPeer" || is_refusal(d)
}

/// A seed `Message` from the server: an `ID` refused.
fn is_refusal(d: &str) -> bool {
    matches!(SeedReply::parse(d.as_bytes()), Ok(SeedReply::Refused(_)))
}

/// A seed `Message` from another client (the server never sees it).
fn is_message(d: &str) -> bool {
    d.starts_with("Message ") && !is_refusal(d)
}

// Kinds, numbered by exhaustive matches: a new variant does not compile
// until it is given a number here, and then the document needs an example.
const REQUEST_KINDS: [&str; 14] = [
    "HELLO", "REG", "KEEP", "LOOKUP", "INTRO", "LIST", "SUB", "UNSUB", "QUIT", "STATS", "ID",
    "Peer", "Quit", "ID2",
];
const REPLY_KINDS: [&str; 18] = [
    "COOKIE",
    "REGD",
    "ALIVE",
    "AT",
    "PAGE",
    "SUBD",
    "UNSUBD",
    "BYE",
    "STATS",
    "ERR",
    "PUNCH",
    "EVENTS",
    "RESYNC",
    "List",
    "Peer (tuple)",
    "NoPeer",
    "Message",
    "Message (refusal)",
];

fn request_kind(r: &Request<'_>) -> usize {
    match r {
        Request::Hello { .. } => 0,
        Request::Register { .. } => 1,
        Request::Keepalive { .. } => 2,
        Request::Lookup { .. } => 3,
        Request::Introduce { .. } => 4,
        Request::List { .. } => 5,
        Request::Subscribe { .. } => 6,
        Request::Unsubscribe { .. } => 7,
        Request::Quit { .. } => 8,
        Request::Stats { .. } => 9,
    }
}

fn seed_request_kind(r: &SeedRequest<'_>) -> usize {
    match r {
        SeedRequest::Id(_) => 10,
        SeedRequest::Peer(_) => 11,
        SeedRequest::Quit(_) => 12,
        SeedRequest::Id2 => 13,
    }
}

fn reply_kind(r: &Reply<'_>) -> usize {
    match r {
        Reply::Cookie { .. } => 0,
        Reply::Registered { .. } => 1,
        Reply::Alive { .. } => 2,
        Reply::At { .. } => 3,
        Reply::Page { .. } => 4,
        Reply::Subscribed { .. } => 5,
        Reply::Unsubscribed { .. } => 6,
        Reply::Bye { .. } => 7,
        Reply::Stats { .. } => 8,
        Reply::Error { .. } => 9,
        Reply::Punch { .. } => 10,
        Reply::Events { .. } => 11,
        Reply::Resync { .. } => 12,
    }
}

fn seed_reply_kind(r: &SeedReply<'_>) -> usize {
    match r {
        SeedReply::List(_) => 13,
        SeedReply::Peer(_) => 14,
        SeedReply::NoPeer => 15,
        SeedReply::Message(_) => 16,
        SeedReply::Refused(_) => 17,
    }
}

/// What the document shows, and what of it the replay confirmed.
#[derive(Default)]
struct Coverage {
    requests: [bool; REQUEST_KINDS.len()],
    replies: [bool; REPLY_KINDS.len()],
    codes: Vec<ErrorCode>,
    replayed_requests: [bool; REQUEST_KINDS.len()],
    replayed_replies: [bool; REPLY_KINDS.len()],
    replayed_codes: Vec<ErrorCode>,
    replayed_blocks: usize,
}

/// Parse one datagram as what it claims to be and emit it again.
/// Returns (is request, kind, error code) or a complaint.
fn check_datagram(d: &str, sent: bool) -> Result<(bool, usize, Option<ErrorCode>), String> {
    let mut buf = [0u8; 2048];
    let (request, kind, code, n) = if is_message(d) {
        let m = SeedReply::parse(d.as_bytes()).map_err(|e| format!("{e}"))?;
        (false, seed_reply_kind(&m), None, m.emit(&mut buf))
    } else if sent && is_seed_request(d) {
        let r = SeedRequest::parse(d.as_bytes()).map_err(|e| format!("seed request: {e}"))?;
        (true, seed_request_kind(&r), None, r.emit(&mut buf))
    } else if sent {
        let r = Request::parse(d.as_bytes()).map_err(|e| format!("request: {e}"))?;
        (true, request_kind(&r), None, r.emit(&mut buf))
    } else if is_seed_reply(d) {
        let r = SeedReply::parse(d.as_bytes()).map_err(|e| format!("seed reply: {e}"))?;
        (false, seed_reply_kind(&r), None, r.emit(&mut buf))
    } else {
        let r = Reply::parse(d.as_bytes()).map_err(|e| format!("reply: {e}"))?;
        let code = match r {
            Reply::Error { code, .. } => Some(code),
            _ => None,
        };
        (false, reply_kind(&r), code, r.emit(&mut buf))
    };
    let n = n.map_err(|e| format!("does not emit: {e}"))?;
    if &buf[..n] != d.as_bytes() {
        return Err(format!(
            "re-emits as {:?}, not byte for byte",
            String::from_utf8_lossy(&buf[..n])
        ));
    }
    Ok((request, kind, code))
}

fn mark(cov: &mut Coverage, request: bool, kind: usize, code: Option<ErrorCode>, replayed: bool) {
    if request {
        cov.requests[kind] = true;
        cov.replayed_requests[kind] |= replayed;
    } else {
        cov.replies[kind] = true;
        cov.replayed_replies[kind] |= replayed;
    }
    if let Some(c) = code {
        cov.codes.push(c);
        if replayed {
            cov.replayed_codes.push(c);
        }
    }
}

/// The client a comment names: the first `(addr)` in it that is a socket address.
fn named_client(comment: &str) -> Option<SocketAddr> {
    let mut rest = comment;
    while let Some(open) = rest.find('(') {
        let after = &rest[open + 1..];
        let close = after.find(')')?;
        if let Ok(a) = after[..close].parse() {
            return Some(a);
        }
        rest = after;
    }
    None
}

/// How far a comment like `# 3 minutes later` moves the clock.
fn later(comment: &str) -> Option<Millis> {
    let words: Vec<&str> = comment
        .split(|c: char| c.is_whitespace() || c == ',' || c == ':' || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    let i = words.iter().position(|w| *w == "later")?;
    if i < 2 {
        return None;
    }
    let n: u64 = words[i - 2].parse().ok()?;
    let unit = match words[i - 1] {
        "ms" | "millisecond" | "milliseconds" => 1,
        "s" | "second" | "seconds" => 1000,
        "minute" | "minutes" => 60_000,
        _ => return None,
    };
    Some(Millis(n * unit))
}

/// `# server: ... --flag value ...`: the options a block runs with.
fn server_options(comment: &str) -> Option<Result<(Config, usize), String>> {
    comment.strip_prefix("server:").map(parse_options)
}

fn parse_options(spec: &str) -> Result<(Config, usize), String> {
    let mut cfg = Config::default();
    let mut capacity = DEFAULT_CAPACITY;
    let words: Vec<&str> = spec
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    let mut i = 0;
    let value = |i: usize| -> Result<u64, String> {
        words
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{} needs a number", words[i]))
    };
    while i < words.len() {
        let w = words[i];
        let mut took = true;
        match w {
            "--capacity" => capacity = value(i)? as usize,
            "--quota" => cfg.quota_per_source = value(i)? as u16,
            "--rate" => cfg.rate_per_sec = value(i)? as u32,
            "--burst" => cfg.rate_burst = value(i)? as u32,
            "--lease" => cfg.lease_default = value(i)? as u32,
            "--lease-max" => cfg.lease_max = value(i)? as u32,
            "--seed-lease" => cfg.seed_lease = value(i)? as u32,
            "--presence-interval-ms" => cfg.presence_interval = Millis(value(i)?),
            "--fanout-per-sec" => cfg.fanout_per_sec = value(i)? as u32,
            "--admin-token" => {
                let t = words.get(i + 1).ok_or("--admin-token needs a value")?;
                let t = Token::parse(t.as_bytes()).map_err(|e| format!("--admin-token: {e}"))?;
                cfg.admin_token = Some(t);
            }
            "--strict" => {
                cfg.strict = true;
                took = false;
            }
            "--no-limits" => {
                cfg.limits = false;
                took = false;
            }
            w if w.starts_with("--") => return Err(format!("unknown option {w}")),
            _ => took = false,
        }
        i += if took { 2 } else { 1 };
    }
    Ok((cfg, capacity))
}

/// Datagrams the server sent, in order.
#[derive(Default)]
struct Sent(VecDeque<(SocketAddr, String)>);

impl Outbox for Sent {
    fn send(&mut self, dst: SocketAddr, payload: &[u8]) -> Result<(), OutboxFull> {
        // Every datagram Parley sends is text; show anything else escaped.
        let text = String::from_utf8(payload.to_vec())
            .unwrap_or_else(|_| format!("<not UTF-8: {payload:?}>"));
        self.0.push_back((dst, text));
        Ok(())
    }
}

/// Replace whole words that `map` renames (cookies and tokens under bless).
fn rename(d: &str, map: &HashMap<String, String>) -> String {
    if map.is_empty() {
        return d.to_string();
    }
    d.split(' ')
        .map(|w| map.get(w).map_or(w, String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_hex16(w: &str) -> bool {
    w.len() == 16
        && w.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Replay one block through a real server. Under `bless`, `<` lines that
/// differ are rewritten in `rewrites` (line number -> new text).
fn replay(
    block: &Block,
    bless: bool,
    rewrites: &mut HashMap<usize, String>,
    errors: &mut Vec<String>,
) {
    let mut cfg = Config::default();
    let mut capacity = DEFAULT_CAPACITY;
    for (n, line) in &block.lines {
        match line {
            Line::Comment(c) => {
                if let Some(opts) = server_options(c) {
                    match opts {
                        Ok((c, cap)) => (cfg, capacity) = (c, cap),
                        Err(e) => errors.push(format!("PROTOCOL.md:{n}: {e}")),
                    }
                }
            }
            _ => break,
        }
    }
    let mut tables = Tables::new(capacity);
    let storage = tables.storage();
    let first = block.lines.first().map_or(0, |l| l.0);
    let mut server = match Server::new(cfg, storage, KEY) {
        Ok(s) => s,
        Err(e) => {
            errors.push(format!(
                "PROTOCOL.md:{first}: the server would not start: {e}"
            ));
            return;
        }
    };
    let mut out = Sent::default();
    let mut now = T0;
    // Datagrams are a second apart, or all at one instant after `# ... at once`.
    let mut step = Millis(1000);
    let mut next_tick = T0;
    let mut client: Option<SocketAddr> = None;
    let mut renames: HashMap<String, String> = HashMap::new();

    // Run the server's timers up to `to`, as an event loop would.
    let run_until = |server: &mut Server<'_>, out: &mut Sent, next_tick: &mut Instant, to| {
        let mut guard = 0;
        while *next_tick <= to && guard < 100_000 {
            let at = *next_tick;
            let want = server.tick(at, out).unwrap_or(to + Millis(1));
            *next_tick = if want > at { want } else { at + Millis(1) };
            guard += 1;
        }
    };

    for (n, line) in &block.lines {
        match line {
            Line::Comment(c) => {
                if let Some(a) = named_client(c) {
                    client = Some(a);
                }
                if c.contains("at once") {
                    step = Millis(0);
                }
                if let Some(d) = later(c) {
                    now = now + d;
                    run_until(&mut server, &mut out, &mut next_tick, now);
                }
            }
            Line::Send(d) | Line::SendInvalid(d) => {
                if is_message(d) {
                    // Client to client: the server never sees it.
                    continue;
                }
                let Some(src) = client else {
                    errors.push(format!(
                        "PROTOCOL.md:{n}: no client named before this datagram"
                    ));
                    return;
                };
                let d = rename(d, &renames);
                if bless {
                    let orig = match line {
                        Line::Send(o) | Line::SendInvalid(o) => o,
                        _ => unreachable!(),
                    };
                    if &d != orig {
                        rewrites.insert(*n, d.clone());
                    }
                }
                now = now + step;
                run_until(&mut server, &mut out, &mut next_tick, now);
                server.handle(now, src, d.as_bytes(), &mut out);
                // An event loop ticks after every batch of datagrams.
                next_tick = now;
                run_until(&mut server, &mut out, &mut next_tick, now);
            }
            Line::Recv(doc) => {
                if is_message(doc) {
                    continue;
                }
                let Some(dst) = client else {
                    errors.push(format!(
                        "PROTOCOL.md:{n}: no client named before this datagram"
                    ));
                    return;
                };
                let orig = doc;
                let doc = rename(doc, &renames);
                if bless && &doc != orig {
                    rewrites.insert(*n, doc.clone());
                }
                let Some(pos) = out.0.iter().position(|(to, _)| *to == dst) else {
                    errors.push(format!(
                        "PROTOCOL.md:{n}: the document says {dst} receives {doc:?}, \
                         but the server sent it nothing more (still unshown: {:?})",
                        out.0
                    ));
                    return;
                };
                let (_, got) = out.0.remove(pos).unwrap();
                if got != doc {
                    if bless {
                        let (gw, dw): (Vec<&str>, Vec<&str>) =
                            (got.split(' ').collect(), doc.split(' ').collect());
                        if gw.len() == dw.len() {
                            for (g, w) in gw.iter().zip(&dw) {
                                if g != w && is_hex16(g) && is_hex16(w) {
                                    renames.insert(w.to_string(), g.to_string());
                                }
                            }
                        }
                        rewrites.insert(*n, got.clone());
                    } else {
                        errors.push(format!(
                            "PROTOCOL.md:{n}: the server sent {dst}\n    {got:?}\n  \
                             but the document says\n    {doc:?}"
                        ));
                    }
                }
            }
        }
    }
    if !out.0.is_empty() {
        let last = block.lines.last().map_or(0, |l| l.0);
        errors.push(format!(
            "PROTOCOL.md:{first}-{last}: the server also sent datagrams the block does not show: {:?}",
            out.0
        ));
    }
    if let Err(e) = server.audit(now) {
        errors.push(format!("PROTOCOL.md:{first}: registry audit failed: {e}"));
    }
}

/// What each client of figures 11 to 13 prints: the `List`s and the
/// `Message` texts it receives, in order (shared/seed/, the compatibility
/// contract).
const FIGURES: [(&str, &[&str]); 3] = [
    (
        "120",
        &[
            "List ['120']",
            "List ['120', '150']",
            "List ['120', '150']",
            "List ['120', '150', '170']",
            "Message hello",
            "List ['120', '150', '170']",
            "List ['120', '170']",
            "List ['120', '170']",
            "List ['120']",
        ],
    ),
    (
        "150",
        &[
            "List ['120', '150']",
            "Message hi",
            "List ['120', '150']",
            "List ['120', '150', '170']",
            "List ['120', '150', '170']",
        ],
    ),
    (
        "170",
        &[
            "List ['120', '150', '170']",
            "List ['120', '150', '170']",
            "List ['120', '170']",
            "Message hello2",
            "List ['120', '170']",
        ],
    ),
];

/// The seed session block must be the session of figures 10 to 13.
fn check_figures(blocks: &[Block], errors: &mut Vec<String>) {
    let Some(block) = blocks.iter().find(|b| {
        b.lines
            .iter()
            .any(|(_, l)| matches!(l, Line::Comment(c) if c.contains("figures 10 to 13")))
    }) else {
        errors.push("PROTOCOL.md: no exchange block mentions \"figures 10 to 13\"".into());
        return;
    };
    // Who is who: the comment naming a client starts with its seed id.
    let mut names: HashMap<SocketAddr, String> = HashMap::new();
    let mut received: HashMap<String, Vec<String>> = HashMap::new();
    let mut sent: HashMap<String, Vec<String>> = HashMap::new();
    let mut who: Option<String> = None;
    for (_, line) in &block.lines {
        match line {
            Line::Comment(c) => {
                if let Some(a) = named_client(c) {
                    let name = c.split(' ').next().unwrap_or("").to_string();
                    let name = names.entry(a).or_insert(name).clone();
                    who = Some(name);
                }
            }
            Line::Recv(d) if d.starts_with("List ") || is_message(d) => {
                if let Some(w) = &who {
                    received.entry(w.clone()).or_default().push(d.clone());
                }
            }
            Line::Send(d) => {
                if let Some(w) = &who {
                    sent.entry(w.clone()).or_default().push(d.clone());
                }
            }
            _ => {}
        }
    }
    for (id, printed) in FIGURES {
        let got = received.get(id).cloned().unwrap_or_default();
        if got != printed {
            errors.push(format!(
                "PROTOCOL.md: in the session of figures 10 to 13, client {id} receives {got:?}, \
                 but the figures show {printed:?}"
            ));
        }
        let first = sent.get(id).and_then(|s| s.first()).cloned();
        if first.as_deref() != Some(&format!("ID {id}")) {
            errors.push(format!(
                "PROTOCOL.md: client {id} of the seed session must start with \"ID {id}\", not {first:?}"
            ));
        }
        let last = sent.get(id).and_then(|s| s.last()).cloned();
        if last.as_deref() != Some(&format!("Quit {id}")) {
            errors.push(format!(
                "PROTOCOL.md: client {id} of the seed session must end with \"Quit {id}\", not {last:?}"
            ));
        }
    }
}

/// Check `doc`; under `bless`, also return it with the server's output
/// written in where it differed.
fn check(doc: &str, bless: bool) -> (Vec<String>, Coverage, Option<String>) {
    let mut errors = Vec::new();
    let mut cov = Coverage::default();
    let blocks = blocks(doc, &mut errors);
    let mut rewrites = HashMap::new();
    for block in &blocks {
        let replayed = block
            .lines
            .iter()
            .any(|(_, l)| matches!(l, Line::Comment(c) if named_client(c).is_some()));
        for (n, line) in &block.lines {
            match line {
                Line::Send(d) | Line::Recv(d) => {
                    match check_datagram(d, matches!(line, Line::Send(_))) {
                        Ok((req, kind, code)) => mark(&mut cov, req, kind, code, replayed),
                        Err(e) => errors.push(format!("PROTOCOL.md:{n}: {d:?}: {e}")),
                    }
                }
                Line::SendInvalid(d) => {
                    let parses = if is_seed_request(d) {
                        SeedRequest::parse(d.as_bytes()).is_ok()
                    } else {
                        Request::parse(d.as_bytes()).is_ok()
                    };
                    if parses {
                        errors.push(format!(
                            "PROTOCOL.md:{n}: {d:?} is marked invalid (`#>`) but parses"
                        ));
                    }
                }
                Line::Comment(_) => {}
            }
        }
        if replayed {
            cov.replayed_blocks += 1;
            replay(block, bless, &mut rewrites, &mut errors);
        }
    }
    check_figures(&blocks, &mut errors);
    let blessed = (bless && !rewrites.is_empty()).then(|| {
        let mut text = String::new();
        for (i, raw) in doc.lines().enumerate() {
            match rewrites.get(&(i + 1)) {
                Some(new) => {
                    let prefix = if raw.starts_with("#> ") {
                        "#> "
                    } else {
                        &raw[..2]
                    };
                    text.push_str(prefix);
                    text.push_str(new);
                }
                None => text.push_str(raw),
            }
            text.push('\n');
        }
        text
    });
    (errors, cov, blessed)
}

#[test]
fn protocol_doc_matches_the_code() {
    let path = doc_path();
    let mut doc =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    if std::env::var_os("PARLEY_DOC_BLESS").is_some() {
        let (_, _, blessed) = check(&doc, true);
        if let Some(new) = blessed {
            std::fs::write(&path, &new).expect("write the blessed document");
            eprintln!("rewrote {}; review the diff", path.display());
            doc = new;
        }
    }
    let (mut errors, cov, _) = check(&doc, false);

    for (i, seen) in cov.requests.iter().enumerate() {
        if !seen {
            errors.push(format!("no example sends a {} request", REQUEST_KINDS[i]));
        }
    }
    for (i, seen) in cov.replies.iter().enumerate() {
        if !seen {
            errors.push(format!("no example shows a {} reply", REPLY_KINDS[i]));
        }
    }
    for code in ErrorCode::ALL {
        if !cov.codes.contains(&code) {
            errors.push(format!("no example shows ERR ... {}", code.as_str()));
        }
    }
    // What the replay must have confirmed against the real server. RESYNC
    // needs more than 512 changes in one session: a syntax-only example.
    for (i, seen) in cov.replayed_requests.iter().enumerate() {
        if !seen {
            errors.push(format!(
                "no replayed example sends a {} request",
                REQUEST_KINDS[i]
            ));
        }
    }
    for (i, seen) in cov.replayed_replies.iter().enumerate() {
        if !seen && REPLY_KINDS[i] != "RESYNC" {
            errors.push(format!(
                "no replayed example shows a {} reply",
                REPLY_KINDS[i]
            ));
        }
    }
    for code in ErrorCode::ALL {
        if !cov.replayed_codes.contains(&code) {
            errors.push(format!(
                "no replayed example shows ERR ... {}",
                code.as_str()
            ));
        }
    }
    assert!(
        cov.replayed_blocks >= 10,
        "only {} blocks were replayed",
        cov.replayed_blocks
    );
    assert!(
        errors.is_empty(),
        "docs/PROTOCOL.md has drifted from the code:\n{}",
        errors.join("\n")
    );
}

/// What a drift case does: its name, the line it changes, how.
type Mutation = (&'static str, &'static str, fn(&str) -> String);

/// Change the first line of an exchange block that starts with `prefix`.
fn mutate(doc: &str, prefix: &str, f: impl Fn(&str) -> String) -> String {
    let mut done = false;
    let mut inside = false;
    let mut out = String::new();
    for line in doc.lines() {
        if line == "```exchange" {
            inside = true;
        } else if line == "```" {
            inside = false;
        }
        if inside && !done && line.starts_with(prefix) {
            out.push_str(&f(line));
            done = true;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert!(done, "the document has no line starting with {prefix:?}");
    out
}

/// The checker itself must catch drift: a wrong byte in a reply, a reply
/// left out, a line out of format, a datagram that is not canonical.
#[test]
fn the_checker_catches_drift() {
    if std::env::var_os("PARLEY_DOC_BLESS").is_some() {
        return; // the other test is rewriting the document
    }
    let doc = std::fs::read_to_string(doc_path()).expect("read docs/PROTOCOL.md");
    let (errors, _, _) = check(&doc, false);
    assert!(errors.is_empty(), "{errors:?}");

    let cases: [Mutation; 5] = [
        // The address in an AT reply, one digit off.
        ("a wrong AT address", "< AT ", |l| {
            let mut s = l.to_string();
            let last = s.pop().unwrap();
            s.push(if last == '1' { '2' } else { '1' });
            s
        }),
        // A REGD left out: the server's datagram goes unshown.
        ("a missing REGD", "< REGD ", |_| "# (left out)".to_string()),
        // `>HELLO`: not the format.
        ("a line out of format", "> HELLO ", |l| {
            l.replacen("> ", ">", 1)
        }),
        // HELLO padding that is not dots does not re-emit byte for byte.
        ("non-canonical padding", "> HELLO ", |l| {
            let mut s = l.to_string();
            s.pop();
            s.push(':');
            s
        }),
        // A reply the seed figures do not print.
        (
            "a changed seed List",
            "< List ['120', '150', '170']",
            |_| "< List ['120', '170', '150']".to_string(),
        ),
    ];
    for (what, prefix, f) in cases {
        let bad = mutate(&doc, prefix, f);
        let (errors, _, _) = check(&bad, false);
        assert!(!errors.is_empty(), "{what} went unnoticed");
    }
}

#[test]
fn annotations_are_read_as_documented() {
    assert_eq!(
        named_client("alice (203.0.113.10:40001) registers"),
        Some("203.0.113.10:40001".parse().unwrap())
    );
    assert_eq!(
        named_client("120 (127.0.0.1:10520), as in figure 11 (page 8):"),
        Some("127.0.0.1:10520".parse().unwrap())
    );
    assert_eq!(named_client("Peer ('127.0.0.1', 10107) is a tuple"), None);
    assert_eq!(later("3 minutes later:"), Some(Millis(180_000)));
    assert_eq!(later("150 ms later, bob"), Some(Millis(150)));
    assert_eq!(later("later on"), None);
    let (cfg, cap) = server_options("server: parley-server --quota 1 --strict")
        .unwrap()
        .unwrap();
    assert_eq!((cfg.quota_per_source, cfg.strict, cap), (1, true, 65_536));
    assert!(
        server_options("server: parley-server --frobnicate")
            .unwrap()
            .is_err()
    );
}

/// The peer-message kinds, numbered by an exhaustive match.
const PEER_KINDS: [&str; 5] = ["CHAT", "ACK", "PROBE", "PROBED", "Message"];

fn peer_kind(m: &PeerMsg<'_>) -> usize {
    match m {
        PeerMsg::Chat(_) => 0,
        PeerMsg::Ack { .. } => 1,
        PeerMsg::Probe { .. } => 2,
        PeerMsg::Probed { .. } => 3,
        PeerMsg::Seed(_) => 4,
    }
}

fn is_peer_verb(d: &str) -> bool {
    ["CHAT ", "ACK ", "PROBE ", "PROBED ", "Message "]
        .iter()
        .any(|v| d.starts_with(v))
}

#[test]
fn peer_examples_match_the_peer_codec() {
    let doc = std::fs::read_to_string(doc_path()).expect("read PROTOCOL.md");
    let at = doc.find(PEER_HEADING).expect("the peer-messages heading");
    // Lines after the heading, numbered as in the document.
    let first_line = doc[..at].lines().count() + 1;
    let section = &doc[at + PEER_HEADING.len()..];
    let mut errors = Vec::new();
    let mut seen = [false; PEER_KINDS.len()];
    let mut lines = 0;
    for block in blocks(section, &mut errors) {
        for (n, line) in &block.lines {
            let n = n + first_line - 1;
            let (Line::Send(d) | Line::Recv(d)) = line else {
                continue;
            };
            lines += 1;
            if !is_peer_verb(d) {
                let sent = matches!(line, Line::Send(_));
                if let Err(e) = check_datagram(d, sent) {
                    errors.push(format!("PROTOCOL.md:{n}: {d:?}: {e}"));
                }
                continue;
            }
            match PeerMsg::parse(d.as_bytes()) {
                Err(e) => errors.push(format!("PROTOCOL.md:{n}: {d:?} does not parse: {e}")),
                Ok(m) => {
                    seen[peer_kind(&m)] = true;
                    let mut buf = [0u8; 2048];
                    match m.emit(&mut buf) {
                        Ok(len) if &buf[..len] == d.as_bytes() => {}
                        Ok(len) => errors.push(format!(
                            "PROTOCOL.md:{n}: {d:?} re-emits as {:?}",
                            String::from_utf8_lossy(&buf[..len])
                        )),
                        Err(e) => errors.push(format!("PROTOCOL.md:{n}: {d:?}: {e}")),
                    }
                }
            }
        }
    }
    for (kind, shown) in PEER_KINDS.iter().zip(seen) {
        if !shown {
            errors.push(format!("no peer example shows a {kind} message"));
        }
    }
    assert!(lines > 0, "the peer section has no exchange lines");
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
