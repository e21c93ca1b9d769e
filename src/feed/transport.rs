//! One connection's I/O objects and the non-blocking steps that move them along: TCP connect,
//! TLS handshake, WebSocket upgrade, then frames read and written. Errors become
//! [`DisconnectReason`]s here, in one place. What the steps mean (deadlines, backoff) is the
//! session's business; the driver calls these and reports the outcome to the feed.
//!
//! Calls into tungstenite and rustls are marked (`call`) so that what the transport does can
//! be told apart from what the engine's own code does: `tests/alloc.rs`'s counting allocator
//! asks [`inside`] to leave the transport's buffer allocations out of "the hot path allocates
//! nothing" and count them on their own. Cost: two thread-local writes per call.

use std::cell::Cell;
use std::io;
use std::sync::Arc;

use rustls::ClientConfig;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, Utf8Bytes, WebSocket};

use super::action::Outgoing;
use crate::net::{self, NetStream};
use crate::tick::DisconnectReason;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// True while the calling thread is inside a transport call made by a feed.
#[inline]
pub fn inside() -> bool {
    DEPTH.try_with(|d| d.get() > 0).unwrap_or(false)
}

/// Runs `f`, a call into the transport, marked as such.
#[inline(always)]
pub(crate) fn call<T>(f: impl FnOnce() -> T) -> T {
    DEPTH.with(|d| d.set(d.get() + 1));
    let out = f();
    DEPTH.with(|d| d.set(d.get() - 1));
    out
}

/// A failure, with detail for the log.
pub(crate) type Failure = (DisconnectReason, Option<String>);

/// How to set a connection up: its URL, its host (TLS server name), TLS and WebSocket settings.
#[derive(Debug)]
pub(crate) struct Recipe<'a> {
    /// The WebSocket URL.
    pub url: &'a str,
    /// The host, for TLS.
    pub host: &'a str,
    /// TLS settings, for `wss://`.
    pub tls: Option<&'a Arc<ClientConfig>>,
    /// Whether the URL is `wss://`.
    pub secure: bool,
    /// WebSocket limits.
    pub ws_config: WebSocketConfig,
}

/// A connection's I/O objects; each state holds what is in flight.
#[derive(Debug)]
pub(crate) enum Transport {
    /// TCP connect in flight.
    Connecting(mio::net::TcpStream),
    /// TLS handshake in flight.
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, mio::net::TcpStream>>),
    /// WebSocket upgrade in flight.
    Upgrading(Box<MidHandshake<ClientHandshake<NetStream>>>),
    /// Open.
    Open(Box<WebSocket<NetStream>>),
}

impl Transport {
    /// Starts a non-blocking TCP connect to `addr`.
    pub(crate) fn connect(
        addr: std::net::SocketAddr,
        recv_buffer: Option<usize>,
    ) -> Result<Transport, Failure> {
        net::start_connect(addr, recv_buffer)
            .map(Transport::Connecting)
            .map_err(|e| io_failure(&e))
    }

    /// The TCP socket, for readiness registration.
    pub(crate) fn socket(&mut self) -> &mut mio::net::TcpStream {
        match self {
            Transport::Connecting(s) => s,
            Transport::Tls(s) => &mut s.sock,
            Transport::Upgrading(mid) => mid.get_mut().get_mut().tcp_mut(),
            Transport::Open(ws) => ws.get_mut().tcp_mut(),
        }
    }

    /// Moves a connection being set up along as far as it goes without blocking. Returns where
    /// it got to, and whether TCP connected during this step.
    pub(crate) fn advance(self, recipe: &Recipe<'_>) -> Result<(Transport, bool), Failure> {
        match self {
            Transport::Connecting(sock) => {
                if !net::connect_result(&sock).map_err(|e| io_failure(&e))? {
                    return Ok((Transport::Connecting(sock), false));
                }
                if !recipe.secure {
                    return Ok((upgrade(NetStream::Plain(sock), recipe)?, true));
                }
                let cfg = recipe.tls.ok_or((
                    DisconnectReason::Tls,
                    Some("no TLS configuration".to_string()),
                ))?;
                let tls = net::tls_stream(cfg, recipe.host, sock).map_err(|r| (r, None))?;
                let (next, _) = Transport::Tls(Box::new(tls)).advance(recipe)?;
                Ok((next, true))
            }
            Transport::Tls(mut stream) => {
                if !call(|| net::drive_tls(&mut stream)).map_err(|e| io_failure(&e))? {
                    return Ok((Transport::Tls(stream), false));
                }
                Ok((upgrade(NetStream::Tls(stream), recipe)?, false))
            }
            Transport::Upgrading(mid) => Ok((upgraded(mid.handshake())?, false)),
            open @ Transport::Open(_) => Ok((open, false)),
        }
    }
}

/// Starts the WebSocket upgrade over `stream`.
fn upgrade(stream: NetStream, recipe: &Recipe<'_>) -> Result<Transport, Failure> {
    upgraded(tungstenite::client::client_with_config(
        recipe.url,
        stream,
        Some(recipe.ws_config),
    ))
}

type Upgrade = Result<
    (
        WebSocket<NetStream>,
        tungstenite::handshake::client::Response,
    ),
    HandshakeError<ClientHandshake<NetStream>>,
>;

fn upgraded(result: Upgrade) -> Result<Transport, Failure> {
    match result {
        Ok((ws, _response)) => Ok(Transport::Open(Box::new(ws))),
        Err(HandshakeError::Interrupted(mid)) => Ok(Transport::Upgrading(Box::new(mid))),
        Err(HandshakeError::Failure(e)) => Err(ws_failure(&e)),
    }
}

/// Reads the next message, `None` when the socket has nothing more for now.
#[inline]
pub(crate) fn read(ws: &mut WebSocket<NetStream>) -> Result<Option<Message>, Failure> {
    match call(|| ws.read()) {
        Ok(msg) => Ok(Some(msg)),
        Err(e) if is_would_block(&e) => Ok(None),
        Err(e) => Err(ws_failure(&e)),
    }
}

/// Writes a message and flushes it; what the socket does not take now stays queued in
/// tungstenite for the next flush.
pub(crate) fn send(ws: &mut WebSocket<NetStream>, msg: Outgoing) -> Result<(), Failure> {
    // Static payloads: a keep-alive allocates nothing.
    let msg = match msg {
        Outgoing::Text(text) => Message::text(text),
        Outgoing::Static(text) => Message::Text(Utf8Bytes::from_static(text)),
        Outgoing::Ping => Message::Ping(tungstenite::Bytes::from_static(b"wsfeed")),
    };
    match call(|| ws.send(msg)) {
        Err(e) if !is_would_block(&e) => Err(ws_failure(&e)),
        _ => Ok(()),
    }
}

/// Writes out what tungstenite holds (a pong, a close echo, a queued message).
pub(crate) fn flush(ws: &mut WebSocket<NetStream>) -> Result<(), Failure> {
    match call(|| ws.flush()) {
        Err(e) if !is_would_block(&e) => Err(ws_failure(&e)),
        _ => Ok(()),
    }
}

/// Best effort: tells the venue we are leaving.
pub(crate) fn close(ws: &mut WebSocket<NetStream>) {
    let _ = call(|| ws.close(None));
    let _ = call(|| ws.flush());
}

fn is_would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if io.kind() == io::ErrorKind::WouldBlock)
}

fn io_failure(e: &io::Error) -> Failure {
    (net::io_reason(e), Some(e.to_string()))
}

/// Maps a tungstenite error to a reason, with detail text for the log.
pub(crate) fn ws_failure(e: &tungstenite::Error) -> Failure {
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
