//! Parley's test kit (not published): what integration tests of several
//! crates share.
//!
//! - [`natlab`]: a small internet in network namespaces with real kernel
//!   NATs (iproute2 + nftables), for tests of hole punching, STUN and
//!   `parley netcheck` against the NATs people actually sit behind.
//! - [`matrix`]: the NAT matrix (`cargo run -p testkit --bin natlab`).
//! - [`delay`]: links that take time (TAP devices and a thread).
//! - [`bins`]: where the workspace's binaries were built.
//! - [`parley`]: the real server and client processes inside lab nodes.
//! - [`python`]: third-party clients from PyPI in a virtual environment.
//! - [`tables`]: the registration tables an in-process server runs over.
//! - [`peers`]: two sans-IO clients for benchmarks and fuzz targets.
//! - [`server`]: a real server loop on a thread of the test's process.
//! - [`netns`]: running a test inside a network namespace of its own.
//! - [`udp`]: the text protocol from a plain socket (cookie, register).
//! - [`rng`]: the one small seeded random generator.
//! - [`process`]: a program that should stop by itself, on a deadline.

pub mod bins;
pub mod delay;
pub mod matrix;
pub mod natlab;
pub mod netns;
pub mod parley;
pub mod peers;
pub mod process;
pub mod python;
pub mod rng;
pub mod server;
pub mod tables;
pub mod udp;
