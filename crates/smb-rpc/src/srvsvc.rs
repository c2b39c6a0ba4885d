//! MS-SRVS (Server Service Remote Protocol), interface
//! 4b324fc8-1670-01d3-1278-5a47bf6ee188 v3.0, over NDR 2.0 or NDR64.
//!
//! Server side: [`dispatch`] decodes a request stub, asks a [`SrvsvcBackend`]
//! and encodes the response stub. Implemented methods (MS-SRVS 3.1.4):
//! NetrConnectionEnum (8, levels 0/1), NetrSessionEnum (12, levels 0/1/2/10/502),
//! NetrFileEnum (9, levels 2/3), NetrFileGetInfo (10, levels 2/3), NetrFileClose (11),
//! NetrSessionDel (13), NetrShareEnum (15, levels 0/1/2/501/502),
//! NetrShareGetInfo (16, same levels), NetrShareCheck (20), NetrServerGetInfo (21,
//! levels 100/101/102), NetrServerSetInfo (22, levels 102 and 1010: the
//! autodisconnect time), NetrRemoteTOD (28), NetrShareEnumSticky (36: no sticky
//! shares). Every other opnum MS-SRVS defines is answered as Windows answers a
//! method it does not support: a well-formed response whose return value is
//! `ERROR_NOT_SUPPORTED` ([`unsupported`]), not a DCE/RPC fault. Opnums past
//! the interface fault with `nca_s_op_rng_error`.
//!
//! Authorization follows Windows and Samba: the session and connection calls,
//! and share levels 2/502 (which reveal paths), need an administrator; others
//! get `ERROR_ACCESS_DENIED` in the method's return value (not an RPC fault).
//!
//! Client side: `*_request` encoders and [`decode_enum_response`] /
//! [`decode_info_response`] / [`decode_status_response`] decoders, for tests and
//! the load generator's probes.
//!
//! Paging: when the caller passes a resume handle and a `PreferedMaximumLength`
//! other than `MAX_PREFERRED_LENGTH`, entries are returned from the resume index
//! until the estimated size would exceed it (at least one entry), with
//! `ERROR_MORE_DATA` and the next index as resume handle (MS-SRVS 3.1.4.5).

use crate::ndr::{NdrError, NdrReader, NdrWriter, Syntax, Uuid};
use crate::pdu::status;

pub mod unsupported;

/// The srvsvc interface UUID.
pub const SRVSVC_UUID: Uuid = Uuid::from_fields(
    0x4b32_4fc8,
    0x1670,
    0x01d3,
    [0x12, 0x78, 0x5a, 0x47, 0xbf, 0x6e, 0xe1, 0x88],
);
/// srvsvc interface version 3.0 as `major | minor << 16`.
pub const SRVSVC_VERSION: u32 = 3;

/// Operation numbers (MS-SRVS 3.1.4).
pub mod opnum {
    /// NetrConnectionEnum
    pub const NETR_CONNECTION_ENUM: u16 = 8;
    /// NetrSessionEnum
    pub const NETR_SESSION_ENUM: u16 = 12;
    /// NetrSessionDel
    pub const NETR_SESSION_DEL: u16 = 13;
    /// NetrShareEnum
    pub const NETR_SHARE_ENUM: u16 = 15;
    /// NetrShareGetInfo
    pub const NETR_SHARE_GET_INFO: u16 = 16;
    /// NetrServerGetInfo
    pub const NETR_SERVER_GET_INFO: u16 = 21;
    /// NetrFileEnum
    pub const NETR_FILE_ENUM: u16 = 9;
    /// NetrFileGetInfo
    pub const NETR_FILE_GET_INFO: u16 = 10;
    /// NetrFileClose
    pub const NETR_FILE_CLOSE: u16 = 11;
    /// NetrShareCheck
    pub const NETR_SHARE_CHECK: u16 = 20;
    /// NetrServerSetInfo
    pub const NETR_SERVER_SET_INFO: u16 = 22;
    /// NetrRemoteTOD
    pub const NETR_REMOTE_TOD: u16 = 28;
    /// NetrShareEnumSticky
    pub const NETR_SHARE_ENUM_STICKY: u16 = 36;
    /// The last opnum of the interface (NetrShareDelEx).
    pub const LAST: u16 = 57;
}

/// NET_API_STATUS values used here (MS-ERREF 2.2).
pub mod werr {
    /// NERR_Success
    pub const SUCCESS: u32 = 0;
    /// ERROR_ACCESS_DENIED
    pub const ACCESS_DENIED: u32 = 5;
    /// ERROR_NOT_SUPPORTED
    pub const NOT_SUPPORTED: u32 = 50;
    /// ERROR_INVALID_PARAMETER
    pub const INVALID_PARAMETER: u32 = 87;
    /// ERROR_BUSY
    pub const BUSY: u32 = 170;
    /// ERROR_INVALID_LEVEL
    pub const INVALID_LEVEL: u32 = 124;
    /// ERROR_MORE_DATA
    pub const MORE_DATA: u32 = 234;
    /// NERR_UserNotFound
    pub const USER_NOT_FOUND: u32 = 2221;
    /// NERR_NetNameNotFound
    pub const NET_NAME_NOT_FOUND: u32 = 2310;
    /// NERR_ClientNameNotFound
    pub const CLIENT_NAME_NOT_FOUND: u32 = 2312;
    /// NERR_DeviceNotShared
    pub const DEVICE_NOT_SHARED: u32 = 2311;
    /// NERR_FileIdNotFound
    pub const FILE_ID_NOT_FOUND: u32 = 2314;
}

/// `ParmErr` values of NetrServerSetInfo (MS-SRVS 2.2.2.11): which field was bad.
pub mod parmnum {
    /// SV_COMMENT_PARMNUM
    pub const COMMENT: u32 = 5;
    /// SV_DISC_PARMNUM
    pub const DISC: u32 = 10;
}

/// Share types (MS-SRVS 2.2.2.4).
pub mod stype {
    /// Disk drive.
    pub const DISKTREE: u32 = 0;
    /// Print queue.
    pub const PRINTQ: u32 = 1;
    /// Communication device.
    pub const DEVICE: u32 = 2;
    /// Interprocess communication (IPC$).
    pub const IPC: u32 = 3;
    /// Temporary share.
    pub const TEMPORARY: u32 = 0x4000_0000;
    /// Special share (administrative, e.g. IPC$, ADMIN$).
    pub const SPECIAL: u32 = 0x8000_0000;
}

/// Server type bits (MS-SRVS 2.2.2.7).
pub mod sv_type {
    /// A workstation.
    pub const WORKSTATION: u32 = 0x0000_0001;
    /// A server.
    pub const SERVER: u32 = 0x0000_0002;
    /// Windows NT / Windows 2000 and later.
    pub const NT: u32 = 0x0000_1000;
    /// A server that is not a domain controller.
    pub const SERVER_NT: u32 = 0x0000_8000;
    /// Can run the browser service.
    pub const POTENTIAL_BROWSER: u32 = 0x0001_0000;
}

/// `PreferedMaximumLength` meaning "everything" (MS-SRVS 2.2.2.2).
pub const MAX_PREFERRED_LENGTH: u32 = 0xFFFF_FFFF;
/// PLATFORM_ID_NT (MS-SRVS 2.2.2.6).
pub const PLATFORM_ID_NT: u32 = 500;
/// SESS_GUEST flag of `sesiX_user_flags` (MS-SRVS 2.2.4.15).
pub const SESS_GUEST: u32 = 0x1;

/// Who is calling, as the SMB session established it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CallerInfo {
    /// User name ("" for anonymous).
    pub user: String,
    /// Member of the administrators.
    pub is_admin: bool,
    /// False for a null (anonymous) session.
    pub authenticated: bool,
}

/// Server description for NetrServerGetInfo (MS-SRVS 2.2.4.40-42).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    /// NetBIOS name, without leading backslashes.
    pub name: String,
    /// Comment.
    pub comment: String,
    /// Platform id, [`PLATFORM_ID_NT`].
    pub platform_id: u32,
    /// Major version (10 for Windows 10 / Server 2016+).
    pub version_major: u32,
    /// Minor version.
    pub version_minor: u32,
    /// [`sv_type`] bits.
    pub server_type: u32,
    /// Autodisconnect in minutes, -1 for never (`sv102_disc`).
    pub autodisconnect_minutes: i32,
    /// Number of users allowed (`sv102_users`).
    pub users: u32,
    /// Hidden from browse lists.
    pub hidden: bool,
    /// Announce interval in seconds.
    pub announce: u32,
    /// Announce delta in milliseconds.
    pub anndelta: u32,
    /// Licenses.
    pub licenses: u32,
    /// User path.
    pub userpath: String,
}

impl ServerInfo {
    /// The values a Windows 10 file server reports, with `name` and 15 minutes autodisconnect.
    pub fn windows_like(name: &str) -> ServerInfo {
        ServerInfo {
            name: name.to_string(),
            comment: String::new(),
            platform_id: PLATFORM_ID_NT,
            version_major: 10,
            version_minor: 0,
            server_type: sv_type::WORKSTATION | sv_type::SERVER | sv_type::NT | sv_type::SERVER_NT,
            autodisconnect_minutes: 15,
            users: 0xFFFF_FFFF,
            hidden: false,
            announce: 240,
            anndelta: 3000,
            licenses: 0,
            userpath: "c:\\".to_string(),
        }
    }
}

/// One share (MS-SRVS 2.2.4.22-26).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareInfo {
    /// Share name.
    pub name: String,
    /// [`stype`] value.
    pub share_type: u32,
    /// Remark.
    pub comment: String,
    /// Permissions (level 2/502; 0 on user-level servers).
    pub permissions: u32,
    /// Maximum concurrent uses, `u32::MAX` for unlimited.
    pub max_uses: u32,
    /// Current uses.
    pub current_uses: u32,
    /// Local path ("" for IPC$).
    pub path: String,
    /// `shi501_flags` (caching flags).
    pub flags: u32,
}

impl ShareInfo {
    /// The IPC$ share as Windows reports it.
    pub fn ipc() -> ShareInfo {
        ShareInfo {
            name: "IPC$".into(),
            share_type: stype::IPC | stype::SPECIAL,
            comment: "Remote IPC".into(),
            permissions: 0,
            max_uses: u32::MAX,
            current_uses: 0,
            path: String::new(),
            flags: 0,
        }
    }
}

/// One session (MS-SRVS 2.2.4.11-16).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SrvSessionInfo {
    /// Client computer name or address, without leading `\\`.
    pub client: String,
    /// User name.
    pub user: String,
    /// Open files, pipes and devices.
    pub num_opens: u32,
    /// Seconds since the session was established.
    pub time_secs: u32,
    /// Seconds since the last activity.
    pub idle_secs: u32,
    /// Logged on as guest.
    pub is_guest: bool,
    /// Client type (e.g. "SMB 3.1.1").
    pub client_type: String,
    /// Transport name.
    pub transport: String,
}

/// One tree connection (MS-SRVS 2.2.4.1-2).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SrvConnectionInfo {
    /// Connection id.
    pub id: u32,
    /// Share type ([`stype`]).
    pub conn_type: u32,
    /// Open files.
    pub num_opens: u32,
    /// Users on the connection.
    pub num_users: u32,
    /// Seconds connected.
    pub time_secs: u32,
    /// User name (or computer name, when qualified by share).
    pub user: String,
    /// Share name (or computer name, when qualified by computer).
    pub netname: String,
}

/// One open file, pipe or device (MS-SRVS 2.2.4.7 FILE_INFO_2, 2.2.4.8 FILE_INFO_3).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SrvFileInfo {
    /// The open's server-wide id (`fi3_id`), what NetrFileClose takes.
    pub id: u32,
    /// Access granted (`fi3_permissions`, PERM_FILE_* bits).
    pub permissions: u32,
    /// Locks held (`fi3_num_locks`).
    pub num_locks: u32,
    /// Path as the server names it, e.g. `\PIPE\srvsvc`.
    pub path: String,
    /// The user who opened it.
    pub user: String,
}

/// PERM_FILE_READ | PERM_FILE_WRITE (MS-SRVS 2.2.4.8): what a pipe open grants.
pub const PERM_FILE_READ_WRITE: u32 = 0x1 | 0x2;

/// What NetrServerSetInfo asks to change (MS-SRVS 3.1.4.18): the fields of a
/// SERVER_INFO_102 or SERVER_INFO_1010 that the server lets be set. Read-only
/// fields (platform, name, version, type) are ignored, as Windows does.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ServerInfoChange {
    /// `sv102_disc` / `sv1010_disc`: autodisconnect in minutes, -1 = never.
    pub autodisconnect_minutes: Option<i32>,
    /// `sv102_comment`.
    pub comment: Option<String>,
}

/// The time of day for NetrRemoteTOD (MS-SRVS 2.2.4.105 TIME_OF_DAY_INFO).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TimeOfDay {
    /// Seconds since 1970-01-01 UTC.
    pub unix_secs: u64,
    /// Milliseconds since the server started (`tod_msecs`).
    pub uptime_ms: u32,
    /// Hundredths of a second in the current second.
    pub hundredths: u32,
}

/// What the srvsvc server needs from the SMB engine.
pub trait SrvsvcBackend {
    /// The caller of this pipe.
    fn caller(&self) -> CallerInfo;
    /// Server description.
    fn server_info(&self) -> ServerInfo;
    /// All shares, IPC$ included.
    fn shares(&self) -> Vec<ShareInfo>;
    /// All sessions.
    fn sessions(&self) -> Vec<SrvSessionInfo>;
    /// Logs off the sessions matching `client` (computer name or address, without `\\`,
    /// case-insensitive) and/or `user`; returns how many went.
    fn delete_sessions(&mut self, client: Option<&str>, user: Option<&str>) -> u32;
    /// Connections for `qualifier`: a share name, or `\\computer` for one client's trees.
    fn connections(&self, qualifier: &str) -> Vec<SrvConnectionInfo>;
    /// Open files and pipes (NetrFileEnum, NetrFileGetInfo).
    fn files(&self) -> Vec<SrvFileInfo> {
        Vec::new()
    }
    /// Closes the open `id` (NetrFileClose); a [`werr`] value.
    fn close_file(&mut self, _id: u32) -> u32 {
        werr::FILE_ID_NOT_FOUND
    }
    /// Applies a NetrServerSetInfo change; a [`werr`] value (with the
    /// [`parmnum`] of the bad field, if any).
    fn set_server_info(&mut self, _change: &ServerInfoChange) -> (u32, Option<u32>) {
        (werr::NOT_SUPPORTED, None)
    }
    /// The time of day (NetrRemoteTOD); `None` when the server has no clock to offer.
    fn time_of_day(&self) -> Option<TimeOfDay> {
        None
    }
}

/// Shape of one field of an info structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `[string] wchar_t*`
    Str,
    /// DWORD
    U32,
    /// `[size_is(previous field)] unsigned char*`
    Blob,
}

use Kind::{Blob, Str, U32};

const SHARE_0: &[Kind] = &[Str];
const SHARE_1: &[Kind] = &[Str, U32, Str];
const SHARE_2: &[Kind] = &[Str, U32, Str, U32, U32, U32, Str, Str];
const SHARE_501: &[Kind] = &[Str, U32, Str, U32];
const SHARE_502: &[Kind] = &[Str, U32, Str, U32, U32, U32, Str, Str, U32, Blob];
const SHARE_1005: &[Kind] = &[U32];
const SESSION_0: &[Kind] = &[Str];
const SESSION_1: &[Kind] = &[Str, Str, U32, U32, U32, U32];
const SESSION_2: &[Kind] = &[Str, Str, U32, U32, U32, U32, Str];
const SESSION_10: &[Kind] = &[Str, Str, U32, U32];
const SESSION_502: &[Kind] = &[Str, Str, U32, U32, U32, U32, Str, Str];
const CONNECTION_0: &[Kind] = &[U32];
const CONNECTION_1: &[Kind] = &[U32, U32, U32, U32, U32, Str, Str];
const SERVER_100: &[Kind] = &[U32, Str];
const SERVER_101: &[Kind] = &[U32, Str, U32, U32, U32, Str];
const SERVER_102: &[Kind] = &[
    U32, Str, U32, U32, U32, Str, U32, U32, U32, U32, U32, U32, Str,
];
const SERVER_1010: &[Kind] = &[U32];
const FILE_2: &[Kind] = &[U32];
const FILE_3: &[Kind] = &[U32, U32, U32, Str, Str];

/// Which family of info structures a level belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoClass {
    /// SHARE_INFO_* (levels 0, 1, 2, 501, 502).
    Share,
    /// SESSION_INFO_* (levels 0, 1, 2, 10, 502).
    Session,
    /// CONNECTION_INFO_* (levels 0, 1).
    Connection,
    /// SERVER_INFO_* (levels 100, 101, 102; 1010 for NetrServerSetInfo).
    Server,
    /// FILE_INFO_* (levels 2, 3).
    File,
}

fn shape(class: InfoClass, level: u32) -> Option<&'static [Kind]> {
    Some(match (class, level) {
        (InfoClass::Share, 0) => SHARE_0,
        (InfoClass::Share, 1) => SHARE_1,
        (InfoClass::Share, 2) => SHARE_2,
        (InfoClass::Share, 501) => SHARE_501,
        (InfoClass::Share, 502) => SHARE_502,
        (InfoClass::Share, 1005) => SHARE_1005,
        (InfoClass::Session, 0) => SESSION_0,
        (InfoClass::Session, 1) => SESSION_1,
        (InfoClass::Session, 2) => SESSION_2,
        (InfoClass::Session, 10) => SESSION_10,
        (InfoClass::Session, 502) => SESSION_502,
        (InfoClass::Connection, 0) => CONNECTION_0,
        (InfoClass::Connection, 1) => CONNECTION_1,
        (InfoClass::Server, 100) => SERVER_100,
        (InfoClass::Server, 101) => SERVER_101,
        (InfoClass::Server, 102) => SERVER_102,
        (InfoClass::Server, 1010) => SERVER_1010,
        (InfoClass::File, 2) => FILE_2,
        (InfoClass::File, 3) => FILE_3,
        _ => return None,
    })
}

/// A field value to encode.
#[derive(Clone, Copy, Debug)]
enum Val<'a> {
    Str(Option<&'a str>),
    U32(u32),
    Blob(Option<&'a [u8]>),
}

/// A decoded field of an info structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// A string pointer (None when null).
    Str(Option<String>),
    /// A DWORD.
    U32(u32),
    /// A byte array pointer (None when null).
    Blob(Option<Vec<u8>>),
}

/// One decoded info structure, fields in IDL order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row(pub Vec<Field>);

impl Row {
    /// The string in field `i`, if it is a non-null string.
    pub fn str(&self, i: usize) -> Option<&str> {
        match self.0.get(i) {
            Some(Field::Str(Some(s))) => Some(s),
            _ => None,
        }
    }
    /// The DWORD in field `i`.
    pub fn u32(&self, i: usize) -> Option<u32> {
        match self.0.get(i) {
            Some(Field::U32(v)) => Some(*v),
            _ => None,
        }
    }
}

fn struct_align(w_syntax: Syntax, vals_have_ptr: bool) -> usize {
    if vals_have_ptr {
        w_syntax.ptr_size()
    } else {
        4
    }
}

fn write_inline(w: &mut NdrWriter, vals: &[Val<'_>]) {
    let has_ptr = vals.iter().any(|v| !matches!(v, Val::U32(_)));
    w.align(struct_align(w.syntax(), has_ptr));
    for v in vals {
        match v {
            Val::Str(s) => w.ptr(s.is_some()),
            Val::U32(x) => w.u32(*x),
            Val::Blob(b) => w.ptr(b.is_some()),
        }
    }
}

fn write_deferred(w: &mut NdrWriter, vals: &[Val<'_>]) {
    for v in vals {
        match v {
            Val::Str(Some(s)) => w.wstring(s),
            Val::Blob(Some(b)) => {
                w.count(b.len());
                w.bytes(b);
            }
            _ => {}
        }
    }
}

/// Estimated marshalled size of one entry, for `PreferedMaximumLength`.
fn estimate(vals: &[Val<'_>]) -> usize {
    vals.iter()
        .map(|v| match v {
            Val::Str(Some(s)) => 8 + 12 + 2 * (s.len() + 1),
            Val::Blob(Some(b)) => 8 + 4 + b.len(),
            _ => 8,
        })
        .sum()
}

fn read_inline(r: &mut NdrReader<'_>, kinds: &[Kind]) -> Result<Row, NdrError> {
    let has_ptr = kinds.iter().any(|k| *k != U32);
    r.align(struct_align(r.syntax(), has_ptr))?;
    let mut row = Vec::with_capacity(kinds.len());
    for k in kinds {
        row.push(match k {
            Str => Field::Str(r.ptr()?.then(String::new)),
            U32 => Field::U32(r.u32()?),
            Blob => Field::Blob(r.ptr()?.then(Vec::new)),
        });
    }
    Ok(Row(row))
}

fn read_deferred(r: &mut NdrReader<'_>, row: &mut Row) -> Result<(), NdrError> {
    for f in row.0.iter_mut() {
        match f {
            Field::Str(Some(s)) => *s = r.wstring()?,
            Field::Blob(Some(b)) => {
                let n = r.array_count(1)?;
                *b = r.bytes(n)?.to_vec();
            }
            _ => {}
        }
    }
    Ok(())
}

/// Writes `XXX_ENUM_STRUCT { Level; union { XXX_CONTAINER* } }` with the container
/// `{ EntriesRead; [size_is] XXX_INFO* Buffer }` and its deferred array.
fn write_enum_struct(w: &mut NdrWriter, level: u32, rows: Option<&[Vec<Val<'_>>]>) {
    w.align_ptr();
    w.u32(level);
    w.align_ptr(); // union alignment: its arms are pointers
    w.u32(level);
    w.align_ptr();
    w.ptr(rows.is_some());
    if let Some(rows) = rows {
        w.align_ptr();
        w.u32(rows.len() as u32);
        w.ptr(!rows.is_empty());
        if !rows.is_empty() {
            w.count(rows.len());
            for r in rows {
                write_inline(w, r);
            }
            for r in rows {
                write_deferred(w, r);
            }
        }
    }
}

/// A decoded `XXX_ENUM_STRUCT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumStruct {
    /// The level.
    pub level: u32,
    /// None when the container pointer was null.
    pub rows: Option<Vec<Row>>,
}

fn read_enum_struct(r: &mut NdrReader<'_>, class: InfoClass) -> Result<EnumStruct, NdrError> {
    r.align_ptr()?;
    let level = r.u32()?;
    r.align_ptr()?;
    let tag = r.u32()?;
    if tag != level {
        return Err(NdrError::BadTag(tag));
    }
    r.align_ptr()?;
    if !r.ptr()? {
        return Ok(EnumStruct { level, rows: None });
    }
    r.align_ptr()?;
    let entries = r.u32()?;
    let mut rows = Vec::new();
    if r.ptr()? {
        let kinds = shape(class, level).ok_or(NdrError::BadTag(level))?;
        let n = r.array_count(4)?;
        if n != entries as usize {
            return Err(NdrError::BadCount);
        }
        rows.reserve(n);
        for _ in 0..n {
            rows.push(read_inline(r, kinds)?);
        }
        for row in rows.iter_mut() {
            read_deferred(r, row)?;
        }
    }
    Ok(EnumStruct {
        level,
        rows: Some(rows),
    })
}

/// Writes a pointer-armed info union `[switch_is(level)] XXX_INFO` with its pointee.
fn write_info_union(w: &mut NdrWriter, level: u32, vals: Option<&[Val<'_>]>) {
    w.align_ptr();
    w.u32(level);
    w.align_ptr();
    w.ptr(vals.is_some());
    if let Some(v) = vals {
        write_inline(w, v);
        write_deferred(w, v);
    }
}

fn write_tail(w: &mut NdrWriter, total: u32, resume: Option<u32>, status: u32) {
    w.u32(total);
    w.align_ptr();
    w.ptr(resume.is_some());
    if let Some(h) = resume {
        w.u32(h);
    }
    w.u32(status);
}

fn read_resume(r: &mut NdrReader<'_>) -> Result<Option<u32>, NdrError> {
    r.align_ptr()?;
    if r.ptr()? {
        Ok(Some(r.u32()?))
    } else {
        Ok(None)
    }
}

fn share_vals(s: &ShareInfo, level: u32) -> Vec<Val<'_>> {
    let name = Val::Str(Some(&s.name));
    let ty = Val::U32(s.share_type);
    let remark = Val::Str(Some(&s.comment));
    match level {
        0 => vec![name],
        1 => vec![name, ty, remark],
        501 => vec![name, ty, remark, Val::U32(s.flags)],
        1005 => vec![Val::U32(s.flags)],
        2 | 502 => {
            let mut v = vec![
                name,
                ty,
                remark,
                Val::U32(s.permissions),
                Val::U32(s.max_uses),
                Val::U32(s.current_uses),
                Val::Str(Some(&s.path)),
                Val::Str(None),
            ];
            if level == 502 {
                v.push(Val::U32(0));
                v.push(Val::Blob(None));
            }
            v
        }
        _ => Vec::new(),
    }
}

fn session_vals(s: &SrvSessionInfo, level: u32) -> Vec<Val<'_>> {
    let c = Val::Str(Some(&s.client));
    let u = Val::Str(Some(&s.user));
    let flags = Val::U32(if s.is_guest { SESS_GUEST } else { 0 });
    let common = [
        c,
        u,
        Val::U32(s.num_opens),
        Val::U32(s.time_secs),
        Val::U32(s.idle_secs),
        flags,
    ];
    match level {
        0 => vec![c],
        1 => common.to_vec(),
        2 => {
            let mut v = common.to_vec();
            v.push(Val::Str(Some(&s.client_type)));
            v
        }
        10 => vec![c, u, Val::U32(s.time_secs), Val::U32(s.idle_secs)],
        502 => {
            let mut v = common.to_vec();
            v.push(Val::Str(Some(&s.client_type)));
            v.push(Val::Str(Some(&s.transport)));
            v
        }
        _ => Vec::new(),
    }
}

fn connection_vals(c: &SrvConnectionInfo, level: u32) -> Vec<Val<'_>> {
    match level {
        0 => vec![Val::U32(c.id)],
        1 => vec![
            Val::U32(c.id),
            Val::U32(c.conn_type),
            Val::U32(c.num_opens),
            Val::U32(c.num_users),
            Val::U32(c.time_secs),
            Val::Str(Some(&c.user)),
            Val::Str(Some(&c.netname)),
        ],
        _ => Vec::new(),
    }
}

fn server_vals(s: &ServerInfo, level: u32) -> Vec<Val<'_>> {
    let mut v = vec![Val::U32(s.platform_id), Val::Str(Some(&s.name))];
    if level >= 101 {
        v.extend([
            Val::U32(s.version_major),
            Val::U32(s.version_minor),
            Val::U32(s.server_type),
            Val::Str(Some(&s.comment)),
        ]);
    }
    if level == 102 {
        v.extend([
            Val::U32(s.users),
            Val::U32(s.autodisconnect_minutes as u32),
            Val::U32(u32::from(s.hidden)),
            Val::U32(s.announce),
            Val::U32(s.anndelta),
            Val::U32(s.licenses),
            Val::Str(Some(&s.userpath)),
        ]);
    }
    v
}

fn file_vals(f: &SrvFileInfo, level: u32) -> Vec<Val<'_>> {
    match level {
        2 => vec![Val::U32(f.id)],
        3 => vec![
            Val::U32(f.id),
            Val::U32(f.permissions),
            Val::U32(f.num_locks),
            Val::Str(Some(&f.path)),
            Val::Str(Some(&f.user)),
        ],
        _ => Vec::new(),
    }
}

/// Picks the page of `rows` starting at `resume` that fits `pref_max`.
/// Returns (first index, end index, status, next resume handle).
fn page(rows: &[Vec<Val<'_>>], resume: Option<u32>, pref_max: u32) -> (usize, usize, u32, u32) {
    let start = resume.map_or(0, |r| (r as usize).min(rows.len()));
    if resume.is_none() || pref_max == MAX_PREFERRED_LENGTH {
        return (start, rows.len(), werr::SUCCESS, 0);
    }
    let mut used = 0usize;
    let mut end = start;
    while end < rows.len() {
        let sz = estimate(&rows[end]);
        if end > start && used + sz > pref_max as usize {
            break;
        }
        used += sz;
        end += 1;
    }
    if end < rows.len() {
        (start, end, werr::MORE_DATA, end as u32)
    } else {
        (start, end, werr::SUCCESS, 0)
    }
}

/// Handles one srvsvc call. Returns the response stub, or the fault status for a
/// call that cannot be answered (unknown opnum, undecodable stub).
pub fn dispatch(
    opnum: u16,
    stub: &[u8],
    syntax: Syntax,
    backend: &mut dyn SrvsvcBackend,
) -> Result<Vec<u8>, u32> {
    let bad = |e: NdrError| match e {
        NdrError::BadTag(_) => status::NCA_S_FAULT_INVALID_TAG,
        _ => status::NCA_S_FAULT_NDR,
    };
    let mut r = NdrReader::new(stub, syntax);
    let mut w = NdrWriter::new(syntax);
    match opnum {
        opnum::NETR_SHARE_ENUM => {
            let req = ShareEnumRequest::decode(&mut r).map_err(bad)?;
            let caller = backend.caller();
            let level = req.level;
            // SHARE_INFO_1005 is a get/set level, not an enumeration one.
            let known = shape(InfoClass::Share, level).is_some() && level != 1005;
            if !known {
                write_enum_struct(&mut w, level, None);
                write_tail(&mut w, 0, req.resume, werr::INVALID_LEVEL);
            } else if level == 501 && !caller.authenticated {
                // A null session may list names and remarks, not the
                // caching flags (as Windows and Samba answer).
                write_enum_struct(&mut w, level, Some(&[]));
                write_tail(&mut w, 0, req.resume, werr::ACCESS_DENIED);
            } else if (level == 2 || level == 502) && !caller.is_admin {
                write_enum_struct(&mut w, level, Some(&[]));
                write_tail(&mut w, 0, req.resume, werr::ACCESS_DENIED);
            } else {
                let shares = backend.shares();
                let rows: Vec<Vec<Val<'_>>> = shares.iter().map(|s| share_vals(s, level)).collect();
                let (a, b, st, next) = page(&rows, req.resume, req.pref_max);
                write_enum_struct(&mut w, level, Some(&rows[a..b]));
                write_tail(&mut w, rows.len() as u32, req.resume.map(|_| next), st);
            }
        }
        opnum::NETR_SHARE_GET_INFO => {
            let _server = r.unique_wstring().map_err(bad)?;
            let netname = r.wstring().map_err(bad)?;
            let level = r.u32().map_err(bad)?;
            let caller = backend.caller();
            if shape(InfoClass::Share, level).is_none() {
                write_info_union(&mut w, level, None);
                w.u32(werr::INVALID_LEVEL);
            } else if (level == 2 || level == 502) && !caller.is_admin {
                write_info_union(&mut w, level, None);
                w.u32(werr::ACCESS_DENIED);
            } else {
                let shares = backend.shares();
                match shares
                    .iter()
                    .find(|s| s.name.eq_ignore_ascii_case(&netname))
                {
                    Some(s) => {
                        write_info_union(&mut w, level, Some(&share_vals(s, level)));
                        w.u32(werr::SUCCESS);
                    }
                    None => {
                        write_info_union(&mut w, level, None);
                        w.u32(werr::NET_NAME_NOT_FOUND);
                    }
                }
            }
        }
        opnum::NETR_SERVER_GET_INFO => {
            let _server = r.unique_wstring().map_err(bad)?;
            let level = r.u32().map_err(bad)?;
            if !(100..=102).contains(&level) {
                write_info_union(&mut w, level, None);
                w.u32(werr::INVALID_LEVEL);
            } else {
                let info = backend.server_info();
                write_info_union(&mut w, level, Some(&server_vals(&info, level)));
                w.u32(werr::SUCCESS);
            }
        }
        opnum::NETR_SESSION_ENUM => {
            let req = SessionEnumRequest::decode(&mut r).map_err(bad)?;
            let level = req.level;
            let caller = backend.caller();
            let client = non_empty(req.client.as_deref());
            let user = non_empty(req.user.as_deref());
            let fail = |w: &mut NdrWriter, st: u32| {
                write_enum_struct(w, level, Some(&[]));
                write_tail(w, 0, req.resume, st);
            };
            if shape(InfoClass::Session, level).is_none() {
                write_enum_struct(&mut w, level, None);
                write_tail(&mut w, 0, req.resume, werr::INVALID_LEVEL);
            } else if !caller.is_admin {
                fail(&mut w, werr::ACCESS_DENIED);
            } else {
                let client = client.map(strip_unc);
                let sessions: Vec<SrvSessionInfo> = backend
                    .sessions()
                    .into_iter()
                    .filter(|s| client.map_or(true, |c| s.client.eq_ignore_ascii_case(c)))
                    .filter(|s| user.map_or(true, |u| s.user.eq_ignore_ascii_case(u)))
                    .collect();
                if sessions.is_empty() && client.is_some() {
                    fail(&mut w, werr::CLIENT_NAME_NOT_FOUND);
                } else if sessions.is_empty() && user.is_some() {
                    fail(&mut w, werr::USER_NOT_FOUND);
                } else {
                    let rows: Vec<Vec<Val<'_>>> =
                        sessions.iter().map(|s| session_vals(s, level)).collect();
                    let (a, b, st, next) = page(&rows, req.resume, req.pref_max);
                    write_enum_struct(&mut w, level, Some(&rows[a..b]));
                    write_tail(&mut w, rows.len() as u32, req.resume.map(|_| next), st);
                }
            }
        }
        opnum::NETR_SESSION_DEL => {
            let _server = r.unique_wstring().map_err(bad)?;
            let client = r.unique_wstring().map_err(bad)?;
            let user = r.unique_wstring().map_err(bad)?;
            let client = non_empty(client.as_deref());
            let user = non_empty(user.as_deref());
            let st = if !backend.caller().is_admin {
                werr::ACCESS_DENIED
            } else if client.is_none() && user.is_none() {
                werr::INVALID_PARAMETER
            } else if backend.delete_sessions(client.map(strip_unc), user) == 0 {
                werr::CLIENT_NAME_NOT_FOUND
            } else {
                werr::SUCCESS
            };
            w.u32(st);
        }
        opnum::NETR_CONNECTION_ENUM => {
            let req = ConnectionEnumRequest::decode(&mut r).map_err(bad)?;
            let level = req.level;
            let fail = |w: &mut NdrWriter, st: u32| {
                write_enum_struct(w, level, Some(&[]));
                write_tail(w, 0, req.resume, st);
            };
            let qualifier = non_empty(req.qualifier.as_deref());
            if shape(InfoClass::Connection, level).is_none() {
                write_enum_struct(&mut w, level, None);
                write_tail(&mut w, 0, req.resume, werr::INVALID_LEVEL);
            } else if !backend.caller().is_admin {
                fail(&mut w, werr::ACCESS_DENIED);
            } else if let Some(q) = qualifier {
                let is_share = !q.starts_with("\\\\");
                if is_share
                    && !backend
                        .shares()
                        .iter()
                        .any(|s| s.name.eq_ignore_ascii_case(q))
                {
                    fail(&mut w, werr::NET_NAME_NOT_FOUND);
                } else {
                    let conns = backend.connections(q);
                    let rows: Vec<Vec<Val<'_>>> =
                        conns.iter().map(|c| connection_vals(c, level)).collect();
                    let (a, b, st, next) = page(&rows, req.resume, req.pref_max);
                    write_enum_struct(&mut w, level, Some(&rows[a..b]));
                    write_tail(&mut w, rows.len() as u32, req.resume.map(|_| next), st);
                }
            } else {
                fail(&mut w, werr::INVALID_PARAMETER);
            }
        }
        opnum::NETR_SERVER_SET_INFO => {
            let _server = r.unique_wstring().map_err(bad)?;
            let level = r.u32().map_err(bad)?;
            r.align_ptr().map_err(bad)?;
            let tag = r.u32().map_err(bad)?;
            if tag != level {
                return Err(status::NCA_S_FAULT_INVALID_TAG);
            }
            r.align_ptr().map_err(bad)?;
            let info_ptr = r.ptr().map_err(bad)?;
            let info = if info_ptr {
                let kinds = match level {
                    102 | 1010 => shape(InfoClass::Server, level),
                    _ => None,
                };
                match kinds {
                    Some(k) => {
                        let mut row = read_inline(&mut r, k).map_err(bad)?;
                        read_deferred(&mut r, &mut row).map_err(bad)?;
                        Some(row)
                    }
                    // A level we do not take: its body cannot be skipped
                    // without knowing its shape, and is not needed.
                    None => None,
                }
            } else {
                None
            };
            // impacket (0.10) leaves the [in] ParmErr out altogether; its
            // absence reads as a null pointer.
            let parm_err_in = if (matches!(level, 102 | 1010) || !info_ptr) && r.remaining() > 0 {
                read_resume(&mut r).map_err(bad)?
            } else {
                None
            };
            let (st, parm) = if !backend.caller().is_admin {
                (werr::ACCESS_DENIED, None)
            } else if !matches!(level, 102 | 1010) {
                (werr::INVALID_LEVEL, None)
            } else if let Some(row) = info {
                let change = if level == 1010 {
                    ServerInfoChange {
                        autodisconnect_minutes: row.u32(0).map(|v| v as i32),
                        comment: None,
                    }
                } else {
                    ServerInfoChange {
                        autodisconnect_minutes: row.u32(SV102_DISC).map(|v| v as i32),
                        comment: row.str(5).map(str::to_string),
                    }
                };
                backend.set_server_info(&change)
            } else {
                (werr::INVALID_PARAMETER, None)
            };
            // ParmErr is [in, out, unique]: answered when the caller gave one.
            w.align_ptr();
            w.ptr(parm_err_in.is_some());
            if parm_err_in.is_some() {
                w.u32(parm.unwrap_or(0));
            }
            w.u32(st);
        }
        opnum::NETR_FILE_ENUM => {
            let _server = r.unique_wstring().map_err(bad)?;
            let base_path = r.unique_wstring().map_err(bad)?;
            let user = r.unique_wstring().map_err(bad)?;
            let level = read_request_enum_struct(&mut r, InfoClass::File).map_err(bad)?;
            let pref_max = r.u32().map_err(bad)?;
            let resume = read_resume(&mut r).map_err(bad)?;
            if shape(InfoClass::File, level).is_none() {
                write_enum_struct(&mut w, level, None);
                write_tail(&mut w, 0, resume, werr::INVALID_LEVEL);
            } else if !backend.caller().is_admin {
                write_enum_struct(&mut w, level, Some(&[]));
                write_tail(&mut w, 0, resume, werr::ACCESS_DENIED);
            } else {
                let base = non_empty(base_path.as_deref());
                let user = non_empty(user.as_deref());
                let files: Vec<SrvFileInfo> = backend
                    .files()
                    .into_iter()
                    .filter(|f| {
                        base.map_or(true, |b| {
                            f.path.len() >= b.len()
                                && f.path.is_char_boundary(b.len())
                                && f.path[..b.len()].eq_ignore_ascii_case(b)
                        })
                    })
                    .filter(|f| user.map_or(true, |u| f.user.eq_ignore_ascii_case(u)))
                    .collect();
                let rows: Vec<Vec<Val<'_>>> = files.iter().map(|f| file_vals(f, level)).collect();
                let (a, b, st, next) = page(&rows, resume, pref_max);
                write_enum_struct(&mut w, level, Some(&rows[a..b]));
                write_tail(&mut w, rows.len() as u32, resume.map(|_| next), st);
            }
        }
        opnum::NETR_FILE_GET_INFO => {
            let _server = r.unique_wstring().map_err(bad)?;
            let id = r.u32().map_err(bad)?;
            let level = r.u32().map_err(bad)?;
            if shape(InfoClass::File, level).is_none() {
                write_info_union(&mut w, level, None);
                w.u32(werr::INVALID_LEVEL);
            } else if !backend.caller().is_admin {
                write_info_union(&mut w, level, None);
                w.u32(werr::ACCESS_DENIED);
            } else {
                let files = backend.files();
                match files.iter().find(|f| f.id == id) {
                    Some(f) => {
                        write_info_union(&mut w, level, Some(&file_vals(f, level)));
                        w.u32(werr::SUCCESS);
                    }
                    None => {
                        write_info_union(&mut w, level, None);
                        w.u32(werr::FILE_ID_NOT_FOUND);
                    }
                }
            }
        }
        opnum::NETR_FILE_CLOSE => {
            let _server = r.unique_wstring().map_err(bad)?;
            let id = r.u32().map_err(bad)?;
            let st = if backend.caller().is_admin {
                backend.close_file(id)
            } else {
                werr::ACCESS_DENIED
            };
            w.u32(st);
        }
        opnum::NETR_SHARE_CHECK => {
            let _server = r.unique_wstring().map_err(bad)?;
            let device = r.wstring().map_err(bad)?;
            // The device is shared when a share's path names it (as
            // Windows and Samba answer); IPC$'s path is empty.
            match backend
                .shares()
                .iter()
                .find(|s| s.path.eq_ignore_ascii_case(&device))
            {
                Some(s) => {
                    w.u32(s.share_type);
                    w.u32(werr::SUCCESS);
                }
                None => {
                    w.u32(0);
                    w.u32(werr::DEVICE_NOT_SHARED);
                }
            }
        }
        opnum::NETR_REMOTE_TOD => {
            let _server = r.unique_wstring().map_err(bad)?;
            match backend.time_of_day() {
                Some(t) => {
                    w.align_ptr();
                    w.ptr(true);
                    for v in tod_fields(&t) {
                        w.u32(v);
                    }
                    w.u32(werr::SUCCESS);
                }
                None => {
                    w.align_ptr();
                    w.ptr(false);
                    w.u32(werr::NOT_SUPPORTED);
                }
            }
        }
        opnum::NETR_SHARE_ENUM_STICKY => {
            // Sticky shares are those kept across restarts in the registry;
            // this server keeps none (IPC$ is not one).
            let req = ShareEnumRequest::decode(&mut r).map_err(bad)?;
            // MS-SRVS 3.1.4.21: levels 0, 1, 2 and 502 (not 501).
            if !matches!(req.level, 0 | 1 | 2 | 502) {
                write_enum_struct(&mut w, req.level, None);
                write_tail(&mut w, 0, req.resume, werr::INVALID_LEVEL);
            } else if (req.level == 2 || req.level == 502) && !backend.caller().is_admin {
                write_enum_struct(&mut w, req.level, Some(&[]));
                write_tail(&mut w, 0, req.resume, werr::ACCESS_DENIED);
            } else {
                write_enum_struct(&mut w, req.level, Some(&[]));
                write_tail(&mut w, 0, req.resume.map(|_| 0), werr::SUCCESS);
            }
        }
        other => return unsupported::answer(other, stub, syntax),
    }
    Ok(w.into_bytes())
}

/// TIME_OF_DAY_INFO's twelve DWORDs (MS-SRVS 2.2.4.105), in UTC
/// (`tod_timezone` 0).
fn tod_fields(t: &TimeOfDay) -> [u32; 12] {
    let days = t.unix_secs / 86_400;
    let secs = t.unix_secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // 1970-01-01 was a Thursday (weekday 4, Sunday = 0).
    let weekday = (days + 4) % 7;
    [
        u32::try_from(t.unix_secs).unwrap_or(u32::MAX),
        t.uptime_ms,
        (secs / 3600) as u32,
        (secs / 60 % 60) as u32,
        (secs % 60) as u32,
        t.hundredths,
        0,
        310,
        day as u32,
        month as u32,
        year as u32,
        weekday as u32,
    ]
}

/// `\\name` -> `name`. MS-SRVS says ClientName MUST begin with `\\`; like Samba we
/// also accept a bare name or address (what `rpcclient netsessdel 10.0.0.5` sends).
fn strip_unc(c: &str) -> &str {
    c.strip_prefix("\\\\").unwrap_or(c)
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// Decoded NetrShareEnum request (MS-SRVS 3.1.4.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareEnumRequest {
    /// ServerName.
    pub server: Option<String>,
    /// InfoStruct level.
    pub level: u32,
    /// PreferedMaximumLength.
    pub pref_max: u32,
    /// ResumeHandle (None when the pointer is null).
    pub resume: Option<u32>,
}

impl ShareEnumRequest {
    /// Decodes the request stub.
    pub fn decode(r: &mut NdrReader<'_>) -> Result<ShareEnumRequest, NdrError> {
        let server = r.unique_wstring()?;
        let level = read_request_enum_struct(r, InfoClass::Share)?;
        let pref_max = r.u32()?;
        let resume = read_resume(r)?;
        Ok(ShareEnumRequest {
            server,
            level,
            pref_max,
            resume,
        })
    }
}

/// Decoded NetrSessionEnum request (MS-SRVS 3.1.4.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEnumRequest {
    /// ServerName.
    pub server: Option<String>,
    /// ClientName filter (`\\name`).
    pub client: Option<String>,
    /// UserName filter.
    pub user: Option<String>,
    /// InfoStruct level.
    pub level: u32,
    /// PreferedMaximumLength.
    pub pref_max: u32,
    /// ResumeHandle.
    pub resume: Option<u32>,
}

impl SessionEnumRequest {
    /// Decodes the request stub.
    pub fn decode(r: &mut NdrReader<'_>) -> Result<SessionEnumRequest, NdrError> {
        let server = r.unique_wstring()?;
        let client = r.unique_wstring()?;
        let user = r.unique_wstring()?;
        let level = read_request_enum_struct(r, InfoClass::Session)?;
        let pref_max = r.u32()?;
        let resume = read_resume(r)?;
        Ok(SessionEnumRequest {
            server,
            client,
            user,
            level,
            pref_max,
            resume,
        })
    }
}

/// Decoded NetrConnectionEnum request (MS-SRVS 3.1.4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionEnumRequest {
    /// ServerName.
    pub server: Option<String>,
    /// Qualifier: share name or `\\computer`.
    pub qualifier: Option<String>,
    /// InfoStruct level.
    pub level: u32,
    /// PreferedMaximumLength.
    pub pref_max: u32,
    /// ResumeHandle.
    pub resume: Option<u32>,
}

impl ConnectionEnumRequest {
    /// Decodes the request stub.
    pub fn decode(r: &mut NdrReader<'_>) -> Result<ConnectionEnumRequest, NdrError> {
        let server = r.unique_wstring()?;
        let qualifier = r.unique_wstring()?;
        let level = read_request_enum_struct(r, InfoClass::Connection)?;
        let pref_max = r.u32()?;
        let resume = read_resume(r)?;
        Ok(ConnectionEnumRequest {
            server,
            qualifier,
            level,
            pref_max,
            resume,
        })
    }
}

/// Reads an [in] enum struct: the level; an unknown level is accepted when its
/// container carries no buffer (every container arm has the same `{count, ptr}` shape).
fn read_request_enum_struct(r: &mut NdrReader<'_>, class: InfoClass) -> Result<u32, NdrError> {
    Ok(read_enum_struct(r, class)?.level)
}

fn enum_request(
    syntax: Syntax,
    strings: &[Option<&str>],
    level: u32,
    pref_max: u32,
    resume: Option<u32>,
) -> Vec<u8> {
    let mut w = NdrWriter::new(syntax);
    for s in strings {
        w.unique_wstring(*s);
    }
    write_enum_struct(&mut w, level, Some(&[]));
    w.u32(pref_max);
    w.align_ptr();
    w.ptr(resume.is_some());
    if let Some(h) = resume {
        w.u32(h);
    }
    w.into_bytes()
}

/// Client: NetrShareEnum request stub.
pub fn share_enum_request(
    syntax: Syntax,
    server: Option<&str>,
    level: u32,
    pref_max: u32,
    resume: Option<u32>,
) -> Vec<u8> {
    enum_request(syntax, &[server], level, pref_max, resume)
}

/// Client: NetrSessionEnum request stub.
pub fn session_enum_request(
    syntax: Syntax,
    server: Option<&str>,
    client: Option<&str>,
    user: Option<&str>,
    level: u32,
    pref_max: u32,
    resume: Option<u32>,
) -> Vec<u8> {
    enum_request(syntax, &[server, client, user], level, pref_max, resume)
}

/// Client: NetrConnectionEnum request stub.
pub fn connection_enum_request(
    syntax: Syntax,
    server: Option<&str>,
    qualifier: Option<&str>,
    level: u32,
    pref_max: u32,
    resume: Option<u32>,
) -> Vec<u8> {
    enum_request(syntax, &[server, qualifier], level, pref_max, resume)
}

/// Client: NetrSessionDel request stub.
pub fn session_del_request(
    syntax: Syntax,
    server: Option<&str>,
    client: Option<&str>,
    user: Option<&str>,
) -> Vec<u8> {
    let mut w = NdrWriter::new(syntax);
    w.unique_wstring(server);
    w.unique_wstring(client);
    w.unique_wstring(user);
    w.into_bytes()
}

/// Client: NetrServerGetInfo request stub.
pub fn server_get_info_request(syntax: Syntax, server: Option<&str>, level: u32) -> Vec<u8> {
    let mut w = NdrWriter::new(syntax);
    w.unique_wstring(server);
    w.u32(level);
    w.into_bytes()
}

/// Client: NetrServerSetInfo request stub for level 1010 (`disc` only) or
/// 102 (the fields of `info`, with `disc` as `sv102_disc`), with a ParmErr.
pub fn server_set_info_request(
    syntax: Syntax,
    server: Option<&str>,
    level: u32,
    disc: i32,
    info: &ServerInfo,
) -> Vec<u8> {
    let mut w = NdrWriter::new(syntax);
    w.unique_wstring(server);
    w.u32(level);
    let mut i = info.clone();
    i.autodisconnect_minutes = disc;
    let vals = if level == 1010 {
        vec![Val::U32(disc as u32)]
    } else {
        server_vals(&i, 102)
    };
    write_info_union(&mut w, level, Some(&vals));
    w.align_ptr();
    w.ptr(true);
    w.u32(0);
    w.into_bytes()
}

/// Client: decodes a NetrServerSetInfo response: (ParmErr, status).
pub fn decode_set_info_response(
    stub: &[u8],
    syntax: Syntax,
) -> Result<(Option<u32>, u32), NdrError> {
    let mut r = NdrReader::new(stub, syntax);
    let parm = read_resume(&mut r)?;
    let st = r.u32()?;
    if r.remaining() != 0 {
        return Err(NdrError::Trailing);
    }
    Ok((parm, st))
}

/// Client: NetrFileEnum request stub.
pub fn file_enum_request(
    syntax: Syntax,
    server: Option<&str>,
    base_path: Option<&str>,
    user: Option<&str>,
    level: u32,
    resume: Option<u32>,
) -> Vec<u8> {
    enum_request(
        syntax,
        &[server, base_path, user],
        level,
        MAX_PREFERRED_LENGTH,
        resume,
    )
}

/// Client: NetrFileClose request stub.
pub fn file_close_request(syntax: Syntax, server: Option<&str>, id: u32) -> Vec<u8> {
    let mut w = NdrWriter::new(syntax);
    w.unique_wstring(server);
    w.u32(id);
    w.into_bytes()
}

/// Client: NetrShareGetInfo request stub.
pub fn share_get_info_request(
    syntax: Syntax,
    server: Option<&str>,
    netname: &str,
    level: u32,
) -> Vec<u8> {
    let mut w = NdrWriter::new(syntax);
    w.unique_wstring(server);
    w.wstring(netname);
    w.u32(level);
    w.into_bytes()
}

/// A decoded enumeration response (NetrShareEnum, NetrSessionEnum, NetrConnectionEnum).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumResponse {
    /// The level and the entries returned.
    pub info: EnumStruct,
    /// TotalEntries.
    pub total_entries: u32,
    /// ResumeHandle.
    pub resume: Option<u32>,
    /// The method's return value ([`werr`]).
    pub status: u32,
}

impl EnumResponse {
    /// The entries (empty when the container was null).
    pub fn rows(&self) -> &[Row] {
        self.info.rows.as_deref().unwrap_or(&[])
    }
}

/// Client: decodes an enumeration response stub of `class`.
pub fn decode_enum_response(
    stub: &[u8],
    syntax: Syntax,
    class: InfoClass,
) -> Result<EnumResponse, NdrError> {
    let mut r = NdrReader::new(stub, syntax);
    let info = read_enum_struct(&mut r, class)?;
    let total_entries = r.u32()?;
    let resume = read_resume(&mut r)?;
    let status = r.u32()?;
    if r.remaining() != 0 {
        return Err(NdrError::Trailing);
    }
    Ok(EnumResponse {
        info,
        total_entries,
        resume,
        status,
    })
}

/// Client: decodes a NetrServerGetInfo / NetrShareGetInfo response: (level, info, status).
pub fn decode_info_response(
    stub: &[u8],
    syntax: Syntax,
    class: InfoClass,
) -> Result<(u32, Option<Row>, u32), NdrError> {
    let mut r = NdrReader::new(stub, syntax);
    r.align_ptr()?;
    let level = r.u32()?;
    r.align_ptr()?;
    let row = if r.ptr()? {
        let kinds = shape(class, level).ok_or(NdrError::BadTag(level))?;
        let mut row = read_inline(&mut r, kinds)?;
        read_deferred(&mut r, &mut row)?;
        Some(row)
    } else {
        None
    };
    let status = r.u32()?;
    if r.remaining() != 0 {
        return Err(NdrError::Trailing);
    }
    Ok((level, row, status))
}

/// Client: decodes a response that is only a NET_API_STATUS (NetrSessionDel).
pub fn decode_status_response(stub: &[u8], syntax: Syntax) -> Result<u32, NdrError> {
    let mut r = NdrReader::new(stub, syntax);
    let st = r.u32()?;
    if r.remaining() != 0 {
        return Err(NdrError::Trailing);
    }
    Ok(st)
}

/// Field index of `sv102_disc` in a level-102 server info [`Row`].
pub const SV102_DISC: usize = 7;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An in-memory backend for tests.
    #[derive(Debug, Default)]
    pub(crate) struct TestBackend {
        pub caller: CallerInfo,
        pub shares: Vec<ShareInfo>,
        pub sessions: Vec<SrvSessionInfo>,
        pub deleted: Vec<(Option<String>, Option<String>)>,
    }

    impl TestBackend {
        pub(crate) fn new(admin: bool) -> TestBackend {
            let mut data = ShareInfo::ipc();
            data.name = "data".into();
            data.share_type = stype::DISKTREE;
            data.comment = "Data files".into();
            data.path = "C:\\data".into();
            TestBackend {
                caller: CallerInfo {
                    user: if admin { "admin".into() } else { String::new() },
                    is_admin: admin,
                    authenticated: admin,
                },
                shares: vec![ShareInfo::ipc(), data],
                sessions: vec![
                    SrvSessionInfo {
                        client: "10.0.0.5".into(),
                        user: "alice".into(),
                        num_opens: 1,
                        time_secs: 100,
                        idle_secs: 7,
                        is_guest: false,
                        client_type: "SMB 3.1.1".into(),
                        transport: "TCP".into(),
                    },
                    SrvSessionInfo {
                        client: "WS01".into(),
                        user: "bob".into(),
                        num_opens: 0,
                        time_secs: 50,
                        idle_secs: 50,
                        is_guest: true,
                        client_type: "SMB 2.1".into(),
                        transport: "TCP".into(),
                    },
                ],
                deleted: Vec::new(),
            }
        }
    }

    impl SrvsvcBackend for TestBackend {
        fn caller(&self) -> CallerInfo {
            self.caller.clone()
        }
        fn server_info(&self) -> ServerInfo {
            let mut s = ServerInfo::windows_like("SMBCORE");
            s.autodisconnect_minutes = 42;
            s
        }
        fn shares(&self) -> Vec<ShareInfo> {
            self.shares.clone()
        }
        fn sessions(&self) -> Vec<SrvSessionInfo> {
            self.sessions.clone()
        }
        fn delete_sessions(&mut self, client: Option<&str>, user: Option<&str>) -> u32 {
            let before = self.sessions.len();
            self.sessions.retain(|s| {
                !(client.map_or(true, |c| s.client.eq_ignore_ascii_case(c))
                    && user.map_or(true, |u| s.user.eq_ignore_ascii_case(u)))
            });
            self.deleted
                .push((client.map(str::to_string), user.map(str::to_string)));
            (before - self.sessions.len()) as u32
        }
        fn connections(&self, qualifier: &str) -> Vec<SrvConnectionInfo> {
            vec![SrvConnectionInfo {
                id: 1,
                conn_type: stype::IPC,
                num_opens: 1,
                num_users: 1,
                time_secs: 9,
                user: "alice".into(),
                netname: qualifier.to_string(),
            }]
        }
    }

    fn call(b: &mut TestBackend, opnum: u16, stub: &[u8], syntax: Syntax) -> Vec<u8> {
        dispatch(opnum, stub, syntax, b).expect("no fault")
    }

    #[test]
    fn share_enum_levels_both_syntaxes() {
        for syntax in [Syntax::Ndr20, Syntax::Ndr64] {
            for level in [0u32, 1, 2, 501, 502] {
                let mut b = TestBackend::new(true);
                let req = share_enum_request(syntax, Some("\\\\srv"), level, u32::MAX, Some(0));
                let resp = call(&mut b, opnum::NETR_SHARE_ENUM, &req, syntax);
                let d = decode_enum_response(&resp, syntax, InfoClass::Share).unwrap();
                assert_eq!(d.status, werr::SUCCESS, "{syntax:?} {level}");
                assert_eq!(d.info.level, level);
                let names: Vec<_> = d.rows().iter().map(|r| r.str(0).unwrap()).collect();
                assert_eq!(names, ["IPC$", "data"]);
                assert_eq!(d.total_entries, 2);
                if level != 0 {
                    assert_eq!(d.rows()[0].u32(1), Some(0x8000_0003));
                    assert_eq!(d.rows()[1].str(2), Some("Data files"));
                }
                if level == 2 {
                    assert_eq!(d.rows()[1].str(6), Some("C:\\data"));
                }
            }
        }
    }

    #[test]
    fn share_enum_paging_with_resume_handle() {
        let mut b = TestBackend::new(true);
        for i in 0..20 {
            let mut s = ShareInfo::ipc();
            s.name = format!("share{i:02}");
            b.shares.push(s);
        }
        let mut seen = Vec::new();
        let mut resume = 0;
        for _ in 0..30 {
            let req = share_enum_request(Syntax::Ndr20, None, 1, 200, Some(resume));
            let resp = call(&mut b, opnum::NETR_SHARE_ENUM, &req, Syntax::Ndr20);
            let d = decode_enum_response(&resp, Syntax::Ndr20, InfoClass::Share).unwrap();
            assert!(!d.rows().is_empty());
            seen.extend(d.rows().iter().map(|r| r.str(0).unwrap().to_string()));
            if d.status == werr::SUCCESS {
                break;
            }
            assert_eq!(d.status, werr::MORE_DATA);
            resume = d.resume.unwrap();
        }
        assert_eq!(seen.len(), 22);
        assert_eq!(seen[2], "share00");
        assert_eq!(seen[21], "share19");
    }

    #[test]
    fn share_enum_level2_needs_admin_level1_does_not() {
        let mut b = TestBackend::new(false);
        let req = share_enum_request(Syntax::Ndr20, None, 2, u32::MAX, None);
        let resp = call(&mut b, opnum::NETR_SHARE_ENUM, &req, Syntax::Ndr20);
        let d = decode_enum_response(&resp, Syntax::Ndr20, InfoClass::Share).unwrap();
        assert_eq!(d.status, werr::ACCESS_DENIED);
        assert!(d.rows().is_empty());
        let req = share_enum_request(Syntax::Ndr20, None, 1, u32::MAX, None);
        let resp = call(&mut b, opnum::NETR_SHARE_ENUM, &req, Syntax::Ndr20);
        let d = decode_enum_response(&resp, Syntax::Ndr20, InfoClass::Share).unwrap();
        assert_eq!(d.status, werr::SUCCESS);
        assert_eq!(d.rows().len(), 2);
        assert_eq!(d.resume, None);
    }

    #[test]
    fn unknown_level_is_invalid_level() {
        let mut b = TestBackend::new(true);
        let req = share_enum_request(Syntax::Ndr20, None, 7, u32::MAX, None);
        let resp = call(&mut b, opnum::NETR_SHARE_ENUM, &req, Syntax::Ndr20);
        let d = decode_enum_response(&resp, Syntax::Ndr20, InfoClass::Share).unwrap();
        assert_eq!(d.status, werr::INVALID_LEVEL);
        let req = server_get_info_request(Syntax::Ndr20, None, 103);
        let resp = call(&mut b, opnum::NETR_SERVER_GET_INFO, &req, Syntax::Ndr20);
        let (_, row, st) = decode_info_response(&resp, Syntax::Ndr20, InfoClass::Server).unwrap();
        assert_eq!((row, st), (None, werr::INVALID_LEVEL));
    }

    #[test]
    fn server_get_info_102_carries_disc() {
        for syntax in [Syntax::Ndr20, Syntax::Ndr64] {
            let mut b = TestBackend::new(false);
            let req = server_get_info_request(syntax, Some("\\\\x"), 102);
            let resp = call(&mut b, opnum::NETR_SERVER_GET_INFO, &req, syntax);
            let (level, row, st) = decode_info_response(&resp, syntax, InfoClass::Server).unwrap();
            let row = row.unwrap();
            assert_eq!((level, st), (102, 0));
            assert_eq!(row.str(1), Some("SMBCORE"));
            assert_eq!(row.u32(SV102_DISC), Some(42));
            assert_eq!(row.u32(0), Some(500));
            assert_eq!(row.str(12), Some("c:\\"));
        }
    }

    #[test]
    fn share_get_info() {
        let mut b = TestBackend::new(false);
        let req = share_get_info_request(Syntax::Ndr20, None, "ipc$", 1);
        let resp = call(&mut b, opnum::NETR_SHARE_GET_INFO, &req, Syntax::Ndr20);
        let (_, row, st) = decode_info_response(&resp, Syntax::Ndr20, InfoClass::Share).unwrap();
        assert_eq!(st, 0);
        assert_eq!(row.unwrap().str(2), Some("Remote IPC"));
        let req = share_get_info_request(Syntax::Ndr20, None, "nope", 1);
        let resp = call(&mut b, opnum::NETR_SHARE_GET_INFO, &req, Syntax::Ndr20);
        let (_, row, st) = decode_info_response(&resp, Syntax::Ndr20, InfoClass::Share).unwrap();
        assert_eq!((row, st), (None, werr::NET_NAME_NOT_FOUND));
    }

    #[test]
    fn session_enum_levels_and_filters() {
        for syntax in [Syntax::Ndr20, Syntax::Ndr64] {
            for level in [0u32, 1, 2, 10, 502] {
                let mut b = TestBackend::new(true);
                let req = session_enum_request(syntax, None, None, None, level, u32::MAX, Some(0));
                let resp = call(&mut b, opnum::NETR_SESSION_ENUM, &req, syntax);
                let d = decode_enum_response(&resp, syntax, InfoClass::Session).unwrap();
                assert_eq!((d.status, d.rows().len()), (0, 2), "{syntax:?} {level}");
                assert_eq!(d.rows()[1].str(0), Some("WS01"));
                if level == 10 {
                    assert_eq!(d.rows()[0].u32(3), Some(7));
                }
                if level == 502 {
                    assert_eq!(d.rows()[0].str(7), Some("TCP"));
                    assert_eq!(d.rows()[1].u32(5), Some(SESS_GUEST));
                }
            }
        }
        let mut b = TestBackend::new(true);
        let req = session_enum_request(Syntax::Ndr20, None, Some("\\\\ws01"), None, 10, !0, None);
        let resp = call(&mut b, opnum::NETR_SESSION_ENUM, &req, Syntax::Ndr20);
        let d = decode_enum_response(&resp, Syntax::Ndr20, InfoClass::Session).unwrap();
        assert_eq!(d.rows().len(), 1);
        assert_eq!(d.rows()[0].str(1), Some("bob"));
        let req = session_enum_request(Syntax::Ndr20, None, Some("\\\\zz"), None, 10, !0, None);
        let resp = call(&mut b, opnum::NETR_SESSION_ENUM, &req, Syntax::Ndr20);
        let d = decode_enum_response(&resp, Syntax::Ndr20, InfoClass::Session).unwrap();
        assert_eq!(d.status, werr::CLIENT_NAME_NOT_FOUND);
        let req = session_enum_request(Syntax::Ndr20, None, None, Some("carol"), 10, !0, None);
        let resp = call(&mut b, opnum::NETR_SESSION_ENUM, &req, Syntax::Ndr20);
        let d = decode_enum_response(&resp, Syntax::Ndr20, InfoClass::Session).unwrap();
        assert_eq!(d.status, werr::USER_NOT_FOUND);
        // a bare name (no leading \\) is accepted, as Samba does
        let req = session_enum_request(Syntax::Ndr20, None, Some("10.0.0.5"), None, 1, !0, None);
        let resp = call(&mut b, opnum::NETR_SESSION_ENUM, &req, Syntax::Ndr20);
        let d = decode_enum_response(&resp, Syntax::Ndr20, InfoClass::Session).unwrap();
        assert_eq!((d.status, d.rows().len()), (0, 1));
        assert_eq!(d.rows()[0].str(1), Some("alice"));
    }

    #[test]
    fn session_calls_need_admin() {
        let mut b = TestBackend::new(false);
        let req = session_enum_request(Syntax::Ndr20, None, None, None, 10, !0, None);
        let resp = call(&mut b, opnum::NETR_SESSION_ENUM, &req, Syntax::Ndr20);
        let d = decode_enum_response(&resp, Syntax::Ndr20, InfoClass::Session).unwrap();
        assert_eq!(d.status, werr::ACCESS_DENIED);
        assert!(d.rows().is_empty());
        let req = session_del_request(Syntax::Ndr20, None, Some("\\\\WS01"), None);
        let resp = call(&mut b, opnum::NETR_SESSION_DEL, &req, Syntax::Ndr20);
        assert_eq!(
            decode_status_response(&resp, Syntax::Ndr20),
            Ok(werr::ACCESS_DENIED)
        );
        assert!(b.deleted.is_empty());
        let req = connection_enum_request(Syntax::Ndr20, None, Some("IPC$"), 1, !0, None);
        let resp = call(&mut b, opnum::NETR_CONNECTION_ENUM, &req, Syntax::Ndr20);
        let d = decode_enum_response(&resp, Syntax::Ndr20, InfoClass::Connection).unwrap();
        assert_eq!(d.status, werr::ACCESS_DENIED);
    }

    #[test]
    fn session_del_by_client_and_user() {
        let mut b = TestBackend::new(true);
        let req = session_del_request(Syntax::Ndr20, None, Some("\\\\ws01"), None);
        let resp = call(&mut b, opnum::NETR_SESSION_DEL, &req, Syntax::Ndr20);
        assert_eq!(decode_status_response(&resp, Syntax::Ndr20), Ok(0));
        assert_eq!(b.deleted, [(Some("ws01".to_string()), None)]);
        assert_eq!(b.sessions.len(), 1);
        let resp = call(&mut b, opnum::NETR_SESSION_DEL, &req, Syntax::Ndr20);
        assert_eq!(
            decode_status_response(&resp, Syntax::Ndr20),
            Ok(werr::CLIENT_NAME_NOT_FOUND)
        );
        let req = session_del_request(Syntax::Ndr64, None, Some("10.0.0.5"), Some("ALICE"));
        let resp = call(&mut b, opnum::NETR_SESSION_DEL, &req, Syntax::Ndr64);
        assert_eq!(decode_status_response(&resp, Syntax::Ndr64), Ok(0));
        assert!(b.sessions.is_empty());
        let req = session_del_request(Syntax::Ndr20, None, None, None);
        let resp = call(&mut b, opnum::NETR_SESSION_DEL, &req, Syntax::Ndr20);
        assert_eq!(
            decode_status_response(&resp, Syntax::Ndr20),
            Ok(werr::INVALID_PARAMETER)
        );
    }

    #[test]
    fn connection_enum() {
        let mut b = TestBackend::new(true);
        for syntax in [Syntax::Ndr20, Syntax::Ndr64] {
            for level in [0, 1] {
                let req = connection_enum_request(syntax, None, Some("IPC$"), level, !0, None);
                let resp = call(&mut b, opnum::NETR_CONNECTION_ENUM, &req, syntax);
                let d = decode_enum_response(&resp, syntax, InfoClass::Connection).unwrap();
                assert_eq!((d.status, d.rows().len()), (0, 1));
                assert_eq!(d.rows()[0].u32(0), Some(1));
                if level == 1 {
                    assert_eq!(d.rows()[0].str(6), Some("IPC$"));
                }
            }
        }
        let req = connection_enum_request(Syntax::Ndr20, None, Some("nope"), 1, !0, None);
        let resp = call(&mut b, opnum::NETR_CONNECTION_ENUM, &req, Syntax::Ndr20);
        let d = decode_enum_response(&resp, Syntax::Ndr20, InfoClass::Connection).unwrap();
        assert_eq!(d.status, werr::NET_NAME_NOT_FOUND);
        let req = connection_enum_request(Syntax::Ndr20, None, None, 1, !0, None);
        let resp = call(&mut b, opnum::NETR_CONNECTION_ENUM, &req, Syntax::Ndr20);
        let d = decode_enum_response(&resp, Syntax::Ndr20, InfoClass::Connection).unwrap();
        assert_eq!(d.status, werr::INVALID_PARAMETER);
    }

    #[derive(Debug, Default)]
    struct SetBackend {
        inner: Option<TestBackend>,
        changes: Vec<ServerInfoChange>,
        files: Vec<SrvFileInfo>,
        closed: Vec<u32>,
    }

    impl SrvsvcBackend for SetBackend {
        fn caller(&self) -> CallerInfo {
            self.inner.as_ref().unwrap().caller.clone()
        }
        fn server_info(&self) -> ServerInfo {
            self.inner.as_ref().unwrap().server_info()
        }
        fn shares(&self) -> Vec<ShareInfo> {
            Vec::new()
        }
        fn sessions(&self) -> Vec<SrvSessionInfo> {
            Vec::new()
        }
        fn delete_sessions(&mut self, _: Option<&str>, _: Option<&str>) -> u32 {
            0
        }
        fn connections(&self, _: &str) -> Vec<SrvConnectionInfo> {
            Vec::new()
        }
        fn files(&self) -> Vec<SrvFileInfo> {
            self.files.clone()
        }
        fn close_file(&mut self, id: u32) -> u32 {
            if self.files.iter().any(|f| f.id == id) {
                self.closed.push(id);
                werr::SUCCESS
            } else {
                werr::FILE_ID_NOT_FOUND
            }
        }
        fn set_server_info(&mut self, change: &ServerInfoChange) -> (u32, Option<u32>) {
            if change
                .autodisconnect_minutes
                .is_some_and(|m| !(-1..=65535).contains(&m))
            {
                return (werr::INVALID_PARAMETER, Some(parmnum::DISC));
            }
            self.changes.push(change.clone());
            (werr::SUCCESS, None)
        }
    }

    fn set_backend(admin: bool) -> SetBackend {
        SetBackend {
            inner: Some(TestBackend::new(admin)),
            files: vec![SrvFileInfo {
                id: 0x0100_0001,
                permissions: PERM_FILE_READ_WRITE,
                num_locks: 0,
                path: "\\PIPE\\srvsvc".into(),
                user: "admin".into(),
            }],
            ..SetBackend::default()
        }
    }

    #[test]
    fn server_set_info_1010_and_102() {
        for syntax in [Syntax::Ndr20, Syntax::Ndr64] {
            let mut b = set_backend(true);
            let info = ServerInfo::windows_like("SMBCORE");
            let req = server_set_info_request(syntax, None, 1010, 7, &info);
            let resp = dispatch(opnum::NETR_SERVER_SET_INFO, &req, syntax, &mut b).unwrap();
            assert_eq!(decode_set_info_response(&resp, syntax), Ok((Some(0), 0)));
            let req = server_set_info_request(syntax, None, 102, -1, &info);
            let resp = dispatch(opnum::NETR_SERVER_SET_INFO, &req, syntax, &mut b).unwrap();
            assert_eq!(decode_set_info_response(&resp, syntax), Ok((Some(0), 0)));
            assert_eq!(b.changes[0].autodisconnect_minutes, Some(7));
            assert_eq!(b.changes[0].comment, None);
            assert_eq!(b.changes[1].autodisconnect_minutes, Some(-1));
            assert_eq!(b.changes[1].comment.as_deref(), Some(""));
            let req = server_set_info_request(syntax, None, 1010, 70_000, &info);
            let resp = dispatch(opnum::NETR_SERVER_SET_INFO, &req, syntax, &mut b).unwrap();
            assert_eq!(
                decode_set_info_response(&resp, syntax),
                Ok((Some(parmnum::DISC), werr::INVALID_PARAMETER))
            );
            let mut b = set_backend(false);
            let req = server_set_info_request(syntax, None, 1010, 7, &info);
            let resp = dispatch(opnum::NETR_SERVER_SET_INFO, &req, syntax, &mut b).unwrap();
            assert_eq!(
                decode_set_info_response(&resp, syntax),
                Ok((Some(0), werr::ACCESS_DENIED))
            );
            assert!(b.changes.is_empty());
        }
    }

    #[test]
    fn file_enum_and_close() {
        for syntax in [Syntax::Ndr20, Syntax::Ndr64] {
            let mut b = set_backend(true);
            for level in [2, 3] {
                let req = file_enum_request(syntax, None, None, None, level, Some(0));
                let resp = dispatch(opnum::NETR_FILE_ENUM, &req, syntax, &mut b).unwrap();
                let d = decode_enum_response(&resp, syntax, InfoClass::File).unwrap();
                assert_eq!((d.status, d.rows().len()), (0, 1));
                assert_eq!(d.rows()[0].u32(0), Some(0x0100_0001));
                if level == 3 {
                    assert_eq!(d.rows()[0].str(3), Some("\\PIPE\\srvsvc"));
                    assert_eq!(d.rows()[0].str(4), Some("admin"));
                }
            }
            let req = file_enum_request(syntax, None, None, Some("bob"), 3, None);
            let resp = dispatch(opnum::NETR_FILE_ENUM, &req, syntax, &mut b).unwrap();
            let d = decode_enum_response(&resp, syntax, InfoClass::File).unwrap();
            assert!(d.rows().is_empty());
            let req = file_close_request(syntax, None, 0x0100_0001);
            let resp = dispatch(opnum::NETR_FILE_CLOSE, &req, syntax, &mut b).unwrap();
            assert_eq!(decode_status_response(&resp, syntax), Ok(0));
            let req = file_close_request(syntax, None, 5);
            let resp = dispatch(opnum::NETR_FILE_CLOSE, &req, syntax, &mut b).unwrap();
            assert_eq!(
                decode_status_response(&resp, syntax),
                Ok(werr::FILE_ID_NOT_FOUND)
            );
            let mut b = set_backend(false);
            let req = file_enum_request(syntax, None, None, None, 3, None);
            let resp = dispatch(opnum::NETR_FILE_ENUM, &req, syntax, &mut b).unwrap();
            let d = decode_enum_response(&resp, syntax, InfoClass::File).unwrap();
            assert_eq!(d.status, werr::ACCESS_DENIED);
            let req = file_close_request(syntax, None, 0x0100_0001);
            let resp = dispatch(opnum::NETR_FILE_CLOSE, &req, syntax, &mut b).unwrap();
            assert_eq!(
                decode_status_response(&resp, syntax),
                Ok(werr::ACCESS_DENIED)
            );
            assert!(b.closed.is_empty());
        }
    }

    #[test]
    fn time_of_day_calendar() {
        // 2026-11-30 07:02:08 UTC, a Monday.
        let f = tod_fields(&TimeOfDay {
            unix_secs: 1_796_022_128,
            uptime_ms: 5,
            hundredths: 3,
        });
        assert_eq!(&f[2..6], &[7, 2, 8, 3]);
        assert_eq!(&f[8..12], &[30, 11, 2026, 1]);
    }

    #[test]
    fn bad_stub_and_unknown_opnum_fault() {
        let mut b = TestBackend::new(true);
        assert_eq!(
            dispatch(99, &[], Syntax::Ndr20, &mut b),
            Err(status::NCA_S_OP_RNG_ERROR)
        );
        let req = share_enum_request(Syntax::Ndr20, None, 1, !0, None);
        assert_eq!(
            dispatch(
                opnum::NETR_SHARE_ENUM,
                &req[..req.len() - 3],
                Syntax::Ndr20,
                &mut b
            ),
            Err(status::NCA_S_FAULT_NDR)
        );
    }
}
