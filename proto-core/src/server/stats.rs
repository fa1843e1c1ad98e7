//! Counters, for the `STATS` verb and for the server's metrics endpoint.

use crate::wire::ErrorCode;

/// Every counter the server keeps. All are totals since start except the
/// gauges `occupancy`, `capacity` and `subscribers`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent (replies and fan-out).
    pub datagrams_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Requests received, by verb, in the order of [`VERBS`].
    pub requests: [u64; VERBS.len()],
    /// Error replies sent, by code, in the order of [`ErrorCode::ALL`].
    pub errors: [u64; ErrorCode::ALL.len()],
    /// Datagrams dropped because their source exceeded its rate.
    pub drop_rate_limited: u64,
    /// Error replies not sent because their source exceeded its error rate.
    pub drop_error_limited: u64,
    /// Replies not sent because they were larger than an unvalidated request.
    pub drop_amplification: u64,
    /// Seed verbs dropped because the server runs `--strict`.
    pub drop_strict: u64,
    /// Datagrams the outbox had no room for.
    pub drop_outbox_full: u64,
    /// Seed requests refused without a reply (the seed protocol has no
    /// error message): taken ids, table full, quota, not owner.
    pub seed_refused: u64,
    /// New registrations.
    pub registrations: u64,
    /// STUN Binding successes sent.
    pub stun_answered: u64,
    /// STUN datagrams not answered: not a clean Binding request, from
    /// port 0, STUN turned off, or text on the STUN-only port.
    pub drop_stun: u64,
    /// STUN Binding requests not answered because the global budget was spent.
    pub drop_stun_budget: u64,
    /// `RELAY` requests received.
    pub relay_requests: u64,
    /// Relay sessions paired (both peers asked).
    pub relay_sessions: u64,
    /// Relay frames forwarded.
    pub relay_forwarded: u64,
    /// Relay frames dropped: malformed, unknown channel, from an address
    /// that is not a proven end, or before the peer asked.
    pub drop_relay: u64,
    /// Relay frames dropped because a session's or the global budget was spent.
    pub drop_relay_budget: u64,
    /// Leases that ran out and were reclaimed.
    pub expired: u64,
    /// Presence datagrams sent to subscribers.
    pub fanout_sent: u64,
    /// Presence datagrams put off because the global budget was spent.
    pub fanout_deferred: u64,
    /// `RESYNC`s sent to subscribers that fell behind the change log.
    pub fanout_resync: u64,
    /// Live registrations now (gauge).
    pub occupancy: u64,
    /// Table capacity (gauge).
    pub capacity: u64,
    /// Subscribers now (gauge).
    pub subscribers: u64,
}

/// The verbs counted in [`Stats::requests`], as they appear in counter names.
pub const VERBS: [&str; 14] = [
    "seed_id",
    "seed_peer",
    "seed_quit",
    "seed_id2",
    "hello",
    "reg",
    "keep",
    "lookup",
    "intro",
    "list",
    "sub",
    "unsub",
    "quit",
    "stats",
];

/// Index into [`Stats::requests`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    SeedId = 0,
    SeedPeer,
    SeedQuit,
    SeedId2,
    Hello,
    Reg,
    Keep,
    Lookup,
    Intro,
    List,
    Sub,
    Unsub,
    Quit,
    Stats,
}

const REQUEST_NAMES: [&str; VERBS.len()] = [
    "requests_seed_id",
    "requests_seed_peer",
    "requests_seed_quit",
    "requests_seed_id2",
    "requests_hello",
    "requests_reg",
    "requests_keep",
    "requests_lookup",
    "requests_intro",
    "requests_list",
    "requests_sub",
    "requests_unsub",
    "requests_quit",
    "requests_stats",
];

const ERROR_NAMES: [&str; ErrorCode::ALL.len()] = [
    "errors_malformed",
    "errors_unknown_verb",
    "errors_bad_id",
    "errors_table_full",
    "errors_id_taken",
    "errors_not_owner",
    "errors_rate_limited",
    "errors_bad_cookie",
    "errors_no_such_id",
    "errors_over_quota",
    "errors_forbidden",
    "errors_key_taken",
];

impl Stats {
    pub(crate) fn count_request(&mut self, v: Verb) {
        self.requests[v as usize] += 1;
    }

    pub(crate) fn count_error(&mut self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.errors[i] += 1;
        }
    }

    /// Requests received with `verb` (a name from [`VERBS`]).
    pub fn requests_of(&self, verb: &str) -> u64 {
        VERBS
            .iter()
            .position(|v| *v == verb)
            .map_or(0, |i| self.requests[i])
    }

    /// Error replies sent with `code`.
    pub fn errors_of(&self, code: ErrorCode) -> u64 {
        ErrorCode::ALL
            .iter()
            .position(|c| *c == code)
            .map_or(0, |i| self.errors[i])
    }

    /// Visit every counter as `(name, value)`, names in `snake_case`.
    ///
    /// ```
    /// let stats = proto_core::server::Stats::default();
    /// let mut n = 0;
    /// stats.for_each(|name, _| { assert!(!name.contains(' ')); n += 1; });
    /// assert!(n > 20);
    /// ```
    pub fn for_each(&self, mut f: impl FnMut(&'static str, u64)) {
        f("datagrams_in", self.datagrams_in);
        f("datagrams_out", self.datagrams_out);
        f("bytes_in", self.bytes_in);
        f("bytes_out", self.bytes_out);
        for (name, v) in REQUEST_NAMES.iter().zip(self.requests) {
            f(name, v);
        }
        for (name, v) in ERROR_NAMES.iter().zip(self.errors) {
            f(name, v);
        }
        f("drop_rate_limited", self.drop_rate_limited);
        f("drop_error_limited", self.drop_error_limited);
        f("drop_amplification", self.drop_amplification);
        f("drop_strict", self.drop_strict);
        f("drop_outbox_full", self.drop_outbox_full);
        f("seed_refused", self.seed_refused);
        f("registrations", self.registrations);

        f("expired", self.expired);
        f("fanout_sent", self.fanout_sent);
        f("fanout_deferred", self.fanout_deferred);
        f("fanout_resync", self.fanout_resync);
        f("occupancy", self.occupancy);
        f("capacity", self.capacity);
        f("subscribers", self.subscribers);
        f("stun_answered", self.stun_answered);
        f("drop_stun", self.drop_stun);
        f("drop_stun_budget", self.drop_stun_budget);
        f("relay_requests", self.relay_requests);
        f("relay_sessions", self.relay_sessions);
        f("relay_forwarded", self.relay_forwarded);
        f("drop_relay", self.drop_relay);
        f("drop_relay_budget", self.drop_relay_budget);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_line_up_with_counters() {
        let mut s = Stats::default();
        s.count_request(Verb::Lookup);
        s.count_error(ErrorCode::BadCookie);
        let mut seen = (0, 0);
        s.for_each(|name, v| {
            if name == "requests_lookup" {
                seen.0 = v;
            }
            if name == "errors_bad_cookie" {
                seen.1 = v;
            }
        });
        assert_eq!(seen, (1, 1));
        assert_eq!(s.requests_of("lookup"), 1);
        assert_eq!(s.errors_of(ErrorCode::BadCookie), 1);
        assert_eq!(ERROR_NAMES.len(), ErrorCode::ALL.len());
        for (name, code) in ERROR_NAMES.iter().zip(ErrorCode::ALL) {
            let wire = name["errors_".len()..]
                .bytes()
                .map(|b| if b == b'_' { b'-' } else { b });
            assert!(wire.eq(code.as_str().bytes()), "{name} vs {code:?}");
        }
    }
}
