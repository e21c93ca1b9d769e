//! The strategy side: the [`Strategy`] trait and the strategy thread's loop. The demo's
//! strategy is [`crate::arb::ArbMonitor`].
//!
//! The strategy thread drains every feed's channel in order, so a feed's health events arrive
//! interleaved with its ticks exactly as the feed saw them: a strategy that stands down on
//! `Disconnected`/`Stale` never acts on data from a connection it was told is broken.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, TryRecvError};
use hdrhistogram::Histogram;

use crate::account::AccountMsg;
use crate::clock;
use crate::config::WaitMode;
use crate::feed::sink::{Notice, Sink};
use crate::metrics::nanos_histogram;
use crate::tick::{FeedId, Health, HealthMsg, Sequenced, SymbolId, Tick};
use crate::venue::{StreamDef, Venue};

/// What the engine runs: names of feeds, streams and symbols behind the ids in ticks.
#[derive(Clone, Debug, Default)]
pub struct Universe {
    /// Indexed by [`FeedId`].
    pub feeds: Vec<FeedInfo>,
    /// Indexed by [`SymbolId`].
    pub symbols: Vec<String>,
}

/// One feed (one connection's worth of streams).
#[derive(Clone, Debug)]
pub struct FeedInfo {
    /// Name.
    pub name: String,
    /// Venue.
    pub venue: Venue,
    /// URL.
    pub url: String,
    /// Streams, indexed by `Tick::stream`.
    pub streams: Vec<StreamDef>,
}

impl Universe {
    /// The symbol's name.
    pub fn symbol(&self, id: SymbolId) -> &str {
        self.symbols.get(id.0 as usize).map_or("?", String::as_str)
    }
    /// The feed's name.
    pub fn feed(&self, id: FeedId) -> &str {
        self.feeds.get(id as usize).map_or("?", |f| f.name.as_str())
    }
}

/// A trading strategy, run on the strategy thread.
pub trait Strategy: Send + 'static {
    /// Called once before any tick.
    fn on_start(&mut self, _universe: &Universe) {}
    /// A market-data update.
    fn on_tick(&mut self, tick: &Tick);
    /// A feed-health event of `feed`, at monotonic `at_ns`.
    fn on_health(&mut self, feed: FeedId, at_ns: u64, event: &Health);
    /// An account's event (an order, a balance, a position): which account (`msg.feed`),
    /// connection and message it came in, when it was read. Delivered in order with the
    /// account's health events, never dropped. The default ignores it.
    fn on_account(&mut self, _msg: &AccountMsg) {}
    /// A reload added feeds: `universe` names them too (the ids of the feeds already running
    /// do not change; removed feeds keep their ids and send nothing more). The default
    /// ignores it.
    fn on_universe(&mut self, _universe: &Universe) {}
    /// Lines for the end-of-run summary.
    fn report(&self) -> String {
        String::new()
    }
}

/// How often the thread-local latency histogram is merged into the shared one.
const MERGE_EVERY: Duration = Duration::from_millis(250);

/// Frame read → `on_tick` latency, recorded without a lock into a histogram of the strategy's
/// thread and merged into the engine's shared one every [`MERGE_EVERY`].
#[derive(Debug)]
struct Latency {
    local: Histogram<u64>,
    shared: Arc<Mutex<Histogram<u64>>>,
    last_merge: Instant,
}

impl Latency {
    fn new(shared: Arc<Mutex<Histogram<u64>>>) -> Latency {
        Latency {
            local: nanos_histogram(),
            shared,
            last_merge: Instant::now(),
        }
    }

    /// Records a tick read at `recv_ns`, now.
    #[inline]
    fn record(&mut self, recv_ns: u64) {
        self.local
            .saturating_record(clock::now_ns().saturating_sub(recv_ns).max(1));
    }

    /// Merges when the last merge is [`MERGE_EVERY`] old.
    fn merge_if_due(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_merge) >= MERGE_EVERY {
            self.merge(now);
        }
    }

    fn merge(&mut self, now: Instant) {
        self.last_merge = now;
        if self.local.is_empty() {
            return;
        }
        if let Ok(mut h) = self.shared.lock() {
            let _ = h.add(&self.local);
        }
        self.local.reset();
    }
}

/// The strategy called in place, on the thread that reads the sockets (`[engine] strategy =
/// "inline"`): the driver's sink. Ticks and health events arrive in the order the feeds produced
/// them, with nothing in between; latency is recorded as on the strategy thread.
#[derive(Debug)]
pub struct Inline<S: Strategy> {
    strategy: S,
    latency: Latency,
}

impl<S: Strategy> Inline<S> {
    /// `strategy` (already started with [`Strategy::on_start`]), recording into `latency`.
    pub fn new(strategy: S, latency: Arc<Mutex<Histogram<u64>>>) -> Inline<S> {
        Inline {
            strategy,
            latency: Latency::new(latency),
        }
    }

    /// The strategy back, its last latency figures merged.
    pub fn finish(mut self) -> S {
        self.latency.merge(Instant::now());
        self.strategy
    }
}

impl<S: Strategy> Sink for Inline<S> {
    #[inline]
    fn tick(&mut self, _lane: usize, tick: Tick) {
        self.latency.record(tick.recv_ns);
        self.strategy.on_tick(&tick);
    }

    fn health(&mut self, _lane: usize, msg: HealthMsg) {
        self.strategy.on_health(msg.feed, msg.at_ns, &msg.event);
    }

    fn account(&mut self, _lane: usize, msg: AccountMsg) {
        self.strategy.on_account(&msg);
    }

    fn turn_end(&mut self, now: Instant) {
        self.latency.merge_if_due(now);
    }
}

/// One feed's two channels, merged back into the order the feed produced its messages.
///
/// Correctness rests on one property: the feed sends in program order, so once a message with
/// number `n` is visible on either channel, every message numbered below `n` is visible too (or
/// was a tick dropped by the full-channel policy). Each step therefore tops up one pending
/// message per channel, re-checks health after taking a tick (an older event may have become
/// visible meanwhile), and hands out the lower number.
#[derive(Debug)]
pub struct Lane {
    ticks: Receiver<Sequenced<Tick>>,
    health: Receiver<Sequenced<Notice>>,
    tick: Option<Sequenced<Tick>>,
    event: Option<Sequenced<Notice>>,
    ticks_open: bool,
    health_open: bool,
}

/// The next message of a lane.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Next {
    /// A tick.
    Tick(Tick),
    /// A health event.
    Health(HealthMsg),
    /// An account event.
    Account(AccountMsg),
}

fn pull<T>(rx: &Receiver<T>, open: &mut bool) -> Option<T> {
    // A channel found closed was empty then, and stays so: a finished lane (a removed feed's)
    // costs the strategy loop no channel operation.
    if !*open {
        return None;
    }
    match rx.try_recv() {
        Ok(m) => Some(m),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Disconnected) => {
            *open = false;
            None
        }
    }
}

impl Lane {
    /// A lane over a feed's tick and health channels.
    pub fn new(ticks: Receiver<Sequenced<Tick>>, health: Receiver<Sequenced<Notice>>) -> Self {
        Lane {
            ticks,
            health,
            tick: None,
            event: None,
            ticks_open: true,
            health_open: true,
        }
    }

    /// True once both channels are closed and drained.
    pub fn finished(&self) -> bool {
        !self.ticks_open && !self.health_open && self.tick.is_none() && self.event.is_none()
    }

    /// The next message in the feed's order, if one is there.
    #[inline]
    pub fn pop(&mut self) -> Option<Next> {
        if self.event.is_none() {
            self.event = pull(&self.health, &mut self.health_open);
        }
        if self.tick.is_none() {
            self.tick = pull(&self.ticks, &mut self.ticks_open);
            if self.tick.is_some() && self.event.is_none() {
                self.event = pull(&self.health, &mut self.health_open);
            }
        }
        let event_first = match (&self.tick, &self.event) {
            (Some(t), Some(e)) => e.seq < t.seq,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (None, None) => return None,
        };
        if event_first {
            self.event.take().map(|e| match e.msg {
                Notice::Health(h) => Next::Health(h),
                Notice::Account(a) => Next::Account(*a),
            })
        } else {
            self.tick.take().map(|t| Next::Tick(t.msg))
        }
    }
}

/// What a reload tells the strategy thread.
#[derive(Debug)]
pub enum Control {
    /// A feed was added: its lane, and the universe with it.
    AddLane(Box<Lane>, Universe),
}

/// The strategy thread's loop: runs until every feed's channels are closed and drained and
/// `control` (a reload's new lanes) is closed.
pub fn run<S: Strategy>(
    mut strategy: S,
    universe: &Universe,
    mut lanes: Vec<Lane>,
    wait: WaitMode,
    shutdown: Arc<AtomicBool>,
    latency: Arc<Mutex<Histogram<u64>>>,
    control: Receiver<Control>,
) -> S {
    strategy.on_start(universe);
    let mut latency = Latency::new(latency);
    let mut handled: u64 = 0;
    let mut idle_spins: u32 = 0;
    let mut control_open = true;
    // Each round waits on the lanes of its time; a reload's new lane (or the control channel
    // closing) ends the round, and the next one waits on the new set.
    loop {
        // Blocking waits on every channel through one `Select`, built once per round: building
        // it per wait would allocate on the hot path. It borrows its own clones of the
        // receivers.
        let tick_rx: Vec<_> = lanes.iter().map(|l| l.ticks.clone()).collect();
        let health_rx: Vec<_> = lanes.iter().map(|l| l.health.clone()).collect();
        let mut sel = Select::new();
        let mut registered: Vec<[Option<usize>; 2]> = Vec::new();
        if wait == WaitMode::Block {
            for (t, h) in tick_rx.iter().zip(&health_rx) {
                registered.push([Some(sel.recv(t)), Some(sel.recv(h))]);
            }
            if control_open {
                sel.recv(&control);
            }
        }
        let mut changed = false;
        while control_open || lanes.iter().any(|l| !l.finished()) {
            // Once closed, the control channel is not asked again.
            match control_open.then(|| control.try_recv()) {
                Some(Ok(Control::AddLane(lane, universe))) => {
                    lanes.push(*lane);
                    strategy.on_universe(&universe);
                    changed = true;
                }
                Some(Err(TryRecvError::Disconnected)) => {
                    control_open = false;
                    changed = true;
                }
                _ => {}
            }
            if changed {
                break;
            }
            let mut got = false;
            for lane in &mut lanes {
                // Drain in bursts so one busy feed cannot starve the others.
                for _ in 0..256 {
                    match lane.pop() {
                        Some(Next::Tick(t)) => {
                            latency.record(t.recv_ns);
                            strategy.on_tick(&t);
                        }
                        Some(Next::Health(h)) => strategy.on_health(h.feed, h.at_ns, &h.event),
                        Some(Next::Account(a)) => strategy.on_account(&a),
                        None => break,
                    }
                    got = true;
                    handled += 1;
                }
            }
            if got {
                idle_spins = 0;
                if handled % 4096 == 0 {
                    latency.merge_if_due(Instant::now());
                }
                continue;
            }
            // Idle. A spinning thread reads the clock only every 1024 empty rounds.
            idle_spins = idle_spins.wrapping_add(1);
            if wait == WaitMode::Block || idle_spins % 1024 == 0 {
                latency.merge_if_due(Instant::now());
            }
            match wait {
                WaitMode::Spin => {
                    if shutdown.load(Ordering::Relaxed) {
                        // Feeds are stopping; keep draining without burning the core.
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
                WaitMode::Block => {
                    // A closed channel is always "ready": stop waiting on it.
                    for (lane, reg) in lanes.iter().zip(&mut registered) {
                        for (open, slot) in [lane.ticks_open, lane.health_open].into_iter().zip(reg)
                        {
                            if let (false, Some(index)) = (open, *slot) {
                                sel.remove(index);
                                *slot = None;
                            }
                        }
                    }
                    // Wakes as soon as any channel has a message or closes; the timeout only
                    // bounds how stale the merged latency histogram can get.
                    let _ = sel.ready_timeout(MERGE_EVERY);
                }
            }
        }
        if !changed {
            break;
        }
    }
    latency.merge(Instant::now());
    strategy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tick::TickData;
    use crossbeam_channel::{bounded, unbounded};

    fn tick(n: u64) -> Tick {
        Tick {
            feed: 0,
            stream: 0,
            symbol: SymbolId(0),
            seq: n,
            event_time_ms: 0,
            recv_ns: 0,
            data: TickData::Trade {
                price: 1.0,
                qty: 1.0,
                buyer_is_maker: false,
            },
        }
    }

    fn event(conn: u32) -> Notice {
        Notice::Health(HealthMsg {
            feed: 0,
            at_ns: 0,
            event: Health::Connected { conn },
        })
    }

    fn account_event(n: u64) -> Notice {
        use crate::account::{AccountEvent, BalanceUpdate, Text};
        Notice::Account(Box::new(AccountMsg {
            feed: 0,
            conn: 1,
            message: n,
            recv_ns: n,
            event: AccountEvent::Balance(BalanceUpdate {
                asset: Text::new("USDT"),
                total: 1.0,
                available: 1.0,
                change: f64::NAN,
                time_ms: 0,
            }),
        }))
    }

    #[test]
    fn lane_restores_the_feed_order_across_both_channels() {
        let (tt, tr) = bounded(16);
        let (ht, hr) = unbounded();
        // The feed's order: t0 H1 t2 t3 H4 A5 t7 (t6 was dropped on a full channel; A5 is an
        // account event, on the lossless channel with the health events).
        for (seq, m) in [
            (0, None),
            (1, Some(1)),
            (2, None),
            (3, None),
            (4, Some(4)),
            (5, Some(5)),
            (7, None),
        ] {
            match m {
                Some(5) => ht
                    .send(Sequenced {
                        seq,
                        msg: account_event(5),
                    })
                    .unwrap(),
                Some(c) => ht.send(Sequenced { seq, msg: event(c) }).unwrap(),
                None => tt
                    .send(Sequenced {
                        seq,
                        msg: tick(seq),
                    })
                    .unwrap(),
            }
        }
        drop((tt, ht));
        let mut lane = Lane::new(tr, hr);
        let mut order = vec![];
        while let Some(n) = lane.pop() {
            order.push(match n {
                Next::Tick(t) => format!("t{}", t.seq),
                Next::Health(h) => match h.event {
                    Health::Connected { conn } => format!("H{conn}"),
                    _ => unreachable!(),
                },
                Next::Account(a) => format!("A{}", a.recv_ns),
            });
        }
        assert_eq!(order, ["t0", "H1", "t2", "t3", "H4", "A5", "t7"]);
        assert!(lane.finished());
    }
}
