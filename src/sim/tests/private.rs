//! What the private-stream tests share: accounts, signing with `ring`
//! directly (as a client would), plain HTTP with headers, the fixtures'
//! shape check and the ground-truth check.

use ring::hmac;

use super::*;

mod binance_api;
mod binance_key;
mod bybit;
mod okx;

fn mac(secret: &str, msg: &str) -> hmac::Tag {
    hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        msg.as_bytes(),
    )
}

/// Hex HMAC-SHA256, as a Binance or Bybit client signs.
fn sign_hex(secret: &str, msg: &str) -> String {
    mac(secret, msg)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Base64 HMAC-SHA256, as an OKX client signs.
fn sign_b64(secret: &str, msg: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(mac(secret, msg).as_ref())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// A fast simulator of `venue` with accounts `alice` and `bob`.
fn accounts_cfg(venue: SimVenue) -> SimConfig {
    SimConfig {
        accounts: vec![SimAccount::named("alice"), SimAccount::named("bob")],
        account_event_interval: Duration::from_millis(5),
        ..venue_cfg(venue)
    }
}

/// One plain HTTP request with an optional `X-MBX-APIKEY`: status and JSON body.
fn http(sim: &Sim, method: &str, target: &str, api_key: Option<&str>) -> (u16, Value) {
    let key = api_key.map_or_else(String::new, |k| format!("X-MBX-APIKEY: {k}\r\n"));
    let req =
        format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{key}Content-Length: 0\r\n\r\n");
    let (status, _, body) = http_exchange(Box::new(tcp(sim)), &req);
    let v =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {target}: {e}: {body}"));
    (status, v)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Panics unless `got` has the fixture's shape: the same keys at every
/// level (arrays: their first elements, when both have one) and the same
/// JSON types (`null` matches anything: the documentation shows `null` for
/// fields that are absent in its example).
fn same_shape(got: &Value, fixture: &Value, at: &str) {
    let (tg, tf) = (json_type(got), json_type(fixture));
    if tg != "null" && tf != "null" {
        assert_eq!(tg, tf, "{at}: type differs: {got} vs fixture {fixture}");
    }
    match (got, fixture) {
        (Value::Object(g), Value::Object(f)) => {
            let (kg, kf) = (keys(got), keys(fixture));
            assert_eq!(kg, kf, "{at}: keys differ from the fixture's");
            for (k, v) in g {
                same_shape(v, &f[k], &format!("{at}.{k}"));
            }
        }
        (Value::Array(g), Value::Array(f)) => {
            if let (Some(g0), Some(f0)) = (g.first(), f.first()) {
                same_shape(g0, f0, &format!("{at}[0]"));
            }
        }
        _ => {}
    }
}

/// Checks `got` against `tests/fixtures/<file>`.
fn like_fixture(got: &Value, file: &str) {
    same_shape(got, &fixture(file), file);
}

/// The ground truth of `conn` for `account` agrees with what the client
/// read: `received` (kind, event time) is a prefix of the records, in order,
/// and the records' event numbers increase.
fn matches_ground_truth(
    sim: &Sim,
    account: &str,
    conn: ConnId,
    received: &[(AccountEventKind, u64)],
) {
    let recs: Vec<AccountSentRecord> = sim
        .account_sent(account)
        .into_iter()
        .filter(|r| r.conn == conn)
        .collect();
    assert!(
        recs.len() >= received.len(),
        "{} recorded, {} read",
        recs.len(),
        received.len()
    );
    let recorded: Vec<(AccountEventKind, u64)> = recs
        .iter()
        .take(received.len())
        .map(|r| (r.kind, r.event_time_ms))
        .collect();
    assert_eq!(recorded, received);
    assert!(
        recs.windows(2).all(|w| w[0].n < w[1].n),
        "event numbers increase"
    );
    assert!(recs.iter().all(|r| r.account == account));
}

/// The id of the one open connection on `path`.
fn conn_on(sim: &Sim, path: &str) -> ConnId {
    assert!(sim.wait_until(T, |s| s.open_connections().any(|c| c.path == path)));
    let snap = sim.snapshot();
    let mut open = snap.open_connections().filter(|c| c.path == path);
    let id = open.next().expect("connection").id;
    assert!(open.next().is_none(), "one connection on {path}");
    id
}

/// Reads until a Close frame arrives; its code.
fn close_code(ws: &mut Client) -> u16 {
    let deadline = Instant::now() + T;
    loop {
        match next_msg(ws, deadline) {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(Message::Close(None))) => return 1005,
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("waiting for close: {e}"),
            None => panic!("no close frame"),
        }
    }
}

#[test]
fn without_accounts_there_are_no_private_endpoints() {
    let sim = Sim::start(venue_cfg(SimVenue::Binance)).expect("sim");
    // As any POST to a path the simulator does not serve.
    let (status, _) = http(&sim, "POST", "/fapi/v1/listenKey", Some("alice-key"));
    assert_eq!(status, 405);
    assert_eq!(
        try_connect(&sim, "/ws-api/v3").err().map(|r| r.status),
        Some(404)
    );
    assert!(sim.account_sent("alice").is_empty());
    assert!(!sim.revoke_account("alice"));
    assert!(!sim.expire_listen_key("alice"));
    let bybit = Sim::start(venue_cfg(SimVenue::BybitLinear)).expect("sim");
    assert_eq!(
        try_connect(&bybit, "/v5/private").err().map(|r| r.status),
        Some(404)
    );
}
