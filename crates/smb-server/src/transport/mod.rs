//! Socket and thread tuning that needs raw system calls: the only `unsafe`
//! in smbcore (each block carries its `SAFETY:` argument).
//!
//! - [`attach_cpu_steering`]: a classic BPF program on the SO_REUSEPORT group
//!   that returns the current CPU, so the kernel hands each new connection to
//!   the listener (and shard) of the CPU that received it.
//! - [`set_busy_poll`]: SO_BUSY_POLL on a listener (inherited by accepted
//!   sockets).
//! - [`pin_current_thread`]: pin a shard thread to one CPU, which the
//!   steering program assumes.
//! - [`tighten_timer_slack`]: PR_SET_TIMERSLACK to 1 ns for a shard thread, so
//!   that the kernel does not add its default 50 µs of slack to wake-ups that
//!   reap sessions.
//! - [`peer_uid`]: the uid of the process at the other end of a Unix socket
//!   (SO_PEERCRED), which the admin socket checks on every connection.
//! - [`effective_uid`]: this process's effective uid.
//!
//! The transports themselves: [`uring`] (io_uring) and [`xdp`] (AF_XDP with
//! TCP in user space).

mod buf_ring;
mod deadline;
mod eventfd;
pub mod uring;
pub mod xdp;

use std::io;
use std::os::fd::AsRawFd;

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Attach `return cpu` as the SO_REUSEPORT steering program of `listener`'s
/// group (SO_ATTACH_REUSEPORT_CBPF). Listener *i* of the group must belong
/// to the shard pinned to CPU *i*.
pub fn attach_cpu_steering(listener: &impl AsRawFd) -> io::Result<()> {
    // BPF_LD | BPF_W | BPF_ABS, SKF_AD_OFF + SKF_AD_CPU: A = current CPU.
    // BPF_RET | BPF_A: return A.
    const SKF_AD_OFF: u32 = 0xFFFF_F000;
    const SKF_AD_CPU: u32 = 36;
    let mut code = [
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: SKF_AD_OFF + SKF_AD_CPU,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_A) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
    ];
    let prog = libc::sock_fprog {
        len: code.len() as u16,
        filter: code.as_mut_ptr(),
    };
    // SAFETY: `prog` points at `code`, which outlives the call; the kernel
    // copies the program during setsockopt and keeps no pointer to it. The
    // option length is the size of the `sock_fprog` passed.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    check(rc)
}

/// SO_BUSY_POLL: spin up to `micros` µs in the kernel waiting for packets.
/// TCP keepalive on a listening socket (Linux copies the listener's
/// keepalive settings to every connection it accepts, io_uring's direct
/// descriptors included): probes after `idle` without traffic, every
/// `interval`, `count` unanswered ones and the connection fails with
/// ETIMEDOUT. TCP_USER_TIMEOUT is set to the same total, so a peer that
/// vanished while data waits unacknowledged is found as soon.
pub fn set_keepalive(
    sock: &std::net::TcpListener,
    idle: std::time::Duration,
    interval: std::time::Duration,
    count: u32,
) -> io::Result<()> {
    let s = socket2::SockRef::from(sock);
    let ka = socket2::TcpKeepalive::new()
        .with_time(idle)
        .with_interval(interval)
        .with_retries(count);
    s.set_tcp_keepalive(&ka)?;
    s.set_tcp_user_timeout(Some(idle + interval * count))
}

/// Sets SO_BUSY_POLL.
pub fn set_busy_poll(sock: &impl AsRawFd, micros: u32) -> io::Result<()> {
    let v: libc::c_int = micros.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: passes a pointer to a live c_int and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BUSY_POLL,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(rc)
}

/// Pin the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: `cpu_set_t` is plain data for which all-zero is the empty set;
    // CPU_SET writes inside it (cpu is bounds-checked below), and
    // sched_setaffinity reads exactly `size_of::<cpu_set_t>()` bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        libc::CPU_SET(cpu, &mut set);
        check(libc::sched_setaffinity(
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        ))
    }
}

/// Set the calling thread's timer slack to 1 ns (PR_SET_TIMERSLACK).
pub fn tighten_timer_slack() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_TIMERSLACK, n) takes plain integers and only
    // affects the calling thread.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    check(rc)
}

/// The effective uid of the process that connected the Unix stream `sock`
/// (SO_PEERCRED: the credentials it had when it called `connect`).
pub fn peer_uid(sock: &impl AsRawFd) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a live, writable `ucred` and `len` holds its exact
    // size; the kernel writes at most `len` bytes into it and stores the
    // length it wrote in `len`.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    check(rc)?;
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "SO_PEERCRED returned a short answer",
        ));
    }
    Ok(cred.uid)
}

/// This process's effective uid.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory of ours and
    // cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steering_program_attaches_to_a_reuseport_listener() {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_reuse_port(true).unwrap();
        s.bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        s.listen(16).unwrap();
        attach_cpu_steering(&s).unwrap();
        set_busy_poll(&s, 50).unwrap();
    }

    #[test]
    fn peer_uid_is_that_of_the_connecting_process() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(peer_uid(&a).unwrap(), effective_uid());
        assert_eq!(peer_uid(&b).unwrap(), effective_uid());
        // Not a Unix socket: an error, not a made-up uid.
        let f = std::fs::File::open("/proc/self/status").unwrap();
        assert!(peer_uid(&f).is_err());
    }

    #[test]
    fn timer_slack_and_pinning_apply_to_the_calling_thread() {
        std::thread::spawn(|| {
            tighten_timer_slack().unwrap();
            // SAFETY (test): PR_GET_TIMERSLACK returns the slack as the result.
            let slack = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
            assert_eq!(slack, 1);
            pin_current_thread(0).unwrap();
            assert!(pin_current_thread(1 << 20).is_err());
        })
        .join()
        .unwrap();
    }
}
