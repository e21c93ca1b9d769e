//! The feed thread: one feed's connections, each with its session state machine inline.
//!
//! ```text
//!   Connecting → Handshaking → Subscribing → Streaming
//!       ▲                                       │ close / reset / EOF / no pong / ack timeout
//!       └──────────── Backoff ◄─────────────────┘
//!                       │ max_consecutive_failures in a row
//!                       ▼
//!                  CircuitOpen ──(cooldown)──► Connecting
//!   permanent error (bad certificate, HTTP 401/403/404, every stream rejected) → Failed
//! ```
//!
//! A feed has one connection *slot*, or two: with `standby = true` a second connection carries
//! the same subscriptions, and while a connection is being replaced (its age limit, or a stream
//! gone silent on it) the replacement overlaps it. Each slot has its own state machine, backoff
//! and liveness clock; the feed deduplicates their updates by the venue's sequence numbers, so
//! the strategy sees each update once, from whichever connection delivered it first.
//!
//! The thread owns its sockets, backoff and liveness clocks; nothing else touches them. It
//! polls mio until the next deadline (ping due, pong due, a stream's silence limit, backoff end,
//! connect/handshake/ack limit, a connection's age limit) and never blocks past it, so shutdown
//! through the [`mio::Waker`] is prompt in every state. The pure decisions live in [`backoff`],
//! [`liveness`], [`watch`], [`seq`] and [`limiter`].

pub mod backoff;
mod connect;
pub mod limiter;
pub mod liveness;
pub mod seq;
pub mod transport;
pub mod watch;

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use log::{debug, error, info, warn};
use mio::{Events, Poll, Token, Waker};
use rustls::ClientConfig;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::MidHandshake;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, Utf8Bytes, WebSocket};

use self::backoff::{Backoff, Decision, XorShift};
use self::limiter::ConnectGate;
use self::liveness::{Action, Liveness};
use self::seq::{SeqTrack, Verdict};
use self::watch::StreamWatch;
use crate::book::Book;
use crate::capture::CaptureMsg;
use crate::clock;
use crate::config::{Endpoint, FullPolicy, ReconnectConfig, WaitMode};
use crate::metrics::{FeedState, FeedStats, GapCause, GapRecord, Missed, SlotRole, MAX_SLOTS};
use crate::net::{self, NetStream};
use crate::rest::{DepthSnapshot, SnapshotReply, SnapshotRequest};
use crate::tick::{
    BookFault, DepthChunk, DisconnectReason, FeedId, Health, HealthMsg, Sequenced, SymbolId, Tick,
    TickData,
};
use crate::venue::{Frame, Seq, SeqRule, StreamDef, StreamKey, StreamKind, Venue};

const WAKE: Token = Token(0);

/// Frames read in one go before deadlines are checked again.
const READ_BATCH: usize = 512;
/// Spacing of follow-up subscribe requests (Binance: at most 10 incoming messages per second).
const REQUEST_SPACING: Duration = Duration::from_millis(200);
/// At most one log line per this interval for repetitive problems (bad frames, drops).
const LOG_EVERY: Duration = Duration::from_secs(5);
/// A rotation that cannot start yet (the other connection does not carry the feed) is tried
/// again after this long.
const ROTATION_RETRY: Duration = Duration::from_secs(1);
/// Connections of a feed that may be live at once (a third slot may hold one that failed).
const LIVE_SLOTS: usize = 2;
/// Longest a replacement overlaps the old connection waiting for every stream to overlap.
const HANDOVER_LIMIT: Duration = Duration::from_secs(10);
/// After a replacement failed permanently, no rotation is tried for this long.
const FAILED_ROTATION_HOLD: Duration = Duration::from_secs(300);
/// A stream silent on fresh connection after fresh connection is not the connection's fault:
/// after this many replacements in a row it is only reported stale.
const MAX_SILENT_ROTATIONS: u8 = 3;

/// Where a slot connects, and the attempt budget of that host.
#[derive(Debug)]
pub struct Target {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// The full URL of this connection's route.
    pub url: String,
    /// Attempt budget shared with every feed connecting to the same host.
    pub gate: Arc<ConnectGate>,
}

/// Everything a feed thread needs, built by the engine from a validated config.
#[derive(Debug)]
pub struct FeedParams {
    /// Index of this feed.
    pub id: FeedId,
    /// Name (thread `feed-<name>`).
    pub name: String,
    /// Venue codec.
    pub venue: Venue,
    /// Where to connect: the primary, then the standby when the feed keeps one.
    pub targets: Vec<Target>,
    /// Streams this feed carries.
    pub streams: Vec<StreamDef>,
    /// Interned symbol of each stream.
    pub symbols: Vec<SymbolId>,
    /// Silence limit of each stream.
    pub silence: Vec<Duration>,
    /// Backoff, breaker, liveness and limits.
    pub reconnect: ReconnectConfig,
    /// Replace a connection before it is this old (the venue cuts older ones).
    pub max_connection_age: Option<Duration>,
    /// How long a chained message that skips ids waits for another connection to bring the
    /// skipped ones (only while another connection carries the feed).
    pub reorder_window: Duration,
    /// Block or spin.
    pub wait: WaitMode,
    /// Core to pin to.
    pub core: Option<usize>,
    /// Socket receive buffer.
    pub recv_buffer: Option<usize>,
    /// WebSocket limits.
    pub ws_config: WebSocketConfig,
    /// TLS client config, when a target is `wss://`.
    pub tls: Option<Arc<ClientConfig>>,
    /// Full-channel policy.
    pub on_full: FullPolicy,
    /// The capture thread's channel, when capture is on.
    pub capture: Option<Sender<CaptureMsg>>,
    /// Binance: base URL of REST depth snapshots.
    pub rest_base: Option<String>,
    /// The engine's snapshot thread, when a feed needs one.
    pub snapshots: Option<Sender<SnapshotRequest>>,
}

/// The channel ends a feed writes to: a bounded, lossy channel for ticks and an unbounded,
/// lossless one for health events, both numbered from one counter so the strategy thread can
/// restore the feed's order. The tick receiver clone is there only to drop the oldest tick.
#[derive(Debug)]
pub struct Outbox {
    /// Ticks to the strategy.
    pub ticks: Sender<Sequenced<Tick>>,
    /// The same tick channel, for drop-oldest.
    pub ticks_rx: Receiver<Sequenced<Tick>>,
    /// Health events to the strategy.
    pub health: Sender<Sequenced<HealthMsg>>,
    /// Number of the next message.
    pub next_seq: std::cell::Cell<u64>,
}

impl Outbox {
    fn seq(&self) -> u64 {
        let n = self.next_seq.get();
        self.next_seq.set(n + 1);
        n
    }

    /// Sends a tick without ever blocking; when the channel is full the policy decides which
    /// tick goes, and the drop is counted.
    #[inline]
    fn send_tick(&self, policy: FullPolicy, stats: &FeedStats, tick: Tick) {
        let mut msg = Sequenced {
            seq: self.seq(),
            msg: tick,
        };
        loop {
            match self.ticks.try_send(msg) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(m)) => {
                    FeedStats::bump(&stats.dropped);
                    if policy == FullPolicy::DropNewest {
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
    fn send_health(&self, msg: HealthMsg) {
        let _ = self.health.send(Sequenced {
            seq: self.seq(),
            msg,
        });
    }
}

/// What becomes of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// New and in order: to the strategy and the capture.
    Deliver,
    /// Seen already.
    Drop,
    /// New, but ids before it are missing while another connection may still bring them.
    Hold,
}

/// A message held back until the hole before it is filled or the reorder window ends.
struct Held {
    seq: Seq,
    conn: u32,
    recv_ns: u64,
    text: Utf8Bytes,
}

/// The local book of an order-book stream.
struct BookState {
    book: Book,
    /// The book matches the venue's: built from a snapshot, every update since applied.
    valid: bool,
    /// A snapshot is being applied (its chunks so far).
    loading: bool,
    /// It was valid once (the first snapshot is not a resync).
    ever_valid: bool,
    /// `U` of the update being applied.
    first_id: u64,
    /// Binance: the book starts from a REST snapshot.
    rest: Option<RestSync>,
    /// Binance: the REST snapshot's `lastUpdateId`; diffs up to it are not applied.
    covered_to: u64,
    /// Binance: the next diff applied must straddle `covered_to`.
    check_first: bool,
}

/// Binance's procedure: buffer the diffs, fetch a REST snapshot, drop the diffs it already
/// holds, apply the rest.
#[derive(Default)]
struct RestSync {
    /// A snapshot request is in flight.
    requested: bool,
    /// No request before this (after a failed one).
    retry_at: Option<Instant>,
    /// Diffs received while the book is not valid, oldest first.
    buffer: VecDeque<Buffered>,
}

/// A diff kept for after the snapshot.
struct Buffered {
    text: Utf8Bytes,
    recv_ns: u64,
    /// `U` and `u`.
    first: u64,
    last: u64,
}

/// Most diffs buffered while a snapshot is fetched.
const MAX_BUFFERED: usize = 20_000;
/// Wait after a failed snapshot request.
const SNAPSHOT_RETRY: Duration = Duration::from_secs(1);

/// What to send for one chunk of a book update.
enum BookStep {
    /// Not applied: the book is invalid; nothing is sent.
    Skip,
    /// Send the chunk.
    Send,
    /// Send the chunk, then the book's new top.
    SendWithTop(TickData),
}

/// Messages in a row that are not new, on a stream, before its numbering is taken to have
/// been reset. Two connections deliver every update twice, so this counts only when no
/// connection brings anything new.
const SEQ_RESET_AFTER: u32 = 256;

/// Most messages held per stream before the hole is reported without waiting longer.
const MAX_HELD: usize = 256;

/// A request awaiting its ack: id and the stream indices it asked for.
#[derive(Debug)]
struct Pending {
    id: u64,
    streams: Vec<u16>,
    sent_at: Instant,
}

/// A WebSocket that is open: subscribing, then streaming.
struct Live {
    ws: WebSocket<NetStream>,
    conn_no: u32,
    opened: Instant,
    liveness: Liveness,
    /// Silence of the streams with a guaranteed cadence, on this connection alone.
    cadence: StreamWatch,
    /// Sent and not yet answered.
    pending: Vec<Pending>,
    /// Waiting to be sent (after a rejected multi-stream request is split).
    queued: VecDeque<Vec<u16>>,
    next_send: Instant,
    /// `Connected` was announced: every wanted stream is acknowledged.
    announced: bool,
    /// A data message arrived on this connection.
    productive: bool,
    pings: u64,
    /// When the venue's keep-alive ping is next due, for venues that want one.
    keepalive_at: Option<Instant>,
    /// Per stream: the first and the last id this connection delivered (0: none yet).
    first_id: Vec<u64>,
    last_id: Vec<u64>,
}

/// A slot's connection state machine; states carry their data.
enum Conn {
    /// About to start a connection attempt.
    Idle,
    /// TCP connect in flight.
    Connecting {
        sock: mio::net::TcpStream,
        deadline: Instant,
    },
    /// TLS handshake in flight.
    Tls {
        stream: Box<rustls::StreamOwned<rustls::ClientConnection, mio::net::TcpStream>>,
        deadline: Instant,
    },
    /// WebSocket upgrade in flight.
    Upgrading {
        mid: Box<MidHandshake<ClientHandshake<NetStream>>>,
        deadline: Instant,
    },
    /// Open.
    Live(Box<Live>),
    /// Waiting before the next attempt.
    Backoff { until: Instant },
    /// Breaker open.
    CircuitOpen { until: Instant },
    /// Stopped for good.
    Failed,
    /// Done: the slot is removed at the end of this turn (a rotation ended).
    Retired,
}

impl Conn {
    fn state(&self) -> FeedState {
        match self {
            Conn::Idle | Conn::Connecting { .. } => FeedState::Connecting,
            Conn::Tls { .. } | Conn::Upgrading { .. } => FeedState::Handshaking,
            Conn::Live(l) if !l.announced => FeedState::Subscribing,
            Conn::Live(_) => FeedState::Streaming,
            Conn::Backoff { .. } => FeedState::Backoff,
            Conn::CircuitOpen { .. } => FeedState::CircuitOpen,
            Conn::Failed => FeedState::Failed,
            Conn::Retired => FeedState::Stopped,
        }
    }

    /// Live with every wanted stream acknowledged: losing another connection loses nothing.
    fn carries(&self) -> bool {
        matches!(self, Conn::Live(l) if l.announced)
    }
}

/// One connection slot.
struct Slot {
    role: SlotRole,
    /// The feed's number of this slot's latest connection (0 before the first).
    conn_no: u32,
    /// Index into [`FeedParams::targets`].
    target: usize,
    token: Token,
    conn: Conn,
    backoff: Backoff,
    /// A Retry-After the venue asked for, applied to this slot's next wait.
    retry_after: Option<Duration>,
}

/// Why a connection is being replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RotateWhy {
    /// It reached `max_connection_age`.
    Age,
    /// A stream with a guaranteed cadence went silent on it.
    Silent(u16),
    /// A book needs a fresh snapshot.
    Resync(u16),
}

/// A replacement in progress: `new` overlaps `old` until it carries the feed.
#[derive(Clone, Copy, Debug)]
struct Rotation {
    old: Token,
    new: Token,
    why: RotateWhy,
    /// When the replacement first carried the feed: the handover waits for the overlap from
    /// then on, at most [`HANDOVER_LIMIT`].
    carried_at: Option<Instant>,
}

/// An outage in progress: set when the last connection carrying the feed is lost, closed by
/// the first data after.
#[derive(Clone, Copy, Debug)]
struct Outage {
    detected: Instant,
    last_data: Option<Instant>,
    reason: DisconnectReason,
    attempts: u32,
}

/// Rate limiter for repetitive log lines.
#[derive(Debug, Default)]
struct LogGate {
    next: Option<Instant>,
    suppressed: u64,
}

impl LogGate {
    /// `Some(n)` when a line may be written now, `n` = lines suppressed since the last one.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.next.is_some_and(|t| now < t) {
            self.suppressed += 1;
            return None;
        }
        self.next = Some(now + LOG_EVERY);
        Some(mem::take(&mut self.suppressed))
    }
}

/// A connection could not go on: why, and detail for the log.
type Lost = (DisconnectReason, Option<String>);

/// One feed's session loop.
pub struct Feed {
    p: FeedParams,
    out: Outbox,
    stats: Arc<FeedStats>,
    shutdown: Arc<AtomicBool>,
    poll: Poll,
    slots: Vec<Slot>,
    next_token: usize,
    rng: XorShift,
    /// Each target's address, resolved once and kept while connections to it work: a
    /// reconnect does not wait for DNS. Forgotten when an attempt or a connection fails.
    addrs: Vec<Option<std::net::SocketAddr>>,
    /// Streams still wanted (not rejected by the venue).
    active: Vec<bool>,
    /// Silence of each stream across all connections (drives `Stale` events).
    watch: StreamWatch,
    /// Sequence state of each stream, across connections.
    seqs: Vec<SeqTrack>,
    /// Per stream: the outage record its first message after the outage reports missed ids to.
    resume_gap: Vec<Option<usize>>,
    /// Per stream: replacements in a row because it was silent.
    silent_rotations: Vec<u8>,
    /// Per stream: messages held back while a hole may still be filled, in id order.
    held: Vec<VecDeque<Held>>,
    /// Per stream: when the held messages are released regardless.
    held_until: Vec<Option<Instant>>,
    /// Per stream: the local book of an order-book stream.
    books: Vec<Option<BookState>>,
    /// Per stream: messages in a row that brought nothing new.
    stale_seq: Vec<u32>,
    /// Per stream: ids up to this were captured before a book resync sent them again.
    captured_to: Vec<u64>,
    /// Books waiting for a fresh connection's snapshot.
    resync_wanted: Vec<u16>,
    /// Answers of the snapshot thread.
    snap_tx: Sender<SnapshotReply>,
    snap_rx: Receiver<SnapshotReply>,
    /// This feed's waker, for the snapshot thread.
    waker: Arc<Waker>,
    conn_count: u32,
    next_request_id: u64,
    /// When the last data message arrived (any connection).
    last_data: Option<Instant>,
    outage: Option<Outage>,
    rotation: Option<Rotation>,
    /// Replacements asked for during this turn.
    rotate_requests: Vec<(Token, RotateWhy)>,
    /// No age rotation is tried before this (set when one had to wait).
    rotation_hold: Option<Instant>,
    bad_frames: LogGate,
    gap_log: LogGate,
    throttle_log: LogGate,
    drops: LogGate,
    drops_reported: u64,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("name", &self.p.name)
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl Feed {
    /// Builds the feed and the waker that interrupts its poll on shutdown.
    pub fn new(
        p: FeedParams,
        out: Outbox,
        stats: Arc<FeedStats>,
        shutdown: Arc<AtomicBool>,
    ) -> io::Result<(Feed, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let n = p.streams.len();
        let (snap_tx, snap_rx) = crossbeam_channel::unbounded();
        let rest_books = p.snapshots.is_some() && p.rest_base.is_some();
        let cadence_kinds = |s: &StreamDef| has_cadence(s.kind);
        debug_assert!(p.streams.iter().filter(|s| cadence_kinds(s)).count() <= n);
        let mut feed = Feed {
            rng: XorShift::from_entropy(u64::from(p.id) + 1),
            addrs: vec![None; p.targets.len()],
            active: vec![true; n],
            watch: StreamWatch::new(p.silence.iter().copied()),
            seqs: p
                .streams
                .iter()
                .map(|s| SeqTrack::new(s.kind.seq_rule()))
                .collect(),
            resume_gap: vec![None; n],
            silent_rotations: vec![0; n],
            held: (0..n).map(|_| VecDeque::new()).collect(),
            held_until: vec![None; n],
            books: p
                .streams
                .iter()
                .map(|s| {
                    let book = |levels: usize, rest: Option<RestSync>| BookState {
                        book: Book::new(levels),
                        valid: false,
                        loading: false,
                        ever_valid: false,
                        first_id: 0,
                        rest,
                        covered_to: 0,
                        check_first: false,
                    };
                    match s.kind {
                        StreamKind::OrderBook { levels } => {
                            Some(book(usize::from(levels).max(50), None))
                        }
                        StreamKind::Depth { .. } if rest_books => {
                            Some(book(1000, Some(RestSync::default())))
                        }
                        _ => None,
                    }
                })
                .collect(),
            stale_seq: vec![0; n],
            captured_to: vec![0; n],
            resync_wanted: Vec::new(),
            snap_tx,
            snap_rx,
            waker: waker.clone(),
            out,
            stats,
            shutdown,
            poll,
            slots: Vec::with_capacity(MAX_SLOTS),
            next_token: 1,
            conn_count: 0,
            next_request_id: 1,
            last_data: None,
            outage: None,
            rotation: None,
            rotate_requests: Vec::new(),
            rotation_hold: None,
            bad_frames: LogGate::default(),
            gap_log: LogGate::default(),
            throttle_log: LogGate::default(),
            drops: LogGate::default(),
            drops_reported: 0,
            p,
        };
        feed.add_slot(SlotRole::Primary, 0);
        if feed.p.targets.len() > 1 {
            feed.add_slot(SlotRole::Standby, 1);
        }
        Ok((feed, waker))
    }

    fn add_slot(&mut self, role: SlotRole, target: usize) -> Token {
        self.next_token += 1;
        let token = Token(self.next_token);
        self.slots.push(Slot {
            role,
            conn_no: 0,
            target,
            token,
            conn: Conn::Idle,
            backoff: Backoff::new(self.p.reconnect),
            retry_after: None,
        });
        token
    }

    fn slot_of(&self, token: Token) -> Option<usize> {
        self.slots.iter().position(|s| s.token == token)
    }

    /// Runs until shutdown. Pins the thread first when a core is configured.
    pub fn run(mut self) {
        if let Some(core) = self.p.core {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                warn!(
                    "[{}] could not pin to core {core}; running unpinned",
                    self.p.name
                );
            }
        }
        let mut events = Events::with_capacity(16);
        while !self.shutdown.load(Ordering::Acquire) {
            let now = Instant::now();
            let more = self.turn(now);
            // Measured from after the turn: what came due during it (an at-once reconnect)
            // waits zero, not the 1 ms epoll rounds a tiny timeout up to.
            let timeout = if more || self.p.wait == WaitMode::Spin {
                Some(Duration::ZERO)
            } else {
                self.deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    error!("[{}] poll failed: {e}", self.p.name);
                    break;
                }
            }
        }
        for slot in &mut self.slots {
            if let Conn::Live(live) = &mut slot.conn {
                // Best effort: tell the venue we are leaving.
                let _ = live.ws.close(None);
                let _ = live.ws.flush();
            }
        }
        if self.stats.state() != FeedState::Failed {
            self.stats.set_state(FeedState::Stopped);
        }
        debug!("[{}] stopped", self.p.name);
    }

    /// One turn: every slot advances as far as it can without blocking, then the feed-wide
    /// duties (rotations, stream silence, published state). True when input may be waiting.
    fn turn(&mut self, now: Instant) -> bool {
        let mut more = false;
        for k in 0..self.slots.len() {
            more |= self.step(k, now);
        }
        self.maintain(Instant::now());
        more
    }

    /// The next instant something is due; `None` when nothing ever is (every slot failed).
    fn deadline(&self) -> Option<Instant> {
        let mut d: Option<Instant> = None;
        let mut due = |t: Instant| d = Some(d.map_or(t, |d| d.min(t)));
        for slot in &self.slots {
            match &slot.conn {
                Conn::Idle | Conn::Retired => due(Instant::now()),
                Conn::Connecting { deadline, .. }
                | Conn::Tls { deadline, .. }
                | Conn::Upgrading { deadline, .. } => due(*deadline),
                Conn::Backoff { until } | Conn::CircuitOpen { until } => due(*until),
                Conn::Failed => {}
                Conn::Live(live) => {
                    due(live.liveness.deadline());
                    if let Some(w) = live.cadence.deadline() {
                        due(w);
                    }
                    if let Some(p) = live.pending.first() {
                        due(p.sent_at + Duration::from_millis(self.p.reconnect.ack_timeout_ms));
                    }
                    if !live.queued.is_empty() {
                        due(live.next_send);
                    }
                    if let Some(t) = self.age_rotation_due(live) {
                        due(t);
                    }
                    if let Some(t) = live.keepalive_at {
                        due(t);
                    }
                }
            }
        }
        if let Some(w) = self.watch.deadline() {
            due(w);
        }
        for t in self.held_until.iter().flatten() {
            due(*t);
        }
        if let Some(t) = self.rotation.and_then(|r| r.carried_at) {
            due(t + HANDOVER_LIMIT);
        }
        d
    }

    /// When `live` is due for replacement by age, if no rotation is under way.
    fn age_rotation_due(&self, live: &Live) -> Option<Instant> {
        let age = self.p.max_connection_age?;
        if self.rotation.is_some() {
            return None;
        }
        let at = live.opened + age;
        Some(self.rotation_hold.map_or(at, |h| at.max(h)))
    }

    /// Advances slot `k`. Returns true when more input may be waiting (a read batch was cut).
    fn step(&mut self, k: usize, now: Instant) -> bool {
        let conn = mem::replace(&mut self.slots[k].conn, Conn::Idle);
        let (next, more) = match conn {
            Conn::Idle => (self.begin_attempt(k, now), false),
            Conn::Connecting { sock, deadline } => {
                (self.step_connect(k, sock, deadline, now), false)
            }
            Conn::Tls { stream, deadline } => (self.step_tls(k, stream, deadline, now), false),
            Conn::Upgrading { mid, deadline } => (self.step_upgrade(k, *mid, deadline, now), false),
            Conn::Live(live) => self.step_live(k, live),
            Conn::Backoff { until } | Conn::CircuitOpen { until } if now >= until => {
                (self.begin_attempt(k, now), false)
            }
            waiting @ (Conn::Backoff { .. }
            | Conn::CircuitOpen { .. }
            | Conn::Failed
            | Conn::Retired) => (waiting, false),
        };
        self.slots[k].conn = next;
        // A state that can progress at once (a fresh attempt) gets another turn before polling.
        more || matches!(self.slots[k].conn, Conn::Idle)
    }

    /// The WebSocket is open: subscribe to every wanted stream.
    #[cold]
    fn on_open(&mut self, k: usize, ws: WebSocket<NetStream>, now: Instant) -> Conn {
        self.conn_count += 1;
        self.slots[k].conn_no = self.conn_count;
        let wanted: Vec<u16> = (0..self.p.streams.len() as u16)
            .filter(|&i| self.active[i as usize])
            .collect();
        debug!(
            "[{}] connection {} ({}) open to {}; subscribing {} streams",
            self.p.name,
            self.conn_count,
            self.slots[k].role.name(),
            self.p.targets[self.slots[k].target].url,
            wanted.len()
        );
        let limits = self.p.streams.iter().zip(&self.p.silence).map(|(s, &l)| {
            if has_cadence(s.kind) {
                l
            } else {
                Duration::MAX
            }
        });
        let mut live = Box::new(Live {
            ws,
            conn_no: self.conn_count,
            opened: now,
            liveness: Liveness::new(
                now,
                Duration::from_millis(self.p.reconnect.stale_after_ms),
                Duration::from_millis(self.p.reconnect.pong_timeout_ms),
            ),
            cadence: StreamWatch::new(limits),
            pending: Vec::new(),
            queued: wanted
                .chunks(self.p.venue.max_streams_per_request())
                .map(<[u16]>::to_vec)
                .collect(),
            next_send: now,
            announced: false,
            productive: false,
            pings: 0,
            keepalive_at: self.keepalive().map(|every| now + every),
            first_id: vec![0; self.p.streams.len()],
            last_id: vec![0; self.p.streams.len()],
        });
        match self.send_requests(&mut live, now) {
            Ok(()) => Conn::Live(live),
            Err((reason, detail)) => self.lose(k, live, reason, detail.as_deref(), now),
        }
    }

    // ----- the live connection -----------------------------------------------------------

    fn step_live(&mut self, k: usize, mut live: Box<Live>) -> (Conn, bool) {
        // 1. Read everything that is there, up to a batch.
        let mut more = false;
        for n in 0.. {
            if n == READ_BATCH {
                more = true;
                break;
            }
            match transport::call(|| live.ws.read()) {
                Ok(msg) => {
                    // One clock read per frame serves the tick's receive stamp and liveness.
                    let at = Instant::now();
                    let recv_ns = clock::instant_ns(at);
                    if let Err((reason, detail)) = self.on_message(&mut live, msg, recv_ns, at) {
                        return (self.lose(k, live, reason, detail.as_deref(), at), false);
                    }
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // Not the turn's start: data may have been read since.
                    let (reason, detail) = ws_error_reason(&e);
                    let at = Instant::now();
                    return (self.lose(k, live, reason, detail.as_deref(), at), false);
                }
            }
        }
        if live.productive {
            // The session delivered: the next failure starts the backoff from the beginning.
            self.slots[k].backoff.on_productive();
        }
        let now = Instant::now();
        // 2. Subscriptions: follow-up requests, ack deadline.
        if let Err((reason, detail)) = self.send_requests(&mut live, now) {
            return (self.lose(k, live, reason, detail.as_deref(), now), false);
        }
        let ack_limit = Duration::from_millis(self.p.reconnect.ack_timeout_ms);
        if live
            .pending
            .first()
            .is_some_and(|p| now >= p.sent_at + ack_limit)
        {
            return (
                self.lose(k, live, DisconnectReason::AckTimeout, None, now),
                false,
            );
        }
        // 3. Connection liveness, and the venue's keep-alive whatever the traffic.
        if live.keepalive_at.is_some_and(|t| now >= t) {
            if let Err((reason, detail)) = self.send_ping(&mut live, now) {
                return (self.lose(k, live, reason, detail.as_deref(), now), false);
            }
        }
        match live.liveness.poll(now) {
            Action::None => {}
            Action::SendPing => {
                live.pings += 1;
                debug!(
                    "[{}] connection {} silent for {} ms: ping",
                    self.p.name,
                    live.conn_no,
                    live.liveness.silent_for(now).as_millis()
                );
                if let Err((reason, detail)) = self.send_ping(&mut live, now) {
                    return (self.lose(k, live, reason, detail.as_deref(), now), false);
                }
            }
            Action::Dead => {
                return (
                    self.lose(k, live, DisconnectReason::PongTimeout, None, now),
                    false,
                );
            }
        }
        // 4. A stream with a guaranteed cadence silent on this connection while it lives: the
        //    connection is replaced (make before break), which resubscribes the stream.
        let token = self.slots[k].token;
        let requests = &mut self.rotate_requests;
        live.cadence.poll(now, |i, _| {
            requests.push((token, RotateWhy::Silent(i as u16)));
        });
        // 5. Anything tungstenite still holds (pongs, a ping) goes out.
        if let Err(e) = transport::call(|| live.ws.flush()) {
            if !is_would_block(&e) {
                let (reason, detail) = ws_error_reason(&e);
                return (self.lose(k, live, reason, detail.as_deref(), now), false);
            }
        }
        (Conn::Live(live), more)
    }

    /// How often the keep-alive ping goes out: the config's `keepalive_ms`, else the venue's.
    fn keepalive(&self) -> Option<Duration> {
        match self.p.reconnect.keepalive_ms {
            None => self.p.venue.keepalive(),
            Some(0) => None,
            Some(ms) => Some(Duration::from_millis(ms)),
        }
    }

    /// Pings the venue: its application-level ping where it has one (Bybit `{"op":"ping"}`,
    /// OKX `ping`), else a WebSocket ping. Also restarts the keep-alive period.
    fn send_ping(&mut self, live: &mut Live, now: Instant) -> Result<(), Lost> {
        live.pings += 1;
        // Static payloads: a keep-alive allocates nothing.
        let msg = match self.p.venue.ping_text() {
            Some(text) => Message::Text(Utf8Bytes::from_static(text)),
            None => Message::Ping(tungstenite::Bytes::from_static(b"wsfeed")),
        };
        live.keepalive_at = self.keepalive().map(|every| now + every);
        match transport::call(|| live.ws.send(msg)) {
            Err(e) if !is_would_block(&e) => Err(ws_error_reason(&e)),
            _ => Ok(()),
        }
    }

    /// Handles one message. An `Err` ends the connection.
    #[inline]
    fn on_message(
        &mut self,
        live: &mut Live,
        msg: Message,
        recv_ns: u64,
        now: Instant,
    ) -> Result<(), Lost> {
        live.liveness.on_frame(now);
        match msg {
            Message::Text(text) => self.on_text(live, &text, recv_ns, now),
            Message::Ping(_) => {
                FeedStats::bump(&self.stats.pings_received);
                // tungstenite queued the pong; send it now, not with the next write.
                match transport::call(|| live.ws.flush()) {
                    Err(e) if !is_would_block(&e) => Err(ws_error_reason(&e)),
                    _ => Ok(()),
                }
            }
            Message::Pong(_) => Ok(()),
            Message::Close(frame) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                let _ = live.ws.flush(); // echo the close
                Err((DisconnectReason::CloseFrame { code }, None))
            }
            Message::Binary(b) => {
                self.unknown_frame(now, "binary frame", b.len());
                Ok(())
            }
            Message::Frame(_) => Ok(()),
        }
    }

    /// Handles a text frame.
    #[inline]
    fn on_text(
        &mut self,
        live: &mut Live,
        text: &Utf8Bytes,
        recv_ns: u64,
        now: Instant,
    ) -> Result<(), Lost> {
        let frame = match self.p.venue.classify(text.as_str()) {
            Ok(f) => f,
            Err(e) => {
                self.bad_frame(now, &e.to_string(), text.as_str());
                return Ok(());
            }
        };
        match frame {
            Frame::Data { stream, data } => {
                let Some(i) = self.p.streams.iter().position(|s| stream.matches(&s.name)) else {
                    self.unknown_frame(now, "data for a stream not subscribed", text.len());
                    return Ok(());
                };
                self.on_data(live, i, data, text, recv_ns, now);
                Ok(())
            }
            Frame::Ack { id, stream } => {
                self.on_ack(live, id, stream, now);
                Ok(())
            }
            // Any frame already proved the connection alive.
            Frame::Pong => Ok(()),
            Frame::Error { id, code, msg } => self.on_venue_error(live, id, code, msg),
            Frame::Unknown => {
                self.unknown_frame(now, "unknown message", text.len());
                Ok(())
            }
        }
    }

    /// Parses a data payload and sends its ticks (and the message to the capture), unless
    /// another connection delivered it first or it is held back for a moment (see
    /// [`Feed::decide`]).
    #[inline]
    fn on_data(
        &mut self,
        live: &mut Live,
        i: usize,
        data: &str,
        text: &Utf8Bytes,
        recv_ns: u64,
        now: Instant,
    ) {
        let mut decision = None;
        let parsed = self.parse_and_send(i, data, recv_ns, |feed, seq| {
            let d = feed.decide(i, seq, recv_ns);
            decision = Some((d, seq));
            d == Fate::Deliver
        });
        if let Err(e) = parsed {
            self.bad_frame(now, &e.to_string(), text.as_str());
            return;
        }
        FeedStats::bump(&self.stats.messages);
        live.cadence.on_data(i, now);
        live.productive = true;
        if let Some((_, seq)) = decision {
            if live.first_id[i] == 0 {
                live.first_id[i] = seq.id;
            }
            live.last_id[i] = seq.id;
        }
        match decision {
            Some((Fate::Deliver, _)) => {}
            Some((Fate::Hold, seq)) => {
                self.hold(i, seq, live.conn_no, recv_ns, text.clone(), now);
                return;
            }
            Some((Fate::Drop, _)) | None => return,
        }
        self.delivered(i, now);
        if self.p.capture.is_some() {
            // An update sent again after a book resync is in the capture already (the
            // snapshot itself is captured: it is a message of its own).
            let again = decision
                .is_some_and(|(_, seq)| seq.prev.is_some() && seq.id <= self.captured_to[i]);
            if !again {
                self.capture(i as u16, live.conn_no, recv_ns, text.clone());
            }
        }
        if self.books[i]
            .as_ref()
            .is_some_and(|b| !b.valid && b.rest.is_some())
        {
            if let Some((_, seq)) = decision {
                self.rest_buffer(i, text, recv_ns, seq, now);
            }
        }
        if !self.held[i].is_empty() {
            // This message may have filled the hole the held ones wait on.
            self.release_held(i, false);
        }
    }

    /// Parses a payload of stream `i`; `judge` decides once, at the first tick, whether its
    /// ticks go to the strategy. Returns the ticks sent.
    #[inline]
    fn parse_and_send(
        &mut self,
        i: usize,
        data: &str,
        recv_ns: u64,
        mut judge: impl FnMut(&mut Feed, Seq) -> bool,
    ) -> Result<u64, crate::venue::ParseError> {
        let (feed, symbol, kind) = (self.p.id, self.p.symbols[i], self.p.streams[i].kind);
        let venue = self.p.venue;
        let mut deliver: Option<bool> = None;
        let mut sent = 0u64;
        venue.parse_data(kind, data, &mut |seq, event_time_ms, data| {
            // All ticks of one message share its sequence: judge it once, at the first.
            let go = match deliver {
                Some(d) => d,
                None => {
                    let d = judge(self, seq);
                    deliver = Some(d);
                    d
                }
            };
            if !go {
                return;
            }
            if let TickData::Quote { bid, ask, .. } = data {
                if bid >= ask && bid > 0.0 && ask > 0.0 {
                    // One venue's best bid cannot reach its best ask: the quote is wrong.
                    self.crossed_quote(i, bid, ask);
                    return;
                }
            }
            let mut top = None;
            if let (TickData::Depth(chunk), Some(_)) = (&data, &self.books[i]) {
                match self.book_update(i, chunk) {
                    BookStep::Skip => return,
                    BookStep::Send => {}
                    BookStep::SendWithTop(quote) => top = Some(quote),
                }
            }
            let mut tick = Tick {
                feed,
                stream: i as u16,
                symbol,
                seq: seq.id,
                event_time_ms,
                recv_ns,
                data,
            };
            self.out.send_tick(self.p.on_full, &self.stats, tick);
            sent += 1;
            if let Some(quote) = top {
                // The book's new top, so a strategy need not keep its own book for prices.
                tick.data = quote;
                self.out.send_tick(self.p.on_full, &self.stats, tick);
                sent += 1;
            }
        })?;
        self.stats.ticks.store(
            self.stats.ticks.load(Ordering::Relaxed) + sent,
            Ordering::Relaxed,
        );
        Ok(sent)
    }

    /// Stream `i` delivered new data to the strategy.
    #[inline]
    fn delivered(&mut self, i: usize, now: Instant) {
        self.note_drops(now);
        self.last_data = Some(now);
        self.silent_rotations[i] = 0;
        if let Some(silent) = self.watch.on_data(i, now) {
            info!(
                "[{}] stream {} delivering again after {} ms",
                self.p.name,
                self.p.streams[i].name,
                silent.as_millis()
            );
            self.health(Health::StreamResumed {
                stream: i as u16,
                silent_ms: silent.as_millis() as u64,
            });
        }
    }

    /// Decides what becomes of one message of stream `i`. The first data after an outage ends
    /// the outage. A chained message that skips ids while another connection carries the feed
    /// is held for up to `reorder_window`: the other connection's copies of the skipped
    /// messages usually follow within microseconds.
    #[inline]
    fn decide(&mut self, i: usize, seq: Seq, recv_ns: u64) -> Fate {
        if self.outage.is_some() {
            self.end_outage(recv_ns);
        }
        let holding = !self.held[i].is_empty();
        if holding && self.held[i].iter().any(|h| h.seq.id == seq.id) {
            FeedStats::bump(&self.stats.duplicates);
            return Fate::Drop;
        }
        if seq.prev.is_none() && self.books[i].as_ref().is_some_and(|b| !b.valid) {
            // A snapshot for a book being resynced: whatever its id, it is the new start. The
            // updates up to the last one seen come again for the book, but were captured once
            // already.
            self.captured_to[i] = self.captured_to[i].max(self.seqs[i].last().unwrap_or(0));
            self.seqs[i].restart(seq);
            return Fate::Deliver;
        }
        let verdict = self.seqs[i].judge(seq);
        if matches!(verdict, Verdict::Duplicate | Verdict::Superseded) {
            // Nothing new for this long, on every connection: the venue's numbering went back
            // (a sequence reset after maintenance, or one bogus id far ahead). Start over here
            // rather than drop the stream for good.
            self.stale_seq[i] += 1;
            if self.stale_seq[i] >= SEQ_RESET_AFTER {
                warn!(
                    "[{}] stream {}: {} updates in a row at or below id {:?}: the venue's numbering was reset; following it from {}",
                    self.p.name,
                    self.p.streams[i].name,
                    self.stale_seq[i],
                    self.seqs[i].last(),
                    seq.id
                );
                self.stale_seq[i] = 0;
                self.seqs[i].restart(seq);
                self.invalidate_book(i, BookFault::Gap);
                return Fate::Deliver;
            }
        } else {
            self.stale_seq[i] = 0;
        }
        match verdict {
            Verdict::Duplicate => {
                FeedStats::bump(&self.stats.duplicates);
                Fate::Drop
            }
            Verdict::Superseded => {
                FeedStats::bump(&self.stats.superseded);
                Fate::Drop
            }
            Verdict::Broken => {
                self.seqs[i].commit(seq);
                warn!(
                    "[{}] stream {}: update {} names predecessor {:?}, older than the last one seen: broken chain",
                    self.p.name, self.p.streams[i].name, seq.id, seq.prev
                );
                self.invalidate_book(i, BookFault::Gap);
                Fate::Deliver
            }
            Verdict::Fresh {
                missed: Some(_),
                after_outage: false,
            } if holding || self.may_hold(i) => Fate::Hold,
            Verdict::Fresh { .. } => {
                self.accept(i, seq, verdict, recv_ns);
                Fate::Deliver
            }
        }
    }

    /// Whether a jump on stream `i` may be waited out: the stream is chained and another
    /// connection carries the feed (the one delivering is taken out of its slot while it
    /// steps, so any slot that carries is another).
    #[cold]
    fn may_hold(&self, i: usize) -> bool {
        !self.p.reorder_window.is_zero()
            && self.seqs[i].rule() == SeqRule::Chained
            && self.slots.iter().any(|s| s.conn.carries())
    }

    /// Makes a fresh message of stream `i` the last one seen and records what it shows missed.
    #[inline]
    fn accept(&mut self, i: usize, seq: Seq, verdict: Verdict, recv_ns: u64) {
        self.seqs[i].commit(seq);
        let Verdict::Fresh {
            missed,
            after_outage,
        } = verdict
        else {
            return;
        };
        let gap = if after_outage {
            self.resume_gap[i].take()
        } else {
            None
        };
        if let Some((from_seq, to_seq)) = missed {
            self.on_missed(i, from_seq, to_seq, gap, recv_ns);
            self.invalidate_book(i, BookFault::Gap);
        }
    }

    /// Applies one chunk of a book update of stream `i` and says what to send. A snapshot
    /// replaces the book and makes it valid; a delta on an invalid book is not applied and not
    /// sent. After an update's last chunk the book is checked: crossed, or a non-zero OKX
    /// checksum that does not match, invalidates it.
    #[inline]
    fn book_update(&mut self, i: usize, chunk: &DepthChunk) -> BookStep {
        let Some(state) = self.books[i].as_mut() else {
            return BookStep::Send;
        };
        if chunk.part == 0 {
            state.first_id = chunk.first_update_id;
        }
        if chunk.snapshot {
            if chunk.part == 0 {
                state.book.clear();
                state.loading = true;
            }
        } else if !state.valid {
            return BookStep::Skip;
        } else if state.rest.is_some() {
            if chunk.final_update_id <= state.covered_to {
                // Already in the REST snapshot the book was built from.
                return BookStep::Skip;
            }
            if state.check_first && chunk.part == 0 {
                let spot = self.p.venue == Venue::BinanceSpot;
                let last = state.covered_to;
                let straddles = if spot {
                    chunk.first_update_id <= last + 1
                } else {
                    chunk.first_update_id <= last
                };
                if !straddles {
                    self.invalidate_book(i, BookFault::Gap);
                    return BookStep::Skip;
                }
                state.check_first = false;
            }
        }
        state.book.apply(chunk);
        if !chunk.last {
            return BookStep::Send;
        }
        state.book.trim();
        let was_loading = std::mem::take(&mut state.loading);
        let fault = if state.book.crossed() {
            Some(BookFault::Crossed)
        } else if chunk.checksum != 0 && !state.book.okx_checksum_matches(chunk.checksum) {
            Some(BookFault::Checksum)
        } else {
            None
        };
        if let Some(fault) = fault {
            if was_loading {
                state.valid = true; // so that invalidation reports it
            }
            self.invalidate_book(i, fault);
            return BookStep::Send;
        }
        let resynced = was_loading && !state.valid && state.ever_valid;
        if was_loading {
            state.valid = true;
            state.ever_valid = true;
        }
        let step = match (state.book.best_bid(), state.book.best_ask()) {
            (Some(b), Some(a)) => BookStep::SendWithTop(TickData::Quote {
                bid: b.price,
                bid_qty: b.qty,
                ask: a.price,
                ask_qty: a.qty,
            }),
            _ => BookStep::Send,
        };
        if resynced {
            info!(
                "[{}] book {} resynced from a snapshot",
                self.p.name, self.p.streams[i].name
            );
            self.health(Health::BookResynced { stream: i as u16 });
        }
        step
    }

    /// Book `i` can no longer be trusted: say so, and get a fresh snapshot through a fresh
    /// connection (make before break; a standby simply reconnects).
    #[cold]
    fn invalidate_book(&mut self, i: usize, fault: BookFault) {
        let Some(state) = self.books[i].as_mut() else {
            return;
        };
        if !state.valid {
            return;
        }
        state.valid = false;
        state.book.clear();
        let rest = match state.rest.as_mut() {
            Some(rest) => {
                // Binance: a new REST snapshot, no new connection.
                rest.buffer.clear();
                true
            }
            None => false,
        };
        FeedStats::bump(&self.stats.book_resyncs);
        warn!(
            "[{}] book {} invalid ({fault}): resyncing",
            self.p.name, self.p.streams[i].name
        );
        self.health(Health::BookInvalid {
            stream: i as u16,
            fault,
        });
        if !rest && fault != BookFault::Reconnect && !self.resync_wanted.contains(&(i as u16)) {
            self.resync_wanted.push(i as u16);
        }
    }

    /// Keeps a diff of a Binance book that waits for its REST snapshot, and asks for the
    /// snapshot if none is on its way.
    #[cold]
    fn rest_buffer(&mut self, i: usize, text: &Utf8Bytes, recv_ns: u64, seq: Seq, now: Instant) {
        let Some(state) = self.books[i].as_mut() else {
            return;
        };
        let first = state.first_id;
        let Some(rest) = state.rest.as_mut() else {
            return;
        };
        if rest.buffer.len() >= MAX_BUFFERED {
            // The snapshot is not coming: start over.
            rest.buffer.clear();
            rest.requested = false;
        }
        rest.buffer.push_back(Buffered {
            text: text.clone(),
            recv_ns,
            first,
            last: seq.id,
        });
        if rest.requested || rest.retry_at.is_some_and(|t| now < t) {
            return;
        }
        let (Some(tx), Some(base), Some(path)) = (
            &self.p.snapshots,
            &self.p.rest_base,
            self.p.venue.depth_snapshot_path(&self.p.streams[i].symbol),
        ) else {
            return;
        };
        rest.requested = true;
        let _ = tx.send(SnapshotRequest {
            stream: i as u16,
            url: format!("{base}{path}"),
            tls: self.p.tls.clone(),
            reply: self.snap_tx.clone(),
            waker: self.waker.clone(),
        });
    }

    /// A REST snapshot arrived for book `i`: drop the buffered diffs it holds, check that the
    /// first one left straddles it, build the book and apply the rest (Binance's "How to
    /// manage a local order book correctly").
    #[cold]
    fn on_snapshot(&mut self, i: usize, result: Result<DepthSnapshot, String>, now: Instant) {
        let spot = self.p.venue == Venue::BinanceSpot;
        let name = self.p.streams[i].name.clone();
        let Some(state) = self.books[i].as_mut() else {
            return;
        };
        let Some(rest) = state.rest.as_mut() else {
            return;
        };
        rest.requested = false;
        let snap = match result {
            Ok(s) => s,
            Err(e) => {
                warn!(
                    "[{}] depth snapshot for {name} failed: {e}; trying again in {} ms",
                    self.p.name,
                    SNAPSHOT_RETRY.as_millis()
                );
                rest.retry_at = Some(now + SNAPSHOT_RETRY);
                return;
            }
        };
        if state.valid {
            return;
        }
        let last = snap.last_update_id;
        // Spot drops events with u <= lastUpdateId; USD-M those with u < lastUpdateId.
        while rest
            .buffer
            .front()
            .is_some_and(|b| if spot { b.last <= last } else { b.last < last })
        {
            rest.buffer.pop_front();
        }
        if let Some(front) = rest.buffer.front() {
            let straddles = if spot {
                front.first <= last + 1
            } else {
                front.first <= last
            };
            if !straddles {
                warn!(
                    "[{}] depth snapshot for {name} (lastUpdateId {last}) is older than the buffered diffs (U {}): fetching again",
                    self.p.name, front.first
                );
                // The next diff asks again.
                return;
            }
        }
        let buffered = std::mem::take(&mut rest.buffer);
        state.book.clear();
        for l in &snap.bids {
            state.book.set(crate::book::Side::Bid, l.price, l.qty);
        }
        for l in &snap.asks {
            state.book.set(crate::book::Side::Ask, l.price, l.qty);
        }
        state.book.trim();
        state.valid = true;
        let resynced = std::mem::replace(&mut state.ever_valid, true);
        let recv_ns = clock::now_ns();
        self.send_snapshot_ticks(i, &snap, recv_ns);
        // Diffs the snapshot already holds may still arrive (the WebSocket can lag the REST
        // answer): they are captured, not applied. If none was buffered, the next one must
        // straddle the snapshot.
        if let Some(state) = self.books[i].as_mut() {
            state.covered_to = last;
            state.check_first = buffered.is_empty();
        }
        for b in buffered {
            if let Ok(Frame::Data { data, .. }) = self.p.venue.classify(b.text.as_str()) {
                let _ = self.parse_and_send(i, data, b.recv_ns, |_, _| true);
            }
        }
        info!(
            "[{}] book {name} built from a REST snapshot (lastUpdateId {last})",
            self.p.name
        );
        if resynced {
            self.health(Health::BookResynced { stream: i as u16 });
        }
    }

    /// Sends a REST snapshot's levels as snapshot depth chunks, then the book's top.
    #[cold]
    fn send_snapshot_ticks(&mut self, i: usize, snap: &DepthSnapshot, recv_ns: u64) {
        let (feed, symbol) = (self.p.id, self.p.symbols[i]);
        let send = |out: &Outbox, stats: &FeedStats, policy, data| {
            out.send_tick(
                policy,
                stats,
                Tick {
                    feed,
                    stream: i as u16,
                    symbol,
                    seq: snap.last_update_id,
                    event_time_ms: 0,
                    recv_ns,
                    data,
                },
            );
        };
        let mut chunk = DepthChunk {
            first_update_id: snap.last_update_id,
            final_update_id: snap.last_update_id,
            snapshot: true,
            ..DepthChunk::EMPTY
        };
        let levels = snap
            .bids
            .iter()
            .map(|l| (true, *l))
            .chain(snap.asks.iter().map(|l| (false, *l)));
        for (bid, level) in levels {
            let used = usize::from(chunk.n_bids + chunk.n_asks);
            if used == crate::tick::DEPTH_CHUNK_LEVELS {
                send(
                    &self.out,
                    &self.stats,
                    self.p.on_full,
                    TickData::Depth(chunk),
                );
                chunk.part = chunk.part.wrapping_add(1);
                chunk.n_bids = 0;
                chunk.n_asks = 0;
            }
            let used = usize::from(chunk.n_bids + chunk.n_asks);
            chunk.levels[used] = level;
            if bid {
                chunk.n_bids += 1;
            } else {
                chunk.n_asks += 1;
            }
        }
        chunk.last = true;
        send(
            &self.out,
            &self.stats,
            self.p.on_full,
            TickData::Depth(chunk),
        );
        let book = &self.books[i]
            .as_ref()
            .map(|b| (b.book.best_bid(), b.book.best_ask()));
        if let Some((Some(b), Some(a))) = book {
            send(
                &self.out,
                &self.stats,
                self.p.on_full,
                TickData::Quote {
                    bid: b.price,
                    bid_qty: b.qty,
                    ask: a.price,
                    ask_qty: a.qty,
                },
            );
        }
    }

    /// Holds a message of stream `i` back, in id order.
    #[cold]
    fn hold(&mut self, i: usize, seq: Seq, conn: u32, recv_ns: u64, text: Utf8Bytes, now: Instant) {
        let held = &mut self.held[i];
        if held.len() >= MAX_HELD {
            // A hole this long is not a moment's skew: report it now.
            self.release_held(i, true);
        }
        let held = &mut self.held[i];
        let at = held.partition_point(|h| h.seq.id < seq.id);
        held.insert(
            at,
            Held {
                seq,
                conn,
                recv_ns,
                text,
            },
        );
        if self.held_until[i].is_none() {
            self.held_until[i] = Some(now + self.p.reorder_window);
        }
    }

    /// Delivers the held messages of stream `i` that now continue the chain; with `force`
    /// (the window ended, or no other connection carries the feed any more), all of them,
    /// reporting the ids that never came.
    #[cold]
    fn release_held(&mut self, i: usize, force: bool) {
        while let Some(front) = self.held[i].front() {
            let verdict = self.seqs[i].judge(front.seq);
            match verdict {
                Verdict::Duplicate | Verdict::Superseded | Verdict::Broken => {
                    self.held[i].pop_front();
                    FeedStats::bump(&self.stats.duplicates);
                }
                Verdict::Fresh { missed, .. } if missed.is_none() || force => {
                    let Some(h) = self.held[i].pop_front() else {
                        break;
                    };
                    self.accept(i, h.seq, verdict, h.recv_ns);
                    let Ok(Frame::Data { data, .. }) = self.p.venue.classify(h.text.as_str())
                    else {
                        continue;
                    };
                    if self.parse_and_send(i, data, h.recv_ns, |_, _| true).is_ok() {
                        self.delivered(i, Instant::now());
                        self.capture(i as u16, h.conn, h.recv_ns, h.text.clone());
                    }
                }
                Verdict::Fresh { .. } => break,
            }
        }
        if self.held[i].is_empty() {
            self.held_until[i] = None;
        }
    }

    /// Updates `from_seq..=to_seq` of stream `i` never arrived.
    #[cold]
    fn on_missed(
        &mut self,
        i: usize,
        from_seq: u64,
        to_seq: u64,
        outage_gap: Option<usize>,
        recv_ns: u64,
    ) {
        let missed = Missed {
            stream: i as u16,
            from_seq,
            to_seq,
        };
        match outage_gap {
            Some(index) => self.stats.add_missed(index, missed),
            None => {
                let at = clock::mono_to_unix_ns(recv_ns);
                self.stats.record_gap(GapRecord {
                    start_unix_ns: at,
                    end_unix_ns: at,
                    duration_ms: 0,
                    reconnect_ms: 0,
                    cause: GapCause::SequenceJump,
                    attempts: 0,
                    missed: vec![missed],
                });
            }
        }
        if let Some(suppressed) = self.gap_log.allow(Instant::now()) {
            warn!(
                "[{}] stream {} missed updates {from_seq}..={to_seq} ({} ids){}{}",
                self.p.name,
                self.p.streams[i].name,
                missed.ids(),
                if outage_gap.is_some() {
                    " across the outage"
                } else {
                    " on a live connection"
                },
                suppressed_note(suppressed)
            );
        }
        self.health(Health::Gap {
            stream: i as u16,
            from_seq,
            to_seq,
        });
    }

    /// First data after an outage: record the gap and report the recovery.
    #[cold]
    fn end_outage(&mut self, recv_ns: u64) {
        let Some(outage) = self.outage.take() else {
            return;
        };
        let now = Instant::now();
        let reconnect = now.saturating_duration_since(outage.detected);
        let gap_start = outage.last_data.unwrap_or(outage.detected);
        let gap = now.saturating_duration_since(gap_start);
        FeedStats::bump(&self.stats.reconnects);
        let total = self.stats.reconnects.load(Ordering::Relaxed);
        let end_unix = clock::mono_to_unix_ns(recv_ns);
        let index = self.stats.record_gap(GapRecord {
            start_unix_ns: end_unix.saturating_sub(gap.as_nanos() as u64),
            end_unix_ns: end_unix,
            duration_ms: gap.as_millis() as u64,
            reconnect_ms: reconnect.as_millis() as u64,
            cause: GapCause::Outage(outage.reason),
            attempts: outage.attempts,
            missed: Vec::new(),
        });
        for (i, seq) in self.seqs.iter().enumerate() {
            if seq.resuming() && self.resume_gap[i].is_none() {
                self.resume_gap[i] = Some(index);
            }
        }
        info!(
            "[{}] Reconnected successfully (gap_ms={}, attempts={}, total_reconnects={total})",
            self.p.name,
            gap.as_millis(),
            outage.attempts
        );
        self.health(Health::Recovered {
            gap_ms: gap.as_millis() as u64,
            reconnect_ms: reconnect.as_millis() as u64,
            attempts: outage.attempts,
        });
    }

    /// A request (or, on OKX, one stream of it) was acknowledged.
    fn on_ack(&mut self, live: &mut Live, id: u64, stream: Option<StreamKey<'_>>, now: Instant) {
        let Some(pos) = live.pending.iter().position(|p| p.id == id) else {
            debug!("[{}] ack for unknown request id {id}", self.p.name);
            return;
        };
        let acked: Vec<u16> = match stream {
            None => std::mem::take(&mut live.pending[pos].streams),
            Some(key) => {
                let streams = &mut live.pending[pos].streams;
                let Some(at) = streams
                    .iter()
                    .position(|&i| key.matches(&self.p.streams[i as usize].name))
                else {
                    debug!(
                        "[{}] ack for a stream request {id} did not ask for",
                        self.p.name
                    );
                    return;
                };
                vec![streams.swap_remove(at)]
            }
        };
        if live.pending[pos].streams.is_empty() {
            live.pending.swap_remove(pos);
        }
        for i in acked {
            live.cadence.arm(i as usize, now);
            self.watch.arm_if_idle(i as usize, now);
        }
        self.announce_if_subscribed(live);
    }

    /// Every request answered: the connection is up. Announced once per connection.
    fn announce_if_subscribed(&mut self, live: &mut Live) {
        if live.pending.is_empty() && live.queued.is_empty() && !live.announced {
            live.announced = true;
            info!(
                "[{}] connection {} subscribed to {} streams",
                self.p.name,
                live.conn_no,
                self.active.iter().filter(|a| **a).count(),
            );
            self.health(Health::Connected { conn: live.conn_no });
        }
    }

    /// The venue answered a request with an error. A rejected multi-stream request is split in
    /// halves to find exactly which streams the venue refuses; a rejected single stream is
    /// reported and dropped from the subscription set, so reconnects do not retry it forever.
    #[cold]
    fn on_venue_error(
        &mut self,
        live: &mut Live,
        id: Option<u64>,
        code: i64,
        msg: &str,
    ) -> Result<(), Lost> {
        let Some(pos) = id.and_then(|id| live.pending.iter().position(|p| p.id == id)) else {
            warn!("[{}] venue error {code}: {msg}", self.p.name);
            return Ok(());
        };
        let req = live.pending.swap_remove(pos);
        if req.streams.len() > 1 {
            let (a, b) = req.streams.split_at(req.streams.len() / 2);
            live.queued.push_back(a.to_vec());
            live.queued.push_back(b.to_vec());
            return Ok(());
        }
        for &i in &req.streams {
            if !mem::replace(&mut self.active[i as usize], false) {
                continue; // the other connection already reported it
            }
            FeedStats::bump(&self.stats.rejected_streams);
            error!(
                "[{}] venue rejected stream {} (code {code}: {msg}); it will not be retried",
                self.p.name, self.p.streams[i as usize].name
            );
            self.health(Health::SubscriptionRejected { stream: i, code });
        }
        if !self.active.iter().any(|a| *a) {
            return Err((DisconnectReason::AllStreamsRejected, Some(msg.to_string())));
        }
        // The rest may all be acknowledged already.
        self.announce_if_subscribed(live);
        Ok(())
    }

    /// Sends queued subscribe requests, one per [`REQUEST_SPACING`].
    fn send_requests(&mut self, live: &mut Live, now: Instant) -> Result<(), Lost> {
        while now >= live.next_send {
            let Some(streams) = live.queued.pop_front() else {
                break;
            };
            let streams: Vec<u16> = streams
                .into_iter()
                .filter(|&i| self.active[i as usize])
                .collect();
            if streams.is_empty() {
                continue;
            }
            let id = self.next_request_id;
            self.next_request_id += 1;
            let text = self.p.venue.subscribe_request(
                id,
                streams
                    .iter()
                    .map(|&i| self.p.streams[i as usize].name.as_str()),
            );
            if let Err(e) = live.ws.send(Message::text(text)) {
                if !is_would_block(&e) {
                    return Err(ws_error_reason(&e));
                }
            }
            live.pending.push(Pending {
                id,
                streams,
                sent_at: now,
            });
            live.next_send = now + REQUEST_SPACING;
        }
        // Every stream may have been rejected on another connection meanwhile.
        self.announce_if_subscribed(live);
        Ok(())
    }

    // ----- losses, failures and rotation ------------------------------------------------

    /// A live connection ended: report it and decide the slot's next state. When no other
    /// connection carries the feed, an outage opens; it closes with the next data.
    #[cold]
    fn lose(
        &mut self,
        k: usize,
        mut live: Box<Live>,
        reason: DisconnectReason,
        detail: Option<&str>,
        now: Instant,
    ) -> Conn {
        live.ws.get_mut().abort();
        FeedStats::bump(&self.stats.disconnects);
        self.stats.record_detection(live.liveness.silent_for(now));
        let conn = live.conn_no;
        let token = self.slots[k].token;
        // Losing either side of a rotation ends it: a lost old connection leaves the
        // replacement in its place; a lost replacement is retired and tried again later.
        let mut retire = false;
        if let Some(rot) = self.rotation {
            if rot.old == token || rot.new == token {
                self.rotation = None;
                retire = true;
                if rot.old == token {
                    let role = self.slots[k].role;
                    if let Some(j) = self.slot_of(rot.new) {
                        self.slots[j].role = role;
                    }
                } else {
                    self.rotation_hold = Some(now + ROTATION_RETRY);
                }
            }
        }
        let carrier = self
            .slots
            .iter()
            .enumerate()
            .find(|(j, s)| *j != k && s.conn.carries())
            .map(|(_, s)| s.conn_no);
        let url = &self.p.targets[self.slots[k].target].url;
        let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
        match carrier {
            Some(other) => {
                warn!(
                    "[{}] connection {conn} to {url} lost: {reason}{detail}; connection {other} carries the feed",
                    self.p.name
                );
                self.health(Health::ConnectionLost { conn, reason });
            }
            None => {
                warn!(
                    "[{}] connection {conn} to {url} lost: {reason}{detail}",
                    self.p.name
                );
                self.health(Health::Disconnected { conn, reason });
                // Updates are lost from now on: every book waits for the next snapshot, which
                // the reconnect's subscription brings.
                for i in 0..self.books.len() {
                    self.invalidate_book(i, BookFault::Reconnect);
                }
                // Nothing can fill a hole any more.
                for i in 0..self.held.len() {
                    if !self.held[i].is_empty() {
                        self.release_held(i, true);
                    }
                }
                // Every subscribed stream is without a connection from now until data flows
                // again, whether or not this connection had delivered anything yet.
                if self.outage.is_none() {
                    self.outage = Some(Outage {
                        detected: now,
                        last_data: self.last_data,
                        reason,
                        attempts: 0,
                    });
                    self.watch.disarm_all();
                    for s in &mut self.seqs {
                        s.outage();
                    }
                }
            }
        }
        // A session that streamed for a while and then ended is an event on a healthy venue
        // (a clean close, a reset, the daily cut): the first retry goes out at once. Backoff is
        // for attempts that keep failing; the venue's Retry-After and the host's connection
        // budget still apply, and a session must last `at_once_after_ms` to earn this, so a
        // venue that drops every connection early is not hammered.
        let at_once_after = Duration::from_millis(self.p.reconnect.at_once_after_ms);
        let at_once = live.productive
            && now.saturating_duration_since(live.opened) >= at_once_after
            && !reason.is_permanent()
            && self.slots[k].retry_after.is_none();
        drop(live);
        if retire {
            return Conn::Retired;
        }
        if at_once {
            self.slots[k].backoff.on_productive();
            info!(
                "[RECONNECT] Reconnecting to {url} at once after: {reason}",
                url = self.p.targets[self.slots[k].target].url
            );
            return Conn::Backoff { until: now };
        }
        self.fail(k, reason, None, now)
    }

    /// An attempt or a connection of slot `k` failed: decide its next state.
    #[cold]
    fn fail(
        &mut self,
        k: usize,
        reason: DisconnectReason,
        detail: Option<&str>,
        now: Instant,
    ) -> Conn {
        let url = self.p.targets[self.slots[k].target].url.clone();
        self.addrs[self.slots[k].target] = None;
        if let Some(d) = detail {
            debug!("[{}] attempt to {url} failed: {reason}: {d}", self.p.name);
        }
        if reason.is_permanent() {
            let why = match detail {
                Some(d) => format!("{reason}: {d}"),
                None => reason.to_string(),
            };
            let others = reason != DisconnectReason::AllStreamsRejected
                && self
                    .slots
                    .iter()
                    .enumerate()
                    .any(|(j, s)| j != k && !matches!(s.conn, Conn::Failed | Conn::Retired));
            if others {
                error!(
                    "[{}] {} connection to {url} FAILED permanently: {why}. Not retrying it; the feed goes on over its other connection.",
                    self.p.name,
                    self.slots[k].role.name()
                );
                return Conn::Failed;
            }
            error!(
                "[{}] FAILED permanently connecting to {url}: {why}. Not retrying; other feeds go on.",
                self.p.name
            );
            if let Ok(mut f) = self.stats.failure.lock() {
                *f = Some(why);
            }
            for (j, s) in self.slots.iter_mut().enumerate() {
                if j != k {
                    s.conn = Conn::Failed;
                }
            }
            self.rotation = None;
            self.health(Health::Failed { reason });
            return Conn::Failed;
        }
        let slot = &mut self.slots[k];
        let decision = slot.backoff.on_failure(&mut self.rng);
        let mut wait = decision.wait();
        if let Some(asked) = slot.retry_after.take() {
            // The venue said when to come back; sooner risks a ban.
            wait = wait.max(asked);
        }
        let until = now + wait;
        match decision {
            Decision::Retry { failures, .. } => {
                info!(
                    "[RECONNECT] Attempting reconnection to {url} (attempt {failures}, delay {} ms) after: {reason}",
                    wait.as_millis()
                );
                Conn::Backoff { until }
            }
            Decision::CircuitOpen { failures, .. } => {
                FeedStats::bump(&self.stats.circuit_trips);
                error!(
                    "[{}] CIRCUIT OPEN: {failures} consecutive failures connecting to {url} (last: {reason}); cooling down {} ms before the next attempt",
                    self.p.name,
                    wait.as_millis()
                );
                self.health(Health::CircuitOpen {
                    failures,
                    cooldown_ms: wait.as_millis() as u64,
                });
                Conn::CircuitOpen { until }
            }
        }
    }

    /// Feed-wide duties after the slots stepped: rotations, stream silence, published state.
    fn maintain(&mut self, now: Instant) {
        while let Ok((i, result)) = self.snap_rx.try_recv() {
            self.on_snapshot(usize::from(i), result, now);
        }
        for i in 0..self.held_until.len() {
            if self.held_until[i].is_some_and(|t| now >= t) {
                self.release_held(i, true);
            }
        }
        if let Some(rot) = self.rotation {
            match (self.slot_of(rot.old), self.slot_of(rot.new)) {
                (Some(old), Some(new)) if self.slots[new].conn.carries() => {
                    let since = match &mut self.rotation {
                        Some(r) => *r.carried_at.get_or_insert(now),
                        None => now,
                    };
                    if self.overlapped(old, new, rot.why) || now >= since + HANDOVER_LIMIT {
                        self.finish_rotation(old, new, rot.why);
                    }
                }
                (Some(_), Some(new)) if matches!(self.slots[new].conn, Conn::Failed) => {
                    // The venue refuses new connections for good (e.g. 403): keep the old one
                    // for as long as it lasts, and do not keep asking.
                    warn!(
                        "[{}] the replacement connection failed permanently; keeping the current one and not replacing it for {} s",
                        self.p.name,
                        FAILED_ROTATION_HOLD.as_secs()
                    );
                    self.slots[new].conn = Conn::Retired;
                    self.rotation = None;
                    self.rotation_hold = Some(now + FAILED_ROTATION_HOLD);
                }
                (Some(_), Some(_)) => {}
                _ => self.rotation = None,
            }
        }
        if !self.resync_wanted.is_empty() && self.rotation.is_none() {
            // The oldest live connection gives way to a fresh one, which subscribes again and
            // receives fresh snapshots.
            let oldest = (0..self.slots.len())
                .filter_map(|k| match &self.slots[k].conn {
                    Conn::Live(l) => Some((l.opened, k)),
                    _ => None,
                })
                .min()
                .map(|(_, k)| k);
            if let Some(k) = oldest {
                let i = self.resync_wanted[0];
                self.resync_wanted.clear();
                self.start_rotation(k, RotateWhy::Resync(i), now);
            }
        }
        for (token, why) in mem::take(&mut self.rotate_requests) {
            if let Some(k) = self.slot_of(token) {
                self.start_rotation(k, why, now);
            }
        }
        if let Some(age) = self.p.max_connection_age {
            if self.rotation.is_none() && self.rotation_hold.is_none_or(|h| now >= h) {
                // The oldest first, so that two connections of the same age take turns.
                let old = (0..self.slots.len())
                    .filter_map(|k| match &self.slots[k].conn {
                        Conn::Live(l) if now >= l.opened + age => Some((l.opened, k)),
                        _ => None,
                    })
                    .min()
                    .map(|(_, k)| k);
                if let Some(k) = old {
                    self.start_rotation(k, RotateWhy::Age, now);
                }
            }
        }
        self.slots.retain(|s| !matches!(s.conn, Conn::Retired));
        // Streams silent past their cadence on every connection.
        let (name, streams, stats) = (&self.p.name, &self.p.streams, &self.stats);
        let mut stale = Vec::new();
        self.watch.poll(now, |i, silent| {
            FeedStats::bump(&stats.stale_events);
            warn!(
                "[{name}] stream {} silent for {} ms on a live connection: stale",
                streams[i].name,
                silent.as_millis()
            );
            stale.push((i as u16, silent.as_millis() as u64));
        });
        for (stream, silent_ms) in stale {
            self.health(Health::Stale { stream, silent_ms });
        }
        self.publish();
    }

    /// Starts replacing slot `k`'s connection without a gap: when another connection carries
    /// the feed, `k` simply reconnects; otherwise a replacement overlaps it until it carries.
    #[cold]
    fn start_rotation(&mut self, k: usize, why: RotateWhy, now: Instant) {
        let Conn::Live(live) = &mut self.slots[k].conn else {
            return;
        };
        let conn = live.conn_no;
        let busy = self.rotation.is_some();
        let carrier = self
            .slots
            .iter()
            .enumerate()
            .find(|(j, s)| *j != k && s.conn.carries())
            .map(|(_, s)| s.conn_no);
        // A slot that failed for good (a standby refused by its host) takes no room.
        let room = self
            .slots
            .iter()
            .filter(|s| !matches!(s.conn, Conn::Failed))
            .count()
            < LIVE_SLOTS;
        if let RotateWhy::Silent(i) = why {
            let i = i as usize;
            if self.silent_rotations[i] >= MAX_SILENT_ROTATIONS {
                if self.silent_rotations[i] == MAX_SILENT_ROTATIONS {
                    self.silent_rotations[i] += 1;
                    error!(
                        "[{}] stream {} stays silent on fresh connections too: the venue is not sending it; reporting it stale without replacing connections",
                        self.p.name, self.p.streams[i].name
                    );
                }
                return;
            }
            if busy || (carrier.is_none() && !room) {
                // Not now: ask again after another silence period.
                let Conn::Live(live) = &mut self.slots[k].conn else {
                    return;
                };
                live.cadence.arm(i, now);
                return;
            }
            self.silent_rotations[i] += 1;
        } else if busy {
            return;
        }
        let why_text = match why {
            RotateWhy::Age => "reached max_connection_age".to_string(),
            RotateWhy::Resync(i) => format!(
                "book {} needs a fresh snapshot",
                self.p.streams[i as usize].name
            ),
            RotateWhy::Silent(i) => {
                format!("stream {} silent on it", self.p.streams[i as usize].name)
            }
        };
        if let Some(other) = carrier {
            FeedStats::bump(&self.stats.rotations);
            info!(
                "[{}] replacing connection {conn} ({why_text}); connection {other} carries the feed meanwhile",
                self.p.name
            );
            if let Conn::Live(mut live) = mem::replace(&mut self.slots[k].conn, Conn::Idle) {
                let _ = live.ws.close(None);
                let _ = live.ws.flush();
            }
        } else if room {
            info!(
                "[{}] connection {conn} {why_text}: opening its replacement",
                self.p.name
            );
            let new = self.add_slot(SlotRole::Replacement, self.slots[k].target);
            self.rotation = Some(Rotation {
                old: self.slots[k].token,
                new,
                why,
                carried_at: None,
            });
        } else {
            self.rotation_hold = Some(now + ROTATION_RETRY);
        }
    }

    /// Whether every wanted stream has been delivered by the old connection up to where the
    /// replacement started: then the replacement alone misses nothing. (Updates the venue sent
    /// before it applied the replacement's subscription exist only on the old connection.)
    fn overlapped(&self, old: usize, new: usize, why: RotateWhy) -> bool {
        let (Conn::Live(o), Conn::Live(n)) = (&self.slots[old].conn, &self.slots[new].conn) else {
            return true;
        };
        (0..self.p.streams.len()).all(|i| {
            !self.active[i]
                || why == RotateWhy::Silent(i as u16)
                || (n.first_id[i] != 0 && o.last_id[i] >= n.first_id[i])
        })
    }

    /// The replacement carries the feed: close the old connection.
    #[cold]
    fn finish_rotation(&mut self, old: usize, new: usize, why: RotateWhy) {
        let old_conn = self.slots[old].conn_no;
        let new_conn = self.slots[new].conn_no;
        if let Conn::Live(mut live) = mem::replace(&mut self.slots[old].conn, Conn::Retired) {
            let _ = live.ws.close(None);
            let _ = live.ws.flush();
        }
        self.slots[new].role = self.slots[old].role;
        self.rotation = None;
        FeedStats::bump(&self.stats.rotations);
        info!(
            "[{}] connection {old_conn} replaced by connection {new_conn} ({}) without a gap",
            self.p.name,
            match why {
                RotateWhy::Age => "age limit",
                RotateWhy::Silent(_) => "silent stream",
                RotateWhy::Resync(_) => "book resync",
            }
        );
        self.health(Health::Rotated {
            old: old_conn,
            new: new_conn,
        });
    }

    /// Publishes each slot's role and state, and the feed's: the best of its slots.
    fn publish(&self) {
        let mut best: Option<FeedState> = None;
        for (i, s) in self.slots.iter().enumerate() {
            let state = s.conn.state();
            self.stats.set_slot(i, s.role, state, s.conn_no);
            if best.is_none_or(|b| rank(state) > rank(b)) {
                best = Some(state);
            }
        }
        self.stats.set_slot_count(self.slots.len());
        self.stats.set_state(best.unwrap_or(FeedState::Failed));
    }

    // ----- reporting ---------------------------------------------------------------------

    /// Hands a new message to the capture thread. A full capture channel makes the feed wait
    /// for the disk: the capture promises every message, and the wait is counted.
    #[inline]
    fn capture(&self, stream: u16, conn: u32, recv_ns: u64, text: Utf8Bytes) {
        let Some(tx) = &self.p.capture else {
            return;
        };
        let msg = CaptureMsg {
            feed: self.p.id,
            stream,
            conn,
            recv_unix_ns: clock::mono_to_unix_ns(recv_ns),
            text,
        };
        if let Err(TrySendError::Full(msg)) = tx.try_send(msg) {
            FeedStats::bump(&self.stats.capture_waits);
            let _ = tx.send(msg);
        }
    }

    #[cold]
    fn health(&self, event: Health) {
        self.out.send_health(HealthMsg {
            feed: self.p.id,
            at_ns: clock::now_ns(),
            event,
        });
    }

    /// A quote whose bid reaches its ask: counted, logged at a limited rate, not given.
    #[cold]
    fn crossed_quote(&mut self, i: usize, bid: f64, ask: f64) {
        FeedStats::bump(&self.stats.crossed_quotes);
        if let Some(suppressed) = self.bad_frames.allow(Instant::now()) {
            warn!(
                "[{}] stream {}: crossed quote (bid {bid} >= ask {ask}) dropped{}",
                self.p.name,
                self.p.streams[i].name,
                suppressed_note(suppressed)
            );
        }
    }

    #[cold]
    fn bad_frame(&mut self, now: Instant, why: &str, text: &str) {
        FeedStats::bump(&self.stats.parse_errors);
        if let Some(suppressed) = self.bad_frames.allow(now) {
            let shown: String = text.chars().take(160).collect();
            warn!(
                "[{}] skipped a bad frame ({why}): {shown:?}{}",
                self.p.name,
                suppressed_note(suppressed)
            );
        }
    }

    #[cold]
    fn unknown_frame(&mut self, now: Instant, what: &str, len: usize) {
        FeedStats::bump(&self.stats.unknown_frames);
        if let Some(suppressed) = self.bad_frames.allow(now) {
            warn!(
                "[{}] ignored a frame: {what} ({len} bytes){}",
                self.p.name,
                suppressed_note(suppressed)
            );
        }
    }

    /// Logs (at most every few seconds) when ticks were dropped since the last report.
    #[inline]
    fn note_drops(&mut self, now: Instant) {
        let dropped = self.stats.dropped.load(Ordering::Relaxed);
        if dropped != self.drops_reported && self.drops.allow(now).is_some() {
            warn!(
                "[{}] strategy channel full: {} ticks dropped so far (policy {:?})",
                self.p.name, dropped, self.p.on_full
            );
            self.drops_reported = dropped;
        }
    }
}

/// Streams the venue sends on a fixed cadence, whatever the market does: silence on a live
/// connection means the subscription is broken there.
fn has_cadence(kind: StreamKind) -> bool {
    matches!(
        kind,
        StreamKind::Depth { .. } | StreamKind::MarkPrice { .. }
    )
}

/// Order of states when a feed's slots are summed up: the best one is the feed's.
fn rank(s: FeedState) -> u8 {
    match s {
        FeedState::Streaming => 7,
        FeedState::Subscribing => 6,
        FeedState::Handshaking => 5,
        FeedState::Connecting => 4,
        FeedState::Backoff => 3,
        FeedState::CircuitOpen => 2,
        FeedState::Stopped => 1,
        FeedState::Failed => 0,
    }
}

/// Suffix for a rate-limited log line: how many were not logged since the last one.
fn suppressed_note(suppressed: u64) -> String {
    if suppressed > 0 {
        format!(" [+{suppressed} more since last report]")
    } else {
        String::new()
    }
}

fn is_would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if io.kind() == io::ErrorKind::WouldBlock)
}

/// Maps a tungstenite error to a reason, with detail text for the log.
fn ws_error_reason(e: &tungstenite::Error) -> (DisconnectReason, Option<String>) {
    use tungstenite::error::ProtocolError;
    use tungstenite::Error as E;
    let reason = match e {
        E::ConnectionClosed | E::AlreadyClosed => DisconnectReason::Eof,
        E::Io(io) => net::io_reason(io),
        E::Tls(_) => DisconnectReason::Tls,
        E::Capacity(_) => DisconnectReason::TooLarge,
        E::Protocol(ProtocolError::ResetWithoutClosingHandshake) => DisconnectReason::Eof,
        E::Protocol(_) | E::Utf8(_) | E::AttackAttempt | E::HttpFormat(_) | E::Url(_) => {
            DisconnectReason::Protocol
        }
        E::WriteBufferFull(_) => DisconnectReason::Io(io::ErrorKind::WouldBlock),
        E::Http(response) => DisconnectReason::Http {
            status: response.status().as_u16(),
            retry_after_s: response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok()),
        },
    };
    (reason, Some(e.to_string()))
}
