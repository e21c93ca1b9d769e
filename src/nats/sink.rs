//! The NATS sink thread: async-nats on a current-thread tokio runtime that lives inside this
//! thread only (nothing else in the engine runs async).
//!
//! Each round it takes events from the strategy side's channel (up to `max_in_flight` held),
//! encodes them ([`super::encode`]), publishes every one not yet acknowledged with the message
//! id `<run>-<n>`, and awaits the acknowledgements together. An acknowledged event is let go;
//! one that was not (an error, `ack_timeout_ms`, no connection) is counted in `not_acked` and
//! sent again next round with the same id, so JetStream's duplicate window stores it once.
//! While the client is not connected nothing is sent: events wait in the sink (bounded by
//! `max_in_flight`, then by the channel's `buffer`, past which the strategy side counts drops).
//! The client reconnects by itself; the stream is created at start and again if the server
//! says it is gone. At stop (the strategy side's sender dropped) the sink publishes what it
//! still holds for at most `drain_timeout_ms`, then counts the rest as abandoned.

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions, Subject};
use bytes::Bytes;
use crossbeam_channel::{bounded, unbounded, Receiver, TryRecvError};
use log::{info, warn};

use super::encode::{self, Subjects};
use super::{Event, NatsStats, NatsSummary, Tap};
use crate::clock;
use crate::config::NatsConfig;
use crate::strategy::Universe;

/// How long the sink sleeps when it has nothing to publish.
const IDLE: Duration = Duration::from_millis(1);
/// How long it waits before trying again after a failed round, or while disconnected.
const RETRY: Duration = Duration::from_millis(50);
/// Least time between two warnings of unacknowledged publishes.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The running sink thread.
#[derive(Debug)]
pub struct NatsSink {
    handle: JoinHandle<()>,
    stats: Arc<NatsStats>,
    /// Set by [`NatsSink::finish`]: nothing more will be handed over.
    stop: Arc<AtomicBool>,
}

impl NatsSink {
    /// Starts the thread `nats` for `config`, publishing `universe`'s ticks and health events;
    /// returns it and the strategy side's [`Tap`].
    pub fn start(
        config: &NatsConfig,
        universe: &Universe,
        stats: Arc<NatsStats>,
    ) -> std::io::Result<(NatsSink, Tap)> {
        let (tx, rx) = bounded(config.buffer);
        let (universes_tx, universes) = unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let publisher = Publisher {
            stop: stop.clone(),
            warned: std::cell::Cell::new(None),
            subjects: Subjects::new(&config.subject_prefix, universe),
            universe: universe.clone(),
            config: config.clone(),
            stats: stats.clone(),
            rx,
            universes,
            run: format!("{:x}", clock::unix_ns()),
        };
        let handle = std::thread::Builder::new()
            .name("nats".into())
            .spawn(move || publisher.run())?;
        let tap = Tap::new(tx, universes_tx, stats.clone());
        Ok((
            NatsSink {
                handle,
                stats,
                stop,
            },
            tap,
        ))
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<NatsStats> {
        self.stats.clone()
    }

    /// Called once every tap is dropped (the strategy has stopped): waits for the thread to
    /// publish what it holds, or for `drain_timeout_ms`, and returns the final counters.
    pub fn finish(self) -> NatsSummary {
        // A sink holding `max_in_flight` events does not read its channel, so it learns that
        // no more will come from this flag rather than from the channel closing.
        self.stop.store(true, Release);
        if self.handle.join().is_err() {
            warn!("the NATS sink thread panicked");
        }
        self.stats.summary()
    }
}

/// An event encoded, waiting for its acknowledgement.
struct Item {
    subject: Subject,
    payload: Bytes,
    id: String,
}

/// The sink thread's state.
struct Publisher {
    subjects: Subjects,
    universe: Universe,
    config: NatsConfig,
    stats: Arc<NatsStats>,
    rx: Receiver<Event>,
    /// A reload's grown universe, sent before any event of the feeds it adds.
    universes: Receiver<Universe>,
    stop: Arc<AtomicBool>,
    /// When unacknowledged publishes were last logged.
    warned: std::cell::Cell<Option<Instant>>,
    /// This run's part of every message id (the start time, hex).
    run: String,
}

impl Publisher {
    fn run(self) {
        crate::helper::pin_current_thread(self.config.core, "NATS sink thread");
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                warn!("NATS sink: cannot build its runtime ({e}); nothing is published");
                self.abandon(0);
                return;
            }
        };
        rt.block_on(self.publish_all());
    }

    /// Counts everything still held as abandoned.
    fn abandon(&self, held: usize) {
        let mut n = held as u64;
        while self.rx.recv().is_ok() {
            n += 1;
        }
        self.stats.abandoned.fetch_add(n, Relaxed);
        self.stats.pending.store(0, Relaxed);
    }

    fn encode(&mut self, n: u64, event: &Event, text: &mut String) -> Item {
        let feed = match event {
            Event::Tick(t) => t.feed,
            Event::Health(h) => h.feed,
        };
        if usize::from(feed) >= self.universe.feeds.len() {
            // A feed a reload added: the universe naming it came first.
            while let Ok(universe) = self.universes.try_recv() {
                self.subjects = Subjects::new(&self.config.subject_prefix, &universe);
                self.universe = universe;
            }
        }
        let subject = match event {
            Event::Tick(t) => {
                encode::tick(text, &self.universe, n, t);
                self.subjects.tick(t.feed, t.stream)
            }
            Event::Health(h) => {
                encode::health(text, &self.universe, n, h);
                self.subjects.health(h.feed)
            }
        };
        Item {
            subject: Subject::from(subject.unwrap_or("wsfeed.unknown")),
            payload: Bytes::copy_from_slice(text.as_bytes()),
            id: format!("{}-{n}", self.run),
        }
    }

    async fn connect(&self) -> Result<Client, async_nats::ConnectError> {
        let connects = Arc::new(AtomicU64::new(0));
        let stats = self.stats.clone();
        let url = self.config.url.clone();
        ConnectOptions::new()
            .name("wsfeed")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((50 * attempts as u64).min(1000))
            })
            .event_callback(move |event| {
                match event {
                    async_nats::Event::Connected => {
                        if connects.fetch_add(1, Relaxed) > 0 {
                            stats.reconnects.fetch_add(1, Relaxed);
                        }
                        info!("NATS sink: connected to {url}");
                    }
                    async_nats::Event::Disconnected => {
                        warn!("NATS sink: disconnected from {url}; holding events")
                    }
                    _ => {}
                }
                async {}
            })
            .connect(&self.config.url)
            .await
    }

    /// Creates the stream when missing (over `<prefix>.>`).
    async fn ensure_stream(&self, js: &jetstream::Context) -> bool {
        let config = stream::Config {
            name: self.config.stream.clone(),
            subjects: vec![self.subjects.wildcard.clone()],
            max_age: Duration::from_secs(self.config.max_age_s),
            storage: stream::StorageType::File,
            ..Default::default()
        };
        match js.get_or_create_stream(config).await {
            Ok(_) => true,
            Err(e) => {
                self.warn(format_args!(
                    "stream {} is not there and cannot be created yet: {e}",
                    self.config.stream
                ));
                false
            }
        }
    }

    async fn publish_all(mut self) {
        let client = match self.connect().await {
            Ok(c) => c,
            Err(e) => {
                warn!("NATS sink: {}: {e}; nothing is published", self.config.url);
                self.abandon(0);
                return;
            }
        };
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_millis(self.config.ack_timeout_ms))
            .max_ack_inflight(self.config.max_in_flight.max(1))
            .build(client.clone());
        let mut held: VecDeque<Item> = VecDeque::with_capacity(self.config.max_in_flight);
        let mut text = String::with_capacity(1024);
        let mut next_n: u64 = 1;
        let mut closed = false;
        let mut need_stream = true;
        let mut drain_until: Option<Instant> = None;
        loop {
            // Read before taking from the channel: once set, everything was sent before it.
            closed |= self.stop.load(Acquire);
            while held.len() < self.config.max_in_flight {
                match self.rx.try_recv() {
                    Ok(event) => {
                        held.push_back(self.encode(next_n, &event, &mut text));
                        next_n += 1;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            self.stats
                .pending
                .store((held.len() + self.rx.len()) as u64, Relaxed);
            if held.is_empty() {
                if closed {
                    break;
                }
                tokio::time::sleep(IDLE).await;
                continue;
            }
            if closed {
                let until = *drain_until.get_or_insert_with(|| {
                    Instant::now() + Duration::from_millis(self.config.drain_timeout_ms)
                });
                if Instant::now() >= until {
                    warn!(
                        "NATS sink: {} events still unacknowledged after drain_timeout_ms; \
                         abandoned",
                        held.len()
                    );
                    self.abandon(held.len());
                    break;
                }
            }
            if client.connection_state() != State::Connected {
                tokio::time::sleep(RETRY).await;
                continue;
            }
            if need_stream {
                if !self.ensure_stream(&js).await {
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
                need_stream = false;
            }
            let (done, stream_gone) = self.round(&js, &held).await;
            let failed = done.iter().filter(|d| !**d).count();
            let mut flags = done.into_iter();
            held.retain(|_| !flags.next().unwrap_or(false));
            need_stream |= stream_gone;
            if failed > 0 {
                tokio::time::sleep(RETRY).await;
            }
        }
        self.stats.pending.store(0, Relaxed);
        // Everything was acknowledged or abandoned; a flush only hands the server what the
        // client still queues, and must not wait for a server that is away.
        if client.connection_state() == State::Connected {
            let _ = tokio::time::timeout(Duration::from_secs(1), client.flush()).await;
        }
    }

    /// Publishes every held item and awaits the acknowledgements together: which were stored,
    /// and whether the server said the stream is gone.
    async fn round(&self, js: &jetstream::Context, held: &VecDeque<Item>) -> (Vec<bool>, bool) {
        let mut acks = Vec::with_capacity(held.len());
        for item in held {
            let publish = PublishMessage::build()
                .payload(item.payload.clone())
                .message_id(&item.id);
            self.stats.published.fetch_add(1, Relaxed);
            match js.send_publish(item.subject.clone(), publish).await {
                Ok(ack) => acks.push(ack),
                Err(e) => {
                    // The client's queue did not take it: the rest of the round would not go
                    // either. Counted once; everything not sent waits for the next round.
                    self.stats.not_acked.fetch_add(1, Relaxed);
                    self.warn(format_args!("a publish was not sent ({e}); retrying"));
                    break;
                }
            }
        }
        let mut done = vec![false; held.len()];
        let mut stream_gone = false;
        let mut first_error = None;
        let results =
            futures_util::future::join_all(acks.into_iter().map(IntoFuture::into_future)).await;
        for (slot, result) in done.iter_mut().zip(results) {
            match result {
                Ok(ack) => {
                    *slot = true;
                    self.stats.acked.fetch_add(1, Relaxed);
                    if ack.duplicate {
                        self.stats.duplicates.fetch_add(1, Relaxed);
                    }
                }
                Err(e) => {
                    self.stats.not_acked.fetch_add(1, Relaxed);
                    stream_gone |= e.kind() == PublishErrorKind::StreamNotFound;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            let failed = done.iter().filter(|d| !**d).count();
            self.warn(format_args!(
                "{failed} of {} publishes not acknowledged (first: {e}); retrying",
                held.len()
            ));
        }
        (done, stream_gone)
    }

    /// Logs a warning, at most one every [`WARN_EVERY`].
    fn warn(&self, what: std::fmt::Arguments<'_>) {
        let now = Instant::now();
        if self
            .warned
            .get()
            .is_none_or(|at| now.duration_since(at) >= WARN_EVERY)
        {
            self.warned.set(Some(now));
            warn!("NATS sink: {what}");
        }
    }
}
