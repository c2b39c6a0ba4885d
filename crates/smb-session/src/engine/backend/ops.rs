//! The file commands on a disk tree, answered through its share backend
//! (MS-SMB2 3.3.5.9 CREATE to 3.3.5.22 OPLOCK_BREAK), asynchronous
//! completion (3.3.4.2 interim responses, 3.3.4.1 final responses) and
//! CANCEL (3.3.5.16).

use std::sync::Arc;
use std::time::Instant;

use smb_wire::frame::FrameMark;
use smb_wire::header::{flags, Command, Header, HeaderId, HeaderRepr, HEADER_LEN};
use smb_wire::msg::change_notify::{ChangeNotifyRequest, ChangeNotifyResponseRepr};
use smb_wire::msg::close::{CloseRequest, CloseResponseRepr, FLAG_POSTQUERY_ATTRIB};
use smb_wire::msg::create::{CreateContext, CreateRequest, CreateResponseRepr};
use smb_wire::msg::error::ErrorResponseRepr;
use smb_wire::msg::flush::{FlushRequest, FlushResponseRepr};
use smb_wire::msg::ioctl::{IoctlRequest, IoctlResponseRepr};
use smb_wire::msg::lock::{self, LockRequest, LockResponseRepr};
use smb_wire::msg::oplock_break::{OplockBreak, OplockBreakRepr};
use smb_wire::msg::query_directory::{QueryDirectoryRequest, QueryDirectoryResponseRepr};
use smb_wire::msg::query_info::{QueryInfoRequest, QueryInfoResponseRepr};
use smb_wire::msg::read::{ReadRequest, ReadResponseRepr};
use smb_wire::msg::set_info::{SetInfoRequest, SetInfoResponseRepr};
use smb_wire::msg::write::{WriteRequest, WriteResponseRepr};
use smb_wire::msg::{EmitBody, FileId};
use smb_wire::NtStatus;

use super::opens::{DiskSession, DiskTree, OpInfo, Open, OpenMeta, Pending};
use super::{
    ChangeNotifyArgs, CloseArgs, Completion, CreateArgs, IoctlArgs, LockArgs, OpId, OpenRef,
    OplockBreakNotice, Output, QueryDirectoryArgs, QueryInfoArgs, ReadArgs, Reply, SessionCtx,
    SetInfoArgs, ShareBackend, ShareBackendFactory, ShareParams, Slot, WriteArgs,
};
use crate::engine::{Answer, ChainState, Engine, Req};
use crate::ids::{ConnId, SessionId};
use crate::table::UserName;

/// Completions taken from one backend per [`Engine::poll_backends`] (a
/// backend that always has one cannot hold the shard forever).
const MAX_POLL: usize = 4096;

/// One registered share with this shard's backend instance.
pub(crate) struct ShareSlot {
    pub name: Arc<str>,
    factory: Arc<dyn ShareBackendFactory>,
    pub backend: Box<dyn ShareBackend>,
    /// Its encryption policy ([`ShareDef::with_encryption`]).
    pub encryption: crate::engine::EncryptionPolicy,
    /// No longer in the configuration: no new tree connects, but trees
    /// already connected keep their backend.
    pub retired: bool,
}

/// A backend's reply, made uniform.
enum Step {
    Ready(Completion),
    Pending,
}

fn step<T>(r: Reply<T>, f: impl FnOnce(T) -> Completion) -> Step {
    match r {
        Reply::Ready(v) => Step::Ready(f(v)),
        Reply::Failed(s) => Step::Ready(Completion::Failed(s)),
        Reply::Pending => Step::Pending,
    }
}

/// Resolve the all-ones FileId of a related compound request
/// (MS-SMB2 3.3.5.2.7.2).
fn resolve(id: FileId, chain: &ChainState) -> FileId {
    if id == FileId::RELATED {
        chain.prev_file.unwrap_or(id)
    } else {
        id
    }
}

/// `data` cut to `max` bytes; a cut turns SUCCESS into BUFFER_OVERFLOW.
fn clamp(mut o: Output, max: u32) -> Output {
    let max = max as usize;
    if o.data.len() > max {
        o.data.truncate(max);
        if o.status == NtStatus::SUCCESS {
            o.status = NtStatus::BUFFER_OVERFLOW;
        }
    }
    o
}

/// MS-SMB2 3.3.5.14: the lock elements of one request must be all unlocks
/// or all locks, each lock shared or exclusive (not both), with only
/// FAIL_IMMEDIATELY besides.
fn locks_valid(args: &LockArgs<'_>) -> bool {
    use lock::flags::{EXCLUSIVE_LOCK, FAIL_IMMEDIATELY, SHARED_LOCK, UNLOCK};
    let mut it = args.locks.iter();
    let Some(first) = it.next() else {
        return false;
    };
    let unlocking = first.flags & UNLOCK != 0;
    std::iter::once(first).chain(it).all(|l| {
        if unlocking {
            l.flags == UNLOCK
        } else {
            let kind = l.flags & (SHARED_LOCK | EXCLUSIVE_LOCK);
            (kind == SHARED_LOCK || kind == EXCLUSIVE_LOCK)
                && l.flags & !(SHARED_LOCK | EXCLUSIVE_LOCK | FAIL_IMMEDIATELY) == 0
        }
    })
}

impl Engine {
    // ----- shares ----------------------------------------------------------

    /// Build (or keep) a backend instance per registered share, at start and
    /// on every reconfiguration: a share whose name and factory are
    /// unchanged keeps its instance; a share no longer listed is retired.
    pub(crate) fn install_shares(&mut self) {
        let defs = self.cfg.shares.shares();
        for s in &mut self.shares {
            s.retired = true;
        }
        for d in defs {
            if let Some(s) = self.shares.iter_mut().find(|s| {
                s.name.eq_ignore_ascii_case(&d.name) && Arc::ptr_eq(&s.factory, &d.backend)
            }) {
                s.retired = false;
                s.encryption = d.encryption;
                continue;
            }
            let backend = d.backend.for_shard(self.shard);
            self.shares.push(ShareSlot {
                name: d.name.as_str().into(),
                factory: d.backend,
                backend,
                encryption: d.encryption,
                retired: false,
            });
        }
    }

    /// The share slot serving `name`, if any.
    pub(crate) fn find_share(&self, name: &str) -> Option<usize> {
        self.shares
            .iter()
            .position(|s| !s.retired && s.name.eq_ignore_ascii_case(name))
    }

    /// Record who a session is, for the backends' context (only when there
    /// are shares to serve).
    pub(crate) fn disk_session_authenticated(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        domain: &str,
    ) {
        if self.shares.is_empty() {
            return;
        }
        if let Some(ctx) = self.session_ctx(conn, sid, domain) {
            if let Some(c) = self.table.connection_mut(conn) {
                c.ext.files.sessions.insert(
                    sid.as_u64(),
                    DiskSession {
                        ctx,
                        ext: Slot::default(),
                    },
                );
            }
        }
    }

    fn session_ctx(&self, conn: ConnId, sid: SessionId, domain: &str) -> Option<SessionCtx> {
        let c = self.table.connection(conn)?;
        let s = self.table.session(sid)?;
        Some(SessionCtx {
            session_id: sid.as_u64(),
            user: match self.table.user(sid) {
                Some(UserName::User(u)) => u.to_string(),
                _ => String::new(),
            },
            domain: domain.to_string(),
            is_admin: s.is_admin(),
            is_guest: s.is_guest(),
            is_anonymous: s.is_anonymous(),
            dialect: c.ext.dialect(),
            client: c.peer(),
        })
    }

    /// The disk part of a tree connect (MS-SMB2 3.3.5.7): the table has
    /// the tree; record it and ask the backend. On refusal the caller
    /// removes the tree from the table.
    pub(crate) fn disk_tree_connect(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        tree: u32,
        share: usize,
        now: Instant,
    ) -> Result<ShareParams, NtStatus> {
        let name = match self.shares.get(share) {
            Some(s) => s.name.clone(),
            None => return Err(NtStatus::BAD_NETWORK_NAME),
        };
        let missing = self
            .table
            .connection(conn)
            .is_some_and(|c| !c.ext.files.sessions.contains_key(&sid.as_u64()));
        if missing {
            self.disk_session_authenticated(conn, sid, "");
        }
        let Some(c) = self.table.connection_mut(conn) else {
            return Err(NtStatus::USER_SESSION_DELETED);
        };
        c.ext.files.trees.insert(
            (sid.as_u64(), tree),
            DiskTree {
                share,
                name,
                ext: Slot::default(),
            },
        );
        let op = self.next_op(conn);
        let r = self
            .call_tree(conn, sid, tree, op, now, |b, ctx| b.tree_connect(ctx))
            .unwrap_or(Err(NtStatus::INTERNAL_ERROR));
        if r.is_err() {
            if let Some(c) = self.table.connection_mut(conn) {
                c.ext.files.trees.remove(&(sid.as_u64(), tree));
            }
        }
        r
    }

    /// Whether `tree` of `sid` on `conn` is a disk tree served by a backend.
    pub(crate) fn is_disk_tree(&self, conn: ConnId, sid: SessionId, tree: u32) -> bool {
        self.table
            .connection(conn)
            .is_some_and(|c| c.ext.files.trees.contains_key(&(sid.as_u64(), tree)))
    }

    // ----- requests --------------------------------------------------------

    /// The open a request names, checked against its session and tree.
    fn find_open(&self, conn: ConnId, sid: SessionId, tree: u32, id: FileId) -> Option<u64> {
        self.table
            .connection(conn)?
            .ext
            .files
            .open_key(id, sid, tree)
    }

    /// How many more opens (or pending creates) `conn` may hold.
    fn open_room(&self, conn: ConnId) -> usize {
        self.table.connection(conn).map_or(0, |c| {
            let f = &c.ext.files;
            self.cfg
                .max_opens_per_connection
                .saturating_sub(f.opens.len() + f.creating)
        })
    }

    /// A file command on a disk tree.
    pub(crate) fn handle_file(
        &mut self,
        req: &Req<'_>,
        hdr: &Header<&[u8]>,
        sid: SessionId,
        chain: &mut ChainState,
        out: &mut Vec<u8>,
    ) -> Answer {
        let conn = req.conn;
        let tree = req.tree_id;
        let now = req.now;
        let start = out.len() - HEADER_LEN;
        let mut info = OpInfo {
            command: req.command,
            session: sid,
            tree,
            file_id: None,
            max_out: 0,
            min_count: 0,
            postquery: false,
            ctl_code: 0,
            lock_delta: 0,
        };
        // CREATE: the path and access administrators see for the open.
        let mut meta = None;
        let op = self.next_op(conn);
        // Every command but CREATE names an open: resolve and check it
        // (an unknown one, or another session's or tree's, is FILE_CLOSED).
        macro_rules! open_of {
            ($id:expr) => {{
                let id = resolve($id, chain);
                chain.prev_file = Some(id);
                info.file_id = Some(id);
                match self.find_open(conn, sid, tree, id) {
                    Some(k) => k,
                    None => return Answer::Fail(NtStatus::FILE_CLOSED),
                }
            }};
        }
        let step = match req.command {
            Command::Create => {
                let Ok(c) = CreateRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                if self.open_room(conn) == 0 {
                    return Answer::Fail(NtStatus::INSUFFICIENT_RESOURCES);
                }
                let args = CreateArgs {
                    name_utf16: c.name(),
                    requested_oplock_level: c.requested_oplock_level(),
                    impersonation_level: c.impersonation_level(),
                    desired_access: c.desired_access(),
                    file_attributes: c.file_attributes(),
                    share_access: c.share_access(),
                    create_disposition: c.create_disposition(),
                    create_options: c.create_options(),
                    contexts: c.contexts(),
                };
                meta = Some(OpenMeta::new(args.name_utf16, args.desired_access));
                match self.call_tree(conn, sid, tree, op, now, |b, ctx| b.create(ctx, &args)) {
                    Some(r) => step(r, Completion::Create),
                    None => return Answer::Fail(NtStatus::NETWORK_NAME_DELETED),
                }
            }
            Command::Close => {
                let Ok(c) = CloseRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                let key = open_of!(c.file_id());
                info.postquery = c.flags() & FLAG_POSTQUERY_ATTRIB != 0;
                // The open leaves the table now, whatever the backend says.
                let Some(mut open) = self
                    .table
                    .connection_mut(conn)
                    .and_then(|c| c.ext.files.opens.remove(&key))
                else {
                    return Answer::Fail(NtStatus::FILE_CLOSED);
                };
                self.release_open_id(open.admin_id);
                let _ = self.table.close_handle(sid);
                let args = CloseArgs {
                    postquery: info.postquery,
                };
                let r = self.call_tree(conn, sid, tree, op, now, |b, ctx| {
                    let mut r = OpenRef {
                        handle: open.handle,
                        file_id: open.file_id,
                        ext: &mut open.ext,
                    };
                    b.close(ctx, &mut r, &args)
                });
                match r {
                    Some(r) => step(r, Completion::Close),
                    None => return Answer::Fail(NtStatus::FILE_CLOSED),
                }
            }
            Command::Read => {
                let Ok(r) = ReadRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                // MS-SMB2 3.3.5.12: Length over MaxReadSize.
                if r.length() > self.cfg.max_io {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                }
                let key = open_of!(r.file_id());
                info.max_out = r.length();
                info.min_count = r.minimum_count();
                let args = ReadArgs {
                    offset: r.offset(),
                    length: r.length(),
                    minimum_count: r.minimum_count(),
                    flags: r.flags(),
                };
                match self.call_open(conn, sid, tree, key, op, now, |b, ctx, o| {
                    b.read(ctx, o, &args)
                }) {
                    Some(r) => step(r, Completion::Read),
                    None => return Answer::Fail(NtStatus::FILE_CLOSED),
                }
            }
            Command::Write => {
                let Ok(w) = WriteRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                // MS-SMB2 3.3.5.13: Length over MaxWriteSize.
                if w.data().len() > self.cfg.max_io as usize {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                }
                let key = open_of!(w.file_id());
                let args = WriteArgs {
                    offset: w.offset(),
                    data: w.data(),
                    flags: w.flags(),
                };
                match self.call_open(conn, sid, tree, key, op, now, |b, ctx, o| {
                    b.write(ctx, o, &args)
                }) {
                    Some(r) => step(r, Completion::Write),
                    None => return Answer::Fail(NtStatus::FILE_CLOSED),
                }
            }
            Command::Flush => {
                let Ok(f) = FlushRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                let key = open_of!(f.file_id());
                match self.call_open(conn, sid, tree, key, op, now, |b, ctx, o| b.flush(ctx, o)) {
                    Some(r) => step(r, |()| Completion::Done),
                    None => return Answer::Fail(NtStatus::FILE_CLOSED),
                }
            }
            Command::QueryInfo => {
                let Ok(q) = QueryInfoRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                let key = open_of!(q.file_id());
                info.max_out = q.output_buffer_length();
                let args = QueryInfoArgs {
                    info_type: q.info_type(),
                    info_class: q.file_info_class(),
                    output_buffer_length: q.output_buffer_length(),
                    additional_information: q.additional_information(),
                    flags: q.flags(),
                    input: q.input(),
                };
                match self.call_open(conn, sid, tree, key, op, now, |b, ctx, o| {
                    b.query_info(ctx, o, &args)
                }) {
                    Some(r) => step(r, Completion::Output),
                    None => return Answer::Fail(NtStatus::FILE_CLOSED),
                }
            }
            Command::SetInfo => {
                let Ok(s) = SetInfoRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                let key = open_of!(s.file_id());
                let args = SetInfoArgs {
                    info_type: s.info_type(),
                    info_class: s.file_info_class(),
                    additional_information: s.additional_information(),
                    buffer: s.buffer(),
                };
                match self.call_open(conn, sid, tree, key, op, now, |b, ctx, o| {
                    b.set_info(ctx, o, &args)
                }) {
                    Some(r) => step(r, |()| Completion::Done),
                    None => return Answer::Fail(NtStatus::FILE_CLOSED),
                }
            }
            Command::QueryDirectory => {
                let Ok(q) = QueryDirectoryRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                let key = open_of!(q.file_id());
                info.max_out = q.output_buffer_length();
                let args = QueryDirectoryArgs {
                    info_class: q.file_information_class(),
                    flags: q.flags(),
                    file_index: q.file_index(),
                    pattern_utf16: q.file_name(),
                    output_buffer_length: q.output_buffer_length(),
                };
                match self.call_open(conn, sid, tree, key, op, now, |b, ctx, o| {
                    b.query_directory(ctx, o, &args)
                }) {
                    Some(r) => step(r, Completion::Output),
                    None => return Answer::Fail(NtStatus::FILE_CLOSED),
                }
            }
            Command::Ioctl => {
                let Ok(io) = IoctlRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                // MS-SMB2 3.3.5.15: only FSCTLs; buffers within
                // MaxTransactSize.
                if !io.is_fsctl() {
                    return Answer::Fail(NtStatus::NOT_SUPPORTED);
                }
                if io.max_output_response() > self.cfg.max_io
                    || io.input().len() > self.cfg.max_io as usize
                {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                }
                let key = open_of!(io.file_id());
                info.max_out = io.max_output_response();
                info.ctl_code = io.ctl_code();
                let args = IoctlArgs {
                    ctl_code: io.ctl_code(),
                    input: io.input(),
                    max_output_response: io.max_output_response(),
                    is_fsctl: true,
                };
                match self.call_open(conn, sid, tree, key, op, now, |b, ctx, o| {
                    b.ioctl(ctx, o, &args)
                }) {
                    Some(r) => step(r, Completion::Output),
                    None => return Answer::Fail(NtStatus::FILE_CLOSED),
                }
            }
            Command::Lock => {
                let Ok(l) = LockRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                let key = open_of!(l.file_id());
                let args = LockArgs {
                    lock_sequence: l.lock_sequence(),
                    locks: l.locks(),
                };
                if !locks_valid(&args) {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                }
                let n = i32::try_from(args.locks.iter().count()).unwrap_or(i32::MAX);
                let unlocking = args
                    .locks
                    .iter()
                    .next()
                    .is_some_and(|l| l.flags & lock::flags::UNLOCK != 0);
                info.lock_delta = if unlocking { -n } else { n };
                match self.call_open(conn, sid, tree, key, op, now, |b, ctx, o| {
                    b.lock(ctx, o, &args)
                }) {
                    Some(r) => step(r, |()| Completion::Done),
                    None => return Answer::Fail(NtStatus::FILE_CLOSED),
                }
            }
            Command::ChangeNotify => {
                let Ok(n) = ChangeNotifyRequest::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                let key = open_of!(n.file_id());
                info.max_out = n.output_buffer_length();
                let args = ChangeNotifyArgs {
                    watch_tree: n.watch_tree(),
                    completion_filter: n.completion_filter(),
                    output_buffer_length: n.output_buffer_length(),
                };
                match self.call_open(conn, sid, tree, key, op, now, |b, ctx, o| {
                    b.change_notify(ctx, o, &args)
                }) {
                    Some(r) => step(r, Completion::Output),
                    None => return Answer::Fail(NtStatus::FILE_CLOSED),
                }
            }
            Command::OplockBreak => {
                // A lease break acknowledgement (36 bytes) names no open;
                // leases are not offered.
                let Ok(b) = OplockBreak::parse(req.msg) else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                let key = open_of!(b.file_id());
                let level = b.oplock_level();
                match self.call_open(conn, sid, tree, key, op, now, |be, ctx, o| {
                    be.oplock_break_ack(ctx, o, level)
                }) {
                    Some(r) => step(r, Completion::OplockBreak),
                    None => return Answer::Fail(NtStatus::FILE_CLOSED),
                }
            }
            _ => return Answer::Fail(NtStatus::NOT_SUPPORTED),
        };
        match step {
            Step::Ready(c) => {
                match self.encode(conn, &info, c, meta, Some(chain), now, start, out) {
                    Ok(s) => Answer::Done(s),
                    Err(s) => Answer::Fail(s),
                }
            }
            Step::Pending => self.go_pending(req, hdr, op, info, meta),
        }
    }

    /// The backend answered Pending: keep the request (bounded per
    /// connection) and have the interim response sent (3.3.4.2).
    fn go_pending(
        &mut self,
        req: &Req<'_>,
        hdr: &Header<&[u8]>,
        op: OpId,
        info: OpInfo,
        meta: Option<OpenMeta>,
    ) -> Answer {
        let cap = self.cfg.max_pending_per_connection;
        let Some(c) = self.table.connection_mut(req.conn) else {
            return Answer::Drop;
        };
        let files = &mut c.ext.files;
        if files.pending.len() >= cap {
            // 3.3.4.2: an operation that would go async while resources
            // are constrained may fail with INSUFFICIENT_RESOURCES.
            let share = files
                .trees
                .get(&(info.session.as_u64(), info.tree))
                .map(|t| t.share);
            if let Some(s) = share.and_then(|i| self.shares.get_mut(i)) {
                s.backend.abandon(op);
            }
            tracing::debug!(shard = self.shard, conn = ?req.conn, "too many pending operations");
            return Answer::Fail(NtStatus::INSUFFICIENT_RESOURCES);
        }
        if info.command == Command::Create {
            files.creating += 1;
        }
        files.pending.insert(
            op.id,
            Pending {
                op,
                info,
                message_id: req.message_id,
                credit_charge: hdr.credit_charge(),
                request_signed: hdr.is_signed(),
                meta,
            },
        );
        Answer::Pending(op.id)
    }

    /// Write the response body for a completed operation; `Ok` with the
    /// header status when a body was written, `Err` with the status of an
    /// ERROR response otherwise.
    #[allow(clippy::too_many_arguments)]
    fn encode(
        &mut self,
        conn: ConnId,
        info: &OpInfo,
        c: Completion,
        meta: Option<OpenMeta>,
        chain: Option<&mut ChainState>,
        now: Instant,
        start: usize,
        out: &mut Vec<u8>,
    ) -> Result<NtStatus, NtStatus> {
        let file_id = info.file_id.unwrap_or(FileId::RELATED);
        match (info.command, c) {
            (_, Completion::Failed(s)) if s == NtStatus::SUCCESS => Err(NtStatus::INTERNAL_ERROR),
            (_, Completion::Failed(s)) => Err(s),
            (Command::Create, Completion::Create(created)) => {
                let Some(fid) = self.insert_open(conn, info, &created, meta, now) else {
                    return Err(NtStatus::INSUFFICIENT_RESOURCES);
                };
                if let Some(chain) = chain {
                    chain.prev_file = Some(fid);
                }
                let contexts: Vec<CreateContext<'_>> = created
                    .contexts
                    .iter()
                    .map(|c| CreateContext {
                        name: &c.name,
                        data: &c.data,
                    })
                    .collect();
                let a = &created.attrs;
                CreateResponseRepr {
                    oplock_level: created.oplock_level,
                    flags: 0,
                    create_action: created.create_action,
                    times: a.times(),
                    allocation_size: a.allocation_size,
                    end_of_file: a.end_of_file,
                    file_attributes: a.file_attributes,
                    file_id: fid,
                    contexts: &contexts,
                }
                .emit_body(start, out);
                Ok(NtStatus::SUCCESS)
            }
            (Command::Close, Completion::Close(attrs)) => {
                let r = match attrs.filter(|_| info.postquery) {
                    Some(a) => CloseResponseRepr {
                        flags: FLAG_POSTQUERY_ATTRIB,
                        times: a.times(),
                        allocation_size: a.allocation_size,
                        end_of_file: a.end_of_file,
                        file_attributes: a.file_attributes,
                    },
                    None => CloseResponseRepr::default(),
                };
                r.emit_body(start, out);
                Ok(NtStatus::SUCCESS)
            }
            (Command::Read, Completion::Read(mut data)) => {
                // 3.3.5.12: nothing read, or less than MinimumCount.
                if (data.is_empty() && info.max_out > 0) || data.len() < info.min_count as usize {
                    return Err(NtStatus::END_OF_FILE);
                }
                data.truncate(info.max_out as usize);
                ReadResponseRepr {
                    data_remaining: 0,
                    flags: 0,
                    data: &data,
                }
                .emit_body(start, out);
                Ok(NtStatus::SUCCESS)
            }
            (Command::Write, Completion::Write(count)) => {
                WriteResponseRepr {
                    count,
                    remaining: 0,
                }
                .emit_body(start, out);
                Ok(NtStatus::SUCCESS)
            }
            (Command::Flush, Completion::Done) => {
                FlushResponseRepr::default().emit_body(start, out);
                Ok(NtStatus::SUCCESS)
            }
            (Command::SetInfo, Completion::Done) => {
                SetInfoResponseRepr.emit_body(start, out);
                Ok(NtStatus::SUCCESS)
            }
            (Command::Lock, Completion::Done) => {
                self.count_locks(conn, info);
                LockResponseRepr::default().emit_body(start, out);
                Ok(NtStatus::SUCCESS)
            }
            (Command::QueryInfo, Completion::Output(o)) => {
                let o = clamp(o, info.max_out);
                QueryInfoResponseRepr { output: &o.data }.emit_body(start, out);
                Ok(o.status)
            }
            (Command::QueryDirectory, Completion::Output(o)) => {
                let o = clamp(o, info.max_out);
                QueryDirectoryResponseRepr { output: &o.data }.emit_body(start, out);
                Ok(o.status)
            }
            (Command::ChangeNotify, Completion::Output(o)) => {
                let o = clamp(o, info.max_out);
                ChangeNotifyResponseRepr { output: &o.data }.emit_body(start, out);
                Ok(o.status)
            }
            (Command::Ioctl, Completion::Output(o)) => {
                let o = clamp(o, info.max_out);
                IoctlResponseRepr {
                    ctl_code: info.ctl_code,
                    file_id,
                    input: &[],
                    output: &o.data,
                    flags: 0,
                }
                .emit_body(start, out);
                Ok(o.status)
            }
            (Command::OplockBreak, Completion::OplockBreak(level)) => {
                OplockBreakRepr {
                    oplock_level: level,
                    file_id,
                }
                .emit_body(start, out);
                Ok(NtStatus::SUCCESS)
            }
            (command, other) => {
                tracing::warn!(
                    shard = self.shard,
                    ?command,
                    completion = ?other,
                    "backend answered with a result of another command"
                );
                if let Completion::Create(created) = other {
                    // Do not leak the open the backend made.
                    self.release_handle(conn, info, created.handle, now);
                }
                Err(NtStatus::INTERNAL_ERROR)
            }
        }
    }

    /// Enter a new open in the table; `None` (and the backend's handle
    /// cleaned up) when the connection has no room or the tree went.
    fn insert_open(
        &mut self,
        conn: ConnId,
        info: &OpInfo,
        created: &super::Created,
        meta: Option<OpenMeta>,
        now: Instant,
    ) -> Option<FileId> {
        let handle = created.handle;
        let room = self.open_room(conn) > 0;
        let tree_there = self.is_disk_tree(conn, info.session, info.tree);
        if !room || !tree_there {
            self.release_handle(conn, info, handle, now);
            return None;
        }
        let volatile = loop {
            let v = u64::from_le_bytes(self.random_array());
            let taken = self
                .table
                .connection(conn)
                .is_some_and(|c| c.ext.files.opens.contains_key(&v));
            if v != 0 && v != u64::MAX && !taken {
                break v;
            }
        };
        let admin_id = self.new_open_id();
        let (path, permissions) = match meta {
            Some(m) => {
                let p = m.permissions(created.create_action);
                (m.path, p)
            }
            None => ("\\".into(), 0),
        };
        let c = self.table.connection_mut(conn)?;
        let files = &mut c.ext.files;
        let file_id = files.new_file_id(volatile);
        files.opens.insert(
            file_id.volatile,
            Open {
                file_id,
                session: info.session,
                tree: info.tree,
                handle,
                ext: Slot::default(),
                admin_id,
                path,
                permissions,
                locks: 0,
            },
        );
        let _ = self.table.open_handle(info.session);
        Some(file_id)
    }

    /// A LOCK succeeded: count the locks it took or released on its open
    /// (what NetrFileEnum shows as `fi3_num_locks`).
    fn count_locks(&mut self, conn: ConnId, info: &OpInfo) {
        let Some(id) = info.file_id else {
            return;
        };
        let Some(o) = self
            .table
            .connection_mut(conn)
            .and_then(|c| c.ext.files.opens.get_mut(&id.volatile))
            .filter(|o| o.file_id == id)
        else {
            return;
        };
        o.locks = o.locks.saturating_add_signed(info.lock_delta);
    }

    /// Clean up a backend handle that never became an open.
    fn release_handle(&mut self, conn: ConnId, info: &OpInfo, handle: u64, now: Instant) {
        let op = self.next_op(conn);
        let mut ext = Slot::default();
        self.call_tree(conn, info.session, info.tree, op, now, |b, ctx| {
            let mut r = OpenRef {
                handle,
                file_id: FileId::RELATED,
                ext: &mut ext,
            };
            b.cleanup(ctx, &mut r);
        });
    }

    // ----- completion and cancel -------------------------------------------

    /// The result of an operation a backend answered
    /// [`Reply::Pending`] for: queue the final
    /// response (MS-SMB2 3.3.4.2: async header with the request's AsyncId,
    /// signed as the request's session signs) on the request's connection
    /// and announce it with
    /// [`EngineEvent::Transmit`](crate::engine::EngineEvent::Transmit).
    /// An operation that is not pending (unknown, already completed, or
    /// abandoned because its session, tree or connection went) is ignored.
    pub fn complete(&mut self, op: OpId, result: Completion, now: Instant) {
        self.with_output(op.conn, |e, out| e.write_final(op, result, now, out));
    }

    /// Collect what the backends have completed
    /// ([`ShareBackend::poll_completion`])
    /// and queue the final responses, as [`Engine::complete`] does. The
    /// engine does this itself after every frame; call it when a backend
    /// finished work outside a frame (its I/O completed).
    pub fn poll_backends(&mut self, now: Instant) {
        let mut done = std::mem::take(&mut self.completions);
        let mut breaks = Vec::new();
        for s in &mut self.shares {
            for _ in 0..MAX_POLL {
                match s.backend.poll_completion() {
                    Some(c) => done.push(c),
                    None => break,
                }
            }
            for _ in 0..MAX_POLL {
                match s.backend.poll_oplock_break() {
                    Some(b) => breaks.push(b),
                    None => break,
                }
            }
        }
        for (op, c) in done.drain(..) {
            self.complete(op, c, now);
        }
        self.completions = done;
        for b in breaks {
            self.send_oplock_break(b, now);
        }
    }

    /// An OPLOCK_BREAK notification (MS-SMB2 2.2.23.1, 3.3.4.6): MessageId
    /// all ones, TreeId 0, SessionId the open's session (the SHOULD of
    /// 3.3.4.6, as Windows 8 and later and Samba send it), not signed. When
    /// that session encrypts, or the open's share asks for encryption, the
    /// notification goes out in a TRANSFORM with the session's keys
    /// (3.3.4.1.4); a session whose nonces are spent is ended instead.
    fn send_oplock_break(&mut self, b: OplockBreakNotice, now: Instant) {
        let open = self.table.connection(b.conn).and_then(|c| {
            c.ext
                .files
                .opens
                .values()
                .find(|o| o.handle == b.handle)
                .map(|o| (o.file_id, o.session, o.tree))
        });
        let Some((file_id, sid, tree)) = open else {
            tracing::debug!(
                shard = self.shard,
                ?b,
                "oplock break for an open that is gone"
            );
            return;
        };
        let seal = self.unsolicited_seal_session(b.conn, sid, tree);
        self.with_output(b.conn, |e, out| {
            let frame_start = out.len();
            let mark = FrameMark::begin(out);
            let start = out.len();
            HeaderRepr {
                credit_charge: 0,
                status: NtStatus::SUCCESS,
                command: Command::OplockBreak,
                credit: 0,
                flags: flags::SERVER_TO_REDIR,
                next_command: 0,
                message_id: u64::MAX,
                id: HeaderId::Sync {
                    process_id: 0,
                    tree_id: 0,
                },
                session_id: sid.as_u64(),
                signature: [0; 16],
            }
            .emit(out);
            OplockBreakRepr {
                oplock_level: b.level,
                file_id,
            }
            .emit_body(start, out);
            if e.seal_or_end(seal, out, frame_start, start, now) {
                crate::engine::finish_frame(mark, out, frame_start);
            }
        });
    }

    fn write_final(&mut self, op: OpId, result: Completion, now: Instant, out: &mut Vec<u8>) {
        let Some(c) = self.table.connection_mut(op.conn) else {
            return;
        };
        let files = &mut c.ext.files;
        let Some(p) = files.pending.remove(&op.id) else {
            tracing::debug!(
                shard = self.shard,
                ?op,
                "completion of an operation that is not pending; ignored"
            );
            return;
        };
        if p.info.command == Command::Create {
            files.creating = files.creating.saturating_sub(1);
        }
        let frame_start = out.len();
        let mark = FrameMark::begin(out);
        let start = out.len();
        HeaderRepr {
            credit_charge: p.credit_charge,
            status: NtStatus::SUCCESS,
            command: p.info.command,
            // The interim response granted the credits.
            credit: 0,
            flags: flags::SERVER_TO_REDIR,
            next_command: 0,
            message_id: p.message_id,
            id: HeaderId::Async { async_id: op.id },
            session_id: p.info.session.as_u64(),
            signature: [0; 16],
        }
        .emit(out);
        let status = match self.encode(op.conn, &p.info, result, p.meta, None, now, start, out) {
            Ok(s) => s,
            Err(s) => {
                out.truncate(start + HEADER_LEN);
                ErrorResponseRepr::default().emit_body(start, out);
                s
            }
        };
        Header::new_unchecked(&mut out[start..start + HEADER_LEN]).set_status(status);
        self.finish_async_answer(op.conn, out, mark, frame_start, p.request_signed, now);
    }

    /// CANCEL (MS-SMB2 3.3.5.16): find the pending request by AsyncId (async
    /// form) or MessageId and tell its backend. No response of its own; a
    /// backend that cancels at once has its request answered
    /// STATUS_CANCELLED after the frame.
    pub(crate) fn handle_cancel(&mut self, req: &Req<'_>, hdr: &Header<&[u8]>) {
        let Some(c) = self.table.connection(req.conn) else {
            return;
        };
        let files = &c.ext.files;
        let found = match hdr.async_id() {
            Some(id) => files.pending.get(&id),
            None => files
                .pending
                .values()
                .find(|p| p.message_id == req.message_id),
        };
        let Some(p) = found else {
            return;
        };
        let op = p.op;
        let share = files
            .trees
            .get(&(p.info.session.as_u64(), p.info.tree))
            .map(|t| t.share);
        let Some(s) = share.and_then(|i| self.shares.get_mut(i)) else {
            return;
        };
        if s.backend.cancel(op) {
            self.completions
                .push((op, Completion::Failed(NtStatus::CANCELLED)));
        }
    }
}
