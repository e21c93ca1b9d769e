//! A feed's logic, without I/O: its connections (`conns.rs`) and its data (`streams.rs`),
//! called in the right order. Its driver tells it what happened — a frame read, a connection's
//! progress or failure, a resolver or REST answer, time passing — and takes from it the
//! [`Action`]s to carry out ([`FeedCore::poll_action`]) and when to call again
//! ([`FeedCore::deadline`]). Ticks and health events go into the sink the driver passes in.
//! Nothing here calls back into the driver.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tungstenite::{Bytes, Utf8Bytes};

mod account;

use super::action::{Action, Actions, Outgoing, SessionId};
use super::conns::{Connections, Step};
use super::params::{FeedParams, Target};
use super::report::{Out, Reporter};
use super::session::Lost;
use super::shared::Shared;
use super::sink::Sink;
use super::streams::Streams;
use crate::account::listen_key::ListenKey;
use crate::account::{AccountEvent, AccountParams};
use crate::json::Unescaped;
use crate::metrics::{FeedState, FeedStats};
use crate::raw::RawRef;
use crate::rest::{DepthSnapshot, RestError};
use crate::tick::DisconnectReason;
use crate::venue::{Frame, Payload, Venue};

/// A frame read from a connection, as the feed sees it.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// A text frame (kept whole: the capture takes it without a copy).
    Text(&'a Utf8Bytes),
    /// A binary frame (market data on a venue whose codec reads it; unknown elsewhere).
    Binary(&'a Bytes),
    /// A WebSocket ping (the transport answers it).
    Ping,
    /// A WebSocket pong.
    Pong,
    /// A close frame with its code (`None`: no code).
    Close(Option<u16>),
}

/// An account's side of a feed: its private protocol, the events of the frame being read,
/// its listen key.
#[derive(Debug)]
struct AccountSide {
    params: Arc<AccountParams>,
    /// The events of one frame (keeps its capacity).
    events: Vec<AccountEvent>,
    /// Binance USD-M's listen key, and the URL connections use without it.
    key: Option<(ListenKey, String)>,
    /// The latest messages' fingerprints and connections: while a replacement overlaps the
    /// connection it replaces, a message both deliver goes to the strategy once.
    recent: std::collections::VecDeque<(u64, u32)>,
}

/// One feed's logic.
#[derive(Debug)]
pub struct FeedCore {
    venue: Venue,
    report: Reporter,
    conns: Connections,
    data: Streams,
    actions: Actions,
    /// An account's private stream (`None`: a market feed).
    account: Option<Box<AccountSide>>,
}

impl FeedCore {
    /// The logic of the feed `p`, counting into `stats`, lane `lane` of its driver's sink.
    pub fn new(p: FeedParams, stats: Arc<FeedStats>, lane: usize) -> FeedCore {
        let data = Streams::new(
            p.venue,
            &p.streams,
            &p.symbols,
            &p.silence,
            p.reorder_window,
            p.rest_base,
        );
        let seed = crate::clock::unix_ns() ^ u64::from(p.id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let account = p.account.clone().map(|mut params| {
            if params.protocol.uses_listen_key() && params.rest_base.is_none() {
                // No key can be asked for without a REST base: the venue's own.
                let rest = params.protocol.default_rest_url().map(String::from);
                Arc::make_mut(&mut params).rest_base = rest;
            }
            let key = params.protocol.uses_listen_key().then(|| {
                let url = p.targets.first().map_or(String::new(), |t| t.url.clone());
                (ListenKey::new(params.keepalive_every), url)
            });
            Box::new(AccountSide {
                params,
                events: Vec::new(),
                key,
                recent: std::collections::VecDeque::with_capacity(account::RECENT),
            })
        });
        let shared = Shared::new(p.venue, p.reconnect, p.streams, p.silence, p.account);
        let conns = Connections::new(shared, p.max_connection_age, p.targets, seed);
        FeedCore {
            venue: p.venue,
            report: Reporter::new(p.id, lane, p.name, stats, p.capture),
            conns,
            data,
            actions: Actions::default(),
            account,
        }
    }

    /// The feed's name.
    pub fn name(&self) -> &str {
        &self.report.name
    }

    /// Target `t` (where a session connects).
    pub fn target(&self, t: usize) -> &Target {
        self.conns.target(t)
    }

    /// The next thing to do, oldest first.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop()
    }

    /// When the feed next needs [`FeedCore::handle_timeout`] (`None`: never again; every
    /// connection failed for good).
    pub fn deadline(&self, now: Instant) -> Option<Instant> {
        if !self.actions.is_empty() {
            return Some(now);
        }
        let key = self
            .account
            .as_ref()
            .and_then(|a| a.key.as_ref())
            .and_then(|(k, _)| k.deadline(now));
        [self.conns.deadline(now), self.data.deadline(), key]
            .into_iter()
            .flatten()
            .min()
    }

    /// Everything due at `now`: attempts, set-up limits, each live connection's duties
    /// (subscriptions, keep-alive, liveness, cadence), then the feed's (held messages,
    /// rotations, stream silence, published state).
    pub fn handle_timeout<S: Sink + ?Sized>(&mut self, now: Instant, sink: &mut S) {
        // Reconnect figures a scrape kept from being published at the outage's end.
        self.report.publish(false);
        if self.account.is_some() {
            self.poll_listen_key(now);
        }
        for k in 0..self.conns.slots.len() {
            let mut out = Out {
                report: &mut self.report,
                sink,
            };
            match self.conns.step(k, now, &mut self.actions, &mut out) {
                Step::Quiet => {}
                Step::Attempt => self.data.count_attempt(),
                Step::Lost((reason, detail)) => self.lose(k, reason, detail, now, sink),
            }
        }
        let mut out = Out {
            report: &mut self.report,
            sink,
        };
        self.data.release_expired(now, &mut out);
        let resync = if self.data.resync_pending() && self.conns.can_resync() {
            self.data.take_resync()
        } else {
            None
        };
        self.conns
            .maintain(now, resync, &mut self.data, &mut self.actions, &mut out);
        self.data.poll_silence(now, &mut out);
    }

    /// The resolver answered for target `target`.
    pub fn on_resolved<S: Sink + ?Sized>(
        &mut self,
        target: usize,
        answer: Result<SocketAddr, DisconnectReason>,
        now: Instant,
        sink: &mut S,
    ) {
        let mut out = Out {
            report: &mut self.report,
            sink,
        };
        self.conns
            .on_resolved(target, answer, now, &mut self.actions, &mut out);
    }

    /// Session `id`'s TCP connection is up; TLS and the upgrade follow.
    pub fn on_connected(&mut self, id: SessionId, now: Instant) {
        self.conns.on_connected(id, now);
    }

    /// Session `id`'s WebSocket is open.
    pub fn on_open<S: Sink + ?Sized>(&mut self, id: SessionId, now: Instant, sink: &mut S) {
        let mut out = Out {
            report: &mut self.report,
            sink,
        };
        for i in self.conns.on_open(id, now, &mut self.actions, &mut out) {
            self.data.acknowledged(usize::from(i), now);
        }
        // A listen-key account streams as soon as it is open.
        if self.account.is_some() {
            self.account_opened(id, now, sink);
        }
    }

    /// Session `id`'s connection failed: an attempt that did not get to open, or an open
    /// connection that broke (reading, writing).
    pub fn on_failed<S: Sink + ?Sized>(
        &mut self,
        id: SessionId,
        reason: DisconnectReason,
        detail: Option<String>,
        now: Instant,
        sink: &mut S,
    ) {
        let Some(k) = self.conns.slots.index_of(id) else {
            return;
        };
        if self.conns.slots.get(k).live().is_some() {
            self.lose(k, reason, detail, now, sink);
            return;
        }
        if !self.conns.slots.get(k).is_setting_up() {
            return;
        }
        self.actions.push(Action::Abort { session: id });
        // A listen key the venue no longer knows is refused at the upgrade: a new key, not a
        // permanent failure.
        let reason = match self.account.is_some() {
            true => self.key_refused(reason),
            false => reason,
        };
        let mut out = Out {
            report: &mut self.report,
            sink,
        };
        self.conns.attempt_failed(
            k,
            reason,
            detail.as_deref(),
            now,
            &mut self.actions,
            &mut out,
        );
    }

    /// A frame read on session `id`'s connection at `now` (`recv_ns` on the process clock).
    /// Returns false when the connection ended: the driver stops reading it.
    #[inline]
    pub fn on_message<S: Sink + ?Sized>(
        &mut self,
        id: SessionId,
        input: Input<'_>,
        recv_ns: u64,
        now: Instant,
        sink: &mut S,
    ) -> bool {
        let Some(k) = self.conns.slots.index_of(id) else {
            return false;
        };
        // A connection its feed gave up (failed for good while open; its abort is queued) is not
        // read again, even for the rest of the frames already read with this one.
        if self.conns.slots.get(k).live().is_none() {
            return false;
        }
        self.conns.on_frame(k, now);
        let result = match input {
            Input::Text(text) => self.on_text(k, text, recv_ns, now, sink),
            Input::Ping => {
                FeedStats::bump(&self.report.stats.pings_received);
                Ok(())
            }
            Input::Pong => Ok(()),
            Input::Close(code) => Err((
                DisconnectReason::CloseFrame {
                    code: code.unwrap_or(1005),
                },
                None,
            )),
            Input::Binary(frame) => self.on_binary(k, frame, recv_ns, now, sink),
        };
        match result {
            Ok(()) => true,
            Err((reason, detail)) => {
                self.lose(k, reason, detail, now, sink);
                false
            }
        }
    }

    /// A text frame on slot `k`'s connection: data, an ack, a venue error, a pong.
    #[inline]
    fn on_text<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        text: &Utf8Bytes,
        recv_ns: u64,
        now: Instant,
        sink: &mut S,
    ) -> Result<(), Lost> {
        if self.account.is_some() {
            return self.on_private_text(k, text.as_str(), recv_ns, now, sink);
        }
        match self.venue.classify(text.as_str()) {
            Ok(frame) => self.on_frame(k, frame, RawRef::Text(text), recv_ns, now, sink),
            Err(e) => {
                self.report.bad_frame(now, &e.to_string(), text.as_str());
                Ok(())
            }
        }
    }

    /// A binary frame on slot `k`'s connection: market data on a venue whose codec reads
    /// binary frames, unknown elsewhere (and on private streams).
    #[inline]
    fn on_binary<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        frame: &Bytes,
        recv_ns: u64,
        now: Instant,
        sink: &mut S,
    ) -> Result<(), Lost> {
        let classified = match self.account {
            Some(_) => Ok(Frame::Unknown),
            None => self.venue.classify_binary(frame),
        };
        match classified {
            Ok(Frame::Unknown) => {
                self.report.unknown_frame(now, "binary frame", frame.len());
                Ok(())
            }
            Ok(f) => self.on_frame(k, f, RawRef::Binary(frame), recv_ns, now, sink),
            Err(e) => {
                self.report
                    .bad_raw(now, &e.to_string(), RawRef::Binary(frame));
                Ok(())
            }
        }
    }

    /// A classified frame of slot `k`'s connection (`raw` as received).
    #[inline]
    fn on_frame<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        frame: Frame<'_>,
        raw: RawRef<'_>,
        recv_ns: u64,
        now: Instant,
        sink: &mut S,
    ) -> Result<(), Lost> {
        let mut out = Out {
            report: &mut self.report,
            sink,
        };
        let (stream, data) = match frame {
            Frame::Data { stream, data } => (stream, Payload::Text(data)),
            Frame::Binary { stream, data } => (stream, Payload::Binary(data)),
            Frame::Ack { id, stream } => {
                for i in self.conns.on_ack(k, id, stream, now, &mut out) {
                    self.data.acknowledged(usize::from(i), now);
                }
                return Ok(());
            }
            // Any frame already proved the connection alive.
            Frame::Pong => return Ok(()),
            Frame::ServerPing => {
                if let Some(reply) = self.venue.ping_reply() {
                    let session = self.conns.slots.get(k).id;
                    self.actions.push(Action::Send {
                        session,
                        msg: Outgoing::Static(reply),
                    });
                }
                return Ok(());
            }
            Frame::Error { id, code, msg } => {
                // Shown in logs and the disconnect's detail: escapes decoded.
                let msg = Unescaped(msg).text();
                return self.conns.on_venue_error(k, id, code, &msg, &mut out);
            }
            Frame::Unknown => {
                out.report.unknown_frame(now, "unknown message", raw.len());
                return Ok(());
            }
        };
        let Some(i) = self.data.find(&stream) else {
            out.report
                .unknown_frame(now, "data for a stream not subscribed", raw.len());
            return Ok(());
        };
        let conn = self.conns.slots.get(k).conn_no;
        let conns = &self.conns;
        let parsed = self.data.on_data(
            i,
            data,
            raw,
            conn,
            recv_ns,
            now,
            || conns.carried_besides(k),
            &mut self.actions,
            &mut out,
        );
        match parsed {
            Ok(seq) => self.conns.on_data(k, i, seq, now),
            Err(e) => out.report.bad_raw(now, &e.to_string(), raw),
        }
        Ok(())
    }

    /// Slot `k`'s live connection ended. When no other connection carries the feed, the data
    /// side opens an outage between the loss being reported and the slot's next state.
    #[cold]
    fn lose<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        reason: DisconnectReason,
        detail: Option<String>,
        now: Instant,
        sink: &mut S,
    ) {
        let mut out = Out {
            report: &mut self.report,
            sink,
        };
        let loss = self.conns.begin_loss(
            k,
            reason,
            detail.as_deref(),
            now,
            &mut self.actions,
            &mut out,
        );
        if !loss.carried {
            self.data.carried_by_none(reason, now, &mut out);
        }
        self.conns
            .end_loss(k, loss, detail.as_deref(), now, &mut self.actions, &mut out);
    }

    /// A REST snapshot for stream `stream` arrived.
    pub fn on_snapshot<S: Sink + ?Sized>(
        &mut self,
        stream: u16,
        result: Result<DepthSnapshot, RestError>,
        now: Instant,
        sink: &mut S,
    ) {
        let mut out = Out {
            report: &mut self.report,
            sink,
        };
        self.data.on_snapshot(
            usize::from(stream),
            result,
            now,
            &mut self.actions,
            &mut out,
        );
    }

    /// The engine stops: live connections are closed politely, and the feed says it stopped.
    pub fn shutdown(&mut self) {
        self.report.publish(true);
        self.conns.shutdown(&mut self.actions);
        if self.report.stats.state() != FeedState::Failed {
            self.report.stats.set_state(FeedState::Stopped);
        }
    }

    /// Number of streams.
    pub fn streams(&self) -> usize {
        self.data.len()
    }
}
