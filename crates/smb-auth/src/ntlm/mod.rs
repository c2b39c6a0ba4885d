//! NTLMSSP, MS-NLMP: messages (2.2), NTLMv2 (3.3.2), the acceptor and the
//! initiator, and session security for SPNEGO's mechListMIC (3.4).

pub(crate) mod acceptor;
pub mod crypto;
mod initiator;
pub mod msg;
pub mod security;
pub mod users;

pub use acceptor::{AcceptorConfig, AuthOutcome, Identity, NtlmAcceptor};
pub use initiator::NtlmInitiator;
pub use msg::{
    av_id, AuthenticateMessage, AuthenticateRepr, AvPairs, AvPairsWriter, ChallengeMessage,
    ChallengeRepr, NegotiateFlags, NegotiateMessage, NegotiateRepr, Ntlmv2Response, Version,
    AV_FLAG_MIC_PRESENT,
};
pub use security::NtlmSecurity;
pub use users::{nt_hash, Credential, CredentialStore, StaticCredentials};
