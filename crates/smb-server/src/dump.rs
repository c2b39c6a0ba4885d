//! `smbcore dump`: decode recorded SMB byte streams, one line per message.
//!
//! Input is a direct-TCP byte stream as a client or server sent it (RFC 1002 session
//! messages, MS-SMB2 2.1), such as the `*.c2s.bin` / `*.s2c.bin` captures in
//! `tests/vectors/`. Each frame payload is classified by its ProtocolId (MS-SMB2 2.2.1,
//! 2.2.41 TRANSFORM, 2.2.42 COMPRESSION_TRANSFORM; MS-SMB 2.2.3.1 for the SMB1 multi-protocol
//! NEGOTIATE), an SMB2 payload is split into its compound chain (MS-SMB2 3.3.5.2.7), and each
//! message is parsed with `smb-wire`'s request/response views.
//!
//! One line per message:
//!
//! ```text
//! @<offset> <COMMAND> <req|rsp> <STATUS|-> mid=<MessageId> sid=0x<SessionId> tid=0x<TreeId>|aid=0x<AsyncId> cr=<charge>/<requested|+granted> [S] <fields>
//! ```
//!
//! `offset` is the byte offset of the message (or of the frame, for framing errors) in the
//! stream; `S` marks a signed message. A malformed message is reported with its offset and the
//! reason, and decoding goes on with the next frame; broken framing (a type byte that is not
//! zero, a frame cut short at the end of the stream) is reported and ends the stream.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

use smb_wire::compound::Compound;
use smb_wire::frame::{split_frame, FrameError, FRAME_HEADER_LEN, MAX_FRAME_LEN};
use smb_wire::msg::ioctl;
use smb_wire::msg::negotiate::NegotiateContext;
use smb_wire::msg::{parse_request, parse_response, FileId, Request, Response};
use smb_wire::protocol_id::{classify, ProtocolId};
use smb_wire::smb1::Smb1NegotiateRequest;
use smb_wire::transform::TransformHeader;
use smb_wire::{Header, NtStatus, WireError};

/// Totals of one or more dumped streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpSummary {
    /// Frames whose length field was read and whose bytes were all present.
    pub frames: usize,
    /// Messages decoded and printed (SMB2 messages, SMB1 NEGOTIATEs, TRANSFORM and COMPRESSED
    /// frames).
    pub messages: usize,
    /// Malformed frames or messages reported, framing errors included.
    pub errors: usize,
    /// Streams whose framing broke, so that decoding stopped before their end.
    pub stopped: usize,
}

impl DumpSummary {
    fn add(&mut self, o: DumpSummary) {
        self.frames += o.frames;
        self.messages += o.messages;
        self.errors += o.errors;
        self.stopped += o.stopped;
    }
}

/// Decodes every file in `paths` (each a whole NBSS byte stream), printing a `== path` line
/// before each, and returns the totals. An unreadable file is an `Err` naming it; malformed
/// contents are not errors here but counted in [`DumpSummary::errors`].
pub fn dump_files(paths: &[PathBuf], out: &mut dyn io::Write) -> io::Result<DumpSummary> {
    let mut total = DumpSummary::default();
    for path in paths {
        let data = std::fs::read(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        writeln!(out, "== {} ({} bytes)", path.display(), data.len())?;
        total.add(dump_stream(&data, out)?);
    }
    Ok(total)
}

/// Decodes one NBSS byte stream, writing one line per SMB message to `out`.
///
/// Only writing to `out` can fail; malformed input is reported in the output and counted.
pub fn dump_stream(data: &[u8], out: &mut dyn io::Write) -> io::Result<DumpSummary> {
    let mut sum = DumpSummary::default();
    let mut pos = 0usize;
    let mut line = String::new();
    while pos < data.len() {
        let rest = &data[pos..];
        match split_frame(rest, MAX_FRAME_LEN) {
            Ok(Some((payload, used))) => {
                sum.frames += 1;
                let base = pos + payload.start;
                dump_payload(&rest[payload], base, &mut sum, &mut line, out)?;
                pos += used;
            }
            Ok(None) => {
                let why = if rest.len() < FRAME_HEADER_LEN {
                    format!("{} bytes left, a frame header needs 4", rest.len())
                } else {
                    let want = u32::from_be_bytes([0, rest[1], rest[2], rest[3]]);
                    format!(
                        "frame announces {want} bytes, only {} present",
                        rest.len() - FRAME_HEADER_LEN
                    )
                };
                writeln!(out, "@{pos} MALFORMED truncated frame: {why}; stopping")?;
                sum.errors += 1;
                sum.stopped += 1;
                break;
            }
            Err(e) => {
                let why = match e {
                    FrameError::BadType(t) => {
                        format!("frame type 0x{t:02x} is not a session message (0x00)")
                    }
                    other => other.to_string(),
                };
                writeln!(out, "@{pos} MALFORMED broken framing: {why}; stopping")?;
                sum.errors += 1;
                sum.stopped += 1;
                break;
            }
        }
    }
    Ok(sum)
}

/// Decodes one frame payload that starts at stream offset `base`.
fn dump_payload(
    payload: &[u8],
    base: usize,
    sum: &mut DumpSummary,
    line: &mut String,
    out: &mut dyn io::Write,
) -> io::Result<()> {
    match classify(payload) {
        ProtocolId::Smb2 => {
            let mut chain = Compound::new(payload);
            loop {
                let at = base + chain.offset();
                match chain.next() {
                    None => break,
                    Some(Ok(msg)) => {
                        line.clear();
                        match smb2_line(msg, at, line) {
                            Ok(()) => sum.messages += 1,
                            Err(e) => {
                                sum.errors += 1;
                                line.clear();
                                let _ = write!(line, "@{at} MALFORMED {}: {e}", describe(msg));
                            }
                        }
                        writeln!(out, "{line}")?;
                    }
                    Some(Err(e)) => {
                        sum.errors += 1;
                        writeln!(out, "@{at} MALFORMED compound chain: {e}")?;
                    }
                }
            }
        }
        ProtocolId::Smb1 => match Smb1NegotiateRequest::parse(payload) {
            Ok(n) => {
                sum.messages += 1;
                let dialects: Vec<String> = n
                    .dialects()
                    .map(|d| String::from_utf8_lossy(d).into_owned())
                    .collect();
                writeln!(out, "@{base} SMB1 NEGOTIATE req dialects={dialects:?}")?;
            }
            Err(e) => {
                sum.errors += 1;
                writeln!(out, "@{base} MALFORMED SMB1 {}: {e}", smb1_command(payload))?;
            }
        },
        ProtocolId::Transform => match TransformHeader::parse(payload) {
            Ok(t) => {
                sum.messages += 1;
                writeln!(
                    out,
                    "@{base} TRANSFORM sid=0x{:x} size={} flags=0x{:x} nonce={}",
                    t.session_id(),
                    t.original_message_size(),
                    t.flags(),
                    hex(&t.nonce())
                )?;
            }
            Err(e) => {
                sum.errors += 1;
                writeln!(out, "@{base} MALFORMED TRANSFORM: {e}")?;
            }
        },
        ProtocolId::Compressed => match compression_header(payload) {
            Some((original, algorithm, flags)) => {
                sum.messages += 1;
                writeln!(
                    out,
                    "@{base} COMPRESSED original={original} alg=0x{algorithm:x} flags=0x{flags:x} ({} bytes)",
                    payload.len()
                )?;
            }
            None => {
                sum.errors += 1;
                writeln!(
                    out,
                    "@{base} MALFORMED COMPRESSED: {} bytes, the header needs 16",
                    payload.len()
                )?;
            }
        },
        ProtocolId::Unknown => {
            sum.errors += 1;
            let head: Vec<String> = payload.iter().take(4).map(|b| format!("{b:02x}")).collect();
            writeln!(
                out,
                "@{base} MALFORMED unknown ProtocolId [{}] in a {}-byte frame",
                head.join(" "),
                payload.len()
            )?;
        }
    }
    Ok(())
}

/// What a malformed SMB2 message looked like, as far as its header can be trusted.
fn describe(msg: &[u8]) -> String {
    match Header::new_checked(msg) {
        Ok(h) => format!(
            "{} {} mid={}",
            h.command().name(),
            if h.is_response() { "rsp" } else { "req" },
            h.message_id()
        ),
        Err(_) => "SMB2 header".to_string(),
    }
}

/// The fixed fields of an SMB2 COMPRESSION_TRANSFORM_HEADER (MS-SMB2 2.2.42):
/// OriginalCompressedSegmentSize, CompressionAlgorithm, Flags. `None` when shorter than the
/// 16-byte header. Decompression is not attempted.
fn compression_header(payload: &[u8]) -> Option<(u32, u16, u16)> {
    let h = payload.get(..16)?;
    Some((
        u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
        u16::from_le_bytes([h[8], h[9]]),
        u16::from_le_bytes([h[10], h[11]]),
    ))
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

/// The SMB1 command byte (MS-CIFS 2.2.3.1): 0x72 is NEGOTIATE.
fn smb1_command(payload: &[u8]) -> String {
    match payload.get(4) {
        Some(0x72) => "NEGOTIATE".to_string(),
        Some(c) => format!("command 0x{c:02x}"),
        None => "truncated header".to_string(),
    }
}

/// Formats one SMB2 message into `line`.
fn smb2_line(msg: &[u8], at: usize, line: &mut String) -> Result<(), WireError> {
    let h = Header::new_checked(msg)?;
    let response = h.is_response();
    let _ = write!(
        line,
        "@{at} {} {}",
        h.command().name(),
        if response { "rsp" } else { "req" }
    );
    if response {
        let _ = write!(line, " {}", status_name(h.status()));
    } else {
        line.push_str(" -");
    }
    let _ = write!(line, " mid={} sid=0x{:x}", h.message_id(), h.session_id());
    match (h.tree_id(), h.async_id()) {
        (Some(tid), _) => {
            let _ = write!(line, " tid=0x{tid:x}");
        }
        (None, Some(aid)) => {
            let _ = write!(line, " aid=0x{aid:x}");
        }
        (None, None) => {}
    }
    if response {
        let _ = write!(line, " cr={}/+{}", h.credit_charge(), h.credit());
    } else {
        let _ = write!(line, " cr={}/{}", h.credit_charge(), h.credit());
    }
    if h.is_signed() {
        line.push_str(" S");
    }
    if h.next_command() != 0 || h.is_related() {
        let _ = write!(
            line,
            " next={}{}",
            h.next_command(),
            if h.is_related() { " related" } else { "" }
        );
    }
    if response {
        let (_, r) = parse_response(msg)?;
        response_fields(&r, line);
    } else {
        let (_, r) = parse_request(msg)?;
        request_fields(&r, line);
    }
    Ok(())
}

fn status_name(s: NtStatus) -> String {
    match s.name() {
        Some(n) => n.to_string(),
        None => format!("0x{:08x}", s.0),
    }
}

fn dialect_name(d: u16) -> String {
    match d {
        0x0202 => "2.0.2".into(),
        0x0210 => "2.1".into(),
        0x0300 => "3.0".into(),
        0x0302 => "3.0.2".into(),
        0x0311 => "3.1.1".into(),
        0x02ff => "2.???".into(),
        other => format!("0x{other:04x}"),
    }
}

fn context_name(t: u16) -> String {
    match t {
        0x0001 => "PREAUTH".into(),
        0x0002 => "ENCRYPTION".into(),
        0x0003 => "COMPRESSION".into(),
        0x0005 => "NETNAME".into(),
        0x0006 => "TRANSPORT".into(),
        0x0007 => "RDMA".into(),
        0x0008 => "SIGNING".into(),
        other => format!("0x{other:04x}"),
    }
}

fn push_list<I: Iterator<Item = String>>(line: &mut String, key: &str, items: I) {
    let items: Vec<String> = items.collect();
    let _ = write!(line, " {key}=[{}]", items.join(","));
}

fn push_contexts<'a, I: Iterator<Item = NegotiateContext<'a>>>(line: &mut String, ctxs: I) {
    let names: Vec<String> = ctxs.map(|c| context_name(c.context_type)).collect();
    if !names.is_empty() {
        let _ = write!(line, " ctx=[{}]", names.join(","));
    }
}

/// The FSCTL name (MS-SMB2 2.2.31, MS-FSCC 2.3), or the code in hex.
fn ctl_code_name(code: u32) -> String {
    let name = match code {
        ioctl::FSCTL_PIPE_TRANSCEIVE => "FSCTL_PIPE_TRANSCEIVE",
        ioctl::FSCTL_VALIDATE_NEGOTIATE_INFO => "FSCTL_VALIDATE_NEGOTIATE_INFO",
        ioctl::FSCTL_PIPE_PEEK => "FSCTL_PIPE_PEEK",
        ioctl::FSCTL_PIPE_WAIT => "FSCTL_PIPE_WAIT",
        ioctl::FSCTL_DFS_GET_REFERRALS => "FSCTL_DFS_GET_REFERRALS",
        ioctl::FSCTL_DFS_GET_REFERRALS_EX => "FSCTL_DFS_GET_REFERRALS_EX",
        ioctl::FSCTL_QUERY_NETWORK_INTERFACE_INFO => "FSCTL_QUERY_NETWORK_INTERFACE_INFO",
        ioctl::FSCTL_SRV_REQUEST_RESUME_KEY => "FSCTL_SRV_REQUEST_RESUME_KEY",
        ioctl::FSCTL_SRV_COPYCHUNK => "FSCTL_SRV_COPYCHUNK",
        ioctl::FSCTL_SRV_COPYCHUNK_WRITE => "FSCTL_SRV_COPYCHUNK_WRITE",
        ioctl::FSCTL_SRV_ENUMERATE_SNAPSHOTS => "FSCTL_SRV_ENUMERATE_SNAPSHOTS",
        ioctl::FSCTL_SRV_READ_HASH => "FSCTL_SRV_READ_HASH",
        ioctl::FSCTL_LMR_REQUEST_RESILIENCY => "FSCTL_LMR_REQUEST_RESILIENCY",
        ioctl::FSCTL_SET_REPARSE_POINT => "FSCTL_SET_REPARSE_POINT",
        other => return format!("ctl=0x{other:08x}"),
    };
    name.to_string()
}

fn file_id(f: FileId) -> String {
    format!("{:x}:{:x}", f.persistent, f.volatile)
}

fn utf16(bytes: &[u8]) -> String {
    String::from_utf16_lossy(&smb_wire::utf16::units(bytes).collect::<Vec<u16>>())
}

/// What a security buffer holds: SPNEGO (GSS-API InitialContextToken 0x60, NegTokenInit 0xa0,
/// NegTokenResp 0xa1; MS-SPNG / RFC 4178) and the NTLMSSP message type inside (MS-NLMP 2.2.1).
fn security_kind(blob: &[u8]) -> String {
    let wrap = match blob.first() {
        None => return "empty".into(),
        Some(0x60) => "spnego-init",
        Some(0xa0) => "spnego-negTokenInit",
        Some(0xa1) => "spnego-negTokenResp",
        Some(_) if blob.starts_with(b"NTLMSSP\0") => "raw",
        Some(_) => "opaque",
    };
    let ntlm = blob
        .windows(8)
        .position(|w| w == b"NTLMSSP\0")
        .and_then(|at| blob.get(at + 8..at + 12))
        .map(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]));
    match ntlm {
        Some(1) => format!("{wrap}+NTLMSSP_NEGOTIATE"),
        Some(2) => format!("{wrap}+NTLMSSP_CHALLENGE"),
        Some(3) => format!("{wrap}+NTLMSSP_AUTH"),
        Some(t) => format!("{wrap}+NTLMSSP_type{t}"),
        None => wrap.to_string(),
    }
}

fn request_fields(r: &Request<'_>, line: &mut String) {
    match r {
        Request::Negotiate(n) => {
            push_list(line, "dialects", n.dialects().iter().map(dialect_name));
            let _ = write!(line, " secmode=0x{:x}", n.security_mode());
            push_contexts(line, n.contexts());
        }
        Request::SessionSetup(s) => {
            let b = s.security_buffer();
            let _ = write!(line, " secbuf={} {}", b.len(), security_kind(b));
            if s.previous_session_id() != 0 {
                let _ = write!(line, " prev=0x{:x}", s.previous_session_id());
            }
        }
        Request::TreeConnect(t) => {
            let _ = write!(line, " path={}", utf16(t.path()));
        }
        Request::Create(c) => {
            let _ = write!(line, " name={:?}", utf16(c.name()));
        }
        Request::Close(c) => {
            let _ = write!(line, " fid={}", file_id(c.file_id()));
        }
        Request::Read(rd) => {
            let _ = write!(
                line,
                " fid={} len={} off={}",
                file_id(rd.file_id()),
                rd.length(),
                rd.offset()
            );
        }
        Request::Write(w) => {
            let _ = write!(
                line,
                " fid={} len={} off={}",
                file_id(w.file_id()),
                w.length(),
                w.offset()
            );
        }
        Request::Ioctl(i) => {
            let _ = write!(
                line,
                " {} fid={} in={} out={} maxout={}",
                ctl_code_name(i.ctl_code()),
                file_id(i.file_id()),
                i.input().len(),
                i.output().len(),
                i.max_output_response()
            );
        }
        Request::Other(c) => {
            let _ = write!(line, " (not decoded: command 0x{:04x})", c.to_u16());
        }
        Request::Logoff(_)
        | Request::TreeDisconnect(_)
        | Request::QueryInfo(_)
        | Request::Cancel(_)
        | Request::Echo(_) => {}
    }
}

fn response_fields(r: &Response<'_>, line: &mut String) {
    match r {
        Response::Negotiate(n) => {
            let _ = write!(
                line,
                " dialect={} secmode=0x{:x} secbuf={}",
                dialect_name(n.dialect_revision()),
                n.security_mode(),
                n.security_buffer().len()
            );
            push_contexts(line, n.contexts());
        }
        Response::SessionSetup(s) => {
            let b = s.security_buffer();
            let _ = write!(
                line,
                " secbuf={} {} flags=0x{:x}",
                b.len(),
                security_kind(b),
                s.session_flags()
            );
        }
        Response::TreeConnect(t) => {
            let kind = match t.share_type() {
                0x01 => "DISK".to_string(),
                0x02 => "PIPE".to_string(),
                0x03 => "PRINT".to_string(),
                other => format!("0x{other:02x}"),
            };
            let _ = write!(line, " share={kind} access=0x{:x}", t.maximal_access());
        }
        Response::Create(c) => {
            let _ = write!(line, " fid={}", file_id(c.file_id()));
        }
        Response::Read(rd) => {
            let _ = write!(line, " len={}", rd.data().len());
        }
        Response::Write(w) => {
            let _ = write!(line, " count={}", w.count());
        }
        Response::Error(e) => {
            let _ = write!(line, " error data={}", e.error_data().len());
        }
        Response::Notification(n) => {
            let _ = write!(line, " type={}", n.notification_type());
        }
        Response::Other(c) => {
            let _ = write!(line, " (not decoded: command 0x{:04x})", c.to_u16());
        }
        Response::Ioctl(i) => {
            let _ = write!(
                line,
                " {} fid={} in={} out={}",
                ctl_code_name(i.ctl_code()),
                file_id(i.file_id()),
                i.input().len(),
                i.output().len()
            );
        }
        Response::Logoff(_)
        | Response::TreeDisconnect(_)
        | Response::Close(_)
        | Response::QueryInfo(_)
        | Response::Echo(_) => {}
    }
}
