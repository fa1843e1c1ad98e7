//! How events read, for people and for scripts.

use std::fmt::Write;

use proto_core::client::{Event, Failure, Undelivered, What};

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

/// A notice line for everything but messages and pages, or `None` for
/// events people need not see.
pub fn notice(e: &Event<'_>, server: &str) -> Option<String> {
    Some(match e {
        Event::Registered {
            id,
            addr,
            again: true,
            ..
        } => format!(
            "* the server had forgotten us (it restarted?); registered again as {id}, seen as {addr}"
        ),
        Event::Registered { .. } => return None,
        Event::RegistrationFailed(f) => format!("! cannot register: {f}"),
        Event::ServerUnreachable => {
            format!("! the server at {server} does not answer; still trying")
        }
        Event::ServerBack => format!("* the server at {server} answers again"),
        Event::Pong { addr, rtt } => {
            format!(
                "* server {server}: round trip {} ms, it sees you as {addr}",
                rtt.0
            )
        }
        Event::Found { id, addr } => format!("* {id} is at {addr}"),
        Event::Failed { what, id, reason } => failed(*what, id.map(|i| i.as_str()), reason),
        Event::Joined(id) => format!("* {id} joined"),
        Event::Left(id) => format!("* {id} left"),
        Event::Resync => "* some join/leave notices were lost; /who shows who is online now".into(),
        Event::Message { .. } | Event::Page { .. } => return None,
        Event::Delivered { .. } => return None,
        Event::NotDelivered { to, reason, .. } => not_delivered(to.as_str(), reason),
        Event::SentUnconfirmed { to, .. } => unconfirmed(to.as_str()),
        Event::Bye => return None,
        Event::KeyFirstSeen { .. } => return None,
        Event::KeyChanged {
            id,
            pinned,
            offered,
        } => key_changed(id.as_str(), &pinned.0, &offered.0),
    })
}

/// Why a command failed, as a sentence.
pub fn failed(what: What, id: Option<&str>, reason: &Failure) -> String {
    match (what, id) {
        (What::Lookup, Some(id)) => format!("! cannot find {id}: {reason}"),
        (What::List, _) => format!("! cannot list who is online: {reason}"),
        (What::Ping, _) => format!("! no answer to the ping: {reason}"),
        (What::Quit, _) => format!("! could not sign off: {reason}"),
        (What::Subscribe, _) => format!("! no join/leave notices: {reason}"),
        (_, _) => format!("! {reason}"),
    }
}

/// A message that did not get through, as a sentence.
pub fn not_delivered(to: &str, reason: &Undelivered) -> String {
    format!("! message to {to} not delivered: {reason}")
}

/// A message sent the seed's way, as a sentence.
pub fn unconfirmed(to: &str) -> String {
    format!(
        "! {to} did not answer as a Parley client; sent as a seed `Message`, which cannot confirm delivery"
    )
}

/// The warning for a peer whose key is not the one pinned for it: several
/// lines, each starting with `!!!`, so that it cannot scroll by unseen.
pub fn key_changed(id: &str, pinned: &[u8; 32], offered: &[u8; 32]) -> String {
    format!(
        "\
!!! WARNING: {id}'s KEY HAS CHANGED. Someone may be pretending to be {id}.
!!!   key first seen for {id}: {}
!!!   key offered now:          {}
!!! Nothing is sent to {id} until you accept the new key. Ask {id} (by voice,
!!! not through this chat) whether they made a new key, and compare /verify {id}
!!! with theirs; only then type /accept {id}.",
        fingerprint(pinned),
        fingerprint(offered)
    )
}

/// The note for a peer seen for the first time.
pub fn key_first_seen(id: &str, key: &[u8; 32], file: &std::path::Path) -> String {
    format!(
        "* first contact with {id}: key {} kept in {} (/verify {id} shows the number to compare)",
        fingerprint(key),
        file.display()
    )
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
        let w = key_changed("bob", &[1; 32], &[2; 32]);
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
