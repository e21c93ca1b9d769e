//! Plain HTTP on the WebSocket listener: Binance's REST depth snapshot.
//!
//! The connection thread reads the request head first; a request without
//! `Upgrade: websocket` comes here and gets exactly one response with
//! `Connection: close`, then the connection is closed.
//!
//! * `GET /api/v3/depth?symbol=BTCUSDT&limit=N` (spot): `limit` default 100,
//!   at most 5000 (more is cut to 5000) →
//!   `{"lastUpdateId":…,"bids":[["p","q"],…],"asks":[…]}`.
//! * `POST`/`PUT`/`DELETE /fapi/v1/listenKey` (USD-M user data stream, see
//!   `private/binance.rs`): header `X-MBX-APIKEY`, optional signed query.
//! * `GET /fapi/v1/depth?symbol=BTCUSDT&limit=N` (USD-M): `limit` one of 5,
//!   10, 20, 50, 100, 500 (default), 1000, else HTTP 400 code -1130 → the
//!   same with `"E"` and `"T"` after `lastUpdateId`.
//!
//! Both serve the live book: `lastUpdateId` is the book's update id at that
//! moment, usually inside the window `[U, u]` of a depth diff still to come.
//! Missing `symbol` → 400 code -1102, unknown symbol → 400 code -1121, other
//! paths → 404, other methods → 405 (all JSON `{"code":…,"msg":…}`). Other
//! venues answer every plain request with 404. Scripted upgrade rejections
//! ([`Fault::Reject`](super::fault::Fault::Reject) and its shorthands) do not apply to plain
//! requests; [`BookFault::SnapshotStale`](super::fault::BookFault::SnapshotStale) does. Each request is counted
//! in [`SimSnapshot::rest_requests`](super::observe::SimSnapshot::rest_requests) (and its TCP accept in
//! `accepts`), and never appears in `connections`.

use std::io::{self, Write};
use std::net::Shutdown;
use std::thread;
use std::time::{Duration, Instant};

use super::base::{lock, now_ms};
use super::config::SimVenue;
use super::format::json_str;
use super::private::binance::listen_key_rest;
use super::state::Inner;
use super::transport::{Head, SimStream};

/// How long writing the response and waiting for the client's FIN may take.
const LINGER: Duration = Duration::from_millis(500);

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn error(status: u16, code: i32, msg: &str) -> (u16, String) {
    (
        status,
        format!(r#"{{"code":{code},"msg":{}}}"#, json_str(msg)),
    )
}

/// Status and JSON body for a plain request.
pub(crate) fn route(inner: &Inner, head: &Head) -> (u16, String) {
    let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
    if inner.cfg.venue == SimVenue::Binance
        && path == "/fapi/v1/listenKey"
        && !inner.private.accounts.is_empty()
    {
        let api_key = head
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("X-MBX-APIKEY"))
            .map(|(_, v)| v.as_str());
        return listen_key_rest(&inner.private, &head.method, query, api_key);
    }
    if head.method != "GET" {
        return error(405, -1, "Method not allowed.");
    }
    let usdm = match (inner.cfg.venue, path) {
        (SimVenue::Binance, "/api/v3/depth") => false,
        (SimVenue::Binance, "/fapi/v1/depth") => true,
        _ => return error(404, -1, &format!("Not found: {path}")),
    };
    let symbol = match query_param(query, "symbol") {
        Some(s) if !s.is_empty() => s,
        _ => {
            return error(
                400,
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            )
        }
    };
    let Some(sym) = inner.info.iter().position(|s| s.name == symbol) else {
        return error(400, -1121, "Invalid symbol.");
    };
    let limit = match (query_param(query, "limit"), usdm) {
        (None, false) => 100,
        (None, true) => 500,
        (Some(v), usdm) => match v.parse::<usize>() {
            Ok(n) if usdm && [5, 10, 20, 50, 100, 500, 1000].contains(&n) => n,
            Ok(n) if !usdm && n >= 1 => n.min(5000),
            Ok(_) if usdm => {
                return error(400, -1130, "Data sent for parameter 'limit' is not valid.")
            }
            _ => return error(
                400,
                -1100,
                "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.",
            ),
        },
    };
    let stale = inner.update(|st| {
        let stale = st.stale_snapshots > 0;
        if stale {
            st.stale_snapshots -= 1;
            st.counters.stale_snapshots_served += 1;
        }
        stale
    });
    let (id, bids, asks) = lock(&inner.market).rest_depth(sym, limit, stale);
    let now = now_ms();
    let times = usdm.then_some((now, now.saturating_sub(1)));
    (
        200,
        super::render::rest_depth(&inner.info[sym], id, &bids, &asks, times),
    )
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        418 => "I'm a teapot",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Answers one plain request and closes the connection.
pub(crate) fn serve(inner: &Inner, mut stream: SimStream, head: &Head) {
    let scripted = inner.update(|st| {
        st.counters.rest_requests += 1;
        st.counters.rest_request_times.push(Instant::now());
        st.rest_rejects.pop_front()
    });
    let (status, body, retry_after) = match scripted {
        Some((status, retry_after)) => {
            let (status, body) = error(status, -1003, "Too many requests; rejected by script.");
            (status, body, retry_after)
        }
        None => {
            let (status, body) = route(inner, head);
            (status, body, None)
        }
    };
    let retry_after = retry_after
        .map(|s| format!("Retry-After: {s}\r\n"))
        .unwrap_or_default();
    let response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {}\r\n{retry_after}Connection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    let deadline = Instant::now() + LINGER;
    if write_all(&mut stream, response.as_bytes(), deadline, inner).is_err() {
        return;
    }
    stream.close_notify();
    let _ = until_done(deadline, inner, || stream.flush());
    let _ = stream.tcp().shutdown(Shutdown::Write);
    // Wait for the client to close (unread input at close would turn our FIN
    // into a reset).
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline && !inner.is_shutdown() {
        match stream.tcp_read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(1))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

fn write_all(
    stream: &mut SimStream,
    mut bytes: &[u8],
    deadline: Instant,
    inner: &Inner,
) -> io::Result<()> {
    while !bytes.is_empty() {
        match until_done(deadline, inner, || stream.write(bytes))? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => bytes = &bytes[n..],
        }
    }
    until_done(deadline, inner, || stream.flush())
}

/// Runs `op` on the non-blocking socket again until it no longer would block, up to
/// `deadline` or the simulator's shutdown.
fn until_done<T>(
    deadline: Instant,
    inner: &Inner,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    loop {
        match op() {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                if Instant::now() >= deadline || inner.is_shutdown() {
                    return Err(e);
                }
                thread::sleep(Duration::from_micros(200));
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        assert_eq!(query_param("symbol=A&limit=5", "limit"), Some("5"));
        assert_eq!(query_param("symbol=A", "limit"), None);
    }
}
