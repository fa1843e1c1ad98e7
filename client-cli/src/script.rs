//! The scriptable subcommands: each does one thing, prints its result on
//! stdout, and exits non-zero with a sentence on stderr when it fails.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use proto_core::client::{Config, Event, Failure, Outcome, What};
use proto_core::secure::PublicKey;
use proto_core::wire::{Id, IdBuf};

use crate::known_peers::KnownPeers;
use crate::online::Pages;
use crate::session::Session;
use crate::show::Notice;
use crate::{Common, Fail};
use crate::{identity, show};

const STEP: Duration = Duration::from_millis(200);

fn config(c: &Common, id: Option<IdBuf>) -> Config {
    c.config(id)
}

fn need_id(c: &Common) -> Result<IdBuf, Fail> {
    c.id.ok_or_else(|| Fail::usage("this command needs --id NAME"))
}

/// Run the session until `f` returns `Some`, or fail after `limit`.
fn until<T>(
    s: &mut Session,
    limit: Duration,
    what: &str,
    f: impl FnMut(&Event<'_>) -> Option<Result<T, Fail>>,
) -> Result<T, Fail> {
    s.wait(limit, f).unwrap_or_else(|| {
        Err(Fail::run(format!(
            "gave up {what} after {} s",
            limit.as_secs()
        )))
    })
}

/// Why a command failed, from its `Failed` event.
fn failed(what: What, id: Option<Id<'_>>, reason: &Failure) -> Fail {
    let id = id.map(|i| i.as_str());
    Fail::run(Notice::Failed { what, id, reason }.to_string())
}

/// Register and wait for the answer.
fn register(s: &mut Session, c: &Common) -> Result<(), Fail> {
    let server = c.server_text.clone();
    until(s, c.timeout, "registering", |e| match e {
        Event::Registered { .. } => Some(Ok(())),
        Event::RegistrationFailed(f) => Some(Err(Fail::run(format!(
            "cannot register with {server}: {f}"
        )))),
        _ => None,
    })
}

/// What waiting for a message's fate came to.
enum Fate {
    Done(Result<String, Fail>),
    /// The peer offered another key than the pinned one: (pinned, offered).
    KeyChanged([u8; 32], [u8; 32]),
}

/// Keep a first-seen key in the known-peers file; the line to show, if any.
pub fn keep_key(known: &mut KnownPeers, e: &Event<'_>) -> Option<String> {
    let Event::KeyFirstSeen { id, key } = e else {
        return None;
    };
    let id = id.as_str();
    Some(match known.add_new(id, key.0) {
        Ok(None) => Notice::KeyFirstSeen {
            id,
            key: &key.0,
            file: known.path(),
        }
        .line(),
        Ok(Some(old)) => format!(
            "{}\n!!! (another parley kept {id}'s key in {} while this one ran; that key stays)",
            Notice::KeyChanged {
                id,
                pinned: &old,
                offered: &key.0
            }
            .line(),
            known.path().display()
        ),
        Err(err) => format!("! could not keep {id}'s key: {err}"),
    })
}

/// What event `e` says of message `msg` to `to`, sent the seed's way if
/// `seed`; `None` if nothing.
fn fate(e: &Event<'_>, to: Id<'_>, msg: u32, seed: bool) -> Option<Fate> {
    Some(match e {
        Event::KeyChanged {
            id,
            pinned,
            offered,
        } if *id == to => Fate::KeyChanged(pinned.0, offered.0),
        Event::Sent {
            msg: m,
            to,
            outcome,
        } if *m == msg => Fate::Done(match outcome {
            Outcome::Delivered => Ok(format!("delivered to {to}")),
            Outcome::NotDelivered(reason) => {
                let to = to.as_str();
                let why = Notice::NotDelivered { to, reason };
                Err(Fail::run(why.to_string()))
            }
            Outcome::Unconfirmed if seed => Ok(format!(
                "sent to {to} as a seed message (the seed client cannot confirm delivery)"
            )),
            Outcome::Unconfirmed => Err(Fail::run(format!(
                "{} (use --seed if {to} runs the seed's client)",
                Notice::Unconfirmed { to: to.as_str() }
            ))),
        }),
        _ => return None,
    })
}

/// Why nothing was sent to `to`, whose key changed, without
/// `--accept-new-key`.
fn key_refused(to: Id<'_>, pinned: &[u8; 32], offered: &[u8; 32]) -> Fail {
    Fail::run(format!(
        "{to}'s key has changed: the key kept for {to} is {}, the one offered now is {}; nothing was sent. \
Someone may be pretending to be {to}. Ask {to} (not through parley) whether they made a new key and compare \
`parley verify {to}`; only then send again with --accept-new-key",
        identity::fingerprint(pinned),
        identity::fingerprint(offered),
    ))
}

/// `parley send --id ME --to PEER TEXT`.
pub fn send(
    c: Common,
    to: IdBuf,
    text: &str,
    seed: bool,
    accept_new_key: bool,
    json: bool,
) -> Result<(), Fail> {
    let me = need_id(&c)?;
    let ident = c.identity()?;
    let mut known = c.known_peers()?;
    let to_id = to.as_id().ok_or_else(|| Fail::usage("bad --to id"))?;
    let mut s = Session::open(config(&c, Some(me)), c.bind, Some((&ident, &known)))
        .map_err(|e| Fail::run(e.to_string()))?;
    register(&mut s, &c)?;
    if seed {
        s.with(|cl, now| cl.mark_seed(now, to_id));
    }
    let started = std::time::Instant::now();
    let msg = s
        .with(|cl, now| cl.send_message(now, to_id, text))
        .map_err(|e| Fail::usage(e.to_string()))?;
    // A changed key is settled at most once: accepted, the next is final.
    let mut accepted = false;
    let r = loop {
        let fate = until(&mut s, c.timeout, "waiting for the acknowledgement", |e| {
            if let Some(line) = keep_key(&mut known, e) {
                eprintln!("{line}");
            }
            fate(e, to_id, msg, seed).map(Ok)
        });
        match fate {
            Err(e) => break Err(e),
            Ok(Fate::Done(r)) => break r,
            Ok(Fate::KeyChanged(pinned, offered)) if accept_new_key && !accepted => {
                accepted = true;
                known
                    .set(to_id.as_str(), offered)
                    .map_err(|e| Fail::run(e.to_string()))?;
                s.with(|cl, now| cl.accept_key(now, to_id, PublicKey(offered)))
                    .map_err(|e| Fail::run(e.to_string()))?;
                eprintln!(
                    "parley: accepted {to_id}'s new key {} in place of {} (--accept-new-key); {} updated",
                    identity::fingerprint(&offered),
                    identity::fingerprint(&pinned),
                    known.path().display()
                );
            }
            Ok(Fate::KeyChanged(pinned, offered)) => {
                break Err(key_refused(to_id, &pinned, &offered));
            }
        }
    };
    let took = started.elapsed().as_millis();
    // The path the acknowledgement found: what the NAT matrix reports.
    let now = s.now();
    let path = s.client().route(now, to_id);
    s.sign_off();
    let r = r?;
    let word = path.map_or(if seed { "seed" } else { "unknown" }, |p| p.word());
    if json {
        println!(
            "{{\"to\":{},\"delivered\":{},\"path\":\"{word}\",\"ms\":{took}}}",
            show::json_str(to_id.as_str()),
            !seed
        );
    } else {
        match path {
            Some(p) => println!("{r} ({p})"),
            None => println!("{r}"),
        }
    }
    Ok(())
}

/// `parley listen --id ME [--json]`: until SIGINT or SIGTERM.
pub fn listen(c: Common, json: bool) -> Result<(), Fail> {
    let me = need_id(&c)?;
    let ident = c.identity()?;
    let mut known = c.known_peers()?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| Fail::run(e.to_string()))?;
    }
    let mut s = Session::open(config(&c, Some(me)), c.bind, Some((&ident, &known)))
        .map_err(|e| Fail::run(e.to_string()))?;
    register(&mut s, &c)?;
    let seen = s.client().observed_addr();
    eprintln!(
        "listening as {} (the server sees {}); Ctrl-C to stop",
        me.as_id().map_or("?", |i| i.as_str()),
        seen.map_or("?".into(), |a| a.to_string())
    );
    let mut out = std::io::stdout().lock();
    while !stop.load(Ordering::Relaxed) {
        s.step(STEP);
        while let Some(e) = s.client().poll_event() {
            if let Some((_, line)) = show::incoming(&e, json) {
                if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                    // Nobody reads us any more.
                    stop.store(true, Ordering::Relaxed);
                }
                continue;
            }
            match e {
                Event::RegistrationFailed(f) => {
                    return Err(Fail::run(format!("lost the registration: {f}")));
                }
                Event::KeyFirstSeen { .. } => {
                    if let Some(line) = keep_key(&mut known, &e) {
                        eprintln!("{line}");
                    }
                }
                Event::KeyChanged { id, .. } => {
                    if let Some(n) = Notice::of(&e, &c.server_text) {
                        eprintln!("{}", n.line());
                    }
                    eprintln!(
                        "!!! (parley listen accepts no keys: use the chat's /accept {id} or parley send --accept-new-key)"
                    );
                }
                e => {
                    if let Some(n) = Notice::of(&e, &c.server_text) {
                        eprintln!("{}", n.line());
                    }
                }
            }
        }
    }
    s.sign_off();
    Ok(())
}

/// `parley who`: every online id, one per line, page after page.
pub fn who(c: Common) -> Result<(), Fail> {
    let mut s =
        Session::open(config(&c, None), c.bind, None).map_err(|e| Fail::run(e.to_string()))?;
    let mut pages = Pages::up_to(usize::MAX);
    let mut cursor = 0;
    loop {
        s.with(|cl, now| cl.list(now, cursor))
            .map_err(|e| Fail::run(e.to_string()))?;
        let (next, ids) = until(&mut s, c.timeout, "listing", |e| match e {
            Event::Page { next, ids } => Some(Ok((
                *next,
                ids.iter()
                    .map(|i| i.as_str().to_string())
                    .collect::<Vec<_>>(),
            ))),
            Event::Failed { what, id, reason } => Some(Err(failed(*what, *id, reason))),
            _ => None,
        })?;
        for id in &ids {
            println!("{id}");
        }
        match pages.after(next, ids.len()) {
            Some(next) => cursor = next,
            None => return Ok(()),
        }
    }
}

/// `parley lookup ID`: `ID ADDR`.
pub fn lookup(c: Common, id: IdBuf) -> Result<(), Fail> {
    let want: Id<'_> = id.as_id().ok_or_else(|| Fail::usage("bad id"))?;
    let mut s =
        Session::open(config(&c, None), c.bind, None).map_err(|e| Fail::run(e.to_string()))?;
    s.with(|cl, now| cl.lookup(now, want))
        .map_err(|e| Fail::run(e.to_string()))?;
    let line = until(&mut s, c.timeout, "looking up", |e| match e {
        Event::Found { id, addr } => Some(Ok(format!("{id} {addr}"))),
        Event::Failed { what, id, reason } => Some(Err(failed(*what, *id, reason))),
        _ => None,
    })?;
    println!("{line}");
    Ok(())
}

/// `parley ping`: the round trip and the address the server sees.
pub fn ping(c: Common) -> Result<(), Fail> {
    let mut s =
        Session::open(config(&c, None), c.bind, None).map_err(|e| Fail::run(e.to_string()))?;
    // The core counts whole milliseconds; loopback needs finer.
    let t0 = Instant::now();
    s.with(|cl, now| cl.ping(now))
        .map_err(|e| Fail::run(e.to_string()))?;
    let server = c.server_text.clone();
    let line = until(&mut s, c.timeout, "pinging", |e| match e {
        Event::Pong { addr, .. } => Some(Ok(format!(
            "reply from {server}: round trip {:.3} ms, it sees you as {addr}",
            t0.elapsed().as_secs_f64() * 1000.0
        ))),
        Event::Failed { reason, .. } => {
            Some(Err(Fail::run(format!("no reply from {server}: {reason}"))))
        }
        _ => None,
    })?;
    println!("{line}");
    Ok(())
}

/// `parley whoami [--id ME]`: the id, the key's fingerprint, the key and
/// where it is kept, one `name: value` a line.
pub fn whoami(c: Common) -> Result<(), Fail> {
    let me = c.identity()?;
    let path = c.identity_path()?;
    if let Some(id) = c.id.as_ref().and_then(IdBuf::as_id) {
        println!("id: {id}");
    }
    let key = me.public();
    println!("fingerprint: {}", identity::fingerprint(&key));
    let mut hex = String::new();
    crate::files::push_hex(&mut hex, &key);
    println!("key: {hex}");
    println!("identity: {}", path.display());
    Ok(())
}

/// `parley verify ID`: the safety number of our key and the one pinned
/// for ID, for the two people to compare by voice. Offline: it reads the
/// identity and the known-peers file only.
pub fn verify(c: Common, peer: IdBuf) -> Result<(), Fail> {
    let peer = peer.as_id().ok_or_else(|| Fail::usage("bad id"))?;
    let me = c.identity()?;
    let known = c.known_peers()?;
    let theirs = known.get(peer.as_str()).ok_or_else(|| {
        Fail::run(format!(
            "no key is known for {peer} yet (none in {}): exchange a message first",
            known.path().display()
        ))
    })?;
    println!("{}", identity::safety_line(&me.public(), &theirs));
    eprintln!(
        "parley: compare these digits with {peer}'s `parley verify` (or /verify) for you, by voice or in person; if they differ, someone is in between"
    );
    Ok(())
}
