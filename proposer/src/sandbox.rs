//! Placeholder: the seccomp sandbox (being written).
