//! The generator thread: advances the market on schedule and broadcasts
//! every event, rendered once, to every registered connection.
//!
//! Each symbol has one timer per event kind (book change, depth diff, trade,
//! mark price), staggered across symbols; a shared market's book changes are
//! jittered in time. A connection whose channel is full (a client not keeping
//! up) misses the event; all others see the same sequence numbers at about
//! the same time, as on the venue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TrySendError};

use super::base::{lock, now_ms};
use super::market::Event;
use super::rng::{mix, seeded, Draw};
use super::state::Inner;

/// Smallest interval the generator accepts; smaller configured values are
/// clamped so that a zero interval cannot spin the generator forever.
const MIN_INTERVAL: Duration = Duration::from_micros(100);
/// Upper bound on events of one kind/symbol generated in one catch-up round.
const MAX_CATCH_UP: u32 = 64;
/// Longest the generator sleeps before re-checking for shutdown.
const MAX_IDLE: Duration = Duration::from_millis(50);

/// Schedule of one event kind for one symbol.
#[derive(Debug)]
struct Timer {
    next: Instant,
    every: Duration,
    /// Shared markets' book changes: each interval is `every` times a
    /// factor uniform in `[1 − j, 1 + j]`.
    jitter: Option<(f64, fastrand::Rng)>,
}

impl Timer {
    fn new(start: Instant, every: Duration, sym: usize, n_syms: usize) -> Timer {
        let every = every.max(MIN_INTERVAL);
        // Stagger symbols so they do not all fire in the same instant.
        let offset = every.mul_f64(sym as f64 / n_syms.max(1) as f64);
        Timer {
            next: start + every + offset,
            every,
            jitter: None,
        }
    }

    /// Jittered intervals (`j` in `[0, 1)`), deterministic from `seed`.
    fn jittered(mut self, j: f64, seed: u64) -> Timer {
        self.jitter = Some((j, seeded(seed)));
        self
    }

    /// The interval to the next firing.
    fn interval(&mut self) -> Duration {
        match &mut self.jitter {
            None => self.every,
            Some((j, rng)) => self
                .every
                .mul_f64(1.0 - *j + 2.0 * *j * rng.unit())
                .max(MIN_INTERVAL),
        }
    }

    /// How many firings are due at `now` (bounded), advancing the schedule.
    fn due(&mut self, now: Instant) -> u32 {
        let mut n = 0;
        while self.next <= now && n < MAX_CATCH_UP {
            let every = self.interval();
            self.next += every;
            n += 1;
        }
        if self.next <= now {
            // Too far behind (e.g. the machine was suspended): resynchronise.
            self.next = now + self.interval();
        }
        n
    }
}

/// The generator thread: advances the market on schedule and broadcasts each
/// event to every registered connection. Exits when `stop` is disconnected
/// (or receives anything).
pub(crate) fn run_generator(inner: Arc<Inner>, stop: Receiver<()>) {
    let cfg = &inner.cfg;
    let (n, jitter) = {
        let market = lock(&inner.market);
        (market.len(), market.jitter())
    };
    let start = Instant::now();
    let mk = |every: Duration| -> Vec<Timer> {
        (0..n).map(|i| Timer::new(start, every, i, n)).collect()
    };
    let mut book = mk(cfg.book_interval);
    if let Some((j, seed)) = jitter {
        book = book
            .into_iter()
            .enumerate()
            .map(|(i, t)| t.jittered(j, mix(seed ^ i as u64)))
            .collect();
    }
    let mut trade = mk(cfg.trade_interval);
    let mut depth = mk(cfg.depth_interval);
    let mut mark = mk(cfg.mark_price_interval);
    let mut batch: Vec<Arc<Event>> = Vec::new();

    loop {
        let now = Instant::now();
        let e_ms = now_ms();
        {
            let mut market = lock(&inner.market);
            market.sync_shared(now);
            for i in 0..n {
                for _ in 0..book[i].due(now) {
                    batch.push(Arc::new(market.book_change(i, e_ms)));
                }
                if depth[i].due(now) > 0 {
                    if let Some(ev) = market.depth(i, e_ms) {
                        batch.push(Arc::new(ev));
                    }
                }
                for _ in 0..trade[i].due(now) {
                    batch.extend(market.trade_events(i, e_ms).into_iter().map(Arc::new));
                }
                if mark[i].due(now) > 0 {
                    batch.extend(market.mark(i, e_ms).into_iter().map(Arc::new));
                }
            }
        }
        if !batch.is_empty() {
            broadcast(&inner, &batch);
            batch.clear();
        }
        let next = book
            .iter()
            .chain(&trade)
            .chain(&depth)
            .chain(&mark)
            .map(|t| t.next)
            .min()
            .unwrap_or(now + MAX_IDLE);
        let wait = next.saturating_duration_since(Instant::now()).min(MAX_IDLE);
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// Sends every event of `batch` to every registered connection. A full
/// channel (a connection not keeping up) drops the event for that connection
/// only; a disconnected one is unregistered.
fn broadcast(inner: &Inner, batch: &[Arc<Event>]) {
    let mut subs = lock(&inner.subscribers);
    subs.retain(|sub| {
        for ev in batch {
            match sub.tx.try_send(Arc::clone(ev)) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        true
    });
}
