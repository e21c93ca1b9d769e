//! Connection attempts per venue host, shared by every feed that connects there.
//!
//! Venues limit how often one IP may open connections (Binance: 300 per 5 minutes) and ban IPs
//! that keep trying (HTTP 418 after 429s). A mass disconnect of many feeds must not turn into a
//! ban, and a long storm must not spend the whole budget in a burst and then hold every
//! connection until the window slides (one run held all attempts for 193 s that way). So the
//! budget is paced: a GCRA (generic cell rate algorithm) lets a small burst go at once and then
//! one attempt per emission interval, chosen so that the burst plus the sustained rate never
//! exceed the venue's limit in any window:
//!
//! - `burst` B = a quarter of the limit, at least 1 and at most 100 (a start-up of many
//!   connections goes at once: Binance 75, Bybit 125);
//! - emission interval T = window / (limit − B) (plus 1 ms, so a window's two ends never both
//!   count), so any window holds at most (limit − B) + B = limit attempts.
//!
//! Two kinds of attempt ask. A **restoring** attempt (its feed has no other connection carrying
//! it: the feed is down) books the next free slot and keeps it: the answer is the instant it
//! may go, and it goes then without asking again, so restoring attempts are served in the order
//! they asked and none waits longer than the attempts booked before it take (k·T for the k-th
//! in line). A **spare** attempt (a standby or a replacement while another connection carries
//! the feed) only goes while at least half the burst is unused, and books nothing: it can never
//! delay a restoring one. A `Retry-After` from the venue closes the gate for every feed of the
//! host until it passes. Attempts are rare, so a mutex is fine here.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Who is asking for an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// No other connection carries the feed: it is down until this attempt succeeds.
    Restore,
    /// A standby or a replacement, while another connection carries the feed.
    Spare,
}

/// The gate's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Go now.
    Now,
    /// A slot is booked at this instant: go then, without asking again (unless the gate closed
    /// meanwhile: see [`ConnectGate::closed_until`]).
    Booked(Instant),
    /// Ask again at this instant.
    Later(Instant),
}

#[derive(Debug, Default)]
struct GateState {
    /// Theoretical arrival time: the budget is whole when it is not after now.
    tat: Option<Instant>,
    closed_until: Option<Instant>,
}

/// The attempt budget of one host.
#[derive(Debug)]
pub struct ConnectGate {
    host: String,
    interval: Duration,
    tolerance: Duration,
    state: Mutex<GateState>,
}

impl ConnectGate {
    /// At most `limit` attempts in any `window` to `host` (`limit` 0 is treated as 1).
    pub fn new(host: String, limit: u32, window: Duration) -> Self {
        let limit = limit.max(1);
        let burst = (limit / 4).clamp(1, 100);
        let sustained = (limit - burst).max(1);
        let interval = window / sustained + Duration::from_millis(1);
        ConnectGate {
            host,
            interval,
            tolerance: interval * (burst - 1),
            state: Mutex::new(GateState::default()),
        }
    }

    /// The host this gate guards.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The sustained pace: one attempt per this interval once the burst is spent.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Asks for an attempt at `now`. `booked` is the slot an earlier answer booked for this
    /// asker: it goes then (`Booked` again if asked early), unless a `Retry-After` closed the
    /// gate meanwhile.
    pub fn admit(&self, now: Instant, priority: Priority, booked: Option<Instant>) -> Admit {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = booked {
            return match st.closed_until {
                _ if now < at => Admit::Booked(at),
                Some(until) if now < until => Admit::Later(until),
                _ => Admit::Now,
            };
        }
        if let Some(until) = st.closed_until {
            if now < until {
                return Admit::Later(until);
            }
            st.closed_until = None;
        }
        let tat = st.tat.map_or(now, |t| t.max(now));
        let tolerance = match priority {
            Priority::Restore => self.tolerance,
            Priority::Spare => self.tolerance / 2,
        };
        // `tat - tolerance`, without going before `now` (Instant cannot go below its origin).
        let start = match tat.checked_sub(tolerance) {
            Some(t) if t > now => t,
            _ => now,
        };
        match (start > now, priority) {
            (false, _) => {
                st.tat = Some(tat + self.interval);
                Admit::Now
            }
            (true, Priority::Restore) => {
                st.tat = Some(tat + self.interval);
                Admit::Booked(start)
            }
            (true, Priority::Spare) => Admit::Later(start),
        }
    }

    /// The venue asked every client of this host to stay away until `until`.
    pub fn close_until(&self, until: Instant) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.closed_until.is_none_or(|t| t < until) {
            st.closed_until = Some(until);
        }
    }

    /// Until when the gate is closed by a `Retry-After`, if it is at `now`.
    pub fn closed_until(&self, now: Instant) -> Option<Instant> {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.closed_until.filter(|&t| t > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_burst_at_once_then_one_per_interval() {
        let t0 = Instant::now();
        // Binance: 300 per 5 minutes → a burst of 75, then one per 300 s / 225 (+1 ms).
        let gate = ConnectGate::new("h".into(), 300, 300 * S);
        let t = gate.interval();
        assert_eq!(t, 300 * S / 225 + MS);
        for _ in 0..75 {
            assert_eq!(gate.admit(t0, Priority::Restore, None), Admit::Now);
        }
        assert_eq!(
            gate.admit(t0, Priority::Restore, None),
            Admit::Booked(t0 + t)
        );
        assert_eq!(
            gate.admit(t0, Priority::Restore, None),
            Admit::Booked(t0 + 2 * t)
        );
    }

    #[test]
    fn spares_leave_half_the_burst_and_never_book() {
        let t0 = Instant::now();
        let gate = ConnectGate::new("h".into(), 40, 100 * S); // burst 10
        for _ in 0..5 {
            assert_eq!(gate.admit(t0, Priority::Spare, None), Admit::Now);
        }
        let Admit::Later(at) = gate.admit(t0, Priority::Spare, None) else {
            panic!("a spare beyond half the burst waits");
        };
        assert!(at > t0);
        // The other half is there for feeds that are down.
        for _ in 0..5 {
            assert_eq!(gate.admit(t0, Priority::Restore, None), Admit::Now);
        }
        assert!(matches!(
            gate.admit(t0, Priority::Restore, None),
            Admit::Booked(_)
        ));
    }

    #[test]
    fn retry_after_closes_the_gate_for_everyone_and_only_extends() {
        let t0 = Instant::now();
        let gate = ConnectGate::new("h".into(), 300, 300 * S);
        gate.close_until(t0 + 5 * S);
        gate.close_until(t0 + 2 * S);
        assert_eq!(gate.closed_until(t0 + 4 * S), Some(t0 + 5 * S));
        assert_eq!(
            gate.admit(t0 + 4 * S, Priority::Restore, None),
            Admit::Later(t0 + 5 * S)
        );
        assert_eq!(gate.admit(t0 + 5 * S, Priority::Restore, None), Admit::Now);
        // A booked slot goes when it comes, without asking the budget again; asked early it is
        // still booked; a Retry-After that came meanwhile holds it back.
        let gate = ConnectGate::new("h".into(), 4, 4 * S); // burst 1, one per 4/3 s
        assert_eq!(gate.admit(t0, Priority::Restore, None), Admit::Now);
        let Admit::Booked(at) = gate.admit(t0, Priority::Restore, None) else {
            panic!("the second attempt is booked");
        };
        assert_eq!(
            gate.admit(t0, Priority::Restore, Some(at)),
            Admit::Booked(at)
        );
        assert_eq!(gate.admit(at, Priority::Restore, Some(at)), Admit::Now);
        gate.close_until(at + 3 * S);
        assert_eq!(
            gate.admit(at, Priority::Restore, Some(at)),
            Admit::Later(at + 3 * S)
        );
        assert_eq!(gate.closed_until(t0 + 5 * S), None);
    }

    /// Many connections that want an attempt far more often than the venue allows (each asks
    /// again 20 ms after its attempt, as a failing one with a short backoff would), a third of
    /// them spares, over three windows on a made-up clock: no window of the venue's length holds
    /// more than its limit, and no restoring connection waits longer than its place in line
    /// implies: with `k` restoring connections, (k − 1)·T + T.
    #[test]
    fn a_storm_never_exceeds_the_limit_in_any_window_and_waits_are_bounded() {
        for (limit, window) in [(300, 300 * S), (3, S), (10, 2 * S), (1, S)] {
            let gate = ConnectGate::new("h".into(), limit, window);
            let t = gate.interval();
            let t0 = Instant::now();
            let k_restore = 8u32;
            let n = 12;
            // Per connection: when it may next ask, and whether it holds a booking.
            let mut next: Vec<(Instant, Option<Instant>)> = vec![(t0, None); n];
            let mut attempts: Vec<Instant> = Vec::new();
            let mut longest = Duration::ZERO;
            let end = t0 + window * 3;
            let mut now = t0;
            while now < end {
                for (i, slot) in next.iter_mut().enumerate() {
                    let priority = if (i as u32) < k_restore {
                        Priority::Restore
                    } else {
                        Priority::Spare
                    };
                    let (ask_at, booked) = *slot;
                    if now < ask_at || booked.is_some_and(|b| now < b) {
                        continue;
                    }
                    match gate.admit(now, priority, booked) {
                        Admit::Now => {
                            attempts.push(now);
                            *slot = (now + 20 * MS, None);
                        }
                        Admit::Booked(at) => {
                            assert_eq!(priority, Priority::Restore, "spares never book");
                            longest = longest.max(at - now);
                            *slot = (ask_at, Some(at));
                        }
                        Admit::Later(at) => *slot = (at, None),
                    }
                }
                now += MS;
            }
            // No window of the venue's length holds more than the limit.
            for (i, &a) in attempts.iter().enumerate() {
                let within = attempts[i..]
                    .iter()
                    .take_while(|&&b| b - a <= window)
                    .count();
                assert!(
                    within <= limit as usize,
                    "{within} attempts within {window:?} (limit {limit})"
                );
            }
            // The stated bound on a restoring connection's wait.
            let bound = t * k_restore;
            assert!(
                longest <= bound,
                "waited {longest:?} > {bound:?} ({limit}/{window:?})"
            );
            // The budget is used, not hoarded: at least the sustained rate over the run.
            let sustained = (window * 3).as_secs_f64() / t.as_secs_f64();
            assert!(
                attempts.len() as f64 >= sustained,
                "{} attempts, sustained rate allows {sustained:.0}",
                attempts.len()
            );
        }
    }
}
