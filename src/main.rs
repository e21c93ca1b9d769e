//! The `wsfeed` command line: `demo` (the main job) and `run --config FILE`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsfeed::arb::{ArbConfig, ArbMonitor};
use wsfeed::config::Config;
use wsfeed::config::{CaptureConfig, StrategyPlace};
use wsfeed::demo::{self, DemoVenues, FaultLevel};
use wsfeed::engine::{Engine, StatusMark};
use wsfeed::metrics::FeedState;
use wsfeed::summary::Summary;

const USAGE: &str = "\
wsfeed — low-latency, self-healing crypto market-data feeds

usage:
  wsfeed demo [--seconds N] [--faults normal|heavy|none] [--capture DIR] [--inline]
        simulated venues + fault schedule + demo strategy (default 20 s, normal faults);
        heavy injects a fault every 1.5 s on average (a 600 s soak: about 400);
        --inline runs the strategy on the one thread that reads every feed
  wsfeed run --config FILE [--seconds N] [--capture DIR]
        run the feeds of a config file until Ctrl-C or N s
  wsfeed audit SESSION_DIR
        check a capture session: every update missing from the capture is reported missed
        in its manifest, nothing is reported that was captured, no update is captured twice
  wsfeed help

--capture DIR writes every message as JSONL and a session manifest under DIR (overrides the
config's [capture] dir).

Logging: RUST_LOG (default: info for the engine, warn for the simulator).";

/// Interval of the demo's resident-memory samples.
const RSS_EVERY: Duration = Duration::from_secs(60);

/// Status lines between two percentile lines.
const PERCENTILES_EVERY: u32 = 5;

/// Exit code for bad arguments or a bad config: nothing was started.
const EXIT_USAGE: u8 = 2;

enum Command {
    Demo {
        seconds: u64,
        faults: FaultLevel,
        capture: Option<PathBuf>,
        strategy: StrategyPlace,
    },
    Run {
        config: PathBuf,
        seconds: Option<u64>,
        capture: Option<PathBuf>,
    },
    Audit {
        dir: PathBuf,
    },
    Help,
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err("no command given".into());
    };
    if cmd == "audit" {
        return match rest {
            [dir] if !dir.starts_with('-') => Ok(Command::Audit {
                dir: PathBuf::from(dir),
            }),
            _ => Err("audit needs exactly one session directory".into()),
        };
    }
    let mut seconds = None;
    let mut config = None;
    let mut faults = FaultLevel::Normal;
    let mut capture = None;
    let mut strategy = StrategyPlace::Thread;
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a value")?;
                let n: u64 = v
                    .parse()
                    .map_err(|_| format!("--seconds '{v}' is not a whole number of seconds"))?;
                if n == 0 || n > 7 * 24 * 3600 {
                    return Err(format!("--seconds {n} is out of range (1 to 604800)"));
                }
                seconds = Some(n);
            }
            "--config" if cmd == "run" => {
                config = Some(PathBuf::from(it.next().ok_or("--config needs a file")?));
            }
            "--no-faults" if cmd == "demo" => faults = FaultLevel::None,
            "--inline" if cmd == "demo" => strategy = StrategyPlace::Inline,
            "--faults" if cmd == "demo" => {
                let v = it
                    .next()
                    .ok_or("--faults needs a level: normal, heavy or none")?;
                faults = match v.as_str() {
                    "normal" => FaultLevel::Normal,
                    "heavy" => FaultLevel::Heavy,
                    "none" => FaultLevel::None,
                    other => {
                        return Err(format!(
                            "--faults '{other}' is not a level (normal, heavy or none)"
                        ))
                    }
                };
            }
            "--capture" if cmd == "demo" || cmd == "run" => {
                let dir = it.next().ok_or("--capture needs a directory")?;
                if dir.is_empty() {
                    return Err("--capture needs a directory".into());
                }
                capture = Some(PathBuf::from(dir));
            }
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown argument '{other}' for '{cmd}'")),
        }
    }
    match cmd.as_str() {
        "demo" => Ok(Command::Demo {
            seconds: seconds.unwrap_or(20),
            faults,
            capture,
            strategy,
        }),
        "run" => Ok(Command::Run {
            config: config.ok_or("run needs --config FILE")?,
            seconds,
            capture,
        }),
        "help" | "-h" | "--help" => Ok(Command::Help),
        other => Err(format!("unknown command '{other}'")),
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,wsfeed::sim=warn"),
    )
    .format_timestamp_millis()
    .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("error: cannot install the signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    match command {
        Command::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Audit { dir } => match wsfeed::audit::audit(&dir) {
            Ok(report) => {
                println!("{report}");
                if report.ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Run {
            config,
            seconds,
            capture,
        } => {
            let mut config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            if let Some(dir) = capture {
                config.capture = Some(CaptureConfig { dir });
            }
            run(config, seconds.map(Duration::from_secs), &stop, |_| {}).map_or_else(
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
        Command::Demo {
            seconds,
            faults,
            capture,
            strategy,
        } => run_demo(
            Duration::from_secs(seconds),
            faults,
            capture,
            strategy,
            &stop,
        ),
    }
}

/// Runs the engine with the demo strategy, printing a status line each interval; `tick` is
/// called every 50 ms with the elapsed time (the demo injects faults from it).
fn run(
    config: Config,
    limit: Option<Duration>,
    stop: &AtomicBool,
    mut tick: impl FnMut(Duration),
) -> Result<Summary, String> {
    let status_every = Duration::from_millis(config.engine.status_interval_ms);
    let strategy = ArbMonitor::new(ArbConfig::from_config(&config.arbitrage));
    let engine = Engine::start(config, strategy).map_err(|e| e.to_string())?;
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
        if Instant::now() >= next_status {
            println!("{}", engine.status_line(&mut mark));
            next_status += status_every;
            lines += 1;
            if lines % PERCENTILES_EVERY == 0 {
                println!("         {}", engine.percentile_line());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (summary, _) = engine.stop();
    Ok(summary)
}

fn run_demo(
    seconds: Duration,
    level: FaultLevel,
    capture: Option<PathBuf>,
    strategy: StrategyPlace,
    stop: &AtomicBool,
) -> ExitCode {
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
    if let Some(dir) = capture {
        config.capture = Some(CaptureConfig { dir });
    }
    let schedule = demo::schedule(seconds, level);
    println!(
        "wsfeed demo: {}s against four simulated venues quoting one market, TLS with a generated CA: \
         Binance spot {}, Binance USD-M {}, Bybit linear {}, OKX {}",
        seconds.as_secs(),
        venues.spot.base_url(),
        venues.usdm.base_url(),
        venues.bybit.base_url(),
        venues.okx.base_url()
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
    let result = run(config, Some(seconds), stop, |elapsed| {
        while let Some(s) = schedule.get(next).filter(|s| s.at <= elapsed) {
            dice = dice
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            match venues.inject(s, dice >> 33) {
                demo::Injected::Nothing => missed_target += 1,
                hit => {
                    log::info!("demo: injected {:?} on {:?} {hit:?}", s.fault, s.target);
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
    if summary.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_commands_and_rejects_bad_arguments() {
        assert!(matches!(
            parse_args(&args("demo")),
            Ok(Command::Demo {
                seconds: 20,
                faults: FaultLevel::Normal,
                capture: None,
                strategy: StrategyPlace::Thread,
            })
        ));
        assert!(matches!(
            parse_args(&args("demo --seconds 5 --no-faults")),
            Ok(Command::Demo {
                seconds: 5,
                faults: FaultLevel::None,
                capture: None,
                ..
            })
        ));
        assert!(matches!(
            parse_args(&args("demo --seconds 600 --faults heavy --capture /tmp/c")),
            Ok(Command::Demo {
                seconds: 600,
                faults: FaultLevel::Heavy,
                capture: Some(_),
                ..
            })
        ));
        assert!(matches!(
            parse_args(&args("demo --inline")),
            Ok(Command::Demo {
                strategy: StrategyPlace::Inline,
                ..
            })
        ));
        assert!(matches!(
            parse_args(&args("run --config x.toml")),
            Ok(Command::Run { .. })
        ));
        for (bad, needle) in [
            ("", "no command"),
            ("demo --seconds", "needs a value"),
            ("demo --seconds ten", "'ten'"),
            ("demo --seconds 0", "out of range"),
            ("run", "--config"),
            ("run --config", "needs a file"),
            ("demo --config x", "unknown argument '--config'"),
            ("demo --faults", "needs a level"),
            ("audit", "exactly one session directory"),
            ("audit a b", "exactly one session directory"),
            ("demo --faults wild", "'wild' is not a level"),
            ("run --config x --capture", "needs a directory"),
            ("fly", "unknown command 'fly'"),
        ] {
            let e = parse_args(&args(bad)).err().unwrap_or_default();
            assert!(e.contains(needle), "{bad:?} → {e:?}");
        }
    }
}
