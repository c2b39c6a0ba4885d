//! The io_uring transport's receive buffers: a provided buffer ring
//! (IORING_REGISTER_PBUF_RING) shared by every connection of a shard, and
//! the bookkeeping that maps a receive completion to the bytes it covers.
//!
//! Two kernel features change which bytes a completion covers, and the
//! ledger ([`BufLedger`]) handles both, alone or together:
//!
//! - **Incremental consumption** (`IOU_PBUF_RING_INC`, Linux 6.12): a
//!   receive takes only the bytes it needs from the buffer at the ring's
//!   head and leaves the rest for the next receive (of any connection), so
//!   a 100-byte request no longer uses up a 16 KiB buffer. A completion
//!   flagged `IORING_CQE_F_BUF_MORE` means the kernel will go on filling
//!   that buffer; without the flag the buffer is ours again.
//! - **Bundles** (`IORING_RECVSEND_BUNDLE`, Linux 6.10): one completion may
//!   cover several buffers, consecutive in ring order from the one it
//!   names, so a large WRITE arrives in one completion instead of one per
//!   buffer.
//!
//! The ledger mirrors the ring's order (which buffer sits at which
//! position) and how much of each buffer was handed out; it never guesses
//! the kernel's head: every completion names its first buffer, and a
//! completion that does not fit the mirror is refused rather than read.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{types, IoUring};

/// `IOU_PBUF_RING_INC` (include/uapi/linux/io_uring.h; the `io-uring`
/// crate does not re-export it).
const IOU_PBUF_RING_INC: u16 = 2;

/// One contiguous piece of a receive completion: `len` bytes of buffer
/// `bid` from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub bid: u16,
    pub offset: u32,
    pub len: u32,
    /// The kernel is done with the buffer: give it back once the bytes were
    /// used.
    pub done: bool,
}

/// A completion that does not fit the buffers as the ledger knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LedgerMismatch;

/// Which buffer sits where in the ring, and how much of it was handed out.
/// No `unsafe`: this is the part of the buffer ring that can be tested
/// without a kernel.
#[derive(Debug)]
pub(crate) struct BufLedger {
    count: u16,
    size: u32,
    /// Buffer id at each ring position (position = counter mod count).
    at: Vec<u16>,
    /// The position counter each buffer was last staged at.
    pos: Vec<u16>,
    /// Bytes of each buffer already handed out since it was staged.
    used: Vec<u32>,
    /// Whether the buffer is in the ring (staged and not yet done).
    staged: Vec<bool>,
    /// Next position to stage at.
    tail: u16,
}

impl BufLedger {
    /// A ledger for `count` buffers (a power of two) of `size` bytes, none
    /// staged yet.
    pub(crate) fn new(count: u16, size: u32) -> BufLedger {
        assert!(count.is_power_of_two() && size > 0);
        let n = usize::from(count);
        BufLedger {
            count,
            size,
            at: vec![0; n],
            pos: vec![0; n],
            used: vec![0; n],
            staged: vec![false; n],
            tail: 0,
        }
    }

    /// Put buffer `bid` at the next ring position, whole; the position
    /// (mod `count`) where its entry goes.
    pub(crate) fn stage(&mut self, bid: u16) -> usize {
        assert!(bid < self.count && !self.staged[usize::from(bid)]);
        let idx = usize::from(self.tail & (self.count - 1));
        self.at[idx] = bid;
        self.pos[usize::from(bid)] = self.tail;
        self.used[usize::from(bid)] = 0;
        self.staged[usize::from(bid)] = true;
        self.tail = self.tail.wrapping_add(1);
        idx
    }

    /// The tail counter the kernel is to see.
    pub(crate) fn tail(&self) -> u16 {
        self.tail
    }

    /// Split a completion of `n` bytes (n > 0) that starts in buffer
    /// `first` into pieces, appended to `out`. `more` is the completion's
    /// `IORING_CQE_F_BUF_MORE` flag. On a mismatch nothing is appended and
    /// nothing changes.
    pub(crate) fn pieces(
        &mut self,
        first: u16,
        n: u32,
        more: bool,
        out: &mut Vec<Piece>,
    ) -> Result<(), LedgerMismatch> {
        if first >= self.count || !self.staged[usize::from(first)] || n == 0 {
            return Err(LedgerMismatch);
        }
        let start = out.len();
        let mut p = self.pos[usize::from(first)];
        let mut left = n;
        loop {
            let bid = self.at[usize::from(p & (self.count - 1))];
            let b = usize::from(bid);
            let fits = self.staged[b] && self.pos[b] == p && self.used[b] < self.size;
            if !fits || (p != self.pos[usize::from(first)] && self.used[b] != 0) {
                // Not in the ring where the mirror has it, or a later
                // buffer of a bundle already partly used: undo.
                self.undo(&out[start..]);
                out.truncate(start);
                return Err(LedgerMismatch);
            }
            let offset = self.used[b];
            let take = left.min(self.size - offset);
            self.used[b] += take;
            left -= take;
            let last = left == 0;
            let done = self.used[b] == self.size || (last && !more);
            out.push(Piece {
                bid,
                offset,
                len: take,
                done,
            });
            if last {
                break;
            }
            p = p.wrapping_add(1);
            if p == self.tail {
                self.undo(&out[start..]);
                out.truncate(start);
                return Err(LedgerMismatch);
            }
        }
        for piece in &out[start..] {
            if piece.done {
                self.staged[usize::from(piece.bid)] = false;
            }
        }
        Ok(())
    }

    fn undo(&mut self, pieces: &[Piece]) {
        for piece in pieces {
            self.used[usize::from(piece.bid)] -= piece.len;
        }
    }
}

/// A provided buffer ring: `count` buffers of `size` bytes, handed to the
/// kernel through a ring of entries that the kernel consumes and this side
/// refills.
pub(crate) struct BufRing {
    entries: *mut types::BufRingEntry,
    entries_layout: Layout,
    mem: *mut u8,
    mem_layout: Layout,
    size: usize,
    ledger: BufLedger,
    /// Registered with incremental consumption.
    incremental: bool,
}

impl BufRing {
    /// Allocate the buffers and the ring and stage every buffer.
    pub(crate) fn new(count: u16, size: usize) -> io::Result<BufRing> {
        assert!(count.is_power_of_two());
        let size32 = u32::try_from(size).map_err(io::Error::other)?;
        let entries_layout = Layout::from_size_align(
            usize::from(count) * std::mem::size_of::<types::BufRingEntry>(),
            4096,
        )
        .map_err(io::Error::other)?;
        let mem_layout =
            Layout::from_size_align(usize::from(count) * size, 4096).map_err(io::Error::other)?;
        // SAFETY: both layouts have non-zero sizes (count and size are
        // positive); a null return is checked below.
        let (entries, mem) = unsafe { (alloc_zeroed(entries_layout), alloc_zeroed(mem_layout)) };
        if entries.is_null() || mem.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut r = BufRing {
            entries: entries.cast(),
            entries_layout,
            mem,
            mem_layout,
            size,
            ledger: BufLedger::new(count, size32),
            incremental: false,
        };
        for bid in 0..count {
            r.stage(bid);
        }
        r.publish();
        Ok(r)
    }

    /// Register the ring with `ring` as buffer group `bgid`, with
    /// incremental consumption where the kernel has it.
    pub(crate) fn register(&mut self, ring: &IoUring, bgid: u16) -> io::Result<()> {
        let inc = IOU_PBUF_RING_INC;
        // SAFETY: the entries array is page-aligned, `count` entries long,
        // and lives as long as `self`; the shard drops its ring (which
        // unregisters every buffer ring) before its BufRing (field order).
        let r = unsafe {
            ring.submitter().register_buf_ring_with_flags(
                self.entries as u64,
                self.ledger.count,
                bgid,
                inc,
            )
        };
        match r {
            Ok(()) => {
                self.incremental = true;
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                // An older kernel: whole buffers per receive.
                // SAFETY: as above.
                unsafe {
                    ring.submitter().register_buf_ring_with_flags(
                        self.entries as u64,
                        self.ledger.count,
                        bgid,
                        0,
                    )
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Whether receives consume buffers incrementally.
    pub(crate) fn incremental(&self) -> bool {
        self.incremental
    }

    /// Write buffer `bid` into the next free entry (not yet visible).
    fn stage(&mut self, bid: u16) {
        let idx = self.ledger.stage(bid);
        // SAFETY: idx < count, so the entry is inside the allocation; the
        // kernel reads only entries between its head and the published
        // tail, and this one is past the tail until `publish`.
        let e = unsafe { &mut *self.entries.add(idx) };
        // SAFETY: bid < count (checked by the ledger), so the buffer lies
        // inside `mem`.
        e.set_addr(unsafe { self.mem.add(usize::from(bid) * self.size) } as u64);
        e.set_len(self.size as u32);
        e.set_bid(bid);
    }

    /// Make staged entries visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail shares the first entry's `resv` field, which is
        // 2-aligned and inside the allocation; the kernel reads it
        // concurrently, hence the atomic release store.
        let tail = unsafe { &*(types::BufRingEntry::tail(self.entries) as *const AtomicU16) };
        tail.store(self.ledger.tail(), Ordering::Release);
    }

    /// See [`BufLedger::pieces`].
    pub(crate) fn pieces(
        &mut self,
        first: u16,
        n: u32,
        more: bool,
        out: &mut Vec<Piece>,
    ) -> Result<(), LedgerMismatch> {
        self.ledger.pieces(first, n, more, out)
    }

    /// The bytes of `piece`, which a completion handed to us, lent mutably:
    /// the engine decrypts a TRANSFORM frame where it lies instead of
    /// copying it (`Engine::handle_frame_in_place`).
    pub(crate) fn data_mut(&mut self, piece: &Piece) -> &mut [u8] {
        let (off, len) = (piece.offset as usize, piece.len as usize);
        assert!(piece.bid < self.ledger.count && off + len <= self.size);
        // SAFETY: the kernel filled these bytes of buffer `bid` and, having
        // posted the completion, no longer writes them (with incremental
        // consumption it writes only past them, and it reads none of them);
        // the buffer is not given back (`give_back`) before this borrow
        // ends, since that needs `&mut self`, which this borrow holds; for
        // the same reason no other slice of the ring is alive meanwhile.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.mem.add(usize::from(piece.bid) * self.size + off),
                len,
            )
        }
    }

    /// Give the buffers of the `done` pieces back to the kernel.
    pub(crate) fn give_back(&mut self, pieces: &[Piece]) {
        let mut any = false;
        for p in pieces.iter().filter(|p| p.done) {
            self.stage(p.bid);
            any = true;
        }
        if any {
            self.publish();
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: both pointers came from alloc_zeroed with these layouts,
        // and the ring that used them was dropped before (field order in
        // the transport's `Ring`), so the kernel no longer touches them.
        unsafe {
            dealloc(self.entries.cast(), self.entries_layout);
            dealloc(self.mem, self.mem_layout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> BufLedger {
        let mut l = BufLedger::new(4, 100);
        for bid in 0..4 {
            l.stage(bid);
        }
        l
    }

    fn piece(bid: u16, offset: u32, len: u32, done: bool) -> Piece {
        Piece {
            bid,
            offset,
            len,
            done,
        }
    }

    #[test]
    fn whole_buffers_one_per_completion() {
        let mut l = ledger();
        let mut out = Vec::new();
        l.pieces(0, 60, false, &mut out).unwrap();
        assert_eq!(out, [piece(0, 0, 60, true)]);
        // Buffer 0 is ours again: a completion naming it is refused until
        // it is staged anew.
        out.clear();
        assert_eq!(l.pieces(0, 10, false, &mut out), Err(LedgerMismatch));
        l.stage(0);
        l.pieces(0, 10, false, &mut out).unwrap();
        assert_eq!(out, [piece(0, 0, 10, true)]);
    }

    #[test]
    fn incremental_receives_share_a_buffer() {
        let mut l = ledger();
        let mut out = Vec::new();
        l.pieces(0, 30, true, &mut out).unwrap();
        l.pieces(0, 50, true, &mut out).unwrap();
        // The last 20 bytes: the buffer is used up.
        l.pieces(0, 20, false, &mut out).unwrap();
        assert_eq!(
            out,
            [
                piece(0, 0, 30, false),
                piece(0, 30, 50, false),
                piece(0, 80, 20, true)
            ]
        );
    }

    #[test]
    fn a_bundle_spans_consecutive_buffers_in_ring_order() {
        let mut l = BufLedger::new(4, 100);
        // Ring order 2, 0, 3, 1.
        for bid in [2, 0, 3, 1] {
            l.stage(bid);
        }
        let mut out = Vec::new();
        l.pieces(2, 250, false, &mut out).unwrap();
        assert_eq!(
            out,
            [
                piece(2, 0, 100, true),
                piece(0, 0, 100, true),
                piece(3, 0, 50, true)
            ]
        );
    }

    #[test]
    fn an_incremental_bundle_starts_where_the_last_receive_stopped() {
        let mut l = ledger();
        let mut out = Vec::new();
        l.pieces(0, 70, true, &mut out).unwrap();
        out.clear();
        l.pieces(0, 150, true, &mut out).unwrap();
        assert_eq!(
            out,
            [
                piece(0, 70, 30, true),
                piece(1, 0, 100, true),
                piece(2, 0, 20, false)
            ]
        );
        out.clear();
        l.pieces(2, 80, false, &mut out).unwrap();
        assert_eq!(out, [piece(2, 20, 80, true)]);
    }

    #[test]
    fn completions_that_do_not_fit_are_refused_and_change_nothing() {
        let mut l = ledger();
        let mut out = Vec::new();
        // Unknown buffer, empty completion, more bytes than are staged.
        assert_eq!(l.pieces(9, 10, false, &mut out), Err(LedgerMismatch));
        assert_eq!(l.pieces(1, 0, false, &mut out), Err(LedgerMismatch));
        assert_eq!(l.pieces(1, 301, false, &mut out), Err(LedgerMismatch));
        assert!(out.is_empty());
        // The failed attempts left buffer 1 untouched.
        l.pieces(1, 300, false, &mut out).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], piece(1, 0, 100, true));
    }

    #[test]
    fn buffer_ring_entries_point_into_its_memory() {
        let mut r = BufRing::new(8, 128).expect("allocate");
        for bid in 0..8u16 {
            let mut out = Vec::new();
            r.pieces(bid, 128, false, &mut out).unwrap();
            let d = r.data_mut(&out[0]);
            let (at, len) = (d.as_ptr() as usize, d.len());
            assert_eq!(at, r.mem as usize + usize::from(bid) * 128);
            assert_eq!(len, 128);
        }
    }
}
