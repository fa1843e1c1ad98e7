//! Parley's protocol core: everything about the rendezvous protocol that does
//! not touch a socket, a clock or a random number generator.
//!
//! The crate is `#![no_std]` and never allocates. Tables live in storage the
//! caller hands in once (a leaked `Vec` on a server, a `static` array on a
//! microcontroller); time comes in as an [`Instant`]; entropy comes in as key
//! material; datagrams go out through an [`Outbox`](server::Outbox). That
//! makes every rule deterministic to test and cheap to fuzz.
//!
//! - [`wire`]: the codec, one module per message family (the seed's verbs,
//!   the extended requests and replies).
//! - [`registry`]: the id table with leases, ownership and registration order.
//! - [`cookie`]: stateless address validation (BEP 15 / QUIC Retry style).
//! - [`limit`]: per-source quotas and rate limits in fixed memory.
//! - [`presence`]: the bounded change log behind presence events.
//! - [`server`]: the state machine, `handle(now, src, datagram)` / `tick(now)`.
//! - [`secure`]: the end-to-end channel between clients (Noise IK/XX over
//!   `clatter`, sessions with explicit counters and a replay window, safety
//!   numbers).
//! - [`client`]: the client session (registration, keepalive, introductions,
//!   reliable chat), `handle` / `poll_transmit` / `poll_event` / `handle_timeout`.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod cookie;
pub mod limit;
pub mod presence;
pub mod registry;
pub mod secure;
pub mod server;
pub mod time;
pub mod wire;

pub use time::Instant;

/// The largest datagram Parley ever sends or accepts on the extended protocol.
///
/// 1200 bytes fits the IPv6 minimum MTU (1280) less headers, so nothing
/// Parley sends is fragmented on any path.
pub const MAX_DATAGRAM: usize = 1200;

/// The largest `List` datagram sent to a seed client: no longer than any
/// seed datagram, since the seed client reads with `recvfrom(1024)` and on
/// Windows a longer datagram is an error there.
pub const SEED_MAX_LIST: usize = wire::seed::MAX_SEED_DATAGRAM;
