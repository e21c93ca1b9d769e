//! The driver: the one place a feed thread does I/O. It owns the `mio::Poll`, every
//! connection's transport, a timer table (each feed's next deadline) and the channel on which
//! helper threads answer; it calls into the feeds' logic ([`FeedCore`]) with what happened and
//! carries out the [`Action`]s they ask for. Nothing calls back up into it.
//!
//! One driver can host several feeds; the engine gives each feed a driver (and a thread) of its
//! own. The tick sink is a type parameter: the channel to the strategy thread, or anything else
//! that implements [`Sink`].
//!
//! A turn: take readiness events → answers of helper threads → read ready connections (up to a
//! batch each) and move connections being set up along → every feed touched or due handles its
//! timers → carry out actions → poll until the earliest deadline (zero when spinning, or when a
//! read batch was cut short).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use log::{debug, error};
use mio::{Events, Interest, Poll, Token, Waker};
use rustls::ClientConfig;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

use super::action::{Action, SessionId};
use super::core::{FeedCore, Input};
use super::sink::Sink;
use super::transport::{self, Recipe, Transport};
use crate::account::listen_key::KeyAnswer;
use crate::clock;
use crate::config::WaitMode;
pub use crate::helper::{Helpers, ResolveFn};
use crate::rest::{DepthSnapshot, RestError};
use crate::tick::DisconnectReason;

const WAKE: Token = Token(0);

/// Frames read from one connection in one go before the others and the deadlines get a turn.
const READ_BATCH: usize = 512;

mod helpers;

/// How a hosted feed connects: TLS and WebSocket settings, socket options.
#[derive(Debug)]
pub struct Connector {
    /// TLS client config, when a target is `wss://`.
    pub tls: Option<Arc<ClientConfig>>,
    /// WebSocket limits.
    pub ws_config: WebSocketConfig,
    /// Socket receive buffer.
    pub recv_buffer: Option<usize>,
}

/// An answer of a helper thread.
#[derive(Debug)]
enum Reply {
    Resolved {
        lane: usize,
        target: usize,
        answer: Result<SocketAddr, DisconnectReason>,
    },
    Snapshot {
        lane: usize,
        stream: u16,
        result: Result<DepthSnapshot, RestError>,
    },
    ListenKey {
        lane: usize,
        answer: KeyAnswer,
    },
}

/// One hosted feed: its logic, how it connects, and its entry in the timer table.
#[derive(Debug)]
struct Hosted {
    core: FeedCore,
    connector: Connector,
    /// When its logic next needs a call regardless of I/O.
    due: Option<Instant>,
    /// Something happened to it during this turn.
    touched: bool,
}

/// How a read batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// The socket has nothing more for now.
    Drained,
    /// The batch was cut short: more may be waiting.
    More,
    /// The connection ended.
    Ended,
}

/// One connection's transport and whose it is.
#[derive(Debug)]
struct Conn {
    lane: usize,
    session: SessionId,
    /// Index of the session's target.
    target: usize,
    /// The URL to upgrade to, when not the target's.
    url: Option<String>,
    transport: Option<Transport>,
    /// Readiness was reported (or a read batch was cut short) and not yet used up.
    ready: bool,
    /// Until then the thread polls without sleeping (see [`SETUP_SPIN`]).
    spin_until: Instant,
}

/// After a connect starts, a blocking driver polls without sleeping for this long, so the
/// handshake's round trips and the first data cost no wake-up of the thread (tens of µs each
/// on a VM). Reconnects are rare; a slow handshake goes back to blocking after it.
const SETUP_SPIN: Duration = Duration::from_millis(1);

/// The driver of one thread.
pub struct Driver<S: Sink> {
    name: String,
    poll: Poll,
    waker: Arc<Waker>,
    feeds: Vec<Hosted>,
    /// Connections by token (token `n` is `conns[n - 1]`); freed entries are reused.
    conns: Vec<Option<Conn>>,
    sink: S,
    helpers: Helpers,
    reply_tx: Sender<Reply>,
    replies: Receiver<Reply>,
    wait: WaitMode,
    core: Option<usize>,
    shutdown: Arc<AtomicBool>,
}

impl<S: Sink> std::fmt::Debug for Driver<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("name", &self.name)
            .field("feeds", &self.feeds.len())
            .finish()
    }
}

impl<S: Sink> Driver<S> {
    /// A driver named `name` (for logs) with no feed yet; `wait` says whether it sleeps in the
    /// poll or spins, `core` pins its thread. Returns the waker that interrupts its poll.
    pub fn new(
        name: String,
        sink: S,
        helpers: Helpers,
        wait: WaitMode,
        core: Option<usize>,
        shutdown: Arc<AtomicBool>,
    ) -> std::io::Result<(Driver<S>, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (reply_tx, replies) = crossbeam_channel::unbounded();
        let driver = Driver {
            name,
            poll,
            waker: waker.clone(),
            feeds: Vec::new(),
            conns: Vec::new(),
            sink,
            helpers,
            reply_tx,
            replies,
            wait,
            core,
            shutdown,
        };
        Ok((driver, waker))
    }

    /// Hosts a feed; its lane in the sink is its position among the driver's feeds.
    pub fn add(&mut self, core: FeedCore, connector: Connector) {
        self.feeds.push(Hosted {
            core,
            connector,
            due: Some(Instant::now()),
            touched: true,
        });
    }

    /// The lane the next feed added gets.
    pub fn next_lane(&self) -> usize {
        self.feeds.len()
    }

    /// Runs until shutdown, then hands the sink back. Pins the thread first when a core is
    /// configured.
    pub fn run(mut self) -> S {
        crate::helper::pin_current_thread(self.core, &format!("[{}]", self.name));
        let mut events = Events::with_capacity(64);
        while !self.shutdown.load(Ordering::Acquire) {
            for event in events.iter() {
                if let Some(Some(conn)) = self.conns.get_mut(event.token().0.wrapping_sub(1)) {
                    conn.ready = true;
                    self.feeds[conn.lane].touched = true;
                }
            }
            self.turn();
            // Measured from after the turn: what came due during it (an at-once reconnect)
            // waits zero, not the 1 ms epoll rounds a tiny timeout up to.
            let pending = self.conns.iter().flatten().any(|c| c.ready);
            let timeout = if pending || self.wait == WaitMode::Spin {
                Some(Duration::ZERO)
            } else {
                let now = Instant::now();
                if self.conns.iter().flatten().any(|c| now < c.spin_until) {
                    Some(Duration::ZERO)
                } else {
                    self.feeds
                        .iter()
                        .filter_map(|f| f.due)
                        .min()
                        .map(|d| d.saturating_duration_since(now))
                }
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    error!("[{}] poll failed: {e}", self.name);
                    break;
                }
            }
        }
        for lane in 0..self.feeds.len() {
            self.feeds[lane].core.shutdown();
            self.take_actions(lane);
        }
        debug!("[{}] stopped", self.name);
        self.sink
    }

    /// One turn (see the module docs).
    fn turn(&mut self) {
        while let Ok(reply) = self.replies.try_recv() {
            self.on_reply(reply);
        }
        for token in 0..self.conns.len() {
            if self.conns[token].as_ref().is_some_and(|c| c.ready) {
                self.service(token);
            }
        }
        let now = Instant::now();
        for lane in 0..self.feeds.len() {
            let feed = &mut self.feeds[lane];
            if feed.touched || feed.due.is_some_and(|d| now >= d) {
                feed.touched = false;
                feed.core.handle_timeout(now, &mut self.sink);
                self.take_actions(lane);
                // The timer table: whatever changed this feed this turn went through here.
                let feed = &mut self.feeds[lane];
                feed.due = feed.core.deadline(Instant::now());
            }
        }
        self.sink.turn_end(now);
    }

    /// Uses the readiness of connection `token`: reads a batch from an open connection, moves a
    /// connection being set up along.
    fn service(&mut self, token: usize) {
        let Some(conn) = self.conns[token].as_mut() else {
            return;
        };
        let (lane, session) = (conn.lane, conn.session);
        match conn.transport.take() {
            Some(Transport::Open(mut ws)) => {
                let read = self.read(lane, session, &mut ws);
                if read != Read::Ended {
                    // Anything tungstenite still holds (pongs, a queued request) goes out.
                    match transport::flush(&mut ws) {
                        Ok(()) => {
                            if let Some(conn) = self.conns[token].as_mut() {
                                conn.ready = read == Read::More;
                                conn.transport = Some(Transport::Open(ws));
                            }
                        }
                        Err((reason, detail)) => {
                            let core = &mut self.feeds[lane].core;
                            core.on_failed(session, reason, detail, Instant::now(), &mut self.sink);
                        }
                    }
                } else if let Some(conn) = self.conns[token].as_mut() {
                    // Its feed asked for it to be dropped (an action not yet taken).
                    conn.ready = false;
                    conn.transport = Some(Transport::Open(ws));
                }
            }
            Some(setup) => {
                conn.ready = false;
                let feed = &mut self.feeds[lane];
                let target = feed.core.target(conn.target);
                let recipe = Recipe {
                    url: conn.url.as_deref().unwrap_or(&target.url),
                    host: &target.endpoint.host,
                    tls: feed.connector.tls.as_ref(),
                    secure: target.endpoint.tls,
                    ws_config: feed.connector.ws_config,
                };
                let now = Instant::now();
                match setup.advance(&recipe) {
                    Ok((next, connected)) => {
                        if connected {
                            feed.core.on_connected(session, now);
                        }
                        let open = matches!(next, Transport::Open(_));
                        if let Some(conn) = self.conns[token].as_mut() {
                            conn.transport = Some(next);
                            // Data may already sit in the buffers the handshake read into.
                            conn.ready = open;
                        }
                        if open {
                            feed.core.on_open(session, now, &mut self.sink);
                        }
                    }
                    Err((reason, detail)) => {
                        self.conns[token] = None;
                        feed.core
                            .on_failed(session, reason, detail, now, &mut self.sink);
                    }
                }
            }
            None => {}
        }
        self.feeds[lane].touched = true;
        self.take_actions(lane);
    }

    /// Reads up to a batch of frames from an open connection into its feed.
    #[inline]
    fn read(
        &mut self,
        lane: usize,
        session: SessionId,
        ws: &mut tungstenite::WebSocket<crate::net::NetStream>,
    ) -> Read {
        let core = &mut self.feeds[lane].core;
        for _ in 0..READ_BATCH {
            let msg = match transport::read(ws) {
                Ok(Some(msg)) => msg,
                Ok(None) => return Read::Drained,
                Err((reason, detail)) => {
                    // Not the turn's start: data may have been read since.
                    core.on_failed(session, reason, detail, Instant::now(), &mut self.sink);
                    return Read::Ended;
                }
            };
            // One clock read per frame serves the tick's receive stamp and liveness.
            let at = Instant::now();
            let recv_ns = clock::instant_ns(at);
            let input = match &msg {
                Message::Text(text) => Input::Text(text),
                Message::Binary(b) => Input::Binary(b),
                Message::Ping(_) => Input::Ping,
                Message::Pong(_) => Input::Pong,
                Message::Close(frame) => Input::Close(frame.as_ref().map(|f| u16::from(f.code))),
                Message::Frame(_) => continue,
            };
            if matches!(input, Input::Ping | Input::Close(_)) {
                // tungstenite queued the pong (or the close echo): send it now, not with the
                // next write.
                if let Err((reason, detail)) = transport::flush(ws) {
                    if !matches!(input, Input::Close(_)) {
                        core.on_failed(session, reason, detail, at, &mut self.sink);
                        return Read::Ended;
                    }
                }
            }
            if !core.on_message(session, input, recv_ns, at, &mut self.sink) {
                return Read::Ended;
            }
        }
        Read::More
    }

    /// Carries out what feed `lane` asked for.
    fn take_actions(&mut self, lane: usize) {
        while let Some(action) = self.feeds[lane].core.poll_action() {
            match action {
                Action::Resolve { target } => self.resolve(lane, target),
                Action::Connect {
                    session,
                    target,
                    addr,
                    url,
                } => self.connect(lane, session, target, addr, url),
                Action::Send { session, msg } => {
                    let Some(ws) = self.open_ws(lane, session) else {
                        continue;
                    };
                    if let Err((reason, detail)) = transport::send(ws, msg) {
                        let core = &mut self.feeds[lane].core;
                        core.on_failed(session, reason, detail, Instant::now(), &mut self.sink);
                    }
                }
                Action::Close { session } => {
                    if let Some(token) = self.token_of(lane, session) {
                        if let Some(Transport::Open(mut ws)) =
                            self.conns[token].take().and_then(|c| c.transport)
                        {
                            transport::close(&mut ws);
                        }
                    }
                }
                Action::Abort { session } => {
                    if let Some(token) = self.token_of(lane, session) {
                        if let Some(Transport::Open(mut ws)) =
                            self.conns[token].take().and_then(|c| c.transport)
                        {
                            ws.get_mut().abort();
                        }
                    }
                }
                Action::Snapshot { stream, url } => self.snapshot(lane, stream, url),
                Action::ListenKey {
                    op,
                    rest_base,
                    api_key,
                } => self.listen_key(lane, op, rest_base, api_key),
            }
        }
    }

    /// Opens a connection for `session` (dropping one it may still have), to upgrade to `url`
    /// or else the target's URL.
    fn connect(
        &mut self,
        lane: usize,
        session: SessionId,
        target: usize,
        addr: SocketAddr,
        url: Option<String>,
    ) {
        if let Some(token) = self.token_of(lane, session) {
            self.conns[token] = None;
        }
        let recv_buffer = self.feeds[lane].connector.recv_buffer;
        let mut t = match Transport::connect(addr, recv_buffer) {
            Ok(t) => t,
            Err((reason, detail)) => {
                let core = &mut self.feeds[lane].core;
                core.on_failed(session, reason, detail, Instant::now(), &mut self.sink);
                return;
            }
        };
        let token = match self.conns.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        if let Err(e) = self.poll.registry().register(
            t.socket(),
            Token(token + 1),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            let core = &mut self.feeds[lane].core;
            let reason = crate::net::io_reason(&e);
            core.on_failed(
                session,
                reason,
                Some(e.to_string()),
                Instant::now(),
                &mut self.sink,
            );
            return;
        }
        debug!(
            "[{}] connecting to {addr} for {}",
            self.name,
            self.feeds[lane].core.target(target).url
        );
        self.conns[token] = Some(Conn {
            lane,
            session,
            target,
            url,
            transport: Some(t),
            ready: true,
            spin_until: Instant::now() + SETUP_SPIN,
        });
    }

    fn on_reply(&mut self, reply: Reply) {
        let now = Instant::now();
        let lane = match reply {
            Reply::Resolved {
                lane,
                target,
                answer,
            } => {
                self.feeds[lane]
                    .core
                    .on_resolved(target, answer, now, &mut self.sink);
                lane
            }
            Reply::Snapshot {
                lane,
                stream,
                result,
            } => {
                self.feeds[lane]
                    .core
                    .on_snapshot(stream, result, now, &mut self.sink);
                lane
            }
            Reply::ListenKey { lane, answer } => {
                self.feeds[lane]
                    .core
                    .on_listen_key(answer, now, &mut self.sink);
                lane
            }
        };
        self.feeds[lane].touched = true;
        self.take_actions(lane);
    }

    fn token_of(&self, lane: usize, session: SessionId) -> Option<usize> {
        self.conns.iter().position(|c| {
            c.as_ref()
                .is_some_and(|c| c.lane == lane && c.session == session)
        })
    }

    fn open_ws(
        &mut self,
        lane: usize,
        session: SessionId,
    ) -> Option<&mut tungstenite::WebSocket<crate::net::NetStream>> {
        let token = self.token_of(lane, session)?;
        match self.conns[token].as_mut()?.transport.as_mut()? {
            Transport::Open(ws) => Some(ws),
            _ => None,
        }
    }
}
