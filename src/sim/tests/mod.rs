//! End-to-end tests of the simulator with a plain blocking tungstenite
//! client, split by venue, by fault and by feature; the helpers they share
//! are here. Unit tests of each module's pure parts (the venues' request
//! handlers, the market, the wire formats) live next to the code.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Error as WsError, HandshakeError, Message, WebSocket};

use super::render;
use super::*;

mod binance;
mod book_faults;
mod bybit;
mod defined;
mod faults;
mod lifecycle;
mod okx;
mod private;
mod rest;
mod shared;

/// Any blocking byte stream a test client can run over.
trait Rw: Read + Write + Send {}
impl<T: Read + Write + Send> Rw for T {}

type Client = WebSocket<Box<dyn Rw>>;

const T: Duration = Duration::from_secs(3);

fn fast_cfg() -> SimConfig {
    SimConfig {
        tls: false,
        symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
        book_interval: Duration::from_millis(2),
        trade_interval: Duration::from_millis(4),
        depth_interval: Duration::from_millis(20),
        mark_price_interval: Duration::from_millis(50),
        ..SimConfig::default()
    }
}

fn tcp(sim: &Sim) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", sim.port())).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    s
}

/// An upgrade the simulator answered with an HTTP error.
#[derive(Debug)]
struct Rejected {
    status: u16,
    retry_after: Option<String>,
}

fn try_connect(sim: &Sim, path: &str) -> Result<Client, Rejected> {
    let url = format!("{}{}", sim.base_url(), path);
    let stream: Box<dyn Rw> = Box::new(tcp(sim));
    handshake(tungstenite::client::client_with_config(url, stream, None))
}

/// Outcome of one client handshake step.
type ClientAttempt = Result<
    (Client, tungstenite::handshake::client::Response),
    HandshakeError<tungstenite::ClientHandshake<Box<dyn Rw>>>,
>;

/// Drives a client handshake over a stream with a read timeout to completion.
fn handshake(mut attempt: ClientAttempt) -> Result<Client, Rejected> {
    let deadline = Instant::now() + T;
    loop {
        match attempt {
            Ok((ws, _)) => return Ok(ws),
            Err(HandshakeError::Interrupted(mid)) if Instant::now() < deadline => {
                attempt = mid.handshake();
            }
            Err(HandshakeError::Failure(WsError::Http(resp))) => {
                return Err(Rejected {
                    status: resp.status().as_u16(),
                    retry_after: resp
                        .headers()
                        .get("Retry-After")
                        .and_then(|h| h.to_str().ok())
                        .map(String::from),
                })
            }
            Err(e) => panic!("client handshake failed: {e}"),
        }
    }
}

fn connect(sim: &Sim, path: &str) -> Client {
    match try_connect(sim, path) {
        Ok(ws) => ws,
        Err(e) => panic!("upgrade of {path} rejected: {e:?}"),
    }
}

fn is_timeout(e: &WsError) -> bool {
    matches!(e, WsError::Io(io) if matches!(io.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Reads the next message, or `None` at the deadline.
fn next_msg(ws: &mut Client, deadline: Instant) -> Option<Result<Message, WsError>> {
    loop {
        match ws.read() {
            Err(e) if is_timeout(&e) => {
                if Instant::now() >= deadline {
                    return None;
                }
            }
            other => return Some(other),
        }
    }
}

/// Reads text messages until one satisfies `pred`; panics at the deadline.
fn read_until(ws: &mut Client, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
    let deadline = Instant::now() + T;
    loop {
        match next_msg(ws, deadline) {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("valid json from sim");
                if pred(&v) {
                    return v;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("waiting for {what}: {e}"),
            None => panic!("timed out waiting for {what}"),
        }
    }
}

fn send(ws: &mut Client, text: &str) {
    ws.send(Message::text(text.to_string())).expect("send");
}

fn seq_of(v: &Value) -> Option<(String, u64)> {
    let stream = v["stream"].as_str()?.to_string();
    let d = &v["data"];
    let seq = match d["e"].as_str()? {
        "bookTicker" | "depthUpdate" => d["u"].as_u64()?,
        "aggTrade" => d["a"].as_u64()?,
        "markPriceUpdate" => d["E"].as_u64()?,
        _ => return None,
    };
    Some((stream, seq))
}

/// A fast simulator speaking `venue`, never closing idle connections.
fn venue_cfg(venue: SimVenue) -> SimConfig {
    SimConfig {
        venue,
        idle_timeout: None,
        ..fast_cfg()
    }
}

/// Writes one raw HTTP request and reads the response to its end:
/// (status, raw headers, body).
fn http_exchange(mut stream: Box<dyn Rw>, request: &str) -> (u16, String, String) {
    stream.write_all(request.as_bytes()).expect("write request");
    let _ = stream.flush();
    let deadline = Instant::now() + T;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                assert!(Instant::now() < deadline, "response never completed");
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("reading response: {e}"),
        }
    }
    let text = String::from_utf8(buf).expect("utf8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head.to_string(), body.to_string())
}

/// A documentation example from `tests/fixtures/`.
fn fixture(path: &str) -> Value {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// Keys of the first data object (`data` itself when it is an object).
fn data_keys(v: &Value) -> BTreeSet<String> {
    match &v["data"] {
        Value::Array(a) => keys(&a[0]),
        d => keys(d),
    }
}

/// The next text frame, raw; panics on anything else but pings/pongs.
fn next_text(ws: &mut Client, what: &str) -> String {
    let deadline = Instant::now() + T;
    loop {
        match next_msg(ws, deadline) {
            Some(Ok(Message::Text(t))) => return t.as_str().to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("waiting for {what}: {other:?}"),
        }
    }
}

fn next_json(ws: &mut Client, what: &str) -> Value {
    let t = next_text(ws, what);
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{what}: {e}: {t}"))
}

/// Reads JSON messages until `done(&all)` holds (bounded by the deadline).
fn collect(ws: &mut Client, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + T;
    let mut all = Vec::new();
    while !done(&all) {
        match next_msg(ws, deadline) {
            Some(Ok(Message::Text(t))) => {
                all.push(serde_json::from_str(t.as_str()).expect("json from sim"));
            }
            Some(Ok(_)) => {}
            other => panic!("collecting {what}: {other:?} after {} messages", all.len()),
        }
    }
    all
}

fn units(price: &str) -> i64 {
    price.replace('.', "").parse().expect("price")
}

fn is_zero(q: &str) -> bool {
    q.parse::<f64>().expect("qty") == 0.0
}

/// A client-side book: price units → (price string, quantity string).
#[derive(Debug, Clone, Default, PartialEq)]
struct Local {
    bids: BTreeMap<i64, (String, String)>,
    asks: BTreeMap<i64, (String, String)>,
}

impl Local {
    fn apply(&mut self, bids: &Value, asks: &Value) {
        for (side, levels) in [(&mut self.bids, bids), (&mut self.asks, asks)] {
            for l in levels.as_array().expect("levels") {
                let (p, q) = (l[0].as_str().expect("p"), l[1].as_str().expect("q"));
                if is_zero(q) {
                    side.remove(&units(p));
                } else {
                    side.insert(units(p), (p.to_string(), q.to_string()));
                }
            }
        }
    }

    fn best_bid(&self) -> Option<&(String, String)> {
        self.bids.values().next_back()
    }

    fn best_ask(&self) -> Option<&(String, String)> {
        self.asks.values().next()
    }

    fn crossed(&self) -> bool {
        match (self.bids.keys().next_back(), self.asks.keys().next()) {
            (Some(b), Some(a)) => b >= a,
            _ => false,
        }
    }

    /// OKX checksum over the strings as received.
    fn okx_checksum(&self) -> i32 {
        let bids: Vec<(String, String)> = self.bids.values().rev().take(25).cloned().collect();
        let asks: Vec<(String, String)> = self.asks.values().take(25).cloned().collect();
        render::crc32_signed(render::okx_check_string(&bids, &asks).as_bytes())
    }
}
