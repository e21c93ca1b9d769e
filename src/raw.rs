//! A frame exactly as the venue sent it: the buffer the WebSocket read, kept whole (no copy)
//! for the capture and for messages held back until a hole fills. Text frames carry JSON;
//! binary frames carry market data on venues that send it that way (Paradex's SBE).

use std::fmt::Write as _;

use tungstenite::{Bytes, Utf8Bytes};

/// A frame as received, owned (cloning shares the buffer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Raw {
    /// A text frame.
    Text(Utf8Bytes),
    /// A binary frame.
    Binary(Bytes),
}

/// A frame as received, borrowed: what a feed is handed per frame, made a [`Raw`] only when
/// kept.
#[derive(Clone, Copy, Debug)]
pub enum RawRef<'a> {
    /// A text frame.
    Text(&'a Utf8Bytes),
    /// A binary frame.
    Binary(&'a Bytes),
}

impl RawRef<'_> {
    /// The frame, kept (its buffer shared, not copied).
    #[inline]
    pub fn to_raw(self) -> Raw {
        match self {
            RawRef::Text(t) => Raw::Text(t.clone()),
            RawRef::Binary(b) => Raw::Binary(b.clone()),
        }
    }

    /// Its length in bytes.
    pub fn len(self) -> usize {
        match self {
            RawRef::Text(t) => t.len(),
            RawRef::Binary(b) => b.len(),
        }
    }

    /// Whether it is empty.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// How a log shows it: the text, or a binary frame's size and first bytes in hex.
    pub fn shown(self) -> String {
        match self {
            RawRef::Text(t) => t.as_str().chars().take(160).collect(),
            RawRef::Binary(b) => {
                let mut s = format!("binary frame of {} bytes:", b.len());
                for byte in b.iter().take(24) {
                    let _ = write!(s, " {byte:02x}");
                }
                if b.len() > 24 {
                    s.push_str(" …");
                }
                s
            }
        }
    }
}
