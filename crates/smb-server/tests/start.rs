//! `Server::start` as an embedder calls it: one listen address is served by
//! one server at a time, also when the port is chosen by the kernel (`:0`).

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use smb_server::admin::stats_json;
use smb_server::config::Source;
use smb_server::{ServeOptions, Server};

fn options(listen: SocketAddr, threads: usize) -> ServeOptions {
    let mut opts = ServeOptions::new(listen);
    opts.settings
        .set(Source::CommandLine, "threads", &threads.to_string())
        .unwrap();
    opts
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
