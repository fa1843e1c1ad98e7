//! The registration of this client's id: its state, keepalives, and
//! registering again when the server forgot it.

use crate::time::{Instant, Millis};
use crate::wire::Token;

use super::Client;
use super::request::Req;

/// Where the registration of this client's id stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RegState {
    /// Not registering.
    Off,
    /// A `REG` is pending.
    Registering { again: bool },
    /// Registered.
    Registered { token: Token },
    /// Gave up (the reason was reported).
    Failed,
    /// Quit.
    Gone,
}

impl Client {
    /// Send the keepalive (or the `REG` retry) that is due.
    pub(super) fn keepalive_due(&mut self, now: Instant) {
        if self.next_keep.is_some_and(|k| k <= now) {
            self.next_keep = None;
            if !self.has_pending(|r| matches!(r, Req::Keep | Req::Register)) {
                match self.reg {
                    RegState::Registered { .. } => self.request(now, Req::Keep),
                    RegState::Registering { .. } => self.request(now, Req::Register),
                    _ => {}
                }
            }
        }
    }

    pub(super) fn schedule_keepalive(&mut self, now: Instant) {
        let lo = self.cfg.keepalive_min.0;
        let hi = self.cfg.keepalive_max.0.max(lo);
        let mut wait = lo + self.rng.below(hi - lo + 1);
        if let (RegState::Registered { .. }, Some(lease)) = (self.reg, self.lease_ms()) {
            wait = wait.min((lease / 3).max(1000));
        }
        self.next_keep = Some(now + Millis(wait));
    }

    fn lease_ms(&self) -> Option<u64> {
        self.lease.map(|l| u64::from(l) * 1000)
    }

    /// The server forgot us: register again (with the old token, which
    /// renews if the server still has the id as ours).
    pub(super) fn reregister(&mut self, now: Instant) {
        if matches!(self.reg, RegState::Gone | RegState::Off) {
            return;
        }
        self.reg = RegState::Registering { again: true };
        self.next_keep = None;
        if !self.has_pending(|r| matches!(r, Req::Register)) {
            self.request(now, Req::Register);
        }
    }
}
