//! Initial sequence numbers per RFC 6528: ISN = M + F(localip, localport,
//! remoteip, remoteport, secretkey), M a clock ticking every 4
//! microseconds (RFC 6528 section 3, after RFC 793's ISN clock) and F a
//! keyed pseudo-random function, here SipHash-2-4 with a 128-bit secret of
//! the stack.
//!
//! smoltcp draws ISNs from its interface's generator (`Rand`, an sPCG32:
//! a 64-bit linear congruential state with a truncated output, seeded once
//! from `Config::random_seed`). That is not RFC 6528's function: the
//! generator is not keyed per connection, and a few ISNs a peer sees on
//! its own connections give away the state and so the ISNs of every later
//! connection (RFC 6528 section 1, the attack of RFC 1948). smoltcp offers
//! no call that sets an ISN, but its generator can be run backwards: the
//! stack builds its interface afresh from a seed whose draw for the ISN
//! yields the number computed here ([`seed_for`]), just before smoltcp
//! picks the ISN of a new connection (a SYN taken by a listening socket,
//! or a `connect`). A test checks the SYN-ACK carries exactly that ISN.

use crate::FlowKey;

/// SipHash-2-4 of `msg` under `key` (Aumasson and Bernstein, "SipHash: a
/// fast short-input PRF", 2012).
pub(crate) fn siphash24(key: &[u8; 16], msg: &[u8]) -> u64 {
    let k0 = u64::from_le_bytes([
        key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
    ]);
    let k1 = u64::from_le_bytes([
        key[8], key[9], key[10], key[11], key[12], key[13], key[14], key[15],
    ]);
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let compress = |v: &mut [u64; 4], m: u64| {
        v[3] ^= m;
        round(v);
        round(v);
        v[0] ^= m;
    };
    let mut chunks = msg.chunks_exact(8);
    for c in chunks.by_ref() {
        let m = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        compress(&mut v, m);
    }
    let mut last = [0u8; 8];
    let rest = chunks.remainder();
    last[..rest.len()].copy_from_slice(rest);
    last[7] = msg.len() as u8;
    compress(&mut v, u64::from_le_bytes(last));
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The ISN of a connection opened at `now_micros` (RFC 6528 section 3):
/// the 4-microsecond clock M plus SipHash-2-4 of the 4-tuple under
/// `secret`.
pub(crate) fn isn(secret: &[u8; 16], key: &FlowKey, now_micros: i64) -> u32 {
    let mut msg = [0u8; 12];
    msg[0..4].copy_from_slice(&key.local.ip().octets());
    msg[4..6].copy_from_slice(&key.local.port().to_be_bytes());
    msg[6..10].copy_from_slice(&key.remote.ip().octets());
    msg[10..12].copy_from_slice(&key.remote.port().to_be_bytes());
    let m = (now_micros / 4) as u32;
    m.wrapping_add(siphash24(secret, &msg) as u32)
}

/// smoltcp 0.12's generator (`smoltcp::rand::Rand`, sPCG32): the state
/// steps by `s * MUL + INC`, and a draw is 32 bits of the new state taken
/// at a shift its top three bits choose.
const MUL: u64 = 0xbb2e_fcec_3c39_611d;
const INC: u64 = 0x7590_ef39;

/// MUL's inverse modulo 2^64 (MUL is odd), by Newton's iteration: each
/// step doubles the bits that are right.
const fn mul_inverse() -> u64 {
    let mut x = MUL;
    let mut i = 0;
    while i < 6 {
        x = x.wrapping_mul(2u64.wrapping_sub(MUL.wrapping_mul(x)));
        i += 1;
    }
    x
}
const MUL_INV: u64 = mul_inverse();
const _: () = assert!(MUL.wrapping_mul(MUL_INV) == 1);

/// One step of the generator (the tests replay it).
#[cfg(test)]
fn step(s: u64) -> u64 {
    s.wrapping_mul(MUL).wrapping_add(INC)
}

fn unstep(s: u64) -> u64 {
    s.wrapping_sub(INC).wrapping_mul(MUL_INV)
}

fn output(s: u64) -> u32 {
    (s >> (29 - (s >> 61))) as u32
}

/// The `random_seed` of a fresh smoltcp `Interface` whose next draw after
/// building it is `isn`. Building the interface draws once per IPv4
/// identification until one is not zero (`Interface::new`, feature
/// `proto-ipv4`); a seed whose first identification is zero is skipped
/// (another choice of the state's top bits gives the same output).
pub(crate) fn seed_for(isn: u32) -> u64 {
    for top in 0..8u64 {
        // The draw is bits [29 - top, 61 - top) of the state, and its top
        // three bits are `top`.
        let s2 = (top << 61) | (u64::from(isn) << (29 - top));
        debug_assert_eq!(output(s2), isn);
        let s1 = unstep(s2);
        let id = output(s1);
        if (id ^ (id >> 16)) as u16 != 0 {
            return unstep(s1);
        }
    }
    // Unreachable in practice (eight zero identifications in a row); the
    // ISN is then smoltcp's next draw, still a function of the keyed one.
    unstep(unstep(u64::from(isn) << 29))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash_matches_the_reference_vectors() {
        // SipHash paper, appendix A, and the reference implementation's
        // vectors (key 00..0f, message 00..len-1).
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24(&key, &msg), 0xa129_ca61_49be_45e5);
        assert_eq!(siphash24(&key, &[]), 0x726f_db47_dd0e_0e31);
    }

    #[test]
    fn the_seed_replays_to_the_isn() {
        for isn in [0u32, 1, 0xffff_ffff, 0x8000_0000, 0x1234_5678] {
            let s0 = seed_for(isn);
            let s1 = step(s0);
            let id = output(s1);
            assert_ne!((id ^ (id >> 16)) as u16, 0);
            assert_eq!(output(step(s1)), isn);
        }
    }
}
