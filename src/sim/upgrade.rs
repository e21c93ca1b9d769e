//! The WebSocket upgrade: which requests are accepted and on what terms —
//! scripted HTTP rejections first (`Fault::Reject` and its shorthands), then
//! the venue's paths (404 for an unknown one), then Binance's
//! pre-subscriptions in the URL (400 for an unknown stream) — and the
//! handshake itself, which registers an accepted connection before its
//! `101` response is written.
//!
//! Binance upgrade paths: `/stream`, `/ws`, `/public/stream`, `/public/ws`,
//! `/market/stream`, `/market/ws`, optionally with `?streams=a/b/c` (the
//! `/ws/<name>/<name>` raw form is accepted too); data frames on `/stream`
//! paths are wrapped as `{"stream":"<name>","data":<payload>}`. Bybit and OKX
//! have one path each ([`SimVenue::ws_path`]) and no subscriptions in the URL.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{HandshakeError, WebSocket};

use super::binance::{make_sub, parse_stream};
#[cfg(doc)]
use super::config::SimVenue;
use super::fault::Injected;
use super::market::Event;
use super::observe::ConnId;
use super::private::route::{self as private_route, PrivateRoute};
use super::protocol::{Env, Route, Sub};
use super::state::Inner;
use super::transport::SimStream;

/// The longest one read waits during the handshakes.
pub(crate) const HANDSHAKE_READ_WAIT: Duration = Duration::from_millis(5);
/// Upgrade handshake (TLS included) must complete within this.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// tungstenite's eager-write threshold, set so high that it never triggers
/// (pending output is bounded by the serve loop's limit on unflushed
/// messages, far below it).
const WRITE_BUFFER: usize = 1 << 30;
/// Largest client message accepted.
const MAX_CLIENT_MESSAGE: usize = 1 << 20;

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
    /// The URL's subscription was ignored (`Fault::IgnoreSubscribe`).
    deaf: bool,
    /// A private stream (see `private/route.rs`).
    private: Option<PrivateRoute>,
}

/// A connection registered when its upgrade request was accepted.
#[derive(Debug)]
pub(crate) struct Registered {
    pub id: ConnId,
    pub route: Route,
    pub wrapped: bool,
    pub subs: Vec<Sub>,
    /// The URL's subscription was ignored.
    pub deaf: bool,
    pub events: Receiver<Arc<Event>>,
    pub faults: Receiver<Injected>,
    /// A private stream (see `private/route.rs`).
    pub private: Option<PrivateRoute>,
}

/// Registers an accepted upgrade (before the 101 response is written, so
/// that a client which completed its upgrade is always in the snapshot).
fn register(inner: &Inner, up: Upgrade) -> Registered {
    let subs: Vec<Sub> = up
        .streams
        .iter()
        .filter_map(|name| make_sub(&inner.cfg, up.route, name))
        .collect();
    let names = subs.iter().map(|s| s.name.clone()).collect();
    let (id, events, faults) = inner.register_with(up.path, names, up.private.is_none());
    Registered {
        id,
        route: up.route,
        wrapped: up.wrapped,
        subs,
        deaf: up.deaf,
        events,
        faults,
        private: up.private,
    }
}

/// Runs the WebSocket handshake on `stream` (its head replayed): the
/// upgraded WebSocket and its registration, or `None` when the request was
/// rejected, the client broke the handshake, or it did not complete within
/// [`HANDSHAKE_TIMEOUT`] (a connection registered by then is unregistered).
// The callback's error type is dictated by tungstenite's `Callback` trait.
#[allow(clippy::result_large_err)]
pub(crate) fn handshake(
    inner: &Inner,
    stream: SimStream,
) -> Option<(WebSocket<SimStream>, Registered)> {
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
        // buffer size: output is bounded by the serve loop and handed to the
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
                inner.unregister(reg.id);
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
    if let Some(route) = private_route::route(inner, path, req.uri().query()) {
        let route = route.map_err(|(status, body)| reject(status, body))?;
        return Ok(Upgrade {
            path: route.path.clone(),
            route: Route::Unrouted,
            wrapped: false,
            streams: Vec::new(),
            deaf: false,
            private: Some(route),
        });
    }
    if inner.cfg.venue.ws_path().is_some() {
        // Bybit / OKX / a defined venue: one path, no subscriptions in the URL.
        if !inner.cfg.venue.serves_path(path) {
            return Err(reject(404, format!("Not found: {path}")));
        }
        return Ok(Upgrade {
            path: path.to_string(),
            route: Route::Unrouted,
            wrapped: false,
            streams: Vec::new(),
            deaf: false,
            private: None,
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
    // A subscription in the URL is a subscription like a SUBSCRIBE request: counted, and
    // ignored under `Fault::IgnoreSubscribe`.
    if !normalized.is_empty() {
        inner.update_quiet(|st| st.counters.url_subscriptions += 1);
    }
    let deaf = !normalized.is_empty() && inner.subscribe_ignored();
    if deaf {
        normalized.clear();
    }
    Ok(Upgrade {
        path: base.to_string(),
        route,
        wrapped,
        streams: normalized,
        deaf,
        private: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("btcusdt%40bookTicker%2"),
            "btcusdt@bookTicker%2"
        );
        assert_eq!(percent_decode("%"), "%");
    }
}
