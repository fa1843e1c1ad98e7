//! The sans-IO server state machine.
//!
//! ```
//! # // Filled in by the core issue; see tests below.
//! ```

use core::net::SocketAddr;

use crate::time::Instant;

/// Where the state machine puts the datagrams it wants sent.
///
/// The server calls `send` for each datagram; an implementation copies the
/// bytes into its own batch (a `sendmmsg` array, a heapless queue in tests).
/// A full outbox refuses the datagram and the state machine counts the drop:
/// the core never blocks and never buffers without bound.
pub trait Outbox {
    /// Queue `payload` for `dst`. `Err(OutboxFull)` if there is no room.
    fn send(&mut self, dst: SocketAddr, payload: &[u8]) -> Result<(), OutboxFull>;
}

/// The outbox had no room for another datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxFull;

impl core::fmt::Display for OutboxFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the outbox has no room for another datagram")
    }
}

#[allow(dead_code)]
fn _api_sketch(_: Instant) {}
