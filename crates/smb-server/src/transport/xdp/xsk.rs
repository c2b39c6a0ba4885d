//! One AF_XDP socket on one NIC queue, with its own UMEM (kernel
//! `Documentation/networking/af_xdp.rst`): the frames the kernel fills with
//! received packets, the frames the shard sends from, and the four rings
//! (fill, receive, transmit, completion), through the xdpilone crate.
//!
//! Frame ownership (who may touch a frame's bytes) is what every `unsafe`
//! below relies on:
//!
//! - a receive frame belongs to the kernel from the moment it is put on the
//!   fill ring until its descriptor is read from the receive ring; the shard
//!   reads it, then puts it back on the fill ring ([`RxSide::receive`]);
//! - a transmit frame belongs to the shard while it is on the free list
//!   (it writes the packet there), and to the kernel from the moment its
//!   descriptor is committed to the transmit ring until its address comes
//!   back on the completion ring ([`TxSide`]).
//!
//! The two sets are disjoint halves of the UMEM, so a frame never changes
//! sides.

use std::ffi::CString;
use std::io;
use std::num::NonZeroU32;
use std::ptr::NonNull;

use smb_usertcp::{Egress, LinkAddr};
use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig, User};

/// Bytes per UMEM frame: an Ethernet frame of a 1500-byte MTU after the
/// kernel's 256 bytes of XDP headroom fits.
pub(crate) const FRAME_SIZE: u32 = 2048;
/// Frames per half (receive, transmit); also each ring's size. 64 MiB of
/// UMEM per shard in all: in copy mode on veth a sent frame comes back
/// only when the receiver frees its skb, and with 4,096 frames a burst of
/// 2,000 new connections found none free (dropped SYN-ACKs, setups waiting
/// for the client's 1 s SYN retransmission); with 16,384 none was dropped
/// (`scripts/bench-xdp-lab.sh xdp`, 2026-11-30).
const HALF: u32 = 16384;
/// Descriptors taken from a ring at once.
pub(crate) const BATCH: u32 = 64;
const ETH_HLEN: usize = 14;

fn errno(e: xdpilone::Errno, what: &str) -> io::Error {
    let e = io::Error::from_raw_os_error(e.get_raw().abs());
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// An anonymous, page-aligned mapping for the UMEM, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: an anonymous private mapping at an address of the
        // kernel's choosing touches no memory of ours; the result is
        // checked against MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; the fields of
        // `XskPort` that the kernel may use the area through (the socket and
        // its rings) are declared before the mapping and so are closed
        // first.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// The receive half: the fill and receive rings.
pub(crate) struct RxSide {
    rx: RingRx,
    device: DeviceQueue,
    base: NonNull<u8>,
    area: usize,
    descs: Vec<XdpDesc>,
}

/// The transmit half: the transmit and completion rings are driven here,
/// the frames of the transmit half of the UMEM are handed out here.
pub(crate) struct TxSide {
    tx: RingTx,
    base: NonNull<u8>,
    free: Vec<u64>,
    pending: Vec<XdpDesc>,
    mac: LinkAddr,
    /// Packets dropped because no transmit frame was free.
    pub(crate) dropped: u64,
}

/// One queue's socket, UMEM and rings. Field order is drop order: the
/// rings and socket close before the UMEM registration and the mapping go.
pub(crate) struct XskPort {
    pub(crate) rx: RxSide,
    pub(crate) tx: TxSide,
    _user: User,
    _sock: Socket,
    _umem: Umem,
    _map: Mapping,
}

// SAFETY: an `XskPort` is built on the starting thread and then moved, whole,
// into the one shard thread that uses it; none of its pointers (into its own
// mapping) or descriptors is shared with anything outside it, so moving it
// between threads is moving sole ownership.
unsafe impl Send for XskPort {}

impl std::fmt::Debug for XskPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskPort")
            .field("tx_free", &self.tx.free.len())
            .finish_non_exhaustive()
    }
}

impl XskPort {
    /// Open an AF_XDP socket on `ifname` queue `queue` in copy mode (the
    /// mode every driver offers; veth has no zero-copy) with need-wakeup.
    pub(crate) fn open(ifname: &str, queue: u32, mac: LinkAddr) -> io::Result<XskPort> {
        let len = (2 * HALF * FRAME_SIZE) as usize;
        let map = Mapping::new(len)?;
        let cfg = UmemConfig {
            fill_size: HALF,
            complete_size: HALF,
            frame_size: FRAME_SIZE,
            headroom: 0,
            flags: 0,
        };
        let area = NonNull::slice_from_raw_parts(map.ptr, len);
        // SAFETY: `area` is our page-aligned mapping of `len` bytes, which
        // `XskPort` keeps alive (it is dropped after the UMEM and socket).
        let umem = unsafe { Umem::new(cfg, area) }.map_err(|e| errno(e, "UMEM registration"))?;
        let name = CString::new(ifname)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"))?;
        let mut info = IfInfo::invalid();
        info.from_name(&name)
            .map_err(|e| errno(e, &format!("interface {ifname}")))?;
        info.set_queue(queue);
        let sock = Socket::with_shared(&info, &umem).map_err(|e| errno(e, "AF_XDP socket"))?;
        let mut device = umem
            .fq_cq(&sock)
            .map_err(|e| errno(e, "fill/completion rings"))?;
        let user = umem
            .rx_tx(
                &sock,
                &SocketConfig {
                    rx_size: NonZeroU32::new(HALF),
                    tx_size: NonZeroU32::new(HALF),
                    bind_flags: SocketConfig::XDP_BIND_COPY | SocketConfig::XDP_BIND_NEED_WAKEUP,
                },
            )
            .map_err(|e| errno(e, "rx/tx rings"))?;
        let rx = user.map_rx().map_err(|e| errno(e, "map the rx ring"))?;
        let tx = user.map_tx().map_err(|e| errno(e, "map the tx ring"))?;
        umem.bind(&user)
            .map_err(|e| errno(e, &format!("bind to {ifname} queue {queue}")))?;
        // Copy mode sends an skb per frame, charged to this socket's send
        // buffer until the receiver frees it: room for every frame.
        let sndbuf: libc::c_int = (2 * HALF * FRAME_SIZE) as libc::c_int;
        // SAFETY: a pointer to a live c_int and its exact size.
        let rc = unsafe {
            libc::setsockopt(
                rx.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUFFORCE,
                (&sndbuf as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::debug!(error = %io::Error::last_os_error(), "SO_SNDBUFFORCE on the AF_XDP socket");
        }
        // The first half receives: all of it goes on the fill ring.
        {
            let mut fill = device.fill(HALF);
            let n = fill.insert((0..HALF).map(|i| u64::from(i * FRAME_SIZE)));
            fill.commit();
            if n != HALF {
                return Err(io::Error::other(
                    "the fill ring took fewer frames than it has",
                ));
            }
        }
        let free = (HALF..2 * HALF)
            .map(|i| u64::from(i * FRAME_SIZE))
            .collect();
        Ok(XskPort {
            rx: RxSide {
                rx,
                device,
                base: map.ptr,
                area: len,
                descs: Vec::with_capacity(BATCH as usize),
            },
            tx: TxSide {
                tx,
                base: map.ptr,
                free,
                pending: Vec::new(),
                mac,
                dropped: 0,
            },
            _user: user,
            _sock: sock,
            _umem: umem,
            _map: map,
        })
    }

    /// The kernel's counters of this socket (drops, full rings), as one
    /// line for the log.
    pub(crate) fn statistics(&self) -> String {
        match self._user.statistics_v2() {
            Ok(s) => format!(
                "rx_dropped={} rx_invalid={} tx_invalid={} rx_ring_full={} fill_ring_empty={} tx_ring_empty={} tx_dropped_here={} tx_frames_free={}/{}",
                s.rx_dropped,
                s.rx_invalid_descs,
                s.tx_invalid_descs,
                s.rx_ring_full,
                s.rx_fill_ring_empty_descs,
                s.tx_ring_empty_descs,
                self.tx.dropped,
                self.tx.free.len(),
                HALF
            ),
            Err(e) => format!("no statistics: {e}"),
        }
    }

    /// The kernel's counters of this socket (getsockopt `XDP_STATISTICS`,
    /// `struct xdp_statistics` of linux/if_xdp.h), with the transmit
    /// frames this side dropped for want of room.
    pub(crate) fn counters(&self) -> std::io::Result<XskCounters> {
        let s = self
            ._user
            .statistics_v2()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(XskCounters {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
            tx_dropped_here: self.tx.dropped,
        })
    }

    /// The socket's descriptor (for the XSKMAP and for waiting).
    pub(crate) fn fd(&self) -> i32 {
        self.rx.rx.as_raw_fd()
    }
}

impl RxSide {
    /// Packets waiting in the receive ring (advisory).
    pub(crate) fn available(&self) -> u32 {
        self.rx.available()
    }

    /// Take up to [`BATCH`] received frames off the receive ring; they are
    /// the shard's until [`RxSide::refill`]. Returns how many.
    pub(crate) fn take_batch(&mut self) -> u32 {
        self.descs.clear();
        let mut r = self.rx.receive(BATCH);
        while let Some(d) = r.read() {
            self.descs.push(d);
        }
        r.release();
        self.descs.len() as u32
    }

    /// The frames of the batch, one Ethernet frame each.
    pub(crate) fn frames(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.descs.iter().filter_map(move |d| {
            let start = d.addr as usize;
            let end = start.saturating_add(d.len as usize);
            // A descriptor outside our receive half (never from a sane
            // kernel) is skipped, not trusted.
            if end > self.area / 2 || d.len as usize > FRAME_SIZE as usize {
                return None;
            }
            // SAFETY: the frame [start, end) lies in the receive half of
            // our live mapping (checked above), and the kernel handed it to
            // us through the receive ring: it writes it again only after
            // `refill` put it back on the fill ring, which takes `&mut self`
            // and so cannot run while this shared borrow (and the slice)
            // lives.
            Some(unsafe {
                std::slice::from_raw_parts(self.base.as_ptr().add(start), d.len as usize)
            })
        })
    }

    /// Give the batch's frames back to the kernel (the fill ring).
    pub(crate) fn refill(&mut self) {
        let n = self.descs.len() as u32;
        if n > 0 {
            let mut fill = self.device.fill(n);
            fill.insert(
                self.descs
                    .iter()
                    .map(|d| d.addr & !u64::from(FRAME_SIZE - 1)),
            );
            fill.commit();
            self.descs.clear();
        }
        if self.device.needs_wakeup() {
            self.device.wake();
        }
    }

    /// Take back transmit frames the kernel is done with.
    pub(crate) fn complete(&mut self, tx: &mut TxSide) {
        let mut c = self.device.complete(HALF);
        while let Some(addr) = c.read() {
            tx.free.push(addr & !u64::from(FRAME_SIZE - 1));
        }
        c.release();
    }
}

impl TxSide {
    /// Transmit frames free now.
    pub(crate) fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Packets not yet sent: descriptors on the transmit ring the kernel
    /// has not taken, and built packets waiting for room on the ring.
    pub(crate) fn unsent(&self) -> u32 {
        self.tx.pending() + self.pending.len() as u32
    }

    /// Put the packets built since the last flush on the transmit ring and
    /// kick the kernel (copy mode sends from `sendto`, at most 32 frames a
    /// call: the caller repeats while [`TxSide::unsent`] is not zero).
    pub(crate) fn flush(&mut self) {
        if !self.pending.is_empty() {
            let mut w = self.tx.transmit(self.pending.len() as u32);
            let n = w.insert(self.pending.iter().copied()) as usize;
            w.commit();
            // Descriptors the ring had no room for stay pending, in order,
            // for the next flush: they are built packets (a FIN, an ACK),
            // and dropping them costs their connection a retransmission
            // timeout (what made reaping 200,000 connections up to 0.8 s
            // late). They hold frames taken from `free`, so what waits is
            // bounded by the transmit half of the UMEM.
            self.pending.drain(..n);
        }
        if self.tx.needs_wakeup() || self.tx.pending() > 0 {
            self.tx.wake();
        }
    }
}

impl Egress for TxSide {
    fn buffer(&mut self, link: LinkAddr, len: usize) -> Option<&mut [u8]> {
        if ETH_HLEN + len > FRAME_SIZE as usize {
            self.dropped += 1;
            return None;
        }
        let Some(&off) = self.free.last() else {
            self.dropped += 1;
            return None;
        };
        // SAFETY: `off` is a frame of the transmit half on the free list,
        // so the kernel does not use it and no other slice of it exists;
        // the slice lives only as long as this borrow of `self`.
        let frame = unsafe {
            std::slice::from_raw_parts_mut(self.base.as_ptr().add(off as usize), ETH_HLEN + len)
        };
        frame[0..6].copy_from_slice(&link);
        frame[6..12].copy_from_slice(&self.mac);
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        Some(&mut frame[ETH_HLEN..])
    }

    fn has_room(&self) -> bool {
        !self.free.is_empty()
    }

    fn commit(&mut self, _link: LinkAddr, len: usize) {
        if let Some(off) = self.free.pop() {
            self.pending.push(XdpDesc {
                addr: off,
                len: (ETH_HLEN + len) as u32,
                options: 0,
            });
        }
        // Keep the ring fed in big bursts, not one descriptor at a time.
        if self.pending.len() >= BATCH as usize {
            self.flush();
        }
    }
}

/// The IPv4 packet inside an Ethernet frame, and the sender's address;
/// `None` for anything but untagged IPv4.
pub(crate) fn ipv4_payload(frame: &[u8]) -> Option<(LinkAddr, &[u8])> {
    if frame.len() < ETH_HLEN || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let mut src = [0u8; 6];
    src.copy_from_slice(&frame[6..12]);
    Some((src, &frame[ETH_HLEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_untagged_ipv4_frames_carry_a_payload() {
        let mut f = vec![0u8; 60];
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        f[12] = 0x08;
        let (src, p) = ipv4_payload(&f).unwrap();
        assert_eq!(src, [2, 0, 0, 0, 0, 9]);
        assert_eq!(p.len(), 46);
        f[13] = 0x06; // ARP
        assert!(ipv4_payload(&f).is_none());
        assert!(ipv4_payload(&f[..13]).is_none());
    }
}

/// An AF_XDP socket's drop counters: the kernel's (`struct
/// xdp_statistics`, linux/if_xdp.h; the last three since Linux 5.9) and
/// the transmit frames dropped here when no frame was free.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XskCounters {
    /// Frames the kernel dropped for reasons other than invalid
    /// descriptors (e.g. the receive ring full, in older kernels).
    pub rx_dropped: u64,
    /// Receive descriptors the kernel found invalid.
    pub rx_invalid_descs: u64,
    /// Transmit descriptors the kernel found invalid.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the receive ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame came.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the transmit ring empty when kicked.
    pub tx_ring_empty_descs: u64,
    /// Frames this side could not send for want of a free UMEM frame.
    pub tx_dropped_here: u64,
}
