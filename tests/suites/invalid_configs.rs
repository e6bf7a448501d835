//! Filled in by the invalid-config suite.
