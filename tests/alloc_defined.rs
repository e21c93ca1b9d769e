//! A venue defined in config reads its messages without allocating: its pointers are compiled
//! when the definition is loaded, and each message is one descent over spans of the frame's
//! text. A counting global allocator counts this thread's allocations while armed; the shipped
//! definitions then classify and parse their venues' documented messages (and a message of 40
//! trades, past the 16 held for one pass, so the second pass runs too), and Paradex's binary SBE
//! frames, and the count must be 0.
//! (`tests/alloc.rs` checks the whole engine on the built-in venues.)

#![allow(unsafe_code)] // The counting allocator below.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use wsfeed::venue::defined::Defined;
use wsfeed::venue::{sbe, Frame, Venue};

struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the thread-local cells
// are const-initialised, so touching them allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: the caller's layout, as the contract requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn shipped(name: &str) -> Venue {
    let path = format!("{}/configs/venues/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let spec = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    Defined::load(&spec).unwrap()
}

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn defined_venues_read_messages_without_allocating() {
    let (hl, px, vest) = (shipped("hyperliquid"), shipped("paradex"), shipped("vest"));
    let trade = r#"{"coin":"BTC","side":"B","px":"72581.0","sz":"0.00017","time":1787259217020,"hash":"0x0","tid":877707108085800,"users":["a","b"]}"#;
    let forty = format!(
        r#"{{"channel":"trades","data":[{}]}}"#,
        vec![trade; 40].join(",")
    );
    let cases = [
        (hl, "bbo:BTC", fixture("hyperliquid/bbo.json")),
        (hl, "trades:BTC", fixture("hyperliquid/trades.json")),
        (hl, "trades:BTC", forty),
        (hl, "", fixture("hyperliquid/subscription_response.json")),
        (hl, "", fixture("hyperliquid/pong.json")),
        (hl, "", fixture("hyperliquid/error.json")),
        (px, "bbo.BTC-USD-PERP", fixture("paradex/bbo.json")),
        (px, "trades.ALL", fixture("paradex/trades.json")),
        (px, "", fixture("paradex/subscribe_ack.json")),
        (px, "", fixture("paradex/error_subscription.json")),
        (vest, "DOGE-PERP@depth", fixture("vest/depth.json")),
        (vest, "", fixture("vest/pong.json")),
    ];
    let kinds: Vec<_> = cases
        .iter()
        .map(|(v, s, _)| (!s.is_empty()).then(|| v.parse_stream(s).unwrap().kind))
        .collect();
    // Paradex's binary frames, as its production feed sends them.
    let frames = [
        (
            px.parse_stream("bbo.BTC-USD-PERP").unwrap().kind,
            sbe::encode_bbo(
                1_700_000_000_000_000,
                153,
                Some((6_700_000_000_000, 10_000_000)),
                Some((6_700_100_000_000, 20_000_000)),
                "BTC-USD-PERP",
            ),
        ),
        (
            px.parse_stream("trades.BTC-USD-PERP").unwrap().kind,
            sbe::encode_trade(
                1,
                9,
                77,
                true,
                6_700_050_000_000,
                100_000,
                2,
                "BTC-USD-PERP",
            ),
        ),
    ];
    let mut ticks = 0u64;
    ARMED.with(|a| a.set(true));
    for _ in 0..1000 {
        for ((venue, _, text), kind) in cases.iter().zip(&kinds) {
            let frame = venue.classify(black_box(text)).unwrap();
            if let (Frame::Data { data, .. }, Some(kind)) = (frame, kind) {
                venue
                    .parse_data(*kind, data, &mut |_, _, t| {
                        black_box(t);
                        ticks += 1;
                    })
                    .unwrap();
            }
        }
    }
    for _ in 0..1000 {
        for (kind, frame) in &frames {
            let Frame::Binary { data, .. } = px.classify_binary(black_box(frame)).unwrap() else {
                panic!("a data frame");
            };
            px.parse_binary(*kind, data, &mut |_, _, t| {
                black_box(t);
                ticks += 1;
            })
            .unwrap();
        }
    }
    ARMED.with(|a| a.set(false));
    let allocations = COUNT.with(Cell::get);
    // 1 + 1 + 40 + 1 + 1 + 1 text ticks and 2 binary ones a round.
    assert_eq!(ticks, 47 * 1000);
    assert_eq!(allocations, 0, "allocations while reading {ticks} ticks");
}
