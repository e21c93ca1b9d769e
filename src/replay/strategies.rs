//! The strategies `wsfeed replay --strategy NAME` can run: `arb` (the demo's arbitrage monitor,
//! with the session's `[arbitrage]` settings), `count` (ticks and health events per feed) and
//! `print` (every tick and event as a line, then the counts).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::arb::{ArbConfig, ArbMonitor};
use crate::config::ArbitrageConfig;
use crate::strategy::{Strategy, Universe};
use crate::tick::{FeedId, Health, Tick, TickData};

/// The names `--strategy` takes.
pub const NAMES: [&str; 3] = ["arb", "count", "print"];

/// The strategy called `name`, configured from a session's config (its manifest's `config`).
/// An unknown name is an error listing the names.
pub fn by_name(name: &str, config: &Value) -> Result<Box<dyn Strategy>, String> {
    match name {
        "arb" => {
            let arb: ArbitrageConfig = match config.get("arbitrage") {
                Some(v) => serde_json::from_value(v.clone())
                    .map_err(|e| format!("the session's [arbitrage] does not read: {e}"))?,
                None => ArbitrageConfig::default(),
            };
            let defined = crate::venue::defined::in_config(config)?;
            Ok(Box::new(ArbMonitor::new(ArbConfig::from_config(
                &arb, &defined,
            ))))
        }
        "count" => Ok(Box::new(Counter::default())),
        "print" => Ok(Box::new(Counter {
            print: true,
            ..Counter::default()
        })),
        _ => Err(format!(
            "unknown strategy '{name}': one of {}",
            NAMES.join(", ")
        )),
    }
}

/// Counts ticks by kind and health events by name, per feed; with `print`, also prints each.
#[derive(Debug, Default)]
pub struct Counter {
    /// Print every tick and event as it comes.
    pub print: bool,
    universe: Universe,
    /// (feed, what) → count.
    counts: BTreeMap<(FeedId, &'static str), u64>,
    health: BTreeMap<(FeedId, String), u64>,
}

fn kind(data: &TickData) -> &'static str {
    match data {
        TickData::Quote { .. } => "quote",
        TickData::Trade { .. } => "trade",
        TickData::Depth(_) => "depth",
        _ => "other",
    }
}

impl Strategy for Counter {
    fn on_start(&mut self, universe: &Universe) {
        self.universe = universe.clone();
    }

    fn on_tick(&mut self, tick: &Tick) {
        *self
            .counts
            .entry((tick.feed, kind(&tick.data)))
            .or_default() += 1;
        if self.print {
            println!(
                "{} {} {} seq {} recv_ns {} {:?}",
                self.universe.feed(tick.feed),
                self.universe.symbol(tick.symbol),
                tick.stream,
                tick.seq,
                tick.recv_ns,
                tick.data
            );
        }
    }

    fn on_health(&mut self, feed: FeedId, at_ns: u64, event: &Health) {
        let text = format!("{event:?}");
        let name = text.split([' ', '(', '{']).next().unwrap_or_default();
        *self.health.entry((feed, name.to_string())).or_default() += 1;
        if self.print {
            println!("{} at_ns {at_ns} {text}", self.universe.feed(feed));
        }
    }

    fn report(&self) -> String {
        let mut out = String::from("count: ticks by kind and health events, per feed");
        for (i, f) in self.universe.feeds.iter().enumerate() {
            let feed = i as FeedId;
            let ticks: Vec<String> = self
                .counts
                .range((feed, "")..)
                .take_while(|((f, _), _)| *f == feed)
                .map(|((_, k), n)| format!("{k} {n}"))
                .collect();
            let health: Vec<String> = self
                .health
                .iter()
                .filter(|((f, _), _)| *f == feed)
                .map(|((_, k), n)| format!("{k} {n}"))
                .collect();
            let _ = write!(
                out,
                "\n  {:<18} ticks: {} | health: {}",
                f.name,
                if ticks.is_empty() {
                    "none".into()
                } else {
                    ticks.join(", ")
                },
                if health.is_empty() {
                    "none".into()
                } else {
                    health.join(", ")
                },
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_name_lists_the_names() {
        let e = by_name("nope", &Value::Null).err().expect("unknown");
        assert!(
            e.contains("'nope'") && e.contains("arb, count, print"),
            "{e}"
        );
        for name in NAMES {
            assert!(by_name(name, &Value::Null).is_ok(), "{name}");
        }
        let bad = serde_json::json!({"arbitrage": {"min_edge_bps": "x"}});
        assert!(by_name("arb", &bad).err().unwrap().contains("[arbitrage]"));
    }
}
