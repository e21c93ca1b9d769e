//! What a driver hands to helper threads: host-name lookups and REST calls (depth snapshots,
//! listen keys). Each answer comes back as a [`Reply`] through the driver's reply channel.

use std::sync::Arc;

use rustls::ClientConfig;

use super::{Driver, Reply};
use crate::account::listen_key::{self, KeyError, KeyOp};
use crate::auth::Secret;
use crate::feed::sink::Sink;
use crate::rest::{RestClient, RestError};

impl<S: Sink> Driver<S> {
    /// Asks the resolver thread for target `target`'s address.
    pub(super) fn resolve(&mut self, lane: usize, target: usize) {
        let endpoint = &self.feeds[lane].core.target(target).endpoint;
        let (host, port) = (endpoint.host.clone(), endpoint.port);
        let (tx, waker) = (self.reply_tx.clone(), self.waker.clone());
        let resolve = self.helpers.resolve.clone();
        let job = move || {
            let answer = resolve(&host, port);
            let _ = tx.send(Reply::Resolved {
                lane,
                target,
                answer,
            });
            let _ = waker.wake();
        };
        let sent = self.helpers.resolver.as_ref().is_some_and(|h| h.run(job));
        if !sent {
            // No resolver thread: this thread has to look the name up itself.
            let endpoint = &self.feeds[lane].core.target(target).endpoint;
            let answer = (self.helpers.resolve)(&endpoint.host, endpoint.port);
            let _ = self.reply_tx.send(Reply::Resolved {
                lane,
                target,
                answer,
            });
        }
    }

    /// Asks the REST thread for a depth snapshot.
    pub(super) fn snapshot(&mut self, lane: usize, stream: u16, url: String) {
        let call = move |client: &RestClient, tls: Option<&Arc<ClientConfig>>| Reply::Snapshot {
            lane,
            stream,
            result: client.fetch_depth_snapshot(&url, tls),
        };
        let result = Err(RestError::new("no snapshot thread"));
        self.on_rest_thread(
            lane,
            call,
            Reply::Snapshot {
                lane,
                stream,
                result,
            },
        );
    }

    /// Asks the REST thread for an account's listen-key call.
    pub(super) fn listen_key(
        &mut self,
        lane: usize,
        op: KeyOp,
        rest_base: String,
        api_key: Secret,
    ) {
        let call = move |client: &RestClient, tls: Option<&Arc<ClientConfig>>| Reply::ListenKey {
            lane,
            answer: listen_key::call(client, op, &rest_base, api_key.expose(), tls),
        };
        let answer = Err(KeyError::new("no REST helper thread"));
        self.on_rest_thread(lane, call, Reply::ListenKey { lane, answer });
    }

    /// Runs `call` on the REST helper thread with lane `lane`'s TLS config; its reply comes
    /// back through the reply channel (`unavailable` at once when there is no such thread).
    fn on_rest_thread(
        &mut self,
        lane: usize,
        call: impl FnOnce(&RestClient, Option<&Arc<ClientConfig>>) -> Reply + Send + 'static,
        unavailable: Reply,
    ) {
        let tls = self.feeds[lane].connector.tls.clone();
        let (tx, waker) = (self.reply_tx.clone(), self.waker.clone());
        let client = self.helpers.rest.clone();
        let job = move || {
            let _ = tx.send(call(&client, tls.as_ref()));
            let _ = waker.wake();
        };
        if !self.helpers.snapshots.as_ref().is_some_and(|h| h.run(job)) {
            let _ = self.reply_tx.send(unavailable);
        }
    }
}
