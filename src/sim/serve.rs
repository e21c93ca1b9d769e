//! The serve loop of one upgraded connection: data delivery with
//! ground-truth recording, the client's requests (answered by the venue's
//! protocol module, the replies carried out here), connection and book
//! faults (decided in `fault.rs`, carried out here), the maximum connection
//! age and the idle timeout. What follows the loop is `end.rs`.
//!
//! The socket is non-blocking. The thread waits up to [`IDLE_WAIT`] on its
//! event channel, writes what the client is subscribed to, flushes, then
//! drains whatever the client sent. Nothing a client sends can panic it.
//!
//! Ground truth: a data message is recorded in `Inner::sent` *before* it is
//! handed to the WebSocket (whose `write` may flush when a pong or close reply
//! is queued), so the record is always a superset of what reached the client.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use tungstenite::{Bytes, Message, WebSocket};

use super::base::{lock, now_ms, Kind};
use super::config::{SimConfig, SimVenue, MAX_UNANSWERED_PINGS};
use super::end::{End, Ending};
use super::fault::{self, Action, BookFault, BookFaults, Cut, Fault, Injected};
use super::market::{Event, Snap};
use super::observe::{ConnId, SentKind, SentRecord};
use super::private::conn::PrivateConn;
use super::protocol::{Env, Out, Session, Topic};
use super::state::Inner;
use super::symbol::SymInfo;
use super::transport::{is_would_block, SimStream};
use super::{binance, bybit, okx};
use super::{defined, defined_proto};

/// Longest wait on the event channel before servicing the socket again.
const IDLE_WAIT: Duration = Duration::from_millis(1);
/// A [`Fault::ServerPing`] not answered within this closes with 1008.
#[cfg(not(test))]
const PONG_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortened so unit tests of the timeout stay fast.
#[cfg(test)]
const PONG_TIMEOUT: Duration = Duration::from_millis(400);
/// Written-but-unflushed data messages above which no more events are pulled.
const MAX_PENDING: usize = 8 * 1024;
/// Events handled per loop iteration before the socket is serviced again.
const MAX_BATCH: usize = 1024;

fn sent_kind(kind: Kind) -> SentKind {
    match kind {
        Kind::BookTicker => SentKind::Quote,
        Kind::Depth => SentKind::BookUpdate,
        Kind::AggTrade | Kind::Trade => SentKind::Trade,
        Kind::Kline => SentKind::Candle,
        Kind::MarkPrice => SentKind::Mark,
        Kind::Funding => SentKind::Funding,
    }
}

/// The simulator as the venues' request handlers see it.
impl Env for Inner {
    fn cfg(&self) -> &SimConfig {
        &self.cfg
    }

    fn info(&self) -> &[SymInfo] {
        &self.info
    }

    fn subscribe_ignored(&self) -> bool {
        self.update(|st| {
            st.counters.subscribe_requests += 1;
            let ignore = st.ignore_subscribes > 0;
            if ignore {
                st.ignore_subscribes -= 1;
                st.counters.subscribes_ignored += 1;
            }
            ignore
        })
    }

    fn venue_ping(&self) {
        self.update(|st| st.counters.venue_pings += 1);
    }

    fn snapshots(&self, topics: &[Topic]) -> Vec<(u64, Option<Snap>)> {
        let e_ms = now_ms();
        let market = lock(&self.market);
        topics
            .iter()
            .map(|t| {
                let snap = market.snapshot(t.sym, t.kind, t.spot, e_ms);
                let gen = snap.as_ref().map_or_else(|| market.gen(), |s| s.gen);
                (gen, snap)
            })
            .collect()
    }
}

/// One upgraded connection being served.
pub(crate) struct Conn {
    inner: Arc<Inner>,
    id: ConnId,
    ws: WebSocket<SimStream>,
    /// The venue protocol's state: subscriptions, route, connection id.
    session: Session,
    events: Receiver<Arc<Event>>,
    faults: Receiver<Injected>,
    /// When the upgrade completed (for [`SimConfig::max_conn_age`]).
    opened: Instant,
    /// When the client last sent a text frame (for
    /// [`SimConfig::idle_timeout`]).
    last_text: Instant,
    /// Data messages written to the WebSocket since the last complete flush.
    unflushed: usize,
    /// Data messages still to withhold ([`Fault::DropNext`]).
    withhold: u64,
    /// [`BookFault`]s waiting for their message.
    book_faults: BookFaults,
    /// Outstanding server pings: (payload, deadline), deadlines in
    /// non-decreasing order (so the front holds the earliest).
    pings: VecDeque<(Bytes, Instant)>,
    ping_counter: u64,
    /// A defined venue with `server_ping`: when its next ping goes out, and
    /// how many went unanswered.
    app_ping: Option<Instant>,
    app_unanswered: u32,
    /// The private stream of a private connection (requests go there, and
    /// its account messages are written by [`Conn::pump_private`]).
    private: Option<PrivateConn>,
}

impl Conn {
    /// A connection ready to serve, upgraded at this moment.
    pub(crate) fn new(
        inner: Arc<Inner>,
        id: ConnId,
        ws: WebSocket<SimStream>,
        session: Session,
        events: Receiver<Arc<Event>>,
        faults: Receiver<Injected>,
    ) -> Conn {
        let now = Instant::now();
        let app_ping = match session.venue {
            SimVenue::Defined(v) => {
                defined_proto::server_ping(v).map(|_| now + inner.cfg.server_ping_interval)
            }
            _ => None,
        };
        Conn {
            inner,
            id,
            ws,
            session,
            events,
            faults,
            opened: now,
            last_text: now,
            unflushed: 0,
            withhold: 0,
            book_faults: BookFaults::default(),
            pings: VecDeque::new(),
            ping_counter: 0,
            app_ping,
            app_unanswered: 0,
            private: None,
        }
    }

    /// The connection with a private stream (or none).
    pub(crate) fn with_private(mut self, private: Option<PrivateConn>) -> Conn {
        self.private = private;
        self
    }

    /// Writes what the private stream's account pushed (recorded as ground
    /// truth before it comes here); ends the connection when it says so.
    fn pump_private(&mut self) -> Result<(), End> {
        let Some(private) = self.private.as_mut() else {
            return Ok(());
        };
        let polled = private.poll(&self.inner);
        for text in polled.texts {
            self.unflushed += 1;
            match self.ws.write(Message::text(text)) {
                Ok(()) => {}
                Err(e) if is_would_block(&e) => {}
                Err(_) => return Err(End::Gone),
            }
        }
        match polled.end {
            Some(end) => Err(end),
            None => Ok(()),
        }
    }

    /// Serves until the connection ends, then ends it (see `end.rs`) and
    /// unregisters it. Dropping the connection closes the socket.
    pub(crate) fn run(mut self) {
        let end = self.serve();
        let ending = Ending {
            inner: &self.inner,
            id: self.id,
            ws: &mut self.ws,
            events: &self.events,
            faults: &self.faults,
        };
        ending.finish(end);
        self.inner.unregister(self.id);
    }

    fn serve(&mut self) -> End {
        loop {
            if self.inner.is_shutdown() {
                return End::Shutdown;
            }
            while let Ok(fault) = self.faults.try_recv() {
                let applied = match fault {
                    Injected::Std(f) => self.apply(f),
                    Injected::Book(f) => {
                        self.apply_book(f);
                        Ok(())
                    }
                };
                if let Err(end) = applied {
                    return end;
                }
            }
            let now = Instant::now();
            if self
                .pings
                .front()
                .is_some_and(|(_, deadline)| now >= *deadline)
            {
                return End::Close(1008, "pong timeout");
            }
            if let Some(max_age) = self.inner.cfg.max_conn_age {
                if now.saturating_duration_since(self.opened) >= max_age {
                    self.inner.update(|st| st.counters.age_closes += 1);
                    return End::Close(1001, "max connection age");
                }
            }
            let idle = match self.session.venue {
                SimVenue::Binance => None,
                SimVenue::Defined(v) => defined::idle_limit(v, self.inner.cfg.idle_timeout),
                _ => self.inner.cfg.idle_timeout,
            };
            if let Some(idle) = idle {
                if now.saturating_duration_since(self.last_text) >= idle {
                    self.inner.update(|st| st.counters.idle_closes += 1);
                    return End::Close(1001, "idle timeout");
                }
            }
            if let Err(end) = self.app_ping(now) {
                return end;
            }
            if let Err(end) = self.pump_events() {
                return end;
            }
            if let Err(end) = self.pump_private() {
                return end;
            }
            if let Err(end) = self.flush() {
                return end;
            }
            if let Err(end) = self.read_client() {
                return end;
            }
        }
    }

    /// Waits (briefly) for events and writes the subscribed ones.
    fn pump_events(&mut self) -> Result<(), End> {
        if self.unflushed >= MAX_PENDING {
            // The client is not reading; do not buffer without bound.
            thread::sleep(IDLE_WAIT);
            return Ok(());
        }
        let first = match self.events.recv_timeout(IDLE_WAIT) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => return Ok(()),
            Err(RecvTimeoutError::Disconnected) => {
                thread::sleep(IDLE_WAIT);
                return Ok(());
            }
        };
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match self.events.try_recv() {
                Ok(ev) => batch.push(ev),
                Err(_) => break,
            }
        }
        self.deliver(&batch)
    }

    /// Writes the subscribed, unmuted messages of `events`, withholding as
    /// many as [`Fault::DropNext`] and [`BookFault::SkipSeq`] ask for and
    /// rendering the faulty variants other [`BookFault`]s ask for. Each
    /// written message is recorded as ground truth *before* it is handed to
    /// the WebSocket: tungstenite's `write` flushes everything buffered when a
    /// pong or close reply is queued, so recording after the write could let a
    /// client read a message that `Sim::sent` does not list yet.
    fn deliver(&mut self, events: &[Arc<Event>]) -> Result<(), End> {
        let Conn {
            inner,
            id,
            ws,
            session,
            withhold,
            book_faults,
            unflushed,
            ..
        } = self;
        let (venue, wrapped) = (session.venue, session.wrapped);
        let mut sent = inner.cfg.record.then(|| lock(&inner.sent));
        let (mut written, mut withheld) = (0u64, 0u64);
        let mut result = Ok(());
        'events: for ev in events {
            for sub in session.subs.iter() {
                if sub.sym != ev.sym
                    || sub.kind != ev.kind
                    || !sub.delivers
                    || sub.muted
                    || ev.gen <= sub.min_gen
                {
                    continue;
                }
                let base = if sub.spot {
                    match ev.spot_payload.as_ref() {
                        Some(p) => p,
                        None => continue,
                    }
                } else {
                    &ev.payload
                };
                if *withhold > 0 {
                    *withhold -= 1;
                    withheld += 1;
                    continue;
                }
                if ev.kind.is_book() && book_faults.skip() {
                    withheld += 1;
                    continue;
                }
                let (mut seq, mut prev_seq) = (ev.seq, ev.prev_seq);
                let mut binary = ev.binary.clone();
                let faulty = ev
                    .book
                    .as_deref()
                    .and_then(|msg| book_faults.faulty(venue, msg))
                    .map(|msg| {
                        let w = defined::book_wire(venue, &inner.info[ev.sym], &msg, sub.spot);
                        let w = w.unwrap_or_else(|| unreachable!("a book message it sent before"));
                        (seq, prev_seq) = (w.seq, w.prev_seq);
                        binary = w.binary.map(Bytes::from);
                        w.payload
                    });
                let payload = faulty.as_deref().unwrap_or(base);
                let deeper = venue
                    .is_bybit()
                    .then(|| bybit::deeper_topic(&sub.name, payload))
                    .flatten();
                let payload = deeper.as_deref().unwrap_or(payload);
                let text = if wrapped {
                    format!(r#"{{"stream":"{}","data":{}}}"#, sub.name, payload)
                } else {
                    payload.to_string()
                };
                if let Some(sent) = sent.as_mut() {
                    sent.push(SentRecord {
                        conn: *id,
                        stream: sub.name.clone(),
                        seq,
                        prev_seq,
                        kind: sent_kind(ev.kind),
                        event_time_ms: ev.event_time_ms,
                    });
                }
                written += 1;
                let msg = match binary {
                    Some(frame) => Message::Binary(frame),
                    None => Message::text(text),
                };
                match ws.write(msg) {
                    Ok(()) => {}
                    Err(e) if is_would_block(&e) => {}
                    Err(_) => {
                        result = Err(End::Gone);
                        break 'events;
                    }
                }
            }
        }
        drop(sent);
        *unflushed += written as usize;
        let id = *id;
        if withheld > 0 {
            inner.update_conn(id, |counters, info| {
                counters.messages_sent += written;
                counters.withheld += withheld;
                info.messages_sent += written;
                info.withheld += withheld;
            });
        } else if written > 0 {
            inner.update_quiet(|st| {
                st.counters.messages_sent += written;
                if let Some(e) = st.conns.get_mut(&id) {
                    e.info.messages_sent += written;
                }
            });
        }
        result
    }

    /// Sends a subscription snapshot as a data message of `stream` (recorded,
    /// subject to [`Fault::DropNext`], not to book faults).
    fn send_snapshot(&mut self, stream: &str, kind: Kind, snap: Snap) -> Result<(), End> {
        let id = self.id;
        if self.withhold > 0 {
            self.withhold -= 1;
            self.inner.update_conn(id, |counters, info| {
                counters.withheld += 1;
                info.withheld += 1;
            });
            return Ok(());
        }
        if self.inner.cfg.record {
            lock(&self.inner.sent).push(SentRecord {
                conn: id,
                stream: stream.to_string(),
                seq: snap.seq,
                prev_seq: snap.prev_seq,
                kind: if snap.full_book {
                    SentKind::BookSnapshot
                } else {
                    sent_kind(kind)
                },
                event_time_ms: snap.event_time_ms,
            });
        }
        self.inner.update_quiet(|st| {
            st.counters.messages_sent += 1;
            if let Some(e) = st.conns.get_mut(&id) {
                e.info.messages_sent += 1;
            }
        });
        self.unflushed += 1;
        let payload = match bybit::deeper_topic(stream, &snap.payload) {
            Some(deeper) if self.session.venue.is_bybit() => deeper,
            _ => snap.payload,
        };
        match self.ws.write(Message::text(payload)) {
            Ok(()) => Ok(()),
            Err(e) if is_would_block(&e) => Ok(()),
            Err(_) => Err(End::Gone),
        }
    }

    /// Flushes the WebSocket (a full socket buffer is not an error: the rest
    /// goes out on a later flush).
    fn flush(&mut self) -> Result<(), End> {
        match self.ws.flush() {
            Ok(()) => {
                self.unflushed = 0;
                Ok(())
            }
            Err(e) if is_would_block(&e) => Ok(()),
            Err(_) => Err(End::Gone),
        }
    }

    /// Writes one non-data message (reply or fault frame; never recorded)
    /// and flushes.
    fn send_message(&mut self, msg: Message) -> Result<(), End> {
        match self.ws.write(msg) {
            Ok(()) => {}
            Err(e) if is_would_block(&e) => {}
            Err(_) => return Err(End::Gone),
        }
        self.flush()
    }

    fn send_text(&mut self, text: String) -> Result<(), End> {
        self.send_message(Message::text(text))
    }

    /// Reads everything the client has sent so far (also while output waits
    /// for a writable socket: ground truth does not depend on flushes, and
    /// pongs and Close frames must be seen even when the client reads slowly).
    fn read_client(&mut self) -> Result<(), End> {
        loop {
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    self.last_text = Instant::now();
                    self.on_request(text.as_str())?
                }
                Ok(Message::Pong(payload)) => self.on_pong(&payload),
                Ok(Message::Close(_)) => return Err(End::ClientClose),
                // Pings are answered by tungstenite on the next read/flush.
                Ok(Message::Ping(_)) | Ok(Message::Binary(_)) | Ok(Message::Frame(_)) => {}
                Err(e) if is_would_block(&e) => return Ok(()),
                Err(_) => return Err(End::Gone),
            }
        }
    }

    fn on_pong(&mut self, payload: &[u8]) {
        // Payloads are distinct; pongs usually come in ping order, so the
        // match is normally at the front.
        if let Some(pos) = self.pings.iter().position(|(p, _)| p.as_ref() == payload) {
            self.pings.remove(pos);
            self.inner.update(|st| st.counters.pongs_received += 1);
        }
    }

    /// Answers a request with the venue's protocol and carries the replies
    /// out, in order.
    fn on_request(&mut self, text: &str) -> Result<(), End> {
        if let Some(private) = self.private.as_mut() {
            for reply in private.on_text(&self.inner, text) {
                self.send_text(reply)?;
            }
            return self.flush();
        }
        if let SimVenue::Defined(v) = self.session.venue {
            if defined_proto::is_ping_reply(v, text) {
                self.app_unanswered = 0;
                self.inner.update(|st| st.counters.pongs_received += 1);
                return Ok(());
            }
        }
        let (session, env) = (&mut self.session, &*self.inner);
        let out = match session.venue {
            SimVenue::Binance => binance::handle(text, session, env),
            SimVenue::BybitSpot | SimVenue::BybitLinear => bybit::handle(text, session, env),
            SimVenue::Okx => okx::handle(text, session, env),
            SimVenue::Defined(v) => defined_proto::handle(v, text, session, env),
        };
        if out.is_empty() {
            return Ok(());
        }
        for o in out {
            match o {
                Out::Reply(text) => self.send_text(text)?,
                Out::Snapshot { stream, kind, snap } => self.send_snapshot(&stream, kind, snap)?,
                Out::Streams => self.publish_streams(),
            }
        }
        self.flush()
    }

    fn publish_streams(&self) {
        let names = self.session.stream_names();
        self.inner
            .update_conn(self.id, |_, info| info.streams = names);
    }

    fn count_fault(&self) {
        self.inner.update(|st| st.counters.faults_injected += 1);
    }

    /// Carries out a connection fault (see [`fault::action`]); `Err` ends
    /// the serving loop.
    fn apply(&mut self, fault: Fault) -> Result<(), End> {
        let cfg = &self.inner.cfg;
        match fault::action(fault, &self.session, cfg, &self.inner.info) {
            Action::End(Cut::Stall(duration)) => {
                self.inner.update_conn(self.id, |counters, info| {
                    counters.faults_injected += 1;
                    info.stalled = true;
                });
                Err(End::Stall(duration))
            }
            Action::End(cut) => {
                self.count_fault();
                Err(cut.into())
            }
            Action::Text(text) => {
                self.count_fault();
                self.send_text(text)
            }
            Action::Binary(bytes) => {
                self.count_fault();
                self.send_message(Message::Binary(Bytes::from_static(bytes)))
            }
            Action::Pings(count) => self.send_pings(count),
            Action::Withhold(count) => {
                self.withhold = self.withhold.saturating_add(count);
                self.count_fault();
                Ok(())
            }
            Action::Mute(name) => {
                self.session.mute(name);
                let muted = self.session.muted.clone();
                self.inner.update_conn(self.id, |counters, info| {
                    counters.faults_injected += 1;
                    info.muted = muted;
                });
                Ok(())
            }
            Action::None => Ok(()),
        }
    }

    /// Arms a [`BookFault`] (counted as applied).
    fn apply_book(&mut self, fault: BookFault) {
        if self.book_faults.arm(fault) {
            self.count_fault();
        }
    }

    /// A defined venue's own ping when it is due (counted in `pings_sent`);
    /// too many unanswered close the connection with 1008.
    fn app_ping(&mut self, now: Instant) -> Result<(), End> {
        let (Some(at), SimVenue::Defined(v)) = (self.app_ping, self.session.venue) else {
            return Ok(());
        };
        if now < at {
            return Ok(());
        }
        if self.app_unanswered >= MAX_UNANSWERED_PINGS {
            return Err(End::Close(1008, "pong timeout"));
        }
        self.app_ping = Some(now + self.inner.cfg.server_ping_interval);
        self.app_unanswered += 1;
        self.inner.update(|st| st.counters.pings_sent += 1);
        match defined_proto::server_ping(v) {
            Some(text) => self.send_text(text),
            None => Ok(()),
        }
    }

    /// Sends `count` pings with distinct payloads back to back (one fault),
    /// each with its own pong deadline.
    fn send_pings(&mut self, count: u32) -> Result<(), End> {
        let deadline = Instant::now() + PONG_TIMEOUT;
        let mut sent = 0u64;
        let mut result = Ok(());
        for _ in 0..count {
            self.ping_counter += 1;
            let payload = Bytes::from(format!("sim-ping-{}-{}", self.id.0, self.ping_counter));
            match self.ws.write(Message::Ping(payload.clone())) {
                Ok(()) => {}
                Err(e) if is_would_block(&e) => {}
                Err(_) => {
                    result = Err(End::Gone);
                    break;
                }
            }
            self.pings.push_back((payload, deadline));
            sent += 1;
        }
        self.inner.update(|st| {
            st.counters.faults_injected += 1;
            st.counters.pings_sent += sent;
        });
        result?;
        self.flush()
    }
}
