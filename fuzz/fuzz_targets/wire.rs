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
    }
    let _ = parse_response(m);
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
    let _ = msg::error::ErrorResponse::parse(m);
    let _ = notification::ServerToClientNotification::parse(m);
}

fuzz_target!(|data: &[u8]| {
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
