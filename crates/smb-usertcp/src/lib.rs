//! smb-usertcp: TCP in user space for smbcore's AF_XDP transport (issue 14).
//!
//! TCP itself is [smoltcp]'s (a maintained implementation; RFC 9293
//! behaviour, retransmission, windows and the state machine are its own).
//! What this crate adds is the way segments reach a connection. smoltcp's
//! `Interface` hands each incoming segment to the first socket of a
//! `SocketSet` that accepts it, scanning the set, and its egress pass walks
//! every socket of the set; with one set for every connection a segment
//! costs O(connections) (measured in `benches/tcp_stack.rs`, figures in
//! ARCHITECTURE.md "User-space TCP"). Here every connection is a
//! [`Flow`] with a socket set of its own, found through a hash of its
//! 4-tuple ([`FlowKey`]), so a segment costs one hash look-up and one
//! single-socket poll whatever the number of connections.
//!
//! The crate is sans-IO like the engine: packets come in as IPv4 bytes with
//! the instant they arrived, and leave through an [`Egress`] the caller
//! supplies (the AF_XDP transport writes them into UMEM frames behind an
//! Ethernet header; tests and benchmarks into queues). It reads no clock.
#![forbid(unsafe_code)]

mod device;
mod flow;
mod isn;
mod stack;
mod timers;

pub use device::{Egress, PacketQueue};
pub use flow::{FlowKey, SegmentInfo};
pub use smoltcp;
pub use stack::{Flow, FlowId, Ingress, StackConfig, StackStats, TcpStack, TIME_WAIT};
pub use timers::TimerHost;

/// The link-layer (Ethernet) address of a peer, learned from the last frame
/// it sent and used as the destination of what goes back to it; opaque to
/// this crate.
pub type LinkAddr = [u8; 6];

#[cfg(test)]
mod tests;
