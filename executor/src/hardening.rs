//! Process hardening for the executor (invariant 7).

/// Clear the dumpable flag: no core dumps, and a same-uid process can no
/// longer ptrace the executor or read its memory or `/proc/<pid>/environ`,
/// where the write credentials live. The kernel resets the flag on exec and
/// on uid changes, so this runs after any such change, before secrets are read.
pub fn make_non_dumpable() -> nix::Result<()> {
    nix::sys::prctl::set_dumpable(false)
}

/// Whether the flag is currently clear (for tests and `doctor`).
pub fn is_non_dumpable() -> bool {
    matches!(nix::sys::prctl::get_dumpable(), Ok(false))
}

/// Files the executor creates (ledger, WAL, lock) are private to its user.
pub fn private_umask() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
}
