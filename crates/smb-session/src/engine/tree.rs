//! TREE_CONNECT and TREE_DISCONNECT (MS-SMB2 3.3.5.7, 3.3.5.8).
//!
//! `\\server\IPC$` is always there (share type PIPE); other names are looked
//! up in the embedding application's [`super::ShareRegistry`] (share type
//! DISK, with the flags, capabilities and maximal access its backend gives);
//! anything else is STATUS_BAD_NETWORK_NAME.

use smb_wire::header::{Header, HEADER_LEN};
use smb_wire::msg::tree_connect::{share_type, TreeConnectRequest, TreeConnectResponseRepr};
use smb_wire::msg::tree_disconnect::TreeDisconnectResponseRepr;
use smb_wire::msg::EmitBody;
use smb_wire::NtStatus;

use super::{Answer, Engine, Req, ShareParams};
use crate::ids::{SessionId, TreeId};

/// SMB2_SHAREFLAG_NO_CACHING (what Windows and Samba answer for IPC$).
const SHAREFLAG_NO_CACHING: u32 = 0x0000_0030;
/// FILE_ALL_ACCESS-like maximal access for IPC$.
const IPC_MAXIMAL_ACCESS: u32 = 0x001F_01FF;

impl Engine {
    pub(crate) fn handle_tree_connect(
        &mut self,
        req: &Req<'_>,
        sid: SessionId,
        out: &mut Vec<u8>,
    ) -> Answer {
        let Ok(t) = TreeConnectRequest::parse(req.msg) else {
            return Answer::Fail(NtStatus::INVALID_PARAMETER);
        };
        let (name, is_ipc, kind, share) = if t.is_ipc() {
            (
                std::borrow::Cow::Borrowed("IPC$"),
                true,
                share_type::PIPE,
                None,
            )
        } else {
            let mut buf = [0u8; 256];
            let path = t.path_into(&mut buf);
            let wanted = path.rsplit('\\').next().unwrap_or("");
            match self.find_share(wanted) {
                Some(i) => (
                    std::borrow::Cow::Owned(self.shares[i].name.to_string()),
                    false,
                    share_type::DISK,
                    Some(i),
                ),
                None => return Answer::Fail(NtStatus::BAD_NETWORK_NAME),
            }
        };
        let tree = match self.table.connect_tree(sid, &name, is_ipc, req.now) {
            Ok(t) => t,
            Err(_) => return Answer::Fail(NtStatus::INSUFFICIENT_RESOURCES),
        };
        let params = match share {
            None => ShareParams::new(SHAREFLAG_NO_CACHING, 0, IPC_MAXIMAL_ACCESS),
            Some(i) => match self.disk_tree_connect(req.conn, sid, tree.as_u32(), i, req.now) {
                Ok(p) => p,
                Err(status) => {
                    let _ = self.table.disconnect_tree(sid, tree);
                    return Answer::Fail(status);
                }
            },
        };
        let start = out.len() - HEADER_LEN;
        let mut h = Header::new_unchecked(&mut out[start..start + HEADER_LEN]);
        h.set_tree_id(tree.as_u32());
        TreeConnectResponseRepr {
            share_type: kind,
            share_flags: params.share_flags,
            capabilities: params.capabilities,
            maximal_access: params.maximal_access,
        }
        .emit_body(start, out);
        Answer::Done(NtStatus::SUCCESS)
    }

    pub(crate) fn handle_tree_disconnect(
        &mut self,
        req: &Req<'_>,
        sid: SessionId,
        out: &mut Vec<u8>,
    ) -> Answer {
        let Some(tree) = TreeId::new(req.tree_id) else {
            return Answer::Fail(NtStatus::NETWORK_NAME_DELETED);
        };
        self.close_tree_pipes(req.conn, sid, req.tree_id);
        self.close_tree_files(req.conn, sid, req.tree_id, req.now);
        if self.table.disconnect_tree(sid, tree).is_err() {
            return Answer::Fail(NtStatus::NETWORK_NAME_DELETED);
        }
        TreeDisconnectResponseRepr::default().emit_body(out.len() - HEADER_LEN, out);
        Answer::Done(NtStatus::SUCCESS)
    }
}
