//! One connection's subscriptions: requests waiting to go out (spaced, so the venue's limit on
//! incoming messages is kept), requests sent and not yet answered, and what the venue's acks
//! and errors mean for them. Pure: the caller builds and sends the request text.

use std::collections::VecDeque;
use std::mem;
use std::time::{Duration, Instant};

use crate::venue::StreamKey;

/// Spacing of follow-up subscribe requests on the built-in venues (Binance: at most 10
/// incoming messages per second); a custom venue says its own ([`crate::venue::Venue::request_spacing`]).
pub(crate) const REQUEST_SPACING: Duration = Duration::from_millis(200);

/// A request awaiting its ack: id and the stream indices it asked for.
#[derive(Debug)]
struct Pending {
    id: u64,
    streams: Vec<u16>,
    sent_at: Instant,
    /// A check of a subscription made in the URL: the connection counts as subscribed while it
    /// is out (its answer is still due within the ack limit).
    check: bool,
}

/// What a venue error answering one of this connection's requests means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The error names no request of this connection.
    NotOurs,
    /// A multi-stream request was refused: it goes out again in halves, to find exactly which
    /// streams the venue refuses.
    Split,
    /// These streams (one request's worth) are refused.
    Streams(Vec<u16>),
}

/// The subscription state of one connection.
#[derive(Debug)]
pub(crate) struct Subscriptions {
    /// Sent and not yet answered.
    pending: Vec<Pending>,
    /// Waiting to be sent.
    queued: VecDeque<Vec<u16>>,
    next_send: Instant,
    /// Time between requests.
    spacing: Duration,
}

impl Subscriptions {
    /// Every stream in `wanted` to subscribe, `per_request` at most in one request, `spacing`
    /// apart, the first request due at `now`.
    pub(crate) fn new(
        wanted: &[u16],
        per_request: usize,
        spacing: Duration,
        now: Instant,
    ) -> Subscriptions {
        Subscriptions {
            pending: Vec::new(),
            queued: wanted
                .chunks(per_request.max(1))
                .map(<[u16]>::to_vec)
                .collect(),
            next_send: now,
            spacing,
        }
    }

    /// Streams subscribed in the connection's URL: nothing to send but the check that they
    /// were taken, request `id`, sent at `now`.
    pub(crate) fn in_url(id: u64, now: Instant) -> Subscriptions {
        Subscriptions {
            pending: vec![Pending {
                id,
                streams: Vec::new(),
                sent_at: now,
                check: true,
            }],
            queued: VecDeque::new(),
            next_send: now,
            spacing: REQUEST_SPACING,
        }
    }

    /// The streams of the next request due at `now`, leaving out those no longer wanted
    /// (`active`), or `None` when none is due.
    pub(crate) fn next_request(&mut self, now: Instant, active: &[bool]) -> Option<Vec<u16>> {
        while now >= self.next_send {
            let streams: Vec<u16> = self
                .queued
                .pop_front()?
                .into_iter()
                .filter(|&i| active[usize::from(i)])
                .collect();
            if !streams.is_empty() {
                return Some(streams);
            }
        }
        None
    }

    /// Request `id` for `streams` went out at `now`.
    pub(crate) fn sent(&mut self, id: u64, streams: Vec<u16>, now: Instant) {
        self.pending.push(Pending {
            id,
            streams,
            sent_at: now,
            check: false,
        });
        self.next_send = now + self.spacing;
    }

    /// Every subscribe request sent and answered (a check may still be out).
    pub(crate) fn complete(&self) -> bool {
        self.queued.is_empty() && self.pending.iter().all(|p| p.check)
    }

    /// The venue acknowledged request `id`, or (OKX) the one stream of it `stream` names, which
    /// `name_of` spells as configured. Returns the streams acknowledged, or `None` when the ack
    /// matches no request of this connection.
    ///
    /// An ack that echoes no id is matched by what it says: OKX's
    /// `{"event":"subscribe","arg":{…}}` by the stream it names, in the oldest request that
    /// asked for it; Bybit's `{"success":true,"op":"subscribe"}` (no `req_id`) names nothing
    /// and answers the oldest request (the venue answers in order).
    pub(crate) fn on_ack<'n>(
        &mut self,
        id: Option<u64>,
        stream: Option<StreamKey<'_>>,
        name_of: impl Fn(u16) -> &'n str,
    ) -> Option<Vec<u16>> {
        let pos = match (id, stream) {
            (Some(id), _) => self.pending.iter().position(|p| p.id == id)?,
            (None, Some(key)) => self
                .pending
                .iter()
                .position(|p| !p.check && p.streams.iter().any(|&i| key.matches(name_of(i))))?,
            (None, None) => self.pending.iter().position(|p| !p.check)?,
        };
        let acked = match stream {
            None => mem::take(&mut self.pending[pos].streams),
            Some(key) => {
                let streams = &mut self.pending[pos].streams;
                let at = streams.iter().position(|&i| key.matches(name_of(i)))?;
                vec![streams.swap_remove(at)]
            }
        };
        if self.pending[pos].streams.is_empty() {
            self.pending.swap_remove(pos);
        }
        Some(acked)
    }

    /// The venue answered request `id` with an error.
    pub(crate) fn on_error(&mut self, id: Option<u64>) -> Refusal {
        let Some(pos) = id.and_then(|id| self.pending.iter().position(|p| p.id == id)) else {
            return Refusal::NotOurs;
        };
        let req = self.pending.swap_remove(pos);
        if req.streams.len() > 1 {
            let (a, b) = req.streams.split_at(req.streams.len() / 2);
            self.queued.push_back(a.to_vec());
            self.queued.push_back(b.to_vec());
            return Refusal::Split;
        }
        Refusal::Streams(req.streams)
    }

    /// When the oldest unanswered request times out, given the ack limit.
    pub(crate) fn ack_deadline(&self, limit: Duration) -> Option<Instant> {
        self.pending.first().map(|p| p.sent_at + limit)
    }

    /// When the next queued request may go out.
    pub(crate) fn send_deadline(&self) -> Option<Instant> {
        (!self.queued.is_empty()).then_some(self.next_send)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_spaced_and_refusals_split_until_one_stream_is_left() {
        let t0 = Instant::now();
        let active = [true; 5];
        let mut s = Subscriptions::new(&[0, 1, 2, 3, 4], 4, REQUEST_SPACING, t0);
        let first = s.next_request(t0, &active).unwrap();
        assert_eq!(first, [0, 1, 2, 3]);
        s.sent(1, first, t0);
        assert_eq!(s.next_request(t0, &active), None, "spaced");
        assert_eq!(s.send_deadline(), Some(t0 + REQUEST_SPACING));
        assert_eq!(s.on_error(Some(1)), Refusal::Split);
        let at = t0 + REQUEST_SPACING;
        let second = s.next_request(at, &active).unwrap();
        assert_eq!(second, [4]);
        s.sent(2, second, at);
        assert_eq!(s.on_ack(Some(2), None, |_| ""), Some(vec![4]));
        let at = at + REQUEST_SPACING;
        let half = s.next_request(at, &active).unwrap();
        assert_eq!(half, [0, 1]);
        s.sent(3, half, at);
        assert_eq!(s.on_error(Some(3)), Refusal::Split);
        assert_eq!(s.on_error(Some(99)), Refusal::NotOurs);
        let mut inactive = active;
        inactive[2] = false;
        let at = at + REQUEST_SPACING;
        let rest = s.next_request(at, &inactive).unwrap();
        assert_eq!(
            rest,
            [3],
            "a stream refused elsewhere meanwhile is left out"
        );
        s.sent(4, rest, at);
        assert_eq!(s.on_error(Some(4)), Refusal::Streams(vec![3]));
        assert!(!s.complete(), "[0] and [1] still queued");
    }

    #[test]
    fn a_subscription_in_the_url_is_complete_while_its_check_is_out() {
        let t0 = Instant::now();
        let mut s = Subscriptions::in_url(9, t0);
        assert!(s.complete());
        assert_eq!(s.next_request(t0, &[true]), None, "nothing to send");
        let limit = Duration::from_secs(2);
        assert_eq!(
            s.ack_deadline(limit),
            Some(t0 + limit),
            "the check has the ack limit"
        );
        assert_eq!(s.on_ack(Some(9), None, |_| ""), Some(vec![]));
        assert_eq!(s.ack_deadline(limit), None);
    }

    #[test]
    fn okx_acks_each_stream_of_a_request() {
        let t0 = Instant::now();
        let names = ["books:BTC-USDT", "trades:BTC-USDT"];
        let mut s = Subscriptions::new(&[0, 1], 10, REQUEST_SPACING, t0);
        let req = s.next_request(t0, &[true, true]).unwrap();
        s.sent(7, req, t0);
        let key = StreamKey::pair("trades", "BTC-USDT");
        assert_eq!(
            s.on_ack(Some(7), Some(key), |i| names[usize::from(i)]),
            Some(vec![1])
        );
        assert!(!s.complete());
        assert_eq!(
            s.ack_deadline(Duration::from_secs(2)),
            Some(t0 + Duration::from_secs(2))
        );
        let key = StreamKey::pair("books", "BTC-USDT");
        assert_eq!(
            s.on_ack(Some(7), Some(key), |i| names[usize::from(i)]),
            Some(vec![0])
        );
        assert!(s.complete());
    }

    /// OKX `{"event":"subscribe","arg":{…}}` and Bybit `{"success":true,"op":"subscribe"}`
    /// without the request's id: matched by the stream named, or to the oldest request.
    #[test]
    fn acks_without_an_id_are_matched_by_content() {
        let t0 = Instant::now();
        let names = ["books:BTC-USDT", "trades:BTC-USDT", "bbo-tbt:ETH-USDT"];
        let name_of = |i: u16| names[usize::from(i)];
        let mut s = Subscriptions::new(&[0, 1, 2], 2, REQUEST_SPACING, t0);
        let first = s.next_request(t0, &[true; 3]).unwrap();
        s.sent(1, first, t0);
        let at = t0 + REQUEST_SPACING;
        let second = s.next_request(at, &[true; 3]).unwrap();
        s.sent(2, second, at);
        let key = StreamKey::pair;
        assert_eq!(
            s.on_ack(None, Some(key("bbo-tbt", "ETH-USDT")), name_of),
            Some(vec![2]),
            "found in the second request"
        );
        assert_eq!(
            s.on_ack(None, Some(key("bbo-tbt", "BTC-USDT")), name_of),
            None,
            "a stream not asked for"
        );
        assert_eq!(
            s.on_ack(None, Some(key("trades", "BTC-USDT")), name_of),
            Some(vec![1])
        );
        assert_eq!(
            s.on_ack(None, Some(key("books", "BTC-USDT")), name_of),
            Some(vec![0])
        );
        assert!(s.complete());

        // Bybit: nothing named, the oldest request is answered.
        let mut s = Subscriptions::new(&[0, 1, 2], 2, REQUEST_SPACING, t0);
        let first = s.next_request(t0, &[true; 3]).unwrap();
        s.sent(1, first, t0);
        let second = s.next_request(at, &[true; 3]).unwrap();
        s.sent(2, second, at);
        assert_eq!(s.on_ack(None, None, name_of), Some(vec![0, 1]));
        assert_eq!(s.on_ack(None, None, name_of), Some(vec![2]));
        assert_eq!(s.on_ack(None, None, name_of), None, "nothing left");
        assert!(s.complete());
    }

    #[test]
    fn a_venue_that_takes_more_requests_gets_them_sooner() {
        let t0 = Instant::now();
        let spacing = Duration::from_millis(50);
        let mut s = Subscriptions::new(&[0, 1, 2], 1, spacing, t0);
        let active = [true; 3];
        let first = s.next_request(t0, &active).unwrap();
        s.sent(1, first, t0);
        assert_eq!(s.send_deadline(), Some(t0 + spacing));
        assert_eq!(s.next_request(t0 + spacing, &active), Some(vec![1]));
    }
}
