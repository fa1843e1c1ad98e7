//! Stateless address validation.
