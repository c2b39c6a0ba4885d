//! `Server::start` as an embedder calls it: a start that fails releases every
//! resource it had claimed (no shard keeps serving the port, no admin socket
//! is left behind), and one listen address is served by one server at a time,
//! also when the port is chosen by the kernel (`:0`).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use smb_server::admin::stats_json;
use smb_server::config::Source;
use smb_server::{ServeOptions, Server};

/// A fresh private directory (removed on drop).
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        use std::os::unix::fs::DirBuilderExt;
        let b: [u8; 8] = smb_server::rng::os_random().expect("OS randomness");
        let p = std::env::temp_dir().join(format!(
            "smb-server-start-{tag}-{}-{:x}",
            std::process::id(),
            u64::from_le_bytes(b)
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn options(listen: SocketAddr, threads: usize) -> ServeOptions {
    let mut opts = ServeOptions::new(listen);
    opts.settings
        .set(Source::CommandLine, "threads", &threads.to_string())
        .unwrap();
    opts
}

#[test]
fn busy_metrics_port_fails_the_start_and_releases_the_listeners_and_admin_socket() {
    let dir = Dir::new("metrics");
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = free_addr();
    let mut opts = options(listen, 2);
    let admin = dir.0.join("admin.sock");
    opts.admin_socket = Some(admin.clone());
    opts.metrics = Some(busy.local_addr().unwrap());
    let err = Server::start(opts).expect_err("started with its metrics port taken");
    assert!(err.to_string().contains("cannot serve metrics"), "{err}");
    assert!(
        TcpStream::connect(listen).is_err(),
        "a shard still serves {listen} after the failed start"
    );
    assert!(!admin.exists(), "the failed start left its admin socket");
}

#[test]
fn uncreatable_admin_socket_fails_the_start_and_releases_the_listeners() {
    let dir = Dir::new("admin");
    let file = dir.0.join("file");
    std::fs::write(&file, "x").unwrap();
    let listen = free_addr();
    let mut opts = options(listen, 2);
    opts.admin_socket = Some(file.join("admin.sock"));
    let err = Server::start(opts).expect_err("started without its admin socket");
    assert!(
        TcpStream::connect(listen).is_err(),
        "a shard still serves {listen} after the failed start"
    );
    assert!(err.to_string().contains(file.to_str().unwrap()), "{err}");
}

#[test]
fn a_kernel_chosen_port_is_shared_by_the_shards_and_claimed_from_other_servers() {
    let first = Server::start(options("127.0.0.1:0".parse().unwrap(), 2)).unwrap();
    let addr = first.local_addr();
    assert_ne!(addr.port(), 0);
    let err = Server::start(options(addr, 1)).expect_err("a second server shares the port");
    assert_eq!(
        err.to_string(),
        format!("address {addr} is already served by another process")
    );
    // Every connection is accepted by the first server's shards.
    let held: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats_json(first.shared())["connections"] != 16 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stats_json(first.shared())["connections"], 16);
    first.shutdown();
    drop(held);
    assert!(TcpStream::connect(addr).is_err());
    // Once the first has stopped, the address is free again.
    let again = Server::start(options(addr, 1)).unwrap();
    again.shutdown();
}
