//! How a connection ends: why its serve loop stopped ([`End`]) and what is
//! left to do with the socket then — a Close frame and a linger for the
//! client's reply, a reset, a half-open stall, or just a drop.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use socket2::SockRef;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Error as WsError, WebSocket};

use super::fault::{Cut, Fault, Injected};
use super::market::Event;
use super::observe::ConnId;
use super::state::Inner;
use super::transport::{is_would_block, SimStream};

/// How long a server-initiated close waits for the client's Close reply.
const CLOSE_LINGER: Duration = Duration::from_millis(1000);
/// How long a final flush may keep retrying on a full socket buffer.
const FLUSH_GRACE: Duration = Duration::from_millis(200);
/// Longest wait between two looks at the socket or the channels while ending.
const POLL: Duration = Duration::from_millis(1);

/// Why the serving loop ended, i.e. what is left to do with the socket.
#[derive(Debug)]
pub(crate) enum End {
    /// Simulator shutting down.
    Shutdown,
    /// The peer went away or broke the protocol; just drop.
    Gone,
    /// The client sent a Close frame.
    ClientClose,
    /// Server-initiated close with that code and reason.
    Close(u16, &'static str),
    /// Abrupt reset.
    Reset,
    /// Half-open stall for that long, then a silent drop.
    Stall(Duration),
}

impl From<Cut> for End {
    fn from(cut: Cut) -> End {
        match cut {
            Cut::Close(code, reason) => End::Close(code, reason),
            Cut::Reset => End::Reset,
            Cut::Stall(d) => End::Stall(d),
        }
    }
}

/// What ending a connection works on.
pub(crate) struct Ending<'a> {
    pub inner: &'a Inner,
    pub id: ConnId,
    pub ws: &'a mut WebSocket<SimStream>,
    pub events: &'a Receiver<Arc<Event>>,
    pub faults: &'a Receiver<Injected>,
}

impl Ending<'_> {
    /// Does what is left to do with the socket after `end`.
    pub(crate) fn finish(mut self, end: End) {
        match end {
            End::Shutdown => {
                // Best effort: tell the client we are going away, don't wait.
                self.drain_out(Some(CloseFrame {
                    code: CloseCode::Away,
                    reason: "sim shutdown".into(),
                }));
            }
            End::Gone => {}
            End::ClientClose => {
                // Queues nothing new: the reply to the client's Close is
                // already queued behind the data written before it.
                self.drain_out(None);
            }
            End::Close(code, reason) => self.finish_server_close(code, reason),
            End::Reset => {
                let _ = SockRef::from(self.ws.get_ref().tcp()).set_linger(Some(Duration::ZERO));
            }
            End::Stall(duration) => self.stall(duration),
        }
    }

    /// Server-initiated close: Close frame, wait for the client's reply (or
    /// a timeout), then close TCP.
    fn finish_server_close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        if !self.drain_out(Some(frame)) {
            return;
        }
        // Closed for observers as soon as the Close frame is out.
        self.inner.mark_closed(self.id);
        let deadline = Instant::now() + CLOSE_LINGER;
        while Instant::now() < deadline && !self.inner.is_shutdown() {
            match self.ws.read() {
                Ok(_) => {}
                Err(e) if is_would_block(&e) => thread::sleep(POLL),
                Err(_) => break,
            }
        }
    }

    /// Half-open stall: neither read nor write for `duration`, discarding
    /// events, then a silent drop (FIN, no close frame).
    fn stall(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while !self.inner.is_shutdown() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            while self.events.try_recv().is_ok() {}
            match self
                .faults
                .recv_timeout((deadline - now).min(Duration::from_millis(5)))
            {
                Ok(Injected::Std(Fault::Reset)) => {
                    self.inner.update(|st| st.counters.faults_injected += 1);
                    let _ = SockRef::from(self.ws.get_ref().tcp()).set_linger(Some(Duration::ZERO));
                    return;
                }
                // Other faults are swallowed by the stall.
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => thread::sleep(POLL),
            }
        }
        // Discard what the client sent meanwhile (unread data at close time
        // would turn the FIN into an RST), then send FIN.
        let tcp = self.ws.get_ref().tcp();
        let mut buf = [0u8; 4096];
        let mut reader = tcp;
        while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
        let _ = tcp.shutdown(Shutdown::Write);
    }

    /// Pushes everything buffered (after queueing `close`, if given) into the
    /// kernel, retrying on a full socket for a short grace period. True if
    /// everything was handed over.
    fn drain_out(&mut self, mut close: Option<CloseFrame>) -> bool {
        let deadline = Instant::now() + FLUSH_GRACE;
        loop {
            let queued = match close.take() {
                Some(frame) => self.ws.close(Some(frame)),
                None => self.ws.flush(),
            };
            // `ConnectionClosed` from a server-side flush after the client's
            // Close means "everything written, now terminated".
            let flushed = match queued {
                Ok(()) | Err(WsError::ConnectionClosed) => {
                    self.ws.get_mut().flush().map_err(WsError::Io)
                }
                Err(e) => Err(e),
            };
            match flushed {
                Ok(()) => return true,
                Err(e) if is_would_block(&e) => {}
                Err(_) => return false,
            }
            if Instant::now() >= deadline || self.inner.is_shutdown() {
                return false;
            }
            thread::sleep(Duration::from_micros(200));
        }
    }
}
