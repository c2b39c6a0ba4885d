//! Sockets: non-blocking connects from chosen loopback source addresses, reading framed SMB2
//! messages, and the open-files limit.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use mio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};

/// Starts a non-blocking connect to `target`, bound to `source` (port chosen by the kernel)
/// when one is given.
pub fn connect(target: SocketAddr, source: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    // Non-blocking from socket(2) on (SOCK_NONBLOCK): no fcntl pair per connection.
    let sock = Socket::new(
        Domain::for_address(target),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    sock.set_nodelay(true)?;
    if let Some(ip) = source {
        sock.bind(&SocketAddr::new(IpAddr::V4(ip), 0).into())?;
    }
    match sock.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc_einprogress()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(sock.into()))
}

/// EINPROGRESS on Linux.
const fn libc_einprogress() -> i32 {
    115
}

/// Writes as much of `out[*pos..]` as the socket takes; clears `out` once all is written.
pub fn flush(stream: &mut TcpStream, out: &mut Vec<u8>, pos: &mut usize) -> io::Result<()> {
    while *pos < out.len() {
        match stream.write(&out[*pos..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *pos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    out.clear();
    *pos = 0;
    Ok(())
}

/// What epoll reported for a socket, so that the client makes no system call to learn
/// what the event already says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// EPOLLOUT.
    pub writable: bool,
    /// EPOLLERR.
    pub error: bool,
    /// EPOLLHUP, or EPOLLRDHUP with EPOLLIN: the peer's FIN (or RST) has arrived.
    pub read_closed: bool,
}

impl Readiness {
    /// Nothing known (not called on an event): connects are checked with
    /// `SO_ERROR`/`getpeername` and reads go on to EAGAIN.
    pub const UNKNOWN: Readiness = Readiness {
        writable: false,
        error: true,
        read_closed: true,
    };

    /// What `ev` reports.
    pub fn of(ev: &mio::event::Event) -> Readiness {
        Readiness {
            writable: ev.is_writable(),
            error: ev.is_error(),
            read_closed: ev.is_read_closed(),
        }
    }

    /// Reads must go on until EAGAIN or EOF: the peer closed, or the event is not known.
    fn must_drain(self) -> bool {
        self.error || self.read_closed
    }
}

/// Completes a non-blocking connect on readiness: `Ok(true)` once connected, `Ok(false)`
/// while still in progress, the error when it failed.
///
/// EPOLLOUT without EPOLLERR or EPOLLHUP on a connecting TCP socket means the handshake
/// completed (`tcp_poll` reports no EPOLLOUT in SYN-SENT, and a failed connect also
/// reports EPOLLERR and EPOLLHUP), so that case costs no system call; anything else is
/// checked with `SO_ERROR` and `getpeername`.
pub fn connect_done(stream: &TcpStream, r: Readiness) -> io::Result<bool> {
    if r.writable && !r.error && !r.read_closed {
        return Ok(true);
    }
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// What a read pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The socket has no more bytes now.
    Open,
    /// The peer closed (EOF).
    Eof,
}

/// Reads everything available into `buf` (appending), at most `max` bytes buffered.
///
/// A read shorter than asked emptied the socket's receive queue (`tcp_recvmsg` copies
/// until the queue is empty or the buffer is full), so the pass stops there without the
/// read that would only say EAGAIN, unless `r` says the peer closed or is not known: then
/// it reads on to EOF. Nothing is missed under edge-triggered epoll: bytes, a FIN or a
/// RST arriving after the event was collected wake the socket again and raise a new
/// event, and one that arrived before it is in the event (`read_closed`).
pub fn read_available(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    max: usize,
    r: Readiness,
) -> io::Result<ReadOutcome> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(ReadOutcome::Eof),
            Ok(n) => {
                if buf.len() + n > max {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "server sent more than the client buffers",
                    ));
                }
                buf.extend_from_slice(&chunk[..n]);
                if n < chunk.len() && !r.must_drain() {
                    return Ok(ReadOutcome::Open);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Open),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The soft RLIMIT_NOFILE of this process, from `/proc/self/limits`.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files(&text)
}

/// Parses the "Max open files" line of `/proc/PID/limits` (the soft limit).
pub fn parse_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        return Some(u64::MAX);
    }
    soft.parse().ok()
}

/// Descriptors this process holds now (entries of `/proc/self/fd`).
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// Describes a connect error for a person.
pub fn describe_connect_error(e: &io::Error, target: SocketAddr) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            format!(
                "{target} refused the connection (ECONNREFUSED): is an SMB server listening there?"
            )
        }
        io::ErrorKind::AddrNotAvailable => format!(
            "no local port left to reach {target} (EADDRNOTAVAIL): spread connections with \
             --source-ips 127.0.0.2-127.0.0.9 or use more --sessions-per-connection"
        ),
        io::ErrorKind::TimedOut => format!("connecting to {target} timed out"),
        _ if e.raw_os_error() == Some(24) => {
            "out of file descriptors (EMFILE): use --workers or more --sessions-per-connection"
                .into()
        }
        _ => format!("connecting to {target}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_line() {
        let t = "Limit                     Soft Limit           Hard Limit           Units\n\
                 Max processes             unlimited            unlimited            processes\n\
                 Max open files            20000                20000                files\n";
        assert_eq!(parse_open_files(t), Some(20000));
        assert_eq!(
            parse_open_files("Max open files  unlimited unlimited files"),
            Some(u64::MAX)
        );
        assert_eq!(parse_open_files("nothing"), None);
        assert!(open_files_limit().is_some());
    }

    /// Polls `s` until `read_available` on the events' readiness reports EOF; the bytes.
    fn read_to_eof(poll: &mut mio::Poll, s: &mut TcpStream, buf: &mut Vec<u8>) -> ReadOutcome {
        let mut ev = mio::Events::with_capacity(4);
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < end {
            poll.poll(&mut ev, Some(std::time::Duration::from_millis(100)))
                .unwrap();
            for e in ev.iter() {
                if read_available(s, buf, 1 << 20, Readiness::of(e)).unwrap() == ReadOutcome::Eof {
                    return ReadOutcome::Eof;
                }
            }
        }
        ReadOutcome::Open
    }

    fn connected_pair() -> (mio::Poll, TcpStream, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = connect(l.local_addr().unwrap(), None).unwrap();
        let (peer, _) = l.accept().unwrap();
        let mut poll = mio::Poll::new().unwrap();
        poll.registry()
            .register(
                &mut s,
                mio::Token(0),
                mio::Interest::READABLE | mio::Interest::WRITABLE,
            )
            .unwrap();
        let mut ev = mio::Events::with_capacity(4);
        let mut connected = false;
        for _ in 0..50 {
            poll.poll(&mut ev, Some(std::time::Duration::from_millis(100)))
                .unwrap();
            for e in ev.iter() {
                connected |= connect_done(&s, Readiness::of(e)).unwrap();
            }
            if connected {
                break;
            }
        }
        assert!(connected, "the connect never completed");
        (poll, s, peer)
    }

    #[test]
    fn refused_connect_is_seen_from_the_event() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let mut s = connect(addr, None).unwrap();
        let mut poll = mio::Poll::new().unwrap();
        poll.registry()
            .register(&mut s, mio::Token(0), mio::Interest::WRITABLE)
            .unwrap();
        let mut ev = mio::Events::with_capacity(4);
        poll.poll(&mut ev, Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let e = ev.iter().next().expect("an event for the failed connect");
        let err = connect_done(&s, Readiness::of(e)).expect_err("connect must fail");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert!(describe_connect_error(&err, addr).contains("refused"));
    }

    #[test]
    fn eof_arriving_with_the_last_bytes_is_not_missed() {
        let (mut poll, mut s, mut peer) = connected_pair();
        peer.write_all(&[7u8; 100]).unwrap();
        drop(peer);
        // Give the FIN time to arrive with the bytes, before the first poll.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut buf = Vec::new();
        assert_eq!(read_to_eof(&mut poll, &mut s, &mut buf), ReadOutcome::Eof);
        assert_eq!(buf, vec![7u8; 100]);
    }

    #[test]
    fn eof_arriving_after_a_short_read_raises_a_new_event() {
        let (mut poll, mut s, mut peer) = connected_pair();
        peer.write_all(&[1u8; 300]).unwrap();
        let mut buf = Vec::new();
        let mut ev = mio::Events::with_capacity(4);
        while buf.len() < 300 {
            poll.poll(&mut ev, Some(std::time::Duration::from_secs(5)))
                .unwrap();
            assert!(!ev.is_empty(), "no event for the bytes");
            for e in ev.iter() {
                // A short read ends the pass: the connection is still open.
                assert_eq!(
                    read_available(&mut s, &mut buf, 1 << 20, Readiness::of(e)).unwrap(),
                    ReadOutcome::Open
                );
            }
        }
        peer.write_all(&[2u8; 10]).unwrap();
        drop(peer);
        assert_eq!(read_to_eof(&mut poll, &mut s, &mut buf), ReadOutcome::Eof);
        assert_eq!(buf.len(), 310);
        assert_eq!(&buf[300..], &[2u8; 10]);
    }
}
