//! The top of book of a level-1 stream (Binance `bookTicker`, Bybit `orderbook.1`, OKX
//! `bbo-tbt`), kept across its messages: a quote replaces it, a delta (Bybit `orderbook.1`
//! has sent them, though documented as snapshots only) changes the sides it names. A side
//! that is missing, NaN or of size 0 is never handed out as a price: until both sides are
//! known again, nothing is.

use crate::tick::{Level, TickData};

/// The last known best bid and ask.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TopOfBook {
    bid: Option<Level>,
    ask: Option<Level>,
}

impl TopOfBook {
    /// Merges one tick of the stream: the quote to hand out, or `None` while a side is
    /// unknown. Ticks other than quotes and depth chunks pass through.
    #[inline]
    pub(crate) fn merge(&mut self, data: TickData) -> Option<TickData> {
        match data {
            TickData::Quote {
                bid,
                bid_qty,
                ask,
                ask_qty,
            } => {
                self.bid = usable(Level {
                    price: bid,
                    qty: bid_qty,
                });
                self.ask = usable(Level {
                    price: ask,
                    qty: ask_qty,
                });
            }
            TickData::Depth(chunk) => {
                if chunk.snapshot && chunk.part == 0 {
                    (self.bid, self.ask) = (None, None);
                }
                apply(&mut self.bid, chunk.bids());
                apply(&mut self.ask, chunk.asks());
                if !chunk.last {
                    return None;
                }
            }
            other => return Some(other),
        }
        let (bid, ask) = (self.bid?, self.ask?);
        Some(TickData::quote((bid.price, bid.qty), (ask.price, ask.qty)))
    }
}

/// A level that can stand as a price: finite, with a size.
fn usable(level: Level) -> Option<Level> {
    (level.price.is_finite() && level.qty.is_finite() && level.qty > 0.0).then_some(level)
}

/// The levels of one side of a change to a one-level book, in order: a level with a size is
/// the new best; size 0 removes the best if it is at that price.
fn apply(side: &mut Option<Level>, levels: &[Level]) {
    for &level in levels {
        match usable(level) {
            Some(new) => *side = Some(new),
            None if side.is_some_and(|s| s.price == level.price) => *side = None,
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tick::DepthChunk;

    fn delta(bids: &[(f64, f64)], asks: &[(f64, f64)], snapshot: bool) -> TickData {
        let mut chunk = DepthChunk {
            snapshot,
            last: true,
            ..DepthChunk::EMPTY
        };
        for (i, &(price, qty)) in bids.iter().chain(asks).enumerate() {
            chunk.levels[i] = Level { price, qty };
        }
        (chunk.n_bids, chunk.n_asks) = (bids.len() as u8, asks.len() as u8);
        TickData::Depth(chunk)
    }

    #[test]
    fn deltas_merge_into_the_last_top_and_no_side_is_made_up() {
        let mut top = TopOfBook::default();
        // A delta before any snapshot: one side only is known.
        assert_eq!(top.merge(delta(&[(100.0, 1.0)], &[], false)), None);
        assert_eq!(
            top.merge(TickData::quote((100.0, 1.0), (101.0, 2.0))),
            Some(TickData::quote((100.0, 1.0), (101.0, 2.0)))
        );
        // One side changes: the other stays.
        assert_eq!(
            top.merge(delta(&[], &[(100.5, 3.0)], false)),
            Some(TickData::quote((100.0, 1.0), (100.5, 3.0)))
        );
        // The best bid removed and the next one given in the same delta.
        assert_eq!(
            top.merge(delta(&[(100.0, 0.0), (99.5, 4.0)], &[], false)),
            Some(TickData::quote((99.5, 4.0), (100.5, 3.0)))
        );
        // A removal of another price changes nothing.
        assert_eq!(
            top.merge(delta(&[(98.0, 0.0)], &[], false)),
            Some(TickData::quote((99.5, 4.0), (100.5, 3.0)))
        );
        // The best bid removed alone: no bid is known, nothing is handed out.
        assert_eq!(top.merge(delta(&[(99.5, 0.0)], &[], false)), None);
        assert_eq!(
            top.merge(delta(&[(99.0, 1.0)], &[], false)),
            Some(TickData::quote((99.0, 1.0), (100.5, 3.0)))
        );
        // A quote with an empty side (NaN, 0) is not handed out; nor one of size 0.
        assert_eq!(
            top.merge(TickData::quote((f64::NAN, 0.0), (101.0, 2.0))),
            None
        );
        assert_eq!(top.merge(TickData::quote((100.0, 0.0), (101.0, 2.0))), None);
        // A snapshot replaces both sides.
        assert_eq!(
            top.merge(delta(&[(97.0, 1.0)], &[(98.0, 1.0)], true)),
            Some(TickData::quote((97.0, 1.0), (98.0, 1.0)))
        );
        assert_eq!(top.merge(delta(&[], &[(98.5, 1.0)], true)), None);
    }
}
