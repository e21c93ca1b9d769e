//! Connection set-up: socket2 TCP (non-blocking connect, TCP_NODELAY, receive buffer), rustls
//! client configuration (webpki roots plus an optional extra CA; there is no switch that turns
//! verification off), and the stream type the WebSocket runs on.
//!
//! Nothing here blocks except host-name resolution (`getaddrinfo` has no non-blocking form in
//! std); IP literals and `localhost` resolve without the network.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use socket2::{Domain, Protocol, Socket, Type};

use crate::tick::DisconnectReason;

/// The byte stream under the WebSocket: plain TCP or TLS over TCP.
#[derive(Debug)]
pub enum NetStream {
    /// `ws://`
    Plain(TcpStream),
    /// `wss://`
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl NetStream {
    /// The TCP socket, for readiness registration.
    pub fn tcp_mut(&mut self) -> &mut TcpStream {
        match self {
            NetStream::Plain(s) => s,
            NetStream::Tls(s) => &mut s.sock,
        }
    }

    /// Aborts the connection with a TCP reset rather than a FIN, so a dead or hostile peer
    /// cannot hold the socket in a closing state.
    pub fn abort(&mut self) {
        let s = self.tcp_mut();
        let _ = socket2::SockRef::from(&*s).set_linger(Some(std::time::Duration::ZERO));
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
}

impl Read for NetStream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            NetStream::Plain(s) => s.read(buf),
            NetStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for NetStream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            NetStream::Plain(s) => s.write(buf),
            NetStream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            NetStream::Plain(s) => s.flush(),
            NetStream::Tls(s) => s.flush(),
        }
    }
}

/// Resolves `host:port` to the first address (blocking for DNS names).
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, DisconnectReason> {
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or(DisconnectReason::Resolve)
}

#[cfg(target_os = "linux")]
const EINPROGRESS: i32 = 115;
#[cfg(not(target_os = "linux"))]
const EINPROGRESS: i32 = 36;

/// Starts a non-blocking connect: the socket is ready for mio; completion shows as writable,
/// then [`connect_result`] tells success or failure.
pub fn start_connect(addr: SocketAddr, recv_buffer: Option<usize>) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_tcp_nodelay(true)?;
    if let Some(bytes) = recv_buffer {
        // Before connect, so the window scale is negotiated for it.
        socket.set_recv_buffer_size(bytes)?;
    }
    socket.set_nonblocking(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e)
            if e.raw_os_error() == Some(EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// After a writable event: `Ok(true)` connected, `Ok(false)` still in progress, `Err` failed.
pub fn connect_result(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// Builds the TLS client configuration: webpki roots plus the CA certificates in `extra_ca_pem`.
pub fn tls_config(extra_ca_pem: Option<&str>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("bad PEM in the CA file: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("CA certificate rejected: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("the CA file holds no PEM certificate".into());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Wraps a connected socket in a TLS client session for `host` (SNI and certificate name).
pub fn tls_stream(
    config: &Arc<ClientConfig>,
    host: &str,
    sock: TcpStream,
) -> Result<StreamOwned<ClientConnection, TcpStream>, DisconnectReason> {
    let name = ServerName::try_from(host.to_string()).map_err(|_| DisconnectReason::Tls)?;
    let conn = ClientConnection::new(config.clone(), name).map_err(|_| DisconnectReason::Tls)?;
    Ok(StreamOwned::new(conn, sock))
}

/// Advances a TLS handshake without blocking: `Ok(true)` when done.
pub fn drive_tls(tls: &mut StreamOwned<ClientConnection, TcpStream>) -> io::Result<bool> {
    loop {
        if !tls.conn.is_handshaking() && !tls.conn.wants_write() {
            return Ok(true);
        }
        match tls.conn.complete_io(&mut tls.sock) {
            Ok((0, 0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// Maps a socket or TLS error to a disconnect reason.
pub fn io_reason(e: &io::Error) -> DisconnectReason {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return tls_reason(tls);
    }
    match e.kind() {
        io::ErrorKind::ConnectionRefused => DisconnectReason::ConnectRefused,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => DisconnectReason::Reset,
        io::ErrorKind::UnexpectedEof => DisconnectReason::Eof,
        io::ErrorKind::TimedOut => DisconnectReason::ConnectTimeout,
        kind => DisconnectReason::Io(kind),
    }
}

/// Maps a rustls error: certificate problems are permanent, the rest are not.
pub fn tls_reason(e: &rustls::Error) -> DisconnectReason {
    match e {
        rustls::Error::InvalidCertificate(_) => DisconnectReason::BadCertificate,
        _ => DisconnectReason::Tls,
    }
}
