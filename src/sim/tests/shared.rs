//! Several venues on one shared market; an unshared market is unchanged.

use super::*;

/// FNV-1a of everything an unshared market generates for a fixed script.
fn unshared_market_digest(venue: SimVenue) -> u64 {
    use crate::sim::market::Market;
    use crate::sim::symbol::{price_format, SymInfo};
    let info = ["BTCUSDT", "SOLUSDT"]
        .iter()
        .map(|s| SymInfo::new(s, price_format(s).1))
        .collect();
    let mut m = Market::new(Arc::new(info), 0x00C0_FFEE, venue, false);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &str| {
        for b in s.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    };
    for k in 0..3_000u64 {
        let i = (k % 2) as usize;
        eat(&m.book_change(i, 1_000 + k).payload);
        if k % 5 == 0 {
            eat(&m.trade(i, 1_000 + k).payload);
        }
        if k % 20 == 0 {
            if let Some(e) = m.depth(i, 1_000 + k) {
                eat(&e.payload);
            }
        }
        if k % 100 == 0 {
            for e in m.mark(i, 1_000 + k) {
                eat(&e.payload);
            }
        }
    }
    h
}

#[test]
fn without_a_shared_market_nothing_changes() {
    // Digests of an unshared market, so that the shared market's code path
    // cannot change it unnoticed. First taken before shared markets existed;
    // taken again when the simulator's own splitmix generator gave way to
    // `fastrand` (other draws, the same market code).
    assert_eq!(
        unshared_market_digest(SimVenue::Binance),
        0x7023_4df0_6055_adf4
    );
    assert_eq!(
        unshared_market_digest(SimVenue::BybitLinear),
        0xaac8_76d1_855c_6cce
    );
    assert_eq!(unshared_market_digest(SimVenue::Okx), 0xd774_754a_30d2_4678);
    assert_eq!(SimConfig::default().shared, None);
    let sim = Sim::start(fast_cfg()).expect("start");
    assert_eq!(sim.config().shared, None);
}

/// Relative difference in basis points.
fn bps(a: f64, b: f64) -> f64 {
    (a - b).abs() / b * 1e4
}

#[test]
fn shared_market_is_deterministic_bounded_and_dislocations_are_rare_and_brief() {
    const TICKS: u64 = 120_000; // two minutes of 1 ms ticks
    let syms: Vec<String> = vec!["BTCUSDT".into(), "ETHUSDT".into()];
    let a = SharedMarket::new(["ethusdt", " BTCUSDT", "ETHUSDT"], 11);
    assert_eq!(a.symbols(), ["ETHUSDT", "BTCUSDT"]);
    let bound = a.max_divergence_bps();
    assert!(bound > 40.0 && bound < 48.0, "{bound}");
    let (mut a0, mut a1) = (a.join(&syms).expect("join"), a.join(&syms).expect("join"));
    assert_eq!((a0.slot(), a1.slot(), a.venues()), (0, 1, 2));
    // The same market sampled every 7th tick only, and one with another seed.
    let b = SharedMarket::new(["ETHUSDT", "BTCUSDT"], 11);
    let (mut b0, mut b1) = (b.join(&syms).expect("join"), b.join(&syms).expect("join"));
    let c = SharedMarket::new(["ETHUSDT", "BTCUSDT"], 12);
    let mut c0 = c.join(&syms).expect("join");
    let mut divergence: Vec<Vec<f64>> = vec![Vec::new(); syms.len()];
    let mut differs_from_other_seed = false;
    for t in 0..TICKS {
        a0.sync_tick(t);
        a1.sync_tick(t);
        for (i, d) in divergence.iter_mut().enumerate() {
            assert_eq!(a0.index(i), a1.index(i), "one shared price");
            d.push(bps(a0.mid(i), a1.mid(i)));
        }
        if t % 7 == 0 {
            b0.sync_tick(t);
            b1.sync_tick(t);
            c0.sync_tick(t);
            for i in 0..syms.len() {
                assert_eq!(a0.mid(i).to_bits(), b0.mid(i).to_bits(), "tick {t}");
                assert_eq!(a1.mid(i).to_bits(), b1.mid(i).to_bits(), "tick {t}");
                differs_from_other_seed |= c0.mid(i) != a0.mid(i);
            }
        }
    }
    assert!(differs_from_other_seed);
    let max_ticks = a.params().spike_duration.1.as_millis() as usize;
    for (i, d) in divergence.iter().enumerate() {
        let max = d.iter().copied().fold(0.0, f64::max);
        let mut sorted = d.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let wide = d.iter().filter(|&&x| x > 10.0).count();
        let longest = d.split(|&x| x <= 10.0).map(<[f64]>::len).max().unwrap_or(0);
        eprintln!(
            "{}: median {median:.2} bp, max {max:.2} bp, >10 bp on {wide} ticks, longest {longest} ms",
            syms[i]
        );
        assert!(max <= bound, "{}: {max} > {bound}", syms[i]);
        assert!(max >= 10.0, "{}: no dislocation in two minutes", syms[i]);
        assert!(median > 0.1 && median < 4.0, "{}: median {median}", syms[i]);
        assert!(wide * 10 < d.len(), "{}: dislocated too often", syms[i]);
        assert!(
            longest <= max_ticks,
            "{}: dislocation of {longest} ms",
            syms[i]
        );
    }
}

#[test]
fn shared_market_rejects_unknown_symbols_without_taking_a_slot() {
    let shared = SharedMarket::new(["BTCUSDT"], 1);
    let err = Sim::start(SimConfig {
        shared: Some(shared.clone()),
        symbols: vec!["btcusdt".into(), "XRPUSDT".into()],
        ..fast_cfg()
    })
    .expect_err("XRPUSDT is not shared");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("XRPUSDT"), "{err}");
    assert_eq!(shared.venues(), 0);
    let err = start_group(
        vec![
            venue_cfg(SimVenue::Okx),
            SimConfig {
                symbols: vec!["XRPUSDT".into()],
                ..venue_cfg(SimVenue::Binance)
            },
        ],
        SharedMarket::new(["BTCUSDT", "ETHUSDT"], 1),
    )
    .expect_err("second config has XRPUSDT");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

/// One top-of-book quote: event time (ms), best bid and ask (price units).
type Quote = (u64, i64, i64);

fn binance_quote(v: &Value) -> Option<Quote> {
    let d = &v["data"];
    (d["e"] == "bookTicker").then(|| {
        (
            d["E"].as_u64().expect("E"),
            units(d["b"].as_str().expect("b")),
            units(d["a"].as_str().expect("a")),
        )
    })
}

fn okx_quote(v: &Value) -> Option<Quote> {
    (v["arg"]["channel"] == "bbo-tbt" && v.get("data").is_some()).then(|| {
        let d = &v["data"][0];
        (
            d["ts"].as_str().and_then(|t| t.parse().ok()).expect("ts"),
            units(d["bids"][0][0].as_str().expect("bid")),
            units(d["asks"][0][0].as_str().expect("ask")),
        )
    })
}

/// What [`quote_pairs`] saw.
#[derive(Debug)]
struct PairStats {
    pairs: usize,
    differing: usize,
    widest_bps: f64,
}

/// Starts a Binance and an OKX simulator on `shared`, reads `quotes` BTCUSDT
/// quotes from each (raw clients), and compares every two quotes generated
/// within 2 ms of each other: none may be more than `bound_bps` apart.
fn quote_pairs(shared: &SharedMarket, quotes: usize, bound_bps: f64) -> PairStats {
    let sims = start_group(
        vec![
            venue_cfg(SimVenue::Binance),
            SimConfig {
                symbols: vec!["ETHUSDT".into(), "BTCUSDT".into()],
                ..venue_cfg(SimVenue::Okx)
            },
        ],
        shared.clone(),
    )
    .expect("start group");
    assert_eq!(shared.venues(), 2);
    assert!(sims
        .iter()
        .all(|s| s.config().shared.as_ref() == Some(shared)));
    let mut binance = connect(&sims[0], "/public/stream?streams=btcusdt@bookTicker");
    let mut okx = connect(&sims[1], "/ws/v5/public");
    send(
        &mut okx,
        r#"{"id":"1","op":"subscribe","args":[{"channel":"bbo-tbt","instId":"BTC-USDT-SWAP"}]}"#,
    );
    let (mut bq, mut oq): (Vec<Quote>, Vec<Quote>) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + T;
    while bq.len() < quotes || oq.len() < quotes {
        assert!(
            Instant::now() < deadline,
            "only {} Binance and {} OKX quotes",
            bq.len(),
            oq.len()
        );
        for (ws, got, parse) in [
            (
                &mut binance,
                &mut bq,
                binance_quote as fn(&Value) -> Option<Quote>,
            ),
            (&mut okx, &mut oq, okx_quote),
        ] {
            match next_msg(ws, Instant::now()) {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("json");
                    got.extend(parse(&v));
                }
                Some(Ok(_)) | None => {}
                Some(Err(e)) => panic!("reading quotes: {e}"),
            }
        }
    }
    let mut stats = PairStats {
        pairs: 0,
        differing: 0,
        widest_bps: 0.0,
    };
    for &(ot, ob, oa) in &oq {
        for &(bt, bb, ba) in bq.iter().filter(|q| q.0.abs_diff(ot) <= 2) {
            let d = bps(bb as f64, ob as f64).max(bps(ba as f64, oa as f64));
            assert!(
                d <= bound_bps,
                "Binance {bb}/{ba} at {bt} vs OKX {ob}/{oa} at {ot}: {d:.1} bp"
            );
            stats.pairs += 1;
            stats.differing += usize::from(bb != ob);
            stats.widest_bps = stats.widest_bps.max(d);
        }
    }
    // Both quote the shared price: the OKX mid is close to the fair price.
    let fair = shared.mid("btcusdt").expect("shared BTC") * 100.0;
    let &(_, ob, oa) = oq.last().expect("quote");
    assert!(bps((ob + oa) as f64 / 2.0, fair) < bound_bps);
    eprintln!("{stats:?}");
    stats
}

#[test]
fn two_venues_on_one_shared_market_quote_close_but_not_identical_prices() {
    const BOUND_BPS: f64 = 50.0;
    const QUOTES: usize = 400;
    // Default parameters: quiet most of the time.
    let shared = SharedMarket::new(["ETHUSDT", "BTCUSDT", "SOLUSDT"], 5);
    // Well inside the bound, leaving room for the few milliseconds between
    // the two quotes of a pair.
    assert!(shared.max_divergence_bps() + 2.0 < BOUND_BPS);
    let quiet = quote_pairs(&shared, QUOTES, BOUND_BPS);
    assert!(quiet.pairs >= QUOTES / 2, "{quiet:?}");
    assert!(quiet.differing * 2 > quiet.pairs, "{quiet:?}");
    // Dislocations every ~100 ms: they show through the streams, within the
    // same bound.
    let busy = SharedMarket::with_params(
        ["BTCUSDT", "ETHUSDT"],
        5,
        SharedMarketParams {
            spike_every: Duration::from_millis(100),
            ..SharedMarketParams::default()
        },
    );
    assert_eq!(busy.max_divergence_bps(), shared.max_divergence_bps());
    let busy = quote_pairs(&busy, QUOTES, BOUND_BPS);
    assert!(busy.pairs >= QUOTES / 2, "{busy:?}");
    assert!(busy.widest_bps >= 10.0, "no dislocation seen: {busy:?}");
}
