//! Sockets: non-blocking connects from chosen loopback source addresses, reading framed SMB2
//! messages, and the open-files limit.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use mio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};

/// Starts a non-blocking connect to `target`, bound to `source` (port chosen by the kernel)
/// when one is given.
pub fn connect(target: SocketAddr, source: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let sock = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    sock.set_nonblocking(true)?;
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

/// What a read pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The socket has no more bytes now.
    Open,
    /// The peer closed (EOF).
    Eof,
}

/// Reads everything available into `buf` (appending), at most `max` bytes buffered.
pub fn read_available(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<ReadOutcome> {
    let mut chunk = [0u8; 4096];
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

    #[test]
    fn refused_is_reported() {
        // Bind a port, close it, connect: the kernel refuses.
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
        let err = s.take_error().unwrap().expect("connect must fail");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert!(describe_connect_error(&err, addr).contains("refused"));
    }
}
