//! What a run measured, as text for people and JSON for scripts.

use std::fmt::Write as _;
use std::net::SocketAddr;

use hdrhistogram::Histogram;
use proto_core::wire::ErrorCode;

/// Counters of the measured phase.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests sent.
    pub sent: u64,
    /// Replies matched to a request.
    pub replies: u64,
    /// Requests whose reply did not come within the timeout.
    pub lost: u64,
    /// Replies that came after their request was given up, or were duplicates.
    pub late: u64,
    /// Datagrams that were not any reply we know.
    pub unknown: u64,
    /// Presence and introduction datagrams (`EVENTS`, `RESYNC`, `PUNCH`, seed `List`).
    pub unsolicited: u64,
    /// `ERR -` replies (to garbage).
    pub anon_errors: u64,
    /// Garbage datagrams sent (not counted in `sent`).
    pub garbage: u64,
    /// Open loop: requests not offered because the lane's window was full.
    pub window_full: u64,
    /// Requests the kernel would not take.
    pub send_failed: u64,
    /// Replies to lookups.
    pub lookup_replies: u64,
    /// Lookups answered with the id asked for.
    pub found: u64,
    /// Lookups of acknowledged ids answered "no such id".
    pub missing: u64,
    /// Lookups answered with another id.
    pub wrong: u64,
    /// Lookups of ids whose registration was never acknowledged, answered "no such id".
    pub not_registered: u64,
    /// Registrations acknowledged.
    pub registered: u64,
    /// Quits acknowledged.
    pub quits: u64,
    /// Acknowledged registrations the server no longer knew (lookups, quits).
    pub lost_registrations: u64,
    /// Error replies by code, in the order of [`ErrorCode::ALL`].
    pub errors: [u64; 11],
}

/// Counters of a set-up or checking phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseCounts {
    /// Requests that did what they should.
    pub ok: u64,
    /// Requests refused (or, when verifying, ids not found).
    pub failed: u64,
    /// Requests without a reply.
    pub lost: u64,
    /// Other answers.
    pub other: u64,
}

/// Everything a run measured.
pub struct Report {
    /// Workload name.
    pub workload: &'static str,
    /// `ext` or `seed`.
    pub proto: &'static str,
    /// Whether the target was the echo floor.
    pub echo: bool,
    /// The target.
    pub target: SocketAddr,
    /// Lanes.
    pub lanes: usize,
    /// Window per lane.
    pub window: usize,
    /// Offered rate (open loop).
    pub rate: Option<u64>,
    /// Prefilled ids.
    pub table: u32,
    /// Subscribers.
    pub subscribers: u32,
    /// Length of the measured phase.
    pub seconds: f64,
    /// Its counters.
    pub c: Counters,
    /// Round trips of every measured request, in ns.
    pub rtt: Histogram<u64>,
    /// Round trips of lookups, in ns.
    pub lookup_rtt: Histogram<u64>,
    /// Prefill phase.
    pub prefill: PhaseCounts,
    /// Subscribe phase.
    pub subscribe: PhaseCounts,
    /// Verify phase.
    pub verify: PhaseCounts,
    /// Acknowledged fresh registrations the verify phase looked up.
    pub verify_expected: u64,
    /// From the first to the last presence datagram received.
    pub events_seconds: f64,
    /// The server's `STATS` after the run.
    pub server: Option<Vec<(String, u64)>>,
}

fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

impl Report {
    /// Replies per second of the measured phase.
    pub fn replies_per_sec(&self) -> f64 {
        per_sec(self.c.replies, self.seconds)
    }

    /// Lost requests as a fraction of those sent.
    pub fn loss(&self) -> f64 {
        if self.c.sent == 0 {
            0.0
        } else {
            self.c.lost as f64 / self.c.sent as f64
        }
    }

    /// Acknowledged registrations that were not found afterwards.
    pub fn lost_registrations(&self) -> u64 {
        self.c.lost_registrations + self.verify.failed
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let c = &self.c;
        let _ = writeln!(
            s,
            "{} over {} against {}{} ({} lanes x {} window{}), table {}, subscribers {}",
            self.workload,
            self.proto,
            self.target,
            if self.echo { " (echo)" } else { "" },
            self.lanes,
            self.window,
            self.rate.map_or(", closed loop".to_string(), |r| format!(
                ", open loop {r}/s"
            )),
            self.table,
            self.subscribers
        );
        if self.table > 0 && !self.echo {
            let _ = writeln!(
                s,
                "  prefill:   {} acknowledged, {} refused, {} lost",
                self.prefill.ok, self.prefill.failed, self.prefill.lost
            );
        }
        if self.subscribers > 0 && !self.echo {
            let _ = writeln!(
                s,
                "  subscribe: {} acknowledged, {} refused, {} lost",
                self.subscribe.ok, self.subscribe.failed, self.subscribe.lost
            );
        }
        let _ = writeln!(
            s,
            "  measured:  {:.2} s, {} requests, {} replies, {} lost ({:.4}%), {} late",
            self.seconds,
            c.sent,
            c.replies,
            c.lost,
            self.loss() * 100.0,
            c.late
        );
        let _ = writeln!(
            s,
            "  rate:      {:.0} replies/s ({:.0} lookups/s)",
            self.replies_per_sec(),
            per_sec(c.lookup_replies, self.seconds)
        );
        let _ = writeln!(
            s,
            "  rtt:       p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
            us(&self.rtt, 0.5),
            us(&self.rtt, 0.99),
            us(&self.rtt, 0.999),
            us(&self.rtt, 1.0)
        );
        if c.lookup_replies > 0 {
            let _ = writeln!(
                s,
                "  lookups:   {} found, {} acknowledged ids missing, {} never registered, {} wrong id",
                c.found, c.missing, c.not_registered, c.wrong
            );
        }
        if c.registered + c.quits > 0 {
            let _ = writeln!(
                s,
                "  changes:   {} registrations acknowledged, {} quits acknowledged",
                c.registered, c.quits
            );
        }
        if self.verify_expected > 0 {
            let _ = writeln!(
                s,
                "  verify:    {} of {} {} registrations found, {} missing, {} unanswered",
                self.verify.ok,
                self.verify_expected,
                if self.proto == "seed" {
                    "sent (the seed acknowledges nothing)"
                } else {
                    "acknowledged"
                },
                self.verify.failed,
                self.verify.lost
            );
        }
        if c.unsolicited > 0 || self.subscribers > 0 {
            let _ = writeln!(
                s,
                "  presence:  {} datagrams received ({:.0}/s)",
                c.unsolicited,
                per_sec(c.unsolicited, self.seconds)
            );
        }
        if c.garbage > 0 {
            let _ = writeln!(
                s,
                "  garbage:   {} sent, {} ERR - replies",
                c.garbage, c.anon_errors
            );
        }
        if c.window_full > 0 || c.send_failed > 0 || c.unknown > 0 {
            let _ = writeln!(
                s,
                "  other:     {} not offered (window full), {} not taken by the kernel, {} unknown datagrams",
                c.window_full, c.send_failed, c.unknown
            );
        }
        let errs: Vec<String> = ErrorCode::ALL
            .iter()
            .zip(c.errors)
            .filter(|(_, n)| *n > 0)
            .map(|(code, n)| format!("{} {n}", code.as_str()))
            .collect();
        if !errs.is_empty() {
            let _ = writeln!(s, "  errors:    {}", errs.join(", "));
        }
        let _ = writeln!(s, "  lost registrations: {}", self.lost_registrations());
        s
    }

    /// The report as one JSON object.
    pub fn json(&self) -> String {
        let c = &self.c;
        let mut j = Json::default();
        j.str("workload", self.workload);
        j.str("proto", self.proto);
        j.bool("echo", self.echo);
        j.str("target", &self.target.to_string());
        j.num("lanes", self.lanes as f64);
        j.num("window", self.window as f64);
        j.num("rate", self.rate.map_or(0.0, |r| r as f64));
        j.num("table", f64::from(self.table));
        j.num("subscribers", f64::from(self.subscribers));
        j.num("seconds", self.seconds);
        j.num("requests", c.sent as f64);
        j.num("replies", c.replies as f64);
        j.num("lost", c.lost as f64);
        j.num("loss", self.loss());
        j.num("late", c.late as f64);
        j.num("replies_per_sec", self.replies_per_sec());
        j.num("lookups_per_sec", per_sec(c.lookup_replies, self.seconds));
        j.num("rtt_p50_us", us(&self.rtt, 0.5));
        j.num("rtt_p99_us", us(&self.rtt, 0.99));
        j.num("rtt_p999_us", us(&self.rtt, 0.999));
        j.num("rtt_max_us", us(&self.rtt, 1.0));
        j.num("lookup_rtt_p99_us", us(&self.lookup_rtt, 0.99));
        j.num("found", c.found as f64);
        j.num("missing", c.missing as f64);
        j.num("not_registered", c.not_registered as f64);
        j.num("wrong", c.wrong as f64);
        j.num("registered", c.registered as f64);
        j.num("quits", c.quits as f64);
        j.num("presence_datagrams", c.unsolicited as f64);
        j.num("presence_per_sec", per_sec(c.unsolicited, self.seconds));
        j.num("garbage", c.garbage as f64);
        j.num("garbage_errors", c.anon_errors as f64);
        j.num("window_full", c.window_full as f64);
        j.num("send_failed", c.send_failed as f64);
        j.num("unknown", c.unknown as f64);
        j.num("prefill_ok", self.prefill.ok as f64);
        j.num("prefill_failed", self.prefill.failed as f64);
        j.num("prefill_lost", self.prefill.lost as f64);
        j.num("subscribe_ok", self.subscribe.ok as f64);
        j.num("verify_expected", self.verify_expected as f64);
        j.num("verify_found", self.verify.ok as f64);
        j.num("verify_missing", self.verify.failed as f64);
        j.num("verify_unanswered", self.verify.lost as f64);
        j.num("lost_registrations", self.lost_registrations() as f64);
        let mut errs = Json::default();
        for (code, n) in ErrorCode::ALL.iter().zip(c.errors) {
            errs.num(code.as_str(), n as f64);
        }
        j.raw("errors", &errs.finish());
        if let Some(server) = &self.server {
            let mut sj = Json::default();
            for (k, v) in server {
                sj.num(k, *v as f64);
            }
            j.raw("server", &sj.finish());
        }
        j.finish()
    }
}

/// A flat JSON object writer: keys and strings here are ours, never
/// user text with quotes, but they are escaped anyway.
#[derive(Default)]
pub struct Json {
    s: String,
}

impl Json {
    fn key(&mut self, k: &str) {
        self.s.push(if self.s.is_empty() { '{' } else { ',' });
        escape(&mut self.s, k);
        self.s.push(':');
    }

    /// A string member.
    pub fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        escape(&mut self.s, v);
    }

    /// A number member (non-finite numbers are written as null).
    pub fn num(&mut self, k: &str, v: f64) {
        self.key(k);
        if !v.is_finite() {
            self.s.push_str("null");
        } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
            let _ = write!(self.s, "{}", v as i64);
        } else {
            let _ = write!(self.s, "{v:.6}");
        }
    }

    /// A boolean member.
    pub fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.s.push_str(if v { "true" } else { "false" });
    }

    /// A member whose value is already JSON.
    pub fn raw(&mut self, k: &str, v: &str) {
        self.key(k);
        self.s.push_str(v);
    }

    /// The object.
    pub fn finish(mut self) -> String {
        if self.s.is_empty() {
            self.s.push('{');
        }
        self.s.push('}');
        self.s
    }
}

fn escape(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut rtt = Histogram::new_with_bounds(100, 60_000_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            rtt.record(v * 1000).unwrap();
        }
        Report {
            workload: "lookup",
            proto: "ext",
            echo: false,
            target: "127.0.0.1:9".parse().unwrap(),
            lanes: 2,
            window: 4,
            rate: None,
            table: 10,
            subscribers: 0,
            seconds: 2.0,
            c: Counters {
                sent: 1000,
                replies: 990,
                lost: 10,
                lookup_replies: 990,
                found: 985,
                missing: 5,
                lost_registrations: 5,
                ..Counters::default()
            },
            lookup_rtt: rtt.clone(),
            rtt,
            prefill: PhaseCounts::default(),
            subscribe: PhaseCounts::default(),
            verify: PhaseCounts {
                failed: 2,
                ..PhaseCounts::default()
            },
            verify_expected: 0,
            events_seconds: 0.0,
            server: Some(vec![("datagrams_in".into(), 7)]),
        }
    }

    #[test]
    fn rates_loss_and_lost_registrations_are_derived() {
        let r = report();
        assert_eq!(r.replies_per_sec(), 495.0);
        assert!((r.loss() - 0.01).abs() < 1e-12);
        assert_eq!(r.lost_registrations(), 7);
        let t = r.text();
        assert!(t.contains("495 replies/s"), "{t}");
        assert!(t.contains("5 acknowledged ids missing"), "{t}");
        assert!(t.contains("lost registrations: 7"), "{t}");
        // p99 of 1..=1000 us is 990 us (within the histogram's precision).
        assert!(t.contains("p99 99"), "{t}");
    }

    #[test]
    fn json_is_one_flat_object_with_the_figures() {
        let j = report().json();
        assert!(j.starts_with('{') && j.ends_with('}'));
        assert!(j.contains("\"replies_per_sec\":495"), "{j}");
        assert!(j.contains("\"lost\":10"), "{j}");
        assert!(j.contains("\"lost_registrations\":7"), "{j}");
        assert!(j.contains("\"server\":{\"datagrams_in\":7}"), "{j}");
        assert!(j.contains("\"no-such-id\":0"), "{j}");
        assert_eq!(j.matches('{').count(), j.matches('}').count());
    }

    #[test]
    fn json_escapes_and_handles_odd_numbers() {
        let mut j = Json::default();
        j.str("a\"b", "c\\d\n");
        j.num("nan", f64::NAN);
        j.num("half", 0.5);
        assert_eq!(
            j.finish(),
            "{\"a\\\"b\":\"c\\\\d\\u000a\",\"nan\":null,\"half\":0.500000}"
        );
        assert_eq!(Json::default().finish(), "{}");
    }
}
