//! A feed's data path fed captured frames, for `wsfeed replay`: the same parsers, the same
//! local books and the same tick construction as the live feed ([`Streams::replay`]), with no
//! connections, judgement or timers — the capture holds exactly the delivered messages, and the
//! health events (recorded in place) say when a book was invalidated.

use std::sync::Arc;

use super::report::{Out, Reporter};
use super::sink::Sink;
use super::streams::Streams;
use crate::capture::captured_payload;
use crate::metrics::FeedStats;
use crate::rest::DepthSnapshot;
use crate::tick::{FeedId, Health, HealthMsg, SymbolId, Tick};
use crate::venue::{StreamDef, Venue};

/// Keeps the ticks a frame produced; health events the replayed path derives itself are
/// dropped (the recorded ones are the truth, in their recorded places).
#[derive(Debug, Default)]
struct Collect(Vec<Tick>);

impl Sink for Collect {
    fn tick(&mut self, _lane: usize, tick: Tick) {
        self.0.push(tick);
    }
    fn health(&mut self, _lane: usize, _msg: HealthMsg) {}
    /// Accounts' private messages are not captured, so never replayed.
    fn account(&mut self, _lane: usize, _msg: crate::account::AccountMsg) {}
}

/// One feed's streams rebuilt from a session, turning captured frames into ticks.
#[derive(Debug)]
pub(crate) struct FeedReplay {
    venue: Venue,
    streams: Streams,
    report: Reporter,
    sink: Collect,
    /// The `now` the data path is given (it only schedules REST requests).
    now: std::time::Instant,
    /// A binary frame decoded from its capture text (keeps its capacity).
    frame: Vec<u8>,
}

impl FeedReplay {
    /// Feed `feed` of `venue` with `defs` (symbols interned as `symbols`); with `rest_books`,
    /// its depth books are built from the captured REST snapshots, as live.
    pub(crate) fn new(
        feed: FeedId,
        name: &str,
        venue: Venue,
        (defs, symbols): (&[StreamDef], &[SymbolId]),
        rest_books: bool,
    ) -> FeedReplay {
        let silence = vec![std::time::Duration::ZERO; defs.len()];
        let stats = Arc::new(FeedStats::new(name.to_string(), String::new()));
        FeedReplay {
            venue,
            streams: Streams::new(
                venue,
                defs,
                symbols,
                &silence,
                Default::default(),
                rest_books.then(String::new),
            ),
            report: Reporter::new(feed, 0, name.to_string(), stats, None),
            sink: Collect(Vec::with_capacity(64)),
            now: std::time::Instant::now(),
            frame: Vec::new(),
        }
    }

    /// The ticks of a captured message of stream `stream` (`binary`: a binary frame's base64),
    /// read at monotonic `recv_ns`, in the order the feed handed them over. A message that does
    /// not read is an error naming why.
    pub(crate) fn frame(
        &mut self,
        stream: usize,
        msg: &str,
        binary: bool,
        recv_ns: u64,
    ) -> Result<&[Tick], String> {
        self.sink.0.clear();
        let data = captured_payload(self.venue, msg, binary, &mut self.frame)?;
        let mut out = Out {
            report: &mut self.report,
            sink: &mut self.sink,
        };
        self.streams
            .replay(stream, data, recv_ns, self.now, &mut out)
            .map_err(|e| e.to_string())?;
        Ok(&self.sink.0)
    }

    /// The ticks of a captured REST snapshot of stream `stream`'s book (its levels, its top,
    /// and the updates buffered while it was awaited), handled at monotonic `recv_ns`.
    pub(crate) fn snapshot(
        &mut self,
        stream: usize,
        snapshot: DepthSnapshot,
        recv_ns: u64,
    ) -> &[Tick] {
        self.sink.0.clear();
        let mut out = Out {
            report: &mut self.report,
            sink: &mut self.sink,
        };
        self.streams
            .replay_snapshot(stream, snapshot, recv_ns, &mut out);
        &self.sink.0
    }

    /// A recorded health event's effect on the books.
    pub(crate) fn health(&mut self, event: &Health) {
        if let Health::BookInvalid { stream, fault } = *event {
            let mut out = Out {
                report: &mut self.report,
                sink: &mut self.sink,
            };
            self.streams
                .invalidate_book(usize::from(stream), fault, &mut out);
        }
    }
}
