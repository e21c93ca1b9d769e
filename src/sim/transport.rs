//! The transport of a simulator-side connection: [`SimStream`], plain TCP or
//! TLS, which first yields the bytes of the request head read before anything
//! else was decided (replayed to the WebSocket handshake); and reading that
//! head ([`read_head`], [`Head`]), which decides between the REST responder
//! and a WebSocket upgrade.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use tungstenite::Error as WsError;

use super::state::Inner;

/// The transport of a connection, plain or TLS.
#[derive(Debug)]
enum Io {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

/// The server side of a connection: the transport, plus the bytes of the
/// request head already read (replayed to the WebSocket handshake).
#[derive(Debug)]
pub(crate) struct SimStream {
    io: Io,
    replay: Vec<u8>,
    replayed: usize,
}

impl SimStream {
    /// Serves an accepted connection, over TLS with `tls`; `None` if the TLS
    /// session cannot be created.
    pub(crate) fn new(tcp: TcpStream, tls: Option<&Arc<ServerConfig>>) -> Option<SimStream> {
        let io = match tls {
            Some(cfg) => Io::Tls(Box::new(StreamOwned::new(
                ServerConnection::new(Arc::clone(cfg)).ok()?,
                tcp,
            ))),
            None => Io::Plain(tcp),
        };
        Some(SimStream {
            io,
            replay: Vec::new(),
            replayed: 0,
        })
    }

    /// Has the next reads return `bytes` first (the request head already read).
    pub(crate) fn replay(&mut self, bytes: Vec<u8>) {
        self.replay = bytes;
        self.replayed = 0;
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        match &self.io {
            Io::Plain(s) => s,
            Io::Tls(s) => &s.sock,
        }
    }

    /// Reads the TCP socket directly (bypassing TLS; for draining only).
    pub(crate) fn tcp_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut tcp = self.tcp();
        tcp.read(buf)
    }

    /// Queues a TLS close_notify (no-op on plain connections).
    pub(crate) fn close_notify(&mut self) {
        if let Io::Tls(s) = &mut self.io {
            s.conn.send_close_notify();
        }
    }
}

impl Read for SimStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.replayed < self.replay.len() {
            let n = buf.len().min(self.replay.len() - self.replayed);
            buf[..n].copy_from_slice(&self.replay[self.replayed..self.replayed + n]);
            self.replayed += n;
            if self.replayed == self.replay.len() {
                self.replay = Vec::new();
                self.replayed = 0;
            }
            return Ok(n);
        }
        match &mut self.io {
            Io::Plain(s) => s.read(buf),
            Io::Tls(s) => s.read(buf),
        }
    }
}

impl Write for SimStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.io {
            Io::Plain(s) => s.write(buf),
            Io::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.io {
            Io::Plain(s) => s.flush(),
            Io::Tls(s) => s.flush(),
        }
    }
}

/// Longest request head accepted.
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// A parsed HTTP request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// Parses the head (up to the blank line); `None` if it is not HTTP/1.x.
    pub(crate) fn parse(bytes: &[u8]) -> Option<Head> {
        let end = find_blank_line(bytes)?;
        let text = std::str::from_utf8(&bytes[..end]).ok()?;
        let mut lines = text.split("\r\n");
        let mut parts = lines.next()?.split(' ');
        let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
        if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
            return None;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Some(Head {
            method: method.to_string(),
            target: target.to_string(),
            headers,
        })
    }

    /// A WebSocket upgrade request (`Upgrade: websocket`).
    pub(crate) fn is_upgrade(&self) -> bool {
        self.headers
            .iter()
            .any(|(k, v)| k == "upgrade" && v.eq_ignore_ascii_case("websocket"))
    }
}

/// Index just past `\r\n\r\n`, if present.
pub(crate) fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}

/// Reads until the end of the request head (or `MAX_HEAD` bytes, EOF, an
/// error or the deadline). Returns everything read; `None` when the peer
/// went away or the simulator shuts down before anything useful arrived.
pub(crate) fn read_head(
    inner: &Inner,
    stream: &mut SimStream,
    deadline: Instant,
) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if find_blank_line(&buf).is_some() || buf.len() >= MAX_HEAD {
            return Some(buf);
        }
        if inner.is_shutdown() || Instant::now() >= deadline {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return (!buf.is_empty()).then_some(buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // The socket waits for data itself (a read timeout), or is non-blocking when a
            // caller set it so: then this polls.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if stream.tcp().read_timeout().ok().flatten().is_none() {
                    thread::sleep(Duration::from_micros(500))
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
}

/// A WebSocket error that only says the non-blocking socket would block.
pub(crate) fn is_would_block(e: &WsError) -> bool {
    matches!(e, WsError::Io(io) if io.kind() == io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let h = Head::parse(
            b"GET /api/v3/depth?symbol=BTCUSDT HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .expect("head");
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/api/v3/depth?symbol=BTCUSDT");
        assert!(!h.is_upgrade());
        let u =
            Head::parse(b"GET /ws HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n")
                .expect("head");
        assert!(u.is_upgrade());
        assert!(Head::parse(b"\x16\x03\x01garbage\r\n\r\n").is_none());
        assert!(Head::parse(b"GET / HTTP/1.1\r\n").is_none());
    }
}
