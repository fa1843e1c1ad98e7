//! Two sans-IO clients and the addresses of a world without a kernel, for
//! the end-to-end benchmarks and fuzz targets that drive them by hand.

use std::net::SocketAddr;

use proto_core::Instant;
use proto_core::client::{Client, Config};
use proto_core::secure::Keypair;
use proto_core::wire::Id;

/// The rendezvous server both clients are configured with.
pub const SERVER: &str = "192.0.2.1:9999";
/// Alice's address as the others see it.
pub const ALICE: &str = "198.51.100.2:5000";
/// Bob's address as the others see it.
pub const BOB: &str = "198.51.100.3:6000";

/// One of the literal addresses above.
pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a literal address")
}

/// A fresh client for id `name`, its entropy and identity key derived
/// from `seed`, so a run is repeatable. Boxed: a client is large.
pub fn client(name: &str, seed: u8) -> Box<Client> {
    let cfg = Config::new(addr(SERVER), Some(Id::new(name).expect("a valid id")));
    Box::new(Client::new(
        cfg,
        Instant(1),
        [seed; 32],
        Keypair::from_secret([seed.wrapping_add(100); 32]),
    ))
}
