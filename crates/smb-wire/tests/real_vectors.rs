//! Every message of the real-client captures in `tests/vectors/` (Samba 4.17 smbd talking to
//! smbclient, rpcclient, smbtorture and impacket; see `tests/vectors/README.md`) parsed with
//! smb-wire: frame splitter -> ProtocolId -> compound chain -> header -> request/response view.
//!
//! The expected values do not come from smb-wire. Each frame is compared field by field with
//! what Wireshark's dissectors decoded from the same bytes (`tests/vectors/tshark/*.tsv`, made
//! by `tests/vectors/make-tshark-tables.sh`), and each vector's command sequence is asserted
//! from the client's documented behaviour as read off tshark's summary lines.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use smb_wire::compound::Compound;
use smb_wire::frame::{Frames, MAX_FRAME_LEN};
use smb_wire::msg::{parse_request, parse_response, FileId, Request, Response};
use smb_wire::protocol_id::{classify, ProtocolId};
use smb_wire::smb1::Smb1NegotiateRequest;
use smb_wire::transform::TransformHeader;
use smb_wire::Command;
use smb_wire::NtStatus;

// ---------------------------------------------------------------------------------------------
// The oracle: tests/vectors/tshark/<vector>.tsv, written by Wireshark's dissectors.
// ---------------------------------------------------------------------------------------------

/// Root of the captured vectors.
fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

/// One row of a tshark table: column name -> value (empty when tshark showed nothing).
#[derive(Debug)]
struct Row {
    fields: HashMap<String, String>,
}

impl Row {
    fn get(&self, col: &str) -> &str {
        self.fields
            .get(col)
            .unwrap_or_else(|| panic!("tshark table has no column {col}"))
    }

    /// A numeric column (decimal or 0x-hex), `None` when empty.
    fn num(&self, col: &str) -> Option<u64> {
        let v = self.get(col);
        if v.is_empty() {
            None
        } else {
            Some(parse_num(v))
        }
    }

    /// A multi-valued numeric column ("1,2,3").
    fn nums(&self, col: &str) -> Vec<u64> {
        let v = self.get(col);
        if v.is_empty() {
            Vec::new()
        } else {
            v.split(',').map(parse_num).collect()
        }
    }
}

fn parse_num(v: &str) -> u64 {
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    }
    .unwrap_or_else(|e| panic!("bad number {v:?} in tshark table: {e}"))
}

/// Reads `tshark/<name>.tsv` into (direction, frame index) -> row.
fn load_oracle(name: &str) -> HashMap<(String, usize), Row> {
    let path = vectors_dir().join("tshark").join(format!("{name}.tsv"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header line").split('\t').collect();
    let mut rows = HashMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            cells.len(),
            header.len(),
            "{}: ragged line {line:?}",
            path.display()
        );
        let fields: HashMap<String, String> = header
            .iter()
            .zip(&cells)
            .map(|(h, c)| (h.to_string(), c.to_string()))
            .collect();
        let key = (
            fields["dir"].clone(),
            fields["index"].parse::<usize>().unwrap(),
        );
        assert!(rows.insert(key, Row { fields }).is_none(), "duplicate row");
    }
    rows
}

/// tshark prints a 16-byte SMB2 FileId as a GUID (first three groups little-endian).
fn guid_to_file_id(s: &str) -> [u8; 16] {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    assert_eq!(hex.len(), 32, "file id {s:?}");
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

/// The NTLMSSP MessageType inside a security buffer, read by hand (MS-NLMP 2.2.1): the
/// buffer is SPNEGO-wrapped, so look for the "NTLMSSP\0" signature.
fn ntlmssp_type(blob: &[u8]) -> Option<u32> {
    let at = blob.windows(8).position(|w| w == b"NTLMSSP\0")?;
    let t = blob.get(at + 8..at + 12)?;
    Some(u32::from_le_bytes(t.try_into().unwrap()))
}
// ---------------------------------------------------------------------------------------------
// Decoding with smb-wire, frame by frame, checked against the oracle.
// ---------------------------------------------------------------------------------------------

/// What one frame held, for the sequence assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Msg {
    Smb1Negotiate,
    Transform {
        session_id: u64,
    },
    Smb2 {
        command: Command,
        response: bool,
        status: NtStatus,
    },
}

/// Short labels for sequence assertions: `NEGOTIATE` for a request, `<NEGOTIATE` for a
/// successful response, `<SESSION_SETUP:0xc0000016` for a response with another status.
fn label(m: &Msg) -> String {
    match m {
        Msg::Smb1Negotiate => "SMB1_NEGOTIATE".into(),
        Msg::Transform { .. } => "TRANSFORM".into(),
        Msg::Smb2 {
            command,
            response: false,
            ..
        } => command.name().into(),
        Msg::Smb2 {
            command,
            response: true,
            status,
        } if *status == NtStatus::SUCCESS => {
            format!("<{}", command.name())
        }
        Msg::Smb2 {
            command,
            response: true,
            status,
        } => {
            format!("<{}:0x{:08x}", command.name(), status.0)
        }
    }
}

/// The messages of one direction of a vector, each with its raw bytes, after checking every
/// frame against the oracle.
struct Stream {
    msgs: Vec<Msg>,
    /// Raw bytes of each frame's single SMB2 message (empty for SMB1 / TRANSFORM frames).
    raw: Vec<Vec<u8>>,
}

impl Stream {
    fn labels(&self) -> Vec<String> {
        self.msgs.iter().map(label).collect()
    }

    /// Parses frame `i` as a request.
    fn request(&self, i: usize) -> Request<'_> {
        parse_request(&self.raw[i]).expect("request").1
    }

    /// Parses frame `i` as a response.
    fn response(&self, i: usize) -> Response<'_> {
        parse_response(&self.raw[i]).expect("response").1
    }
}

/// Both directions of one vector.
struct Vector {
    c2s: Stream,
    s2c: Stream,
}

fn load(name: &str) -> Vector {
    let oracle = load_oracle(name);
    let c2s = decode(name, "c2s", &oracle);
    let s2c = decode(name, "s2c", &oracle);
    assert_eq!(
        c2s.msgs.len() + s2c.msgs.len(),
        oracle.len(),
        "{name}: tshark saw a different number of frames"
    );
    Vector { c2s, s2c }
}

fn decode(name: &str, dir: &str, oracle: &HashMap<(String, usize), Row>) -> Stream {
    let path = vectors_dir().join(format!("{name}.{dir}.bin"));
    let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut frames = Frames::new(&data, MAX_FRAME_LEN);
    let mut stream = Stream {
        msgs: Vec::new(),
        raw: Vec::new(),
    };
    for (i, frame) in frames.by_ref().enumerate() {
        let payload = frame.unwrap_or_else(|e| panic!("{name}.{dir} frame {i}: {e}"));
        let row = oracle
            .get(&(dir.to_string(), i))
            .unwrap_or_else(|| panic!("{name}.{dir} frame {i}: not in the tshark table"));
        let at = format!("{name}.{dir} frame {i}");
        let (msg, raw) = check_frame(payload, row, &at);
        stream.msgs.push(msg);
        stream.raw.push(raw);
    }
    assert_eq!(
        frames.consumed(),
        data.len(),
        "{name}.{dir}: bytes after the last frame"
    );
    stream
}

fn check_frame(payload: &[u8], row: &Row, at: &str) -> (Msg, Vec<u8>) {
    match classify(payload) {
        ProtocolId::Smb1 => {
            assert_eq!(row.get("protocol_id"), "", "{at}: tshark saw SMB2");
            let n = Smb1NegotiateRequest::parse(payload).unwrap_or_else(|e| panic!("{at}: {e}"));
            let ours: Vec<String> = n
                .dialects()
                .map(|d| String::from_utf8(d.to_vec()).unwrap())
                .collect();
            assert_eq!(
                ours.join(","),
                row.get("smb1_dialects"),
                "{at}: SMB1 dialects"
            );
            (Msg::Smb1Negotiate, Vec::new())
        }
        ProtocolId::Transform => {
            assert_eq!(row.num("protocol_id"), Some(0xfd53_4d42), "{at}");
            let t = TransformHeader::parse(payload).unwrap_or_else(|e| panic!("{at}: {e}"));
            assert_eq!(
                Some(u64::from(t.original_message_size())),
                row.num("transform_msg_size"),
                "{at}: OriginalMessageSize"
            );
            assert_eq!(
                t.encrypted().len(),
                t.original_message_size() as usize,
                "{at}"
            );
            assert_eq!(
                Some(t.session_id()),
                row.num("session_id"),
                "{at}: SessionId"
            );
            (
                Msg::Transform {
                    session_id: t.session_id(),
                },
                Vec::new(),
            )
        }
        ProtocolId::Smb2 => {
            assert_eq!(row.num("protocol_id"), Some(0xfe53_4d42), "{at}");
            let chain: Vec<&[u8]> = Compound::new(payload)
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{at}: compound: {e}"));
            // tshark saw no chained flag in any capture: one message per frame.
            assert_eq!(row.num("chained"), Some(0), "{at}");
            assert_eq!(chain.len(), 1, "{at}: compound length");
            (check_smb2(chain[0], row, at), chain[0].to_vec())
        }
        other => panic!("{at}: unexpected protocol {other:?}"),
    }
}

/// FileId bytes as they are on the wire (Persistent then Volatile, little-endian).
fn fid_bytes(f: FileId) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&f.persistent.to_le_bytes());
    b[8..].copy_from_slice(&f.volatile.to_le_bytes());
    b
}

fn assert_fid(f: FileId, row: &Row, at: &str) {
    assert_eq!(
        fid_bytes(f),
        guid_to_file_id(row.get("file_id")),
        "{at}: FileId"
    );
}

fn utf16(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).expect("UTF-16")
}

fn lens(a: &[u8], b: &[u8]) -> Vec<u64> {
    vec![a.len() as u64, b.len() as u64]
}

fn check_smb2(msg: &[u8], row: &Row, at: &str) -> Msg {
    let response = row.num("response") == Some(1);
    let h = if response {
        parse_response(msg)
            .unwrap_or_else(|e| panic!("{at}: {e}"))
            .0
    } else {
        parse_request(msg).unwrap_or_else(|e| panic!("{at}: {e}")).0
    };
    assert_eq!(
        Some(u64::from(h.command_code())),
        row.num("cmd"),
        "{at}: Command"
    );
    assert_eq!(h.is_response(), response, "{at}");
    assert_eq!(
        Some(u64::from(h.is_async())),
        row.num("async"),
        "{at}: async flag"
    );
    assert_eq!(
        Some(u64::from(h.is_signed())),
        row.num("signed"),
        "{at}: signed flag"
    );
    assert_eq!(h.next_command(), 0, "{at}: NextCommand");
    assert_eq!(Some(h.message_id()), row.num("msg_id"), "{at}: MessageId");
    assert_eq!(
        Some(h.session_id()),
        row.num("session_id"),
        "{at}: SessionId"
    );
    assert_eq!(
        h.tree_id().map(u64::from),
        row.num("tree_id"),
        "{at}: TreeId"
    );
    assert_eq!(h.async_id(), row.num("async_id"), "{at}: AsyncId");
    assert_eq!(
        Some(u64::from(h.credit_charge())),
        row.num("credit_charge"),
        "{at}: CreditCharge"
    );
    let credit_col = if response {
        "credits_granted"
    } else {
        "credits_requested"
    };
    assert_eq!(
        Some(u64::from(h.credit())),
        row.num(credit_col),
        "{at}: {credit_col}"
    );
    if response {
        assert_eq!(
            Some(u64::from(h.status().0)),
            row.num("status"),
            "{at}: Status"
        );
        check_response_body(msg, row, at);
    } else {
        check_request_body(msg, row, at);
    }
    Msg::Smb2 {
        command: h.command(),
        response,
        status: h.status(),
    }
}

fn check_request_body(msg: &[u8], row: &Row, at: &str) {
    let (h, r) = parse_request(msg).unwrap();
    match r {
        Request::Negotiate(n) => {
            let d: Vec<u64> = n.dialects().iter().map(u64::from).collect();
            assert_eq!(d, row.nums("dialects"), "{at}: Dialects");
            assert_eq!(usize::from(n.dialect_count()), d.len(), "{at}");
            let c: Vec<u64> = n.contexts().map(|c| u64::from(c.context_type)).collect();
            assert_eq!(
                c,
                row.nums("negotiate_contexts"),
                "{at}: negotiate contexts"
            );
            assert_eq!(
                Some(u64::from(n.security_mode())),
                row.num("security_mode"),
                "{at}"
            );
        }
        Request::SessionSetup(s) => {
            let b = s.security_buffer();
            assert_eq!(
                vec![b.len() as u64],
                row.nums("buffer_lengths"),
                "{at}: SecurityBuffer"
            );
            assert_eq!(
                ntlmssp_type(b).map(u64::from),
                row.num("ntlmssp_type"),
                "{at}: NTLMSSP"
            );
            assert_eq!(
                Some(u64::from(s.security_mode())),
                row.num("security_mode"),
                "{at}"
            );
        }
        Request::TreeConnect(t) => {
            assert_eq!(utf16(t.path()), row.get("tree"), "{at}: Path");
            assert_eq!(
                vec![t.path().len() as u64],
                row.nums("buffer_lengths"),
                "{at}"
            );
        }
        Request::Create(c) => {
            assert_eq!(utf16(c.name()), row.get("filename"), "{at}: Name");
            assert_eq!(
                lens(c.name(), c.contexts_raw()),
                row.nums("buffer_lengths"),
                "{at}"
            );
        }
        Request::Close(c) => assert_fid(c.file_id(), row, at),
        Request::Read(r) => {
            assert_eq!(
                Some(u64::from(r.length())),
                row.num("read_length"),
                "{at}: Length"
            );
            assert_eq!(Some(r.offset()), row.num("file_offset"), "{at}: Offset");
            assert_fid(r.file_id(), row, at);
        }
        Request::Write(w) => {
            assert_eq!(
                Some(u64::from(w.length())),
                row.num("write_length"),
                "{at}: Length"
            );
            assert_eq!(w.data().len() as u32, w.length(), "{at}");
            assert_eq!(Some(w.offset()), row.num("file_offset"), "{at}: Offset");
            assert_fid(w.file_id(), row, at);
        }
        Request::Ioctl(i) => {
            assert_eq!(
                Some(u64::from(i.ctl_code())),
                row.num("ctl_code"),
                "{at}: CtlCode"
            );
            assert_eq!(
                lens(i.input(), i.output()),
                row.nums("buffer_lengths"),
                "{at}"
            );
            assert_eq!(
                Some(u64::from(i.max_output_response())),
                row.num("max_output"),
                "{at}"
            );
            assert_fid(i.file_id(), row, at);
        }
        Request::Logoff(_) | Request::TreeDisconnect(_) | Request::Echo(_) => {}
        other => panic!(
            "{at}: {:?} request not expected in the captures: {other:?}",
            h.command()
        ),
    }
}

fn check_response_body(msg: &[u8], row: &Row, at: &str) {
    let (h, r) = parse_response(msg).unwrap();
    match r {
        Response::Negotiate(n) => {
            assert_eq!(
                vec![u64::from(n.dialect_revision())],
                row.nums("dialects"),
                "{at}"
            );
            let c: Vec<u64> = n.contexts().map(|c| u64::from(c.context_type)).collect();
            assert_eq!(
                c,
                row.nums("negotiate_contexts"),
                "{at}: negotiate contexts"
            );
            let b = n.security_buffer();
            assert_eq!(
                vec![b.len() as u64],
                row.nums("buffer_lengths"),
                "{at}: SecurityBuffer"
            );
            assert_eq!(
                Some(u64::from(n.security_mode())),
                row.num("security_mode"),
                "{at}"
            );
        }
        Response::SessionSetup(s) => {
            let b = s.security_buffer();
            assert_eq!(
                vec![b.len() as u64],
                row.nums("buffer_lengths"),
                "{at}: SecurityBuffer"
            );
            assert_eq!(
                ntlmssp_type(b).map(u64::from),
                row.num("ntlmssp_type"),
                "{at}: NTLMSSP"
            );
            assert_eq!(
                Some(u64::from(s.session_flags())),
                row.num("session_flags"),
                "{at}"
            );
        }
        Response::TreeConnect(t) => {
            assert_eq!(
                Some(u64::from(t.share_type())),
                row.num("share_type"),
                "{at}: ShareType"
            );
        }
        Response::Create(c) => assert_fid(c.file_id(), row, at),
        Response::Read(r) => {
            assert_eq!(
                vec![r.data().len() as u64],
                row.nums("buffer_lengths"),
                "{at}: data"
            );
        }
        Response::Ioctl(i) => {
            assert_eq!(
                Some(u64::from(i.ctl_code())),
                row.num("ctl_code"),
                "{at}: CtlCode"
            );
            assert_eq!(
                lens(i.input(), i.output()),
                row.nums("buffer_lengths"),
                "{at}"
            );
            assert_fid(i.file_id(), row, at);
        }
        Response::Error(e) => {
            // The error response (MS-SMB2 2.2.2): tshark shows no buffer beyond at most an
            // empty one (it reads a 9-byte SESSION_SETUP error as an empty session response).
            assert!(
                h.status() != NtStatus::SUCCESS,
                "{at}: error body with SUCCESS"
            );
            assert_eq!(e.byte_count(), 0, "{at}");
            assert!(row.nums("buffer_lengths").iter().all(|&l| l == 0), "{at}");
        }
        Response::Close(_)
        | Response::Write(_)
        | Response::Logoff(_)
        | Response::TreeDisconnect(_)
        | Response::Echo(_) => {}
        other => panic!("{at}: {:?} response not expected: {other:?}", h.command()),
    }
}

// ---------------------------------------------------------------------------------------------
// Per-vector assertions: command sequences and the fields that matter.
// ---------------------------------------------------------------------------------------------

const MORE: &str = "0xc0000016"; // STATUS_MORE_PROCESSING_REQUIRED
const PENDING: &str = "0x00000103"; // STATUS_PENDING

fn seq(items: &[&str]) -> Vec<String> {
    items
        .iter()
        .map(|s| s.replace("MORE", MORE).replace("PENDING", PENDING))
        .collect()
}

/// The srvsvc pipe traffic of `smbclient -L` over IOCTL.
const SMBCLIENT_L_TAIL_C2S: &[&str] = &[
    "TREE_CONNECT",
    "CREATE",
    "IOCTL",
    "IOCTL",
    "CLOSE",
    "TREE_DISCONNECT",
];

/// A DCE/RPC PDU's packet type (C706 12.6.3.1: rpc_vers 5, rpc_vers_minor, PTYPE).
fn rpc_ptype(pdu: &[u8]) -> u8 {
    assert_eq!(pdu[0], 5, "DCE/RPC version");
    pdu[2]
}

/// The opnum of a DCE/RPC request PDU (C706 12.6.4.9: 16-byte common header, alloc_hint,
/// p_cont_id, opnum).
fn rpc_opnum(pdu: &[u8]) -> u16 {
    assert_eq!(rpc_ptype(pdu), 0, "not a request");
    u16::from_le_bytes([pdu[22], pdu[23]])
}

fn contains_utf16(hay: &[u8], needle: &str) -> bool {
    let n: Vec<u8> = needle.encode_utf16().flat_map(u16::to_le_bytes).collect();
    hay.windows(n.len()).any(|w| w == n.as_slice())
}

#[test]
fn every_vector_has_an_oracle_and_parses() {
    let mut names: Vec<String> = fs::read_dir(vectors_dir())
        .expect("tests/vectors")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".c2s.bin").map(str::to_string)
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 10, "vectors: {names:?}");
    let mut total = 0;
    for name in &names {
        assert!(
            vectors_dir().join(format!("{name}.s2c.bin")).exists(),
            "{name}: no s2c"
        );
        let v = load(name);
        assert!(!v.c2s.msgs.is_empty() && !v.s2c.msgs.is_empty(), "{name}");
        total += v.c2s.msgs.len() + v.s2c.msgs.len();
    }
    // 35+20+27+... frames, counted independently by tshark (rows in tshark/*.tsv).
    let rows: usize = names.iter().map(|n| load_oracle(n).len()).sum();
    assert_eq!(total, rows);
}

#[test]
fn smbclient_list_anonymous() {
    let v = load("smbclient-L-anon-0");
    let mut c2s = seq(&[
        "NEGOTIATE",
        "SESSION_SETUP",
        "SESSION_SETUP",
        "SESSION_SETUP",
        "SESSION_SETUP",
    ]);
    c2s.extend(seq(SMBCLIENT_L_TAIL_C2S));
    assert_eq!(v.c2s.labels(), c2s);
    assert_eq!(
        v.s2c.labels(),
        seq(&[
            "<NEGOTIATE",
            "<SESSION_SETUP:MORE",
            "<SESSION_SETUP:0xc000006d", // STATUS_LOGON_FAILURE for root without a password
            "<SESSION_SETUP:MORE",
            "<SESSION_SETUP",
            "<TREE_CONNECT",
            "<CREATE",
            "<IOCTL:PENDING",
            "<IOCTL",
            "<IOCTL",
            "<CLOSE",
            "<TREE_DISCONNECT",
        ])
    );
    // NEGOTIATE: 2.0.2 .. 3.1.1 offered with four contexts, 3.1.1 chosen.
    let Request::Negotiate(n) = v.c2s.request(0) else {
        panic!()
    };
    assert_eq!(
        n.dialects().iter().collect::<Vec<_>>(),
        [0x0202, 0x0210, 0x0300, 0x0302, 0x0311]
    );
    assert_eq!(n.contexts().count(), 4);
    let Response::Negotiate(n) = v.s2c.response(0) else {
        panic!()
    };
    assert_eq!(n.dialect_revision(), 0x0311);
    // The failed and the anonymous login use different SessionIds.
    let sid = |i: usize| {
        smb_wire::Header::new_checked(&v.s2c.raw[i][..])
            .unwrap()
            .session_id()
    };
    assert_ne!(sid(1), sid(3));
    assert_ne!(sid(3), 0);
    // TREE_CONNECT to IPC$ answered with a pipe share.
    let Request::TreeConnect(t) = v.c2s.request(5) else {
        panic!()
    };
    assert!(t.is_ipc());
    assert_eq!(utf16(t.path()), r"\\127.0.0.1\IPC$");
    let Response::TreeConnect(t) = v.s2c.response(5) else {
        panic!()
    };
    assert_eq!(t.share_type(), 0x02);
    // CREATE srvsvc, then the RPC bind and NetrShareEnum (opnum 15) over FSCTL_PIPE_TRANSCEIVE.
    let Request::Create(c) = v.c2s.request(6) else {
        panic!()
    };
    assert!(c.name_is("srvsvc"));
    let Request::Ioctl(bind) = v.c2s.request(7) else {
        panic!()
    };
    assert_eq!(bind.ctl_code(), 0x0011_C017);
    assert_eq!(rpc_ptype(bind.input()), 11); // bind
    let Request::Ioctl(call) = v.c2s.request(8) else {
        panic!()
    };
    assert_eq!(rpc_opnum(call.input()), 15); // NetrShareEnum
                                             // The interim response is async; the final one carries the same AsyncId and the bind_ack.
    let interim = smb_wire::Header::new_checked(&v.s2c.raw[7][..]).unwrap();
    let fin = smb_wire::Header::new_checked(&v.s2c.raw[8][..]).unwrap();
    assert!(interim.is_async() && fin.is_async());
    assert_eq!(interim.async_id(), fin.async_id());
    let Response::Ioctl(ack) = v.s2c.response(8) else {
        panic!()
    };
    assert_eq!(rpc_ptype(ack.output()), 12); // bind_ack
    let Response::Ioctl(shares) = v.s2c.response(9) else {
        panic!()
    };
    assert_eq!(rpc_ptype(shares.output()), 2); // response
    assert!(contains_utf16(shares.output(), "IPC$") && contains_utf16(shares.output(), "tmp"));
}

#[test]
fn smbclient_list_as_user_smb311_and_signed() {
    for (name, signing_required) in [
        ("smbclient-L-user-smb311-0", false),
        ("smbclient-L-user-signed-0", true),
    ] {
        let v = load(name);
        let mut c2s = seq(&["NEGOTIATE", "SESSION_SETUP", "SESSION_SETUP"]);
        c2s.extend(seq(SMBCLIENT_L_TAIL_C2S));
        assert_eq!(v.c2s.labels(), c2s, "{name}");
        assert_eq!(
            v.s2c.labels(),
            seq(&[
                "<NEGOTIATE",
                "<SESSION_SETUP:MORE",
                "<SESSION_SETUP",
                "<TREE_CONNECT",
                "<CREATE",
                "<IOCTL",
                "<IOCTL",
                "<CLOSE",
                "<TREE_DISCONNECT",
            ]),
            "{name}"
        );
        let Request::Negotiate(n) = v.c2s.request(0) else {
            panic!()
        };
        assert_eq!(n.security_mode() & 0x0002 != 0, signing_required, "{name}");
        // The signed variant signs every request after the login; the other only TREE_CONNECT.
        let signed: Vec<bool> = v.c2s.raw[3..]
            .iter()
            .map(|m| smb_wire::Header::new_checked(&m[..]).unwrap().is_signed())
            .collect();
        let want = if signing_required {
            vec![true; 6]
        } else {
            vec![true, false, false, false, false, false]
        };
        assert_eq!(signed, want, "{name}");
        // The NTLMSSP AUTHENTICATE message of a real user is larger than the anonymous one.
        let Request::SessionSetup(s) = v.c2s.request(2) else {
            panic!()
        };
        assert_eq!(ntlmssp_type(s.security_buffer()), Some(3));
        assert_eq!(s.security_buffer().len(), 416, "{name}");
    }
}

#[test]
fn smbclient_list_smb202_validates_negotiate() {
    let v = load("smbclient-L-user-smb202-0");
    let mut c2s = seq(&[
        "NEGOTIATE",
        "SESSION_SETUP",
        "SESSION_SETUP",
        "TREE_CONNECT",
        "IOCTL",
    ]);
    c2s.extend(seq(&SMBCLIENT_L_TAIL_C2S[1..]));
    assert_eq!(v.c2s.labels(), c2s);
    let Request::Negotiate(n) = v.c2s.request(0) else {
        panic!()
    };
    assert_eq!(n.dialects().iter().collect::<Vec<_>>(), [0x0202]);
    assert_eq!(n.contexts().count(), 0);
    let Response::Negotiate(n) = v.s2c.response(0) else {
        panic!()
    };
    assert_eq!(n.dialect_revision(), 0x0202);
    // FSCTL_VALIDATE_NEGOTIATE_INFO (MS-SMB2 3.3.5.15.12) on the all-ones FileId.
    let Request::Ioctl(i) = v.c2s.request(4) else {
        panic!()
    };
    assert_eq!(i.ctl_code(), 0x0014_0204);
    assert_eq!(i.file_id(), FileId::RELATED);
    let vni = smb_wire::msg::ioctl::ValidateNegotiateInfoRequest::parse(i.input()).unwrap();
    assert_eq!(vni.dialects.iter().collect::<Vec<_>>(), [0x0202]);
    let Response::Ioctl(o) = v.s2c.response(4) else {
        panic!()
    };
    let vno = smb_wire::msg::ioctl::ValidateNegotiateInfoResponse::parse(o.output()).unwrap();
    assert_eq!(vno.dialect, 0x0202);
}

#[test]
fn smbclient_ipc_exit() {
    let v = load("smbclient-ipc-exit-0");
    assert_eq!(
        v.c2s.labels(),
        seq(&[
            "NEGOTIATE",
            "SESSION_SETUP",
            "SESSION_SETUP",
            "TREE_CONNECT",
            "TREE_DISCONNECT"
        ])
    );
    assert_eq!(
        v.s2c.labels(),
        seq(&[
            "<NEGOTIATE",
            "<SESSION_SETUP:MORE",
            "<SESSION_SETUP",
            "<TREE_CONNECT",
            "<TREE_DISCONNECT"
        ])
    );
}

#[test]
fn rpcclient_srvinfo_and_netshareenumall() {
    let v = load("rpcclient-srvinfo-0");
    assert_eq!(
        v.c2s.labels(),
        seq(&[
            "NEGOTIATE",
            "SESSION_SETUP",
            "SESSION_SETUP",
            "TREE_CONNECT",
            "CREATE",
            "IOCTL",
            "IOCTL",
            "CREATE",
            "IOCTL",
            "IOCTL",
            "CLOSE",
            "CLOSE",
            "TREE_DISCONNECT",
        ])
    );
    // Responses to pipelined requests arrive in the server's order, not the client's.
    assert_eq!(
        v.s2c.labels(),
        seq(&[
            "<NEGOTIATE",
            "<SESSION_SETUP:MORE",
            "<SESSION_SETUP",
            "<TREE_CONNECT",
            "<CREATE",
            "<IOCTL",
            "<IOCTL",
            "<CREATE",
            "<IOCTL:PENDING",
            "<IOCTL",
            "<IOCTL",
            "<CLOSE",
            "<CLOSE",
            "<TREE_DISCONNECT",
        ])
    );
    let Request::Ioctl(i) = v.c2s.request(6) else {
        panic!()
    };
    assert_eq!(rpc_opnum(i.input()), 21); // NetrServerGetInfo
    let Request::Ioctl(i) = v.c2s.request(9) else {
        panic!()
    };
    assert_eq!(rpc_opnum(i.input()), 15); // NetrShareEnum
                                          // Two different pipe handles on the same tree.
    let (Response::Create(a), Response::Create(b)) = (v.s2c.response(4), v.s2c.response(7)) else {
        panic!()
    };
    assert_ne!(a.file_id(), b.file_id());
}

#[test]
fn impacket_starts_with_smb1_and_uses_write_read() {
    let v = load("impacket-anon-0");
    assert_eq!(
        v.c2s.labels(),
        seq(&[
            "SMB1_NEGOTIATE",
            "NEGOTIATE",
            "SESSION_SETUP",
            "SESSION_SETUP",
            "TREE_CONNECT",
            "CREATE",
            "WRITE",
            "READ",
            "WRITE",
            "READ",
            "LOGOFF",
            "LOGOFF",
        ])
    );
    assert_eq!(
        v.s2c.labels(),
        seq(&[
            "<NEGOTIATE",
            "<NEGOTIATE",
            "<SESSION_SETUP:MORE",
            "<SESSION_SETUP",
            "<TREE_CONNECT",
            "<CREATE",
            "<WRITE",
            "<READ",
            "<WRITE",
            "<READ",
            "<LOGOFF",
            "<LOGOFF:0xc0000203", // STATUS_USER_SESSION_DELETED
        ])
    );
    // The SMB1 multi-protocol negotiate is answered with SMB2 dialect 2.??? (MS-SMB2 3.3.5.3.1).
    let Response::Negotiate(n) = v.s2c.response(0) else {
        panic!()
    };
    assert_eq!(n.dialect_revision(), 0x02FF);
    let Request::Negotiate(n) = v.c2s.request(1) else {
        panic!()
    };
    assert_eq!(
        n.dialects().iter().collect::<Vec<_>>(),
        [0x0202, 0x0210, 0x0300]
    );
    let Response::Negotiate(n) = v.s2c.response(1) else {
        panic!()
    };
    assert_eq!(n.dialect_revision(), 0x0300);
    // The DCE/RPC bind goes out in a WRITE at offset 0 and the answer comes from a 1 MiB READ.
    let Request::Write(w) = v.c2s.request(6) else {
        panic!()
    };
    assert_eq!((rpc_ptype(w.data()), w.offset()), (11, 0));
    let Request::Read(r) = v.c2s.request(7) else {
        panic!()
    };
    assert_eq!(r.length(), 1_048_576);
    let Response::Read(r) = v.s2c.response(9) else {
        panic!()
    };
    assert!(contains_utf16(r.data(), "IPC$"));
    // The second LOGOFF names no session any more.
    let last = smb_wire::Header::new_checked(&v.c2s.raw[11][..]).unwrap();
    assert_eq!(last.session_id(), 0);
}

#[test]
fn impacket_user_session_is_encrypted() {
    let v = load("impacket-user-0");
    let mut c2s = seq(&[
        "SMB1_NEGOTIATE",
        "NEGOTIATE",
        "SESSION_SETUP",
        "SESSION_SETUP",
    ]);
    c2s.extend(std::iter::repeat("TRANSFORM".to_string()).take(8));
    assert_eq!(v.c2s.labels(), c2s);
    let Response::SessionSetup(s) = v.s2c.response(3) else {
        panic!()
    };
    let Msg::Smb2 { .. } = v.s2c.msgs[3] else {
        panic!()
    };
    let sid = smb_wire::Header::new_checked(&v.s2c.raw[3][..])
        .unwrap()
        .session_id();
    assert_ne!(sid, 0);
    assert_eq!(s.session_flags(), 0);
    // Every TRANSFORM carries the session's id, except the client's last one (SessionId 0).
    let ids: Vec<u64> = v
        .c2s
        .msgs
        .iter()
        .chain(&v.s2c.msgs)
        .filter_map(|m| match m {
            Msg::Transform { session_id } => Some(*session_id),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 8 + 7);
    assert_eq!(ids.iter().filter(|&&i| i == sid).count(), 14);
    assert_eq!(ids[7], 0);
}

#[test]
fn smbtorture_two_logoff() {
    for name in ["smbtorture-two-logoff-0", "smbtorture-two-logoff-1"] {
        let v = load(name);
        assert_eq!(
            v.c2s.labels(),
            seq(&[
                "NEGOTIATE",
                "SESSION_SETUP",
                "SESSION_SETUP",
                "TREE_CONNECT",
                "LOGOFF",
                "ECHO"
            ]),
            "{name}"
        );
        assert_eq!(
            v.s2c.labels(),
            seq(&[
                "<NEGOTIATE",
                "<SESSION_SETUP:MORE",
                "<SESSION_SETUP",
                "<TREE_CONNECT",
                "<LOGOFF",
                "<ECHO",
            ]),
            "{name}"
        );
        // ECHO after LOGOFF is a connection keep-alive: no session, no tree.
        let echo = smb_wire::Header::new_checked(&v.c2s.raw[5][..]).unwrap();
        assert_eq!((echo.session_id(), echo.tree_id()), (0, Some(0)), "{name}");
    }
    // The two connections share one ClientGuid (the point of the test) but not a session.
    let a = load("smbtorture-two-logoff-0");
    let b = load("smbtorture-two-logoff-1");
    let (Request::Negotiate(na), Request::Negotiate(nb)) = (a.c2s.request(0), b.c2s.request(0))
    else {
        panic!()
    };
    assert_eq!(na.client_guid(), nb.client_guid());
    let sid = |v: &Vector| {
        smb_wire::Header::new_checked(&v.s2c.raw[2][..])
            .unwrap()
            .session_id()
    };
    assert_ne!(sid(&a), sid(&b));
}
