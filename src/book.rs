//! A local L2 order book: price levels kept sorted in two vectors. Pure.
//!
//! Updates set a level's size (0 removes it). Each side is bounded: after each venue message
//! ([`Book::trim`]) the levels beyond `max_levels` are dropped — not after each level, since one
//! message may add a better level and remove another — so after start-up an update never
//! allocates (the vectors keep their capacity). Books here are maintained by the feed thread from the venue's snapshots and
//! deltas; the feed decides when a book is valid.

use std::cmp::Ordering;
use std::fmt::Write as _;

use crate::tick::{DepthChunk, Level};

/// Which side of the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Buy orders, best (highest) first.
    Bid,
    /// Sell orders, best (lowest) first.
    Ask,
}

/// One instrument's book.
#[derive(Clone, Debug)]
pub struct Book {
    bids: Vec<Level>,
    asks: Vec<Level>,
    max_levels: usize,
    /// Most decimals the venue wrote in prices and sizes (for the OKX checksum).
    dp: (u8, u8),
}

impl Book {
    /// An empty book keeping at most `max_levels` per side (at least 1).
    pub fn new(max_levels: usize) -> Self {
        let max_levels = max_levels.max(1);
        // Room for one message's worth of new levels above the bound before it is trimmed.
        let room = max_levels + max_levels.max(64);
        Book {
            bids: Vec::with_capacity(room),
            asks: Vec::with_capacity(room),
            max_levels,
            dp: (0, 0),
        }
    }

    /// Removes every level.
    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
        self.dp = (0, 0);
    }

    /// Sets the size at `price` on `side`; a size of 0 removes the level (removing a level that
    /// is not there is normal, e.g. one below the kept depth).
    pub fn set(&mut self, side: Side, price: f64, qty: f64) {
        let levels = match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        };
        // Levels are ordered best first: find the first level not better than `price`.
        let at = match side {
            Side::Bid => levels.partition_point(|l| l.price > price),
            Side::Ask => levels.partition_point(|l| l.price < price),
        };
        let exists = levels.get(at).is_some_and(|l| l.price == price);
        match (exists, qty > 0.0) {
            (true, true) => levels[at].qty = qty,
            (true, false) => {
                levels.remove(at);
            }
            (false, true) => levels.insert(at, Level { price, qty }),
            (false, false) => {}
        }
    }

    /// Applies the levels of one chunk of a venue update (a snapshot's chunks after `clear`).
    pub fn apply(&mut self, chunk: &DepthChunk) {
        self.dp = (self.dp.0.max(chunk.price_dp), self.dp.1.max(chunk.qty_dp));
        for l in chunk.bids() {
            self.set(Side::Bid, l.price, l.qty);
        }
        for l in chunk.asks() {
            self.set(Side::Ask, l.price, l.qty);
        }
    }

    /// Drops the levels beyond the bound; call after each venue message.
    pub fn trim(&mut self) {
        self.bids.truncate(self.max_levels);
        self.asks.truncate(self.max_levels);
    }

    /// Best bid.
    pub fn best_bid(&self) -> Option<Level> {
        self.bids.first().copied()
    }

    /// Best ask.
    pub fn best_ask(&self) -> Option<Level> {
        self.asks.first().copied()
    }

    /// Bids, best first.
    pub fn bids(&self) -> &[Level] {
        &self.bids
    }

    /// Asks, best first.
    pub fn asks(&self) -> &[Level] {
        &self.asks
    }

    /// The best bid is at or above the best ask: the book cannot be right.
    pub fn crossed(&self) -> bool {
        match (self.best_bid(), self.best_ask()) {
            (Some(b), Some(a)) => b.price.partial_cmp(&a.price) != Some(Ordering::Less),
            _ => false,
        }
    }

    /// OKX's checksum: CRC32 (as a signed 32-bit integer) of the first 25 bids and asks,
    /// interleaved `bid:size:ask:size:…`, a side's missing levels skipped, over the strings
    /// the venue sent. The book keeps numbers, so it writes them back both ways a venue
    /// writes them — shortest (`8476.98`, `415`) and with the instrument's fixed decimals
    /// (`8476.980`) — and the checksum matches if either does.
    pub fn okx_checksum_matches(&self, expected: i32) -> bool {
        self.okx_checksum(None) == expected || self.okx_checksum(Some(self.dp)) == expected
    }

    /// OKX's checksum with numbers written shortest (`None`) or with fixed decimals.
    pub fn okx_checksum(&self, fixed: Option<(u8, u8)>) -> i32 {
        let mut s = String::with_capacity(25 * 40);
        for i in 0..25 {
            for side in [&self.bids, &self.asks] {
                if let Some(l) = side.get(i) {
                    if !s.is_empty() {
                        s.push(':');
                    }
                    let _ = match fixed {
                        None => write!(s, "{}:{}", l.price, l.qty),
                        Some((p, q)) => write!(
                            s,
                            "{:.*}:{:.*}",
                            usize::from(p),
                            l.price,
                            usize::from(q),
                            l.qty
                        ),
                    };
                }
            }
        }
        crc32fast::hash(s.as_bytes()) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_stay_sorted_and_bounded_and_zero_removes() {
        let mut b = Book::new(3);
        for p in [10.0, 12.0, 11.0, 9.0] {
            b.set(Side::Bid, p, 1.0);
        }
        b.trim();
        let prices: Vec<f64> = b.bids().iter().map(|l| l.price).collect();
        assert_eq!(
            prices,
            vec![12.0, 11.0, 10.0],
            "best first, deepest dropped"
        );
        b.set(Side::Bid, 11.0, 5.0);
        assert_eq!(b.bids()[1].qty, 5.0);
        b.set(Side::Bid, 12.0, 0.0);
        assert_eq!(b.best_bid().map(|l| l.price), Some(11.0));
        b.set(Side::Bid, 99.0, 0.0);
        assert_eq!(b.bids().len(), 2, "removing an absent level is fine");
        for p in [13.0, 12.5, 14.0] {
            b.set(Side::Ask, p, 1.0);
        }
        assert_eq!(b.best_ask().map(|l| l.price), Some(12.5));
        assert!(!b.crossed());
        b.set(Side::Bid, 12.5, 1.0);
        assert!(b.crossed(), "bid at the ask");
    }

    #[test]
    fn updates_after_start_up_do_not_grow_the_book() {
        let mut b = Book::new(50);
        for i in 0..50 {
            b.set(Side::Bid, 100.0 - f64::from(i), 1.0);
        }
        let cap = (b.bids.capacity(), b.bids.as_ptr());
        for i in 0..1000 {
            b.set(Side::Bid, 100.5 - f64::from(i % 60), f64::from(i % 3));
            b.trim();
        }
        assert_eq!((b.bids.capacity(), b.bids.as_ptr()), cap);
        assert!(b.bids().len() <= 50);
    }

    #[test]
    fn a_message_that_adds_a_better_level_and_removes_one_keeps_the_bound_right() {
        let mut b = Book::new(2);
        b.set(Side::Ask, 10.0, 1.0);
        b.set(Side::Ask, 11.0, 1.0);
        // One message: a better level arrives, then the best is removed.
        b.set(Side::Ask, 9.0, 1.0);
        b.set(Side::Ask, 9.0, 0.0);
        b.trim();
        let prices: Vec<f64> = b.asks().iter().map(|l| l.price).collect();
        assert_eq!(
            prices,
            vec![10.0, 11.0],
            "11 was never really out of the book"
        );
    }

    #[test]
    fn okx_checksum_of_the_documented_examples() {
        // The strings of OKX's two documented examples (tests/fixtures/okx/checksum_example_*)
        // and their CRC32 as zlib computes it (tests/fixtures/README.md).
        assert_eq!(
            crc32fast::hash(b"3366.1:7:3366.8:9:3366:6:3368:8") as i32,
            -1_881_014_294
        );
        assert_eq!(
            crc32fast::hash(b"3366.1:7:3366.8:9:3368:8:3372:8") as i32,
            831_078_360
        );
        let mut b = Book::new(400);
        b.set(Side::Bid, 3366.1, 7.0);
        b.set(Side::Bid, 3366.0, 6.0);
        b.set(Side::Ask, 3366.8, 9.0);
        b.set(Side::Ask, 3368.0, 8.0);
        assert_eq!(b.okx_checksum(None), -1_881_014_294);
        let mut b = Book::new(400);
        b.set(Side::Bid, 3366.1, 7.0);
        b.set(Side::Ask, 3366.8, 9.0);
        b.set(Side::Ask, 3368.0, 8.0);
        b.set(Side::Ask, 3372.0, 8.0);
        assert_eq!(b.okx_checksum(None), 831_078_360);
        assert!(b.okx_checksum_matches(831_078_360));
        // The same book written with fixed decimals, as a venue may send it.
        let fixed =
            crc32fast::hash(b"3366.10:7.000:3366.80:9.000:3368.00:8.000:3372.00:8.000") as i32;
        b.dp = (2, 3);
        assert!(b.okx_checksum_matches(fixed));
        assert!(!b.okx_checksum_matches(fixed ^ 1));
    }
}
