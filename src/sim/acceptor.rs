//! The listening socket and the acceptor thread: it waits (mio) on the
//! non-blocking listener, accepts as soon as a connection arrives and spawns
//! one connection thread per TCP connection. `Fault::Refuse` closes the
//! listener; the acceptor re-binds the same port when the period ends.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::base::lock;
use super::conn;
use super::state::Inner;

/// The longest the acceptor waits for a connection before it looks at shutdown and at the end
/// of a refusal period again. A connection wakes it at once.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

pub(crate) fn bind_listener(ip: IpAddr, port: u16) -> io::Result<TcpListener> {
    let addr = SocketAddr::new(ip, port);
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// The acceptor thread: runs until the simulator shuts down.
pub(crate) fn run_acceptor(inner: Arc<Inner>) {
    use std::os::fd::AsRawFd;
    let mut accepted = Vec::new();
    // Readiness of the listening socket, so a connection is accepted as soon as it arrives.
    let mut poll = mio::Poll::new().ok();
    let mut events = mio::Events::with_capacity(4);
    let mut watched = None;
    while !inner.is_shutdown() {
        {
            let mut guard = lock(&inner.listener);
            if guard.is_none() {
                let refusing = lock(&inner.state)
                    .refuse_until
                    .is_some_and(|until| Instant::now() < until);
                if !refusing {
                    if let Ok(l) = bind_listener(inner.cfg.bind, inner.port) {
                        *guard = Some(l);
                        inner.update(|st| st.refuse_until = None);
                    }
                }
            }
            if let Some(listener) = guard.as_ref() {
                let fd = listener.as_raw_fd();
                if watched != Some(fd) {
                    // A new listener (after a refusal); the closed one left epoll by itself.
                    let registry = poll.as_ref().map(mio::Poll::registry);
                    let source = &mut mio::unix::SourceFd(&fd);
                    let ok = registry.is_some_and(|r| {
                        r.register(source, mio::Token(0), mio::Interest::READABLE)
                            .or_else(|_| {
                                r.reregister(source, mio::Token(0), mio::Interest::READABLE)
                            })
                            .is_ok()
                    });
                    watched = ok.then_some(fd);
                }
                while accepted.len() < 64 {
                    match listener.accept() {
                        Ok((tcp, _)) => accepted.push((tcp, Instant::now())),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            } else {
                watched = None;
            }
        }
        if accepted.is_empty() {
            match (&mut poll, watched) {
                (Some(p), Some(_)) => {
                    let _ = p.poll(&mut events, Some(ACCEPT_POLL));
                }
                _ => thread::sleep(Duration::from_millis(2)),
            }
            continue;
        }
        // Recorded before any connection thread runs, so an accept is always
        // visible by the time its client can see a response.
        inner.update(|st| {
            st.counters
                .accepts
                .extend(accepted.iter().map(|&(_, at)| at))
        });
        let mut threads = lock(&inner.conn_threads);
        threads.retain(|h| !h.is_finished());
        for (tcp, _) in accepted.drain(..) {
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
