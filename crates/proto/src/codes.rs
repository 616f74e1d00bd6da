//! Numeric codes carried in Nack and Disconn packets (docs/protocol.md §5.2 and §7).
//!
//! Kept as plain `i32` constants rather than enums because the wire allows
//! any value (implementation-specific ranges exist, and clients act on the
//! code's range), so a received code must always be representable.

/// Nack error codes (docs/protocol.md §7). Clients act on the range: 1–999 connection
/// establishment, 1000–1999 protocol message errors, 2000–2999 request
/// errors.
pub mod nack {
    /// ConnRqst protocol version not supported.
    pub const PROT_INCOMPAT: i32 = 1;
    /// Authorisation failure.
    pub const AUTHZ_FAIL: i32 = 2;
    /// Authentication failure.
    pub const AUTHN_FAIL: i32 = 3;
    /// General protocol error.
    pub const PROT_ERROR: i32 = 1001;
    /// Unknown subscription id (args: the id as int64).
    pub const NO_SUCH_SUB: i32 = 1002;
    /// Unknown quench id (args: the id as int64).
    pub const NO_SUCH_QUENCH: i32 = 1003;
    /// Unknown key scheme (args: the scheme id).
    pub const BAD_KEY_SCHEME: i32 = 1004;
    /// Bad key-set count or index (args: scheme id, index).
    pub const BAD_KEY_INDEX: i32 = 1005;
    /// Invalid UTF-8 (args: offset).
    pub const BAD_UTF8: i32 = 1006;
    /// Key not present.
    pub const NO_SUCH_KEY: i32 = 2001;
    /// Key already present.
    pub const KEY_EXISTS: i32 = 2002;
    /// Invalid key.
    pub const BAD_KEY: i32 = 2003;
    /// The request needed no action.
    pub const NOTHING_TO_DO: i32 = 2004;
    /// Request exceeds a negotiated limit (args: the option name).
    pub const QOS_LIMIT: i32 = 2005;
    /// Request exceeds an implementation limit.
    pub const IMPL_LIMIT: i32 = 2006;
    /// Feature not implemented (quench, QoS renegotiation).
    pub const NOT_IMPL: i32 = 2007;
    /// Subscription parse error (args: column, token).
    pub const PARSE_ERROR: i32 = 2101;
    /// Bad token (args: offset, token).
    pub const INVALID_TOKEN: i32 = 2102;
    /// Unterminated string (args: offset).
    pub const UNTERM_STRING: i32 = 2103;
    /// Unknown function (args: offset, name).
    pub const UNKNOWN_FUNC: i32 = 2104;
    /// Numeric literal too large (args: offset, token).
    pub const OVERFLOW: i32 = 2105;
    /// Type mismatch (args: offset, expression, type).
    pub const TYPE_MISMATCH: i32 = 2106;
    /// Too few function arguments (args: offset, function).
    pub const TOO_FEW_ARGS: i32 = 2107;
    /// Too many function arguments (args: offset, function).
    pub const TOO_MANY_ARGS: i32 = 2108;
    /// Bad regular expression (args: offset, regexp).
    pub const INVALID_REGEXP: i32 = 2109;
    /// Expression reduces to a constant.
    pub const EXP_IS_TRIVIAL: i32 = 2110;
    /// Regular expression too complex (args: offset, regexp).
    pub const REGEXP_TOO_COMPLEX: i32 = 2111;
    /// Expression nesting too deep (args: offset).
    pub const NESTING_TOO_DEEP: i32 = 2112;
    /// Quench with no names.
    pub const EMPTY_QUENCH: i32 = 2201;
    /// Quench name already registered (args: name).
    pub const ATTR_EXISTS: i32 = 2202;
    /// Quench name not registered (args: name).
    pub const NO_SUCH_ATTR: i32 = 2203;
}

/// Disconn reasons (docs/protocol.md §5.2).
pub mod disconn {
    /// The router is shutting down.
    pub const SHUTDOWN: i32 = 1;
    /// Reconnect to the router named in the args string.
    pub const REDIRECT: i32 = 2;
    /// Closing because of protocol errors; args explain.
    pub const PROTOCOL_VIOLATION: i32 = 4;
}
