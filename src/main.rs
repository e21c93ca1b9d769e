//! The `wsfeed` command line: `demo` (the main job), `run --config FILE`, `audit` and `report`
//! of a capture session, and `check-host`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use wsfeed::arb::{ArbConfig, ArbMonitor};
use wsfeed::config::Config;
use wsfeed::config::{CaptureConfig, MetricsConfig};
use wsfeed::engine::{Engine, StatusMark};
use wsfeed::summary::Summary;

/// wsfeed — low-latency, self-healing crypto market-data feeds.
#[derive(Debug, Parser)]
#[command(
    name = "wsfeed",
    version,
    arg_required_else_help = true,
    after_help = "Bad arguments or a bad config exit with code 2; nothing is started.\n\
                  Logging: RUST_LOG (default: info for the engine, warn for the simulator)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulated venues, a fault schedule and the arbitrage strategy: live status, then a
    /// summary
    ///
    /// Starts five simulated venues (Binance spot, Binance USD-M, Bybit linear, OKX, and
    /// Hyperliquid, defined in config; TLS with a CA generated at start) quoting one market,
    /// runs the engine over nine feeds, injects
    /// faults on a schedule and prints a status line every second and a summary at the end.
    /// Ctrl-C stops it early and still prints the summary.
    Demo(DemoArgs),
    /// Run the feeds of a config file until Ctrl-C (or --seconds), then print a summary
    Run(RunArgs),
    /// Check a capture session against its manifest
    ///
    /// Every update missing from the capture must be reported missed in the manifest, nothing
    /// reported missed may be captured, and no update may be captured twice. Exits 1 when a
    /// check fails.
    Audit {
        /// The session folder, DIR/<session_id>
        session_dir: PathBuf,
    },
    /// Write a capture session's report: one HTML page with its figures inline, and the figures
    /// as SVG files
    ///
    /// Figures: each feed's connections with their states and every gap coloured by cause
    /// (timeline.svg), reconnect-time and gap-duration distributions against the 5 s target
    /// (reconnects.svg), the tick-latency percentile spectrum (latency.svg), message rates per
    /// stream (rates.svg). Writes report.html and the figures into the session folder (or
    /// --out DIR) and prints a text summary. A folder that is not a session, or a damaged
    /// manifest, exits 2.
    Report {
        /// The session folder, DIR/<session_id>
        session_dir: PathBuf,
        /// Write the page and the figures here instead (created when missing)
        #[arg(long, value_name = "DIR", value_parser = clap::builder::NonEmptyStringValueParser::new().map(PathBuf::from))]
        out: Option<PathBuf>,
    },
    /// Feed a capture session to a strategy as the live run fed it, then print its report
    ///
    /// The session's messages go through the feeds' own parsers and order books, with its
    /// health events (disconnects, gaps, book invalidations and resyncs) at their recorded
    /// places and the live run's symbol ids and receive times, so the strategy makes the same
    /// decisions (exactly, for a session run with `[engine] strategy = "inline"`). Prints the
    /// strategy's report and the replay's figures; exits 1 when the replay's ticks differ from
    /// the live run's, 2 for bad arguments or a folder that is not a session of format 2.
    Replay {
        /// The session folder, DIR/<session_id>
        session_dir: PathBuf,
        /// 1 (recorded time), N (N times faster) or max (as fast as possible)
        #[arg(long, value_name = "SPEED", default_value = "max")]
        speed: wsfeed::replay::Speed,
        /// The strategy: arb (the demo's arbitrage monitor), count or print
        #[arg(long, value_name = "NAME", default_value = "arb")]
        strategy: String,
    },
    /// Whether this host fits a config's pinning and spinning (exit 1 when it does not)
    ///
    /// Reports the host's cores, isolation (isolcpus, nohz_full, rcu_nocbs), frequency
    /// governors and clock source, and each thread the config starts that pins or spins.
    /// Problems (a pinned core missing, more spinning threads than cores, two spinning threads
    /// on one core) exit 1; advice (a spinning core not isolated, a governor other than
    /// performance, a clock source other than tsc) does not. What cannot be read is unknown.
    /// See docs/DEPLOY.md.
    CheckHost {
        /// The config file
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// What `demo` and `run` share.
#[derive(Clone, Debug, Args)]
struct Common {
    /// Write every message as JSONL and a session manifest under DIR (overrides [capture] dir)
    #[arg(long, value_name = "DIR", value_parser = clap::builder::NonEmptyStringValueParser::new().map(PathBuf::from))]
    capture: Option<PathBuf>,
    /// Serve /metrics, /healthz and /status on ADDR, e.g. 127.0.0.1:9464 (overrides [metrics] listen)
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
}

#[derive(Debug, Args)]
#[cfg_attr(not(feature = "sim"), allow(dead_code))]
struct DemoArgs {
    /// Run for N seconds
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = seconds())]
    seconds: u64,
    /// How many faults: normal (every kind, spread over the run), heavy (one every 1.5 s on
    /// average: a 600 s soak injects about 400) or none
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = Faults::Normal)]
    faults: Faults,
    /// The same as --faults none
    #[arg(long, conflicts_with = "faults")]
    no_faults: bool,
    /// Run the strategy on the one thread that reads every feed
    #[arg(long)]
    inline: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The config file (TOML; see configs/)
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Stop after N seconds (default: run until Ctrl-C)
    #[arg(long, value_name = "N", value_parser = seconds())]
    seconds: Option<u64>,
    #[command(flatten)]
    common: Common,
}

/// The demo's fault levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[cfg_attr(not(feature = "sim"), allow(dead_code))]
enum Faults {
    Normal,
    Heavy,
    None,
}

/// `--seconds`: 1 s to a week.
fn seconds() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=7 * 24 * 3600)
}

/// Status lines between two percentile lines.
const PERCENTILES_EVERY: u32 = 5;

/// Exit code for bad arguments or a bad config: nothing was started.
const EXIT_USAGE: u8 = 2;

impl Common {
    /// Applies the overrides to a config; a capture folder that cannot be made is a config
    /// error.
    fn apply(&self, config: &mut Config) -> Result<(), wsfeed::config::ConfigError> {
        if let Some(dir) = &self.capture {
            config.capture = Some(CaptureConfig { dir: dir.clone() });
        }
        if let Some(listen) = self.metrics {
            config.metrics = Some(MetricsConfig { listen });
        }
        match &config.capture {
            Some(c) => c.create_dir(),
            None => Ok(()),
        }
    }

    /// The config in `path` with the overrides applied: an error names the file.
    fn load(&self, path: &std::path::Path) -> Result<Config, wsfeed::config::ConfigError> {
        let mut config = Config::load(path)?;
        self.apply(&mut config).map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })?;
        Ok(config)
    }
}

fn main() -> ExitCode {
    // Help and --version exit 0, bad arguments exit 2 (clap's own codes).
    let cli = Cli::parse();
    let default_log = if matches!(cli.command, Command::Replay { .. }) {
        // The replayed feeds would log again what the live run logged.
        "warn,wsfeed::feed=off"
    } else {
        "info,wsfeed::sim=warn"
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_log))
        // The REST client logs request headers at debug, an account's API key among them:
        // never below info, whatever RUST_LOG says (see wsfeed::account).
        .filter_module("ureq", log::LevelFilter::Info)
        // tungstenite logs the upgrade request (a listen key in its URL) and every frame (a
        // login's key and signature) at debug and trace.
        .filter_module("tungstenite", log::LevelFilter::Info)
        .format_timestamp_millis()
        .init();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("error: cannot install the signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    match cli.command {
        Command::Audit { session_dir } => {
            verdict(wsfeed::audit::audit(&session_dir).map(|r| (r.ok(), r.to_string())))
        }
        Command::Report { session_dir, out } => verdict(
            wsfeed::report::write(&session_dir, out.as_deref()).map(|r| (true, r.to_string())),
        ),
        Command::Run(args) => {
            let config = match args.common.load(&args.config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            let limit = args.seconds.map(Duration::from_secs);
            let hup = Arc::new(AtomicBool::new(false));
            if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone()) {
                eprintln!("error: cannot install the SIGHUP handler: {e}");
                return ExitCode::FAILURE;
            }
            let reloader = Reloader::new(args.config.clone(), args.common.clone(), hup);
            run(config, limit, &stop, Some(reloader), |_| {}).map_or_else(
                |e| {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                },
                |summary| {
                    println!("{summary}");
                    if summary.failed {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                },
            )
        }
        Command::Demo(args) => demo_cmd::run_demo(args, &stop),
        Command::Replay {
            session_dir,
            speed,
            strategy,
        } => replay(&session_dir, speed, &strategy),
        Command::CheckHost { config } => {
            let checked = Config::load(&config)
                .map_err(|e| e.to_string())
                .and_then(|c| {
                    wsfeed::host::check_config(&c, &wsfeed::host::Host::read())
                        .map_err(|e| format!("{}: {e}", config.display()))
                });
            verdict(checked.map(|c| (c.fits(), c.to_string())))
        }
    }
}

/// A check's report printed, exit 0 when it passed and 1 when not; an error that kept it from
/// running exits 2.
fn verdict<E: std::fmt::Display>(result: Result<(bool, String), E>) -> ExitCode {
    match result {
        Ok((passed, report)) => {
            println!("{report}");
            if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// `wsfeed replay`: the strategy's report and the replay's figures.
fn replay(dir: &std::path::Path, speed: wsfeed::replay::Speed, name: &str) -> ExitCode {
    let started = wsfeed::replay::Session::open(dir).and_then(|session| {
        let strategy = wsfeed::replay::by_name(name, &session.config)?;
        Ok((session, strategy))
    });
    let (session, mut strategy) = match started {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    for caveat in &session.caveats {
        eprintln!("note: {caveat}");
    }
    match session.run(strategy.as_mut(), speed) {
        Ok(replayed) => {
            println!("{}", strategy.report());
            println!("{replayed}");
            if replayed.mismatches.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `wsfeed run`'s reload: its config file, watched (modification time and size, checked every
/// second), and SIGHUP. A valid change is applied to the running engine (only what changed);
/// an invalid one is refused with the error a start would give, and nothing changes.
struct Reloader {
    path: PathBuf,
    common: Common,
    hup: Arc<AtomicBool>,
    seen: Option<(std::time::SystemTime, u64)>,
    next_check: Instant,
}

/// How often the config file is looked at.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

impl Reloader {
    fn new(path: PathBuf, common: Common, hup: Arc<AtomicBool>) -> Reloader {
        let seen = Reloader::stamp(&path);
        Reloader {
            path,
            common,
            hup,
            seen,
            next_check: Instant::now() + RELOAD_CHECK,
        }
    }

    /// The file's modification time and size, when it can be read.
    fn stamp(path: &std::path::Path) -> Option<(std::time::SystemTime, u64)> {
        let m = std::fs::metadata(path).ok()?;
        Some((m.modified().ok()?, m.len()))
    }

    /// Reloads when SIGHUP came or the file changed.
    fn poll<S: wsfeed::Strategy>(&mut self, engine: &mut Engine<S>) {
        let hup = self.hup.swap(false, Ordering::Relaxed);
        let now = Instant::now();
        let mut changed = false;
        if now >= self.next_check {
            self.next_check = now + RELOAD_CHECK;
            let stamp = Reloader::stamp(&self.path);
            changed = stamp.is_some() && stamp != self.seen;
            if changed {
                self.seen = stamp;
            }
        }
        if !(hup || changed) {
            return;
        }
        let why = if hup {
            "SIGHUP"
        } else {
            "the config file changed"
        };
        let loaded = self.common.load(&self.path);
        match loaded
            .map_err(|e| e.to_string())
            .and_then(|c| engine.reload(c))
        {
            Ok(lines) => {
                for line in lines {
                    log::info!("{line} ({why})");
                }
            }
            Err(e) => {
                log::error!("reload refused ({why}): {e}; the running feeds go on as they were")
            }
        }
    }
}

/// Runs the engine with the demo strategy, printing a status line each interval; `tick` is
/// called every 50 ms with the elapsed time (the demo injects faults from it).
fn run(
    config: Config,
    limit: Option<Duration>,
    stop: &AtomicBool,
    mut reloader: Option<Reloader>,
    mut tick: impl FnMut(Duration),
) -> Result<Summary, String> {
    // `status_interval_ms = 0`: no status lines.
    let status_every = Duration::from_millis(config.engine.status_interval_ms);
    let status_on = !status_every.is_zero();
    let strategy = ArbMonitor::new(ArbConfig::from_config(&config.arbitrage, &config.venues));
    let mut engine = Engine::start(config, strategy).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut mark = StatusMark::default();
    let mut next_status = started + status_every;
    let mut lines = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let elapsed = started.elapsed();
        if limit.is_some_and(|l| elapsed >= l) {
            break;
        }
        if engine.failed() {
            eprintln!("error: every required feed has stopped for good; stopping");
            break;
        }
        tick(elapsed);
        if let Some(r) = reloader.as_mut() {
            r.poll(&mut engine);
        }
        if status_on && Instant::now() >= next_status {
            println!("{}", engine.status_line(&mut mark));
            next_status += status_every;
            lines += 1;
            if lines % PERCENTILES_EVERY == 0 {
                println!("{}", engine.percentile_line());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (summary, _) = engine.stop();
    Ok(summary)
}

/// `wsfeed demo`, built with the simulator (feature `sim`).
#[cfg(feature = "sim")]
mod demo_cmd {
    use std::collections::BTreeMap;

    use wsfeed::config::StrategyPlace;
    use wsfeed::demo::{self, DemoVenues, FaultLevel};
    use wsfeed::metrics::FeedState;

    use super::*;

    /// Interval of the demo's resident-memory samples.
    const RSS_EVERY: Duration = Duration::from_secs(60);

    pub fn run_demo(args: DemoArgs, stop: &AtomicBool) -> ExitCode {
        let seconds = Duration::from_secs(args.seconds);
        let level = match (args.no_faults, args.faults) {
            (true, _) | (_, Faults::None) => FaultLevel::None,
            (false, Faults::Normal) => FaultLevel::Normal,
            (false, Faults::Heavy) => FaultLevel::Heavy,
        };
        let strategy = if args.inline {
            StrategyPlace::Inline
        } else {
            StrategyPlace::Thread
        };
        let venues = match DemoVenues::start() {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: cannot start the simulated venues: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut config = match venues.config(strategy) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        if let Err(e) = args.common.apply(&mut config) {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
        let schedule = demo::schedule(seconds, level);
        println!(
            "wsfeed demo: {}s against five simulated venues quoting one market, TLS with a generated CA: \
             Binance spot {}, Binance USD-M {}, Bybit linear {}, OKX {}, Hyperliquid (defined in config) {}",
            seconds.as_secs(),
            venues.spot.base_url(),
            venues.usdm.base_url(),
            venues.bybit.base_url(),
            venues.okx.base_url(),
            venues.hyperliquid.base_url()
        );
        if schedule.len() <= 40 {
            println!(
                "fault schedule ({} faults):\n{}",
                schedule.len(),
                demo::describe(&schedule)
            );
        } else {
            println!(
                "fault schedule: {} faults, one every {:.1} s on average, every kind",
                schedule.len(),
                demo::HEAVY_EVERY.as_secs_f64()
            );
        }
        let mut next = 0;
        let mut injected: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut missed_target = 0u64;
        let mut dice = 0x9E37_79B9_7F4A_7C15u64;
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let mut rss_start = None;
        let mut rss_series = Vec::new();
        let mut next_rss_line = RSS_EVERY.min(seconds / 2);
        let mut rss_end = 0u64;
        let mut rss_max = 0u64;
        let result = run(config, Some(seconds), stop, None, |elapsed| {
            while let Some(s) = schedule.get(next).filter(|s| s.at <= elapsed) {
                dice = dice
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                match venues.inject(s, dice >> 33) {
                    demo::Injected::Nothing => missed_target += 1,
                    hit => {
                        log::info!(
                            "demo: injected on {}: {} ({hit:?})",
                            s.target.name(),
                            demo::words(&s.fault)
                        );
                        *injected.entry(demo::kind_name(&s.fault)).or_default() += 1;
                    }
                }
                next += 1;
            }
            let rss = demo::resident_bytes().unwrap_or(0);
            rss_max = rss_max.max(rss);
            rss_end = rss;
            if elapsed >= next_rss_line {
                rss_series.push(format!("{}s {:.1}", elapsed.as_secs(), mib(rss)));
                next_rss_line += RSS_EVERY;
            }
            // Memory after start-up and the first connections, for the flat-memory check.
            if rss_start.is_none() && elapsed >= Duration::from_secs(5).min(seconds / 4) {
                rss_start = Some(rss);
            }
        });
        let summary = match result {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("{summary}");
        let lost: u64 = summary.feeds.iter().map(|f| f.disconnects).sum();
        let recovered: u64 = summary.feeds.iter().map(|f| f.reconnects).sum();
        let streaming = summary
            .feeds
            .iter()
            .filter(|f| f.state != FeedState::Failed)
            .count();
        let sims = [&venues.spot, &venues.usdm, &venues.bybit, &venues.okx].map(|s| s.snapshot());
        let sum = |f: fn(&wsfeed::sim::SimSnapshot) -> u64| sims.iter().map(f).sum::<u64>();
        let kinds: Vec<String> = injected.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "faults injected: {} ({}){}",
            injected.values().sum::<u64>(),
            kinds.join(", "),
            if missed_target > 0 {
                format!(" | {missed_target} found no open connection")
            } else {
                String::new()
            }
        );
        println!(
            "venue side: upgrades rejected {} | server pings answered {}/{} | messages withheld (drop-next) {} | \
             connections lost: {lost}, outages recovered: {recovered} | feeds not failed: {streaming}/{}",
            sum(|s| s.upgrades_rejected),
            sum(|s| s.pongs_received),
            sum(|s| s.pings_sent),
            sum(|s| s.withheld),
            summary.feeds.len()
        );
        println!(
            "books: {} invalidated and resynced | crossed quotes dropped {} | venue pings answered {} | REST snapshots served {} ({} stale on purpose)",
            summary.feeds.iter().map(|f| f.book_resyncs).sum::<u64>(),
            summary.feeds.iter().map(|f| f.crossed_quotes).sum::<u64>(),
            sum(|s| s.venue_pings),
            sum(|s| s.rest_requests),
            sum(|s| s.stale_snapshots_served)
        );
        println!(
            "resident memory: {:.1} MiB after start-up, {:.1} MiB at the end of the run (max {:.1} MiB); MiB over time: {}",
            mib(rss_start.unwrap_or(rss_end)),
            mib(rss_end),
            mib(rss_max),
            rss_series.join(", ")
        );
        if let Some(capture) = &summary.capture {
            match wsfeed::report::write(&capture.dir, None) {
                Ok(r) => println!("report: {}", r.page.display()),
                Err(e) => eprintln!("error: cannot write the session's report: {e}"),
            }
        }
        if summary.failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// `wsfeed demo` without the simulator: a usage error.
#[cfg(not(feature = "sim"))]
mod demo_cmd {
    use super::*;

    pub fn run_demo(_: DemoArgs, _: &AtomicBool) -> ExitCode {
        eprintln!(
            "error: this wsfeed was built without the simulator (cargo feature `sim`), so it has \
             no demo; build it with default features"
        );
        ExitCode::from(EXIT_USAGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Command, String> {
        Cli::try_parse_from(std::iter::once("wsfeed").chain(s.split_whitespace()))
            .map(|c| c.command)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parses_commands_and_rejects_bad_arguments() {
        let Ok(Command::Demo(d)) = parse("demo") else {
            panic!("demo")
        };
        assert_eq!(
            (d.seconds, d.faults, d.inline, d.no_faults),
            (20, Faults::Normal, false, false)
        );
        let Ok(Command::Demo(d)) = parse("demo --seconds=5 --no-faults --inline") else {
            panic!("demo --seconds=5")
        };
        assert_eq!((d.seconds, d.no_faults, d.inline), (5, true, true));
        let Ok(Command::Demo(d)) =
            parse("demo --seconds 600 --faults heavy --capture /tmp/c --metrics 127.0.0.1:9464")
        else {
            panic!("demo heavy")
        };
        assert_eq!((d.seconds, d.faults), (600, Faults::Heavy));
        assert_eq!(d.common.capture, Some(PathBuf::from("/tmp/c")));
        assert_eq!(d.common.metrics, Some("127.0.0.1:9464".parse().unwrap()));
        let Ok(Command::Run(r)) = parse("run --config=x.toml --seconds 3 --metrics 127.0.0.1:0")
        else {
            panic!("run")
        };
        assert_eq!((r.config, r.seconds), (PathBuf::from("x.toml"), Some(3)));
        assert!(matches!(parse("audit some/dir"), Ok(Command::Audit { .. })));
        let Ok(Command::Report { session_dir, out }) = parse("report s/d --out o") else {
            panic!("report")
        };
        assert_eq!(
            (session_dir, out),
            (PathBuf::from("s/d"), Some(PathBuf::from("o")))
        );
        assert!(matches!(
            parse("report s/d"),
            Ok(Command::Report { out: None, .. })
        ));
        assert!(matches!(
            parse("check-host --config x.toml"),
            Ok(Command::CheckHost { .. })
        ));
        for (bad, needle) in [
            ("", "Usage"),
            ("demo --seconds", "a value is required"),
            ("demo --seconds ten", "'ten'"),
            ("demo --seconds 0", "0 is not in 1..=604800"),
            ("run", "--config <FILE>"),
            ("run --config", "a value is required"),
            ("demo --config x", "unexpected argument '--config'"),
            ("demo --faults", "a value is required"),
            ("audit", "<SESSION_DIR>"),
            ("audit a b", "unexpected argument 'b'"),
            ("report", "<SESSION_DIR>"),
            ("report a --out", "a value is required"),
            ("demo --faults wild", "invalid value 'wild'"),
            ("demo --faults heavy --no-faults", "cannot be used with"),
            ("run --config x --capture", "a value is required"),
            ("run --config x --capture=", "a value is required"),
            (
                "run --config x --metrics localhost",
                "invalid value 'localhost'",
            ),
            ("fly", "unrecognized subcommand 'fly'"),
        ] {
            let e = parse(bad).err().unwrap_or_default();
            assert!(e.contains(needle), "{bad:?} → {e:?}");
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
