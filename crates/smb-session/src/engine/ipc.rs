//! IPC$: named pipes carrying DCE/RPC, and the srvsvc backend.
//!
//! CREATE / CLOSE of `srvsvc` on an IPC$ tree (MS-SMB2 3.3.5.9, 3.3.5.10),
//! WRITE / READ on the pipe (3.3.5.13, 3.3.5.12), FSCTL_PIPE_TRANSCEIVE and
//! FSCTL_VALIDATE_NEGOTIATE_INFO (3.3.5.15), QUERY_INFO of the pipe's
//! standard information (3.3.5.20). Other pipe names get
//! STATUS_OBJECT_NAME_NOT_FOUND. An open pipe is an open handle: its session
//! is not reaped while it is open (Windows semantics).
//!
//! srvsvc calls that enumerate or delete sessions need every shard when the
//! server runs several: the engine first runs the call against a copy of the
//! pipe with a recording backend to learn what it needs, defers the SMB2
//! response, asks the runtime ([`EngineEvent::Admin`]) and replays the call
//! when [`Engine::complete_admin`] brings the answer.

use std::cell::Cell;
use std::time::Instant;

use smb_rpc::pipe::{Interface, ReadOutcome, RpcPipe};
use smb_rpc::srvsvc::{
    werr, CallerInfo, ServerInfo, ServerInfoChange, ShareInfo, SrvConnectionInfo, SrvFileInfo,
    SrvSessionInfo, SrvsvcBackend, TimeOfDay,
};
use smb_wire::frame::FrameMark;
use smb_wire::header::{flags, Command, Header, HeaderId, HeaderRepr, HEADER_LEN};
use smb_wire::msg::close::{CloseRequest, CloseResponseRepr};
use smb_wire::msg::create::{CreateRequest, CreateResponseRepr};
use smb_wire::msg::ioctl::{
    IoctlRequest, IoctlResponseRepr, FSCTL_DFS_GET_REFERRALS, FSCTL_DFS_GET_REFERRALS_EX,
    FSCTL_PIPE_TRANSCEIVE, FSCTL_VALIDATE_NEGOTIATE_INFO,
};
use smb_wire::msg::query_info::{QueryInfoRequest, QueryInfoResponseRepr};
use smb_wire::msg::read::{ReadRequest, ReadResponseRepr};
use smb_wire::msg::write::{WriteRequest, WriteResponseRepr};
use smb_wire::msg::{EmitBody, FileId};
use smb_wire::NtStatus;

use super::admin::{AdminOp, AdminOpResult, AdminSelector, AdminToken, FileRow, ToSrvs, TreeRow};
use super::budget::{self, Charge, MemoryBudget};
use super::{Answer, ChainState, Engine, EngineEvent, Req};
use crate::ids::{ConnId, SessionId, TreeId};
use crate::table::UserName;

/// FILE_ATTRIBUTE_NORMAL.
const FILE_ATTRIBUTE_NORMAL: u32 = 0x80;
/// CreateAction FILE_OPENED.
const FILE_OPENED: u32 = 1;
/// SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB.
const CLOSE_POSTQUERY: u16 = 0x0001;
/// InfoType SMB2_0_INFO_FILE, class FileStandardInformation.
const INFO_FILE: u8 = 1;
const FILE_STANDARD_INFORMATION: u8 = 5;
/// STATUS_FS_DRIVER_REQUIRED: what Windows answers DFS referral requests
/// on a server without DFS.
const STATUS_FS_DRIVER_REQUIRED: NtStatus = NtStatus(0xC000_019C);
/// Largest pipe message returned at once.
const MAX_PIPE_OUT: usize = 1024 * 1024;

/// A deferred pipe call (a srvsvc call that needs every shard).
#[derive(Debug)]
pub(crate) struct Deferred {
    token: AdminToken,
    command: Command,
    message_id: u64,
    credit_charge: u16,
    credit_request: u16,
    process_id: u32,
    tree_id: u32,
    session: SessionId,
    input: Vec<u8>,
    max_out: u32,
    /// Whether the request was signed (its response must be).
    request_signed: bool,
}

/// The name NetrFileEnum and `ctl files` show for the srvsvc pipe.
pub(crate) const SRVSVC_PIPE_PATH: &str = "\\PIPE\\srvsvc";

/// One open pipe.
#[derive(Debug)]
pub(crate) struct Pipe {
    id: FileId,
    /// Server-wide id for NetrFileEnum / NetrFileClose ([`Engine::new_open_id`]).
    admin_id: u32,
    session: SessionId,
    tree: u32,
    rpc: RpcPipe,
    deferred: Option<Box<Deferred>>,
    /// What the pipe's buffers are charged to the server's budget.
    charge: Charge,
}

impl Pipe {
    /// Record what the pipe holds now (unread output plus reassembly).
    fn account(&mut self) {
        let held = self.rpc.pending_output() + self.rpc.buffered_input();
        self.charge.set(held);
    }
}

/// The open pipes of a connection (a handful at most; a Vec scan is fine
/// and costs nothing when empty).
#[derive(Debug, Default)]
pub(crate) struct Pipes {
    open: Vec<Pipe>,
    next_persistent: u64,
}

impl Pipes {
    fn find(&mut self, id: FileId, session: SessionId) -> Option<&mut Pipe> {
        self.open
            .iter_mut()
            .find(|p| p.id == id && p.session == session)
    }

    /// How many bytes pipe `id` may hold after its next call: the least of
    /// the per-pipe bound, what the connection's other pipes leave of the
    /// per-connection bound, and what the server's budget leaves.
    fn room_for(&self, id: FileId, budget: &MemoryBudget) -> usize {
        let mut others = 0;
        let mut this = 0;
        for p in &self.open {
            if p.id == id {
                this = p.charge.bytes();
            } else {
                others += p.charge.bytes();
            }
        }
        budget::PER_PIPE
            .min(budget::PER_CONNECTION.saturating_sub(others))
            .min(budget.room() + this)
    }
}

/// The srvsvc backend for one call: this shard's view, or the whole
/// cluster's once gathered.
struct Backend<'a> {
    engine_caller: CallerInfo,
    server: ServerInfo,
    shares: Vec<ShareInfo>,
    /// Sessions and connections (already gathered or local).
    sessions: &'a [SrvSessionInfo],
    trees: &'a [TreeRow],
    /// Sessions deleted (already done cluster-wide), or a local deleter.
    deleted: Option<u32>,
    /// What the call asked for (recording mode).
    wanted: Cell<Option<AdminOp>>,
    recording: bool,
    /// Open files (gathered or local).
    files: &'a [SrvFileInfo],
    /// The runtime's answer to a NetrFileClose or NetrServerSetInfo.
    done: Option<(u32, Option<u32>)>,
    /// The time of day, for NetrRemoteTOD.
    tod: Option<TimeOfDay>,
}

impl SrvsvcBackend for Backend<'_> {
    fn caller(&self) -> CallerInfo {
        self.engine_caller.clone()
    }

    fn server_info(&self) -> ServerInfo {
        self.server.clone()
    }

    fn shares(&self) -> Vec<ShareInfo> {
        self.shares.clone()
    }

    fn sessions(&self) -> Vec<SrvSessionInfo> {
        if self.recording {
            self.wanted.set(Some(AdminOp::Sessions));
        }
        self.sessions.to_vec()
    }

    fn delete_sessions(&mut self, client: Option<&str>, user: Option<&str>) -> u32 {
        if self.recording {
            self.wanted.set(Some(delete_op(client, user)));
            return 0;
        }
        self.deleted.unwrap_or(0)
    }

    fn connections(&self, qualifier: &str) -> Vec<SrvConnectionInfo> {
        if self.recording {
            self.wanted.set(Some(AdminOp::Trees));
        }
        connections_for(self.trees, qualifier)
    }

    fn files(&self) -> Vec<SrvFileInfo> {
        if self.recording {
            self.wanted.set(Some(AdminOp::Files));
        }
        self.files.to_vec()
    }

    fn close_file(&mut self, id: u32) -> u32 {
        if self.recording {
            self.wanted.set(Some(AdminOp::CloseFile(id)));
            return werr::SUCCESS;
        }
        self.done.map_or(werr::FILE_ID_NOT_FOUND, |d| d.0)
    }

    fn set_server_info(&mut self, change: &ServerInfoChange) -> (u32, Option<u32>) {
        if self.recording {
            self.wanted
                .set(Some(AdminOp::SetServerInfo(change.clone())));
            return (werr::SUCCESS, None);
        }
        self.done.unwrap_or((werr::NOT_SUPPORTED, None))
    }

    fn time_of_day(&self) -> Option<TimeOfDay> {
        self.tod
    }
}

/// NetrConnectionEnum's answer (MS-SRVS 3.1.4.1): `\\computer` lists that
/// client's tree connects, each named by its share; a share name lists the
/// tree connects to that share, each named by its client computer.
pub(crate) fn connections_for(trees: &[TreeRow], qualifier: &str) -> Vec<SrvConnectionInfo> {
    let by_computer = qualifier.starts_with("\\\\");
    let q = qualifier.trim_start_matches('\\');
    trees
        .iter()
        .filter(|t| {
            if by_computer {
                t.computer.eq_ignore_ascii_case(q) || t.client.ip().to_string() == q
            } else {
                t.share.eq_ignore_ascii_case(q)
            }
        })
        .map(|t| {
            let mut c = t.to_srvs();
            c.netname = if by_computer {
                t.share.to_string()
            } else {
                t.computer.clone()
            };
            c
        })
        .collect()
}

/// NetrSessionDel's arguments as an admin operation: a client name of
/// `\\name` or an address, and/or a user (MS-SRVS 3.1.4.6).
fn delete_op(client: Option<&str>, user: Option<&str>) -> AdminOp {
    let client = client
        .map(|c| c.trim_start_matches('\\').to_string())
        .filter(|c| !c.is_empty());
    let user = user.map(str::to_string).filter(|u| !u.is_empty());
    let mut sels = Vec::new();
    match (client, user) {
        (Some(c), Some(u)) => sels.push(AdminSelector::ComputerAndUser(c, u)),
        (Some(c), None) => sels.push(AdminSelector::Computer(c)),
        (None, Some(u)) => sels.push(AdminSelector::User(u)),
        (None, None) => {}
    }
    AdminOp::DeleteMany(sels)
}

impl Engine {
    fn caller_info(&self, sid: SessionId) -> CallerInfo {
        let Some(s) = self.table.session(sid) else {
            return CallerInfo::default();
        };
        CallerInfo {
            user: self
                .table
                .user(sid)
                .map(|u| u.to_string())
                .unwrap_or_default(),
            is_admin: s.is_admin(),
            authenticated: !matches!(self.table.user(sid), Some(UserName::Anonymous) | None),
        }
    }

    fn server_info(&self) -> ServerInfo {
        let mut s = ServerInfo::windows_like(&self.cfg.netbios_name);
        s.comment = self.cfg.server_comment.clone();
        s.autodisconnect_minutes = self.cfg.autodisconnect.as_srvs_minutes();
        s
    }

    /// The time of day at `now` for NetrRemoteTOD.
    fn time_of_day(&self, now: Instant) -> TimeOfDay {
        let since = now.saturating_duration_since(self.epoch);
        let wall = (self.wall_at_epoch + since)
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        TimeOfDay {
            unix_secs: wall.as_secs(),
            uptime_ms: since.as_millis() as u32,
            hundredths: wall.subsec_millis() / 10,
        }
    }

    /// The open pipes and disk files of this shard, as `ctl files` and
    /// NetrFileEnum show them, by id.
    pub(crate) fn local_files(&self) -> Vec<FileRow> {
        let mut rows = Vec::new();
        for (_, c) in self.table.connections() {
            for p in &c.ext.pipes.open {
                let user = self.table.user(p.session).unwrap_or(UserName::Anonymous);
                rows.push(FileRow {
                    id: p.admin_id,
                    session: p.session,
                    user,
                    client: c.peer(),
                    share: "IPC$".into(),
                    path: SRVSVC_PIPE_PATH.into(),
                    permissions: smb_rpc::srvsvc::PERM_FILE_READ_WRITE,
                    locks: 0,
                });
            }
            let files = &c.ext.files;
            for o in files.opens.values() {
                let user = self.table.user(o.session).unwrap_or(UserName::Anonymous);
                let share = files
                    .trees
                    .get(&(o.session.as_u64(), o.tree))
                    .map(|t| t.name.to_string())
                    .unwrap_or_default();
                rows.push(FileRow {
                    id: o.admin_id,
                    session: o.session,
                    user,
                    client: c.peer(),
                    share,
                    path: o.path.to_string(),
                    permissions: o.permissions,
                    locks: o.locks,
                });
            }
        }
        rows.sort_by_key(|r| r.id);
        rows
    }

    /// The opens (pipes and disk files) made through tree `tree` of session
    /// `sid`.
    pub(crate) fn tree_opens(&self, sid: SessionId, tree: u32) -> u32 {
        let Some(c) = self
            .table
            .session_conn(sid)
            .and_then(|conn| self.table.connection(conn))
        else {
            return 0;
        };
        let pipes = c
            .ext
            .pipes
            .open
            .iter()
            .filter(|p| p.session == sid && p.tree == tree)
            .count();
        let files = c
            .ext
            .files
            .opens
            .values()
            .filter(|o| o.session == sid && o.tree == tree)
            .count();
        u32::try_from(pipes + files).unwrap_or(u32::MAX)
    }

    /// Closes the open `id` of this shard (NetrFileClose, `ctl close-file`):
    /// a [`werr`] value. A pipe with a call waiting on the other shards is
    /// busy until that call is answered. A disk open is closed in its
    /// backend as a client's CLOSE would close it: the client's next request
    /// on the handle gets STATUS_FILE_CLOSED.
    pub(crate) fn close_open(&mut self, id: u32, now: Instant) -> u32 {
        let mut found = None;
        for (conn, c) in self.table.connections() {
            if let Some(p) = c.ext.pipes.open.iter().find(|p| p.admin_id == id) {
                found = Some((conn, p.session, p.deferred.is_some()));
                break;
            }
        }
        let Some((conn, sid, busy)) = found else {
            return if self.close_disk_open(id, now) {
                werr::SUCCESS
            } else {
                werr::FILE_ID_NOT_FOUND
            };
        };
        if busy {
            return werr::BUSY;
        }
        if let Some(c) = self.table.connection_mut(conn) {
            c.ext.pipes.open.retain(|p| p.admin_id != id);
        }
        self.release_open_id(id);
        let _ = self.table.close_handle(sid);
        werr::SUCCESS
    }

    fn share_infos(&self) -> Vec<ShareInfo> {
        let mut v = vec![ShareInfo::ipc()];
        for s in self.cfg.shares.shares() {
            let mut i = ShareInfo::ipc();
            i.name = s.name;
            i.comment = s.comment;
            i.share_type = smb_rpc::srvsvc::stype::DISKTREE;
            v.push(i);
        }
        v
    }

    /// Close every pipe a session holds (logoff, tree disconnect, admin).
    pub(crate) fn close_session_pipes(&mut self, conn: ConnId, sid: SessionId) {
        self.close_pipes_where(conn, sid, |p| p.session == sid);
    }

    /// Close the pipes opened on one tree.
    pub(crate) fn close_tree_pipes(&mut self, conn: ConnId, sid: SessionId, tree: u32) {
        self.close_pipes_where(conn, sid, |p| p.session == sid && p.tree == tree);
    }

    /// Close the pipes of session `sid` on `conn` that `gone` picks.
    fn close_pipes_where(&mut self, conn: ConnId, sid: SessionId, gone: impl Fn(&Pipe) -> bool) {
        let Some(c) = self.table.connection_mut(conn) else {
            return;
        };
        if c.ext.pipes.open.is_empty() {
            return;
        }
        let mut ids = Vec::new();
        c.ext.pipes.open.retain(|p| {
            let g = gone(p);
            if g {
                ids.push(p.admin_id);
            }
            !g
        });
        for id in ids {
            self.release_open_id(id);
            let _ = self.table.close_handle(sid);
        }
    }

    /// The connection goes: its pipes' administrative ids are free again.
    pub(crate) fn release_conn_pipe_ids(&mut self, conn: ConnId) {
        let Some(c) = self.table.connection(conn) else {
            return;
        };
        if c.ext.pipes.open.is_empty() {
            return;
        }
        let ids: Vec<u32> = c.ext.pipes.open.iter().map(|p| p.admin_id).collect();
        for id in ids {
            self.release_open_id(id);
        }
    }

    pub(crate) fn handle_ipc(
        &mut self,
        req: &Req<'_>,
        sid: SessionId,
        chain: &mut ChainState,
        out: &mut Vec<u8>,
    ) -> Answer {
        let is_ipc = TreeId::new(req.tree_id)
            .and_then(|t| self.table.tree(sid, t))
            .is_some_and(|t| t.is_ipc);
        let start = out.len() - HEADER_LEN;
        match req.command {
            Command::Create => {
                let Ok(c) = CreateRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                if !is_ipc {
                    // Files are the embedding application's business.
                    return Answer::Fail(NtStatus::NOT_SUPPORTED);
                }
                let name = c.name();
                let is_srvsvc =
                    c.name_is("srvsvc") || c.name_is("\\srvsvc") || c.name_is("\\pipe\\srvsvc");
                let _ = name;
                if !is_srvsvc {
                    return Answer::Fail(NtStatus::OBJECT_NAME_NOT_FOUND);
                }
                let volatile: [u8; 8] = self.random_array();
                let Some(cs) = self.table.connection(req.conn) else {
                    return Answer::Drop;
                };
                if cs.ext.pipes.open.len() >= budget::PIPES_PER_CONNECTION {
                    return Answer::Fail(NtStatus::INSUFFICIENT_RESOURCES);
                }
                let admin_id = self.new_open_id();
                let Some(cs) = self.table.connection_mut(req.conn) else {
                    return Answer::Drop;
                };
                let pipes = &mut cs.ext.pipes;
                pipes.next_persistent += 1;
                let id = FileId {
                    persistent: pipes.next_persistent,
                    volatile: u64::from_le_bytes(volatile),
                };
                pipes.open.push(Pipe {
                    id,
                    admin_id,
                    session: sid,
                    tree: req.tree_id,
                    rpc: RpcPipe::new(Interface::Srvsvc),
                    deferred: None,
                    charge: Charge::new(self.cfg.memory.clone()),
                });
                let _ = self.table.open_handle(sid);
                chain.prev_file = Some(id);
                CreateResponseRepr {
                    oplock_level: 0,
                    flags: 0,
                    create_action: FILE_OPENED,
                    times: [0; 4],
                    allocation_size: 4096,
                    end_of_file: 0,
                    file_attributes: FILE_ATTRIBUTE_NORMAL,
                    file_id: id,
                    contexts: &[],
                }
                .emit_body(start, out);
                Answer::Done(NtStatus::SUCCESS)
            }
            Command::Close => {
                let Ok(c) = CloseRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                let id = resolve(c.file_id(), chain);
                let Some(cs) = self.table.connection_mut(req.conn) else {
                    return Answer::Drop;
                };
                let Some(at) = cs
                    .ext
                    .pipes
                    .open
                    .iter()
                    .position(|p| p.id == id && p.session == sid)
                else {
                    return Answer::Fail(NtStatus::FILE_CLOSED);
                };
                let gone = cs.ext.pipes.open.remove(at);
                self.release_open_id(gone.admin_id);
                let _ = self.table.close_handle(sid);
                let post = c.flags() & CLOSE_POSTQUERY != 0;
                CloseResponseRepr {
                    flags: if post { CLOSE_POSTQUERY } else { 0 },
                    allocation_size: if post { 4096 } else { 0 },
                    file_attributes: if post { FILE_ATTRIBUTE_NORMAL } else { 0 },
                    ..Default::default()
                }
                .emit_body(start, out);
                Answer::Done(NtStatus::SUCCESS)
            }
            Command::Write => {
                let Ok(w) = WriteRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                let id = resolve(w.file_id(), chain);
                self.pipe_call(req, sid, id, Command::Write, w.data(), 0, out)
            }
            Command::Read => {
                let Ok(r) = ReadRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                let id = resolve(r.file_id(), chain);
                let max = (r.length() as usize).min(MAX_PIPE_OUT);
                let Some(cs) = self.table.connection_mut(req.conn) else {
                    return Answer::Drop;
                };
                let Some(p) = cs.ext.pipes.find(id, sid) else {
                    return Answer::Fail(NtStatus::FILE_CLOSED);
                };
                let mut data = Vec::new();
                let read = p.rpc.read(max, &mut data);
                p.account();
                match read {
                    ReadOutcome::Empty => Answer::Fail(NtStatus::PIPE_EMPTY),
                    ReadOutcome::Data { more } => {
                        ReadResponseRepr {
                            data_remaining: 0,
                            flags: 0,
                            data: &data,
                        }
                        .emit_body(start, out);
                        Answer::Done(if more {
                            NtStatus::BUFFER_OVERFLOW
                        } else {
                            NtStatus::SUCCESS
                        })
                    }
                }
            }
            Command::Ioctl => {
                let Ok(io) = IoctlRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                match io.ctl_code() {
                    FSCTL_PIPE_TRANSCEIVE => {
                        let id = resolve(io.file_id(), chain);
                        self.pipe_call(
                            req,
                            sid,
                            id,
                            Command::Ioctl,
                            io.input(),
                            io.max_output_response(),
                            out,
                        )
                    }
                    FSCTL_VALIDATE_NEGOTIATE_INFO => {
                        let mut body = Vec::with_capacity(24);
                        if let Err(a) = self.validate_negotiate(req.conn, io.input(), &mut body) {
                            return a;
                        }
                        IoctlResponseRepr {
                            ctl_code: FSCTL_VALIDATE_NEGOTIATE_INFO,
                            file_id: io.file_id(),
                            input: &[],
                            output: &body,
                            flags: 0,
                        }
                        .emit_body(start, out);
                        Answer::Done(NtStatus::SUCCESS)
                    }
                    FSCTL_DFS_GET_REFERRALS | FSCTL_DFS_GET_REFERRALS_EX => {
                        Answer::Fail(STATUS_FS_DRIVER_REQUIRED)
                    }
                    _ => {
                        // Every other FSCTL names an open (3.3.5.15): an
                        // unknown FileId is STATUS_FILE_CLOSED (as Samba
                        // and smbtorture's compound.related5 expect), a
                        // pipe does not do the control.
                        let id = resolve(io.file_id(), chain);
                        let Some(cs) = self.table.connection_mut(req.conn) else {
                            return Answer::Drop;
                        };
                        if cs.ext.pipes.find(id, sid).is_none() {
                            return Answer::Fail(NtStatus::FILE_CLOSED);
                        }
                        Answer::Fail(NtStatus::NOT_SUPPORTED)
                    }
                }
            }
            Command::QueryInfo => {
                let Ok(q) = QueryInfoRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                let id = resolve(q.file_id(), chain);
                let Some(cs) = self.table.connection_mut(req.conn) else {
                    return Answer::Drop;
                };
                if cs.ext.pipes.find(id, sid).is_none() {
                    return Answer::Fail(NtStatus::FILE_CLOSED);
                }
                if q.info_type() != INFO_FILE || q.file_info_class() != FILE_STANDARD_INFORMATION {
                    return Answer::Fail(NtStatus::NOT_SUPPORTED);
                }
                // FILE_STANDARD_INFORMATION (MS-FSCC 2.4.41) of a pipe.
                let mut info = [0u8; 24];
                info[0..8].copy_from_slice(&4096u64.to_le_bytes());
                info[16..20].copy_from_slice(&1u32.to_le_bytes());
                info[20] = 1; // DeletePending, as Windows reports for pipes
                if (q.output_buffer_length() as usize) < info.len() {
                    return Answer::Fail(NtStatus::INFO_LENGTH_MISMATCH);
                }
                QueryInfoResponseRepr { output: &info }.emit_body(start, out);
                Answer::Done(NtStatus::SUCCESS)
            }
            _ => Answer::Fail(NtStatus::NOT_SUPPORTED),
        }
    }

    /// WRITE or FSCTL_PIPE_TRANSCEIVE on a pipe.
    #[allow(clippy::too_many_arguments)]
    fn pipe_call(
        &mut self,
        req: &Req<'_>,
        sid: SessionId,
        id: FileId,
        command: Command,
        input: &[u8],
        max_out: u32,
        out: &mut Vec<u8>,
    ) -> Answer {
        let caller = self.caller_info(sid);
        let clustered = self.cfg.clustered;
        let Some(cs) = self.table.connection_mut(req.conn) else {
            return Answer::Drop;
        };
        let Some(p) = cs.ext.pipes.find(id, sid) else {
            return Answer::Fail(NtStatus::FILE_CLOSED);
        };
        if p.deferred.is_some() {
            return Answer::Fail(NtStatus::PIPE_BUSY);
        }
        // Only administrators can reach the session and connection calls
        // (smb-rpc checks before asking the backend), so only their calls
        // are probed, and only what the call asks for is gathered: a share
        // list never builds the session listing.
        let mut wanted = None;
        if caller.is_admin {
            // Learn what the call needs by running it against a copy of the
            // pipe with a recording backend.
            let mut probe_backend = Backend {
                engine_caller: caller.clone(),
                server: self.server_info(),
                shares: self.share_infos(),
                sessions: &[],
                trees: &[],
                deleted: None,
                wanted: Cell::new(None),
                recording: true,
                files: &[],
                done: None,
                tod: None,
            };
            let Some(cs) = self.table.connection_mut(req.conn) else {
                return Answer::Drop;
            };
            let Some(p) = cs.ext.pipes.find(id, sid) else {
                return Answer::Fail(NtStatus::FILE_CLOSED);
            };
            let mut probe = p.rpc.clone();
            let mut sink = Vec::new();
            let _ = probe.transceive(input, MAX_PIPE_OUT, &mut probe_backend, &mut sink);
            wanted = probe_backend.wanted.take();
        }
        // Session deletion always goes through the runtime (it may have to
        // close connections); enumeration only when other shards hold
        // sessions too.
        // Closing a file and changing settings also go through the
        // runtime (the open may live on another shard; settings are the
        // server's).
        if let Some(op) = wanted.clone() {
            let local = matches!(op, AdminOp::Sessions | AdminOp::Trees | AdminOp::Files);
            if clustered || !local {
                return self.defer_pipe_call(req, sid, id, command, input, max_out, op);
            }
        }
        let (local_sessions, local_trees, local_files) = match wanted {
            Some(AdminOp::Sessions) => (self.local_srvs_sessions(req.now), Vec::new(), Vec::new()),
            Some(AdminOp::Trees) => (Vec::new(), self.admin_trees(req.now), Vec::new()),
            Some(AdminOp::Files) => (
                Vec::new(),
                Vec::new(),
                self.local_files().iter().map(|f| f.to_srvs()).collect(),
            ),
            _ => (Vec::new(), Vec::new(), Vec::new()),
        };
        let mut backend = Backend {
            engine_caller: caller,
            server: self.server_info(),
            shares: self.share_infos(),
            sessions: &local_sessions,
            trees: &local_trees,
            deleted: None,
            wanted: Cell::new(None),
            recording: false,
            files: &local_files,
            done: None,
            tod: Some(self.time_of_day(req.now)),
        };
        let budget = self.cfg.memory.clone();
        let Some(cs) = self.table.connection_mut(req.conn) else {
            return Answer::Drop;
        };
        let room = cs.ext.pipes.room_for(id, &budget);
        let Some(p) = cs.ext.pipes.find(id, sid) else {
            return Answer::Fail(NtStatus::FILE_CLOSED);
        };
        let start = out.len() - HEADER_LEN;
        write_pipe_answer(
            p,
            room,
            command,
            id,
            input,
            max_out,
            &mut backend,
            start,
            out,
        )
    }

    /// Park a pipe call until the runtime has gathered what `op` needs from
    /// every shard ([`Engine::complete_admin`] replays it).
    #[allow(clippy::too_many_arguments)]
    fn defer_pipe_call(
        &mut self,
        req: &Req<'_>,
        sid: SessionId,
        id: FileId,
        command: Command,
        input: &[u8],
        max_out: u32,
        op: AdminOp,
    ) -> Answer {
        let token = self.admin_token();
        let hdr = Header::new_unchecked(&req.msg[..HEADER_LEN]);
        let Some(cs) = self.table.connection_mut(req.conn) else {
            return Answer::Drop;
        };
        let Some(p) = cs.ext.pipes.find(id, sid) else {
            return Answer::Fail(NtStatus::FILE_CLOSED);
        };
        p.deferred = Some(Box::new(Deferred {
            token,
            command,
            message_id: req.message_id,
            credit_charge: hdr.credit_charge(),
            credit_request: hdr.credit(),
            process_id: hdr.process_id().unwrap_or(0),
            tree_id: req.tree_id,
            session: sid,
            input: input.to_vec(),
            max_out,
            request_signed: hdr.is_signed(),
        }));
        self.events.push_back(EngineEvent::Admin {
            conn: req.conn,
            token,
            op,
        });
        Answer::Deferred
    }

    /// This shard's sessions as srvsvc shows them.
    pub(crate) fn local_srvs_sessions(&self, now: Instant) -> Vec<SrvSessionInfo> {
        self.admin_sessions(&Default::default(), now)
            .into_iter()
            .map(|r| self.srvs_session(&r))
            .collect()
    }

    /// A session as NetrSessionEnum shows it, `sesi502_transport` included.
    fn srvs_session(&self, r: &super::admin::SessionRow) -> SrvSessionInfo {
        let mut i = r.to_srvs();
        i.transport = self.cfg.transport.to_string();
        i
    }

    /// The cluster-wide answer to a deferred srvsvc call has arrived: replay
    /// the call and queue its SMB2 response on `conn`'s output (announced
    /// with [`EngineEvent::Transmit`]).
    pub fn complete_admin(
        &mut self,
        conn: ConnId,
        token: AdminToken,
        result: AdminOpResult,
        now: Instant,
    ) {
        self.with_output(conn, |e, out| {
            e.write_admin_answer(conn, token, result, now, out)
        });
    }

    fn write_admin_answer(
        &mut self,
        conn: ConnId,
        token: AdminToken,
        result: AdminOpResult,
        now: Instant,
        out: &mut Vec<u8>,
    ) {
        let Some(cs) = self.table.connection_mut(conn) else {
            return;
        };
        let Some(p) = cs
            .ext
            .pipes
            .open
            .iter_mut()
            .find(|p| p.deferred.as_ref().is_some_and(|d| d.token == token))
        else {
            return;
        };
        let Some(d) = p.deferred.take() else {
            return;
        };
        let pipe_id = p.id;
        let mut files = Vec::new();
        let mut done = None;
        let (sessions, trees, deleted) = match result {
            AdminOpResult::Sessions(rows) => (
                rows.iter()
                    .map(|r| self.srvs_session(r))
                    .collect::<Vec<_>>(),
                Vec::new(),
                None,
            ),
            AdminOpResult::Trees(trees) => (Vec::new(), trees, None),
            AdminOpResult::Deleted(n) => (Vec::new(), Vec::new(), Some(n as u32)),
            AdminOpResult::Files(rows) => {
                files = rows.iter().map(|f| f.to_srvs()).collect();
                (Vec::new(), Vec::new(), None)
            }
            AdminOpResult::Done { status, parm_err } => {
                done = Some((status, parm_err));
                (Vec::new(), Vec::new(), None)
            }
        };
        let caller = self.caller_info(d.session);
        let server = self.server_info();
        let shares = self.share_infos();
        let granted = match self.table.connection_mut(conn) {
            Some(c) => c.ext.credits.grant(d.credit_request, self.cfg.credit_cap),
            None => return,
        };
        let mark = FrameMark::begin(out);
        let start = out.len();
        HeaderRepr {
            credit_charge: d.credit_charge,
            status: NtStatus::SUCCESS,
            command: d.command,
            credit: granted,
            flags: flags::SERVER_TO_REDIR,
            next_command: 0,
            message_id: d.message_id,
            id: HeaderId::Sync {
                process_id: d.process_id,
                tree_id: d.tree_id,
            },
            session_id: d.session.as_u64(),
            signature: [0; 16],
        }
        .emit(out);
        let mut backend = Backend {
            engine_caller: caller,
            server,
            shares,
            sessions: &sessions,
            trees: &trees,
            deleted,
            wanted: Cell::new(None),
            recording: false,
            files: &files,
            done,
            tod: Some(self.time_of_day(now)),
        };
        let budget = self.cfg.memory.clone();
        let Some(cs) = self.table.connection_mut(conn) else {
            out.truncate(start - 4);
            return;
        };
        let room = cs.ext.pipes.room_for(pipe_id, &budget);
        let Some(p) = cs.ext.pipes.open.iter_mut().find(|p| p.id == pipe_id) else {
            out.truncate(start - 4);
            return;
        };
        let answer = write_pipe_answer(
            p,
            room,
            d.command,
            pipe_id,
            &d.input,
            d.max_out,
            &mut backend,
            start,
            out,
        );
        let status = match answer {
            Answer::Done(s) => s,
            Answer::Fail(s) => {
                out.truncate(start + HEADER_LEN);
                smb_wire::msg::error::ErrorResponseRepr::EMPTY.emit_body(start, out);
                s
            }
            _ => NtStatus::INTERNAL_ERROR,
        };
        Header::new_unchecked(&mut out[start..start + HEADER_LEN]).set_status(status);
        self.finish_async_answer(conn, out, mark, start - 4, d.request_signed, now);
    }
}

/// Resolve the all-ones FileId of a related compound request.
fn resolve(id: FileId, chain: &ChainState) -> FileId {
    if id == FileId::RELATED {
        chain.prev_file.unwrap_or(id)
    } else {
        id
    }
}

/// Run WRITE / TRANSCEIVE on the pipe and write the SMB2 response body.
///
/// The pipe may hold at most `room` bytes afterwards ([`budget`]): a call
/// whose input alone does not fit is refused with
/// STATUS_INSUFFICIENT_RESOURCES before it runs, and the pipe's output
/// bound is narrowed to what is left (a response that does not fit becomes a
/// DCE/RPC fault).
#[allow(clippy::too_many_arguments)]
fn write_pipe_answer(
    p: &mut Pipe,
    room: usize,
    command: Command,
    id: FileId,
    input: &[u8],
    max_out: u32,
    backend: &mut dyn SrvsvcBackend,
    start: usize,
    out: &mut Vec<u8>,
) -> Answer {
    let before = p.rpc.pending_output() + p.rpc.buffered_input();
    if before + input.len() > room {
        return Answer::Fail(NtStatus::INSUFFICIENT_RESOURCES);
    }
    p.rpc
        .set_max_queued_output(room - p.rpc.buffered_input() - input.len());
    let answer = pipe_io(p, command, id, input, max_out, backend, start, out);
    p.account();
    answer
}

#[allow(clippy::too_many_arguments)]
fn pipe_io(
    p: &mut Pipe,
    command: Command,
    id: FileId,
    input: &[u8],
    max_out: u32,
    backend: &mut dyn SrvsvcBackend,
    start: usize,
    out: &mut Vec<u8>,
) -> Answer {
    match command {
        Command::Write => match p.rpc.write(input, backend) {
            Ok(()) => {
                WriteResponseRepr {
                    count: input.len() as u32,
                    remaining: 0,
                }
                .emit_body(start, out);
                Answer::Done(NtStatus::SUCCESS)
            }
            Err(e) => Answer::Fail(NtStatus(e.ntstatus())),
        },
        _ => {
            let mut data = Vec::new();
            match p.rpc.transceive(
                input,
                (max_out as usize).min(MAX_PIPE_OUT),
                backend,
                &mut data,
            ) {
                Ok(more) => {
                    IoctlResponseRepr {
                        ctl_code: FSCTL_PIPE_TRANSCEIVE,
                        file_id: id,
                        input: &[],
                        output: &data,
                        flags: 0,
                    }
                    .emit_body(start, out);
                    Answer::Done(if more {
                        NtStatus::BUFFER_OVERFLOW
                    } else {
                        NtStatus::SUCCESS
                    })
                }
                Err(e) => Answer::Fail(NtStatus(e.ntstatus())),
            }
        }
    }
}
