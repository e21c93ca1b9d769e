//! Vest's public WebSocket as a [`Codec`] written in Rust: the trait a program implements for a
//! venue a `[[venues]]` definition does not fit (`configs/venues/vest.toml` describes this same
//! venue in config, for comparison). Vest names a stream symbol first (`BTC-PERP@depth`),
//! acknowledges with `{"result":null,"id":N}` (a null result), answers its ping with
//! `{"data":"PONG"}`, and has no best-bid-offer channel: the top of the book is the first level
//! of each side of `@depth`.
//!
//! From Vest's API documentation (docs.vestmarkets.com, "Public WS Endpoints"):
//! - `wss://ws-prod.hz.vestmarkets.com/ws-api?version=1.0`, with the query parameter
//!   `xwebsocketserver=restserver{account_group}` (0 for public data);
//! - `{"method": "SUBSCRIBE", "params": [channel1, channel2, ...], "id": subscription_id}`,
//!   answered `{"result": null, "id": subscription_id}`;
//! - `{"method": "PING", "params": [], "id": 0}`, answered `{"data": "PONG"}`;
//! - `{"channel": "DOGE-PERP@depth", "data": {"bids": [["0.102000", "1234"]], "asks":
//!   [["0.103000", "1234"]]}}`: "All decimals are strings", and no time or sequence number;
//! - `{symbol}@trades` carries no side, so this codec does not read trades.
//!
//! The docs do not say whether a `@depth` message is the whole book or a change to it; this
//! codec reads each one's first levels as the current top of the book. Check that against the
//! live feed before trading on it.

use std::time::Duration;

use wsfeed::json::Reader;
use wsfeed::tick::TickData;
use wsfeed::venue::{
    Codec, Frame, ParseError, Route, Seq, SeqRule, StreamDef, StreamKey, StreamKind,
};

/// Vest's public market data: `<SYMBOL>@depth` streams, read as top of book.
#[derive(Debug, Default)]
pub struct Vest;

/// The one codec object, registered with [`wsfeed::venue::register`].
pub static VEST: Vest = Vest;

impl Codec for Vest {
    fn name(&self) -> &str {
        "vest"
    }

    fn default_base_url(&self) -> &str {
        "wss://ws-prod.hz.vestmarkets.com/ws-api?version=1.0&xwebsocketserver=restserver0"
    }

    fn parse_stream(&self, name: &str) -> Result<StreamDef, String> {
        let Some((symbol, "depth")) = name.split_once('@') else {
            return Err(format!(
                "stream '{name}': vest streams here are '<SYMBOL>@depth' (e.g. 'BTC-PERP@depth')"
            ));
        };
        if symbol.is_empty()
            || !symbol
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!("stream '{name}': '{symbol}' is not a Vest symbol"));
        }
        let mut def = StreamDef::new(
            name.into(),
            "depth".into(),
            StreamKind::BookTicker,
            symbol.into(),
            Route::Root,
        );
        // No number and no time: every message is delivered as it comes.
        def.seq = SeqRule::Time;
        Ok(def)
    }

    fn subscribe_request(&self, id: u64, streams: &mut dyn Iterator<Item = &str>) -> String {
        let names: Vec<String> = streams.map(|s| format!("\"{s}\"")).collect();
        format!(
            r#"{{"method":"SUBSCRIBE","params":[{}],"id":{id}}}"#,
            names.join(",")
        )
    }

    fn classify<'a>(&self, text: &'a str) -> Result<Frame<'a>, ParseError> {
        let mut r = Reader::new(text);
        let mut top = r.object()?;
        let (mut channel, mut data, mut id, mut pong, mut result) =
            (None, None, None, false, false);
        while let Some(key) = r.key(&mut top)? {
            match key {
                "channel" => channel = r.str()?,
                "data" if r.peek() == Some(b'{') => {
                    let start = r.pos();
                    r.skip()?;
                    data = text.get(start..r.pos());
                }
                "data" => pong = r.str()? == Some("PONG"),
                "id" => id = r.uint()?,
                "result" => {
                    result = true;
                    r.skip()?;
                }
                _ => r.skip()?,
            }
        }
        r.end()?;
        Ok(match (channel, data) {
            (Some(topic), Some(data)) => Frame::Data {
                stream: StreamKey::name(topic),
                data,
            },
            _ if pong => Frame::Pong,
            _ if result => Frame::Ack { id, stream: None },
            _ => Frame::Unknown,
        })
    }

    fn parse_data(
        &self,
        _kind: StreamKind,
        data: &str,
        emit: &mut dyn FnMut(Seq, u64, TickData),
    ) -> Result<(), ParseError> {
        let mut r = Reader::new(data);
        let mut top = r.object()?;
        let (mut bid, mut ask) = ((f64::NAN, 0.0), (f64::NAN, 0.0));
        while let Some(key) = r.key(&mut top)? {
            match key {
                "bids" => bid = first_level(&mut r)?,
                "asks" => ask = first_level(&mut r)?,
                _ => r.skip()?,
            }
        }
        r.end()?;
        emit(Seq::UNNUMBERED, 0, TickData::quote(bid, ask));
        Ok(())
    }

    fn max_streams_per_request(&self) -> usize {
        50
    }

    fn ping_text(&self) -> Option<&str> {
        Some(r#"{"method":"PING","params":[],"id":0}"#)
    }

    fn keepalive(&self) -> Option<Duration> {
        // Vest documents no interval; 20 s is what other venues ask for.
        Some(Duration::from_secs(20))
    }
}

/// The first `["price","size"]` of a side (NaN and 0 when it is empty), the rest skipped.
fn first_level(r: &mut Reader<'_>) -> Result<(f64, f64), ParseError> {
    let mut side = r.array()?;
    let mut first = (f64::NAN, 0.0);
    let mut n = 0;
    while r.element(&mut side)? {
        if n == 0 {
            let mut level = r.array()?;
            let mut field = 0;
            while r.element(&mut level)? {
                match field {
                    0 => first.0 = r.decimal()?.ok_or(ParseError::Field("price"))?,
                    1 => first.1 = r.decimal()?.ok_or(ParseError::Field("size"))?,
                    _ => r.skip()?,
                }
                field += 1;
            }
        } else {
            r.skip()?;
        }
        n += 1;
    }
    Ok(first)
}
