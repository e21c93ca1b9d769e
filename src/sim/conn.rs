//! One simulator-side connection: the request head (a plain HTTP request
//! goes to `rest.rs`), the upgrade handshake (with scripted HTTP rejections),
//! the venue's request/response protocol (Binance, Bybit v5 or OKX v5), data
//! delivery with ground-truth recording, subscription snapshots, connection
//! and book faults, the maximum connection age and the idle timeout.
//!
//! The socket is non-blocking. The thread waits up to [`IDLE_WAIT`] on its
//! event channel, writes what the client is subscribed to, flushes, then
//! drains whatever the client sent. Nothing a client sends can panic it.
//!
//! Ground truth: a data message is recorded in `Inner::sent` *before* it is
//! handed to the WebSocket (whose `write` may flush when a pong or close reply
//! is queued), so the record is always a superset of what reached the client.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rustls::{ServerConnection, StreamOwned};
use serde_json::Value;
use socket2::SockRef;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Bytes, Error as WsError, HandshakeError, Message, WebSocket};

use super::base::{lock, now_ms, Kind};
use super::config::SimVenue;
use super::fault::{BookFault, Fault, Injected};
use super::format::{json_str, json_val};
use super::market::{Event, Snap};
use super::observe::{ConnId, ConnInfo, SentKind, SentRecord};
use super::rest::{self, Head};
use super::state::{ConnEntry, Inner, Subscriber};
use super::venue::{self, Topic};

/// Longest wait on the event channel before servicing the socket again.
const IDLE_WAIT: Duration = Duration::from_millis(1);
/// The longest one read waits during the handshakes.
const HANDSHAKE_READ_WAIT: Duration = Duration::from_millis(5);
/// Upgrade handshake (TLS included) must complete within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A [`Fault::ServerPing`] not answered within this closes with 1008.
#[cfg(not(test))]
const PONG_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortened so unit tests of the timeout stay fast.
#[cfg(test)]
const PONG_TIMEOUT: Duration = Duration::from_millis(400);
/// How long a server-initiated close waits for the client's Close reply.
const CLOSE_LINGER: Duration = Duration::from_millis(1000);
/// How long a final flush may keep retrying on a full socket buffer.
const FLUSH_GRACE: Duration = Duration::from_millis(200);
/// Capacity of a connection's event channel; the generator drops events for
/// a connection whose channel is full.
const EVENT_QUEUE: usize = 16 * 1024;
/// Written-but-unflushed data messages above which no more events are pulled.
const MAX_PENDING: usize = 8 * 1024;
/// Events handled per loop iteration before the socket is serviced again.
const MAX_BATCH: usize = 1024;
/// tungstenite's eager-write threshold, set so high that it never triggers
/// (pending output is bounded by [`MAX_PENDING`] messages far below it).
const WRITE_BUFFER: usize = 1 << 30;
/// Largest client message accepted.
const MAX_CLIENT_MESSAGE: usize = 1 << 20;
/// Payload of the malformed frame sent by [`Fault::Malformed`].
const MALFORMED: &str = r#"{"stream":"btcusdt@bookTicker","data":{"u":12"#;
/// Payload of the frame sent by [`Fault::UnknownMessage`].
const UNKNOWN_MESSAGE: &str = r#"{"event":"mystery","x":1}"#;
/// Payload of the frame sent by [`Fault::Binary`].
const BINARY: [u8; 4] = [0xDE, 0xAD, 0xBE, 0xEF];
/// Largest frame [`Fault::Oversized`] builds.
const MAX_OVERSIZED: usize = 64 << 20;
/// Most pings one [`Fault::PingFlood`] sends.
const MAX_PING_FLOOD: u32 = 10_000;
/// [`BookFault::BreakChain`] on Bybit: how far `u` jumps.
const BYBIT_U_JUMP: u64 = 1000;
/// Bybit spot: most args in one subscribe request.
const BYBIT_SPOT_MAX_ARGS: usize = 10;

/// The transport of a connection, plain or TLS.
#[derive(Debug)]
enum Io {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

/// The server side of a connection: the transport, plus the bytes of the
/// request head already read (replayed to the WebSocket handshake).
#[derive(Debug)]
pub(crate) struct SimStream {
    io: Io,
    replay: Vec<u8>,
    replayed: usize,
}

impl SimStream {
    pub(crate) fn tcp(&self) -> &TcpStream {
        match &self.io {
            Io::Plain(s) => s,
            Io::Tls(s) => &s.sock,
        }
    }

    /// Reads the TCP socket directly (bypassing TLS; for draining only).
    pub(crate) fn tcp_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut tcp = self.tcp();
        tcp.read(buf)
    }

    /// Queues a TLS close_notify (no-op on plain connections).
    pub(crate) fn close_notify(&mut self) {
        if let Io::Tls(s) = &mut self.io {
            s.conn.send_close_notify();
        }
    }
}

impl Read for SimStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.replayed < self.replay.len() {
            let n = buf.len().min(self.replay.len() - self.replayed);
            buf[..n].copy_from_slice(&self.replay[self.replayed..self.replayed + n]);
            self.replayed += n;
            if self.replayed == self.replay.len() {
                self.replay = Vec::new();
                self.replayed = 0;
            }
            return Ok(n);
        }
        match &mut self.io {
            Io::Plain(s) => s.read(buf),
            Io::Tls(s) => s.read(buf),
        }
    }
}

impl Write for SimStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.io {
            Io::Plain(s) => s.write(buf),
            Io::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.io {
            Io::Plain(s) => s.flush(),
            Io::Tls(s) => s.flush(),
        }
    }
}

/// USD-M route of an upgrade path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Public,
    Market,
    Unrouted,
}

/// Known upgrade paths: (path, route, wrapped in `{"stream":..,"data":..}`).
const PATHS: [(&str, Route, bool); 6] = [
    ("/stream", Route::Unrouted, true),
    ("/ws", Route::Unrouted, false),
    ("/public/stream", Route::Public, true),
    ("/public/ws", Route::Public, false),
    ("/market/stream", Route::Market, true),
    ("/market/ws", Route::Market, false),
];

/// Result of a successful upgrade request.
#[derive(Debug)]
struct Upgrade {
    path: String,
    route: Route,
    wrapped: bool,
    streams: Vec<String>,
}

/// One subscription of a connection.
#[derive(Debug)]
struct Sub {
    name: String,
    sym: usize,
    kind: Kind,
    delivers: bool,
    /// Silenced by [`Fault::Mute`].
    muted: bool,
    /// OKX: the spot instrument (else the swap).
    spot: bool,
    /// Only events generated after this one are delivered (the subscription's
    /// snapshot covers the earlier ones); 0 on Binance.
    min_gen: u64,
}

impl Sub {
    fn from_topic(t: Topic, min_gen: u64) -> Sub {
        Sub {
            name: t.name,
            sym: t.sym,
            kind: t.kind,
            delivers: true,
            muted: false,
            spot: t.spot,
            min_gen,
        }
    }
}

/// Book faults waiting for their message ([`BookFault`]).
#[derive(Debug, Default)]
struct BookFaults {
    skip: u64,
    break_chain: u64,
    cross: u64,
    bad_checksum: u64,
}

fn sent_kind(kind: Kind) -> SentKind {
    match kind {
        Kind::BookTicker => SentKind::Quote,
        Kind::Depth => SentKind::BookUpdate,
        Kind::AggTrade => SentKind::Trade,
        Kind::MarkPrice => SentKind::Mark,
        Kind::Funding => SentKind::Funding,
    }
}

/// Why the serving loop ended, i.e. what is left to do with the socket.
#[derive(Debug)]
enum End {
    /// Simulator shutting down.
    Shutdown,
    /// The peer went away or broke the protocol; just drop.
    Gone,
    /// The client sent a Close frame.
    ClientClose,
    /// Server-initiated close with that code and reason.
    Close(u16, &'static str),
    /// Abrupt reset.
    Reset,
    /// Half-open stall for that long, then a silent drop.
    Stall(Duration),
}

/// Entry point of a connection thread.
pub(crate) fn run(inner: Arc<Inner>, tcp: TcpStream) {
    // Until the upgrade is done, reads block (briefly, so shutdown and the deadline are still
    // seen): each step of the TLS and HTTP handshakes goes on the moment the client's bytes
    // arrive. The connection is non-blocking from then on.
    if tcp.set_nonblocking(false).is_err()
        || tcp.set_read_timeout(Some(HANDSHAKE_READ_WAIT)).is_err()
    {
        return;
    }
    let _ = tcp.set_nodelay(true);
    let io = match &inner.tls {
        Some(cfg) => match ServerConnection::new(Arc::clone(cfg)) {
            Ok(tls) => Io::Tls(Box::new(StreamOwned::new(tls, tcp))),
            Err(_) => return,
        },
        None => Io::Plain(tcp),
    };
    let mut stream = SimStream {
        io,
        replay: Vec::new(),
        replayed: 0,
    };
    // The request head decides: a WebSocket upgrade (or anything that is not
    // HTTP, which the handshake then rejects) is replayed to tungstenite, a
    // plain request is answered by the REST module.
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let Some(head_bytes) = rest::read_head(&inner, &mut stream, deadline) else {
        return;
    };
    match Head::parse(&head_bytes) {
        Some(head) if !head.is_upgrade() => {
            if stream.tcp().set_nonblocking(true).is_ok() {
                rest::serve(&inner, stream, &head);
            }
            return;
        }
        _ => stream.replay = head_bytes,
    }
    let Some((ws, reg)) = handshake(&inner, stream) else {
        return;
    };
    if ws.get_ref().tcp().set_nonblocking(true).is_err() {
        return;
    }
    let venue = inner.cfg.venue;
    let tag = venue::conn_tag(venue, inner.cfg.seed, reg.id.0);
    let now = Instant::now();
    let mut conn = Conn {
        inner,
        id: reg.id,
        ws,
        venue,
        tag,
        route: reg.route,
        wrapped: reg.wrapped,
        subs: reg.subs,
        events: reg.events,
        faults: reg.faults,
        opened: now,
        last_text: now,
        unflushed: 0,
        withhold: 0,
        book_faults: BookFaults::default(),
        muted: Vec::new(),
        pings: VecDeque::new(),
        ping_counter: 0,
    };
    let end = conn.serve();
    conn.finish(end);
}

/// A connection registered when its upgrade request was accepted.
#[derive(Debug)]
struct Registered {
    id: ConnId,
    route: Route,
    wrapped: bool,
    subs: Vec<Sub>,
    events: Receiver<Arc<Event>>,
    faults: Receiver<Injected>,
}

/// Registers an accepted upgrade (before the 101 response is written, so
/// that a client which completed its upgrade is always in the snapshot).
fn register(inner: &Inner, up: Upgrade) -> Registered {
    let (ev_tx, ev_rx) = crossbeam_channel::bounded(EVENT_QUEUE);
    let (fault_tx, fault_rx) = crossbeam_channel::unbounded();
    let subs: Vec<Sub> = up
        .streams
        .iter()
        .filter_map(|name| make_sub(inner, up.route, name))
        .collect();
    let id = inner.update(|st| {
        let id = ConnId(st.next_conn_id);
        st.next_conn_id += 1;
        st.conns.insert(
            id,
            ConnEntry {
                info: ConnInfo {
                    id,
                    path: up.path.clone(),
                    streams: subs.iter().map(|s| s.name.clone()).collect(),
                    open: true,
                    messages_sent: 0,
                    stalled: false,
                    withheld: 0,
                    muted: Vec::new(),
                },
                faults: fault_tx,
            },
        );
        id
    });
    lock(&inner.subscribers).push(Subscriber { id, tx: ev_tx });
    Registered {
        id,
        route: up.route,
        wrapped: up.wrapped,
        subs,
        events: ev_rx,
        faults: fault_rx,
    }
}

/// Marks a connection closed and stops feeding it events.
fn unregister(inner: &Inner, id: ConnId) {
    lock(&inner.subscribers).retain(|s| s.id != id);
    inner.update(|st| {
        if let Some(e) = st.conns.get_mut(&id) {
            e.info.open = false;
            e.info.stalled = false;
        }
    });
}

// ---------------------------------------------------------------------------
// Upgrade

// The callback's error type is dictated by tungstenite's `Callback` trait.
#[allow(clippy::result_large_err)]
fn handshake(inner: &Inner, stream: SimStream) -> Option<(WebSocket<SimStream>, Registered)> {
    let mut registered: Option<Registered> = None;
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let up = decide(inner, req).map_err(|e| *e)?;
        registered = Some(register(inner, up));
        Ok(resp)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE))
        // Never write to the socket eagerly from `write` because of the
        // buffer size: output is bounded by `MAX_PENDING` and handed to the
        // kernel by explicit flushes (ground truth is recorded before that).
        .write_buffer_size(WRITE_BUFFER);
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut attempt = tungstenite::accept_hdr_with_config(stream, callback, Some(config));
    let ws = loop {
        match attempt {
            Ok(ws) => break Some(ws),
            Err(HandshakeError::Interrupted(mid)) => {
                if inner.is_shutdown() || Instant::now() >= deadline {
                    break None;
                }
                thread::sleep(Duration::from_micros(500));
                attempt = mid.handshake();
            }
            // HTTP rejections were already written (and counted) by `decide`;
            // anything else is a broken client. Either way: drop.
            Err(HandshakeError::Failure(_)) => break None,
        }
    };
    match (ws, registered) {
        (Some(ws), Some(reg)) => Some((ws, reg)),
        (_, reg) => {
            if let Some(reg) = reg {
                unregister(inner, reg.id);
            }
            None
        }
    }
}

/// Decides the fate of an upgrade request: a scripted rejection, 404 for an
/// unknown path, 400 for an unknown pre-subscribed stream, else accept.
fn decide(inner: &Inner, req: &Request) -> Result<Upgrade, Box<ErrorResponse>> {
    let scripted = inner.update(|st| {
        let front = st.rejects.front_mut()?;
        front.remaining = front.remaining.saturating_sub(1);
        let r = (front.status, front.retry_after_s);
        if front.remaining == 0 {
            st.rejects.pop_front();
        }
        st.counters.upgrades_rejected += 1;
        Some(r)
    });
    if let Some((status, retry_after)) = scripted {
        let body = match status {
            429 => "Too many requests; current limit is 300 requests per 5 minutes.",
            418 => "Way too many requests; IP banned.",
            401 => "Unauthorized.",
            403 => "Forbidden.",
            503 => "Service unavailable.",
            other => tungstenite::http::StatusCode::from_u16(other)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Rejected."),
        };
        return Err(http_error(status, retry_after, body));
    }

    let reject = |status: u16, body: String| {
        inner.update(|st| st.counters.upgrades_rejected += 1);
        http_error(status, None, &body)
    };

    let path = req.uri().path();
    if let Some(ws_path) = inner.cfg.venue.ws_path() {
        // Bybit / OKX: one path, no subscriptions in the URL.
        if path != ws_path {
            return Err(reject(404, format!("Not found: {path}")));
        }
        return Ok(Upgrade {
            path: path.to_string(),
            route: Route::Unrouted,
            wrapped: false,
            streams: Vec::new(),
        });
    }
    let mut streams: Vec<String> = Vec::new();
    let known = PATHS
        .iter()
        .find(|(p, _, _)| *p == path)
        .copied()
        .or_else(|| {
            // Raw form: /ws/<stream>/<stream>... (and the routed variants).
            PATHS
                .iter()
                .filter(|(_, _, wrapped)| !wrapped)
                .find_map(|&(p, r, w)| {
                    let tail = path.strip_prefix(p)?.strip_prefix('/')?;
                    streams.extend(
                        tail.split('/')
                            .filter(|s| !s.is_empty())
                            .map(percent_decode),
                    );
                    Some((p, r, w))
                })
        });
    let Some((base, route, wrapped)) = known else {
        return Err(reject(404, format!("Not found: {path}")));
    };
    if let Some(query) = req.uri().query() {
        for pair in query.split('&') {
            if let Some(list) = pair.strip_prefix("streams=") {
                let decoded = percent_decode(list);
                streams.extend(
                    decoded
                        .split('/')
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                );
            }
        }
    }
    let mut normalized = Vec::with_capacity(streams.len());
    for s in &streams {
        match parse_stream(&inner.cfg.symbols, s) {
            Some((_, _, name)) => {
                if !normalized.contains(&name) {
                    normalized.push(name);
                }
            }
            None => {
                return Err(reject(
                    400,
                    format!("Invalid request: unknown stream '{s}'"),
                ))
            }
        }
    }
    Ok(Upgrade {
        path: base.to_string(),
        route,
        wrapped,
        streams: normalized,
    })
}

fn http_error(status: u16, retry_after_s: Option<u32>, body: &str) -> Box<ErrorResponse> {
    let mut builder = tungstenite::http::Response::builder()
        .status(status)
        .header("Content-Type", "text/plain")
        .header("Content-Length", body.len())
        .header("Connection", "close");
    if let Some(secs) = retry_after_s {
        builder = builder.header("Retry-After", secs);
    }
    let resp = builder.body(Some(body.to_string())).unwrap_or_else(|_| {
        let mut r = ErrorResponse::new(Some(body.to_string()));
        *r.status_mut() = tungstenite::http::StatusCode::INTERNAL_SERVER_ERROR;
        r
    });
    Box::new(resp)
}

/// Decodes `%XX` escapes (invalid escapes are kept verbatim).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a stream name: `(symbol index, kind, normalised name)` where the
/// normalised name has a lowercase symbol. `None` if unknown.
pub(crate) fn parse_stream(symbols: &[String], name: &str) -> Option<(usize, Kind, String)> {
    let (sym, rest) = name.split_once('@')?;
    let idx = symbols.iter().position(|s| s.eq_ignore_ascii_case(sym))?;
    let kind = match rest {
        "bookTicker" => Kind::BookTicker,
        "aggTrade" => Kind::AggTrade,
        "depth" | "depth@100ms" => Kind::Depth,
        "markPrice" | "markPrice@1s" => Kind::MarkPrice,
        _ => return None,
    };
    Some((idx, kind, format!("{}@{}", sym.to_ascii_lowercase(), rest)))
}

fn delivers(inner: &Inner, route: Route, kind: Kind) -> bool {
    if !inner.cfg.usdm_routing {
        return true;
    }
    match route {
        Route::Public | Route::Unrouted => kind.is_public(),
        Route::Market => !kind.is_public(),
    }
}

fn make_sub(inner: &Inner, route: Route, name: &str) -> Option<Sub> {
    let (sym, kind, name) = parse_stream(&inner.cfg.symbols, name)?;
    Some(Sub {
        name,
        sym,
        kind,
        delivers: delivers(inner, route, kind),
        muted: false,
        spot: false,
        min_gen: 0,
    })
}

fn is_would_block(e: &WsError) -> bool {
    matches!(e, WsError::Io(io) if io.kind() == io::ErrorKind::WouldBlock)
}

// ---------------------------------------------------------------------------
// Serving

struct Conn {
    inner: Arc<Inner>,
    id: ConnId,
    ws: WebSocket<SimStream>,
    venue: SimVenue,
    /// The venue's connection id (Bybit `conn_id`, OKX `connId`).
    tag: String,
    route: Route,
    wrapped: bool,
    subs: Vec<Sub>,
    events: Receiver<Arc<Event>>,
    faults: Receiver<Injected>,
    /// When the upgrade completed (for [`SimConfig::max_conn_age`](super::config::SimConfig::max_conn_age)).
    opened: Instant,
    /// When the client last sent a text frame (for
    /// [`SimConfig::idle_timeout`](super::config::SimConfig::idle_timeout)).
    last_text: Instant,
    /// Data messages written to the WebSocket since the last complete flush.
    unflushed: usize,
    /// Data messages still to withhold ([`Fault::DropNext`]).
    withhold: u64,
    /// [`BookFault`]s waiting for their message.
    book_faults: BookFaults,
    /// Streams muted by [`Fault::Mute`] (normalised names).
    muted: Vec<String>,
    /// Outstanding server pings: (payload, deadline), deadlines in
    /// non-decreasing order (so the front holds the earliest).
    pings: VecDeque<(Bytes, Instant)>,
    ping_counter: u64,
}

impl Conn {
    fn serve(&mut self) -> End {
        loop {
            if self.inner.is_shutdown() {
                return End::Shutdown;
            }
            while let Ok(fault) = self.faults.try_recv() {
                let applied = match fault {
                    Injected::Std(f) => self.apply(f),
                    Injected::Book(f) => {
                        self.apply_book(f);
                        Ok(())
                    }
                };
                if let Err(end) = applied {
                    return end;
                }
            }
            let now = Instant::now();
            if self
                .pings
                .front()
                .is_some_and(|(_, deadline)| now >= *deadline)
            {
                return End::Close(1008, "pong timeout");
            }
            if let Some(max_age) = self.inner.cfg.max_conn_age {
                if now.saturating_duration_since(self.opened) >= max_age {
                    self.inner.update(|st| st.counters.age_closes += 1);
                    return End::Close(1001, "max connection age");
                }
            }
            if self.venue != SimVenue::Binance {
                if let Some(idle) = self.inner.cfg.idle_timeout {
                    if now.saturating_duration_since(self.last_text) >= idle {
                        self.inner.update(|st| st.counters.idle_closes += 1);
                        return End::Close(1001, "idle timeout");
                    }
                }
            }
            if let Err(end) = self.pump_events() {
                return end;
            }
            if let Err(end) = self.flush() {
                return end;
            }
            if let Err(end) = self.read_client() {
                return end;
            }
        }
    }

    /// Waits (briefly) for events and writes the subscribed ones.
    fn pump_events(&mut self) -> Result<(), End> {
        if self.unflushed >= MAX_PENDING {
            // The client is not reading; do not buffer without bound.
            thread::sleep(IDLE_WAIT);
            return Ok(());
        }
        let first = match self.events.recv_timeout(IDLE_WAIT) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => return Ok(()),
            Err(RecvTimeoutError::Disconnected) => {
                thread::sleep(IDLE_WAIT);
                return Ok(());
            }
        };
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match self.events.try_recv() {
                Ok(ev) => batch.push(ev),
                Err(_) => break,
            }
        }
        self.deliver(&batch)
    }

    /// Writes the subscribed, unmuted messages of `events`, withholding as
    /// many as [`Fault::DropNext`] and [`BookFault::SkipSeq`] ask for and
    /// rendering the faulty variants other [`BookFault`]s ask for. Each
    /// written message is recorded as ground truth *before* it is handed to
    /// the WebSocket: tungstenite's `write` flushes everything buffered when a
    /// pong or close reply is queued, so recording after the write could let a
    /// client read a message that `Sim::sent` does not list yet.
    fn deliver(&mut self, events: &[Arc<Event>]) -> Result<(), End> {
        let Conn {
            inner,
            id,
            ws,
            venue,
            wrapped,
            subs,
            withhold,
            book_faults,
            unflushed,
            ..
        } = self;
        let venue = *venue;
        let mut sent = inner.cfg.record.then(|| lock(&inner.sent));
        let (mut written, mut withheld) = (0u64, 0u64);
        let mut result = Ok(());
        'events: for ev in events {
            for sub in subs.iter() {
                if sub.sym != ev.sym
                    || sub.kind != ev.kind
                    || !sub.delivers
                    || sub.muted
                    || ev.gen <= sub.min_gen
                {
                    continue;
                }
                let base = if sub.spot {
                    match ev.spot_payload.as_ref() {
                        Some(p) => p,
                        None => continue,
                    }
                } else {
                    &ev.payload
                };
                if *withhold > 0 {
                    *withhold -= 1;
                    withheld += 1;
                    continue;
                }
                if ev.kind.is_book() && book_faults.skip > 0 {
                    book_faults.skip -= 1;
                    withheld += 1;
                    continue;
                }
                let (mut seq, mut prev_seq) = (ev.seq, ev.prev_seq);
                let faulty = ev
                    .book
                    .as_deref()
                    .and_then(|msg| faulty_book(venue, book_faults, msg))
                    .map(|msg| {
                        seq = msg.last_id;
                        prev_seq = msg.prev_id;
                        super::render::book(venue, &inner.info[ev.sym], &msg, sub.spot)
                    });
                let payload = faulty.as_deref().unwrap_or(base);
                let text = if *wrapped {
                    format!(r#"{{"stream":"{}","data":{}}}"#, sub.name, payload)
                } else {
                    payload.to_string()
                };
                if let Some(sent) = sent.as_mut() {
                    sent.push(SentRecord {
                        conn: *id,
                        stream: sub.name.clone(),
                        seq,
                        prev_seq,
                        kind: sent_kind(ev.kind),
                        event_time_ms: ev.event_time_ms,
                    });
                }
                written += 1;
                match ws.write(Message::text(text)) {
                    Ok(()) => {}
                    Err(e) if is_would_block(&e) => {}
                    Err(_) => {
                        result = Err(End::Gone);
                        break 'events;
                    }
                }
            }
        }
        drop(sent);
        *unflushed += written as usize;
        let id = *id;
        if withheld > 0 {
            inner.update(|st| {
                st.counters.messages_sent += written;
                st.counters.withheld += withheld;
                if let Some(e) = st.conns.get_mut(&id) {
                    e.info.messages_sent += written;
                    e.info.withheld += withheld;
                }
            });
        } else if written > 0 {
            inner.update_quiet(|st| {
                st.counters.messages_sent += written;
                if let Some(e) = st.conns.get_mut(&id) {
                    e.info.messages_sent += written;
                }
            });
        }
        result
    }

    /// Sends a subscription snapshot as a data message of `stream` (recorded,
    /// subject to [`Fault::DropNext`], not to book faults).
    fn send_snapshot(&mut self, stream: &str, kind: Kind, snap: Snap) -> Result<(), End> {
        let id = self.id;
        if self.withhold > 0 {
            self.withhold -= 1;
            self.inner.update(|st| {
                st.counters.withheld += 1;
                if let Some(e) = st.conns.get_mut(&id) {
                    e.info.withheld += 1;
                }
            });
            return Ok(());
        }
        if self.inner.cfg.record {
            lock(&self.inner.sent).push(SentRecord {
                conn: id,
                stream: stream.to_string(),
                seq: snap.seq,
                prev_seq: snap.prev_seq,
                kind: if snap.full_book {
                    SentKind::BookSnapshot
                } else {
                    sent_kind(kind)
                },
                event_time_ms: snap.event_time_ms,
            });
        }
        self.inner.update_quiet(|st| {
            st.counters.messages_sent += 1;
            if let Some(e) = st.conns.get_mut(&id) {
                e.info.messages_sent += 1;
            }
        });
        self.unflushed += 1;
        match self.ws.write(Message::text(snap.payload)) {
            Ok(()) => Ok(()),
            Err(e) if is_would_block(&e) => Ok(()),
            Err(_) => Err(End::Gone),
        }
    }

    /// Flushes the WebSocket (a full socket buffer is not an error: the rest
    /// goes out on a later flush).
    fn flush(&mut self) -> Result<(), End> {
        match self.ws.flush() {
            Ok(()) => {
                self.unflushed = 0;
                Ok(())
            }
            Err(e) if is_would_block(&e) => Ok(()),
            Err(_) => Err(End::Gone),
        }
    }

    /// Pushes everything buffered (after queueing `close`, if given) into the
    /// kernel, retrying on a full socket for a short grace period. True if
    /// everything was handed over.
    fn drain_out(&mut self, mut close: Option<CloseFrame>) -> bool {
        let deadline = Instant::now() + FLUSH_GRACE;
        loop {
            let queued = match close.take() {
                Some(frame) => self.ws.close(Some(frame)),
                None => self.ws.flush(),
            };
            // `ConnectionClosed` from a server-side flush after the client's
            // Close means "everything written, now terminated".
            let flushed = match queued {
                Ok(()) | Err(WsError::ConnectionClosed) => {
                    self.ws.get_mut().flush().map_err(WsError::Io)
                }
                Err(e) => Err(e),
            };
            match flushed {
                Ok(()) => {
                    self.unflushed = 0;
                    return true;
                }
                Err(e) if is_would_block(&e) => {}
                Err(_) => return false,
            }
            if Instant::now() >= deadline || self.inner.is_shutdown() {
                return false;
            }
            thread::sleep(Duration::from_micros(200));
        }
    }

    /// Writes one non-data message (reply or fault frame; never recorded)
    /// and flushes.
    fn send_message(&mut self, msg: Message) -> Result<(), End> {
        match self.ws.write(msg) {
            Ok(()) => {}
            Err(e) if is_would_block(&e) => {}
            Err(_) => return Err(End::Gone),
        }
        self.flush()
    }

    fn send_text(&mut self, text: String) -> Result<(), End> {
        self.send_message(Message::text(text))
    }

    /// Reads everything the client has sent so far (also while output waits
    /// for a writable socket: ground truth does not depend on flushes, and
    /// pongs and Close frames must be seen even when the client reads slowly).
    fn read_client(&mut self) -> Result<(), End> {
        loop {
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    self.last_text = Instant::now();
                    self.on_request(text.as_str())?
                }
                Ok(Message::Pong(payload)) => self.on_pong(&payload),
                Ok(Message::Close(_)) => return Err(End::ClientClose),
                // Pings are answered by tungstenite on the next read/flush.
                Ok(Message::Ping(_)) | Ok(Message::Binary(_)) | Ok(Message::Frame(_)) => {}
                Err(e) if is_would_block(&e) => return Ok(()),
                Err(_) => return Err(End::Gone),
            }
        }
    }

    fn on_pong(&mut self, payload: &[u8]) {
        // Payloads are distinct; pongs usually come in ping order, so the
        // match is normally at the front.
        if let Some(pos) = self.pings.iter().position(|(p, _)| p.as_ref() == payload) {
            self.pings.remove(pos);
            self.inner.update(|st| st.counters.pongs_received += 1);
        }
    }

    fn on_request(&mut self, text: &str) -> Result<(), End> {
        match self.venue {
            SimVenue::Binance => self.on_binance(text),
            SimVenue::BybitSpot | SimVenue::BybitLinear => self.on_bybit(text),
            SimVenue::Okx => self.on_okx(text),
        }
    }

    /// Counts a subscribe request; true if [`Fault::IgnoreSubscribe`] eats it.
    fn subscribe_ignored(&self) -> bool {
        self.inner.update(|st| {
            st.counters.subscribe_requests += 1;
            let ignore = st.ignore_subscribes > 0;
            if ignore {
                st.ignore_subscribes -= 1;
                st.counters.subscribes_ignored += 1;
            }
            ignore
        })
    }

    /// Subscriptions for `topics` with their snapshots, taken atomically with
    /// respect to the generator.
    fn snapshot_subs(&self, topics: Vec<Topic>) -> Vec<(Sub, Option<Snap>)> {
        let e_ms = now_ms();
        let market = lock(&self.inner.market);
        topics
            .into_iter()
            .map(|t| {
                let snap = market.snapshot(t.sym, t.kind, t.spot, e_ms);
                let gen = snap.as_ref().map_or_else(|| market.gen(), |s| s.gen);
                let mut sub = Sub::from_topic(t, gen);
                sub.muted = self.muted.contains(&sub.name);
                (sub, snap)
            })
            .collect()
    }

    fn bybit_reply(
        &self,
        success: bool,
        ret_msg: &str,
        req_id: Option<&Value>,
        op: &str,
    ) -> String {
        venue::bybit_reply(self.venue, success, ret_msg, &self.tag, req_id, op)
    }

    /// Bybit v5 public: `{"op":"ping"}`, `{"op":"subscribe","args":[…]}`,
    /// `{"op":"unsubscribe","args":[…]}`, each with an optional `req_id`.
    fn on_bybit(&mut self, text: &str) -> Result<(), End> {
        let req: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                let reply = self.bybit_reply(false, "error:request is not a JSON object", None, "");
                return self.send_text(reply);
            }
        };
        let req_id = req.get("req_id").filter(|v| !v.is_null()).cloned();
        let op = req
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match op.as_str() {
            "ping" => {
                self.inner.update(|st| st.counters.venue_pings += 1);
                let reply = self.bybit_reply(true, "pong", req_id.as_ref(), "ping");
                self.send_text(reply)
            }
            "subscribe" | "unsubscribe" => {
                let subscribe = op == "subscribe";
                if subscribe && self.subscribe_ignored() {
                    return Ok(());
                }
                let fail = |me: &Self, msg: &str| me.bybit_reply(false, msg, req_id.as_ref(), &op);
                let Ok(names) = string_list(req.get("args")) else {
                    let reply = fail(self, "error:args must be an array of strings");
                    return self.send_text(reply);
                };
                if subscribe
                    && self.venue == SimVenue::BybitSpot
                    && names.len() > BYBIT_SPOT_MAX_ARGS
                {
                    let reply = fail(self, "args size >10");
                    return self.send_text(reply);
                }
                let ok_msg = if self.venue == SimVenue::BybitSpot {
                    op.as_str()
                } else {
                    ""
                };
                if !subscribe {
                    self.subs.retain(|s| !names.contains(&s.name));
                    self.publish_streams();
                    let reply = self.bybit_reply(true, ok_msg, req_id.as_ref(), &op);
                    return self.send_text(reply);
                }
                let mut topics: Vec<Topic> = Vec::with_capacity(names.len());
                for name in &names {
                    let Some(topic) = venue::parse_bybit(&self.inner.info, name) else {
                        let reply = fail(self, &format!("error:handler not found,topic:{name}"));
                        return self.send_text(reply);
                    };
                    if self.subs.iter().any(|s| s.name == topic.name)
                        || topics.iter().any(|t| t.name == topic.name)
                    {
                        let reply = fail(self, &format!("error:already subscribed,topic:{name}"));
                        return self.send_text(reply);
                    }
                    topics.push(topic);
                }
                let subs = self.snapshot_subs(topics);
                let reply = self.bybit_reply(true, ok_msg, req_id.as_ref(), &op);
                self.send_text(reply)?;
                for (sub, snap) in subs {
                    let (name, kind) = (sub.name.clone(), sub.kind);
                    let muted = sub.muted;
                    self.subs.push(sub);
                    if let (Some(snap), false) = (snap, muted) {
                        self.send_snapshot(&name, kind, snap)?;
                    }
                }
                self.publish_streams();
                self.flush()
            }
            other => {
                let reply = self.bybit_reply(
                    false,
                    &format!("error:unsupported op:{other}"),
                    req_id.as_ref(),
                    other,
                );
                self.send_text(reply)
            }
        }
    }

    /// OKX v5 public: the text `ping`, `{"op":"subscribe"|"unsubscribe",
    /// "args":[{"channel":…,"instId":…},…]}` with an optional `id`; one event
    /// per argument.
    fn on_okx(&mut self, text: &str) -> Result<(), End> {
        if text == "ping" {
            self.inner.update(|st| st.counters.venue_pings += 1);
            return self.send_text("pong".to_string());
        }
        let invalid = |me: &Self, id: Option<&str>| {
            venue::okx_error(id, "60012", &format!("Invalid request: {text}"), &me.tag)
        };
        let req: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                let reply = invalid(self, None);
                return self.send_text(reply);
            }
        };
        let id = req.get("id").and_then(Value::as_str).map(String::from);
        let id = id.as_deref();
        let op = req.get("op").and_then(Value::as_str).unwrap_or("");
        let subscribe = match op {
            "subscribe" => true,
            "unsubscribe" => false,
            _ => {
                let reply = invalid(self, id);
                return self.send_text(reply);
            }
        };
        if subscribe && self.subscribe_ignored() {
            return Ok(());
        }
        let Some(args) = req
            .get("args")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
        else {
            let reply = invalid(self, id);
            return self.send_text(reply);
        };
        let args: Vec<(String, String)> = args
            .iter()
            .map(|a| {
                let field = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                (field("channel"), field("instId"))
            })
            .collect();
        for (channel, inst) in args {
            let Some(topic) = venue::parse_okx(&self.inner.info, &channel, &inst) else {
                let msg = venue::okx_not_found(&channel, &inst);
                let reply = venue::okx_error(id, "60018", &msg, &self.tag);
                self.send_text(reply)?;
                continue;
            };
            let event = if subscribe {
                "subscribe"
            } else {
                "unsubscribe"
            };
            self.subs.retain(|s| s.name != topic.name);
            let reply = venue::okx_event(event, id, &channel, &inst, &self.tag);
            self.send_text(reply)?;
            if subscribe {
                // Subscribing again starts the channel afresh (new snapshot).
                for (sub, snap) in self.snapshot_subs(vec![topic]) {
                    let (name, kind, muted) = (sub.name.clone(), sub.kind, sub.muted);
                    self.subs.push(sub);
                    if let (Some(snap), false) = (snap, muted) {
                        self.send_snapshot(&name, kind, snap)?;
                    }
                }
            }
        }
        self.publish_streams();
        self.flush()
    }

    /// Binance: `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`,
    /// `SET_PROPERTY`, `GET_PROPERTY`.
    fn on_binance(&mut self, text: &str) -> Result<(), End> {
        let req: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return self.send_text(error_reply(3, &format!("Invalid JSON: {e}"), &Value::Null));
            }
        };
        let id = req.get("id").cloned().unwrap_or(Value::Null);
        let method = req.get("method").and_then(Value::as_str).unwrap_or("");
        match method {
            "SUBSCRIBE" => {
                if self.subscribe_ignored() {
                    // Fault::IgnoreSubscribe: no ack, no error, no data.
                    return Ok(());
                }
                let names = match string_params(&req) {
                    Ok(n) => n,
                    Err(msg) => return self.send_text(error_reply(1, &msg, &id)),
                };
                let mut new_subs = Vec::with_capacity(names.len());
                for name in &names {
                    match make_sub(&self.inner, self.route, name) {
                        Some(sub) => new_subs.push(sub),
                        None => {
                            let msg = format!("Invalid request: unknown stream '{name}'");
                            return self.send_text(error_reply(2, &msg, &id));
                        }
                    }
                }
                for mut sub in new_subs {
                    if !self.subs.iter().any(|s| s.name == sub.name) {
                        sub.muted = self.muted.contains(&sub.name);
                        self.subs.push(sub);
                    }
                }
                self.publish_streams();
                self.send_text(result_reply("null", &id))
            }
            "UNSUBSCRIBE" => {
                let names = match string_params(&req) {
                    Ok(n) => n,
                    Err(msg) => return self.send_text(error_reply(1, &msg, &id)),
                };
                let symbols = &self.inner.cfg.symbols;
                let drop: Vec<String> = names
                    .iter()
                    .map(|n| parse_stream(symbols, n).map_or_else(|| n.clone(), |(_, _, n)| n))
                    .collect();
                self.subs.retain(|s| !drop.contains(&s.name));
                self.publish_streams();
                self.send_text(result_reply("null", &id))
            }
            "LIST_SUBSCRIPTIONS" => {
                let names: Vec<&str> = self.subs.iter().map(|s| s.name.as_str()).collect();
                let list = serde_json::to_string(&names).unwrap_or_else(|_| "[]".into());
                self.send_text(result_reply(&list, &id))
            }
            "SET_PROPERTY" => self.send_text(result_reply("null", &id)),
            "GET_PROPERTY" => {
                let combined = if self.wrapped { "true" } else { "false" };
                self.send_text(result_reply(combined, &id))
            }
            other => {
                let msg = format!("Invalid request: unknown method '{other}'");
                self.send_text(error_reply(2, &msg, &id))
            }
        }
    }

    fn publish_streams(&self) {
        let names: Vec<String> = self.subs.iter().map(|s| s.name.clone()).collect();
        let id = self.id;
        self.inner.update(|st| {
            if let Some(e) = st.conns.get_mut(&id) {
                e.info.streams = names;
            }
        });
    }

    fn count_fault(&self) {
        self.inner.update(|st| st.counters.faults_injected += 1);
    }

    /// Applies a connection fault; `Err` ends the serving loop.
    fn apply(&mut self, fault: Fault) -> Result<(), End> {
        match fault {
            Fault::Close { code } => {
                self.count_fault();
                Err(End::Close(code, "sim close"))
            }
            Fault::Reset => {
                self.count_fault();
                Err(End::Reset)
            }
            Fault::Stall { duration } => {
                let id = self.id;
                self.inner.update(|st| {
                    st.counters.faults_injected += 1;
                    if let Some(e) = st.conns.get_mut(&id) {
                        e.info.stalled = true;
                    }
                });
                Err(End::Stall(duration))
            }
            Fault::Malformed => {
                self.count_fault();
                self.send_text(MALFORMED.to_string())
            }
            Fault::ServerPing => self.send_pings(1),
            Fault::PingFlood { count } => self.send_pings(count.min(MAX_PING_FLOOD)),
            Fault::Oversized { bytes } => {
                self.count_fault();
                let text = self.padding_frame(bytes);
                self.send_text(text)
            }
            Fault::Binary => {
                self.count_fault();
                self.send_message(Message::Binary(Bytes::from_static(&BINARY)))
            }
            Fault::UnknownMessage => {
                self.count_fault();
                self.send_text(UNKNOWN_MESSAGE.to_string())
            }
            Fault::DropNext { count } => {
                self.withhold = self.withhold.saturating_add(u64::from(count));
                self.count_fault();
                Ok(())
            }
            Fault::Mute { stream } => {
                let name = match self.venue {
                    SimVenue::Binance => parse_stream(&self.inner.cfg.symbols, &stream)
                        .map_or(stream, |(_, _, normalised)| normalised),
                    venue => venue::normalise(&self.inner.info, venue, &stream),
                };
                for sub in self.subs.iter_mut().filter(|s| s.name == name) {
                    sub.muted = true;
                }
                if !self.muted.contains(&name) {
                    self.muted.push(name);
                }
                let (id, muted) = (self.id, self.muted.clone());
                self.inner.update(|st| {
                    st.counters.faults_injected += 1;
                    if let Some(e) = st.conns.get_mut(&id) {
                        e.info.muted = muted;
                    }
                });
                Ok(())
            }
            // Listener faults never reach a connection.
            Fault::Refuse { .. }
            | Fault::Http429 { .. }
            | Fault::Http503 { .. }
            | Fault::Reject { .. }
            | Fault::IgnoreSubscribe { .. } => Ok(()),
        }
    }

    /// Arms a [`BookFault`] (counted as applied).
    fn apply_book(&mut self, fault: BookFault) {
        let f = &mut self.book_faults;
        match fault {
            BookFault::SkipSeq => f.skip += 1,
            BookFault::BreakChain => f.break_chain += 1,
            BookFault::CrossBook => f.cross += 1,
            BookFault::BadChecksum => f.bad_checksum += 1,
            // Listener-level: never sent to a connection.
            BookFault::SnapshotStale => return,
        }
        self.count_fault();
    }

    /// Sends `count` pings with distinct payloads back to back (one fault),
    /// each with its own pong deadline.
    fn send_pings(&mut self, count: u32) -> Result<(), End> {
        let deadline = Instant::now() + PONG_TIMEOUT;
        let mut sent = 0u64;
        let mut result = Ok(());
        for _ in 0..count {
            self.ping_counter += 1;
            let payload = Bytes::from(format!("sim-ping-{}-{}", self.id.0, self.ping_counter));
            match self.ws.write(Message::Ping(payload.clone())) {
                Ok(()) => {}
                Err(e) if is_would_block(&e) => {}
                Err(_) => {
                    result = Err(End::Gone);
                    break;
                }
            }
            self.pings.push_back((payload, deadline));
            sent += 1;
        }
        self.inner.update(|st| {
            st.counters.faults_injected += 1;
            st.counters.pings_sent += sent;
        });
        result?;
        self.flush()
    }

    /// The [`Fault::Oversized`] frame: valid JSON of exactly
    /// `max(bytes, envelope size)` bytes (`bytes` capped at
    /// [`MAX_OVERSIZED`]), in the envelope of the first subscribed stream
    /// (preferring one that delivers) on combined-stream paths.
    fn padding_frame(&self, bytes: usize) -> String {
        let head = if self.wrapped {
            let stream = self
                .subs
                .iter()
                .find(|s| s.delivers && !s.muted)
                .or_else(|| self.subs.first())
                .map(|s| s.name.clone())
                .unwrap_or_else(|| {
                    let sym = self
                        .inner
                        .cfg
                        .symbols
                        .first()
                        .map_or("btcusdt".into(), |s| s.to_ascii_lowercase());
                    format!("{sym}@bookTicker")
                });
            let stream = json_str(&stream);
            format!(r#"{{"stream":{stream},"data":{{"e":"padding","pad":""#)
        } else {
            r#"{"e":"padding","pad":""#.to_string()
        };
        let tail = if self.wrapped { r#""}}"# } else { r#""}"# };
        let pad = bytes
            .min(MAX_OVERSIZED)
            .saturating_sub(head.len() + tail.len());
        let mut text = String::with_capacity(head.len() + pad + tail.len());
        text.push_str(&head);
        text.extend(std::iter::repeat_n('x', pad));
        text.push_str(tail);
        text
    }

    // -----------------------------------------------------------------------
    // Endings

    fn finish(mut self, end: End) {
        match end {
            End::Shutdown => {
                // Best effort: tell the client we are going away, don't wait.
                self.drain_out(Some(CloseFrame {
                    code: CloseCode::Away,
                    reason: "sim shutdown".into(),
                }));
            }
            End::Gone => {}
            End::ClientClose => {
                // Queues nothing new: the reply to the client's Close is
                // already queued behind the data written before it.
                self.drain_out(None);
            }
            End::Close(code, reason) => self.finish_server_close(code, reason),
            End::Reset => {
                let _ = SockRef::from(self.ws.get_ref().tcp()).set_linger(Some(Duration::ZERO));
            }
            End::Stall(duration) => self.stall(duration),
        }
        self.unregister();
        // Dropping `self` closes the socket.
    }

    /// Server-initiated close: Close frame, wait for the client's reply (or
    /// a timeout), then close TCP.
    fn finish_server_close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        if !self.drain_out(Some(frame)) {
            return;
        }
        self.mark_closed();
        let deadline = Instant::now() + CLOSE_LINGER;
        while Instant::now() < deadline && !self.inner.is_shutdown() {
            match self.ws.read() {
                Ok(_) => {}
                Err(e) if is_would_block(&e) => thread::sleep(IDLE_WAIT),
                Err(_) => break,
            }
        }
    }

    /// Half-open stall: neither read nor write for `duration`, discarding
    /// events, then a silent drop (FIN, no close frame).
    fn stall(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while !self.inner.is_shutdown() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            while self.events.try_recv().is_ok() {}
            match self
                .faults
                .recv_timeout((deadline - now).min(Duration::from_millis(5)))
            {
                Ok(Injected::Std(Fault::Reset)) => {
                    self.count_fault();
                    let _ = SockRef::from(self.ws.get_ref().tcp()).set_linger(Some(Duration::ZERO));
                    return;
                }
                // Other faults are swallowed by the stall.
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => thread::sleep(IDLE_WAIT),
            }
        }
        // Discard what the client sent meanwhile (unread data at close time
        // would turn the FIN into an RST), then send FIN.
        let tcp = self.ws.get_ref().tcp();
        let mut buf = [0u8; 4096];
        let mut reader = tcp;
        while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
        let _ = tcp.shutdown(Shutdown::Write);
    }

    fn mark_closed(&self) {
        let id = self.id;
        self.inner.update(|st| {
            if let Some(e) = st.conns.get_mut(&id) {
                e.info.open = false;
                e.info.stalled = false;
            }
        });
    }

    fn unregister(&self) {
        unregister(&self.inner, self.id);
    }
}

/// The faulty variant of a book message, if a pending [`BookFault`] applies
/// to it (consuming that fault).
fn faulty_book(
    venue: SimVenue,
    faults: &mut BookFaults,
    msg: &super::render::BookMsg,
) -> Option<super::render::BookMsg> {
    let chained = msg.kind == Kind::Depth || (msg.kind == Kind::BookTicker && venue.is_bybit());
    let brk = faults.break_chain > 0 && chained;
    let cross = faults.cross > 0;
    let bad_cs = faults.bad_checksum > 0 && venue == SimVenue::Okx && msg.kind == Kind::Depth;
    if !(brk || cross || bad_cs) {
        return None;
    }
    let mut m = msg.clone();
    if brk {
        faults.break_chain -= 1;
        match venue {
            SimVenue::Binance => {
                m.first_id += 1;
                m.prev_id = m.prev_id.map(|p| p + 1);
            }
            SimVenue::BybitSpot | SimVenue::BybitLinear => m.last_id += BYBIT_U_JUMP,
            SimVenue::Okx => m.prev_id = m.prev_id.map(|p| p.saturating_sub(1)),
        }
    }
    if cross {
        faults.cross -= 1;
        match m.kind {
            Kind::Depth => {
                if let Some(ask) = m.best_ask {
                    m.bids.retain(|&(p, _)| p != ask);
                    m.bids.insert(0, (ask, 1000));
                }
            }
            _ => {
                if let Some(&(ask, _)) = m.asks.first() {
                    let q = m.bids.first().map_or(1000, |b| b.1);
                    m.bids = vec![(ask, q)];
                }
            }
        }
    }
    if bad_cs {
        faults.bad_checksum -= 1;
        let wrong = m.checksum ^ 0x0101_0101;
        m.checksum = if wrong == 0 { 1 } else { wrong };
    }
    Some(m)
}

/// A JSON array of strings (`None` / `null`: empty).
fn string_list(v: Option<&Value>) -> Result<Vec<String>, ()> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(String::from).ok_or(()))
            .collect(),
        Some(_) => Err(()),
    }
}

fn string_params(req: &Value) -> Result<Vec<String>, String> {
    let params = match req.get("params") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("Invalid value type: expected Vec<String>".into()),
    };
    params
        .iter()
        .map(|p| {
            p.as_str()
                .map(String::from)
                .ok_or_else(|| "Invalid value type: expected Vec<String>".to_string())
        })
        .collect()
}

fn result_reply(result_json: &str, id: &Value) -> String {
    format!(r#"{{"result":{},"id":{}}}"#, result_json, json_val(id))
}

fn error_reply(code: i32, msg: &str, id: &Value) -> String {
    format!(
        r#"{{"error":{{"code":{},"msg":{}}},"id":{}}}"#,
        code,
        json_str(msg),
        json_val(id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_stream_names() {
        let syms = vec!["BTCUSDT".to_string(), "ETHUSDT".to_string()];
        assert_eq!(
            parse_stream(&syms, "btcusdt@bookTicker").map(|x| x.1),
            Some(Kind::BookTicker)
        );
        assert_eq!(
            parse_stream(&syms, "ETHUSDT@depth@100ms").map(|x| x.2),
            Some("ethusdt@depth@100ms".to_string())
        );
        assert!(parse_stream(&syms, "ethusdt@markPrice@1s").is_some());
        assert!(parse_stream(&syms, "xrpusdt@bookTicker").is_none());
        assert!(parse_stream(&syms, "btcusdt@kline_1m").is_none());
        assert!(parse_stream(&syms, "btcusdt").is_none());
        assert!(parse_stream(&syms, "").is_none());
    }

    #[test]
    fn replies_are_binance_shaped() {
        assert_eq!(
            result_reply("null", &Value::from(1)),
            r#"{"result":null,"id":1}"#
        );
        assert_eq!(
            error_reply(2, "Invalid request: unknown stream 'x'", &Value::from(7)),
            r#"{"error":{"code":2,"msg":"Invalid request: unknown stream 'x'"},"id":7}"#
        );
        assert_eq!(
            percent_decode("btcusdt%40bookTicker%2"),
            "btcusdt@bookTicker%2"
        );
        assert_eq!(percent_decode("%"), "%");
    }
}
