//! The message shapes venues send beside the documented ones (issue 16): bookTicker fields in
//! the recorded USD-M order, the stream kinds users subscribe to, level-1 deltas, messages
//! without a sequence number, escapes, acks without an id. Fixtures in `tests/fixtures/`.

use crate::json::Unescaped;
use crate::tick::{DepthChunk, TickData};
use crate::venue::{binance, Frame, Seq, StreamKey, StreamKind, Venue};

fn fixture(path: &str) -> String {
    let path = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim_end()
        .to_string()
}

/// Classifies `text` on `venue` as data of `stream`, parses it as that stream's kind.
fn parse(venue: Venue, stream: &str, text: &str) -> Vec<(Seq, u64, TickData)> {
    let def = venue.parse_stream(stream).unwrap();
    let Frame::Data { stream: key, data } = venue.classify(text).unwrap() else {
        panic!("{text}: not data");
    };
    assert!(key.matches(stream), "{key:?} is not {stream}");
    let mut out = vec![];
    venue
        .parse_data(def.kind, data, &mut |s, t, d| out.push((s, t, d)))
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    out
}

fn chunks(ticks: &[(Seq, u64, TickData)]) -> Vec<DepthChunk> {
    ticks
        .iter()
        .map(|t| match t.2 {
            TickData::Depth(d) => d,
            other => panic!("not depth: {other:?}"),
        })
        .collect()
}

/// Item 1: USD-M bookTicker frames as recorded (`T` and `E` last) take the as-sent path, as do
/// the documented order, spot's, and any other order of the same compact fields; whitespace or
/// a field the layout does not know goes to the general reader, which agrees.
#[test]
fn book_tickers_take_the_fast_path_in_the_order_the_venue_sends() {
    let recorded = fixture("binance/book_ticker_usdm_recorded.json");
    let Frame::Data { data, .. } = Venue::BinanceUsdm.classify(&recorded).unwrap() else {
        panic!("not data")
    };
    let want = (
        Seq {
            id: 400900217,
            prev: None,
        },
        1568014460893,
        TickData::quote((25.3519, 31.21), (25.3652, 40.66)),
    );
    assert_eq!(binance::book_ticker_as_sent(data), Some(want));
    let documented = r#"{"e":"bookTicker","u":400900217,"E":1568014460893,"T":1568014460891,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#;
    let shuffled = r#"{"A":"40.66000000","a":"25.36520000","E":1568014460893,"B":"31.21000000","s":"BNBUSDT","b":"25.35190000","e":"bookTicker","T":1568014460891,"u":400900217}"#;
    for sent in [data, documented, shuffled] {
        assert_eq!(binance::book_ticker_as_sent(sent), Some(want), "{sent}");
    }
    let spot = r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#;
    assert_eq!(
        binance::book_ticker_as_sent(spot),
        Some((want.0, 0, want.2))
    );
    for other in [
        data.replace(',', ", "),
        data.replace(r#""E""#, r#""x":1,"E""#),
        data.replace(r#""u":400900217,"#, r#""u":400900217,"u":400900217,"#),
        data.replace(r#""e":"bookTicker","#, r#""e":"other","#),
        data.replace(r#""A":"40.66000000","#, ""),
    ] {
        assert_eq!(binance::book_ticker_as_sent(&other), None, "{other}");
    }
    // The general reader gives the same for what the fast path leaves to it.
    let mut general = vec![];
    Venue::BinanceUsdm
        .parse_data(
            StreamKind::BookTicker,
            &data.replace(',', ", "),
            &mut |s, t, d| general.push((s, t, d)),
        )
        .unwrap();
    assert_eq!(general, vec![want]);
}

/// Item 2: the stream kinds users subscribe to are accepted, routed and parsed.
#[test]
fn stream_kinds_users_subscribe_to_are_accepted_and_parsed() {
    // Binance @trade: trades numbered by their own id, which chains them.
    for (venue, stream, file, id, price) in [
        (
            Venue::BinanceSpot,
            "bnbbtc@trade",
            "binance/trade_spot.json",
            12345,
            0.001,
        ),
        (
            Venue::BinanceUsdm,
            "btcusdt@trade",
            "binance/trade_usdm.json",
            5933014,
            16800.1,
        ),
    ] {
        let def = venue.parse_stream(stream).unwrap();
        assert_eq!(def.kind, StreamKind::Trade);
        let ticks = parse(venue, stream, &fixture(file));
        assert_eq!(ticks.len(), 1);
        assert_eq!(
            ticks[0].0,
            Seq {
                id,
                prev: Some(id - 1)
            }
        );
        assert!(matches!(ticks[0].2, TickData::Trade { price: p, .. } if p == price));
    }
    assert_eq!(
        Venue::BinanceUsdm
            .parse_stream("btcusdt@trade")
            .unwrap()
            .route,
        crate::venue::Route::Market
    );

    // Binance @kline_<interval>: the candle so far.
    let def = Venue::BinanceSpot.parse_stream("bnbbtc@kline_1m").unwrap();
    assert_eq!(def.kind, StreamKind::Kline { interval_s: 60 });
    let ticks = parse(
        Venue::BinanceSpot,
        "bnbbtc@kline_1m",
        &fixture("binance/kline_spot.json"),
    );
    assert_eq!(
        ticks,
        vec![(
            Seq {
                id: 1672515782136,
                prev: None
            },
            1672515782136,
            TickData::Candle {
                open: 0.001,
                high: 0.0025,
                low: 0.0015,
                close: 0.002,
                volume: 1000.0,
                start_ms: 1672515780000,
                close_ms: 1672515839999,
                closed: false,
            }
        )]
    );
    for interval in ["1s", "3m", "1h", "1d", "1w", "1M"] {
        let name = format!("btcusdt@kline_{interval}");
        assert!(Venue::BinanceUsdm.parse_stream(&name).is_ok(), "{name}");
    }

    // Binance partial books: full snapshots (spot `lastUpdateId`, USD-M `u`).
    let spot = chunks(&parse(
        Venue::BinanceSpot,
        "bnbbtc@depth5@100ms",
        &fixture("binance/depth5_spot.json"),
    ));
    assert_eq!(spot.len(), 1);
    assert!(spot[0].snapshot && spot[0].last);
    assert_eq!(
        (spot[0].final_update_id, spot[0].n_bids, spot[0].n_asks),
        (160, 1, 1)
    );
    let usdm = parse(
        Venue::BinanceUsdm,
        "btcusdt@depth5",
        &fixture("binance/depth5_usdm.json"),
    );
    assert!(usdm.iter().all(|t| t.0
        == Seq {
            id: 390497878,
            prev: None
        }));
    let usdm = chunks(&usdm);
    assert!(usdm.iter().all(|c| c.snapshot));
    assert_eq!(usdm.iter().map(|c| c.n_bids + c.n_asks).sum::<u8>(), 10);
    for name in [
        "btcusdt@depth10",
        "btcusdt@depth20@500ms",
        "btcusdt@depth@0ms",
    ] {
        let def = Venue::BinanceUsdm.parse_stream(name).unwrap();
        assert_eq!(def.route, crate::venue::Route::Public, "{name}");
    }
    assert_eq!(
        Venue::BinanceUsdm
            .parse_stream("btcusdt@depth@0ms")
            .unwrap()
            .kind,
        StreamKind::Depth { interval_ms: 0 }
    );

    // Bybit orderbook.200 / orderbook.1000: the book code reads a 200-level snapshot.
    for depth in [200u16, 1000] {
        for venue in [Venue::BybitSpot, Venue::BybitLinear] {
            let def = venue
                .parse_stream(&format!("orderbook.{depth}.BTCUSDT"))
                .unwrap();
            assert_eq!(def.kind, StreamKind::OrderBook { levels: depth });
        }
    }
    let side = |from: f64, step: f64| {
        (0..200)
            .map(|i| format!(r#"["{:.2}","{}.5"]"#, from + step * f64::from(i), i + 1))
            .collect::<Vec<_>>()
            .join(",")
    };
    let snapshot = format!(
        r#"{{"topic":"orderbook.200.BTCUSDT","type":"snapshot","ts":1672304484978,"data":{{"s":"BTCUSDT","b":[{}],"a":[{}],"u":5,"seq":7961638724}},"cts":1672304484976}}"#,
        side(16000.0, -0.5),
        side(16000.5, 0.5)
    );
    let book = chunks(&parse(
        Venue::BybitLinear,
        "orderbook.200.BTCUSDT",
        &snapshot,
    ));
    let bids: Vec<_> = book.iter().flat_map(|c| c.bids().to_vec()).collect();
    let asks: Vec<_> = book.iter().flat_map(|c| c.asks().to_vec()).collect();
    assert_eq!((bids.len(), asks.len()), (200, 200));
    assert_eq!((bids[199].price, bids[199].qty), (16000.0 - 99.5, 200.5));
    assert!(book.iter().all(|c| c.snapshot) && book.last().unwrap().last);

    // OKX books5 (full snapshots), books-l2-tbt and books50-l2-tbt (a book, as `books`).
    let books5 = parse(
        Venue::Okx,
        "books5:BCH-USDT-SWAP",
        &fixture("okx/books5.json"),
    );
    assert_eq!(books5[0].0.id, 363996337);
    let books5 = chunks(&books5);
    assert!(books5.iter().all(|c| c.snapshot));
    assert_eq!(books5[0].levels[0].price, 111.05);
    let tbt = fixture("okx/books_snapshot.json").replace(r#""books""#, r#""books-l2-tbt""#);
    assert!(!parse(Venue::Okx, "books-l2-tbt:BTC-USDT", &tbt).is_empty());
    assert_eq!(
        Venue::Okx
            .parse_stream("books50-l2-tbt:BTC-USDT")
            .unwrap()
            .kind,
        StreamKind::OrderBook { levels: 50 }
    );

    // A refused kind's error lists every kind the venue accepts.
    let err = Venue::BinanceUsdm
        .parse_stream("btcusdt@ticker")
        .unwrap_err();
    for kind in [
        "bookTicker",
        "aggTrade",
        "trade",
        "kline_<interval>",
        "depth5",
        "depth10",
        "depth20",
        "depth@0ms",
        "markPrice",
    ] {
        assert!(err.contains(kind), "{kind} not in: {err}");
    }
    let err = Venue::BybitSpot
        .parse_stream("orderbook.25.BTCUSDT")
        .unwrap_err();
    for kind in [
        "orderbook.1,",
        "orderbook.50",
        "orderbook.200",
        "orderbook.1000",
        "publicTrade",
        "tickers",
    ] {
        assert!(err.contains(kind), "{kind} not in: {err}");
    }
    let err = Venue::Okx.parse_stream("candle1m:BTC-USDT").unwrap_err();
    for kind in [
        "bbo-tbt",
        "books5",
        "books,",
        "books-l2-tbt",
        "books50-l2-tbt",
        "trades",
        "funding-rate",
        "mark-price",
    ] {
        assert!(err.contains(kind), "{kind} not in: {err}");
    }
}

/// Item 3: a Bybit `orderbook.1` delta is not read as a whole top of book: the as-sent path
/// leaves it, and the general one hands it out as a change to a one-level book (the feed
/// merges it into the stream's last top, `feed::top`), never as a NaN side or a removed level
/// standing as the best bid.
#[test]
fn level_one_deltas_are_changes_not_tops() {
    let stream = "orderbook.1.BTCUSDT";
    for (file, bids, asks) in [
        (
            "bybit/orderbook_1_delta_one_side.json",
            vec![],
            vec![(16611.5, 0.251)],
        ),
        (
            "bybit/orderbook_1_delta_removal.json",
            vec![(16493.5, 0.0)],
            vec![],
        ),
    ] {
        let text = fixture(file);
        assert!(
            crate::venue::bybit::top_of_book_as_sent(&text).is_none(),
            "{file}"
        );
        let ticks = parse(Venue::BybitLinear, stream, &text);
        assert_eq!(ticks.len(), 1, "{file}");
        assert_eq!(ticks[0].0.prev, None, "{file}: an id, not a chain");
        let [chunk] = chunks(&ticks)[..] else {
            panic!("{file}: one chunk")
        };
        assert!(!chunk.snapshot && chunk.last, "{file}");
        let levels =
            |l: &[crate::tick::Level]| l.iter().map(|l| (l.price, l.qty)).collect::<Vec<_>>();
        assert_eq!(levels(chunk.bids()), bids, "{file}");
        assert_eq!(levels(chunk.asks()), asks, "{file}");
    }
}

/// Item 4: a message without a number is numbered [`Seq::UNNUMBERED`] (not a real 0); one
/// numbered by its time says so by its id being its time.
#[test]
fn messages_without_a_sequence_number() {
    let funding = parse(
        Venue::Okx,
        "funding-rate:BTC-USD-SWAP",
        &fixture("okx/funding_rate_no_ts.json"),
    );
    assert_eq!(funding.len(), 1);
    assert!(funding[0].0.is_unnumbered());
    let bbo = parse(
        Venue::Okx,
        "bbo-tbt:BCH-USDT-SWAP",
        &fixture("okx/bbo_tbt_no_seq_id.json"),
    );
    assert_eq!((bbo[0].0.id, bbo[0].1), (1670324386802, 1670324386802));
}

/// Item 5: escapes in venue text are decoded where it is shown or compared.
#[test]
fn escapes_are_decoded_where_text_is_shown_or_compared() {
    let failure = fixture("bybit/subscribe_failure_args_size.json");
    let Frame::Error { msg, .. } = Venue::BybitSpot.classify(&failure).unwrap() else {
        panic!("not an error")
    };
    assert_eq!(Unescaped(msg).to_string(), "args size >10");
    // Names and values compared.
    assert!(StreamKey::name(r"btcusdt\u0040trade").matches("btcusdt@trade"));
    assert!(!StreamKey::name(r"btcusdt\u0040trade").matches("btcusdt@aggTrade"));
    assert!(StreamKey::pair(r"books\u0035", r"BTC\u002dUSDT").matches("books5:BTC-USDT"));
    let escaped = fixture("binance/trade_spot.json").replace(
        r#""stream":"bnbbtc@trade""#,
        r#""stream":"bnbbtc\u0040trade""#,
    );
    assert_eq!(parse(Venue::BinanceSpot, "bnbbtc@trade", &escaped).len(), 1);
    let delta =
        fixture("bybit/orderbook_50_delta.json").replace(r#""delta""#, r#""snap\u0073hot""#);
    let ticks = parse(Venue::BybitLinear, "orderbook.50.BTCUSDT", &delta);
    assert!(chunks(&ticks).iter().all(|c| c.snapshot), "`type` decoded");
    let ack = r#"{"success":true,"ret_msg":"","conn_id":"x","req_id":"3","op":"p\u006fng"}"#;
    assert_eq!(Venue::BybitLinear.classify(ack).unwrap(), Frame::Pong);
}

/// Item 6: acks that echo no id are acks, naming what they can.
#[test]
fn acks_without_an_id_are_acks() {
    assert_eq!(
        Venue::Okx
            .classify(&fixture("okx/subscribe_event_no_id.json"))
            .unwrap(),
        Frame::Ack {
            id: None,
            stream: Some(StreamKey::pair("books", "BTC-USDT"))
        }
    );
    for venue in [Venue::BybitSpot, Venue::BybitLinear] {
        assert_eq!(
            venue
                .classify(&fixture("bybit/subscribe_success_no_req_id.json"))
                .unwrap(),
            Frame::Ack {
                id: None,
                stream: None
            }
        );
    }
}
