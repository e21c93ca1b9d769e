//! The feed thread: one connection's session loop and its state machine, inline.
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
//! The thread owns its socket, backoff and liveness clock; nothing else touches them. It polls
//! mio until the next deadline (ping due, pong due, a stream's silence limit, backoff end,
//! connect/handshake/ack limit) and never blocks past it, so shutdown through the [`mio::Waker`]
//! is prompt in every state. The pure decisions live in [`backoff`], [`liveness`] and [`watch`].

pub mod backoff;
pub mod liveness;
pub mod watch;

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use log::{debug, error, info, warn};
use mio::{Events, Interest, Poll, Token, Waker};
use rustls::ClientConfig;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use self::backoff::{Backoff, Decision, XorShift};
use self::liveness::{Action, Liveness};
use self::watch::StreamWatch;
use crate::clock;
use crate::config::{Endpoint, FullPolicy, ReconnectConfig, WaitMode};
use crate::metrics::{FeedState, FeedStats, GapRecord};
use crate::net::{self, NetStream};
use crate::tick::{DisconnectReason, FeedId, Health, HealthMsg, Sequenced, SymbolId, Tick};
use crate::venue::{Frame, StreamDef, Venue};

const SOCKET: Token = Token(0);
const WAKE: Token = Token(1);

/// Frames read in one go before deadlines are checked again.
const READ_BATCH: usize = 512;
/// Spacing of follow-up subscribe requests (Binance: at most 10 incoming messages per second).
const REQUEST_SPACING: Duration = Duration::from_millis(200);
/// At most one log line per this interval for repetitive problems (bad frames, drops).
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Everything a feed thread needs, built by the engine from a validated config.
#[derive(Debug)]
pub struct FeedParams {
    /// Index of this feed.
    pub id: FeedId,
    /// Name (thread `feed-<name>`).
    pub name: String,
    /// Venue codec.
    pub venue: Venue,
    /// Where to connect.
    pub endpoint: Endpoint,
    /// Venue path for this connection's route, e.g. `/public/stream`.
    pub path: &'static str,
    /// Streams this connection carries.
    pub streams: Vec<StreamDef>,
    /// Interned symbol of each stream.
    pub symbols: Vec<SymbolId>,
    /// Silence limit of each stream.
    pub silence: Vec<Duration>,
    /// Backoff, breaker, liveness and limits.
    pub reconnect: ReconnectConfig,
    /// Block or spin.
    pub wait: WaitMode,
    /// Core to pin to.
    pub core: Option<usize>,
    /// Socket receive buffer.
    pub recv_buffer: Option<usize>,
    /// WebSocket limits.
    pub ws_config: WebSocketConfig,
    /// TLS client config for `wss://`.
    pub tls: Option<Arc<ClientConfig>>,
    /// Full-channel policy.
    pub on_full: FullPolicy,
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
    liveness: Liveness,
    /// Sent and not yet answered.
    pending: Vec<Pending>,
    /// Waiting to be sent (after a rejected multi-stream request is split).
    queued: VecDeque<Vec<u16>>,
    next_send: Instant,
    /// `Connected` was announced.
    announced: bool,
    /// A data message arrived on this connection.
    productive: bool,
    pings: u64,
}

/// The connection state machine; states carry their data.
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
}

impl Conn {
    fn state(&self) -> FeedState {
        match self {
            Conn::Idle | Conn::Connecting { .. } => FeedState::Connecting,
            Conn::Tls { .. } | Conn::Upgrading { .. } => FeedState::Handshaking,
            Conn::Live(l) if !l.pending.is_empty() || !l.queued.is_empty() => {
                FeedState::Subscribing
            }
            Conn::Live(_) => FeedState::Streaming,
            Conn::Backoff { .. } => FeedState::Backoff,
            Conn::CircuitOpen { .. } => FeedState::CircuitOpen,
            Conn::Failed => FeedState::Failed,
        }
    }
}

/// An outage in progress: set when a live connection is lost, closed by the first data after.
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

/// One feed's session loop.
pub struct Feed {
    p: FeedParams,
    url: String,
    out: Outbox,
    stats: Arc<FeedStats>,
    shutdown: Arc<AtomicBool>,
    poll: Poll,
    conn: Conn,
    backoff: Backoff,
    rng: XorShift,
    /// Streams still wanted (not rejected by the venue).
    active: Vec<bool>,
    watch: StreamWatch,
    conn_count: u32,
    next_request_id: u64,
    /// When the last data message arrived (any connection).
    last_data: Option<Instant>,
    outage: Option<Outage>,
    /// A Retry-After the venue asked for, applied to the next wait.
    retry_after: Option<Duration>,
    bad_frames: LogGate,
    drops: LogGate,
    drops_reported: u64,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("name", &self.p.name)
            .field("state", &self.conn.state())
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
        let url = p.endpoint.url(p.path);
        let n = p.streams.len();
        let feed = Feed {
            backoff: Backoff::new(p.reconnect),
            rng: XorShift::from_entropy(u64::from(p.id) + 1),
            active: vec![true; n],
            watch: StreamWatch::new(p.silence.iter().copied()),
            url,
            out,
            stats,
            shutdown,
            poll,
            conn: Conn::Idle,
            conn_count: 0,
            next_request_id: 1,
            last_data: None,
            outage: None,
            retry_after: None,
            bad_frames: LogGate::default(),
            drops: LogGate::default(),
            drops_reported: 0,
            p,
        };
        Ok((feed, waker))
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
            let more = self.step(now);
            self.stats.set_state(self.conn.state());
            let timeout = match (&self.conn, self.p.wait) {
                (Conn::Failed, _) => None,
                _ if more => Some(Duration::ZERO),
                (_, WaitMode::Spin) => Some(Duration::ZERO),
                (_, WaitMode::Block) => Some(self.deadline().saturating_duration_since(now)),
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    error!("[{}] poll failed: {e}", self.p.name);
                    break;
                }
            }
        }
        if let Conn::Live(live) = &mut self.conn {
            // Best effort: tell the venue we are leaving.
            let _ = live.ws.close(None);
            let _ = live.ws.flush();
        }
        if !matches!(self.conn, Conn::Failed) {
            self.stats.set_state(FeedState::Stopped);
        }
        debug!("[{}] stopped", self.p.name);
    }

    /// The next instant something is due.
    fn deadline(&self) -> Instant {
        match &self.conn {
            Conn::Idle => Instant::now(),
            Conn::Connecting { deadline, .. }
            | Conn::Tls { deadline, .. }
            | Conn::Upgrading { deadline, .. } => *deadline,
            Conn::Backoff { until } | Conn::CircuitOpen { until } => *until,
            // Not used: a failed feed polls without a timeout, woken only by shutdown.
            Conn::Failed => Instant::now() + Duration::from_secs(3600),
            Conn::Live(live) => {
                let mut d = live.liveness.deadline();
                if let Some(w) = self.watch.deadline() {
                    d = d.min(w);
                }
                if let Some(p) = live.pending.first() {
                    d = d.min(p.sent_at + Duration::from_millis(self.p.reconnect.ack_timeout_ms));
                }
                if !live.queued.is_empty() {
                    d = d.min(live.next_send);
                }
                d
            }
        }
    }

    /// Advances the state machine as far as it can go without blocking. Returns true when more
    /// input may be waiting (the read batch was cut short).
    fn step(&mut self, now: Instant) -> bool {
        let conn = mem::replace(&mut self.conn, Conn::Idle);
        let (next, more) = match conn {
            Conn::Idle => (self.begin_attempt(now), false),
            Conn::Connecting { sock, deadline } => (self.step_connect(sock, deadline, now), false),
            Conn::Tls { stream, deadline } => (self.step_tls(stream, deadline, now), false),
            Conn::Upgrading { mid, deadline } => (self.step_upgrade(*mid, deadline, now), false),
            Conn::Live(live) => self.step_live(live, now),
            Conn::Backoff { until } | Conn::CircuitOpen { until } if now >= until => {
                (self.begin_attempt(now), false)
            }
            waiting @ (Conn::Backoff { .. } | Conn::CircuitOpen { .. } | Conn::Failed) => {
                (waiting, false)
            }
        };
        self.conn = next;
        // A state that can progress at once (a fresh attempt) gets another turn before polling.
        more || matches!(self.conn, Conn::Idle)
    }

    // ----- connection set-up -------------------------------------------------------------

    #[cold]
    fn begin_attempt(&mut self, now: Instant) -> Conn {
        FeedStats::bump(&self.stats.attempts);
        if let Some(o) = &mut self.outage {
            o.attempts += 1;
        }
        let addr = match net::resolve(&self.p.endpoint.host, self.p.endpoint.port) {
            Ok(a) => a,
            Err(reason) => return self.fail(reason, None, now),
        };
        let mut sock = match net::start_connect(addr, self.p.recv_buffer) {
            Ok(s) => s,
            Err(e) => return self.fail(net::io_reason(&e), Some(&e.to_string()), now),
        };
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            SOCKET,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return self.fail(net::io_reason(&e), Some(&e.to_string()), now);
        }
        let deadline = now + Duration::from_millis(self.p.reconnect.connect_timeout_ms);
        self.step_connect(sock, deadline, now)
    }

    fn step_connect(&mut self, sock: mio::net::TcpStream, deadline: Instant, now: Instant) -> Conn {
        match net::connect_result(&sock) {
            Ok(true) => {
                let deadline = now + Duration::from_millis(self.p.reconnect.handshake_timeout_ms);
                match &self.p.tls {
                    Some(cfg) => match net::tls_stream(cfg, &self.p.endpoint.host, sock) {
                        Ok(tls) => self.step_tls(Box::new(tls), deadline, now),
                        Err(reason) => self.fail(reason, None, now),
                    },
                    None => self.begin_upgrade(NetStream::Plain(sock), deadline, now),
                }
            }
            Ok(false) if now >= deadline => self.fail(DisconnectReason::ConnectTimeout, None, now),
            Ok(false) => Conn::Connecting { sock, deadline },
            Err(e) => self.fail(net::io_reason(&e), Some(&e.to_string()), now),
        }
    }

    fn step_tls(
        &mut self,
        mut stream: Box<rustls::StreamOwned<rustls::ClientConnection, mio::net::TcpStream>>,
        deadline: Instant,
        now: Instant,
    ) -> Conn {
        match net::drive_tls(&mut stream) {
            Ok(true) => self.begin_upgrade(NetStream::Tls(stream), deadline, now),
            Ok(false) if now >= deadline => {
                self.fail(DisconnectReason::HandshakeTimeout, None, now)
            }
            Ok(false) => Conn::Tls { stream, deadline },
            Err(e) => self.fail(net::io_reason(&e), Some(&e.to_string()), now),
        }
    }

    fn begin_upgrade(&mut self, stream: NetStream, deadline: Instant, now: Instant) -> Conn {
        let result = tungstenite::client::client_with_config(
            self.url.as_str(),
            stream,
            Some(self.p.ws_config),
        );
        self.upgrade_result(result, deadline, now)
    }

    fn step_upgrade(
        &mut self,
        mid: MidHandshake<ClientHandshake<NetStream>>,
        deadline: Instant,
        now: Instant,
    ) -> Conn {
        self.upgrade_result(mid.handshake(), deadline, now)
    }

    fn upgrade_result(
        &mut self,
        result: Result<
            (
                WebSocket<NetStream>,
                tungstenite::handshake::client::Response,
            ),
            HandshakeError<ClientHandshake<NetStream>>,
        >,
        deadline: Instant,
        now: Instant,
    ) -> Conn {
        match result {
            Ok((ws, _response)) => self.on_open(ws, now),
            Err(HandshakeError::Interrupted(mid)) if now >= deadline => {
                drop(mid);
                self.fail(DisconnectReason::HandshakeTimeout, None, now)
            }
            Err(HandshakeError::Interrupted(mid)) => Conn::Upgrading {
                mid: Box::new(mid),
                deadline,
            },
            Err(HandshakeError::Failure(e)) => {
                let (reason, detail) = ws_error_reason(&e);
                if let DisconnectReason::Http {
                    retry_after_s: Some(s),
                    ..
                } = reason
                {
                    self.retry_after = Some(Duration::from_secs(u64::from(s)));
                }
                self.fail(reason, detail.as_deref(), now)
            }
        }
    }

    /// The WebSocket is open: subscribe to every wanted stream.
    #[cold]
    fn on_open(&mut self, ws: WebSocket<NetStream>, now: Instant) -> Conn {
        self.conn_count += 1;
        let wanted: Vec<u16> = (0..self.p.streams.len() as u16)
            .filter(|&i| self.active[i as usize])
            .collect();
        debug!(
            "[{}] connection {} open to {}; subscribing {} streams",
            self.p.name,
            self.conn_count,
            self.url,
            wanted.len()
        );
        let mut live = Box::new(Live {
            ws,
            conn_no: self.conn_count,
            liveness: Liveness::new(
                now,
                Duration::from_millis(self.p.reconnect.stale_after_ms),
                Duration::from_millis(self.p.reconnect.pong_timeout_ms),
            ),
            pending: Vec::new(),
            queued: VecDeque::from([wanted]),
            next_send: now,
            announced: false,
            productive: false,
            pings: 0,
        });
        match self.send_requests(&mut live, now) {
            Ok(()) => Conn::Live(live),
            Err((reason, detail)) => self.lose(live, reason, detail.as_deref(), now),
        }
    }

    // ----- the live connection -----------------------------------------------------------

    fn step_live(&mut self, mut live: Box<Live>, now: Instant) -> (Conn, bool) {
        // 1. Read everything that is there, up to a batch.
        let mut more = false;
        for n in 0.. {
            if n == READ_BATCH {
                more = true;
                break;
            }
            match live.ws.read() {
                Ok(msg) => {
                    // One clock read per frame serves the tick's receive stamp and liveness.
                    let at = Instant::now();
                    let recv_ns = clock::instant_ns(at);
                    if let Err((reason, detail)) = self.on_message(&mut live, msg, recv_ns, at) {
                        return (self.lose(live, reason, detail.as_deref(), at), false);
                    }
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    let (reason, detail) = ws_error_reason(&e);
                    return (self.lose(live, reason, detail.as_deref(), now), false);
                }
            }
        }
        let now = Instant::now();
        // 2. Subscriptions: follow-up requests, ack deadline.
        if let Err((reason, detail)) = self.send_requests(&mut live, now) {
            return (self.lose(live, reason, detail.as_deref(), now), false);
        }
        let ack_limit = Duration::from_millis(self.p.reconnect.ack_timeout_ms);
        if live
            .pending
            .first()
            .is_some_and(|p| now >= p.sent_at + ack_limit)
        {
            return (
                self.lose(live, DisconnectReason::AckTimeout, None, now),
                false,
            );
        }
        // 3. Connection liveness.
        match live.liveness.poll(now) {
            Action::None => {}
            Action::SendPing => {
                live.pings += 1;
                debug!(
                    "[{}] silent for {} ms: ping",
                    self.p.name,
                    live.liveness.silent_for(now).as_millis()
                );
                let payload = live.pings.to_be_bytes().to_vec();
                if let Err(e) = live.ws.send(Message::Ping(payload.into())) {
                    if !is_would_block(&e) {
                        let (reason, detail) = ws_error_reason(&e);
                        return (self.lose(live, reason, detail.as_deref(), now), false);
                    }
                }
            }
            Action::Dead => {
                return (
                    self.lose(live, DisconnectReason::PongTimeout, None, now),
                    false,
                );
            }
        }
        // 4. Streams silent past their cadence while the connection lives.
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
        // 5. Anything tungstenite still holds (pongs, a ping) goes out.
        if let Err(e) = live.ws.flush() {
            if !is_would_block(&e) {
                let (reason, detail) = ws_error_reason(&e);
                return (self.lose(live, reason, detail.as_deref(), now), false);
            }
        }
        (Conn::Live(live), more)
    }

    /// Handles one message. An `Err` ends the connection.
    #[inline]
    fn on_message(
        &mut self,
        live: &mut Live,
        msg: Message,
        recv_ns: u64,
        now: Instant,
    ) -> Result<(), (DisconnectReason, Option<String>)> {
        live.liveness.on_frame(now);
        match msg {
            Message::Text(text) => self.on_text(live, text.as_str(), recv_ns, now),
            Message::Ping(_) => {
                // tungstenite queued the pong; send it now, not with the next write.
                match live.ws.flush() {
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

    #[inline]
    fn on_text(
        &mut self,
        live: &mut Live,
        text: &str,
        recv_ns: u64,
        now: Instant,
    ) -> Result<(), (DisconnectReason, Option<String>)> {
        let frame = match self.p.venue.classify(text) {
            Ok(f) => f,
            Err(e) => {
                self.bad_frame(now, &e.to_string(), text);
                return Ok(());
            }
        };
        match frame {
            Frame::Data { stream, data } => {
                let Some(i) = self.p.streams.iter().position(|s| s.name == stream) else {
                    self.unknown_frame(now, "data for a stream not subscribed", text.len());
                    return Ok(());
                };
                self.on_data(live, i, data, text, recv_ns, now);
                Ok(())
            }
            Frame::Ack { id } => {
                self.on_ack(live, id, now);
                Ok(())
            }
            Frame::Error { id, code, msg } => self.on_venue_error(live, id, code, msg),
            Frame::Unknown => {
                self.unknown_frame(now, "unknown message", text.len());
                Ok(())
            }
        }
    }

    #[inline]
    fn on_data(
        &mut self,
        live: &mut Live,
        i: usize,
        data: &str,
        text: &str,
        recv_ns: u64,
        now: Instant,
    ) {
        let (feed, symbol, kind) = (self.p.id, self.p.symbols[i], self.p.streams[i].kind);
        let mut sent = 0u64;
        let parsed = self
            .p
            .venue
            .parse_data(kind, data, &mut |seq, event_time_ms, data| {
                let tick = Tick {
                    feed,
                    stream: i as u16,
                    symbol,
                    seq,
                    event_time_ms,
                    recv_ns,
                    data,
                };
                self.out.send_tick(self.p.on_full, &self.stats, tick);
                sent += 1;
            });
        if let Err(e) = parsed {
            self.bad_frame(now, &e.to_string(), text);
            return;
        }
        FeedStats::bump(&self.stats.messages);
        self.stats.ticks.store(
            self.stats.ticks.load(Ordering::Relaxed) + sent,
            Ordering::Relaxed,
        );
        self.note_drops(now);
        if !live.productive {
            self.on_first_data(live, now);
        }
        self.last_data = Some(now);
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

    /// First data on a connection: the session is productive, and any outage is over.
    #[cold]
    fn on_first_data(&mut self, live: &mut Live, now: Instant) {
        live.productive = true;
        self.backoff.on_productive();
        let Some(outage) = self.outage.take() else {
            return;
        };
        let reconnect = now.saturating_duration_since(outage.detected);
        let gap_start = outage.last_data.unwrap_or(outage.detected);
        let gap = now.saturating_duration_since(gap_start);
        FeedStats::bump(&self.stats.reconnects);
        let total = self.stats.reconnects.load(Ordering::Relaxed);
        let end_unix = clock::mono_to_unix_ns(clock::instant_ns(now));
        self.stats.record_gap(GapRecord {
            start_unix_ns: end_unix.saturating_sub(gap.as_nanos() as u64),
            end_unix_ns: end_unix,
            duration_ms: gap.as_millis() as u64,
            reconnect_ms: reconnect.as_millis() as u64,
            reason: outage.reason,
            attempts: outage.attempts,
        });
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

    fn on_ack(&mut self, live: &mut Live, id: u64, now: Instant) {
        let Some(pos) = live.pending.iter().position(|p| p.id == id) else {
            debug!("[{}] ack for unknown request id {id}", self.p.name);
            return;
        };
        let done = live.pending.swap_remove(pos);
        for &i in &done.streams {
            self.watch.arm(i as usize, now);
        }
        self.announce_if_subscribed(live);
    }

    /// Every request answered: the connection is up. Announced once per connection.
    fn announce_if_subscribed(&mut self, live: &mut Live) {
        if live.pending.is_empty() && live.queued.is_empty() && !live.announced {
            live.announced = true;
            info!(
                "[{}] connection {} subscribed to {} streams on {}",
                self.p.name,
                live.conn_no,
                self.active.iter().filter(|a| **a).count(),
                self.url
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
    ) -> Result<(), (DisconnectReason, Option<String>)> {
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
            self.active[i as usize] = false;
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
    fn send_requests(
        &mut self,
        live: &mut Live,
        now: Instant,
    ) -> Result<(), (DisconnectReason, Option<String>)> {
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
        Ok(())
    }

    // ----- failure and backoff -----------------------------------------------------------

    /// A live connection ended: report it, open an outage, and decide the next wait.
    #[cold]
    fn lose(
        &mut self,
        mut live: Box<Live>,
        reason: DisconnectReason,
        detail: Option<&str>,
        now: Instant,
    ) -> Conn {
        live.ws.get_mut().abort();
        FeedStats::bump(&self.stats.disconnects);
        self.watch.disarm_all();
        match detail {
            Some(d) => warn!(
                "[{}] connection {} to {} lost: {reason} ({d})",
                self.p.name, live.conn_no, self.url
            ),
            None => warn!(
                "[{}] connection {} to {} lost: {reason}",
                self.p.name, live.conn_no, self.url
            ),
        }
        self.health(Health::Disconnected {
            conn: live.conn_no,
            reason,
        });
        // Every subscribed stream is without a connection from now until data flows again,
        // whether or not this connection had delivered anything yet.
        if self.outage.is_none() {
            self.outage = Some(Outage {
                detected: now,
                last_data: self.last_data,
                reason,
                attempts: 0,
            });
        }
        drop(live);
        self.fail(reason, None, now)
    }

    /// An attempt or a connection failed: decide the next state.
    #[cold]
    fn fail(&mut self, reason: DisconnectReason, detail: Option<&str>, now: Instant) -> Conn {
        if let Some(d) = detail {
            debug!("[{}] attempt failed: {reason}: {d}", self.p.name);
        }
        if reason.is_permanent() {
            let why = match detail {
                Some(d) => format!("{reason}: {d}"),
                None => reason.to_string(),
            };
            error!(
                "[{}] FAILED permanently connecting to {}: {why}. Not retrying; other feeds go on.",
                self.p.name, self.url
            );
            if let Ok(mut f) = self.stats.failure.lock() {
                *f = Some(why);
            }
            self.health(Health::Failed { reason });
            return Conn::Failed;
        }
        let decision = self.backoff.on_failure(&mut self.rng);
        let mut wait = decision.wait();
        if let Some(asked) = self.retry_after.take() {
            // The venue said when to come back; sooner risks a ban.
            wait = wait.max(asked);
        }
        let until = now + wait;
        match decision {
            Decision::Retry { failures, .. } => {
                info!(
                    "[RECONNECT] Attempting reconnection to {} (attempt {failures}, delay {} ms) after: {reason}",
                    self.url,
                    wait.as_millis()
                );
                Conn::Backoff { until }
            }
            Decision::CircuitOpen { failures, .. } => {
                FeedStats::bump(&self.stats.circuit_trips);
                error!(
                    "[{}] CIRCUIT OPEN: {failures} consecutive failures connecting to {} (last: {reason}); cooling down {} ms before the next attempt",
                    self.p.name,
                    self.url,
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

    // ----- reporting ---------------------------------------------------------------------

    #[cold]
    fn health(&self, event: Health) {
        self.out.send_health(HealthMsg {
            feed: self.p.id,
            at_ns: clock::now_ns(),
            event,
        });
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
