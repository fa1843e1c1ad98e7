//! Socket addresses in the two textual forms the protocol uses: Rust's
//! `SocketAddr` form (`127.0.0.1:9999`, `[::1]:9999`) on the extended
//! protocol, and Python's address tuple (`('127.0.0.1', 9999)`) for the seed.
