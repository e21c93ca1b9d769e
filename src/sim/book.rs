//! One order book: price → quantity per side, in integer units, with the
//! operations the market needs (best levels, the top `n`, applying a diff).

use std::collections::BTreeMap;

/// Price levels `(price units, quantity units)`, best first.
pub(crate) type Levels = Vec<(i64, u64)>;

/// Both sides of a book: price (in price units) → quantity (0.001 units).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Book {
    pub bids: BTreeMap<i64, u64>,
    pub asks: BTreeMap<i64, u64>,
}

impl Book {
    pub(crate) fn best_bid(&self) -> Option<(i64, u64)> {
        self.bids.iter().next_back().map(|(&p, &q)| (p, q))
    }

    pub(crate) fn best_ask(&self) -> Option<(i64, u64)> {
        self.asks.iter().next().map(|(&p, &q)| (p, q))
    }

    /// The best `n` levels of each side, best first.
    pub(crate) fn top(&self, n: usize) -> (Levels, Levels) {
        (
            self.bids
                .iter()
                .rev()
                .take(n)
                .map(|(&p, &q)| (p, q))
                .collect(),
            self.asks.iter().take(n).map(|(&p, &q)| (p, q)).collect(),
        )
    }

    /// Applies a diff (absolute quantities, 0 removes the level).
    pub(crate) fn apply(&mut self, diff: &Book) {
        for (side, changes) in [(&mut self.bids, &diff.bids), (&mut self.asks, &diff.asks)] {
            for (&p, &q) in changes {
                if q == 0 {
                    side.remove(&p);
                } else {
                    side.insert(p, q);
                }
            }
        }
    }

    /// No level on either side (an empty diff).
    pub(crate) fn is_empty(&self) -> bool {
        self.bids.is_empty() && self.asks.is_empty()
    }
}
