//! In-memory exchanges through [`RpcPipe`] and the client half.

use super::*;
use crate::client::{ClientError, RpcClient};
use crate::pdu::{Header, FAULT_LEN};
use crate::srvsvc::tests::TestBackend;
use crate::srvsvc::{
    decode_enum_response, decode_info_response, opnum, share_enum_request, werr, InfoClass,
    ShareInfo,
};
use proptest::prelude::*;

fn srvsvc_client(syntaxes: &[Syntax], max_frag: u16) -> RpcClient {
    RpcClient::new(Interface::Srvsvc.syntax_id(), syntaxes, max_frag)
}

/// Reads every queued message, each with one read of `chunk` bytes or several.
fn drain(pipe: &mut RpcPipe, chunk: usize) -> Vec<Vec<u8>> {
    let mut msgs = Vec::new();
    let mut cur = Vec::new();
    loop {
        match pipe.read(chunk, &mut cur) {
            ReadOutcome::Empty => break,
            ReadOutcome::Data { more: true } => {}
            ReadOutcome::Data { more: false } => msgs.push(std::mem::take(&mut cur)),
        }
    }
    assert!(cur.is_empty());
    msgs
}

fn bind(pipe: &mut RpcPipe, c: &mut RpcClient, b: &mut TestBackend) {
    let pdu = c.bind(true);
    pipe.write(&pdu, b).unwrap();
    let msgs = drain(pipe, 4096);
    assert_eq!(msgs.len(), 1);
    c.handle_bind_response(&msgs[0]).unwrap();
}

fn call(
    pipe: &mut RpcPipe,
    c: &mut RpcClient,
    b: &mut TestBackend,
    op: u16,
    stub: &[u8],
) -> Result<Vec<u8>, ClientError> {
    for f in c.request(op, stub).unwrap() {
        pipe.write(&f, b).unwrap();
    }
    let mut result = None;
    for m in drain(pipe, 65536) {
        assert!(result.is_none(), "PDU after the last fragment");
        match c.handle_response(&m) {
            Ok(Some(s)) => result = Some(Ok(s)),
            Ok(None) => {}
            Err(e) => result = Some(Err(e)),
        }
    }
    result.expect("a complete response")
}

#[test]
fn bind_ack_accepts_ndr_and_ndr64_and_acks_features() {
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let mut b = TestBackend::new(false);
    let mut c = srvsvc_client(&[Syntax::Ndr20, Syntax::Ndr64], 4280);
    bind(&mut pipe, &mut c, &mut b);
    let ack = c.bind_ack.clone().unwrap();
    assert_eq!(ack.sec_addr, "\\PIPE\\srvsvc");
    assert_eq!(ack.assoc_group_id, DEFAULT_ASSOC_GROUP);
    assert_eq!(ack.max_xmit_frag, 4280);
    assert_eq!(ack.results.len(), 3);
    assert_eq!(ack.results[0].result, result::ACCEPTANCE);
    assert_eq!(ack.results[0].transfer_syntax.uuid, NDR20_UUID);
    assert_eq!(ack.results[1].result, result::ACCEPTANCE);
    assert_eq!(ack.results[1].transfer_syntax.uuid, NDR64_UUID);
    assert_eq!(ack.results[2].result, result::NEGOTIATE_ACK);
    assert_eq!(ack.results[2].reason, 3);
    assert_eq!(ack.results[2].transfer_syntax, SyntaxId::default());
    assert!(pipe.is_bound());
}

#[test]
fn bind_rejects_other_interfaces_and_syntaxes() {
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let mut b = TestBackend::new(false);
    let mut other = Interface::Srvsvc.syntax_id();
    other.uuid.0[0] ^= 1;
    let mut c = RpcClient::new(other, &[Syntax::Ndr20], 4280);
    pipe.write(&c.bind(false), &mut b).unwrap();
    let msgs = drain(&mut pipe, 4096);
    assert_eq!(
        c.handle_bind_response(&msgs[0]),
        Err(ClientError::NoContextAccepted)
    );
    let ack = c.bind_ack.unwrap();
    assert_eq!(ack.results[0].result, result::PROVIDER_REJECTION);
    assert_eq!(ack.results[0].reason, reason::ABSTRACT_SYNTAX_NOT_SUPPORTED);
    // a transfer syntax we do not know
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let mut bind = Bind::parse(&srvsvc_client(&[Syntax::Ndr20], 4280).bind(false)[16..]).unwrap();
    bind.contexts[0].transfer_syntaxes[0].uuid.0[0] ^= 1;
    pipe.write(&bind.encode(PType::Bind, 1), &mut b).unwrap();
    let msgs = drain(&mut pipe, 4096);
    let ack = BindAck::parse(&msgs[0][16..]).unwrap();
    assert_eq!(
        ack.results[0].reason,
        reason::PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED
    );
}

#[test]
fn full_exchange_bind_share_enum() {
    for syntax in [Syntax::Ndr20, Syntax::Ndr64] {
        let mut pipe = RpcPipe::new(Interface::Srvsvc);
        let mut b = TestBackend::new(false);
        let mut c = srvsvc_client(&[syntax], 4280);
        bind(&mut pipe, &mut c, &mut b);
        let req = share_enum_request(syntax, Some("\\\\127.0.0.1"), 1, u32::MAX, Some(0));
        let stub = call(&mut pipe, &mut c, &mut b, opnum::NETR_SHARE_ENUM, &req).unwrap();
        let d = decode_enum_response(&stub, syntax, InfoClass::Share).unwrap();
        assert_eq!(d.status, 0);
        let names: Vec<_> = d.rows().iter().map(|r| r.str(0).unwrap()).collect();
        assert_eq!(names, ["IPC$", "data"]);
        assert_eq!(pipe.pending_output(), 0);
    }
}

#[test]
fn request_reassembled_and_response_fragmented() {
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let mut b = TestBackend::new(true);
    for i in 0..300 {
        let mut s = ShareInfo::ipc();
        s.name = format!("share-number-{i:04}");
        s.comment = "a comment long enough to need several fragments".into();
        b.shares.push(s);
    }
    // The client announces the minimum fragment size, and pads its request with a
    // long server name so that the request itself is fragmented.
    let mut c = srvsvc_client(&[Syntax::Ndr20], 1432);
    bind(&mut pipe, &mut c, &mut b);
    assert_eq!(pipe.max_xmit_frag(), 1432);
    let server = "\\\\".to_string() + &"s".repeat(2000);
    let req = share_enum_request(Syntax::Ndr20, Some(&server), 1, u32::MAX, None);
    let frags = c.request(opnum::NETR_SHARE_ENUM, &req).unwrap();
    assert!(frags.len() >= 3);
    // Deliver the request split at odd byte boundaries across writes.
    let all: Vec<u8> = frags.concat();
    for piece in all.chunks(777) {
        pipe.write(piece, &mut b).unwrap();
    }
    assert_eq!(pipe.buffered_input(), 0);
    // Read with a small buffer: every message needs several reads (BUFFER_OVERFLOW).
    let msgs = drain(&mut pipe, 500);
    assert!(msgs.len() > 10, "{} fragments", msgs.len());
    let mut stub = None;
    for m in &msgs {
        assert!(m.len() <= 1432);
        let h = Header::parse(m).unwrap();
        assert_eq!(usize::from(h.frag_length), m.len());
        if let Some(s) = c.handle_response(m).unwrap() {
            stub = Some(s);
        }
    }
    let d = decode_enum_response(&stub.unwrap(), Syntax::Ndr20, InfoClass::Share).unwrap();
    assert_eq!(d.rows().len(), 302);
    assert_eq!(d.rows()[301].str(0), Some("share-number-0299"));
}

#[test]
fn server_info_102_reports_autodisconnect() {
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let mut b = TestBackend::new(false);
    let mut c = srvsvc_client(&[Syntax::Ndr20], 4280);
    bind(&mut pipe, &mut c, &mut b);
    let req = crate::srvsvc::server_get_info_request(Syntax::Ndr20, None, 102);
    let stub = call(&mut pipe, &mut c, &mut b, opnum::NETR_SERVER_GET_INFO, &req).unwrap();
    let (_, row, st) = decode_info_response(&stub, Syntax::Ndr20, InfoClass::Server).unwrap();
    assert_eq!(st, 0);
    assert_eq!(row.unwrap().u32(crate::srvsvc::SV102_DISC), Some(42));
}

#[test]
fn non_admin_session_enum_is_access_denied() {
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let mut b = TestBackend::new(false);
    let mut c = srvsvc_client(&[Syntax::Ndr20], 4280);
    bind(&mut pipe, &mut c, &mut b);
    let req = crate::srvsvc::session_enum_request(Syntax::Ndr20, None, None, None, 10, !0, None);
    let stub = call(&mut pipe, &mut c, &mut b, opnum::NETR_SESSION_ENUM, &req).unwrap();
    let d = decode_enum_response(&stub, Syntax::Ndr20, InfoClass::Session).unwrap();
    assert_eq!(d.status, werr::ACCESS_DENIED);
    assert!(d.rows().is_empty());
}

#[test]
fn unknown_opnum_and_context_fault_but_pipe_lives() {
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let mut b = TestBackend::new(false);
    let mut c = srvsvc_client(&[Syntax::Ndr20], 4280);
    bind(&mut pipe, &mut c, &mut b);
    assert_eq!(
        call(&mut pipe, &mut c, &mut b, 200, &[]),
        Err(ClientError::Fault(status::NCA_S_OP_RNG_ERROR))
    );
    // context 9 was never bound
    let f = pdu::encode_request(50, 9, 15, &[0; 8], 4280);
    pipe.write(&f[0], &mut b).unwrap();
    let msgs = drain(&mut pipe, 4096);
    assert_eq!(msgs[0].len(), FAULT_LEN);
    let h = Header::parse(&msgs[0]).unwrap();
    assert_eq!(h.call_id, 50);
    assert_eq!(
        Fault::parse(h.body(&msgs[0]).unwrap()).unwrap().status,
        status::NCA_S_UNK_IF
    );
    // bad stub
    assert_eq!(
        call(
            &mut pipe,
            &mut c,
            &mut b,
            opnum::NETR_SHARE_ENUM,
            &[1, 2, 3]
        ),
        Err(ClientError::Fault(status::NCA_S_FAULT_NDR))
    );
    // and the pipe still works
    let req = share_enum_request(Syntax::Ndr20, None, 0, !0, None);
    assert!(call(&mut pipe, &mut c, &mut b, opnum::NETR_SHARE_ENUM, &req).is_ok());
}

#[test]
fn request_before_bind_is_fault_unk_if() {
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let mut b = TestBackend::new(false);
    let f = pdu::encode_request(1, 0, 15, &[0; 8], 4280);
    pipe.write(&f[0], &mut b).unwrap();
    let m = drain(&mut pipe, 4096);
    let h = Header::parse(&m[0]).unwrap();
    assert_eq!(h.ptype(), Some(PType::Fault));
}

#[test]
fn malformed_pdus_have_defined_errors() {
    let mut b = TestBackend::new(false);
    // bad version
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    assert_eq!(
        pipe.write(&[4, 0, 11, 3], &mut b),
        Err(PipeError::Protocol(PduError::BadVersion(4, 0)))
    );
    assert_eq!(pipe.write(&[5], &mut b), Err(PipeError::Broken));
    // frag_length smaller than a header
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let mut pdu = srvsvc_client(&[Syntax::Ndr20], 4280).bind(false);
    pdu[8] = 10;
    pdu[9] = 0;
    assert_eq!(
        pipe.write(&pdu, &mut b),
        Err(PipeError::Protocol(PduError::BadFragLength(10)))
    );
    // frag_length says less than the bind body needs: bind_nak, pipe lives
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let mut pdu = srvsvc_client(&[Syntax::Ndr20], 4280).bind(false);
    pdu.truncate(40);
    pdu[8] = 40;
    pipe.write(&pdu, &mut b).unwrap();
    let m = drain(&mut pipe, 4096);
    assert_eq!(Header::parse(&m[0]).unwrap().ptype(), Some(PType::BindNak));
    // a truncated PDU waits for the rest, bounded by frag_length
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let pdu = srvsvc_client(&[Syntax::Ndr20], 4280).bind(false);
    pipe.write(&pdu[..30], &mut b).unwrap();
    assert_eq!(pipe.read(100, &mut Vec::new()), ReadOutcome::Empty);
    assert_eq!(pipe.buffered_input(), 30);
    pipe.write(&pdu[30..], &mut b).unwrap();
    assert_eq!(drain(&mut pipe, 4096).len(), 1);
    // unknown ptype: fault then broken
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let mut pdu = crate::pdu::encode_bind_nak(7, 0);
    pdu[2] = 42;
    assert_eq!(
        pipe.write(&pdu, &mut b),
        Err(PipeError::Protocol(PduError::UnknownPType(42)))
    );
    let m = drain(&mut pipe, 4096);
    let h = Header::parse(&m[0]).unwrap();
    assert_eq!(
        Fault::parse(h.body(&m[0]).unwrap()).unwrap().status,
        status::NCA_S_PROTO_ERROR
    );
    // big-endian data representation: bind_nak
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let mut pdu = srvsvc_client(&[Syntax::Ndr20], 4280).bind(false);
    pdu[4] = 0x00;
    let len = pdu.len() as u16;
    pdu[8..10].copy_from_slice(&len.to_be_bytes());
    pipe.write(&pdu, &mut b).unwrap();
    let m = drain(&mut pipe, 4096);
    assert_eq!(m[0][2], PType::BindNak.to_u8());
    assert_eq!(
        crate::pdu::parse_bind_nak(&m[0][16..]),
        Ok(nak_reason::USER_DATA_NOT_READABLE)
    );
}

#[test]
fn huge_alloc_hint_and_oversize_request_are_refused() {
    let mut b = TestBackend::new(false);
    let limits = PipeLimits {
        max_request_stub: 8192,
        ..PipeLimits::default()
    };
    // alloc_hint announces 4 GiB
    let mut pipe = RpcPipe::with_limits(Interface::Srvsvc, limits, 1);
    let mut c = srvsvc_client(&[Syntax::Ndr20], 4280);
    bind(&mut pipe, &mut c, &mut b);
    let mut f = pdu::encode_request(2, 0, 15, &[0; 64], 4280).remove(0);
    f[3] = PFC_FIRST_FRAG; // not last
    f[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(pipe.write(&f, &mut b), Err(PipeError::BadSequence));
    let m = drain(&mut pipe, 4096);
    let h = Header::parse(&m[0]).unwrap();
    assert_eq!(
        Fault::parse(h.body(&m[0]).unwrap()).unwrap().status,
        status::NCA_S_FAULT_ACCESS_DENIED
    );
    // honest alloc_hint, but the fragments keep coming past the limit
    let mut pipe = RpcPipe::with_limits(Interface::Srvsvc, limits, 1);
    let mut c = srvsvc_client(&[Syntax::Ndr20], 4280);
    bind(&mut pipe, &mut c, &mut b);
    let frags = c.request(15, &vec![0u8; 20_000]).unwrap();
    let mut err = None;
    for f in &frags {
        if let Err(e) = pipe.write(f, &mut b) {
            err = Some(e);
            break;
        }
        assert!(pipe.buffered_input() <= 8192);
    }
    assert_eq!(err, Some(PipeError::BadSequence));
}

#[test]
fn fragment_sequence_errors_break_the_pipe() {
    let mut b = TestBackend::new(false);
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let mut c = srvsvc_client(&[Syntax::Ndr20], 4280);
    bind(&mut pipe, &mut c, &mut b);
    // a middle fragment with no first
    let mut f = pdu::encode_request(3, 0, 15, &[0; 16], 4280).remove(0);
    f[3] = 0;
    assert_eq!(pipe.write(&f, &mut b), Err(PipeError::BadSequence));
    assert!(pipe.is_broken());
    // a different call id in the middle of a call
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    bind(&mut pipe, &mut c, &mut b);
    let mut f1 = pdu::encode_request(3, 0, 15, &[0; 16], 4280).remove(0);
    f1[3] = PFC_FIRST_FRAG;
    pipe.write(&f1, &mut b).unwrap();
    let mut f2 = pdu::encode_request(4, 0, 15, &[0; 16], 4280).remove(0);
    f2[3] = PFC_LAST_FRAG;
    assert_eq!(pipe.write(&f2, &mut b), Err(PipeError::BadSequence));
}

#[test]
fn transceive_returns_one_message_and_overflow() {
    let mut b = TestBackend::new(false);
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let mut c = srvsvc_client(&[Syntax::Ndr20], 4280);
    let mut out = Vec::new();
    let more = pipe
        .transceive(&c.bind(false), 4096, &mut b, &mut out)
        .unwrap();
    assert!(!more);
    c.handle_bind_response(&out).unwrap();
    let req = share_enum_request(Syntax::Ndr20, None, 1, !0, None);
    let f = c.request(opnum::NETR_SHARE_ENUM, &req).unwrap();
    assert_eq!(f.len(), 1);
    let mut out = Vec::new();
    assert!(pipe.transceive(&f[0], 40, &mut b, &mut out).unwrap());
    assert_eq!(out.len(), 40);
    // transceive while data is pending is busy
    assert_eq!(
        pipe.transceive(&f[0], 40, &mut b, &mut Vec::new()),
        Err(PipeError::Busy)
    );
    assert_eq!(
        pipe.read(1 << 20, &mut out),
        ReadOutcome::Data { more: false }
    );
    let stub = c.handle_response(&out).unwrap().unwrap();
    let d = decode_enum_response(&stub, Syntax::Ndr20, InfoClass::Share).unwrap();
    assert_eq!(d.rows().len(), 2);
}

#[test]
fn output_queue_is_bounded() {
    let mut b = TestBackend::new(false);
    let limits = PipeLimits {
        max_queued_output: 2000,
        ..PipeLimits::default()
    };
    let mut pipe = RpcPipe::with_limits(Interface::Srvsvc, limits, 1);
    let mut c = srvsvc_client(&[Syntax::Ndr20], 4280);
    bind(&mut pipe, &mut c, &mut b);
    let req = share_enum_request(Syntax::Ndr20, None, 1, !0, None);
    let mut refused = false;
    for _ in 0..100 {
        let f = c.request(opnum::NETR_SHARE_ENUM, &req).unwrap();
        match pipe.write(&f[0], &mut b) {
            Ok(()) => {}
            Err(PipeError::OutputFull) => {
                refused = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
        assert!(pipe.pending_output() <= 2000 + 4280);
    }
    assert!(refused);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..300), 0..8)) {
        let mut b = TestBackend::new(true);
        let mut pipe = RpcPipe::with_limits(Interface::Srvsvc, PipeLimits {
            max_request_stub: 4096, max_queued_output: 65536, max_frag: 4280 }, 1);
        for c in &chunks {
            let _ = pipe.write(c, &mut b);
            prop_assert!(pipe.buffered_input() <= 65536 + 4096);
            prop_assert!(pipe.pending_output() <= 65536 + 4 * 4280);
        }
        let mut out = Vec::new();
        while pipe.read(1000, &mut out) != ReadOutcome::Empty {}
    }

    #[test]
    fn valid_prefix_then_garbage_never_panics(
        tail in proptest::collection::vec(any::<u8>(), 0..600),
        flip in 0usize..200, val in any::<u8>()) {
        // Start from a well-formed bind + request, mutate one byte, add noise.
        let mut b = TestBackend::new(true);
        let mut pipe = RpcPipe::new(Interface::Srvsvc);
        let mut c = srvsvc_client(&[Syntax::Ndr20, Syntax::Ndr64], 4280);
        let mut bytes = c.bind(true);
        let req = crate::srvsvc::session_enum_request(Syntax::Ndr20, None, Some("\\\\a"), None, 502, 100, Some(0));
        c.handle_bind_response(&{
            let mut p = RpcPipe::new(Interface::Srvsvc);
            p.write(&bytes, &mut b).unwrap();
            drain(&mut p, 4096).remove(0)
        }).unwrap();
        for f in c.request(opnum::NETR_SESSION_ENUM, &req).unwrap() {
            bytes.extend_from_slice(&f);
        }
        let i = flip % bytes.len();
        bytes[i] = val;
        bytes.extend_from_slice(&tail);
        let _ = pipe.write(&bytes, &mut b);
        let mut out = Vec::new();
        while pipe.read(4096, &mut out) != ReadOutcome::Empty {}
    }
}
