//! JSON Pointers (RFC 6901) compiled once into steps and followed through a message in one
//! pass, without allocating: the building block of venues defined in config, whose fields are
//! named by pointers (`/data/0/bids/0/0`).
//!
//! A pointer is parsed when the config is read ([`Pointer::parse`]: `~1` is `/`, `~0` is `~`,
//! any other `~` is an error naming the pointer). A message's pointers together form one tree,
//! [`Pointers`], followed in one descent with [`Reader`] that skips what no pointer names and
//! records where each named value lies ([`Span`]); the caller reads the values there with the
//! reader's own conversions. A step that is a number names an array element or, on an object,
//! the member with that name (RFC 6901 says the document decides).

use super::reader::Reader;
use super::{unescaped_eq, JsonError};

/// One step of a pointer: a member name (unescaped), with its index when it is one.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Step {
    name: String,
    index: Option<usize>,
}

/// A compiled JSON Pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pointer {
    steps: Vec<Step>,
}

impl Pointer {
    /// Parses `text` (RFC 6901): empty for the whole document, else `/`-separated steps.
    pub fn parse(text: &str) -> Result<Pointer, String> {
        if text.is_empty() {
            return Ok(Pointer { steps: Vec::new() });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "JSON pointer '{text}' must be empty or start with '/'"
            ));
        };
        let mut steps = Vec::new();
        for raw in rest.split('/') {
            let mut name = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                match c {
                    '~' => match chars.next() {
                        Some('0') => name.push('~'),
                        Some('1') => name.push('/'),
                        _ => {
                            return Err(format!(
                                "JSON pointer '{text}': '~' must be followed by 0 or 1"
                            ))
                        }
                    },
                    c => name.push(c),
                }
            }
            // RFC 6901: an array index is 0 or digits without a leading zero.
            let index = (name == "0" || (!name.starts_with('0') && !name.is_empty()))
                .then(|| name.parse::<usize>().ok())
                .flatten();
            steps.push(Step { name, index });
        }
        Ok(Pointer { steps })
    }

    /// Its steps: each member name (decoded), with its array index when it is one.
    pub fn steps(&self) -> impl Iterator<Item = (&str, Option<usize>)> {
        self.steps.iter().map(|s| (s.name.as_str(), s.index))
    }
}

/// Whether two short byte strings are equal.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Where a value lies in a message: its text is `src[start..end]`; [`Span::NONE`] when the
/// message has no such value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Offset of the value's first byte.
    pub start: u32,
    /// Offset past its last byte.
    pub end: u32,
}

impl Span {
    /// No value.
    pub const NONE: Span = Span {
        start: u32::MAX,
        end: u32::MAX,
    };

    /// Whether the message had the value.
    #[inline]
    pub fn found(self) -> bool {
        self.start != u32::MAX
    }

    /// The value's text in `src`, `None` when not found.
    #[inline]
    pub fn text(self, src: &str) -> Option<&str> {
        match self.found() {
            true => src.get(self.start as usize..self.end as usize),
            false => None,
        }
    }
}

/// One node of a [`Pointers`] tree: the pointers that end here, and the steps that go on.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    /// Indices of the pointers naming this value.
    ends: Vec<u16>,
    /// Indices of every pointer naming this value or one inside it.
    under: Vec<u16>,
    /// The next steps, each to its node.
    next: Vec<(Step, u32)>,
}

/// Several pointers compiled into one tree of steps, so that one descent through a message
/// finds every value they name ([`Pointers::locate`]): members and elements no pointer goes
/// through are skipped whole, the others entered once however many pointers share them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pointers {
    nodes: Vec<Node>,
    count: usize,
}

impl Pointers {
    /// Most pointers one tree holds.
    pub const MAX: usize = 32;

    /// The tree of `pointers`; [`Pointers::locate`] reports them in this order.
    ///
    /// # Panics
    /// With more than [`Pointers::MAX`] pointers (the caller's limit, checked when a
    /// definition is read).
    pub fn new<'p>(pointers: impl IntoIterator<Item = &'p Pointer>) -> Pointers {
        let mut nodes = vec![Node {
            ends: Vec::new(),
            under: Vec::new(),
            next: Vec::new(),
        }];
        for (i, p) in pointers.into_iter().enumerate() {
            assert!(i < Self::MAX, "at most {} pointers", Self::MAX);
            // Every node on the way holds the pointer under it.
            let mut at = 0;
            nodes[0].under.push(i as u16);
            for step in &p.steps {
                at = match nodes[at].next.iter().find(|(s, _)| s == step) {
                    Some(&(_, n)) => n as usize,
                    None => {
                        nodes.push(Node {
                            ends: Vec::new(),
                            under: Vec::new(),
                            next: Vec::new(),
                        });
                        let n = nodes.len() - 1;
                        nodes[at].next.push((step.clone(), n as u32));
                        n
                    }
                };
                nodes[at].under.push(i as u16);
            }
            nodes[at].ends.push(i as u16);
        }
        let count = nodes[0].under.len();
        Pointers { nodes, count }
    }

    /// How many pointers the tree holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Descends once through `src`, which must be one JSON value and nothing else, and sets
    /// `found[i]` to where pointer `i`'s value lies ([`Span::NONE`] when the message has
    /// none; when a member comes twice, the last one). `found` must hold at least
    /// [`Pointers::len`] spans. Allocates nothing.
    pub fn locate(&self, src: &str, found: &mut [Span]) -> Result<(), JsonError> {
        let mut r = Reader::new(src);
        self.locate_in(&mut r, found)?;
        r.end()
    }

    /// [`Pointers::locate`] from where `r` is, through the one value there, leaving `r` after
    /// it: spans are offsets into `r`'s whole text (an element of an array read in place).
    pub fn locate_in(&self, r: &mut Reader<'_>, found: &mut [Span]) -> Result<(), JsonError> {
        found[..self.count].fill(Span::NONE);
        self.walk(r, 0, found)
    }

    fn walk(&self, r: &mut Reader<'_>, at: usize, found: &mut [Span]) -> Result<(), JsonError> {
        let node = &self.nodes[at];
        // A member named twice: what the first copy held goes, the last copy is the value.
        if at != 0 {
            for &i in &node.under {
                found[usize::from(i)] = Span::NONE;
            }
        }
        let first = r.peek();
        let start = r.pos();
        match first {
            Some(b'{') if !node.next.is_empty() => {
                let mut s = r.object()?;
                while let Some(key) = r.key(&mut s)? {
                    let escaped = key.as_bytes().contains(&b'\\');
                    // Names are short: compared in place, not through a library call; a key
                    // with escapes is decoded.
                    let next = node.next.iter().find(|(step, _)| match escaped {
                        false => same(key.as_bytes(), step.name.as_bytes()),
                        true => unescaped_eq(key, &step.name),
                    });
                    match next {
                        Some(&(_, n)) => self.walk(r, n as usize, found)?,
                        None => r.skip()?,
                    }
                }
            }
            Some(b'[') if !node.next.is_empty() => {
                let mut s = r.array()?;
                let mut i = 0;
                while r.element(&mut s)? {
                    let next = node.next.iter().find(|(step, _)| step.index == Some(i));
                    match next {
                        Some(&(_, n)) => self.walk(r, n as usize, found)?,
                        None => r.skip()?,
                    }
                    i += 1;
                }
            }
            _ => r.skip()?,
        }
        let span = Span {
            start: start as u32,
            end: r.pos() as u32,
        };
        for &i in &node.ends {
            found[usize::from(i)] = span;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What the pointer names in `doc`, as text of the value's kind, read where a one-pointer
    /// tree's descent found it.
    fn found(pointer: &str, doc: &str) -> Option<String> {
        let tree = Pointers::new(&[Pointer::parse(pointer).unwrap()]);
        let mut spans = [Span::NONE; 1];
        tree.locate(doc, &mut spans).unwrap();
        let mut r = Reader::new(spans[0].text(doc)?);
        match r.peek() {
            Some(b'"') => r.str().unwrap().map(|s| format!("\"{s}\"")),
            Some(b'{' | b'[') => Some("container".into()),
            _ => r.decimal().unwrap().map(|f| f.to_string()),
        }
    }

    /// The same through serde_json's own pointer.
    fn expected(pointer: &str, doc: &str) -> Option<String> {
        let v: Value = serde_json::from_str(doc).unwrap();
        v.pointer(pointer).map(|v| match v {
            Value::String(s) => format!("\"{s}\""),
            Value::Object(_) | Value::Array(_) => "container".into(),
            other => other.as_f64().map_or("?".into(), |f| f.to_string()),
        })
    }

    #[test]
    fn pointers_name_what_serde_json_names_in_venue_messages() {
        let docs = [
            r#"{"channel":"bbo","data":{"market":"BTC-USD-PERP","bid":"65000.5","ask":"65001","seq_no":12,"last_updated_at":1714000000000}}"#,
            r#"{"channel":"l2Book","data":{"coin":"BTC","time":1714000000000,"levels":[[{"px":"64999","sz":"1.5","n":3}],[{"px":"65001","sz":"0.2","n":1}]]}}"#,
            r#"{ "a~b" : { "c/d" : [ 10 , 20 , {"e":"x"} ] }, "0": "zero", "arr": [ "a" ] }"#,
        ];
        let pointers = [
            "",
            "/channel",
            "/data/bid",
            "/data/ask",
            "/data/seq_no",
            "/data/missing",
            "/data/levels/0/0/px",
            "/data/levels/1/0/sz",
            "/data/levels/2/0/px",
            "/data/levels/0/1",
            "/a~0b/c~1d/1",
            "/a~0b/c~1d/2/e",
            "/a~0b/c~1d/3",
            "/0",
            "/arr/0",
            "/arr/00",
            "/arr/x",
            "/channel/0",
        ];
        for doc in docs {
            for p in pointers {
                assert_eq!(found(p, doc), expected(p, doc), "{p} in {doc}");
            }
        }
    }

    /// What serde_json's pointer names, as the compact text `locate` should point at.
    fn serde_text(pointer: &str, doc: &str) -> Option<String> {
        let v: Value = serde_json::from_str(doc).unwrap();
        v.pointer(pointer).map(|v| v.to_string())
    }

    #[test]
    fn one_descent_finds_what_each_pointer_names() {
        let docs = [
            r#"{"channel":"bbo","data":{"market":"BTC-USD-PERP","bid":"65000.5","ask":"65001","seq_no":12,"last_updated_at":1714000000000}}"#,
            r#"{"channel":"l2Book","data":{"coin":"BTC","time":1714000000000,"levels":[[{"px":"64999","sz":"1.5","n":3}],[{"px":"65001","sz":"0.2","n":1}]]}}"#,
            r#"{"a~b":{"c/d":[10,20,{"e":"x"}]},"0":"zero","arr":["a"],"n":null}"#,
        ];
        let all = [
            "",
            "/channel",
            "/data",
            "/data/bid",
            "/data/seq_no",
            "/data/missing",
            "/data/levels/0/0/px",
            "/data/levels/0/0",
            "/data/levels/1/0/sz",
            "/data/levels/2/0/px",
            "/a~0b/c~1d/1",
            "/a~0b/c~1d/2/e",
            "/0",
            "/arr/0",
            "/arr/x",
            "/channel/0",
            "/n",
        ];
        // Every window of the list as one tree: shared prefixes, a pointer and its parent,
        // the root with the rest, the same pointer twice.
        for width in [1, 3, 7, all.len()] {
            for start in 0..=all.len() - width {
                let mut chosen: Vec<&str> = all[start..start + width].to_vec();
                chosen.push(all[start]);
                let parsed: Vec<Pointer> =
                    chosen.iter().map(|p| Pointer::parse(p).unwrap()).collect();
                let tree = Pointers::new(&parsed);
                assert_eq!(tree.len(), chosen.len());
                for doc in docs {
                    let mut spans = [Span::NONE; Pointers::MAX];
                    tree.locate(doc, &mut spans).unwrap();
                    for (i, p) in chosen.iter().enumerate() {
                        let got = spans[i]
                            .text(doc)
                            .map(|t| serde_json::from_str::<Value>(t).unwrap().to_string());
                        assert_eq!(got, serde_text(p, doc), "{p} in {doc}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_descent_refuses_damaged_text_and_text_after_the_value() {
        let parsed = [Pointer::parse("/data/levels/0/0/px").unwrap()];
        let tree = Pointers::new(&parsed);
        let doc = r#"{"channel":"l2Book","data":{"coin":"BTC","levels":[[{"px":"64999"}]]}}"#;
        let mut spans = [Span::NONE; 1];
        tree.locate(doc, &mut spans).unwrap();
        assert_eq!(spans[0].text(doc), Some("\"64999\""));
        for end in 0..doc.len() {
            assert!(
                tree.locate(&doc[..end], &mut spans).is_err(),
                "cut at {end}"
            );
        }
        assert!(tree.locate(&format!("{doc} {{}}"), &mut spans).is_err());
    }

    /// From the review: a member named twice is its last copy, whole; an escaped key is
    /// compared decoded.
    #[test]
    fn the_last_copy_of_a_member_wins_whole_and_escapes_are_decoded() {
        let parsed = [
            Pointer::parse("/bbo/0/px").unwrap(),
            Pointer::parse("/bbo/1/px").unwrap(),
            // a, backslash, n, b.
            Pointer::parse(r"/a\nb").unwrap(),
        ];
        let tree = Pointers::new(&parsed);
        let doc = r#"{"bbo":[{"px":"1"},{"px":"2"}],"bbo":[null,{"px":"3"}],"a\\nb":1,"a\nb":2}"#;
        let mut spans = [Span::NONE; 3];
        tree.locate(doc, &mut spans).unwrap();
        assert_eq!(spans[0], Span::NONE, "the last bbo has no bid");
        assert_eq!(spans[1].text(doc), Some("\"3\""));
        // The key `"a\\nb"` decodes to a, backslash, n, b: the pointer's name; the key
        // `"a\nb"` decodes to a newline, written with the same bytes as the name.
        assert_eq!(spans[2].text(doc), Some("1"));
        assert!(!crate::json::unescaped_eq(r"a\nb", "a\\nb"));
        assert!(crate::json::unescaped_eq(r"a\\nb", "a\\nb"));
    }

    #[test]
    fn a_bad_pointer_is_refused_naming_it() {
        let err = Pointer::parse("data/bid").unwrap_err();
        assert!(
            err.contains("'data/bid'") && err.contains("start with '/'"),
            "{err}"
        );
        let err = Pointer::parse("/a~2b").unwrap_err();
        assert!(
            err.contains("'/a~2b'") && err.contains("followed by 0 or 1"),
            "{err}"
        );
    }
}
