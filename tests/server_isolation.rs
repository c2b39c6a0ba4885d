//! Isolation through the real binary: bytes a connection causes go to that
//! connection only. Each test lets one connection A send a valid request and
//! then something that gets it dropped, in one `send` (so the server reads
//! both in one batch), and then checks that another connection B receives
//! exactly its own responses: one per request, with its own MessageIds, and
//! nothing else.
//!
//! These failed before output moved into per-connection queues: the shard
//! collected a read batch's responses in one shard-wide buffer and, when a
//! later frame of the batch dropped A, the next connection to write (B)
//! received A's NEGOTIATE response before its own.

mod common;

use std::time::Duration;

use common::client::{negotiate_body, request_frame, Client};
use common::TestServer;
use smb_wire::header::Command;
use smb_wire::NtStatus;

struct Four;
impl smb_wire::msg::EmitBody for Four {
    fn emit_body(&self, _msg_start: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&[4, 0, 0, 0]);
    }
}

/// A sends `tail` right after a valid NEGOTIATE, in one write; A must be
/// dropped, and B must then see exactly its own two responses.
fn b_gets_only_its_own(tail: &[u8]) {
    let server = TestServer::start(&["--threads", "1"]);
    let mut a = Client::connect_raw(server.addr).expect("connect A");
    let mut bytes = request_frame(Command::Negotiate, 0, 0, 0, &negotiate_body());
    bytes.extend_from_slice(tail);
    a.send_raw(&bytes).expect("A sends");
    assert!(
        a.is_closed(Duration::from_secs(5)),
        "A's bad frame must drop A"
    );

    let mut b = Client::connect_raw(server.addr).expect("connect B");
    b.send_raw(&request_frame(
        Command::Negotiate,
        0,
        0,
        0,
        &negotiate_body(),
    ))
    .expect("B negotiates");
    let r = b.read_response().expect("B's NEGOTIATE response");
    assert_eq!(r.status, NtStatus::SUCCESS);
    assert!(
        b.is_silent(Duration::from_millis(300)),
        "B received bytes it did not cause (another connection's response)"
    );
    b.send_raw(&request_frame(Command::Echo, 1, 0, 0, &Four))
        .expect("B echoes");
    let r = b.read_response().expect("B's ECHO response");
    assert_eq!(r.status, NtStatus::SUCCESS);
    assert_eq!(
        smb_wire::header::Header::new_checked(&r.msg[..])
            .expect("header")
            .message_id(),
        1
    );
    assert!(b.is_silent(Duration::from_millis(300)));
}

#[test]
fn a_junk_frame_after_a_valid_one_leaks_nothing_to_another_connection() {
    // An SMB1-looking frame that is not a NEGOTIATE: A is dropped.
    let mut junk = vec![0x00, 0x00, 0x00, 0x10, 0xFF, b'S', b'M', b'B'];
    junk.extend_from_slice(&[0u8; 12]);
    b_gets_only_its_own(&junk);
}

#[test]
fn a_bad_message_in_the_middle_of_a_compound_leaks_nothing() {
    // ECHO whose NextCommand points at 10 bytes that are no SMB2 message.
    let mut echo = request_frame(Command::Echo, 1, 0, 0, &Four);
    let msg_len = echo.len() - 4;
    let next = msg_len.div_ceil(8) * 8;
    echo[4 + 20..4 + 24].copy_from_slice(&(next as u32).to_le_bytes());
    echo.resize(4 + next, 0);
    echo.extend_from_slice(&[0xFE, b'S', b'M', b'B', 0, 0, 0, 0, 0, 0]);
    let len = echo.len() - 4;
    echo[1..4].copy_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8]);
    b_gets_only_its_own(&echo);
}

#[test]
fn a_frame_over_the_pre_auth_limit_leaks_nothing() {
    // A 100 KiB frame announced before any session authenticated (the
    // pre-authentication limit is 64 KiB): A is dropped on the header.
    let mut big = vec![0x00, 0x01, 0x90, 0x00];
    big.extend_from_slice(&[0xFE, b'S', b'M', b'B']);
    b_gets_only_its_own(&big);
}
