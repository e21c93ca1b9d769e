//! The public handle: [`Sim`] (start, URLs, fault injection, observation,
//! shutdown) and [`start_group`].

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::acceptor::{bind_listener, run_acceptor};
use super::base::lock;
use super::config::SimConfig;
use super::defined;
use super::fault::{BookFault, Fault, Injected};
use super::generator::run_generator;
use super::market::Market;
use super::observe::{ConnId, SentRecord, SimSnapshot};
use super::private::generator::run_accounts;
use super::private::observe::AccountSentRecord;
use super::private::state::Private;
use super::shared::SharedMarket;
use super::state::{Inner, Reject, State};
use super::symbol::SymInfo;
use super::tls;

/// Upper bound between two re-evaluations of a [`Sim::wait_until`] predicate.
const WAIT_TICK: Duration = Duration::from_millis(50);

/// Starts one simulator per configuration, all quoting `shared` (each
/// configuration's [`SimConfig::shared`] is replaced by it), in order: the
/// first joins the shared market in slot 0, the next in slot 1, and so on.
/// Typically one configuration per venue, on ports of their own. On the first
/// failure the simulators already started are shut down and the error is
/// returned.
///
/// ```no_run
/// use wsfeed::sim::{start_group, SharedMarket, SimConfig, SimVenue};
///
/// let shared = SharedMarket::new(["BTCUSDT"], 7);
/// let sims = start_group(
///     [SimVenue::Binance, SimVenue::BybitLinear, SimVenue::Okx]
///         .into_iter()
///         .map(|venue| SimConfig {
///             venue,
///             symbols: vec!["BTCUSDT".into()],
///             ..SimConfig::default()
///         })
///         .collect(),
///     shared,
/// )?;
/// assert_eq!(sims.len(), 3);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn start_group(configs: Vec<SimConfig>, shared: SharedMarket) -> io::Result<Vec<Sim>> {
    configs
        .into_iter()
        .map(|cfg| {
            Sim::start(SimConfig {
                shared: Some(shared.clone()),
                ..cfg
            })
        })
        .collect()
}

/// A running simulator. Stops (joining all its threads) on [`Sim::shutdown`]
/// or when dropped.
pub struct Sim {
    inner: Arc<Inner>,
    ca_pem: Option<String>,
    stop_tx: Option<Sender<()>>,
    acceptor: Option<JoinHandle<()>>,
    generator: Option<JoinHandle<()>>,
    accounts: Option<JoinHandle<()>>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("port", &self.inner.port)
            .field("tls", &self.inner.tls.is_some())
            .field("symbols", &self.inner.cfg.symbols)
            .field("running", &!self.inner.is_shutdown())
            .finish()
    }
}

impl Sim {
    /// Starts the simulator on `cfg.bind:cfg.port` (`127.0.0.1:0` by default;
    /// generating the CA first when `cfg.tls`). Symbols are normalised to
    /// uppercase. With [`SimConfig::shared`] the simulator joins that market
    /// (taking its next slot); a configured symbol the shared market does not
    /// have fails with `InvalidInput`.
    pub fn start(mut cfg: SimConfig) -> io::Result<Sim> {
        for s in &mut cfg.symbols {
            *s = s.trim().to_ascii_uppercase();
        }
        cfg.symbols.retain(|s| !s.is_empty());
        cfg.symbols.dedup();
        let info: Arc<Vec<SymInfo>> = Arc::new(defined::symbols(&cfg)?);
        let tls = if cfg.tls {
            Some(tls::generate(cfg.bind)?)
        } else {
            None
        };
        let listener = bind_listener(cfg.bind, cfg.port)?;
        let port = listener.local_addr()?.port();
        // Joined last, so that a simulator failing to start takes no slot.
        let market = match &cfg.shared {
            None => Market::new(Arc::clone(&info), cfg.seed, cfg.venue, cfg.okx_checksum),
            Some(shared) => {
                Market::with_view(Arc::clone(&info), cfg.seed, cfg.venue, cfg.okx_checksum, {
                    let mut view = shared.join(&cfg.symbols)?;
                    view.sync(Instant::now());
                    view
                })
            }
        };
        let private = Private::new(cfg.accounts.clone(), cfg.listen_key_validity, cfg.seed);
        let inner = Arc::new(Inner {
            private,
            cfg,
            info,
            market: Mutex::new(market),
            port,
            tls: tls.as_ref().map(|t| Arc::clone(&t.server_config)),
            shutdown: AtomicBool::new(false),
            state: Mutex::new(State {
                next_conn_id: 1,
                ..State::default()
            }),
            changed: Condvar::new(),
            sent: Mutex::new(Vec::new()),
            subscribers: Mutex::new(Vec::new()),
            listener: Mutex::new(Some(listener)),
            conn_threads: Mutex::new(Vec::new()),
        });
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
        let mut sim = Sim {
            inner: Arc::clone(&inner),
            ca_pem: tls.map(|t| t.ca_pem),
            stop_tx: Some(stop_tx),
            acceptor: None,
            generator: None,
            accounts: None,
        };
        if !inner.cfg.accounts.is_empty() {
            let acc_inner = Arc::clone(&inner);
            let acc_stop = stop_rx.clone();
            sim.accounts = Some(
                thread::Builder::new()
                    .name("sim-accounts".into())
                    .spawn(move || run_accounts(acc_inner, acc_stop))?,
            );
        }
        let gen_inner = Arc::clone(&inner);
        sim.generator = Some(
            thread::Builder::new()
                .name("sim-generator".into())
                .spawn(move || run_generator(gen_inner, stop_rx))?,
        );
        let acc_inner = Arc::clone(&inner);
        sim.acceptor = Some(
            thread::Builder::new()
                .name("sim-acceptor".into())
                .spawn(move || run_acceptor(acc_inner))?,
        );
        Ok(sim)
    }

    /// The listening port (on [`SimConfig::bind`]).
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// `"wss://localhost:PORT"` with TLS (the certificate is valid for DNS
    /// name `localhost`, IP `127.0.0.1` and the bind IP), `"ws://127.0.0.1:PORT"`
    /// without. When bound to another specific IP, that IP is the host
    /// (`"wss://10.1.2.2:PORT"`, `"ws://[fd00::2]:PORT"`).
    pub fn base_url(&self) -> String {
        let ip = self.inner.cfg.bind;
        let scheme = if self.inner.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        if ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || ip.is_unspecified() {
            let host = if self.inner.tls.is_some() {
                "localhost"
            } else {
                "127.0.0.1"
            };
            format!("{scheme}://{host}:{}", self.inner.port)
        } else {
            format!("{scheme}://{}", SocketAddr::new(ip, self.inner.port))
        }
    }

    /// PEM of the generated CA certificate (`None` without TLS).
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// Writes the CA certificate PEM to `path`. Fails with
    /// `ErrorKind::NotFound` when the simulator runs without TLS.
    pub fn write_ca_file(&self, path: &Path) -> io::Result<()> {
        match &self.ca_pem {
            Some(pem) => std::fs::write(path, pem),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "sim runs without TLS: no CA certificate",
            )),
        }
    }

    /// The effective configuration (symbols normalised to uppercase).
    pub fn config(&self) -> &SimConfig {
        &self.inner.cfg
    }

    /// Applies a fault. Listener faults (`Refuse`, `Reject`, `Http429`,
    /// `Http503`, `IgnoreSubscribe`; see [`Fault::is_listener_fault`]) act on
    /// the listener / upcoming upgrades / upcoming `SUBSCRIBE` requests and
    /// take effect before this returns;
    /// connection faults go to every connection open at this moment (a
    /// connection accepted afterwards is unaffected) and are applied by each
    /// connection's thread within about a millisecond.
    pub fn inject(&self, fault: Fault) {
        if fault.is_listener_fault() {
            self.inject_listener(fault);
            return;
        }
        let st = lock(&self.inner.state);
        for entry in st.conns.values().filter(|e| e.info.open) {
            let _ = entry.faults.send(Injected::Std(fault.clone()));
        }
    }

    /// Applies a connection fault to one connection (no-op if it is closed or
    /// unknown). A listener fault given here acts on the listener as with
    /// [`Sim::inject`].
    pub fn inject_on(&self, conn: ConnId, fault: Fault) {
        if fault.is_listener_fault() {
            self.inject_listener(fault);
            return;
        }
        let st = lock(&self.inner.state);
        if let Some(entry) = st.conns.get(&conn).filter(|e| e.info.open) {
            let _ = entry.faults.send(Injected::Std(fault));
        }
    }

    /// Applies a [`BookFault`] to every connection open at this moment
    /// ([`BookFault::SnapshotStale`]: to the next REST snapshot, before this
    /// returns). Counted like [`Sim::inject`].
    pub fn inject_book(&self, fault: BookFault) {
        if fault.is_listener_fault() {
            self.inject_book_listener();
            return;
        }
        let st = lock(&self.inner.state);
        for entry in st.conns.values().filter(|e| e.info.open) {
            let _ = entry.faults.send(Injected::Book(fault));
        }
    }

    /// Applies a [`BookFault`] to one connection (no-op if it is closed or
    /// unknown; [`BookFault::SnapshotStale`] acts on the next REST snapshot).
    pub fn inject_book_on(&self, conn: ConnId, fault: BookFault) {
        if fault.is_listener_fault() {
            self.inject_book_listener();
            return;
        }
        let st = lock(&self.inner.state);
        if let Some(entry) = st.conns.get(&conn).filter(|e| e.info.open) {
            let _ = entry.faults.send(Injected::Book(fault));
        }
    }

    /// Answers the next `count` plain (REST) requests with HTTP `status` (a Binance error body)
    /// and, when given, `Retry-After: retry_after_s`. Scripted answers queue up in call order.
    pub fn reject_rest(&self, status: u16, count: u32, retry_after_s: Option<u32>) {
        self.inner.update(|st| {
            for _ in 0..count {
                st.rest_rejects.push_back((status, retry_after_s));
            }
        });
    }

    fn inject_book_listener(&self) {
        self.inner.update(|st| {
            st.stale_snapshots += 1;
            st.counters.faults_injected += 1;
        });
    }

    fn inject_listener(&self, fault: Fault) {
        match fault {
            Fault::Refuse { duration } => {
                // Lock order: listener, then state (as in the acceptor). The
                // deadline is set before the socket is closed so the acceptor
                // cannot re-bind in between.
                let mut listener = lock(&self.inner.listener);
                self.inner.update(|st| {
                    let until = Instant::now() + duration;
                    st.refuse_until = Some(st.refuse_until.map_or(until, |u| u.max(until)));
                    st.counters.faults_injected += 1;
                });
                drop(listener.take());
            }
            Fault::Http429 {
                count,
                retry_after_s,
            } => self.push_reject(429, Some(retry_after_s), count),
            Fault::Http503 { count } => self.push_reject(503, None, count),
            Fault::Reject {
                status,
                count,
                retry_after_s,
            } => self.push_reject(status, retry_after_s, count),
            Fault::IgnoreSubscribe { count } => self.inner.update(|st| {
                st.ignore_subscribes = st.ignore_subscribes.saturating_add(u64::from(count));
                st.counters.faults_injected += 1;
            }),
            _ => {}
        }
    }

    fn push_reject(&self, status: u16, retry_after_s: Option<u32>, count: u32) {
        let status = if (200..=599).contains(&status) {
            status
        } else {
            500
        };
        self.inner.update(|st| {
            if count > 0 {
                st.rejects.push_back(Reject {
                    status,
                    retry_after_s,
                    remaining: count,
                });
            }
            st.counters.faults_injected += 1;
        });
    }

    /// A copy of the current state (connections and counters).
    pub fn snapshot(&self) -> SimSnapshot {
        snapshot_of(&lock(&self.inner.state))
    }

    /// Waits until `pred` holds for the current snapshot, re-evaluating on
    /// every state change (connection opened/closed, subscribe, fault
    /// applied, pong received) and at least every 50 ms. Returns false on
    /// timeout. `pred` runs without any simulator lock held.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&SimSnapshot) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let (snap, generation) = {
                let st = lock(&self.inner.state);
                (snapshot_of(&st), st.generation)
            };
            if pred(&snap) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let wait = (deadline - now).min(WAIT_TICK);
            let st = lock(&self.inner.state);
            if st.generation == generation {
                let _ = self
                    .inner
                    .changed
                    .wait_timeout(st, wait)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
    }

    /// Ground truth: every data message that may have reached the client; after
    /// an abrupt end (reset) the last few may not have. In send order.
    ///
    /// A message is recorded when it is handed to the WebSocket for writing,
    /// before any byte of it can reach the kernel, so this is a superset of
    /// what any client received at any moment: on a clean close it equals what
    /// the client read; after [`Fault::Reset`], [`Fault::Stall`], a failed
    /// write or a shutdown, the last few recorded messages may never have
    /// arrived. Messages withheld by [`Fault::DropNext`] or [`Fault::Mute`] and
    /// the non-data frames of faults are never recorded. Empty when
    /// [`SimConfig::record`] is false.
    pub fn sent(&self) -> Vec<SentRecord> {
        lock(&self.inner.sent).clone()
    }

    /// Ground truth restricted to one connection, in send order.
    pub fn sent_on(&self, conn: ConnId) -> Vec<SentRecord> {
        lock(&self.inner.sent)
            .iter()
            .filter(|r| r.conn == conn)
            .cloned()
            .collect()
    }

    /// Ground truth of the private streams: every message of account `name`
    /// (see [`SimConfig::accounts`]) handed to a connection, in send order,
    /// recorded before it is written (as [`Sim::sent`]). Control messages
    /// (`listenKeyExpired`, `eventStreamTerminated`) and replies are not
    /// recorded; account messages are not in [`Sim::sent`] nor in the
    /// `messages_sent` counters. Empty for an unknown account or when
    /// [`SimConfig::record`] is false.
    pub fn account_sent(&self, name: &str) -> Vec<AccountSentRecord> {
        self.inner.private.sent_of(name)
    }

    /// Fault: the listen keys of account `name` expire now: connections on
    /// them get `listenKeyExpired` and nothing more, and later keep-alives of
    /// the key get -1125. False if the account is unknown or had no key.
    pub fn expire_listen_key(&self, name: &str) -> bool {
        let Some(a) = self.inner.private.by_name(name) else {
            return false;
        };
        self.count_private_fault();
        self.inner.private.expire_now(a, Instant::now())
    }

    /// Fault: the next `count` listen-key keep-alives (`PUT`) get HTTP 400
    /// -1125 "This listenKey does not exist." (the key itself stays valid).
    pub fn refuse_keepalives(&self, count: u32) {
        self.count_private_fault();
        self.inner.private.refuse_keepalives(count);
    }

    /// Fault: revokes the credentials of account `name`: later logins,
    /// subscriptions and listen-key requests fail with the venue's
    /// invalid-key error, its listen keys are gone, and its live private
    /// connections are closed (Binance WebSocket API: `eventStreamTerminated`
    /// first; then a Close frame 1008 `"account stream closed"`). False if
    /// the account is unknown.
    pub fn revoke_account(&self, name: &str) -> bool {
        let Some(a) = self.inner.private.by_name(name) else {
            return false;
        };
        self.count_private_fault();
        self.inner.private.revoke(a);
        true
    }

    fn count_private_fault(&self) {
        self.inner.update(|st| st.counters.faults_injected += 1);
    }

    /// Forgets the ground truth recorded so far (e.g. between bench rounds).
    pub fn clear_sent(&self) {
        lock(&self.inner.sent).clear();
    }

    /// Stops the listener, the generator and every connection thread, and
    /// joins them (well under a second). Also done on drop.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.inner.shutdown.swap(true, Ordering::AcqRel) {
            return;
        }
        drop(self.stop_tx.take());
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        if let Some(h) = self.generator.take() {
            let _ = h.join();
        }
        if let Some(h) = self.accounts.take() {
            let _ = h.join();
        }
        let handles = std::mem::take(&mut *lock(&self.inner.conn_threads));
        for h in handles {
            let _ = h.join();
        }
        drop(lock(&self.inner.listener).take());
        lock(&self.inner.subscribers).clear();
        self.inner.update(|_| {});
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop();
    }
}

fn snapshot_of(st: &State) -> SimSnapshot {
    SimSnapshot {
        connections: st.conns.values().map(|e| e.info.clone()).collect(),
        ..st.counters.clone()
    }
}
