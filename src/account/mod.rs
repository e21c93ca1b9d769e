//! Private (user-data) streams: an account's connection to its venue, what it sends to log in
//! and subscribe, and what the venue's private messages mean.
//!
//! An account runs as a feed of its own (`FeedParams::account`), on the same connection machine
//! as market feeds: reconnect, backoff, circuit, liveness, health events, manifest gaps. What
//! differs is here:
//! - **Binance USD-M**: a listen key from `POST /fapi/v1/listenKey` (the API-key header), kept
//!   alive with `PUT` (default every 30 minutes, well inside its 60), the connection on
//!   `/private/ws?listenKey=…`. `-1125` on a keep-alive or a `listenKeyExpired` event: a new key
//!   and a new connection ([`listen_key`]).
//! - **Binance spot**: the WebSocket API (`/ws-api/v3`), `userDataStream.subscribe.signature`
//!   (HMAC-signed), events wrapped in `{"subscriptionId":…,"event":…}`; `eventStreamTerminated`
//!   ends the connection's subscription.
//! - **Bybit v5**: `/v5/private`, `op: auth`, then `order`, `execution`, `position`, `wallet`.
//! - **OKX v5**: `/ws/v5/private`, `op: login`, then `orders`, `positions`, `account`.
//!
//! Secrets: [`crate::auth::Secret`] never prints its value; the listen key stays out of log
//! lines (connections are logged by their URL without it). The REST client (`ureq`) logs request
//! headers, the API key among them, at debug level, and `tungstenite` logs the upgrade request
//! (a listen key in its URL) and every frame (a login's key and signature) at debug and trace: a
//! program embedding the engine keeps the `ureq` and `tungstenite` targets at info or above
//! (`wsfeed` itself caps them there).
//!
//! Private messages are rare next to market data (an account's own orders), so they are read
//! with `serde_json` into [`AccountEvent`]s, which hold their text inline and travel the
//! lossless channel. A refused credential is not retried: the account fails with a message that
//! says which account, what the venue said and what to check.

pub mod event;
pub mod listen_key;
mod parse;

use std::fmt;
use std::time::Duration;

use crate::auth::{self, Credentials};
use crate::venue::Venue;

pub use event::{
    AccountEvent, AccountMsg, BalanceUpdate, EventKind, OrderSide, OrderStatus, OrderUpdate,
    PositionUpdate, Text,
};

/// How a venue's private stream works.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Binance USD-M: REST listen key, `/private/ws?listenKey=…`.
    BinanceListenKey,
    /// Binance spot: the WebSocket API's `userDataStream.subscribe.signature`.
    BinanceWsApi,
    /// Bybit v5: `op: auth`, then topics.
    Bybit,
    /// OKX v5: `op: login`, then channels.
    Okx,
}

impl Protocol {
    /// The private protocol of `venue`; `None` for a custom venue (private streams are the
    /// built-in venues' only).
    pub fn of(venue: Venue) -> Option<Protocol> {
        match venue {
            Venue::BinanceUsdm => Some(Protocol::BinanceListenKey),
            Venue::BinanceSpot => Some(Protocol::BinanceWsApi),
            Venue::BybitSpot | Venue::BybitLinear => Some(Protocol::Bybit),
            Venue::Okx => Some(Protocol::Okx),
            Venue::Custom(_) => None,
        }
    }

    /// The production base URL of the private WebSocket.
    pub fn default_url(self) -> &'static str {
        match self {
            Protocol::BinanceListenKey => "wss://fstream.binance.com",
            Protocol::BinanceWsApi => "wss://ws-api.binance.com:443",
            Protocol::Bybit => "wss://stream.bybit.com",
            Protocol::Okx => "wss://ws.okx.com:8443",
        }
    }

    /// The production base URL of REST calls (listen keys), for protocols that make them.
    pub fn default_rest_url(self) -> Option<&'static str> {
        match self {
            Protocol::BinanceListenKey => Some("https://fapi.binance.com"),
            _ => None,
        }
    }

    /// The path of the private WebSocket (the listen key's query is added per connection).
    pub fn path(self) -> &'static str {
        match self {
            Protocol::BinanceListenKey => "/private/ws",
            Protocol::BinanceWsApi => "/ws-api/v3",
            Protocol::Bybit => "/v5/private",
            Protocol::Okx => "/ws/v5/private",
        }
    }

    /// Whether the account needs a passphrase (OKX).
    pub fn needs_passphrase(self) -> bool {
        self == Protocol::Okx
    }

    /// Whether connections need a listen key first.
    pub fn uses_listen_key(self) -> bool {
        self == Protocol::BinanceListenKey
    }

    /// The venue's application-level ping, when it wants one (Bybit, OKX), as on market feeds.
    pub fn ping_text(self) -> Option<&'static str> {
        match self {
            Protocol::Bybit => Some(r#"{"op":"ping"}"#),
            Protocol::Okx => Some("ping"),
            _ => None,
        }
    }
}

/// Everything an account's feed needs beyond what every feed has.
#[derive(Clone, PartialEq)]
pub struct AccountParams {
    /// The account's name.
    pub name: String,
    /// Its venue.
    pub venue: Venue,
    /// How its venue's private stream works.
    pub protocol: Protocol,
    /// Its credentials (redacted in `Debug`).
    pub creds: Credentials,
    /// Names of the environment variables they came from, for messages.
    pub key_env: String,
    /// See `key_env`.
    pub secret_env: String,
    /// Which events the strategy gets.
    pub events: Vec<EventKind>,
    /// Binance USD-M: base URL of the listen-key REST calls.
    pub rest_base: Option<String>,
    /// Binance USD-M: how often the listen key is kept alive.
    pub keepalive_every: Duration,
    /// Binance spot: the secret is an Ed25519 private key (`session.logon`, then
    /// `userDataStream.subscribe`) rather than an HMAC secret.
    pub ed25519: bool,
}

impl fmt::Debug for AccountParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountParams")
            .field("name", &self.name)
            .field("venue", &self.venue)
            .field("protocol", &self.protocol)
            .field("creds", &self.creds)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl AccountParams {
    /// Whether the strategy asked for events of `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.contains(&kind)
    }

    /// The first message of a connection: the login (Bybit `auth`, OKX `login`) or, Binance
    /// spot, the signed subscription that is also the login. `None`: the URL carries the
    /// credential (a listen key). `unix_ms` is the wall clock now.
    pub fn login_request(&self, id: u64, unix_ms: u64) -> Option<String> {
        match self.protocol {
            Protocol::BinanceListenKey => None,
            Protocol::BinanceWsApi => {
                let key = self.creds.key.expose();
                let query = format!("apiKey={key}&timestamp={unix_ms}");
                // An Ed25519 key logs the session on; an HMAC key signs the subscription.
                let (method, signature) = match self.ed25519 {
                    // Checked when the config was read: a key that signs.
                    true => (
                        "session.logon",
                        auth::ed25519_base64(&self.creds.secret, &query).ok()?,
                    ),
                    false => (
                        "userDataStream.subscribe.signature",
                        auth::binance_signature(&self.creds, &query),
                    ),
                };
                Some(format!(
                    r#"{{"id":"{id}","method":"{method}","params":{{"apiKey":"{key}","timestamp":{unix_ms},"signature":"{signature}"}}}}"#
                ))
            }
            // Valid for 10 s: a login that arrives later is refused, not replayed.
            Protocol::Bybit => Some(auth::bybit_auth_request(&self.creds, id, unix_ms + 10_000)),
            Protocol::Okx => auth::okx_login_request(&self.creds, unix_ms / 1000).ok(),
        }
    }

    /// The subscribe requests that follow a successful login, numbered from `first_id` (one
    /// per request; OKX acknowledges channel by channel, so each channel is a request).
    pub fn subscribe_requests(&self, first_id: u64) -> Vec<String> {
        match self.protocol {
            // After `session.logon`, the subscription needs no signature.
            Protocol::BinanceWsApi if self.ed25519 => vec![format!(
                r#"{{"id":"{first_id}","method":"userDataStream.subscribe"}}"#
            )],
            Protocol::BinanceListenKey | Protocol::BinanceWsApi => Vec::new(),
            Protocol::Bybit => {
                let mut topics: Vec<&str> = Vec::new();
                if self.wants(EventKind::Orders) {
                    topics.extend(["order", "execution"]);
                }
                if self.wants(EventKind::Positions) {
                    topics.push("position");
                }
                if self.wants(EventKind::Balances) {
                    topics.push("wallet");
                }
                let args: Vec<String> = topics.iter().map(|t| format!("\"{t}\"")).collect();
                vec![format!(
                    r#"{{"req_id":"{first_id}","op":"subscribe","args":[{}]}}"#,
                    args.join(",")
                )]
            }
            Protocol::Okx => {
                let mut args: Vec<&str> = Vec::new();
                if self.wants(EventKind::Orders) {
                    args.push(r#"{"channel":"orders","instType":"ANY"}"#);
                }
                if self.wants(EventKind::Positions) {
                    args.push(r#"{"channel":"positions","instType":"ANY"}"#);
                }
                if self.wants(EventKind::Balances) {
                    args.push(r#"{"channel":"account"}"#);
                }
                args.iter()
                    .zip(first_id..)
                    .map(|(a, id)| format!(r#"{{"id":"{id}","op":"subscribe","args":[{a}]}}"#))
                    .collect()
            }
        }
    }

    /// What to tell an operator whose credentials the venue refused: the account, the venue's
    /// words, and what to check.
    pub fn credential_advice(&self, code: i64, msg: &str) -> String {
        format!(
            "account '{}' ({}): the venue refused its credentials (code {code}: {msg}). Check the \
             API key and secret in {} / {} (key {}), that the key's IP whitelist includes this \
             host, and that the key may read account data{}; the account is stopped, every other \
             feed goes on",
            self.name,
            self.venue.name(),
            self.key_env,
            self.secret_env,
            self.creds.key_hint(),
            if self.protocol.needs_passphrase() {
                ", and the passphrase"
            } else {
                ""
            }
        )
    }
}

/// What a private message is.
#[derive(Debug, PartialEq)]
pub enum PrivateFrame {
    /// Account events, appended to the caller's list (possibly none: a message of a kind not
    /// asked for, or a heartbeat-like update with nothing in it). `skipped`: the first item of
    /// a several-item message that could not be read (the others are delivered).
    Events {
        /// What was wrong with the item left out, if one was.
        skipped: Option<String>,
    },
    /// The venue answered request `id` with success.
    Ack {
        /// The request.
        id: u64,
    },
    /// The login succeeded (a reply that echoes no id: Bybit `auth`, OKX `login`).
    LoggedIn,
    /// The venue refused something: request `id` if it says which.
    Error {
        /// The request, when the venue echoes it.
        id: Option<u64>,
        /// The venue's code (Bybit sends none: 0).
        code: i64,
        /// The venue's words.
        msg: String,
        /// The venue says the credentials are wrong (key, signature, passphrase, permissions).
        credentials: bool,
    },
    /// The venue says too many requests (Binance's WebSocket API: HTTP-like status 429, or 418
    /// for an IP ban), and how long to stay away when it says.
    RateLimited {
        /// 429 or 418.
        status: u16,
        /// Seconds until the venue takes requests again.
        retry_after_s: Option<u32>,
        /// The venue's words.
        msg: String,
    },
    /// The stream's credential ended: a listen key expired (`key`: the one it names), or
    /// Binance's `eventStreamTerminated`.
    Expired {
        /// The listen key the event names, when it names one.
        key: Option<String>,
    },
    /// An answer to the venue's application-level ping.
    Pong,
    /// Something else (counted, logged rate-limited).
    Unknown,
}

/// Reads one private message of `protocol`, appending events to `events` with the kinds the
/// account wants.
pub fn classify(
    params: &AccountParams,
    text: &str,
    events: &mut Vec<AccountEvent>,
) -> Result<PrivateFrame, String> {
    let before = events.len();
    let frame = match params.protocol {
        Protocol::BinanceListenKey | Protocol::BinanceWsApi => parse::binance(text, events),
        Protocol::Bybit => parse::bybit(text, events),
        Protocol::Okx => parse::okx(text, events),
    }?;
    // Keep only what was asked for, in order.
    let mut k = before;
    for i in before..events.len() {
        if params.wants(events[i].kind()) {
            events[k] = events[i];
            k += 1;
        }
    }
    events.truncate(k);
    Ok(frame)
}

/// Whether a Binance error code means the credentials (key, signature, IP, permissions) are wrong.
pub fn binance_credential_code(code: i64) -> bool {
    matches!(code, -2015 | -2014 | -2008 | -1022 | -1002)
}

#[cfg(test)]
pub(crate) mod tests;
