//! The `wsfeed` binary as a person runs it: `--version`, help per subcommand, `--seconds=N`
//! forms, exit code 2 for bad arguments and configs (a capture folder that cannot be made
//! included), the demo's fault schedule in words and its report's path, status lines within
//! 120 columns, and `status_interval_ms = 0` turning them off. Every run has a deadline and is killed past it.

mod util;

use std::path::PathBuf;
use std::time::Duration;

/// Longest any one run may take (the demo starts four TLS venues first).
const DEADLINE: Duration = Duration::from_secs(60);

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary to its end, or kills it at the deadline and fails.
fn wsfeed(args: &[&str]) -> Out {
    let (code, stdout, stderr) = util::background(args, &[("RUST_LOG", "warn")]).finish(DEADLINE);
    Out {
        code,
        stdout,
        stderr,
    }
}

/// A config file that removes itself.
struct TempConfig(PathBuf);

impl TempConfig {
    fn new(tag: &str, text: &str) -> TempConfig {
        let path =
            std::env::temp_dir().join(format!("wsfeed-cli-{}-{tag}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempConfig(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A feed on a port where nothing listens: the run goes on, reconnecting, until --seconds.
fn config(engine: &str) -> String {
    format!(
        "[engine]\n{engine}\n[[feeds]]\nname = \"spot\"\nvenue = \"binance-spot\"\n\
         url = \"ws://127.0.0.1:1\"\nstreams = [\"btcusdt@bookTicker\"]\n"
    )
}

#[test]
fn version_and_help_per_subcommand() {
    let out = wsfeed(&["--version"]);
    assert_eq!(out.code, Some(0));
    assert_eq!(
        out.stdout.trim(),
        format!("wsfeed {}", env!("CARGO_PKG_VERSION"))
    );
    for args in [&["help", "run"][..], &["run", "--help"]] {
        let out = wsfeed(args);
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
        assert!(
            out.stdout
                .contains("Usage: wsfeed run [OPTIONS] --config <FILE>"),
            "{args:?}: {}",
            out.stdout
        );
        assert!(out.stdout.contains("--metrics <ADDR>"), "{}", out.stdout);
        assert!(!out.stdout.contains("--faults"), "run's help only");
    }
    let out = wsfeed(&["help", "report"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("Usage: wsfeed report [OPTIONS] <SESSION_DIR>"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("--out <DIR>"), "{}", out.stdout);
    let out = wsfeed(&["help", "demo"]);
    for flag in [
        "--seconds",
        "--faults",
        "--no-faults",
        "--inline",
        "--capture",
        "--metrics",
    ] {
        assert!(out.stdout.contains(flag), "{flag}: {}", out.stdout);
    }
    // No command: the overview, and the exit code of a usage error.
    let out = wsfeed(&[]);
    assert_eq!(out.code, Some(2));
    for cmd in ["demo", "run", "audit", "report", "help"] {
        assert!(out.stderr.contains(cmd), "{cmd}: {}", out.stderr);
    }
}

#[test]
fn bad_arguments_and_configs_exit_2_naming_the_problem() {
    let dir = std::env::temp_dir().join(format!("wsfeed-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a_file = dir.join("a-file");
    std::fs::write(&a_file, "").unwrap();
    let good = TempConfig::new("good", &config(""));
    let capture = a_file.join("captures");
    let capture = capture.to_str().unwrap();
    for (args, needle) in [
        (vec!["demo", "--seconds=0"], "0 is not in 1..=604800"),
        (vec!["demo", "--faults", "wild"], "'wild'"),
        (vec!["run"], "--config <FILE>"),
        (
            vec!["run", "--config", "/nonexistent/x.toml"],
            "cannot read the file",
        ),
        (
            vec!["run", "--config", good.path(), "--metrics", "nowhere"],
            "'nowhere'",
        ),
        (
            vec!["run", "--config", good.path(), "--capture", capture],
            "capture.dir",
        ),
        (vec!["audit"], "<SESSION_DIR>"),
    ] {
        let out = wsfeed(&args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
    let in_file = TempConfig::new(
        "capture",
        &format!("[capture]\ndir = \"{capture}\"\n{}", config("")),
    );
    let out = wsfeed(&["run", "--config", in_file.path(), "--seconds=1"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("cannot be created"), "{}", out.stderr);
    assert!(
        out.stderr.contains(in_file.path()),
        "the file is named: {}",
        out.stderr
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn status_lines_fit_120_columns_and_interval_zero_turns_them_off() {
    let every = TempConfig::new("status", &config("status_interval_ms = 100"));
    let out = wsfeed(&["run", "--config", every.path(), "--seconds=2"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains(" msg/s |"))
        .collect();
    assert!(status.len() >= 5, "{}", out.stdout);
    // The feed never connects: each status line has its details line.
    let details = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("  not streaming: spot "))
        .count();
    assert_eq!(details, status.len(), "{}", out.stdout);
    for l in out
        .stdout
        .lines()
        .filter(|l| l.contains(" msg/s |") || l.contains("not streaming"))
    {
        assert!(
            l.chars().count() <= 120,
            "{} columns: {l}",
            l.chars().count()
        );
    }
    let off = TempConfig::new("off", &config("status_interval_ms = 0"));
    let out = wsfeed(&["run", "--config", off.path(), "--seconds", "1"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stdout.contains(" msg/s |"), "{}", out.stdout);
    assert!(!out.stdout.contains("not streaming"), "{}", out.stdout);
}

#[test]
fn the_demo_prints_its_fault_schedule_in_words_and_its_reports_path() {
    let capture = std::env::temp_dir().join(format!("wsfeed-cli-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&capture);
    let out = wsfeed(&[
        "demo",
        "--seconds=3",
        "--capture",
        capture.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // With capture on, the last line names the session's report, which exists.
    let last = out.stdout.lines().last().unwrap_or_default();
    let page = PathBuf::from(
        last.strip_prefix("report: ")
            .unwrap_or_else(|| panic!("{last}")),
    );
    assert!(
        page.starts_with(&capture) && page.ends_with("report.html"),
        "{last}"
    );
    assert!(std::fs::read_to_string(&page).unwrap().contains("<svg"));
    let _ = std::fs::remove_dir_all(&capture);
    let schedule: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("  at "))
        .collect();
    assert!(!schedule.is_empty(), "{}", out.stdout);
    for l in &schedule {
        assert!(l.contains(" s  "), "{l}");
        for debug in ["{", "Std(", "Book(", "Usdm", "Duration"] {
            assert!(!l.contains(debug), "{debug:?} in {l}");
        }
    }
    let status = out
        .stdout
        .lines()
        .filter(|l| l.contains(" msg/s |"))
        .count();
    assert!(status >= 1, "{}", out.stdout);
    for l in out.stdout.lines().filter(|l| l.contains(" msg/s |")) {
        assert!(l.chars().count() <= 120, "{l}");
    }
}

#[test]
fn check_host_exits_1_when_the_config_does_not_fit() {
    let feed = |name: &str, extra: &str| {
        format!(
            "[[feeds]]\nname = \"{name}\"\nvenue = \"binance-spot\"\nurl = \"ws://127.0.0.1:1\"\n\
             streams = [\"btcusdt@bookTicker\"]\n{extra}\n"
        )
    };
    let fits = TempConfig::new("fits", &feed("a", "core = 0"));
    let out = wsfeed(&["check-host", "--config", fits.path()]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    for want in [
        "cores online: ",
        "clock source: ",
        "feed-a",
        "core 0",
        "fits: yes",
    ] {
        assert!(out.stdout.contains(want), "no {want:?} in {}", out.stdout);
    }
    let both = format!(
        "{}{}",
        feed("a", "core = 0\nwait = \"spin\""),
        feed("b", "core = 0\nwait = \"spin\"")
    );
    let clash = TempConfig::new("clash", &both);
    let out = wsfeed(&["check-host", "--config", clash.path()]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("both spin pinned to core 0"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with("fits: no\n"), "{}", out.stdout);
    let out = wsfeed(&["check-host", "--config", "/nonexistent/x.toml"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
}
