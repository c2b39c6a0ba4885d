//! The `smb-loadgen` binary (see the `smb_loadgen` crate).

fn main() -> std::process::ExitCode {
    smb_loadgen::main()
}
