//! Paradex's binary market data: Simple Binary Encoding, schema 1, which
//! Paradex requires for public channel data since 21 September 2026. A connection asks for it
//! in its URL (`?sbeSchemaId=1&sbeSchemaVersion=1`); requests, acks and errors stay JSON text,
//! and each binary frame is one message. A venue defined in config reads these frames with
//! `binary = "paradex-sbe"` ([`super::defined`]).
//!
//! The layout, little-endian and unpadded, from the schema (`paradex_1_0.xml`, Paradex's
//! "Binary Encoding (SBE)" page):
//!
//! ```text
//! header      blockLength u16 | templateId u16 | schemaId u16 | version u16
//! BboEvent    (template 2, block 48) timestamp i64 | seq_no i64 | bid_price i64 | bid_size i64
//!             | ask_price i64 | ask_size i64, then market (u8 length + UTF-8)
//! TradeEvent  (template 1, block 50) timestamp i64 | seq_no i64 | trade_id i64 | side u8
//!             | price i64 | size i64 | created_at i64 | trade_type u8, then market
//! ```
//!
//! Prices and sizes are mantissas of exponent -8; `i64::MIN` is null (an empty book side).
//! Times are microseconds since the Unix epoch. The market string starts at `blockLength`
//! past the header, so a later version's longer block is read by skipping what it appended
//! (the header's version is not checked: versions 0 to 2 of the schema lay these two messages
//! out alike).
//! Template 40 is a heartbeat; every other template is another channel's.

use super::ParseError;

/// The schema these frames are read with.
pub const SCHEMA_ID: u16 = 1;
/// The schema version written by [`encode_bbo`] and [`encode_trade`].
pub const SCHEMA_VERSION: u16 = 1;
/// `TradeEvent`'s template id (channel `trades`).
pub const TRADE: u16 = 1;
/// `BboEvent`'s template id (channel `bbo`).
pub const BBO: u16 = 2;
/// `HeartbeatEvent`'s template id.
pub const HEARTBEAT: u16 = 40;
/// Prices and sizes are mantissas of this many decimals.
pub const DECIMALS: u32 = 8;

const HEADER: usize = 8;
const BBO_BLOCK: usize = 48;
const TRADE_BLOCK: usize = 50;
const NULL: i64 = i64::MIN;

/// A frame's message, read in place.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event<'a> {
    /// Best bid and offer: (price, size) of each side, `None` when the side is empty.
    Bbo {
        /// Microseconds since the epoch.
        timestamp_us: i64,
        /// The book's sequence number.
        seq_no: i64,
        /// Best bid.
        bid: Option<(f64, f64)>,
        /// Best ask.
        ask: Option<(f64, f64)>,
        /// The market, `BTC-USD-PERP`.
        market: &'a str,
    },
    /// One trade.
    Trade {
        /// The trade's sequence number.
        seq_no: i64,
        /// The taker bought.
        taker_buy: bool,
        /// Price.
        price: f64,
        /// Size.
        size: f64,
        /// When it traded, microseconds since the epoch.
        created_at_us: i64,
        /// The market.
        market: &'a str,
    },
    /// A heartbeat.
    Heartbeat,
    /// Another channel's message (its template id).
    Other(u16),
}

/// Reads a frame; an error names what is wrong with it. Allocates nothing.
pub fn decode(frame: &[u8]) -> Result<Event<'_>, ParseError> {
    let header = frame.get(..HEADER).ok_or(ParseError::Field("SBE header"))?;
    let u16_at = |i: usize| u16::from_le_bytes([header[i], header[i + 1]]);
    let (block, template, schema) = (usize::from(u16_at(0)), u16_at(2), u16_at(4));
    if schema != SCHEMA_ID {
        return Err(ParseError::Field("SBE schemaId"));
    }
    let body = &frame[HEADER..];
    let need = match template {
        BBO => BBO_BLOCK,
        TRADE => TRADE_BLOCK,
        HEARTBEAT => return Ok(Event::Heartbeat),
        other => return Ok(Event::Other(other)),
    };
    if block < need || body.len() < block {
        return Err(ParseError::Field("SBE blockLength"));
    }
    let i64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&body[i..i + 8]);
        i64::from_le_bytes(b)
    };
    let market = market(&body[block..])?;
    if template == BBO {
        let side = |px: usize| match i64_at(px) {
            NULL => Ok(None),
            p => match i64_at(px + 8) {
                NULL => Err(ParseError::Field("size")),
                q => Ok(Some((decimal(p), decimal(q)))),
            },
        };
        return Ok(Event::Bbo {
            timestamp_us: i64_at(0),
            seq_no: i64_at(8),
            bid: side(16)?,
            ask: side(32)?,
            market,
        });
    }
    let taker_buy = match body[24] {
        1 => true,
        2 => false,
        _ => return Err(ParseError::Field("side")),
    };
    let (price, size) = (i64_at(25), i64_at(33));
    if price == NULL || size == NULL {
        return Err(ParseError::Field("price/size"));
    }
    Ok(Event::Trade {
        seq_no: i64_at(8),
        taker_buy,
        price: decimal(price),
        size: decimal(size),
        created_at_us: i64_at(41),
        market,
    })
}

/// The length-prefixed market name at the start of `rest`.
fn market(rest: &[u8]) -> Result<&str, ParseError> {
    let (&len, text) = rest.split_first().ok_or(ParseError::Field("market"))?;
    let bytes = text
        .get(..usize::from(len))
        .ok_or(ParseError::Field("market"))?;
    std::str::from_utf8(bytes).map_err(|_| ParseError::Field("market"))
}

/// A mantissa of exponent -8 as the nearest `f64`: what parsing its decimal text gives, as the
/// venue's JSON form is read.
#[inline]
fn decimal(mantissa: i64) -> f64 {
    // Up to 2^53 the mantissa is exact as an `f64`, and so is 1e8: one division, rounded once,
    // is the nearest `f64` to the decimal value.
    if mantissa.unsigned_abs() <= 1 << 53 {
        return mantissa as f64 / 1e8;
    }
    decimal_text(mantissa)
}

/// A mantissa past 2^53 (a price or size over about 90 million), where the division would round
/// twice: its decimal text, written on the stack and parsed.
#[cold]
fn decimal_text(mantissa: i64) -> f64 {
    use std::io::Write as _;
    let mut buf = [0u8; 24];
    let abs = mantissa.unsigned_abs();
    let sign = if mantissa < 0 { "-" } else { "" };
    let mut w = &mut buf[..];
    let written = write!(w, "{sign}{}.{:08}", abs / 100_000_000, abs % 100_000_000);
    let len = 24 - w.len();
    match (written, std::str::from_utf8(&buf[..len])) {
        (Ok(()), Ok(text)) => text.parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

/// A `BboEvent` frame: sides as (price, size) mantissas of exponent -8.
pub fn encode_bbo(
    timestamp_us: i64,
    seq_no: i64,
    bid: Option<(i64, i64)>,
    ask: Option<(i64, i64)>,
    market: &str,
) -> Vec<u8> {
    let mut f = header(BBO, BBO_BLOCK, market);
    for v in [timestamp_us, seq_no] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    for side in [bid, ask] {
        let (p, q) = side.unwrap_or((NULL, NULL));
        f.extend_from_slice(&p.to_le_bytes());
        f.extend_from_slice(&q.to_le_bytes());
    }
    finish(f, market)
}

/// A `TradeEvent` frame: price and size as mantissas of exponent -8.
#[allow(clippy::too_many_arguments)] // The message's fields, in the schema's order.
pub fn encode_trade(
    timestamp_us: i64,
    seq_no: i64,
    trade_id: i64,
    taker_buy: bool,
    price: i64,
    size: i64,
    created_at_us: i64,
    market: &str,
) -> Vec<u8> {
    let mut f = header(TRADE, TRADE_BLOCK, market);
    for v in [timestamp_us, seq_no, trade_id] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.push(if taker_buy { 1 } else { 2 });
    for v in [price, size, created_at_us] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.push(1); // trade_type FILL
    finish(f, market)
}

fn header(template: u16, block: usize, market: &str) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER + block + 1 + market.len());
    for v in [block as u16, template, SCHEMA_ID, SCHEMA_VERSION] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f
}

fn finish(mut f: Vec<u8>, market: &str) -> Vec<u8> {
    // At most 255 bytes, cut where a character starts.
    let mut len = market.len().min(255);
    while !market.is_char_boundary(len) {
        len -= 1;
    }
    let name = &market.as_bytes()[..len];
    f.push(name.len() as u8);
    f.extend_from_slice(name);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_as_written() {
        let bbo = encode_bbo(
            1_700_000_000_123_456,
            153,
            Some((6_700_012_345_000, 10_000_000)),
            None,
            "BTC-USD-PERP",
        );
        assert_eq!(bbo.len(), 8 + 48 + 1 + 12);
        assert_eq!(&bbo[..8], &[48, 0, 2, 0, 1, 0, 1, 0]);
        assert_eq!(
            decode(&bbo).unwrap(),
            Event::Bbo {
                timestamp_us: 1_700_000_000_123_456,
                seq_no: 153,
                bid: Some((67_000.123_45, 0.1)),
                ask: None,
                market: "BTC-USD-PERP",
            }
        );
        let trade = encode_trade(
            5,
            9,
            77,
            false,
            4_200_050_000_000,
            100_000,
            4,
            "ETH-USD-PERP",
        );
        assert_eq!(
            decode(&trade).unwrap(),
            Event::Trade {
                seq_no: 9,
                taker_buy: false,
                price: 42_000.5,
                size: 0.001,
                created_at_us: 4,
                market: "ETH-USD-PERP",
            }
        );
        // The decimal text's own parse gives the same numbers.
        assert_eq!(
            decimal(4_200_050_000_000),
            "42000.50000000".parse::<f64>().unwrap()
        );
        assert_eq!(decimal(-1), "-0.00000001".parse::<f64>().unwrap());
    }

    /// Frames written byte by byte as the schema lays them out (Python's
    /// `struct.pack('<HHHH' + '<qqqqqq' / '<qqqBqqqB')`, as Paradex's own decoder reads them),
    /// not by this module's encoder: a field out of place would not read back.
    #[test]
    fn frames_laid_out_by_the_schema_read_as_documented() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let bbo = hex(
            "300002000100010040222018240a06009900000000000000a816dbf7170600008096980000000000\
             00000000000000800000000000000080\
             0c4254432d5553442d50455250",
        );
        assert_eq!(
            decode(&bbo).unwrap(),
            Event::Bbo {
                timestamp_us: 1_700_000_000_123_456,
                seq_no: 153,
                bid: Some((67_000.123_45, 0.1)),
                ask: None,
                market: "BTC-USD-PERP",
            }
        );
        let trade = hex(
            "320001000100010020e12518240a06009a000000000000004d000000000000000280007de6d10300\
             00a086010000000000805a2418240a060001\
             0c4254432d5553442d50455250",
        );
        assert_eq!(
            decode(&trade).unwrap(),
            Event::Trade {
                seq_no: 154,
                taker_buy: false,
                price: 42_000.5,
                size: 0.001,
                created_at_us: 1_700_000_000_400_000,
                market: "BTC-USD-PERP",
            }
        );
        // The encoder writes the same bytes.
        assert_eq!(
            encode_bbo(
                1_700_000_000_123_456,
                153,
                Some((6_700_012_345_000, 10_000_000)),
                None,
                "BTC-USD-PERP"
            ),
            bbo
        );
        assert_eq!(
            encode_trade(
                1_700_000_000_500_000,
                154,
                77,
                false,
                4_200_050_000_000,
                100_000,
                1_700_000_000_400_000,
                "BTC-USD-PERP"
            ),
            trade
        );
    }

    #[test]
    fn large_values_read_as_their_decimal_text_does() {
        for m in [
            91_038_120_247_931_381i64,
            (1 << 53) + 1,
            -(1 << 53) - 3,
            i64::MAX,
            i64::MIN + 1,
            123_456_789_012_345_678,
        ] {
            let abs = m.unsigned_abs();
            let text = format!(
                "{}{}.{:08}",
                if m < 0 { "-" } else { "" },
                abs / 100_000_000,
                abs % 100_000_000
            );
            assert_eq!(decimal(m), text.parse::<f64>().unwrap(), "{m}");
        }
        // Dividing would round twice here, one unit in the last place off.
        assert_ne!(
            decimal(91_038_120_247_931_381),
            91_038_120_247_931_381f64 / 1e8
        );
    }

    #[test]
    fn a_longer_block_of_a_later_version_is_skipped_to_the_market() {
        let mut f = encode_bbo(1, 2, None, None, "SOL-USD-PERP");
        f[0] = 56; // eight bytes appended to the block
        f.splice(8 + 48..8 + 48, [0xAA; 8]);
        assert!(matches!(
            decode(&f),
            Ok(Event::Bbo {
                market: "SOL-USD-PERP",
                ..
            })
        ));
    }

    #[test]
    fn damaged_frames_are_errors_naming_the_part() {
        let good = encode_trade(5, 9, 77, true, 1, 1, 4, "BTC-USD-PERP");
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_side = good.clone();
        bad_side[8 + 24] = 254;
        assert_eq!(decode(&bad_side), Err(ParseError::Field("side")));
        let mut other_schema = good.clone();
        other_schema[4] = 2;
        assert_eq!(
            decode(&other_schema),
            Err(ParseError::Field("SBE schemaId"))
        );
        let mut short_block = good.clone();
        short_block[0] = 49;
        assert_eq!(
            decode(&short_block),
            Err(ParseError::Field("SBE blockLength"))
        );
        let mut bad_text = good;
        let last = bad_text.len() - 1;
        bad_text[last] = 0xFF;
        assert_eq!(decode(&bad_text), Err(ParseError::Field("market")));
        // Other templates and the heartbeat read as such, whatever follows the header.
        assert_eq!(decode(&[0, 0, 40, 0, 1, 0, 1, 0]), Ok(Event::Heartbeat));
        assert_eq!(decode(&[9, 0, 3, 0, 1, 0, 1, 0]), Ok(Event::Other(3)));
    }
}
