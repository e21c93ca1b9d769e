//! One connection's state machine, without I/O. It is told what happened (an attempt started,
//! TCP connected, the WebSocket opened, a frame or data arrived, time passed) and answers with
//! [`Action`]s (messages to write) and its next deadline; its driver does the I/O, and its feed
//! ([`super::conns`]) decides what a loss means across connections.
//!
//! ```text
//!   Idle → Resolving → Connecting → Handshaking → Live (subscribing → streaming)
//!     ▲                                              │ close / reset / EOF / no pong / ack timeout
//!     └──────────── Backoff ◄────────────────────────┘
//!                     │ max_consecutive_failures in a row
//!                     ▼
//!                CircuitOpen ──(cooldown)──► Idle
//!   permanent error (bad certificate, HTTP 401/403/404, every stream rejected) → Failed
//! ```
//!
//! Its tests drive it with a made-up clock and canned events, without sockets.

use std::time::{Duration, Instant};

use log::{debug, error, info, warn};

use super::action::{Action, Actions, Outgoing, SessionId};
use super::backoff::{Backoff, Decision, RandomSource};
use super::liveness::{self, Liveness};
use super::login::Login;
use super::report::Out;
use super::shared::Shared;
use super::sink::Sink;
use super::subscribe::{Refusal, Subscriptions};
use super::watch::StreamWatch;
use crate::config::ReconnectConfig;
use crate::metrics::{FeedState, FeedStats, SlotRole};
use crate::tick::{DisconnectReason, Health};
use crate::venue::{StreamKey, StreamKind};

/// How long to stay away after an HTTP 418 (IP banned) that names no `Retry-After`.
const BAN_WAIT: Duration = Duration::from_secs(120);

/// A connection could not go on: why, and detail for the log.
pub(crate) type Lost = (DisconnectReason, Option<String>);

/// A WebSocket that is open: subscribing, then streaming.
#[derive(Debug)]
pub(crate) struct Live {
    /// The feed's number of this connection.
    pub conn_no: u32,
    /// When it opened.
    pub opened: Instant,
    /// No frame for a while → ping → no answer → dead.
    pub liveness: Liveness,
    /// Silence of the streams with a guaranteed cadence, on this connection alone.
    pub cadence: StreamWatch,
    /// Its subscribe requests.
    pub subs: Subscriptions,
    /// An account's log-in (and its subscriptions), on a private connection.
    pub login: Option<Login>,
    /// `Connected` was announced: every wanted stream is acknowledged.
    pub announced: bool,
    /// A data message arrived on this connection.
    pub productive: bool,
    /// When the venue's keep-alive ping is next due, for venues that want one.
    pub keepalive_at: Option<Instant>,
    /// Per stream: the first and the last id this connection delivered (0: none yet).
    pub first_id: Vec<u64>,
    /// See `first_id`.
    pub last_id: Vec<u64>,
}

/// A session's state; states carry their data.
#[derive(Debug)]
pub(crate) enum State {
    /// About to start a connection attempt.
    Idle,
    /// The target's host name is being resolved (off the feed thread).
    Resolving { deadline: Instant },
    /// TCP connect in flight.
    Connecting { deadline: Instant },
    /// TLS and WebSocket upgrade in flight.
    Handshaking { deadline: Instant },
    /// Open.
    Live(Box<Live>),
    /// Waiting before the next attempt.
    Backoff { until: Instant },
    /// Breaker open.
    CircuitOpen { until: Instant },
    /// Stopped for good.
    Failed,
    /// Done: removed at the end of this turn (a rotation ended).
    Retired,
}

/// One connection slot of a feed: its state machine, backoff, and what it is for.
#[derive(Debug)]
pub(crate) struct Session {
    /// Its id within the feed.
    pub id: SessionId,
    /// Primary, standby or replacement.
    pub role: SlotRole,
    /// Index of its target (URL, gate).
    pub target: usize,
    /// The feed's number of its latest connection (0 before the first).
    pub conn_no: u32,
    /// Where it is.
    pub state: State,
    /// Backoff and breaker.
    pub backoff: Backoff,
    /// A Retry-After the venue asked for, applied to the next wait.
    pub retry_after: Option<Duration>,
    /// This attempt (or open connection) subscribes in its URL.
    pub in_url: bool,
    /// The host's attempt budget booked this session's next attempt at this instant: it goes
    /// then without asking again.
    pub booked: Option<Instant>,
}

impl Session {
    /// A session about to make its first attempt.
    pub(crate) fn new(id: SessionId, role: SlotRole, target: usize, cfg: ReconnectConfig) -> Self {
        Session {
            id,
            role,
            target,
            conn_no: 0,
            state: State::Idle,
            backoff: Backoff::new(cfg),
            retry_after: None,
            in_url: false,
            booked: None,
        }
    }

    /// The state as published.
    pub(crate) fn feed_state(&self) -> FeedState {
        match &self.state {
            State::Idle | State::Resolving { .. } | State::Connecting { .. } => {
                FeedState::Connecting
            }
            State::Handshaking { .. } => FeedState::Handshaking,
            State::Live(l) if !l.announced => FeedState::Subscribing,
            State::Live(_) => FeedState::Streaming,
            State::Backoff { .. } => FeedState::Backoff,
            State::CircuitOpen { .. } => FeedState::CircuitOpen,
            State::Failed => FeedState::Failed,
            State::Retired => FeedState::Stopped,
        }
    }

    /// Live with every wanted stream acknowledged: losing another connection loses nothing.
    #[inline]
    pub(crate) fn carries(&self) -> bool {
        matches!(&self.state, State::Live(l) if l.announced)
    }

    /// The open connection, if it is open.
    #[inline]
    pub(crate) fn live(&self) -> Option<&Live> {
        match &self.state {
            State::Live(l) => Some(l),
            _ => None,
        }
    }

    /// The open connection, to change, if it is open.
    #[inline]
    pub(crate) fn live_mut(&mut self) -> Option<&mut Live> {
        match &mut self.state {
            State::Live(l) => Some(l),
            _ => None,
        }
    }

    /// Whether a connection is being set up (resolving, connecting, handshaking).
    pub(crate) fn is_setting_up(&self) -> bool {
        matches!(
            self.state,
            State::Resolving { .. } | State::Connecting { .. } | State::Handshaking { .. }
        )
    }

    /// Whether it has stopped for good or ended.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Failed | State::Retired)
    }

    /// Whether an attempt is due at `now` (idle, or its wait is over).
    pub(crate) fn attempt_due(&self, now: Instant) -> bool {
        match self.state {
            State::Idle => true,
            State::Backoff { until } | State::CircuitOpen { until } => now >= until,
            _ => false,
        }
    }

    /// An attempt started at `now`: the connect limit covers name resolution and TCP connect.
    /// `resolving` when the host's address is being looked up first.
    pub(crate) fn attempt_started(&mut self, now: Instant, cfg: &ReconnectConfig, resolving: bool) {
        let deadline = now + Duration::from_millis(cfg.connect_timeout_ms);
        self.state = if resolving {
            State::Resolving { deadline }
        } else {
            State::Connecting { deadline }
        };
    }

    /// The host's address is known: the TCP connect goes out, within the same limit.
    pub(crate) fn resolved(&mut self) {
        if let State::Resolving { deadline } = self.state {
            self.state = State::Connecting { deadline };
        }
    }

    /// TCP connected at `now`: TLS and the upgrade have `handshake_timeout_ms`.
    pub(crate) fn tcp_connected(&mut self, now: Instant, cfg: &ReconnectConfig) {
        if matches!(self.state, State::Connecting { .. }) {
            let deadline = now + Duration::from_millis(cfg.handshake_timeout_ms);
            self.state = State::Handshaking { deadline };
        }
    }

    /// The set-up limit that has passed at `now`, if one has.
    pub(crate) fn setup_expired(&self, now: Instant) -> Option<DisconnectReason> {
        match self.state {
            State::Resolving { deadline } | State::Connecting { deadline } if now >= deadline => {
                Some(DisconnectReason::ConnectTimeout)
            }
            State::Handshaking { deadline } if now >= deadline => {
                Some(DisconnectReason::HandshakeTimeout)
            }
            _ => None,
        }
    }

    /// The WebSocket opened at `now` as the feed's connection `conn_no`: subscribe to every
    /// wanted stream (the first request goes out now, the rest spaced) — or, when the URL named
    /// them, only check that the venue took them. Returns the streams subscribed by the URL.
    pub(crate) fn open(
        &mut self,
        conn_no: u32,
        now: Instant,
        sh: &mut Shared,
        actions: &mut Actions,
    ) -> Vec<u16> {
        self.conn_no = conn_no;
        let wanted: Vec<u16> = (0..sh.streams.len() as u16)
            .filter(|&i| sh.active[usize::from(i)])
            .collect();
        let limits = sh.streams.iter().zip(&sh.silence).map(|(s, &l)| {
            if has_cadence(s.kind) {
                l
            } else {
                Duration::MAX
            }
        });
        let n = sh.streams.len();
        let check = self.in_url.then(|| {
            let id = sh.next_request_id;
            sh.next_request_id += 1;
            id
        });
        let subs = match check {
            Some(id) => Subscriptions::in_url(id, now),
            None => Subscriptions::new(
                &wanted,
                sh.venue.max_streams_per_request(),
                sh.venue.request_spacing(),
                now,
            ),
        };
        let mut live = Box::new(Live {
            conn_no,
            opened: now,
            liveness: Liveness::new(
                now,
                Duration::from_millis(sh.cfg.stale_after_ms),
                Duration::from_millis(sh.cfg.pong_timeout_ms),
            ),
            cadence: StreamWatch::new(limits),
            subs,
            login: None,
            announced: false,
            productive: false,
            keepalive_at: sh.keepalive().map(|every| now + every),
            first_id: vec![0; n],
            last_id: vec![0; n],
        });
        let Some(id) = check else {
            if let Some(account) = &sh.account {
                let unix_ms = crate::clock::unix_ns() / 1_000_000;
                let (login, texts) = Login::start(account, now, unix_ms, &mut sh.next_request_id);
                live.login = Some(login);
                for text in texts {
                    let msg = Outgoing::Text(text);
                    actions.push(Action::Send {
                        session: self.id,
                        msg,
                    });
                }
            }
            self.state = State::Live(live);
            self.send_requests(now, sh, actions);
            return Vec::new();
        };
        for &i in &wanted {
            live.cadence.arm(usize::from(i), now);
        }
        self.state = State::Live(live);
        if let Some(text) = sh.venue.list_request(id) {
            actions.push(Action::Send {
                session: self.id,
                msg: Outgoing::Text(text),
            });
        }
        wanted
    }

    /// Sends the subscribe requests that are due.
    pub(crate) fn send_requests(&mut self, now: Instant, sh: &mut Shared, actions: &mut Actions) {
        let id = self.id;
        let Some(live) = self.live_mut() else {
            return;
        };
        while let Some(streams) = live.subs.next_request(now, &sh.active) {
            let request_id = sh.next_request_id;
            sh.next_request_id += 1;
            let text = sh.venue.subscribe_request(
                request_id,
                streams
                    .iter()
                    .map(|&i| sh.streams[usize::from(i)].name.as_str()),
            );
            actions.push(Action::Send {
                session: id,
                msg: Outgoing::Text(text),
            });
            live.subs.sent(request_id, streams, now);
        }
    }

    /// Time-driven duties of a live connection at `now`: follow-up subscribe requests, the ack
    /// limit, the venue's keep-alive, liveness. Streams with a guaranteed cadence that went
    /// silent on this connection are added to `silent`. An `Err` ends the connection.
    pub(crate) fn poll_live(
        &mut self,
        now: Instant,
        sh: &mut Shared,
        actions: &mut Actions,
        silent: &mut Vec<(SessionId, u16)>,
    ) -> Result<(), Lost> {
        self.send_requests(now, sh, actions);
        let id = self.id;
        let Some(live) = self.live_mut() else {
            return Ok(());
        };
        let ack_limit = Duration::from_millis(sh.cfg.ack_timeout_ms);
        let login_due = live.login.as_ref().and_then(|l| l.deadline(ack_limit));
        if [live.subs.ack_deadline(ack_limit), login_due]
            .into_iter()
            .flatten()
            .any(|t| now >= t)
        {
            return Err((DisconnectReason::AckTimeout, None));
        }
        // The venue's keep-alive, whatever the traffic.
        if live.keepalive_at.is_some_and(|t| now >= t) {
            ping(id, live, now, sh, actions);
        }
        match live.liveness.poll(now) {
            liveness::Action::None => {}
            liveness::Action::SendPing => {
                debug!(
                    "connection {} silent for {} ms: ping",
                    live.conn_no,
                    live.liveness.silent_for(now).as_millis()
                );
                ping(id, live, now, sh, actions);
            }
            liveness::Action::Dead => return Err((DisconnectReason::PongTimeout, None)),
        }
        // A stream with a guaranteed cadence silent on this connection while it lives: the
        // connection is replaced (make before break), which resubscribes the stream.
        live.cadence.poll(now, |i, _| silent.push((id, i as u16)));
        Ok(())
    }

    /// An attempt failed for `reason`. When the venue said how long to stay away (`Retry-After`,
    /// or a 418 ban), the next wait is at least that long: returns it, and whether it speaks
    /// for the whole host (429, 418: every feed of the IP waits).
    pub(crate) fn told_to_wait(&mut self, reason: DisconnectReason) -> Option<(Duration, bool)> {
        let DisconnectReason::Http {
            status,
            retry_after_s,
        } = reason
        else {
            return None;
        };
        let wait = match (status, retry_after_s) {
            (_, Some(s)) => Duration::from_secs(u64::from(s)),
            (418, None) => BAN_WAIT,
            _ => return None,
        };
        self.retry_after = Some(wait);
        Some((wait, matches!(status, 418 | 429)))
    }

    /// An attempt or a connection failed for a reason retrying can help: wait before the next
    /// attempt, longer after each failure in a row, and at least as long as the venue asked;
    /// the breaker opens after too many. Returns the decision and the wait.
    pub(crate) fn back_off(
        &mut self,
        now: Instant,
        rng: &mut impl RandomSource,
    ) -> (Decision, Duration) {
        let decision = self.backoff.on_failure(rng);
        let mut wait = decision.wait();
        if let Some(asked) = self.retry_after.take() {
            // The venue said when to come back; sooner risks a ban.
            wait = wait.max(asked);
        }
        let until = now + wait;
        self.state = match decision {
            Decision::Retry { .. } => State::Backoff { until },
            Decision::CircuitOpen { .. } => State::CircuitOpen { until },
        };
        (decision, wait)
    }

    /// The venue acknowledged request `id` (or, OKX, the one stream of it `stream` names):
    /// returns the streams acknowledged, whose cadence is watched from now on.
    pub(crate) fn on_ack<S: Sink + ?Sized>(
        &mut self,
        id: Option<u64>,
        stream: Option<StreamKey<'_>>,
        now: Instant,
        sh: &Shared,
        out: &mut Out<S>,
    ) -> Vec<u16> {
        let Some(live) = self.live_mut() else {
            return Vec::new();
        };
        let name_of = |i: u16| sh.streams[usize::from(i)].name.as_str();
        let Some(acked) = live.subs.on_ack(id, stream, name_of) else {
            debug!(
                "[{}] ack for a request (or a stream of one) not asked for: id {id:?}",
                out.report.name
            );
            return Vec::new();
        };
        for &i in &acked {
            live.cadence.arm(usize::from(i), now);
        }
        self.announce(sh, out);
        acked
    }

    /// The venue answered a request with an error. A rejected multi-stream request is split in
    /// halves to find exactly which streams the venue refuses; a rejected single stream is
    /// reported and dropped from the feed's subscriptions, so reconnects do not retry it
    /// forever. When no stream is left, the connection ends.
    #[cold]
    pub(crate) fn on_venue_error<S: Sink + ?Sized>(
        &mut self,
        id: Option<u64>,
        code: i64,
        msg: &str,
        sh: &mut Shared,
        out: &mut Out<S>,
    ) -> Result<(), Lost> {
        let Some(live) = self.live_mut() else {
            return Ok(());
        };
        let streams = match live.subs.on_error(id) {
            Refusal::NotOurs => {
                warn!("[{}] venue error {code}: {msg}", out.report.name);
                return Ok(());
            }
            Refusal::Split => return Ok(()),
            Refusal::Streams(streams) => streams,
        };
        for i in streams {
            if !std::mem::replace(&mut sh.active[usize::from(i)], false) {
                continue; // another connection already reported it
            }
            FeedStats::bump(&out.report.stats.rejected_streams);
            error!(
                "[{}] venue rejected stream {} (code {code}: {msg}); it will not be retried",
                out.report.name,
                sh.streams[usize::from(i)].name
            );
            out.health(Health::SubscriptionRejected { stream: i, code });
        }
        if !sh.active.iter().any(|a| *a) {
            return Err((DisconnectReason::AllStreamsRejected, Some(msg.to_string())));
        }
        // The rest may all be acknowledged already.
        self.announce(sh, out);
        Ok(())
    }

    /// Every request answered: the connection is up, announced once per connection.
    pub(crate) fn announce<S: Sink + ?Sized>(&mut self, sh: &Shared, out: &mut Out<S>) {
        let role = self.role.name();
        let Some(live) = self.live_mut() else {
            return;
        };
        if live.announced || !live.subs.complete() || live.login.as_ref().is_some_and(|l| !l.done())
        {
            return;
        }
        live.announced = true;
        info!(
            "[{}] {} connection {} subscribed to {} streams",
            out.report.name,
            role,
            live.conn_no,
            sh.active.iter().filter(|a| **a).count(),
        );
        out.health(Health::Connected { conn: live.conn_no });
    }

    /// The next instant this session has something to do (not counting a rotation by age).
    pub(crate) fn deadline(&self, cfg: &ReconnectConfig, now: Instant) -> Option<Instant> {
        match &self.state {
            State::Idle => Some(now),
            State::Retired | State::Failed => None,
            State::Resolving { deadline }
            | State::Connecting { deadline }
            | State::Handshaking { deadline } => Some(*deadline),
            State::Backoff { until } | State::CircuitOpen { until } => Some(*until),
            State::Live(live) => [
                Some(live.liveness.deadline()),
                live.cadence.deadline(),
                live.subs
                    .ack_deadline(Duration::from_millis(cfg.ack_timeout_ms)),
                live.login
                    .as_ref()
                    .and_then(|l| l.deadline(Duration::from_millis(cfg.ack_timeout_ms))),
                live.subs.send_deadline(),
                live.keepalive_at,
            ]
            .into_iter()
            .flatten()
            .min(),
        }
    }
}

/// Pings the venue: its application-level ping where it has one (Bybit `{"op":"ping"}`, OKX
/// `ping`), else a WebSocket ping. Also restarts the keep-alive period.
fn ping(id: SessionId, live: &mut Live, now: Instant, sh: &mut Shared, actions: &mut Actions) {
    let msg = match sh.venue.ping_text() {
        Some(text) => Outgoing::Static(text),
        None => Outgoing::Ping,
    };
    live.keepalive_at = sh.keepalive().map(|every| now + every);
    actions.push(Action::Send { session: id, msg });
}

/// Streams the venue sends on a fixed cadence, whatever the market does: silence on a live
/// connection means the subscription is broken there.
pub(crate) fn has_cadence(kind: StreamKind) -> bool {
    matches!(
        kind,
        StreamKind::Depth { .. } | StreamKind::MarkPrice { .. }
    )
}
