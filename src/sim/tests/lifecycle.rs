//! A simulator's life: venue names, TLS with the generated CA, a prompt
//! shutdown, and clients that misbehave without hurting it.

use super::*;

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
