//! Shared helpers for the text codec.
