//! A streaming descent: [`Reader`] enters objects and arrays in place and walks their keys or
//! elements in any order, whitespace anywhere, skipping what the caller does not want in one
//! pass and converting the scalars it does want (decimal, decimal with its fraction digits,
//! `u64`, `i64`, string) in the pass that finds their end. Nothing is sliced out and scanned
//! again.
//!
//! It accepts exactly what the slice-then-scan readers ([`super::Object`], [`super::Array`])
//! accept when each nested value is first cut out and then scanned: a typed read of a value of
//! another type is `Ok(None)` (the value is skipped, as `Value::as_f64` and friends give
//! `None`), and a skipped value is delimited by its own kind of bracket only. A container that
//! the old readers cut out by counting its brackets would be cut elsewhere when a value skipped
//! inside it holds an unbalanced bracket of that container's kind; the reader refuses such a
//! value, as the old readers refused the mis-cut slice.

use super::{decimal_digits, digits, parse_decimal, parse_u64, Cursor, JsonError, Value, POW10};

/// One container being walked: made by [`Reader::object`] or [`Reader::array`], handed back to
/// [`Reader::key`] or [`Reader::element`] for each step.
#[derive(Clone, Copy, Debug)]
pub struct Scope {
    /// No key or element has been read yet.
    first: bool,
    /// 0 for an object, 1 for an array.
    kind: u8,
    /// Entered inside another container (the old readers cut it out as a slice).
    inner: bool,
}

/// Reads one JSON value in place; see the module docs.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    cur: Cursor<'a>,
    /// How many containers entered below the outermost one are open, by kind (objects,
    /// arrays).
    inner: [u32; 2],
    /// How many containers are open.
    depth: u32,
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("pos", &self.cur.pos)
            .field("depth", &self.depth)
            .finish()
    }
}

impl<'a> Reader<'a> {
    /// Starts at the beginning of `src`, which must hold one value and nothing else.
    pub fn new(src: &'a str) -> Self {
        Reader {
            cur: Cursor { src, pos: 0 },
            inner: [0; 2],
            depth: 0,
        }
    }

    /// A reader inside the outermost object of `src` at `pos`, and that object's scope: the
    /// text before `pos` must be the object's opening and whole fields, as [`Reader::object`]
    /// and [`Reader::key`] with the value reads would have taken them (the caller has checked
    /// that it is, e.g. a head exactly as a venue writes it).
    pub fn within_object(src: &'a str, pos: usize) -> (Self, Scope) {
        let r = Reader {
            cur: Cursor { src, pos },
            inner: [0; 2],
            depth: 1,
        };
        let scope = Scope {
            first: false,
            kind: 0,
            inner: false,
        };
        (r, scope)
    }

    /// Where the reader is: an offset into its text.
    #[inline(always)]
    pub fn pos(&self) -> usize {
        self.cur.pos
    }

    /// The next byte that is not whitespace, not consumed.
    #[inline(always)]
    pub fn peek(&mut self) -> Option<u8> {
        self.cur.peek()
    }

    #[inline(always)]
    fn enter(&mut self, open: u8, kind: u8, what: &'static str) -> Result<Scope, JsonError> {
        self.cur.expect(open, what)?;
        let inner = self.depth > 0;
        if inner {
            self.inner[kind as usize] += 1;
        }
        self.depth += 1;
        Ok(Scope {
            first: true,
            kind,
            inner,
        })
    }

    #[inline(always)]
    fn leave(&mut self, s: &Scope) {
        self.depth -= 1;
        if s.inner {
            self.inner[s.kind as usize] -= 1;
        }
    }

    /// Enters the object that comes next.
    #[inline(always)]
    pub fn object(&mut self) -> Result<Scope, JsonError> {
        self.enter(b'{', 0, "'{'")
    }

    /// Enters the array that comes next.
    #[inline(always)]
    pub fn array(&mut self) -> Result<Scope, JsonError> {
        self.enter(b'[', 1, "'['")
    }

    /// The next key of object `s`, `Ok(None)` once it closes. Read or skip its value next.
    #[inline(always)]
    pub fn key(&mut self, s: &mut Scope) -> Result<Option<&'a str>, JsonError> {
        let bytes = self.cur.bytes();
        let at = self.cur.pos;
        if !s.first {
            // The compact form venues send, `,"key":`, found with one search for the quote.
            if bytes.get(at) == Some(&b',') && bytes.get(at + 1) == Some(&b'"') {
                if let Some(q) = super::quote_or_escape(bytes, at + 2) {
                    if bytes[q] == b'"' && bytes.get(q + 1) == Some(&b':') {
                        self.cur.pos = q + 2;
                        return Ok(Some(&self.cur.src[at + 2..q]));
                    }
                }
            }
            if !self.cur.next_or_close(b'}')? {
                self.leave(s);
                return Ok(None);
            }
        } else {
            s.first = false;
            if self.cur.peek() == Some(b'}') {
                self.cur.pos += 1;
                self.leave(s);
                return Ok(None);
            }
        }
        let key = self.cur.string()?;
        self.cur.expect(b':', "':'")?;
        Ok(Some(key))
    }

    /// Whether array `s` has another element (read or skip it next); `false` once it closes.
    #[inline(always)]
    pub fn element(&mut self, s: &mut Scope) -> Result<bool, JsonError> {
        if s.first {
            s.first = false;
            if self.cur.peek() == Some(b']') {
                self.cur.pos += 1;
                self.leave(s);
                return Ok(false);
            }
            return Ok(true);
        }
        if let Some(b',') = self.cur.bytes().get(self.cur.pos) {
            self.cur.pos += 1;
            return Ok(true);
        }
        let more = self.cur.next_or_close(b']')?;
        if !more {
            self.leave(s);
        }
        Ok(more)
    }

    /// Nothing but whitespace follows the outermost value.
    pub fn end(&mut self) -> Result<(), JsonError> {
        self.cur.end()
    }

    /// Skips to the close of `s`, past whatever is left in it, finding the close by counting
    /// `s`'s kind of bracket only (what was left unread was never looked at by the old
    /// readers either).
    pub fn skip_rest(&mut self, s: Scope) -> Result<(), JsonError> {
        if s.kind == 1 {
            // The common rest, plain strings (OKX's two unused level values), in one search
            // each; anything else goes on by counting brackets from where this stops.
            let bytes = self.cur.bytes();
            let mut i = self.cur.pos;
            while bytes.get(i) == Some(&b'"') {
                match super::quote_or_escape(bytes, i + 1) {
                    Some(q) if bytes[q] == b'"' => i = q + 1,
                    _ => break,
                }
                match bytes.get(i) {
                    Some(b',') => i += 1,
                    Some(b']') => {
                        self.cur.pos = i + 1;
                        self.leave(&s);
                        return Ok(());
                    }
                    _ => break,
                }
            }
            self.cur.pos = i;
        }
        let (open, close) = if s.kind == 0 {
            (b'{', b'}')
        } else {
            (b'[', b']')
        };
        self.brackets(open, close, 1)?;
        self.leave(&s);
        Ok(())
    }

    /// Scans to the bracket that brings the count of `open` to zero from `depth`,
    /// string-aware, checking that the other kind balances where that matters.
    fn brackets(&mut self, open: u8, close: u8, mut depth: usize) -> Result<(), JsonError> {
        let bytes = self.cur.bytes();
        let (other_open, other_close) = if open == b'{' {
            (b'[', b']')
        } else {
            (b'{', b'}')
        };
        // The other kind's count, and whether it ever went below zero: either would have cut
        // an enclosing container of that kind elsewhere.
        let (mut other, mut under) = (0isize, false);
        while let Some(at) = super::structural(bytes, self.cur.pos) {
            let b = bytes[at];
            self.cur.pos = at + 1;
            if b == b'"' {
                self.cur.string_body()?;
                continue;
            }
            if b == open {
                depth += 1;
            } else if b == close {
                depth -= 1;
                if depth == 0 {
                    let other_kind = usize::from(open == b'{');
                    if (other != 0 || under) && self.inner[other_kind] > 0 {
                        // An enclosing container of the other kind would have been cut
                        // elsewhere by the old readers, which then refused it.
                        return Err(self.cur.err("balanced brackets"));
                    }
                    return Ok(());
                }
            } else if b == other_open {
                other += 1;
            } else if b == other_close {
                other -= 1;
                under |= other < 0;
            }
        }
        self.cur.pos = bytes.len();
        Err(self.cur.err("closing bracket"))
    }

    /// Skips the value that comes next, whatever it is.
    #[inline]
    pub fn skip(&mut self) -> Result<(), JsonError> {
        match self.cur.peek() {
            Some(b'"') => {
                self.cur.pos += 1;
                self.cur.string_body().map(|_| ())
            }
            Some(b'0'..=b'9') => {
                let mut i = self.cur.pos;
                digits(self.cur.bytes(), &mut i, 0);
                if is_number_byte(self.cur.bytes().get(i)) {
                    self.cur.value()?;
                } else {
                    self.cur.pos = i;
                }
                Ok(())
            }
            Some(b'{') => self.brackets(b'{', b'}', 0),
            Some(b'[') => self.brackets(b'[', b']', 0),
            _ => self.cur.value().map(|_| ()),
        }
    }

    /// Reads the value that comes next with `f`. When `f` refuses it, goes back and skips the
    /// value as the slice-then-scan readers did, handing `f`'s error back inside: the caller
    /// decides whether it refuses the message (a later field of the same name may replace the
    /// value). Malformed JSON that the skip finds is the outer error.
    #[inline(always)]
    pub fn attempt<T, E>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<Result<T, E>, JsonError> {
        let start = *self;
        match f(self) {
            Ok(v) => Ok(Ok(v)),
            Err(e) => {
                *self = start;
                self.skip()?;
                Ok(Err(e))
            }
        }
    }

    /// Skips the value that comes next as [`super::Object::skip`] does: a run of digits ends
    /// the number unless `.`, `e` or `E` follows (what replaces an `Object::key` loop keeps
    /// its acceptance).
    #[inline]
    pub fn skip_strict(&mut self) -> Result<(), JsonError> {
        if let Some(b'0'..=b'9') = self.cur.peek() {
            let mut i = self.cur.pos;
            digits(self.cur.bytes(), &mut i, 0);
            if !matches!(self.cur.bytes().get(i), Some(b'.' | b'e' | b'E')) {
                self.cur.pos = i;
                return Ok(());
            }
        }
        self.skip()
    }

    /// An unsigned integer, bare or quoted, or an error for anything else, as
    /// [`super::Object::uint`] reads it.
    #[inline(always)]
    pub fn uint_strict(&mut self) -> Result<u64, JsonError> {
        self.cur.uint()
    }

    /// Reads the next value whole, as the old readers did (a nested value only skipped).
    fn value(&mut self) -> Result<Option<Value<'a>>, JsonError> {
        if matches!(self.cur.peek(), Some(b'{' | b'[')) {
            self.skip()?;
            return Ok(None);
        }
        self.cur.value().map(Some)
    }

    /// A boolean; `Ok(None)` for a value of another kind, which is skipped.
    #[inline]
    pub fn bool(&mut self) -> Result<Option<bool>, JsonError> {
        Ok(self.value()?.and_then(Value::as_bool))
    }

    /// A decimal: a string holding one (how venues send prices) or a number; `Ok(None)` for a
    /// value of another kind, which is skipped.
    #[inline(always)]
    pub fn decimal(&mut self) -> Result<Option<f64>, JsonError> {
        Ok(self.decimal_dp()?.map(|(v, _)| v))
    }

    /// A decimal and its count of digits after the point as written (at most 18), as OKX's
    /// checksums need it; `Ok(None)` for a value of another kind, which is skipped.
    #[inline(always)]
    pub fn decimal_dp(&mut self) -> Result<Option<(f64, u8)>, JsonError> {
        let quoted = self.cur.peek() == Some(b'"');
        if let Some((v, dp, end)) = simple_decimal(self.cur.bytes(), self.cur.pos, quoted) {
            self.cur.pos = end;
            return Ok(Some((v, dp)));
        }
        Ok(match self.value()? {
            Some(Value::Str(s) | Value::Num(s)) => parse_decimal(s).map(|v| {
                let dp = s.split_once('.').map_or(0, |(_, f)| f.len().min(18) as u8);
                (v, dp)
            }),
            _ => None,
        })
    }

    /// A level exactly as venues write it, `["price","size"]` or with more plain strings after
    /// the size (OKX), price and size simple decimals: both with their digits after the point,
    /// read in one go. `None` leaves the reader where it was, for the general steps (which read
    /// the same from such text).
    #[inline(always)]
    pub fn level_as_sent(&mut self) -> Option<((f64, u8), (f64, u8))> {
        let bytes = self.cur.bytes();
        let at = self.cur.pos;
        if bytes.get(at) != Some(&b'[') {
            return None;
        }
        let (price, p_dp, i) = simple_decimal(bytes, at + 1, true)?;
        if bytes.get(i) != Some(&b',') {
            return None;
        }
        let (qty, q_dp, mut i) = simple_decimal(bytes, i + 1, true)?;
        loop {
            match bytes.get(i) {
                Some(b']') => break,
                Some(b',') if bytes.get(i + 1) == Some(&b'"') => {
                    match super::quote_or_escape(bytes, i + 2) {
                        Some(q) if bytes[q] == b'"' => i = q + 1,
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
        self.cur.pos = i + 1;
        Some(((price, p_dp), (qty, q_dp)))
    }

    /// An unsigned integer: a number or a string holding one; `Ok(None)` for anything else,
    /// which is skipped.
    #[inline(always)]
    pub fn uint(&mut self) -> Result<Option<u64>, JsonError> {
        let bytes = self.cur.bytes();
        let quoted = self.cur.peek() == Some(b'"');
        let start = self.cur.pos + usize::from(quoted);
        let mut i = start;
        let n = digits(bytes, &mut i, 0);
        let ends = if quoted {
            bytes.get(i) == Some(&b'"')
        } else {
            !is_number_byte(bytes.get(i))
        };
        if ends && i > start && i - start <= 19 {
            self.cur.pos = i + usize::from(quoted);
            return Ok(Some(n));
        }
        Ok(match self.value()? {
            Some(Value::Str(s) | Value::Num(s)) => parse_u64(s),
            _ => None,
        })
    }

    /// A signed integer: a number or a string holding one (OKX sends ids as strings);
    /// `Ok(None)` for anything else, which is skipped.
    #[inline(always)]
    pub fn int(&mut self) -> Result<Option<i64>, JsonError> {
        let bytes = self.cur.bytes();
        let quoted = self.cur.peek() == Some(b'"');
        let start = self.cur.pos + usize::from(quoted);
        let neg = bytes.get(start) == Some(&b'-');
        let mut i = start + usize::from(neg);
        let n = digits(bytes, &mut i, 0);
        let len = i - start - usize::from(neg);
        let ends = if quoted {
            bytes.get(i) == Some(&b'"')
        } else {
            !is_number_byte(bytes.get(i))
        };
        // At most 18 digits: below 2^63, no overflow either way.
        if ends && len > 0 && len <= 18 {
            self.cur.pos = i + usize::from(quoted);
            let n = n as i64;
            return Ok(Some(if neg { -n } else { n }));
        }
        Ok(match self.value()? {
            Some(Value::Str(s) | Value::Num(s)) => s.parse().ok(),
            _ => None,
        })
    }

    /// A string's raw contents (escapes not decoded); `Ok(None)` for a value of another kind,
    /// which is skipped.
    #[inline(always)]
    pub fn str(&mut self) -> Result<Option<&'a str>, JsonError> {
        if self.cur.peek() == Some(b'"') {
            self.cur.pos += 1;
            return self.cur.string_body().map(Some);
        }
        self.skip().map(|_| None)
    }
}

/// A decimal at `at` (quoted: `at` holds the opening quote) that the fast path reads exactly:
/// `-`, digits, a point and digits, at most 19 digits below 2^53 in all: its value, digits
/// after the point (at most 18) and where it ends (past the closing quote). `None` for
/// anything else, which [`parse_decimal`] decides.
#[inline(always)]
fn simple_decimal(bytes: &[u8], at: usize, quoted: bool) -> Option<(f64, u8, usize)> {
    if quoted && bytes.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + usize::from(quoted);
    let neg = bytes.get(start) == Some(&b'-');
    let mut i = start + usize::from(neg);
    let (mantissa, n_digits, frac) = decimal_digits(bytes, &mut i);
    let ends = if quoted {
        bytes.get(i) == Some(&b'"')
    } else {
        !is_number_byte(bytes.get(i))
    };
    // A bare number starts as the old readers required: `-` or a digit.
    let starts = quoted || matches!(bytes.get(start), Some(b'-' | b'0'..=b'9'));
    if !(ends
        && starts
        && n_digits > 0
        && n_digits <= 19
        && mantissa < (1 << 53)
        && frac < POW10.len())
    {
        return None;
    }
    // Both exact in f64, so one correctly rounded division (Clinger's fast path), exactly what
    // `parse_decimal` gives for the same text.
    let v = mantissa as f64 / POW10[frac];
    Some((
        if neg { -v } else { v },
        frac.min(18) as u8,
        i + usize::from(quoted),
    ))
}

/// A byte the old readers took as part of a number (`-+.eE` and digits).
#[inline(always)]
fn is_number_byte(b: Option<&u8>) -> bool {
    matches!(b, Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
}
