//! "Pull the cable": the simulator runs as its own process (`wsfeed-sim`) inside a private
//! network namespace, reached over a veth pair with TLS; the test drops every packet inside that
//! namespace for a few seconds and checks that the engine declares the silent connection dead
//! (ping unanswered) within its liveness budget, then recovers and streams again once the
//! traffic flows.
//!
//! Needs root, iproute2 (`ip`) and iptables (`iptables`, or `iptables-legacy`), so it is
//! `#[ignore]`d and a plain `cargo test` (as any user) runs everything else; run it with
//! `sudo -E env "PATH=$PATH" cargo test --test netns -- --ignored`. CI runs as root, and
//! `.ci/run` installs the tools and runs it that way, explicitly. Without root or the tools the
//! test FAILS and says why — it never passes or skips quietly. Only the test's own namespace gets firewall rules; the host's are never
//! touched. Everything it creates (namespace, veth, simulator process, temp dir) is removed by a
//! drop guard, also when the test fails.

mod util;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use util::*;
use wsfeed::config::{FeedConfig, ReconnectConfig};
use wsfeed::tick::{DisconnectReason, FeedId, Health};

const SIM_BIN: &str = env!("CARGO_BIN_EXE_wsfeed-sim");
const STREAMS: &[&str] = &["btcusdt@bookTicker", "ethusdt@bookTicker"];

const STALE_AFTER_MS: u64 = 1000;
const PONG_TIMEOUT_MS: u64 = 1000;
/// Scheduling slack on top of the liveness budget (shared CI machines, thread wake-ups, the
/// time the `iptables` command itself takes).
const DETECT_MARGIN_MS: u64 = 1500;
/// How long the namespace drops everything.
const BLACKHOLE: Duration = Duration::from_secs(4);
/// Limit for recovery once the traffic flows again: backoff (≤ 500 ms) + a connect that may
/// still be waiting out its timeout (1 s) + TLS and upgrade, with plenty to spare.
const RECOVER_WITHIN: Duration = Duration::from_secs(10);
/// Limit for the simulator process to print its `listening` line.
const SIM_READY_WITHIN: Duration = Duration::from_secs(10);

/// Runs a command to completion; `Err` carries a one-line description of what failed.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let shown = format!("`{program} {}`", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{shown} could not be started: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Fails the test because the environment cannot run it, saying exactly what is missing.
fn cannot_run(what: &str) -> ! {
    panic!(
        "the netns chaos test cannot run here: {what}\n\
         It needs root (CI runs as root), iproute2 (`ip`) and iptables (`iptables` or \
         `iptables-legacy`) with network-namespace support in the kernel; `.ci/run` installs \
         the tools. This is a failure, not a skip."
    );
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// A /30 of 10.0.0.0/8 from the pid, moved on while the host already uses it.
fn pick_subnet(pid: u32) -> (Ipv4Addr, Ipv4Addr) {
    let used = format!(
        "{}\n{}",
        run("ip", &["-4", "-o", "addr", "show"]).unwrap_or_default(),
        run("ip", &["-4", "route", "show", "table", "all"]).unwrap_or_default()
    );
    for k in 0..64u32 {
        let b = 100 + ((pid >> 8) + k) % 100;
        let c = pid & 0xff;
        if !used.contains(&format!("10.{b}.{c}.")) && !used.contains(&format!("10.{b}.0.0/16")) {
            return (
                Ipv4Addr::new(10, b as u8, c as u8, 1),
                Ipv4Addr::new(10, b as u8, c as u8, 2),
            );
        }
    }
    cannot_run("no free 10.x.y.0/30 subnet for the veth pair (the host uses them all)");
}

/// The test's network namespace, veth pair and simulator process; all removed on drop.
struct Lab {
    ns: String,
    host_if: String,
    host_ip: Ipv4Addr,
    ns_ip: Ipv4Addr,
    dir: PathBuf,
    /// The iptables command that works inside the namespace (`iptables` or `iptables-legacy`).
    iptables: &'static str,
    iptables_version: String,
    sim: Option<Child>,
    sim_stdin: Option<ChildStdin>,
    /// Set once the namespace exists (so drop knows what to remove).
    made_ns: bool,
    made_veth: bool,
}

impl Lab {
    /// Creates the namespace and the veth pair, and picks the iptables variant.
    fn create() -> Lab {
        let pid = std::process::id();
        match effective_uid() {
            Some(0) => {}
            Some(uid) => cannot_run(&format!("not running as root (effective uid {uid})")),
            None => cannot_run("cannot read the effective uid from /proc/self/status"),
        }
        let (host_ip, ns_ip) = pick_subnet(pid);
        let dir = std::env::temp_dir().join(format!("wsfeed-netns-{pid}"));
        let mut lab = Lab {
            ns: format!("wsfeed-t{pid}"),
            host_if: format!("wsft{pid}h"),
            host_ip,
            ns_ip,
            dir,
            iptables: "iptables",
            iptables_version: String::new(),
            sim: None,
            sim_stdin: None,
            made_ns: false,
            made_veth: false,
        };
        let ns_if = format!("wsft{pid}n");
        // Left-overs of an earlier run that had this pid and was killed before its clean-up:
        // the names carry our pid, so they are ours to remove.
        let _ = run("ip", &["link", "del", &lab.host_if]);
        let _ = run("ip", &["netns", "del", &lab.ns]);

        if let Err(e) = run("ip", &["netns", "add", &lab.ns]) {
            cannot_run(&format!("creating the network namespace: {e}"));
        }
        lab.made_ns = true;
        let (ns, host_if) = (lab.ns.clone(), lab.host_if.clone());
        let host_cidr = format!("{host_ip}/30");
        let ns_cidr = format!("{ns_ip}/30");
        let steps: [&[&str]; 7] = [
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ],
            &["link", "set", &ns_if, "netns", &ns],
            &["addr", "add", &host_cidr, "dev", &host_if],
            &["link", "set", &host_if, "up"],
            &["-n", &ns, "addr", "add", &ns_cidr, "dev", &ns_if],
            &["-n", &ns, "link", "set", &ns_if, "up"],
            &["-n", &ns, "link", "set", "lo", "up"],
        ];
        for (i, step) in steps.iter().enumerate() {
            if let Err(e) = run("ip", step) {
                cannot_run(&format!("setting up the veth pair: {e}"));
            }
            if i == 0 {
                lab.made_veth = true;
            }
        }
        lab.pick_iptables();
        std::fs::create_dir_all(&lab.dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", lab.dir.display()));
        lab
    }

    /// `iptables` if adding and deleting a rule in the namespace works, else `iptables-legacy`.
    fn pick_iptables(&mut self) {
        let probe = ["-w", "5", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT"];
        let mut errors = Vec::new();
        for variant in ["iptables", "iptables-legacy"] {
            let result = self.iptables_in_ns(variant, &probe).and_then(|_| {
                let mut del = probe;
                del[2] = "-D";
                self.iptables_in_ns(variant, &del)
            });
            match result {
                Ok(_) => {
                    self.iptables = variant;
                    self.iptables_version = self
                        .iptables_in_ns(variant, &["--version"])
                        .map(|v| v.trim().to_string())
                        .unwrap_or_else(|_| "version unknown".into());
                    return;
                }
                Err(e) => errors.push(e),
            }
        }
        cannot_run(&format!(
            "no working iptables inside the namespace (tried `iptables`, then `iptables-legacy`):\n  {}",
            errors.join("\n  ")
        ));
    }

    fn iptables_in_ns(&self, variant: &str, args: &[&str]) -> Result<String, String> {
        let mut full = vec!["netns", "exec", self.ns.as_str(), variant];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Adds (`-A`) or deletes (`-D`) the DROP-everything rules inside the namespace. OUTPUT
    /// first: the simulator stops sending at once, instead of until its window is used up.
    fn blackhole(&self, op: &str) {
        for chain in ["OUTPUT", "INPUT"] {
            if let Err(e) =
                self.iptables_in_ns(self.iptables, &["-w", "5", op, chain, "-j", "DROP"])
            {
                panic!(
                    "{} ({}) inside namespace {}: {e}",
                    self.iptables, self.iptables_version, self.ns
                );
            }
        }
    }

    /// Starts `wsfeed-sim` with TLS inside the namespace; returns its URL and the CA file.
    fn start_sim(&mut self) -> (String, PathBuf) {
        let ca = self.dir.join("ca.pem");
        let log = self.dir.join("sim.log");
        let log_file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let listen = format!("{}:0", self.ns_ip);
        let ca_arg = ca.to_string_lossy().into_owned();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns, SIM_BIN, "--listen", &listen])
            .args(["--tls", "--ca-out", &ca_arg, "--symbols", "BTCUSDT,ETHUSDT"])
            // Our end of stdin: if this process dies without its clean-up, the pipe closes
            // and the simulator exits on its own.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap_or_else(|e| cannot_run(&format!("`ip netns exec … wsfeed-sim` failed: {e}")));
        self.sim_stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        self.sim = Some(child);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(SIM_READY_WITHIN).unwrap_or_else(|_| {
            panic!(
                "wsfeed-sim did not print `listening` within {SIM_READY_WITHIN:?}\n{}",
                self.sim_log()
            )
        });
        let url = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| {
                panic!(
                    "wsfeed-sim printed {line:?} instead of `listening <url>`\n{}",
                    self.sim_log()
                )
            })
            .to_string();
        assert!(
            url.starts_with(&format!("wss://{}:", self.ns_ip)),
            "wsfeed-sim listens on {url}, expected wss://{}:PORT",
            self.ns_ip
        );
        assert!(
            ca.is_file(),
            "wsfeed-sim printed `listening` before writing {}",
            ca.display()
        );
        (url, ca)
    }

    fn sim_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("sim.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let mut s = String::from("--- wsfeed-sim stderr (last lines) ---\n");
        for l in tail.into_iter().rev() {
            let _ = writeln!(s, "{l}");
        }
        s
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if thread::panicking() {
            let firewall = if self.iptables_version.is_empty() {
                "no iptables picked".to_string()
            } else {
                format!("{} ({})", self.iptables, self.iptables_version)
            };
            eprintln!(
                "netns lab: namespace {} ({} ↔ {}), {firewall}",
                self.ns, self.host_ip, self.ns_ip
            );
            if self.sim.is_some() {
                eprintln!("{}", self.sim_log());
            }
        }
        // Closing its stdin stops the simulator; kill it if it takes too long.
        drop(self.sim_stdin.take());
        if let Some(mut child) = self.sim.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        // Deleting one end removes the pair at once (a namespace deletion does it lazily).
        if self.made_veth {
            let _ = run("ip", &["link", "del", &self.host_if]);
        }
        if self.made_ns {
            if let Err(e) = run("ip", &["netns", "del", &self.ns]) {
                eprintln!("netns lab clean-up: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The first `Disconnected` among health events from position `from` on.
fn first_disconnect(health: &[(FeedId, Health)], from: usize) -> Option<(u32, DisconnectReason)> {
    health[from..].iter().find_map(|(_, h)| match h {
        Health::Disconnected { conn, reason } => Some((*conn, *reason)),
        _ => None,
    })
}

#[test]
#[ignore = "needs root, ip and iptables: sudo -E env \"PATH=$PATH\" cargo test --test netns -- --ignored"]
fn blackholed_network_is_detected_by_liveness_and_recovered() {
    let mut lab = Lab::create();
    let (url, ca) = lab.start_sim();

    let mut feed: FeedConfig = toml::from_str(&format!(
        "name = \"netns\"\nvenue = \"binance-spot\"\nurl = \"{url}\"\nca_file = \"{}\"\nstreams = [{}]\n",
        ca.display(),
        STREAMS
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(",")
    ))
    .expect("feed table parses");
    feed.ca_pem = None; // the file route, as a user would configure it
    let reconnect = ReconnectConfig {
        initial_delay_ms: 50,
        max_delay_ms: 500,
        stale_after_ms: STALE_AFTER_MS,
        pong_timeout_ms: PONG_TIMEOUT_MS,
        connect_timeout_ms: 1000,
        handshake_timeout_ms: 2000,
        ack_timeout_ms: 2000,
        ..ReconnectConfig::default()
    };
    let (engine, probe) = start(vec![feed], reconnect);
    probe.wait("first connection over the veth", |s| {
        has_health(s, |h| *h == Health::Connected { conn: 1 })
    });
    probe.wait_more_ticks(100);

    // Pull the cable.
    let before = probe.health().len();
    let cut = Instant::now();
    lab.blackhole("-A");
    let cut_done = cut.elapsed();
    let budget = Duration::from_millis(STALE_AFTER_MS + PONG_TIMEOUT_MS + DETECT_MARGIN_MS);
    let give_up = cut + budget + Duration::from_secs(8);
    probe.wait("a disconnect after the blackhole", |s| {
        first_disconnect(&health_of(s), before).is_some() || Instant::now() >= give_up
    });
    let detected = cut.elapsed();
    let health = probe.health();
    let Some((conn, reason)) = first_disconnect(&health, before) else {
        panic!(
            "no Disconnected within {:?} of the blackhole (budget {budget:?}); health: {health:?}",
            give_up - cut
        );
    };
    assert_eq!(
        reason,
        DisconnectReason::PongTimeout,
        "a blackholed connection ends by its unanswered ping; health: {health:?}"
    );
    assert!(
        detected <= budget,
        "dead connection detected after {detected:?}, over stale_after {STALE_AFTER_MS} ms + \
         pong_timeout {PONG_TIMEOUT_MS} ms + {DETECT_MARGIN_MS} ms margin"
    );

    // Keep the cable out for the rest of the blackhole: nothing can connect through it.
    if let Some(rest) = BLACKHOLE.checked_sub(cut.elapsed()) {
        thread::sleep(rest);
    }
    let during = probe.health();
    assert!(
        !during[before..]
            .iter()
            .any(|(_, h)| matches!(h, Health::Connected { .. } | Health::Recovered { .. })),
        "connected through a blackhole? health: {during:?}"
    );
    let ticks_at_lift = probe.tick_count();
    let lift = Instant::now();
    lab.blackhole("-D");

    // Plug it back in.
    let limit = lift + RECOVER_WITHIN;
    probe.wait("recovery after the blackhole", |s| {
        has_health(s, |h| matches!(h, Health::Recovered { .. })) || Instant::now() >= limit
    });
    let recovered_after = lift.elapsed();
    let health = probe.health();
    let recovered = health[before..]
        .iter()
        .find_map(|(_, h)| match h {
            Health::Recovered {
                gap_ms,
                reconnect_ms,
                attempts,
            } => Some((*gap_ms, *reconnect_ms, *attempts)),
            _ => None,
        })
        .unwrap_or_else(|| {
            panic!("not recovered within {RECOVER_WITHIN:?} of lifting the blackhole; health: {health:?}")
        });
    probe.wait_more_ticks(100);
    assert!(probe.tick_count() >= ticks_at_lift + 100);

    let (summary, _) = engine.stop();
    assert!(summary.feeds[0].reconnects >= 1, "{summary}");
    println!(
        "netns chaos ({} / {}, {} ↔ {}): blackhole rules in place after {:?}; connection {conn} \
         declared dead ({reason:?}) {:?} after the cut (budget {:?}); recovered {:?} after the \
         rules went (gap {} ms, reconnect {} ms, {} attempts)",
        lab.iptables,
        lab.iptables_version,
        lab.host_ip,
        lab.ns_ip,
        cut_done,
        detected,
        budget,
        recovered_after,
        recovered.0,
        recovered.1,
        recovered.2
    );
}
