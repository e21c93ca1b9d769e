//! Reading a session back: its manifest, a stream's file and its lines, and a captured
//! message's payload as the venue's codec classifies it (`wsfeed audit`, `replay`, `report`).

use std::io;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;

use crate::venue::{Frame, Payload, StreamDef, Venue};

/// The manifest's file name in a session folder.
pub const MANIFEST: &str = "session_manifest.json";

/// Reads a session folder's manifest: an error names the file and what is wrong with it (a
/// folder with no manifest is not a session folder; a manifest must be a JSON object with a
/// `feeds` list).
pub fn read_manifest(dir: &Path) -> Result<Value, String> {
    if !dir.is_dir() {
        return Err(format!("{}: not a folder", dir.display()));
    }
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!(
                "{}: not a session folder (no {MANIFEST}; a session is DIR/<session_id>)",
                dir.display()
            ))
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let manifest: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    if !manifest["feeds"].is_array() {
        return Err(format!("{}: no feeds list", path.display()));
    }
    Ok(manifest)
}

/// One line of a stream's JSONL file, read in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// Unix ns when the frame was read.
    pub recv_ns: u64,
    /// The feed's connection number that delivered it.
    pub conn: u32,
    /// Its place in the session (format 2; `None` in format 1).
    pub n: Option<u64>,
    /// Given to a book again after a resync (captured once before).
    pub again: bool,
    /// The venue's message; for a binary frame (`binary`), its base64.
    pub msg: &'a str,
    /// The frame was binary (written `"bin":"<base64>"`).
    pub binary: bool,
}

/// A captured message's payload, classified by `venue` as it was live: `msg` is a line's message
/// (with `binary`, a binary frame's base64, decoded into `buf`). An error says why it is not a
/// data message the venue reads.
pub fn captured_payload<'a>(
    venue: Venue,
    msg: &'a str,
    binary: bool,
    buf: &'a mut Vec<u8>,
) -> Result<Payload<'a>, String> {
    let classified = match binary {
        true => venue.classify_binary(
            decode_binary(msg, buf).ok_or("a binary frame's base64 does not decode")?,
        ),
        false => venue.classify(msg),
    };
    match classified.map_err(|e| e.to_string())? {
        Frame::Data { data, .. } => Ok(Payload::Text(data)),
        Frame::Binary { data, .. } => Ok(Payload::Binary(data)),
        _ => Err("not a data message".into()),
    }
}

/// A binary frame from its capture text (`"<base64>"`), decoded into `buf` (cleared first);
/// `None` when that is not what the text is.
fn decode_binary<'b>(msg: &str, buf: &'b mut Vec<u8>) -> Option<&'b [u8]> {
    buf.clear();
    let b64 = msg.strip_prefix('"')?.strip_suffix('"')?;
    BASE64.decode_vec(b64, buf).ok()?;
    Some(&buf[..])
}

/// Reads a capture line as the capture writes it
/// (`{"recv_ns":…,"conn":…[,"n":…][,"again":true],"msg":…}`, or `…,"bin":"<base64>"}` for a
/// binary frame); `None` for anything else.
pub fn parse_line(line: &str) -> Option<Line<'_>> {
    let mut l = crate::json::Layout::new(line.trim_end_matches(['\n', '\r']));
    l.lit("{\"recv_ns\":")?;
    let recv_ns = l.uint()?;
    l.lit(",\"conn\":")?;
    let conn = u32::try_from(l.uint()?).ok()?;
    let n = match l.lit(",\"n\":") {
        Some(()) => Some(l.uint()?),
        None => None,
    };
    let again = l.lit(",\"again\":true").is_some();
    let binary = l.lit(",\"bin\":").is_some();
    if !binary {
        l.lit(",\"msg\":")?;
    }
    let msg = l.rest().strip_suffix('}')?;
    Some(Line {
        recv_ns,
        conn,
        n,
        again,
        msg,
        binary,
    })
}

/// The JSONL file of `def` of feed `feed` on venue `venue` in session `dir`: the one named
/// after the feed when two feeds carried the stream, else the plain one (which may not exist:
/// a stream that never delivered has no file).
pub fn stream_file(dir: &Path, venue: &str, feed: &str, def: &StreamDef) -> PathBuf {
    let folder = dir.join(venue).join(&def.symbol);
    let shared = folder.join(file_name(def.channel_name(), Some(feed)));
    if shared.exists() {
        shared
    } else {
        folder.join(file_name(def.channel_name(), None))
    }
}

/// A stream's capture file: `<channel>.jsonl`, or `<channel>.<feed>.jsonl` where two feeds
/// carry the stream.
pub(super) fn file_name(channel: &str, feed: Option<&str>) -> String {
    match feed {
        Some(feed) => format!("{channel}.{feed}.jsonl"),
        None => format!("{channel}.jsonl"),
    }
}
