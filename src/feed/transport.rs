//! Marks the feed thread's calls into its transport (tungstenite framing, rustls records), so
//! what the transport does can be told apart from what the engine's own code does. The one
//! user is `tests/alloc.rs`: its counting allocator asks [`inside`] to leave the transport's
//! buffer allocations out of "the hot path allocates nothing" and count them on their own.
//!
//! Cost: two thread-local writes per call.

use std::cell::Cell;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// True while the calling thread is inside a transport call made by a feed.
#[inline]
pub fn inside() -> bool {
    DEPTH.try_with(|d| d.get() > 0).unwrap_or(false)
}

/// Runs `f`, a call into the transport, marked as such.
#[inline(always)]
pub(crate) fn call<T>(f: impl FnOnce() -> T) -> T {
    DEPTH.with(|d| d.set(d.get() + 1));
    let out = f();
    DEPTH.with(|d| d.set(d.get() - 1));
    out
}
