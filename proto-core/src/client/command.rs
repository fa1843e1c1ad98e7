//! The commands an application gives: send a message, look an id up,
//! list, ping, quit. Each queues work and returns at once; what comes of
//! it arrives as an [`Event`].

use core::fmt;

use crate::time::Instant;
use crate::wire::peer::{MAX_FRAGMENT_TEXT, Text};
use crate::wire::{Id, IdBuf};

use super::chat::{MAX_TEXT, Outgoing};
use super::path::Kind;
use super::registration::RegState;
use super::request::Req;
use super::{Client, Event, MAX_REQUESTS};

// Named only in doc links.
#[cfg(doc)]
use super::chat;

/// Why a command was refused at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// The text was empty or held a line break.
    BadText,
    /// The text was longer than [`chat::MAX_TEXT`] bytes or needs too many fragments.
    TooLong,
    /// This client has no id to send as.
    NoId,
    /// That is this client's own id.
    ToSelf,
    /// Too many messages or requests are in flight; try again shortly.
    Busy,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CommandError::BadText => "a message must be one non-empty line of text",
            CommandError::TooLong => "the message is longer than 4096 bytes",
            CommandError::NoId => "this client has no id to send as",
            CommandError::ToSelf => "that is your own id",
            CommandError::Busy => "too many messages are in flight; try again shortly",
        })
    }
}

impl Client {
    /// Send `text` to `to`. Returns the message's number, which the
    /// [`Event::Sent`] about it carries.
    pub fn send_message(
        &mut self,
        now: Instant,
        to: Id<'_>,
        text: &str,
    ) -> Result<u32, CommandError> {
        let me = self.cfg.id.ok_or(CommandError::NoId)?;
        if me.eq_id(to) {
            return Err(CommandError::ToSelf);
        }
        Text::new(text).ok_or(CommandError::BadText)?;
        if text.len() > MAX_TEXT {
            return Err(CommandError::TooLong);
        }
        if self.outs.is_full() {
            return Err(CommandError::Busy);
        }
        let seq = self.next_seq;
        // Room for the relay frame's header: any fragment may go either way.
        let frag_len = self
            .cfg
            .fragment_text
            .clamp(4, MAX_FRAGMENT_TEXT - crate::wire::relay::FRAME_HEADER);
        let out = Outgoing::new(IdBuf::from_id(to), seq, text, frag_len, now)
            .ok_or(CommandError::TooLong)?;
        let p = self.peer_index(now, to).ok_or(CommandError::Busy)?;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.peers[p].used = now;
        self.peers[p].talked = Some(now);
        if self.outs.push(out).is_err() {
            return Err(CommandError::Busy);
        }
        self.drive_peer(now, p);
        self.pump(now);
        Ok(seq)
    }

    /// Say that `peer` runs the seed's client: messages to it go as
    /// `Message <text>` without waiting for handshakes (a peer with a key never is).
    pub fn mark_seed(&mut self, now: Instant, peer: Id<'_>) {
        if let Some(p) = self.peer_index(now, peer) {
            self.peers[p].kind = Kind::Seed;
            self.peers[p].assumed_seed = None;
            self.peers[p].probe = None;
        }
    }

    /// Ask the server where `id` is ([`Event::Found`] or [`Event::Failed`]).
    pub fn lookup(&mut self, now: Instant, id: Id<'_>) -> Result<(), CommandError> {
        self.command(now, Req::Lookup(IdBuf::from_id(id)))
    }

    /// Ask for the page of online ids starting at `cursor` (0: the first).
    pub fn list(&mut self, now: Instant, cursor: u32) -> Result<(), CommandError> {
        self.command(now, Req::List(cursor))
    }

    /// Measure the round trip to the server ([`Event::Pong`]).
    pub fn ping(&mut self, now: Instant) -> Result<(), CommandError> {
        self.command(now, Req::Hello { ping: true })
    }

    /// Remove the registration ([`Event::Bye`]); keepalives stop.
    pub fn quit(&mut self, now: Instant) -> Result<(), CommandError> {
        // Refused as busy, nothing has changed: the registration lives on
        // and a later `quit` still tells the server.
        let registered = matches!(self.reg, RegState::Registered { .. });
        let others = self
            .pending
            .iter()
            .filter(|p| !matches!(p.req, Req::Keep | Req::Register | Req::Subscribe))
            .count();
        if registered && others >= MAX_REQUESTS {
            return Err(CommandError::Busy);
        }
        self.next_keep = None;
        self.pending
            .retain(|p| !matches!(p.req, Req::Keep | Req::Register | Req::Subscribe));
        match self.reg {
            RegState::Registered { .. } => {
                self.reg = RegState::Gone;
                self.command(now, Req::Quit)
            }
            _ => {
                self.reg = RegState::Gone;
                self.push_event(Event::Bye);
                Ok(())
            }
        }
    }

    fn command(&mut self, now: Instant, req: Req) -> Result<(), CommandError> {
        if self.pending.is_full() {
            return Err(CommandError::Busy);
        }
        self.request(now, req);
        self.pump(now);
        Ok(())
    }
}
