//! JSON string escapes decoded where text is shown or compared, without allocating: the
//! scanner hands strings out raw (venue keys, symbols and numbers carry no escapes, so the
//! per-message path never decodes), and the few places that show a venue's text (error
//! messages) or compare it (stream names, `type`, `op`, `event`) decode it as they go.
//!
//! RFC 8259 §7: `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t` and `\uXXXX`, a character
//! outside the Basic Multilingual Plane written as a surrogate pair `\uD83D\uDE00`. An escape
//! that is not one of these (the scanner lets a few through) stands for itself, raw; a lone
//! surrogate is U+FFFD.

use std::fmt;
use std::str::Chars;

/// The characters of a raw JSON string's contents, escapes decoded.
#[derive(Clone, Debug)]
pub struct Unescape<'a> {
    chars: Chars<'a>,
    /// Raw text of an escape that is not valid, handed out as it stands.
    pending: Option<Chars<'a>>,
}

impl<'a> Unescape<'a> {
    /// Decodes `raw`, the text between a string's quotes as the scanner hands it out.
    pub fn new(raw: &'a str) -> Self {
        Unescape {
            chars: raw.chars(),
            pending: None,
        }
    }

    /// Four hex digits of a `\u` escape.
    fn hex4(chars: &mut Chars<'_>) -> Option<u32> {
        let s = chars.as_str().get(..4)?;
        let v = u32::from_str_radix(s, 16).ok()?;
        // `from_str_radix` takes a sign: only digits will do.
        s.bytes().all(|b| b.is_ascii_hexdigit()).then(|| {
            *chars = chars.as_str()[4..].chars();
            v
        })
    }

    /// The character of the escape after a backslash, or `None` when it is not valid.
    fn escape(chars: &mut Chars<'_>) -> Option<char> {
        Some(match chars.next()? {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hi = Self::hex4(chars)?;
                if !(0xD800..0xDC00).contains(&hi) {
                    return Some(char::from_u32(hi).unwrap_or('\u{fffd}'));
                }
                let mut ahead = chars.clone();
                let lo = (ahead.next() == Some('\\') && ahead.next() == Some('u'))
                    .then(|| Self::hex4(&mut ahead))
                    .flatten()
                    .filter(|lo| (0xDC00..0xE000).contains(lo));
                match lo {
                    Some(lo) => {
                        *chars = ahead;
                        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                            .unwrap_or('\u{fffd}')
                    }
                    None => '\u{fffd}',
                }
            }
            _ => return None,
        })
    }
}

impl Iterator for Unescape<'_> {
    type Item = char;

    #[inline]
    fn next(&mut self) -> Option<char> {
        if let Some(raw) = self.pending.as_mut() {
            match raw.next() {
                Some(c) => return Some(c),
                None => self.pending = None,
            }
        }
        let c = self.chars.next()?;
        if c != '\\' {
            return Some(c);
        }
        let start = self.chars.clone();
        match Self::escape(&mut self.chars) {
            Some(c) => Some(c),
            None => {
                // Not an escape: the backslash stands for itself, then what follows.
                self.chars = start;
                Some('\\')
            }
        }
    }
}

/// A raw JSON string shown with its escapes decoded: `"args size \u003e10"` displays as
/// `args size >10`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unescaped<'a>(pub &'a str);

impl fmt::Display for Unescaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.contains('\\') {
            return f.write_str(self.0);
        }
        Unescape::new(self.0).try_for_each(|c| fmt::Write::write_char(f, c))
    }
}

impl<'a> Unescaped<'a> {
    /// The text decoded: borrowed when it holds no escape (for the cold paths that keep or
    /// pass it on, such as a venue's error message).
    pub fn text(self) -> std::borrow::Cow<'a, str> {
        if self.0.contains('\\') {
            std::borrow::Cow::Owned(self.to_string())
        } else {
            std::borrow::Cow::Borrowed(self.0)
        }
    }
}

/// Whether the raw JSON string `raw`, decoded, is `plain`. As fast as `==` when `raw` holds
/// no backslash.
#[inline]
pub fn unescaped_eq(raw: &str, plain: &str) -> bool {
    if !raw.as_bytes().contains(&b'\\') {
        return raw == plain;
    }
    // Escaped text equal as written is not equal decoded (`a\nb` is a newline).
    Unescape::new(raw).eq(plain.chars())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_decoded_for_display_and_comparison() {
        // Bybit's reply to more than 10 args, as the venue sent it.
        let frame =
            r#"{"success":false,"ret_msg":"args size \u003e10","conn_id":"x","op":"subscribe"}"#;
        let raw = crate::json::Object::new(frame)
            .unwrap()
            .find("ret_msg")
            .unwrap()
            .and_then(crate::json::Value::as_str)
            .unwrap();
        assert_eq!(raw, r"args size \u003e10");
        assert_eq!(Unescaped(raw).to_string(), "args size >10");
        assert_eq!(Unescaped(raw).text(), "args size >10");
        assert!(matches!(
            Unescaped("plain").text(),
            std::borrow::Cow::Borrowed("plain")
        ));
        for (raw, plain) in [
            (r#"a \"quoted\" word"#, r#"a "quoted" word"#),
            (r"back\\slash", r"back\slash"),
            (r"BTC\/USDT", "BTC/USDT"),
            (
                r"line\nbreak\ttab\rcr\bbs\ffeed",
                "line\nbreak\ttab\rcr\u{8}bs\u{c}feed",
            ),
            (r"\u00e9t\u00E9", "été"),
            (r"smile \ud83d\ude00!", "smile 😀!"),
            (r"lone \ud83d end", "lone \u{fffd} end"),
            (r"bad \x escape", r"bad \x escape"),
            (r"short \u12", r"short \u12"),
            (r"trailing \", r"trailing \"),
            ("plain", "plain"),
        ] {
            assert_eq!(Unescaped(raw).to_string(), plain, "{raw}");
            assert!(unescaped_eq(raw, plain), "{raw}");
            assert!(!unescaped_eq(raw, "something else"), "{raw}");
        }
        assert!(unescaped_eq(r"snap\u0073hot", "snapshot"));
        assert!(!unescaped_eq(r"snap\u0073hot", "snapshoT"));
    }
}
