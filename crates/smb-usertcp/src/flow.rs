//! The 4-tuple that names a TCP connection (RFC 9293 section 3.3.1), read
//! from an IPv4 packet (RFC 791 section 3.1) without trusting any of its
//! lengths.

use std::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::wire::{IpAddress, Ipv4Packet, TcpPacket};

/// A connection's 4-tuple, from the point of view of this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The peer's address and port.
    pub remote: SocketAddrV4,
    /// This host's address and port.
    pub local: SocketAddrV4,
}

/// What the stack needs to know of a segment before handing it to smoltcp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The connection it belongs to (as seen by the receiver).
    pub key: FlowKey,
    /// SYN set, ACK and RST clear: the only segment that may open a
    /// connection (RFC 9293 section 3.10.7.2).
    pub opens: bool,
    /// SEG.SEQ.
    pub seq: u32,
    /// SEG.ACK (meaningful with ACK set).
    pub ack_field: u32,
    /// The control bits (RFC 9293 section 3.1: FIN 0x01, SYN 0x02, RST
    /// 0x04, PSH 0x08, ACK 0x10, URG 0x20, ECE 0x40, CWR 0x80).
    pub flags: u8,
    /// Where the TCP header starts (the IPv4 header's length).
    pub tcp_start: usize,
    /// Where the segment ends (the IPv4 total length; bytes past it are
    /// link padding).
    pub end: usize,
    /// The TCP header's length (the data offset in bytes).
    pub header_len: usize,
}

/// An address no segment may come from (RFC 1122 section 3.2.1.3: "this
/// network" 0/8, loopback 127/8; RFC 1112 section 4: multicast 224/4; RFC
/// 1112 section 4 / RFC 919: the reserved 240/4 with the limited broadcast
/// 255.255.255.255). A SYN from one must not open a connection (RFC 1122
/// section 4.2.3.10) and nothing is answered to one (a RST to a broadcast
/// address would reach every host).
fn bad_source(a: Ipv4Addr) -> bool {
    let o = a.octets()[0];
    o == 0 || o == 127 || o >= 224
}

impl SegmentInfo {
    /// Read the 4-tuple of an IPv4 TCP segment. `None` for anything else,
    /// which the stack drops without an answer: not IPv4, not TCP, a
    /// fragment (MF set or an offset, RFC 791 section 3.2; smoltcp is built
    /// without reassembly and SMB clients set DF), an IHL below 5 or past
    /// the bytes or the total length, a total length past the bytes (RFC 791
    /// section 3.1), a TCP data offset below 5 or past the segment (options
    /// past the header, RFC 9293 section 3.1), a source address no host may
    /// use (broadcast, multicast, 0/8, loopback, 240/4; RFC 1122 section
    /// 3.2.1.3). Checksums are checked apart ([`SegmentInfo::checksums_ok`]).
    pub fn parse(packet: &[u8]) -> Option<SegmentInfo> {
        let first = *packet.first()?;
        if first >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(first & 0x0f) * 4;
        if ihl < 20 || packet.len() < ihl {
            return None;
        }
        let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
        if total < ihl || total > packet.len() {
            return None;
        }
        // More-fragments flag or a fragment offset: a fragment.
        if u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff != 0 {
            return None;
        }
        if packet[9] != 6 {
            return None;
        }
        let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
        let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        if bad_source(src) {
            return None;
        }
        let tcp = &packet[ihl..total];
        if tcp.len() < 20 {
            return None;
        }
        let off = usize::from(tcp[12] >> 4) * 4;
        if off < 20 || off > tcp.len() {
            return None;
        }
        let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
        let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
        let flags = tcp[13];
        const SYN: u8 = 0x02;
        const RST: u8 = 0x04;
        const ACK: u8 = 0x10;
        Some(SegmentInfo {
            key: FlowKey {
                remote: SocketAddrV4::new(src, sport),
                local: SocketAddrV4::new(dst, dport),
            },
            opens: flags & (SYN | RST | ACK) == SYN,
            seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
            ack_field: u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]),
            flags,
            tcp_start: ihl,
            end: total,
            header_len: off,
        })
    }

    /// The IPv4 header checksum (RFC 791 section 3.1) and the TCP checksum
    /// over the pseudo-header and the segment (RFC 9293 section 3.1) are
    /// right. `packet` is the one this was parsed from.
    pub fn checksums_ok(&self, packet: &[u8]) -> bool {
        let (Some(ip), Some(tcp)) = (packet.get(..self.end), packet.get(self.tcp_start..self.end))
        else {
            return false;
        };
        let src = IpAddress::Ipv4(*self.key.remote.ip());
        let dst = IpAddress::Ipv4(*self.key.local.ip());
        Ipv4Packet::new_unchecked(ip).verify_checksum()
            && TcpPacket::new_unchecked(tcp).verify_checksum(&src, &dst)
    }

    /// Bytes of data the segment carries.
    pub fn data_len(&self) -> usize {
        self.end - self.tcp_start - self.header_len
    }

    /// The window scale option (RFC 7323 section 2.2) the segment carries,
    /// if any; `packet` is the one this was parsed from.
    pub fn window_scale(&self, packet: &[u8]) -> Option<u8> {
        let opts = packet.get(self.tcp_start + 20..self.tcp_start + self.header_len)?;
        window_scale(opts)
    }

    /// The SYN options the segment carries; `packet` is the one this was
    /// parsed from.
    pub(crate) fn syn_options(&self, packet: &[u8]) -> SynOptions {
        packet
            .get(self.tcp_start + 20..self.tcp_start + self.header_len)
            .map(syn_options)
            .unwrap_or_default()
    }

    /// SEG.WND as carried (unscaled).
    pub(crate) fn window_field(&self, packet: &[u8]) -> u16 {
        let w = self.tcp_start + 14;
        packet
            .get(w..w + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// SEG.ACK.
    pub fn ack(&self) -> u32 {
        self.ack_field
    }

    /// The segment carries RST.
    pub fn rst(&self) -> bool {
        self.flags & 0x04 != 0
    }

    /// The segment carries SYN.
    pub fn syn(&self) -> bool {
        self.flags & 0x02 != 0
    }

    /// The segment carries FIN.
    pub fn fin(&self) -> bool {
        self.flags & 0x01 != 0
    }
}

/// What a SYN offered (RFC 9293 section 3.2 / 3.7.1, RFC 7323 section
/// 2, RFC 2018 section 2): kept by a flow that may be parked, to replay
/// its handshake when it is restored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SynOptions {
    /// Maximum segment size (kind 2); `None` when absent.
    pub(crate) mss: Option<u16>,
    /// Window scale shift (kind 3); `None` when absent.
    pub(crate) ws: Option<u8>,
    /// SACK permitted (kind 4).
    pub(crate) sack: bool,
}

/// The options of a SYN among TCP options (RFC 9293 section 3.2); an
/// option of a bad length ends the walk.
pub(crate) fn syn_options(mut opts: &[u8]) -> SynOptions {
    let mut o = SynOptions::default();
    while let Some((&kind, rest)) = opts.split_first() {
        match kind {
            0 => break,
            1 => opts = rest,
            _ => {
                let Some(&len) = rest.first() else {
                    break;
                };
                let len = usize::from(len);
                if len < 2 || len > opts.len() {
                    break;
                }
                match (kind, len) {
                    (2, 4) => o.mss = Some(u16::from_be_bytes([opts[2], opts[3]])),
                    (3, 3) => o.ws = Some(opts[2]),
                    (4, 2) => o.sack = true,
                    _ => {}
                }
                opts = &opts[len..];
            }
        }
    }
    o
}

/// The shift of a window scale option (kind 3, length 3; RFC 7323
/// section 2.2) among TCP options (RFC 9293 section 3.2), if any.
pub(crate) fn window_scale(mut opts: &[u8]) -> Option<u8> {
    while let Some((&kind, rest)) = opts.split_first() {
        match kind {
            0 => return None,
            1 => opts = rest,
            _ => {
                let len = usize::from(*rest.first()?);
                if len < 2 || len > opts.len() {
                    return None;
                }
                if kind == 3 && len == 3 {
                    return Some(opts[2]);
                }
                opts = &opts[len..];
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn() -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        p[9] = 6;
        p[12..16].copy_from_slice(&[198, 18, 1, 1]);
        p[16..20].copy_from_slice(&[198, 18, 0, 1]);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&445u16.to_be_bytes());
        p[32] = 0x50;
        p[33] = 0x02;
        p
    }

    #[test]
    fn reads_the_four_tuple_of_a_syn() {
        let s = SegmentInfo::parse(&syn()).unwrap();
        assert_eq!(s.key.remote, "198.18.1.1:40000".parse().unwrap());
        assert_eq!(s.key.local, "198.18.0.1:445".parse().unwrap());
        assert!(s.opens);
        let mut synack = syn();
        synack[33] = 0x12;
        assert!(!SegmentInfo::parse(&synack).unwrap().opens);
    }

    #[test]
    fn every_malformed_packet_is_refused_without_panicking() {
        let good = syn();
        // Every truncation.
        for n in 0..good.len() {
            assert_eq!(SegmentInfo::parse(&good[..n]), None, "length {n}");
        }
        let bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut p = good.clone();
            f(&mut p);
            SegmentInfo::parse(&p)
        };
        assert_eq!(bad(&|p| p[0] = 0x65), None, "IPv6 version");
        assert_eq!(bad(&|p| p[0] = 0x44), None, "IHL below 5");
        assert_eq!(bad(&|p| p[0] = 0x4f), None, "IHL past the packet");
        assert_eq!(
            bad(&|p| p[2..4].copy_from_slice(&400u16.to_be_bytes())),
            None
        );
        assert_eq!(
            bad(&|p| p[2..4].copy_from_slice(&30u16.to_be_bytes())),
            None
        );
        assert_eq!(bad(&|p| p[9] = 17), None, "UDP");
        assert_eq!(bad(&|p| p[6] = 0x20), None, "more fragments");
        assert_eq!(bad(&|p| p[7] = 1), None, "fragment offset");
        // Every single byte value anywhere: no panic.
        for i in 0..good.len() {
            for v in [0u8, 1, 0x0f, 0x45, 0x4f, 0xff] {
                let _ = bad(&|p| p[i] = v);
            }
        }
    }
}
