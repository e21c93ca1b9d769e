//! The `metrics` thread: a small blocking HTTP/1.1 server (`tiny_http`) that answers
//! `GET /metrics`, `GET /healthz` and `GET /status`, one request at a time. Scrapes are rare
//! and cheap; nothing here touches a feed thread.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use log::warn;
use tiny_http::{Header, Method, Request, Response, Server};

use super::observed::Observed;
use super::{exporter, health};

/// The running endpoint.
pub struct Endpoint {
    server: Arc<Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Endpoint {
    /// Listens on `addr` (port 0 picks a free one) and serves `observed` from a thread named
    /// `metrics`.
    pub fn start(addr: SocketAddr, observed: Observed) -> io::Result<Endpoint> {
        let server = Server::http(addr)
            .map_err(|e| io::Error::other(format!("cannot listen on {addr}: {e}")))?;
        let addr = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let serving = server.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(&serving, &observed))?;
        Ok(Endpoint {
            server,
            addr,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Stops serving and joins the thread.
impl Drop for Endpoint {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers requests until the server is unblocked.
fn serve(server: &Server, o: &Observed) {
    // Where the previous `/status` left off, for its message rate.
    let mut mark: Option<(Instant, u64)> = None;
    for req in server.incoming_requests() {
        let path = req.url().split('?').next().unwrap_or("").to_string();
        let answer = match (req.method(), path.as_str()) {
            (Method::Get, "/metrics") => (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                exporter::render(o),
            ),
            (Method::Get, "/healthz") => {
                let problems = health::problems(&o.feeds());
                let code = if problems.is_empty() { 200 } else { 503 };
                (code, JSON, health::healthz(&problems).to_string())
            }
            (Method::Get, "/status") => {
                let body = health::status(o, mark);
                let messages = body["messages"].as_u64().unwrap_or(0);
                mark = Some((Instant::now(), messages));
                (200, JSON, body.to_string())
            }
            (Method::Get, _) => (
                404,
                TEXT,
                format!("no such path: {path} (try /metrics, /healthz or /status)\n"),
            ),
            (m, _) => (405, TEXT, format!("method {m} not allowed: GET only\n")),
        };
        respond(req, answer);
    }
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

fn respond(req: Request, (code, kind, body): (u16, &str, String)) {
    let mut response = Response::from_string(body).with_status_code(code);
    if let Ok(h) = Header::from_bytes("Content-Type", kind) {
        response.add_header(h);
    }
    if let Err(e) = req.respond(response) {
        warn!("metrics endpoint: could not answer a request: {e}");
    }
}
