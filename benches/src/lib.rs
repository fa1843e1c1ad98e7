//! `parley-loadgen`: load generator and echo floor for `parley-server`.
//!
//! See `parley-loadgen --help`, and `benches/run` for the benchmark built on it.

pub mod cli;
pub mod echo;
pub mod engine;
pub mod msg;
pub mod net;
pub mod report;
pub mod statecost;
pub mod stats;
