//! `wsfeed demo`: five simulated venues (one of them, Hyperliquid, a venue defined in config,
//! spoken by the simulator from the same definition), the engine with the demo strategy, one
//! account per built-in venue beside the market feeds (its private stream: orders, balances, positions), and a fault
//! schedule that covers every fault the simulator can inject, spread over the run (or, for the
//! soak, hundreds of them).

use std::fmt::Write as _;
use std::time::Duration;

use crate::auth::{Credentials, Secret};
use crate::config::{AccountConfig, Config, ConfigError, FileConfig, StrategyPlace};
use crate::sim::{
    start_group, BookFault, ConnId, Fault, SharedMarket, Sim, SimAccount, SimConfig, SimVenue,
};
use crate::venue::defined::{spec::VenueSpec, Defined};

/// The demo's config, as shipped in `configs/demo.toml`.
pub const DEMO_TOML: &str = include_str!("../configs/demo.toml");

/// Which simulated venue a scheduled fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The Binance spot venue.
    Spot,
    /// The Binance USD-M venue.
    Usdm,
    /// The Bybit linear venue.
    Bybit,
    /// The OKX venue.
    Okx,
    /// Hyperliquid, defined in config (`configs/venues/hyperliquid.toml`).
    Hyperliquid,
}

/// A fault of the simulator: on a connection or the listener, or on an order book.
#[derive(Clone, Debug, PartialEq)]
pub enum DemoFault {
    /// A connection or listener fault.
    Std(Fault),
    /// An order-book fault (a skipped or broken sequence, a crossed book, a bad checksum, a
    /// stale REST snapshot).
    Book(BookFault),
    /// The demo account's Binance listen key expires now (`listenKeyExpired`).
    ExpireListenKey,
}

/// The demo's simulated account on every venue (key `demo-key`, secret `demo-secret`).
const DEMO_ACCOUNT: &str = "demo";

/// The demo's accounts: name, venue, the simulated venue it is on.
const ACCOUNTS: [(&str, &str, Target); 4] = [
    ("acct-spot", "binance-spot", Target::Spot),
    ("acct-usdm", "binance-usdm", Target::Usdm),
    ("acct-bybit", "bybit-linear", Target::Bybit),
    ("acct-okx", "okx", Target::Okx),
];

/// One scheduled fault.
#[derive(Clone, Debug)]
pub struct Scheduled {
    /// When, from the start of the run.
    pub at: Duration,
    /// Which venue.
    pub target: Target,
    /// What.
    pub fault: DemoFault,
}

/// The simulated venues, quoting one shared market.
#[derive(Debug)]
pub struct DemoVenues {
    /// Binance spot (one route, REST depth snapshots).
    pub spot: Sim,
    /// Binance USD-M (routed `/public` and `/market`).
    pub usdm: Sim,
    /// Bybit v5 linear.
    pub bybit: Sim,
    /// OKX v5.
    pub okx: Sim,
    /// Hyperliquid, spoken from its definition (`configs/venues/hyperliquid.toml`).
    pub hyperliquid: Sim,
}

/// The one venue definition the demo's config names in `venue_files`, built in so the demo runs
/// from any folder: its name there, and its text.
const HYPERLIQUID_FILE: &str = "venues/hyperliquid.toml";
const HYPERLIQUID_TOML: &str = include_str!("../configs/venues/hyperliquid.toml");

/// Hyperliquid's definition as the demo uses it: its coins (`BTC`) are the other venues'
/// `BTCUSDT` instrument, so the arbitrage strategy compares them (the simulated venues quote one
/// market; the real Hyperliquid prices in USDC).
fn hyperliquid_spec() -> Result<VenueSpec, ConfigError> {
    let mut spec: VenueSpec = toml::from_str(HYPERLIQUID_TOML).map_err(|e| ConfigError {
        file: Some(HYPERLIQUID_FILE.into()),
        message: e.to_string(),
    })?;
    spec.instrument = Some("{symbol}USDT".into());
    Ok(spec)
}

impl DemoVenues {
    /// Starts the five, with TLS, on one shared market: their prices differ by a few basis
    /// points and, now and then, briefly by more.
    pub fn start() -> std::io::Result<DemoVenues> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let spec = hyperliquid_spec().map_err(|e| invalid(e.to_string()))?;
        let hyperliquid = Defined::load(&spec).map_err(invalid)?;
        let symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];
        let shared = SharedMarket::new(symbols, 0x5EED_CAFE);
        let cfg = |venue, usdm_routing, seed| SimConfig {
            venue,
            usdm_routing,
            seed,
            record: false,
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            accounts: vec![SimAccount::named(DEMO_ACCOUNT)],
            account_event_interval: Duration::from_millis(250),
            ..SimConfig::default()
        };
        let mut sims = start_group(
            vec![
                cfg(SimVenue::Binance, false, 11),
                cfg(SimVenue::Binance, true, 29),
                cfg(SimVenue::BybitLinear, false, 37),
                cfg(SimVenue::Okx, false, 41),
                SimConfig {
                    venue_symbols: vec!["BTC".into(), "ETH".into(), "SOL".into()],
                    accounts: Vec::new(),
                    ..cfg(SimVenue::Defined(hyperliquid), false, 43)
                },
            ],
            shared,
        )?
        .into_iter();
        let mut next = || sims.next().expect("five simulators");
        Ok(DemoVenues {
            spot: next(),
            usdm: next(),
            bybit: next(),
            okx: next(),
            hyperliquid: next(),
        })
    }

    /// The venue a fault targets.
    pub fn get(&self, t: Target) -> &Sim {
        match t {
            Target::Spot => &self.spot,
            Target::Usdm => &self.usdm,
            Target::Bybit => &self.bybit,
            Target::Okx => &self.okx,
            Target::Hyperliquid => &self.hyperliquid,
        }
    }

    /// The demo config pointed at these venues and trusting their CA in-process, with the
    /// strategy where `strategy` says (inline: every feed on one thread that also runs it).
    pub fn config(&self, strategy: StrategyPlace) -> Result<Config, ConfigError> {
        let mut file: FileConfig = toml::from_str(DEMO_TOML).map_err(|e| ConfigError {
            file: Some("configs/demo.toml".into()),
            message: e.to_string(),
        })?;
        for f in std::mem::take(&mut file.venue_files) {
            if f != std::path::Path::new(HYPERLIQUID_FILE) {
                return Err(ConfigError {
                    file: Some("configs/demo.toml".into()),
                    message: format!("venue_files: the demo has no '{}'", f.display()),
                });
            }
            file.venues.push(hyperliquid_spec()?);
        }
        if strategy == StrategyPlace::Inline {
            file.engine.strategy = StrategyPlace::Inline;
            file.engine.strategy_wait = None;
            file.engine.strategy_core = None;
        }
        self.point_at(&mut file);
        for (name, venue, target) in ACCOUNTS {
            file.accounts.push(self.account(name, venue, target)?);
        }
        file.validate()
    }

    /// An `[[accounts]]` entry for the demo account on venue `target`, its credentials given
    /// in-process (the simulator's).
    fn account(
        &self,
        name: &str,
        venue: &str,
        target: Target,
    ) -> Result<AccountConfig, ConfigError> {
        let sim = self.get(target);
        let passphrase = match venue {
            "okx" => "passphrase_env = \"WSFEED_DEMO_PASSPHRASE\"\n",
            _ => "",
        };
        let toml = format!(
            "name = \"{name}\"\nvenue = \"{venue}\"\nurl = \"{}\"\n\
             key_env = \"WSFEED_DEMO_KEY\"\nsecret_env = \"WSFEED_DEMO_SECRET\"\n{passphrase}",
            sim.base_url()
        );
        let mut a: AccountConfig = toml::from_str(&toml).map_err(|e| ConfigError {
            file: None,
            message: format!("demo account {name}: {e}"),
        })?;
        let s = SimAccount::named(DEMO_ACCOUNT);
        a.credentials = Some(Credentials {
            key: Secret::new(s.api_key),
            secret: Secret::new(s.secret),
            passphrase: s.passphrase.map(Secret::new),
        });
        a.ca_pem = sim.ca_pem();
        Ok(a)
    }

    /// Points every feed of a config at the simulated venue of its venue (Bybit spot feeds at
    /// the Bybit linear one), trusting its CA in-process: a config written for the real venues
    /// (an example's, say) runs against these.
    pub fn point_at(&self, file: &mut FileConfig) {
        for feed in &mut file.feeds {
            let sim = match feed.venue.as_str() {
                "binance-spot" => &self.spot,
                "binance-usdm" => &self.usdm,
                "bybit-linear" | "bybit-spot" => &self.bybit,
                "hyperliquid" => &self.hyperliquid,
                _ => &self.okx,
            };
            // A defined venue's URL keeps its path (Hyperliquid's `/ws`).
            let path = match sim.config().venue {
                SimVenue::Defined(_) => sim.config().venue.ws_path().unwrap_or(""),
                _ => "",
            };
            let url = format!("{}{path}", sim.base_url());
            feed.url = Some(url.clone());
            if feed.standby_url.is_some() {
                feed.standby_url = Some(url);
            }
            feed.ca_pem = sim.ca_pem();
        }
    }
}

/// How hard the demo hits the feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultLevel {
    /// No faults.
    None,
    /// Every fault kind once or twice, spread over the run.
    Normal,
    /// A fault every [`HEAVY_EVERY`] on average, drawn from every kind: the soak.
    Heavy,
}

/// Mean interval between faults at [`FaultLevel::Heavy`].
pub const HEAVY_EVERY: Duration = Duration::from_millis(1500);

/// The fault schedule of a run of length `run`.
pub fn schedule(run: Duration, level: FaultLevel) -> Vec<Scheduled> {
    match level {
        FaultLevel::None => Vec::new(),
        FaultLevel::Normal => normal_schedule(run),
        FaultLevel::Heavy => heavy_schedule(run, 0x5EED),
    }
}

/// Every fault kind, spread over `run` in time order; the last 20 % of the run is left for
/// recovery.
/// Connection faults hit one connection of the venue, picked at random when injected.
fn normal_schedule(run: Duration) -> Vec<Scheduled> {
    let at = |f: f64| run.mul_f64(f);
    let stall = Duration::from_millis(2500).min(run.mul_f64(0.12));
    let refuse = Duration::from_millis(1500).min(run.mul_f64(0.08));
    let s = |f: f64, target: Target, fault: Fault| Scheduled {
        at: at(f),
        target,
        fault: DemoFault::Std(fault),
    };
    let b = |f: f64, target: Target, fault: BookFault| Scheduled {
        at: at(f),
        target,
        fault: DemoFault::Book(fault),
    };
    use Target::*;
    let mut plan = vec![
        s(0.08, Usdm, Fault::Close { code: 1001 }),
        s(0.12, Spot, Fault::Malformed),
        s(0.14, Spot, Fault::UnknownMessage),
        s(0.16, Usdm, Fault::Binary),
        s(0.20, Spot, Fault::ServerPing),
        s(0.20, Usdm, Fault::PingFlood { count: 50 }),
        s(0.26, Spot, Fault::Reset),
        s(0.30, Spot, Fault::DropNext { count: 3 }),
        s(0.36, Usdm, Fault::Stall { duration: stall }),
        s(0.44, Spot, Fault::Oversized { bytes: 2 << 20 }),
        // The reconnect after this reset meets two 429s with Retry-After: 1.
        s(
            0.52,
            Spot,
            Fault::Http429 {
                count: 2,
                retry_after_s: 1,
            },
        ),
        s(0.52, Spot, Fault::Reset),
        s(
            0.58,
            Spot,
            Fault::Mute {
                stream: "btcusdt@depth@100ms".into(),
            },
        ),
        s(0.64, Usdm, Fault::Http503 { count: 1 }),
        s(0.64, Usdm, Fault::Close { code: 1011 }),
        s(0.68, Spot, Fault::IgnoreSubscribe { count: 1 }),
        s(0.68, Spot, Fault::Close { code: 1000 }),
        s(0.74, Spot, Fault::Refuse { duration: refuse }),
        s(0.74, Spot, Fault::Close { code: 1012 }),
        s(0.14, Bybit, Fault::Reset),
        b(0.24, Okx, BookFault::SkipSeq),
        b(0.34, Bybit, BookFault::BreakChain),
        b(0.40, Spot, BookFault::SkipSeq),
        b(0.46, Okx, BookFault::CrossBook),
        s(0.56, Okx, Fault::Close { code: 1001 }),
        b(0.62, Usdm, BookFault::SnapshotStale),
        b(0.62, Usdm, BookFault::BreakChain),
        s(0.70, Bybit, Fault::Stall { duration: stall }),
        s(0.32, Hyperliquid, Fault::Reset),
        s(0.60, Hyperliquid, Fault::Stall { duration: stall }),
        Scheduled {
            at: at(0.42),
            target: Usdm,
            fault: DemoFault::ExpireListenKey,
        },
    ];
    // Injected in time order.
    plan.sort_by_key(|s| s.at);
    plan
}

/// A fault every [`HEAVY_EVERY`] on average from the second second to 95 % of the run, kinds
/// drawn with fixed weights (deterministic for a given seed).
fn heavy_schedule(run: Duration, seed: u64) -> Vec<Scheduled> {
    let mut rng = seed | 1;
    let mut next = move || {
        // xorshift64
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let end = run.mul_f64(0.95);
    let mut at = Duration::from_secs(2);
    let mut out = Vec::new();
    while at < end {
        let target = [
            Target::Spot,
            Target::Usdm,
            Target::Bybit,
            Target::Okx,
            Target::Hyperliquid,
        ][(next() % 5) as usize];
        let r = next();
        let book = match r % 100 {
            40..=42 => Some(BookFault::SkipSeq),
            43..=44 => Some(BookFault::BreakChain),
            45 => Some(BookFault::CrossBook),
            _ => None,
        };
        if let Some(fault) = book {
            out.push(Scheduled {
                at,
                target,
                fault: DemoFault::Book(fault),
            });
            at += HEAVY_EVERY.mul_f64(0.5 + (next() % 1000) as f64 / 1000.0);
            continue;
        }
        let fault = match r % 100 {
            0..=19 => Fault::Close {
                code: [1000, 1001, 1011, 1012][(r / 100 % 4) as usize],
            },
            20..=34 => Fault::Reset,
            35..=44 => Fault::Stall {
                duration: Duration::from_millis(1000 + r / 100 % 1500),
            },
            45..=54 => Fault::DropNext {
                count: 1 + (r / 100 % 5) as u32,
            },
            55..=59 => Fault::Malformed,
            60..=64 => Fault::UnknownMessage,
            65..=67 => Fault::Binary,
            68..=71 => Fault::ServerPing,
            72..=74 => Fault::PingFlood { count: 50 },
            75..=79 => Fault::Oversized { bytes: 2 << 20 },
            80..=84 => Fault::Mute {
                stream: match target {
                    Target::Spot => "btcusdt@depth@100ms",
                    Target::Usdm => "btcusdt@markPrice@1s",
                    Target::Bybit => "orderbook.50.BTCUSDT",
                    Target::Okx => "books:BTC-USDT-SWAP",
                    Target::Hyperliquid => "bbo:BTC",
                }
                .into(),
            },
            85..=89 => Fault::Refuse {
                duration: Duration::from_millis(300 + r / 100 % 1200),
            },
            90..=93 => Fault::Http429 {
                count: 1,
                retry_after_s: 1,
            },
            94..=96 => Fault::Http503 { count: 1 },
            _ => Fault::IgnoreSubscribe { count: 1 },
        };
        out.push(Scheduled {
            at,
            target,
            fault: DemoFault::Std(fault),
        });
        // Uniform in [0.5, 1.5] × the mean interval.
        at += HEAVY_EVERY.mul_f64(0.5 + (next() % 1000) as f64 / 1000.0);
    }
    out
}

/// What an injection hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injected {
    /// The venue's listener (refusals, rejected upgrades, ignored subscriptions).
    Listener,
    /// One connection.
    Connection(ConnId),
    /// No connection was open to hit.
    Nothing,
}

impl DemoVenues {
    /// Injects a scheduled fault: listener faults on the venue, connection faults on one of
    /// its open connections, picked with `pick` (so a standby pair is hit one at a time unless
    /// the dice say otherwise).
    pub fn inject(&self, s: &Scheduled, pick: u64) -> Injected {
        let sim = self.get(s.target);
        match &s.fault {
            DemoFault::ExpireListenKey => {
                return match sim.expire_listen_key(DEMO_ACCOUNT) {
                    true => Injected::Listener,
                    false => Injected::Nothing,
                };
            }
            DemoFault::Std(f) if f.is_listener_fault() => {
                sim.inject(f.clone());
                return Injected::Listener;
            }
            DemoFault::Book(f) if f.is_listener_fault() => {
                sim.inject_book(*f);
                return Injected::Listener;
            }
            _ => {}
        }
        let snapshot = sim.snapshot();
        // A book fault acts on the next book message of the connection: aim it at connections
        // that carry a full book (a depth or order-book stream).
        let carries_book = |streams: &[String]| {
            streams.iter().any(|n| {
                n.contains("@depth") || n.starts_with("orderbook.50") || n.starts_with("books")
            })
        };
        let open: Vec<ConnId> = snapshot
            .open_connections()
            .filter(|c| matches!(s.fault, DemoFault::Std(_)) || carries_book(&c.streams))
            .map(|c| c.id)
            .collect();
        if open.is_empty() {
            return Injected::Nothing;
        }
        let id = open[(pick % open.len() as u64) as usize];
        match &s.fault {
            DemoFault::Std(f) => sim.inject_on(id, f.clone()),
            DemoFault::Book(f) => sim.inject_book_on(id, *f),
            DemoFault::ExpireListenKey => {}
        }
        Injected::Connection(id)
    }
}

pub use crate::metrics::resident_bytes;

/// Name of a fault's kind, for counts.
pub fn kind_name(f: &DemoFault) -> &'static str {
    let f = match f {
        DemoFault::Std(f) => f,
        DemoFault::ExpireListenKey => return "listen-key-expired",
        DemoFault::Book(BookFault::SkipSeq) => return "book-skip-seq",
        DemoFault::Book(BookFault::BreakChain) => return "book-break-chain",
        DemoFault::Book(BookFault::CrossBook) => return "book-cross",
        DemoFault::Book(BookFault::BadChecksum) => return "book-bad-checksum",
        DemoFault::Book(BookFault::SnapshotStale) => return "book-stale-snapshot",
    };
    match f {
        Fault::Close { .. } => "close",
        Fault::Reset => "reset",
        Fault::Stall { .. } => "stall",
        Fault::Refuse { .. } => "refuse",
        Fault::Http429 { .. } => "http429",
        Fault::Http503 { .. } => "http503",
        Fault::Reject { .. } => "reject",
        Fault::Malformed => "malformed",
        Fault::ServerPing => "server-ping",
        Fault::Oversized { .. } => "oversized",
        Fault::Binary => "binary",
        Fault::UnknownMessage => "unknown-message",
        Fault::PingFlood { .. } => "ping-flood",
        Fault::DropNext { .. } => "drop-next",
        Fault::IgnoreSubscribe { .. } => "ignore-subscribe",
        Fault::Mute { .. } => "mute",
    }
}

/// One line per scheduled fault, for the demo's banner:
/// `at  1.6 s  Binance USD-M  close a connection cleanly (close code 1001)`.
pub fn describe(schedule: &[Scheduled]) -> String {
    let mut out = String::new();
    for s in schedule {
        let _ = writeln!(
            out,
            "  at {:>5.1} s  {:<13}  {}",
            s.at.as_secs_f64(),
            s.target.name(),
            words(&s.fault)
        );
    }
    out
}

impl Target {
    /// The venue as a person names it.
    pub fn name(self) -> &'static str {
        match self {
            Target::Spot => "Binance spot",
            Target::Usdm => "Binance USD-M",
            Target::Bybit => "Bybit linear",
            Target::Okx => "OKX",
            Target::Hyperliquid => "Hyperliquid",
        }
    }
}

/// What a fault does, in words.
pub fn words(f: &DemoFault) -> String {
    let secs = |d: &Duration| format!("{:.1} s", d.as_secs_f64());
    let n = |count: &u32, what: &str| match count {
        1 => format!("the next {what}"),
        n => format!("the next {n} {what}s"),
    };
    let f = match f {
        DemoFault::Std(f) => f,
        DemoFault::ExpireListenKey => {
            return "expire the demo account's listen key (listenKeyExpired)".into()
        }
        DemoFault::Book(b) => {
            return match b {
                BookFault::SkipSeq => "withhold the next book update (a hole in the numbering)",
                BookFault::BreakChain => "break the next book update's sequence chain",
                BookFault::CrossBook => "cross the book in the next book update",
                BookFault::BadChecksum => "send a wrong checksum with the next book update",
                BookFault::SnapshotStale => "serve a stale REST depth snapshot next",
            }
            .to_string()
        }
    };
    match f {
        Fault::Close { code } => format!("close a connection cleanly (close code {code})"),
        Fault::Reset => "reset a connection (TCP RST, no close frame)".into(),
        Fault::Stall { duration } => {
            format!(
                "stall a connection silently for {}, then drop it",
                secs(duration)
            )
        }
        Fault::Refuse { duration } => format!("refuse new connections for {}", secs(duration)),
        Fault::Http429 {
            count,
            retry_after_s,
        } => format!(
            "answer {} HTTP 429, Retry-After {retry_after_s} s",
            n(count, "upgrade")
        ),
        Fault::Http503 { count } => format!("answer {} HTTP 503", n(count, "upgrade")),
        Fault::Reject {
            status,
            count,
            retry_after_s,
        } => {
            let after = retry_after_s.map_or(String::new(), |s| format!(", Retry-After {s} s"));
            format!("answer {} HTTP {status}{after}", n(count, "upgrade"))
        }
        Fault::Malformed => "send a frame that is not JSON".into(),
        Fault::ServerPing => "send a server ping".into(),
        Fault::Oversized { bytes } => format!("send an oversized frame ({} KiB)", bytes / 1024),
        Fault::Binary => "send a binary frame".into(),
        Fault::UnknownMessage => "send a message of an unknown kind".into(),
        Fault::PingFlood { count } => format!("flood a connection with {count} pings"),
        Fault::DropNext { count } => format!("withhold {}", n(count, "data message")),
        Fault::IgnoreSubscribe { count } => {
            format!("ignore {}", n(count, "subscription"))
        }
        Fault::Mute { stream } => format!("stop delivering {stream} on a connection"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_described_in_words() {
        let s = [Scheduled {
            at: Duration::from_millis(1600),
            target: Target::Usdm,
            fault: DemoFault::Std(Fault::Close { code: 1001 }),
        }];
        assert_eq!(
            describe(&s),
            "  at   1.6 s  Binance USD-M  close a connection cleanly (close code 1001)\n"
        );
        for level in [FaultLevel::Normal, FaultLevel::Heavy] {
            let text = describe(&schedule(Duration::from_secs(60), level));
            for debug in ["{", "}", "Std(", "Book(", "Duration", "Some("] {
                assert!(!text.contains(debug), "{debug:?} in {text}");
            }
        }
    }

    #[test]
    fn schedules_are_in_time_order_and_cover_every_kind() {
        for level in [FaultLevel::Normal, FaultLevel::Heavy] {
            let plan = schedule(Duration::from_secs(600), level);
            assert!(plan.windows(2).all(|w| w[0].at <= w[1].at), "{level:?}");
            assert!(plan.iter().all(|s| s.at < Duration::from_secs(600)));
        }
        let kinds: std::collections::BTreeSet<&str> =
            schedule(Duration::from_secs(20), FaultLevel::Normal)
                .iter()
                .map(|s| kind_name(&s.fault))
                .collect();
        assert!(kinds.len() >= 18, "{kinds:?}");
        assert!(schedule(Duration::from_secs(20), FaultLevel::None).is_empty());
    }
}
