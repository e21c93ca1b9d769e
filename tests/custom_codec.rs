//! A venue codec written in Rust and registered by the program (the `vest` example's codec):
//! it reads the venue's documented messages, a config names it like a built-in venue, and the
//! engine runs it against a small Vest-speaking server on 127.0.0.1, reconnecting after the
//! server drops the connection.

#[path = "../examples/vest/codec.rs"]
#[allow(dead_code)]
mod codec;
mod util;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::Message;
use wsfeed::config::FeedConfig;
use wsfeed::tick::{Health, TickData};
use wsfeed::venue::{self, Codec, Frame, Seq, StreamKey, Venue};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/vest/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn vest() -> Venue {
    venue::register(&codec::VEST).expect("vest registers")
}

#[test]
fn the_codec_reads_vests_documented_messages() {
    let v = vest();
    let depth = fixture("depth.json");
    let Frame::Data { stream, data } = v.classify(&depth).unwrap() else {
        panic!("not data");
    };
    assert_eq!(stream, StreamKey::name("DOGE-PERP@depth"));
    let def = v.parse_stream("DOGE-PERP@depth").unwrap();
    let mut ticks = Vec::new();
    v.parse_data(def.kind, data, &mut |seq, t, tick| {
        ticks.push((seq, t, tick))
    })
    .unwrap();
    let quote = TickData::Quote {
        bid: 0.102,
        bid_qty: 1234.0,
        ask: 0.103,
        ask_qty: 1234.0,
    };
    assert_eq!(ticks, vec![(Seq::UNNUMBERED, 0, quote)]);
    assert_eq!(v.classify(&fixture("pong.json")).unwrap(), Frame::Pong);
    assert_eq!(
        v.classify(r#"{"result": null, "id": 7}"#).unwrap(),
        Frame::Ack {
            id: Some(7),
            stream: None
        }
    );
    // Trades carry no side: not read, and not mistaken for depth.
    let trades = fixture("trades.json");
    assert!(matches!(v.classify(&trades).unwrap(), Frame::Data { .. }));
    assert!(v.parse_stream("DOGE-PERP@trades").is_err());
    let ping: serde_json::Value = serde_json::from_str(&fixture("ping.json")).unwrap();
    let ours: serde_json::Value = serde_json::from_str(v.ping_text().unwrap()).unwrap();
    assert_eq!(ours, ping);
}

#[test]
fn a_registered_codec_is_a_venue_by_name_and_names_stay_unique() {
    let v = vest();
    assert_eq!(Venue::from_name("vest"), Some(v));
    // Registering the same codec again is the same venue.
    assert_eq!(vest(), v);
    // Codecs that read nothing, each a zero-sized type: they share an address, and their
    // names (and types) still tell them apart.
    macro_rules! zero_codec {
        ($t:ident, $name:literal) => {
            #[derive(Debug)]
            struct $t;
            impl Codec for $t {
                fn name(&self) -> &str {
                    $name
                }
                fn default_base_url(&self) -> &str {
                    "ws://127.0.0.1:1"
                }
                fn parse_stream(&self, name: &str) -> Result<venue::StreamDef, String> {
                    Err(name.into())
                }
                fn subscribe_request(&self, _: u64, _: &mut dyn Iterator<Item = &str>) -> String {
                    String::new()
                }
                fn classify<'a>(&self, _: &'a str) -> Result<Frame<'a>, venue::ParseError> {
                    Ok(Frame::Unknown)
                }
                fn parse_data(
                    &self,
                    _: venue::StreamKind,
                    _: &str,
                    _: &mut dyn FnMut(Seq, u64, TickData),
                ) -> Result<(), venue::ParseError> {
                    Ok(())
                }
            }
        };
    }
    zero_codec!(ZeroA, "zero-a");
    zero_codec!(ZeroB, "zero-a");
    zero_codec!(OtherVest, "vest");
    zero_codec!(Okx, "okx");
    zero_codec!(Bad, "Vest 2");
    static ZA: ZeroA = ZeroA;
    static ZB: ZeroB = ZeroB;
    let za = venue::register(&ZA).unwrap();
    assert_ne!(za, v);
    let e = venue::register(&ZB).unwrap_err();
    assert!(e.contains("'zero-a' is already registered"), "{e}");
    static OTHER_VEST: OtherVest = OtherVest;
    static OKX: Okx = Okx;
    static BAD: Bad = Bad;
    let e = venue::register(&OTHER_VEST).unwrap_err();
    assert!(e.contains("'vest' is already registered"), "{e}");
    let e = venue::register(&OKX).unwrap_err();
    assert!(e.contains("'okx' is built in"), "{e}");
    let e = venue::register(&BAD).unwrap_err();
    assert!(e.contains("venue name 'Vest 2' must be"), "{e}");
    // The example's config names it.
    vest();
    let path = format!("{}/examples/vest/vest.toml", env!("CARGO_MANIFEST_DIR"));
    let c = wsfeed::Config::load(path.as_ref()).unwrap();
    assert_eq!(c.feeds[0].venue, v);
    assert_eq!(
        c.feeds[0].endpoint.query,
        "?version=1.0&xwebsocketserver=restserver0"
    );
}

/// A Vest-speaking server: answers `SUBSCRIBE` and `PING`, then sends a depth message every
/// 5 ms for the streams asked for. The first connection is dropped after 20 messages; later
/// ones stream until `stop`. Bounded: at most 3 connections, 2,000 messages each.
fn serve(listener: TcpListener, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<String>> {
    thread::spawn(move || {
        let mut requests = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        for n in 0..3 {
            let tcp = loop {
                match listener.accept() {
                    Ok((tcp, _)) => break Some(tcp),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                            break None;
                        }
                        thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            let Some(tcp) = tcp else {
                break;
            };
            tcp.set_nonblocking(false).unwrap();
            let mut ws = tungstenite::accept(tcp).unwrap();
            ws.get_mut()
                .set_read_timeout(Some(Duration::from_millis(5)))
                .unwrap();
            let mut streams: Vec<String> = Vec::new();
            let mut sent = 0;
            while sent < 2000 && !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                match ws.read() {
                    Ok(Message::Text(t)) => {
                        requests.push(t.to_string());
                        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                        match v["method"].as_str() {
                            Some("SUBSCRIBE") => {
                                streams.extend(
                                    v["params"]
                                        .as_array()
                                        .unwrap()
                                        .iter()
                                        .map(|s| s.as_str().unwrap().to_string()),
                                );
                                let ack = format!(r#"{{"result":null,"id":{}}}"#, v["id"]);
                                ws.send(Message::text(ack)).unwrap();
                            }
                            Some("PING") => ws.send(Message::text(r#"{"data":"PONG"}"#)).unwrap(),
                            _ => {}
                        }
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
                for s in &streams {
                    let px = 100.0 + f64::from(sent % 7);
                    let msg = format!(
                        r#"{{"channel":"{s}","data":{{"bids":[["{px:.2}","1.5"],["99","3"]],"asks":[["{:.2}","2"]]}}}}"#,
                        px + 0.5
                    );
                    if ws.send(Message::text(msg)).is_err() {
                        break;
                    }
                    sent += 1;
                }
                if n == 0 && sent >= 20 {
                    // Dropped without a close frame, as a reset connection is.
                    break;
                }
            }
        }
        requests
    })
}

#[test]
fn the_engine_runs_a_registered_codec_and_reconnects_it() {
    vest();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "ws://127.0.0.1:{}/ws-api?version=1.0",
        listener.local_addr().unwrap().port()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let server = serve(listener, stop.clone());
    let feed: FeedConfig = toml::from_str(&format!(
        "name = \"vest\"\nvenue = \"vest\"\nurl = \"{url}\"\nstreams = [\"BTC-PERP@depth\"]\n"
    ))
    .unwrap();
    let (engine, probe) = util::start(vec![feed], util::fast_reconnect());
    probe.wait("quotes, the connection dropped, and quotes again", |seen| {
        let lost = util::position_of(seen, |h| {
            matches!(
                h,
                Health::Disconnected { .. } | Health::ConnectionLost { .. }
            )
        });
        lost.is_some_and(|i| util::tick_count(&seen[i..]) >= 5) && util::tick_count(seen) >= 25
    });
    assert!(util::has_health(&probe.seen(), |h| matches!(
        h,
        Health::Recovered { .. }
    )));
    let (summary, _) = engine.stop();
    stop.store(true, Ordering::Relaxed);
    let requests = server.join().unwrap();
    let subscribes = requests.iter().filter(|r| r.contains("SUBSCRIBE")).count();
    assert_eq!(subscribes, 2, "{requests:?}");
    assert!(
        requests[0].contains(r#""params":["BTC-PERP@depth"]"#),
        "{}",
        requests[0]
    );
    // The outage is a gap in the summary, as for a built-in venue.
    let feed = &summary.feeds[0];
    assert_eq!(feed.gaps.len(), 1, "{:?}", feed.gaps);
}
