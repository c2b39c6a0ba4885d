//! What the engine keeps per connection for its disk shares: the sessions
//! and tree connects that reached a backend (with the embedder's slots), the
//! open table (MS-SMB2 3.3.1.10 `Open`, Connection.OpenTable... kept per
//! connection since we do not offer multichannel or durable handles), and
//! the operations waiting for a backend (Connection.AsyncCommandList,
//! 3.3.1.7).
//!
//! Cleanup: every path on which a tree, session or connection goes calls
//! one of [`Engine::close_tree_files`], [`Engine::close_session_files`] or
//! [`Engine::close_conn_files`]; they abandon the pending operations of
//! that scope, clean up its opens and tell the backend the tree went.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use smb_wire::header::Command;
use smb_wire::msg::FileId;

use super::{Ctx, OpId, OpenRef, SessionCtx, Slot};
use crate::engine::Engine;
use crate::ids::{ConnId, SessionId};

/// A session that connected a tree of a disk share.
#[derive(Debug)]
pub(crate) struct DiskSession {
    pub ctx: SessionCtx,
    pub ext: Slot,
}

/// A tree connect to a disk share.
#[derive(Debug)]
pub(crate) struct DiskTree {
    /// Index into the engine's share slots.
    pub share: usize,
    pub name: Arc<str>,
    pub ext: Slot,
}

/// An open (MS-SMB2 3.3.1.10), as far as the engine is concerned.
#[derive(Debug)]
pub(crate) struct Open {
    pub file_id: FileId,
    pub session: SessionId,
    pub tree: u32,
    pub handle: u64,
    pub ext: Slot,
    /// Server-wide id for NetrFileEnum / NetrFileClose / `ctl files`
    /// ([`Engine::new_open_id`](crate::engine::Engine::new_open_id)).
    pub admin_id: u32,
    /// The path relative to the share, as the client named it, with a
    /// leading `\` (`\dir\file.txt`; the share's root is `\`).
    pub path: Box<str>,
    /// PERM_FILE_* bits (MS-SRVS 2.2.4.8) the open was granted.
    pub permissions: u32,
    /// Byte-range locks the client holds through it, as far as the engine
    /// saw them granted and released.
    pub locks: u32,
}

/// What a CREATE tells the administrator about the open it makes, kept
/// while the CREATE is pending.
#[derive(Debug, Clone)]
pub(crate) struct OpenMeta {
    /// The share-relative path (see [`Open::path`]).
    pub path: Box<str>,
    /// DesiredAccess.
    pub desired_access: u32,
}

impl OpenMeta {
    /// From the CREATE's name (UTF-16LE as sent, no leading `\\`) and
    /// access: one allocation, the path itself.
    pub fn new(name_utf16: &[u8], desired_access: u32) -> Self {
        let mut path = String::with_capacity(name_utf16.len() / 2 + 1);
        path.push('\\');
        path.extend(
            char::decode_utf16(smb_wire::utf16::units(name_utf16))
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)),
        );
        // A client that sent a leading separator anyway.
        while path.len() > 1 && path[1..].starts_with('\\') {
            path.remove(1);
        }
        OpenMeta {
            path: path.into_boxed_str(),
            desired_access,
        }
    }

    /// The PERM_FILE_* bits (MS-SRVS 2.2.4.8, FILE_INFO_3 fi3_permissions)
    /// an open with this access and CreateAction holds: READ for read
    /// access, WRITE for write or append access, CREATE when the CREATE
    /// made (or replaced) the file.
    pub fn permissions(&self, create_action: u32) -> u32 {
        const FILE_READ_DATA: u32 = 0x0000_0001;
        const FILE_WRITE_DATA: u32 = 0x0000_0002;
        const FILE_APPEND_DATA: u32 = 0x0000_0004;
        const MAXIMUM_ALLOWED: u32 = 0x0200_0000;
        const GENERIC_ALL: u32 = 0x1000_0000;
        const GENERIC_WRITE: u32 = 0x4000_0000;
        const GENERIC_READ: u32 = 0x8000_0000;
        const PERM_FILE_READ: u32 = 0x1;
        const PERM_FILE_WRITE: u32 = 0x2;
        const PERM_FILE_CREATE: u32 = 0x4;
        // CreateAction FILE_SUPERSEDED 0, FILE_CREATED 2, FILE_OVERWRITTEN 3.
        const MADE: [u32; 3] = [0, 2, 3];
        let a = self.desired_access;
        let mut p = 0;
        if a & (FILE_READ_DATA | GENERIC_READ | GENERIC_ALL | MAXIMUM_ALLOWED) != 0 {
            p |= PERM_FILE_READ;
        }
        if a & (FILE_WRITE_DATA | FILE_APPEND_DATA | GENERIC_WRITE | GENERIC_ALL | MAXIMUM_ALLOWED)
            != 0
        {
            p |= PERM_FILE_WRITE;
        }
        if MADE.contains(&create_action) {
            p |= PERM_FILE_CREATE;
        }
        p
    }
}

/// What the engine needs to encode the final response of an operation
/// (kept while it is pending).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpInfo {
    pub command: Command,
    pub session: SessionId,
    pub tree: u32,
    /// The open the request named (its FileId), if any.
    pub file_id: Option<FileId>,
    /// READ: Length / MinimumCount; QUERY_*, IOCTL, CHANGE_NOTIFY: the
    /// most output the client takes.
    pub max_out: u32,
    pub min_count: u32,
    /// CLOSE: POSTQUERY_ATTRIB. IOCTL: the CtlCode is in `ctl_code`.
    pub postquery: bool,
    pub ctl_code: u32,
    /// LOCK: the locks a success adds (positive) or releases (negative).
    pub lock_delta: i32,
}

/// A request answered with STATUS_PENDING (Connection.AsyncCommandList).
#[derive(Debug)]
pub(crate) struct Pending {
    pub op: OpId,
    pub info: OpInfo,
    pub message_id: u64,
    pub credit_charge: u16,
    pub request_signed: bool,
    /// CREATE: what the open will show administrators.
    pub meta: Option<OpenMeta>,
}

/// The per-connection file state (empty, and allocation-free, for a
/// connection that never touches a disk share).
#[derive(Debug, Default)]
pub(crate) struct Files {
    pub sessions: HashMap<u64, DiskSession>,
    pub trees: HashMap<(u64, u32), DiskTree>,
    /// By the FileId's volatile part (random, so unguessable).
    pub opens: HashMap<u64, Open>,
    /// By AsyncId (= the operation's number).
    pub pending: HashMap<u64, Pending>,
    /// Creates in flight (pending): counted against the open bound.
    pub creating: usize,
    next_persistent: u64,
}

impl Files {
    /// The open `id` names, if it was opened by `session` on `tree`
    /// (MS-SMB2 3.3.5.9 ff.: anything else is STATUS_FILE_CLOSED).
    pub fn open_key(&self, id: FileId, session: SessionId, tree: u32) -> Option<u64> {
        self.opens
            .get(&id.volatile)
            .filter(|o| o.file_id == id && o.session == session && o.tree == tree)
            .map(|_| id.volatile)
    }

    /// A FileId with the next persistent part and `volatile` (random,
    /// not in use: the caller checked).
    pub fn new_file_id(&mut self, volatile: u64) -> FileId {
        self.next_persistent += 1;
        FileId {
            persistent: self.next_persistent,
            volatile,
        }
    }
}

/// Which opens and pending operations a cleanup covers.
#[derive(Debug, Clone, Copy)]
enum Scope {
    Tree(SessionId, u32),
    Session(SessionId),
    Conn,
}

impl Scope {
    fn covers(&self, session: SessionId, tree: u32) -> bool {
        match *self {
            Scope::Tree(s, t) => s == session && t == tree,
            Scope::Session(s) => s == session,
            Scope::Conn => true,
        }
    }
}

impl Engine {
    /// A tree connect of a disk share goes (TREE_DISCONNECT, or its
    /// session goes): abandon its pending operations, clean up its opens,
    /// tell the backend.
    pub(crate) fn close_tree_files(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        tree: u32,
        now: Instant,
    ) {
        self.close_files(conn, Scope::Tree(sid, tree), now);
    }

    /// A session goes (LOGOFF, failed re-authentication, reap, admin).
    pub(crate) fn close_session_files(&mut self, conn: ConnId, sid: SessionId, now: Instant) {
        self.close_files(conn, Scope::Session(sid), now);
    }

    /// The connection goes.
    pub(crate) fn close_conn_files(&mut self, conn: ConnId, now: Instant) {
        self.close_files(conn, Scope::Conn, now);
    }

    fn close_files(&mut self, conn: ConnId, scope: Scope, now: Instant) {
        let Some(c) = self.table.connection_mut(conn) else {
            return;
        };
        let files = &mut c.ext.files;
        if files.trees.is_empty() && files.pending.is_empty() && files.opens.is_empty() {
            if let Scope::Session(s) = scope {
                files.sessions.remove(&s.as_u64());
            } else if let Scope::Conn = scope {
                files.sessions.clear();
            }
            return;
        }
        // 1. Pending operations: abandoned, never answered.
        let gone: Vec<u64> = files
            .pending
            .iter()
            .filter(|(_, p)| scope.covers(p.info.session, p.info.tree))
            .map(|(&k, _)| k)
            .collect();
        let mut abandoned = Vec::with_capacity(gone.len());
        for k in gone {
            if let Some(p) = files.pending.remove(&k) {
                if p.info.command == Command::Create {
                    files.creating = files.creating.saturating_sub(1);
                }
                let share = files
                    .trees
                    .get(&(p.info.session.as_u64(), p.info.tree))
                    .map(|t| t.share);
                abandoned.push((share, p.op));
            }
        }
        for (share, op) in abandoned {
            if let Some(s) = share.and_then(|i| self.shares.get_mut(i)) {
                s.backend.abandon(op);
            }
        }
        // 2. Opens: cleaned up.
        let Some(c) = self.table.connection_mut(conn) else {
            return;
        };
        let files = &mut c.ext.files;
        let gone: Vec<u64> = files
            .opens
            .iter()
            .filter(|(_, o)| scope.covers(o.session, o.tree))
            .map(|(&k, _)| k)
            .collect();
        for k in gone {
            let Some(c) = self.table.connection_mut(conn) else {
                return;
            };
            let Some(mut open) = c.ext.files.opens.remove(&k) else {
                continue;
            };
            self.release_open_id(open.admin_id);
            let (sid, tree) = (open.session, open.tree);
            let op = self.next_op(conn);
            self.call_tree(conn, sid, tree, op, now, |b, ctx| {
                let mut r = OpenRef {
                    handle: open.handle,
                    file_id: open.file_id,
                    ext: &mut open.ext,
                };
                b.cleanup(ctx, &mut r);
            });
            let _ = self.table.close_handle(sid);
        }
        // 3. Trees: the backend hears they went.
        let Some(c) = self.table.connection_mut(conn) else {
            return;
        };
        let trees: Vec<(u64, u32)> = c
            .ext
            .files
            .trees
            .keys()
            .filter(|&&(s, t)| SessionId::from_raw(s).is_some_and(|s| scope.covers(s, t)))
            .copied()
            .collect();
        for (s, t) in trees {
            if let Some(sid) = SessionId::from_raw(s) {
                let op = self.next_op(conn);
                self.call_tree(conn, sid, t, op, now, |b, ctx| b.tree_disconnect(ctx));
            }
            if let Some(c) = self.table.connection_mut(conn) {
                c.ext.files.trees.remove(&(s, t));
            }
        }
        // 4. The sessions' own state.
        if let Some(c) = self.table.connection_mut(conn) {
            match scope {
                Scope::Tree(..) => {}
                Scope::Session(s) => {
                    c.ext.files.sessions.remove(&s.as_u64());
                }
                Scope::Conn => c.ext.files.sessions.clear(),
            }
        }
    }

    /// Close the disk open whose administrative id is `id` (NetrFileClose,
    /// `ctl close-file`) exactly as a client's CLOSE would: it leaves the
    /// open table (a later request naming its FileId is FILE_CLOSED), the
    /// session's handle count drops, and the backend closes it (completing
    /// what was pending on it, CHANGE_NOTIFY with STATUS_NOTIFY_CLEANUP, as
    /// for a CLOSE). There is no request to answer, so a close the backend
    /// answers later is abandoned. `false` when no such open is here.
    pub(crate) fn close_disk_open(&mut self, id: u32, now: Instant) -> bool {
        let mut found = None;
        for (conn, c) in self.table.connections() {
            if let Some((&k, _)) = c.ext.files.opens.iter().find(|(_, o)| o.admin_id == id) {
                found = Some((conn, k));
                break;
            }
        }
        let Some((conn, key)) = found else {
            return false;
        };
        let Some(mut open) = self
            .table
            .connection_mut(conn)
            .and_then(|c| c.ext.files.opens.remove(&key))
        else {
            return false;
        };
        let (sid, tree) = (open.session, open.tree);
        self.release_open_id(id);
        let _ = self.table.close_handle(sid);
        let op = self.next_op(conn);
        let args = super::CloseArgs { postquery: false };
        let r = self.call_tree(conn, sid, tree, op, now, |b, ctx| {
            let mut r = OpenRef {
                handle: open.handle,
                file_id: open.file_id,
                ext: &mut open.ext,
            };
            b.close(ctx, &mut r, &args)
        });
        if let Some(super::Reply::Pending) = r {
            let share = self
                .table
                .connection(conn)
                .and_then(|c| c.ext.files.trees.get(&(sid.as_u64(), tree)))
                .map(|t| t.share);
            if let Some(s) = share.and_then(|i| self.shares.get_mut(i)) {
                s.backend.abandon(op);
            }
        }
        tracing::info!(
            shard = self.shard,
            id,
            session = %sid,
            path = %open.path,
            "open closed by an administrator"
        );
        // What the close completed (a CHANGE_NOTIFY's cleanup) goes out now.
        self.poll_backends(now);
        true
    }

    /// A fresh operation number on `conn` (never zero, never reused).
    pub(crate) fn next_op(&mut self, conn: ConnId) -> OpId {
        self.next_op_id += 1;
        OpId {
            conn,
            id: self.next_op_id,
        }
    }

    /// Call the backend of tree `tree` of session `sid` on `conn` with a
    /// context; `None` when that tree is not a disk tree of this
    /// connection (any more).
    pub(crate) fn call_tree<R>(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        tree: u32,
        op: OpId,
        now: Instant,
        f: impl FnOnce(&mut dyn super::ShareBackend, &mut Ctx<'_>) -> R,
    ) -> Option<R> {
        let Engine { table, shares, .. } = self;
        let c = table.connection_mut(conn)?;
        let files = &mut c.ext.files;
        let ds = files.sessions.get_mut(&sid.as_u64())?;
        let dt = files.trees.get_mut(&(sid.as_u64(), tree))?;
        let slot = shares.get_mut(dt.share)?;
        let mut ctx = Ctx {
            op,
            now,
            session: &ds.ctx,
            session_ext: &mut ds.ext,
            share: &dt.name,
            tree_id: tree,
            tree_ext: &mut dt.ext,
        };
        Some(f(&mut *slot.backend, &mut ctx))
    }

    /// Call the backend with a context and the open `key` (a volatile
    /// FileId part checked with [`Files::open_key`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn call_open<R>(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        tree: u32,
        key: u64,
        op: OpId,
        now: Instant,
        f: impl FnOnce(&mut dyn super::ShareBackend, &mut Ctx<'_>, &mut OpenRef<'_>) -> R,
    ) -> Option<R> {
        let Engine { table, shares, .. } = self;
        let c = table.connection_mut(conn)?;
        let files = &mut c.ext.files;
        let ds = files.sessions.get_mut(&sid.as_u64())?;
        let dt = files.trees.get_mut(&(sid.as_u64(), tree))?;
        let open = files.opens.get_mut(&key)?;
        let slot = shares.get_mut(dt.share)?;
        let mut ctx = Ctx {
            op,
            now,
            session: &ds.ctx,
            session_ext: &mut ds.ext,
            share: &dt.name,
            tree_id: tree,
            tree_ext: &mut dt.ext,
        };
        let mut r = OpenRef {
            handle: open.handle,
            file_id: open.file_id,
            ext: &mut open.ext,
        };
        Some(f(&mut *slot.backend, &mut ctx, &mut r))
    }
}
