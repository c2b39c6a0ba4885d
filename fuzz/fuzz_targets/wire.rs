//! Fuzz target: every smb-wire parser on arbitrary bytes. Nothing may panic, and accessors of
//! a successfully parsed view are exercised too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smb_wire::compound::Compound;
use smb_wire::frame::{split_frame, Frames};
use smb_wire::header::{Header, HeaderRepr};
use smb_wire::msg::{self, *};
use smb_wire::protocol_id::{classify, ProtocolId};
use smb_wire::smb1::Smb1NegotiateRequest;
use smb_wire::transform::TransformHeader;

fn every_view(m: &[u8]) {
    if let Ok(h) = Header::new_checked(m) {
        let _ = HeaderRepr::parse(&h);
    }
    if let Ok((_, r)) = parse_request(m) {
        if let Request::Negotiate(v) = r {
            for c in v.contexts() {
                let _ = c.decode();
            }
            let mut buf = [negotiate::NegotiateContextRepr::NetName(&[]); 4];
            let _ = v.repr(&mut buf);
        }
        if let Request::TreeConnect(t) = r {
            let mut buf = [0u8; 64];
            let _ = (t.is_ipc(), t.path_into(&mut buf), t.contexts().count());
        }
        if let Request::Create(c) = r {
            let _ = c.contexts().count();
        }
        if let Request::Ioctl(i) = r {
            let _ = ioctl::ValidateNegotiateInfoRequest::parse(i.input());
        }
        if let Request::Lock(l) = r {
            assert_eq!(l.locks().iter().count(), usize::from(l.lock_count()));
        }
        if let Request::QueryDirectory(q) = r {
            let _ = (q.info_class(), q.file_name().len() % 2);
        }
    }
    if let Ok((_, r)) = parse_response(m) {
        if let Response::QueryDirectory(q) = r {
            every_dir_class(q.output());
        }
        if let Response::ChangeNotify(c) = r {
            let _ = change_notify::FileNotifyEntries::parse(c.output()).map(|e| e.count());
        }
    }
    // Each body parser directly, whatever the header says.
    let _ = negotiate::NegotiateRequest::parse(m);
    let _ = negotiate::NegotiateResponse::parse(m).map(|v| v.contexts().count());
    let _ = session_setup::SessionSetupRequest::parse(m);
    let _ = session_setup::SessionSetupResponse::parse(m);
    let _ = logoff::LogoffRequest::parse(m);
    let _ = logoff::LogoffResponse::parse(m);
    let _ = tree_connect::TreeConnectRequest::parse(m);
    let _ = tree_connect::TreeConnectResponse::parse(m);
    let _ = tree_disconnect::TreeDisconnectRequest::parse(m);
    let _ = tree_disconnect::TreeDisconnectResponse::parse(m);
    let _ = echo::EchoRequest::parse(m);
    let _ = echo::EchoResponse::parse(m);
    let _ = create::CreateRequest::parse(m).map(|v| v.contexts().count());
    let _ = create::CreateResponse::parse(m).map(|v| v.contexts().count());
    let _ = close::CloseRequest::parse(m);
    let _ = close::CloseResponse::parse(m);
    let _ = read::ReadRequest::parse(m);
    let _ = read::ReadResponse::parse(m);
    let _ = write::WriteRequest::parse(m);
    let _ = write::WriteResponse::parse(m);
    let _ = ioctl::IoctlRequest::parse(m);
    let _ = ioctl::IoctlResponse::parse(m)
        .map(|v| ioctl::ValidateNegotiateInfoResponse::parse(v.output()));
    let _ = query_info::QueryInfoRequest::parse(m);
    let _ = query_info::QueryInfoResponse::parse(m);
    let _ = cancel::CancelRequest::parse(m);
    let _ = flush::FlushRequest::parse(m);
    let _ = flush::FlushResponse::parse(m);
    let _ = lock::LockRequest::parse(m).map(|v| v.repr().locks.iter().count());
    let _ = lock::LockResponse::parse(m);
    let _ = query_directory::QueryDirectoryRequest::parse(m).map(|v| v.repr());
    let _ = query_directory::QueryDirectoryResponse::parse(m).map(|v| every_dir_class(v.output()));
    let _ = set_info::SetInfoRequest::parse(m).map(|v| v.repr());
    let _ = set_info::SetInfoResponse::parse(m);
    let _ = change_notify::ChangeNotifyRequest::parse(m).map(|v| v.repr());
    let _ = change_notify::ChangeNotifyResponse::parse(m)
        .map(|v| change_notify::FileNotifyEntries::parse(v.output()).map(|e| e.count()));
    let _ = oplock_break::OplockBreakRequest::parse(m);
    let _ = oplock_break::OplockBreakResponse::parse(m);
    let _ = msg::error::ErrorResponse::parse(m);
    let _ = notification::ServerToClientNotification::parse(m);
}

/// Every directory information class over `buf`: a checked list must iterate to the end.
fn every_dir_class(buf: &[u8]) {
    for class in dir_info::DirectoryInfoClass::ALL {
        if let Ok(list) = dir_info::DirectoryEntries::parse(class, buf) {
            assert!(buf.is_empty() || list.count() >= 1);
        }
    }
}

/// The writers: entries cut from `data` are written with a limit taken from `data`, then read
/// back; what was written must read back exactly, within the limit.
fn writers_round_trip(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let class = dir_info::DirectoryInfoClass::ALL[usize::from(sel) % 6];
    let limit = u32::from(sel) * 4;
    let names: Vec<&[u8]> = rest
        .chunks(usize::from(sel % 23) + 1)
        .map(|c| &c[..c.len() & !1])
        .collect();
    let mut out = vec![0xAA; usize::from(sel % 5)];
    let pre = out.len();
    let mut w = dir_info::DirectoryInfoWriter::new(&mut out, class, limit);
    let mut written = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let e = dir_info::DirectoryEntry {
            file_index: i as u32,
            times: [i as u64; 4],
            end_of_file: n.len() as u64,
            file_attributes: u32::from(sel),
            ea_size: 3,
            short_name: n,
            file_id: !(i as u64),
            name: n,
            ..Default::default()
        };
        if w.push(&e) {
            written.push(e.for_class(class));
        }
    }
    let len = w.finish();
    assert!(len <= limit as usize);
    let got: Vec<_> = dir_info::DirectoryEntries::parse(class, &out[pre..])
        .expect("written list parses")
        .collect();
    assert_eq!(got, written);

    let mut out = Vec::new();
    let mut w = change_notify::FileNotifyWriter::new(&mut out, limit);
    let mut written = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let e = change_notify::FileNotify {
            action: i as u32,
            name: n,
        };
        if w.push(&e) {
            written.push(e);
        }
    }
    assert!(w.finish() <= limit as usize);
    let got: Vec<_> = change_notify::FileNotifyEntries::parse(&out)
        .expect("written list parses")
        .collect();
    assert_eq!(got, written);
}

fuzz_target!(|data: &[u8]| {
    writers_round_trip(data);
    every_dir_class(data);
    let _ = change_notify::FileNotifyEntries::parse(data).map(|e| e.count());
    let _ = split_frame(data, 1 << 16);
    for f in Frames::new(data, 1 << 16).flatten() {
        match classify(f) {
            ProtocolId::Smb1 => {
                let _ = Smb1NegotiateRequest::parse(f).map(|v| v.offers_smb2());
            }
            ProtocolId::Transform => {
                let _ = TransformHeader::parse(f);
            }
            _ => {}
        }
        for m in Compound::new(f).flatten() {
            every_view(m);
        }
    }
    // The raw bytes as one payload too (no framing).
    let _ = Smb1NegotiateRequest::parse(data);
    let _ = TransformHeader::parse(data);
    for m in Compound::new(data).flatten() {
        every_view(m);
    }
    every_view(data);
});
