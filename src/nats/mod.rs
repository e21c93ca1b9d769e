//! Fan-out over NATS JetStream (`[sink.nats]`): every tick and health event the strategy is
//! given, published from a thread of its own. docs/NATS.md has the subjects, the payload and how
//! a consumer resumes.
//!
//! The strategy side pays one non-blocking channel send per message, after the strategy's own
//! call ([`Tapped`]): the event (`Copy`, no allocation) goes on a bounded crossbeam channel with
//! `try_send`, and a full channel is a counted drop, never a wait. The feed threads do nothing
//! for NATS. The sink thread ([`sink`], behind the `nats` feature) encodes, publishes with a
//! message id, and lets a message go only once JetStream acknowledged storing it; what was not
//! acknowledged (an error, a timeout, the server away) is counted and published again with the
//! same id, which JetStream's duplicate window stores once.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | the strategy side: [`Event`], [`Tap`], [`Tapped`], the counters [`NatsStats`] |
//! | `encode.rs` | subjects and the JSON payload (pure, no I/O) |
//! | `sink.rs` | the sink thread: its private tokio runtime, connect, publish, acks, drain |

pub mod encode;
#[cfg(feature = "nats")]
pub mod sink;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use crate::config::NatsConfig;
use crate::strategy::{Strategy, Universe};
use crate::tick::{FeedId, Health, HealthMsg, Tick};

/// What the strategy side hands to the sink thread.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    /// A tick, as given to `Strategy::on_tick`.
    Tick(Tick),
    /// A health event, as given to `Strategy::on_health`.
    Health(HealthMsg),
}

/// The sink's counters, live (the metrics endpoint reads them) and at the end (the summary).
#[derive(Debug, Default)]
pub struct NatsStats {
    /// Events handed to the sink's channel.
    pub handed: AtomicU64,
    /// Events dropped because the sink's channel was full (the server away too long, or slower
    /// than the feeds).
    pub dropped: AtomicU64,
    /// Publish requests sent, retries included.
    pub published: AtomicU64,
    /// Events JetStream acknowledged storing (each counted once).
    pub acked: AtomicU64,
    /// Of `acked`, events whose acknowledgement said duplicate: an earlier, unacknowledged try
    /// had been stored.
    pub duplicates: AtomicU64,
    /// Publish requests not acknowledged: an error, a timeout or no connection. Each is retried.
    pub not_acked: AtomicU64,
    /// Events still unacknowledged when the sink gave up at shutdown (`drain_timeout_ms`).
    pub abandoned: AtomicU64,
    /// Connections to the server made after the first.
    pub reconnects: AtomicU64,
    /// Events waiting in the sink (channel and unacknowledged), at the last look.
    pub pending: AtomicU64,
}

impl NatsStats {
    /// The counters now.
    pub fn summary(&self) -> NatsSummary {
        NatsSummary {
            handed: self.handed.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            published: self.published.load(Relaxed),
            acked: self.acked.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            not_acked: self.not_acked.load(Relaxed),
            abandoned: self.abandoned.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
        }
    }
}

/// The sink's counters at one moment (see [`NatsStats`] for each).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatsSummary {
    /// Events handed to the sink.
    pub handed: u64,
    /// Events dropped on a full channel.
    pub dropped: u64,
    /// Publish requests sent.
    pub published: u64,
    /// Events stored, acknowledged.
    pub acked: u64,
    /// Acknowledged as duplicates of an earlier try.
    pub duplicates: u64,
    /// Publish requests not acknowledged (retried).
    pub not_acked: u64,
    /// Left unacknowledged at shutdown.
    pub abandoned: u64,
    /// Reconnections to the server.
    pub reconnects: u64,
}

impl fmt::Display for NatsSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NATS: {} handed to the sink, {} stored and acknowledged ({} as duplicates of a \
             retry), {} dropped on a full buffer, {} left unacknowledged at stop; {} publish \
             requests, {} not acknowledged (retried), {} reconnects",
            self.handed,
            self.acked,
            self.duplicates,
            self.dropped,
            self.abandoned,
            self.published,
            self.not_acked,
            self.reconnects
        )
    }
}

/// The sink thread, when one runs.
#[derive(Debug)]
pub struct Running {
    #[cfg(feature = "nats")]
    sink: sink::NatsSink,
    stats: Arc<NatsStats>,
}

impl Running {
    /// The live counters.
    pub fn stats(&self) -> Arc<NatsStats> {
        self.stats.clone()
    }

    /// Waits for the sink to publish what it holds (at most `drain_timeout_ms` once every tap
    /// is dropped) and returns the final counters.
    pub fn finish(self) -> NatsSummary {
        #[cfg(feature = "nats")]
        self.sink.finish();
        self.stats.summary()
    }
}

/// Starts the sink thread for `config`, counting into `stats`, and returns it with the strategy
/// side's tap; without a config, neither. (Without the `nats` feature a config never validates,
/// so nothing starts.)
pub fn start(
    config: Option<&NatsConfig>,
    universe: &Universe,
    stats: Arc<NatsStats>,
) -> std::io::Result<(Option<Running>, Option<Tap>)> {
    #[cfg(feature = "nats")]
    if let Some(config) = config {
        let (sink, tap) = sink::NatsSink::start(config, universe, stats.clone())?;
        return Ok((Some(Running { sink, stats }), Some(tap)));
    }
    let _ = (config, universe, stats);
    Ok((None, None))
}

/// The strategy side's end of the sink's channel.
#[derive(Clone, Debug)]
pub struct Tap {
    tx: Sender<Event>,
    universes: Sender<Universe>,
    stats: Arc<NatsStats>,
}

impl Tap {
    /// A tap sending events on `tx` and a reload's grown universe on `universes`, counting
    /// into `stats`.
    pub fn new(tx: Sender<Event>, universes: Sender<Universe>, stats: Arc<NatsStats>) -> Tap {
        Tap {
            tx,
            universes,
            stats,
        }
    }

    /// Hands `event` over without waiting; a full channel counts a drop.
    #[inline]
    pub fn send(&self, event: Event) {
        match self.tx.try_send(event) {
            Ok(()) => {
                self.stats.handed.fetch_add(1, Relaxed);
            }
            Err(TrySendError::Full(_)) => {
                self.stats.dropped.fetch_add(1, Relaxed);
            }
            // The sink thread is gone (it only stops once this side has): nothing to count.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// A strategy whose every tick and health event is also handed to the NATS sink, after the
/// strategy's own call: the strategy sees it first, and what the sink costs it is one
/// non-blocking channel send. Without a tap it is the strategy alone.
#[derive(Debug)]
pub struct Tapped<S> {
    strategy: S,
    tap: Option<Tap>,
}

impl<S: Strategy> Tapped<S> {
    /// `strategy`, handing what it sees to `tap` when there is one.
    pub fn new(strategy: S, tap: Option<Tap>) -> Tapped<S> {
        Tapped { strategy, tap }
    }

    /// The strategy back; the tap is dropped, which tells the sink no more will come.
    pub fn into_inner(self) -> S {
        self.strategy
    }
}

impl<S: Strategy> Strategy for Tapped<S> {
    fn on_start(&mut self, universe: &Universe) {
        self.strategy.on_start(universe);
    }

    #[inline]
    fn on_tick(&mut self, tick: &Tick) {
        self.strategy.on_tick(tick);
        if let Some(tap) = &self.tap {
            tap.send(Event::Tick(*tick));
        }
    }

    fn on_health(&mut self, feed: FeedId, at_ns: u64, event: &Health) {
        self.strategy.on_health(feed, at_ns, event);
        if let Some(tap) = &self.tap {
            tap.send(Event::Health(HealthMsg {
                feed,
                at_ns,
                event: *event,
            }));
        }
    }

    fn on_universe(&mut self, universe: &Universe) {
        self.strategy.on_universe(universe);
        // Sent before any event of the feeds it adds, so the sink names them (never lost: the
        // channel is unbounded, and a reload is rare).
        if let Some(tap) = &self.tap {
            let _ = tap.universes.send(universe.clone());
        }
    }

    /// Account events go to the strategy only: an account's orders and balances are not
    /// fanned out.
    fn on_account(&mut self, msg: &crate::account::AccountMsg) {
        self.strategy.on_account(msg);
    }

    fn report(&self) -> String {
        self.strategy.report()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;

    struct Nop;
    impl Strategy for Nop {
        fn on_tick(&mut self, _tick: &Tick) {}
        fn on_health(&mut self, _feed: FeedId, _at_ns: u64, _event: &Health) {}
    }

    #[test]
    fn a_full_channel_counts_drops_and_never_waits() {
        let (tx, rx) = bounded(2);
        let stats = Arc::new(NatsStats::default());
        let (universes, _) = crossbeam_channel::unbounded();
        let mut s = Tapped::new(Nop, Some(Tap::new(tx, universes, stats.clone())));
        for _ in 0..5 {
            s.on_health(0, 1, &Health::Connected { conn: 1 });
        }
        let got = stats.summary();
        assert_eq!((got.handed, got.dropped), (2, 3));
        assert_eq!(rx.len(), 2);
        let _strategy: Nop = s.into_inner();
        // The tap went with the wrapper: the sink sees the channel close once drained.
        assert!(rx.try_recv().is_ok() && rx.try_recv().is_ok());
        assert!(rx.try_recv().unwrap_err().is_disconnected());
    }

    /// A reload's grown universe goes to the sink, so the feeds it adds are named there.
    #[test]
    fn a_reload_s_universe_reaches_the_sink() {
        let (tx, _rx) = bounded(2);
        let (universes, got) = crossbeam_channel::unbounded();
        let stats = Arc::new(NatsStats::default());
        let mut s = Tapped::new(Nop, Some(Tap::new(tx, universes, stats.clone())));
        let mut grown = Universe::default();
        grown.symbols.push("BTCUSDT".into());
        s.on_universe(&grown);
        assert_eq!(got.try_recv().expect("sent").symbols, grown.symbols);
        // Not an event: nothing handed or dropped.
        assert_eq!((stats.summary().handed, stats.summary().dropped), (0, 0));
    }
}
