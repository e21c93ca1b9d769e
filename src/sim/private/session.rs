//! The private protocol state of one connection ([`PrivSession`]) and what a
//! venue's private request handler asks the connection to do ([`Act`]).

use super::observe::{AccountEventKind, PrivateStream};

/// One private connection's protocol state.
#[derive(Debug)]
pub(crate) struct PrivSession {
    pub stream: PrivateStream,
    /// The venue's connection id (Bybit `conn_id`, OKX `connId`).
    pub tag: String,
    /// The account logged in (Bybit `auth`, OKX `login`), subscribed
    /// (Binance WebSocket API) or named by the listen key.
    pub account: Option<usize>,
    /// Subscribed kinds (Bybit topics, OKX channels); Binance: every kind.
    pub kinds: Vec<AccountEventKind>,
    /// OKX: the subscribed arguments by kind, as the client sent them (the
    /// `arg` of each push).
    pub okx_args: Vec<(AccountEventKind, String)>,
    /// Binance WebSocket API: the active subscription's id.
    pub subscription: Option<u64>,
    /// Binance WebSocket API: the id the next subscription gets.
    pub next_subscription: u64,
    /// Binance USD-M: the listen key of the connection.
    pub listen_key: Option<String>,
    /// The listen key expired: nothing more is delivered.
    pub ended: bool,
}

impl PrivSession {
    /// A fresh session of `stream` with connection id `tag`.
    pub(crate) fn new(stream: PrivateStream, tag: String) -> PrivSession {
        PrivSession {
            stream,
            tag,
            account: None,
            kinds: Vec::new(),
            okx_args: Vec::new(),
            subscription: None,
            next_subscription: 0,
            listen_key: None,
            ended: false,
        }
    }
}

/// What a private request handler asks the connection to do, in order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Act {
    /// Send this reply.
    Reply(String),
    /// Start listening to the session's account.
    Listen,
    /// Stop listening.
    Unlisten,
    /// Count an application-level ping.
    Ping,
}
