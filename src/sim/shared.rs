//! One underlying market quoted by several simulators: [`SharedMarket`].
//!
//! The model is documented on [`SharedMarket`].

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::base::lock;
use super::rng::{mix, seeded, Draw};
use super::symbol::price_format;

/// Length of one tick of the shared price path.
const TICK: Duration = Duration::from_millis(1);
/// Largest step of the shared random walk per tick, as a fraction (0.22 bp).
const STEP_MAX: f64 = 0.000_022;
/// Ticks of shared price history kept for lagging views.
const HISTORY: u64 = 256;
/// Largest lag a view may have, in ticks (leaves history for samplers that
/// are a little behind the market's latest tick).
const MAX_LAG_TICKS: u64 = 200;
/// Longest gap stepped tick by tick; longer ones are bridged in one step.
const MAX_STEP_TICKS: u64 = 60_000;
/// Mean ticks between two redraws of a view's lag.
const LAG_CHANGE_TICKS: f64 = 250.0;
/// The shared price stays within `[start / PRICE_RANGE, start × PRICE_RANGE]`.
const PRICE_RANGE: f64 = 2.0;
/// Dislocations remembered per symbol (for samplers slightly behind).
const SPIKES_KEPT: usize = 4;
/// Shortest offset mean-reversion time accepted.
const MIN_REVERSION: Duration = Duration::from_millis(10);

/// How the venues of a [`SharedMarket`] deviate from its price. Values out
/// of range are clamped (non-finite ones replaced by the default) when the
/// market is built.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedMarketParams {
    /// Standard deviation of each venue's own offset from the shared price,
    /// in basis points. Default 1.2.
    pub offset_std_bps: f64,
    /// Hard bound of that offset, in basis points. Default 3.
    pub offset_max_bps: f64,
    /// Mean-reversion time of the offset (at least 10 ms). Default 2 s.
    pub offset_reversion: Duration,
    /// Mean time between two dislocations of one symbol, all venues together
    /// (plus the dislocations' own durations: they never overlap).
    /// `Duration::ZERO`: no dislocations. Default 10 s.
    pub spike_every: Duration,
    /// Size range of a dislocation in basis points, uniform; the sign is
    /// random. Default 10 to 40.
    pub spike_bps: (f64, f64),
    /// Duration range of a dislocation, uniform. Default 150 ms to 600 ms.
    pub spike_duration: (Duration, Duration),
    /// Largest delay with which a venue follows the shared price (at most
    /// 200 ms). Default 4 ms.
    pub max_lag: Duration,
    /// Book-change timing jitter `j` in `[0, 0.9]`: each interval between
    /// two book changes is uniform in `book_interval × [1 − j, 1 + j]`.
    /// Default 0.5.
    pub timing_jitter: f64,
}

impl Default for SharedMarketParams {
    fn default() -> Self {
        SharedMarketParams {
            offset_std_bps: 1.2,
            offset_max_bps: 3.0,
            offset_reversion: Duration::from_secs(2),
            spike_every: Duration::from_secs(10),
            spike_bps: (10.0, 40.0),
            spike_duration: (Duration::from_millis(150), Duration::from_millis(600)),
            max_lag: Duration::from_millis(4),
            timing_jitter: 0.5,
        }
    }
}

impl SharedMarketParams {
    fn sanitized(self) -> SharedMarketParams {
        let d = SharedMarketParams::default();
        let bps = |v: f64, dflt: f64| {
            if v.is_finite() {
                v.clamp(0.0, 10_000.0)
            } else {
                dflt
            }
        };
        let (lo, hi) = (
            bps(self.spike_bps.0, d.spike_bps.0),
            bps(self.spike_bps.1, d.spike_bps.1),
        );
        let (dlo, dhi) = self.spike_duration;
        SharedMarketParams {
            offset_std_bps: bps(self.offset_std_bps, d.offset_std_bps),
            offset_max_bps: bps(self.offset_max_bps, d.offset_max_bps),
            offset_reversion: self.offset_reversion.max(MIN_REVERSION),
            spike_every: self.spike_every,
            spike_bps: (lo.min(hi), lo.max(hi)),
            spike_duration: (dlo.min(dhi).max(TICK), dlo.max(dhi).max(TICK)),
            max_lag: self.max_lag.min(TICK * MAX_LAG_TICKS as u32),
            timing_jitter: if self.timing_jitter.is_finite() {
                self.timing_jitter.clamp(0.0, 0.9)
            } else {
                d.timing_jitter
            },
        }
    }

    fn max_lag_ticks(&self) -> u64 {
        ticks(self.max_lag)
    }
}

/// Whole ticks in `d`.
fn ticks(d: Duration) -> u64 {
    (d.as_nanos() / TICK.as_nanos()) as u64
}

/// One underlying market that several `Sim`s quote, each in
/// its own venue's protocol (set `SimConfig::shared`,
/// or start them with `start_group`).
///
/// Only the price path is shared: every simulator keeps its own book, update
/// ids, sequence numbers, trades and ground truth. Each venue's mid follows
/// the shared price with its own small wandering offset, its own small lag
/// and jittered update timing, and now and then one venue is dislocated by
/// 10–40 bp for a fraction of a second — brief cross-venue opportunities
/// that survive taker fees, as on real markets. [`SharedMarketParams`] has
/// the knobs.
///
/// # Model
///
/// The shared market advances in ticks of one millisecond counted from the
/// first time any simulator (or [`SharedMarket::mid`]) looks at it. Per tick
/// and symbol, the *shared price* takes one random-walk step (uniform, at most
/// 0.22 bp), and a *dislocation* may start (see [`SharedMarketParams`]): one
/// venue, drawn among the simulators that joined, is pushed 10–40 bp away for
/// a fraction of a second (ramp up, hold, ramp down), and no other
/// dislocation of that symbol starts before it ends.
///
/// Each simulator joining the market gets a *slot* (0, 1, 2, … in join
/// order) and its own *view*, also advanced tick by tick: per symbol, an
/// offset wandering around zero (mean-reverting, a few basis points, hard
/// bounded) and a small lag (0 to [`SharedMarketParams::max_lag`], redrawn
/// now and then). The venue's mid price at tick `t` is
///
/// ```text
/// shared_price(t − lag) × (1 + (offset(t) + dislocation(t)) / 10 000)
/// ```
///
/// and its book is built around it exactly as an unshared simulator's book is
/// built around its own random walk. The book changes themselves are jittered
/// in time (each interval uniform in `book_interval × [1 − j, 1 + j]`).
///
/// Everything is a function of the seed, the slot, the number of simulators
/// joined and the tick only — not of when a simulator happens to sample it —
/// so two markets with the same seed and the same joins go through the same
/// prices; which ticks a simulator's generator samples depends on thread
/// scheduling (and a gap of over a minute is bridged, see below).
///
/// Bounds: at the same instant two venues' mids differ by at most
/// [`SharedMarket::max_divergence_bps`] (two offsets, one dislocation and the
/// random walk over the largest lag); the shared price stays within a factor
/// of two of its start; a gap of more than a minute without any sampling is
/// bridged in one step instead of tick by tick.
///
/// A cheap handle (an `Arc`): clones share the market. Two handles are equal
/// when they are clones of each other.
///
/// ```no_run
/// use wsfeed::sim::{start_group, SharedMarket, SimConfig, SimVenue};
///
/// let shared = SharedMarket::new(["BTCUSDT", "ETHUSDT"], 42);
/// let cfg = |venue| SimConfig {
///     venue,
///     tls: false,
///     symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
///     ..SimConfig::default()
/// };
/// let sims = start_group(vec![cfg(SimVenue::Binance), cfg(SimVenue::Okx)], shared.clone())?;
/// println!("fair BTC price now: {:?}", shared.mid("BTCUSDT"));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedMarket {
    inner: Arc<SharedInner>,
}

struct SharedInner {
    symbols: Vec<String>,
    seed: u64,
    params: SharedMarketParams,
    state: Mutex<PathState>,
}

impl fmt::Debug for SharedMarket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMarket")
            .field("symbols", &self.inner.symbols)
            .field("seed", &self.inner.seed)
            .field("venues", &lock(&self.inner.state).slots)
            .finish()
    }
}

impl PartialEq for SharedMarket {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for SharedMarket {}

impl SharedMarket {
    /// A shared market of these symbols (normalised like
    /// `SimConfig::symbols`: trimmed,
    /// uppercase, duplicates dropped), deterministic from `seed`, with the
    /// default [`SharedMarketParams`]. Each symbol starts within ±0.5 % of
    /// the price an unshared simulator starts around (BTC 60 000, ETH 3 000,
    /// SOL 150, others 100).
    pub fn new<S: AsRef<str>>(symbols: impl IntoIterator<Item = S>, seed: u64) -> SharedMarket {
        SharedMarket::with_params(symbols, seed, SharedMarketParams::default())
    }

    /// Like [`SharedMarket::new`] with explicit parameters.
    pub fn with_params<S: AsRef<str>>(
        symbols: impl IntoIterator<Item = S>,
        seed: u64,
        params: SharedMarketParams,
    ) -> SharedMarket {
        let mut names: Vec<String> = Vec::new();
        for s in symbols {
            let s = s.as_ref().trim().to_ascii_uppercase();
            if !s.is_empty() && !names.contains(&s) {
                names.push(s);
            }
        }
        let mut rng = seeded(mix(seed ^ 0x5AA2_ED00_0000_0001));
        let syms = names
            .iter()
            .map(|s| {
                let price = price_format(s).0 * (1.0 + (rng.unit() - 0.5) * 0.01);
                SymPath {
                    start: price,
                    price,
                    history: vec![price; HISTORY as usize],
                    spikes: VecDeque::new(),
                }
            })
            .collect();
        SharedMarket {
            inner: Arc::new(SharedInner {
                symbols: names,
                seed,
                params: params.sanitized(),
                state: Mutex::new(PathState {
                    epoch: None,
                    tick: 0,
                    rng,
                    syms,
                    slots: 0,
                }),
            }),
        }
    }

    /// The symbols, normalised.
    pub fn symbols(&self) -> &[String] {
        &self.inner.symbols
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// The parameters in effect (after clamping).
    pub fn params(&self) -> &SharedMarketParams {
        &self.inner.params
    }

    /// How many simulators have joined (each got the next slot).
    pub fn venues(&self) -> u32 {
        lock(&self.inner.state).slots
    }

    /// The shared ("fair") price of `symbol` now, without any venue's offset,
    /// lag or dislocation (what the simulators' index prices show); `None`
    /// for a symbol the market does not have. Symbol case is ignored.
    pub fn mid(&self, symbol: &str) -> Option<f64> {
        let j = self.index_of(symbol)?;
        let tick = self.tick_of(Instant::now());
        let mut st = lock(&self.inner.state);
        st.advance(tick, &self.inner.params);
        Some(st.syms[j].price)
    }

    /// Upper bound, in basis points, of how far two venues' mid prices can
    /// be apart at the same instant: both offsets at their bound in opposite
    /// directions, the largest dislocation, and the shared random walk over
    /// the largest lag (with 1 % to spare for compounding). With the default
    /// parameters about 47.4 bp. A venue's best bid or ask is within three
    /// ticks of its mid.
    pub fn max_divergence_bps(&self) -> f64 {
        let p = &self.inner.params;
        let spike = if p.spike_every.is_zero() {
            0.0
        } else {
            p.spike_bps.1
        };
        let walk = p.max_lag_ticks() as f64 * STEP_MAX * 1e4;
        (2.0 * p.offset_max_bps + spike + walk) * 1.01
    }

    fn index_of(&self, symbol: &str) -> Option<usize> {
        let upper = symbol.trim().to_ascii_uppercase();
        self.inner.symbols.iter().position(|s| *s == upper)
    }

    /// The tick of `now`; the first call starts the clock at tick 0.
    pub(crate) fn tick_of(&self, now: Instant) -> u64 {
        let mut st = lock(&self.inner.state);
        let epoch = *st.epoch.get_or_insert(now);
        ticks(now.saturating_duration_since(epoch))
    }

    /// A new view for a simulator quoting `symbols` (normalised), in the
    /// next slot, not yet synchronised (its state is that of tick 0). Fails
    /// when a symbol is not in the shared market.
    pub(crate) fn join(&self, symbols: &[String]) -> io::Result<VenueView> {
        let map = symbols
            .iter()
            .map(|s| {
                self.index_of(s).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "symbol {s} is not in the shared market (it has {})",
                            self.inner.symbols.join(", ")
                        ),
                    )
                })
            })
            .collect::<io::Result<Vec<usize>>>()?;
        let slot = {
            let mut st = lock(&self.inner.state);
            st.slots += 1;
            st.slots - 1
        };
        Ok(VenueView::new(self.clone(), slot, map))
    }
}

/// One dislocation of one symbol.
#[derive(Debug, Clone, Copy)]
struct Spike {
    start: u64,
    /// First tick after it.
    end: u64,
    /// Signed size at full strength, in basis points.
    bps: f64,
    /// Picks the slot it hits (modulo the number of slots).
    pick: u32,
}

impl Spike {
    /// Basis points at tick `t`: ramp up over the first 10 %, hold, ramp
    /// down over the last 40 %.
    fn at(&self, t: u64) -> f64 {
        if t < self.start || t >= self.end {
            return 0.0;
        }
        let x = (t - self.start + 1) as f64 / (self.end - self.start) as f64;
        self.bps * (x / 0.1).min((1.0 - x) / 0.4 + 0.025).clamp(0.0, 1.0)
    }
}

#[derive(Debug)]
struct SymPath {
    start: f64,
    /// At the market's latest tick.
    price: f64,
    /// Price at tick `t` in `history[t % HISTORY]`, the last `HISTORY` ticks.
    history: Vec<f64>,
    spikes: VecDeque<Spike>,
}

/// The shared price path of every symbol.
#[derive(Debug)]
struct PathState {
    /// When tick 0 was (set by the first look).
    epoch: Option<Instant>,
    /// Latest tick computed.
    tick: u64,
    rng: fastrand::Rng,
    syms: Vec<SymPath>,
    /// Simulators joined so far.
    slots: u32,
}

impl PathState {
    /// Advances the path to tick `to` (no-op if already there or beyond).
    fn advance(&mut self, to: u64, p: &SharedMarketParams) {
        if to <= self.tick {
            return;
        }
        let gap = to - self.tick;
        let rng = &mut self.rng;
        if gap > MAX_STEP_TICKS {
            // Nobody looked for a long time: one step of the same variance.
            let sigma = STEP_MAX / 3f64.sqrt() * (gap as f64).sqrt();
            for s in &mut self.syms {
                let price = s.price * (rng.normal() * sigma).exp();
                s.price = price.clamp(s.start / PRICE_RANGE, s.start * PRICE_RANGE);
                s.history.fill(s.price);
                s.spikes.clear();
            }
            self.tick = to;
            return;
        }
        let spike_p = match ticks(p.spike_every) {
            0 => 0.0,
            n => 1.0 / n as f64,
        };
        let (dlo, dhi) = (ticks(p.spike_duration.0), ticks(p.spike_duration.1));
        for t in self.tick + 1..=to {
            for s in &mut self.syms {
                let step = (rng.unit() - 0.5) * 2.0 * STEP_MAX;
                s.price =
                    (s.price * (1.0 + step)).clamp(s.start / PRICE_RANGE, s.start * PRICE_RANGE);
                s.history[(t % HISTORY) as usize] = s.price;
                let idle = s.spikes.back().is_none_or(|k| t >= k.end);
                if spike_p > 0.0 && idle && rng.chance(spike_p) {
                    let size = p.spike_bps.0 + rng.unit() * (p.spike_bps.1 - p.spike_bps.0);
                    let sign = if rng.chance(0.5) { 1.0 } else { -1.0 };
                    let spike = Spike {
                        start: t,
                        end: t + rng.range(dlo, dhi).max(1),
                        bps: sign * size,
                        pick: rng.u32(..),
                    };
                    if s.spikes.len() == SPIKES_KEPT {
                        s.spikes.pop_front();
                    }
                    s.spikes.push_back(spike);
                }
            }
        }
        self.tick = to;
    }

    /// The shared price of symbol `j` at tick `t` (the oldest kept for
    /// older ticks, the latest for later ones).
    fn price_at(&self, j: usize, t: u64) -> f64 {
        let s = &self.syms[j];
        if t >= self.tick {
            return s.price;
        }
        let oldest = (self.tick + 1).saturating_sub(HISTORY);
        s.history[(t.max(oldest) % HISTORY) as usize]
    }

    /// The dislocation of symbol `j` at tick `t` for `slot`, in bp.
    fn spike_at(&self, j: usize, t: u64, slot: u32) -> f64 {
        let slots = self.slots.max(1);
        self.syms[j]
            .spikes
            .iter()
            .filter(|k| k.pick % slots == slot % slots)
            .map(|k| k.at(t))
            .sum()
    }
}

/// One venue's own deviation for one symbol.
#[derive(Debug, Clone)]
struct ViewSym {
    offset_bps: f64,
    lag: u64,
}

/// A simulator's view of the shared market: its slot, its own offsets and
/// lags, and the prices it quotes (owned by its `Market`).
#[derive(Debug)]
pub(crate) struct VenueView {
    shared: SharedMarket,
    slot: u32,
    /// Shared symbol index of each of the simulator's symbols.
    map: Vec<usize>,
    syms: Vec<ViewSym>,
    rng: fastrand::Rng,
    /// Offset decay per tick and the matching noise.
    decay: f64,
    noise: f64,
    /// Tick of the offsets and lags (starts at 0, whenever the view joined).
    tick: u64,
    /// The venue's mid per symbol at that tick (real price).
    mids: Vec<f64>,
    /// The shared price per symbol at that tick.
    index: Vec<f64>,
}

impl VenueView {
    fn new(shared: SharedMarket, slot: u32, map: Vec<usize>) -> VenueView {
        let p = shared.params().clone();
        let mut rng = seeded(mix(shared.seed() ^ mix(0x0FF5_E700 + u64::from(slot))));
        let decay = (-TICK.as_secs_f64() / p.offset_reversion.as_secs_f64()).exp();
        let noise = p.offset_std_bps * (1.0 - decay * decay).sqrt();
        let syms = map
            .iter()
            .map(|_| ViewSym {
                offset_bps: (rng.normal() * p.offset_std_bps)
                    .clamp(-p.offset_max_bps, p.offset_max_bps),
                lag: rng.range(0, p.max_lag_ticks()),
            })
            .collect();
        let n = map.len();
        VenueView {
            shared,
            slot,
            map,
            syms,
            rng,
            decay,
            noise,
            tick: 0,
            mids: vec![0.0; n],
            index: vec![0.0; n],
        }
    }

    /// The slot (0, 1, … in join order).
    pub(crate) fn slot(&self) -> u32 {
        self.slot
    }

    /// The seed of the shared market.
    pub(crate) fn seed(&self) -> u64 {
        self.shared.seed()
    }

    /// Book-change timing jitter (see [`SharedMarketParams::timing_jitter`]).
    pub(crate) fn timing_jitter(&self) -> f64 {
        self.shared.params().timing_jitter
    }

    /// The venue's mid of symbol `i` (real price) as of the last sync.
    pub(crate) fn mid(&self, i: usize) -> f64 {
        self.mids[i]
    }

    /// The shared price of symbol `i` as of the last sync.
    pub(crate) fn index(&self, i: usize) -> f64 {
        self.index[i]
    }

    /// Synchronises to `now`.
    pub(crate) fn sync(&mut self, now: Instant) {
        let tick = self.shared.tick_of(now);
        self.sync_tick(tick);
    }

    /// Synchronises to tick `t`: advances the shared path and this view's
    /// offsets and lags tick by tick from where they were (tick 0 for a new
    /// view; never backwards), then computes the venue's prices at `t`.
    pub(crate) fn sync_tick(&mut self, t: u64) {
        let inner = Arc::clone(&self.shared.inner);
        let p = &inner.params;
        let mut st = lock(&inner.state);
        st.advance(t, p);
        if t > self.tick {
            self.step(t - self.tick, p);
            self.tick = t;
        }
        let t = self.tick;
        for (i, &j) in self.map.iter().enumerate() {
            let v = &self.syms[i];
            let lagged = st.price_at(j, t.saturating_sub(v.lag));
            let bps = v.offset_bps + st.spike_at(j, t, self.slot);
            self.mids[i] = lagged * (1.0 + bps / 1e4);
            self.index[i] = st.price_at(j, t);
        }
    }

    /// Advances the offsets and lags by `gap` ticks.
    fn step(&mut self, gap: u64, p: &SharedMarketParams) {
        let max = p.offset_max_bps;
        let lag_max = p.max_lag_ticks();
        if gap > MAX_STEP_TICKS {
            for v in &mut self.syms {
                v.offset_bps = (self.rng.normal() * p.offset_std_bps).clamp(-max, max);
                v.lag = self.rng.range(0, lag_max);
            }
            return;
        }
        for _ in 0..gap {
            for v in &mut self.syms {
                let x = v.offset_bps * self.decay + self.noise * self.rng.normal();
                v.offset_bps = x.clamp(-max, max);
                if self.rng.chance(1.0 / LAG_CHANGE_TICKS) {
                    v.lag = self.rng.range(0, lag_max);
                }
            }
        }
    }
}
