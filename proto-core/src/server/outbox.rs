//! A fixed-capacity outbox for tests, fuzzers and devices.

use core::net::SocketAddr;

use heapless::{Deque, Vec};

use super::{Outbox, OutboxFull};
use crate::MAX_DATAGRAM;

/// An [`Outbox`] that holds up to `N` datagrams in a heapless queue.
///
/// ```
/// use proto_core::server::{Outbox, VecOutbox};
/// let mut out = VecOutbox::<1>::new();
/// let dst = "127.0.0.1:9".parse().unwrap();
/// assert!(out.send(dst, b"one").is_ok());
/// assert!(out.send(dst, b"two").is_err());
/// assert_eq!(out.pop().unwrap().1.as_slice(), b"one");
/// ```
pub struct VecOutbox<const N: usize> {
    queue: Deque<(SocketAddr, Vec<u8, MAX_DATAGRAM>), N>,
}

impl<const N: usize> VecOutbox<N> {
    /// An empty outbox.
    pub const fn new() -> Self {
        VecOutbox {
            queue: Deque::new(),
        }
    }

    /// Take the oldest datagram.
    pub fn pop(&mut self) -> Option<(SocketAddr, Vec<u8, MAX_DATAGRAM>)> {
        self.queue.pop_front()
    }

    /// Datagrams waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no datagram is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The waiting datagrams, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &(SocketAddr, Vec<u8, MAX_DATAGRAM>)> {
        self.queue.iter()
    }

    /// Drop every waiting datagram.
    pub fn clear(&mut self) {
        self.queue.clear();
    }
}

impl<const N: usize> Default for VecOutbox<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Outbox for VecOutbox<N> {
    fn send(&mut self, dst: SocketAddr, payload: &[u8]) -> Result<(), OutboxFull> {
        let bytes = Vec::from_slice(payload).map_err(|_| OutboxFull)?;
        self.queue.push_back((dst, bytes)).map_err(|_| OutboxFull)
    }
}
