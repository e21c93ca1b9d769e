//! Connection attempts per venue host, shared by every feed that connects there.
//!
//! Venues limit how often one IP may open connections (Binance: 300 per 5 minutes) and ban IPs
//! that keep trying (HTTP 418 after 429s). A mass disconnect of many feeds must not turn into a
//! ban, so every attempt takes a slot from a sliding window, and a `Retry-After` from the venue
//! closes the gate for every feed of that host. Attempts are rare, so a mutex is fine here.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct GateState {
    recent: VecDeque<Instant>,
    closed_until: Option<Instant>,
}

/// The attempt budget of one host.
#[derive(Debug)]
pub struct ConnectGate {
    host: String,
    limit: usize,
    window: Duration,
    state: Mutex<GateState>,
}

impl ConnectGate {
    /// At most `limit` attempts in any `window` to `host` (`limit` 0 is treated as 1).
    pub fn new(host: String, limit: u32, window: Duration) -> Self {
        ConnectGate {
            host,
            limit: limit.max(1) as usize,
            window,
            state: Mutex::new(GateState::default()),
        }
    }

    /// The host this gate guards.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Takes one attempt at `now`, or says when the next one may start.
    pub fn try_acquire(&self, now: Instant) -> Result<(), Instant> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(until) = st.closed_until {
            if now < until {
                return Err(until);
            }
            st.closed_until = None;
        }
        while st.recent.front().is_some_and(|&t| t + self.window <= now) {
            st.recent.pop_front();
        }
        if st.recent.len() < self.limit {
            st.recent.push_back(now);
            return Ok(());
        }
        Err(st.recent[0] + self.window)
    }

    /// The venue asked every client of this host to stay away until `until`.
    pub fn close_until(&self, until: Instant) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.closed_until.is_none_or(|t| t < until) {
            st.closed_until = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn no_more_than_the_limit_in_any_window() {
        let t0 = Instant::now();
        let gate = ConnectGate::new("h".into(), 3, 10 * S);
        assert_eq!(gate.try_acquire(t0), Ok(()));
        assert_eq!(gate.try_acquire(t0 + S), Ok(()));
        assert_eq!(gate.try_acquire(t0 + 2 * S), Ok(()));
        assert_eq!(gate.try_acquire(t0 + 3 * S), Err(t0 + 10 * S));
        assert_eq!(gate.try_acquire(t0 + 10 * S), Ok(()), "the oldest slid out");
        assert_eq!(gate.try_acquire(t0 + 10 * S), Err(t0 + 11 * S));
    }

    #[test]
    fn retry_after_closes_the_gate_for_everyone_and_only_extends() {
        let t0 = Instant::now();
        let gate = ConnectGate::new("h".into(), 300, 300 * S);
        gate.close_until(t0 + 5 * S);
        gate.close_until(t0 + 2 * S);
        assert_eq!(gate.try_acquire(t0 + 4 * S), Err(t0 + 5 * S));
        assert_eq!(gate.try_acquire(t0 + 5 * S), Ok(()));
    }
}
