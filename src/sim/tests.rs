//! End-to-end tests of the simulator with a plain blocking tungstenite client.

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

#[test]
fn subscribe_ack_and_wrapped_data_with_monotonic_u() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream");
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":1}"#,
    );
    let ack = read_until(&mut ws, "ack", |v| v.get("id").is_some());
    assert_eq!(ack, serde_json::json!({"result": null, "id": 1}));

    let mut last_u = 0;
    for _ in 0..20 {
        let v = read_until(&mut ws, "bookTicker", |v| v.get("stream").is_some());
        assert_eq!(v["stream"], "btcusdt@bookTicker");
        let d = &v["data"];
        assert_eq!(d["e"], "bookTicker");
        assert_eq!(d["s"], "BTCUSDT");
        let u = d["u"].as_u64().expect("u");
        assert!(u > last_u, "u must increase: {u} after {last_u}");
        last_u = u;
        let bid: f64 = d["b"].as_str().and_then(|s| s.parse().ok()).expect("b");
        let ask: f64 = d["a"].as_str().and_then(|s| s.parse().ok()).expect("a");
        assert!(bid < ask);
        assert!(d["E"].as_u64().expect("E") > 1_600_000_000_000);
    }

    send(&mut ws, r#"{"method":"LIST_SUBSCRIPTIONS","id":"x"}"#);
    let list = read_until(&mut ws, "list", |v| v.get("id").is_some());
    assert_eq!(
        list,
        serde_json::json!({"result": ["btcusdt@bookTicker"], "id": "x"})
    );

    send(&mut ws, "{not json");
    let err = read_until(&mut ws, "json error", |v| v.get("error").is_some());
    assert_eq!(err["error"]["code"], 3);
    assert_eq!(err["id"], Value::Null);

    assert!(sim.wait_until(T, |s| s.subscribe_requests == 1
        && s.conn(ConnId(1))
            .is_some_and(|c| c.streams == ["btcusdt@bookTicker"])));
}

#[test]
fn unknown_stream_is_rejected_and_nothing_subscribed() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream");
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@bookTicker","xrpusdt@bookTicker"],"id":5}"#,
    );
    let err = read_until(&mut ws, "error", |v| v.get("id").is_some());
    assert_eq!(
        err,
        serde_json::json!({"error": {"code": 2, "msg": "Invalid request: unknown stream 'xrpusdt@bookTicker'"}, "id": 5})
    );
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@kline_1m"],"id":6}"#,
    );
    let err = read_until(&mut ws, "error", |v| v.get("id").is_some());
    assert_eq!(err["error"]["code"], 2);
    assert!(sim.wait_until(T, |s| s.subscribe_requests == 2));
    assert!(sim.snapshot().connections[0].streams.is_empty());
}

#[test]
fn wrong_route_is_acked_but_silent() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/market/stream");
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@bookTicker","btcusdt@aggTrade"],"id":1}"#,
    );
    let ack = read_until(&mut ws, "ack", |v| v.get("id").is_some());
    assert_eq!(ack, serde_json::json!({"result": null, "id": 1}));
    // 30 trades at 4 ms cover ~60 book changes at 2 ms: none may arrive.
    let mut last_a = 0;
    for _ in 0..30 {
        let v = read_until(&mut ws, "data", |v| v.get("stream").is_some());
        assert_eq!(
            v["stream"], "btcusdt@aggTrade",
            "only the market stream delivers"
        );
        let a = v["data"]["a"].as_u64().expect("a");
        assert!(
            last_a == 0 || a == last_a + 1,
            "aggregate ids are consecutive"
        );
        last_a = a;
    }
    assert!(sim.sent().iter().all(|r| r.stream == "btcusdt@aggTrade"));
    let snap = sim.snapshot();
    assert_eq!(snap.connections[0].path, "/market/stream");
    assert_eq!(
        snap.connections[0].streams,
        ["btcusdt@bookTicker", "btcusdt@aggTrade"]
    );
}

#[test]
fn spot_style_delivers_everything_and_ws_is_unwrapped() {
    let sim = Sim::start(SimConfig {
        usdm_routing: false,
        ..fast_cfg()
    })
    .expect("start");
    let mut ws = connect(&sim, "/ws/ethusdt@aggTrade");
    let v = read_until(&mut ws, "raw trade", |v| v.get("e").is_some());
    assert_eq!(v["e"], "aggTrade");
    assert_eq!(v["s"], "ETHUSDT");
    let mut ws = connect(&sim, "/stream?streams=ethusdt@markPrice@1s");
    let v = read_until(&mut ws, "mark", |v| v.get("stream").is_some());
    assert_eq!(v["stream"], "ethusdt@markPrice@1s");
    assert_eq!(v["data"]["e"], "markPriceUpdate");
}

#[test]
fn unknown_path_is_404() {
    let sim = Sim::start(fast_cfg()).expect("start");
    match try_connect(&sim, "/nope") {
        Err(r) => assert_eq!(r.status, 404),
        Ok(_) => panic!("upgrade of /nope must fail"),
    }
    assert_eq!(sim.snapshot().upgrades_rejected, 1);
}

#[test]
fn close_fault_delivers_code() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    read_until(&mut ws, "data", |v| v.get("stream").is_some());
    sim.inject(Fault::Close { code: 4002 });
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut ws, deadline) {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::from(4002));
                assert_eq!(frame.reason.as_str(), "sim close");
                break;
            }
            Some(Ok(Message::Text(_))) => {}
            other => panic!("expected close frame, got {other:?}"),
        }
    }
    assert!(sim.wait_until(T, |s| s.faults_injected == 1
        && s.connections.iter().all(|c| !c.open)));
}

#[test]
fn http_429_and_503_reject_upgrades() {
    let sim = Sim::start(fast_cfg()).expect("start");
    sim.inject(Fault::Http429 {
        count: 1,
        retry_after_s: 7,
    });
    sim.inject(Fault::Http503 { count: 1 });
    match try_connect(&sim, "/public/stream") {
        Err(r) => {
            assert_eq!(r.status, 429);
            assert_eq!(r.retry_after.as_deref(), Some("7"));
        }
        Ok(_) => panic!("upgrade must be rejected with 429"),
    }
    match try_connect(&sim, "/public/stream") {
        Err(r) => assert_eq!(r.status, 503),
        Ok(_) => panic!("upgrade must be rejected with 503"),
    }
    let _ws = connect(&sim, "/public/stream");
    let snap = sim.snapshot();
    assert_eq!(snap.upgrades_rejected, 2);
    assert_eq!(snap.faults_injected, 2);
    assert_eq!(snap.connections.len(), 1);
    assert_eq!(snap.connections[0].id, ConnId(1));
}

#[test]
fn refuse_closes_listener_then_rebinds() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut live = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    let start = Instant::now();
    sim.inject(Fault::Refuse {
        duration: Duration::from_millis(300),
    });
    let err = TcpStream::connect(("127.0.0.1", sim.port())).expect_err("must be refused");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    // Live connections are unaffected.
    read_until(&mut live, "data during refuse", |v| {
        v.get("stream").is_some()
    });
    let deadline = Instant::now() + T;
    loop {
        match TcpStream::connect(("127.0.0.1", sim.port())) {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
                assert!(Instant::now() < deadline, "listener never came back");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    assert!(start.elapsed() >= Duration::from_millis(280));
    let mut ws = connect(&sim, "/public/stream?streams=ethusdt@bookTicker");
    read_until(&mut ws, "data after refuse", |v| v.get("stream").is_some());
}

#[test]
fn ground_truth_matches_client_on_clean_close() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream");
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@bookTicker","ethusdt@bookTicker","btcusdt@depth@100ms","ethusdt@depth"],"id":1}"#,
    );
    let mut got = Vec::new();
    let deadline = Instant::now() + T;
    while got.len() < 150 {
        match next_msg(&mut ws, deadline) {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                got.extend(seq_of(&v));
            }
            Some(Ok(_)) => {}
            other => panic!("read failed: {other:?}"),
        }
    }
    ws.close(None).expect("close");
    loop {
        match next_msg(&mut ws, deadline) {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                got.extend(seq_of(&v));
            }
            Some(Ok(_)) => {}
            Some(Err(WsError::ConnectionClosed)) => break,
            other => panic!("close failed: {other:?}"),
        }
    }
    assert!(sim.wait_until(T, |s| s.connections.iter().all(|c| !c.open)));
    let truth: Vec<(String, u64)> = sim
        .sent()
        .into_iter()
        .map(|r| {
            assert_eq!(r.conn, ConnId(1));
            (r.stream, r.seq)
        })
        .collect();
    assert_eq!(truth, got);
    assert!(got.iter().any(|(s, _)| s == "ethusdt@depth"));
    assert_eq!(sim.snapshot().messages_sent, got.len() as u64);
    assert_eq!(
        sim.snapshot().connections[0].messages_sent,
        got.len() as u64
    );
}

#[test]
fn tls_with_generated_ca() {
    let sim = Sim::start(SimConfig {
        tls: true,
        ..fast_cfg()
    })
    .expect("start");
    let pem = sim.ca_pem().expect("ca pem");
    assert!(sim.base_url().starts_with("wss://localhost:"));
    let dir = std::env::temp_dir().join(format!("wsfeed-sim-ca-{}.pem", std::process::id()));
    sim.write_ca_file(&dir).expect("write ca");
    let on_disk = std::fs::read_to_string(&dir).expect("read ca");
    let _ = std::fs::remove_file(&dir);
    assert_eq!(on_disk, pem);

    let mut roots = RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(pem.as_bytes()).expect("parse pem");
    roots.add(ca).expect("add root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    for name in ["localhost", "127.0.0.1"] {
        let server_name = ServerName::try_from(name.to_string()).expect("server name");
        let conn = ClientConnection::new(Arc::clone(&cfg), server_name).expect("client conn");
        let stream: Box<dyn Rw> = Box::new(StreamOwned::new(conn, tcp(&sim)));
        let url = format!(
            "wss://{name}:{}/public/stream?streams=btcusdt@bookTicker",
            sim.port()
        );
        let mut ws = handshake(tungstenite::client::client_with_config(url, stream, None))
            .expect("wss upgrade");
        let v = read_until(&mut ws, "tls data", |v| v.get("stream").is_some());
        assert_eq!(
            v["stream"], "btcusdt@bookTicker",
            "solusdt is not configured here"
        );
    }
}

#[test]
fn unknown_pre_subscription_is_400() {
    let sim = Sim::start(fast_cfg()).expect("start");
    match try_connect(&sim, "/public/stream?streams=solusdt@bookTicker") {
        Err(r) => assert_eq!(r.status, 400),
        Ok(_) => panic!("unknown stream must be rejected"),
    }
}

#[test]
fn server_ping_malformed_reset_and_stall() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut a = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    let mut b = connect(&sim, "/public/stream?streams=ethusdt@bookTicker");
    assert!(sim.wait_until(T, |s| s.connections.len() == 2));

    // ServerPing: tungstenite answers the ping while we keep reading.
    sim.inject_on(ConnId(1), Fault::ServerPing);
    let deadline = Instant::now() + T;
    while sim.snapshot().pongs_received == 0 {
        match next_msg(&mut a, deadline) {
            Some(Ok(_)) => {}
            other => panic!("reading a: {other:?}"),
        }
    }
    let snap = sim.snapshot();
    assert_eq!((snap.pings_sent, snap.pongs_received), (1, 1));

    // Malformed: one invalid text frame, not recorded.
    sim.inject_on(ConnId(1), Fault::Malformed);
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut a, deadline) {
            Some(Ok(Message::Text(t))) if serde_json::from_str::<Value>(t.as_str()).is_err() => {
                break
            }
            Some(Ok(_)) => {}
            other => panic!("expected malformed frame: {other:?}"),
        }
    }
    assert!(sim.sent().iter().all(|r| r.seq != 12));

    // Reset: the client sees an error, not a close frame.
    sim.inject_on(ConnId(1), Fault::Reset);
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut a, deadline) {
            Some(Ok(Message::Text(_))) => {}
            Some(Err(WsError::Io(e))) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
                break;
            }
            other => panic!("expected reset: {other:?}"),
        }
    }

    // Stall: nothing is sent or recorded during the stall, then FIN.
    sim.inject_on(
        ConnId(2),
        Fault::Stall {
            duration: Duration::from_millis(300),
        },
    );
    assert!(sim.wait_until(T, |s| s.conn(ConnId(2)).is_some_and(|c| c.stalled)));
    let recorded = sim.sent_on(ConnId(2)).len();
    // Drain whatever was in flight before the stall began.
    let deadline = Instant::now() + T;
    let mut after = 0;
    let end = loop {
        match next_msg(&mut b, deadline) {
            Some(Ok(Message::Text(_))) => after += 1,
            Some(Ok(_)) => {}
            Some(Err(e)) => break e,
            None => panic!("stalled connection never closed"),
        }
    };
    assert!(
        matches!(end, WsError::Protocol(_) | WsError::ConnectionClosed),
        "expected EOF without close frame, got {end:?}"
    );
    assert_eq!(sim.sent_on(ConnId(2)).len(), recorded);
    assert!(after <= recorded);
    assert!(sim.wait_until(T, |s| s.open_connections().count() == 0
        && s.faults_injected == 4));
}

#[test]
fn pong_timeout_closes_with_1008_and_later_connections_are_unaffected() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut silent = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    assert!(sim.wait_until(T, |s| s.connections.len() == 1));
    sim.inject(Fault::ServerPing);
    assert!(sim.wait_until(T, |s| s.pings_sent == 1));
    let _late = connect(&sim, "/public/stream");
    // The client does not read (so cannot pong) until the sim gave up on it
    // (the pong timeout is shortened under cfg(test)).
    assert!(sim.wait_until(T, |s| s.conn(ConnId(1)).is_some_and(|c| !c.open)));
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut silent, deadline) {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Policy);
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("expected close 1008, got {other:?}"),
        }
    }
    let snap = sim.snapshot();
    assert_eq!(snap.pongs_received, 0);
    assert_eq!(
        snap.faults_injected, 1,
        "the later connection is unaffected"
    );
    assert!(snap.conn(ConnId(2)).is_some_and(|c| c.open));
}

#[test]
fn shutdown_is_prompt() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let _a = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    let _b = connect(&sim, "/market/stream?streams=btcusdt@aggTrade");
    // A half-open TCP connection stuck before the upgrade.
    let _raw = tcp(&sim);
    assert!(sim.wait_until(T, |s| s.connections.len() == 2));
    let t0 = Instant::now();
    sim.shutdown();
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn thousands_of_messages_per_second_on_one_connection() {
    let sim = Sim::start(SimConfig {
        symbols: vec!["BTCUSDT".into(), "ETHUSDT".into(), "SOLUSDT".into()],
        book_interval: Duration::from_micros(500),
        ..fast_cfg()
    })
    .expect("start");
    let mut ws = connect(
        &sim,
        "/public/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker/solusdt@bookTicker",
    );
    let mut last_u = [0u64; 3];
    let mut n = 0u64;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_millis(500);
    while let Some(msg) = next_msg(&mut ws, deadline) {
        let Ok(Message::Text(t)) = msg else {
            panic!("read failed: {msg:?}");
        };
        let v: Value = serde_json::from_str(t.as_str()).expect("json");
        let i = match v["data"]["s"].as_str() {
            Some("BTCUSDT") => 0,
            Some("ETHUSDT") => 1,
            _ => 2,
        };
        let u = v["data"]["u"].as_u64().expect("u");
        assert!(
            last_u[i] == 0 || u == last_u[i] + 1,
            "no gaps for a fast reader"
        );
        last_u[i] = u;
        n += 1;
        if Instant::now() >= deadline {
            break;
        }
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    eprintln!("sim throughput: {n} msgs, {rate:.0} msg/s");
    // Nominal 6000 msg/s; be lenient on a loaded 2-core machine.
    assert!(rate > 1500.0, "only {rate:.0} msg/s");
}

#[test]
fn misbehaving_clients_do_not_hurt_the_sim() {
    let sim = Sim::start(fast_cfg()).expect("start");
    // Garbage instead of an HTTP upgrade.
    let mut raw = tcp(&sim);
    raw.write_all(b"\x16\x03\x01garbage\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 64];
    let _ = raw.read(&mut buf);
    // Odd but well-formed frames.
    let mut ws = connect(&sim, "/public/stream");
    ws.send(Message::binary(vec![0u8, 1, 2])).expect("binary");
    for bad in [
        "[1,2,3]",
        "null",
        r#"{"method":"SUBSCRIBE","params":[1],"id":2}"#,
        r#"{"method":"SUBSCRIBE","params":"btcusdt@bookTicker","id":3}"#,
        r#"{"method":"UNSUBSCRIBE","params":["nope"],"id":4}"#,
        r#"{"method":"FLY","id":{"deep":[1]}}"#,
    ] {
        send(&mut ws, bad);
        let v = read_until(&mut ws, bad, |v| v.get("id").is_some());
        assert!(
            v.get("error").is_some() || v["result"].is_null(),
            "{bad}: {v}"
        );
    }
    // An oversized message gets the connection dropped, nothing else.
    let _ = ws.send(Message::text("x".repeat(2 << 20)));
    let mut ok = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    read_until(&mut ok, "data", |v| v.get("stream").is_some());
    assert!(sim.wait_until(T, |s| s.conn(ConnId(1)).is_some_and(|c| !c.open)));
}

// ---------------------------------------------------------------------------
// Chaos faults: Reject, DropNext, IgnoreSubscribe, Mute, max_conn_age,
// PingFlood, Oversized / Binary / UnknownMessage, ground-truth superset.

/// The next data message as `(stream, seq)`, skipping anything else.
fn next_data(ws: &mut Client) -> (String, u64) {
    let v = read_until(ws, "data", |v| seq_of(v).is_some());
    seq_of(&v).expect("data message")
}

/// Reads (and hands to `on_msg`) until `done()` holds, checking `done` again
/// whenever a read times out; panics at the deadline or on a read error.
fn read_while_not(
    ws: &mut Client,
    what: &str,
    mut on_msg: impl FnMut(Message),
    done: impl Fn() -> bool,
) {
    let deadline = Instant::now() + T;
    while !done() {
        match ws.read() {
            Ok(msg) => on_msg(msg),
            Err(e) if is_timeout(&e) => {
                assert!(Instant::now() < deadline, "timed out waiting for {what}")
            }
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    }
}

/// Closes the client cleanly and returns the data `(stream, seq)` it read
/// until the close completed.
fn close_and_drain(ws: &mut Client) -> Vec<(String, u64)> {
    ws.close(None).expect("close");
    let deadline = Instant::now() + T;
    let mut got = Vec::new();
    loop {
        match next_msg(ws, deadline) {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                got.extend(seq_of(&v));
            }
            Some(Ok(_)) => {}
            Some(Err(WsError::ConnectionClosed)) => return got,
            other => panic!("close failed: {other:?}"),
        }
    }
}

fn truth_on(sim: &Sim, conn: ConnId) -> Vec<(String, u64)> {
    sim.sent_on(conn)
        .into_iter()
        .map(|r| (r.stream, r.seq))
        .collect()
}

#[test]
fn reject_any_status_with_retry_after_and_accepts_are_recorded() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let t0 = Instant::now();
    sim.inject(Fault::Reject {
        status: 418,
        count: 1,
        retry_after_s: Some(120),
    });
    sim.inject(Fault::Reject {
        status: 401,
        count: 1,
        retry_after_s: None,
    });
    // A listener fault given to inject_on acts on the listener too.
    sim.inject_on(
        ConnId(42),
        Fault::Reject {
            status: 403,
            count: 2,
            retry_after_s: Some(5),
        },
    );
    // Out-of-range statuses are sent as 500; count 0 is a no-op.
    sim.inject(Fault::Reject {
        status: 42,
        count: 1,
        retry_after_s: None,
    });
    sim.inject(Fault::Reject {
        status: 400,
        count: 0,
        retry_after_s: None,
    });
    let expected = [
        (418, Some("120")),
        (401, None),
        (403, Some("5")),
        (403, Some("5")),
        (500, None),
    ];
    for (status, retry_after) in expected {
        match try_connect(&sim, "/public/stream") {
            Err(r) => {
                assert_eq!(r.status, status);
                assert_eq!(r.retry_after.as_deref(), retry_after);
            }
            Ok(_) => panic!("upgrade must be rejected with {status}"),
        }
    }
    let _ws = connect(&sim, "/public/stream");
    let snap = sim.snapshot();
    assert_eq!(snap.upgrades_rejected, 5);
    assert_eq!(snap.faults_injected, 5);
    assert_eq!(snap.connections.len(), 1);
    // Every TCP accept is recorded before its client can see a response.
    assert_eq!(snap.accepts.len(), 6);
    assert!(snap.accepts.windows(2).all(|w| w[0] <= w[1]));
    assert!(snap.accepts.iter().all(|&at| at >= t0));
}

#[test]
fn drop_next_withholds_exactly_count_messages() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    let mut got: Vec<(String, u64)> = (0..5).map(|_| next_data(&mut ws)).collect();
    sim.inject_on(ConnId(1), Fault::DropNext { count: 7 });
    assert!(sim.wait_until(T, |s| s.withheld == 7));
    got.extend((0..30).map(|_| next_data(&mut ws)));
    got.extend(close_and_drain(&mut ws));

    let gaps: Vec<u64> = got
        .windows(2)
        .map(|w| w[1].1 - w[0].1)
        .filter(|&d| d != 1)
        .collect();
    assert_eq!(gaps, [8], "exactly one gap of 7 withheld messages");
    let at = got
        .windows(2)
        .position(|w| w[1].1 - w[0].1 == 8)
        .expect("gap");
    let missing: Vec<u64> = (got[at].1 + 1..got[at + 1].1).collect();
    assert_eq!(missing.len(), 7);

    assert!(sim.wait_until(T, |s| s.open_connections().count() == 0));
    let truth = truth_on(&sim, ConnId(1));
    assert_eq!(truth, got, "withheld messages are not recorded");
    assert!(truth.iter().all(|(_, seq)| !missing.contains(seq)));
    let snap = sim.snapshot();
    assert_eq!(snap.withheld, 7);
    assert_eq!(snap.conn(ConnId(1)).map(|c| c.withheld), Some(7));
    assert_eq!(snap.messages_sent, got.len() as u64);
}

#[test]
fn ignore_subscribe_gets_no_ack_and_the_next_one_works() {
    let sim = Sim::start(fast_cfg()).expect("start");
    sim.inject(Fault::IgnoreSubscribe { count: 1 });
    let mut ws = connect(&sim, "/public/stream");
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":1}"#,
    );
    assert!(sim.wait_until(T, |s| s.subscribes_ignored == 1));
    // Nothing at all arrives: no ack, no error, no data.
    let quiet_until = Instant::now() + Duration::from_millis(300);
    if let Some(msg) = next_msg(&mut ws, quiet_until) {
        panic!("ignored SUBSCRIBE produced {msg:?}");
    }
    // Requests are answered in order: this reply comes first, so there is no
    // late ack for id 1 either.
    send(&mut ws, r#"{"method":"LIST_SUBSCRIPTIONS","id":2}"#);
    let first = read_until(&mut ws, "list", |_| true);
    assert_eq!(first, serde_json::json!({"result": [], "id": 2}));
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":3}"#,
    );
    let ack = read_until(&mut ws, "ack", |v| v.get("id").is_some());
    assert_eq!(ack, serde_json::json!({"result": null, "id": 3}));
    assert_eq!(next_data(&mut ws).0, "btcusdt@bookTicker");
    let snap = sim.snapshot();
    assert_eq!(
        (
            snap.subscribe_requests,
            snap.subscribes_ignored,
            snap.faults_injected
        ),
        (2, 1, 1)
    );
}

#[test]
fn mute_stops_exactly_that_stream() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(
        &sim,
        "/public/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker",
    );
    let mut got: Vec<(String, u64)> = Vec::new();
    while !(got.iter().any(|(s, _)| s == "btcusdt@bookTicker")
        && got.iter().any(|(s, _)| s == "ethusdt@bookTicker"))
    {
        got.push(next_data(&mut ws));
    }
    sim.inject_on(
        ConnId(1),
        Fault::Mute {
            stream: "BTCUSDT@bookTicker".into(),
        },
    );
    assert!(sim.wait_until(T, |s| s
        .conn(ConnId(1))
        .is_some_and(|c| c.muted == ["btcusdt@bookTicker"])));
    let is_btc = |(s, _): &(String, u64)| s == "btcusdt@bookTicker";
    let btc_at_mute = truth_on(&sim, ConnId(1))
        .iter()
        .filter(|r| is_btc(r))
        .count();
    // The other stream keeps flowing ...
    let mut eth_after = 0;
    while eth_after < 60 {
        let d = next_data(&mut ws);
        eth_after += usize::from(!is_btc(&d));
        got.push(d);
    }
    // ... and pings are still answered.
    sim.inject_on(ConnId(1), Fault::ServerPing);
    read_while_not(
        &mut ws,
        "pong",
        |m| {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                got.extend(seq_of(&v));
            }
        },
        || sim.snapshot().pongs_received == 1,
    );
    got.extend(close_and_drain(&mut ws));
    assert!(sim.wait_until(T, |s| s.open_connections().count() == 0));
    let truth = truth_on(&sim, ConnId(1));
    assert_eq!(truth, got);
    assert_eq!(truth.iter().filter(|r| is_btc(r)).count(), btc_at_mute);
    let snap = sim.snapshot();
    let conn = snap.conn(ConnId(1)).expect("conn");
    assert_eq!(conn.streams, ["btcusdt@bookTicker", "ethusdt@bookTicker"]);
    assert_eq!((snap.withheld, snap.faults_injected), (0, 2));
}

#[test]
fn max_conn_age_closes_with_1001() {
    let age = Duration::from_millis(300);
    let sim = Sim::start(SimConfig {
        max_conn_age: Some(age),
        ..fast_cfg()
    })
    .expect("start");
    let t0 = Instant::now();
    let mut ws = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut ws, deadline) {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Away);
                assert_eq!(frame.reason.as_str(), "max connection age");
                break;
            }
            Some(Ok(Message::Text(_))) | Some(Ok(Message::Ping(_))) => {}
            other => panic!("expected close frame, got {other:?}"),
        }
    }
    assert!(t0.elapsed() >= age, "closed after {:?}", t0.elapsed());
    assert!(sim.wait_until(T, |s| s.age_closes == 1
        && s.open_connections().count() == 0));
    assert_eq!(sim.snapshot().faults_injected, 0);
    assert!(SimConfig::default().max_conn_age.is_none());
}

#[test]
fn ping_flood_sends_count_distinct_pings() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    assert!(sim.wait_until(T, |s| s.connections.len() == 1));
    sim.inject_on(ConnId(1), Fault::PingFlood { count: 25 });
    let mut payloads = std::collections::HashSet::new();
    // tungstenite answers each ping on the next read.
    read_while_not(
        &mut ws,
        "25 pongs",
        |m| {
            if let Message::Ping(p) = m {
                assert!(payloads.insert(p.to_vec()), "ping payloads are distinct");
            }
        },
        || sim.snapshot().pongs_received == 25,
    );
    assert_eq!(payloads.len(), 25);
    let snap = sim.snapshot();
    assert_eq!((snap.pings_sent, snap.faults_injected), (25, 1));
    assert!(snap.conn(ConnId(1)).is_some_and(|c| c.open));

    // A client that does not answer every ping is closed with 1008.
    let mut silent = connect(&sim, "/public/stream");
    assert!(sim.wait_until(T, |s| s.connections.len() == 2));
    sim.inject_on(ConnId(2), Fault::PingFlood { count: 3 });
    assert!(sim.wait_until(T, |s| s.conn(ConnId(2)).is_some_and(|c| !c.open)));
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut silent, deadline) {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Policy);
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("expected close 1008, got {other:?}"),
        }
    }
    let snap = sim.snapshot();
    assert_eq!((snap.pings_sent, snap.pongs_received), (28, 25));
}

#[test]
fn oversized_binary_and_unknown_frames_arrive_unrecorded() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream?streams=btcusdt@bookTicker");
    let mut got = vec![next_data(&mut ws)];
    sim.inject_on(ConnId(1), Fault::Oversized { bytes: 300_000 });
    sim.inject_on(ConnId(1), Fault::Binary);
    sim.inject_on(ConnId(1), Fault::UnknownMessage);
    let mut odd: Vec<&str> = Vec::new();
    let deadline = Instant::now() + T;
    while odd.len() < 3 {
        match next_msg(&mut ws, deadline) {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("valid json");
                if v["data"]["e"] == "padding" {
                    assert_eq!(t.len(), 300_000);
                    assert_eq!(v["stream"], "btcusdt@bookTicker");
                    odd.push("oversized");
                } else if v == serde_json::json!({"event": "mystery", "x": 1}) {
                    odd.push("unknown");
                } else {
                    got.push(seq_of(&v).expect("data"));
                }
            }
            Some(Ok(Message::Binary(b))) => {
                assert_eq!(b.as_ref(), [0xDE, 0xAD, 0xBE, 0xEF]);
                odd.push("binary");
            }
            Some(Ok(_)) => {}
            other => panic!("expected fault frames, got {other:?}"),
        }
    }
    assert_eq!(odd, ["oversized", "binary", "unknown"], "injection order");
    got.extend(close_and_drain(&mut ws));
    assert!(sim.wait_until(T, |s| s.open_connections().count() == 0));
    assert_eq!(truth_on(&sim, ConnId(1)), got, "fault frames are not data");
    let snap = sim.snapshot();
    assert_eq!(
        (snap.messages_sent, snap.faults_injected),
        (got.len() as u64, 3)
    );

    // Raw path: the bare data object; a tiny size yields the bare envelope.
    let mut raw = connect(&sim, "/public/ws");
    assert!(sim.wait_until(T, |s| s.connections.len() == 2));
    sim.inject_on(ConnId(2), Fault::Oversized { bytes: 1000 });
    sim.inject_on(ConnId(2), Fault::Oversized { bytes: 1 });
    let mut frames = Vec::new();
    let deadline = Instant::now() + T;
    while frames.len() < 2 {
        match next_msg(&mut raw, deadline) {
            Some(Ok(Message::Text(t))) => frames.push(t.as_str().to_string()),
            other => panic!("expected padding frames, got {other:?}"),
        }
    }
    assert_eq!(frames[0].len(), 1000);
    let v: Value = serde_json::from_str(&frames[0]).expect("valid json");
    assert_eq!(v["e"], "padding");
    assert_eq!(frames[1], r#"{"e":"padding","pad":""}"#);
    assert!(sim.sent_on(ConnId(2)).is_empty());
}

#[test]
fn received_is_a_prefix_of_sent_after_reset() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(
        &sim,
        "/public/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker/btcusdt@depth",
    );
    let mut got: Vec<(String, u64)> = (0..200).map(|_| next_data(&mut ws)).collect();
    sim.inject_on(ConnId(1), Fault::Reset);
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut ws, deadline) {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                got.extend(seq_of(&v));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) => break,
            None => panic!("reset never reached the client"),
        }
    }
    assert!(sim.wait_until(T, |s| s.open_connections().count() == 0));
    let truth = truth_on(&sim, ConnId(1));
    assert!(truth.len() >= got.len());
    assert_eq!(truth[..got.len()], got[..], "sent is a superset, in order");
}

// ---------------------------------------------------------------------------
// Bybit v5, OKX v5, the REST depth snapshot and book faults.

use std::collections::{BTreeMap, BTreeSet};

/// A fast simulator speaking `venue`, never closing idle connections.
fn venue_cfg(venue: SimVenue) -> SimConfig {
    SimConfig {
        venue,
        idle_timeout: None,
        ..fast_cfg()
    }
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

#[test]
fn venue_names_round_trip() {
    for v in [
        SimVenue::Binance,
        SimVenue::BybitSpot,
        SimVenue::BybitLinear,
        SimVenue::Okx,
    ] {
        assert_eq!(SimVenue::from_name(v.name()), Some(v));
    }
    assert_eq!(SimVenue::default(), SimVenue::Binance);
    assert_eq!(SimConfig::default().venue, SimVenue::Binance);
    assert!(!SimConfig::default().okx_checksum);
    assert_eq!(
        SimConfig::default().idle_timeout,
        Some(Duration::from_secs(30))
    );
    assert_eq!(SimVenue::Okx.ws_path(), Some("/ws/v5/public"));
}

// ----- Bybit ----------------------------------------------------------------

#[test]
fn bybit_linear_subscribe_snapshot_deltas_trades_tickers_match_the_docs() {
    let sim = Sim::start(venue_cfg(SimVenue::BybitLinear)).expect("start");
    assert!(matches!(
        try_connect(&sim, "/v5/public/spot"),
        Err(Rejected { status: 404, .. })
    ));
    let mut ws = connect(&sim, "/v5/public/linear");
    send(
        &mut ws,
        r#"{"op":"subscribe","req_id":"r1","args":["orderbook.50.BTCUSDT","orderbook.1.BTCUSDT","publicTrade.BTCUSDT","tickers.BTCUSDT"]}"#,
    );
    let ack = next_json(&mut ws, "ack");
    assert_eq!(
        keys(&ack),
        keys(&fixture("bybit/subscribe_success_linear.json"))
    );
    assert_eq!(ack["success"], true);
    assert_eq!(ack["ret_msg"], "");
    assert_eq!(ack["req_id"], "r1");
    assert_eq!(ack["op"], "subscribe");
    let conn_id = ack["conn_id"].as_str().expect("conn_id").to_string();
    assert_eq!(conn_id.len(), 36);

    let topic = |v: &Value| v["topic"].as_str().unwrap_or("").to_string();
    let count = |all: &[Value], t: &str, ty: &str| {
        all.iter()
            .filter(|v| topic(v) == t && v["type"] == ty)
            .count()
    };
    let all = collect(&mut ws, "bybit data", |all| {
        count(all, "orderbook.50.BTCUSDT", "delta") >= 5
            && count(all, "orderbook.1.BTCUSDT", "snapshot") >= 5
            && count(all, "publicTrade.BTCUSDT", "snapshot") >= 3
            && count(all, "tickers.BTCUSDT", "delta") >= 2
    });

    // orderbook.50: snapshot first, then deltas with consecutive u.
    let ob50: Vec<&Value> = all
        .iter()
        .filter(|v| topic(v) == "orderbook.50.BTCUSDT")
        .collect();
    assert_eq!(ob50[0]["type"], "snapshot");
    let snap_fx = fixture("bybit/orderbook_50_snapshot.json");
    let delta_fx = fixture("bybit/orderbook_50_delta.json");
    assert_eq!(keys(ob50[0]), keys(&snap_fx));
    assert_eq!(data_keys(ob50[0]), data_keys(&snap_fx));
    let mut book = Local::default();
    book.apply(&ob50[0]["data"]["b"], &ob50[0]["data"]["a"]);
    assert!(
        book.bids.len() >= 30 && book.bids.len() <= 50,
        "{}",
        book.bids.len()
    );
    let mut u = ob50[0]["data"]["u"].as_u64().expect("u");
    for d in &ob50[1..] {
        assert_eq!(d["type"], "delta");
        assert_eq!(keys(d), keys(&delta_fx));
        assert_eq!(data_keys(d), data_keys(&delta_fx));
        assert_eq!(d["data"]["s"], "BTCUSDT");
        let du = d["data"]["u"].as_u64().expect("u");
        assert_eq!(du, u + 1, "deltas are consecutive");
        u = du;
        assert!(d["cts"].as_u64().expect("cts") <= d["ts"].as_u64().expect("ts"));
        book.apply(&d["data"]["b"], &d["data"]["a"]);
        assert!(!book.crossed());
    }
    // orderbook.1: snapshots only, one level, consecutive u.
    let ob1: Vec<&Value> = all
        .iter()
        .filter(|v| topic(v) == "orderbook.1.BTCUSDT")
        .collect();
    for w in ob1.windows(2) {
        assert_eq!(w[0]["type"], "snapshot");
        assert_eq!(
            w[1]["data"]["u"].as_u64(),
            w[0]["data"]["u"].as_u64().map(|u| u + 1)
        );
        assert_eq!(w[1]["data"]["b"].as_array().map(Vec::len), Some(1));
        assert!(
            units(w[1]["data"]["b"][0][0].as_str().expect("b"))
                < units(w[1]["data"]["a"][0][0].as_str().expect("a"))
        );
    }
    assert_eq!(data_keys(ob1[0]), data_keys(&snap_fx));
    // publicTrade: the documented fields, a UUID trade id on linear.
    let trade = all
        .iter()
        .find(|v| topic(v) == "publicTrade.BTCUSDT")
        .expect("trade");
    let trade_fx = fixture("bybit/public_trade.json");
    assert_eq!(keys(trade), keys(&trade_fx));
    assert_eq!(data_keys(trade), data_keys(&trade_fx));
    assert_eq!(trade["data"][0]["i"].as_str().map(str::len), Some(36));
    // tickers: a full snapshot, then deltas with a subset of its fields.
    let tickers: Vec<&Value> = all
        .iter()
        .filter(|v| topic(v) == "tickers.BTCUSDT")
        .collect();
    let tick_fx = fixture("bybit/tickers_linear.json");
    assert_eq!(tickers[0]["type"], "snapshot");
    assert_eq!(keys(tickers[0]), keys(&tick_fx));
    assert_eq!(data_keys(tickers[0]), data_keys(&tick_fx));
    for t in &tickers[1..] {
        assert_eq!(t["type"], "delta");
        let k = data_keys(t);
        assert!(k.is_subset(&data_keys(&tick_fx)), "{k:?}");
        for f in ["markPrice", "indexPrice", "fundingRate", "nextFundingTime"] {
            assert!(k.contains(f), "{f} in {k:?}");
        }
        assert!(t["data"]["fundingRate"]
            .as_str()
            .and_then(|r| r.parse::<f64>().ok())
            .is_some());
    }

    // Ground truth: the snapshot is recorded with the venue's u.
    let truth = sim.sent_on(ConnId(1));
    let first = truth
        .iter()
        .find(|r| r.stream == "orderbook.50.BTCUSDT")
        .expect("ob50 record");
    assert_eq!(first.kind, SentKind::BookSnapshot);
    assert_eq!(Some(first.seq), ob50[0]["data"]["u"].as_u64());
    assert!(truth
        .iter()
        .filter(|r| r.stream == "orderbook.50.BTCUSDT")
        .skip(1)
        .all(|r| r.kind == SentKind::BookUpdate && r.prev_seq.is_none()));
    assert!(truth.iter().any(|r| r.kind == SentKind::Trade));
    let snap = sim.snapshot();
    assert_eq!(snap.subscribe_requests, 1);
    assert_eq!(
        snap.conn(ConnId(1)).map(|c| c.streams.len()),
        Some(4),
        "{:?}",
        snap.conn(ConnId(1))
    );
}

#[test]
fn bybit_spot_rejects_like_the_venue() {
    let sim = Sim::start(venue_cfg(SimVenue::BybitSpot)).expect("start");
    let mut ws = connect(&sim, "/v5/public/spot");
    // More than 10 args in one request.
    let args: Vec<String> = (0..11)
        .map(|_| "\"publicTrade.BTCUSDT\"".to_string())
        .collect();
    send(
        &mut ws,
        &format!(r#"{{"op":"subscribe","args":[{}]}}"#, args.join(",")),
    );
    let err = next_json(&mut ws, "args size");
    assert_eq!(
        keys(&err),
        keys(&fixture("bybit/subscribe_failure_args_size.json"))
    );
    assert_eq!(err["success"], false);
    assert_eq!(err["ret_msg"], "args size >10");
    // An unknown topic fails the whole request.
    send(
        &mut ws,
        r#"{"op":"subscribe","req_id":"x","args":["publicTrade.BTCUSDT","orderbook.200.BTCUSDT"]}"#,
    );
    let err = next_json(&mut ws, "unknown topic");
    assert_eq!(err["success"], false);
    assert_eq!(
        err["ret_msg"],
        "error:handler not found,topic:orderbook.200.BTCUSDT"
    );
    assert_eq!(err["req_id"], "x");
    assert!(sim.snapshot().connections[0].streams.is_empty());
    // Spot success: ret_msg "subscribe", the req_id echoed.
    send(
        &mut ws,
        r#"{"op":"subscribe","req_id":"10001","args":["publicTrade.BTCUSDT","tickers.ETHUSDT"]}"#,
    );
    let ok = next_json(&mut ws, "ack");
    assert_eq!(
        keys(&ok),
        keys(&fixture("bybit/subscribe_success_spot.json"))
    );
    assert_eq!(
        (ok["success"].clone(), ok["ret_msg"].clone()),
        (Value::Bool(true), Value::from("subscribe"))
    );
    // Subscribing again to a live topic is an error.
    send(
        &mut ws,
        r#"{"op":"subscribe","args":["publicTrade.BTCUSDT"]}"#,
    );
    let all = collect(&mut ws, "dup", |all| {
        all.iter()
            .any(|v| v.get("success") == Some(&Value::Bool(false)))
            && all
                .iter()
                .filter(|v| v["topic"] == "tickers.ETHUSDT")
                .count()
                >= 2
            && all.iter().any(|v| v["topic"] == "publicTrade.BTCUSDT")
    });
    let dup = all
        .iter()
        .find(|v| v.get("success").is_some())
        .expect("dup reply");
    assert_eq!(
        dup["ret_msg"],
        "error:already subscribed,topic:publicTrade.BTCUSDT"
    );
    assert!(
        dup.get("req_id").is_none(),
        "spot without req_id: none back"
    );
    // Spot tickers are snapshots with the documented spot fields; spot trades
    // have no tick direction and a numeric id.
    let tick = all
        .iter()
        .find(|v| v["topic"] == "tickers.ETHUSDT")
        .expect("ticker");
    let fx = fixture("bybit/tickers_spot.json");
    assert_eq!((keys(tick), data_keys(tick)), (keys(&fx), data_keys(&fx)));
    assert!(all
        .iter()
        .filter(|v| v["topic"] == "tickers.ETHUSDT")
        .all(|v| v["type"] == "snapshot"));
    let trade = all
        .iter()
        .find(|v| v["topic"] == "publicTrade.BTCUSDT")
        .expect("trade");
    let mut fx_keys = data_keys(&fixture("bybit/public_trade.json"));
    fx_keys.remove("L");
    assert_eq!(data_keys(trade), fx_keys);
    assert!(trade["data"][0]["i"]
        .as_str()
        .expect("i")
        .parse::<u64>()
        .is_ok());
    // Unsubscribe, unknown op, not JSON.
    send(
        &mut ws,
        r#"{"op":"unsubscribe","args":["publicTrade.BTCUSDT"]}"#,
    );
    let un = collect(&mut ws, "unsub", |all| {
        all.iter().any(|v| v["op"] == "unsubscribe")
    });
    assert_eq!(
        un.last().map(|v| v["success"].clone()),
        Some(Value::Bool(true))
    );
    send(&mut ws, r#"{"op":"fly"}"#);
    let bad = collect(&mut ws, "bad op", |all| {
        all.iter().any(|v| v["op"] == "fly")
    });
    assert_eq!(
        bad.last().map(|v| v["success"].clone()),
        Some(Value::Bool(false))
    );
    send(&mut ws, "{nope");
    let bad = collect(&mut ws, "bad json", |all| all.iter().any(|v| v["op"] == ""));
    assert_eq!(
        bad.last().map(|v| v["success"].clone()),
        Some(Value::Bool(false))
    );
    assert!(sim.wait_until(T, |s| s
        .conn(ConnId(1))
        .is_some_and(|c| c.streams == ["tickers.ETHUSDT"])));
    assert_eq!(sim.snapshot().subscribe_requests, 4);
}

#[test]
fn bybit_ping_pong_and_idle_close() {
    let sim = Sim::start(SimConfig {
        idle_timeout: Some(Duration::from_millis(600)),
        ..venue_cfg(SimVenue::BybitLinear)
    })
    .expect("start");
    let mut alive = connect(&sim, "/v5/public/linear");
    let t0 = Instant::now();
    let mut silent = connect(&sim, "/v5/public/linear");
    assert!(sim.wait_until(T, |s| s.connections.len() == 2));
    send(&mut alive, r#"{"op":"ping","req_id":"100001"}"#);
    let pong = next_json(&mut alive, "pong");
    assert_eq!(keys(&pong), keys(&fixture("bybit/pong_linear.json")));
    assert_eq!(pong["ret_msg"], "pong");
    assert_eq!(pong["op"], "ping");
    assert_eq!(pong["req_id"], "100001");
    send(&mut alive, r#"{"op":"ping"}"#);
    assert_eq!(
        next_json(&mut alive, "pong")["req_id"],
        "",
        "linear echoes an empty req_id"
    );
    // The pinging connection outlives the silent one.
    let deadline = Instant::now() + T;
    let mut pings = 2;
    while sim.snapshot().conn(ConnId(2)).is_some_and(|c| c.open) {
        assert!(Instant::now() < deadline, "idle connection never closed");
        send(&mut alive, r#"{"op":"ping"}"#);
        assert_eq!(next_json(&mut alive, "pong")["ret_msg"], "pong");
        pings += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(600),
        "closed after {:?}",
        t0.elapsed()
    );
    let deadline = Instant::now() + T;
    loop {
        match next_msg(&mut silent, deadline) {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Away);
                assert_eq!(frame.reason.as_str(), "idle timeout");
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("expected close, got {other:?}"),
        }
    }
    let snap = sim.snapshot();
    assert_eq!((snap.idle_closes, snap.venue_pings), (1, pings));
    assert!(snap.conn(ConnId(1)).is_some_and(|c| c.open));
    // Spot: no req_id, none back.
    let spot = Sim::start(venue_cfg(SimVenue::BybitSpot)).expect("start");
    let mut ws = connect(&spot, "/v5/public/spot");
    send(&mut ws, r#"{"op":"ping"}"#);
    assert_eq!(
        keys(&next_json(&mut ws, "pong")),
        keys(&fixture("bybit/pong_spot.json"))
    );
}

// ----- OKX ------------------------------------------------------------------

#[test]
fn okx_subscribe_events_errors_and_data_match_the_docs() {
    let sim = Sim::start(venue_cfg(SimVenue::Okx)).expect("start");
    assert!(matches!(
        try_connect(&sim, "/ws/v5/private"),
        Err(Rejected { status: 404, .. })
    ));
    let mut ws = connect(&sim, "/ws/v5/public");
    send(
        &mut ws,
        r#"{"id":"7","op":"subscribe","args":[
            {"channel":"books","instId":"BTC-USDT-SWAP"},
            {"channel":"bbo-tbt","instId":"BTC-USDT-SWAP"},
            {"channel":"trades","instId":"BTC-USDT"},
            {"channel":"funding-rate","instId":"BTC-USDT-SWAP"},
            {"channel":"mark-price","instId":"BTC-USDT-SWAP"},
            {"channel":"books","instId":"XRP-USDT-SWAP"},
            {"channel":"funding-rate","instId":"BTC-USDT"}]}"#,
    );
    let channel = |v: &Value| v["arg"]["channel"].as_str().unwrap_or("").to_string();
    let data = |all: &[Value], c: &str| {
        all.iter()
            .filter(|v| v.get("data").is_some() && channel(v) == c)
            .count()
    };
    let all = collect(&mut ws, "okx", |all| {
        data(all, "books") >= 6
            && data(all, "bbo-tbt") >= 3
            && data(all, "trades") >= 3
            && data(all, "funding-rate") >= 2
            && data(all, "mark-price") >= 2
            && all.iter().filter(|v| v["event"] == "error").count() == 2
    });
    let events: Vec<&Value> = all.iter().filter(|v| v.get("event").is_some()).collect();
    let sub_fx = fixture("okx/subscribe_event.json");
    let err_fx = fixture("okx/error_event.json");
    let subs: Vec<&&Value> = events
        .iter()
        .filter(|v| v["event"] == "subscribe")
        .collect();
    assert_eq!(subs.len(), 5);
    for s in &subs {
        assert_eq!(keys(s), keys(&sub_fx));
        assert_eq!(s["id"], "7");
    }
    assert_eq!(
        subs[2]["arg"],
        serde_json::json!({"channel": "trades", "instId": "BTC-USDT"})
    );
    let errs: Vec<&&Value> = events.iter().filter(|v| v["event"] == "error").collect();
    for e in &errs {
        assert_eq!(keys(e), keys(&err_fx));
        assert_eq!(e["code"], "60018");
    }
    assert_eq!(
        errs[0]["msg"],
        "Wrong URL or channel:books,instId:XRP-USDT-SWAP doesn't exist. Please use the correct URL, channel and parameters referring to API document."
    );
    assert_eq!(subs[0]["connId"], errs[0]["connId"]);
    assert_eq!(subs[0]["connId"].as_str().map(str::len), Some(8));

    // books: a snapshot (prevSeqId -1), then updates chained by prevSeqId.
    let books: Vec<&Value> = all
        .iter()
        .filter(|v| v.get("data").is_some() && channel(v) == "books")
        .collect();
    let snap_fx = fixture("okx/books_snapshot.json");
    let upd_fx = fixture("okx/books_update.json");
    assert_eq!(books[0]["action"], "snapshot");
    assert_eq!(
        (keys(books[0]), data_keys(books[0])),
        (keys(&snap_fx), data_keys(&snap_fx))
    );
    assert_eq!(books[0]["data"][0]["prevSeqId"], -1);
    let mut local = Local::default();
    let d0 = &books[0]["data"][0];
    local.apply(&d0["bids"], &d0["asks"]);
    let mut seq = d0["seqId"].as_i64().expect("seqId");
    for b in &books[1..] {
        assert_eq!(b["action"], "update");
        assert_eq!((keys(b), data_keys(b)), (keys(&upd_fx), data_keys(&upd_fx)));
        let d = &b["data"][0];
        assert_eq!(d["prevSeqId"].as_i64(), Some(seq), "chained");
        assert!(d["seqId"].as_i64().expect("seqId") > seq);
        seq = d["seqId"].as_i64().expect("seqId");
        assert_eq!(d["checksum"], 0, "checksum off: 0 as on OKX production");
        for l in d["bids"]
            .as_array()
            .expect("bids")
            .iter()
            .chain(d["asks"].as_array().expect("asks"))
        {
            assert_eq!(l.as_array().map(Vec::len), Some(4));
            assert_eq!(l[2], "0");
        }
        local.apply(&d["bids"], &d["asks"]);
        assert!(!local.crossed());
    }
    for (c, fx) in [
        ("bbo-tbt", "okx/bbo_tbt.json"),
        ("trades", "okx/trades.json"),
        ("funding-rate", "okx/funding_rate.json"),
        ("mark-price", "okx/mark_price.json"),
    ] {
        let m = all
            .iter()
            .find(|v| v.get("data").is_some() && channel(v) == c)
            .expect(c);
        let fx = fixture(fx);
        assert_eq!((keys(m), data_keys(m)), (keys(&fx), data_keys(&fx)), "{c}");
    }
    let trade = all
        .iter()
        .find(|v| channel(v) == "trades" && v.get("data").is_some())
        .expect("trade");
    assert_eq!(trade["data"][0]["instId"], "BTC-USDT");
    let mark = all
        .iter()
        .find(|v| channel(v) == "mark-price" && v.get("data").is_some())
        .expect("mark");
    assert_eq!(mark["data"][0]["instType"], "SWAP");

    // Ground truth.
    let truth = sim.sent_on(ConnId(1));
    let b: Vec<&SentRecord> = truth
        .iter()
        .filter(|r| r.stream == "books:BTC-USDT-SWAP")
        .collect();
    assert_eq!((b[0].kind, b[0].prev_seq), (SentKind::BookSnapshot, None));
    assert!(b
        .windows(2)
        .all(|w| w[1].prev_seq == Some(w[0].seq) && w[1].kind == SentKind::BookUpdate));
    assert!(truth
        .iter()
        .any(|r| r.stream == "funding-rate:BTC-USDT-SWAP" && r.kind == SentKind::Funding));

    // Unsubscribe, bad requests.
    send(
        &mut ws,
        r#"{"op":"unsubscribe","args":[{"channel":"books","instId":"BTC-USDT-SWAP"}]}"#,
    );
    collect(&mut ws, "unsub", |all| {
        all.iter().any(|v| v["event"] == "unsubscribe")
    });
    send(&mut ws, "{nope");
    let bad = collect(&mut ws, "60012", |all| {
        all.iter().any(|v| v["event"] == "error")
    });
    assert_eq!(
        bad.last().map(|v| v["code"].clone()),
        Some(Value::from("60012"))
    );
    assert!(sim.wait_until(T, |s| s
        .conn(ConnId(1))
        .is_some_and(|c| c.streams.len() == 4)));
}

#[test]
fn okx_ping_pong_and_idle_close() {
    let sim = Sim::start(SimConfig {
        idle_timeout: Some(Duration::from_millis(500)),
        ..venue_cfg(SimVenue::Okx)
    })
    .expect("start");
    let mut alive = connect(&sim, "/ws/v5/public");
    let _silent = connect(&sim, "/ws/v5/public");
    assert!(sim.wait_until(T, |s| s.connections.len() == 2));
    let deadline = Instant::now() + T;
    while sim.snapshot().conn(ConnId(2)).is_some_and(|c| c.open) {
        assert!(Instant::now() < deadline, "idle connection never closed");
        send(&mut alive, "ping");
        assert_eq!(next_text(&mut alive, "pong"), "pong");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Subscribed data does not keep a connection alive: only client text does.
    send(
        &mut alive,
        r#"{"op":"subscribe","args":[{"channel":"bbo-tbt","instId":"ETH-USDT"}]}"#,
    );
    assert!(sim.wait_until(T, |s| s.conn(ConnId(1)).is_some_and(|c| !c.open)));
    let snap = sim.snapshot();
    assert_eq!(snap.idle_closes, 2);
    assert!(snap.venue_pings >= 4);
}

#[test]
fn okx_checksum_is_crc32_of_the_top_25_and_bad_checksum_breaks_it_once() {
    let sim = Sim::start(SimConfig {
        okx_checksum: true,
        ..venue_cfg(SimVenue::Okx)
    })
    .expect("start");
    let mut ws = connect(&sim, "/ws/v5/public");
    send(
        &mut ws,
        r#"{"op":"subscribe","args":[{"channel":"books","instId":"ETH-USDT-SWAP"}]}"#,
    );
    assert_eq!(next_json(&mut ws, "ack")["event"], "subscribe");
    // Every checksum is the CRC32 of the local book's top 25 (strings as
    // received) ...
    let mut local = Local::default();
    let mut check = |ws: &mut Client| -> bool {
        let v = next_json(ws, "books");
        let d = &v["data"][0];
        if v["action"] == "snapshot" {
            local = Local::default();
        }
        local.apply(&d["bids"], &d["asks"]);
        let cs = d["checksum"].as_i64().expect("checksum");
        assert_ne!(cs, 0);
        cs == i64::from(local.okx_checksum())
    };
    for _ in 0..20 {
        assert!(check(&mut ws), "checksum of the local book");
    }
    // ... except one after BadChecksum.
    sim.inject_book_on(ConnId(1), BookFault::BadChecksum);
    let deadline = Instant::now() + T;
    while check(&mut ws) {
        assert!(Instant::now() < deadline, "no wrong checksum");
    }
    for _ in 0..10 {
        assert!(check(&mut ws), "one wrong checksum only");
    }
    assert_eq!(sim.snapshot().faults_injected, 1);
}

// ----- Binance REST ---------------------------------------------------------

/// One HTTP request: (status, raw headers, body).
fn http_get(mut stream: Box<dyn Rw>, target: &str) -> (u16, String, String) {
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: sim-test\r\n\r\n");
    stream.write_all(req.as_bytes()).expect("write request");
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

fn rest(sim: &Sim, target: &str) -> (u16, String, Value) {
    let (status, head, body) = http_get(Box::new(tcp(sim)), target);
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{target}: {e}: {body}"));
    (status, head, v)
}

/// Levels of a REST snapshot or a diff as `Local` input.
fn local_of(snapshot: &Value) -> Local {
    let mut l = Local::default();
    l.apply(&snapshot["bids"], &snapshot["asks"]);
    l
}

#[test]
fn binance_rest_depth_endpoints_and_errors() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let (status, head, spot) = rest(&sim, "/api/v3/depth?symbol=BTCUSDT&limit=5");
    assert_eq!(status, 200);
    assert!(head.contains("Connection: close"), "{head}");
    assert_eq!(keys(&spot), keys(&fixture("binance/depth_spot.json")));
    assert_eq!(spot["bids"].as_array().map(Vec::len), Some(5));
    assert_eq!(spot["bids"][0].as_array().map(Vec::len), Some(2));
    let (_, _, usdm) = rest(&sim, "/fapi/v1/depth?symbol=ETHUSDT&limit=1000");
    assert_eq!(keys(&usdm), keys(&fixture("binance/depth_usdm.json")));
    let l = local_of(&usdm);
    assert!(
        l.bids.len() >= 30 && l.asks.len() >= 30,
        "whole book: {}",
        l.bids.len()
    );
    assert!(!l.crossed());
    // Bids best first, asks best first.
    let bids: Vec<i64> = usdm["bids"]
        .as_array()
        .expect("bids")
        .iter()
        .map(|l| units(l[0].as_str().expect("p")))
        .collect();
    assert!(bids.windows(2).all(|w| w[0] > w[1]));
    let (_, _, dflt) = rest(&sim, "/api/v3/depth?symbol=ETHUSDT");
    assert!(dflt["bids"]
        .as_array()
        .map(Vec::len)
        .is_some_and(|n| n <= 100));
    for (target, status, code) in [
        ("/fapi/v1/depth?symbol=BTCUSDT&limit=7", 400, -1130),
        ("/api/v3/depth?limit=5", 400, -1102),
        ("/api/v3/depth?symbol=XRPUSDT", 400, -1121),
        ("/api/v3/depth?symbol=BTCUSDT&limit=x", 400, -1100),
        ("/api/v3/ticker", 404, -1),
    ] {
        let (s, _, v) = rest(&sim, target);
        assert_eq!(
            (s, v["code"].as_i64()),
            (status, Some(code)),
            "{target}: {v}"
        );
    }
    // Over TLS, on the same port as the WebSockets.
    let tls_sim = Sim::start(SimConfig {
        tls: true,
        ..fast_cfg()
    })
    .expect("start");
    let (status, _, body) = http_get(tls_stream(&tls_sim), "/api/v3/depth?symbol=BTCUSDT&limit=3");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["asks"].as_array().map(Vec::len), Some(3));
    let mut ws = match handshake(tungstenite::client::client_with_config(
        format!(
            "wss://localhost:{}/stream?streams=btcusdt@depth",
            tls_sim.port()
        ),
        tls_stream(&tls_sim),
        None,
    )) {
        Ok(ws) => ws,
        Err(e) => panic!("wss upgrade: {e:?}"),
    };
    read_until(&mut ws, "depth over tls", |v| {
        v["data"]["e"] == "depthUpdate"
    });
    assert_eq!(tls_sim.snapshot().rest_requests, 1);
    // Other venues serve no REST.
    let okx = Sim::start(venue_cfg(SimVenue::Okx)).expect("start");
    assert_eq!(rest(&okx, "/api/v3/depth?symbol=BTCUSDT").0, 404);
    assert_eq!(sim.snapshot().rest_requests, 8);
    assert!(
        sim.snapshot().connections.is_empty(),
        "REST is not a WebSocket connection"
    );
}

fn tls_stream(sim: &Sim) -> Box<dyn Rw> {
    let pem = sim.ca_pem().expect("ca pem");
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem"))
        .expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let name = ServerName::try_from("localhost".to_string()).expect("name");
    let conn = ClientConnection::new(cfg, name).expect("client");
    Box::new(StreamOwned::new(conn, tcp(sim)))
}

/// Binance's documented procedure (spot): buffer diffs, fetch a snapshot,
/// drop diffs with `u <= lastUpdateId`, the first applied one has
/// `U <= lastUpdateId + 1 <= u`, then each `U` is the previous `u + 1`.
/// Returns the local book and the update id it is at.
fn sync_binance(
    sim: &Sim,
    ws: &mut Client,
    pending: &mut Vec<Value>,
    target: &str,
) -> (Local, u64) {
    let (_, _, snap) = rest(sim, target);
    let last = snap["lastUpdateId"].as_u64().expect("lastUpdateId");
    let mut local = local_of(&snap);
    let deadline = Instant::now() + T;
    loop {
        if pending.is_empty() {
            assert!(Instant::now() < deadline, "no diff after the snapshot");
            let v = read_until(ws, "diff", |v| v.get("stream").is_some());
            pending.push(v);
            continue;
        }
        let v = pending.remove(0);
        let d = &v["data"];
        if d["e"] != "depthUpdate" {
            continue;
        }
        let (big_u, u) = (d["U"].as_u64().expect("U"), d["u"].as_u64().expect("u"));
        if u <= last {
            continue;
        }
        assert!(
            big_u <= last + 1 && last < u,
            "first diff [{big_u};{u}] vs snapshot {last}"
        );
        local.apply(&d["b"], &d["a"]);
        return (local, u);
    }
}

#[test]
fn binance_snapshot_plus_diffs_track_the_book_exactly() {
    // Several book changes per diff: a snapshot usually falls inside a diff.
    let sim = Sim::start(SimConfig {
        usdm_routing: false,
        ..fast_cfg()
    })
    .expect("start");
    let mut ws = connect(
        &sim,
        "/stream?streams=btcusdt@bookTicker/btcusdt@depth@100ms",
    );
    let mut pending: Vec<Value> = (0..20)
        .map(|_| read_until(&mut ws, "buffer", |v| v.get("stream").is_some()))
        .collect();
    let (mut local, mut id) = sync_binance(
        &sim,
        &mut ws,
        &mut pending,
        "/api/v3/depth?symbol=BTCUSDT&limit=1000",
    );
    // From here every diff's top of book equals the bookTicker of its last id.
    let mut quotes: BTreeMap<u64, (String, String)> = BTreeMap::new();
    let mut checked = 0;
    let mut handle = |v: &Value, local: &mut Local, id: &mut u64, checked: &mut i32| {
        let d = &v["data"];
        match d["e"].as_str() {
            Some("bookTicker") => {
                quotes.insert(
                    d["u"].as_u64().expect("u"),
                    (
                        d["b"].as_str().expect("b").into(),
                        d["a"].as_str().expect("a").into(),
                    ),
                );
            }
            Some("depthUpdate") => {
                assert_eq!(d["U"].as_u64(), Some(*id + 1));
                local.apply(&d["b"], &d["a"]);
                *id = d["u"].as_u64().expect("u");
                let q = quotes
                    .get(id)
                    .unwrap_or_else(|| panic!("bookTicker {id} before its diff"));
                assert_eq!(
                    local.best_bid().map(|b| &b.0),
                    Some(&q.0),
                    "best bid at {id}"
                );
                assert_eq!(
                    local.best_ask().map(|a| &a.0),
                    Some(&q.1),
                    "best ask at {id}"
                );
                assert!(!local.crossed());
                *checked += 1;
            }
            _ => {}
        }
    };
    for v in std::mem::take(&mut pending) {
        handle(&v, &mut local, &mut id, &mut checked);
    }
    while checked < 15 {
        let v = read_until(&mut ws, "data", |v| v.get("stream").is_some());
        handle(&v, &mut local, &mut id, &mut checked);
    }

    // One change per diff: any snapshot's id is some diff's u, so the whole
    // book can be compared.
    let fine = Sim::start(SimConfig {
        usdm_routing: false,
        book_interval: Duration::from_millis(10),
        depth_interval: Duration::from_millis(1),
        ..fast_cfg()
    })
    .expect("start");
    let mut ws = connect(&fine, "/stream?streams=ethusdt@depth");
    let mut pending: Vec<Value> = (0..3)
        .map(|_| read_until(&mut ws, "buffer", |v| v.get("stream").is_some()))
        .collect();
    let (mut local, mut id) = sync_binance(
        &fine,
        &mut ws,
        &mut pending,
        "/fapi/v1/depth?symbol=ETHUSDT&limit=1000",
    );
    for round in 0..3 {
        let (_, _, snap) = rest(&fine, "/fapi/v1/depth?symbol=ETHUSDT&limit=1000");
        let target = snap["lastUpdateId"].as_u64().expect("id");
        while id < target {
            let v = if pending.is_empty() {
                read_until(&mut ws, "diff", |v| v.get("stream").is_some())
            } else {
                pending.remove(0)
            };
            let d = &v["data"];
            assert_eq!(d["pu"].as_u64(), Some(id), "round {round}");
            local.apply(&d["b"], &d["a"]);
            id = d["u"].as_u64().expect("u");
        }
        assert_eq!(id, target, "one change per diff");
        assert_eq!(local, local_of(&snap), "book at {target}, round {round}");
    }
}

#[test]
fn snapshot_stale_serves_the_oldest_book_once() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream?streams=btcusdt@depth");
    let first = read_until(&mut ws, "diff", |v| v["data"]["e"] == "depthUpdate");
    let first_u = first["data"]["U"].as_u64().expect("U");
    sim.inject_book(BookFault::SnapshotStale);
    let (_, _, stale) = rest(&sim, "/fapi/v1/depth?symbol=BTCUSDT&limit=1000");
    let stale_id = stale["lastUpdateId"].as_u64().expect("id");
    assert!(
        stale_id < first_u,
        "stale {stale_id} < first buffered U {first_u}"
    );
    let (_, _, fresh) = rest(&sim, "/fapi/v1/depth?symbol=BTCUSDT&limit=1000");
    assert!(fresh["lastUpdateId"].as_u64().expect("id") >= first_u);
    let snap = sim.snapshot();
    assert_eq!((snap.stale_snapshots_served, snap.faults_injected), (1, 1));
    assert!(BookFault::SnapshotStale.is_listener_fault());
}

// ----- Book faults on each venue ---------------------------------------------
//
// A fault acts on the first book message after the connection armed it; the
// client may still have older messages queued, so each test reads until the
// anomaly shows (bounded by a deadline), then checks the messages after it.

/// Arms `fault` on `conn` and waits until the connection has taken it.
fn arm(sim: &Sim, conn: ConnId, fault: BookFault) {
    let before = sim.snapshot().faults_injected;
    sim.inject_book_on(conn, fault);
    assert!(sim.wait_until(T, |s| s.faults_injected == before + 1));
}

/// The next JSON message satisfying `is`.
fn next_where(ws: &mut Client, what: &str, is: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + T;
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        let v = next_json(ws, what);
        if is(&v) {
            return v;
        }
    }
}

/// Reads messages (`is`) until `found(previous, message)` holds; returns the
/// message before and the one found.
fn until_found(
    ws: &mut Client,
    what: &str,
    first: Value,
    is: impl Fn(&Value) -> bool,
    found: impl Fn(&Value, &Value) -> bool,
) -> (Value, Value) {
    let deadline = Instant::now() + T;
    let mut prev = first;
    loop {
        assert!(Instant::now() < deadline, "never saw {what}");
        let v = next_where(ws, what, &is);
        if found(&prev, &v) {
            return (prev, v);
        }
        prev = v;
    }
}

#[test]
fn binance_book_faults() {
    let sim = Sim::start(fast_cfg()).expect("start");
    let mut ws = connect(&sim, "/public/stream?streams=btcusdt@depth");
    let is_diff = |v: &Value| v["data"]["e"] == "depthUpdate";
    let chained = |a: &Value, b: &Value| b["data"]["pu"] == a["data"]["u"];
    let first = next_where(&mut ws, "diff", is_diff);
    // SkipSeq withholds exactly one diff: the chain shows one gap.
    arm(&sim, ConnId(1), BookFault::SkipSeq);
    assert!(sim.wait_until(T, |s| s.withheld == 1));
    let (_, after_gap) = until_found(&mut ws, "the gap", first, is_diff, |a, b| !chained(a, b));
    // BreakChain: one diff claims U = prev u + 2 and pu = prev u + 1.
    arm(&sim, ConnId(1), BookFault::BreakChain);
    let (prev, bad) = until_found(&mut ws, "the break", after_gap, is_diff, |a, b| {
        !chained(a, b)
    });
    let pu = prev["data"]["u"].as_u64().expect("u");
    assert_eq!(bad["data"]["pu"].as_u64(), Some(pu + 1));
    assert_eq!(bad["data"]["U"].as_u64(), Some(pu + 2));
    let mut last = bad.clone();
    for _ in 0..10 {
        let d = next_where(&mut ws, "diff", is_diff);
        assert!(chained(&last, &d), "one break only");
        last = d;
    }
    let rec = sim
        .sent_on(ConnId(1))
        .into_iter()
        .find(|r| Some(r.seq) == bad["data"]["u"].as_u64() && r.kind == SentKind::BookUpdate)
        .expect("record");
    assert_eq!(
        rec.prev_seq,
        Some(pu + 1),
        "ground truth shows what was sent"
    );
    // CrossBook on a quote: one bookTicker shows bid == ask.
    drop(ws);
    let mut quotes = connect(&sim, "/public/stream?streams=ethusdt@bookTicker");
    assert!(sim.wait_until(T, |s| s.connections.len() == 2));
    arm(&sim, ConnId(2), BookFault::CrossBook);
    let is_quote = |v: &Value| v.get("stream").is_some();
    next_where(&mut quotes, "crossed quote", |v| {
        is_quote(v) && v["data"]["b"] == v["data"]["a"]
    });
    for _ in 0..10 {
        let q = next_where(&mut quotes, "quote", is_quote);
        assert_ne!(q["data"]["b"], q["data"]["a"], "one crossed quote only");
    }
}

#[test]
fn bybit_book_faults() {
    let sim = Sim::start(venue_cfg(SimVenue::BybitLinear)).expect("start");
    let mut ws = connect(&sim, "/v5/public/linear");
    let sub = r#"{"op":"subscribe","args":["orderbook.50.ETHUSDT"]}"#;
    send(&mut ws, sub);
    assert_eq!(next_json(&mut ws, "ack")["success"], true);
    let is_ob = |v: &Value| v.get("topic").is_some();
    let u_of = |v: &Value| v["data"]["u"].as_u64().expect("u");
    let snap = next_where(&mut ws, "snapshot", is_ob);
    assert_eq!(snap["type"], "snapshot");
    // SkipSeq: u jumps by two, once.
    arm(&sim, ConnId(1), BookFault::SkipSeq);
    let (prev, d) = until_found(&mut ws, "the skip", snap, is_ob, |a, b| {
        u_of(b) != u_of(a) + 1
    });
    assert_eq!(u_of(&d), u_of(&prev) + 2);
    // Resync by subscribing afresh.
    send(
        &mut ws,
        r#"{"op":"unsubscribe","args":["orderbook.50.ETHUSDT"]}"#,
    );
    send(&mut ws, sub);
    let snap = next_where(&mut ws, "snapshot", |v| v["type"] == "snapshot");
    let mut local = Local::default();
    local.apply(&snap["data"]["b"], &snap["data"]["a"]);
    // BreakChain: one delta with u + 1000; the next ones continue from the truth.
    arm(&sim, ConnId(1), BookFault::BreakChain);
    let mut prev = snap;
    let bad = loop {
        let d = next_where(&mut ws, "the break", is_ob);
        local.apply(&d["data"]["b"], &d["data"]["a"]);
        if u_of(&d) != u_of(&prev) + 1 {
            break d;
        }
        prev = d;
    };
    let true_u = u_of(&prev) + 1;
    assert_eq!(u_of(&bad), true_u + 1000);
    let next = next_where(&mut ws, "delta", is_ob);
    assert_eq!(u_of(&next), true_u + 1);
    local.apply(&next["data"]["b"], &next["data"]["a"]);
    assert!(sim
        .sent_on(ConnId(1))
        .iter()
        .any(|r| r.seq == true_u + 1000));
    assert!(!local.crossed(), "the data stayed true");
    // CrossBook: a delta crosses the local book.
    arm(&sim, ConnId(1), BookFault::CrossBook);
    let deadline = Instant::now() + T;
    while !local.crossed() {
        assert!(Instant::now() < deadline, "never crossed");
        let d = next_where(&mut ws, "delta", is_ob);
        local.apply(&d["data"]["b"], &d["data"]["a"]);
    }
    // DropNext withholds Bybit messages too.
    let before = sim.snapshot().withheld;
    sim.inject_on(ConnId(1), Fault::DropNext { count: 2 });
    assert!(sim.wait_until(T, |s| s.withheld == before + 2));
}

#[test]
fn okx_book_faults() {
    let sim = Sim::start(venue_cfg(SimVenue::Okx)).expect("start");
    let mut ws = connect(&sim, "/ws/v5/public");
    let sub = r#"{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}"#;
    send(&mut ws, sub);
    assert_eq!(next_json(&mut ws, "ack")["event"], "subscribe");
    let is_books = |v: &Value| v.get("data").is_some();
    let chained = |a: &Value, b: &Value| b["data"][0]["prevSeqId"] == a["data"][0]["seqId"];
    let snap = next_where(&mut ws, "snapshot", is_books);
    assert_eq!(snap["action"], "snapshot");
    // SkipSeq: one update's prevSeqId is not the last seqId received.
    arm(&sim, ConnId(1), BookFault::SkipSeq);
    let (_, after) = until_found(&mut ws, "the skip", snap, is_books, |a, b| !chained(a, b));
    let mut last = after;
    for _ in 0..5 {
        let d = next_where(&mut ws, "update", is_books);
        assert!(chained(&last, &d));
        last = d;
    }
    // Resync: subscribing again sends a fresh snapshot.
    send(&mut ws, sub);
    let snap = next_where(&mut ws, "snapshot", |v| v["action"] == "snapshot");
    let mut local = Local::default();
    local.apply(&snap["data"][0]["bids"], &snap["data"][0]["asks"]);
    // BreakChain: prevSeqId one less than the last seqId, once.
    arm(&sim, ConnId(1), BookFault::BreakChain);
    let mut prev = snap;
    let bad = loop {
        let d = next_where(&mut ws, "the break", is_books);
        local.apply(&d["data"][0]["bids"], &d["data"][0]["asks"]);
        if !chained(&prev, &d) {
            break d;
        }
        prev = d;
    };
    let seq = prev["data"][0]["seqId"].as_i64().expect("seqId");
    assert_eq!(bad["data"][0]["prevSeqId"].as_i64(), Some(seq - 1));
    let next = next_where(&mut ws, "update", is_books);
    assert!(chained(&bad, &next));
    local.apply(&next["data"][0]["bids"], &next["data"][0]["asks"]);
    assert!(!local.crossed());
    // CrossBook: an update crosses the local book.
    arm(&sim, ConnId(1), BookFault::CrossBook);
    let deadline = Instant::now() + T;
    while !local.crossed() {
        assert!(Instant::now() < deadline, "never crossed");
        let d = next_where(&mut ws, "update", is_books);
        local.apply(&d["data"][0]["bids"], &d["data"][0]["asks"]);
    }
    // BadChecksum without okx_checksum: one non-zero checksum where OKX sends 0.
    arm(&sim, ConnId(1), BookFault::BadChecksum);
    next_where(&mut ws, "bad checksum", |v| {
        is_books(v) && v["data"][0]["checksum"] != 0
    });
    for _ in 0..5 {
        let d = next_where(&mut ws, "update", is_books);
        assert_eq!(d["data"][0]["checksum"], 0);
    }
}

// ---------------------------------------------------------------------------
// Several venues on one shared market

/// FNV-1a of everything an unshared market generates for a fixed script.
fn unshared_market_digest(venue: SimVenue) -> u64 {
    use super::market::Market;
    use super::symbol::{price_format, SymInfo};
    let info = ["BTCUSDT", "SOLUSDT"]
        .iter()
        .map(|s| SymInfo::new(s, price_format(s).1))
        .collect();
    let mut m = Market::new(Arc::new(info), 0x00C0_FFEE, venue, false);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &str| {
        for b in s.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    };
    for k in 0..3_000u64 {
        let i = (k % 2) as usize;
        eat(&m.book_change(i, 1_000 + k).payload);
        if k % 5 == 0 {
            eat(&m.trade(i, 1_000 + k).payload);
        }
        if k % 20 == 0 {
            if let Some(e) = m.depth(i, 1_000 + k) {
                eat(&e.payload);
            }
        }
        if k % 100 == 0 {
            for e in m.mark(i, 1_000 + k) {
                eat(&e.payload);
            }
        }
    }
    h
}

#[test]
fn without_a_shared_market_nothing_changes() {
    // Digests of an unshared market, so that the shared market's code path
    // cannot change it unnoticed. First taken before shared markets existed;
    // taken again when the simulator's own splitmix generator gave way to
    // `fastrand` (other draws, the same market code).
    assert_eq!(
        unshared_market_digest(SimVenue::Binance),
        0x7023_4df0_6055_adf4
    );
    assert_eq!(
        unshared_market_digest(SimVenue::BybitLinear),
        0xaac8_76d1_855c_6cce
    );
    assert_eq!(unshared_market_digest(SimVenue::Okx), 0xd774_754a_30d2_4678);
    assert_eq!(SimConfig::default().shared, None);
    let sim = Sim::start(fast_cfg()).expect("start");
    assert_eq!(sim.config().shared, None);
}

/// Relative difference in basis points.
fn bps(a: f64, b: f64) -> f64 {
    (a - b).abs() / b * 1e4
}

#[test]
fn shared_market_is_deterministic_bounded_and_dislocations_are_rare_and_brief() {
    const TICKS: u64 = 120_000; // two minutes of 1 ms ticks
    let syms: Vec<String> = vec!["BTCUSDT".into(), "ETHUSDT".into()];
    let a = SharedMarket::new(["ethusdt", " BTCUSDT", "ETHUSDT"], 11);
    assert_eq!(a.symbols(), ["ETHUSDT", "BTCUSDT"]);
    let bound = a.max_divergence_bps();
    assert!(bound > 40.0 && bound < 48.0, "{bound}");
    let (mut a0, mut a1) = (a.join(&syms).expect("join"), a.join(&syms).expect("join"));
    assert_eq!((a0.slot(), a1.slot(), a.venues()), (0, 1, 2));
    // The same market sampled every 7th tick only, and one with another seed.
    let b = SharedMarket::new(["ETHUSDT", "BTCUSDT"], 11);
    let (mut b0, mut b1) = (b.join(&syms).expect("join"), b.join(&syms).expect("join"));
    let c = SharedMarket::new(["ETHUSDT", "BTCUSDT"], 12);
    let mut c0 = c.join(&syms).expect("join");
    let mut divergence: Vec<Vec<f64>> = vec![Vec::new(); syms.len()];
    let mut differs_from_other_seed = false;
    for t in 0..TICKS {
        a0.sync_tick(t);
        a1.sync_tick(t);
        for (i, d) in divergence.iter_mut().enumerate() {
            assert_eq!(a0.index(i), a1.index(i), "one shared price");
            d.push(bps(a0.mid(i), a1.mid(i)));
        }
        if t % 7 == 0 {
            b0.sync_tick(t);
            b1.sync_tick(t);
            c0.sync_tick(t);
            for i in 0..syms.len() {
                assert_eq!(a0.mid(i).to_bits(), b0.mid(i).to_bits(), "tick {t}");
                assert_eq!(a1.mid(i).to_bits(), b1.mid(i).to_bits(), "tick {t}");
                differs_from_other_seed |= c0.mid(i) != a0.mid(i);
            }
        }
    }
    assert!(differs_from_other_seed);
    let max_ticks = a.params().spike_duration.1.as_millis() as usize;
    for (i, d) in divergence.iter().enumerate() {
        let max = d.iter().copied().fold(0.0, f64::max);
        let mut sorted = d.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let wide = d.iter().filter(|&&x| x > 10.0).count();
        let longest = d.split(|&x| x <= 10.0).map(<[f64]>::len).max().unwrap_or(0);
        eprintln!(
            "{}: median {median:.2} bp, max {max:.2} bp, >10 bp on {wide} ticks, longest {longest} ms",
            syms[i]
        );
        assert!(max <= bound, "{}: {max} > {bound}", syms[i]);
        assert!(max >= 10.0, "{}: no dislocation in two minutes", syms[i]);
        assert!(median > 0.1 && median < 4.0, "{}: median {median}", syms[i]);
        assert!(wide * 10 < d.len(), "{}: dislocated too often", syms[i]);
        assert!(
            longest <= max_ticks,
            "{}: dislocation of {longest} ms",
            syms[i]
        );
    }
}

#[test]
fn shared_market_rejects_unknown_symbols_without_taking_a_slot() {
    let shared = SharedMarket::new(["BTCUSDT"], 1);
    let err = Sim::start(SimConfig {
        shared: Some(shared.clone()),
        symbols: vec!["btcusdt".into(), "XRPUSDT".into()],
        ..fast_cfg()
    })
    .expect_err("XRPUSDT is not shared");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("XRPUSDT"), "{err}");
    assert_eq!(shared.venues(), 0);
    let err = start_group(
        vec![
            venue_cfg(SimVenue::Okx),
            SimConfig {
                symbols: vec!["XRPUSDT".into()],
                ..venue_cfg(SimVenue::Binance)
            },
        ],
        SharedMarket::new(["BTCUSDT", "ETHUSDT"], 1),
    )
    .expect_err("second config has XRPUSDT");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

/// One top-of-book quote: event time (ms), best bid and ask (price units).
type Quote = (u64, i64, i64);

fn binance_quote(v: &Value) -> Option<Quote> {
    let d = &v["data"];
    (d["e"] == "bookTicker").then(|| {
        (
            d["E"].as_u64().expect("E"),
            units(d["b"].as_str().expect("b")),
            units(d["a"].as_str().expect("a")),
        )
    })
}

fn okx_quote(v: &Value) -> Option<Quote> {
    (v["arg"]["channel"] == "bbo-tbt" && v.get("data").is_some()).then(|| {
        let d = &v["data"][0];
        (
            d["ts"].as_str().and_then(|t| t.parse().ok()).expect("ts"),
            units(d["bids"][0][0].as_str().expect("bid")),
            units(d["asks"][0][0].as_str().expect("ask")),
        )
    })
}

/// What [`quote_pairs`] saw.
#[derive(Debug)]
struct PairStats {
    pairs: usize,
    differing: usize,
    widest_bps: f64,
}

/// Starts a Binance and an OKX simulator on `shared`, reads `quotes` BTCUSDT
/// quotes from each (raw clients), and compares every two quotes generated
/// within 2 ms of each other: none may be more than `bound_bps` apart.
fn quote_pairs(shared: &SharedMarket, quotes: usize, bound_bps: f64) -> PairStats {
    let sims = start_group(
        vec![
            venue_cfg(SimVenue::Binance),
            SimConfig {
                symbols: vec!["ETHUSDT".into(), "BTCUSDT".into()],
                ..venue_cfg(SimVenue::Okx)
            },
        ],
        shared.clone(),
    )
    .expect("start group");
    assert_eq!(shared.venues(), 2);
    assert!(sims
        .iter()
        .all(|s| s.config().shared.as_ref() == Some(shared)));
    let mut binance = connect(&sims[0], "/public/stream?streams=btcusdt@bookTicker");
    let mut okx = connect(&sims[1], "/ws/v5/public");
    send(
        &mut okx,
        r#"{"id":"1","op":"subscribe","args":[{"channel":"bbo-tbt","instId":"BTC-USDT-SWAP"}]}"#,
    );
    let (mut bq, mut oq): (Vec<Quote>, Vec<Quote>) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + T;
    while bq.len() < quotes || oq.len() < quotes {
        assert!(
            Instant::now() < deadline,
            "only {} Binance and {} OKX quotes",
            bq.len(),
            oq.len()
        );
        for (ws, got, parse) in [
            (
                &mut binance,
                &mut bq,
                binance_quote as fn(&Value) -> Option<Quote>,
            ),
            (&mut okx, &mut oq, okx_quote),
        ] {
            match next_msg(ws, Instant::now()) {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("json");
                    got.extend(parse(&v));
                }
                Some(Ok(_)) | None => {}
                Some(Err(e)) => panic!("reading quotes: {e}"),
            }
        }
    }
    let mut stats = PairStats {
        pairs: 0,
        differing: 0,
        widest_bps: 0.0,
    };
    for &(ot, ob, oa) in &oq {
        for &(bt, bb, ba) in bq.iter().filter(|q| q.0.abs_diff(ot) <= 2) {
            let d = bps(bb as f64, ob as f64).max(bps(ba as f64, oa as f64));
            assert!(
                d <= bound_bps,
                "Binance {bb}/{ba} at {bt} vs OKX {ob}/{oa} at {ot}: {d:.1} bp"
            );
            stats.pairs += 1;
            stats.differing += usize::from(bb != ob);
            stats.widest_bps = stats.widest_bps.max(d);
        }
    }
    // Both quote the shared price: the OKX mid is close to the fair price.
    let fair = shared.mid("btcusdt").expect("shared BTC") * 100.0;
    let &(_, ob, oa) = oq.last().expect("quote");
    assert!(bps((ob + oa) as f64 / 2.0, fair) < bound_bps);
    eprintln!("{stats:?}");
    stats
}

#[test]
fn two_venues_on_one_shared_market_quote_close_but_not_identical_prices() {
    const BOUND_BPS: f64 = 50.0;
    const QUOTES: usize = 400;
    // Default parameters: quiet most of the time.
    let shared = SharedMarket::new(["ETHUSDT", "BTCUSDT", "SOLUSDT"], 5);
    // Well inside the bound, leaving room for the few milliseconds between
    // the two quotes of a pair.
    assert!(shared.max_divergence_bps() + 2.0 < BOUND_BPS);
    let quiet = quote_pairs(&shared, QUOTES, BOUND_BPS);
    assert!(quiet.pairs >= QUOTES / 2, "{quiet:?}");
    assert!(quiet.differing * 2 > quiet.pairs, "{quiet:?}");
    // Dislocations every ~100 ms: they show through the streams, within the
    // same bound.
    let busy = SharedMarket::with_params(
        ["BTCUSDT", "ETHUSDT"],
        5,
        SharedMarketParams {
            spike_every: Duration::from_millis(100),
            ..SharedMarketParams::default()
        },
    );
    assert_eq!(busy.max_divergence_bps(), shared.max_divergence_bps());
    let busy = quote_pairs(&busy, QUOTES, BOUND_BPS);
    assert!(busy.pairs >= QUOTES / 2, "{busy:?}");
    assert!(busy.widest_bps >= 10.0, "no dislocation seen: {busy:?}");
}
