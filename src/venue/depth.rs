//! Book sides read in place with [`Reader`]: each side's levels go to a fixed buffer of up to
//! [`SIDE_LEVELS`] (no allocation) while the event's ids may still be ahead in the message; a
//! longer side is read again from where it starts once they are known. Then the levels are cut
//! into [`DepthChunk`]s exactly as the slice-then-scan `emit_depth` cut them.

use super::{ParseError, Seq};
use crate::json::{JsonError, Reader};
use crate::tick::{DepthChunk, Level, TickData, DEPTH_CHUNK_LEVELS};

/// Levels a side keeps while the message is read (Bybit `orderbook.50` sends 50).
pub(crate) const SIDE_LEVELS: usize = 64;

/// What a side's field held the last time it appeared (the last one wins).
#[derive(Clone, Copy)]
enum State<'a> {
    /// The event does not touch this side.
    Absent,
    /// Well-formed levels; a reader at the side's start, to read it again if it is long.
    Read(Reader<'a>),
    /// Not an array of levels: the event is refused.
    Bad(&'static str),
}

/// One side of a book event.
pub(crate) struct Side<'a> {
    /// The first levels, in the order sent.
    levels: [Level; SIDE_LEVELS],
    /// Digits after the point of each level's price and size, as written.
    dp: [[u8; 2]; SIDE_LEVELS],
    /// Levels on the side; past [`SIDE_LEVELS`] they are read again.
    n: usize,
    state: State<'a>,
    /// The field's name, for errors.
    field: &'static str,
}

impl<'a> Side<'a> {
    /// An absent side named `field`.
    #[inline(always)]
    pub(crate) fn new(field: &'static str) -> Self {
        Side {
            levels: [Level::default(); SIDE_LEVELS],
            dp: [[0; 2]; SIDE_LEVELS],
            n: 0,
            state: State::Absent,
            field,
        }
    }

    /// Back to absent.
    #[inline(always)]
    pub(crate) fn clear(&mut self) {
        self.n = 0;
        self.state = State::Absent;
    }

    /// Reads the side's value in place (replacing what an earlier field of the same name
    /// held). A value that is not an array of levels is skipped as the old readers skipped it
    /// and refuses the event later; malformed JSON is an error now.
    #[inline]
    pub(crate) fn read(&mut self, r: &mut Reader<'a>) -> Result<(), JsonError> {
        let start = *r;
        let (levels, dp) = (&mut self.levels, &mut self.dp);
        let mut n = 0;
        let read = r.attempt(|r| {
            read_levels(r, &mut |level, d| {
                if n < SIDE_LEVELS {
                    levels[n] = level;
                    dp[n] = d;
                }
                n += 1;
            })
        })?;
        self.n = n;
        self.state = match read {
            Ok(()) => State::Read(start),
            Err(_) => State::Bad(self.field),
        };
        Ok(())
    }
}

/// Reads `[[price, size, …], …]` in place, handing each level and its digits after the point
/// to `f`. Values after the size are skipped unread, as before.
#[inline(always)]
fn read_levels(r: &mut Reader<'_>, f: &mut impl FnMut(Level, [u8; 2])) -> Result<(), ParseError> {
    const NOT_LEVELS: ParseError = ParseError::Field("levels");
    if r.peek() != Some(b'[') {
        return Err(NOT_LEVELS);
    }
    let mut side = r.array()?;
    while r.element(&mut side)? {
        if let Some(((price, p_dp), (qty, q_dp))) = r.level_as_sent() {
            f(Level { price, qty }, [p_dp, q_dp]);
            continue;
        }
        if r.peek() != Some(b'[') {
            return Err(NOT_LEVELS);
        }
        let mut pair = r.array()?;
        if !r.element(&mut pair)? {
            return Err(NOT_LEVELS);
        }
        let price = r.decimal_dp()?;
        if !r.element(&mut pair)? {
            return Err(NOT_LEVELS);
        }
        let qty = r.decimal_dp()?;
        if r.element(&mut pair)? {
            r.skip_rest(pair)?;
        }
        let (Some((price, p_dp)), Some((qty, q_dp))) = (price, qty) else {
            return Err(NOT_LEVELS);
        };
        f(Level { price, qty }, [p_dp, q_dp]);
    }
    Ok(())
}

/// The first level of a side, read in place: (price, size), or (NaN, 0) when the side is
/// empty or not an array of levels, as the slice-then-scan `first_level` gave it. A side that
/// it refused is skipped as the old readers skipped it, and is the inner error.
pub(crate) fn first_level(r: &mut Reader<'_>) -> Result<Result<(f64, f64), ParseError>, JsonError> {
    r.attempt(first_level_in_place)
}

fn first_level_in_place(r: &mut Reader<'_>) -> Result<(f64, f64), ParseError> {
    const NONE: (f64, f64) = (f64::NAN, 0.0);
    if r.peek() != Some(b'[') {
        r.skip()?;
        return Ok(NONE);
    }
    let mut levels = r.array()?;
    if !r.element(&mut levels)? {
        return Ok(NONE);
    }
    let (mut price, mut size) = (None, None);
    if r.peek() == Some(b'[') {
        let mut level = r.array()?;
        if r.element(&mut level)? {
            price = r.decimal()?;
            if r.element(&mut level)? {
                size = r.decimal()?;
                if r.element(&mut level)? {
                    r.skip_rest(level)?;
                }
            }
        }
    } else {
        r.skip()?;
    }
    if r.element(&mut levels)? {
        r.skip_rest(levels)?;
    }
    Ok((price.unwrap_or(f64::NAN), size.unwrap_or(0.0)))
}

/// Fills chunks level by level and emits each full one, as `emit_depth` did.
struct Chunker {
    chunk: DepthChunk,
}

impl Chunker {
    #[inline(always)]
    fn push(
        &mut self,
        side: usize,
        level: Level,
        dp: [u8; 2],
        seq: Seq,
        e_time: u64,
        emit: &mut impl FnMut(Seq, u64, TickData),
    ) {
        let chunk = &mut self.chunk;
        if chunk.checksum != 0 {
            chunk.price_dp = chunk.price_dp.max(dp[0]);
            chunk.qty_dp = chunk.qty_dp.max(dp[1]);
        }
        let used = (chunk.n_bids + chunk.n_asks) as usize;
        if used == DEPTH_CHUNK_LEVELS {
            emit(seq, e_time, TickData::Depth(*chunk));
            chunk.part += 1;
            chunk.n_bids = 0;
            chunk.n_asks = 0;
        }
        let used = (chunk.n_bids + chunk.n_asks) as usize;
        chunk.levels[used] = level;
        if side == 0 {
            chunk.n_bids += 1;
        } else {
            chunk.n_asks += 1;
        }
    }
}

/// Cuts the event's bids then asks into [`DepthChunk`]s, emitting each as it fills and the
/// last one marked `last`. `head` carries the event's ids, flags and checksum.
pub(crate) fn emit_sides(
    head: DepthChunk,
    seq: Seq,
    e_time: u64,
    sides: [&Side<'_>; 2],
    emit: &mut impl FnMut(Seq, u64, TickData),
) -> Result<(), ParseError> {
    for s in sides {
        if let State::Bad(field) = s.state {
            return Err(ParseError::Field(field));
        }
    }
    let mut c = Chunker { chunk: head };
    for (i, s) in sides.into_iter().enumerate() {
        let State::Read(start) = s.state else {
            continue;
        };
        if s.n <= SIDE_LEVELS {
            for k in 0..s.n {
                c.push(i, s.levels[k], s.dp[k], seq, e_time, emit);
            }
        } else {
            let mut r = start;
            read_levels(&mut r, &mut |level, dp| {
                c.push(i, level, dp, seq, e_time, emit)
            })?;
        }
    }
    c.chunk.last = true;
    emit(seq, e_time, TickData::Depth(c.chunk));
    Ok(())
}
