//! Fault injection for the crash-safety tests, compiled only with the
//! `fault-injection` feature: when `AIRLOCK_FAULT` names a point, the
//! executor kills itself with SIGKILL there — exactly like `kill -9`.

/// Whether this build carries the test-only fault points.
pub const COMPILED_IN: bool = cfg!(feature = "fault-injection");

/// Die here if the test asked for it. A no-op in normal builds.
#[cfg(feature = "fault-injection")]
pub fn point(name: &str) {
    if std::env::var("AIRLOCK_FAULT").is_ok_and(|f| f == name) {
        tracing::warn!(point = name, "fault injection: SIGKILL");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}

/// Whether the test asked this point to fail with an error (not to die).
/// Always `false` in normal builds.
#[cfg(feature = "fault-injection")]
pub fn fails(name: &str) -> bool {
    let asked = std::env::var("AIRLOCK_FAULT").is_ok_and(|f| f == name);
    if asked {
        tracing::warn!(point = name, "fault injection: failing here");
    }
    asked
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn fails(_name: &str) -> bool {
    false
}
