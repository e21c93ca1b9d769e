//! One subscribed stream across all of its feed's connections: its numbering, the messages
//! held back while another connection may fill a hole, its local book, its silence. Every rule
//! that concerns one stream lives here; what concerns the feed as a whole (outages, which
//! connection carries it) comes in as arguments.
//!
//! A message is parsed once, before anything is decided about it; a message held back (or
//! buffered for a REST snapshot, see [`super::book`]) is kept parsed, not as text.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use log::{info, warn};

use super::book::{Applied, BookState, Buffered};
use super::outage::record_missed;
use super::report::Out;
use super::seq::{SeqTrack, Verdict};
use super::sink::Sink;
use super::top::TopOfBook;
use super::watch::Silence;
use crate::metrics::{FeedStats, Missed};
use crate::raw::Raw;
use crate::rest::DepthSnapshot;
use crate::tick::{BookFault, DepthChunk, Health, SymbolId, Tick, TickData, DEPTH_CHUNK_LEVELS};
use crate::venue::{Seq, SeqRule, StreamDef, StreamKind, Venue};

/// A message's ticks as parsed: (event time in Unix ms, data), in order.
pub(crate) type Ticks = Vec<(u64, TickData)>;

/// Messages in a row that are not new, on a stream, before its numbering is taken to have
/// been reset. Two connections deliver every update twice, so this counts only when no
/// connection brings anything new.
const SEQ_RESET_AFTER: u32 = 256;

/// Most messages held per stream before the hole is reported without waiting longer.
const MAX_HELD: usize = 256;

/// What becomes of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// New and in order: to the strategy and the capture.
    Deliver,
    /// Seen already.
    Drop,
    /// New, but ids before it are missing while another connection may still bring them.
    Hold,
}

/// A message held back until the hole before it is filled or the reorder window ends.
#[derive(Debug)]
struct Held {
    seq: Seq,
    conn: u32,
    recv_ns: u64,
    /// The frame, for the capture.
    frame: Raw,
    ticks: Ticks,
}

/// One stream's state across its feed's connections.
#[derive(Debug)]
pub(crate) struct StreamState {
    /// Index within the feed (`Tick::stream`).
    pub index: u16,
    /// What it is.
    pub def: StreamDef,
    /// Its interned symbol.
    pub symbol: SymbolId,
    /// The last id delivered, across connections.
    pub seq: SeqTrack,
    /// Silence across all connections (drives `Stale` events).
    pub silence: Silence,
    /// Messages held back while a hole may still be filled, in id order.
    held: VecDeque<Held>,
    /// When the held messages are released regardless.
    held_until: Option<Instant>,
    /// The local book of an order-book stream.
    pub book: Option<BookState>,
    /// The top of book of a level-1 stream, which deltas change.
    top: Option<TopOfBook>,
    /// Messages in a row that brought nothing new.
    stale_seq: u32,
    /// Ids up to this were captured before a book resync sent them again.
    pub captured_to: u64,
    /// The outage record its first message after an outage reports missed ids to.
    pub resume_gap: Option<usize>,
    /// Replacements in a row because it was silent.
    pub silent_rotations: u8,
    /// The book needs a fresh connection's snapshot (Bybit, OKX).
    pub resync_wanted: bool,
    /// The book needs a REST snapshot (Binance).
    pub snapshot_wanted: bool,
}

impl StreamState {
    /// A stream nothing has been seen of.
    pub(crate) fn new(
        index: u16,
        def: StreamDef,
        symbol: SymbolId,
        silence: Duration,
        book: Option<BookState>,
    ) -> StreamState {
        let top_kept = def.kind == StreamKind::BookTicker;
        StreamState {
            index,
            seq: SeqTrack::new(def.seq),
            def,
            symbol,
            silence: Silence::new(silence),
            held: VecDeque::new(),
            held_until: None,
            top: top_kept.then(TopOfBook::default),
            book,
            stale_seq: 0,
            captured_to: 0,
            resume_gap: None,
            silent_rotations: 0,
            resync_wanted: false,
            snapshot_wanted: false,
        }
    }

    /// Whether messages are held back.
    #[inline]
    pub(crate) fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// When the held messages are released regardless.
    pub(crate) fn held_until(&self) -> Option<Instant> {
        self.held_until
    }

    /// Decides what becomes of a message numbered `seq`. A chained message that skips ids
    /// while another connection carries the feed (`carried_elsewhere`) is held for up to the
    /// reorder window (`window`): the other connection's copies of the skipped messages
    /// usually follow within microseconds.
    #[inline]
    pub(crate) fn decide<S: Sink + ?Sized>(
        &mut self,
        seq: Seq,
        fp: Option<u64>,
        recv_ns: u64,
        window: Duration,
        carried_elsewhere: impl FnOnce() -> bool,
        out: &mut Out<S>,
    ) -> Fate {
        let holding = self.holding();
        if holding && self.held.iter().any(|h| h.seq.id == seq.id) {
            FeedStats::bump(&out.report.stats.duplicates);
            return Fate::Drop;
        }
        if seq.prev.is_none() && self.book.as_ref().is_some_and(|b| !b.is_valid()) {
            // A snapshot for a book being resynced: whatever its id, it is the new start. The
            // updates up to the last one seen come again for the book, but were captured once
            // already.
            self.captured_to = self.captured_to.max(self.seq.last().unwrap_or(0));
            self.seq.restart(seq);
            return Fate::Deliver;
        }
        let verdict = self.seq.judge_as(seq, fp);
        if matches!(verdict, Verdict::Duplicate | Verdict::Superseded) {
            // Nothing new for this long, on every connection: the venue's numbering went back
            // (a sequence reset after maintenance, or one bogus id far ahead). Start over here
            // rather than drop the stream for good.
            self.stale_seq += 1;
            if self.stale_seq >= SEQ_RESET_AFTER {
                warn!(
                    "[{}] stream {}: {} updates in a row at or below id {:?}: the venue's numbering was reset; following it from {}",
                    out.report.name,
                    self.def.name,
                    self.stale_seq,
                    self.seq.last(),
                    seq.id
                );
                self.stale_seq = 0;
                self.seq.restart(seq);
                self.invalidate_book(BookFault::Gap, out);
                return Fate::Deliver;
            }
        } else {
            self.stale_seq = 0;
        }
        match verdict {
            Verdict::Duplicate => {
                FeedStats::bump(&out.report.stats.duplicates);
                Fate::Drop
            }
            Verdict::Superseded => {
                FeedStats::bump(&out.report.stats.superseded);
                Fate::Drop
            }
            Verdict::Broken => {
                self.seq.commit(seq);
                warn!(
                    "[{}] stream {}: update {} names predecessor {:?}, older than the last one seen: broken chain",
                    out.report.name, self.def.name, seq.id, seq.prev
                );
                self.invalidate_book(BookFault::Gap, out);
                Fate::Deliver
            }
            Verdict::Fresh {
                missed: Some(_),
                after_outage: false,
            } if holding
                || (!window.is_zero()
                    && self.seq.rule() == SeqRule::Chained
                    && carried_elsewhere()) =>
            {
                Fate::Hold
            }
            Verdict::Fresh { .. } => {
                self.accept(seq, fp, verdict, recv_ns, out);
                Fate::Deliver
            }
        }
    }

    /// Makes a fresh message the last one seen and records what it shows missed.
    #[inline]
    fn accept<S: Sink + ?Sized>(
        &mut self,
        seq: Seq,
        fp: Option<u64>,
        verdict: Verdict,
        recv_ns: u64,
        out: &mut Out<S>,
    ) {
        self.seq.commit_as(seq, fp);
        let Verdict::Fresh {
            missed,
            after_outage,
        } = verdict
        else {
            return;
        };
        let outage = if after_outage {
            self.resume_gap.take()
        } else {
            None
        };
        if let Some((from_seq, to_seq)) = missed {
            let missed = Missed {
                stream: self.index,
                from_seq,
                to_seq,
            };
            record_missed(out.report, &self.def.name, missed, outage, recv_ns);
            out.health(Health::Gap {
                stream: self.index,
                from_seq,
                to_seq,
            });
            self.invalidate_book(BookFault::Gap, out);
        }
    }

    /// Hands a judged message over: to the strategy, or into the book's buffer while a Binance
    /// book waits for its REST snapshot (the message is captured either way).
    #[inline]
    pub(crate) fn hand_over<S: Sink + ?Sized>(
        &mut self,
        seq_id: u64,
        recv_ns: u64,
        ticks: &[(u64, TickData)],
        venue: Venue,
        now: Instant,
        out: &mut Out<S>,
    ) {
        if let Some(book) = self.book.as_mut().filter(|b| b.buffering()) {
            let first = match ticks.first() {
                Some((_, TickData::Depth(chunk))) => chunk.first_update_id,
                _ => seq_id,
            };
            let diff = Buffered {
                first,
                last: seq_id,
                recv_ns,
                ticks: ticks.to_vec(),
            };
            if book.buffer(diff, now) {
                self.snapshot_wanted = true;
            }
            return;
        }
        self.deliver(seq_id, recv_ns, ticks, venue, out);
    }

    /// Sends a message's ticks to the strategy: a crossed quote is dropped (counted), a depth
    /// chunk goes through the local book first (not sent while the book is invalid; followed by
    /// the book's new top).
    #[inline]
    fn deliver<S: Sink + ?Sized>(
        &mut self,
        seq_id: u64,
        recv_ns: u64,
        ticks: &[(u64, TickData)],
        venue: Venue,
        out: &mut Out<S>,
    ) {
        let mut sent = 0u64;
        for &(event_time_ms, data) in ticks {
            let data = match self.top.as_mut() {
                Some(top) => match top.merge(data) {
                    Some(quote) => quote,
                    None => continue,
                },
                None => data,
            };
            if let TickData::Quote { bid, ask, .. } = data {
                if bid >= ask && bid > 0.0 && ask > 0.0 {
                    // One venue's best bid cannot reach its best ask: the quote is wrong.
                    out.report.crossed_quote(&self.def.name, bid, ask);
                    continue;
                }
            }
            let mut top = None;
            // A fault the update's last chunk revealed: reported after the chunk, so that no
            // book tick follows `BookInvalid` until `BookResynced`.
            let mut found = None;
            if let (TickData::Depth(chunk), Some(book)) = (&data, self.book.as_mut()) {
                match book.apply(chunk, venue) {
                    Applied::Skip => continue,
                    Applied::Broken(fault) => {
                        self.invalidate_book(fault, out);
                        continue;
                    }
                    Applied::Send => {}
                    Applied::Done {
                        top: new_top,
                        fault,
                        resynced,
                    } => {
                        found = fault;
                        if resynced {
                            info!(
                                "[{}] book {} resynced from a snapshot",
                                out.report.name, self.def.name
                            );
                            out.health(Health::BookResynced { stream: self.index });
                        }
                        top = new_top.filter(|_| found.is_none());
                    }
                }
            }
            let mut tick = Tick {
                feed: out.report.feed,
                stream: self.index,
                symbol: self.symbol,
                seq: seq_id,
                event_time_ms,
                recv_ns,
                data,
            };
            out.tick(tick);
            sent += 1;
            if let Some(fault) = found {
                self.invalidate_book(fault, out);
            }
            if let Some(quote) = top {
                // The book's new top, so a strategy need not keep its own book for prices.
                tick.data = quote;
                out.tick(tick);
                sent += 1;
            }
        }
        let ticks = &out.report.stats.ticks;
        ticks.store(
            ticks.load(std::sync::atomic::Ordering::Relaxed) + sent,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// The stream delivered new data to the strategy.
    #[inline]
    pub(crate) fn delivered<S: Sink + ?Sized>(&mut self, now: Instant, out: &mut Out<S>) {
        out.report.note_drops(now);
        self.silent_rotations = 0;
        if let Some(silent) = self.silence.on_data(now) {
            info!(
                "[{}] stream {} delivering again after {} ms",
                out.report.name,
                self.def.name,
                silent.as_millis()
            );
            out.health(Health::StreamResumed {
                stream: self.index,
                silent_ms: silent.as_millis() as u64,
            });
        }
    }

    /// Holds a message back, in id order.
    #[cold]
    #[allow(clippy::too_many_arguments)] // One message's parts; held only on a rare hole.
    pub(crate) fn hold<S: Sink + ?Sized>(
        &mut self,
        seq: Seq,
        conn: u32,
        recv_ns: u64,
        frame: Raw,
        ticks: &[(u64, TickData)],
        window: Duration,
        now: Instant,
        venue: Venue,
        out: &mut Out<S>,
    ) {
        if self.held.len() >= MAX_HELD {
            // A hole this long is not a moment's skew: report it now.
            self.release_held(true, venue, now, out);
        }
        let at = self.held.partition_point(|h| h.seq.id < seq.id);
        self.held.insert(
            at,
            Held {
                seq,
                conn,
                recv_ns,
                frame,
                ticks: ticks.to_vec(),
            },
        );
        if self.held_until.is_none() {
            self.held_until = Some(now + window);
        }
    }

    /// Delivers the held messages that now continue the chain; with `force` (the window ended,
    /// or no other connection carries the feed any more), all of them, reporting the ids that
    /// never came. Returns whether anything was delivered.
    #[cold]
    pub(crate) fn release_held<S: Sink + ?Sized>(
        &mut self,
        force: bool,
        venue: Venue,
        now: Instant,
        out: &mut Out<S>,
    ) -> bool {
        let mut delivered = false;
        while let Some(front) = self.held.front() {
            let verdict = self.seq.judge(front.seq);
            match verdict {
                Verdict::Duplicate | Verdict::Superseded | Verdict::Broken => {
                    self.held.pop_front();
                    FeedStats::bump(&out.report.stats.duplicates);
                }
                Verdict::Fresh { missed, .. } if missed.is_none() || force => {
                    let Some(h) = self.held.pop_front() else {
                        break;
                    };
                    self.accept(h.seq, None, verdict, h.recv_ns, out);
                    self.hand_over(h.seq.id, h.recv_ns, &h.ticks, venue, now, out);
                    self.delivered(now, out);
                    out.report
                        .capture(self.index, h.conn, h.recv_ns, h.frame, false);
                    delivered = true;
                }
                Verdict::Fresh { .. } => break,
            }
        }
        if self.held.is_empty() {
            self.held_until = None;
        }
        delivered
    }

    /// The book can no longer be trusted: say so, and ask for a fresh snapshot — through a
    /// fresh connection (make before break), or by REST for Binance books.
    #[cold]
    pub(crate) fn invalidate_book<S: Sink + ?Sized>(&mut self, fault: BookFault, out: &mut Out<S>) {
        let Some(by_rest) = self.book.as_mut().and_then(BookState::invalidate) else {
            return;
        };
        FeedStats::bump(&out.report.stats.book_resyncs);
        warn!(
            "[{}] book {} invalid ({fault}): resyncing",
            out.report.name, self.def.name
        );
        out.health(Health::BookInvalid {
            stream: self.index,
            fault,
        });
        if !by_rest && fault != BookFault::Reconnect {
            self.resync_wanted = true;
        }
    }

    /// Sends a REST snapshot's levels as snapshot depth chunks, then the book's top.
    #[cold]
    pub(crate) fn send_snapshot<S: Sink + ?Sized>(
        &mut self,
        snap: &DepthSnapshot,
        recv_ns: u64,
        out: &mut Out<S>,
    ) {
        let mut tick = Tick {
            feed: out.report.feed,
            stream: self.index,
            symbol: self.symbol,
            seq: snap.last_update_id,
            event_time_ms: 0,
            recv_ns,
            data: TickData::Quote {
                bid: 0.0,
                bid_qty: 0.0,
                ask: 0.0,
                ask_qty: 0.0,
            },
        };
        let mut chunk = DepthChunk {
            first_update_id: snap.last_update_id,
            final_update_id: snap.last_update_id,
            snapshot: true,
            ..DepthChunk::EMPTY
        };
        let levels = snap
            .bids
            .iter()
            .map(|l| (true, *l))
            .chain(snap.asks.iter().map(|l| (false, *l)));
        let mut sent = 1u64;
        for (bid, level) in levels {
            let used = usize::from(chunk.n_bids + chunk.n_asks);
            if used == DEPTH_CHUNK_LEVELS {
                tick.data = TickData::Depth(chunk);
                out.tick(tick);
                sent += 1;
                chunk.part = chunk.part.wrapping_add(1);
                chunk.n_bids = 0;
                chunk.n_asks = 0;
            }
            let used = usize::from(chunk.n_bids + chunk.n_asks);
            chunk.levels[used] = level;
            if bid {
                chunk.n_bids += 1;
            } else {
                chunk.n_asks += 1;
            }
        }
        chunk.last = true;
        tick.data = TickData::Depth(chunk);
        out.tick(tick);
        if let Some(top) = self.book.as_ref().and_then(BookState::top) {
            tick.data = top;
            out.tick(tick);
            sent += 1;
        }
        // Counted with the ticks of messages: `ticks` is everything the strategy was given.
        out.report
            .stats
            .ticks
            .fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
    }
}
