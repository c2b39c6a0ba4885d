//! Drives the sans-IO engine with arbitrary frame sequences on two
//! connections, optionally after a real anonymous login on the first, with
//! the clock moving forward. Checks that nothing panics, that every output
//! is well-framed, that every byte produced goes to the connection that
//! caused it (the bystander's queue stays empty; each response answers a
//! MessageId the victim sent), and that junk on one connection never disturbs
//! the other connection's authenticated session. Output is never cleared
//! between frames: each connection's queue is drained the way a socket
//! drains it, so output left behind by a failed frame would be seen.
#![no_main]

#[path = "../../benches/support/mem_client.rs"]
mod mem_client;

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mem_client::{engine, first_response, Four, MemConn};
use smb_session::engine::{EngineEvent, FrameOutcome};
use smb_wire::compound::Compound;
use smb_wire::frame::Frames;
use smb_wire::header::{Command, Header};
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
    let mut received = Vec::new();
    let mut sent_ids: Vec<u64> = Vec::new();
    let mut open = true;
    while rest.len() >= 2 && open {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])) % 4096;
        rest = &rest[2..];
        let take = len.min(rest.len());
        let (frame, tail) = rest.split_at(take);
        rest = tail;
        now += Duration::from_millis(u64::from(frame.first().copied().unwrap_or(0)));
        sent_ids.extend(message_ids(frame));
        let outcome = e.handle_frame(victim.conn, frame, now);
        // Nothing the victim caused is queued for the bystander.
        assert!(
            e.poll_transmit(good.conn).is_empty(),
            "victim's frame queued output for the bystander"
        );
        match outcome {
            FrameOutcome::Continue => {}
            FrameOutcome::Close => {
                e.connection_closed(victim.conn, now);
                assert!(e.poll_transmit(victim.conn).is_empty());
                open = false;
            }
        }
        e.handle_timeout(now);
        while let Some(ev) = e.poll_event() {
            if let EngineEvent::Transmit(c) = ev {
                assert!(c == victim.conn, "output announced for the bystander");
            }
        }
        assert!(e.poll_transmit(good.conn).is_empty());
        // The victim's socket takes what is queued for it (and nothing else).
        let from = received.len();
        e.drain_transmit(victim.conn, &mut received);
        // Whatever came out is whole NBSS frames, each answering one of the
        // victim's own requests.
        let mut frames = Frames::new(&received[from..], 16 << 20);
        for f in frames.by_ref() {
            let f = f.expect("engine emitted a broken frame");
            for m in Compound::new(f) {
                let m = m.expect("engine emitted a broken compound");
                let id = Header::new_checked(m).expect("response header").message_id();
                assert!(sent_ids.contains(&id), "response to a MessageId the victim never sent");
            }
        }
        assert!(frames.remainder().is_empty(), "engine emitted a partial frame");
        if received.len() > 1 << 20 {
            received.clear();
        }
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

/// MessageIds of a request payload (0 for an SMB1 NEGOTIATE).
fn message_ids(payload: &[u8]) -> Vec<u64> {
    if payload.starts_with(b"\xffSMB") {
        return vec![0];
    }
    Compound::new(payload)
        .map_while(Result::ok)
        .filter_map(|m| Header::new_checked(m).ok().map(|h| h.message_id()))
        .collect()
}
