//! `scripts/xdp-lab` (issue 14): a lab comes up with the server and every
//! client address reachable across the veth pair, and `down` leaves nothing
//! behind: not the namespaces, not the interfaces, not a process a crashed
//! test left running inside, and it can be run again.

mod common;

use common::lab::{namespaces, unavailable, Lab};
use std::time::Duration;

#[test]
fn lab_comes_up_answers_ping_from_every_client_address_and_goes_away_whole() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: no XDP lab here ({why})");
        return;
    }
    let lab = Lab::up("xlt", 3);
    assert_eq!(lab.client_addrs, ["198.18.1.1", "198.18.1.2", "198.18.1.3"]);
    let ns = namespaces();
    assert!(ns.contains(&format!("{}-srv", lab.name)), "{ns:?}");
    assert!(ns.contains(&format!("{}-cli", lab.name)), "{ns:?}");
    for src in &lab.client_addrs {
        let out = lab.run(
            "client",
            &["ping", "-c", "1", "-W", "2", "-I", src, &lab.server_addr],
        );
        assert!(
            out.status.success(),
            "ping {} from {src}: {}",
            lab.server_addr,
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // The client's side must not offload checksums: AF_XDP would see
    // pseudo-header-only checksums.
    let k = lab.run("client", &["ethtool", "-k", "xl-cli"]);
    let k = String::from_utf8_lossy(&k.stdout).into_owned();
    assert!(k.contains("tx-checksumming: off"), "{k}");
    // What a crashed test leaves: a process still running in the lab.
    let mut stray = lab
        .command("server", "sleep")
        .arg("300")
        .spawn()
        .expect("start a process in the lab");
    std::thread::sleep(Duration::from_millis(200));

    let out = lab.down();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = stray.wait().expect("wait for the stray process");
    assert!(!status.success(), "down must end what runs inside the lab");
    let ns = namespaces();
    assert!(
        !ns.iter().any(|n| n.starts_with(&lab.name)),
        "namespaces left behind: {ns:?}"
    );
    let links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip link");
    assert!(!String::from_utf8_lossy(&links.stdout).contains("xl-"));
    // Idempotent: again, and for a lab that never existed.
    assert!(lab.down().status.success());
    let out = std::process::Command::new(common::lab::script())
        .args(["-n", "neverupxlt", "down"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn lab_refuses_a_name_that_could_collide_or_escape() {
    for bad in ["", "a-b", "../x", "a b", "abcdefghijklmnopqrstuvwxyz"] {
        let out = std::process::Command::new(common::lab::script())
            .args(["-n", bad, "down"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "name {bad:?}");
    }
}
