//! One simulator-side connection: upgrade handshake (with scripted HTTP
//! rejections), the Binance request/response protocol, data delivery with
//! ground-truth recording, and connection faults.
//!
//! The socket is non-blocking. The thread waits up to [`IDLE_WAIT`] on its
//! event channel, writes what the client is subscribed to, flushes, then
//! drains whatever the client sent. Nothing a client sends can panic it.

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

use super::market::{Event, Kind};
use super::{lock, ConnEntry, ConnId, ConnInfo, Fault, Inner, SentRecord, Subscriber};

/// Longest wait on the event channel before servicing the socket again.
const IDLE_WAIT: Duration = Duration::from_millis(1);
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

/// The server side of a connection, plain or TLS.
#[derive(Debug)]
pub(crate) enum SimStream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl SimStream {
    fn tcp(&self) -> &TcpStream {
        match self {
            SimStream::Plain(s) => s,
            SimStream::Tls(s) => &s.sock,
        }
    }
}

impl Read for SimStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            SimStream::Plain(s) => s.read(buf),
            SimStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for SimStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            SimStream::Plain(s) => s.write(buf),
            SimStream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            SimStream::Plain(s) => s.flush(),
            SimStream::Tls(s) => s.flush(),
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
}

/// A data message written to the WebSocket but not yet flushed.
#[derive(Debug)]
struct Pending {
    stream: String,
    seq: u64,
    event_time_ms: u64,
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
    if tcp.set_nonblocking(true).is_err() {
        return;
    }
    let _ = tcp.set_nodelay(true);
    let stream = match &inner.tls {
        Some(cfg) => match ServerConnection::new(Arc::clone(cfg)) {
            Ok(tls) => SimStream::Tls(Box::new(StreamOwned::new(tls, tcp))),
            Err(_) => return,
        },
        None => SimStream::Plain(tcp),
    };
    let Some((ws, reg)) = handshake(&inner, stream) else {
        return;
    };
    let mut conn = Conn {
        inner,
        id: reg.id,
        ws,
        route: reg.route,
        wrapped: reg.wrapped,
        subs: reg.subs,
        events: reg.events,
        faults: reg.faults,
        pending: Vec::new(),
        pings: Vec::new(),
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
    faults: Receiver<Fault>,
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
        // Never write to the socket from `write`: only explicit flushes
        // (which record ground truth) hand data to the kernel.
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
            _ => "Service unavailable.",
        };
        return Err(http_error(status, retry_after, body));
    }

    let reject = |status: u16, body: String| {
        inner.update(|st| st.counters.upgrades_rejected += 1);
        http_error(status, None, &body)
    };

    let path = req.uri().path();
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
    route: Route,
    wrapped: bool,
    subs: Vec<Sub>,
    events: Receiver<Arc<Event>>,
    faults: Receiver<Fault>,
    pending: Vec<Pending>,
    /// Outstanding server pings: (payload, deadline).
    pings: Vec<(Bytes, Instant)>,
    ping_counter: u64,
}

impl Conn {
    fn serve(&mut self) -> End {
        loop {
            if self.inner.is_shutdown() {
                return End::Shutdown;
            }
            while let Ok(fault) = self.faults.try_recv() {
                if let Err(end) = self.apply(fault) {
                    return end;
                }
            }
            let now = Instant::now();
            if self.pings.iter().any(|(_, deadline)| now >= *deadline) {
                return End::Close(1008, "pong timeout");
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
        if self.pending.len() >= MAX_PENDING {
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
        self.deliver(&first)?;
        for _ in 1..MAX_BATCH {
            match self.events.try_recv() {
                Ok(ev) => self.deliver(&ev)?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    fn deliver(&mut self, ev: &Event) -> Result<(), End> {
        for i in 0..self.subs.len() {
            let sub = &self.subs[i];
            if sub.sym != ev.sym || sub.kind != ev.kind || !sub.delivers {
                continue;
            }
            let text = if self.wrapped {
                format!(r#"{{"stream":"{}","data":{}}}"#, sub.name, ev.payload)
            } else {
                ev.payload.clone()
            };
            let stream = sub.name.clone();
            match self.ws.write(Message::text(text)) {
                Ok(()) => {}
                Err(e) if is_would_block(&e) => {}
                Err(_) => return Err(End::Gone),
            }
            self.pending.push(Pending {
                stream,
                seq: ev.seq,
                event_time_ms: ev.event_time_ms,
            });
        }
        Ok(())
    }

    /// Runs `op`, which pushes the WebSocket's buffered output towards the
    /// kernel and reports whether everything was handed over. If so, the
    /// pending data messages become ground truth *while the ground-truth lock
    /// is still held*: [`super::Sim::sent`] can never observe a moment where a
    /// client may already have read a message that is not recorded yet.
    fn push_out<T>(&mut self, op: impl FnOnce(&mut WebSocket<SimStream>) -> (T, bool)) -> T {
        let Conn {
            inner,
            ws,
            pending,
            id,
            ..
        } = self;
        let mut guard = (inner.cfg.record && !pending.is_empty()).then(|| lock(&inner.sent));
        let (result, all_out) = op(ws);
        if !all_out || pending.is_empty() {
            return result;
        }
        let n = pending.len() as u64;
        match guard.as_mut() {
            Some(sent) => sent.extend(pending.drain(..).map(|p| SentRecord {
                conn: *id,
                stream: p.stream,
                seq: p.seq,
                event_time_ms: p.event_time_ms,
            })),
            None => pending.clear(),
        }
        drop(guard);
        let id = *id;
        inner.update_quiet(|st| {
            st.counters.messages_sent += n;
            if let Some(e) = st.conns.get_mut(&id) {
                e.info.messages_sent += n;
            }
        });
        result
    }

    /// Flushes the WebSocket; on success the pending data messages are in
    /// the kernel and become ground truth.
    fn flush(&mut self) -> Result<(), End> {
        self.push_out(|ws| match ws.flush() {
            Ok(()) => (Ok(()), true),
            Err(e) if is_would_block(&e) => (Ok(()), false),
            Err(_) => (Err(End::Gone), false),
        })
    }

    /// Pushes everything buffered (after queueing `close`, if given) into the
    /// kernel, retrying on a full socket for a short grace period. True if
    /// everything was handed over (and committed as ground truth).
    fn drain_out(&mut self, mut close: Option<CloseFrame>) -> bool {
        let deadline = Instant::now() + FLUSH_GRACE;
        loop {
            let step = self.push_out(|ws| {
                let queued = match close.take() {
                    Some(frame) => ws.close(Some(frame)),
                    None => ws.flush(),
                };
                // `ConnectionClosed` from a server-side flush after the
                // client's Close means "everything written, now terminated".
                let flushed = match queued {
                    Ok(()) | Err(WsError::ConnectionClosed) => {
                        ws.get_mut().flush().map_err(WsError::Io)
                    }
                    Err(e) => Err(e),
                };
                match flushed {
                    Ok(()) => (Some(true), true),
                    Err(e) if is_would_block(&e) => (None, false),
                    Err(_) => (Some(false), false),
                }
            });
            match step {
                Some(done) => return done,
                None if Instant::now() >= deadline || self.inner.is_shutdown() => return false,
                None => thread::sleep(Duration::from_micros(200)),
            }
        }
    }

    fn send_text(&mut self, text: String) -> Result<(), End> {
        match self.ws.write(Message::text(text)) {
            Ok(()) => {}
            Err(e) if is_would_block(&e) => {}
            Err(_) => return Err(End::Gone),
        }
        self.flush()
    }

    /// Reads everything the client has sent so far. Skipped while data
    /// messages wait for a writable socket: tungstenite's read may flush the
    /// output buffer itself, which would bypass ground-truth recording.
    fn read_client(&mut self) -> Result<(), End> {
        if !self.pending.is_empty() {
            return Ok(());
        }
        loop {
            match self.ws.read() {
                Ok(Message::Text(text)) => self.on_request(text.as_str())?,
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
        let before = self.pings.len();
        self.pings.retain(|(p, _)| p.as_ref() != payload);
        let matched = (before - self.pings.len()) as u64;
        if matched > 0 {
            self.inner
                .update(|st| st.counters.pongs_received += matched);
        }
    }

    fn on_request(&mut self, text: &str) -> Result<(), End> {
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
                self.inner.update(|st| st.counters.subscribe_requests += 1);
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
                for sub in new_subs {
                    if !self.subs.iter().any(|s| s.name == sub.name) {
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
            Fault::ServerPing => {
                self.ping_counter += 1;
                let payload = Bytes::from(format!("sim-ping-{}-{}", self.id.0, self.ping_counter));
                match self.ws.write(Message::Ping(payload.clone())) {
                    Ok(()) => {}
                    Err(e) if is_would_block(&e) => {}
                    Err(_) => return Err(End::Gone),
                }
                self.pings.push((payload, Instant::now() + PONG_TIMEOUT));
                self.inner.update(|st| {
                    st.counters.faults_injected += 1;
                    st.counters.pings_sent += 1;
                });
                self.flush()
            }
            // Listener faults never reach a connection.
            Fault::Refuse { .. } | Fault::Http429 { .. } | Fault::Http503 { .. } => Ok(()),
        }
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
        self.pending.clear();
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
                Ok(Fault::Reset) => {
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

fn id_json(id: &Value) -> String {
    serde_json::to_string(id).unwrap_or_else(|_| "null".into())
}

fn result_reply(result_json: &str, id: &Value) -> String {
    format!(r#"{{"result":{},"id":{}}}"#, result_json, id_json(id))
}

fn error_reply(code: i32, msg: &str, id: &Value) -> String {
    let msg = serde_json::to_string(msg).unwrap_or_else(|_| "\"\"".into());
    format!(
        r#"{{"error":{{"code":{},"msg":{}}},"id":{}}}"#,
        code,
        msg,
        id_json(id)
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
