//! The smoltcp `Device` the stack polls a flow with: at most one received
//! packet (the segment being delivered), and transmission into the caller's
//! [`Egress`].

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::LinkAddr;

/// Where the stack's outgoing IPv4 packets go.
pub trait Egress {
    /// A buffer of exactly `len` bytes for a packet to `link`, or `None`
    /// when there is no room now (the packet is then dropped, and TCP
    /// retransmits it as for a loss on the wire).
    fn buffer(&mut self, link: LinkAddr, len: usize) -> Option<&mut [u8]>;
    /// The buffer last returned by [`Egress::buffer`] was filled.
    fn commit(&mut self, link: LinkAddr, len: usize);
    /// Whether a packet can be taken now. When not, smoltcp is told the
    /// device is exhausted and keeps what it would have sent (its state
    /// does not advance), and the stack polls the flow again from
    /// [`crate::TcpStack::poll_blocked`].
    fn has_room(&self) -> bool {
        true
    }
}

/// One packet in, any number out.
pub(crate) struct OnePacket<'a, E: Egress> {
    pub(crate) rx: Option<&'a [u8]>,
    pub(crate) egress: &'a mut E,
    pub(crate) link: LinkAddr,
    pub(crate) scratch: &'a mut Vec<u8>,
    pub(crate) mtu: usize,
}

pub(crate) struct Rx<'a>(&'a [u8]);

pub(crate) struct Tx<'a, E: Egress> {
    egress: &'a mut E,
    link: LinkAddr,
    scratch: &'a mut Vec<u8>,
}

impl phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl<E: Egress> phy::TxToken for Tx<'_, E> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        if let Some(buf) = self.egress.buffer(self.link, len) {
            let r = f(buf);
            self.egress.commit(self.link, len);
            return r;
        }
        // No room: smoltcp must still build the packet (its state advances
        // as if sent); it is dropped here and retransmitted later.
        self.scratch.clear();
        self.scratch.resize(len, 0);
        f(&mut self.scratch[..])
    }
}

pub(crate) fn capabilities(mtu: usize) -> DeviceCapabilities {
    let mut caps = DeviceCapabilities::default();
    caps.medium = Medium::Ip;
    caps.max_transmission_unit = mtu;
    caps
}

impl<E: Egress> phy::Device for OnePacket<'_, E> {
    type RxToken<'b>
        = Rx<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = Tx<'b, E>
    where
        Self: 'b;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_, E>)> {
        let data = self.rx.take()?;
        Some((
            Rx(data),
            Tx {
                egress: self.egress,
                link: self.link,
                scratch: self.scratch,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_, E>> {
        if !self.egress.has_room() {
            return None;
        }
        Some(Tx {
            egress: self.egress,
            link: self.link,
            scratch: self.scratch,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        capabilities(self.mtu)
    }
}

/// An [`Egress`] that keeps nothing (to build the interface).
pub(crate) struct Discard;

impl Egress for Discard {
    fn buffer(&mut self, _: LinkAddr, _: usize) -> Option<&mut [u8]> {
        None
    }
    fn commit(&mut self, _: LinkAddr, _: usize) {}
}
