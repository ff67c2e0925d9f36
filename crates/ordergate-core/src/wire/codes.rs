//! The code values of OGP v1 (PROTOCOL.md, "Codes"), as Rust types.
//!
//! Each enum is `#[repr(u8)]` or `#[repr(u16)]` with the wire value as its
//! discriminant, and `from_wire` refuses every value the protocol does not
//! define.

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident : $repr:ty { $($(#[$vmeta:meta])* $variant:ident = $value:expr),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr($repr)]
        pub enum $name { $($(#[$vmeta])* $variant = $value),+ }

        impl $name {
            /// Every defined value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value for a wire code, or `None` if the protocol defines no such code.
            #[inline]
            pub const fn from_wire(v: $repr) -> Option<Self> {
                match v { $($value => Some($name::$variant),)+ _ => None }
            }

            /// The wire code.
            #[inline]
            pub const fn wire(self) -> $repr { self as $repr }

            /// The protocol's name for the code, as in PROTOCOL.md.
            pub const fn name(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),+ }
            }
        }
    };
}

wire_enum!(
    /// A key belongs to one environment; a gateway serves one.
    Environment: u8 { Production = 1, Sandbox = 2 }
);

wire_enum!(
    /// Order side.
    Side: u8 { Buy = 1, Sell = 2 }
);

wire_enum!(
    /// Order type. Only limit orders exist in v1.
    OrdType: u8 { Limit = 1 }
);

wire_enum!(
    /// Time in force.
    Tif: u8 { Day = 0, ImmediateOrCancel = 3 }
);

wire_enum!(
    /// Why a Logon was refused (LogonReject.reason).
    #[allow(non_camel_case_types)]
    LogonRejectReason: u16 {
        AUTH_FAILED = 1,
        CLOCK_SKEW = 2,
        REPLAYED_NONCE = 3,
        KEY_DISABLED = 4,
        ADDRESS_NOT_ALLOWED = 5,
        WRONG_ENVIRONMENT = 6,
        SESSION_LIMIT = 7,
        THROTTLED = 8,
        MALFORMED = 9,
        /// The Logon's `request_time_ns` is not later than that of the
        /// key's last accepted Logon before the gateway's nonce cache
        /// started empty (a restart, or a reload that added the key back):
        /// a replay of a captured Logon, or a client clock behind the one
        /// that logged on last. (Added within v1; no frame changes.)
        STALE_LOGON = 10,
    }
);

wire_enum!(
    /// Why an order request was refused (OrderRejected.reason).
    #[allow(non_camel_case_types)]
    RejectReason: u16 {
        NOT_PERMITTED = 1,
        THROTTLED = 2,
        RISK_MAX_QTY = 3,
        RISK_MAX_NOTIONAL = 4,
        ENGINE_BUSY = 5,
        UNKNOWN_INSTRUMENT = 6,
        UNKNOWN_ORDER = 7,
        INVALID_FIELD = 8,
        ENGINE_REJECT = 9,
        DUPLICATE_ORDER_ID = 10,
        /// Added in v1 without changing any frame: the price is outside the
        /// instrument's collar around its reference price, or ≤ 0 where
        /// the instrument does not allow it.
        PRICE_OUT_OF_BAND = 11,
        /// Added in v1 without changing any frame: the order's resting
        /// remainder would take the key's open notional above its
        /// `max_open_notional`.
        RISK_MAX_OPEN_NOTIONAL = 12,
        /// Added in v1 without changing any frame: the gateway's engine (in
        /// another process) stopped answering — its liveness beat was
        /// unchanged for the link's timeout, or it stopped — so the gateway
        /// answers the order itself. Orders the engine had not finished are
        /// answered so too.
        ENGINE_UNAVAILABLE = 13,
    }
);

wire_enum!(
    /// Why an order was canceled (OrderCanceled.reason).
    #[allow(non_camel_case_types)]
    CancelReason: u16 {
        USER = 1,
        MASS_CANCEL = 2,
        CANCEL_ON_DISCONNECT = 3,
        IMMEDIATE_OR_CANCEL = 4,
        KEY_REVOKED = 5,
    }
);

wire_enum!(
    /// Why a session ended (Terminate.reason, Logout.reason).
    #[allow(non_camel_case_types)]
    TerminateReason: u16 {
        NONE = 0,
        LOGOUT = 1,
        BAD_MAC = 2,
        SEQUENCE_ERROR = 3,
        THROTTLE_BREACH = 4,
        KEY_REVOKED = 5,
        HEARTBEAT_TIMEOUT = 6,
        MALFORMED = 7,
        SHUTDOWN = 8,
        SLOW_CONSUMER = 9,
        /// A keys reload changed the key so that this session may not go
        /// on: its address is no longer allowed, the key's environment
        /// changed, or the secret it logged on with left the file.
        /// (Added 2026-12-03; v1 frames unchanged.)
        KEY_CHANGED = 10,
    }
);

/// The scopes of an API key, as the bit set sent in LogonAck.scopes.
///
/// There is no withdrawal or transfer scope, by design: a leaked trading key
/// can at worst trade and cancel, never move money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct Scopes(pub u8);

impl Scopes {
    /// NewOrder, ReplaceOrder.
    pub const TRADE: Scopes = Scopes(1 << 0);
    /// CancelOrder, MassCancel.
    pub const CANCEL: Scopes = Scopes(1 << 1);
    /// Reserved for read-only access.
    pub const READ: Scopes = Scopes(1 << 2);
    /// Every bit the protocol defines.
    pub const DEFINED: Scopes = Scopes(0b111);

    #[inline]
    pub const fn contains(self, other: Scopes) -> bool {
        self.0 & other.0 == other.0
    }

    #[inline]
    pub const fn union(self, other: Scopes) -> Scopes {
        Scopes(self.0 | other.0)
    }

    /// Parses one scope name as written in the keys file.
    pub fn from_name(name: &str) -> Option<Scopes> {
        match name {
            "trade" => Some(Scopes::TRADE),
            "cancel" => Some(Scopes::CANCEL),
            "read" => Some(Scopes::READ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_refuse_undefined_values() {
        for r in TerminateReason::ALL {
            assert_eq!(TerminateReason::from_wire(r.wire()), Some(*r));
        }
        assert_eq!(TerminateReason::from_wire(11), None);
        assert_eq!(LogonRejectReason::from_wire(0), None);
        assert_eq!(LogonRejectReason::from_wire(11), None);
        assert_eq!(
            LogonRejectReason::from_wire(10),
            Some(LogonRejectReason::STALE_LOGON)
        );
        assert_eq!(RejectReason::from_wire(14), None);
        assert_eq!(
            RejectReason::from_wire(13),
            Some(RejectReason::ENGINE_UNAVAILABLE)
        );
        assert_eq!(
            RejectReason::from_wire(11),
            Some(RejectReason::PRICE_OUT_OF_BAND)
        );
        assert_eq!(
            RejectReason::RISK_MAX_OPEN_NOTIONAL.name(),
            "RISK_MAX_OPEN_NOTIONAL"
        );
        assert_eq!(CancelReason::from_wire(6), None);
        assert_eq!(Tif::from_wire(1), None);
        assert_eq!(Tif::from_wire(3), Some(Tif::ImmediateOrCancel));
        assert_eq!(Side::from_wire(0), None);
        assert_eq!(Environment::from_wire(3), None);
        assert_eq!(
            RejectReason::DUPLICATE_ORDER_ID.name(),
            "DUPLICATE_ORDER_ID"
        );
    }

    #[test]
    fn scopes_have_no_bit_beyond_the_three_defined() {
        let all = Scopes::TRADE.union(Scopes::CANCEL).union(Scopes::READ);
        assert_eq!(all, Scopes::DEFINED);
        assert!(all.contains(Scopes::CANCEL));
        assert!(!Scopes::CANCEL.contains(Scopes::TRADE));
        assert_eq!(Scopes::from_name("withdraw"), None);
    }
}
