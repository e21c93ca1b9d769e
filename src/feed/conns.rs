//! The connection side of a feed: its sessions, where they connect, what a failure or a loss
//! means for each (backoff, circuit breaker, permanent failure, an at-once reconnect), the
//! venue's answers to subscriptions, and rotations. No I/O: it asks for it with [`Action`]s.
//! What a loss means for the data (an outage, books to resync) is the data side's business;
//! the feed core calls both in order.

use std::mem;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

mod failure;
mod private;

use super::action::{Action, Actions, SessionId};
use super::limiter::{Admit, Priority};
use super::params::Target;
use super::report::{suppressed_note, Out};
use super::resolve::{Addrs, Lookup};
use super::rotation::{self, Rotations, SilentCounts};
use super::session::{Lost, Session, State};
use super::shared::Shared;
use super::sink::Sink;
use super::slots::Slots;
use crate::metrics::{FeedStats, SlotRole};
use crate::tick::{DisconnectReason, Health};
use crate::venue::{Seq, StreamKey};

/// What a slot's timers came to.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    /// Nothing the rest of the feed needs to know.
    Quiet,
    /// A connection attempt started.
    Attempt,
    /// The live connection ended.
    Lost(Lost),
}

/// A live connection being given up, between the two halves of [`Connections::begin_loss`]
/// and [`Connections::end_loss`].
#[derive(Debug)]
pub(crate) struct Loss {
    /// Another connection carries the feed: nothing is lost.
    pub carried: bool,
    retire: bool,
    at_once: bool,
    reason: DisconnectReason,
}

/// A feed's connections.
#[derive(Debug)]
pub(crate) struct Connections {
    /// What the sessions share (venue, config, streams wanted, request ids).
    sh: Shared,
    max_age: Option<Duration>,
    targets: Vec<Target>,
    /// The sessions.
    pub slots: Slots,
    rotations: Rotations,
    addrs: Addrs,
    rng: fastrand::Rng,
    conn_count: u32,
    /// Cadence streams found silent during this turn, by session.
    silent: Vec<(SessionId, u16)>,
    /// Since when no connection has carried the feed (from its first failed attempt when it
    /// never connected); `None` while one does. Measured against `give_up_after_ms`.
    down_since: Option<Instant>,
    /// An account's credential changed (a new listen key): the live connection is replaced.
    rekey: bool,
}

impl Connections {
    /// The connections of a feed sharing `sh`: a primary on the first target, a standby on the
    /// second.
    pub(crate) fn new(
        sh: Shared,
        max_age: Option<Duration>,
        targets: Vec<Target>,
        seed: u64,
    ) -> Connections {
        let mut slots = Slots::new(sh.cfg);
        slots.add(SlotRole::Primary, 0);
        if targets.len() > 1 {
            slots.add(SlotRole::Standby, 1);
        }
        let addrs = Addrs::new(
            targets
                .iter()
                .map(|t| (t.endpoint.host.as_str(), t.endpoint.port)),
        );
        Connections {
            sh,
            max_age,
            targets,
            slots,
            rotations: Rotations::default(),
            addrs,
            rng: fastrand::Rng::with_seed(seed),
            conn_count: 0,
            silent: Vec::new(),
            down_since: None,
            rekey: false,
        }
    }

    /// Target `t`.
    pub(crate) fn target(&self, t: usize) -> &Target {
        &self.targets[t]
    }

    /// Whether a slot other than `k` carries the feed.
    #[inline]
    pub(crate) fn carried_besides(&self, k: usize) -> bool {
        self.slots.carrier_besides(k).is_some()
    }

    // ----- time -------------------------------------------------------------------------

    /// Slot `k`'s timers at `now`: an attempt that is due, a set-up limit, a live connection's
    /// duties.
    pub(crate) fn step<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        now: Instant,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) -> Step {
        let session = self.slots.get(k);
        if session.attempt_due(now) {
            if self.held() {
                return Step::Quiet;
            }
            return self.begin_attempt(k, now, actions, out);
        }
        if let Some(reason) = session.setup_expired(now) {
            actions.push(Action::Abort {
                session: session.id,
            });
            self.fail(k, reason, None, now, actions, out);
            return Step::Quiet;
        }
        if session.live().is_none() {
            return Step::Quiet;
        }
        let result = self
            .slots
            .get_mut(k)
            .poll_live(now, &mut self.sh, actions, &mut self.silent);
        match result {
            Ok(()) => {
                self.slots.get_mut(k).announce(&self.sh, out);
                Step::Quiet
            }
            Err(lost) => Step::Lost(lost),
        }
    }

    /// The next instant something of the connections is due.
    pub(crate) fn deadline(&self, now: Instant) -> Option<Instant> {
        let held = self.held();
        let sessions = self.slots.iter().flat_map(|s| {
            let age = s
                .live()
                .and_then(|l| self.rotations.age_due(l, self.max_age));
            // An attempt held for a credential waits for it, not for the clock.
            let own = match held && s.attempt_due(now) {
                true => None,
                false => s.deadline(&self.sh.cfg, now),
            };
            [own, age]
        });
        sessions
            .chain([self.rotations.handover_deadline()])
            .flatten()
            .min()
    }

    // ----- attempts ---------------------------------------------------------------------

    /// Starts an attempt on slot `k`, unless the host's attempt budget or a venue's
    /// `Retry-After` says to wait.
    #[cold]
    fn begin_attempt<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        now: Instant,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) -> Step {
        let t = self.slots.get(k).target;
        let gate = &self.targets[t].gate;
        // A feed that is down asks before standbys and replacements (see `limiter`).
        let priority = match self.carried_besides(k) {
            false => Priority::Restore,
            true => Priority::Spare,
        };
        let session = self.slots.get_mut(k);
        let answer = gate.admit(now, priority, session.booked.take());
        let until = match answer {
            Admit::Now => None,
            Admit::Booked(at) => {
                session.booked = Some(at);
                Some(at)
            }
            Admit::Later(at) => Some(at),
        };
        if let Some(until) = until {
            FeedStats::bump(&out.report.stats.throttled);
            if let Some(suppressed) = out.report.throttle.allow(now) {
                warn!(
                    "[{}] holding connection attempts to {} for {} ms: per-host attempt budget or the venue's Retry-After{}",
                    out.report.name,
                    gate.host(),
                    until.saturating_duration_since(now).as_millis(),
                    suppressed_note(suppressed)
                );
            }
            self.slots.get_mut(k).state = State::Backoff { until };
            return Step::Quiet;
        }
        FeedStats::bump(&out.report.stats.attempts);
        let url = match &self.sh.private_url {
            Some(private) => Some(private.clone()),
            None => self.sh.url_subscription(&self.targets[t].url),
        };
        let session = self.slots.get_mut(k);
        session.in_url = url.is_some() && self.sh.private_url.is_none();
        match self.addrs.lookup(t) {
            Lookup::Ready(addr) => {
                session.attempt_started(now, &self.sh.cfg, false);
                actions.push(Action::Connect {
                    session: session.id,
                    target: t,
                    addr,
                    url,
                });
            }
            Lookup::Wait { ask } => {
                session.attempt_started(now, &self.sh.cfg, true);
                if ask {
                    actions.push(Action::Resolve { target: t });
                }
            }
        }
        Step::Attempt
    }

    /// The resolver answered for target `t`: the sessions waiting on it connect, or fail.
    #[cold]
    pub(crate) fn on_resolved<S: Sink + ?Sized>(
        &mut self,
        t: usize,
        answer: Result<std::net::SocketAddr, DisconnectReason>,
        now: Instant,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) {
        let addr = self.addrs.resolved(t, answer);
        for k in 0..self.slots.len() {
            let session = self.slots.get_mut(k);
            if session.target != t || !matches!(session.state, State::Resolving { .. }) {
                continue;
            }
            match addr {
                Ok(addr) => {
                    session.resolved();
                    let url = match &self.sh.private_url {
                        Some(private) => Some(private.clone()),
                        None => session
                            .in_url
                            .then(|| self.sh.url_subscription(&self.targets[t].url))
                            .flatten(),
                    };
                    session.in_url = url.is_some() && self.sh.private_url.is_none();
                    actions.push(Action::Connect {
                        session: session.id,
                        target: t,
                        addr,
                        url,
                    });
                }
                Err(reason) => self.fail(k, reason, None, now, actions, out),
            }
        }
    }

    /// Session `id`'s TCP connection is up.
    pub(crate) fn on_connected(&mut self, id: SessionId, now: Instant) {
        if let Some(k) = self.slots.index_of(id) {
            self.slots.get_mut(k).tcp_connected(now, &self.sh.cfg);
        }
    }

    /// Session `id`'s WebSocket is open: subscribe to every wanted stream. Returns the streams
    /// its URL subscribed.
    #[cold]
    pub(crate) fn on_open<S: Sink + ?Sized>(
        &mut self,
        id: SessionId,
        now: Instant,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) -> Vec<u16> {
        let Some(k) = self.slots.index_of(id) else {
            return Vec::new();
        };
        self.conn_count += 1;
        let conn_no = self.conn_count;
        let (role, t) = (self.slots.get(k).role, self.slots.get(k).target);
        debug!(
            "[{}] connection {conn_no} ({}) open to {}; subscribing {} streams{}",
            out.report.name,
            role.name(),
            self.targets[t].url,
            self.sh.active.iter().filter(|a| **a).count(),
            if self.slots.get(k).in_url {
                " in its URL"
            } else {
                ""
            }
        );
        let in_url = self
            .slots
            .get_mut(k)
            .open(conn_no, now, &mut self.sh, actions);
        self.slots.get_mut(k).announce(&self.sh, out);
        in_url
    }

    // ----- losses -----------------------------------------------------------------------

    /// Slot `k`'s live connection ended: abort it, count it, end a rotation it was part of, and
    /// report it. The feed core tells the data side when no other connection carries the feed,
    /// then calls [`Connections::end_loss`].
    #[cold]
    pub(crate) fn begin_loss<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        reason: DisconnectReason,
        detail: Option<&str>,
        now: Instant,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) -> Loss {
        let session = self.slots.get_mut(k);
        let id = session.id;
        let State::Live(live) = mem::replace(&mut session.state, State::Idle) else {
            return Loss {
                carried: self.carried_besides(k),
                retire: false,
                at_once: false,
                reason,
            };
        };
        actions.push(Action::Abort { session: id });
        FeedStats::bump(&out.report.stats.disconnects);
        out.report.record_detection(live.liveness.silent_for(now));
        let conn = live.conn_no;
        let retire = self.rotations.on_lost(&mut self.slots, id, now);
        let carrier = self.slots.carrier_besides(k);
        let url = &self.targets[self.slots.get(k).target].url;
        let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
        let name = &out.report.name;
        let role = self.slots.get(k).role.name();
        match carrier {
            Some(other) => {
                warn!(
                    "[{name}] {role} connection {conn} to {url} lost: {reason}{detail}; connection {other} carries the feed"
                );
                out.health(Health::ConnectionLost { conn, reason });
            }
            None => {
                warn!("[{name}] {role} connection {conn} to {url} lost: {reason}{detail}");
                self.down_since = Some(now);
                out.health(Health::Disconnected { conn, reason });
            }
        }
        // A session that streamed for a while and then ended is an event on a healthy venue
        // (a clean close, a reset, the daily cut): the first retry goes out at once. Backoff is
        // for attempts that keep failing; the venue's Retry-After and the host's connection
        // budget still apply, and a session must last `at_once_after_ms` to earn this, so a
        // venue that drops every connection early is not hammered.
        let at_once_after = Duration::from_millis(self.sh.cfg.at_once_after_ms);
        // An account whose credential ended (a listen key expired) logs in again at once, when
        // the connection streamed or lasted: one the venue ends each time it opens backs off.
        let lasted = now.saturating_duration_since(live.opened) >= at_once_after;
        let at_once = (live.productive
            && lasted
            && !reason.is_permanent()
            && self.slots.get(k).retry_after.is_none())
            || (reason == DisconnectReason::UserStreamExpired && (live.productive || lasted));
        Loss {
            carried: carrier.is_some(),
            retire,
            at_once,
            reason,
        }
    }

    /// Decides what slot `k` does after its connection was lost.
    #[cold]
    pub(crate) fn end_loss<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        loss: Loss,
        detail: Option<&str>,
        now: Instant,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) {
        let reason = loss.reason;
        let session = self.slots.get_mut(k);
        if loss.retire {
            session.state = State::Retired;
        } else if loss.at_once {
            session.backoff.on_productive();
            session.state = State::Backoff { until: now };
            info!(
                "[RECONNECT] [{}] {}: reconnecting to {} at once after: {reason}",
                out.report.name,
                session.who(),
                self.targets[session.target].url
            );
        } else {
            self.fail(k, reason, detail, now, actions, out);
        }
    }

    // ----- what the venue says ----------------------------------------------------------

    /// A frame arrived on slot `k`'s connection: it is alive.
    #[inline]
    pub(crate) fn on_frame(&mut self, k: usize, now: Instant) {
        if let Some(live) = self.slots.get_mut(k).live_mut() {
            live.liveness.on_frame(now);
        }
    }

    /// Slot `k`'s connection delivered data of stream `i`, numbered `seq` (`None`: a message
    /// with no update). The session was productive: its next failure starts the backoff over.
    #[inline]
    pub(crate) fn on_data(&mut self, k: usize, i: usize, seq: Option<Seq>, now: Instant) {
        let session = self.slots.get_mut(k);
        let Some(live) = session.live_mut() else {
            return;
        };
        live.cadence.on_data(i, now);
        if !live.productive {
            live.productive = true;
            session.backoff.on_productive();
        }
        let Some(live) = session.live_mut() else {
            return;
        };
        if let Some(seq) = seq.filter(|s| !s.is_unnumbered()) {
            if live.first_id[i] == 0 {
                live.first_id[i] = seq.id;
            }
            live.last_id[i] = seq.id;
        }
    }

    /// A request of slot `k` (or, on OKX, one stream of it) was acknowledged. Returns the
    /// streams acknowledged.
    pub(crate) fn on_ack<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        id: Option<u64>,
        stream: Option<StreamKey<'_>>,
        now: Instant,
        out: &mut Out<S>,
    ) -> Vec<u16> {
        let acked = self.slots.get_mut(k).on_ack(id, stream, now, &self.sh, out);
        for &i in &acked {
            self.sh.confirmed[usize::from(i)] = true;
        }
        acked
    }

    /// The venue answered a request of slot `k` with an error.
    #[cold]
    pub(crate) fn on_venue_error<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        id: Option<u64>,
        code: i64,
        msg: &str,
        out: &mut Out<S>,
    ) -> Result<(), Lost> {
        self.slots
            .get_mut(k)
            .on_venue_error(id, code, msg, &mut self.sh, out)
    }

    // ----- rotations --------------------------------------------------------------------

    /// Feed-wide connection duties after the slots stepped: rotations (see
    /// [`Rotations::maintain`]), then the slots' states are published.
    pub(crate) fn maintain<S: Sink + ?Sized>(
        &mut self,
        now: Instant,
        resync: Option<u16>,
        counts: &mut impl SilentCounts,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) {
        let silent = mem::take(&mut self.silent);
        let mut ctx = rotation::Ctx {
            slots: &mut self.slots,
            streams: &self.sh.streams,
            active: &self.sh.active,
            actions,
            out,
        };
        let age = self.max_age;
        if self.rekey && !self.rotations.busy() {
            self.rekey = false;
            self.rotations.rekey(now, &mut ctx);
        }
        self.rotations
            .maintain(now, age, resync, &silent, counts, &mut ctx);
        self.slots.remove_retired();
        if self.down_since.is_some() && self.slots.iter().any(Session::carries) {
            self.down_since = None;
        }
        self.slots.publish(&out.report.stats);
    }

    /// Whether a book's resync can be started now (no rotation under way).
    pub(crate) fn can_resync(&self) -> bool {
        !self.rotations.busy() && self.slots.oldest_live(|_| true).is_some()
    }

    /// The engine stops: every live connection is closed politely.
    pub(crate) fn shutdown(&mut self, actions: &mut Actions) {
        for s in self.slots.iter_mut() {
            if s.live().is_some() {
                actions.push(Action::Close { session: s.id });
            }
        }
    }
}
