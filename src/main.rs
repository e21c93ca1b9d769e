//! The `wsfeed` command line: `demo` (the main job) and `run --config FILE`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsfeed::config::Config;
use wsfeed::demo::{self, DemoVenues};
use wsfeed::engine::{Engine, StatusMark};
use wsfeed::metrics::{FeedState, Summary};
use wsfeed::strategy::SpreadMonitor;

const USAGE: &str = "\
wsfeed — low-latency, self-healing crypto market-data feeds

usage:
  wsfeed demo [--seconds N] [--no-faults]   simulated venues + fault schedule + demo strategy
  wsfeed run --config FILE [--seconds N]    run the feeds of a config file until Ctrl-C or N s
  wsfeed help

Logging: RUST_LOG (default: info for the engine, warn for the simulator).";

/// Status lines between two percentile lines.
const PERCENTILES_EVERY: u32 = 5;

/// Exit code for bad arguments or a bad config: nothing was started.
const EXIT_USAGE: u8 = 2;

enum Command {
    Demo {
        seconds: u64,
        faults: bool,
    },
    Run {
        config: PathBuf,
        seconds: Option<u64>,
    },
    Help,
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err("no command given".into());
    };
    let mut seconds = None;
    let mut config = None;
    let mut faults = true;
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
            "--no-faults" if cmd == "demo" => faults = false,
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown argument '{other}' for '{cmd}'")),
        }
    }
    match cmd.as_str() {
        "demo" => Ok(Command::Demo {
            seconds: seconds.unwrap_or(20),
            faults,
        }),
        "run" => Ok(Command::Run {
            config: config.ok_or("run needs --config FILE")?,
            seconds,
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
        Command::Run { config, seconds } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            run(config, seconds.map(Duration::from_secs), &stop, |_| {}).map_or_else(
                |e| {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                },
                |summary| {
                    println!("{summary}");
                    ExitCode::SUCCESS
                },
            )
        }
        Command::Demo { seconds, faults } => run_demo(Duration::from_secs(seconds), faults, &stop),
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
    let engine = Engine::start(config, SpreadMonitor::new()).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut mark = StatusMark::default();
    let mut next_status = started + status_every;
    let mut lines = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let elapsed = started.elapsed();
        if limit.is_some_and(|l| elapsed >= l) {
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

fn run_demo(seconds: Duration, faults: bool, stop: &AtomicBool) -> ExitCode {
    let venues = match DemoVenues::start() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: cannot start the simulated venues: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match venues.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let schedule = if faults {
        demo::schedule(seconds)
    } else {
        Vec::new()
    };
    println!(
        "wsfeed demo: {}s against simulated Binance spot ({}) and USD-M ({}), TLS with a generated CA",
        seconds.as_secs(),
        venues.spot.base_url(),
        venues.usdm.base_url()
    );
    println!(
        "fault schedule ({} faults):\n{}",
        schedule.len(),
        demo::describe(&schedule)
    );
    let mut next = 0;
    let result = run(config, Some(seconds), stop, |elapsed| {
        while let Some(s) = schedule.get(next).filter(|s| s.at <= elapsed) {
            log::warn!("demo: injecting {:?} on {:?}", s.fault, s.target);
            venues.get(s.target).inject(s.fault.clone());
            next += 1;
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
    let (spot, usdm) = (venues.spot.snapshot(), venues.usdm.snapshot());
    println!(
        "faults injected: {} | upgrades rejected (429/503): {} | server pings answered: {}/{} | \
         connections lost: {lost}, recovered: {recovered} | feeds not failed: {streaming}/{}",
        next,
        spot.upgrades_rejected + usdm.upgrades_rejected,
        spot.pongs_received + usdm.pongs_received,
        spot.pings_sent + usdm.pings_sent,
        summary.feeds.len()
    );
    ExitCode::SUCCESS
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
                faults: true
            })
        ));
        assert!(matches!(
            parse_args(&args("demo --seconds 5 --no-faults")),
            Ok(Command::Demo {
                seconds: 5,
                faults: false
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
            ("fly", "unknown command 'fly'"),
        ] {
            let e = parse_args(&args(bad)).err().unwrap_or_default();
            assert!(e.contains(needle), "{bad:?} → {e:?}");
        }
    }
}
