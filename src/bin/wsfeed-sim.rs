//! `wsfeed-sim`: the embedded exchange simulator as a standalone process, for tests and tools
//! that need it on another address or in another network namespace.
//!
//! Prints `listening <url>` on stdout once it accepts connections, then runs until SIGTERM or
//! SIGINT, or until its stdin reaches end of file (when stdin is not a terminal), so a parent
//! that holds the write end of a pipe cannot leave it behind.

use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wsfeed::sim::{Sim, SimAccount, SimConfig, SimVenue};

const USAGE: &str = "\
wsfeed-sim — the exchange simulator (Binance, Bybit v5, OKX v5, venues defined in config),
standalone

usage:
  wsfeed-sim --listen IP:PORT [--tls] [--ca-out FILE] [--symbols BTCUSDT,ETHUSDT] [--usdm-routing]
             [--venue binance|bybit-spot|bybit-linear|okx] [--okx-checksum]
             [--venue-file FILE [--venue-symbols LIST]]
             [--account NAME:KEY:SECRET[:PASSPHRASE]]... [--account-ms N]

  --listen IP:PORT    address to listen on (PORT 0 picks a free port)
  --tls               serve wss:// with a CA generated at start (certificate valid for
                      localhost, 127.0.0.1 and IP)
  --ca-out FILE       write the CA certificate (PEM) to FILE before listening (needs --tls)
  --symbols LIST      comma-separated symbols (default BTCUSDT,ETHUSDT,SOLUSDT)
  --usdm-routing      emulate the USD-M /public and /market route split (binance)
  --venue NAME        protocol to speak: binance (default; WebSockets plus the REST depth
                      snapshot), bybit-spot (/v5/public/spot), bybit-linear
                      (/v5/public/linear), okx (/ws/v5/public; symbols map to BTC-USDT-SWAP
                      and BTC-USDT)
  --okx-checksum      okx: compute the books checksum (default 0, as OKX production)
  --venue-file FILE   speak the venue defined in FILE (a [[venues]] table's fields, e.g.
                      configs/venues/paradex.toml) instead of --venue, on its URL's path and /
  --venue-symbols L   the symbols' names on the defined venue, one per --symbols entry
                      (e.g. BTC-USD-PERP,ETH-USD-PERP; default the symbols themselves)
  --book-ms N         a book change per symbol every N ms (default 5)
  --trade-ms N        a trade per symbol every N ms (default 20)
  --account SPEC      a simulated account on the venue's private endpoints (repeatable):
                      NAME:KEY:SECRET, plus :PASSPHRASE for okx
  --account-ms N      each account's order flow takes a step every N ms (default 1000)

Prints `listening <url>` on stdout when ready. Stops on SIGTERM/SIGINT, or when stdin reaches
end of file (only when stdin is not a terminal: give it a pipe, not /dev/null).
Bad arguments exit with code 2. Logging: RUST_LOG (default warn).";

/// Exit code for bad arguments: nothing was started.
const EXIT_USAGE: u8 = 2;

#[derive(Debug, PartialEq)]
struct Args {
    listen: SocketAddr,
    tls: bool,
    ca_out: Option<PathBuf>,
    symbols: Option<Vec<String>>,
    usdm_routing: bool,
    venue: SimVenue,
    okx_checksum: bool,
    /// Book change and trade cadence per symbol, when given.
    book_ms: Option<u64>,
    trade_ms: Option<u64>,
    /// Simulated accounts and their step interval (ms), when given.
    accounts: Vec<SimAccount>,
    account_ms: Option<u64>,
    /// A defined venue's symbol names, when given.
    venue_symbols: Option<Vec<String>>,
}

enum Parsed {
    Run(Box<Args>),
    Help,
}

fn parse_args(args: &[String]) -> Result<Parsed, String> {
    let mut listen = None;
    let mut tls = false;
    let mut ca_out = None;
    let mut symbols = None;
    let mut usdm_routing = false;
    let mut venue = SimVenue::Binance;
    let mut okx_checksum = false;
    let (mut book_ms, mut trade_ms, mut account_ms) = (None, None, None);
    let mut accounts: Vec<SimAccount> = Vec::new();
    let mut venue_symbols: Option<Vec<String>> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => {
                let v = it.next().ok_or("--listen needs a value IP:PORT")?;
                let addr: SocketAddr = v
                    .parse()
                    .map_err(|_| format!("--listen '{v}' is not IP:PORT (e.g. 10.0.0.2:9443)"))?;
                listen = Some(addr);
            }
            "--tls" => tls = true,
            "--ca-out" => {
                let v = it.next().ok_or("--ca-out needs a file")?;
                if v.is_empty() {
                    return Err("--ca-out needs a file".into());
                }
                ca_out = Some(PathBuf::from(v));
            }
            "--symbols" => {
                let v = it
                    .next()
                    .ok_or("--symbols needs a value like BTCUSDT,ETHUSDT")?;
                let list: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = list
                    .iter()
                    .find(|s| s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric()))
                {
                    return Err(format!(
                        "--symbols '{v}': '{bad}' is not a symbol (letters and digits, e.g. BTCUSDT)"
                    ));
                }
                symbols = Some(list);
            }
            "--usdm-routing" => usdm_routing = true,
            "--venue" => {
                let v = it
                    .next()
                    .ok_or("--venue needs binance, bybit-spot, bybit-linear or okx")?;
                venue = SimVenue::from_name(v).ok_or_else(|| {
                    format!("--venue '{v}': not binance, bybit-spot, bybit-linear or okx")
                })?;
            }
            "--okx-checksum" => okx_checksum = true,
            "--venue-file" => {
                let v = it.next().ok_or("--venue-file needs a file")?;
                venue = SimVenue::Defined(load_venue(v)?);
            }
            "--venue-symbols" => {
                let v = it
                    .next()
                    .ok_or("--venue-symbols needs a value like BTC-USD-PERP,ETH-USD-PERP")?;
                let list: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = list.iter().find(|s| {
                    s.is_empty()
                        || !s
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                }) {
                    return Err(format!(
                        "--venue-symbols '{v}': '{bad}' is not a symbol (letters, digits, - _ .)"
                    ));
                }
                venue_symbols = Some(list);
            }
            "--account" => {
                let v = it
                    .next()
                    .ok_or("--account needs NAME:KEY:SECRET[:PASSPHRASE]")?;
                let parts: Vec<&str> = v.split(':').collect();
                let (name, key, secret, pass) = match parts[..] {
                    [n, k, s] => (n, k, s, None),
                    [n, k, s, p] => (n, k, s, Some(p.to_string())),
                    _ => return Err(format!("--account '{v}': not NAME:KEY:SECRET[:PASSPHRASE]")),
                };
                if [name, key, secret].iter().any(|p| p.is_empty()) {
                    return Err(format!(
                        "--account '{v}': NAME, KEY and SECRET must not be empty"
                    ));
                }
                if accounts.iter().any(|a| a.name == name || a.api_key == key) {
                    return Err(format!("--account '{v}': name or key given twice"));
                }
                accounts.push(SimAccount {
                    name: name.into(),
                    api_key: key.into(),
                    secret: secret.into(),
                    passphrase: pass,
                });
            }
            "--book-ms" | "--trade-ms" | "--account-ms" => {
                let v = it
                    .next()
                    .ok_or(format!("{arg} needs a number of milliseconds"))?;
                let ms = v
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| (1..=3_600_000).contains(ms))
                    .ok_or(format!(
                        "{arg} '{v}': not a number of milliseconds in 1..3600000"
                    ))?;
                match arg.as_str() {
                    "--book-ms" => book_ms = Some(ms),
                    "--trade-ms" => trade_ms = Some(ms),
                    _ => account_ms = Some(ms),
                }
            }
            "-h" | "--help" => return Ok(Parsed::Help),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    let listen = listen.ok_or("--listen IP:PORT is required")?;
    if ca_out.is_some() && !tls {
        return Err("--ca-out needs --tls (without TLS there is no CA)".into());
    }
    if okx_checksum && venue != SimVenue::Okx {
        return Err("--okx-checksum needs --venue okx".into());
    }
    if venue_symbols.is_some() && !matches!(venue, SimVenue::Defined(_)) {
        return Err("--venue-symbols needs --venue-file".into());
    }
    Ok(Parsed::Run(Box::new(Args {
        listen,
        tls,
        ca_out,
        symbols,
        usdm_routing,
        venue,
        okx_checksum,
        book_ms,
        trade_ms,
        accounts,
        account_ms,
        venue_symbols,
    })))
}

/// The venue defined in the file at `path`.
fn load_venue(path: &str) -> Result<wsfeed::venue::Venue, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--venue-file '{path}': {e}"))?;
    let spec = toml::from_str(&text)
        .map_err(|e| format!("--venue-file '{path}': {}", e.to_string().trim_end()))?;
    wsfeed::venue::defined::Defined::load(&spec).map_err(|e| format!("--venue-file '{path}': {e}"))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("wsfeed-sim: error: {e}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("wsfeed-sim: error: cannot install the signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }

    let mut cfg = SimConfig {
        tls: args.tls,
        usdm_routing: args.usdm_routing,
        venue: args.venue,
        okx_checksum: args.okx_checksum,
        bind: args.listen.ip(),
        port: args.listen.port(),
        // A long-running process must not keep every message it ever sent.
        record: false,
        ..SimConfig::default()
    };
    if let Some(symbols) = args.symbols {
        cfg.symbols = symbols;
    }
    cfg.accounts = args.accounts.clone();
    if let Some(names) = args.venue_symbols.clone() {
        cfg.venue_symbols = names;
    }
    if let Some(ms) = args.account_ms {
        cfg.account_event_interval = Duration::from_millis(ms);
    }
    if let Some(ms) = args.book_ms {
        cfg.book_interval = Duration::from_millis(ms);
    }
    if let Some(ms) = args.trade_ms {
        cfg.trade_interval = Duration::from_millis(ms);
    }
    let sim = match Sim::start(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wsfeed-sim: error: cannot start on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.ca_out {
        if let Err(e) = sim.write_ca_file(path) {
            eprintln!(
                "wsfeed-sim: error: --ca-out '{}': cannot write the CA: {e}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    }

    // A parent holding our stdin pipe stops us by closing it (or by dying). A terminal is not
    // watched: reading it from a background job would stop the process (SIGTTIN).
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let stop = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("stdin-watch".into())
            .spawn(move || {
                let mut buf = [0u8; 256];
                let mut lock = stdin.lock();
                loop {
                    match lock.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                stop.store(true, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            eprintln!("wsfeed-sim: error: cannot start the stdin watcher: {e}");
            return ExitCode::FAILURE;
        }
    }

    let mut out = std::io::stdout().lock();
    if writeln!(out, "listening {}", sim.base_url())
        .and_then(|()| out.flush())
        .is_err()
    {
        // Nobody reads our stdout: nobody can use us either.
        return ExitCode::FAILURE;
    }
    drop(out);

    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    sim.shutdown();
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_and_rejects_arguments() {
        let Ok(Parsed::Run(a)) = parse_args(&args(
            "--listen 10.1.2.2:9443 --tls --ca-out /tmp/ca.pem --symbols btcusdt,ETHUSDT --usdm-routing",
        )) else {
            panic!("valid arguments rejected");
        };
        assert_eq!(a.listen, "10.1.2.2:9443".parse().unwrap());
        assert!(a.tls && a.usdm_routing);
        assert_eq!((a.venue, a.okx_checksum), (SimVenue::Binance, false));
        let Ok(Parsed::Run(o)) =
            parse_args(&args("--listen 127.0.0.1:0 --venue okx --okx-checksum"))
        else {
            panic!("okx arguments rejected");
        };
        assert_eq!((o.venue, o.okx_checksum), (SimVenue::Okx, true));
        let Ok(Parsed::Run(c)) =
            parse_args(&args("--listen 127.0.0.1:0 --book-ms 30000 --trade-ms 250"))
        else {
            panic!("cadences rejected");
        };
        assert_eq!((c.book_ms, c.trade_ms), (Some(30_000), Some(250)));
        let Ok(Parsed::Run(d)) = parse_args(&args(
            "--listen 127.0.0.1:0 --venue-file configs/venues/paradex.toml --venue-symbols BTC-USD-PERP",
        )) else {
            panic!("a defined venue rejected");
        };
        assert_eq!(d.venue.name(), "paradex");
        assert_eq!(d.venue_symbols, Some(vec!["BTC-USD-PERP".into()]));
        let Ok(Parsed::Run(p)) = parse_args(&args(
            "--listen 127.0.0.1:0 --venue okx --account al:k1:s1:pp --account bo:k2:s2 --account-ms 20",
        )) else {
            panic!("accounts rejected");
        };
        assert_eq!(p.account_ms, Some(20));
        assert_eq!(
            p.accounts,
            [
                SimAccount {
                    name: "al".into(),
                    api_key: "k1".into(),
                    secret: "s1".into(),
                    passphrase: Some("pp".into()),
                },
                SimAccount {
                    name: "bo".into(),
                    api_key: "k2".into(),
                    secret: "s2".into(),
                    passphrase: None,
                },
            ]
        );
        assert_eq!((a.book_ms, a.trade_ms), (None, None));
        assert_eq!(a.ca_out, Some(PathBuf::from("/tmp/ca.pem")));
        assert_eq!(a.symbols, Some(vec!["btcusdt".into(), "ETHUSDT".into()]));
        assert!(matches!(
            parse_args(&args("--listen [::1]:0")),
            Ok(Parsed::Run(a)) if !a.tls
        ));
        assert!(matches!(parse_args(&args("--help")), Ok(Parsed::Help)));
        for (bad, needle) in [
            ("", "--listen"),
            ("--listen", "--listen needs"),
            ("--listen 10.1.2.2", "--listen '10.1.2.2'"),
            ("--listen localhost:9443", "--listen 'localhost:9443'"),
            ("--listen 127.0.0.1:0 --ca-out", "--ca-out needs a file"),
            (
                "--listen 127.0.0.1:0 --ca-out x.pem",
                "--ca-out needs --tls",
            ),
            ("--listen 127.0.0.1:0 --symbols", "--symbols needs"),
            ("--listen 127.0.0.1:0 --symbols BTC,,ETH", "--symbols"),
            ("--listen 127.0.0.1:0 --symbols BTC-USDT", "'BTC-USDT'"),
            ("--listen 127.0.0.1:0 --fast", "unknown argument '--fast'"),
            ("--listen 127.0.0.1:0 --venue", "--venue needs"),
            ("--listen 127.0.0.1:0 --book-ms", "--book-ms needs"),
            ("--listen 127.0.0.1:0 --trade-ms 0", "--trade-ms '0'"),
            ("--listen 127.0.0.1:0 --venue kraken", "--venue 'kraken'"),
            ("--listen 127.0.0.1:0 --account a:b", "--account 'a:b'"),
            ("--listen 127.0.0.1:0 --account a::s", "must not be empty"),
            (
                "--listen 127.0.0.1:0 --account a:k:s --account a:j:t",
                "given twice",
            ),
            ("--listen 127.0.0.1:0 --account-ms x", "--account-ms 'x'"),
            (
                "--listen 127.0.0.1:0 --okx-checksum",
                "--okx-checksum needs --venue okx",
            ),
            ("--listen 127.0.0.1:0 --venue-file", "--venue-file needs"),
            (
                "--listen 127.0.0.1:0 --venue-file /nonexistent.toml",
                "--venue-file '/nonexistent.toml'",
            ),
            (
                "--listen 127.0.0.1:0 --venue-file Cargo.toml",
                "--venue-file 'Cargo.toml'",
            ),
            (
                "--listen 127.0.0.1:0 --venue-symbols BTC",
                "--venue-symbols needs --venue-file",
            ),
            (
                "--listen 127.0.0.1:0 --venue-file configs/venues/paradex.toml --venue-symbols A,\"B\"",
                "--venue-symbols",
            ),
        ] {
            let e = match parse_args(&args(bad)) {
                Err(e) => e,
                Ok(_) => panic!("{bad:?} accepted"),
            };
            assert!(e.contains(needle), "{bad:?} → {e:?}");
        }
    }
}
