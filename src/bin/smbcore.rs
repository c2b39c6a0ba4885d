//! The `smbcore` binary (see `smb_server::cli`).

fn main() -> std::process::ExitCode {
    smb_server::cli::main()
}
