//! The simulator's measuring mode: one Binance USD-M `bookTicker` stream sent at a fixed rate
//! (or as fast as the socket takes it), with the moment each message was handed to the kernel
//! recorded, so a client can measure latency from venue send to its own code.
//!
//! Every client is served the same way, whatever its design: the upgrade, a `SUBSCRIBE` answered
//! with `{"result":null,"id":N}`, then nothing until [`Replay::send`] streams to every subscribed
//! connection. Messages are `{"stream":"btcusdt@bookTicker","data":{…}}` with update ids
//! `FIRST_ID + k` for message `k`; [`Replay::sent_ns`] gives the [`crate::clock::now_ns`] at
//! which message `k` was written. At a paced rate every message is stamped just before its own
//! `write`; at the maximum rate messages go out in 64 KiB batches, each stamped when its batch
//! is written.
//!
//! Plain `ws://` on 127.0.0.1; one thread per connection.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock;

/// Update id of message 0: twelve digits, so every id has the same width.
pub const FIRST_ID: u64 = 100_000_000_000;

/// The stream every client subscribes to.
pub const STREAM: &str = "btcusdt@bookTicker";

/// Largest write at the maximum rate.
const BATCH_BYTES: usize = 64 * 1024;

/// A running replay server.
#[derive(Debug)]
pub struct Replay {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    /// Connections that subscribed and wait for [`Replay::send`].
    ready: Mutex<Vec<TcpStream>>,
    subscribed: AtomicUsize,
    sent_ns: Vec<AtomicU64>,
}

/// What one [`Replay::send`] did.
#[derive(Clone, Copy, Debug)]
pub struct SendReport {
    /// Messages written to every connection.
    pub messages: u64,
    /// From the first write to the last.
    pub elapsed: Duration,
}

impl Replay {
    /// Listens on 127.0.0.1 (any free port), able to send up to `capacity` messages in all.
    pub fn start(capacity: usize) -> io::Result<Replay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            ready: Mutex::new(Vec::new()),
            subscribed: AtomicUsize::new(0),
            sent_ns: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
        });
        let sh = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("replay-accept".into())
            .spawn(move || {
                while !sh.stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let sh = sh.clone();
                            let _ = std::thread::Builder::new()
                                .name("replay-conn".into())
                                .spawn(move || {
                                    if let Err(e) = handshake(stream, &sh) {
                                        log::debug!("replay: connection ended: {e}");
                                    }
                                });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            })?;
        Ok(Replay {
            port,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The `ws://` base URL.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Connections that have subscribed and wait for data.
    pub fn subscribed(&self) -> usize {
        self.shared.subscribed.load(Ordering::Acquire)
    }

    /// Waits until `n` connections have subscribed; false at the deadline.
    pub fn wait_subscribed(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while self.subscribed() < n {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// When message `k` was written ([`clock::now_ns`]), 0 if it was not.
    #[inline]
    pub fn sent_ns(&self, k: usize) -> u64 {
        self.shared
            .sent_ns
            .get(k)
            .map_or(0, |t| t.load(Ordering::Acquire))
    }

    /// Streams messages `first..first + count` to every subscribed connection, at `rate`
    /// messages per second or, with `None`, as fast as the sockets take them. Messages keep
    /// their schedule: one that is late goes out at once, not later ones too. Connections that
    /// fail are dropped. Returns when the last message is written.
    pub fn send(&self, first: usize, count: usize, rate: Option<u32>) -> io::Result<SendReport> {
        let end = (first + count).min(self.shared.sent_ns.len());
        let mut conns = std::mem::take(&mut *lock(&self.shared.ready));
        let mut msg = Message::new();
        let started = Instant::now();
        match rate {
            Some(rate) => {
                let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
                for k in first..end {
                    let due = started + interval.mul_f64((k - first) as f64);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    let frame = msg.render(k as u64);
                    self.shared.sent_ns[k].store(clock::now_ns(), Ordering::Release);
                    conns.retain_mut(|c| c.write_all(frame).is_ok());
                }
            }
            None => {
                let mut batch = Vec::with_capacity(BATCH_BYTES + 512);
                let mut k = first;
                while k < end {
                    batch.clear();
                    let from = k;
                    while k < end && batch.len() < BATCH_BYTES {
                        batch.extend_from_slice(msg.render(k as u64));
                        k += 1;
                    }
                    let at = clock::now_ns();
                    for t in &self.shared.sent_ns[from..k] {
                        t.store(at, Ordering::Release);
                    }
                    conns.retain_mut(|c| c.write_all(&batch).is_ok());
                }
            }
        }
        let elapsed = started.elapsed();
        lock(&self.shared.ready).extend(conns);
        Ok(SendReport {
            messages: (end - first) as u64,
            elapsed,
        })
    }

    /// Sends every subscribed connection a Close frame (1000) and closes it.
    pub fn close_connections(&self) {
        for mut c in lock(&self.shared.ready).drain(..) {
            let _ = c.write_all(&[0x88, 0x02, 0x03, 0xE8]);
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Closes every connection and stops accepting.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.close_connections();
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The upgrade and the subscription, then the connection joins the ready list. WebSocket
/// pings that arrive before the data starts are answered.
fn handshake(stream: TcpStream, sh: &Shared) -> Result<(), Box<dyn std::error::Error>> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    let mut ws = tungstenite::accept(stream)?;
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(5)))?;
    let mut subscribed = false;
    while !sh.stop.load(Ordering::Relaxed) {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                let id = crate::json::Object::new(t.as_str())
                    .ok()
                    .and_then(|o| o.find("id").ok().flatten())
                    .and_then(crate::json::Value::as_u64)
                    .unwrap_or(0);
                ws.send(tungstenite::Message::text(format!(
                    r#"{{"result":null,"id":{id}}}"#
                )))?;
                if !subscribed && t.as_str().contains(STREAM) {
                    subscribed = true;
                    break;
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let _ = ws.flush();
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !subscribed {
        return Ok(());
    }
    ws.flush()?;
    let stream = ws.into_inner();
    stream.set_read_timeout(None)?;
    // Whatever the client sends from now on is read and dropped on another thread, so it can
    // never fill the socket and stall the writer.
    let mut drain = stream.try_clone()?;
    std::thread::Builder::new()
        .name("replay-drain".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            while matches!(drain.read(&mut buf), Ok(n) if n > 0) {}
        })?;
    lock(&sh.ready).push(stream);
    sh.subscribed.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// One pre-rendered frame whose id (and a price digit) are rewritten in place per message.
struct Message {
    frame: Vec<u8>,
    id_at: usize,
    bid_digit_at: usize,
}

impl Message {
    fn new() -> Message {
        let text = format!(
            r#"{{"stream":"{STREAM}","data":{{"e":"bookTicker","u":{FIRST_ID},"E":1568014460893,"T":1568014460891,"s":"BTCUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}}}}"#
        );
        let len = text.len();
        assert!((126..=u16::MAX as usize).contains(&len));
        // Server frames are unmasked: FIN + text, then the 16-bit length form.
        let mut frame = vec![0x81, 126, (len >> 8) as u8, len as u8];
        let head = frame.len();
        frame.extend_from_slice(text.as_bytes());
        let id_at = head + text.find(&FIRST_ID.to_string()).expect("id in template");
        let bid_digit_at = head + text.find(r#""b":"25.3519"#).expect("bid") + 11;
        Message {
            frame,
            id_at,
            bid_digit_at,
        }
    }

    /// The frame of message `k`.
    #[inline]
    fn render(&mut self, k: u64) -> &[u8] {
        let mut id = FIRST_ID + k;
        for i in (0..12).rev() {
            self.frame[self.id_at + i] = b'0' + (id % 10) as u8;
            id /= 10;
        }
        // The bid moves, so a consumer cannot tell messages apart by price alone.
        self.frame[self.bid_digit_at] = b'0' + (k % 10) as u8;
        &self.frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::{Frame, StreamKind, Venue};

    #[test]
    fn messages_parse_as_binance_book_tickers_with_their_ids() {
        let mut m = Message::new();
        for k in [0u64, 7, 123_456] {
            let frame = m.render(k).to_vec();
            let text = std::str::from_utf8(&frame[4..]).unwrap();
            assert_eq!(
                usize::from(frame[2]) << 8 | usize::from(frame[3]),
                text.len()
            );
            let Ok(Frame::Data { data, .. }) = Venue::BinanceUsdm.classify(text) else {
                panic!("not data: {text}");
            };
            let mut got = None;
            Venue::BinanceUsdm
                .parse_data(StreamKind::BookTicker, data, &mut |seq, _, _| {
                    got = Some(seq.id)
                })
                .unwrap();
            assert_eq!(got, Some(FIRST_ID + k));
        }
    }
}
