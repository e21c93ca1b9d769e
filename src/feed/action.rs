//! What a feed's connection logic asks its driver to do: the only way the logic, which does no
//! I/O, reaches a socket, a resolver or the REST helper. The driver drains them in order after
//! every call into the feed ([`crate::feed::core::FeedCore::poll_action`]).

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::account::listen_key::KeyOp;
use crate::auth::Secret;

/// Identifies one connection (session) within its feed; never reused by that feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

/// A message to write on a live connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// A text frame built for this connection (a subscribe request).
    Text(String),
    /// A text frame known at compile time (a venue's application-level ping), so a keep-alive
    /// allocates nothing.
    Static(&'static str),
    /// A WebSocket ping with a static payload.
    Ping,
}

/// One thing for the driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Resolve the host of target `target` off the feed thread; the answer comes back through
    /// `FeedCore::on_resolved`.
    Resolve {
        /// Index of the target.
        target: usize,
    },
    /// Open a TCP connection to `addr` for `session`, then TLS (for `wss://`) and the WebSocket
    /// upgrade to the target's URL; progress comes back through `FeedCore::on_progress`, failure
    /// through `FeedCore::on_failed`.
    Connect {
        /// The session it is for.
        session: SessionId,
        /// Index of the target (URL, TLS).
        target: usize,
        /// Where to connect.
        addr: SocketAddr,
        /// The URL to upgrade to when it is not the target's: one that names the streams to
        /// subscribe (Binance `/stream?streams=…`).
        url: Option<String>,
    },
    /// Write a message on `session`'s WebSocket and flush it.
    Send {
        /// The session.
        session: SessionId,
        /// The message.
        msg: Outgoing,
    },
    /// Close `session`'s connection politely (a close frame, flushed) and forget it.
    Close {
        /// The session.
        session: SessionId,
    },
    /// Drop `session`'s connection at once with a TCP reset (a dead or hostile peer cannot hold
    /// the socket in a closing state).
    Abort {
        /// The session.
        session: SessionId,
    },
    /// Make an account's listen-key call `op` off the feed thread (create or keep alive, at
    /// `rest_base` with `api_key`); the answer comes back through `FeedCore::on_listen_key`.
    ListenKey {
        /// Create or keep alive.
        op: KeyOp,
        /// Base URL of the REST calls.
        rest_base: String,
        /// The account's API key (redacted in `Debug`).
        api_key: Secret,
    },
    /// Fetch a REST depth snapshot for stream `stream` off the feed thread; the answer comes back
    /// through `FeedCore::on_snapshot`.
    Snapshot {
        /// Stream index within the feed.
        stream: u16,
        /// Full URL.
        url: String,
    },
}

/// The queue of actions a feed has asked for and the driver has not yet taken. It keeps its
/// capacity, so queuing on a steady connection allocates nothing.
#[derive(Debug, Default)]
pub struct Actions(VecDeque<Action>);

impl Actions {
    /// Asks for `action`.
    pub fn push(&mut self, action: Action) {
        self.0.push_back(action);
    }

    /// The oldest action not yet taken.
    pub fn pop(&mut self) -> Option<Action> {
        self.0.pop_front()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
