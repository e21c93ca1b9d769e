//! REST depth snapshots for Binance local books.
//!
//! Binance's documented procedure builds a local book from a REST snapshot plus the diff
//! events buffered while it was fetched. The fetch is a blocking HTTPS GET over rustls, run on
//! the engine's `snapshots` helper thread ([`crate::helper`]) so that no feed thread ever
//! blocks: a feed asks for it, keeps buffering diffs, and gets the result on its driver's
//! channel, with its poll woken.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use log::debug;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use crate::tick::Level;

/// Longest a snapshot request may take (connect, TLS, request, response).
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response accepted.
const MAX_BODY: usize = 16 << 20;

/// A depth snapshot: `lastUpdateId` and both sides, best first.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthSnapshot {
    /// The book's update id at the snapshot.
    pub last_update_id: u64,
    /// Bids, best first.
    pub bids: Vec<Level>,
    /// Asks, best first.
    pub asks: Vec<Level>,
}

/// Fetches and parses a depth snapshot (blocking, bounded by [`SNAPSHOT_TIMEOUT`]): run on a
/// helper thread, never on a feed thread.
pub fn fetch_depth_snapshot(
    url: &str,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<DepthSnapshot, String> {
    let result = http_get(url, tls, SNAPSHOT_TIMEOUT).and_then(|body| parse_depth_snapshot(&body));
    debug!(
        "snapshot {url}: {}",
        match &result {
            Ok(s) => format!("lastUpdateId {}", s.last_update_id),
            Err(e) => e.clone(),
        }
    );
    result
}

/// `{"lastUpdateId":…,"bids":[[p,q],…],"asks":[[p,q],…]}` (USD-M adds `E`, `T`).
pub fn parse_depth_snapshot(body: &str) -> Result<DepthSnapshot, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("snapshot is not JSON: {e}"))?;
    if let (Some(code), Some(msg)) = (v.get("code"), v.get("msg")) {
        return Err(format!("venue error {code}: {msg}"));
    }
    let last_update_id = v["lastUpdateId"]
        .as_u64()
        .ok_or("snapshot has no lastUpdateId")?;
    let side = |name: &str| -> Result<Vec<Level>, String> {
        v[name]
            .as_array()
            .ok_or(format!("snapshot has no {name}"))?
            .iter()
            .map(|l| {
                let num = |i: usize| -> Option<f64> {
                    let x = l.get(i)?;
                    x.as_str()
                        .and_then(|s| s.parse().ok())
                        .or_else(|| x.as_f64())
                };
                Some(Level {
                    price: num(0)?,
                    qty: num(1)?,
                })
            })
            .collect::<Option<Vec<Level>>>()
            .ok_or(format!("snapshot has a bad {name} level"))
    };
    Ok(DepthSnapshot {
        last_update_id,
        bids: side("bids")?,
        asks: side("asks")?,
    })
}

/// A blocking `GET` of `http://` or `https://` `url`, `Connection: close`; the body of a 200.
pub fn http_get(
    url: &str,
    tls: Option<&Arc<ClientConfig>>,
    timeout: Duration,
) -> Result<String, String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("'{url}' is not an http(s) URL"));
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("bad port in '{url}'"))?,
        ),
        None => (authority, if https { 443 } else { 80 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{url}: {e}"))?;
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: wsfeed\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    let mut raw = Vec::new();
    if https {
        let cfg = tls.ok_or("https needs a TLS configuration")?;
        let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))?;
        let conn = rustls::ClientConnection::new(cfg.clone(), name).map_err(|e| e.to_string())?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("{url}: {e}"))?;
        read_all(&mut stream, &mut raw).map_err(|e| format!("{url}: {e}"))?;
    } else {
        let mut stream = tcp;
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("{url}: {e}"))?;
        read_all(&mut stream, &mut raw).map_err(|e| format!("{url}: {e}"))?;
    }
    parse_response(&raw).map_err(|e| format!("{url}: {e}"))
}

/// Reads until EOF (the server closes: `Connection: close`), bounded. A TLS peer that closes
/// without close_notify after a complete response is accepted.
fn read_all(stream: &mut impl Read, out: &mut Vec<u8>) -> std::io::Result<()> {
    let mut buf = [0u8; 16 << 10];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > MAX_BODY {
                    return Err(std::io::Error::other("response too large"));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {
                return Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Status line, headers, body (plain or chunked).
fn parse_response(raw: &[u8]) -> Result<String, String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| "headers are not text")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line '{status}'"))?;
    let chunked = lines.any(|l| {
        l.to_ascii_lowercase()
            .replace(' ', "")
            .starts_with("transfer-encoding:chunked")
    });
    let body = &raw[head_end + 4..];
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    let body = String::from_utf8(body).map_err(|_| "body is not UTF-8")?;
    if code != 200 {
        let shown: String = body.chars().take(200).collect();
        return Err(format!("HTTP {code}: {shown}"));
    }
    Ok(body)
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk")?;
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| "bad chunk")?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size '{size_text}'"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_snapshots_parse() {
        for name in ["depth_spot.json", "depth_usdm.json"] {
            let path = format!(
                "{}/tests/fixtures/binance/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            let s = parse_depth_snapshot(&std::fs::read_to_string(path).unwrap()).unwrap();
            assert!(s.last_update_id > 0 && !s.bids.is_empty() && !s.asks.is_empty());
        }
        assert!(
            parse_depth_snapshot(r#"{"code":-1121,"msg":"Invalid symbol."}"#)
                .unwrap_err()
                .contains("Invalid symbol")
        );
    }

    #[test]
    fn responses_plain_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain).unwrap(), "{}");
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), "{\"a\":1}");
        let err = b"HTTP/1.1 400 Bad Request\r\n\r\n{\"code\":-1102}";
        assert!(parse_response(err).unwrap_err().contains("HTTP 400"));
    }
}
