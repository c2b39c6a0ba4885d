//! The share backend interface: how an embedding server serves the file
//! commands of its disk shares (MS-SMB2 3.3.5.9 to 3.3.5.22).
//!
//! The engine keeps everything that is protocol: the open table and its
//! FileIds (persistent part counted, volatile part random), the check that a
//! FileId belongs to the session and tree a request names (anything else is
//! STATUS_FILE_CLOSED, 3.3.5.9 and following), the FileId of related
//! compound requests (0xFFFF..., 3.3.5.2.7.2), interim responses and
//! AsyncIds (3.3.4.2), CANCEL (3.3.5.16), signing, credits, and the cleanup
//! of every open when its tree, session or connection goes. A backend sees
//! its own `handle` per open, a context, typed arguments, and answers with
//! typed results the engine encodes.
//!
//! # Registration
//!
//! The engine is per shard and single-threaded, so each shard gets its own
//! backend instance from a [`ShareBackendFactory`] that all shards share;
//! [`ShareDef`] names the share and carries the factory,
//! and [`EngineConfig::shares`](super::EngineConfig::shares) lists them.
//! IPC$ stays built in.
//!
//! # Completing later, without threads
//!
//! Every call may answer [`Reply::Pending`] instead of a result. The engine
//! then sends the interim response (STATUS_PENDING, SMB2_FLAGS_ASYNC_COMMAND,
//! a fresh AsyncId) and keeps the request. The final response goes out when
//! the result arrives, by either road:
//!
//! - the embedder calls [`Engine::complete`](super::Engine::complete) with
//!   the call's [`OpId`] (from [`Ctx::op`]), for example when its own I/O
//!   finished; the answer is queued on the request's connection and
//!   announced with [`EngineEvent::Transmit`](super::EngineEvent::Transmit);
//! - or the backend hands it back from [`ShareBackend::poll_completion`],
//!   which the engine drains after every frame it handled and whenever the
//!   embedder calls [`Engine::poll_backends`](super::Engine::poll_backends)
//!   (so a blocked lock can be granted from within the backend when another
//!   client's unlock arrives).
//!
//! A CANCEL naming a pending request reaches [`ShareBackend::cancel`]; the
//! backend answers by completing the operation with STATUS_CANCELLED (at
//! once, by returning `true`, or later). When the request's session, tree or
//! connection goes first, [`ShareBackend::abandon`] tells the backend; any
//! later completion of that operation is ignored.
//!
//! A connection may have at most
//! [`EngineConfig::max_pending_per_connection`](super::EngineConfig::max_pending_per_connection)
//! operations pending (default 512); past that a call that answers
//! `Pending` is abandoned and the request fails with
//! STATUS_INSUFFICIENT_RESOURCES (3.3.4.2 allows this), so a client cannot
//! make the server hold unbounded state by asking for things that wait.
//!
//! # Extension state
//!
//! The embedder can keep state of its own per session, per tree connect and
//! per open in a [`Slot`] (a typed `Box<dyn Any + Send>`) that the engine
//! stores with the object, hands back in every call ([`Ctx::session_ext`],
//! [`Ctx::tree_ext`], [`OpenRef::ext`]) and drops when the object goes. A
//! backend that prefers its own tables keys them by [`OpenRef::handle`]
//! instead; both are fine.
//!
//! # Example
//!
//! A share with one read-only file, registered for every shard:
//!
//! ```
//! use std::sync::Arc;
//! use smb_session::engine::backend::{CloseArgs, CreateArgs, ReadArgs};
//! use smb_session::engine::{
//!     Created, Ctx, EngineConfig, FileAttrs, OpenRef, Reply, ShareBackend, ShareDef,
//!     StaticShares,
//! };
//! use smb_wire::NtStatus;
//!
//! struct Motd;
//!
//! const TEXT: &[u8] = b"hello from smbcore\n";
//!
//! fn attrs() -> FileAttrs {
//!     FileAttrs {
//!         end_of_file: TEXT.len() as u64,
//!         allocation_size: 4096,
//!         file_attributes: 0x01, // FILE_ATTRIBUTE_READONLY
//!         ..FileAttrs::default()
//!     }
//! }
//!
//! impl ShareBackend for Motd {
//!     fn create(&mut self, ctx: &mut Ctx<'_>, args: &CreateArgs<'_>) -> Reply<Created> {
//!         // Count this session's opens in its extension slot.
//!         *ctx.session_ext().get_or_insert_with(|| 0u64) += 1;
//!         if !args.name().eq_ignore_ascii_case("motd.txt") {
//!             return Reply::Failed(NtStatus::OBJECT_NAME_NOT_FOUND);
//!         }
//!         Reply::Ready(Created::new(1, 1 /* FILE_OPENED */, attrs()))
//!     }
//!
//!     fn close(&mut self, _: &mut Ctx<'_>, _: &mut OpenRef<'_>, args: &CloseArgs)
//!         -> Reply<Option<FileAttrs>>
//!     {
//!         Reply::Ready(args.postquery.then(attrs))
//!     }
//!
//!     fn read(&mut self, _: &mut Ctx<'_>, _: &mut OpenRef<'_>, args: &ReadArgs) -> Reply<Vec<u8>> {
//!         let from = (args.offset as usize).min(TEXT.len());
//!         let to = from.saturating_add(args.length as usize).min(TEXT.len());
//!         Reply::Ready(TEXT[from..to].to_vec())
//!     }
//! }
//!
//! let mut cfg = EngineConfig::new([1; 16]);
//! cfg.shares = Arc::new(StaticShares(vec![ShareDef::new(
//!     "motd",
//!     |_shard: u16| -> Box<dyn ShareBackend> { Box::new(Motd) },
//! )]));
//! ```

pub(crate) mod opens;
mod ops;

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use smb_wire::msg::create::CreateContexts;
use smb_wire::msg::lock::LockElements;
use smb_wire::msg::FileId;
use smb_wire::NtStatus;

use crate::ids::ConnId;

pub(crate) use opens::Files;
pub(crate) use ops::ShareSlot;

/// Builds the backend of one share for each shard (the engine of a shard is
/// single-threaded and owns its backend instance).
pub trait ShareBackendFactory: Send + Sync {
    /// The backend instance for shard `shard`.
    fn for_shard(&self, shard: u16) -> Box<dyn ShareBackend>;
}

impl<F> ShareBackendFactory for F
where
    F: Fn(u16) -> Box<dyn ShareBackend> + Send + Sync,
{
    fn for_shard(&self, shard: u16) -> Box<dyn ShareBackend> {
        self(shard)
    }
}

/// One backend call, named so that a later completion finds its request.
/// Never reused within an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpId {
    pub(crate) conn: ConnId,
    pub(crate) id: u64,
}

impl OpId {
    /// The connection the request came on.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// The number the engine gave the call (also the AsyncId of the
    /// request if it goes pending).
    pub fn as_u64(&self) -> u64 {
        self.id
    }
}

/// Who is asking: the session a request came on (MS-SMB2 3.3.1.8).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionCtx {
    /// SessionId.
    pub session_id: u64,
    /// The user name (empty for anonymous and guest sessions).
    pub user: String,
    /// The domain the client named.
    pub domain: String,
    /// Whether the credential store marks the user an administrator.
    pub is_admin: bool,
    /// A guest session.
    pub is_guest: bool,
    /// A null (anonymous) session.
    pub is_anonymous: bool,
    /// The dialect of the connection.
    pub dialect: u16,
    /// The client's address.
    pub client: SocketAddr,
}

/// Room for the embedder's own state on a session, tree connect or open:
/// one value of any type, dropped with the object.
#[derive(Default)]
pub struct Slot(Option<Box<dyn Any + Send>>);

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Slot(set)"
        } else {
            "Slot(empty)"
        })
    }
}

impl Slot {
    /// The value, if one of type `T` is there.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.as_deref().and_then(|v| v.downcast_ref())
    }

    /// The value, mutably, if one of type `T` is there.
    pub fn get_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.0.as_deref_mut().and_then(|v| v.downcast_mut())
    }

    /// Store `value`, dropping what was there.
    pub fn set<T: Any + Send>(&mut self, value: T) {
        self.0 = Some(Box::new(value));
    }

    /// The value of type `T`, first stored from `f` when the slot is empty
    /// or holds another type.
    pub fn get_or_insert_with<T: Any + Send>(&mut self, f: impl FnOnce() -> T) -> &mut T {
        let value: Box<dyn Any + Send> = match self.0.take() {
            Some(v) if v.is::<T>() => v,
            _ => Box::new(f()),
        };
        match self.0.insert(value).downcast_mut::<T>() {
            Some(v) => v,
            // The value was checked (or made) to be a `T` just above.
            None => unreachable!("slot holds the value just stored"),
        }
    }

    /// Take the value out, leaving the slot empty.
    pub fn take(&mut self) -> Option<Box<dyn Any + Send>> {
        self.0.take()
    }

    /// Whether a value is stored.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }
}

/// The context of a backend call: the operation, the session and the tree
/// connect, with their extension slots.
pub struct Ctx<'a> {
    pub(crate) op: OpId,
    pub(crate) now: Instant,
    pub(crate) session: &'a SessionCtx,
    pub(crate) session_ext: &'a mut Slot,
    pub(crate) share: &'a str,
    pub(crate) tree_id: u32,
    pub(crate) tree_ext: &'a mut Slot,
}

impl fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("op", &self.op)
            .field("session", &self.session.session_id)
            .field("share", &self.share)
            .field("tree_id", &self.tree_id)
            .finish_non_exhaustive()
    }
}

impl Ctx<'_> {
    /// This call's operation id: keep it to complete the call later
    /// ([`Reply::Pending`]).
    pub fn op(&self) -> OpId {
        self.op
    }

    /// The time the engine was given with the request.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The session the request came on.
    pub fn session(&self) -> &SessionCtx {
        self.session
    }

    /// The embedder's state for this session (shared by all its trees).
    pub fn session_ext(&mut self) -> &mut Slot {
        self.session_ext
    }

    /// The share name as registered.
    pub fn share(&self) -> &str {
        self.share
    }

    /// The TreeId of the tree connect.
    pub fn tree_id(&self) -> u32 {
        self.tree_id
    }

    /// The embedder's state for this tree connect.
    pub fn tree_ext(&mut self) -> &mut Slot {
        self.tree_ext
    }
}

/// The open a call is about.
pub struct OpenRef<'a> {
    pub(crate) handle: u64,
    pub(crate) file_id: FileId,
    pub(crate) ext: &'a mut Slot,
}

impl fmt::Debug for OpenRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenRef")
            .field("handle", &self.handle)
            .field("file_id", &self.file_id)
            .finish_non_exhaustive()
    }
}

impl OpenRef<'_> {
    /// The handle the backend gave at CREATE ([`Created::handle`]).
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// The FileId the client knows the open by.
    pub fn file_id(&self) -> FileId {
        self.file_id
    }

    /// The embedder's state for this open.
    pub fn ext(&mut self) -> &mut Slot {
        self.ext
    }
}

/// A backend's answer to one call.
#[derive(Debug)]
#[must_use]
pub enum Reply<T> {
    /// Done.
    Ready(T),
    /// Failed with this status (an error or warning NTSTATUS).
    Failed(NtStatus),
    /// The result comes later ([`Engine::complete`](super::Engine::complete)
    /// or [`ShareBackend::poll_completion`] with [`Ctx::op`]).
    Pending,
}

impl<T> From<Result<T, NtStatus>> for Reply<T> {
    fn from(r: Result<T, NtStatus>) -> Self {
        match r {
            Ok(v) => Reply::Ready(v),
            Err(s) => Reply::Failed(s),
        }
    }
}

/// What a tree connect to the share answers (MS-SMB2 2.2.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShareParams {
    /// ShareFlags (SMB2_SHAREFLAG_*).
    pub share_flags: u32,
    /// Capabilities (SMB2_SHARE_CAP_*).
    pub capabilities: u32,
    /// MaximalAccess of the user on the share.
    pub maximal_access: u32,
}

impl Default for ShareParams {
    /// Manual caching, no capabilities, full access (FILE_ALL_ACCESS).
    fn default() -> Self {
        ShareParams {
            share_flags: 0,
            capabilities: 0,
            maximal_access: 0x001F_01FF,
        }
    }
}

impl ShareParams {
    /// These flags, capabilities and access.
    pub fn new(share_flags: u32, capabilities: u32, maximal_access: u32) -> Self {
        ShareParams {
            share_flags,
            capabilities,
            maximal_access,
        }
    }
}

/// Times, sizes and attributes of a file, as CREATE and CLOSE return them
/// (MS-SMB2 2.2.14, 2.2.16). Times are FILETIME (100 ns since 1601).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileAttrs {
    /// CreationTime.
    pub creation_time: u64,
    /// LastAccessTime.
    pub last_access_time: u64,
    /// LastWriteTime.
    pub last_write_time: u64,
    /// ChangeTime.
    pub change_time: u64,
    /// AllocationSize.
    pub allocation_size: u64,
    /// EndofFile.
    pub end_of_file: u64,
    /// FileAttributes (FILE_ATTRIBUTE_*).
    pub file_attributes: u32,
}

impl FileAttrs {
    pub(crate) fn times(&self) -> [u64; 4] {
        [
            self.creation_time,
            self.last_access_time,
            self.last_write_time,
            self.change_time,
        ]
    }
}

/// One create context of a CREATE response (MS-SMB2 2.2.14.2): its name
/// and its data, raw; the engine chains and aligns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateContextOut {
    /// Name (e.g. `b"MxAc"`).
    pub name: Vec<u8>,
    /// Data.
    pub data: Vec<u8>,
}

/// A successful CREATE (MS-SMB2 2.2.14).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Created {
    /// The backend's handle for the open; handed back in every call on it.
    pub handle: u64,
    /// CreateAction (FILE_SUPERSEDED 0, FILE_OPENED 1, FILE_CREATED 2,
    /// FILE_OVERWRITTEN 3).
    pub create_action: u32,
    /// OplockLevel granted.
    pub oplock_level: u8,
    /// Times, sizes, attributes.
    pub attrs: FileAttrs,
    /// Create context responses.
    pub contexts: Vec<CreateContextOut>,
}

impl Created {
    /// An open with this handle, action and attributes, no oplock, no
    /// create contexts.
    pub fn new(handle: u64, create_action: u32, attrs: FileAttrs) -> Self {
        Created {
            handle,
            create_action,
            oplock_level: 0,
            attrs,
            contexts: Vec::new(),
        }
    }
}

/// Output bytes the backend built (information classes, directory entries,
/// FSCTL output, change notifications) and the status to send them with
/// (SUCCESS, or BUFFER_OVERFLOW when they were cut to fit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The bytes.
    pub data: Vec<u8>,
    /// SUCCESS or a warning status (BUFFER_OVERFLOW).
    pub status: NtStatus,
}

impl Output {
    /// `data` with STATUS_SUCCESS.
    pub fn new(data: Vec<u8>) -> Self {
        Output {
            data,
            status: NtStatus::SUCCESS,
        }
    }

    /// `data`, cut to the client's buffer, with STATUS_BUFFER_OVERFLOW.
    pub fn overflow(data: Vec<u8>) -> Self {
        Output {
            data,
            status: NtStatus::BUFFER_OVERFLOW,
        }
    }
}

/// The result of an operation that completes later
/// ([`Engine::complete`](super::Engine::complete),
/// [`ShareBackend::poll_completion`]); the variant must match the command
/// that went pending (a mismatch is answered STATUS_INTERNAL_ERROR).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Completion {
    /// Any command failed (STATUS_CANCELLED after a cancel).
    Failed(NtStatus),
    /// CREATE.
    Create(Created),
    /// CLOSE: attributes when the client asked for them.
    Close(Option<FileAttrs>),
    /// READ: the data.
    Read(Vec<u8>),
    /// WRITE: bytes written.
    Write(u32),
    /// FLUSH, SET_INFO, LOCK: done.
    Done,
    /// QUERY_INFO, QUERY_DIRECTORY, IOCTL, CHANGE_NOTIFY: the output.
    Output(Output),
    /// OPLOCK_BREAK acknowledgement: the new oplock level.
    OplockBreak(u8),
}

/// CREATE arguments (MS-SMB2 2.2.13).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CreateArgs<'a> {
    /// The path relative to the share, UTF-16LE as sent (no leading `\`).
    pub name_utf16: &'a [u8],
    /// RequestedOplockLevel.
    pub requested_oplock_level: u8,
    /// ImpersonationLevel.
    pub impersonation_level: u32,
    /// DesiredAccess.
    pub desired_access: u32,
    /// FileAttributes.
    pub file_attributes: u32,
    /// ShareAccess.
    pub share_access: u32,
    /// CreateDisposition (FILE_SUPERSEDE 0 .. FILE_OVERWRITE_IF 5).
    pub create_disposition: u32,
    /// CreateOptions (FILE_DIRECTORY_FILE, FILE_DELETE_ON_CLOSE, ...).
    pub create_options: u32,
    /// The create contexts, raw (name and data each).
    pub contexts: CreateContexts<'a>,
}

impl CreateArgs<'_> {
    /// The path as a string (invalid UTF-16 becomes U+FFFD).
    pub fn name(&self) -> String {
        char::decode_utf16(smb_wire::utf16::units(self.name_utf16))
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    }
}

/// CLOSE arguments (MS-SMB2 2.2.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseArgs {
    /// SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB: the client wants the attributes.
    pub postquery: bool,
}

/// READ arguments (MS-SMB2 2.2.19).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadArgs {
    /// Offset.
    pub offset: u64,
    /// Length: at most this many bytes (the engine checked it against
    /// MaxReadSize).
    pub length: u32,
    /// MinimumCount: fewer bytes are answered STATUS_END_OF_FILE by the
    /// engine.
    pub minimum_count: u32,
    /// Flags (SMB2_READFLAG_*).
    pub flags: u8,
}

/// WRITE arguments (MS-SMB2 2.2.21). The data borrows the request: a
/// backend that goes pending copies what it needs.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct WriteArgs<'a> {
    /// Offset (0xFFFFFFFFFFFFFFFF: append).
    pub offset: u64,
    /// The data.
    pub data: &'a [u8],
    /// Flags (SMB2_WRITEFLAG_*).
    pub flags: u32,
}

/// QUERY_INFO arguments (MS-SMB2 2.2.37).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct QueryInfoArgs<'a> {
    /// InfoType (SMB2_0_INFO_FILE 1, _FILESYSTEM 2, _SECURITY 3, _QUOTA 4).
    pub info_type: u8,
    /// FileInfoClass (MS-FSCC 2.4 / 2.5).
    pub info_class: u8,
    /// OutputBufferLength: the most the answer may carry (the engine cuts
    /// longer output and answers BUFFER_OVERFLOW).
    pub output_buffer_length: u32,
    /// AdditionalInformation.
    pub additional_information: u32,
    /// Flags.
    pub flags: u32,
    /// The input buffer (quota and EA queries).
    pub input: &'a [u8],
}

/// SET_INFO arguments (MS-SMB2 2.2.39): the raw information buffer of the
/// class (FileBasicInformation, FileRenameInformation,
/// FileDispositionInformation, FileEndOfFileInformation, ...).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SetInfoArgs<'a> {
    /// InfoType.
    pub info_type: u8,
    /// FileInfoClass.
    pub info_class: u8,
    /// AdditionalInformation.
    pub additional_information: u32,
    /// The buffer.
    pub buffer: &'a [u8],
}

/// QUERY_DIRECTORY arguments (MS-SMB2 2.2.33).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct QueryDirectoryArgs<'a> {
    /// FileInformationClass (MS-FSCC 2.4).
    pub info_class: u8,
    /// Flags (SMB2_RESTART_SCANS, SMB2_RETURN_SINGLE_ENTRY, ...).
    pub flags: u8,
    /// FileIndex.
    pub file_index: u32,
    /// The search pattern, UTF-16LE.
    pub pattern_utf16: &'a [u8],
    /// OutputBufferLength: the most the answer may carry.
    pub output_buffer_length: u32,
}

impl QueryDirectoryArgs<'_> {
    /// The search pattern as a string.
    pub fn pattern(&self) -> String {
        char::decode_utf16(smb_wire::utf16::units(self.pattern_utf16))
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    }
}

/// IOCTL arguments (MS-SMB2 2.2.31) for the FSCTLs the engine does not
/// answer itself (it answers FSCTL_VALIDATE_NEGOTIATE_INFO and the DFS
/// referral requests).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct IoctlArgs<'a> {
    /// CtlCode.
    pub ctl_code: u32,
    /// The input buffer.
    pub input: &'a [u8],
    /// MaxOutputResponse: the most the answer may carry.
    pub max_output_response: u32,
    /// Whether SMB2_0_IOCTL_IS_FSCTL is set.
    pub is_fsctl: bool,
}

/// LOCK arguments (MS-SMB2 2.2.26), checked by the engine as 3.3.5.14
/// says: at least one element; either all unlocks or all locks; a lock
/// is shared or exclusive, not both; only a single-element request may
/// wait (no FAIL_IMMEDIATELY), and the backend then goes pending until the
/// range is free.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct LockArgs<'a> {
    /// LockSequenceNumber / LockSequenceIndex, raw.
    pub lock_sequence: u32,
    /// The elements.
    pub locks: LockElements<'a>,
}

/// CHANGE_NOTIFY arguments (MS-SMB2 2.2.35). The backend normally goes
/// pending and completes with FILE_NOTIFY_INFORMATION entries (or
/// STATUS_NOTIFY_ENUM_DIR), or with STATUS_NOTIFY_CLEANUP when the open is
/// closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeNotifyArgs {
    /// SMB2_WATCH_TREE.
    pub watch_tree: bool,
    /// CompletionFilter.
    pub completion_filter: u32,
    /// OutputBufferLength.
    pub output_buffer_length: u32,
}

/// The file operations of one share, implemented by the embedding server.
///
/// Every method but [`ShareBackend::create`] has a default: STATUS_NOT_SUPPORTED
/// for the optional commands, nothing for the notifications. Calls never
/// need to panic: whatever a client sends, the engine has checked framing,
/// lengths, session, tree and FileId before it calls.
///
/// See the module documentation for asynchronous completion and extension
/// state.
pub trait ShareBackend: Send {
    /// A tree connect to the share (MS-SMB2 3.3.5.7): refuse it
    /// (ACCESS_DENIED, ...) or say what the share offers.
    fn tree_connect(&mut self, ctx: &mut Ctx<'_>) -> Result<ShareParams, NtStatus> {
        let _ = ctx;
        Ok(ShareParams::default())
    }

    /// The tree connect goes (TREE_DISCONNECT, logoff, reap, connection
    /// closed), after every open on it was cleaned up.
    fn tree_disconnect(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx;
    }

    /// CREATE (MS-SMB2 3.3.5.9): open or create a file or directory.
    fn create(&mut self, ctx: &mut Ctx<'_>, args: &CreateArgs<'_>) -> Reply<Created>;

    /// CLOSE (3.3.5.10). The open is gone from the engine's table whatever
    /// the answer: release it. Operations still pending on it should be
    /// completed (CHANGE_NOTIFY with STATUS_NOTIFY_CLEANUP).
    fn close(
        &mut self,
        ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &CloseArgs,
    ) -> Reply<Option<FileAttrs>>;

    /// The open goes without a CLOSE: its tree, session or connection went.
    /// Delete-on-close and the like apply as for a close. The default calls
    /// [`ShareBackend::close`] and ignores its answer.
    fn cleanup(&mut self, ctx: &mut Ctx<'_>, open: &mut OpenRef<'_>) {
        let _ = self.close(ctx, open, &CloseArgs { postquery: false });
    }

    /// READ (3.3.5.12). Fewer than `minimum_count` bytes, or none at all,
    /// are answered STATUS_END_OF_FILE.
    fn read(
        &mut self,
        ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &ReadArgs,
    ) -> Reply<Vec<u8>> {
        let _ = (ctx, open, args);
        Reply::Failed(NtStatus::NOT_SUPPORTED)
    }

    /// WRITE (3.3.5.13): the number of bytes written.
    fn write(
        &mut self,
        ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &WriteArgs<'_>,
    ) -> Reply<u32> {
        let _ = (ctx, open, args);
        Reply::Failed(NtStatus::NOT_SUPPORTED)
    }

    /// FLUSH (3.3.5.11). The default succeeds (nothing is cached).
    fn flush(&mut self, ctx: &mut Ctx<'_>, open: &mut OpenRef<'_>) -> Reply<()> {
        let _ = (ctx, open);
        Reply::Ready(())
    }

    /// QUERY_INFO (3.3.5.20): the information buffer of the class.
    fn query_info(
        &mut self,
        ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &QueryInfoArgs<'_>,
    ) -> Reply<Output> {
        let _ = (ctx, open, args);
        Reply::Failed(NtStatus::NOT_SUPPORTED)
    }

    /// SET_INFO (3.3.5.21): rename, delete disposition, end of file,
    /// basic information, ...
    fn set_info(
        &mut self,
        ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &SetInfoArgs<'_>,
    ) -> Reply<()> {
        let _ = (ctx, open, args);
        Reply::Failed(NtStatus::NOT_SUPPORTED)
    }

    /// QUERY_DIRECTORY (3.3.5.18): directory entries of the class, or
    /// STATUS_NO_MORE_FILES. The enumeration cursor is the backend's, per
    /// open.
    fn query_directory(
        &mut self,
        ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &QueryDirectoryArgs<'_>,
    ) -> Reply<Output> {
        let _ = (ctx, open, args);
        Reply::Failed(NtStatus::NOT_SUPPORTED)
    }

    /// IOCTL (3.3.5.15) on an open, for the FSCTLs the engine does not
    /// answer. The default is STATUS_INVALID_DEVICE_REQUEST, what Windows
    /// answers for an FSCTL a file system does not know.
    fn ioctl(
        &mut self,
        ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &IoctlArgs<'_>,
    ) -> Reply<Output> {
        let _ = (ctx, open, args);
        Reply::Failed(NtStatus::INVALID_DEVICE_REQUEST)
    }

    /// LOCK (3.3.5.14): byte-range locks and unlocks, checked as
    /// [`LockArgs`] says.
    fn lock(
        &mut self,
        ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &LockArgs<'_>,
    ) -> Reply<()> {
        let _ = (ctx, open, args);
        Reply::Failed(NtStatus::NOT_SUPPORTED)
    }

    /// CHANGE_NOTIFY (3.3.5.19) on a directory open.
    fn change_notify(
        &mut self,
        ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        args: &ChangeNotifyArgs,
    ) -> Reply<Output> {
        let _ = (ctx, open, args);
        Reply::Failed(NtStatus::NOT_SUPPORTED)
    }

    /// An OPLOCK_BREAK acknowledgement (3.3.5.22.1): the level the client
    /// went to; answer the level now in force.
    fn oplock_break_ack(
        &mut self,
        ctx: &mut Ctx<'_>,
        open: &mut OpenRef<'_>,
        level: u8,
    ) -> Reply<u8> {
        let _ = (ctx, open, level);
        Reply::Failed(NtStatus::INVALID_DEVICE_REQUEST)
    }

    /// A CANCEL (3.3.5.16) names pending operation `op`. Return `true` to
    /// have the engine answer it STATUS_CANCELLED now (the operation is then
    /// finished), `false` when it completes later (with STATUS_CANCELLED or
    /// its result, if it could not be stopped).
    fn cancel(&mut self, op: OpId) -> bool {
        let _ = op;
        false
    }

    /// Pending operation `op` will never be answered: its session, tree or
    /// connection went. Forget it (a completion for it is ignored, and an
    /// open a pending CREATE made must be released by the backend).
    fn abandon(&mut self, op: OpId) {
        let _ = op;
    }

    /// A completed operation, if the backend has one to hand back; the
    /// engine drains this after every frame and in
    /// [`Engine::poll_backends`](super::Engine::poll_backends).
    fn poll_completion(&mut self) -> Option<(OpId, Completion)> {
        None
    }

    /// An oplock break the backend wants sent to the client holding an
    /// oplock (MS-SMB2 3.3.4.6), drained like
    /// [`ShareBackend::poll_completion`]. The engine finds the open by its
    /// connection and the backend's handle and sends an OPLOCK_BREAK
    /// notification with its FileId; the client answers with an
    /// acknowledgement ([`ShareBackend::oplock_break_ack`]) or closes the
    /// open. A notice for an open that is gone is ignored.
    fn poll_oplock_break(&mut self) -> Option<OplockBreakNotice> {
        None
    }
}

/// An oplock break to send ([`ShareBackend::poll_oplock_break`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OplockBreakNotice {
    /// The connection of the open ([`OpId::conn`] of the CREATE that made it).
    pub conn: ConnId,
    /// The backend's handle of the open ([`Created::handle`]).
    pub handle: u64,
    /// The level the client is to go to (SMB2_OPLOCK_LEVEL_NONE 0 or _II 1).
    pub level: u8,
}

impl OplockBreakNotice {
    /// Break the open `handle` on `conn` to `level`.
    pub fn new(conn: ConnId, handle: u64, level: u8) -> Self {
        OplockBreakNotice {
            conn,
            handle,
            level,
        }
    }
}

/// A share an embedding application serves besides IPC$. Made with
/// [`ShareDef::new`] (more fields may be added).
#[derive(Clone)]
#[non_exhaustive]
pub struct ShareDef {
    /// Share name (matched case-insensitively).
    pub name: String,
    /// Comment shown by NetrShareEnum.
    pub comment: String,
    /// Makes each shard's backend.
    pub backend: Arc<dyn ShareBackendFactory>,
}

impl fmt::Debug for ShareDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareDef")
            .field("name", &self.name)
            .field("comment", &self.comment)
            .finish_non_exhaustive()
    }
}

impl ShareDef {
    /// Share `name` served by the backends `factory` makes.
    pub fn new(name: impl Into<String>, factory: impl ShareBackendFactory + 'static) -> Self {
        ShareDef {
            name: name.into(),
            comment: String::new(),
            backend: Arc::new(factory),
        }
    }

    /// With this NetrShareEnum comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = comment.into();
        self
    }
}
