//! NTSTATUS codes as carried in the SMB2 header `Status` field (MS-SMB2 2.2.1, MS-ERREF 2.3).

use core::fmt;

/// A 32-bit NTSTATUS value (MS-ERREF 2.3.1). Unknown values are kept as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NtStatus(pub u32);

macro_rules! statuses {
    ($($(#[$m:meta])* $name:ident = $val:expr;)*) => {
        impl NtStatus {
            $($(#[$m])* pub const $name: NtStatus = NtStatus($val);)*

            /// The symbolic name (`"STATUS_ACCESS_DENIED"`), or `None` for a code not listed here.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(concat!("STATUS_", stringify!($name))),)*
                    _ => None,
                }
            }
        }
        #[cfg(test)]
        pub(crate) const ALL: &[NtStatus] = &[$(NtStatus::$name),*];
    };
}

statuses! {
    /// STATUS_SUCCESS.
    SUCCESS = 0x0000_0000;
    /// STATUS_PENDING (interim async response).
    PENDING = 0x0000_0103;
    /// STATUS_NOTIFY_CLEANUP.
    NOTIFY_CLEANUP = 0x0000_010B;
    /// STATUS_NOTIFY_ENUM_DIR.
    NOTIFY_ENUM_DIR = 0x0000_010C;
    /// STATUS_BUFFER_OVERFLOW (warning: partial data returned).
    BUFFER_OVERFLOW = 0x8000_0005;
    /// STATUS_NO_MORE_FILES.
    NO_MORE_FILES = 0x8000_0006;
    /// STATUS_STOPPED_ON_SYMLINK.
    STOPPED_ON_SYMLINK = 0x8000_002D;
    /// STATUS_NOT_IMPLEMENTED.
    NOT_IMPLEMENTED = 0xC000_0002;
    /// STATUS_INVALID_INFO_CLASS.
    INVALID_INFO_CLASS = 0xC000_0003;
    /// STATUS_INFO_LENGTH_MISMATCH.
    INFO_LENGTH_MISMATCH = 0xC000_0004;
    /// STATUS_INVALID_HANDLE.
    INVALID_HANDLE = 0xC000_0008;
    /// STATUS_INVALID_PARAMETER.
    INVALID_PARAMETER = 0xC000_000D;
    /// STATUS_NO_SUCH_FILE.
    NO_SUCH_FILE = 0xC000_000F;
    /// STATUS_INVALID_DEVICE_REQUEST.
    INVALID_DEVICE_REQUEST = 0xC000_0010;
    /// STATUS_END_OF_FILE.
    END_OF_FILE = 0xC000_0011;
    /// STATUS_MORE_PROCESSING_REQUIRED (SESSION_SETUP continues).
    MORE_PROCESSING_REQUIRED = 0xC000_0016;
    /// STATUS_NO_MEMORY.
    NO_MEMORY = 0xC000_0017;
    /// STATUS_ACCESS_DENIED.
    ACCESS_DENIED = 0xC000_0022;
    /// STATUS_BUFFER_TOO_SMALL.
    BUFFER_TOO_SMALL = 0xC000_0023;
    /// STATUS_OBJECT_NAME_INVALID.
    OBJECT_NAME_INVALID = 0xC000_0033;
    /// STATUS_OBJECT_NAME_NOT_FOUND.
    OBJECT_NAME_NOT_FOUND = 0xC000_0034;
    /// STATUS_OBJECT_NAME_COLLISION.
    OBJECT_NAME_COLLISION = 0xC000_0035;
    /// STATUS_OBJECT_PATH_NOT_FOUND.
    OBJECT_PATH_NOT_FOUND = 0xC000_003A;
    /// STATUS_SHARING_VIOLATION.
    SHARING_VIOLATION = 0xC000_0043;
    /// STATUS_DELETE_PENDING.
    DELETE_PENDING = 0xC000_0056;
    /// STATUS_NO_LOGON_SERVERS.
    NO_LOGON_SERVERS = 0xC000_005E;
    /// STATUS_NO_SUCH_USER.
    NO_SUCH_USER = 0xC000_0064;
    /// STATUS_WRONG_PASSWORD.
    WRONG_PASSWORD = 0xC000_006A;
    /// STATUS_LOGON_FAILURE.
    LOGON_FAILURE = 0xC000_006D;
    /// STATUS_ACCOUNT_RESTRICTION.
    ACCOUNT_RESTRICTION = 0xC000_006E;
    /// STATUS_INVALID_LOGON_HOURS.
    INVALID_LOGON_HOURS = 0xC000_006F;
    /// STATUS_PASSWORD_EXPIRED.
    PASSWORD_EXPIRED = 0xC000_0071;
    /// STATUS_ACCOUNT_DISABLED.
    ACCOUNT_DISABLED = 0xC000_0072;
    /// STATUS_INSUFFICIENT_RESOURCES.
    INSUFFICIENT_RESOURCES = 0xC000_009A;
    /// STATUS_PIPE_NOT_AVAILABLE.
    PIPE_NOT_AVAILABLE = 0xC000_00AC;
    /// STATUS_INVALID_PIPE_STATE.
    INVALID_PIPE_STATE = 0xC000_00AD;
    /// STATUS_PIPE_BUSY.
    PIPE_BUSY = 0xC000_00AE;
    /// STATUS_PIPE_DISCONNECTED.
    PIPE_DISCONNECTED = 0xC000_00B0;
    /// STATUS_PIPE_CLOSING.
    PIPE_CLOSING = 0xC000_00B1;
    /// STATUS_IO_TIMEOUT.
    IO_TIMEOUT = 0xC000_00B5;
    /// STATUS_FILE_IS_A_DIRECTORY.
    FILE_IS_A_DIRECTORY = 0xC000_00BA;
    /// STATUS_NOT_SUPPORTED.
    NOT_SUPPORTED = 0xC000_00BB;
    /// STATUS_DUPLICATE_NAME.
    DUPLICATE_NAME = 0xC000_00BD;
    /// STATUS_BAD_NETWORK_PATH.
    BAD_NETWORK_PATH = 0xC000_00BE;
    /// STATUS_INVALID_NETWORK_RESPONSE.
    INVALID_NETWORK_RESPONSE = 0xC000_00C3;
    /// STATUS_NETWORK_NAME_DELETED (the tree connect is gone).
    NETWORK_NAME_DELETED = 0xC000_00C9;
    /// STATUS_NETWORK_ACCESS_DENIED.
    NETWORK_ACCESS_DENIED = 0xC000_00CA;
    /// STATUS_BAD_NETWORK_NAME (no such share).
    BAD_NETWORK_NAME = 0xC000_00CC;
    /// STATUS_TOO_MANY_SESSIONS.
    TOO_MANY_SESSIONS = 0xC000_00CE;
    /// STATUS_REQUEST_NOT_ACCEPTED.
    REQUEST_NOT_ACCEPTED = 0xC000_00D0;
    /// STATUS_PIPE_EMPTY.
    PIPE_EMPTY = 0xC000_00D9;
    /// STATUS_INTERNAL_ERROR.
    INTERNAL_ERROR = 0xC000_00E5;
    /// STATUS_NOT_A_DIRECTORY.
    NOT_A_DIRECTORY = 0xC000_0103;
    /// STATUS_CANCELLED.
    CANCELLED = 0xC000_0120;
    /// STATUS_FILE_CLOSED.
    FILE_CLOSED = 0xC000_0128;
    /// STATUS_PIPE_BROKEN.
    PIPE_BROKEN = 0xC000_014B;
    /// STATUS_USER_SESSION_DELETED (the session is gone).
    USER_SESSION_DELETED = 0xC000_0203;
    /// STATUS_PASSWORD_MUST_CHANGE.
    PASSWORD_MUST_CHANGE = 0xC000_0224;
    /// STATUS_NOT_FOUND.
    NOT_FOUND = 0xC000_0225;
    /// STATUS_ACCOUNT_LOCKED_OUT.
    ACCOUNT_LOCKED_OUT = 0xC000_0234;
    /// STATUS_NETWORK_SESSION_EXPIRED (re-authenticate).
    NETWORK_SESSION_EXPIRED = 0xC000_035C;
    /// STATUS_SMB_BAD_CLUSTER_DIALECT.
    SMB_BAD_CLUSTER_DIALECT = 0xC05D_0001;
}

impl NtStatus {
    /// Severity bits 30-31: `true` for an error (`0xC...`).
    pub const fn is_error(self) -> bool {
        self.0 >> 30 == 3
    }

    /// `true` for a warning (`0x8...`).
    pub const fn is_warning(self) -> bool {
        self.0 >> 30 == 2
    }

    /// `true` for success and informational codes.
    pub const fn is_success(self) -> bool {
        self.0 >> 30 < 2
    }
}

impl fmt::Display for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "0x{:08X}", self.0),
        }
    }
}

impl fmt::Debug for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}(0x{:08X})", self.0),
            None => write!(f, "NtStatus(0x{:08X})", self.0),
        }
    }
}

impl From<u32> for NtStatus {
    fn from(v: u32) -> Self {
        NtStatus(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_display() {
        assert_eq!(NtStatus::ACCESS_DENIED.0, 0xC000_0022);
        assert_eq!(NtStatus::ACCESS_DENIED.name(), Some("STATUS_ACCESS_DENIED"));
        assert_eq!(NtStatus::SUCCESS.to_string(), "STATUS_SUCCESS");
        assert_eq!(NtStatus(0x1234_5678).to_string(), "0x12345678");
        assert_eq!(NtStatus(0x1234_5678).name(), None);
        assert_eq!(
            format!("{:?}", NtStatus::LOGON_FAILURE),
            "STATUS_LOGON_FAILURE(0xC000006D)"
        );
    }

    #[test]
    fn codes_are_unique_and_severity() {
        for (i, a) in ALL.iter().enumerate() {
            for b in &ALL[i + 1..] {
                assert_ne!(a.0, b.0, "{a} and {b} share a code");
            }
        }
        assert!(NtStatus::ACCESS_DENIED.is_error());
        assert!(NtStatus::BUFFER_OVERFLOW.is_warning());
        assert!(NtStatus::PENDING.is_success());
        assert!(!NtStatus::PENDING.is_error());
    }
}
