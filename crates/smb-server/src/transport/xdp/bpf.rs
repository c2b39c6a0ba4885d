//! The XDP program that steers the listening port's TCP segments into the
//! shards' AF_XDP sockets, and the bpf(2) calls that load and attach it.
//!
//! The program is fifteen-odd instructions, so it is assembled here from an
//! instruction array (kernel `Documentation/bpf/standardization/
//! instruction-set.rst`) and loaded with the bpf(2) system call: no
//! toolchain for BPF, no object file, no libbpf or aya dependency. It does
//! (per frame, `struct xdp_md` as context):
//!
//! ```text
//! if the frame is Ethernet + IPv4 (IHL >= 5, not a fragment) + TCP,
//!    to the server's address and the listening port:
//!        return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS)
//! return XDP_PASS
//! ```
//!
//! so ARP, ICMP, other ports and other protocols go on to the kernel, and a
//! queue with no socket in the XSKMAP passes too (kernel
//! `Documentation/networking/af_xdp.rst`, "XSKMAP / BPF_MAP_TYPE_XSKMAP").
//! It is attached through a BPF link (`BPF_LINK_CREATE`, attach type
//! `BPF_XDP`): the kernel detaches it when the link's descriptor closes,
//! so a server that dies leaves no program behind.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

// Opcodes (class | size/op | source).
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const LDX_H: u8 = 0x69; // BPF_LDX | BPF_MEM | BPF_H
const LDX_B: u8 = 0x71; // BPF_LDX | BPF_MEM | BPF_B
const MOV64_X: u8 = 0xbf;
const MOV64_K: u8 = 0xb7;
const ADD64_K: u8 = 0x07;
const ADD64_X: u8 = 0x0f;
const AND64_K: u8 = 0x57;
const LSH64_K: u8 = 0x67;
const JGT_X: u8 = 0x2d;
const JNE_K: u8 = 0x55;
const JLT_K: u8 = 0xa5;
const JSET_K: u8 = 0x45;
const JNE32_K: u8 = 0x56; // BPF_JMP32 | BPF_JNE | BPF_K
const LD_IMM64: u8 = 0x18;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;

const PSEUDO_MAP_FD: u8 = 1;
const FUNC_REDIRECT_MAP: i32 = 51;
const XDP_PASS: i32 = 2;

/// The program for `addr:port` (`addr` unspecified: any IPv4 address),
/// redirecting into the XSKMAP `map_fd`.
pub(crate) fn program(addr: Ipv4Addr, port: u16, map_fd: i32) -> Vec<Insn> {
    // Jumps to PASS are emitted with offset 0 and patched at the end.
    let mut p: Vec<Insn> = Vec::new();
    let mut to_pass: Vec<usize> = Vec::new();
    let mut jump_pass = |p: &mut Vec<Insn>, code: u8, dst: u8, src: u8, imm: i32| {
        to_pass.push(p.len());
        p.push(insn(code, dst, src, 0, imm));
    };
    p.push(insn(MOV64_X, 6, 1, 0, 0)); // r6 = ctx
    p.push(insn(LDX_W, 2, 1, 0, 0)); // r2 = ctx->data
    p.push(insn(LDX_W, 3, 1, 4, 0)); // r3 = ctx->data_end
    p.push(insn(MOV64_X, 4, 2, 0, 0)); // r4 = data
    p.push(insn(ADD64_K, 4, 0, 0, 34)); // r4 += ETH_HLEN + 20
    jump_pass(&mut p, JGT_X, 4, 3, 0); // if r4 > data_end: pass
    p.push(insn(LDX_H, 5, 2, 12, 0)); // r5 = h_proto (network order)
    jump_pass(&mut p, JNE_K, 5, 0, 0x0008); // != htons(ETH_P_IP)
    p.push(insn(LDX_B, 5, 2, 14, 0)); // r5 = version << 4 | IHL
    p.push(insn(MOV64_X, 4, 5, 0, 0));
    p.push(insn(AND64_K, 4, 0, 0, 0xf0));
    jump_pass(&mut p, JNE_K, 4, 0, 0x40); // version 4
    p.push(insn(AND64_K, 5, 0, 0, 0x0f));
    p.push(insn(LSH64_K, 5, 0, 0, 2)); // r5 = IHL * 4
    jump_pass(&mut p, JLT_K, 5, 0, 20);
    p.push(insn(LDX_B, 4, 2, 23, 0)); // protocol
    jump_pass(&mut p, JNE_K, 4, 0, 6); // TCP
    p.push(insn(LDX_H, 4, 2, 20, 0)); // flags + fragment offset
    jump_pass(&mut p, JSET_K, 4, 0, 0xff3f); // htons(IP_MF | IP_OFFMASK)
    if !addr.is_unspecified() {
        p.push(insn(LDX_W, 4, 2, 30, 0)); // daddr
        jump_pass(
            &mut p,
            JNE32_K,
            4,
            0,
            u32::from_le_bytes(addr.octets()) as i32,
        );
    }
    p.push(insn(ADD64_X, 2, 5, 0, 0)); // r2 = data + IHL * 4
    p.push(insn(MOV64_X, 4, 2, 0, 0));
    p.push(insn(ADD64_K, 4, 0, 0, 14 + 4)); // through the TCP ports
    jump_pass(&mut p, JGT_X, 4, 3, 0);
    p.push(insn(LDX_H, 4, 2, 14 + 2, 0)); // dest port
    jump_pass(
        &mut p,
        JNE_K,
        4,
        0,
        i32::from(u16::from_le_bytes(port.to_be_bytes())),
    );
    p.push(insn(LDX_W, 2, 6, 16, 0)); // r2 = ctx->rx_queue_index
    p.push(insn(LD_IMM64, 1, PSEUDO_MAP_FD, 0, map_fd)); // r1 = &xsks
    p.push(insn(0, 0, 0, 0, 0));
    p.push(insn(MOV64_K, 3, 0, 0, XDP_PASS)); // when the queue has no socket
    p.push(insn(CALL, 0, 0, 0, FUNC_REDIRECT_MAP));
    p.push(insn(EXIT, 0, 0, 0, 0));
    let pass = p.len();
    p.push(insn(MOV64_K, 0, 0, 0, XDP_PASS));
    p.push(insn(EXIT, 0, 0, 0, 0));
    for at in to_pass {
        p[at].off = (pass - at - 1) as i16;
    }
    p
}

/// `union bpf_attr`, as raw bytes: each command sets the fields it uses
/// (the kernel reads `size` bytes and requires the rest zero).
#[repr(C, align(8))]
struct Attr([u8; 144]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 144])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn name(&mut self, off: usize, name: &str) -> &mut Attr {
        let n = name.len().min(15);
        self.0[off..off + n].copy_from_slice(&name.as_bytes()[..n]);
        self
    }
}

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
/// `XDP_FLAGS_SKB_MODE`: generic XDP, after the driver built an skb.
pub(crate) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`: native XDP, in the driver.
pub(crate) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, 8-aligned buffer of the size passed, laid
    // out as `union bpf_attr` for `cmd`; every pointer stored in it (by the
    // callers below) points at memory that outlives this call. The kernel
    // copies what it needs before returning.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("bpf returned a bad descriptor"))?;
    // SAFETY: the kernel just returned this new descriptor; nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An XSKMAP with `entries` slots (one per NIC queue).
pub(crate) fn xskmap(entries: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, BPF_MAP_TYPE_XSKMAP)
        .u32(4, 4)
        .u32(8, 4)
        .u32(12, entries.max(1))
        .name(28, "smbcore_xsks");
    owned(bpf(BPF_MAP_CREATE, &mut a)?)
}

/// Put the AF_XDP socket `xsk` in slot `queue` of `map`.
pub(crate) fn xskmap_set(map: &OwnedFd, queue: u32, xsk: i32) -> io::Result<()> {
    let key = queue;
    let value = xsk as u32;
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, &key as *const u32 as u64)
        .u64(16, &value as *const u32 as u64)
        .u64(24, 0);
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(drop)
}

/// Load `insns` as an XDP program; on a verifier refusal the error carries
/// the verifier's log.
pub(crate) fn load(insns: &[Insn]) -> io::Result<OwnedFd> {
    let license = b"Dual MIT/GPL\0";
    let mut log = vec![0u8; 64 * 1024];
    let mut a = Attr::new();
    a.u32(0, BPF_PROG_TYPE_XDP)
        .u32(4, insns.len() as u32)
        .u64(8, insns.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .u32(24, 1)
        .u32(28, log.len() as u32)
        .u64(32, log.as_mut_ptr() as u64)
        .name(48, "smbcore_xdp");
    match bpf(BPF_PROG_LOAD, &mut a) {
        Ok(fd) => owned(fd),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            Err(io::Error::new(
                e.kind(),
                format!("the kernel refused the XDP program: {e}: {}", text.trim()),
            ))
        }
    }
}

/// Attach `prog` to interface `ifindex` in `mode` (XDP_FLAGS_*) through a
/// BPF link; dropping the returned descriptor detaches it.
pub(crate) fn attach(prog: &OwnedFd, ifindex: u32, mode: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, prog.as_raw_fd() as u32)
        .u32(4, ifindex)
        .u32(8, BPF_XDP)
        .u32(12, mode);
    owned(bpf(BPF_LINK_CREATE, &mut a)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_lands_inside_the_program_and_it_ends_in_exit() {
        for addr in [Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(198, 18, 0, 1)] {
            let p = program(addr, 445, 3);
            assert_eq!(p.last().unwrap().code, EXIT);
            for (i, ins) in p.iter().enumerate() {
                if matches!(ins.code, JGT_X | JNE_K | JLT_K | JSET_K | JNE32_K) {
                    let target = i as i64 + 1 + i64::from(ins.off);
                    assert!(target > i as i64 && (target as usize) < p.len());
                    assert_eq!(p[target as usize].code, MOV64_K, "jumps go to PASS");
                }
            }
        }
    }

    #[test]
    fn the_port_and_address_are_compared_in_network_order() {
        let p = program(Ipv4Addr::new(198, 18, 0, 200), 4450, 3);
        // 4450 = 0x1162: bytes 11 62 on the wire, read little-endian.
        assert!(p.iter().any(|i| i.code == JNE_K && i.imm == 0x6211));
        // 198.18.0.200 with its top bit set still compares as 32 bits.
        assert!(p
            .iter()
            .any(|i| i.code == JNE32_K && i.imm == u32::from_le_bytes([198, 18, 0, 200]) as i32));
    }

    /// Needs root (CAP_BPF); elsewhere it says so and passes.
    #[test]
    fn the_kernel_verifier_accepts_the_program() {
        if crate::transport::effective_uid() != 0 {
            eprintln!("skipped: loading BPF needs root");
            return;
        }
        let map = xskmap(4).expect("create an XSKMAP");
        for addr in [Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(198, 18, 0, 200)] {
            load(&program(addr, 4450, map.as_raw_fd())).expect("verifier accepts");
        }
        // A broken program is refused with the verifier's words.
        let bad = [insn(EXIT, 0, 0, 0, 0)];
        let e = load(&bad).unwrap_err();
        assert!(e.to_string().contains("refused"), "{e}");
    }
}
