//! Per-stream silence: a stream subscribed on a live connection that stops delivering (Binance
//! USD-M's unrouted connections deliver nothing for `/market` streams, and say nothing) is
//! reported stale, separately from connection liveness. [`Silence`] watches one stream (a
//! feed's stream across its connections); [`StreamWatch`] a set (one connection's cadence
//! streams). Pure.

use std::time::{Duration, Instant};

/// The silence of one stream.
#[derive(Clone, Debug)]
pub struct Silence {
    limit: Duration,
    /// Last data, or when watching started. `None`: not watched (not subscribed).
    last: Option<Instant>,
    stale: bool,
}

impl Silence {
    /// A stream that may be silent for `limit`; not watched until [`Silence::arm`].
    pub fn new(limit: Duration) -> Self {
        Silence {
            limit,
            last: None,
            stale: false,
        }
    }

    /// Starts watching from `now` (the subscription was acknowledged).
    pub fn arm(&mut self, now: Instant) {
        self.last = Some(now);
        self.stale = false;
    }

    /// Starts watching from `now` unless watching already (a second connection subscribing
    /// must not restart a silence that is under way).
    pub fn arm_if_idle(&mut self, now: Instant) {
        if self.last.is_none() {
            self.arm(now);
        }
    }

    /// Stops watching (the connection is gone; connection health takes over).
    pub fn disarm(&mut self) {
        self.last = None;
        self.stale = false;
    }

    /// The stream delivered. Returns how long it had been silent if it was stale.
    #[inline]
    pub fn on_data(&mut self, now: Instant) -> Option<Duration> {
        let was = self.last.replace(now);
        if self.stale {
            self.stale = false;
            return Some(now.saturating_duration_since(was.unwrap_or(now)));
        }
        None
    }

    /// `Some(silence)` when the stream has just gone past its limit (reported once).
    pub fn poll(&mut self, now: Instant) -> Option<Duration> {
        let silent = now.saturating_duration_since(self.last?);
        if !self.stale && silent >= self.limit {
            self.stale = true;
            return Some(silent);
        }
        None
    }

    /// The instant the stream would go stale, if it is watched and not stale yet.
    pub fn deadline(&self) -> Option<Instant> {
        if self.stale {
            return None;
        }
        self.last.and_then(|l| l.checked_add(self.limit))
    }

    /// Whether the stream is currently stale.
    pub fn is_stale(&self) -> bool {
        self.stale
    }
}

/// Silence watch over a set of streams (one connection's streams with a guaranteed cadence).
#[derive(Clone, Debug)]
pub struct StreamWatch {
    streams: Vec<Silence>,
}

impl StreamWatch {
    /// One entry per stream with its silence limit; nothing is watched until [`StreamWatch::arm`].
    pub fn new(limits: impl IntoIterator<Item = Duration>) -> Self {
        StreamWatch {
            streams: limits.into_iter().map(Silence::new).collect(),
        }
    }

    /// Starts watching stream `i` from `now` (its subscription was acknowledged).
    pub fn arm(&mut self, i: usize, now: Instant) {
        if let Some(w) = self.streams.get_mut(i) {
            w.arm(now);
        }
    }

    /// Starts watching stream `i` from `now` unless it is watched already.
    pub fn arm_if_idle(&mut self, i: usize, now: Instant) {
        if let Some(w) = self.streams.get_mut(i) {
            w.arm_if_idle(now);
        }
    }

    /// Stops watching every stream.
    pub fn disarm_all(&mut self) {
        self.streams.iter_mut().for_each(Silence::disarm);
    }

    /// Stream `i` delivered. Returns how long it had been silent if it was stale.
    #[inline]
    pub fn on_data(&mut self, i: usize, now: Instant) -> Option<Duration> {
        self.streams.get_mut(i)?.on_data(now)
    }

    /// Reports each stream that has just gone past its limit, with its silence.
    pub fn poll(&mut self, now: Instant, mut on_stale: impl FnMut(usize, Duration)) {
        for (i, w) in self.streams.iter_mut().enumerate() {
            if let Some(silent) = w.poll(now) {
                on_stale(i, silent);
            }
        }
    }

    /// The next instant a watched, not yet stale stream would go stale.
    pub fn deadline(&self) -> Option<Instant> {
        self.streams.iter().filter_map(Silence::deadline).min()
    }

    /// Whether stream `i` is currently stale.
    pub fn is_stale(&self, i: usize) -> bool {
        self.streams.get(i).is_some_and(Silence::is_stale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_silent_stream_goes_stale_once_and_resumes() {
        let t0 = Instant::now();
        let mut w = StreamWatch::new([100 * MS, 1000 * MS]);
        let mut stale = vec![];
        w.poll(t0 + 5000 * MS, |i, _| stale.push(i));
        assert!(stale.is_empty(), "unarmed streams are not watched");
        w.arm(0, t0);
        w.arm(1, t0);
        assert_eq!(w.deadline(), Some(t0 + 100 * MS));
        w.poll(t0 + 99 * MS, |i, _| stale.push(i));
        assert!(stale.is_empty());
        w.poll(t0 + 150 * MS, |i, d| stale.push((i, d).0));
        assert_eq!(stale, vec![0]);
        w.poll(t0 + 160 * MS, |i, _| stale.push(i));
        assert_eq!(stale, vec![0], "reported once");
        assert_eq!(w.deadline(), Some(t0 + 1000 * MS));
        assert_eq!(w.on_data(0, t0 + 300 * MS), Some(300 * MS));
        assert!(!w.is_stale(0));
        assert_eq!(w.on_data(0, t0 + 310 * MS), None);
        assert_eq!(w.on_data(1, t0 + 320 * MS), None);
        w.disarm_all();
        assert_eq!(w.deadline(), None);
    }
}
