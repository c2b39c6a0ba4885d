//! Drives the sans-IO engine with arbitrary frame sequences on two
//! connections, optionally after a real anonymous login on the first, with
//! the clock moving forward. Checks that nothing panics, that every output
//! is well-framed, and that junk on one connection never disturbs the other
//! connection's authenticated session.
#![no_main]

#[path = "../../benches/support/mem_client.rs"]
mod mem_client;

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mem_client::{engine, first_response, Four, MemConn};
use smb_session::engine::FrameOutcome;
use smb_wire::frame::Frames;
use smb_wire::header::Command;
use smb_wire::NtStatus;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let start = Instant::now();
    let mut e = engine(start);
    // A bystander with an authenticated session that must survive.
    let mut good = MemConn::accept(&mut e, start);
    good.negotiate(&mut e);
    let good_sid = good.anonymous_login(&mut e);
    let mut victim = MemConn::accept(&mut e, start);
    if data[0] & 1 == 1 {
        victim.negotiate(&mut e);
        if data[0] & 2 == 2 {
            victim.anonymous_login(&mut e);
        }
    }
    let mut now = start;
    let mut rest = &data[1..];
    let mut out = Vec::new();
    let mut open = true;
    while rest.len() >= 2 && open {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])) % 4096;
        rest = &rest[2..];
        let take = len.min(rest.len());
        let (frame, tail) = rest.split_at(take);
        rest = tail;
        out.clear();
        now += Duration::from_millis(u64::from(frame.first().copied().unwrap_or(0)));
        match e.handle_frame(victim.conn, frame, now, &mut out) {
            FrameOutcome::Continue => {}
            FrameOutcome::Close => {
                e.connection_closed(victim.conn, now);
                open = false;
            }
        }
        // Whatever came out is whole NBSS frames.
        let mut frames = Frames::new(&out, 16 << 20);
        for f in frames.by_ref() {
            assert!(f.is_ok(), "engine emitted a broken frame");
        }
        assert!(frames.remainder().is_empty(), "engine emitted a partial frame");
        e.handle_timeout(now);
        while e.poll_event().is_some() {}
    }
    // The bystander's session still answers (unless 15 minutes passed).
    if now.duration_since(start) < Duration::from_secs(14 * 60) {
        good.now = now;
        good.build(Command::Echo, good_sid, 0, &Four);
        good.send(&mut e);
        assert_eq!(first_response(&good.out).0, NtStatus::SUCCESS);
        good.build_tree_connect_ipc(good_sid);
        good.send(&mut e);
        assert_eq!(first_response(&good.out).0, NtStatus::SUCCESS);
    }
});
