//! smb-loadgen: opens thousands of IPC$ sessions against an SMB server and
//! measures how precisely the server reaps them.
#![forbid(unsafe_code)]

use std::process::ExitCode;

/// Run the `smb-loadgen` command line.
pub fn main() -> ExitCode {
    eprintln!("smb-loadgen: not built yet");
    ExitCode::from(2)
}
