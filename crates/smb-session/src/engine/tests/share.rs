//! The share backend path (engine/backend): a small in-test backend serving
//! a few files, driven through the engine in memory with the helpers of
//! the parent module. CREATE/READ/WRITE/CLOSE (MS-SMB2 3.3.5.9-13), FileIds
//! checked against session and tree, related compounds (3.3.5.2.7.2),
//! errors, interim responses and final async responses (3.3.4.2), CANCEL
//! (3.3.5.16), cleanup when the session or connection goes, and the bound
//! on pending operations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use smb_wire::header::{flags, Command, Header, HeaderId, HeaderRepr, HEADER_LEN};
use smb_wire::msg::cancel::CancelRequestRepr;
use smb_wire::msg::change_notify::ChangeNotifyRequestRepr;
use smb_wire::msg::close::{CloseRequestRepr, CloseResponse, FLAG_POSTQUERY_ATTRIB};
use smb_wire::msg::create::{CreateRequestRepr, CreateResponse};
use smb_wire::msg::lock::{self, LockElement, LockElements, LockRequestRepr};
use smb_wire::msg::logoff::LogoffRequestRepr;
use smb_wire::msg::read::{ReadRequestRepr, ReadResponse};
use smb_wire::msg::tree_connect::{share_type, TreeConnectResponse};
use smb_wire::msg::tree_disconnect::TreeDisconnectRequestRepr;
use smb_wire::msg::write::{WriteRequestRepr, WriteResponse};
use smb_wire::msg::{EmitBody, FileId};
use smb_wire::NtStatus;

use super::super::backend::{
    ChangeNotifyArgs, CloseArgs, CreateArgs, LockArgs, ReadArgs, WriteArgs,
};
use super::super::{
    Completion, Created, Ctx, EngineConfig, EngineEvent, FileAttrs, OpId, OpenRef,
    OplockBreakNotice, Output, Reply, ShareBackend, ShareDef, ShareParams, StaticShares,
};
use super::*;

/// What the test backend saw, shared with the test.
#[derive(Debug, Default)]
struct Log {
    events: Vec<String>,
    /// Operations the backend left pending, by what they were.
    pending: Vec<(&'static str, OpId)>,
    /// Sessions seen by CREATE: user and domain.
    callers: Vec<(String, String)>,
}

type Shared = Arc<Mutex<Log>>;

/// A handful of files in memory; names starting with `fail` are refused,
/// `badread` fails reads, `empty` reads nothing.
/// LOCK and CHANGE_NOTIFY always wait; a cancel stops a LOCK at once but
/// not a CHANGE_NOTIFY.
struct TestFs {
    log: Shared,
    files: HashMap<String, Vec<u8>>,
    handles: HashMap<u64, String>,
    next: u64,
}

impl TestFs {
    fn new(log: Shared) -> TestFs {
        let mut files = HashMap::new();
        files.insert("hello.txt".to_string(), b"hello world".to_vec());
        files.insert("badread".to_string(), b"x".to_vec());
        files.insert("empty".to_string(), b"x".to_vec());
        TestFs {
            log,
            files,
            handles: HashMap::new(),
            next: 100,
        }
    }

    fn note(&self, s: String) {
        self.log.lock().unwrap().events.push(s);
    }

    fn attrs(&self, name: &str) -> FileAttrs {
        let len = self.files.get(name).map_or(0, |d| d.len() as u64);
        FileAttrs {
            creation_time: 1,
            last_access_time: 2,
            last_write_time: 3,
            change_time: 4,
            allocation_size: len.next_multiple_of(4096),
            end_of_file: len,
            file_attributes: 0x80,
        }
    }
}

impl ShareBackend for TestFs {
    fn tree_connect(&mut self, ctx: &mut Ctx<'_>) -> Result<ShareParams, NtStatus> {
        // Per-session state: how many trees this session connected.
        *ctx.session_ext().get_or_insert_with(|| 0u32) += 1;
        let n = *ctx.session_ext().get::<u32>().unwrap();
        ctx.tree_ext().set(format!("tree #{n}"));
        self.note(format!("tree_connect {} #{n}", ctx.share()));
        Ok(ShareParams::new(0, 0, 0x0012_019F))
    }

    fn tree_disconnect(&mut self, ctx: &mut Ctx<'_>) {
        let label = ctx.tree_ext().get::<String>().cloned().unwrap_or_default();
        self.note(format!("tree_disconnect {label}"));
    }

    fn create(&mut self, ctx: &mut Ctx<'_>, args: &CreateArgs<'_>) -> Reply<Created> {
        let name = args.name();
        {
            let s = ctx.session();
            self.log
                .lock()
                .unwrap()
                .callers
                .push((s.user.clone(), s.domain.clone()));
        }
        if name.starts_with("fail") {
            return Reply::Failed(NtStatus::ACCESS_DENIED);
        }
        if name == "slow" {
            self.log.lock().unwrap().pending.push(("create", ctx.op()));
            return Reply::Pending;
        }
        let action = if self.files.contains_key(&name) {
            1
        } else if args.create_disposition == 2 || args.create_disposition == 3 {
            self.files.insert(name.clone(), Vec::new());
            2
        } else {
            return Reply::Failed(NtStatus::OBJECT_NAME_NOT_FOUND);
        };
        self.next += 1;
        self.handles.insert(self.next, name.clone());
        self.note(format!("create {name} -> {}", self.next));
        Reply::Ready(Created::new(self.next, action, self.attrs(&name)))
    }

    fn close(
        &mut self,
        _ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &CloseArgs,
    ) -> Reply<Option<FileAttrs>> {
        let name = self.handles.remove(&open.handle()).unwrap_or_default();
        self.note(format!("close {}", open.handle()));
        Reply::Ready(args.postquery.then(|| self.attrs(&name)))
    }

    fn cleanup(&mut self, _ctx: &mut Ctx<'_>, open: &mut OpenRef<'_>) {
        self.handles.remove(&open.handle());
        self.note(format!("cleanup {}", open.handle()));
    }

    fn read(
        &mut self,
        _ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &ReadArgs,
    ) -> Reply<Vec<u8>> {
        let Some(name) = self.handles.get(&open.handle()) else {
            return Reply::Failed(NtStatus::INVALID_HANDLE);
        };
        if name == "badread" {
            return Reply::Failed(NtStatus(0xC000_0185)); // STATUS_IO_DEVICE_ERROR
        }
        if name == "empty" {
            // Nothing read for a non-zero Length: END_OF_FILE (3.3.5.12).
            return Reply::Ready(Vec::new());
        }
        self.note("read".to_string());
        let data = &self.files[name];
        let from = (args.offset as usize).min(data.len());
        let to = from.saturating_add(args.length as usize).min(data.len());
        Reply::Ready(data[from..to].to_vec())
    }

    fn write(
        &mut self,
        _ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &WriteArgs<'_>,
    ) -> Reply<u32> {
        let Some(name) = self.handles.get(&open.handle()) else {
            return Reply::Failed(NtStatus::INVALID_HANDLE);
        };
        self.note("write".to_string());
        let Some(end) = (args.offset as usize)
            .checked_add(args.data.len())
            .filter(|&e| e <= 1 << 20)
        else {
            return Reply::Failed(NtStatus(0xC000_007F)); // STATUS_DISK_FULL
        };
        let data = self.files.entry(name.clone()).or_default();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[args.offset as usize..end].copy_from_slice(args.data);
        Reply::Ready(args.data.len() as u32)
    }

    fn lock(
        &mut self,
        ctx: &mut Ctx<'_>,
        _open: &mut OpenRef<'_>,
        _args: &LockArgs<'_>,
    ) -> Reply<()> {
        self.log.lock().unwrap().pending.push(("lock", ctx.op()));
        Reply::Pending
    }

    fn change_notify(
        &mut self,
        ctx: &mut Ctx<'_>,
        _open: &mut OpenRef<'_>,
        _args: &ChangeNotifyArgs,
    ) -> Reply<Output> {
        self.log.lock().unwrap().pending.push(("notify", ctx.op()));
        Reply::Pending
    }

    fn cancel(&mut self, op: OpId) -> bool {
        let log = self.log.lock().unwrap();
        let what = log.pending.iter().find(|(_, o)| *o == op).map(|(w, _)| *w);
        drop(log);
        self.note(format!("cancel {}", what.unwrap_or("?")));
        what == Some("lock")
    }

    fn abandon(&mut self, op: OpId) {
        let log = self.log.lock().unwrap();
        let what = log.pending.iter().find(|(_, o)| *o == op).map(|(w, _)| *w);
        drop(log);
        self.note(format!("abandon {}", what.unwrap_or("?")));
    }
}

fn share_config(log: &Shared) -> EngineConfig {
    let mut cfg = config();
    let log = log.clone();
    cfg.shares = Arc::new(StaticShares(vec![ShareDef::new(
        "data",
        move |_shard: u16| -> Box<dyn ShareBackend> { Box::new(TestFs::new(log.clone())) },
    )]));
    cfg
}

fn events(log: &Shared) -> Vec<String> {
    log.lock().unwrap().events.clone()
}

fn pending_op(log: &Shared, what: &str) -> OpId {
    log.lock()
        .unwrap()
        .pending
        .iter()
        .rev()
        .find(|(w, _)| *w == what)
        .map(|(_, o)| *o)
        .expect("a pending operation")
}

/// A logged-on user with a tree connect to `data`.
fn connected(s: &mut Server, port: u16) -> Client {
    let mut c = Client::new(s, port);
    c.login(s, dialect::SMB311, Some(USER));
    let r = c.tree_connect(s, "data", false);
    assert_eq!(status(&r), NtStatus::SUCCESS);
    r_share(&r);
    c
}

fn r_share(r: &[u8]) {
    let t = TreeConnectResponse::parse(r).expect("tree connect response");
    assert_eq!(t.share_type(), share_type::DISK);
    assert_eq!(
        t.maximal_access(),
        0x0012_019F,
        "the backend's maximal access"
    );
}

pub(super) fn create_req(c: &mut Client, name: &str, disposition: u32) -> Vec<u8> {
    let n = utf16(name);
    c.request(
        Command::Create,
        &CreateRequestRepr {
            desired_access: 0x0012_019F,
            share_access: 7,
            create_disposition: disposition,
            name: &n,
            ..Default::default()
        },
    )
}

fn open(c: &mut Client, s: &mut Server, name: &str) -> FileId {
    let req = create_req(c, name, 1);
    let r = c.call(s, &req);
    assert_eq!(status(&r), NtStatus::SUCCESS, "create {name}");
    CreateResponse::parse(&r)
        .expect("create response")
        .file_id()
}

fn read_req(c: &mut Client, id: FileId, offset: u64, length: u32) -> Vec<u8> {
    c.request(
        Command::Read,
        &ReadRequestRepr {
            length,
            offset,
            file_id: id,
            ..Default::default()
        },
    )
}

fn read(c: &mut Client, s: &mut Server, id: FileId) -> (NtStatus, Vec<u8>) {
    let req = read_req(c, id, 0, 4096);
    let r = c.call(s, &req);
    let data = ReadResponse::parse(&r)
        .map(|v| v.data().to_vec())
        .unwrap_or_default();
    (status(&r), data)
}

fn close_req(c: &mut Client, id: FileId, postquery: bool) -> Vec<u8> {
    c.request(
        Command::Close,
        &CloseRequestRepr {
            flags: if postquery { FLAG_POSTQUERY_ATTRIB } else { 0 },
            file_id: id,
        },
    )
}

fn notify_req(c: &mut Client, id: FileId) -> Vec<u8> {
    c.request(
        Command::ChangeNotify,
        &ChangeNotifyRequestRepr {
            flags: 0,
            output_buffer_length: 4096,
            file_id: id,
            completion_filter: 0x17,
        },
    )
}

fn lock_req(c: &mut Client, id: FileId) -> Vec<u8> {
    let locks = [LockElement {
        offset: 0,
        length: 10,
        flags: lock::flags::EXCLUSIVE_LOCK,
    }];
    c.request(
        Command::Lock,
        &LockRequestRepr {
            lock_sequence: 0,
            file_id: id,
            locks: LockElements::Native(&locks),
        },
    )
}

/// A CANCEL for MessageId `mid` (and AsyncId `async_id` when given).
fn cancel_req(c: &Client, mid: u64, async_id: Option<u64>) -> Vec<u8> {
    let mut h = HeaderRepr::request(Command::Cancel, mid, c.session, c.tree);
    h.credit_charge = 0;
    if let Some(a) = async_id {
        h.id = HeaderId::Async { async_id: a };
    }
    let mut m = Vec::new();
    h.emit(&mut m);
    CancelRequestRepr::default().emit_body(0, &mut m);
    m
}

/// The interim response's AsyncId, after checking the interim form
/// (MS-SMB2 3.3.4.2).
fn interim(r: &[u8]) -> u64 {
    let h = Header::new_checked(r).unwrap();
    assert_eq!(h.status(), NtStatus::PENDING);
    assert!(h.flags() & flags::ASYNC_COMMAND != 0, "async form");
    assert!(!h.is_signed(), "interim responses are not signed");
    let id = h.async_id().unwrap();
    assert_ne!(id, 0);
    id
}

fn transmit_events(s: &mut Server) -> Vec<ConnId> {
    let mut v = Vec::new();
    while let Some(e) = s.engine.poll_event() {
        if let EngineEvent::Transmit(c) = e {
            v.push(c);
        }
    }
    v
}

fn drain(s: &mut Server, conn: ConnId) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    s.engine.drain_transmit(conn, &mut out);
    split_frames(&out)
}

// ----- tests ---------------------------------------------------------------

#[test]
fn create_read_write_close_round_trip() {
    let log = Shared::default();
    let mut s = Server::new(share_config(&log));
    let mut c = connected(&mut s, 1000);
    let id = open(&mut c, &mut s, "hello.txt");
    assert_eq!(
        read(&mut c, &mut s, id),
        (NtStatus::SUCCESS, b"hello world".to_vec())
    );
    let req = c.request(
        Command::Write,
        &WriteRequestRepr {
            offset: 0,
            file_id: id,
            data: b"HELLO",
            ..Default::default()
        },
    );
    let r = c.call(&mut s, &req);
    assert_eq!(status(&r), NtStatus::SUCCESS);
    assert_eq!(WriteResponse::parse(&r).unwrap().count(), 5);
    assert_eq!(read(&mut c, &mut s, id).1, b"HELLO world");
    // Reading past the end: END_OF_FILE.
    let req = read_req(&mut c, id, 100, 10);
    assert_eq!(status(&c.call(&mut s, &req)), NtStatus::END_OF_FILE);
    // CLOSE with POSTQUERY_ATTRIB returns the backend's attributes.
    let req = close_req(&mut c, id, true);
    let r = c.call(&mut s, &req);
    assert_eq!(status(&r), NtStatus::SUCCESS);
    let cl = CloseResponse::parse(&r).unwrap();
    assert_eq!(cl.flags(), FLAG_POSTQUERY_ATTRIB);
    assert_eq!(cl.end_of_file(), 11);
    assert_eq!(cl.times(), [1, 2, 3, 4]);
    // The handle is gone.
    assert_eq!(read(&mut c, &mut s, id).0, NtStatus::FILE_CLOSED);
    let req = close_req(&mut c, id, false);
    assert_eq!(status(&c.call(&mut s, &req)), NtStatus::FILE_CLOSED);
    // The session's context reached the backend.
    assert_eq!(
        log.lock().unwrap().callers[0],
        ("alice".to_string(), "WORKGROUP".to_string())
    );
    let ev = events(&log);
    assert!(ev.contains(&"tree_connect data #1".to_string()), "{ev:?}");
    assert!(ev.iter().any(|e| e.starts_with("close ")), "{ev:?}");
    // The session has no open handle left: it may be reaped again.
    assert_eq!(s.engine.table().stats().sessions, 1);
}

#[test]
fn file_ids_of_another_session_or_tree_are_file_closed() {
    let log = Shared::default();
    let mut s = Server::new(share_config(&log));
    let mut a = connected(&mut s, 1000);
    let mut b = connected(&mut s, 1001);
    let id = open(&mut a, &mut s, "hello.txt");
    // Another connection's session.
    assert_eq!(read(&mut b, &mut s, id).0, NtStatus::FILE_CLOSED);
    // The same session, another tree connect of the same share.
    let first_tree = a.tree;
    let r = a.tree_connect(&mut s, "data", false);
    assert_eq!(status(&r), NtStatus::SUCCESS);
    assert_ne!(a.tree, first_tree);
    assert_eq!(read(&mut a, &mut s, id).0, NtStatus::FILE_CLOSED);
    // A guessed FileId on the right tree.
    a.tree = first_tree;
    let guessed = FileId {
        persistent: id.persistent,
        volatile: id.volatile ^ 1,
    };
    assert_eq!(read(&mut a, &mut s, guessed).0, NtStatus::FILE_CLOSED);
    // The real one still works there.
    assert_eq!(read(&mut a, &mut s, id).0, NtStatus::SUCCESS);
    // The per-session slot counted both tree connects of `a`.
    let ev = events(&log);
    assert!(ev.contains(&"tree_connect data #2".to_string()), "{ev:?}");
}

#[test]
fn related_compound_create_read_close_uses_the_created_file_id() {
    let log = Shared::default();
    let mut s = Server::new(share_config(&log));
    let mut c = connected(&mut s, 1000);
    let frame = chain(
        vec![
            create_req(&mut c, "hello.txt", 1),
            read_req(&mut c, FileId::RELATED, 0, 5),
            close_req(&mut c, FileId::RELATED, false),
        ],
        &[false, true, true],
    );
    let (_, resp) = s.frame(c.conn, &frame);
    let st: Vec<NtStatus> = resp.iter().map(|m| status(m)).collect();
    assert_eq!(st, [NtStatus::SUCCESS; 3]);
    assert_eq!(ReadResponse::parse(&resp[1]).unwrap().data(), b"hello");
    assert!(events(&log).iter().any(|e| e.starts_with("close ")));
    // A failing CREATE fails the related requests after it the same way.
    let frame = chain(
        vec![
            create_req(&mut c, "fail.txt", 1),
            read_req(&mut c, FileId::RELATED, 0, 5),
            close_req(&mut c, FileId::RELATED, false),
        ],
        &[false, true, true],
    );
    let (_, resp) = s.frame(c.conn, &frame);
    let st: Vec<NtStatus> = resp.iter().map(|m| status(m)).collect();
    assert_eq!(st, [NtStatus::ACCESS_DENIED; 3]);
}

#[test]
fn backend_errors_reach_the_client_and_nothing_else_breaks() {
    let log = Shared::default();
    let mut s = Server::new(share_config(&log));
    let mut a = bystander(&mut s);
    let mut c = connected(&mut s, 1000);
    let req = create_req(&mut c, "fail-me", 1);
    assert_eq!(status(&c.call(&mut s, &req)), NtStatus::ACCESS_DENIED);
    let req = create_req(&mut c, "missing", 1);
    assert_eq!(
        status(&c.call(&mut s, &req)),
        NtStatus::OBJECT_NAME_NOT_FOUND
    );
    let id = open(&mut c, &mut s, "badread");
    assert_eq!(read(&mut c, &mut s, id).0, NtStatus(0xC000_0185));
    let id = open(&mut c, &mut s, "empty");
    assert_eq!(read(&mut c, &mut s, id).0, NtStatus::END_OF_FILE);
    // Commands the backend does not implement.
    let req = c.request(
        Command::Flush,
        &smb_wire::msg::flush::FlushRequestRepr { file_id: id },
    );
    assert_eq!(
        status(&c.call(&mut s, &req)),
        NtStatus::SUCCESS,
        "default FLUSH"
    );
    let req = c.request(
        Command::QueryInfo,
        &smb_wire::msg::query_info::QueryInfoRequestRepr {
            info_type: 1,
            file_info_class: 5,
            output_buffer_length: 100,
            additional_information: 0,
            flags: 0,
            file_id: id,
            input: &[],
        },
    );
    assert_eq!(status(&c.call(&mut s, &req)), NtStatus::NOT_SUPPORTED);
    // A lock request that mixes lock and unlock is refused by the engine.
    let locks = [
        LockElement {
            offset: 0,
            length: 1,
            flags: lock::flags::SHARED_LOCK,
        },
        LockElement {
            offset: 0,
            length: 1,
            flags: lock::flags::UNLOCK,
        },
    ];
    let req = c.request(
        Command::Lock,
        &LockRequestRepr {
            lock_sequence: 0,
            file_id: id,
            locks: LockElements::Native(&locks),
        },
    );
    assert_eq!(status(&c.call(&mut s, &req)), NtStatus::INVALID_PARAMETER);
    // A completion of the wrong kind for a pending CREATE: INTERNAL_ERROR,
    // and the bystander is untouched.
    let req = create_req(&mut c, "slow", 1);
    let mid = Header::new_checked(&req[..]).unwrap().message_id();
    let r = c.call(&mut s, &req);
    interim(&r);
    let op = pending_op(&log, "create");
    s.engine.complete(op, Completion::Write(1), s.now);
    let out = drain(&mut s, c.conn);
    assert_eq!(out.len(), 1);
    assert_eq!(status(&out[0]), NtStatus::INTERNAL_ERROR);
    assert_eq!(Header::new_checked(&out[0][..]).unwrap().message_id(), mid);
    assert_unharmed(&mut s, &mut a);
}

#[test]
fn a_pending_create_completes_later_with_an_async_final_response() {
    let log = Shared::default();
    let mut s = Server::new(share_config(&log));
    let mut c = connected(&mut s, 1000);
    let req = create_req(&mut c, "slow", 1);
    let req = c.signed(req);
    let mid = Header::new_checked(&req[..]).unwrap().message_id();
    let r = c.call(&mut s, &req);
    let async_id = interim(&r);
    let op = pending_op(&log, "create");
    assert_eq!(op.as_u64(), async_id);
    transmit_events(&mut s);
    s.engine.complete(
        op,
        Completion::Create(Created::new(7, 2, FileAttrs::default())),
        s.now,
    );
    assert_eq!(transmit_events(&mut s), [c.conn]);
    let out = drain(&mut s, c.conn);
    assert_eq!(out.len(), 1);
    let h = Header::new_checked(&out[0][..]).unwrap();
    assert_eq!(h.status(), NtStatus::SUCCESS);
    assert_eq!(h.message_id(), mid);
    assert_eq!(h.async_id(), Some(async_id));
    assert!(
        is_signed_by(c.key.as_ref().unwrap(), &out[0]),
        "final response signed"
    );
    let id = CreateResponse::parse(&out[0]).unwrap().file_id();
    // The open is in the table: CLOSE reaches the backend with its handle.
    let req = close_req(&mut c, id, false);
    assert_eq!(status(&c.call(&mut s, &req)), NtStatus::SUCCESS);
    assert!(events(&log).contains(&"close 7".to_string()));
    // A second completion of the same operation is ignored.
    s.engine
        .complete(op, Completion::Failed(NtStatus::CANCELLED), s.now);
    assert!(drain(&mut s, c.conn).is_empty());
}

#[test]
fn cancel_reaches_the_backend_and_a_cancelled_lock_is_answered_cancelled() {
    let log = Shared::default();
    let mut s = Server::new(share_config(&log));
    let mut c = connected(&mut s, 1000);
    let id = open(&mut c, &mut s, "hello.txt");
    // By AsyncId.
    let req = lock_req(&mut c, id);
    let req = c.signed(req);
    let mid = Header::new_checked(&req[..]).unwrap().message_id();
    let async_id = interim(&c.call(&mut s, &req));
    let cancel = c.signed(cancel_req(&c, mid, Some(async_id)));
    let (_, out) = s.frame(c.conn, &cancel);
    assert_eq!(
        out.len(),
        1,
        "the lock's final response, nothing for the CANCEL"
    );
    let h = Header::new_checked(&out[0][..]).unwrap();
    assert_eq!(h.status(), NtStatus::CANCELLED);
    assert_eq!(h.async_id(), Some(async_id));
    assert!(is_signed_by(c.key.as_ref().unwrap(), &out[0]));
    assert!(events(&log).contains(&"cancel lock".to_string()));
    // By MessageId (the sync form, sent before the interim arrived).
    let req = lock_req(&mut c, id);
    let mid = Header::new_checked(&req[..]).unwrap().message_id();
    interim(&c.call(&mut s, &req));
    let (_, out) = s.frame(c.conn, &cancel_req(&c, mid, None));
    assert_eq!(out.len(), 1);
    assert_eq!(status(&out[0]), NtStatus::CANCELLED);
    // A CANCEL for nothing pending is silent.
    let (_, out) = s.frame(c.conn, &cancel_req(&c, 9999, None));
    assert!(out.is_empty());
}

#[test]
fn a_backend_that_never_completes_is_cleaned_up_at_logoff_and_late_completions_are_ignored() {
    let log = Shared::default();
    let mut s = Server::new(share_config(&log));
    let mut a = bystander(&mut s);
    let mut c = connected(&mut s, 1000);
    let id = open(&mut c, &mut s, "hello.txt");
    let req = notify_req(&mut c, id);
    let mid = Header::new_checked(&req[..]).unwrap().message_id();
    let async_id = interim(&c.call(&mut s, &req));
    let op = pending_op(&log, "notify");
    // CANCEL reaches the backend, which does not stop it.
    let (_, out) = s.frame(c.conn, &cancel_req(&c, mid, Some(async_id)));
    assert!(out.is_empty());
    assert!(events(&log).contains(&"cancel notify".to_string()));
    // LOGOFF: the pending operation is abandoned, the open cleaned up, the
    // tree disconnected, in that order.
    let req = c.request(Command::Logoff, &LogoffRequestRepr::default());
    assert_eq!(status(&c.call(&mut s, &req)), NtStatus::SUCCESS);
    let ev = events(&log);
    let at = |p: &str| {
        ev.iter()
            .position(|e| e.starts_with(p))
            .unwrap_or(usize::MAX)
    };
    assert!(at("abandon notify") < at("cleanup "), "{ev:?}");
    assert!(at("cleanup ") < at("tree_disconnect"), "{ev:?}");
    assert!(at("tree_disconnect") < usize::MAX, "{ev:?}");
    // A late completion goes nowhere.
    transmit_events(&mut s);
    s.engine
        .complete(op, Completion::Output(Output::new(vec![1, 2, 3])), s.now);
    assert!(drain(&mut s, c.conn).is_empty());
    assert!(transmit_events(&mut s).is_empty());
    assert_unharmed(&mut s, &mut a);
}

#[test]
fn connection_close_and_tree_disconnect_clean_up_opens_and_pending_operations() {
    let log = Shared::default();
    let mut s = Server::new(share_config(&log));
    let mut c = connected(&mut s, 1000);
    let id = open(&mut c, &mut s, "hello.txt");
    let req = notify_req(&mut c, id);
    interim(&c.call(&mut s, &req));
    let req = c.request(
        Command::TreeDisconnect,
        &TreeDisconnectRequestRepr::default(),
    );
    assert_eq!(status(&c.call(&mut s, &req)), NtStatus::SUCCESS);
    let ev = events(&log);
    assert!(ev.contains(&"abandon notify".to_string()), "{ev:?}");
    assert!(ev.iter().any(|e| e.starts_with("cleanup ")), "{ev:?}");
    assert!(
        ev.contains(&"tree_disconnect tree #1".to_string()),
        "{ev:?}"
    );

    let log = Shared::default();
    let mut s = Server::new(share_config(&log));
    let mut c = connected(&mut s, 1000);
    let id = open(&mut c, &mut s, "hello.txt");
    let req = lock_req(&mut c, id);
    interim(&c.call(&mut s, &req));
    let op = pending_op(&log, "lock");
    s.engine.connection_closed(c.conn, s.now);
    let ev = events(&log);
    assert!(ev.contains(&"abandon lock".to_string()), "{ev:?}");
    assert!(ev.iter().any(|e| e.starts_with("cleanup ")), "{ev:?}");
    assert!(
        ev.iter().any(|e| e.starts_with("tree_disconnect")),
        "{ev:?}"
    );
    // Completing for a connection that is gone does nothing (and does not panic).
    s.engine.complete(op, Completion::Done, s.now);
    assert!(transmit_events(&mut s).is_empty());
}

#[test]
fn pending_operations_per_connection_are_bounded() {
    let log = Shared::default();
    let mut cfg = share_config(&log);
    cfg.max_pending_per_connection = 4;
    let mut s = Server::new(cfg);
    let mut c = connected(&mut s, 1000);
    let id = open(&mut c, &mut s, "hello.txt");
    for _ in 0..4 {
        let req = notify_req(&mut c, id);
        interim(&c.call(&mut s, &req));
    }
    let req = notify_req(&mut c, id);
    assert_eq!(
        status(&c.call(&mut s, &req)),
        NtStatus::INSUFFICIENT_RESOURCES
    );
    assert_eq!(
        events(&log)
            .iter()
            .filter(|e| *e == "abandon notify")
            .count(),
        1,
        "the refused operation was abandoned"
    );
    // Another connection has its own bound.
    let mut d = connected(&mut s, 1001);
    let id = open(&mut d, &mut s, "hello.txt");
    let req = notify_req(&mut d, id);
    interim(&d.call(&mut s, &req));
}

#[test]
fn ipc_and_unknown_shares_are_unchanged_beside_a_disk_share() {
    let log = Shared::default();
    let mut s = Server::new(share_config(&log));
    let mut c = connected(&mut s, 1000);
    let r = c.tree_connect(&mut s, "IPC$", false);
    assert_eq!(status(&r), NtStatus::SUCCESS);
    assert_eq!(
        TreeConnectResponse::parse(&r).unwrap().share_type(),
        share_type::PIPE
    );
    let req = create_req(&mut c, "srvsvc", 1);
    assert_eq!(status(&c.call(&mut s, &req)), NtStatus::SUCCESS);
    let req = create_req(&mut c, "hello.txt", 1);
    assert_eq!(
        status(&c.call(&mut s, &req)),
        NtStatus::OBJECT_NAME_NOT_FOUND,
        "IPC$ serves pipes only"
    );
    let r = c.tree_connect(&mut s, "nosuch", false);
    assert_eq!(status(&r), NtStatus::BAD_NETWORK_NAME);
    let _ = HEADER_LEN;
}

/// One of each file command on open `id`, as the client would send them.
fn file_requests(c: &mut Client, id: FileId) -> Vec<Vec<u8>> {
    use smb_wire::msg::flush::FlushRequestRepr;
    use smb_wire::msg::ioctl::IoctlRequestRepr;
    use smb_wire::msg::oplock_break::OplockBreakRepr;
    use smb_wire::msg::query_directory::QueryDirectoryRequestRepr;
    use smb_wire::msg::query_info::QueryInfoRequestRepr;
    use smb_wire::msg::set_info::SetInfoRequestRepr;
    let star = utf16("*");
    vec![
        create_req(c, "hello.txt", 1),
        create_req(c, "slow", 1),
        read_req(c, id, 0, 16),
        c.request(
            Command::Write,
            &WriteRequestRepr {
                offset: 3,
                file_id: id,
                data: b"abc",
                ..Default::default()
            },
        ),
        close_req(c, id, true),
        lock_req(c, id),
        notify_req(c, id),
        cancel_req(c, 1, None),
        c.request(Command::Flush, &FlushRequestRepr { file_id: id }),
        c.request(
            Command::QueryInfo,
            &QueryInfoRequestRepr {
                info_type: 1,
                file_info_class: 5,
                output_buffer_length: 64,
                additional_information: 0,
                flags: 0,
                file_id: id,
                input: &[],
            },
        ),
        c.request(
            Command::SetInfo,
            &SetInfoRequestRepr {
                info_type: 1,
                file_info_class: 13,
                additional_information: 0,
                file_id: id,
                buffer: &[1],
            },
        ),
        c.request(
            Command::QueryDirectory,
            &QueryDirectoryRequestRepr {
                file_information_class: 37,
                flags: 0,
                file_index: 0,
                file_id: id,
                file_name: &star,
                output_buffer_length: 1024,
            },
        ),
        c.request(
            Command::Ioctl,
            &IoctlRequestRepr {
                ctl_code: 0x0009_00c0,
                file_id: id,
                max_input_response: 0,
                max_output_response: 64,
                flags: 1,
                input: &[],
                output: &[],
            },
        ),
        c.request(
            Command::OplockBreak,
            &OplockBreakRepr {
                oplock_level: 0,
                file_id: id,
            },
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Mutated file commands (and completions of any kind for whatever went
    /// pending) on a disk share: the engine never panics, and the
    /// bystander's session keeps working.
    #[test]
    fn arbitrary_file_commands_never_harm_another_connection(
        picks in proptest::collection::vec(
            (0usize..14, proptest::collection::vec((0usize..200, any::<u8>()), 0..4), 0u8..8),
            1..16,
        ),
        kinds in proptest::collection::vec(0u8..6, 0..8),
    ) {
        let log = Shared::default();
        let mut s = Server::new(share_config(&log));
        let mut a = bystander(&mut s);
        let mut c = connected(&mut s, 3000);
        let id = open(&mut c, &mut s, "hello.txt");
        let templates = file_requests(&mut c, id);
        for (which, edits, related) in picks {
            let mut m = templates[which].clone();
            if which != 7 {
                // A fresh MessageId (CANCEL names the one it cancels).
                let mid = c.requests.take_message_id();
                m[24..32].copy_from_slice(&mid.to_le_bytes());
            }
            for (at, v) in edits {
                // Mostly the body; sometimes the header past the SessionId.
                if let Some(b) = m.get_mut(48 + at) {
                    *b = v;
                }
            }
            if related == 0 && m.len() > HEADER_LEN {
                // Now and then a (lone, so invalid) related request.
                m[16] |= flags::RELATED_OPERATIONS as u8;
            }
            let (outcome, msgs) = s.frame(c.conn, &m);
            for r in &msgs {
                prop_assert!(Header::new_checked(&r[..]).expect("a response header").is_response());
            }
            if outcome == FrameOutcome::Close {
                s.engine.connection_closed(c.conn, s.now);
                break;
            }
        }
        let ops: Vec<OpId> = log.lock().unwrap().pending.iter().map(|(_, o)| *o).collect();
        for (op, k) in ops.into_iter().zip(kinds.into_iter().cycle()) {
            let result = match k {
                0 => Completion::Done,
                1 => Completion::Write(7),
                2 => Completion::Failed(NtStatus::CANCELLED),
                3 => Completion::Output(Output::new(vec![0; 5000])),
                4 => Completion::Create(Created::new(9, 1, FileAttrs::default())),
                _ => Completion::Read(vec![1; 3]),
            };
            s.engine.complete(op, result, s.now);
            prop_assert!(s.engine.poll_transmit(a.conn).is_empty());
        }
        while s.engine.poll_event().is_some() {}
        s.engine.connection_closed(c.conn, s.now);
        assert_unharmed(&mut s, &mut a);
    }
}

#[test]
fn compound_rules_for_file_ids_and_errors() {
    let log = Shared::default();
    let mut s = Server::new(share_config(&log));
    let mut c = connected(&mut s, 1000);
    // The all-ones FileId names the previous open only in a related
    // request; in an unrelated one it names nothing (smbtorture
    // compound.unrelated1).
    let frame = chain(
        vec![
            create_req(&mut c, "hello.txt", 1),
            close_req(&mut c, FileId::RELATED, false),
        ],
        &[false, false],
    );
    let (_, resp) = s.frame(c.conn, &frame);
    let st: Vec<NtStatus> = resp.iter().map(|m| status(m)).collect();
    assert_eq!(st, [NtStatus::SUCCESS, NtStatus::FILE_CLOSED]);
    // A failed READ does not fail the related requests after it; only a
    // failed CREATE does (compound.related6).
    let frame = chain(
        vec![
            create_req(&mut c, "badread", 1),
            read_req(&mut c, FileId::RELATED, 0, 5),
            close_req(&mut c, FileId::RELATED, false),
        ],
        &[false, true, true],
    );
    let (_, resp) = s.frame(c.conn, &frame);
    let st: Vec<NtStatus> = resp.iter().map(|m| status(m)).collect();
    assert_eq!(
        st,
        [NtStatus::SUCCESS, NtStatus(0xC000_0185), NtStatus::SUCCESS]
    );
}

/// A backend that grants a batch oplock to the first open of `cached` and
/// breaks it when a second open comes.
pub(super) struct OplockFs {
    holder: Option<(ConnId, u64)>,
    breaks: Vec<OplockBreakNotice>,
    acks: Arc<Mutex<Vec<u8>>>,
    next: u64,
}

impl OplockFs {
    /// A fresh backend recording the acknowledged levels in `acks`.
    pub(super) fn new(acks: Arc<Mutex<Vec<u8>>>) -> OplockFs {
        OplockFs {
            holder: None,
            breaks: Vec::new(),
            acks,
            next: 0,
        }
    }
}

impl ShareBackend for OplockFs {
    fn create(&mut self, ctx: &mut Ctx<'_>, _args: &CreateArgs<'_>) -> Reply<Created> {
        self.next += 1;
        let mut c = Created::new(self.next, 1, FileAttrs::default());
        match self.holder {
            None => {
                self.holder = Some((ctx.op().conn(), self.next));
                c.oplock_level = 9;
            }
            Some((conn, handle)) => self.breaks.push(OplockBreakNotice::new(conn, handle, 0)),
        }
        Reply::Ready(c)
    }

    fn close(
        &mut self,
        _: &mut Ctx<'_>,
        _: &mut OpenRef<'_>,
        _: &CloseArgs,
    ) -> Reply<Option<FileAttrs>> {
        Reply::Ready(None)
    }

    fn oplock_break_ack(&mut self, _: &mut Ctx<'_>, _: &mut OpenRef<'_>, level: u8) -> Reply<u8> {
        self.acks.lock().unwrap().push(level);
        Reply::Ready(level)
    }

    fn poll_oplock_break(&mut self) -> Option<OplockBreakNotice> {
        self.breaks.pop()
    }
}

#[test]
fn a_backend_breaks_an_oplock_and_the_holder_acknowledges() {
    use smb_wire::msg::oplock_break::{OplockBreak, OplockBreakRepr};
    let acks = Arc::new(Mutex::new(Vec::new()));
    let mut cfg = config();
    let a = acks.clone();
    cfg.shares = Arc::new(StaticShares(vec![ShareDef::new(
        "data",
        move |_shard: u16| -> Box<dyn ShareBackend> { Box::new(OplockFs::new(a.clone())) },
    )]));
    let mut s = Server::new(cfg);
    let mut holder = Client::new(&mut s, 1000);
    holder.login(&mut s, dialect::SMB311, Some(USER));
    assert_eq!(
        status(&holder.tree_connect(&mut s, "data", false)),
        NtStatus::SUCCESS
    );
    let req = create_req(&mut holder, "cached", 1);
    let r = holder.call(&mut s, &req);
    let created = CreateResponse::parse(&r).unwrap();
    assert_eq!(created.oplock_level(), 9);
    let held = created.file_id();
    let mut other = Client::new(&mut s, 1001);
    other.login(&mut s, dialect::SMB311, Some(USER));
    other.tree_connect(&mut s, "data", false);
    // (Driven by hand: the harness's `frame` forbids output for another
    // connection, which is exactly what a break is.)
    let req = create_req(&mut other, "cached", 1);
    let now = s.now;
    s.engine.handle_frame(other.conn, &req, now);
    let answer = drain(&mut s, other.conn);
    assert_eq!(status(&answer[0]), NtStatus::SUCCESS);
    // The break went to the holder's connection only, as a notification
    // announced like any output made outside its own frames.
    assert!(transmit_events(&mut s).contains(&holder.conn));
    let out = drain(&mut s, holder.conn);
    assert_eq!(out.len(), 1, "one notification for the holder");
    let h = Header::new_checked(&out[0][..]).unwrap();
    assert_eq!(h.command(), Command::OplockBreak);
    assert_eq!(h.message_id(), u64::MAX);
    // MS-SMB2 3.3.4.6: the SessionId of the open's session (SHOULD), TreeId 0.
    assert_eq!(h.session_id(), holder.session);
    let b = OplockBreak::parse(&out[0]).unwrap();
    assert_eq!((b.file_id(), b.oplock_level()), (held, 0));
    assert!(drain(&mut s, other.conn).is_empty());
    // The acknowledgement reaches the backend.
    let req = holder.request(
        Command::OplockBreak,
        &OplockBreakRepr {
            oplock_level: 0,
            file_id: held,
        },
    );
    assert_eq!(status(&holder.call(&mut s, &req)), NtStatus::SUCCESS);
    assert_eq!(*acks.lock().unwrap(), [0]);
}

#[test]
fn administrators_list_disk_opens_and_close_them_as_a_client_close_would() {
    let log = Shared::default();
    let mut s = Server::new(share_config(&log));
    let mut a = connected(&mut s, 1000);
    let mut b = connected(&mut s, 1001);
    let ida = open(&mut a, &mut s, "hello.txt");
    let idb = open(&mut b, &mut s, "hello.txt");
    // A lock granted later counts on its open once it completes.
    let req = lock_req(&mut a, ida);
    let req = a.signed(req);
    interim(&a.call(&mut s, &req));
    let op = pending_op(&log, "lock");
    s.engine.complete(op, Completion::Done, s.now);
    transmit_events(&mut s);
    assert_eq!(status(&drain(&mut s, a.conn)[0]), NtStatus::SUCCESS);
    let rows = s.engine.admin_files();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let ra = rows
        .iter()
        .find(|r| r.session.as_u64() == a.session)
        .expect("a's open listed");
    assert_eq!(ra.share, "data");
    assert_eq!(ra.path, "\\hello.txt");
    assert_eq!(ra.user.to_string(), "alice");
    assert_eq!(ra.locks, 1);
    // FILE_READ_DATA | FILE_WRITE_DATA ...: read and write, opened (not made).
    assert_eq!(ra.permissions, 0x3);
    let sa = crate::ids::SessionId::from_raw(a.session).unwrap();
    let sb = crate::ids::SessionId::from_raw(b.session).unwrap();
    assert_eq!(s.engine.table().session(sa).unwrap().open_handles(), 1);
    let tree_opens = |s: &Server, sid| {
        s.engine
            .admin_trees(s.now)
            .iter()
            .find(|t| t.session == sid)
            .map(|t| t.open_handles)
    };
    assert_eq!(tree_opens(&s, sa), Some(1));
    let admin_id = ra.id;
    // Closed by the administrator: the backend closes it as for a CLOSE,
    // the holder's next request on it is FILE_CLOSED, the other open stays.
    let before = events(&log).len();
    assert_eq!(s.engine.admin_close_file(admin_id, s.now), 0);
    let ev = events(&log)[before..].to_vec();
    assert!(
        ev.len() == 1 && ev[0].starts_with("close "),
        "exactly one backend close: {ev:?}"
    );
    assert_eq!(read(&mut a, &mut s, ida).0, NtStatus::FILE_CLOSED);
    let req = close_req(&mut a, ida, false);
    assert_eq!(status(&a.call(&mut s, &req)), NtStatus::FILE_CLOSED);
    assert_eq!(read(&mut b, &mut s, idb).0, NtStatus::SUCCESS);
    assert_eq!(s.engine.table().session(sa).unwrap().open_handles(), 0);
    assert_eq!(s.engine.table().session(sb).unwrap().open_handles(), 1);
    assert_eq!(tree_opens(&s, sa), Some(0));
    assert_eq!(tree_opens(&s, sb), Some(1));
    let rows = s.engine.admin_files();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].session, sb);
    // Twice: NERR_FileIdNotFound.
    assert_eq!(s.engine.admin_close_file(admin_id, s.now), 2314);
    // A pending create's open is listed with its path once it completes.
    let req = create_req(&mut b, "slow", 2);
    interim(&b.call(&mut s, &req));
    let op = pending_op(&log, "create");
    s.engine.complete(
        op,
        Completion::Create(Created::new(77, 2, FileAttrs::default())),
        s.now,
    );
    let rows = s.engine.admin_files();
    let slow = rows.iter().find(|r| r.path == "\\slow").expect("listed");
    // Made by the CREATE: C beside R and W.
    assert_eq!(slow.permissions, 0x7);
}

#[test]
fn an_open_never_takes_the_administrative_id_of_a_live_one() {
    let log = Shared::default();
    let mut s = Server::new(share_config(&log));
    let mut a = connected(&mut s, 1000);
    open(&mut a, &mut s, "hello.txt");
    let first = s.engine.admin_files()[0].id;
    // As after the 24-bit counter wrapped: the next ids are held by opens
    // still live.
    for n in 1..=3 {
        s.engine.live_open_ids.insert(first + n);
    }
    let id = open(&mut a, &mut s, "hello.txt");
    let ids: Vec<u32> = s.engine.admin_files().iter().map(|r| r.id).collect();
    assert_eq!(ids, [first, first + 4]);
    // Ids go free with their opens, whichever way they go.
    let req = close_req(&mut a, id, false);
    assert_eq!(status(&a.call(&mut s, &req)), NtStatus::SUCCESS);
    assert!(!s.engine.live_open_ids.contains(&(first + 4)));
    s.engine.connection_closed(a.conn, s.now);
    assert!(!s.engine.live_open_ids.contains(&first));
    assert_eq!(s.engine.live_open_ids.len(), 3, "only the planted ones");
}
