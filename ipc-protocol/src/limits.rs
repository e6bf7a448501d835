//! Limits, each enforced by the side that receives (invariant 10).

use std::time::Duration;

/// Largest frame body accepted, checked from the length prefix before any
/// allocation.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// Deepest JSON nesting accepted in a frame.
pub const MAX_JSON_DEPTH: usize = 32;
/// Most rows one `record_read` may carry: the released groups of the
/// largest grouped aggregate read (`max_groups` ≤ 500); every capability
/// bounds its own reads further.
pub const MAX_ROWS_PER_READ: usize = 500;
/// Most parameter descriptions one `record_read` may carry: 8 reviewed
/// selection terms, the tenant and the principal fit.
pub const MAX_PARAMS_PER_READ: usize = 16;
/// Most items a list request returns.
pub const MAX_LIST_ITEMS: u32 = 1_000;
/// Longest free-text note or reason, in characters.
pub const MAX_NOTE_CHARS: usize = 2_000;
/// Most connections the executor serves at once on the proposer socket
/// (all its peers together). A budget of its own: proposer connections
/// never count against the operator socket's.
pub const MAX_PROPOSER_CONNECTIONS: usize = 192;
/// Most connections the executor serves at once on the operator socket.
pub const MAX_OPERATOR_CONNECTIONS: usize = 64;
/// Most connections one peer uid may hold at once on each socket.
pub const MAX_CONNECTIONS_PER_UID: usize = 64;
/// Time a new connection has to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a frame has to arrive completely once its first byte was read
/// (slow senders are disconnected).
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle connection is closed after this long without a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Time one answer has to be written to the peer. A peer that stops
/// reading (its socket buffer stays full) is disconnected after this long,
/// which frees its connection slot.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_have_their_documented_values() {
        assert_eq!(MAX_FRAME_BYTES, 1_048_576);
        assert_eq!(MAX_JSON_DEPTH, 32);
        assert_eq!(MAX_ROWS_PER_READ, 500);
        assert_eq!(MAX_PARAMS_PER_READ, 16);
        assert_eq!(MAX_LIST_ITEMS, 1_000);
        assert_eq!(MAX_NOTE_CHARS, 2_000);
        assert_eq!(MAX_PROPOSER_CONNECTIONS, 192);
        assert_eq!(MAX_OPERATOR_CONNECTIONS, 64);
        assert_eq!(MAX_CONNECTIONS_PER_UID, 64);
        assert_eq!(HANDSHAKE_TIMEOUT, Duration::from_secs(5));
        assert_eq!(FRAME_TIMEOUT, Duration::from_secs(10));
        assert_eq!(IDLE_TIMEOUT, Duration::from_secs(900));
        assert_eq!(WRITE_TIMEOUT, Duration::from_secs(10));
    }
}
