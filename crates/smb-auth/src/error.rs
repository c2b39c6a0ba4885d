//! Authentication errors and their NTSTATUS mapping (MS-ERREF 2.3).

use core::fmt;

/// NTSTATUS `STATUS_LOGON_FAILURE`.
pub const STATUS_LOGON_FAILURE: u32 = 0xC000_006D;
/// NTSTATUS `STATUS_INVALID_PARAMETER`.
pub const STATUS_INVALID_PARAMETER: u32 = 0xC000_000D;
/// NTSTATUS `STATUS_ACCESS_DENIED`.
pub const STATUS_ACCESS_DENIED: u32 = 0xC000_0022;
/// NTSTATUS `STATUS_NOT_SUPPORTED`.
pub const STATUS_NOT_SUPPORTED: u32 = 0xC000_00BB;

/// Why an authentication step failed.
///
/// `STATUS_MORE_PROCESSING_REQUIRED` is not an error: it is
/// [`Step::Continue`](crate::Step::Continue).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// A token or message is truncated, has a bad signature or lying offsets.
    Malformed(&'static str),
    /// A message arrived that the current state does not expect.
    UnexpectedMessage(&'static str),
    /// Wrong password, unknown user without guest, or a refused anonymous logon.
    LogonFailure,
    /// The NTLM MIC (MS-NLMP 3.1.5.1.2) did not verify.
    MicMismatch,
    /// The SPNEGO mechListMIC (RFC 4178 5) did not verify or was missing.
    MechListMicMismatch,
    /// The peer rejected the exchange (SPNEGO negState reject).
    Rejected,
    /// The peer asks for something this implementation does not do
    /// (NTLMv1, OEM strings, a mechanism other than NTLMSSP).
    NotSupported(&'static str),
    /// The caller is not allowed to do this.
    AccessDenied,
    /// A Kerberos AP-REQ was refused (replay, skew, wrong service, ...).
    Kerberos(crate::kerberos::KerberosFailure),
}

impl AuthError {
    /// The NTSTATUS to answer SESSION_SETUP with.
    pub fn ntstatus(&self) -> u32 {
        match self {
            AuthError::Malformed(_) | AuthError::UnexpectedMessage(_) => STATUS_INVALID_PARAMETER,
            AuthError::LogonFailure
            | AuthError::MicMismatch
            | AuthError::MechListMicMismatch
            | AuthError::Rejected => STATUS_LOGON_FAILURE,
            AuthError::NotSupported(_) => STATUS_NOT_SUPPORTED,
            AuthError::AccessDenied => STATUS_ACCESS_DENIED,
            AuthError::Kerberos(f) => f.ntstatus(),
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Malformed(what) => write!(f, "malformed authentication token: {what}"),
            AuthError::UnexpectedMessage(what) => write!(f, "unexpected message: {what}"),
            AuthError::LogonFailure => f.write_str("logon failure"),
            AuthError::MicMismatch => f.write_str("NTLM MIC mismatch"),
            AuthError::MechListMicMismatch => f.write_str("SPNEGO mechListMIC mismatch"),
            AuthError::Rejected => f.write_str("peer rejected the negotiation"),
            AuthError::NotSupported(what) => write!(f, "not supported: {what}"),
            AuthError::AccessDenied => f.write_str("access denied"),
            AuthError::Kerberos(k) => write!(f, "Kerberos AP-REQ refused: {k}"),
        }
    }
}

impl std::error::Error for AuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_ntstatus_codes() {
        assert_eq!(AuthError::LogonFailure.ntstatus(), 0xC000_006D);
        assert_eq!(AuthError::MicMismatch.ntstatus(), 0xC000_006D);
        assert_eq!(AuthError::Malformed("x").ntstatus(), 0xC000_000D);
        assert_eq!(AuthError::AccessDenied.ntstatus(), 0xC000_0022);
        assert_eq!(AuthError::NotSupported("x").ntstatus(), 0xC000_00BB);
    }
}
