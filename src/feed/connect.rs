//! Connection set-up of one slot: TCP connect, TLS, WebSocket upgrade. Every step is
//! non-blocking and bounded by a deadline; the slot's state carries what is in flight.

use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::Interest;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::WebSocket;

use super::{ws_error_reason, Conn, Feed};
use crate::metrics::FeedStats;
use crate::net::{self, NetStream};
use crate::tick::DisconnectReason;

/// How long to stay away after an HTTP 418 (IP banned) that names no `Retry-After`.
const BAN_WAIT: Duration = Duration::from_secs(120);

type Upgrade = Result<
    (
        WebSocket<NetStream>,
        tungstenite::handshake::client::Response,
    ),
    HandshakeError<ClientHandshake<NetStream>>,
>;

impl Feed {
    /// Starts an attempt on slot `k`, unless the host's attempt budget or a venue's
    /// `Retry-After` says to wait.
    #[cold]
    pub(super) fn begin_attempt(&mut self, k: usize, now: Instant) -> Conn {
        let target = &self.p.targets[self.slots[k].target];
        if let Err(until) = target.gate.try_acquire(now) {
            FeedStats::bump(&self.stats.throttled);
            if let Some(suppressed) = self.throttle_log.allow(now) {
                warn!(
                    "[{}] holding connection attempts to {} for {} ms: per-host attempt budget or the venue's Retry-After{}",
                    self.p.name,
                    target.gate.host(),
                    until.saturating_duration_since(now).as_millis(),
                    super::suppressed_note(suppressed)
                );
            }
            return Conn::Backoff { until };
        }
        FeedStats::bump(&self.stats.attempts);
        if let Some(o) = &mut self.outage {
            o.attempts += 1;
        }
        let t = self.slots[k].target;
        let addr = match self.addrs[t] {
            Some(a) => a,
            None => match net::resolve(&target.endpoint.host, target.endpoint.port) {
                Ok(a) => {
                    self.addrs[t] = Some(a);
                    a
                }
                Err(reason) => return self.fail(k, reason, None, now),
            },
        };
        let mut sock = match net::start_connect(addr, self.p.recv_buffer) {
            Ok(s) => s,
            Err(e) => return self.fail(k, net::io_reason(&e), Some(&e.to_string()), now),
        };
        let token = self.slots[k].token;
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)
        {
            return self.fail(k, net::io_reason(&e), Some(&e.to_string()), now);
        }
        let deadline = now + Duration::from_millis(self.p.reconnect.connect_timeout_ms);
        self.step_connect(k, sock, deadline, now)
    }

    pub(super) fn step_connect(
        &mut self,
        k: usize,
        sock: mio::net::TcpStream,
        deadline: Instant,
        now: Instant,
    ) -> Conn {
        match net::connect_result(&sock) {
            Ok(true) => {
                let deadline = now + Duration::from_millis(self.p.reconnect.handshake_timeout_ms);
                let target = &self.p.targets[self.slots[k].target];
                if !target.endpoint.tls {
                    return self.begin_upgrade(k, NetStream::Plain(sock), deadline, now);
                }
                let Some(cfg) = &self.p.tls else {
                    return self.fail(k, DisconnectReason::Tls, Some("no TLS configuration"), now);
                };
                match net::tls_stream(cfg, &target.endpoint.host, sock) {
                    Ok(tls) => self.step_tls(k, Box::new(tls), deadline, now),
                    Err(reason) => self.fail(k, reason, None, now),
                }
            }
            Ok(false) if now >= deadline => {
                self.fail(k, DisconnectReason::ConnectTimeout, None, now)
            }
            Ok(false) => Conn::Connecting { sock, deadline },
            Err(e) => self.fail(k, net::io_reason(&e), Some(&e.to_string()), now),
        }
    }

    pub(super) fn step_tls(
        &mut self,
        k: usize,
        mut stream: Box<rustls::StreamOwned<rustls::ClientConnection, mio::net::TcpStream>>,
        deadline: Instant,
        now: Instant,
    ) -> Conn {
        match net::drive_tls(&mut stream) {
            Ok(true) => self.begin_upgrade(k, NetStream::Tls(stream), deadline, now),
            Ok(false) if now >= deadline => {
                self.fail(k, DisconnectReason::HandshakeTimeout, None, now)
            }
            Ok(false) => Conn::Tls { stream, deadline },
            Err(e) => self.fail(k, net::io_reason(&e), Some(&e.to_string()), now),
        }
    }

    fn begin_upgrade(
        &mut self,
        k: usize,
        stream: NetStream,
        deadline: Instant,
        now: Instant,
    ) -> Conn {
        let url = self.p.targets[self.slots[k].target].url.as_str();
        let result = tungstenite::client::client_with_config(url, stream, Some(self.p.ws_config));
        self.upgrade_result(k, result, deadline, now)
    }

    pub(super) fn step_upgrade(
        &mut self,
        k: usize,
        mid: MidHandshake<ClientHandshake<NetStream>>,
        deadline: Instant,
        now: Instant,
    ) -> Conn {
        self.upgrade_result(k, mid.handshake(), deadline, now)
    }

    fn upgrade_result(
        &mut self,
        k: usize,
        result: Upgrade,
        deadline: Instant,
        now: Instant,
    ) -> Conn {
        match result {
            Ok((ws, _response)) => self.on_open(k, ws, now),
            Err(HandshakeError::Interrupted(mid)) if now >= deadline => {
                drop(mid);
                self.fail(k, DisconnectReason::HandshakeTimeout, None, now)
            }
            Err(HandshakeError::Interrupted(mid)) => Conn::Upgrading {
                mid: Box::new(mid),
                deadline,
            },
            Err(HandshakeError::Failure(e)) => {
                let (reason, detail) = ws_error_reason(&e);
                if let DisconnectReason::Http {
                    status,
                    retry_after_s,
                } = reason
                {
                    // 429 (too many requests) and 418 (IP banned) speak for the whole IP: every
                    // feed of this host waits, not just this one.
                    let wait = match (status, retry_after_s) {
                        (_, Some(s)) => Some(Duration::from_secs(u64::from(s))),
                        (418, None) => Some(BAN_WAIT),
                        _ => None,
                    };
                    if let Some(wait) = wait {
                        self.slots[k].retry_after = Some(wait);
                        if matches!(status, 418 | 429) {
                            self.p.targets[self.slots[k].target]
                                .gate
                                .close_until(now + wait);
                        }
                        debug!(
                            "[{}] venue answered {status}: staying away {} ms",
                            self.p.name,
                            wait.as_millis()
                        );
                    }
                }
                self.fail(k, reason, detail.as_deref(), now)
            }
        }
    }
}
