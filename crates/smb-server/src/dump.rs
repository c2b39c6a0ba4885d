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
        | Request::Echo(_)
        | Request::Flush(_)
        | Request::Lock(_)
        | Request::QueryDirectory(_)
        | Request::ChangeNotify(_)
        | Request::SetInfo(_)
        | Request::OplockBreak(_) => {}
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
        | Response::Echo(_)
        | Response::Flush(_)
        | Response::Lock(_)
        | Response::QueryDirectory(_)
        | Response::ChangeNotify(_)
        | Response::SetInfo(_)
        | Response::OplockBreak(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn vectors_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
    }

    fn vector(name: &str) -> Vec<u8> {
        std::fs::read(vectors_dir().join(name)).expect("test vector")
    }

    fn dump(data: &[u8]) -> (DumpSummary, Vec<String>) {
        let mut out = Vec::new();
        let sum = dump_stream(data, &mut out).expect("writing to a Vec");
        let text = String::from_utf8(out).expect("UTF-8 output");
        (sum, text.lines().map(str::to_string).collect())
    }

    /// The vectors' stream files, sorted.
    fn streams() -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(vectors_dir())
            .expect("tests/vectors")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".c2s.bin") || n.ends_with(".s2c.bin"))
            .collect();
        v.sort();
        v
    }

    /// Per frame, what Wireshark decoded (tests/vectors/tshark/*.tsv): "SMB1", "TRANSFORM" or
    /// "<command code> <response flag> <MessageId>".
    fn tshark_frames(stream: &str) -> Vec<String> {
        let (base, dir) = stream
            .strip_suffix(".bin")
            .and_then(|s| s.rsplit_once('.'))
            .expect("NAME.DIR.bin");
        let text = std::fs::read_to_string(vectors_dir().join(format!("tshark/{base}.tsv")))
            .expect("tshark table");
        let mut lines = text.lines();
        let head: Vec<&str> = lines.next().expect("header").split('\t').collect();
        let col = |name: &str| head.iter().position(|h| *h == name).expect("column");
        let (d, pid, cmd, rsp, mid) = (
            col("dir"),
            col("protocol_id"),
            col("cmd"),
            col("response"),
            col("msg_id"),
        );
        lines
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .filter(|c| c[d] == dir)
            .map(|c| match c[pid] {
                "" => "SMB1".to_string(),
                "0xfd534d42" => "TRANSFORM".to_string(),
                _ => format!("{} {} {}", c[cmd], c[rsp], c[mid]),
            })
            .collect()
    }

    /// The same summary read back from our output lines.
    fn our_frames(lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                match w[1] {
                    "SMB1" => "SMB1".to_string(),
                    "TRANSFORM" => "TRANSFORM".to_string(),
                    name => {
                        let code = (0u16..0x13)
                            .find(|c| smb_wire::Command::from_u16(*c).name() == name)
                            .expect("known command");
                        let mid = w.iter().find_map(|x| x.strip_prefix("mid=")).expect("mid");
                        format!("{code} {} {mid}", u8::from(w[2] == "rsp"))
                    }
                }
            })
            .collect()
    }

    #[test]
    fn every_real_vector_decodes_like_tshark() {
        let names = streams();
        assert_eq!(names.len(), 20, "{names:?}");
        for name in names {
            let (sum, lines) = dump(&vector(&name));
            let expected = tshark_frames(&name);
            assert_eq!(sum.errors, 0, "{name}: {lines:#?}");
            assert_eq!(sum.stopped, 0, "{name}");
            assert_eq!(sum.frames, expected.len(), "{name}");
            assert_eq!(sum.messages, lines.len(), "{name}");
            assert_eq!(our_frames(&lines), expected, "{name}");
        }
    }

    #[test]
    fn lines_carry_the_fields_that_matter() {
        let (_, c2s) = dump(&vector("smbclient-L-anon-0.c2s.bin"));
        let (_, s2c) = dump(&vector("smbclient-L-anon-0.s2c.bin"));
        // Values as tshark shows them (tests/vectors/tshark/smbclient-L-anon-0.tsv).
        assert_eq!(
            c2s[0],
            "@4 NEGOTIATE req - mid=0 sid=0x0 tid=0x0 cr=0/31 dialects=[2.0.2,2.1,3.0,3.0.2,3.1.1] \
             secmode=0x1 ctx=[PREAUTH,ENCRYPTION,SIGNING,NETNAME]"
        );
        assert!(
            s2c[0].contains("NEGOTIATE rsp STATUS_SUCCESS mid=0 "),
            "{}",
            s2c[0]
        );
        assert!(s2c[0]
            .ends_with("dialect=3.1.1 secmode=0x1 secbuf=74 ctx=[PREAUTH,ENCRYPTION,SIGNING]"));
        assert!(
            c2s[1].ends_with("secbuf=74 spnego-init+NTLMSSP_NEGOTIATE"),
            "{}",
            c2s[1]
        );
        assert!(s2c[1].contains(
            "SESSION_SETUP rsp STATUS_MORE_PROCESSING_REQUIRED mid=1 sid=0x31dcd91a tid=0x0 cr=1/+1 \
             secbuf=159 spnego-negTokenResp+NTLMSSP_CHALLENGE"
        ));
        assert!(
            s2c[2].contains("SESSION_SETUP rsp STATUS_LOGON_FAILURE mid=2 "),
            "{}",
            s2c[2]
        );
        assert!(c2s[5].ends_with(
            r"TREE_CONNECT req - mid=5 sid=0xf0368f48 tid=0x0 cr=1/1 path=\\127.0.0.1\IPC$"
        ));
        assert!(
            s2c[5].contains("tid=0xba95b9ec cr=1/+1 share=PIPE"),
            "{}",
            s2c[5]
        );
        assert!(c2s[6]
            .ends_with(r#"CREATE req - mid=6 sid=0xf0368f48 tid=0xba95b9ec cr=1/1 name="srvsvc""#));
        // tshark prints this FileId as the GUID 7292e7a6-0000-0000-b698-49fe00000000.
        assert!(s2c[6].ends_with("fid=7292e7a6:fe4998b6"), "{}", s2c[6]);
        assert!(c2s[7].contains("IOCTL req - mid=7 "), "{}", c2s[7]);
        assert!(
            c2s[7].ends_with("FSCTL_PIPE_TRANSCEIVE fid=7292e7a6:fe4998b6 in=72 out=0 maxout=4280")
        );
        assert!(s2c[7]
            .starts_with("@1164 IOCTL rsp STATUS_PENDING mid=7 sid=0xf0368f48 aid=0x7 cr=0/+1"));
        assert!(s2c[8]
            .ends_with("aid=0x7 cr=1/+0 FSCTL_PIPE_TRANSCEIVE fid=7292e7a6:fe4998b6 in=0 out=68"));
        assert!(c2s[9].ends_with(
            "CLOSE req - mid=9 sid=0xf0368f48 tid=0xba95b9ec cr=1/1 fid=7292e7a6:fe4998b6"
        ));

        let (_, imp) = dump(&vector("impacket-anon-0.c2s.bin"));
        assert_eq!(
            imp[0],
            r#"@4 SMB1 NEGOTIATE req dialects=["NT LM 0.12", "SMB 2.002", "SMB 2.???"]"#
        );
        assert!(
            imp[6].contains("WRITE req") && imp[6].ends_with("len=72 off=0"),
            "{}",
            imp[6]
        );
        assert!(
            imp[7].contains("READ req") && imp[7].ends_with("len=1048576 off=0"),
            "{}",
            imp[7]
        );
        let (_, enc) = dump(&vector("impacket-user-0.c2s.bin"));
        assert!(enc[4].starts_with("@685 TRANSFORM sid=0x2ad50d3d size=104 flags=0x1 nonce="));
        let (_, signed) = dump(&vector("smbclient-L-user-signed-0.c2s.bin"));
        assert!(signed[0].contains("secmode=0x3"), "{}", signed[0]);
        assert!(signed[4].contains(" S "), "signed CREATE: {}", signed[4]);
    }

    /// The anonymous `smbclient -L` request stream with one byte changed at `at`.
    fn corrupted(at: usize, value: u8) -> Vec<u8> {
        let mut data = vector("smbclient-L-anon-0.c2s.bin");
        data[at] = value;
        data
    }

    // Offsets in smbclient-L-anon-0.c2s.bin: TREE_CONNECT message at 1028 (frame at 1024),
    // CREATE message at 1136 (frame at 1132); 11 frames in all.

    #[test]
    fn bad_body_is_reported_and_decoding_goes_on() {
        // TREE_CONNECT StructureSize (first body byte) 9 -> 10.
        let (sum, lines) = dump(&corrupted(1028 + 64, 10));
        assert_eq!(
            (sum.frames, sum.messages, sum.errors, sum.stopped),
            (11, 10, 1, 0)
        );
        assert_eq!(
            lines[5],
            "@1028 MALFORMED TREE_CONNECT req mid=5: bad StructureSize 10 for TreeConnect"
        );
        assert!(lines[6].starts_with("@1136 CREATE req"), "{}", lines[6]);
        assert!(
            lines[10].starts_with("@1776 TREE_DISCONNECT req"),
            "{}",
            lines[10]
        );
    }

    #[test]
    fn bad_protocol_id_and_bad_next_command_are_per_frame() {
        let (sum, lines) = dump(&corrupted(1136, 0xAB));
        assert_eq!((sum.messages, sum.errors, sum.stopped), (10, 1, 0));
        assert!(lines[6].starts_with("@1136 MALFORMED unknown ProtocolId [ab 53 4d 42]"));
        assert!(lines[7].starts_with("@1272 IOCTL req"), "{}", lines[7]);

        // NextCommand of the CREATE (header bytes 20..24) = 3: misaligned.
        let (sum, lines) = dump(&corrupted(1136 + 20, 3));
        assert_eq!((sum.messages, sum.errors, sum.stopped), (10, 1, 0));
        assert_eq!(
            lines[6],
            "@1136 MALFORMED compound chain: bad NextCommand 3"
        );
        assert!(lines[7].starts_with("@1272 IOCTL req"), "{}", lines[7]);

        // A ProtocolId of 0xFE 'SMB' with only 10 bytes: too short for a header.
        let mut short = vec![0, 0, 0, 10, 0xFE, b'S', b'M', b'B'];
        short.extend_from_slice(&[0; 6]);
        short.extend_from_slice(&vector("smbclient-ipc-exit-0.c2s.bin"));
        let (sum, lines) = dump(&short);
        assert_eq!((sum.frames, sum.messages, sum.errors), (6, 5, 1));
        assert!(lines[0].starts_with("@4 MALFORMED compound chain: message of 10 bytes"));
        assert!(lines[1].starts_with("@18 NEGOTIATE req"), "{}", lines[1]);
    }

    #[test]
    fn broken_framing_stops() {
        // The CREATE frame's type byte becomes 0x85 (an NBSS keep-alive is not SMB2 direct TCP).
        let (sum, lines) = dump(&corrupted(1132, 0x85));
        assert_eq!(
            (sum.frames, sum.messages, sum.errors, sum.stopped),
            (6, 6, 1, 1)
        );
        assert_eq!(lines.len(), 7);
        assert_eq!(
            lines[6],
            "@1132 MALFORMED broken framing: frame type 0x85 is not a session message (0x00); stopping"
        );

        // A stream cut inside its last frame.
        let data = vector("smbclient-L-anon-0.c2s.bin");
        let (sum, lines) = dump(&data[..data.len() - 10]);
        assert_eq!(
            (sum.frames, sum.messages, sum.errors, sum.stopped),
            (10, 10, 1, 1)
        );
        assert_eq!(
            lines[10],
            "@1772 MALFORMED truncated frame: frame announces 68 bytes, only 58 present; stopping"
        );
        let (sum, lines) = dump(&data[..1026]);
        assert_eq!((sum.frames, sum.stopped), (5, 1));
        assert!(
            lines[5].contains("2 bytes left, a frame header needs 4"),
            "{}",
            lines[5]
        );
    }

    #[test]
    fn empty_stream_prints_nothing() {
        let (sum, lines) = dump(&[]);
        assert_eq!(sum, DumpSummary::default());
        assert!(lines.is_empty());
    }

    #[test]
    fn dump_files_adds_up_and_names_missing_files() {
        let a = vectors_dir().join("smbtorture-two-logoff-0.c2s.bin");
        let b = vectors_dir().join("smbtorture-two-logoff-0.s2c.bin");
        let mut out = Vec::new();
        let sum = dump_files(&[a.clone(), b.clone()], &mut out).unwrap();
        assert_eq!((sum.frames, sum.messages, sum.errors), (12, 12, 0));
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(&format!("== {} (1156 bytes)\n", a.display())));
        assert!(text.contains(&format!("== {} (856 bytes)\n", b.display())));

        let missing = vectors_dir().join("no-such-vector.bin");
        let err = dump_files(&[a, missing.clone()], &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("no-such-vector.bin"), "{err}");
    }
}
