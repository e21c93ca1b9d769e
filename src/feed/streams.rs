//! The data side of a feed: its streams, its outages, and the path of a data message from
//! frame text to the sink — parse once, judge against the venue's numbering across every
//! connection, hand over (or hold, or drop), capture. No I/O: REST snapshots are asked for as
//! [`Action`]s and come back through [`Streams::on_snapshot`].

use std::time::{Duration, Instant};

use log::{info, warn};

use super::action::{Action, Actions};
use super::book::{BookState, SnapshotOutcome};
use super::outage::Outages;
use super::report::Out;
use super::rotation::SilentCounts;
use super::seq::fingerprint;
use super::sink::Sink;
use super::stream::{Fate, StreamState, Ticks};
use crate::clock;
use crate::metrics::FeedStats;
use crate::raw::RawRef;
use crate::rest::{DepthSnapshot, RestError};
use crate::tick::{BookFault, DisconnectReason, Health, SymbolId};
use crate::venue::{ParseError, Payload, Seq, StreamDef, StreamKey, StreamKind, Venue};

/// Levels kept of a Binance book built from REST snapshots (the snapshot's `limit`).
const REST_BOOK_LEVELS: usize = 1000;

impl SilentCounts for Streams {
    fn silent_rotations(&mut self, i: u16) -> &mut u8 {
        &mut self.list[usize::from(i)].silent_rotations
    }
}

/// A feed's streams and outages.
#[derive(Debug)]
pub(crate) struct Streams {
    venue: Venue,
    list: Vec<StreamState>,
    outages: Outages,
    /// How long a chained message that skips ids waits for another connection to bring the
    /// skipped ones.
    reorder_window: Duration,
    /// Binance: base URL of REST depth snapshots, when books are built from them.
    rest_base: Option<String>,
    /// The message being handled, parsed (its capacity is kept: parsing allocates nothing).
    scratch: Ticks,
}

impl Streams {
    /// The streams of a feed of `venue`: definitions, interned symbols and silence limits by
    /// stream index. With `rest_base`, depth streams keep local books built from REST snapshots.
    pub(crate) fn new(
        venue: Venue,
        defs: &[StreamDef],
        symbols: &[SymbolId],
        silence: &[Duration],
        reorder_window: Duration,
        rest_base: Option<String>,
    ) -> Streams {
        let list = defs
            .iter()
            .enumerate()
            .map(|(i, def)| {
                let book = match def.kind {
                    StreamKind::OrderBook { levels } => {
                        Some(BookState::from_stream(usize::from(levels).max(50)))
                    }
                    StreamKind::Depth { .. } if rest_base.is_some() => {
                        Some(BookState::from_rest(REST_BOOK_LEVELS))
                    }
                    _ => None,
                };
                StreamState::new(i as u16, def.clone(), symbols[i], silence[i], book)
            })
            .collect();
        Streams {
            venue,
            list,
            outages: Outages::default(),
            reorder_window,
            rest_base,
            scratch: Vec::with_capacity(64),
        }
    }

    /// Number of streams.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// The stream a data frame names.
    #[inline]
    pub(crate) fn find(&self, key: &StreamKey<'_>) -> Option<usize> {
        self.list.iter().position(|s| key.matches(&s.def.name))
    }

    /// A data payload of stream `i`, read on connection `conn`: parses it, ends an open outage,
    /// judges it, and hands it over, holds it or drops it. Returns its numbering, or `None` for
    /// a message with no update in it; a payload that does not parse is an error and changes
    /// nothing. `carried_elsewhere` says whether another connection carries the feed.
    #[inline]
    #[allow(clippy::too_many_arguments)] // The hot path: one frame's facts, passed unbundled.
    pub(crate) fn on_data<S: Sink + ?Sized>(
        &mut self,
        i: usize,
        data: Payload<'_>,
        frame: RawRef<'_>,
        conn: u32,
        recv_ns: u64,
        now: Instant,
        carried_elsewhere: impl FnOnce() -> bool,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) -> Result<Option<Seq>, ParseError> {
        let venue = self.venue;
        self.scratch.clear();
        let mut first: Option<Seq> = None;
        let scratch = &mut self.scratch;
        venue.parse_payload(
            self.list[i].def.kind,
            data,
            &mut |seq, event_time_ms, tick| {
                first.get_or_insert(seq);
                scratch.push((event_time_ms, tick));
            },
        )?;
        FeedStats::bump(&out.report.stats.messages);
        let Some(seq) = first else {
            return Ok(None);
        };
        if self.outages.is_open() {
            self.end_outage(now, recv_ns, out);
        }
        let stream = &mut self.list[i];
        // A message numbered by its own time (markPrice, tickers, OKX bbo-tbt without
        // `seqId`) may share its number with another update of the same millisecond: its text
        // tells them apart.
        let by_time = self.scratch.first().is_some_and(|&(t, _)| t == seq.id) && seq.id != 0;
        let fp = by_time.then(|| fingerprint(data.bytes()));
        match stream.decide(
            seq,
            fp,
            recv_ns,
            self.reorder_window,
            carried_elsewhere,
            out,
        ) {
            Fate::Drop => {}
            Fate::Hold => {
                stream.hold(
                    seq,
                    conn,
                    recv_ns,
                    frame.to_raw(),
                    &self.scratch,
                    self.reorder_window,
                    now,
                    venue,
                    out,
                );
            }
            Fate::Deliver => {
                stream.hand_over(seq.id, recv_ns, &self.scratch, venue, now, out);
                self.outages.on_data(now);
                stream.delivered(now, out);
                // An update given to the book again after a resync is in the capture already
                // (the snapshot itself is captured: it is a message of its own): it is captured
                // again marked as such, which the audit passes over and replay gives again.
                if out.report.captures() {
                    let again = seq.prev.is_some() && seq.id <= stream.captured_to;
                    out.report
                        .capture(i as u16, conn, recv_ns, frame.to_raw(), again);
                }
                if stream.holding() {
                    // This message may have filled the hole the held ones wait on.
                    stream.release_held(false, venue, now, out);
                }
            }
        }
        if stream.snapshot_wanted {
            self.request_snapshot(i, actions);
        }
        Ok(Some(seq))
    }

    /// A captured data payload of stream `i` replayed (`wsfeed replay`): parsed and handed over
    /// as when it was delivered (through the local book), with no judgement — the capture holds
    /// only messages that were delivered, in the order they were. (`now` only schedules REST
    /// snapshot requests, which replay does not make.)
    pub(crate) fn replay<S: Sink + ?Sized>(
        &mut self,
        i: usize,
        data: Payload<'_>,
        recv_ns: u64,
        now: Instant,
        out: &mut Out<S>,
    ) -> Result<(), ParseError> {
        let Some(stream) = self.list.get_mut(i) else {
            return Ok(());
        };
        self.scratch.clear();
        let mut first: Option<Seq> = None;
        let scratch = &mut self.scratch;
        self.venue
            .parse_payload(stream.def.kind, data, &mut |seq, event_time_ms, tick| {
                first.get_or_insert(seq);
                scratch.push((event_time_ms, tick));
            })?;
        if let Some(seq) = first {
            let venue = self.venue;
            stream.hand_over(seq.id, recv_ns, &self.scratch, venue, now, out);
        }
        Ok(())
    }

    /// The book of stream `i` stops being trusted, as a recorded `BookInvalid` says (replay).
    pub(crate) fn invalidate_book<S: Sink + ?Sized>(
        &mut self,
        i: usize,
        fault: BookFault,
        out: &mut Out<S>,
    ) {
        if let Some(s) = self.list.get_mut(i) {
            s.invalidate_book(fault, out);
        }
    }

    /// First data after an outage: record the gap, tell which streams' first messages report
    /// their missed ids to it, and report the recovery.
    #[cold]
    fn end_outage<S: Sink + ?Sized>(&mut self, now: Instant, recv_ns: u64, out: &mut Out<S>) {
        let Some(closed) = self.outages.close(now, recv_ns, out.report) else {
            return;
        };
        for s in &mut self.list {
            if s.seq.resuming() && s.resume_gap.is_none() {
                s.resume_gap = Some(closed.record);
            }
        }
        out.health(closed.event);
    }

    /// An account streams again (logged in and subscribed): an open outage ends here, since
    /// a private stream may carry no message for a long time.
    #[cold]
    pub(crate) fn resumed<S: Sink + ?Sized>(
        &mut self,
        now: Instant,
        recv_ns: u64,
        out: &mut Out<S>,
    ) {
        if self.outages.is_open() {
            self.end_outage(now, recv_ns, out);
        }
        self.outages.on_data(now);
    }

    /// Asks for a REST snapshot of stream `i`'s book.
    #[cold]
    fn request_snapshot(&mut self, i: usize, actions: &mut Actions) {
        let stream = &mut self.list[i];
        stream.snapshot_wanted = false;
        let (Some(base), Some(path)) = (
            &self.rest_base,
            self.venue.depth_snapshot_path(&stream.def.symbol),
        ) else {
            return;
        };
        actions.push(Action::Snapshot {
            stream: i as u16,
            url: format!("{base}{path}"),
        });
    }

    /// A REST snapshot arrived for the book of stream `i`: build the book, send its levels and
    /// the diffs buffered meanwhile.
    #[cold]
    pub(crate) fn on_snapshot<S: Sink + ?Sized>(
        &mut self,
        i: usize,
        result: Result<DepthSnapshot, RestError>,
        now: Instant,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) {
        let recv_ns = clock::now_ns();
        if let (Ok(snap), Some(true)) = (&result, self.list.get(i).map(|s| s.book.is_some())) {
            out.report.capture_snapshot(i as u16, recv_ns, snap);
        }
        self.apply_snapshot(i, result, recv_ns, now, actions, out);
    }

    /// A captured REST snapshot replayed (`wsfeed replay`), as [`Streams::on_snapshot`] took
    /// it: its ticks carry `recv_ns` as they did live.
    pub(crate) fn replay_snapshot<S: Sink + ?Sized>(
        &mut self,
        i: usize,
        snapshot: DepthSnapshot,
        recv_ns: u64,
        out: &mut Out<S>,
    ) {
        let mut actions = Actions::default();
        self.apply_snapshot(i, Ok(snapshot), recv_ns, Instant::now(), &mut actions, out);
    }

    #[cold]
    fn apply_snapshot<S: Sink + ?Sized>(
        &mut self,
        i: usize,
        result: Result<DepthSnapshot, RestError>,
        recv_ns: u64,
        now: Instant,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) {
        let venue = self.venue;
        let Some(stream) = self.list.get_mut(i) else {
            return;
        };
        let Some(book) = stream.book.as_mut() else {
            return;
        };
        let name = &stream.def.name;
        match book.on_snapshot(result, venue, now) {
            SnapshotOutcome::Ignored => {}
            SnapshotOutcome::Failed { error, retry_in } => warn!(
                "[{}] depth snapshot for {name} failed: {error}; trying again in {} ms",
                out.report.name,
                retry_in.as_millis()
            ),
            SnapshotOutcome::Stale { last, first } => warn!(
                "[{}] depth snapshot for {name} (lastUpdateId {last}) is older than the buffered diffs (U {first}): fetching again",
                out.report.name
            ),
            SnapshotOutcome::Built {
                snapshot,
                buffered,
                resynced,
            } => {
                stream.send_snapshot(&snapshot, recv_ns, out);
                for diff in buffered {
                    stream.hand_over(diff.last, diff.recv_ns, &diff.ticks, venue, now, out);
                }
                info!(
                    "[{}] book {} built from a REST snapshot (lastUpdateId {})",
                    out.report.name, stream.def.name, snapshot.last_update_id
                );
                if resynced {
                    out.health(Health::BookResynced { stream: i as u16 });
                }
                if stream.snapshot_wanted {
                    self.request_snapshot(i, actions);
                }
            }
        }
    }

    /// A connection attempt started.
    pub(crate) fn count_attempt(&mut self) {
        self.outages.count_attempt();
    }

    /// No connection carries the feed any more: updates are lost from now on. Every book waits
    /// for the next snapshot (the reconnect's subscription brings it), held messages are
    /// released (nothing can fill their holes), and an outage opens.
    #[cold]
    pub(crate) fn carried_by_none<S: Sink + ?Sized>(
        &mut self,
        reason: DisconnectReason,
        now: Instant,
        out: &mut Out<S>,
    ) {
        let venue = self.venue;
        for s in &mut self.list {
            s.invalidate_book(BookFault::Reconnect, out);
        }
        for s in &mut self.list {
            if s.holding() && s.release_held(true, venue, now, out) {
                self.outages.on_data(now);
            }
        }
        // Every subscribed stream is without a connection from now until data flows again,
        // whether or not this connection had delivered anything yet.
        if self.outages.open(now, reason) {
            for s in &mut self.list {
                s.silence.disarm();
                s.seq.outage();
            }
        }
    }

    /// Stream `i`'s subscription was acknowledged on some connection: watch its silence.
    pub(crate) fn acknowledged(&mut self, i: usize, now: Instant) {
        if let Some(s) = self.list.get_mut(i) {
            s.silence.arm_if_idle(now);
        }
    }

    /// Releases held messages whose reorder window ended.
    pub(crate) fn release_expired<S: Sink + ?Sized>(&mut self, now: Instant, out: &mut Out<S>) {
        let venue = self.venue;
        for s in &mut self.list {
            if s.held_until().is_some_and(|t| now >= t) && s.release_held(true, venue, now, out) {
                self.outages.on_data(now);
            }
        }
    }

    /// Reports streams silent past their limit on every connection.
    pub(crate) fn poll_silence<S: Sink + ?Sized>(&mut self, now: Instant, out: &mut Out<S>) {
        for s in &mut self.list {
            if let Some(silent) = s.silence.poll(now) {
                FeedStats::bump(&out.report.stats.stale_events);
                warn!(
                    "[{}] stream {} silent for {} ms on a live connection: stale",
                    out.report.name,
                    s.def.name,
                    silent.as_millis()
                );
                out.health(Health::Stale {
                    stream: s.index,
                    silent_ms: silent.as_millis() as u64,
                });
            }
        }
    }

    /// The first book waiting for a fresh connection's snapshot, if any; every such wish is
    /// answered by the one fresh connection.
    pub(crate) fn take_resync(&mut self) -> Option<u16> {
        let first = self.list.iter().position(|s| s.resync_wanted)?;
        self.list.iter_mut().for_each(|s| s.resync_wanted = false);
        Some(first as u16)
    }

    /// Whether some book waits for a fresh connection's snapshot.
    pub(crate) fn resync_pending(&self) -> bool {
        self.list.iter().any(|s| s.resync_wanted)
    }

    /// The next instant something of the streams is due: held messages' release, a silence
    /// limit.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.list
            .iter()
            .flat_map(|s| [s.held_until(), s.silence.deadline()])
            .flatten()
            .min()
    }
}
