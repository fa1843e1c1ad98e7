//! Per-source quotas and rate limits in fixed memory.
