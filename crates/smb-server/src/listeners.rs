//! The shards' listening sockets, and the claim that makes one process the
//! only server of its listen address.
//!
//! Each shard has its own SO_REUSEPORT listener on the same address, and the
//! kernel spreads new connections over them. SO_REUSEPORT alone would just as
//! gladly let a second `smbcore serve` (or any program of the same user) join
//! the group and silently take a share of the connections. So, before the
//! shards bind:
//!
//! 1. The address is claimed ([`AddressClaim`]): an abstract-namespace Unix
//!    socket named `smbcore/listen/ADDR` is bound. Abstract names, like TCP
//!    ports, are global to the network namespace, and the kernel frees one
//!    when its socket closes, so the claim ends with the process however the
//!    process ends; no stale lock file can outlive it. A second smbcore finds
//!    the name taken and refuses to start.
//! 2. One socket is bound to the address without SO_REUSEPORT (and with
//!    SO_REUSEADDR, so connections of an earlier run in TIME_WAIT do not
//!    count), then closed. That bind fails if any socket of any program
//!    listens on the port, on this address or on a wildcard that covers it.
//!
//! With port 0, the first shard's bind chooses the port (the kernel never
//! picks a port that a listener uses, SO_REUSEPORT or not), then the chosen
//! address is claimed and the other shards join it.
//!
//! What no check at start can stop: a program of the same user that binds
//! the port with SO_REUSEPORT after the server started joins the group (the
//! kernel allows that). And abstract names carry no permissions: a local user
//! who takes the claim's name first keeps the server from starting (a denial
//! of service, never a shared port).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;

use socket2::{Domain, Protocol, Socket, Type};

/// Backlog of each shard listener.
const BACKLOG: i32 = 1024;

/// The claim on one listen address, held for as long as this value lives.
#[derive(Debug)]
pub(crate) struct AddressClaim {
    _socket: UnixDatagram,
}

impl AddressClaim {
    /// Claim `addr`, or fail with `AddrInUse` if another process holds it.
    pub(crate) fn take(addr: SocketAddr) -> io::Result<AddressClaim> {
        let name = format!("smbcore/listen/{addr}");
        let unix = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        match UnixDatagram::bind_addr(&unix) {
            Ok(socket) => Ok(AddressClaim { _socket: socket }),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("address {addr} is already served by another process"),
            )),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("cannot claim address {addr}: {e}"),
            )),
        }
    }
}

/// The listeners of every shard, all on one address, and the claim on it.
#[derive(Debug)]
pub(crate) struct ShardListeners {
    /// Held for the life of the server.
    pub(crate) claim: AddressClaim,
    /// One per shard, each with SO_REUSEPORT.
    pub(crate) listeners: Vec<TcpListener>,
    /// The address bound (the chosen port when asked for port 0).
    pub(crate) local_addr: SocketAddr,
}

/// Claim `addr` and bind `count` (at least one) SO_REUSEPORT listeners on it.
/// On error, whatever was bound is closed again.
pub(crate) fn bind(addr: SocketAddr, count: usize) -> io::Result<ShardListeners> {
    let cannot_listen =
        |e: io::Error| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"));
    let (claim, first) = if addr.port() == 0 {
        let first = bind_reuseport(addr).map_err(cannot_listen)?;
        (AddressClaim::take(first.local_addr()?)?, first)
    } else {
        let claim = AddressClaim::take(addr)?;
        probe_exclusive(addr).map_err(cannot_listen)?;
        (claim, bind_reuseport(addr).map_err(cannot_listen)?)
    };
    let local_addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(bind_reuseport(local_addr).map_err(cannot_listen)?);
    }
    Ok(ShardListeners {
        claim,
        listeners,
        local_addr,
    })
}

fn new_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    Ok(socket)
}

fn bind_reuseport(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = new_socket(addr)?;
    socket.set_reuse_port(true)?;
    // Accepted connections inherit TCP_NODELAY from the listener (Linux),
    // which saves a setsockopt per connection on every transport.
    socket.set_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Bind (and close) a socket without SO_REUSEPORT: fails while any other
/// socket listens on the port.
fn probe_exclusive(addr: SocketAddr) -> io::Result<()> {
    new_socket(addr)?.bind(&addr.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback_any() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn shards_share_a_chosen_port_and_a_second_claim_on_it_fails() {
        let bound = bind(loopback_any(), 3).unwrap();
        assert_eq!(bound.listeners.len(), 3);
        for l in &bound.listeners {
            assert_eq!(l.local_addr().unwrap(), bound.local_addr);
        }
        let e = bind(bound.local_addr, 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(
            e.to_string(),
            format!(
                "address {} is already served by another process",
                bound.local_addr
            )
        );
        let addr = bound.local_addr;
        drop(bound);
        // Claim and port are released with the value.
        bind(addr, 2).unwrap();
    }

    #[test]
    fn a_plain_listener_of_another_program_on_the_port_is_found() {
        let other = TcpListener::bind(loopback_any()).unwrap();
        let addr = other.local_addr().unwrap();
        let e = bind(addr, 1).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("cannot listen on {addr}:")),
            "{e}"
        );
        // The failed start released its claim.
        drop(other);
        bind(addr, 1).unwrap();
    }
}
