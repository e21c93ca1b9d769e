//! `wsfeed::sim`: an embedded Binance exchange simulator.
//!
//! The simulator speaks the Binance combined-stream WebSocket protocol (spot
//! and USD-M futures flavours) on `127.0.0.1`, over `ws://` or over `wss://`
//! with a certificate authority generated at start. It is used by the demo
//! (`wsfeed demo`), by integration tests and by benches.
//!
//! # Architecture
//!
//! * **Acceptor thread** — polls a non-blocking listener bound to
//!   `127.0.0.1:0` every ~2 ms and spawns one thread per accepted TCP
//!   connection. [`Fault::Refuse`] really closes the listening socket and
//!   re-binds the same port (with `SO_REUSEADDR`) when the period ends.
//! * **Generator thread** — one deterministic synthetic market (random walk
//!   from [`SimConfig::seed`]). Each symbol's order-book update id advances by
//!   one per book change, its aggregate-trade id by one per trade. Every event
//!   is serialised once and broadcast to every connection through a bounded
//!   crossbeam channel, so all connections see the same `u`/`a` at about the
//!   same time, exactly like the real venue.
//! * **Connection threads** — non-blocking socket; the thread waits up to 1 ms
//!   on its event channel, writes the events the client is subscribed to,
//!   flushes, then reads whatever the client sent (SUBSCRIBE, UNSUBSCRIBE,
//!   LIST_SUBSCRIPTIONS, pings, pongs, close) and applies scripted faults.
//!   Data messages become ground truth only once a flush handed them to the
//!   kernel, and that flush happens under the ground-truth lock, so
//!   [`Sim::sent`] never misses a message a client may already have read.
//!
//! # Protocol
//!
//! Upgrade paths: `/stream`, `/ws`, `/public/stream`, `/public/ws`,
//! `/market/stream`, `/market/ws`, optionally with `?streams=a/b/c` (the
//! `/ws/<name>/<name>` raw form is accepted too). Other paths get HTTP 404; a
//! pre-subscription naming an unknown stream gets HTTP 400. Data frames on
//! `/stream` paths are wrapped as `{"stream":"<name>","data":<payload>}`, on
//! `/ws` paths the bare payload is sent.
//!
//! Supported streams (lowercase symbol): `<s>@bookTicker`, `<s>@aggTrade`,
//! `<s>@depth@100ms` (and `<s>@depth`), `<s>@markPrice` (and
//! `<s>@markPrice@1s`). Payloads use the USD-M futures field sets.
//!
//! With [`SimConfig::usdm_routing`] the simulator emulates the USD-M "Base
//! URL split": `bookTicker`/`depth` are *public* streams, `aggTrade`/
//! `markPrice` are *market* streams. A `/public/...` connection only delivers
//! public streams, `/market/...` only market streams, and the unrouted
//! `/stream` and `/ws` only public streams. Subscribing on the wrong route is
//! acknowledged with `{"result":null,"id":N}` but never delivers — the venue's
//! silent failure the engine must detect.
//!
//! # Ground truth and faults
//!
//! [`Sim::sent`] returns every data message flushed to a client (connection,
//! stream, sequence number, event time) in send order. [`Sim::inject`] and
//! [`Sim::inject_on`] apply scripted [`Fault`]s; [`Sim::snapshot`] and
//! [`Sim::wait_until`] observe connections and counters without sleeping.
//!
//! ```no_run
//! use std::time::Duration;
//! use wsfeed::sim::{Fault, Sim, SimConfig};
//!
//! let sim = Sim::start(SimConfig { tls: false, ..SimConfig::default() })?;
//! let url = format!("{}/public/stream?streams=btcusdt@bookTicker", sim.base_url());
//! // ... connect a client to `url` ...
//! assert!(sim.wait_until(Duration::from_secs(2), |s| s.connections.len() == 1));
//! sim.inject(Fault::Close { code: 1001 });
//! # Ok::<(), std::io::Error>(())
//! ```

mod conn;
mod market;
mod tls;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use socket2::{Domain, Protocol, Socket, Type};

use self::market::Event;

/// How long the acceptor sleeps when there is nothing to accept.
const ACCEPT_POLL: Duration = Duration::from_millis(2);
/// Upper bound between two re-evaluations of a [`Sim::wait_until`] predicate.
const WAIT_TICK: Duration = Duration::from_millis(50);

/// Configuration of a [`Sim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Serve `wss://` with a CA generated at start when true, plain `ws://` otherwise.
    pub tls: bool,
    /// Symbols, uppercase (e.g. `"BTCUSDT"`); stream names use lowercase.
    pub symbols: Vec<String>,
    /// How often each symbol's book changes (one `bookTicker` per change).
    pub book_interval: Duration,
    /// `aggTrade` cadence per symbol.
    pub trade_interval: Duration,
    /// Depth diff cadence (the `@depth@100ms` stream). A diff is only sent
    /// when the book changed since the previous one.
    pub depth_interval: Duration,
    /// `markPrice` cadence per symbol.
    pub mark_price_interval: Duration,
    /// Emulate the USD-M Base URL split (public / market routes).
    pub usdm_routing: bool,
    /// Keep ground truth of every data message sent (see [`Sim::sent`]).
    pub record: bool,
    /// Seed of the deterministic synthetic market.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tls: true,
            symbols: vec!["BTCUSDT".into(), "ETHUSDT".into(), "SOLUSDT".into()],
            book_interval: Duration::from_millis(5),
            trade_interval: Duration::from_millis(20),
            depth_interval: Duration::from_millis(100),
            mark_price_interval: Duration::from_secs(1),
            usdm_routing: true,
            record: true,
            seed: 0x00C0_FFEE,
        }
    }
}

/// Identifier of a simulator-side WebSocket connection: 1, 2, 3, … in the
/// order the WebSocket upgrades complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// Ground truth of one data message the simulator flushed to a client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SentRecord {
    /// Connection it was sent on.
    pub conn: ConnId,
    /// Stream name as subscribed, e.g. `"btcusdt@bookTicker"`.
    pub stream: String,
    /// `u` for bookTicker and depth, `a` for aggTrade, `E` for markPrice.
    pub seq: u64,
    /// The payload's `E` (Unix time in ms).
    pub event_time_ms: u64,
}

/// State of one simulator-side connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Connection id.
    pub id: ConnId,
    /// Upgrade path without query, e.g. `"/market/stream"`.
    pub path: String,
    /// Currently subscribed streams, in subscription order (including
    /// wrong-route streams that never deliver).
    pub streams: Vec<String>,
    /// False once the connection has been closed by either side.
    pub open: bool,
    /// Data messages flushed on this connection.
    pub messages_sent: u64,
    /// True while a [`Fault::Stall`] is in progress.
    pub stalled: bool,
}

/// A copy of the simulator's observable state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimSnapshot {
    /// Every WebSocket connection ever upgraded, in id order (closed ones
    /// stay listed with `open == false`).
    pub connections: Vec<ConnInfo>,
    /// Upgrade requests answered with an HTTP error (429, 503, 404, 400).
    pub upgrades_rejected: u64,
    /// Faults applied: one per listener fault injected, one per connection a
    /// connection fault was applied to.
    pub faults_injected: u64,
    /// Pongs received that matched a [`Fault::ServerPing`] payload.
    pub pongs_received: u64,
    /// Pings sent because of [`Fault::ServerPing`].
    pub pings_sent: u64,
    /// Data messages flushed, all connections together.
    pub messages_sent: u64,
    /// `SUBSCRIBE` requests received (valid or not).
    pub subscribe_requests: u64,
}

impl SimSnapshot {
    /// The connection with that id, if any.
    pub fn conn(&self, id: ConnId) -> Option<&ConnInfo> {
        self.connections.iter().find(|c| c.id == id)
    }

    /// Connections that are still open.
    pub fn open_connections(&self) -> impl Iterator<Item = &ConnInfo> {
        self.connections.iter().filter(|c| c.open)
    }
}

/// A scripted fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Send a WebSocket Close frame with that code (reason `"sim close"`),
    /// wait briefly for the client's reply, then close TCP.
    Close {
        /// Close code.
        code: u16,
    },
    /// Abrupt TCP reset: `SO_LINGER` 0 and drop (RST), no close frame.
    Reset,
    /// Half-open: stop sending and reading (client pings go unanswered) for
    /// `duration`, then drop the socket silently (FIN, no close frame).
    Stall {
        /// How long the connection stays silent.
        duration: Duration,
    },
    /// Listener-level: close the listening socket so new connects get
    /// ECONNREFUSED, re-bind the same port when the period ends.
    Refuse {
        /// How long connects are refused.
        duration: Duration,
    },
    /// The next `count` upgrade requests get `429 Too Many Requests` with
    /// `Retry-After: <retry_after_s>`.
    Http429 {
        /// Number of upgrades to reject.
        count: u32,
        /// Value of the `Retry-After` header, in seconds.
        retry_after_s: u32,
    },
    /// The next `count` upgrade requests get `503 Service Unavailable`.
    Http503 {
        /// Number of upgrades to reject.
        count: u32,
    },
    /// One text frame that is not valid JSON (not recorded in `sent`).
    Malformed,
    /// A WebSocket Ping with a distinct payload; a matching Pong counts in
    /// `pongs_received`; no matching pong within 5 s closes with code 1008.
    ServerPing,
}

impl Fault {
    /// Whether the fault acts on the listener / upgrade rather than on a
    /// live connection.
    pub fn is_listener_fault(&self) -> bool {
        matches!(
            self,
            Fault::Refuse { .. } | Fault::Http429 { .. } | Fault::Http503 { .. }
        )
    }
}

// ---------------------------------------------------------------------------
// Shared state

/// Locks a mutex, ignoring poisoning (a panicking thread must not take the
/// whole simulator down with it).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A scripted HTTP rejection of upcoming upgrades.
#[derive(Debug, Clone)]
pub(crate) struct Reject {
    pub status: u16,
    pub retry_after_s: Option<u32>,
    pub remaining: u32,
}

/// Registry entry of a live or closed connection.
#[derive(Debug)]
pub(crate) struct ConnEntry {
    pub info: ConnInfo,
    pub faults: Sender<Fault>,
}

/// Mutable state guarded by `Inner::state`.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Bumped on every notified change (lets `wait_until` avoid lost wake-ups).
    pub generation: u64,
    pub conns: BTreeMap<ConnId, ConnEntry>,
    pub next_conn_id: u64,
    pub counters: SimSnapshot,
    pub rejects: VecDeque<Reject>,
    pub refuse_until: Option<Instant>,
}

/// A connection's event channel, fed by the generator.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub id: ConnId,
    pub tx: Sender<Arc<Event>>,
}

/// Everything the simulator threads share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub cfg: SimConfig,
    pub port: u16,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub shutdown: AtomicBool,
    pub state: Mutex<State>,
    pub changed: Condvar,
    pub sent: Mutex<Vec<SentRecord>>,
    pub subscribers: Mutex<Vec<Subscriber>>,
    pub listener: Mutex<Option<TcpListener>>,
    pub conn_threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Inner {
    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Mutates the state and wakes every `wait_until`.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = lock(&self.state);
        let r = f(&mut st);
        st.generation = st.generation.wrapping_add(1);
        drop(st);
        self.changed.notify_all();
        r
    }

    /// Mutates the state without waking anyone (counters that are only
    /// observed through the periodic re-evaluation).
    pub(crate) fn update_quiet<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut lock(&self.state))
    }
}

fn bind_listener(port: u16) -> io::Result<TcpListener> {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())?;
    sock.listen(1024)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

fn run_acceptor(inner: Arc<Inner>) {
    let mut accepted = Vec::new();
    while !inner.is_shutdown() {
        {
            let mut guard = lock(&inner.listener);
            if guard.is_none() {
                let refusing = lock(&inner.state)
                    .refuse_until
                    .is_some_and(|until| Instant::now() < until);
                if !refusing {
                    if let Ok(l) = bind_listener(inner.port) {
                        *guard = Some(l);
                        inner.update(|st| st.refuse_until = None);
                    }
                }
            }
            if let Some(listener) = guard.as_ref() {
                while accepted.len() < 64 {
                    match listener.accept() {
                        Ok((tcp, _)) => accepted.push(tcp),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            }
        }
        if accepted.is_empty() {
            thread::sleep(ACCEPT_POLL);
            continue;
        }
        let mut threads = lock(&inner.conn_threads);
        threads.retain(|h| !h.is_finished());
        for tcp in accepted.drain(..) {
            let inner2 = Arc::clone(&inner);
            let spawned = thread::Builder::new()
                .name("sim-conn".into())
                .spawn(move || conn::run(inner2, tcp));
            if let Ok(h) = spawned {
                threads.push(h);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Public handle

/// A running simulator. Stops (joining all its threads) on [`Sim::shutdown`]
/// or when dropped.
pub struct Sim {
    inner: Arc<Inner>,
    ca_pem: Option<String>,
    stop_tx: Option<Sender<()>>,
    acceptor: Option<JoinHandle<()>>,
    generator: Option<JoinHandle<()>>,
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
    /// Starts the simulator on `127.0.0.1:0` (generating the CA first when
    /// `cfg.tls`). Symbols are normalised to uppercase.
    pub fn start(mut cfg: SimConfig) -> io::Result<Sim> {
        for s in &mut cfg.symbols {
            *s = s.trim().to_ascii_uppercase();
        }
        cfg.symbols.retain(|s| !s.is_empty());
        cfg.symbols.dedup();
        let tls = if cfg.tls {
            Some(tls::generate()?)
        } else {
            None
        };
        let listener = bind_listener(0)?;
        let port = listener.local_addr()?.port();
        let inner = Arc::new(Inner {
            cfg,
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
        };
        let gen_inner = Arc::clone(&inner);
        sim.generator = Some(
            thread::Builder::new()
                .name("sim-generator".into())
                .spawn(move || market::run_generator(gen_inner, stop_rx))?,
        );
        let acc_inner = Arc::clone(&inner);
        sim.acceptor = Some(
            thread::Builder::new()
                .name("sim-acceptor".into())
                .spawn(move || run_acceptor(acc_inner))?,
        );
        Ok(sim)
    }

    /// The listening port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// `"wss://localhost:PORT"` with TLS (the certificate is valid for DNS
    /// name `localhost` and IP `127.0.0.1`), `"ws://127.0.0.1:PORT"` without.
    pub fn base_url(&self) -> String {
        if self.inner.tls.is_some() {
            format!("wss://localhost:{}", self.inner.port)
        } else {
            format!("ws://127.0.0.1:{}", self.inner.port)
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

    /// Applies a fault. Listener faults (`Refuse`, `Http429`, `Http503`) act on
    /// the listener / upcoming upgrades and take effect before this returns;
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
            let _ = entry.faults.send(fault.clone());
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
            let _ = entry.faults.send(fault);
        }
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
            _ => {}
        }
    }

    fn push_reject(&self, status: u16, retry_after_s: Option<u32>, count: u32) {
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

    /// Ground truth: every data message flushed to a client, in send order.
    /// Empty when [`SimConfig::record`] is false.
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
