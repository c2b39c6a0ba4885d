//! smbclient against the memfs example (`examples/memfs`): `mkdir`, `put`,
//! `ls`, `get`, `rename`, `rm`, `rmdir` on every dialect with signing
//! required and a user logon, the contents compared byte for byte; and
//! `put` / `get` with `client smb encrypt = required` on 3.0.2 and 3.1.1
//! (every frame a TRANSFORM, decrypted where the transport read it).

mod common;

use std::process::Command;
use std::time::Duration;

use common::memfs::MemfsServer;
use common::{have, output_text, run_capture, TempDir, USER};

const DIALECTS: [&str; 5] = ["SMB2_02", "SMB2_10", "SMB3_00", "SMB3_02", "SMB3_11"];

/// `smbclient //HOST/mem` as USER at `dialect`, signing required,
/// running `commands`; returns its output (it must succeed).
fn smbclient(server: &MemfsServer, dialect: &str, commands: &str) -> String {
    smbclient_with(server, dialect, commands, &[])
}

/// [`smbclient`] with extra `--option=` settings.
fn smbclient_with(server: &MemfsServer, dialect: &str, commands: &str, options: &[&str]) -> String {
    let mut cmd = Command::new("smbclient");
    for o in options {
        cmd.arg(format!("--option={o}"));
    }
    cmd.arg(format!("//{}/mem", server.host()))
        .arg("-p")
        .arg(server.port.to_string())
        .arg("-U")
        .arg(format!("{}%{}", USER.0, USER.1))
        .arg("-m")
        .arg(dialect)
        .arg(format!("--option=client min protocol={dialect}"))
        .arg(format!("--option=client max protocol={dialect}"))
        .arg("--option=client signing=required")
        .arg("-c")
        .arg(commands);
    let out = run_capture(&mut cmd, Duration::from_secs(60));
    let text = output_text(&out);
    assert!(
        out.status.success() && !text.contains("NT_STATUS_"),
        "smbclient {dialect} `{commands}` failed:\n{text}"
    );
    text
}

/// Bytes that are not all alike (a pattern smbclient cannot compress or
/// pad its way through unnoticed), `len` long.
fn contents(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn smbclient_round_trips_on_every_dialect_with_signing() {
    if !have("smbclient") {
        return;
    }
    let server = MemfsServer::start(&[]);
    let tmp = TempDir::new("memfs-smbclient");
    for (i, dialect) in DIALECTS.iter().enumerate() {
        // Sizes around the 64 KiB and 1 MiB I/O sizes of the dialects.
        let len = [0, 1, 65_537, 1_048_577, 3_000_000][i];
        let data = contents(len, i as u64 + 7);
        let local = tmp.join(&format!("up-{dialect}.bin"));
        let back = tmp.join(&format!("down-{dialect}.bin"));
        let again = tmp.join(&format!("again-{dialect}.bin"));
        std::fs::write(&local, &data).expect("write local file");
        let dir = format!("d{dialect}");
        smbclient(
            &server,
            dialect,
            &format!(
                "mkdir {dir}; put {} {dir}\\f.bin; get {dir}\\f.bin {}",
                local.display(),
                back.display()
            ),
        );
        assert!(
            std::fs::read(&back).expect("downloaded file") == data,
            "{dialect}: get differs from put"
        );
        let listing = smbclient(&server, dialect, &format!("ls {dir}\\*"));
        let line = listing
            .lines()
            .find(|l| l.trim_start().starts_with("f.bin "))
            .unwrap_or_else(|| panic!("{dialect}: f.bin not listed:\n{listing}"));
        assert!(
            line.contains(&format!(" {len} ")),
            "{dialect}: size in `{line}`"
        );
        smbclient(
            &server,
            dialect,
            &format!(
                "rename {dir}\\f.bin {dir}\\g.bin; get {dir}\\g.bin {}",
                again.display()
            ),
        );
        assert!(
            std::fs::read(&again).expect("renamed file") == data,
            "{dialect}: renamed file differs"
        );
        let listing = smbclient(&server, dialect, &format!("ls {dir}\\*"));
        assert!(
            !listing.contains("f.bin") && listing.contains("g.bin"),
            "{dialect}:\n{listing}"
        );
        smbclient(&server, dialect, &format!("rm {dir}\\g.bin; rmdir {dir}"));
        let listing = smbclient(&server, dialect, "ls");
        assert!(
            !listing.contains(&dir),
            "{dialect}: {dir} still listed:\n{listing}"
        );
    }
}

/// Encrypted transfers: WRITE and READ frames of up to 1 MiB, sealed
/// (AES-128-CCM on 3.0.2, the negotiated cipher on 3.1.1), many spanning
/// several of the transport's receive buffers; the contents must come back
/// byte for byte.
#[test]
fn smbclient_encrypted_put_and_get_round_trip() {
    if !have("smbclient") {
        return;
    }
    let server = MemfsServer::start(&[]);
    let tmp = TempDir::new("memfs-smbclient-enc");
    for (i, dialect) in ["SMB3_02", "SMB3_11"].iter().enumerate() {
        let data = contents(3_000_000 + i, i as u64 + 41);
        let local = tmp.join(&format!("up-{dialect}.bin"));
        let back = tmp.join(&format!("down-{dialect}.bin"));
        std::fs::write(&local, &data).expect("write local file");
        smbclient_with(
            &server,
            dialect,
            &format!(
                "put {} e{i}.bin; get e{i}.bin {}; rm e{i}.bin",
                local.display(),
                back.display()
            ),
            &["client smb encrypt=required"],
        );
        assert!(
            std::fs::read(&back).expect("downloaded file") == data,
            "{dialect}: encrypted get differs from put"
        );
    }
}
