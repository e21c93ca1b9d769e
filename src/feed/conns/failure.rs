//! What a failed attempt or a lost connection means for the feed: a venue's order to wait,
//! backoff or the circuit breaker, a refusal that retrying cannot help, and giving up after
//! `give_up_after_ms` without a connection.

use std::time::{Duration, Instant};

use log::{debug, error, info, warn};

use super::Connections;
use crate::feed::action::{Action, Actions};
use crate::feed::backoff::Decision;
use crate::feed::report::Out;
use crate::feed::session::{Session, State};
use crate::feed::sink::Sink;
use crate::metrics::FeedStats;
use crate::tick::{DisconnectReason, Health};

impl Connections {
    /// An attempt of session `id` failed before its WebSocket opened. A 429 or 418 answer
    /// speaks for the whole IP: every feed of this host waits.
    #[cold]
    pub(crate) fn attempt_failed<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        reason: DisconnectReason,
        detail: Option<&str>,
        now: Instant,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) {
        let session = self.slots.get_mut(k);
        if session.in_url && matches!(reason, DisconnectReason::Http { status: 400, .. }) {
            // The venue refuses the streams in the URL (which it acknowledged before): subscribe
            // by request from now on, where each refusal names its stream.
            self.sh.url_subscribe = false;
            session.in_url = false;
            session.state = State::Backoff { until: now };
            warn!(
                "[{}] the venue refused a URL that subscribes the streams ({reason}); subscribing by request from now on",
                out.report.name
            );
            return;
        }
        if let Some(wait) = self.told_to_wait(k, reason, now) {
            debug!(
                "[{}] venue answered {reason}: staying away {} ms",
                out.report.name,
                wait.as_millis()
            );
        }
        self.fail(k, reason, detail, now, actions, out);
    }

    /// The venue told slot `k` to stay away (`reason`: an HTTP status with a `Retry-After`, or
    /// a 418 ban): its next attempt waits at least that long, and a 429 or 418, which speaks
    /// for the whole IP, keeps every feed of the host away as long. Returns the wait.
    pub(crate) fn told_to_wait(
        &mut self,
        k: usize,
        reason: DisconnectReason,
        now: Instant,
    ) -> Option<Duration> {
        let (wait, whole_host) = self.slots.get_mut(k).told_to_wait(reason)?;
        if whole_host {
            let t = self.slots.get(k).target;
            self.targets[t].gate.close_until(now + wait);
        }
        Some(wait)
    }

    /// An attempt or a connection of slot `k` failed: decide its next state.
    #[cold]
    pub(super) fn fail<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        reason: DisconnectReason,
        detail: Option<&str>,
        now: Instant,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) {
        let name = out.report.name.clone();
        let t = self.slots.get(k).target;
        let url = self.targets[t].url.clone();
        self.addrs.failed(t);
        if let Some(d) = detail {
            debug!(
                "[{name}] {}: attempt to {url} failed: {reason}: {d}",
                self.slots.get(k).who()
            );
        }
        if reason.is_permanent() {
            let why = match detail {
                Some(d) => format!("{reason}: {d}"),
                None => reason.to_string(),
            };
            // A refusal of the feed's streams or credentials speaks for every connection.
            let whole_feed = matches!(
                reason,
                DisconnectReason::AllStreamsRejected | DisconnectReason::CredentialsRejected { .. }
            );
            if !whole_feed && self.slots.others_alive(k) {
                error!(
                    "[{name}] {} connection to {url} FAILED permanently: {why}. Not retrying it; the feed goes on over its other connection.",
                    self.slots.get(k).role.name()
                );
                self.slots.get_mut(k).state = State::Failed;
                return;
            }
            error!(
                "[{name}] {}: FAILED permanently connecting to {url}: {why}. Not retrying; other feeds go on.",
                self.slots.get(k).who()
            );
            self.fail_for_good(reason, why, actions, out);
            return;
        }
        if self.give_up_if_down(now, "no connection", &reason, reason, actions, out) {
            return;
        }
        let (decision, wait) = self.slots.get_mut(k).back_off(now, &mut self.rng);
        let who = self.slots.get(k).who();
        // A slot that never had a connection is still connecting, not reconnecting.
        let (tag, what) = match self.slots.get(k).conn_no {
            0 => ("[CONNECT]", "connection"),
            _ => ("[RECONNECT]", "reconnection"),
        };
        match decision {
            Decision::Retry { failures, .. } => info!(
                "{tag} [{name}] {who}: attempting {what} to {url} (attempt {}, in {} ms) after: {reason}",
                failures + 1,
                wait.as_millis()
            ),
            Decision::CircuitOpen { failures, .. } => {
                FeedStats::bump(&out.report.stats.circuit_trips);
                error!(
                    "[{name}] {who}: CIRCUIT OPEN: {failures} consecutive failures connecting to {url} (last: {reason}); cooling down {} ms before the next attempt",
                    wait.as_millis()
                );
                out.health(Health::CircuitOpen {
                    failures,
                    cooldown_ms: wait.as_millis() as u64,
                });
            }
        }
    }

    /// With `give_up_after_ms` set and no connection carrying the feed (`lacking`, e.g. "no
    /// connection", since the feed went down): once that has lasted the limit, stops the feed
    /// for good with `reason`, naming `last`, the last failure. Returns whether it did.
    #[cold]
    pub(super) fn give_up_if_down<S: Sink + ?Sized>(
        &mut self,
        now: Instant,
        lacking: &str,
        last: &dyn std::fmt::Display,
        reason: DisconnectReason,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) -> bool {
        let give_up = Duration::from_millis(self.sh.cfg.give_up_after_ms);
        if give_up.is_zero() || self.slots.iter().any(Session::carries) {
            return false;
        }
        let down = now.saturating_duration_since(*self.down_since.get_or_insert(now));
        if down < give_up {
            return false;
        }
        let why = format!(
            "{lacking} for {:.1} s (give_up_after_ms {}); last failure: {last}",
            down.as_secs_f64(),
            give_up.as_millis()
        );
        error!(
            "[{}] FAILED: {why}. Not retrying; other feeds go on.",
            out.report.name
        );
        self.fail_for_good(reason, why, actions, out);
        true
    }

    /// Stops the feed for good: every slot fails (a connection still open or being set up is
    /// dropped), the failure is published.
    #[cold]
    pub(super) fn fail_for_good<S: Sink + ?Sized>(
        &mut self,
        reason: DisconnectReason,
        why: String,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) {
        if let Ok(mut f) = out.report.stats.failure.lock() {
            *f = Some(why);
        }
        for s in self.slots.iter_mut() {
            if s.live().is_some() || s.is_setting_up() {
                actions.push(Action::Abort { session: s.id });
            }
            s.state = State::Failed;
        }
        self.rotations.cancel();
        out.health(Health::Failed { reason });
    }
}
