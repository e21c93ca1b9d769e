//! Where each of a feed's targets is. Host names are looked up off the feed thread (the driver
//! asks the engine's resolver thread), so a slow resolver never stalls the other connections
//! of the thread; an answer that does not come in time is the attempt's connect timeout. An
//! address is kept while connections to it work, so a reconnect does not wait for DNS; after a
//! failure the next attempt looks the name up again, and if that lookup fails, the address
//! known before is used: a resolver outage does not take down a feed whose venue is up. Pure.

use std::net::{IpAddr, SocketAddr};

use crate::tick::DisconnectReason;

/// One target's address.
#[derive(Debug)]
struct Entry {
    /// The target is an IP literal: nothing to look up.
    literal: Option<SocketAddr>,
    /// The last address the resolver gave.
    known: Option<SocketAddr>,
    /// `known` may be used without asking again (no attempt failed since).
    fresh: bool,
    /// A lookup is on its way.
    asked: bool,
}

/// What an attempt can connect to now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// This address.
    Ready(SocketAddr),
    /// Wait for the resolver's answer; `ask` when the question is not on its way yet.
    Wait {
        /// The driver must ask the resolver.
        ask: bool,
    },
}

/// The addresses of a feed's targets, by target index.
#[derive(Debug)]
pub(crate) struct Addrs {
    targets: Vec<Entry>,
}

impl Addrs {
    /// One entry per target `(host, port)`.
    pub(crate) fn new<'a>(targets: impl IntoIterator<Item = (&'a str, u16)>) -> Addrs {
        Addrs {
            targets: targets
                .into_iter()
                .map(|(host, port)| Entry {
                    literal: host
                        .parse::<IpAddr>()
                        .ok()
                        .map(|ip| SocketAddr::new(ip, port)),
                    known: None,
                    fresh: false,
                    asked: false,
                })
                .collect(),
        }
    }

    /// Where an attempt on target `t` connects, or whether it must wait for the resolver.
    pub(crate) fn lookup(&mut self, t: usize) -> Lookup {
        let e = &mut self.targets[t];
        if let Some(addr) = e.literal {
            return Lookup::Ready(addr);
        }
        match e.known {
            Some(addr) if e.fresh => Lookup::Ready(addr),
            _ => Lookup::Wait {
                ask: !std::mem::replace(&mut e.asked, true),
            },
        }
    }

    /// The resolver answered for target `t`: the address to connect to, which is the last one
    /// known when the lookup failed and one is.
    pub(crate) fn resolved(
        &mut self,
        t: usize,
        answer: Result<SocketAddr, DisconnectReason>,
    ) -> Result<SocketAddr, DisconnectReason> {
        let e = &mut self.targets[t];
        e.asked = false;
        match answer {
            Ok(addr) => {
                e.known = Some(addr);
                e.fresh = true;
                Ok(addr)
            }
            Err(reason) => e.known.ok_or(reason),
        }
    }

    /// An attempt or a connection to target `t` failed: the next attempt asks the resolver
    /// again (the address may have moved).
    pub(crate) fn failed(&mut self, t: usize) {
        self.targets[t].fresh = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn literals_never_wait_and_names_are_asked_once() {
        let mut a = Addrs::new([("127.0.0.1", 9000), ("venue.example", 443)]);
        assert_eq!(a.lookup(0), Lookup::Ready(addr("127.0.0.1:9000")));
        a.failed(0);
        assert_eq!(a.lookup(0), Lookup::Ready(addr("127.0.0.1:9000")));
        assert_eq!(a.lookup(1), Lookup::Wait { ask: true });
        assert_eq!(
            a.lookup(1),
            Lookup::Wait { ask: false },
            "a second session of the target waits for the same answer"
        );
        let v6 = Addrs::new([("::1", 80)]).lookup(0);
        assert_eq!(v6, Lookup::Ready(addr("[::1]:80")));
    }

    #[test]
    fn an_address_is_kept_while_it_works_and_survives_a_failed_lookup() {
        let mut a = Addrs::new([("venue.example", 443)]);
        assert_eq!(
            a.resolved(0, Err(DisconnectReason::Resolve)),
            Err(DisconnectReason::Resolve),
            "nothing known yet"
        );
        let first = addr("10.0.0.1:443");
        assert_eq!(a.lookup(0), Lookup::Wait { ask: true });
        assert_eq!(a.resolved(0, Ok(first)), Ok(first));
        assert_eq!(a.lookup(0), Lookup::Ready(first), "no lookup per reconnect");
        a.failed(0);
        assert_eq!(a.lookup(0), Lookup::Wait { ask: true }, "asked again");
        assert_eq!(
            a.resolved(0, Err(DisconnectReason::Resolve)),
            Ok(first),
            "the resolver is down: the known address is used"
        );
        let moved = addr("10.0.0.2:443");
        a.failed(0);
        assert_eq!(a.lookup(0), Lookup::Wait { ask: true });
        assert_eq!(a.resolved(0, Ok(moved)), Ok(moved));
        assert_eq!(a.lookup(0), Lookup::Ready(moved));
    }
}
