//! The id table: id -> (observed address, lease expiry, owner, public key,
//! subscription),
//! in fixed storage the caller hands in once.
//!
//! Layout: a slab of [`Slot`]s, an open-addressing hash index (`u32` slot
//! numbers, keyed SipHash so remote peers cannot aim collisions), an
//! intrusive doubly linked list in registration order (the seed's `List`
//! shows ids in the order they registered), and a second intrusive list of
//! subscribers (presence fan-out walks only those). Expired leases are
//! reclaimed by a clock hand that visits a bounded number of slots per call,
//! and lazily on lookup, so no call scans the whole table.

mod table;
#[cfg(test)]
mod tests;

pub use table::{Full, Handle, Order, Plan, Registry, StorageError, index_len_for};

use core::net::SocketAddr;

use crate::time::Instant;
use crate::wire::{IdBuf, PeerKind, PublicKey, Token};

/// Sentinel for "no slot" in the intrusive lists and the index.
pub const NIL: u32 = u32::MAX;

/// Who may change a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Registered with the seed's `ID`: owned by the source address that sent it.
    Address,
    /// Registered with `REG`: owned by whoever holds this token.
    Token(Token),
}

/// How a subscriber wants presence delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscription {
    /// Not subscribed.
    None,
    /// A seed client: gets the whole `List [...]` whenever it changes.
    SeedList,
    /// An extended client: gets `EVENTS` (or `RESYNC`).
    Events,
}

/// One registration, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The registered id.
    pub id: IdBuf,
    /// The source address of the datagram that registered or last refreshed it.
    pub addr: SocketAddr,
    /// When the lease runs out.
    pub expires: Instant,
    /// The lease granted, in seconds; a keepalive renews it for this long.
    pub lease: u32,
    /// Who may change it.
    pub owner: Owner,
    /// The public key the registration was made with; it never changes
    /// while the lease lives. Always `None` for a seed (`ID`) entry.
    pub key: Option<PublicKey>,
    /// Presence delivery for this entry.
    pub sub: Subscription,
    /// The last presence sequence number sent to this subscriber.
    pub sub_seq: u32,
    /// When presence was last sent to this subscriber.
    pub sub_sent: Instant,
}

impl Entry {
    /// What the server tells others about this entry's client.
    pub fn kind(&self) -> PeerKind {
        match (self.owner, self.key) {
            (Owner::Address, _) => PeerKind::Seed,
            (Owner::Token(_), Some(k)) => PeerKind::Key(k),
            (Owner::Token(_), None) => PeerKind::Keyless,
        }
    }
}

/// One cell of registry storage.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    entry: Option<Entry>,
    /// Registration order (or the free list, for an empty slot).
    prev: u32,
    next: u32,
    /// The subscriber list.
    sub_prev: u32,
    sub_next: u32,
}

impl Slot {
    /// An unused slot.
    pub const EMPTY: Slot = Slot {
        entry: None,
        prev: NIL,
        next: NIL,
        sub_prev: NIL,
        sub_next: NIL,
    };
}
