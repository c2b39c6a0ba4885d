//! smb-rpc: DCE/RPC over named pipes and the MS-SRVS (srvsvc) interface.
#![forbid(unsafe_code)]
