//! A connection thread from accept to end: the transport (TLS when
//! configured), the request head, then either one REST response
//! (`rest.rs`) or the WebSocket upgrade (`upgrade.rs`) and the serve loop
//! (`serve.rs`).

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use super::private::conn::PrivateConn;
use super::protocol::Session;
use super::rest;
use super::serve::Conn;
use super::state::Inner;
use super::transport::{read_head, Head, SimStream};
use super::upgrade::{self, HANDSHAKE_READ_WAIT, HANDSHAKE_TIMEOUT};

/// Entry point of a connection thread.
pub(crate) fn run(inner: Arc<Inner>, tcp: TcpStream) {
    // Until the upgrade is done, reads block (briefly, so shutdown and the deadline are still
    // seen): each step of the TLS and HTTP handshakes goes on the moment the client's bytes
    // arrive. The connection is non-blocking from then on.
    if tcp.set_nonblocking(false).is_err()
        || tcp.set_read_timeout(Some(HANDSHAKE_READ_WAIT)).is_err()
    {
        return;
    }
    let _ = tcp.set_nodelay(true);
    let Some(mut stream) = SimStream::new(tcp, inner.tls.as_ref()) else {
        return;
    };
    // The request head decides: a WebSocket upgrade (or anything that is not
    // HTTP, which the handshake then rejects) is replayed to tungstenite, a
    // plain request is answered by the REST module.
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let Some(head_bytes) = read_head(&inner, &mut stream, deadline) else {
        return;
    };
    match Head::parse(&head_bytes) {
        Some(head) if !head.is_upgrade() => {
            if stream.tcp().set_nonblocking(true).is_ok() {
                rest::serve(&inner, stream, &head);
            }
            return;
        }
        _ => stream.replay(head_bytes),
    }
    let Some((ws, reg)) = upgrade::handshake(&inner, stream) else {
        return;
    };
    if ws.get_ref().tcp().set_nonblocking(true).is_err() {
        return;
    }
    let mut session = Session::new(
        inner.cfg.venue,
        inner.cfg.seed,
        reg.id.0,
        reg.route,
        reg.wrapped,
        reg.subs,
    );
    session.deaf = reg.deaf;
    let private = reg.private.map(|route| {
        PrivateConn::new(
            &inner,
            reg.id,
            route.stream,
            session.tag.clone(),
            route.listen_key,
        )
    });
    Conn::new(inner, reg.id, ws, session, reg.events, reg.faults)
        .with_private(private)
        .run();
}
