//! Chat between clients (client to client). Owned by the client session.
