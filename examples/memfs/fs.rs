//! MemFs: an in-memory file system served through smbcore's share backend
//! interface (`smbcore::session::engine::ShareBackend`), using only the
//! public API. One [`MemFs`] is shared by every shard; each shard's engine
//! gets its own [`MemFsBackend`] from [`share`].
//!
//! What it keeps (MS-FSCC and MS-SMB2 3.3.5.9 ff. as far as clients need):
//! files and directories with times and attributes, share modes, delete on
//! close and delete dispositions, rename, end of file and allocation size,
//! byte-range locks (a blocking lock waits, as an async operation, until
//! the range is free or it is cancelled), directory enumeration with
//! wildcards, and the information classes clients ask for.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use smbcore::session::engine::backend::CreateContextOut;
use smbcore::session::engine::backend::{
    ChangeNotifyArgs, CloseArgs, CreateArgs, IoctlArgs, LockArgs, QueryDirectoryArgs,
    QueryInfoArgs, ReadArgs, SetInfoArgs, WriteArgs,
};
use smbcore::session::engine::{
    Completion, Created, Ctx, FileAttrs, OpId, OpenRef, OplockBreakNotice, Output, Reply,
    ShareBackend, ShareDef,
};
use smbcore::session::ids::ConnId;
use smbcore::wire::msg::dir_info::{DirectoryEntry, DirectoryInfoClass, DirectoryInfoWriter};
use smbcore::wire::msg::lock::flags as lockf;
use smbcore::wire::msg::query_directory::flags as qdf;
use smbcore::wire::utf16;
use smbcore::wire::NtStatus;

/// NTSTATUS values the wire crate does not name.
mod st {
    use smbcore::wire::NtStatus;
    pub const DIRECTORY_NOT_EMPTY: NtStatus = NtStatus(0xC000_0101);
    pub const DISK_FULL: NtStatus = NtStatus(0xC000_007F);
    pub const LOCK_NOT_GRANTED: NtStatus = NtStatus(0xC000_0054);
    pub const FILE_LOCK_CONFLICT: NtStatus = NtStatus(0xC000_0055);
    pub const RANGE_NOT_LOCKED: NtStatus = NtStatus(0xC000_007E);
    pub const INVALID_LOCK_RANGE: NtStatus = NtStatus(0xC000_01A1);
    pub const CANNOT_DELETE: NtStatus = NtStatus(0xC000_0121);
}

// Access mask bits (MS-DTYP 2.4.3) and generic mapping for files.
const FILE_READ_DATA: u32 = 0x1;
const FILE_WRITE_DATA: u32 = 0x2;
const FILE_APPEND_DATA: u32 = 0x4;
const FILE_EXECUTE: u32 = 0x20;
const DELETE: u32 = 0x1_0000;
const MAXIMUM_ALLOWED: u32 = 0x0200_0000;
const FILE_ALL_ACCESS: u32 = 0x001F_01FF;

// ShareAccess, CreateOptions, attributes.
const SHARE_READ: u32 = 1;
const SHARE_WRITE: u32 = 2;
const SHARE_DELETE: u32 = 4;
const FILE_DIRECTORY_FILE: u32 = 0x1;
const FILE_NON_DIRECTORY_FILE: u32 = 0x40;
const FILE_DELETE_ON_CLOSE: u32 = 0x1000;
const ATTR_READONLY: u32 = 0x1;
const ATTR_DIRECTORY: u32 = 0x10;
const ATTR_ARCHIVE: u32 = 0x20;
const ATTR_NORMAL: u32 = 0x80;

const CLUSTER: u64 = 4096;

fn map_generic(mut a: u32) -> u32 {
    if a & 0x8000_0000 != 0 {
        a |= 0x0012_0089;
    }
    if a & 0x4000_0000 != 0 {
        a |= 0x0012_0116;
    }
    if a & 0x2000_0000 != 0 {
        a |= 0x0012_00A0;
    }
    if a & (0x1000_0000 | MAXIMUM_ALLOWED) != 0 {
        a |= FILE_ALL_ACCESS;
    }
    a & FILE_ALL_ACCESS
}

/// FILETIME now (100 ns units since 1601).
pub fn filetime_now() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    116_444_736_000_000_000 + d.as_secs() * 10_000_000 + u64::from(d.subsec_nanos() / 100)
}

fn upper(s: &str) -> String {
    s.to_uppercase()
}

/// A file or directory.
#[derive(Debug)]
struct Node {
    name: String,
    parent: u64,
    /// Children by upper-cased name (directories only).
    children: Option<BTreeMap<String, u64>>,
    data: Vec<u8>,
    allocation: u64,
    attrs: u32,
    /// Creation, last access, last write, change.
    times: [u64; 4],
    delete_pending: bool,
    opens: Vec<u64>,
    locks: Vec<Lock>,
    oplock: Option<Oplock>,
    /// The DACL set through SET_INFO (raw security descriptor and its
    /// ACEs: type, mask, SID); none means everyone may do everything.
    dacl: Option<Vec<Ace>>,
    sd: Option<Vec<u8>>,
}

impl Node {
    fn is_dir(&self) -> bool {
        self.children.is_some()
    }

    fn file_attrs(&self) -> FileAttrs {
        let eof = if self.is_dir() {
            0
        } else {
            self.data.len() as u64
        };
        let attrs = if self.attrs == 0 {
            ATTR_NORMAL
        } else {
            self.attrs
        };
        FileAttrs {
            creation_time: self.times[0],
            last_access_time: self.times[1],
            last_write_time: self.times[2],
            change_time: self.times[3],
            allocation_size: self.allocation.max(eof.next_multiple_of(CLUSTER)),
            end_of_file: eof,
            file_attributes: attrs,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lock {
    handle: u64,
    offset: u64,
    length: u64,
    exclusive: bool,
}

impl Lock {
    fn overlaps(&self, o: &Lock) -> bool {
        if self.length == 0 || o.length == 0 {
            return false;
        }
        let (a0, a1) = (self.offset, self.offset.saturating_add(self.length - 1));
        let (b0, b1) = (o.offset, o.offset.saturating_add(o.length - 1));
        a0 <= b1 && b0 <= a1
    }

    fn conflicts(&self, o: &Lock) -> bool {
        // Shared locks of one open never conflict with its own locks.
        self.overlaps(o)
            && (self.exclusive || o.exclusive)
            && (o.handle != self.handle || self.exclusive)
    }
}

/// An access control entry: type (0 allow, 1 deny), mask, SID.
type Ace = (u8, u32, Vec<u8>);

/// An open (the backend's half; the engine keeps the FileId).
#[derive(Debug)]
struct Open {
    node: u64,
    access: u32,
    share: u32,
    delete_on_close: bool,
    /// Directory enumeration: pattern and the last key returned.
    search: Option<(String, Option<String>)>,
    /// Where the open lives (for oplock breaks).
    conn: ConnId,
    shard: u16,
}

/// An operation that waits (went pending).
#[derive(Debug)]
struct Waiter {
    shard: u16,
    op: OpId,
    /// The open it was made on (a CREATE: none).
    handle: u64,
    kind: Wait,
}

#[derive(Debug)]
enum Wait {
    /// A blocking lock waiting for its range.
    Lock(Lock),
    /// A CHANGE_NOTIFY (answered when its open closes or it is cancelled).
    Notify,
    /// A CREATE waiting for the oplock on this node to be broken.
    Create(Box<CreateReq>, u64),
}

/// The CREATE arguments a waiting CREATE keeps.
#[derive(Debug, Clone)]
struct CreateReq {
    name: String,
    access: u32,
    share: u32,
    disposition: u32,
    options: u32,
    attrs: u32,
    impersonation: u32,
    oplock: u8,
    mxac: bool,
    qfid: bool,
    conn: ConnId,
}

/// An exclusive or batch oplock.
#[derive(Debug, Clone, Copy)]
struct Oplock {
    handle: u64,
    /// A break was sent; waiting for the acknowledgement or the close.
    breaking: bool,
}

/// The whole file system, shared by every shard.
#[derive(Debug)]
struct Fs {
    nodes: HashMap<u64, Node>,
    next_node: u64,
    opens: HashMap<u64, Open>,
    next_handle: u64,
    bytes: u64,
    max_bytes: u64,
    waiters: Vec<Waiter>,
    /// Completions for each shard's backend to hand back.
    done: HashMap<u16, VecDeque<(OpId, Completion)>>,
    /// Oplock breaks for each shard's backend to hand to its engine.
    breaks: HashMap<u16, VecDeque<OplockBreakNotice>>,
    /// Whether oplocks are granted (a break is delivered when the holder's
    /// shard next runs its backends, so only a one-shard server grants them).
    oplocks: bool,
    /// Completions and breaks queued for all shards.
    queued: Arc<AtomicUsize>,
}

const ROOT: u64 = 1;

/// An in-memory file system; clone the handle to share it.
#[derive(Debug, Clone)]
pub struct MemFs {
    fs: Arc<Mutex<Fs>>,
    queued: Arc<AtomicUsize>,
}

impl MemFs {
    /// An empty file system holding at most `max_bytes` of file data.
    pub fn new(max_bytes: u64) -> MemFs {
        let now = filetime_now();
        let queued = Arc::new(AtomicUsize::new(0));
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                name: String::new(),
                parent: ROOT,
                children: Some(BTreeMap::new()),
                data: Vec::new(),
                allocation: 0,
                attrs: ATTR_DIRECTORY,
                times: [now; 4],
                delete_pending: false,
                opens: Vec::new(),
                locks: Vec::new(),
                oplock: None,
                dacl: None,
                sd: None,
            },
        );
        MemFs {
            fs: Arc::new(Mutex::new(Fs {
                nodes,
                next_node: ROOT + 1,
                opens: HashMap::new(),
                next_handle: 1,
                bytes: 0,
                max_bytes,
                waiters: Vec::new(),
                done: HashMap::new(),
                breaks: HashMap::new(),
                oplocks: false,
                queued: queued.clone(),
            })),
            queued,
        }
    }

    /// Grant exclusive and batch oplocks (breaking them when another open
    /// comes). Only for a server with one shard: a break is sent when the
    /// holder's shard next runs its backends.
    pub fn with_oplocks(self, on: bool) -> MemFs {
        self.lock().oplocks = on;
        self
    }

    /// The share `name` serving this file system on every shard.
    pub fn share(&self, name: &str) -> ShareDef {
        let fs = self.clone();
        ShareDef::new(name, move |shard: u16| -> Box<dyn ShareBackend> {
            Box::new(MemFsBackend {
                fs: fs.clone(),
                shard,
            })
        })
        .with_comment("memfs: files in memory")
    }

    fn lock(&self) -> MutexGuard<'_, Fs> {
        // A panic elsewhere leaves the data usable: keep serving.
        self.fs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One shard's view of a [`MemFs`].
#[derive(Debug)]
pub struct MemFsBackend {
    fs: MemFs,
    shard: u16,
}

/// Split a share-relative path into its components; `None` for an invalid
/// name (MS-FSCC 2.1.5).
fn components(path: &str) -> Result<Vec<&str>, NtStatus> {
    let path = path.strip_suffix("::$DATA").unwrap_or(path);
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for c in path.split('\\') {
        if c.is_empty() {
            continue;
        }
        if c == "." || c == ".." {
            return Err(NtStatus::OBJECT_NAME_INVALID);
        }
        if c.chars()
            .any(|ch| "\"*/:<>?|".contains(ch) || (ch as u32) < 0x20)
        {
            return Err(NtStatus::OBJECT_NAME_INVALID);
        }
        out.push(c);
    }
    Ok(out)
}

/// DOS wildcard match (MS-FSCC 2.1.4.4), case-insensitive, on upper-cased
/// strings: `*`, `?`, `<` (like `*`), `>` (like `?`), `"` (a dot).
fn wild(pat: &[char], name: &[char]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some(('*' | '<', rest)) => (0..=name.len()).any(|i| wild(rest, &name[i..])),
        Some(('?' | '>', rest)) => match name.split_first() {
            Some((_, n)) => wild(rest, n),
            None => pat
                .iter()
                .all(|&c| c == '>' || c == '"' || c == '*' || c == '<'),
        },
        Some(('"', rest)) => match name.split_first() {
            Some(('.', n)) => wild(rest, n),
            None => wild(rest, name),
            _ => false,
        },
        Some((c, rest)) => name.first() == Some(c) && wild(rest, &name[1..]),
    }
}

impl Fs {
    fn node(&self, id: u64) -> Result<&Node, NtStatus> {
        self.nodes.get(&id).ok_or(NtStatus::FILE_CLOSED)
    }

    fn open(&self, handle: u64) -> Result<&Open, NtStatus> {
        self.opens.get(&handle).ok_or(NtStatus::FILE_CLOSED)
    }

    /// Parent directory of `parts` and the node itself, if it exists.
    fn lookup(&self, parts: &[&str]) -> Result<(u64, Option<u64>), NtStatus> {
        let mut dir = ROOT;
        let Some((last, dirs)) = parts.split_last() else {
            return Ok((ROOT, Some(ROOT)));
        };
        for c in dirs {
            let n = &self.nodes[&dir];
            let Some(ch) = n.children.as_ref().and_then(|m| m.get(&upper(c))) else {
                return Err(NtStatus::OBJECT_PATH_NOT_FOUND);
            };
            if !self.nodes[ch].is_dir() {
                return Err(NtStatus::OBJECT_PATH_NOT_FOUND);
            }
            dir = *ch;
        }
        let child = self.nodes[&dir]
            .children
            .as_ref()
            .and_then(|m| m.get(&upper(last)))
            .copied();
        Ok((dir, child))
    }

    fn path_of(&self, mut id: u64) -> String {
        let mut parts = Vec::new();
        while id != ROOT {
            let n = &self.nodes[&id];
            parts.push(n.name.as_str());
            id = n.parent;
        }
        parts.reverse();
        format!("\\{}", parts.join("\\"))
    }

    fn new_node(&mut self, parent: u64, name: &str, dir: bool, attrs: u32) -> u64 {
        let id = self.next_node;
        self.next_node += 1;
        let now = filetime_now();
        let attrs = attrs & !(ATTR_DIRECTORY | ATTR_NORMAL) & 0x7FFF;
        self.nodes.insert(
            id,
            Node {
                name: name.to_string(),
                parent,
                children: dir.then(BTreeMap::new),
                data: Vec::new(),
                allocation: 0,
                attrs: if dir {
                    attrs | ATTR_DIRECTORY
                } else {
                    attrs | ATTR_ARCHIVE
                },
                times: [now; 4],
                delete_pending: false,
                opens: Vec::new(),
                locks: Vec::new(),
                oplock: None,
                dacl: None,
                sd: None,
            },
        );
        if let Some(p) = self.nodes.get_mut(&parent) {
            p.children
                .get_or_insert_with(BTreeMap::new)
                .insert(upper(name), id);
            p.times[2] = now;
            p.times[3] = now;
        }
        id
    }

    fn set_len(&mut self, id: u64, len: u64) -> Result<(), NtStatus> {
        let n = self.nodes.get_mut(&id).ok_or(NtStatus::FILE_CLOSED)?;
        let old = n.data.len() as u64;
        if len > old && self.bytes + (len - old) > self.max_bytes {
            return Err(st::DISK_FULL);
        }
        n.data.resize(len as usize, 0);
        self.bytes = self.bytes + len - old;
        let now = filetime_now();
        n.times[2] = now;
        n.times[3] = now;
        Ok(())
    }

    /// Share mode check (MS-FSCC 2.1.5.1.2.1) of a new open against those
    /// already on `node`.
    fn sharing_ok(&self, node: u64, access: u32, share: u32) -> bool {
        let uses = |a: u32| {
            (
                a & (FILE_READ_DATA | FILE_EXECUTE) != 0,
                a & (FILE_WRITE_DATA | FILE_APPEND_DATA) != 0,
                a & DELETE != 0,
            )
        };
        let (r, w, d) = uses(access);
        self.nodes[&node].opens.iter().all(|h| {
            let o = &self.opens[h];
            let (or, ow, od) = uses(o.access);
            !(r && o.share & SHARE_READ == 0
                || w && o.share & SHARE_WRITE == 0
                || d && o.share & SHARE_DELETE == 0
                || or && share & SHARE_READ == 0
                || ow && share & SHARE_WRITE == 0
                || od && share & SHARE_DELETE == 0)
        })
    }

    fn remove_node(&mut self, id: u64) {
        if let Some(n) = self.nodes.remove(&id) {
            self.bytes -= n.data.len() as u64;
            if let Some(p) = self.nodes.get_mut(&n.parent) {
                if let Some(c) = p.children.as_mut() {
                    c.remove(&upper(&n.name));
                }
                let now = filetime_now();
                p.times[2] = now;
                p.times[3] = now;
            }
        }
    }

    /// CREATE (MS-SMB2 3.3.5.9, MS-FSCC 2.1.5.1): `Ok(None)` when the file
    /// holds another open's oplock, which is being broken first.
    fn create(&mut self, r: &CreateReq, shard: u16) -> Result<Option<Created>, NtStatus> {
        if r.name.starts_with('\\') {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let parts = components(&r.name)?;
        let (opts, disp) = (r.options, r.disposition);
        if disp > 5
            || opts & FILE_DIRECTORY_FILE != 0 && opts & FILE_NON_DIRECTORY_FILE != 0
            || r.impersonation > 3
        {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let mut access = map_generic(r.access);
        if opts & FILE_DELETE_ON_CLOSE != 0 && access & DELETE == 0 {
            return Err(NtStatus::ACCESS_DENIED);
        }
        let (parent, existing) = self.lookup(&parts)?;
        let want_dir = opts & FILE_DIRECTORY_FILE != 0;
        let (node, action) = match existing {
            Some(id) => {
                let n = self.node(id)?;
                if n.delete_pending {
                    return Err(NtStatus::DELETE_PENDING);
                }
                if disp == 2 {
                    return Err(NtStatus::OBJECT_NAME_COLLISION);
                }
                if want_dir && !n.is_dir() {
                    return Err(NtStatus::NOT_A_DIRECTORY);
                }
                if opts & FILE_NON_DIRECTORY_FILE != 0 && n.is_dir() {
                    return Err(NtStatus::FILE_IS_A_DIRECTORY);
                }
                let overwrite = matches!(disp, 0 | 4 | 5);
                if overwrite && n.is_dir() {
                    return Err(NtStatus::INVALID_PARAMETER);
                }
                if let Some(dacl) = &n.dacl {
                    let granted = dacl_granted(dacl);
                    if r.access & MAXIMUM_ALLOWED != 0 {
                        access = granted;
                    }
                    if access & !granted != 0 {
                        return Err(NtStatus::ACCESS_DENIED);
                    }
                }
                if n.attrs & ATTR_READONLY != 0
                    && (overwrite || access & (FILE_WRITE_DATA | FILE_APPEND_DATA) != 0)
                {
                    return Err(NtStatus::ACCESS_DENIED);
                }
                if opts & FILE_DELETE_ON_CLOSE != 0 && n.attrs & ATTR_READONLY != 0 {
                    return Err(st::CANNOT_DELETE);
                }
                // Another client caches this file: break its oplock first
                // (MS-FSA 2.1.5.17); the CREATE waits for the answer.
                if let Some(o) = n.oplock {
                    if !o.breaking {
                        if let Some(h) = self.opens.get(&o.handle) {
                            let notice = OplockBreakNotice::new(h.conn, o.handle, 0);
                            self.breaks.entry(h.shard).or_default().push_back(notice);
                            self.queued.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Some(n) = self.nodes.get_mut(&id) {
                            n.oplock = Some(Oplock {
                                breaking: true,
                                ..o
                            });
                        }
                    }
                    return Ok(None);
                }
                if !self.sharing_ok(id, access, r.share) {
                    return Err(NtStatus::SHARING_VIOLATION);
                }
                if overwrite {
                    self.set_len(id, 0)?;
                    if let Some(n) = self.nodes.get_mut(&id) {
                        n.allocation = 0;
                        n.attrs = (r.attrs & 0x7FFF & !ATTR_NORMAL) | ATTR_ARCHIVE;
                    }
                }
                (id, [0, 1, 1, 1, 3, 3][disp as usize])
            }
            None => {
                if matches!(disp, 1 | 4) {
                    return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
                }
                let Some(leaf) = parts.last() else {
                    return Err(NtStatus::OBJECT_NAME_INVALID);
                };
                if want_dir && !matches!(disp, 2 | 3) {
                    return Err(NtStatus::INVALID_PARAMETER);
                }
                if self.node(parent)?.delete_pending {
                    return Err(NtStatus::DELETE_PENDING);
                }
                let used: u64 = self.nodes.len() as u64 * 256;
                if used > self.max_bytes {
                    return Err(st::DISK_FULL);
                }
                (self.new_node(parent, leaf, want_dir, r.attrs), 2)
            }
        };
        let handle = self.next_handle;
        self.next_handle += 1;
        self.opens.insert(
            handle,
            Open {
                node,
                access,
                share: r.share,
                delete_on_close: opts & FILE_DELETE_ON_CLOSE != 0,
                search: None,
                conn: r.conn,
                shard,
            },
        );
        let oplocks = self.oplocks;
        let n = self.nodes.get_mut(&node).ok_or(NtStatus::FILE_CLOSED)?;
        n.opens.push(handle);
        let mut created = Created::new(handle, action, n.file_attrs());
        // Exclusive and batch oplocks only, to a file's only open.
        if oplocks && matches!(r.oplock, 8 | 9) && n.opens.len() == 1 && !n.is_dir() {
            n.oplock = Some(Oplock {
                handle,
                breaking: false,
            });
            created.oplock_level = r.oplock;
        }
        if r.mxac {
            let mut d = 0u32.to_le_bytes().to_vec();
            d.extend_from_slice(
                &n.dacl
                    .as_ref()
                    .map_or(FILE_ALL_ACCESS, |d| dacl_granted(d))
                    .to_le_bytes(),
            );
            created.contexts.push(CreateContextOut {
                name: b"MxAc".to_vec(),
                data: d,
            });
        }
        if r.qfid {
            let mut d = node.to_le_bytes().to_vec();
            d.extend_from_slice(&[0x6d, 0x65, 0x6d, 0x66, 0, 0, 0, 0]);
            d.extend_from_slice(&[0; 16]);
            created.contexts.push(CreateContextOut {
                name: b"QFid".to_vec(),
                data: d,
            });
        }
        Ok(Some(created))
    }

    /// The oplock on `node` is gone (acknowledged or closed): run the
    /// CREATEs that waited for it.
    fn oplock_released(&mut self, node: u64, queued: &AtomicUsize) {
        if let Some(n) = self.nodes.get_mut(&node) {
            n.oplock = None;
        }
        let (ready, keep): (Vec<_>, Vec<_>) = self
            .waiters
            .drain(..)
            .partition(|w| matches!(&w.kind, Wait::Create(_, n) if *n == node));
        self.waiters = keep;
        for w in ready {
            let Wait::Create(req, _) = w.kind else {
                continue;
            };
            match self.create(&req, w.shard) {
                Ok(None) => self.waiters.push(Waiter {
                    kind: Wait::Create(req, node),
                    ..w
                }),
                r => {
                    let c = match r {
                        Ok(Some(c)) => Completion::Create(c),
                        Err(e) => Completion::Failed(e),
                        Ok(None) => unreachable!(),
                    };
                    self.done.entry(w.shard).or_default().push_back((w.op, c));
                    queued.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Grant waiting locks whose range is free now.
    fn wake_locks(&mut self, queued: &AtomicUsize) {
        let mut i = 0;
        while i < self.waiters.len() {
            let w = &self.waiters[i];
            let (Wait::Lock(lock), Some(open)) = (&w.kind, self.opens.get(&w.handle)) else {
                i += 1;
                continue;
            };
            let (node, lock) = (open.node, *lock);
            let free = self.nodes[&node].locks.iter().all(|l| !lock.conflicts(l));
            if free {
                let w = self.waiters.remove(i);
                if let Some(n) = self.nodes.get_mut(&node) {
                    n.locks.push(lock);
                }
                self.done
                    .entry(w.shard)
                    .or_default()
                    .push_back((w.op, Completion::Done));
                queued.fetch_add(1, Ordering::Relaxed);
            } else {
                i += 1;
            }
        }
    }

    /// Finish what waits on `handle` (its open goes).
    fn finish_waiters(&mut self, handle: u64, queued: &AtomicUsize) {
        let (gone, keep): (Vec<_>, Vec<_>) = self
            .waiters
            .drain(..)
            .partition(|w| w.handle == handle && !matches!(w.kind, Wait::Create(..)));
        self.waiters = keep;
        for w in gone {
            let c = if matches!(w.kind, Wait::Lock(_)) {
                Completion::Failed(st::RANGE_NOT_LOCKED)
            } else {
                Completion::Output(Output {
                    data: Vec::new(),
                    status: NtStatus::NOTIFY_CLEANUP,
                })
            };
            self.done.entry(w.shard).or_default().push_back((w.op, c));
            queued.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Close `handle`: delete on close, locks, waiters.
    fn close(&mut self, handle: u64, queued: &AtomicUsize) -> Option<FileAttrs> {
        let open = self.opens.remove(&handle)?;
        self.finish_waiters(handle, queued);
        let node = self.nodes.get_mut(&open.node)?;
        node.opens.retain(|&h| h != handle);
        node.locks.retain(|l| l.handle != handle);
        let empty_dir = node.children.as_ref().map_or(true, |c| c.is_empty());
        if open.delete_on_close && empty_dir {
            node.delete_pending = true;
        }
        let attrs = node.file_attrs();
        let had_oplock = node.oplock.is_some_and(|o| o.handle == handle);
        if had_oplock {
            node.oplock = None;
        }
        if node.opens.is_empty() && node.delete_pending {
            let id = open.node;
            self.remove_node(id);
        }
        if had_oplock {
            self.oplock_released(open.node, queued);
        }
        self.wake_locks(queued);
        Some(attrs)
    }
}

impl MemFsBackend {
    fn query_dir_inner(
        &self,
        handle: u64,
        args: &QueryDirectoryArgs<'_>,
    ) -> Result<Output, NtStatus> {
        let class =
            DirectoryInfoClass::from_u8(args.info_class).ok_or(NtStatus::INVALID_INFO_CLASS)?;
        let mut fs = self.fs.lock();
        let open = fs.open(handle)?;
        let dir = open.node;
        if !fs.node(dir)?.is_dir() {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let restart = args.flags & (qdf::RESTART_SCANS | qdf::REOPEN) != 0;
        let (pattern, mut cursor, first) = match (&open.search, restart) {
            (Some((p, c)), false) => (p.clone(), c.clone(), false),
            _ => {
                let p = args.pattern();
                (
                    if p.is_empty() { "*".into() } else { upper(&p) },
                    None,
                    true,
                )
            }
        };
        let pat: Vec<char> = pattern.chars().collect();
        // ".", "..", then the children by name; keys sort in that order.
        let d = &fs.nodes[&dir];
        let mut list: Vec<(String, String, u64)> = vec![
            ("\0.".into(), ".".into(), dir),
            ("\0..".into(), "..".into(), d.parent),
        ];
        if let Some(c) = &d.children {
            for (k, id) in c {
                list.push((k.clone(), fs.nodes[id].name.clone(), *id));
            }
        }
        let mut out = Vec::new();
        let mut w = DirectoryInfoWriter::new(&mut out, class, args.output_buffer_length);
        let mut name_buf = Vec::new();
        for (key, name, id) in list {
            if cursor.as_ref().is_some_and(|c| key <= *c) {
                continue;
            }
            let up: Vec<char> = upper(&name).chars().collect();
            if !wild(&pat, &up) {
                continue;
            }
            let a = fs.nodes[&id].file_attrs();
            name_buf.clear();
            utf16::encode_into(&name, &mut name_buf);
            let e = DirectoryEntry {
                file_index: 0,
                times: [
                    a.creation_time,
                    a.last_access_time,
                    a.last_write_time,
                    a.change_time,
                ],
                end_of_file: a.end_of_file,
                allocation_size: a.allocation_size,
                file_attributes: a.file_attributes,
                file_id: id,
                name: &name_buf,
                ..DirectoryEntry::default()
            };
            if !w.push(&e) {
                if w.is_empty() {
                    return Err(NtStatus::INFO_LENGTH_MISMATCH);
                }
                break;
            }
            cursor = Some(key);
            if args.flags & qdf::RETURN_SINGLE_ENTRY != 0 {
                break;
            }
        }
        let empty = w.is_empty();
        w.finish();
        if let Some(o) = fs.opens.get_mut(&handle) {
            o.search = Some((pattern, cursor));
        }
        if empty {
            return Err(if first {
                NtStatus::NO_SUCH_FILE
            } else {
                NtStatus::NO_MORE_FILES
            });
        }
        Ok(Output::new(out))
    }

    fn query_info_inner(&self, handle: u64, args: &QueryInfoArgs<'_>) -> Result<Output, NtStatus> {
        let fs = self.fs.lock();
        let open = fs.open(handle)?;
        let n = fs.node(open.node)?;
        let a = n.file_attrs();
        let mut o = Vec::new();
        let basic = |o: &mut Vec<u8>| {
            for t in [
                a.creation_time,
                a.last_access_time,
                a.last_write_time,
                a.change_time,
            ] {
                put64(o, t);
            }
            put32(o, a.file_attributes);
            put32(o, 0);
        };
        let standard = |o: &mut Vec<u8>| {
            put64(o, a.allocation_size);
            put64(o, a.end_of_file);
            put32(o, 1);
            o.push(u8::from(n.delete_pending || open.delete_on_close));
            o.push(u8::from(n.is_dir()));
            o.extend_from_slice(&[0, 0]);
        };
        let name = |o: &mut Vec<u8>| {
            let mut b = Vec::new();
            utf16::encode_into(&fs.path_of(open.node), &mut b);
            put32(o, b.len() as u32);
            o.extend_from_slice(&b);
        };
        let ((), min) = match (args.info_type, args.info_class) {
            (1, 4) => (basic(&mut o), 40),
            (1, 5) => (standard(&mut o), 24),
            (1, 6) => (put64(&mut o, open.node), 8),
            (1, 7) => (put32(&mut o, 0), 4),
            (1, 8) => (put32(&mut o, open.access), 4),
            (1, 9) => (name(&mut o), 4),
            (1, 14) => (put64(&mut o, 0), 8),
            (1, 16) => (put32(&mut o, 0), 4),
            (1, 17) => (put32(&mut o, 0), 4),
            (1, 18) => {
                basic(&mut o);
                standard(&mut o);
                put64(&mut o, open.node);
                put32(&mut o, 0); // EaSize
                put32(&mut o, open.access);
                put64(&mut o, 0); // CurrentByteOffset
                put32(&mut o, 0); // Mode
                put32(&mut o, 0); // AlignmentRequirement
                name(&mut o);
                ((), 100)
            }
            (1, 21) => return Err(NtStatus::OBJECT_NAME_NOT_FOUND), // no 8.3 names
            (1, 22) => {
                // FileStreamInformation: the unnamed data stream of a file.
                if !n.is_dir() {
                    let mut b = Vec::new();
                    utf16::encode_into("::$DATA", &mut b);
                    put32(&mut o, 0);
                    put32(&mut o, b.len() as u32);
                    put64(&mut o, a.end_of_file);
                    put64(&mut o, a.allocation_size);
                    o.extend_from_slice(&b);
                }
                ((), 0)
            }
            (1, 28) => {
                put64(&mut o, a.end_of_file);
                o.extend_from_slice(&[0; 8]);
                ((), 16)
            }
            (1, 34) => {
                for t in [
                    a.creation_time,
                    a.last_access_time,
                    a.last_write_time,
                    a.change_time,
                ] {
                    put64(&mut o, t);
                }
                put64(&mut o, a.allocation_size);
                put64(&mut o, a.end_of_file);
                put32(&mut o, a.file_attributes);
                put32(&mut o, 0);
                ((), 56)
            }
            (1, 35) => {
                put32(&mut o, a.file_attributes);
                put32(&mut o, 0);
                ((), 8)
            }
            (2, c) => return fs_info(c, args.output_buffer_length, fs.max_bytes, fs.bytes),
            // A self-relative security descriptor with no owner, group or
            // DACL: everyone may do everything (MS-DTYP 2.4.6).
            (3, _) => {
                match &n.sd {
                    Some(sd) => o.extend_from_slice(sd),
                    None => {
                        o.extend_from_slice(&[1, 0, 0x00, 0x80]);
                        o.extend_from_slice(&[0; 16]);
                    }
                }
                ((), 20)
            }
            (1, _) => return Err(NtStatus::INVALID_INFO_CLASS),
            _ => return Err(NtStatus::NOT_SUPPORTED),
        };
        if (args.output_buffer_length as usize) < min {
            return Err(NtStatus::INFO_LENGTH_MISMATCH);
        }
        Ok(Output::new(o))
    }

    fn set_info_inner(&self, handle: u64, args: &SetInfoArgs<'_>) -> Result<(), NtStatus> {
        let b = args.buffer;
        let u64_at = |i: usize| -> Result<u64, NtStatus> {
            b.get(i..i + 8)
                .map(|s| u64::from_le_bytes(s.try_into().unwrap_or_default()))
                .ok_or(NtStatus::INFO_LENGTH_MISMATCH)
        };
        let u32_at = |i: usize| -> Result<u32, NtStatus> {
            b.get(i..i + 4)
                .map(|s| u32::from_le_bytes(s.try_into().unwrap_or_default()))
                .ok_or(NtStatus::INFO_LENGTH_MISMATCH)
        };
        let mut fs = self.fs.lock();
        let open = fs.open(handle)?;
        let (id, access) = (open.node, open.access);
        match (args.info_type, args.info_class) {
            (1, 4) => {
                // FileBasicInformation: 0 (and -1) leave a time alone.
                let times = [u64_at(0)?, u64_at(8)?, u64_at(16)?, u64_at(24)?];
                let attrs = u32_at(32)?;
                let n = fs.nodes.get_mut(&id).ok_or(NtStatus::FILE_CLOSED)?;
                if attrs != 0 {
                    if n.is_dir() != (attrs & ATTR_DIRECTORY != 0) && attrs & ATTR_DIRECTORY != 0 {
                        return Err(NtStatus::INVALID_PARAMETER);
                    }
                    let keep = n.attrs & ATTR_DIRECTORY;
                    n.attrs = (attrs & 0x7FFF & !ATTR_NORMAL) | keep;
                }
                for (t, v) in n.times.iter_mut().zip(times) {
                    if v != 0 && v != u64::MAX && v != u64::MAX - 1 {
                        *t = v;
                    }
                }
                Ok(())
            }
            (1, 10) => {
                // FileRenameInformation (MS-FSCC 2.4.37.2).
                let replace = *b.first().ok_or(NtStatus::INFO_LENGTH_MISMATCH)? != 0;
                let len = u32_at(16)? as usize;
                let name = b.get(20..20 + len).ok_or(NtStatus::INFO_LENGTH_MISMATCH)?;
                if access & DELETE == 0 {
                    return Err(NtStatus::ACCESS_DENIED);
                }
                let name: String = char::decode_utf16(utf16::units(name))
                    .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect();
                let parts = components(name.trim_start_matches('\\'))?;
                let Some(leaf) = parts.last() else {
                    return Err(NtStatus::OBJECT_NAME_INVALID);
                };
                if id == ROOT {
                    return Err(NtStatus::ACCESS_DENIED);
                }
                let (parent, existing) = fs.lookup(&parts)?;
                // Not into itself.
                let mut p = parent;
                while p != ROOT {
                    if p == id {
                        return Err(NtStatus::INVALID_PARAMETER);
                    }
                    p = fs.nodes[&p].parent;
                }
                match existing {
                    Some(e) if e == id => {}
                    Some(e) => {
                        let t = fs.node(e)?;
                        if !replace {
                            return Err(NtStatus::OBJECT_NAME_COLLISION);
                        }
                        if t.is_dir() || !t.opens.is_empty() {
                            return Err(NtStatus::ACCESS_DENIED);
                        }
                        fs.remove_node(e);
                    }
                    None => {}
                }
                let old_parent = fs.nodes[&id].parent;
                let old_key = upper(&fs.nodes[&id].name);
                if let Some(c) = fs
                    .nodes
                    .get_mut(&old_parent)
                    .and_then(|p| p.children.as_mut())
                {
                    c.remove(&old_key);
                }
                if let Some(c) = fs.nodes.get_mut(&parent).and_then(|p| p.children.as_mut()) {
                    c.insert(upper(leaf), id);
                }
                let now = filetime_now();
                if let Some(n) = fs.nodes.get_mut(&id) {
                    n.name = leaf.to_string();
                    n.parent = parent;
                    n.times[3] = now;
                }
                Ok(())
            }
            (1, 13) | (1, 64) => {
                // FileDispositionInformation(Ex): bit 0 is delete.
                let delete = b.first().ok_or(NtStatus::INFO_LENGTH_MISMATCH)? & 1 != 0;
                if access & DELETE == 0 {
                    return Err(NtStatus::ACCESS_DENIED);
                }
                let n = fs.nodes.get_mut(&id).ok_or(NtStatus::FILE_CLOSED)?;
                if delete {
                    if id == ROOT || n.attrs & ATTR_READONLY != 0 {
                        return Err(st::CANNOT_DELETE);
                    }
                    if n.children.as_ref().is_some_and(|c| !c.is_empty()) {
                        return Err(st::DIRECTORY_NOT_EMPTY);
                    }
                }
                n.delete_pending = delete;
                Ok(())
            }
            (1, 14) | (1, 16) => Ok(()), // position, mode
            (1, 19) => {
                // FileAllocationInformation: a smaller size cuts the file.
                let size = u64_at(0)?;
                if fs.node(id)?.is_dir() {
                    return Err(NtStatus::INVALID_PARAMETER);
                }
                if size < fs.node(id)?.data.len() as u64 {
                    fs.set_len(id, size)?;
                }
                if let Some(n) = fs.nodes.get_mut(&id) {
                    n.allocation = size;
                }
                Ok(())
            }
            (1, 20) => {
                let size = u64_at(0)?;
                if fs.node(id)?.is_dir() {
                    return Err(NtStatus::INVALID_PARAMETER);
                }
                if access & FILE_WRITE_DATA == 0 {
                    return Err(NtStatus::ACCESS_DENIED);
                }
                fs.set_len(id, size)
            }
            (3, _) => {
                // Only the DACL is kept and enforced (at CREATE).
                if args.additional_information & 0x4 != 0 {
                    let dacl = parse_dacl(b)?;
                    let n = fs.nodes.get_mut(&id).ok_or(NtStatus::FILE_CLOSED)?;
                    n.dacl = dacl;
                    n.sd = n.dacl.is_some().then(|| b.to_vec());
                }
                Ok(())
            }
            (1, _) => Err(NtStatus::INVALID_INFO_CLASS),
            _ => Err(NtStatus::NOT_SUPPORTED),
        }
    }

    fn lock_inner(&self, ctx: &Ctx<'_>, handle: u64, args: &LockArgs<'_>) -> Reply<()> {
        let mut fs = self.fs.lock();
        let Ok(open) = fs.open(handle) else {
            return Reply::Failed(NtStatus::FILE_CLOSED);
        };
        let node = open.node;
        let elems: Vec<_> = args.locks.iter().collect();
        if elems.iter().all(|e| e.flags & lockf::UNLOCK != 0) {
            for e in &elems {
                let n = fs.nodes.get_mut(&node).expect("open node");
                let at = n.locks.iter().position(|l| {
                    l.handle == handle && l.offset == e.offset && l.length == e.length
                });
                match at {
                    Some(i) => {
                        n.locks.remove(i);
                    }
                    None => return Reply::Failed(st::RANGE_NOT_LOCKED),
                }
            }
            fs.wake_locks(&self.fs.queued);
            return Reply::Ready(());
        }
        let mut granted = Vec::new();
        for e in &elems {
            if e.length > 0 && e.offset.checked_add(e.length - 1).is_none() {
                return Reply::Failed(st::INVALID_LOCK_RANGE);
            }
            let l = Lock {
                handle,
                offset: e.offset,
                length: e.length,
                exclusive: e.flags & lockf::EXCLUSIVE_LOCK != 0,
            };
            let n = &fs.nodes[&node];
            let free = n.locks.iter().chain(&granted).all(|o| !l.conflicts(o));
            if !free {
                if elems.len() == 1 && e.flags & lockf::FAIL_IMMEDIATELY == 0 {
                    fs.waiters.push(Waiter {
                        shard: self.shard,
                        op: ctx.op(),
                        handle,
                        kind: Wait::Lock(l),
                    });
                    return Reply::Pending;
                }
                return Reply::Failed(st::LOCK_NOT_GRANTED);
            }
            granted.push(l);
        }
        if let Some(n) = fs.nodes.get_mut(&node) {
            n.locks.extend(granted);
        }
        Reply::Ready(())
    }
}

/// The access a DACL grants the caller: the owner's implicit
/// READ_CONTROL, WRITE_DAC and WRITE_OWNER, plus what allow ACEs for Everyone
/// (S-1-1-0) or Authenticated Users (S-1-5-11) give and deny ACEs before
/// them do not take away (MS-DTYP 2.5.3.2, simplified: memfs knows no
/// user SIDs).
fn dacl_granted(dacl: &[Ace]) -> u32 {
    const EVERYONE: &[u8] = &[1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    const AUTHENTICATED: &[u8] = &[1, 1, 0, 0, 0, 0, 0, 5, 11, 0, 0, 0];
    let (mut granted, mut denied) = (0x000E_0000u32, 0u32);
    for (kind, mask, sid) in dacl {
        if sid.as_slice() != EVERYONE && sid.as_slice() != AUTHENTICATED {
            continue;
        }
        let mask = map_generic(*mask);
        match kind {
            0 => granted |= mask & !denied,
            1 => denied |= mask & !granted,
            _ => {}
        }
    }
    granted
}

/// The ACEs of the DACL of a self-relative security descriptor
/// (MS-DTYP 2.4.6), or `None` when it has no DACL.
fn parse_dacl(sd: &[u8]) -> Result<Option<Vec<Ace>>, NtStatus> {
    let bad = NtStatus(0xC000_0079); // STATUS_INVALID_SECURITY_DESCR
    let u16_at = |b: &[u8], i: usize| b.get(i..i + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32_at = |b: &[u8], i: usize| {
        b.get(i..i + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    let control = u16_at(sd, 2).ok_or(bad)?;
    let off = u32_at(sd, 16).ok_or(bad)? as usize;
    if control & 0x0004 == 0 || off == 0 {
        return Ok(None);
    }
    let acl = sd.get(off..).ok_or(bad)?;
    let count = u16_at(acl, 4).ok_or(bad)?;
    let mut at = 8;
    let mut aces = Vec::new();
    for _ in 0..count {
        let kind = *acl.get(at).ok_or(bad)?;
        let size = u16_at(acl, at + 2).ok_or(bad)? as usize;
        let mask = u32_at(acl, at + 4).ok_or(bad)?;
        let sid = acl.get(at + 8..at + size).ok_or(bad)?;
        aces.push((kind, mask, sid.to_vec()));
        at += size.max(8);
    }
    Ok(Some(aces))
}

fn put32(o: &mut Vec<u8>, v: u32) {
    o.extend_from_slice(&v.to_le_bytes());
}

fn put64(o: &mut Vec<u8>, v: u64) {
    o.extend_from_slice(&v.to_le_bytes());
}

/// File system information classes (MS-FSCC 2.5).
fn fs_info(class: u8, max: u32, max_bytes: u64, used: u64) -> Result<Output, NtStatus> {
    let mut o = Vec::new();
    let total = max_bytes / CLUSTER;
    let free = max_bytes.saturating_sub(used) / CLUSTER;
    let fixed = match class {
        1 => {
            // FileFsVolumeInformation
            let mut label = Vec::new();
            utf16::encode_into("memfs", &mut label);
            put64(&mut o, 0);
            put32(&mut o, 0x6d65_6d66);
            put32(&mut o, label.len() as u32);
            o.extend_from_slice(&[0, 0]);
            o.extend_from_slice(&label);
            18
        }
        3 => {
            // FileFsSizeInformation
            put64(&mut o, total);
            put64(&mut o, free);
            put32(&mut o, 8);
            put32(&mut o, 512);
            24
        }
        4 => {
            // FileFsDeviceInformation: FILE_DEVICE_DISK
            put32(&mut o, 7);
            put32(&mut o, 0);
            8
        }
        5 => {
            // FileFsAttributeInformation: case preserving, Unicode names.
            let mut name = Vec::new();
            utf16::encode_into("memfs", &mut name);
            put32(&mut o, 0x0000_0002 | 0x0000_0004);
            put32(&mut o, 255);
            put32(&mut o, name.len() as u32);
            o.extend_from_slice(&name);
            12
        }
        7 => {
            // FileFsFullSizeInformation
            put64(&mut o, total);
            put64(&mut o, free);
            put64(&mut o, free);
            put32(&mut o, 8);
            put32(&mut o, 512);
            32
        }
        11 => {
            // FileFsSectorSizeInformation
            for v in [512u32, 512, 512, 512, 0x3, 0, 0] {
                put32(&mut o, v);
            }
            28
        }
        _ => return Err(NtStatus::INVALID_INFO_CLASS),
    };
    if (max as usize) < fixed {
        return Err(NtStatus::INFO_LENGTH_MISMATCH);
    }
    Ok(Output::new(o))
}

impl ShareBackend for MemFsBackend {
    fn create(&mut self, ctx: &mut Ctx<'_>, args: &CreateArgs<'_>) -> Reply<Created> {
        let contexts = || args.contexts.clone().map(|c| c.name);
        let req = CreateReq {
            name: args.name(),
            access: args.desired_access,
            share: args.share_access,
            disposition: args.create_disposition,
            options: args.create_options,
            attrs: args.file_attributes,
            impersonation: args.impersonation_level,
            oplock: args.requested_oplock_level,
            mxac: contexts().any(|n| n == b"MxAc"),
            qfid: contexts().any(|n| n == b"QFid"),
            conn: ctx.op().conn(),
        };
        let mut fs = self.fs.lock();
        match fs.create(&req, self.shard) {
            Ok(Some(c)) => Reply::Ready(c),
            Err(e) => Reply::Failed(e),
            Ok(None) => {
                let node = fs
                    .lookup(&components(&req.name).unwrap_or_default())
                    .ok()
                    .and_then(|(_, n)| n)
                    .unwrap_or(0);
                fs.waiters.push(Waiter {
                    shard: self.shard,
                    op: ctx.op(),
                    handle: 0,
                    kind: Wait::Create(Box::new(req), node),
                });
                Reply::Pending
            }
        }
    }

    fn oplock_break_ack(
        &mut self,
        _ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        level: u8,
    ) -> Reply<u8> {
        let mut fs = self.fs.lock();
        let Ok(node) = fs.open(open.handle()).map(|o| o.node) else {
            return Reply::Failed(NtStatus::FILE_CLOSED);
        };
        let held = fs.nodes.get(&node).and_then(|n| n.oplock);
        match held {
            Some(o) if o.handle == open.handle() && o.breaking && level <= 1 => {
                fs.oplock_released(node, &self.fs.queued);
                Reply::Ready(0)
            }
            _ => Reply::Failed(NtStatus(0xC000_00E3)), // INVALID_OPLOCK_PROTOCOL
        }
    }

    fn poll_oplock_break(&mut self) -> Option<OplockBreakNotice> {
        if self.fs.queued.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut fs = self.fs.lock();
        let b = fs.breaks.get_mut(&self.shard)?.pop_front()?;
        self.fs.queued.fetch_sub(1, Ordering::Relaxed);
        Some(b)
    }

    fn close(
        &mut self,
        _ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &CloseArgs,
    ) -> Reply<Option<FileAttrs>> {
        let attrs = self.fs.lock().close(open.handle(), &self.fs.queued);
        Reply::Ready(attrs.filter(|_| args.postquery))
    }

    fn read(
        &mut self,
        _ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &ReadArgs,
    ) -> Reply<Vec<u8>> {
        let fs = self.fs.lock();
        let r = (|| {
            let o = fs.open(open.handle())?;
            let n = fs.node(o.node)?;
            if n.is_dir() {
                return Err(NtStatus::INVALID_DEVICE_REQUEST);
            }
            if o.access & (FILE_READ_DATA | FILE_EXECUTE) == 0 {
                return Err(NtStatus::ACCESS_DENIED);
            }
            let want = Lock {
                handle: open.handle(),
                offset: args.offset,
                length: u64::from(args.length),
                exclusive: false,
            };
            if n.locks
                .iter()
                .any(|l| l.handle != want.handle && l.exclusive && l.overlaps(&want))
            {
                return Err(st::FILE_LOCK_CONFLICT);
            }
            let from = (args.offset.min(n.data.len() as u64)) as usize;
            let to = from.saturating_add(args.length as usize).min(n.data.len());
            Ok(n.data[from..to].to_vec())
        })();
        r.into()
    }

    fn write(
        &mut self,
        _ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &WriteArgs<'_>,
    ) -> Reply<u32> {
        let mut fs = self.fs.lock();
        let r = (|| {
            let o = fs.open(open.handle())?;
            let (id, access) = (o.node, o.access);
            let n = fs.node(id)?;
            if n.is_dir() {
                return Err(NtStatus::INVALID_DEVICE_REQUEST);
            }
            if access & (FILE_WRITE_DATA | FILE_APPEND_DATA) == 0 {
                return Err(NtStatus::ACCESS_DENIED);
            }
            let offset = if args.offset == u64::MAX {
                n.data.len() as u64
            } else {
                args.offset
            };
            let want = Lock {
                handle: open.handle(),
                offset,
                length: args.data.len() as u64,
                exclusive: true,
            };
            if n.locks
                .iter()
                .any(|l| l.handle != want.handle && l.overlaps(&want))
            {
                return Err(st::FILE_LOCK_CONFLICT);
            }
            let end = offset
                .checked_add(args.data.len() as u64)
                .ok_or(NtStatus::INVALID_PARAMETER)?;
            if end > n.data.len() as u64 {
                fs.set_len(id, end)?;
            }
            let n = fs.nodes.get_mut(&id).ok_or(NtStatus::FILE_CLOSED)?;
            n.data[offset as usize..end as usize].copy_from_slice(args.data);
            let now = filetime_now();
            n.times[2] = now;
            n.times[3] = now;
            n.attrs |= ATTR_ARCHIVE;
            Ok(args.data.len() as u32)
        })();
        r.into()
    }

    fn query_info(
        &mut self,
        _ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &QueryInfoArgs<'_>,
    ) -> Reply<Output> {
        self.query_info_inner(open.handle(), args).into()
    }

    fn set_info(
        &mut self,
        _ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &SetInfoArgs<'_>,
    ) -> Reply<()> {
        self.set_info_inner(open.handle(), args).into()
    }

    fn query_directory(
        &mut self,
        _ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &QueryDirectoryArgs<'_>,
    ) -> Reply<Output> {
        self.query_dir_inner(open.handle(), args).into()
    }

    /// FSCTL_GET_OBJECT_ID and FSCTL_CREATE_OR_GET_OBJECT_ID (MS-FSCC
    /// 2.3.23, 2.3.7): an object id made of the file's number.
    fn ioctl(
        &mut self,
        _ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &IoctlArgs<'_>,
    ) -> Reply<Output> {
        match args.ctl_code {
            0x0009_009C | 0x0009_00C0 => {
                let fs = self.fs.lock();
                let Ok(node) = fs.open(open.handle()).map(|o| o.node) else {
                    return Reply::Failed(NtStatus::FILE_CLOSED);
                };
                if args.max_output_response < 64 {
                    return Reply::Failed(NtStatus::BUFFER_TOO_SMALL);
                }
                let mut o = Vec::with_capacity(64);
                put64(&mut o, node);
                o.extend_from_slice(b"memfsobj");
                o.extend_from_slice(&[0; 48]);
                Reply::Ready(Output::new(o))
            }
            _ => Reply::Failed(NtStatus::INVALID_DEVICE_REQUEST),
        }
    }

    fn lock(
        &mut self,
        ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &LockArgs<'_>,
    ) -> Reply<()> {
        self.lock_inner(ctx, open.handle(), args)
    }

    /// Waits until the open is closed or the request cancelled (changes
    /// are not reported).
    fn change_notify(
        &mut self,
        ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        _args: &ChangeNotifyArgs,
    ) -> Reply<Output> {
        let mut fs = self.fs.lock();
        let is_dir = fs
            .open(open.handle())
            .and_then(|o| fs.node(o.node))
            .is_ok_and(|n| n.is_dir());
        if !is_dir {
            return Reply::Failed(NtStatus::INVALID_PARAMETER);
        }
        fs.waiters.push(Waiter {
            shard: self.shard,
            op: ctx.op(),
            handle: open.handle(),
            kind: Wait::Notify,
        });
        Reply::Pending
    }

    fn cancel(&mut self, op: OpId) -> bool {
        let mut fs = self.fs.lock();
        let before = fs.waiters.len();
        fs.waiters.retain(|w| w.op != op);
        fs.waiters.len() != before
    }

    fn abandon(&mut self, op: OpId) {
        self.fs.lock().waiters.retain(|w| w.op != op);
    }

    fn poll_completion(&mut self) -> Option<(OpId, Completion)> {
        if self.fs.queued.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut fs = self.fs.lock();
        let c = fs.done.get_mut(&self.shard)?.pop_front()?;
        self.fs.queued.fetch_sub(1, Ordering::Relaxed);
        Some(c)
    }
}
