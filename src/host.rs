//! `wsfeed check-host`: whether this host fits a config's pinning and spinning, and what it has
//! for low-latency threads: cores, isolation (`isolcpus`, `nohz_full`, `rcu_nocbs`), each
//! pinned core's frequency governor, the clock source.
//!
//! [`Host`] is what the kernel says ([`Host::read`] reads `/proc/cmdline` and `/sys`; a file
//! that cannot be read leaves its fact unknown, never an error); [`check_config`] compares it
//! with the threads the engine would start (the engine's own plan: `feed-<driver>` threads and
//! the strategy thread). The comparison does no I/O, so it is tested on made-up hosts.
//!
//! Problems (the config does not fit: `check-host` exits 1): a pinned core this host does not
//! have online, more spinning threads than cores, two spinning threads pinned to one core.
//! Advice (it fits, but latency tails will show it): a spinning thread that is not pinned, or
//! pinned to a core that is not isolated or still takes the scheduler tick, a pinned core
//! whose governor is not `performance`, a clock source other than `tsc`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::config::Config;
use crate::engine::{oversubscription, spinners, threads, StartError, ThreadNeed};

/// What the kernel says about this host; `None`: unknown (the file could not be read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Host {
    /// Online CPUs (`/sys/devices/system/cpu/online`).
    pub online: Option<Vec<usize>>,
    /// CPUs isolated from the scheduler (`/sys/devices/system/cpu/isolated`, else `isolcpus=`
    /// on the kernel command line).
    pub isolated: Option<Vec<usize>>,
    /// CPUs without the scheduler tick while they run one task (`…/cpu/nohz_full`, else
    /// `nohz_full=`).
    pub nohz_full: Option<Vec<usize>>,
    /// CPUs whose RCU callbacks run elsewhere (`rcu_nocbs=`).
    pub rcu_nocbs: Option<Vec<usize>>,
    /// Frequency governor per CPU (`…/cpu<N>/cpufreq/scaling_governor`); CPUs missing here
    /// are unknown.
    pub governors: BTreeMap<usize, String>,
    /// The clock source (`/sys/devices/system/clocksource/clocksource0/current_clocksource`).
    pub clock_source: Option<String>,
}

impl Host {
    /// This host, from `/proc` and `/sys`.
    pub fn read() -> Host {
        Host::read_from(Path::new("/"))
    }

    /// A host whose `/proc` and `/sys` are under `root` (tests give a made-up tree).
    pub fn read_from(root: &Path) -> Host {
        let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
        let cpu = "sys/devices/system/cpu";
        let cmdline = read("proc/cmdline");
        // Without the parameter on a readable command line, the answer is "none".
        let from_cmdline = |key: &str| {
            cmdline.as_deref().map(|line| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
                    .and_then(parse_cpu_list)
                    .unwrap_or_default()
            })
        };
        let online = read(&format!("{cpu}/online")).and_then(|s| parse_cpu_list(&s));
        let mut governors = BTreeMap::new();
        for c in online.iter().flatten() {
            if let Some(g) = read(&format!("{cpu}/cpu{c}/cpufreq/scaling_governor")) {
                governors.insert(*c, g.trim().to_string());
            }
        }
        Host {
            isolated: read(&format!("{cpu}/isolated"))
                .and_then(|s| parse_cpu_list(&s))
                .or_else(|| from_cmdline("isolcpus")),
            nohz_full: read(&format!("{cpu}/nohz_full"))
                .and_then(|s| parse_cpu_list(&s))
                .or_else(|| from_cmdline("nohz_full")),
            rcu_nocbs: from_cmdline("rcu_nocbs"),
            online,
            governors,
            clock_source: read("sys/devices/system/clocksource/clocksource0/current_clocksource")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        }
    }
}

/// A kernel CPU list, `0-3,5,8-9`; flags such as `isolcpus=domain,managed_irq,2-3` are skipped
/// and `(null)` (nothing) is empty. `None` when a part is neither.
pub fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let text = text.trim();
    let mut out = Vec::new();
    if text.is_empty() || text == "(null)" {
        return Some(out);
    }
    for part in text.split(',') {
        if part.chars().all(|c| c.is_ascii_alphabetic() || c == '_') {
            continue; // a flag
        }
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 4096 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// `0-3,5`, or `none`.
fn cpu_list(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(",")
    }
}

/// A check's findings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Check {
    /// What the host has, one line a fact.
    pub host: Vec<String>,
    /// Each thread: name, core, spin or block.
    pub threads: Vec<String>,
    /// What does not fit: the config cannot run as configured here.
    pub problems: Vec<String>,
    /// What fits but will cost latency.
    pub advice: Vec<String>,
}

impl Check {
    /// Whether the config fits this host (no problems; advice may remain).
    pub fn fits(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "host:")?;
        for l in &self.host {
            writeln!(f, "  {l}")?;
        }
        writeln!(
            f,
            "threads the config starts (helper threads neither pin nor spin):"
        )?;
        for l in &self.threads {
            writeln!(f, "  {l}")?;
        }
        for (title, items) in [("advice", &self.advice), ("problems", &self.problems)] {
            if !items.is_empty() {
                writeln!(f, "{title}:")?;
                for l in items {
                    writeln!(f, "  - {l}")?;
                }
            }
        }
        write!(f, "{}", if self.fits() { "fits: yes" } else { "fits: no" })
    }
}

/// Checks `config`'s threads, as the engine would start them, against `host`.
pub fn check_config(config: &Config, host: &Host) -> Result<Check, StartError> {
    Ok(check(host, &threads(config)?))
}

/// Checks `threads` against `host`.
pub(crate) fn check(host: &Host, threads: &[ThreadNeed]) -> Check {
    let mut c = Check::default();
    let known = |v: &Option<Vec<usize>>| v.as_deref().map_or("unknown".to_string(), cpu_list);
    let cores = host.online.as_ref().map(Vec::len);
    c.host.push(match &host.online {
        Some(v) => format!("cores online: {} ({})", v.len(), cpu_list(v)),
        None => "cores online: unknown".into(),
    });
    c.host
        .push(format!("isolated (isolcpus): {}", known(&host.isolated)));
    c.host
        .push(format!("nohz_full: {}", known(&host.nohz_full)));
    c.host
        .push(format!("rcu_nocbs: {}", known(&host.rcu_nocbs)));
    let mut governors: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (cpu, g) in &host.governors {
        governors.entry(g).or_default().push(*cpu);
    }
    c.host.push(if governors.is_empty() {
        "frequency governor: unknown".into()
    } else {
        let parts: Vec<String> = governors
            .iter()
            .map(|(g, cpus)| format!("{g} on {}", cpu_list(cpus)))
            .collect();
        format!("frequency governor: {}", parts.join(", "))
    });
    c.host.push(format!(
        "clock source: {}",
        host.clock_source.as_deref().unwrap_or("unknown")
    ));
    for t in threads {
        c.threads.push(format!(
            "{:<20} {:<16} {}",
            t.name,
            t.core.map_or("not pinned".into(), |n| format!("core {n}")),
            if t.spin { "spins" } else { "blocks" }
        ));
        let Some(core) = t.core else {
            if t.spin {
                c.advice.push(format!(
                    "{} spins but is not pinned: the scheduler moves it between cores; pin it \
                     (core = N) to a core of its own",
                    t.name
                ));
            }
            continue;
        };
        if let Some(online) = &host.online {
            if !online.contains(&core) {
                c.problems.push(format!(
                    "{} is pinned to core {core}, which this host does not have online ({})",
                    t.name,
                    cpu_list(online)
                ));
                continue;
            }
        }
        if t.spin {
            let missing: Vec<&str> = [
                ("isolcpus", &host.isolated),
                ("nohz_full", &host.nohz_full),
                ("rcu_nocbs", &host.rcu_nocbs),
            ]
            .into_iter()
            .filter(|(_, v)| v.as_ref().is_some_and(|v| !v.contains(&core)))
            .map(|(k, _)| k)
            .collect();
            if !missing.is_empty() {
                c.advice.push(format!(
                    "{} spins on core {core}, which is not in {}: other tasks, the scheduler \
                     tick or RCU callbacks interrupt it (boot with {}; see docs/DEPLOY.md)",
                    t.name,
                    missing.join(", "),
                    missing
                        .iter()
                        .map(|k| format!("{k}={core}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
        }
        match host.governors.get(&core).map(String::as_str) {
            Some("performance") | None => {}
            Some(g) => c.advice.push(format!(
                "core {core} ({}) runs the '{g}' governor: its clock ramps up and down with \
                 load; set 'performance' (cpupower frequency-set -g performance)",
                t.name
            )),
        }
    }
    if let Some(n) = cores {
        if let Some(p) = oversubscription(&spinners(threads), n) {
            c.problems.push(p);
        }
    }
    match host.clock_source.as_deref() {
        Some("tsc") | None => {}
        Some(other) => c.advice.push(format!(
            "the clock source is '{other}', not 'tsc': every timestamp (one a frame) costs more; \
             on bare metal with an invariant TSC, boot with clocksource=tsc"
        )),
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(name: &str, core: Option<usize>, spin: bool) -> ThreadNeed {
        ThreadNeed {
            name: name.into(),
            core,
            spin,
        }
    }

    /// A tuned 8-core box: cores 2-7 isolated, tickless, RCU offloaded, performance, tsc.
    fn tuned() -> Host {
        let iso: Vec<usize> = (2..8).collect();
        Host {
            online: Some((0..8).collect()),
            isolated: Some(iso.clone()),
            nohz_full: Some(iso.clone()),
            rcu_nocbs: Some(iso),
            governors: (0..8).map(|c| (c, "performance".to_string())).collect(),
            clock_source: Some("tsc".into()),
        }
    }

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(
            parse_cpu_list("0-3,5,8-9\n"),
            Some(vec![0, 1, 2, 3, 5, 8, 9])
        );
        assert_eq!(parse_cpu_list("domain,managed_irq,2-3"), Some(vec![2, 3]));
        assert_eq!(parse_cpu_list("(null)\n"), Some(vec![]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x1"), None);
        assert_eq!(cpu_list(&[0, 1, 2, 3, 5, 8, 9]), "0-3,5,8-9");
    }

    #[test]
    fn a_tuned_host_fits_pinned_spinners_on_isolated_cores() {
        let c = check(
            &tuned(),
            &[
                thread("feed-usdm", Some(2), true),
                thread("strategy", Some(3), true),
                thread("feed-okx", None, false),
            ],
        );
        assert!(c.fits(), "{c}");
        assert!(c.advice.is_empty(), "{c}");
        assert!(c.host.contains(&"cores online: 8 (0-7)".to_string()), "{c}");
        assert!(c.to_string().ends_with("fits: yes"), "{c}");
    }

    #[test]
    fn a_missing_core_or_too_many_spinners_do_not_fit() {
        let mut two = tuned();
        two.online = Some(vec![0, 1]);
        let c = check(&two, &[thread("feed-a", Some(5), true)]);
        assert!(!c.fits());
        assert!(
            c.problems[0]
                .contains("feed-a is pinned to core 5, which this host does not have online (0-1)"),
            "{c}"
        );
        let c = check(
            &two,
            &[
                thread("feed-a", None, true),
                thread("feed-b", None, true),
                thread("strategy", Some(1), true),
            ],
        );
        assert!(
            c.problems.iter().any(|p| p.contains("3 spinning threads")),
            "{c}"
        );
        let c = check(
            &tuned(),
            &[
                thread("feed-a", Some(4), true),
                thread("strategy", Some(4), true),
            ],
        );
        assert!(
            c.problems
                .iter()
                .any(|p| p.contains("both spin pinned to core 4")),
            "{c}"
        );
        assert!(c.to_string().ends_with("fits: no"), "{c}");
    }

    #[test]
    fn an_untuned_host_fits_with_advice() {
        let laptop = Host {
            online: Some(vec![0, 1, 2, 3]),
            isolated: Some(vec![]),
            nohz_full: Some(vec![]),
            rcu_nocbs: Some(vec![]),
            governors: (0..4).map(|c| (c, "powersave".to_string())).collect(),
            clock_source: Some("hpet".into()),
        };
        let c = check(
            &laptop,
            &[
                thread("feed-a", Some(1), true),
                thread("strategy", None, true),
            ],
        );
        assert!(c.fits(), "{c}");
        let all = c.advice.join("\n");
        for want in [
            "feed-a spins on core 1, which is not in isolcpus, nohz_full, rcu_nocbs",
            "isolcpus=1 nohz_full=1 rcu_nocbs=1",
            "strategy spins but is not pinned",
            "core 1 (feed-a) runs the 'powersave' governor",
            "clock source is 'hpet'",
        ] {
            assert!(all.contains(want), "no {want:?} in {all}");
        }
    }

    #[test]
    fn what_cannot_be_read_is_unknown_not_an_error() {
        let c = check(&Host::default(), &[thread("feed-a", Some(7), true)]);
        assert!(c.fits(), "nothing known, nothing wrong: {c}");
        for want in [
            "cores online: unknown",
            "isolated (isolcpus): unknown",
            "frequency governor: unknown",
            "clock source: unknown",
        ] {
            assert!(c.host.iter().any(|l| l == want), "no {want:?} in {c}");
        }
        let nowhere = Host::read_from(Path::new("/nonexistent-root"));
        assert_eq!(nowhere, Host::default());
    }

    #[test]
    fn a_made_up_proc_and_sys_are_read() {
        let root = std::env::temp_dir().join(format!("wsfeed-host-{}", std::process::id()));
        let write = |p: &str, text: &str| {
            let path = root.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "proc/cmdline",
            "BOOT_IMAGE=/vmlinuz isolcpus=managed_irq,domain,2-3 nohz_full=2-3 rcu_nocbs=2-3 quiet\n",
        );
        write("sys/devices/system/cpu/online", "0-3\n");
        write("sys/devices/system/cpu/nohz_full", "(null)\n");
        write(
            "sys/devices/system/cpu/cpu2/cpufreq/scaling_governor",
            "performance\n",
        );
        write(
            "sys/devices/system/clocksource/clocksource0/current_clocksource",
            "tsc\n",
        );
        let host = Host::read_from(&root);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(host.online, Some(vec![0, 1, 2, 3]));
        // No sysfs file: the command line says.
        assert_eq!(host.isolated, Some(vec![2, 3]));
        assert_eq!(host.rcu_nocbs, Some(vec![2, 3]));
        // The sysfs file wins: the kernel ignored the parameter.
        assert_eq!(host.nohz_full, Some(vec![]));
        assert_eq!(
            host.governors,
            BTreeMap::from([(2, "performance".to_string())])
        );
        assert_eq!(host.clock_source.as_deref(), Some("tsc"));
    }
}
