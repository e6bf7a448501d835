//! Placeholder: the read adapters (being written).
