//! Per-source quotas and rate limits in fixed memory.

/// One rate-limit cell (a token bucket shared by the sources that hash to it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateCell {
    tokens_milli: u32,
    last_ms: u32,
}

impl RateCell {
    /// An unused cell.
    pub const EMPTY: RateCell = RateCell {
        tokens_milli: 0,
        last_ms: 0,
    };
}

/// One quota cell (a counter shared by the sources that hash to it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaCell(u16);

impl QuotaCell {
    /// An unused cell.
    pub const EMPTY: QuotaCell = QuotaCell(0);
}
