//! No secret leaves the process: `wsfeed run` with an account on every venue (credentials in
//! the environment), debug logging, capture and the metrics endpoint on, a refused credential
//! and a dropped private connection on the way; then everything it wrote (stdout, stderr, the
//! session folder, the metrics text) is searched for the key, the secret and the passphrase.
//!
//! The run has a deadline and is killed past it.

mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use wsfeed::sim::{Fault, Sim, SimAccount, SimConfig, SimVenue};

const DEADLINE: Duration = Duration::from_secs(60);

/// Distinctive values: any of them found in the output is a leak.
fn secrets(venue: &str) -> SimAccount {
    SimAccount {
        name: format!("acct-{venue}"),
        api_key: format!("AKey7f3c9e1d5b{venue}Zq"),
        secret: format!("S3cr3t9a8b7c6d{venue}Wx"),
        passphrase: Some(format!("Pp1q2w3e4r{venue}Yv")),
    }
}

fn sim(venue: SimVenue, accounts: Vec<SimAccount>) -> Sim {
    Sim::start(SimConfig {
        venue,
        tls: false,
        symbols: vec!["BTCUSDT".into()],
        accounts,
        account_event_interval: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn no_secret_appears_in_anything_the_process_writes() {
    let dir = std::env::temp_dir().join(format!("wsfeed-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let venues = ["binance-usdm", "binance-spot", "bybit-linear", "okx"];
    let binance = sim(
        SimVenue::Binance,
        vec![secrets("binance-usdm"), secrets("binance-spot")],
    );
    let bybit = sim(SimVenue::BybitLinear, vec![secrets("bybit-linear")]);
    let okx = sim(SimVenue::Okx, vec![secrets("okx")]);
    let sim_of = |v: &str| match v {
        "bybit-linear" => &bybit,
        "okx" => &okx,
        _ => &binance,
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut toml = format!(
        "[capture]\ndir = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n\
         [reconnect]\ninitial_delay_ms = 20\nmax_delay_ms = 200\n\
         [[feeds]]\nname = \"market\"\nvenue = \"binance-spot\"\nurl = \"{}\"\nstreams = [\"btcusdt@bookTicker\"]\n",
        dir.join("capture").display(),
        binance.base_url()
    );
    let mut env: Vec<(String, String)> = vec![("RUST_LOG".into(), "debug".into())];
    for v in venues {
        let var = v.to_uppercase().replace('-', "_");
        let passphrase = match v {
            "okx" => format!("passphrase_env = \"T_{var}_PASS\"\n"),
            _ => String::new(),
        };
        toml += &format!(
            "[[accounts]]\nname = \"acct-{v}\"\nvenue = \"{v}\"\nurl = \"{}\"\nkey_env = \"T_{var}_KEY\"\nsecret_env = \"T_{var}_SECRET\"\n{passphrase}",
            sim_of(v).base_url()
        );
        let s = secrets(v);
        env.push((format!("T_{var}_KEY"), s.api_key));
        env.push((format!("T_{var}_SECRET"), s.secret));
        env.push((format!("T_{var}_PASS"), s.passphrase.unwrap()));
    }
    let config = dir.join("accounts.toml");
    std::fs::write(&config, toml).unwrap();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let run = util::background(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--seconds",
            "5",
        ],
        &env,
    );
    // While it runs: every account streams, then one credential is refused and one private
    // connection dropped, and the metrics are scraped.
    util::eventually("every account streams", || {
        venues
            .iter()
            .all(|v| !sim_of(v).account_sent(&format!("acct-{v}")).is_empty())
    });
    assert!(okx.revoke_account("acct-okx"));
    if let Some(c) = bybit
        .snapshot()
        .open_connections()
        .find(|c| c.path.starts_with("/v5/private"))
    {
        bybit.inject_on(c.id, Fault::Reset);
    }
    let metrics = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .map(|r| r.into_string().unwrap_or_default())
        .unwrap_or_default();
    let (code, out, err) = run.finish(DEADLINE);
    assert!(
        out.contains("account: events"),
        "the summary shows the accounts:\n{out}\n{err}"
    );
    assert!(
        err.contains("refused its credentials"),
        "the refusal is logged:\n{err}"
    );
    assert!(metrics.contains("wsfeed_account_events_total"), "{metrics}");
    assert_eq!(
        code,
        Some(0),
        "the refused account is required, the others stream: {err}"
    );
    let mut written = vec![
        ("stdout".to_string(), out),
        ("stderr".into(), err),
        ("metrics".into(), metrics),
    ];
    let mut files = Vec::new();
    files_under(&dir.join("capture"), &mut files);
    assert!(!files.is_empty(), "the session was captured");
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        written.push((f.display().to_string(), text));
    }
    for v in venues {
        let s = secrets(v);
        for value in [s.api_key, s.secret, s.passphrase.unwrap()] {
            for (what, text) in &written {
                if let Some(line) = text.lines().find(|l| l.contains(&value)) {
                    panic!(
                        "{what} contains a secret of {v}, in: {}",
                        line.replace(&value, "<THE SECRET>")
                    );
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
