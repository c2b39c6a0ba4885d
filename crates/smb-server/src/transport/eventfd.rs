//! The eventfd a shard waits on beside its sockets, written by other threads
//! (admin commands, shutdown) to wake it: eventfd(2). The io_uring transport
//! keeps a read armed on it; the xdp transport polls it with its sockets.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::shard::ShardWaker;

/// An eventfd other threads write to wake a shard.
#[derive(Debug)]
pub(crate) struct EventFd(File);

impl EventFd {
    /// A new eventfd (counter 0, close-on-exec), non-blocking when asked.
    pub(crate) fn new(nonblocking: bool) -> io::Result<EventFd> {
        let flags = if nonblocking {
            libc::EFD_CLOEXEC | libc::EFD_NONBLOCK
        } else {
            libc::EFD_CLOEXEC
        };
        // SAFETY: eventfd(2) takes no pointers; a non-negative return is a
        // new descriptor that nothing else owns.
        let fd = unsafe { libc::eventfd(0, flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above, `fd` is new and ours alone, so OwnedFd may take it.
        Ok(EventFd(File::from(unsafe { OwnedFd::from_raw_fd(fd) })))
    }

    /// Reads (and so resets) the counter; whether there was anything to read
    /// (always true when blocking).
    pub(crate) fn drain(&self) -> bool {
        let mut buf = [0u8; 8];
        (&self.0).read(&mut buf).is_ok()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl ShardWaker for EventFd {
    fn wake(&self) -> io::Result<()> {
        (&self.0).write_all(&1u64.to_ne_bytes())
    }
}
