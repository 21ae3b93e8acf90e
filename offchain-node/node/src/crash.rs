//! Crash points for the kill -9 tests: with the `test-engines` feature and
//! `HYDROGEN_NODE_CRASH_AT=<point>`, the process kills itself with SIGKILL
//! when it reaches that point (a task state just written, or a chain call
//! just finalized but not yet recorded). A no-op in operators' builds.

/// Dies here if `HYDROGEN_NODE_CRASH_AT` names `point`.
#[cfg(feature = "test-engines")]
pub fn point(point: &str) {
    if std::env::var("HYDROGEN_NODE_CRASH_AT").is_ok_and(|p| p == point) {
        tracing::warn!(
            point,
            "HYDROGEN_NODE_CRASH_AT: killing this process with SIGKILL"
        );
        // SAFETY: raise has no preconditions; SIGKILL ends the process at once.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}

#[cfg(not(feature = "test-engines"))]
#[inline(always)]
pub fn point(_: &str) {}
