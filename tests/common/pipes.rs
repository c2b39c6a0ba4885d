//! Named-pipe helpers for server tests: CREATE `srvsvc` on IPC$, WRITE,
//! READ, and a DCE/RPC bind that yields a NetrShareEnum request to repeat.
#![allow(dead_code)]

use smb_rpc::client::RpcClient;
use smb_rpc::ndr::Syntax;
use smb_rpc::pipe::Interface;
use smb_wire::header::Command;
use smb_wire::msg::create::CreateRequestRepr;
use smb_wire::msg::read::ReadRequestRepr;
use smb_wire::msg::write::WriteRequestRepr;
use smb_wire::msg::FileId;
use smb_wire::NtStatus;

use super::client::Client;

/// CREATE `srvsvc` on the IPC$ tree.
pub fn open(c: &mut Client, sid: u64, tree: u32) -> Result<FileId, NtStatus> {
    let name: Vec<u8> = "srvsvc".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let r = c
        .call(
            Command::Create,
            sid,
            tree,
            &CreateRequestRepr {
                security_flags: 0,
                requested_oplock_level: 0,
                impersonation_level: 2,
                smb_create_flags: 0,
                desired_access: 0x0012_019f,
                file_attributes: 0,
                share_access: 3,
                create_disposition: 1,
                create_options: 0,
                name: &name,
                contexts: &[],
            },
        )
        .expect("create");
    if r.status != NtStatus::SUCCESS {
        return Err(r.status);
    }
    let body = &r.msg[64..];
    Ok(FileId {
        persistent: u64::from_le_bytes(body[64..72].try_into().unwrap()),
        volatile: u64::from_le_bytes(body[72..80].try_into().unwrap()),
    })
}

pub fn write(c: &mut Client, sid: u64, tree: u32, fid: FileId, data: &[u8]) -> NtStatus {
    c.call(
        Command::Write,
        sid,
        tree,
        &WriteRequestRepr {
            offset: 0,
            file_id: fid,
            channel: 0,
            remaining_bytes: 0,
            flags: 0,
            data,
            channel_info: &[],
        },
    )
    .expect("write")
    .status
}

pub fn read(c: &mut Client, sid: u64, tree: u32, fid: FileId, len: u32) -> (NtStatus, Vec<u8>) {
    let r = c
        .call(
            Command::Read,
            sid,
            tree,
            &ReadRequestRepr {
                padding: 0x50,
                flags: 0,
                length: len,
                offset: 0,
                file_id: fid,
                minimum_count: 0,
                channel: 0,
                remaining_bytes: 0,
                channel_info: &[],
            },
        )
        .expect("read");
    let data = if r.status.is_error() {
        Vec::new()
    } else {
        // READ response: DataOffset at body+2 (from the header start).
        let off = usize::from(r.msg[66]);
        let n = u32::from_le_bytes(r.msg[68..72].try_into().unwrap()) as usize;
        r.msg[off..off + n].to_vec()
    };
    (r.status, data)
}

/// Bind the pipe; returns a NetrShareEnum request PDU to repeat.
pub fn bind(c: &mut Client, sid: u64, tree: u32, fid: FileId) -> Vec<u8> {
    let mut rpc = RpcClient::new(Interface::Srvsvc.syntax_id(), &[Syntax::Ndr20], 4280);
    assert_eq!(
        write(c, sid, tree, fid, &rpc.bind(false)),
        NtStatus::SUCCESS
    );
    let (st, ack) = read(c, sid, tree, fid, 4280);
    assert_eq!(st, NtStatus::SUCCESS);
    rpc.handle_bind_response(&ack).expect("bind_ack");
    let stub = smb_rpc::srvsvc::share_enum_request(Syntax::Ndr20, Some("\\\\x"), 1, u32::MAX, None);
    let mut frags = rpc.request(15, &stub).expect("request");
    assert_eq!(frags.len(), 1);
    frags.remove(0)
}
