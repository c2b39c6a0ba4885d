//! The 4-tuple that names a TCP connection (RFC 9293 section 3.3.1), read
//! from an IPv4 packet (RFC 791 section 3.1) without trusting any of its
//! lengths.

use std::net::{Ipv4Addr, SocketAddrV4};

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
}

impl SegmentInfo {
    /// Read the 4-tuple of an IPv4 TCP segment. `None` for anything else: not
    /// IPv4, not TCP, a fragment (smoltcp is built without reassembly), or
    /// lengths that do not fit the bytes given. Checksums are smoltcp's to
    /// check.
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
        let tcp = &packet[ihl..total];
        if tcp.len() < 20 {
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
        })
    }
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
