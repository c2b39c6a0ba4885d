//! Per-connection output: the bytes a connection caused wait in that
//! connection's own queue until the runtime hands them to that connection's
//! socket (the `poll_transmit` idea of quinn-proto's `Connection`).
//!
//! There is no buffer shared between connections, so nothing one connection
//! produced can ever be drained into another's stream, whatever happens to
//! the connection that produced it (a later frame of the same read batch
//! failing, an admin disconnect, a reap): its queue goes with it.
//!
//! Memory: a connection holds a buffer only while it has unsent output. An
//! empty queue gives its buffer back to a small per-engine (per-shard) pool,
//! so the steady state allocates nothing and an idle connection holds no
//! buffer at all. See ARCHITECTURE.md, "Output belongs to its connection".

/// Buffers larger than this are not kept in the pool (a 1 MiB READ
/// response should not pin 1 MiB forever).
const POOL_MAX_CAPACITY: usize = 64 * 1024;
/// Buffers kept for reuse per engine.
const POOL_MAX_BUFFERS: usize = 256;
/// Sent bytes at the head of a queue that is still being written are
/// dropped once they pass this size.
const COMPACT_AT: usize = 64 * 1024;

/// One connection's unsent output.
#[derive(Debug, Default)]
pub(crate) struct TxQueue {
    /// Framed responses; `buf[sent..]` is still to be written.
    buf: Vec<u8>,
    /// How much of `buf` the runtime has written.
    sent: usize,
}

impl TxQueue {
    /// Bytes waiting to be written.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.sent..]
    }

    /// Number of bytes waiting to be written.
    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Take the buffer to append to (from the pool when this queue holds
    /// none); give it back with [`TxQueue::put`].
    pub(crate) fn take(&mut self, pool: &mut BufferPool) -> Vec<u8> {
        if self.buf.capacity() == 0 {
            pool.get()
        } else {
            std::mem::take(&mut self.buf)
        }
    }

    /// Return the buffer taken with [`TxQueue::take`], now possibly longer.
    pub(crate) fn put(&mut self, buf: Vec<u8>, pool: &mut BufferPool) {
        self.buf = buf;
        if self.len() == 0 {
            self.release(pool);
        }
    }

    /// The runtime wrote `n` more bytes.
    pub(crate) fn advance(&mut self, n: usize, pool: &mut BufferPool) {
        self.sent = (self.sent + n).min(self.buf.len());
        if self.sent == self.buf.len() {
            self.release(pool);
        } else if self.sent >= COMPACT_AT {
            self.buf.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Everything queued, as an owned buffer; the queue is left empty
    /// (the next output draws a buffer from the pool).
    pub(crate) fn take_all(&mut self) -> Vec<u8> {
        if self.sent > 0 {
            self.buf.drain(..self.sent);
            self.sent = 0;
        }
        std::mem::take(&mut self.buf)
    }

    /// Drop everything queued and give the buffer back.
    pub(crate) fn release(&mut self, pool: &mut BufferPool) {
        self.sent = 0;
        pool.give(std::mem::take(&mut self.buf));
    }
}

/// A small free list of output buffers, one per engine (shard).
#[derive(Debug, Default)]
pub(crate) struct BufferPool {
    free: Vec<Vec<u8>>,
}

impl BufferPool {
    /// A cleared buffer, reused when one is free.
    pub(crate) fn get(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_default()
    }

    /// Keep `buf` for reuse unless it is too large or the pool is full.
    pub(crate) fn give(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() == 0
            || buf.capacity() > POOL_MAX_CAPACITY
            || self.free.len() >= POOL_MAX_BUFFERS
        {
            return;
        }
        buf.clear();
        self.free.push(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_gives_its_buffer_back_when_written() {
        let mut pool = BufferPool::default();
        let mut q = TxQueue::default();
        let mut b = q.take(&mut pool);
        b.extend_from_slice(b"hello world");
        q.put(b, &mut pool);
        assert_eq!(q.pending(), b"hello world");
        q.advance(6, &mut pool);
        assert_eq!(q.pending(), b"world");
        q.advance(5, &mut pool);
        assert_eq!(q.len(), 0);
        assert_eq!(q.buf.capacity(), 0, "an empty queue holds no buffer");
        assert_eq!(pool.free.len(), 1);
        // The next take reuses it.
        let b = q.take(&mut pool);
        assert!(b.capacity() > 0 && b.is_empty());
        assert!(pool.free.is_empty());
    }

    #[test]
    fn empty_put_keeps_nothing_and_large_buffers_are_not_pooled() {
        let mut pool = BufferPool::default();
        let mut q = TxQueue::default();
        let b = q.take(&mut pool);
        q.put(b, &mut pool);
        assert_eq!(q.buf.capacity(), 0);
        let mut big = Vec::with_capacity(POOL_MAX_CAPACITY + 1);
        big.push(1);
        q.put(big, &mut pool);
        q.advance(1, &mut pool);
        assert!(pool.free.is_empty());
    }

    #[test]
    fn long_partial_writes_compact() {
        let mut pool = BufferPool::default();
        let mut q = TxQueue::default();
        q.put(vec![7u8; COMPACT_AT + 10], &mut pool);
        q.advance(COMPACT_AT, &mut pool);
        assert_eq!(q.sent, 0);
        assert_eq!(q.pending(), &[7u8; 10]);
    }
}
