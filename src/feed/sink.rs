//! Where a feed's ticks and health events go: the one output of the connection logic besides
//! the driver's actions and the capture.
//!
//! A [`Sink`] receives each feed's ticks and health events in the order the feed produced them.
//! [`ChannelSink`] is the first kind: per feed, a bounded lossy channel for ticks and an
//! unbounded lossless one for health events, both numbered from one counter so the strategy
//! thread restores the feed's order ([`crate::strategy::Lane`]). A strategy called in place on
//! the reading thread is another kind of sink; the feed logic does not know which it feeds.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::account::AccountMsg;
use crate::config::FullPolicy;
use crate::metrics::FeedStats;
use crate::tick::{HealthMsg, Sequenced, Tick};

/// What travels a feed's lossless channel: health events and, for accounts, account events.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// A health event.
    Health(HealthMsg),
    /// An account event (never dropped, whatever `on_full` says). Boxed: it is several times
    /// the size of a health event, and rare beside market data.
    Account(Box<AccountMsg>),
}

/// Receives what the feeds of one driver produce. `lane` is the feed's index within the driver
/// (its position in the driver's feed list), so one sink can serve several feeds.
pub trait Sink {
    /// A tick. Called on the hot path: must not block or allocate.
    fn tick(&mut self, lane: usize, tick: Tick);
    /// A health event (rare).
    fn health(&mut self, lane: usize, msg: HealthMsg);
    /// An account event: delivered in order with the feed's health events, never dropped.
    fn account(&mut self, lane: usize, msg: AccountMsg);
    /// The driver finished a turn at `now` (a moment for housekeeping; called often).
    fn turn_end(&mut self, _now: Instant) {}
}

/// The channel ends one feed writes to.
#[derive(Debug)]
pub struct Outbox {
    /// Ticks to the strategy.
    pub ticks: Sender<Sequenced<Tick>>,
    /// The same tick channel, for drop-oldest.
    pub ticks_rx: Receiver<Sequenced<Tick>>,
    /// Health (and account) events to the strategy.
    pub health: Sender<Sequenced<Notice>>,
    /// Full-channel policy.
    pub on_full: FullPolicy,
    /// The feed's counters (drops are counted here).
    pub stats: Arc<FeedStats>,
    /// Number of the next message.
    next_seq: u64,
}

impl Outbox {
    /// A feed's channel ends, numbering from 0.
    pub fn new(
        ticks: Sender<Sequenced<Tick>>,
        ticks_rx: Receiver<Sequenced<Tick>>,
        health: Sender<Sequenced<Notice>>,
        on_full: FullPolicy,
        stats: Arc<FeedStats>,
    ) -> Outbox {
        Outbox {
            ticks,
            ticks_rx,
            health,
            on_full,
            stats,
            next_seq: 0,
        }
    }

    fn seq(&mut self) -> u64 {
        let n = self.next_seq;
        self.next_seq += 1;
        n
    }

    /// Sends a tick without ever blocking; when the channel is full the policy decides which
    /// tick goes, and the drop is counted.
    #[inline]
    pub fn send_tick(&mut self, tick: Tick) {
        let mut msg = Sequenced {
            seq: self.seq(),
            msg: tick,
        };
        loop {
            match self.ticks.try_send(msg) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(m)) => {
                    FeedStats::bump(&self.stats.dropped);
                    if self.on_full == FullPolicy::DropNewest {
                        return;
                    }
                    // Only ticks are on this channel: taking the oldest out loses no event.
                    let _ = self.ticks_rx.try_recv();
                    msg = m;
                }
            }
        }
    }

    /// Sends a health event; the channel is unbounded, so it is never dropped.
    #[cold]
    pub fn send_health(&mut self, msg: HealthMsg) {
        self.send_notice(Notice::Health(msg));
    }

    /// Sends an account event on the lossless channel.
    #[cold]
    pub fn send_account(&mut self, msg: AccountMsg) {
        self.send_notice(Notice::Account(Box::new(msg)));
    }

    fn send_notice(&mut self, msg: Notice) {
        let seq = self.seq();
        let _ = self.health.send(Sequenced { seq, msg });
    }
}

/// The sink of feeds whose strategy runs on its own thread: one [`Outbox`] per lane.
#[derive(Debug, Default)]
pub struct ChannelSink {
    outboxes: Vec<Outbox>,
}

impl ChannelSink {
    /// One outbox per lane, in lane order.
    pub fn new(outboxes: Vec<Outbox>) -> ChannelSink {
        ChannelSink { outboxes }
    }
}

impl Sink for ChannelSink {
    #[inline]
    fn tick(&mut self, lane: usize, tick: Tick) {
        if let Some(o) = self.outboxes.get_mut(lane) {
            o.send_tick(tick);
        }
    }

    #[cold]
    fn health(&mut self, lane: usize, msg: HealthMsg) {
        if let Some(o) = self.outboxes.get_mut(lane) {
            o.send_health(msg);
        }
    }

    #[cold]
    fn account(&mut self, lane: usize, msg: AccountMsg) {
        if let Some(o) = self.outboxes.get_mut(lane) {
            o.send_account(msg);
        }
    }
}
