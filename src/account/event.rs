//! What an account's private stream tells the strategy: typed order, balance and position
//! updates, the same for every venue. Every text field is held inline ([`Text`]), so an event is
//! `Copy` and travels the lossless health channel without a heap allocation of its own.

use std::fmt;

/// Longest text kept (order ids: Binance client ids are at most 36 characters, Bybit order ids
/// are 36-character UUIDs, OKX ids at most 32).
const TEXT_CAP: usize = 40;

/// A short text held inline. Longer text is cut at a character boundary (and the cut is
/// marked, so it is never mistaken for the whole).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Text {
    len: u8,
    bytes: [u8; TEXT_CAP],
}

impl Text {
    /// The empty text.
    pub const EMPTY: Text = Text {
        len: 0,
        bytes: [0; TEXT_CAP],
    };

    /// `s`, cut to fit (the last kept character becomes `…` when it is cut).
    pub fn new(s: &str) -> Text {
        let mut t = Text::EMPTY;
        if s.len() <= TEXT_CAP {
            t.bytes[..s.len()].copy_from_slice(s.as_bytes());
            t.len = s.len() as u8;
            return t;
        }
        let mark = '…';
        let mut end = TEXT_CAP - mark.len_utf8();
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        t.bytes[..end].copy_from_slice(&s.as_bytes()[..end]);
        let mut buf = [0u8; 4];
        let m = mark.encode_utf8(&mut buf).as_bytes();
        t.bytes[end..end + m.len()].copy_from_slice(m);
        t.len = (end + m.len()) as u8;
        t
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ever filled from a `&str` cut at a character boundary.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::EMPTY
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Buy or sell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderSide {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

/// Where an order stands, the same words for every venue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Accepted and working.
    New,
    /// Partly filled, still working.
    PartiallyFilled,
    /// Completely filled.
    Filled,
    /// Cancelled (by the owner, or by the venue: self-trade prevention, market protection…),
    /// possibly after partial fills.
    Cancelled,
    /// Refused by the venue.
    Rejected,
    /// Expired (time in force, a trigger that never fired).
    Expired,
}

impl OrderStatus {
    /// Whether the order will change no more.
    pub fn is_final(self) -> bool {
        !matches!(self, OrderStatus::New | OrderStatus::PartiallyFilled)
    }

    /// The word used in logs and captures.
    pub fn name(self) -> &'static str {
        match self {
            OrderStatus::New => "new",
            OrderStatus::PartiallyFilled => "partially_filled",
            OrderStatus::Filled => "filled",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Expired => "expired",
        }
    }
}

/// An order changed: placed, filled (partly or fully), cancelled, rejected, expired.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrderUpdate {
    /// The venue's symbol as it names it (`BTCUSDT`, `BTC-USDT-SWAP`).
    pub symbol: Text,
    /// The venue's order id.
    pub order_id: Text,
    /// The client order id the order was placed with (empty when none).
    pub client_order_id: Text,
    /// Buy or sell.
    pub side: OrderSide,
    /// Where it stands now.
    pub status: OrderStatus,
    /// Limit price (0 for a market order).
    pub price: f64,
    /// Quantity ordered.
    pub quantity: f64,
    /// Quantity filled so far.
    pub filled_quantity: f64,
    /// Price of the fill this update reports (0 when it reports none).
    pub last_fill_price: f64,
    /// Quantity of the fill this update reports (0 when it reports none).
    pub last_fill_quantity: f64,
    /// Fee of the fill this update reports, as the venue states it (OKX: negative is a charge).
    pub fee: f64,
    /// Asset the fee is paid in (empty when the venue does not say).
    pub fee_asset: Text,
    /// The venue's time of the update, Unix ms.
    pub time_ms: u64,
}

/// An asset's balance changed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BalanceUpdate {
    /// The asset (`USDT`).
    pub asset: Text,
    /// Balance in the wallet (NaN when the message reports only a change: Binance's
    /// `balanceUpdate`, a deposit or withdrawal).
    pub total: f64,
    /// Of which free to use (NaN when the venue's message does not say).
    pub available: f64,
    /// The change this message reports (a deposit, a withdrawal), NaN when it reports the
    /// balance itself.
    pub change: f64,
    /// The venue's time of the update, Unix ms.
    pub time_ms: u64,
}

/// A position changed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PositionUpdate {
    /// The venue's symbol.
    pub symbol: Text,
    /// Size, signed: positive long, negative short, 0 flat.
    pub size: f64,
    /// Average entry price (0 when flat).
    pub entry_price: f64,
    /// Unrealised profit and loss (NaN when the venue's message does not say).
    pub unrealized_pnl: f64,
    /// The venue's time of the update, Unix ms.
    pub time_ms: u64,
}

/// One event of an account's private stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AccountEvent {
    /// An order changed.
    Order(OrderUpdate),
    /// A balance changed.
    Balance(BalanceUpdate),
    /// A position changed.
    Position(PositionUpdate),
}

impl AccountEvent {
    /// Which kind of event it is, as `[[accounts]] events` names them.
    pub fn kind(&self) -> EventKind {
        match self {
            AccountEvent::Order(_) => EventKind::Orders,
            AccountEvent::Balance(_) => EventKind::Balances,
            AccountEvent::Position(_) => EventKind::Positions,
        }
    }
}

/// The kinds of account events a config can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Order updates (and the fills they carry).
    Orders,
    /// Balance updates.
    Balances,
    /// Position updates.
    Positions,
}

impl EventKind {
    /// Every kind, in config order.
    pub const ALL: [EventKind; 3] = [EventKind::Orders, EventKind::Balances, EventKind::Positions];

    /// The config's word.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Orders => "orders",
            EventKind::Balances => "balances",
            EventKind::Positions => "positions",
        }
    }

    /// The kind a config word names.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// An account event as delivered: which account, which connection and message it came in,
/// when it was read, the event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AccountMsg {
    /// The account's feed.
    pub feed: crate::tick::FeedId,
    /// The account's connection number that delivered it (1 for the first; see
    /// [`crate::Health::Connected`]).
    pub conn: u32,
    /// The account's private message it came in, numbered from 1 across connections: the
    /// events of one venue message (an `ACCOUNT_UPDATE`'s balances and positions) share it.
    pub message: u64,
    /// Monotonic time the frame was read ([`crate::clock::now_ns`]).
    pub recv_ns: u64,
    /// The event.
    pub event: AccountEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_keeps_short_text_and_marks_a_cut() {
        assert_eq!(Text::new("BTCUSDT").as_str(), "BTCUSDT");
        assert!(Text::new("").is_empty());
        let long = "x".repeat(60);
        let t = Text::new(&long);
        assert!(t.as_str().ends_with('…'), "{t}");
        assert!(t.as_str().len() <= TEXT_CAP);
        // A cut never splits a character.
        let wide = "é".repeat(30);
        let t = Text::new(&wide);
        assert!(t.as_str().starts_with("éé") && t.as_str().ends_with('…'));
    }
}
