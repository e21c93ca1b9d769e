//! The end-of-run report: every feed's counters, gaps and histograms read once the engine has
//! stopped, with what the capture wrote and the strategy's own lines. Lives apart from
//! [`crate::metrics`] (what is counted while running) and [`crate::capture`] (which reads the
//! counters for its manifest), so that neither needs the other.

use std::fmt::{self, Write as _};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::capture::CaptureTotals;
use crate::metrics::{percentiles, FeedState, FeedStats, GapRecord, Missed, RECONNECT_TARGET};

/// End-of-run figures of the whole engine.
#[derive(Debug)]
pub struct Summary {
    /// Wall time the engine ran.
    pub ran_for: Duration,
    /// What the capture wrote, when capture was on.
    pub capture: Option<CaptureTotals>,
    /// Per-feed rows.
    pub feeds: Vec<FeedSummary>,
    /// All feeds' silence before a loss was detected, µs.
    pub detect_us: Histogram<u64>,
    /// All feeds' reconnect times, µs.
    pub reconnect_us: Histogram<u64>,
    /// All feeds' gaps, µs.
    pub gap_us: Histogram<u64>,
    /// Reconnects over the 5 s target.
    pub target_misses: u64,
    /// Frame read → strategy, ns.
    pub tick_latency_ns: Histogram<u64>,
    /// The strategy's own report.
    pub strategy_report: String,
    /// Every required feed (every feed, when none was marked) had stopped for good.
    pub failed: bool,
    /// The NATS sink's counters, when `[sink.nats]` was set.
    pub nats: Option<crate::nats::NatsSummary>,
}

/// End-of-run figures of one feed.
#[derive(Debug)]
pub struct FeedSummary {
    /// Feed name.
    pub name: String,
    /// URL.
    pub url: String,
    /// Final state.
    pub state: FeedState,
    /// No connection of the feed ever came up (every stream acknowledged).
    pub never_connected: bool,
    /// Data messages.
    pub messages: u64,
    /// Ticks delivered.
    pub ticks: u64,
    /// Ticks dropped on a full channel.
    pub dropped: u64,
    /// Second copies dropped.
    pub duplicates: u64,
    /// Late updates older than one delivered, dropped.
    pub superseded: u64,
    /// Missed-id ranges.
    pub seq_gaps: u64,
    /// Missed ids.
    pub missed_ids: u64,
    /// Connections replaced without a gap.
    pub rotations: u64,
    /// Attempts held back by the attempt budget or Retry-After.
    pub throttled: u64,
    /// Server pings.
    pub pings_received: u64,
    /// Local books invalidated and resynced.
    pub book_resyncs: u64,
    /// Crossed quotes dropped.
    pub crossed_quotes: u64,
    /// The feed kept a hot standby.
    pub standby: bool,
    /// Parse errors.
    pub parse_errors: u64,
    /// Unknown frames.
    pub unknown_frames: u64,
    /// Connections lost.
    pub disconnects: u64,
    /// Outages recovered.
    pub reconnects: u64,
    /// Breaker openings.
    pub circuit_trips: u64,
    /// Stale-stream events.
    pub stale_events: u64,
    /// Rejected streams.
    pub rejected_streams: u64,
    /// Outages.
    pub gaps: Vec<GapRecord>,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// An account's own figures (`None`: a market feed).
    pub account: Option<AccountSummary>,
}

/// End-of-run figures of an account's private stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountSummary {
    /// Events delivered to the strategy.
    pub events: u64,
    /// Logins the venue accepted (the first, and each re-login after a reconnect).
    pub logins: u64,
    /// Listen keys created.
    pub keys_created: u64,
    /// Listen-key keep-alives accepted.
    pub key_renewals: u64,
    /// Expired credentials (listen keys, terminated subscriptions) replaced.
    pub expiries: u64,
}

impl FeedSummary {
    /// Reads a feed's counters.
    pub fn of(s: &FeedStats) -> FeedSummary {
        FeedSummary {
            name: s.name.clone(),
            url: s.url.clone(),
            state: s.state(),
            never_connected: s.connected.load(Relaxed) == 0,
            messages: s.messages.load(Relaxed),
            ticks: s.ticks.load(Relaxed),
            dropped: s.dropped.load(Relaxed),
            duplicates: s.duplicates.load(Relaxed),
            superseded: s.superseded.load(Relaxed),
            seq_gaps: s.seq_gaps.load(Relaxed),
            missed_ids: s.missed_ids.load(Relaxed),
            rotations: s.rotations.load(Relaxed),
            throttled: s.throttled.load(Relaxed),
            pings_received: s.pings_received.load(Relaxed),
            book_resyncs: s.book_resyncs.load(Relaxed),
            crossed_quotes: s.crossed_quotes.load(Relaxed),
            standby: s.standby_url.is_some(),
            parse_errors: s.parse_errors.load(Relaxed),
            unknown_frames: s.unknown_frames.load(Relaxed),
            disconnects: s.disconnects.load(Relaxed),
            reconnects: s.reconnects.load(Relaxed),
            circuit_trips: s.circuit_trips.load(Relaxed),
            stale_events: s.stale_events.load(Relaxed),
            rejected_streams: s.rejected_streams.load(Relaxed),
            gaps: s.gaps.lock().map(|g| g.clone()).unwrap_or_default(),
            failure: s.failure.lock().ok().and_then(|f| f.clone()),
            account: s.is_account.then(|| AccountSummary {
                events: s.account_events.load(Relaxed),
                logins: s.logins.load(Relaxed),
                keys_created: s.keys_created.load(Relaxed),
                key_renewals: s.key_renewals.load(Relaxed),
                expiries: s.expiries.load(Relaxed),
            }),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = |g: fn(&FeedSummary) -> u64| self.feeds.iter().map(g).sum::<u64>();
        writeln!(
            f,
            "==================== wsfeed summary ===================="
        )?;
        writeln!(
            f,
            "ran {:.1}s | messages {} | ticks {} | dropped {} | parse errors {} | unknown frames {}",
            self.ran_for.as_secs_f64(),
            total(|s| s.messages),
            total(|s| s.ticks),
            total(|s| s.dropped),
            total(|s| s.parse_errors),
            total(|s| s.unknown_frames),
        )?;
        writeln!(
            f,
            "disconnects {} | recovered {} | circuit trips {} | stale-stream events {}",
            total(|s| s.disconnects),
            total(|s| s.reconnects),
            total(|s| s.circuit_trips),
            total(|s| s.stale_events),
        )?;
        writeln!(
            f,
            "duplicates dropped {} | superseded {} | rotations {} | attempts throttled {} | server pings {}",
            total(|s| s.duplicates),
            total(|s| s.superseded),
            total(|s| s.rotations),
            total(|s| s.throttled),
            total(|s| s.pings_received),
        )?;
        let missed = |standby: bool| {
            self.feeds
                .iter()
                .filter(|s| s.standby == standby)
                .map(|s| s.missed_ids)
                .sum::<u64>()
        };
        writeln!(
            f,
            "missed update ids (venue numbering): {} on feeds with a standby, {} on feeds without",
            missed(true),
            missed(false)
        )?;
        writeln!(
            f,
            "detection (last frame → loss declared): {}",
            percentiles(&self.detect_us, 1000)
        )?;
        writeln!(
            f,
            "reconnect time (loss detected → first data), target {}s: {} | over target: {}",
            RECONNECT_TARGET.as_secs(),
            percentiles(&self.reconnect_us, 1000),
            self.target_misses
        )?;
        writeln!(
            f,
            "gap (last data → first data after): {}",
            percentiles(&self.gap_us, 1000)
        )?;
        if let Some(n) = &self.nats {
            writeln!(f, "{n}")?;
        }
        writeln!(
            f,
            "tick latency (frame read → strategy): {}",
            percentiles(&self.tick_latency_ns, 1)
        )?;
        writeln!(f, "feeds:")?;
        for s in &self.feeds {
            writeln!(
                f,
                "  {:<18} {:<12} msgs {:>8} drops {:>5} missed {:>5} disconnects {:>3} recovered {:>3} trips {} stale {} rejected {}  {}",
                s.name,
                s.state.name(),
                s.messages,
                s.dropped,
                s.missed_ids,
                s.disconnects,
                s.reconnects,
                s.circuit_trips,
                s.stale_events,
                s.rejected_streams,
                s.url
            )?;
            if let Some(a) = &s.account {
                writeln!(
                    f,
                    "    account: events {} | logins {} | listen keys created {}, renewed {} | expiries handled {}",
                    a.events, a.logins, a.keys_created, a.key_renewals, a.expiries
                )?;
            }
            if s.never_connected {
                writeln!(f, "    never connected")?;
            }
            if let Some(why) = &s.failure {
                writeln!(f, "    failed: {why}")?;
            }
        }
        let gaps: Vec<(&str, &GapRecord)> = self
            .feeds
            .iter()
            .flat_map(|s| s.gaps.iter().map(move |g| (s.name.as_str(), g)))
            .collect();
        writeln!(f, "gaps ({}):", gaps.len())?;
        const SHOWN: usize = 40;
        for (name, g) in gaps.iter().take(SHOWN) {
            writeln!(
                f,
                "  {:<18} {:>6} ms (reconnect {:>5} ms, {} attempt{}, {} ids missed)  {}",
                name,
                g.duration_ms,
                g.reconnect_ms,
                g.attempts,
                if g.attempts == 1 { "" } else { "s" },
                g.missed.iter().map(Missed::ids).sum::<u64>(),
                g.cause
            )?;
        }
        if gaps.len() > SHOWN {
            writeln!(f, "  … and {} more", gaps.len() - SHOWN)?;
        }
        if let Some(c) = &self.capture {
            writeln!(
                f,
                "capture: {} lines, {} bytes in {} files, {} errors → {}",
                c.lines,
                c.bytes,
                c.files,
                c.errors,
                c.dir.display()
            )?;
        }
        if !self.strategy_report.is_empty() {
            let mut report = String::new();
            for line in self.strategy_report.lines() {
                let _ = writeln!(report, "  {line}");
            }
            write!(f, "strategy:\n{report}")?;
        }
        if self.failed {
            writeln!(
                f,
                "FAILED: every required feed stopped for good (see each feed's 'failed:' line)"
            )?;
        }
        write!(
            f,
            "========================================================"
        )
    }
}
