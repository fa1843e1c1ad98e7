//! The presence change log.
