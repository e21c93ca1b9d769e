//! A small, allocation-free JSON scanner for venue messages.
//!
//! Venue messages are flat objects whose values the parsers read once, so a full DOM is waste:
//! `serde_json::Value` costs ~500 ns per bookTicker, this scanner a fraction of that. It walks the
//! top-level fields of an object and hands out each value as a borrowed slice of the input;
//! nested objects and arrays are skipped over (string-aware) and can be scanned in turn. String
//! values are returned raw, without decoding escapes; venue keys, symbols and decimal strings
//! never contain any. Text that is shown or compared is decoded where it is ([`Unescaped`],
//! [`unescaped_eq`]), without allocating.
//!
//! It checks structure as it goes (quotes, brackets, commas, literals) and reports truncated or
//! malformed input as an error, which the feed counts and skips.

use std::fmt;

mod escape;
mod pointer;
mod reader;

pub use escape::{unescaped_eq, Unescape, Unescaped};
pub use pointer::{Pointer, Pointers, Span};
pub use reader::{Reader, Scope};

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

#[derive(Clone, Copy)]
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
    #[inline(always)]
    fn skip_ws(&mut self) {
        if let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.pos) {
            self.skip_ws_run();
        }
    }
    /// Whitespace from here on (out of line: compact text, as venues send it, has none).
    /// Indentation, as the venues' documentation prints it, goes eight spaces at a time.
    #[inline(never)]
    fn skip_ws_run(&mut self) {
        let bytes = self.bytes();
        while let Some(b) = bytes.get(self.pos) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.pos += 1;
            while let Some(w) = bytes.get(self.pos..self.pos + 8) {
                if w != b"        " {
                    break;
                }
                self.pos += 8;
            }
        }
    }
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes().get(self.pos).copied()
    }
    #[inline(always)]
    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }
    /// Reads a string starting at the opening quote; returns its raw contents.
    #[inline(always)]
    fn string(&mut self) -> Result<&'a str, JsonError> {
        self.expect(b'"', "'\"'")?;
        self.string_body()
    }
    /// Reads the rest of a string whose opening quote is just behind; returns its raw contents.
    #[inline(always)]
    fn string_body(&mut self) -> Result<&'a str, JsonError> {
        let start = self.pos;
        let bytes = self.bytes();
        // Venue strings are short and escape-free: one search for the closing quote.
        match quote_or_escape(bytes, start) {
            Some(i) if bytes[i] == b'"' => {
                self.pos = i + 1;
                return Ok(&self.src[start..i]);
            }
            Some(i) => self.pos = i,
            None => return Err(self.err("closing '\"'")),
        }
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
        let (open, close) = match bytes.get(start) {
            Some(b'{') => (b'{', b'}'),
            _ => (b'[', b']'),
        };
        // Only this bracket kind and strings matter for finding the matching close: what is
        // inside is scanned, and checked, when it is read. Strings are skipped eight bytes at a
        // time; the structure between them is short.
        let mut depth = 0usize;
        while let Some(&b) = bytes.get(self.pos) {
            if b == b'"' {
                self.string()?;
                continue;
            }
            if b == open {
                depth += 1;
            } else if b == close {
                depth -= 1;
                if depth == 0 {
                    self.pos += 1;
                    return Ok(&self.src[start..self.pos]);
                }
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
    /// A decimal in one pass: digits accumulate, eight at a time where they can, while the end
    /// is found. Exponents, more than 19 digits and mantissas beyond 2^53 go to
    /// [`parse_decimal`]'s exact fallback.
    #[inline(always)]
    fn decimal(&mut self) -> Result<f64, JsonError> {
        let bytes = self.bytes();
        let quoted = self.peek() == Some(b'"');
        let start = self.pos + usize::from(quoted);
        let neg = bytes.get(start) == Some(&b'-');
        let mut i = start + usize::from(neg);
        let (mantissa, n_digits, frac) = decimal_digits(bytes, &mut i);
        let simple = n_digits > 0
            && n_digits <= 19
            && mantissa < (1 << 53)
            && frac < POW10.len()
            && !matches!(bytes.get(i), Some(b'e' | b'E'));
        let value = if simple {
            // Both exact in f64, so one correctly rounded division (Clinger's fast path).
            let v = mantissa as f64 / POW10[frac];
            if neg {
                -v
            } else {
                v
            }
        } else {
            // The exact, slower path: find the token's end, then parse it whole.
            while let Some(b) = bytes.get(i) {
                if !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    break;
                }
                i += 1;
            }
            match parse_decimal(&self.src[start..i]) {
                Some(v) => v,
                None => {
                    self.pos = start;
                    return Err(self.err("a decimal"));
                }
            }
        };
        if quoted {
            if bytes.get(i) != Some(&b'"') {
                self.pos = i;
                return Err(self.err("a decimal"));
            }
            i += 1;
        }
        self.pos = i;
        Ok(value)
    }
    /// An unsigned integer in one pass, bare or quoted.
    #[inline(always)]
    fn uint(&mut self) -> Result<u64, JsonError> {
        let bytes = self.bytes();
        let quoted = self.peek() == Some(b'"');
        let start = self.pos + usize::from(quoted);
        let mut i = start;
        let mut n = digits(bytes, &mut i, 0);
        if i - start >= 20 {
            // Past 19 digits `digits` may have wrapped: redo it checked.
            n = match parse_u64(&self.src[start..i]) {
                Some(n) => n,
                None => {
                    self.pos = start;
                    return Err(self.err("an integer below 2^64"));
                }
            };
        }
        let closed = !quoted || bytes.get(i) == Some(&b'"');
        if i == start || !closed {
            self.pos = i;
            return Err(self.err("an unsigned integer"));
        }
        self.pos = i + usize::from(quoted);
        Ok(n)
    }
    /// Nothing but whitespace may follow the outermost value.
    fn end(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.err("the end of the input")),
        }
    }
    /// After an element: `,` continues (true), `close` ends (false).
    #[inline(always)]
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

/// Iterates the top-level fields of an object: `(key, value)` pairs with [`Object::next_field`],
/// or, on the hot path, a key with [`Object::key`] followed by exactly one typed read of its
/// value ([`Object::decimal`], [`Object::uint`], [`Object::value`] or [`Object::skip`]), which
/// converts the value in the same pass that finds its end.
pub struct Object<'a> {
    cur: Cursor<'a>,
    done: bool,
    /// A value has been read: a `,` or the closing brace comes next.
    in_field: bool,
}

impl fmt::Debug for Object<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("pos", &self.cur.pos)
            .finish()
    }
}

impl<'a> Object<'a> {
    /// Starts scanning `src`, which must hold one object and nothing else.
    pub fn new(src: &'a str) -> Result<Self, JsonError> {
        let mut cur = Cursor { src, pos: 0 };
        cur.expect(b'{', "'{'")?;
        let done = if cur.peek() == Some(b'}') {
            cur.pos += 1;
            cur.end()?;
            true
        } else {
            false
        };
        Ok(Object {
            cur,
            done,
            in_field: false,
        })
    }

    /// The next field's key, `Ok(None)` at the end of the object. Read its value next.
    #[inline(always)]
    pub fn key(&mut self) -> Result<Option<&'a str>, JsonError> {
        if self.done {
            return Ok(None);
        }
        let bytes = self.cur.bytes();
        let at = self.cur.pos;
        // The compact form venues send, `,"k":` with a one-letter key, read in one look.
        if let Some(&[b',', b'"', k, b'"', b':']) = bytes.get(at..at + 5) {
            if self.in_field && k.is_ascii() && k != b'\\' && k != b'"' {
                self.cur.pos = at + 5;
                return Ok(Some(&self.cur.src[at + 2..at + 3]));
            }
        }
        if self.in_field && !self.cur.next_or_close(b'}')? {
            self.done = true;
            self.cur.end()?;
            return Ok(None);
        }
        let key = self.cur.string()?;
        self.cur.expect(b':', "':'")?;
        self.in_field = true;
        Ok(Some(key))
    }

    /// The value of the field whose key was just read.
    #[inline]
    pub fn value(&mut self) -> Result<Value<'a>, JsonError> {
        self.cur.value()
    }

    /// Skips the value of the field whose key was just read.
    #[inline(always)]
    pub fn skip(&mut self) -> Result<(), JsonError> {
        match self.cur.peek() {
            Some(b'"') => self.cur.string().map(|_| ()),
            Some(b'0'..=b'9') => {
                let mut i = self.cur.pos;
                digits(self.cur.bytes(), &mut i, 0);
                // A fraction or an exponent goes on: the general reader takes the number whole.
                if matches!(self.cur.bytes().get(i), Some(b'.' | b'e' | b'E')) {
                    self.cur.value()?;
                } else {
                    self.cur.pos = i;
                }
                Ok(())
            }
            _ => self.cur.value().map(|_| ()),
        }
    }

    /// Reads a decimal value: a string holding one (how venues send prices) or a number.
    #[inline(always)]
    pub fn decimal(&mut self) -> Result<f64, JsonError> {
        self.cur.decimal()
    }

    /// Reads an unsigned integer value: a number, or a string holding one.
    #[inline(always)]
    pub fn uint(&mut self) -> Result<u64, JsonError> {
        self.cur.uint()
    }

    /// The next field, `Ok(None)` at the end of the object.
    pub fn next_field(&mut self) -> Result<Option<(&'a str, Value<'a>)>, JsonError> {
        match self.key()? {
            Some(key) => Ok(Some((key, self.cur.value()?))),
            None => Ok(None),
        }
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

/// Reads a message whose layout is known in advance, literal by literal: the purpose-built
/// fast path for the hottest messages. Every step returns `None` when the text differs from
/// the expected layout in any way (field order, whitespace, a value of another type), and the
/// caller then parses the message with [`Object`]. Values are read exactly as [`Object`] reads
/// them.
pub struct Layout<'a> {
    cur: Cursor<'a>,
}

impl fmt::Debug for Layout<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layout")
            .field("pos", &self.cur.pos)
            .finish()
    }
}

impl<'a> Layout<'a> {
    /// Starts at the beginning of `src`.
    #[inline(always)]
    pub fn new(src: &'a str) -> Self {
        Layout {
            cur: Cursor { src, pos: 0 },
        }
    }

    /// The exact text `lit` comes next.
    #[inline(always)]
    pub fn lit(&mut self, lit: &str) -> Option<()> {
        let end = self.cur.pos + lit.len();
        (self.cur.src.as_bytes().get(self.cur.pos..end)? == lit.as_bytes()).then(|| {
            self.cur.pos = end;
        })
    }

    /// A one-letter key and its colon, `"k":`, as venues write their compact messages: the
    /// letter, for a reader that takes fields in whatever order they come.
    #[inline(always)]
    pub fn short_key(&mut self) -> Option<u8> {
        let at = self.cur.pos;
        match self.cur.src.as_bytes().get(at..at + 4)? {
            &[b'"', k, b'"', b':'] if k != b'\\' && k != b'"' => {
                self.cur.pos = at + 4;
                Some(k)
            }
            _ => None,
        }
    }

    /// An unsigned integer, bare or quoted.
    #[inline(always)]
    pub fn uint(&mut self) -> Option<u64> {
        self.cur.uint().ok()
    }

    /// A decimal, bare or quoted.
    #[inline(always)]
    pub fn decimal(&mut self) -> Option<f64> {
        self.cur.decimal().ok()
    }

    /// A string value, raw (escapes not decoded), read as [`Object`] reads it.
    #[inline(always)]
    pub fn str(&mut self) -> Option<&'a str> {
        self.cur.string().ok()
    }

    /// The text not read yet.
    #[inline(always)]
    pub fn rest(&self) -> &'a str {
        self.cur.src.get(self.cur.pos..).unwrap_or_default()
    }

    /// Nothing but whitespace is left.
    #[inline(always)]
    pub fn end(mut self) -> Option<()> {
        self.cur.end().ok()
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
            cur.end()?;
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
        if self.done {
            self.cur.end()?;
        }
        Ok(Some(value))
    }
}

/// `text` without the whitespace between tokens (strings kept as they are): a pretty-printed
/// example, such as a venue's documentation shows, as the venue sends it.
pub fn compact(text: &str) -> String {
    let (mut out, mut in_string, mut escaped) = (String::with_capacity(text.len()), false, false);
    for c in text.chars() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if c == '"' {
            in_string = true;
        } else if c.is_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}

/// Digits, then a point and digits, from `*i` (left past them): the mantissa they spell (wrapping
/// beyond 19 digits: callers check the count), how many digits, and how many after the point.
#[inline(always)]
pub(crate) fn decimal_digits(bytes: &[u8], i: &mut usize) -> (u64, usize, usize) {
    let int_start = *i;
    let mut mantissa = digits(bytes, i, 0);
    let mut n_digits = *i - int_start;
    let mut frac = 0;
    if bytes.get(*i) == Some(&b'.') {
        *i += 1;
        let frac_start = *i;
        mantissa = digits(bytes, i, mantissa);
        frac = *i - frac_start;
        n_digits += frac;
    }
    (mantissa, n_digits, frac)
}

/// Reads ASCII digits from `bytes[*i..]` onto `acc` (wrapping past 19 digits: callers count
/// digits and fall back), eight at a time while eight are there, and moves `*i` past them.
#[inline(always)]
fn digits(bytes: &[u8], i: &mut usize, mut acc: u64) -> u64 {
    while let Some(chunk) = bytes.get(*i..*i + 8) {
        let v = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        if !eight_digits(v) {
            break;
        }
        acc = acc.wrapping_mul(100_000_000).wrapping_add(parse_eight(v));
        *i += 8;
    }
    while let Some(&b) = bytes.get(*i) {
        if !b.is_ascii_digit() {
            break;
        }
        acc = acc.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
        *i += 1;
    }
    acc
}

/// The text up to the next quote, which must not be escaped, and what follows the quote: a
/// string's contents and the rest, once its opening quote is behind (the venues' as-sent
/// paths). Eight bytes at a time: venue strings are short.
#[inline(always)]
pub fn until_quote(s: &str) -> Option<(&str, &str)> {
    let q = quote_or_escape(s.as_bytes(), 0)?;
    (s.as_bytes()[q] == b'"').then(|| (&s[..q], &s[q + 1..]))
}

/// The index of the first `"` or `\\` at or after `from`, eight bytes at a time.
#[inline(always)]
fn quote_or_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let v = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        let (q, e) = (v ^ (ONES * u64::from(b'"')), v ^ (ONES * u64::from(b'\\')));
        // A zero byte in `q` or `e` is a match; the lowest flagged byte is always a real one.
        let hits = (q.wrapping_sub(ONES) & !q | e.wrapping_sub(ONES) & !e) & HIGHS;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes[i..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|p| i + p)
}

/// The index of the first `"`, `[`, `]`, `{` or `}` at or after `from`, eight bytes at a time.
#[inline(always)]
fn structural(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let v = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        // Clearing bit 5 maps `{` onto `[` and `}` onto `]`, and nothing else onto either.
        let folded = v & (ONES * 0xDF);
        let (q, o, c) = (
            v ^ (ONES * u64::from(b'"')),
            folded ^ (ONES * u64::from(b'[')),
            folded ^ (ONES * u64::from(b']')),
        );
        // A zero byte in `q`, `o` or `c` is a match; the lowest flagged byte is a real one.
        let hits =
            (q.wrapping_sub(ONES) & !q | o.wrapping_sub(ONES) & !o | c.wrapping_sub(ONES) & !c)
                & HIGHS;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes[i..]
        .iter()
        .position(|b| matches!(b, b'"' | b'[' | b']' | b'{' | b'}'))
        .map(|p| i + p)
}

/// True when all eight bytes of `v` (little-endian) are ASCII digits.
#[inline]
fn eight_digits(v: u64) -> bool {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    (v & HIGH) | ((v.wrapping_add(0x0606_0606_0606_0606) & HIGH) >> 4) == 0x3333_3333_3333_3333
}

/// The value of eight ASCII digits loaded little-endian (first digit in the lowest byte).
#[inline]
fn parse_eight(v: u64) -> u64 {
    let v = (v & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(2561) >> 8;
    let v = (v & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601) >> 16;
    (v & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001) >> 32
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

    /// The one-pass readers agree with the standard parsers, quoted or bare, on every width
    /// around the eight-digit steps.
    #[test]
    fn typed_reads_match_the_standard_parsers() {
        let mut texts: Vec<String> = [
            "25.35190000",
            "-0.00038167",
            "0",
            "1e-5",
            "2.5E3",
            "123456789012345678901234.5",
            "9007199254740993",
            "0.1234567890123456789",
        ]
        .map(String::from)
        .to_vec();
        for width in 1..=21 {
            let digits: String = (0..width)
                .map(|i| char::from(b'1' + (i % 9) as u8))
                .collect();
            texts.push(digits.clone());
            for dot in 1..width {
                texts.push(format!("{}.{}", &digits[..dot], &digits[dot..]));
            }
        }
        for t in &texts {
            for form in [format!(r#"{{"k":"{t}"}}"#), format!(r#"{{"k":{t}}}"#)] {
                let mut o = Object::new(&form).unwrap();
                assert_eq!(o.key().unwrap(), Some("k"));
                assert_eq!(o.decimal().ok(), t.parse::<f64>().ok(), "{form}");
                assert_eq!(o.key().unwrap(), None, "{form}");
                let mut o = Object::new(&form).unwrap();
                o.key().unwrap();
                let want = t.parse::<u64>().ok();
                let got = o.uint().ok().filter(|_| o.key().is_ok());
                assert_eq!(got, want, "{form}");
            }
        }
        for bad in [
            r#"{"k":"1.5x"}"#,
            r#"{"k":""}"#,
            r#"{"k":"-"}"#,
            r#"{"k":true}"#,
        ] {
            let mut o = Object::new(bad).unwrap();
            o.key().unwrap();
            assert!(o.decimal().is_err(), "{bad}");
        }
    }

    /// The eight-at-a-time structural search finds what a byte loop finds, at every offset.
    #[test]
    fn structural_search_matches_a_byte_loop() {
        let base: &[u8] =
            b"abc:def,gh\"ij{klm}no[pq]rstuvwxyz0123456789_YyABC{DEFGH]IJ\\\xfb\xdb\xfd";
        for from in 0..base.len() {
            for end in from..=base.len() {
                let b = &base[..end];
                let naive = (from..end).find(|&i| matches!(b[i], b'"' | b'[' | b']' | b'{' | b'}'));
                assert_eq!(structural(b, from), naive, "from {from} end {end}");
            }
        }
        for byte in 0..=255u8 {
            let b = [byte; 9];
            let want = matches!(byte, b'"' | b'[' | b']' | b'{' | b'}').then_some(0);
            assert_eq!(structural(&b, 0), want, "{byte}");
        }
    }

    /// The eight-at-a-time quote search finds what a byte loop finds, at every offset.
    #[test]
    fn quote_search_matches_a_byte_loop() {
        let base = br#"abcdefgh"ijklmno\pqrstuvwxyz0123456789"ABCDEFGHIJ\"#;
        for from in 0..base.len() {
            for end in from..=base.len() {
                let b = &base[..end];
                let naive = (from..end).find(|&i| b[i] == b'"' || b[i] == b'\\');
                assert_eq!(quote_or_escape(b, from), naive, "from {from} end {end}");
            }
        }
        // Bytes with the high bit set never match.
        let high = "ééééé\"".as_bytes();
        assert_eq!(quote_or_escape(high, 0), Some(high.len() - 1));
    }

    #[test]
    fn anything_after_the_outermost_value_is_an_error() {
        assert!(Object::new(r#"{} x"#).is_err());
        let mut o = Object::new(r#"{"a":1}{"b":2}"#).unwrap();
        assert!(o.next_field().is_ok());
        assert!(o.next_field().is_err());
        let mut a = Array::new("[1],").unwrap();
        assert!(a.next_value().is_err());
        assert!(Object::new("{\"a\":1} \n").unwrap().next_field().is_ok());
    }
}
