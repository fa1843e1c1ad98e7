//! The scriptable subcommands: each does one thing, prints its result on
//! stdout, and exits non-zero with a sentence on stderr when it fails.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use proto_core::client::{Config, Event};
use proto_core::wire::{Id, IdBuf};

use crate::session::Session;
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
    mut f: impl FnMut(&Event<'_>) -> Option<Result<T, Fail>>,
) -> Result<T, Fail> {
    let deadline = Instant::now() + limit;
    loop {
        while let Some(e) = s.client().poll_event() {
            if let Some(r) = f(&e) {
                return r;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Fail::run(format!(
                "gave up {what} after {} s",
                limit.as_secs()
            )));
        }
        s.step(left.min(STEP));
    }
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

/// Sign off: QUIT and wait briefly for BYE (the lease would expire anyway).
fn sign_off(s: &mut Session) {
    if s.with(|cl, now| cl.quit(now)).is_ok() {
        let _ = until(s, Duration::from_secs(2), "signing off", |e| match e {
            Event::Bye | Event::Failed { .. } => Some(Ok(())),
            _ => None,
        });
    }
}

/// `parley send --id ME --to PEER TEXT`.
pub fn send(c: Common, to: IdBuf, text: &str, seed: bool) -> Result<(), Fail> {
    let me = need_id(&c)?;
    let _ident = c.identity()?;
    let _known = c.known_peers()?;
    let to_id = to.as_id().ok_or_else(|| Fail::usage("bad --to id"))?;
    let mut s =
        Session::open(config(&c, Some(me)), c.bind).map_err(|e| Fail::run(e.to_string()))?;
    register(&mut s, &c)?;
    if seed {
        s.with(|cl, now| cl.mark_seed(now, to_id));
    }
    let msg = s
        .with(|cl, now| cl.send_message(now, to_id, text))
        .map_err(|e| Fail::usage(e.to_string()))?;
    let r = until(
        &mut s,
        c.timeout,
        "waiting for the acknowledgement",
        |e| match e {
            Event::Delivered { msg: m, to } if *m == msg => Some(Ok(format!("delivered to {to}"))),
            Event::NotDelivered { msg: m, to, reason } if *m == msg => Some(Err(Fail::run(
                show::not_delivered(to.as_str(), reason)[2..].to_string(),
            ))),
            Event::SentUnconfirmed { msg: m, to } if *m == msg => Some(if seed {
                Ok(format!(
                    "sent to {to} as a seed message (the seed client cannot confirm delivery)"
                ))
            } else {
                Err(Fail::run(format!(
                    "{} (use --seed if {to} runs the seed's client)",
                    &show::unconfirmed(to.as_str())[2..]
                )))
            }),
            _ => None,
        },
    );
    sign_off(&mut s);
    println!("{}", r?);
    Ok(())
}

/// `parley listen --id ME [--json]`: until SIGINT or SIGTERM.
pub fn listen(c: Common, json: bool) -> Result<(), Fail> {
    let me = need_id(&c)?;
    let _ident = c.identity()?;
    let _known = c.known_peers()?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| Fail::run(e.to_string()))?;
    }
    let mut s =
        Session::open(config(&c, Some(me)), c.bind).map_err(|e| Fail::run(e.to_string()))?;
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
            match e {
                Event::Message { from, text, seed } => {
                    let from = from.map(|f| f.as_str());
                    let line = if json {
                        show::message_json(from, text, seed)
                    } else {
                        show::message(from, text, seed)
                    };
                    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                        // Nobody reads us any more.
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                Event::RegistrationFailed(f) => {
                    return Err(Fail::run(format!("lost the registration: {f}")));
                }
                e => {
                    if let Some(n) = show::notice(&e, &c.server_text) {
                        eprintln!("{n}");
                    }
                }
            }
        }
    }
    sign_off(&mut s);
    Ok(())
}

/// `parley who`: every online id, one per line, page after page.
pub fn who(c: Common) -> Result<(), Fail> {
    let mut s = Session::open(config(&c, None), c.bind).map_err(|e| Fail::run(e.to_string()))?;
    let mut cursor = 0;
    // Bounded: a server holds at most 4 Mi ids, and a page holds many.
    for _ in 0..100_000 {
        s.with(|cl, now| cl.list(now, cursor))
            .map_err(|e| Fail::run(e.to_string()))?;
        let (next, ids) = until(&mut s, c.timeout, "listing", |e| match e {
            Event::Page { next, ids } => Some(Ok((
                *next,
                ids.iter()
                    .map(|i| i.as_str().to_string())
                    .collect::<Vec<_>>(),
            ))),
            Event::Failed { what, id, reason } => Some(Err(Fail::run(
                show::failed(*what, id.map(|i| i.as_str()), reason)[2..].to_string(),
            ))),
            _ => None,
        })?;
        for id in ids {
            println!("{id}");
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
    Ok(())
}

/// `parley lookup ID`: `ID ADDR`.
pub fn lookup(c: Common, id: IdBuf) -> Result<(), Fail> {
    let want: Id<'_> = id.as_id().ok_or_else(|| Fail::usage("bad id"))?;
    let mut s = Session::open(config(&c, None), c.bind).map_err(|e| Fail::run(e.to_string()))?;
    s.with(|cl, now| cl.lookup(now, want))
        .map_err(|e| Fail::run(e.to_string()))?;
    let line = until(&mut s, c.timeout, "looking up", |e| match e {
        Event::Found { id, addr } => Some(Ok(format!("{id} {addr}"))),
        Event::Failed { what, id, reason } => Some(Err(Fail::run(
            show::failed(*what, id.map(|i| i.as_str()), reason)[2..].to_string(),
        ))),
        _ => None,
    })?;
    println!("{line}");
    Ok(())
}

/// `parley ping`: the round trip and the address the server sees.
pub fn ping(c: Common) -> Result<(), Fail> {
    let mut s = Session::open(config(&c, None), c.bind).map_err(|e| Fail::run(e.to_string()))?;
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
