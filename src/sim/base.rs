//! The simulator's smallest shared pieces: the kinds of market events, the
//! wall clock in milliseconds, and a lock that survives a panicking thread.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// The kind of a market event (one per supported stream family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// Top of book: Binance `<s>@bookTicker`, Bybit `orderbook.1.<S>`, OKX `bbo-tbt`.
    BookTicker,
    /// Trades: Binance `<s>@aggTrade`, Bybit `publicTrade.<S>`, OKX `trades`.
    AggTrade,
    /// Depth: Binance `<s>@depth@100ms`, Bybit `orderbook.50.<S>`, OKX `books`.
    Depth,
    /// Mark price: Binance `<s>@markPrice`, Bybit `tickers.<S>`, OKX `mark-price`.
    MarkPrice,
    /// OKX `funding-rate` (swaps).
    Funding,
    /// Every trade: Binance `<s>@trade`.
    Trade,
    /// The 1-minute candle: Binance `<s>@kline_1m`.
    Kline,
}

impl Kind {
    /// Whether the stream belongs to the USD-M "public" route (else "market").
    pub(crate) fn is_public(self) -> bool {
        matches!(self, Kind::BookTicker | Kind::Depth)
    }

    /// Order book channels (the ones book faults act on).
    pub(crate) fn is_book(self) -> bool {
        matches!(self, Kind::BookTicker | Kind::Depth)
    }
}

/// Real Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Locks a mutex, ignoring poisoning (a panicking thread must not take the
/// whole simulator down with it).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
