//! Reloading the config of a running engine: only the feeds and accounts that changed are
//! touched. A removed one's driver stops (its capture files are closed, its manifest entry
//! marks it retired, health and the status line leave it out); an added one is planned with the
//! next ids (the same symbol ids and host budgets as the running feeds), gets its own driver
//! thread and a lane to the strategy thread; a changed one is both. What a running engine cannot
//! change in place — `[engine]`, `[capture]`, `[metrics]`, `[arbitrage]`, `[sink]`,
//! `[[drivers]]`, a feed on a shared driver, the inline strategy — refuses the whole reload, and
//! the running set stays as it was.

use std::sync::atomic::Ordering;

use log::warn;

use super::plan::DriverPlan;
use super::{channels, feed_stats, spawn_driver, Engine};
use crate::capture::{CaptureFeed, CaptureMsg};
use crate::config::{AccountSpec, Config, FeedSpec, WaitMode};
use crate::feed::params::FeedParams;
use crate::feed::sink::ChannelSink;
use crate::helper::Helper;
use crate::strategy::{Control, Strategy};

/// Sections a running engine cannot change in place.
const RESTART_SECTIONS: [&str; 6] = [
    "engine",
    "capture",
    "metrics",
    "arbitrage",
    "sink",
    "drivers",
];

/// One configured feed or account.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Item<'a> {
    Feed(&'a FeedSpec),
    Account(&'a AccountSpec),
}

impl Item<'_> {
    fn name(&self) -> &str {
        match self {
            Item::Feed(f) => &f.name,
            Item::Account(a) => &a.params.name,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Item::Feed(_) => "feed",
            Item::Account(_) => "account",
        }
    }

    fn driver(&self) -> Option<&str> {
        match self {
            Item::Feed(f) => f.driver.as_deref(),
            Item::Account(a) => a.driver.as_deref(),
        }
    }
}

/// The item of `list` named `name`.
fn find<'a>(list: &[Item<'a>], name: &str) -> Option<Item<'a>> {
    list.iter().copied().find(|i| i.name() == name)
}

fn items(config: &Config) -> Vec<Item<'_>> {
    config
        .feeds
        .iter()
        .map(Item::Feed)
        .chain(config.accounts.iter().map(Item::Account))
        .collect()
}

impl<S: Strategy> Engine<S> {
    /// Applies `new` (validated as a start would): removes, adds and restarts only the feeds
    /// and accounts that changed, and returns one line per change. When `new` changes what a
    /// running engine cannot change in place, nothing is changed and the error says what.
    pub fn reload(&mut self, new: Config) -> Result<Vec<String>, String> {
        if self.control.is_none() {
            return Err(
                "strategy = \"inline\" runs every feed on one thread with the strategy: \
                        a change of feeds needs a restart; nothing was changed"
                    .into(),
            );
        }
        for section in RESTART_SECTIONS {
            if self.config.effective.get(section) != new.effective.get(section) {
                return Err(format!(
                    "[{section}] changed, which needs a restart; nothing was changed"
                ));
            }
        }
        // What changed, by name: (as it runs, as it will run); equal ones are left alone.
        let running = self.config.clone();
        let (old, fresh) = (items(&running), items(&new));
        let mut changes: Vec<(Option<Item<'_>>, Option<Item<'_>>)> = old
            .iter()
            .map(|&o| (Some(o), find(&fresh, o.name())))
            .chain(
                fresh
                    .iter()
                    .filter(|n| find(&old, n.name()).is_none())
                    .map(|&n| (None, Some(n))),
            )
            .collect();
        changes.retain(|(was, will)| was != will);
        for item in changes.iter().flat_map(|(was, will)| [was, will]).flatten() {
            if let Some(driver) = item.driver() {
                return Err(format!(
                    "{} '{}' runs on driver '{driver}', shared with others: changing it needs a \
                     restart; nothing was changed",
                    item.kind(),
                    item.name()
                ));
            }
        }
        let mut lines = Vec::new();
        let mut failed = None;
        for (was, will) in &changes {
            let item = will.or(*was).expect("one side of a change");
            let (kind, name) = (item.kind(), item.name());
            if was.is_some() {
                self.retire(name);
            }
            let Some(will) = will else {
                lines.push(format!("reload: removed {kind} '{name}'"));
                continue;
            };
            match self.add(*will, &new) {
                Ok(()) if was.is_some() => {
                    lines.push(format!(
                        "reload: restarted {kind} '{name}' (its settings changed)"
                    ));
                }
                Ok(()) => lines.push(format!("reload: added {kind} '{name}'")),
                Err(e) => {
                    failed.get_or_insert(format!("{kind} '{name}' could not start: {e}"));
                }
            }
        }
        if lines.is_empty() && failed.is_none() {
            lines.push("reload: nothing changed".into());
        }
        self.config = new;
        match failed {
            Some(e) => Err(format!(
                "{e} (the rest of the reload was applied: {})",
                lines.join("; ")
            )),
            None => Ok(lines),
        }
    }

    /// Stops every feed of configured feed or account `name`: its driver thread ends (its
    /// senders close its lane), its capture files close, its counters are marked retired.
    fn retire(&mut self, name: &str) {
        let ids: Vec<usize> = (0..self.owners.len())
            .filter(|&id| self.owners[id] == name && !self.stats[id].is_retired())
            .collect();
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.threads)
            .into_iter()
            .partition(|t| t.feeds.iter().any(|f| ids.contains(f)));
        self.threads = others;
        for t in &mine {
            t.stop.store(true, Ordering::Release);
            let _ = t.waker.wake();
        }
        for t in mine {
            if t.handle.join().is_err() {
                warn!("a feed thread panicked");
            }
        }
        let now_ms = crate::clock::unix_ns() / 1_000_000;
        for &id in &ids {
            self.stats[id]
                .retired_at_ms
                .store(now_ms.max(1), Ordering::Relaxed);
            if let Some(tx) = &self.capture_tx {
                let _ = tx.send(CaptureMsg::RetireFeed(id as u16));
            }
        }
    }

    /// Plans and starts configured feed or account `item` of `config` with the next ids.
    fn add(&mut self, item: Item<'_>, config: &Config) -> Result<(), String> {
        let (mut params, core, wait) = match item {
            Item::Feed(f) => (self.planner.feed(f).map_err(|e| e.0)?, f.core, f.wait),
            Item::Account(a) => (
                vec![self.planner.account(a).map_err(|e| e.0)?],
                None,
                WaitMode::Block,
            ),
        };
        self.ensure_helpers(&params)?;
        let handles = self.handles.clone().unwrap_or_default();
        for p in &mut params {
            let stats = feed_stats(p);
            if let Some(tx) = &self.capture_tx {
                let feed = CaptureFeed {
                    venue: p.venue.name().to_string(),
                    streams: p.streams.clone(),
                    stats: stats.clone(),
                    symbols: p.symbols.clone(),
                    rest_books: p.rest_base.is_some(),
                };
                let _ = tx.send(CaptureMsg::AddFeed(Box::new(feed)));
                p.capture = Some(tx.clone());
            }
            self.stats.push(stats.clone());
            if let Ok(mut all) = self.observed.write() {
                all.push(stats);
            }
            self.owners.push(item.name().to_string());
        }
        for p in params {
            let id = usize::from(p.id);
            let (outbox, lane) = channels(config, self.stats[id].clone());
            if let Some(control) = &self.control {
                let universe = self.planner.universe.clone();
                let _ = control.send(Control::AddLane(Box::new(lane), universe));
            }
            let plan = DriverPlan {
                name: p.name.clone(),
                core,
                wait,
                feeds: vec![id],
            };
            let hosted: Vec<FeedParams> = vec![p];
            let thread = spawn_driver(
                plan,
                ChannelSink::new(vec![outbox]),
                hosted,
                &self.stats,
                &handles,
                |_| None,
            )
            .map_err(|e| e.0)?;
            self.threads.push(thread);
        }
        Ok(())
    }

    /// Starts the helper threads `params` need and the engine does not run yet (a resolver for
    /// host names, the REST thread for snapshots and listen keys).
    fn ensure_helpers(&mut self, params: &[FeedParams]) -> Result<(), String> {
        let Some(handles) = self.handles.as_mut() else {
            return Ok(());
        };
        let dns = params.iter().any(|p| {
            p.targets
                .iter()
                .any(|t| t.endpoint.host.parse::<std::net::IpAddr>().is_err())
        });
        let rest = params.iter().any(|p| {
            p.rest_base.is_some() || p.account.as_ref().is_some_and(|a| a.rest_base.is_some())
        });
        for (wanted, name) in [(dns, "resolver"), (rest, "snapshots")] {
            let slot = match name {
                "resolver" => &mut handles.resolver,
                _ => &mut handles.snapshots,
            };
            if wanted && slot.is_none() {
                let h = Helper::start(name)
                    .map_err(|e| format!("cannot start the {name} thread: {e}"))?;
                *slot = Some(h.handle());
                self.helpers.push(h);
            }
        }
        Ok(())
    }
}
