//! How events read, for people and for scripts.

use std::fmt::{self, Write};
use std::net::SocketAddr;
use std::path::Path;

use proto_core::client::{Event, Failure, Outcome, Undelivered, What};

use crate::identity::fingerprint;

/// A message line as people read it: `[alice] hello`. A message that did
/// not come through a session with the sender's key (a seed client's plain
/// `Message`) proves nothing about who sent it, and says so: the id shown
/// is only whoever the server last said was at that address.
pub fn message(from: Option<&str>, text: &str, seed: bool, verified: bool) -> String {
    let who = from.unwrap_or("someone");
    let text = clean(text);
    match (verified, seed) {
        (true, _) => format!("[{who}] {text}"),
        (false, true) => format!("[{who} (unverified, seed client)] {text}"),
        (false, false) => format!("[{who} (unverified)] {text}"),
    }
}

/// A message as one JSON object on one line; `authenticated` is false
/// for a seed client's plain text, whose sender nothing proves.
pub fn message_json(from: Option<&str>, text: &str, seed: bool, verified: bool) -> String {
    let from = match from {
        Some(f) => json_str(f),
        None => "null".into(),
    };
    format!(
        "{{\"from\":{from},\"text\":{},\"seed\":{seed},\"authenticated\":{}}}",
        json_str(text),
        verified
    )
}

/// Text from the network with terminal control characters made visible,
/// so a peer cannot move the cursor or recolour the screen.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The line a message event shows as (one JSON object if `json`), with
/// the id of whoever the server says sent it; `None` for other events.
pub fn incoming<'e>(e: &'e Event<'_>, json: bool) -> Option<(Option<&'e str>, String)> {
    let Event::Message {
        from,
        text,
        seed,
        verified,
    } = e
    else {
        return None;
    };
    let from = from.as_ref().map(|f| f.as_str());
    let line = if json {
        message_json(from, text, *seed, *verified)
    } else {
        message(from, text, *seed, *verified)
    };
    Some((from, line))
}

/// Something to tell the person, as a value: its sentence is its
/// `Display`, said here once for the chat, `listen` and the scriptable
/// commands' errors; [`Notice::line`] puts the chat's mark before it.
pub enum Notice<'a> {
    /// The server lost our registration and we registered again.
    RegisteredAgain { id: &'a str, addr: SocketAddr },
    /// The server refused our registration.
    CannotRegister(&'a Failure),
    /// The server at this address stopped answering.
    ServerUnreachable(&'a str),
    /// It answers again.
    ServerBack(&'a str),
    /// A ping's answer, with the round trip in milliseconds.
    Pong {
        server: &'a str,
        addr: SocketAddr,
        rtt: u64,
    },
    /// Where the server sees an id.
    Found { id: &'a str, addr: SocketAddr },
    /// A command failed.
    Failed {
        what: What,
        id: Option<&'a str>,
        reason: &'a Failure,
    },
    /// Someone came online.
    Joined(&'a str),
    /// Someone left.
    Left(&'a str),
    /// Presence notices were lost.
    Resync,
    /// A message did not get through.
    NotDelivered {
        to: &'a str,
        reason: &'a Undelivered,
    },
    /// A message went the seed's way, unconfirmed.
    Unconfirmed { to: &'a str },
    /// A key seen for the first time, kept in `file`.
    KeyFirstSeen {
        id: &'a str,
        key: &'a [u8; 32],
        file: &'a Path,
    },
    /// A peer offers another key than the one pinned for it.
    KeyChanged {
        id: &'a str,
        pinned: &'a [u8; 32],
        offered: &'a [u8; 32],
    },
}

impl<'a> Notice<'a> {
    /// What people need to be told of event `e` (messages and pages are
    /// shown otherwise), from the server written as `server`.
    pub fn of(e: &'a Event<'_>, server: &'a str) -> Option<Notice<'a>> {
        Some(match e {
            Event::Registered {
                id,
                addr,
                again: true,
                ..
            } => Notice::RegisteredAgain {
                id: id.as_str(),
                addr: *addr,
            },
            Event::RegistrationFailed(f) => Notice::CannotRegister(f),
            Event::ServerUnreachable => Notice::ServerUnreachable(server),
            Event::ServerBack => Notice::ServerBack(server),
            Event::Pong { addr, rtt } => Notice::Pong {
                server,
                addr: *addr,
                rtt: rtt.0,
            },
            Event::Found { id, addr } => Notice::Found {
                id: id.as_str(),
                addr: *addr,
            },
            Event::Failed { what, id, reason } => Notice::Failed {
                what: *what,
                id: id.as_ref().map(|i| i.as_str()),
                reason,
            },
            Event::Joined(id) => Notice::Joined(id.as_str()),
            Event::Left(id) => Notice::Left(id.as_str()),
            Event::Resync => Notice::Resync,
            Event::Sent { to, outcome, .. } => match outcome {
                Outcome::NotDelivered(reason) => Notice::NotDelivered {
                    to: to.as_str(),
                    reason,
                },
                Outcome::Unconfirmed => Notice::Unconfirmed { to: to.as_str() },
                Outcome::Delivered => return None,
            },
            Event::KeyChanged {
                id,
                pinned,
                offered,
            } => Notice::KeyChanged {
                id: id.as_str(),
                pinned: &pinned.0,
                offered: &offered.0,
            },
            Event::Registered { .. }
            | Event::Message { .. }
            | Event::Page { .. }
            | Event::Bye
            | Event::KeyFirstSeen { .. } => return None,
        })
    }

    /// The line the chat and `listen` show: `* news` or `! trouble`; a
    /// changed key's warning marks each of its lines itself.
    pub fn line(&self) -> String {
        let mark = match self {
            Notice::KeyChanged { .. } => return self.to_string(),
            Notice::CannotRegister(_)
            | Notice::ServerUnreachable(_)
            | Notice::Failed { .. }
            | Notice::NotDelivered { .. }
            | Notice::Unconfirmed { .. } => '!',
            _ => '*',
        };
        format!("{mark} {self}")
    }
}

impl fmt::Display for Notice<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::RegisteredAgain { id, addr } => write!(
                f,
                "the server had forgotten us (it restarted?); registered again as {id}, seen as {addr}"
            ),
            Notice::CannotRegister(why) => write!(f, "cannot register: {why}"),
            Notice::ServerUnreachable(server) => {
                write!(f, "the server at {server} does not answer; still trying")
            }
            Notice::ServerBack(server) => write!(f, "the server at {server} answers again"),
            Notice::Pong { server, addr, rtt } => write!(
                f,
                "server {server}: round trip {rtt} ms, it sees you as {addr}"
            ),
            Notice::Found { id, addr } => write!(f, "{id} is at {addr}"),
            Notice::Failed { what, id, reason } => match (what, id) {
                (What::Lookup, Some(id)) => write!(f, "cannot find {id}: {reason}"),
                (What::List, _) => write!(f, "cannot list who is online: {reason}"),
                (What::Ping, _) => write!(f, "no answer to the ping: {reason}"),
                (What::Quit, _) => write!(f, "could not sign off: {reason}"),
                (What::Subscribe, _) => write!(f, "no join/leave notices: {reason}"),
                (_, _) => write!(f, "{reason}"),
            },
            Notice::Joined(id) => write!(f, "{id} joined"),
            Notice::Left(id) => write!(f, "{id} left"),
            Notice::Resync => write!(
                f,
                "some join/leave notices were lost; /who shows who is online now"
            ),
            Notice::NotDelivered { to, reason } => {
                write!(f, "message to {to} not delivered: {reason}")
            }
            Notice::Unconfirmed { to } => write!(
                f,
                "{to} did not answer as a Parley client; sent as a seed `Message`, which cannot confirm delivery"
            ),
            Notice::KeyFirstSeen { id, key, file } => write!(
                f,
                "first contact with {id}: key {} kept in {} (/verify {id} shows the number to compare)",
                fingerprint(key),
                file.display()
            ),
            // Several lines, each starting with `!!!`, so that it cannot
            // scroll by unseen.
            Notice::KeyChanged {
                id,
                pinned,
                offered,
            } => write!(
                f,
                "\
!!! WARNING: {id}'s KEY HAS CHANGED. Someone may be pretending to be {id}.
!!!   key first seen for {id}: {}
!!!   key offered now:          {}
!!! Nothing is sent to {id} until you accept the new key. Ask {id} (by voice,
!!! not through this chat) whether they made a new key, and compare /verify {id}
!!! with theirs; only then type /accept {id}.",
                fingerprint(pinned),
                fingerprint(offered)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes() {
        assert_eq!(json_str("a\"b\\c\u{1}"), r#""a\"b\\c\u0001""#);
        assert_eq!(
            message_json(Some("al"), "hi", false, true),
            r#"{"from":"al","text":"hi","seed":false,"authenticated":true}"#
        );
        assert_eq!(
            message_json(None, "x", true, false),
            r#"{"from":null,"text":"x","seed":true,"authenticated":false}"#
        );
    }

    #[test]
    fn a_changed_key_is_loud_and_says_what_to_do() {
        let w = Notice::KeyChanged {
            id: "bob",
            pinned: &[1; 32],
            offered: &[2; 32],
        }
        .line();
        assert!(w.lines().count() >= 5);
        assert!(w.lines().all(|l| l.starts_with("!!!")), "{w}");
        assert!(w.contains("bob's KEY HAS CHANGED"));
        assert!(w.contains(&fingerprint(&[1; 32])) && w.contains(&fingerprint(&[2; 32])));
        assert!(w.contains("/verify bob") && w.contains("/accept bob"));
    }

    #[test]
    fn control_characters_cannot_reach_the_terminal() {
        assert_eq!(clean("a\u{1b}[2Jb"), "a\u{fffd}[2Jb");
        assert_eq!(message(Some("x"), "hi", false, true), "[x] hi");
        assert_eq!(
            message(Some("x"), "hi", true, false),
            "[x (unverified, seed client)] hi"
        );
        assert_eq!(
            message(None, "hi", true, false),
            "[someone (unverified, seed client)] hi"
        );
        assert_eq!(
            message(Some("x"), "hi", false, false),
            "[x (unverified)] hi"
        );
    }
}
