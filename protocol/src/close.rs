//! WebSocket close codes the node uses, named so that both sides agree on
//! what each one means (RFC 6455 section 7.4.1).

/// Normal closure: the client or node is done.
pub const NORMAL: u16 = 1000;
/// The node is shutting down; reconnect (through the load balancer) elsewhere.
pub const GOING_AWAY: u16 = 1001;
/// Protocol error (bad framing, invalid close frame).
pub const PROTOCOL_ERROR: u16 = 1002;
/// Frame data that is not allowed, such as invalid UTF-8 in a text frame.
pub const INVALID_DATA: u16 = 1007;
/// Policy violation, such as a connection that stayed silent past the idle timeout.
pub const POLICY: u16 = 1008;
/// A message larger than the node's `--max-message-size`.
pub const TOO_BIG: u16 = 1009;
/// The node hit an internal error.
pub const INTERNAL: u16 = 1011;
/// Try again later: the connection's outbound queue overflowed (a slow reader).
pub const TRY_AGAIN_LATER: u16 = 1013;
