//! What a test observes of the private streams: the ground truth of every
//! account message handed to a connection ([`AccountSentRecord`]).

use crate::sim::observe::ConnId;

/// What an account message was about (see [`AccountSentRecord::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountEventKind {
    /// An order changed: Binance `ORDER_TRADE_UPDATE` / `executionReport`,
    /// Bybit `order`, OKX `orders`.
    Order,
    /// A fill on its own: Bybit `execution` (Binance and OKX carry fills in
    /// the order message).
    Execution,
    /// A position changed: Bybit `position`, OKX `positions` (Binance USD-M
    /// sends positions inside `ACCOUNT_UPDATE`, counted as
    /// [`AccountEventKind::Balance`]).
    Position,
    /// A balance changed (after a fill, or a deposit): Binance
    /// `ACCOUNT_UPDATE` / `outboundAccountPosition` (fills) or
    /// `balanceUpdate` (deposits), Bybit `wallet`, OKX `account`.
    Balance,
}

/// Which private stream a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrivateStream {
    /// Binance USDⓈ-M user data stream on a listen key (`/private/ws`,
    /// `/ws/<listenKey>`).
    BinanceListenKey,
    /// Binance spot WebSocket API (`/ws-api/v3`) after
    /// `userDataStream.subscribe.signature`.
    BinanceWsApi,
    /// Bybit v5 `/v5/private`.
    Bybit,
    /// OKX v5 `/ws/v5/private`.
    Okx,
}

/// Ground truth of one account message handed to a connection's WebSocket
/// for writing (before any byte of it can reach the kernel; see
/// `Sim::account_sent`). Control messages (`listenKeyExpired`,
/// `eventStreamTerminated`, replies) are not recorded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountSentRecord {
    /// The account's name ([`SimAccount::name`](super::account::SimAccount::name)).
    pub account: String,
    /// The private stream it was sent on.
    pub stream: PrivateStream,
    /// The connection it was sent on.
    pub conn: ConnId,
    /// The account's event number: 1, 2, 3, … per account, shared by every
    /// connection of the account (a connection sees the numbers generated
    /// while it was subscribed, in order).
    pub n: u64,
    /// What it was.
    pub kind: AccountEventKind,
    /// Its event time (Unix ms: Binance `E`, Bybit `creationTime`, OKX
    /// `uTime`).
    pub event_time_ms: u64,
}
