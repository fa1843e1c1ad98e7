//! Peers' keys: the pins the application loads (its known-peers file,
//! like SSH's known_hosts), trust on first use, and the rule that a key
//! that changes is never taken silently: messages wait until the person
//! accepts the new key with [`Client::accept_key`].

use crate::secure::PublicKey;
use crate::time::Instant;
use crate::wire::{Id, IdBuf};

use super::event::Rec;
use super::{Client, CommandError};

/// Keys pinned at once (loaded and first seen).
pub const MAX_PINS: usize = 256;

impl Client {
    /// Load a known key for `id` (from the application's known-peers
    /// file). A handshake with `id` then succeeds only with this key.
    pub fn pin(&mut self, id: Id<'_>, key: PublicKey) -> Result<(), CommandError> {
        let b = IdBuf::from_id(id);
        if let Some(e) = self.pins.iter_mut().find(|(i, _)| *i == b) {
            e.1 = key;
            return Ok(());
        }
        self.pins.push((b, key)).map_err(|_| CommandError::Busy)
    }

    /// The key pinned for `id`, if any.
    pub fn pinned(&self, id: Id<'_>) -> Option<PublicKey> {
        let b = IdBuf::from_id(id);
        self.pins.iter().find(|(i, _)| *i == b).map(|(_, k)| *k)
    }

    /// Accept `key` for `id` after a [`super::Event::KeyChanged`]: it
    /// replaces the pin, and the messages held for `id` go (after a new
    /// handshake with that key).
    pub fn accept_key(
        &mut self,
        now: Instant,
        id: Id<'_>,
        key: PublicKey,
    ) -> Result<(), CommandError> {
        self.pin(id, key)?;
        if let Some(p) = self.find_peer(&IdBuf::from_id(id)) {
            self.peers[p].held = None;
            // Sessions with another key end here.
            if self.peers[p]
                .cur
                .as_ref()
                .is_some_and(|l| l.session.remote() != key)
            {
                self.peers[p].cur = None;
            }
            if self.peers[p]
                .prev
                .as_ref()
                .is_some_and(|l| l.session.remote() != key)
            {
                self.peers[p].prev = None;
            }
            self.drive_peer(now, p);
        }
        self.pump(now);
        Ok(())
    }

    /// The key of the peer's current authenticated session (for a safety
    /// number), else its pinned key.
    pub fn peer_key(&self, id: Id<'_>) -> Option<PublicKey> {
        let b = IdBuf::from_id(id);
        self.find_peer(&b)
            .and_then(|p| self.peers[p].cur.as_ref().map(|l| l.session.remote()))
            .or_else(|| self.pinned(id))
    }

    /// The key a handshake with peer `p` must find: the pinned one, else
    /// the one the server reported. `Err` when they disagree (the peer is
    /// then held and the application told).
    pub(super) fn expected_key(&mut self, p: usize) -> Result<Option<PublicKey>, ()> {
        let id = self.peers[p].id;
        let pinned = self.pins.iter().find(|(i, _)| *i == id).map(|(_, k)| *k);
        match (pinned, self.peers[p].server_key) {
            (Some(pin), Some(srv)) if pin != srv => {
                self.hold(p, pin, srv);
                Err(())
            }
            (Some(pin), _) => Ok(Some(pin)),
            (None, srv) => Ok(srv),
        }
    }

    fn hold(&mut self, p: usize, pinned: PublicKey, offered: PublicKey) {
        if self.peers[p].held != Some(offered) {
            self.peers[p].held = Some(offered);
            let id = self.peers[p].id;
            self.push_event(Rec::KeyChanged {
                id,
                pinned,
                offered,
            });
        }
    }

    /// A handshake authenticated `key` for `id`: may a session with it
    /// carry chat? Pins the key on first use (and says so); refuses, holds
    /// and reports a key that differs from the pin; refuses one that
    /// differs from what the server reports for `id`.
    pub(super) fn key_ok(&mut self, now: Instant, id: Id<'_>, key: PublicKey) -> bool {
        let b = IdBuf::from_id(id);
        let pinned = self.pins.iter().find(|(i, _)| *i == b).map(|(_, k)| *k);
        match pinned {
            Some(pin) if pin == key => true,
            Some(pin) => {
                if let Some(p) = self.peer_index(now, id) {
                    self.hold(p, pin, key);
                }
                self.stats.key_refused += 1;
                false
            }
            None => {
                let srv = self.find_peer(&b).and_then(|p| self.peers[p].server_key);
                if srv.is_some_and(|s| s != key) {
                    self.stats.key_refused += 1;
                    return false;
                }
                // Out of room to remember it, a session still works, and
                // the application hears of the key to store it.
                let _ = self.pins.push((b, key));
                self.push_event(Rec::KeyFirstSeen { id: b, key });
                true
            }
        }
    }
}
