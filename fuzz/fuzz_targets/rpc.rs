//! Fuzz target: the srvsvc named pipe (smb-rpc) through its public API.
//!
//! The input is a sequence of operations on one `RpcPipe`, the way SMB2
//! WRITE, READ and FSCTL_PIPE_TRANSCEIVE reach it: arbitrary byte-stream
//! writes (PDU parsing, partial PDUs, fragment reassembly, the bind /
//! alter_context / request state machine), reads of arbitrary sizes
//! (message-mode reads, STATUS_BUFFER_OVERFLOW), transceives, and
//! well-framed requests with arbitrary opnum and stub (srvsvc request
//! decoding, NDR20 and NDR64). The stubs also go straight to
//! `srvsvc::dispatch`, and every PDU parser sees the raw bytes.
//!
//! Checks: nothing panics; the pipe's memory stays within the bounds its
//! documentation gives (`smb_rpc::pipe`): buffered input at most one
//! fragment plus `max_request_stub`, a refused write changes nothing, and
//! output grows by at most twice the bytes written beyond
//! `max_queued_output`; every message read is one whole PDU whose
//! `frag_length` is its length; a broken pipe stays broken.
//!
//! Input layout: byte 0 = setup (bit 0 admin caller, bit 1 small limits,
//! bits 2-3 bind first with NDR20 / NDR64 / both), then operations, each an
//! op byte and a little-endian u16 length followed by that many bytes (cut
//! at the end of the input). `fuzz/seeds/rpc` holds seeds built from the
//! impacket vectors of crates/smb-rpc/tests/vectors by
//! `fuzz/seeds/make_rpc_seeds.py`.
//!
//! `cd fuzz && mkdir -p corpus/rpc && cargo +nightly fuzz run -s none rpc corpus/rpc seeds/rpc -- -runs=10000000 -max_len=4096`
#![no_main]

use libfuzzer_sys::fuzz_target;
use smb_rpc::client::RpcClient;
use smb_rpc::ndr::Syntax;
use smb_rpc::pdu::{self, BindAck, Fault, Header, Response, HEADER_LEN};
use smb_rpc::srvsvc::{self, stype};
use smb_rpc::{
    CallerInfo, Interface, PipeError, PipeLimits, ReadOutcome, RpcPipe, ServerInfo, ShareInfo,
    SrvConnectionInfo, SrvSessionInfo, SrvsvcBackend,
};

/// A backend with a little of everything, so every level has rows to encode.
struct Backend {
    admin: bool,
}

impl SrvsvcBackend for Backend {
    fn caller(&self) -> CallerInfo {
        CallerInfo {
            user: if self.admin {
                "admin".into()
            } else {
                String::new()
            },
            is_admin: self.admin,
            authenticated: self.admin,
        }
    }
    fn server_info(&self) -> ServerInfo {
        ServerInfo::windows_like("SMBCORE")
    }
    fn shares(&self) -> Vec<ShareInfo> {
        let mut data = ShareInfo::ipc();
        data.name = "data".into();
        data.share_type = stype::DISKTREE;
        data.comment = "Data files".into();
        data.path = "C:\\data".into();
        vec![ShareInfo::ipc(), data]
    }
    fn sessions(&self) -> Vec<SrvSessionInfo> {
        (0..3)
            .map(|i| SrvSessionInfo {
                client: format!("10.0.0.{i}"),
                user: format!("user{i}"),
                num_opens: i,
                time_secs: 100 * i,
                idle_secs: i,
                is_guest: i == 2,
                client_type: "SMB 3.1.1".into(),
                transport: "\\Device\\NetbiosSmb".into(),
            })
            .collect()
    }
    fn delete_sessions(&mut self, client: Option<&str>, user: Option<&str>) -> u32 {
        u32::from(client.is_some()) + u32::from(user.is_some())
    }
    fn connections(&self, qualifier: &str) -> Vec<SrvConnectionInfo> {
        vec![SrvConnectionInfo {
            id: 1,
            conn_type: stype::IPC,
            num_opens: 1,
            num_users: 1,
            time_secs: 5,
            user: "admin".into(),
            netname: qualifier.chars().take(64).collect(),
        }]
    }
}

/// Every parser of smb-rpc on raw bytes.
fn parse_everything(b: &[u8]) {
    if let Ok(h) = Header::parse(b) {
        if let Ok(body) = h.body(b) {
            let _ = pdu::Bind::parse(body);
            let _ = BindAck::parse(body);
            let _ = pdu::Request::parse(&h, body);
            let _ = Response::parse(body);
            let _ = Fault::parse(body);
            let _ = pdu::parse_bind_nak(body);
        }
    }
    let _ = Header::peek_frag_length(b);
}

/// One whole PDU per message read.
fn check_message(m: &[u8]) {
    let h = Header::parse(m).expect("the pipe emitted a PDU that does not parse");
    assert_eq!(
        usize::from(h.frag_length),
        m.len(),
        "frag_length is the message length"
    );
    assert!(h.ptype().is_some());
}

struct Harness {
    pipe: RpcPipe,
    backend: Backend,
    limits: PipeLimits,
    /// The message being read (a read may return part of it).
    msg: Vec<u8>,
    /// The last whole message read, for the client half.
    last: Vec<u8>,
}

impl Harness {
    fn read(&mut self, max: usize) -> ReadOutcome {
        let before = self.pipe.pending_output();
        let had = self.msg.len();
        let r = self.pipe.read(max, &mut self.msg);
        let got = self.msg.len() - had;
        assert!(got <= max);
        assert_eq!(self.pipe.pending_output(), before - got);
        match r {
            ReadOutcome::Empty => {
                assert_eq!(before, 0);
                assert!(self.msg.is_empty(), "no message left half read");
            }
            ReadOutcome::Data { more: false } => {
                check_message(&self.msg);
                self.last = std::mem::take(&mut self.msg);
            }
            ReadOutcome::Data { more: true } => assert!(self.pipe.pending_output() > 0),
        }
        r
    }

    fn drain(&mut self, chunk: usize) {
        let chunk = chunk.max(1);
        while self.read(chunk) != ReadOutcome::Empty {}
    }

    /// Runs `f` (a write or transceive of `input`) and checks the bounds.
    fn checked(&mut self, input: &[u8], f: impl FnOnce(&mut Self) -> Result<(), PipeError>) {
        let was_broken = self.pipe.is_broken();
        let pending = self.pipe.pending_output();
        let buffered = self.pipe.buffered_input();
        let r = f(self);
        if was_broken {
            assert!(r.is_err(), "a broken pipe takes no more writes");
        }
        if matches!(
            r,
            Err(PipeError::Broken | PipeError::OutputFull | PipeError::Busy)
        ) {
            assert_eq!(
                self.pipe.buffered_input(),
                buffered,
                "a refused write keeps nothing"
            );
        }
        if matches!(r, Err(PipeError::OutputFull)) {
            assert!(pending > self.limits.max_queued_output);
        }
        if matches!(r, Err(PipeError::Protocol(_) | PipeError::BadSequence)) {
            assert!(self.pipe.is_broken(), "a stream error breaks the pipe");
        }
        if self.pipe.is_broken() {
            assert_eq!(
                self.pipe.buffered_input(),
                0,
                "a broken pipe holds no input"
            );
        }
        assert!(
            self.pipe.buffered_input() < usize::from(u16::MAX) + self.limits.max_request_stub,
            "buffered input {} over one fragment plus max_request_stub",
            self.pipe.buffered_input()
        );
        assert!(
            self.pipe.pending_output()
                <= pending.max(self.limits.max_queued_output) + 2 * input.len(),
            "output grew from {pending} to {} on a {}-byte write",
            self.pipe.pending_output(),
            input.len()
        );
    }

    fn write(&mut self, input: &[u8]) {
        self.checked(input, |h| h.pipe.write(input, &mut h.backend));
    }

    fn transceive(&mut self, input: &[u8], max: usize) {
        // Transceive reads one message (or its start) into a fresh buffer.
        if !self.msg.is_empty() {
            return;
        }
        let mut out = Vec::new();
        let mut more = false;
        self.checked(input, |h| {
            more = h.pipe.transceive(input, max, &mut h.backend, &mut out)?;
            Ok(())
        });
        assert!(out.len() <= max);
        if !out.is_empty() && !more {
            check_message(&out);
            self.last = out;
        } else if more {
            // The rest of that message comes with the next reads.
            self.msg = out;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut rest)) = data.split_first() else {
        return;
    };
    let limits = if setup & 2 != 0 {
        PipeLimits {
            max_request_stub: 4096,
            max_queued_output: 2048,
            max_frag: 1432,
        }
    } else {
        PipeLimits::default()
    };
    let mut h = Harness {
        pipe: RpcPipe::with_limits(Interface::Srvsvc, limits, 0x1234),
        backend: Backend {
            admin: setup & 1 != 0,
        },
        limits,
        msg: Vec::new(),
        last: Vec::new(),
    };
    let syntaxes: &[Syntax] = match (setup >> 2) & 3 {
        1 => &[Syntax::Ndr20],
        2 => &[Syntax::Ndr64],
        3 => &[Syntax::Ndr20, Syntax::Ndr64],
        _ => &[],
    };
    let mut client = RpcClient::new(
        Interface::Srvsvc.syntax_id(),
        &[Syntax::Ndr20, Syntax::Ndr64],
        4280,
    );
    let mut syntax = Syntax::Ndr20;
    if !syntaxes.is_empty() {
        let mut c = RpcClient::new(Interface::Srvsvc.syntax_id(), syntaxes, 4280);
        let bind = c.bind(setup & 16 != 0);
        h.write(&bind);
        let mut ack = Vec::new();
        assert!(matches!(
            h.pipe.read(1 << 16, &mut ack),
            ReadOutcome::Data { more: false }
        ));
        let (_, s) = c
            .handle_bind_response(&ack)
            .expect("our own bind is accepted");
        syntax = s;
        client = c;
    }
    let mut call_id = 1000u32;
    while let Some((&op, tail)) = rest.split_first() {
        let (len, tail) = match tail {
            [a, b, t @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), t),
            _ => (0, &[][..]),
        };
        let take = len.min(tail.len());
        let (arg, tail) = tail.split_at(take);
        rest = tail;
        parse_everything(arg);
        match op % 6 {
            0 => h.write(arg),
            1 => {
                // A read of `len` bytes (a zero-byte read included).
                let _ = h.read(len);
            }
            2 => {
                let max = usize::from(arg.first().copied().unwrap_or(0)) * 64;
                h.transceive(arg, max);
            }
            3 => {
                // A well-framed request: opnum, context id and fragment size
                // from the first bytes, the rest as stub.
                let [opnum, ctx, frag, stub @ ..] = arg else {
                    continue;
                };
                let opnum = u16::from(*opnum % 32);
                let max_frag = HEADER_LEN as u16 + 16 + u16::from(*frag) * 16;
                let _ = srvsvc::dispatch(opnum, stub, syntax, &mut h.backend);
                call_id = call_id.wrapping_add(1);
                for f in pdu::encode_request(call_id, u16::from(*ctx % 3), opnum, stub, max_frag) {
                    h.write(&f);
                }
            }
            4 => h.drain(len),
            _ => {
                // The client half parses the last message and the argument.
                let _ = client.handle_response(&h.last);
                let _ = client.handle_response(arg);
                let _ = client.handle_bind_response(arg);
            }
        }
    }
    h.drain(4096);
    assert_eq!(h.pipe.pending_output(), 0);
});
