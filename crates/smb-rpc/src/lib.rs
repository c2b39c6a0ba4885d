//! smb-rpc: DCE/RPC over named pipes and the MS-SRVS (srvsvc) interface.
//!
//! Pure bytes in, bytes out, no I/O and no clock:
//! - [`pdu`]: connection-oriented PDUs (C706 12.6, MS-RPCE 2.2.2);
//! - [`ndr`]: NDR 2.0 and NDR64 marshalling (C706 14, MS-RPCE 2.2.5);
//! - [`srvsvc`]: MS-SRVS methods over a [`srvsvc::SrvsvcBackend`] the SMB engine implements;
//! - [`pipe`]: [`pipe::RpcPipe`], the server state of one open pipe (bind, reassembly,
//!   dispatch, fragmented responses, message-mode reads);
//! - [`client`]: the client half, for tests and the load generator.
#![forbid(unsafe_code)]

pub mod client;
pub mod ndr;
pub mod pdu;
pub mod pipe;
pub mod srvsvc;

pub use pipe::{Interface, PipeError, PipeLimits, ReadOutcome, RpcPipe};
pub use srvsvc::{
    CallerInfo, ServerInfo, ShareInfo, SrvConnectionInfo, SrvSessionInfo, SrvsvcBackend,
};
