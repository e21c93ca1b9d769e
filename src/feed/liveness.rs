//! Connection liveness: no frame for `stale_after` → ping; no frame within `pong_timeout` of the
//! ping → dead. Any frame (data, pong, ping, ack) proves the connection is alive. Pure.

use std::time::{Duration, Instant};

/// What the connection must do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing is due.
    None,
    /// Send a ping now.
    SendPing,
    /// The ping went unanswered: the connection is dead.
    Dead,
}

/// Liveness clock of one live connection.
#[derive(Clone, Debug)]
pub struct Liveness {
    stale_after: Duration,
    pong_timeout: Duration,
    last_frame: Instant,
    /// When our unanswered ping went out.
    ping_sent: Option<Instant>,
}

impl Liveness {
    /// Starts the clock at `now` (the connection just opened).
    pub fn new(now: Instant, stale_after: Duration, pong_timeout: Duration) -> Self {
        Liveness {
            stale_after,
            pong_timeout,
            last_frame: now,
            ping_sent: None,
        }
    }

    /// A frame arrived.
    #[inline]
    pub fn on_frame(&mut self, now: Instant) {
        self.last_frame = now;
        self.ping_sent = None;
    }

    /// When [`Liveness::poll`] next has something to do.
    pub fn deadline(&self) -> Instant {
        match self.ping_sent {
            Some(sent) => sent + self.pong_timeout,
            None => self.last_frame + self.stale_after,
        }
    }

    /// Time since the last frame.
    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_frame)
    }

    /// Decides what is due at `now`.
    pub fn poll(&mut self, now: Instant) -> Action {
        match self.ping_sent {
            Some(sent) if now >= sent + self.pong_timeout => Action::Dead,
            Some(_) => Action::None,
            None if now >= self.last_frame + self.stale_after => {
                self.ping_sent = Some(now);
                Action::SendPing
            }
            None => Action::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn pings_when_quiet_then_declares_dead() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, 1000 * MS, 500 * MS);
        assert_eq!(l.poll(t0 + 999 * MS), Action::None);
        assert_eq!(l.deadline(), t0 + 1000 * MS);
        assert_eq!(l.poll(t0 + 1000 * MS), Action::SendPing);
        assert_eq!(l.deadline(), t0 + 1500 * MS);
        assert_eq!(
            l.poll(t0 + 1200 * MS),
            Action::None,
            "one ping, not a flood"
        );
        assert_eq!(l.poll(t0 + 1500 * MS), Action::Dead);
    }

    #[test]
    fn any_frame_answers_the_ping() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, 1000 * MS, 500 * MS);
        assert_eq!(l.poll(t0 + 1000 * MS), Action::SendPing);
        l.on_frame(t0 + 1400 * MS);
        assert_eq!(l.poll(t0 + 1600 * MS), Action::None);
        assert_eq!(l.deadline(), t0 + 2400 * MS);
        assert_eq!(l.poll(t0 + 2400 * MS), Action::SendPing);
    }

    #[test]
    fn data_keeps_the_connection_alive_without_pings() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, 1000 * MS, 500 * MS);
        for i in 1..100 {
            l.on_frame(t0 + i * 900 * MS);
            assert_eq!(l.poll(t0 + i * 900 * MS + 899 * MS), Action::None);
        }
    }
}
