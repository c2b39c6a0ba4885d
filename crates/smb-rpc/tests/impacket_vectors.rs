//! Interop: request PDUs encoded by impacket (see `impacket_vectors.py` and
//! `vectors/README.md`) are fed to [`RpcPipe`]; the responses must decode.
//! With `SMB_RPC_VECTOR_OUT=<dir>` the responses are written there, for
//! `impacket_vectors.py check` to decode them with impacket in turn.

use std::path::{Path, PathBuf};

use smb_rpc::ndr::{NdrReader, Syntax, NDR20_UUID, NDR64_UUID};
use smb_rpc::pdu::{result, BindAck, Header, PType, Response};
use smb_rpc::srvsvc::{
    decode_enum_response, decode_info_response, stype, werr, InfoClass, ServerInfo,
    SessionEnumRequest, ShareEnumRequest, SV102_DISC,
};
use smb_rpc::{
    CallerInfo, Interface, ReadOutcome, RpcPipe, ShareInfo, SrvConnectionInfo, SrvSessionInfo,
    SrvsvcBackend,
};

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
        let mut s = ServerInfo::windows_like("SMBCORE");
        s.autodisconnect_minutes = 42;
        s
    }
    fn shares(&self) -> Vec<ShareInfo> {
        let mut data = ShareInfo::ipc();
        data.name = "data".into();
        data.share_type = stype::DISKTREE;
        data.comment = "Data files".into();
        vec![ShareInfo::ipc(), data]
    }
    fn sessions(&self) -> Vec<SrvSessionInfo> {
        vec![
            SrvSessionInfo {
                client: "10.0.0.5".into(),
                user: "alice".into(),
                time_secs: 100,
                idle_secs: 7,
                ..Default::default()
            },
            SrvSessionInfo {
                client: "WS01".into(),
                user: "bob".into(),
                time_secs: 50,
                idle_secs: 50,
                is_guest: true,
                ..Default::default()
            },
        ]
    }
    fn delete_sessions(&mut self, _: Option<&str>, _: Option<&str>) -> u32 {
        0
    }
    fn connections(&self, _: &str) -> Vec<SrvConnectionInfo> {
        Vec::new()
    }
}

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(vectors().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn save(name: &str, data: &[u8]) {
    if let Some(dir) = std::env::var_os("SMB_RPC_VECTOR_OUT") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(Path::new(&dir).join(name), data).unwrap();
    }
}

/// Writes `input` and returns every queued message, concatenated.
fn exchange(pipe: &mut RpcPipe, backend: &mut Backend, input: &[u8]) -> Vec<u8> {
    pipe.write(input, backend).unwrap();
    let mut out = Vec::new();
    while pipe.read(1 << 16, &mut out) != ReadOutcome::Empty {}
    out
}

/// Splits concatenated response PDUs and joins their stubs.
fn stub_of(mut data: &[u8]) -> Vec<u8> {
    let mut stub = Vec::new();
    while !data.is_empty() {
        let h = Header::parse(data).unwrap();
        assert_eq!(h.ptype(), Some(PType::Response));
        let (pdu, rest) = data.split_at(usize::from(h.frag_length));
        stub.extend_from_slice(Response::parse(h.body(pdu).unwrap()).unwrap().stub);
        data = rest;
    }
    stub
}

/// The request stub (single fragment) of an impacket vector.
fn request_stub(pdu: &[u8]) -> Vec<u8> {
    let h = Header::parse(pdu).unwrap();
    smb_rpc::pdu::Request::parse(&h, h.body(pdu).unwrap())
        .unwrap()
        .stub
        .to_vec()
}

fn run(name: &str, syntax: Syntax) {
    let mut backend = Backend { admin: true };
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let ack = exchange(
        &mut pipe,
        &mut backend,
        &vector(&format!("{name}_bind.bin")),
    );
    save(&format!("{name}_bind.bin"), &ack);
    let h = Header::parse(&ack).unwrap();
    assert_eq!(h.ptype(), Some(PType::BindAck));
    let ack = BindAck::parse(h.body(&ack).unwrap()).unwrap();
    assert_eq!(ack.results.len(), 1);
    assert_eq!(ack.results[0].result, result::ACCEPTANCE);
    let want = match syntax {
        Syntax::Ndr20 => NDR20_UUID,
        Syntax::Ndr64 => NDR64_UUID,
    };
    assert_eq!(ack.results[0].transfer_syntax.uuid, want);
    assert_eq!(ack.sec_addr, "\\PIPE\\srvsvc");

    // impacket's own request stubs decode with our decoders.
    let req = vector(&format!("{name}_share_enum_1.bin"));
    let stub = request_stub(&req);
    let d = ShareEnumRequest::decode(&mut NdrReader::new(&stub, syntax)).unwrap();
    assert_eq!(d.server.as_deref(), Some("\\\\127.0.0.1"));
    assert_eq!((d.level, d.pref_max, d.resume), (1, u32::MAX, Some(0)));
    let req = vector(&format!("{name}_session_enum_10.bin"));
    let stub = request_stub(&req);
    let d = SessionEnumRequest::decode(&mut NdrReader::new(&stub, syntax)).unwrap();
    assert_eq!((d.level, d.client, d.user), (10, None, None));

    for base in ["share_enum_1", "share_enum_1_frag16"] {
        let input = vector(&format!("{name}_{base}.bin"));
        let out = exchange(&mut pipe, &mut backend, &input);
        save(&format!("{name}_{base}.bin"), &out);
        let d = decode_enum_response(&stub_of(&out), syntax, InfoClass::Share).unwrap();
        assert_eq!(d.status, werr::SUCCESS);
        let names: Vec<_> = d.rows().iter().map(|r| r.str(0).unwrap()).collect();
        assert_eq!(names, ["IPC$", "data"], "{name} {base}");
    }

    let input = vector(&format!("{name}_session_enum_10.bin"));
    let out = exchange(&mut pipe, &mut backend, &input);
    save(&format!("{name}_session_enum_10.bin"), &out);
    let d = decode_enum_response(&stub_of(&out), syntax, InfoClass::Session).unwrap();
    assert_eq!(d.status, werr::SUCCESS);
    assert_eq!(d.rows().len(), 2);
    assert_eq!(d.rows()[1].str(1), Some("bob"));

    let input = vector(&format!("{name}_server_get_info_102.bin"));
    let out = exchange(&mut pipe, &mut backend, &input);
    save(&format!("{name}_server_get_info_102.bin"), &out);
    let (level, row, st) = decode_info_response(&stub_of(&out), syntax, InfoClass::Server).unwrap();
    assert_eq!((level, st), (102, 0));
    assert_eq!(row.unwrap().u32(SV102_DISC), Some(42));

    // The same session enumeration from an anonymous caller is refused in the method status.
    let mut anon = Backend { admin: false };
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    exchange(&mut pipe, &mut anon, &vector(&format!("{name}_bind.bin")));
    let out = exchange(&mut pipe, &mut anon, &input_session(name));
    save(&format!("{name}_session_enum_10_anonymous.bin"), &out);
    let d = decode_enum_response(&stub_of(&out), syntax, InfoClass::Session).unwrap();
    assert_eq!(d.status, werr::ACCESS_DENIED);
}

fn input_session(name: &str) -> Vec<u8> {
    vector(&format!("{name}_session_enum_10.bin"))
}

#[test]
fn impacket_ndr20_requests() {
    run("ndr20", Syntax::Ndr20);
}

#[test]
fn impacket_ndr64_requests() {
    run("ndr64", Syntax::Ndr64);
}

#[test]
fn transceive_with_impacket_bind() {
    let mut backend = Backend { admin: false };
    let mut pipe = RpcPipe::new(Interface::Srvsvc);
    let mut out = Vec::new();
    let more = pipe
        .transceive(&vector("ndr20_bind.bin"), 1024, &mut backend, &mut out)
        .unwrap();
    assert!(!more);
    assert_eq!(Header::parse(&out).unwrap().ptype(), Some(PType::BindAck));
    let mut out = Vec::new();
    let more = pipe
        .transceive(
            &vector("ndr20_share_enum_1.bin"),
            64,
            &mut backend,
            &mut out,
        )
        .unwrap();
    assert!(more, "a 64-byte buffer cannot hold the response");
    assert_eq!(
        pipe.read(1 << 16, &mut out),
        ReadOutcome::Data { more: false }
    );
    let d = decode_enum_response(&stub_of(&out), Syntax::Ndr20, InfoClass::Share).unwrap();
    assert_eq!(d.rows().len(), 2);
}
