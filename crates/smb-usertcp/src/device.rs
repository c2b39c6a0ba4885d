//! The smoltcp `Device` the stack polls a flow with: at most one received
//! packet (the segment being delivered), and transmission into the caller's
//! [`Egress`].

use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
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

/// What a connection last told its peer, read from the segments it sent
/// (whether or not the egress had room for them: smoltcp's state moves on
/// either way). RFC 9293 section 3.3.1 names the fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sent {
    /// SEG.ACK of the last segment sent with ACK: RCV.NXT as of then.
    pub(crate) ack: Option<u32>,
    /// The highest SEG.SEQ + SEG.LEN sent: SND.NXT.
    pub(crate) snd_nxt: Option<u32>,
    /// SEG.WND of that last ACK, as sent (scaled).
    pub(crate) wnd: u16,
    /// Segments with ACK sent so far (wrapping): tells whether a poll sent
    /// one.
    pub(crate) acks: u32,
    /// The window scale option of the SYN or SYN-ACK sent (RFC 7323
    /// section 2.2).
    pub(crate) ws: Option<u8>,
}

impl Sent {
    /// Record one IPv4 TCP segment this host built (so its lengths are
    /// right; read defensively all the same).
    pub(crate) fn observe(&mut self, packet: &[u8]) {
        let Some(&first) = packet.first() else {
            return;
        };
        let ihl = usize::from(first & 0x0f) * 4;
        let Some(tcp) = packet.get(ihl..) else {
            return;
        };
        if tcp.len() < 20 {
            return;
        }
        let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
        let ack = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
        let off = usize::from(tcp[12] >> 4) * 4;
        let flags = tcp[13];
        let data = tcp.len().saturating_sub(off) as u32;
        // SYN and FIN take one sequence number each (RFC 9293 section 3.4).
        let end = seq
            .wrapping_add(data)
            .wrapping_add(u32::from(flags & 0x02 != 0))
            .wrapping_add(u32::from(flags & 0x01 != 0));
        if flags & 0x04 != 0 {
            return; // a RST ends the connection; it advertises nothing
        }
        if flags & 0x02 != 0 {
            self.ws = tcp.get(20..off).and_then(crate::flow::window_scale);
        }
        // smoltcp's keep-alive (one byte below SND.NXT, RFC 9293 section
        // 3.8.4) does not move the ACK and window it remembers; nor may it
        // move ours (a retransmission of the last byte is skipped as well,
        // which only makes the window edge followed more cautious).
        if data == 1 && self.snd_nxt == Some(end) {
            return;
        }
        if self.snd_nxt.is_none_or_before(end) {
            self.snd_nxt = Some(end);
        }
        if flags & 0x10 != 0 {
            self.acks = self.acks.wrapping_add(1);
            self.ack = Some(ack);
            self.wnd = u16::from_be_bytes([tcp[14], tcp[15]]);
        }
    }
}

trait BeforeExt {
    fn is_none_or_before(&self, v: u32) -> bool;
}

impl BeforeExt for Option<u32> {
    /// `None`, or a sequence number before `v` (modulo 2^32, RFC 9293
    /// section 3.4).
    fn is_none_or_before(&self, v: u32) -> bool {
        self.map_or(true, |cur| (v.wrapping_sub(cur) as i32) > 0)
    }
}

/// One packet in, any number out.
pub(crate) struct OnePacket<'a, E: Egress> {
    pub(crate) rx: Option<&'a [u8]>,
    pub(crate) egress: &'a mut E,
    pub(crate) link: LinkAddr,
    pub(crate) scratch: &'a mut Vec<u8>,
    pub(crate) mtu: usize,
    /// Where the segments sent are recorded (a flow's; `None` for the
    /// answers to segments of no connection).
    pub(crate) sent: Option<&'a mut Sent>,
}

pub(crate) struct Rx<'a>(&'a [u8]);

pub(crate) struct Tx<'a, E: Egress> {
    egress: &'a mut E,
    link: LinkAddr,
    scratch: &'a mut Vec<u8>,
    sent: Option<&'a mut Sent>,
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
            if let Some(sent) = self.sent {
                sent.observe(buf);
            }
            self.egress.commit(self.link, len);
            return r;
        }
        // No room: smoltcp must still build the packet (its state advances
        // as if sent); it is dropped here and retransmitted later.
        self.scratch.clear();
        self.scratch.resize(len, 0);
        let r = f(&mut self.scratch[..]);
        if let Some(sent) = self.sent {
            sent.observe(self.scratch);
        }
        r
    }
}

/// The device's capabilities. Checksums are computed on the way out; on
/// the way in the stack has verified them once already
/// (`SegmentInfo::checksums_ok`, before any segment reaches smoltcp), so
/// smoltcp does not verify them again.
pub(crate) fn capabilities(mtu: usize) -> DeviceCapabilities {
    let mut caps = DeviceCapabilities::default();
    caps.medium = Medium::Ip;
    caps.max_transmission_unit = mtu;
    caps.checksum.ipv4 = Checksum::Tx;
    caps.checksum.tcp = Checksum::Tx;
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
                sent: self.sent.as_deref_mut(),
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
            sent: self.sent.as_deref_mut(),
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        capabilities(self.mtu)
    }
}

/// An [`Egress`] that keeps every packet it is given, in order, each in
/// a `Vec` of its own: two stacks joined in memory (tests, benchmarks,
/// simulations) pass each other's `packets` to `ingress`.
#[derive(Debug, Default)]
pub struct PacketQueue {
    /// The packets sent, oldest first.
    pub packets: Vec<Vec<u8>>,
}

impl Egress for PacketQueue {
    fn buffer(&mut self, _: LinkAddr, len: usize) -> Option<&mut [u8]> {
        self.packets.push(vec![0; len]);
        self.packets.last_mut().map(|p| &mut p[..])
    }
    fn commit(&mut self, _: LinkAddr, _: usize) {}
}

/// An [`Egress`] that keeps nothing (to build the interface).
pub(crate) struct Discard;

impl Egress for Discard {
    fn buffer(&mut self, _: LinkAddr, _: usize) -> Option<&mut [u8]> {
        None
    }
    fn commit(&mut self, _: LinkAddr, _: usize) {}
}
