//! The state every simulator thread shares ([`Inner`]): configuration,
//! market, connection registry and counters, ground truth, the listener.

use std::collections::{BTreeMap, VecDeque};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::base::lock;
use super::config::SimConfig;
use super::fault::Injected;
#[cfg(doc)]
use super::fault::{BookFault, Fault};
use super::market::{Event, Market};
use super::observe::{ConnId, ConnInfo, SentRecord, SimSnapshot};
use super::private::state::Private;
use super::symbol::SymInfo;

/// Capacity of a connection's event channel; the generator drops events for
/// a connection whose channel is full.
const EVENT_QUEUE: usize = 16 * 1024;

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
    pub faults: Sender<Injected>,
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
    /// `SUBSCRIBE` requests still to ignore ([`Fault::IgnoreSubscribe`]).
    pub ignore_subscribes: u64,
    /// REST snapshots still to serve stale ([`BookFault::SnapshotStale`]).
    pub stale_snapshots: u64,
    /// Scripted answers to the next plain requests: status and `Retry-After` seconds
    /// ([`Sim::reject_rest`](super::api::Sim::reject_rest)).
    pub rest_rejects: VecDeque<(u16, Option<u32>)>,
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
    /// Names of each configured symbol on every venue.
    pub info: Arc<Vec<SymInfo>>,
    /// The synthetic market (generator, snapshots, REST).
    pub market: Mutex<Market>,
    pub port: u16,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub shutdown: AtomicBool,
    pub state: Mutex<State>,
    pub changed: Condvar,
    pub sent: Mutex<Vec<SentRecord>>,
    pub subscribers: Mutex<Vec<Subscriber>>,
    pub listener: Mutex<Option<TcpListener>>,
    pub conn_threads: Mutex<Vec<JoinHandle<()>>>,
    /// Accounts, listen keys and listeners of the private streams.
    pub private: Private,
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

    /// Registers a new connection upgraded on `path` with the streams
    /// subscribed in its URL: its id (the next one), the event channel the
    /// generator feeds (only when `market`: a private connection's channel is
    /// closed at once) and the channel its faults arrive on.
    pub(crate) fn register_with(
        &self,
        path: String,
        streams: Vec<String>,
        market: bool,
    ) -> (ConnId, Receiver<Arc<Event>>, Receiver<Injected>) {
        let (ev_tx, ev_rx) = crossbeam_channel::bounded(EVENT_QUEUE);
        let (fault_tx, fault_rx) = crossbeam_channel::unbounded();
        let id = self.update(|st| {
            let id = ConnId(st.next_conn_id);
            st.next_conn_id += 1;
            st.conns.insert(
                id,
                ConnEntry {
                    info: ConnInfo {
                        id,
                        path,
                        streams,
                        open: true,
                        messages_sent: 0,
                        stalled: false,
                        withheld: 0,
                        muted: Vec::new(),
                    },
                    faults: fault_tx,
                },
            );
            id
        });
        if market {
            lock(&self.subscribers).push(Subscriber { id, tx: ev_tx });
        }
        (id, ev_rx, fault_rx)
    }

    /// Marks a connection closed and stops feeding it events.
    pub(crate) fn unregister(&self, id: ConnId) {
        lock(&self.subscribers).retain(|s| s.id != id);
        self.mark_closed(id);
    }

    /// Shows a connection closed (`open` and `stalled` false).
    pub(crate) fn mark_closed(&self, id: ConnId) {
        self.update_conn(id, |_, info| {
            info.open = false;
            info.stalled = false;
        });
    }

    /// Changes the counters and the registry entry of connection `id`
    /// together, and wakes every `wait_until`. (Registered connections stay
    /// listed once closed, so the entry of a connection being served is
    /// always there; for an unknown id nothing changes.)
    pub(crate) fn update_conn(&self, id: ConnId, f: impl FnOnce(&mut SimSnapshot, &mut ConnInfo)) {
        self.update(|st| {
            if let Some(e) = st.conns.get_mut(&id) {
                f(&mut st.counters, &mut e.info);
            }
        });
    }
}
