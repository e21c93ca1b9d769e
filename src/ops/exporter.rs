//! `/metrics`: every feed's counters, gauges and histograms in Prometheus text format
//! (version 0.0.4), encoded at scrape time straight from the live counters by a
//! `prometheus-client` collector: nothing is registered or copied while the feeds run.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::observed::Observed;
use crate::metrics::{resident_bytes, FeedState, FeedStats, SlotRole};
use crate::nats::NatsStats;
use crate::tick::DisconnectReason;

/// Bucket bounds of reconnect and gap times, seconds: around the 5 s reconnect target.
const OUTAGE_BOUNDS_S: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 30.0, 60.0, 300.0,
];

/// Bucket bounds of the strategy's tick latency, seconds.
const LATENCY_BOUNDS_S: [f64; 12] = [
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 1e-2, 0.1,
];

/// Every feed state, for the one-hot `wsfeed_feed_state` gauge.
const STATES: [FeedState; 8] = [
    FeedState::Connecting,
    FeedState::Handshaking,
    FeedState::Subscribing,
    FeedState::Streaming,
    FeedState::Backoff,
    FeedState::CircuitOpen,
    FeedState::Failed,
    FeedState::Stopped,
];

/// A feed counter: metric name (without `_total`), help, and where it is kept.
type CounterDef = (&'static str, &'static str, fn(&FeedStats) -> &AtomicU64);

const COUNTERS: [CounterDef; 26] = [
    ("wsfeed_messages", "Data messages received.", |s| {
        &s.messages
    }),
    ("wsfeed_ticks", "Ticks handed to the strategy.", |s| {
        &s.ticks
    }),
    (
        "wsfeed_ticks_dropped",
        "Ticks dropped on a full channel.",
        |s| &s.dropped,
    ),
    (
        "wsfeed_duplicates",
        "Second copies of updates (standby, overlap), dropped.",
        |s| &s.duplicates,
    ),
    (
        "wsfeed_superseded",
        "Updates older than one already delivered, dropped.",
        |s| &s.superseded,
    ),
    (
        "wsfeed_sequence_gaps",
        "Ranges of ids the venue's numbering shows were missed.",
        |s| &s.seq_gaps,
    ),
    ("wsfeed_missed_ids", "Ids in those ranges.", |s| {
        &s.missed_ids
    }),
    ("wsfeed_parse_errors", "Frames that failed to parse.", |s| {
        &s.parse_errors
    }),
    (
        "wsfeed_unknown_frames",
        "Well-formed frames of an unknown kind.",
        |s| &s.unknown_frames,
    ),
    (
        "wsfeed_crossed_quotes",
        "Quotes whose bid reached their ask, dropped.",
        |s| &s.crossed_quotes,
    ),
    ("wsfeed_circuit_trips", "Circuit-breaker openings.", |s| {
        &s.circuit_trips
    }),
    (
        "wsfeed_stale_events",
        "Streams that went silent past their limit on a live connection.",
        |s| &s.stale_events,
    ),
    ("wsfeed_attempts", "Connection attempts started.", |s| {
        &s.attempts
    }),
    (
        "wsfeed_attempts_held",
        "Attempts held back by the host's attempt budget or a Retry-After.",
        |s| &s.throttled,
    ),
    (
        "wsfeed_connections",
        "Connections that came up (every stream acknowledged).",
        |s| &s.connected,
    ),
    ("wsfeed_disconnects", "Live connections lost.", |s| {
        &s.disconnects
    }),
    (
        "wsfeed_rotations",
        "Connections replaced without a gap.",
        |s| &s.rotations,
    ),
    (
        "wsfeed_book_resyncs",
        "Local books invalidated and rebuilt.",
        |s| &s.book_resyncs,
    ),
    (
        "wsfeed_rejected_streams",
        "Streams the venue rejected.",
        |s| &s.rejected_streams,
    ),
    (
        "wsfeed_capture_waits",
        "Times the capture channel was full and the feed waited.",
        |s| &s.capture_waits,
    ),
    ("wsfeed_server_pings", "Pings the venue sent.", |s| {
        &s.pings_received
    }),
    (
        "wsfeed_account_events",
        "Account events (orders, balances, positions) delivered to the strategy (accounts only).",
        |s| &s.account_events,
    ),
    (
        "wsfeed_account_logins",
        "Logins the venue accepted on an account's private stream, the first and every re-login.",
        |s| &s.logins,
    ),
    (
        "wsfeed_listen_key_renewals",
        "Listen-key keep-alives the venue accepted (Binance USD-M accounts).",
        |s| &s.key_renewals,
    ),
    (
        "wsfeed_listen_keys_created",
        "Listen keys created (Binance USD-M accounts).",
        |s| &s.keys_created,
    ),
    (
        "wsfeed_credential_expiries",
        "Expired private-stream credentials (listen keys, terminated subscriptions) replaced.",
        |s| &s.expiries,
    ),
];

/// The collector: reads `Observed` at each scrape.
#[derive(Debug)]
struct Feeds(Observed);

/// The Prometheus text of everything observed.
pub(super) fn render(o: &Observed) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Feeds(o.clone())));
    let mut out = String::new();
    // Writing to a String cannot fail, and every value here is encodable.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

impl Collector for Feeds {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let stats = &self.0.feeds();
        let enc = &mut enc;
        for (name, help, get) in COUNTERS {
            per_feed(enc, name, help, MetricType::Counter, stats, |m, s, feed| {
                counter(m, &feed, get(s).load(Relaxed))
            })?;
        }
        let help = "Outages recovered, by the kind of reason that began them.";
        per_feed(
            enc,
            "wsfeed_reconnects",
            help,
            MetricType::Counter,
            stats,
            |m, s, feed| {
                for (k, reason) in DisconnectReason::KINDS.iter().enumerate() {
                    let v = s.reconnects_by_reason[k].load(Relaxed);
                    counter(m, &(feed.clone(), [("reason", *reason)]), v)?;
                }
                Ok(())
            },
        )?;
        let help = "Gaps recorded in the session manifest (outages and missed id ranges).";
        per_feed(
            enc,
            "wsfeed_gaps",
            help,
            MetricType::Counter,
            stats,
            |m, s, feed| counter(m, &feed, s.gaps_recorded.load(Relaxed)),
        )?;
        let help = "The feed's state (1 for the current one).";
        per_feed(
            enc,
            "wsfeed_feed_state",
            help,
            MetricType::Gauge,
            stats,
            |m, s, feed| {
                one_hot(m, s.state(), |state| {
                    (feed.clone(), [("state", state.name())])
                })
            },
        )?;
        let help = "The feed's connections streaming now, by role.";
        per_feed(
            enc,
            "wsfeed_connections_up",
            help,
            MetricType::Gauge,
            stats,
            |m, s, feed| {
                for role in [SlotRole::Primary, SlotRole::Standby, SlotRole::Replacement] {
                    let up = s.slots[..s.slot_count()]
                        .iter()
                        .filter(|c| c.role() == role && c.state() == FeedState::Streaming)
                        .count() as u64;
                    m.encode_family(&(feed.clone(), [("role", role.name())]))?
                        .encode_gauge(&up)?;
                }
                Ok(())
            },
        )?;
        let help = "Each connection slot's state (1 for the current one), with its role.";
        per_feed(
            enc,
            "wsfeed_connection_state",
            help,
            MetricType::Gauge,
            stats,
            |m, s, feed| {
                for (i, c) in s.slots[..s.slot_count()].iter().enumerate() {
                    let slot = i.to_string();
                    one_hot(m, c.state(), |state| {
                        let role = c.role().name();
                        let labels = [
                            ("slot", slot.as_str()),
                            ("role", role),
                            ("state", state.name()),
                        ];
                        (feed.clone(), labels)
                    })?;
                }
                Ok(())
            },
        )?;
        let help = "Streams silent past their limit now.";
        per_feed(
            enc,
            "wsfeed_stale_streams",
            help,
            MetricType::Gauge,
            stats,
            |m, s, feed| {
                m.encode_family(&feed)?
                    .encode_gauge(&s.stale_now.load(Relaxed))
            },
        )?;
        let help = "1 when the process needs this feed.";
        per_feed(
            enc,
            "wsfeed_feed_required",
            help,
            MetricType::Gauge,
            stats,
            |m, s, feed| m.encode_family(&feed)?.encode_gauge(&u64::from(s.required)),
        )?;
        for (name, help, gap) in [
            (
                "wsfeed_reconnect_seconds",
                "Loss detected → first data on the new connection.",
                false,
            ),
            (
                "wsfeed_gap_seconds",
                "Last data before an outage → first data after it.",
                true,
            ),
        ] {
            per_feed(
                enc,
                name,
                help,
                MetricType::Histogram,
                stats,
                |m, s, feed| {
                    let (sum, count, buckets) = match s.histograms.lock() {
                        Ok(h) => match if gap { h.gap_us() } else { h.reconnect_us() } {
                            Some(h) => buckets(h, 1e-6, &OUTAGE_BOUNDS_S),
                            None => empty(&OUTAGE_BOUNDS_S),
                        },
                        Err(_) => empty(&OUTAGE_BOUNDS_S),
                    };
                    m.encode_family(&feed)?
                        .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
                },
            )?;
        }
        let (sum, count, b) = match self.0.latency.lock() {
            Ok(h) => buckets(&h, 1e-9, &LATENCY_BOUNDS_S),
            Err(_) => empty(&LATENCY_BOUNDS_S),
        };
        enc.encode_descriptor(
            "wsfeed_strategy_tick_latency_seconds",
            "Venue frame read → the strategy's on_tick returned.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(sum, count, &b, None)?;
        let rss = resident_bytes().unwrap_or(0);
        enc.encode_descriptor(
            "wsfeed_process_resident_memory_bytes",
            "Resident memory of the process.",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&rss)?;
        let up = Instant::now().duration_since(self.0.started).as_secs_f64();
        enc.encode_descriptor(
            "wsfeed_uptime_seconds",
            "Time since the engine started.",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&up)?;
        if let Some(nats) = &self.0.nats {
            nats_sink(enc, nats)?;
        }
        Ok(())
    }
}

/// A counter of the NATS sink: metric name (without `_total`), help, and where it is kept.
type NatsDef = (&'static str, &'static str, fn(&NatsStats) -> &AtomicU64);

const NATS_COUNTERS: [NatsDef; 7] = [
    (
        "wsfeed_nats_handed",
        "Events handed to the NATS sink.",
        |s| &s.handed,
    ),
    (
        "wsfeed_nats_dropped",
        "Events dropped on the NATS sink's full buffer.",
        |s| &s.dropped,
    ),
    (
        "wsfeed_nats_published",
        "Publish requests sent, retries included.",
        |s| &s.published,
    ),
    (
        "wsfeed_nats_acked",
        "Events JetStream acknowledged storing.",
        |s| &s.acked,
    ),
    (
        "wsfeed_nats_not_acked",
        "Publish requests not acknowledged (error, timeout, no connection); retried.",
        |s| &s.not_acked,
    ),
    (
        "wsfeed_nats_abandoned",
        "Events left unacknowledged when the sink stopped.",
        |s| &s.abandoned,
    ),
    (
        "wsfeed_nats_reconnects",
        "Reconnections of the NATS sink.",
        |s| &s.reconnects,
    ),
];

/// The NATS sink's counters and how many events it holds now.
fn nats_sink(enc: &mut DescriptorEncoder, nats: &NatsStats) -> fmt::Result {
    for (name, help, get) in NATS_COUNTERS {
        enc.encode_descriptor(name, help, None, MetricType::Counter)?
            .encode_counter::<NoLabelSet, _, u64>(&get(nats).load(Relaxed), None)?;
    }
    enc.encode_descriptor(
        "wsfeed_nats_pending",
        "Events the NATS sink holds, not yet acknowledged.",
        None,
        MetricType::Gauge,
    )?
    .encode_gauge(&nats.pending.load(Relaxed))
}

/// The labels every series of a feed carries.
type FeedLabels = [(&'static str, String); 2];

/// One metric family over every feed: `each` writes a feed's series, given its labels.
fn per_feed(
    enc: &mut DescriptorEncoder,
    name: &'static str,
    help: &str,
    kind: MetricType,
    stats: &[Arc<FeedStats>],
    mut each: impl FnMut(&mut MetricEncoder, &FeedStats, FeedLabels) -> fmt::Result,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for s in stats {
        let labels = [("feed", s.name.clone()), ("venue", s.venue.clone())];
        each(&mut m, s, labels)?;
    }
    Ok(())
}

/// A counter's value under `labels`.
fn counter(m: &mut MetricEncoder, labels: &impl EncodeLabelSet, v: u64) -> fmt::Result {
    m.encode_family(labels)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

/// A state as one gauge per possible state, 1 for the current one.
fn one_hot<L: EncodeLabelSet>(
    m: &mut MetricEncoder,
    now: FeedState,
    labels: impl Fn(FeedState) -> L,
) -> fmt::Result {
    for state in STATES {
        m.encode_family(&labels(state))?
            .encode_gauge(&u64::from(state == now))?;
    }
    Ok(())
}

/// A histogram's sum, count and per-bucket counts at `bounds` (seconds); `unit_s` is the
/// length of one recorded unit in seconds.
fn buckets(h: &Histogram<u64>, unit_s: f64, bounds: &[f64]) -> (f64, u64, Vec<(f64, u64)>) {
    let mut below = 0;
    let mut out = Vec::with_capacity(bounds.len());
    for &b in bounds {
        let upto = h.count_between(0, (b / unit_s).round() as u64);
        out.push((b, upto.saturating_sub(below)));
        below = upto.max(below);
    }
    let count = h.len();
    (h.mean() * count as f64 * unit_s, count, out)
}

fn empty(bounds: &[f64]) -> (f64, u64, Vec<(f64, u64)>) {
    (0.0, 0, bounds.iter().map(|&b| (b, 0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_each_value_once_below_its_bound() {
        let mut h = crate::metrics::micros_histogram();
        for us in [40_000, 90_000, 900_000, 4_900_000, 6_000_000, 400_000_000] {
            h.record(us).unwrap();
        }
        let (sum, count, b) = buckets(&h, 1e-6, &OUTAGE_BOUNDS_S);
        assert_eq!(count, 6);
        assert!((sum - 411.93).abs() < 0.5, "sum {sum}");
        let per: Vec<u64> = b.iter().map(|x| x.1).collect();
        // 0.05 0.1 0.25 0.5 1 2 3 4 5 7.5 10 30 60 300 (400 s is above every bound: +Inf)
        assert_eq!(per, [1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0]);
    }
}
