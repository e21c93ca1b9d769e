//! Binance USD-M's listen key: the credential in a private connection's URL. Created with
//! `POST /fapi/v1/listenKey`, kept alive with `PUT` well inside its 60-minute validity, gone
//! when the venue says so (`-1125` on a keep-alive, or a `listenKeyExpired` event on the
//! stream). The state here is pure (`now` passed in); the REST calls run on a helper thread
//! ([`call`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use crate::rest::{RestClient, RestError};

/// Waits between failed attempts to create a key (doubling, up to the last).
const RETRY: [Duration; 5] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
];

/// What to ask the venue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOp {
    /// `POST`: a key (the venue returns the account's current one when it has one).
    Create,
    /// `PUT`: extend the key's validity.
    KeepAlive,
}

/// A failed listen-key call.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyError {
    /// HTTP status, when the venue answered.
    pub status: Option<u16>,
    /// The venue's error code (`-1125`: no such key, `-2015`: bad key or IP).
    pub code: Option<i64>,
    /// What went wrong, for the log.
    pub message: String,
    /// A wait the venue asked for.
    pub retry_after: Option<Duration>,
}

impl KeyError {
    /// A failure with nothing from the venue.
    pub fn new(message: impl Into<String>) -> KeyError {
        KeyError {
            status: None,
            code: None,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// The venue's answer to a listen-key call: the key, or why not.
pub type KeyAnswer = Result<String, KeyError>;

/// What an answer means for the account.
#[derive(Debug, PartialEq)]
pub enum KeyEvent {
    /// A new key: connections use this URL from now on (a live one on the old key is
    /// replaced).
    NewKey,
    /// The key was kept alive (or a keep-alive returned the same key).
    KeptAlive,
    /// The key is gone; a new one is being asked for.
    Lost,
    /// The venue refused the credentials: code and message.
    Refused(i64, String),
    /// A call failed for a reason retrying can help; it is tried again later.
    Retry,
}

/// The account's listen key (`Debug` leaves the key out).
pub struct ListenKey {
    key: Option<String>,
    in_flight: Option<KeyOp>,
    keepalive_every: Duration,
    next_keepalive: Option<Instant>,
    retry_at: Option<Instant>,
    failures: usize,
    /// The venue refused the credentials (or the account stopped): no call, ever again.
    stopped: bool,
    /// Keys created.
    pub created: u64,
    /// Keep-alives the venue accepted.
    pub renewals: u64,
    /// Keys the venue let expire or forgot (events and `-1125`).
    pub expiries: u64,
}

impl std::fmt::Debug for ListenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenKey")
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("in_flight", &self.in_flight)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl ListenKey {
    /// No key yet; keep-alives every `keepalive_every` once there is one.
    pub fn new(keepalive_every: Duration) -> ListenKey {
        ListenKey {
            key: None,
            in_flight: None,
            keepalive_every,
            next_keepalive: None,
            retry_at: None,
            failures: 0,
            stopped: false,
            created: 0,
            renewals: 0,
            expiries: 0,
        }
    }

    /// The current key.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The call to make at `now`, if one is due (and none is out); it counts as out from now.
    pub fn poll(&mut self, now: Instant) -> Option<KeyOp> {
        if self.stopped || self.in_flight.is_some() || self.retry_at.is_some_and(|t| now < t) {
            return None;
        }
        let op = match (&self.key, self.next_keepalive) {
            (None, _) => KeyOp::Create,
            (Some(_), Some(t)) if now >= t => KeyOp::KeepAlive,
            _ => return None,
        };
        self.retry_at = None;
        self.in_flight = Some(op);
        Some(op)
    }

    /// When [`ListenKey::poll`] next has something to do (`now` when a key is wanted now).
    pub fn deadline(&self, now: Instant) -> Option<Instant> {
        if self.stopped || self.in_flight.is_some() {
            return None;
        }
        match (&self.key, self.retry_at) {
            (_, Some(t)) => Some(t),
            (None, None) => Some(now),
            (Some(_), None) => self.next_keepalive,
        }
    }

    /// The account stopped for good: no more calls.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// The stream said the key expired (`listenKeyExpired`): a new one is needed.
    pub fn expired(&mut self) {
        if self.key.take().is_some() {
            self.expiries += 1;
        }
        self.next_keepalive = None;
    }

    /// The answer to the call made, at `now`.
    pub fn on_answer(&mut self, answer: KeyAnswer, now: Instant) -> KeyEvent {
        let Some(op) = self.in_flight.take() else {
            return KeyEvent::Retry;
        };
        match answer {
            Ok(key) => {
                self.failures = 0;
                self.next_keepalive = Some(now + self.keepalive_every);
                let same = self.key.as_deref() == Some(key.as_str());
                match op {
                    KeyOp::KeepAlive if same => {
                        self.renewals += 1;
                        KeyEvent::KeptAlive
                    }
                    _ if same => KeyEvent::KeptAlive,
                    _ => {
                        // A keep-alive that names another key means ours is gone.
                        if op == KeyOp::KeepAlive {
                            self.expiries += 1;
                        }
                        self.key = Some(key);
                        self.created += 1;
                        KeyEvent::NewKey
                    }
                }
            }
            Err(e) if e.code == Some(-1125) => {
                // No such key: it expired or the venue forgot it. Ask for a new one at once.
                self.expired();
                KeyEvent::Lost
            }
            Err(e)
                if e.status == Some(401) || e.code.is_some_and(super::binance_credential_code) =>
            {
                self.stopped = true;
                KeyEvent::Refused(e.code.unwrap_or(-2015), e.message)
            }
            Err(e) => {
                let wait = RETRY[self.failures.min(RETRY.len() - 1)];
                self.failures += 1;
                self.retry_at = Some(now + e.retry_after.map_or(wait, |w| w.max(wait)));
                KeyEvent::Retry
            }
        }
    }
}

/// Makes the listen-key call `op` against `rest_base` (blocking, bounded: run it on a helper
/// thread). The API key goes in the `X-MBX-APIKEY` header.
pub fn call(
    client: &RestClient,
    op: KeyOp,
    rest_base: &str,
    api_key: &str,
    tls: Option<&Arc<ClientConfig>>,
) -> KeyAnswer {
    let url = format!("{rest_base}/fapi/v1/listenKey");
    let method = match op {
        KeyOp::Create => "POST",
        KeyOp::KeepAlive => "PUT",
    };
    match client.send(method, &url, &[("X-MBX-APIKEY", api_key)], tls) {
        Ok(body) => {
            let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| KeyError {
                status: Some(200),
                code: None,
                message: format!("{method} {url}: not JSON: {e}"),
                retry_after: None,
            })?;
            v.get("listenKey")
                .and_then(|k| k.as_str())
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .ok_or_else(|| KeyError {
                    status: Some(200),
                    code: None,
                    message: format!("{method} {url}: answer without a listenKey"),
                    retry_after: None,
                })
        }
        Err(e) => Err(key_error(method, &url, e)),
    }
}

/// A REST failure as a key error: the status and the venue's `{"code":…,"msg":…}`.
fn key_error(method: &str, url: &str, e: RestError) -> KeyError {
    let code = e
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .and_then(|v| v.get("code").and_then(serde_json::Value::as_i64));
    KeyError {
        status: e.status,
        code,
        message: format!("{method} {url}: {}", e.message),
        retry_after: e.retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, code: i64) -> KeyAnswer {
        Err(KeyError {
            status: Some(status),
            code: Some(code),
            message: format!("HTTP {status}"),
            retry_after: None,
        })
    }

    #[test]
    fn a_key_is_created_kept_alive_and_replaced_when_the_venue_forgets_it() {
        let t0 = Instant::now();
        let every = Duration::from_secs(1800);
        let mut k = ListenKey::new(every);
        assert_eq!(k.poll(t0), Some(KeyOp::Create));
        assert_eq!(k.poll(t0), None, "one call at a time");
        assert_eq!(k.on_answer(Ok("A".into()), t0), KeyEvent::NewKey);
        assert_eq!(k.key(), Some("A"));
        assert_eq!(k.deadline(t0), Some(t0 + every));
        assert_eq!(k.poll(t0 + every / 2), None);
        assert_eq!(k.poll(t0 + every), Some(KeyOp::KeepAlive));
        assert_eq!(k.on_answer(Ok("A".into()), t0 + every), KeyEvent::KeptAlive);
        assert_eq!(k.renewals, 1);
        // -1125 on the next keep-alive: the key is gone, a new one is asked for at once.
        let t1 = t0 + every * 2;
        assert_eq!(k.poll(t1), Some(KeyOp::KeepAlive));
        assert_eq!(k.on_answer(err(400, -1125), t1), KeyEvent::Lost);
        assert_eq!(k.key(), None);
        assert_eq!(k.poll(t1), Some(KeyOp::Create));
        assert_eq!(k.on_answer(Ok("B".into()), t1), KeyEvent::NewKey);
        assert_eq!((k.created, k.expiries), (2, 1));
        // The stream's listenKeyExpired event.
        k.expired();
        assert_eq!(k.poll(t1), Some(KeyOp::Create));
    }

    #[test]
    fn refused_credentials_stop_and_other_failures_retry_later() {
        let t0 = Instant::now();
        let mut k = ListenKey::new(Duration::from_secs(1800));
        k.poll(t0);
        assert!(matches!(
            k.on_answer(err(401, -2015), t0),
            KeyEvent::Refused(-2015, _)
        ));
        // Never asked again: no retry storm against a venue that refused the key.
        assert_eq!(
            (k.poll(t0 + Duration::from_secs(3600)), k.deadline(t0)),
            (None, None)
        );
        let mut k = ListenKey::new(Duration::from_secs(1800));
        k.poll(t0);
        assert_eq!(k.on_answer(err(503, -1001), t0), KeyEvent::Retry);
        assert_eq!(k.poll(t0), None, "waits before trying again");
        let again = k.deadline(t0).expect("a retry is due");
        assert!(again > t0);
        assert_eq!(k.poll(again), Some(KeyOp::Create));
    }
}
