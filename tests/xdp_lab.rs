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

/// `up --impair loss=1,reorder=5`: the forwarder in the third namespace
/// really drops and swaps frames, each direction (what netem would do,
/// which this kernel lacks), and `down` removes its namespace too.
#[test]
fn impaired_lab_drops_and_reorders_frames_both_ways() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: no XDP lab here ({why})");
        return;
    }
    let lab = Lab::up_impaired("xli", 1, "loss=1,reorder=5,seed=7");
    assert!(namespaces().contains(&format!("{}-imp", lab.name)));
    // 1,000 echo requests and their replies: about 20 frames lost, about
    // 100 held back and swapped with their successor.
    let out = lab.run(
        "client",
        &[
            "ping",
            "-q",
            "-c",
            "1000",
            "-i",
            "0.002",
            "-W",
            "1",
            &lab.server_addr,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("1000 packets transmitted"), "{text}");
    assert!(!text.contains(" 0 received"), "{text}");
    // The counters are written every half second.
    std::thread::sleep(Duration::from_millis(1200));
    let t = lab.impair_totals();
    assert!(t["frames"] >= 1900, "{t:?}");
    assert!(t["dropped"] > 0 && t["dropped"] < t["frames"] / 20, "{t:?}");
    assert!(t["reordered"] > 0, "{t:?}");
    assert_eq!(t["errors"], 0, "{t:?}");
    // ping saw the loss too.
    assert!(!text.contains(" 0% packet loss"), "{text}");
    lab.down();
    assert!(!namespaces().iter().any(|n| n.starts_with(&lab.name)));
}
