//! Test-only faults, behind the real code paths. With the `test-engines`
//! feature: `HYDROGEN_NODE_CRASH_AT=<point>` kills the process with SIGKILL
//! when it reaches that point (a task state just written, or a chain call
//! just finalized but not yet recorded), for the kill -9 tests; and
//! `HYDROGEN_TEST_WITHHOLD_UPLOAD=1` makes a designated uploader withhold
//! the images, for the stand-in uploader test. No-ops in operators' builds.

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

/// Whether this node withholds the upload of `task`, which it has just seen
/// `Succeeded` with itself as the uploader (`uploader`) or not. Only the
/// first designated uploader withholds: a node that first saw another
/// uploader and was then handed the upload (the stand-in) uploads.
#[cfg(feature = "test-engines")]
pub fn withholds_upload(task: u64, uploader: bool) -> bool {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static STAND_INS: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());
    if std::env::var("HYDROGEN_TEST_WITHHOLD_UPLOAD").is_err() {
        return false;
    }
    let mut stand_ins = STAND_INS.lock().unwrap_or_else(|e| e.into_inner());
    if !uploader {
        stand_ins.insert(task);
        return false;
    }
    let withhold = !stand_ins.contains(&task);
    if withhold {
        tracing::warn!(
            task,
            "HYDROGEN_TEST_WITHHOLD_UPLOAD: withholding the images"
        );
    }
    withhold
}

#[cfg(not(feature = "test-engines"))]
#[inline(always)]
pub fn withholds_upload(_: u64, _: bool) -> bool {
    false
}
