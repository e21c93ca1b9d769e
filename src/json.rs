//! A small, allocation-free JSON scanner for venue messages.
//!
//! Venue messages are flat objects whose values the parsers read once, so a full DOM is waste:
//! `serde_json::Value` costs ~500 ns per bookTicker, this scanner a fraction of that. It walks the
//! top-level fields of an object and hands out each value as a borrowed slice of the input;
//! nested objects and arrays are skipped over (string-aware) and can be scanned in turn. String
//! values are returned raw, without decoding escapes; venue keys, symbols and decimal strings
//! never contain any.
//!
//! It checks structure as it goes (quotes, brackets, commas, literals) and reports truncated or
//! malformed input as an error, which the feed counts and skips.

use std::fmt;

/// Where and why a message failed to scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset of the problem.
    pub at: usize,
    /// What was expected there.
    pub expected: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed JSON at byte {}: expected {}",
            self.at, self.expected
        )
    }
}

impl std::error::Error for JsonError {}

/// A value inside an object or array, borrowed from the input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// String contents between the quotes, escapes not decoded.
    Str(&'a str),
    /// A number's text.
    Num(&'a str),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An object's text, braces included; scan it with [`Object::new`].
    Object(&'a str),
    /// An array's text, brackets included; scan it with [`Array::new`].
    Array(&'a str),
}

impl<'a> Value<'a> {
    /// The string contents, if this is a string.
    pub fn as_str(self) -> Option<&'a str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// An unsigned integer, from a number (or a string holding one).
    pub fn as_u64(self) -> Option<u64> {
        match self {
            Value::Num(s) | Value::Str(s) => parse_u64(s),
            _ => None,
        }
    }
    /// A signed integer, from a number (or a string holding one: OKX sends codes as strings).
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Value::Num(s) | Value::Str(s) => s.parse().ok(),
            _ => None,
        }
    }
    /// A decimal, from a string (how venues send prices) or a number.
    pub fn as_f64(self) -> Option<f64> {
        match self {
            Value::Num(s) | Value::Str(s) => parse_decimal(s),
            _ => None,
        }
    }
    /// The boolean, if this is one.
    pub fn as_bool(self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
}

struct Cursor<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }
    fn err(&self, expected: &'static str) -> JsonError {
        JsonError {
            at: self.pos,
            expected,
        }
    }
    fn skip_ws(&mut self) {
        while let Some(b) = self.bytes().get(self.pos) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.pos += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes().get(self.pos).copied()
    }
    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }
    /// Reads a string starting at the opening quote; returns its raw contents.
    fn string(&mut self) -> Result<&'a str, JsonError> {
        self.expect(b'"', "'\"'")?;
        let start = self.pos;
        let bytes = self.bytes();
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b'"' => {
                    let s = &self.src[start..self.pos];
                    self.pos += 1;
                    return Ok(s);
                }
                b'\\' => self.pos += 2,
                _ => self.pos += 1,
            }
        }
        Err(self.err("closing '\"'"))
    }
    /// Skips a nested object or array, string-aware; returns its text.
    fn nested(&mut self) -> Result<&'a str, JsonError> {
        let start = self.pos;
        let bytes = self.bytes();
        let mut depth = 0usize;
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return Ok(&self.src[start..self.pos]);
                    }
                }
                b'"' => {
                    self.string()?;
                    continue;
                }
                _ => {}
            }
            self.pos += 1;
        }
        Err(self.err("closing bracket"))
    }
    fn literal(&mut self, word: &'static str, value: Value<'a>) -> Result<Value<'a>, JsonError> {
        if self.src[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.err(word))
        }
    }
    fn value(&mut self) -> Result<Value<'a>, JsonError> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::Str),
            Some(b'{') => self.nested().map(Value::Object),
            Some(b'[') => self.nested().map(Value::Array),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                let bytes = self.bytes();
                while let Some(b) = bytes.get(self.pos) {
                    if !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                        break;
                    }
                    self.pos += 1;
                }
                Ok(Value::Num(&self.src[start..self.pos]))
            }
            _ => Err(self.err("a value")),
        }
    }
    /// After an element: `,` continues (true), `close` ends (false).
    fn next_or_close(&mut self, close: u8) -> Result<bool, JsonError> {
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.err("',' or a closing bracket")),
        }
    }
}

/// Iterates the top-level `(key, value)` pairs of an object.
pub struct Object<'a> {
    cur: Cursor<'a>,
    done: bool,
}

impl fmt::Debug for Object<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("pos", &self.cur.pos)
            .finish()
    }
}

impl<'a> Object<'a> {
    /// Starts scanning `src`, which must hold one object.
    pub fn new(src: &'a str) -> Result<Self, JsonError> {
        let mut cur = Cursor { src, pos: 0 };
        cur.expect(b'{', "'{'")?;
        let done = if cur.peek() == Some(b'}') {
            cur.pos += 1;
            true
        } else {
            false
        };
        Ok(Object { cur, done })
    }

    /// The next field, `Ok(None)` at the end of the object.
    pub fn next_field(&mut self) -> Result<Option<(&'a str, Value<'a>)>, JsonError> {
        if self.done {
            return Ok(None);
        }
        let key = self.cur.string()?;
        self.cur.expect(b':', "':'")?;
        let value = self.cur.value()?;
        self.done = !self.cur.next_or_close(b'}')?;
        Ok(Some((key, value)))
    }

    /// Scans the rest of the object, returning the first value under `key`.
    pub fn find(mut self, key: &str) -> Result<Option<Value<'a>>, JsonError> {
        while let Some((k, v)) = self.next_field()? {
            if k == key {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }
}

/// Iterates the elements of an array.
pub struct Array<'a> {
    cur: Cursor<'a>,
    done: bool,
}

impl fmt::Debug for Array<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array").field("pos", &self.cur.pos).finish()
    }
}

impl<'a> Array<'a> {
    /// Starts scanning `src`, which must hold one array.
    pub fn new(src: &'a str) -> Result<Self, JsonError> {
        let mut cur = Cursor { src, pos: 0 };
        cur.expect(b'[', "'['")?;
        let done = if cur.peek() == Some(b']') {
            cur.pos += 1;
            true
        } else {
            false
        };
        Ok(Array { cur, done })
    }

    /// The next element, `Ok(None)` at the end of the array.
    pub fn next_value(&mut self) -> Result<Option<Value<'a>>, JsonError> {
        if self.done {
            return Ok(None);
        }
        let value = self.cur.value()?;
        self.done = !self.cur.next_or_close(b']')?;
        Ok(Some(value))
    }
}

/// Parses an unsigned decimal integer; `None` on anything else or on overflow.
pub fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s.as_bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses a decimal such as `"25.35190000"` or `"-0.0001"` into the nearest `f64`.
///
/// Fast path (Clinger): when the digits fit in 2^53 and there are at most 22 fraction digits,
/// `mantissa / 10^frac` is a single correctly rounded division, exactly what `str::parse`
/// returns. Anything else (exponents, very long digit strings) falls back to `str::parse`.
pub fn parse_decimal(s: &str) -> Option<f64> {
    let bytes = s.as_bytes();
    let (neg, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(_) => (false, bytes),
        None => return None,
    };
    let mut mantissa: u64 = 0;
    let mut frac_digits: usize = 0;
    let mut seen_dot = false;
    let mut seen_digit = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                seen_digit = true;
                mantissa = match mantissa
                    .checked_mul(10)
                    .and_then(|m| m.checked_add(u64::from(b - b'0')))
                {
                    Some(m) => m,
                    None => return s.parse().ok(),
                };
                if seen_dot {
                    frac_digits += 1;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            b'e' | b'E' | b'+' => return s.parse().ok(),
            _ => return None,
        }
    }
    if !seen_digit {
        return None;
    }
    if mantissa >= (1u64 << 53) || frac_digits >= POW10.len() {
        return s.parse().ok();
    }
    let v = mantissa as f64 / POW10[frac_digits];
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_fields_and_skips_nested_values() {
        let src = r#"{"stream":"a@b","data":{"x":[1,{"y":"}"}],"s":"q\"z"},"n":-1.5e3,"t":true,"z":null}"#;
        let mut obj = Object::new(src).unwrap();
        assert_eq!(
            obj.next_field().unwrap(),
            Some(("stream", Value::Str("a@b")))
        );
        let (k, v) = obj.next_field().unwrap().unwrap();
        assert_eq!(k, "data");
        assert_eq!(v, Value::Object(r#"{"x":[1,{"y":"}"}],"s":"q\"z"}"#));
        assert_eq!(obj.next_field().unwrap(), Some(("n", Value::Num("-1.5e3"))));
        assert_eq!(obj.next_field().unwrap(), Some(("t", Value::Bool(true))));
        assert_eq!(obj.next_field().unwrap(), Some(("z", Value::Null)));
        assert_eq!(obj.next_field().unwrap(), None);
        let inner = Object::new(v.as_str().map_or(r#"{"x":[1]}"#, |s| s)).unwrap();
        assert!(inner.find("x").unwrap().is_some());
    }

    #[test]
    fn truncated_and_malformed_input_is_an_error() {
        for bad in [
            r#"{"stream":"btcusdt@bookTicker","data":{"u":12"#,
            r#"{"a":1"#,
            r#"{"a" 1}"#,
            r#"{"a":tru}"#,
            r#"{"a":"unterminated}"#,
            r#"[1,2"#,
            "",
            "not json",
        ] {
            let result = (|| -> Result<(), JsonError> {
                if bad.starts_with('[') {
                    let mut a = Array::new(bad)?;
                    while a.next_value()?.is_some() {}
                } else {
                    let mut o = Object::new(bad)?;
                    while o.next_field()?.is_some() {}
                }
                Ok(())
            })();
            assert!(result.is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn arrays_of_levels() {
        let mut outer = Array::new(r#"[["0.0024","10"],["0.0026","100"]]"#).unwrap();
        let mut got = vec![];
        while let Some(Value::Array(level)) = outer.next_value().unwrap() {
            let mut a = Array::new(level).unwrap();
            let p = a.next_value().unwrap().unwrap().as_f64().unwrap();
            let q = a.next_value().unwrap().unwrap().as_f64().unwrap();
            got.push((p, q));
        }
        assert_eq!(got, vec![(0.0024, 10.0), (0.0026, 100.0)]);
        assert_eq!(Array::new("[]").unwrap().next_value().unwrap(), None);
    }

    #[test]
    fn decimals_match_the_standard_parser() {
        for s in [
            "25.35190000",
            "0.001",
            "60000.1",
            "-0.00038167",
            "11794.15000000",
            "0",
            "7",
            "1e-5",
            "123456789012345678901234.5",
            "0.00000000000000000000000001",
        ] {
            assert_eq!(parse_decimal(s), s.parse::<f64>().ok(), "{s}");
        }
        for bad in ["", "-", ".", "1.2.3", "abc", "1,5"] {
            assert_eq!(parse_decimal(bad), None, "{bad}");
        }
        assert_eq!(parse_u64("400900217"), Some(400900217));
        assert_eq!(parse_u64("18446744073709551616"), None);
        assert_eq!(parse_u64("-1"), None);
    }
}
