//! A feed's connection slots: its sessions (the primary, a hot standby, a replacement
//! overlapping a connection it replaces), and what is known across them — which one carries the
//! feed, which is oldest, whether there is room for another. Published for status lines.

use std::time::Instant;

use super::action::SessionId;
use super::session::{Session, State};
use crate::config::ReconnectConfig;
use crate::metrics::{FeedState, FeedStats, SlotRole, StateChange, MAX_SLOTS};

/// Connections of a feed that may be live at once (a third slot may hold one that failed).
const LIVE_SLOTS: usize = 2;

/// The sessions of one feed.
#[derive(Debug)]
pub(crate) struct Slots {
    list: Vec<Session>,
    next_id: u32,
    cfg: ReconnectConfig,
    /// What was last published per role (indexed by `SlotRole as usize`): state and connection
    /// number, `None` while no slot has that role. A change is recorded for the manifest.
    published: [Option<(FeedState, u32)>; MAX_SLOTS],
}

impl Slots {
    /// No session yet.
    pub(crate) fn new(cfg: ReconnectConfig) -> Slots {
        Slots {
            list: Vec::with_capacity(MAX_SLOTS),
            next_id: 0,
            cfg,
            published: [None; MAX_SLOTS],
        }
    }

    /// Adds a session for target `target`; it makes its first attempt at once.
    pub(crate) fn add(&mut self, role: SlotRole, target: usize) -> SessionId {
        self.next_id += 1;
        let id = SessionId(self.next_id);
        self.list.push(Session::new(id, role, target, self.cfg));
        id
    }

    /// Number of slots.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Slot `k`.
    #[inline]
    pub(crate) fn get(&self, k: usize) -> &Session {
        &self.list[k]
    }

    /// Slot `k`, to change.
    #[inline]
    pub(crate) fn get_mut(&mut self, k: usize) -> &mut Session {
        &mut self.list[k]
    }

    /// Every slot.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Session> {
        self.list.iter()
    }

    /// Every slot, to change.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Session> {
        self.list.iter_mut()
    }

    /// The slot of session `id`.
    #[inline]
    pub(crate) fn index_of(&self, id: SessionId) -> Option<usize> {
        self.list.iter().position(|s| s.id == id)
    }

    /// The connection number of a slot other than `k` that carries the feed, if one does.
    #[inline]
    pub(crate) fn carrier_besides(&self, k: usize) -> Option<u32> {
        self.list
            .iter()
            .enumerate()
            .find(|(j, s)| *j != k && s.carries())
            .map(|(_, s)| s.conn_no)
    }

    /// Whether a slot other than `k` is still trying or working (neither failed nor ended).
    pub(crate) fn others_alive(&self, k: usize) -> bool {
        self.list
            .iter()
            .enumerate()
            .any(|(j, s)| j != k && !s.is_done())
    }

    /// Whether another connection may be opened: a slot that failed for good (a standby refused
    /// by its host) takes no room.
    pub(crate) fn room(&self) -> bool {
        self.list
            .iter()
            .filter(|s| !matches!(s.state, State::Failed))
            .count()
            < LIVE_SLOTS
    }

    /// The live slot opened first among those `pick` accepts (its opening instant given).
    pub(crate) fn oldest_live(&self, pick: impl Fn(Instant) -> bool) -> Option<usize> {
        self.list
            .iter()
            .enumerate()
            .filter_map(|(k, s)| s.live().map(|l| (l.opened, k)))
            .filter(|(opened, _)| pick(*opened))
            .min()
            .map(|(_, k)| k)
    }

    /// Removes the slots whose session ended (a rotation finished).
    pub(crate) fn remove_retired(&mut self) {
        self.list.retain(|s| !matches!(s.state, State::Retired));
    }

    /// Publishes each slot's role and state, and the feed's: the best of its slots. A role
    /// whose state or connection changed since the last call gets a [`StateChange`] recorded
    /// (cold: only on a change).
    pub(crate) fn publish(&mut self, stats: &FeedStats) {
        let mut best: Option<FeedState> = None;
        let mut now: [Option<(FeedState, u32)>; MAX_SLOTS] = [None; MAX_SLOTS];
        for (i, s) in self.list.iter().enumerate() {
            let state = s.feed_state();
            stats.set_slot(i, s.role, state, s.conn_no);
            if best.is_none_or(|b| rank(state) > rank(b)) {
                best = Some(state);
            }
            // Two slots of one role (one failed for good beside a live one): the better one.
            let lane = &mut now[s.role as usize];
            if lane.is_none_or(|(b, _)| rank(state) > rank(b)) {
                *lane = Some((state, s.conn_no));
            }
        }
        stats.set_slot_count(self.list.len());
        stats.set_state(best.unwrap_or(FeedState::Failed));
        if now != self.published {
            record_changes(stats, &self.published, &now);
            self.published = now;
        }
    }
}

#[cold]
fn record_changes(
    stats: &FeedStats,
    before: &[Option<(FeedState, u32)>; MAX_SLOTS],
    after: &[Option<(FeedState, u32)>; MAX_SLOTS],
) {
    let at_unix_ns = crate::clock::unix_ns();
    for (role, (b, a)) in SlotRole::ALL.into_iter().zip(before.iter().zip(after)) {
        if b != a {
            stats.record_state_change(StateChange {
                at_unix_ns,
                role,
                state: a.map(|(s, _)| s),
                conn: a.or(*b).map_or(0, |(_, c)| c),
            });
        }
    }
}

/// Order of states when a feed's slots are summed up: the best one is the feed's.
fn rank(s: FeedState) -> u8 {
    match s {
        FeedState::Streaming => 7,
        FeedState::Subscribing => 6,
        FeedState::Handshaking => 5,
        FeedState::Connecting => 4,
        FeedState::Backoff => 3,
        FeedState::CircuitOpen => 2,
        FeedState::Stopped => 1,
        FeedState::Failed => 0,
    }
}

/// How log lines name a session: its role and its latest connection's number.
pub(crate) struct Who(SlotRole, u32);

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            0 => write!(f, "{} (no connection yet)", self.0.name()),
            n => write!(f, "{} connection {n}", self.0.name()),
        }
    }
}

impl Session {
    /// Its name in log lines: role and connection number.
    pub(crate) fn who(&self) -> Who {
        Who(self.role, self.conn_no)
    }
}
