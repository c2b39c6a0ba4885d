//! The srvsvc methods this server does not implement, answered as Windows
//! answers them: a well-formed response stub whose `[out]` parameters are
//! empty (a null pointer, an empty container, zeros) and whose return value
//! is `ERROR_NOT_SUPPORTED` (MS-SRVS 3.1.4: "the server MAY return
//! ERROR_NOT_SUPPORTED for methods it does not implement"; Windows does so
//! for the character-device, DFS and alias methods). A DCE/RPC fault would
//! end the caller's whole test or tool run; a WERROR lets it go on.
//!
//! Each opnum's `[out]` parameters follow the MS-SRVS IDL (section 6).
//! Opnums the IDL marks "not used on wire" (29, 42, 47, 49) and those past
//! the interface fault with `nca_s_op_rng_error`, as before.

use super::{werr, write_enum_struct, write_tail};
use crate::ndr::{NdrError, NdrReader, NdrWriter, Syntax};
use crate::pdu::status;

/// The largest `[out, size_is(n)]` buffer answered (the caller picks `n`).
const MAX_OUT_BUFFER: usize = 64 * 1024;

/// The shape of an unsupported method's `[out]` parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    /// Only the return value.
    Status,
    /// `[in, out] XXX_ENUM_STRUCT`, TotalEntries, ResumeHandle; the request
    /// starts with this many `[unique, string]` names.
    Enum(usize),
    /// `[out, switch_is(Level)]` info union; the request is ServerName,
    /// then `refs` `[string]` names (or a DWORD id when `id`), then Level.
    Info { refs: usize, id: bool },
    /// `[in, out, unique] DWORD* ParmErr` (answered null).
    ParmErr,
    /// One `[out] DWORD`.
    Dword,
    /// One `[out]` pointer (answered null).
    NullPtr,
    /// A 20-byte context handle.
    Handle,
    /// NetrServerDiskEnum's DISK_ENUM_CONTAINER.
    Disks,
    /// NetprPathCanonicalize: Outbuf then PathType.
    PathCanonicalize,
    /// NetprNameCanonicalize: Outbuf.
    NameCanonicalize,
}

fn shape(opnum: u16) -> Option<Out> {
    Some(match opnum {
        0 => Out::Enum(1),                     // NetrCharDevEnum
        1 => Out::Info { refs: 1, id: false }, // NetrCharDevGetInfo
        2 => Out::Status,                      // NetrCharDevControl
        3 => Out::Enum(2),                     // NetrCharDevQEnum
        4 => Out::Info { refs: 2, id: false }, // NetrCharDevQGetInfo
        5 => Out::ParmErr,                     // NetrCharDevQSetInfo
        6 | 7 => Out::Status,                  // NetrCharDevQPurge(Self)
        14 | 17 => Out::ParmErr,               // NetrShareAdd, NetrShareSetInfo
        18 | 19 => Out::Status,                // NetrShareDel(Sticky)
        23 => Out::Disks,                      // NetrServerDiskEnum (answered: no disks)
        24 => Out::NullPtr,                    // NetrServerStatisticsGet
        25 | 27 => Out::Status,                // NetrServerTransportAdd/Del
        26 => Out::Enum(1),                    // NetrServerTransportEnum
        30 => Out::Dword,                      // NetprPathType
        31 => Out::PathCanonicalize,           // NetprPathCanonicalize
        32 | 33 | 35 => Out::Status, // NetprPathCompare, NetprNameValidate, NetprNameCompare
        34 => Out::NameCanonicalize, // NetprNameCanonicalize
        37 | 38 => Out::Handle,      // NetrShareDelStart, NetrShareDelCommit
        39 => Out::NullPtr,          // NetrpGetFileSecurity
        40 | 41 => Out::Status,      // NetrpSetFileSecurity, NetrServerTransportAddEx
        43 => Out::Dword,            // NetrDfsGetVersion
        44..=46 | 48 | 50 | 51 => Out::Status, // NetrDfs* (not supported by non-DFS servers)
        52 => Out::NullPtr,          // NetrDfsManagerReportSiteInfo
        53 | 54 | 56 | 57 => Out::Status, // TransportDelEx, AliasAdd, AliasDel, ShareDelEx
        55 => Out::Enum(1),          // NetrServerAliasEnum
        _ => return None,
    })
}

/// The response stub for an opnum this server does not implement, or the
/// fault status for one it cannot answer.
pub fn answer(opnum: u16, stub: &[u8], syntax: Syntax) -> Result<Vec<u8>, u32> {
    let bad = |_: NdrError| status::NCA_S_FAULT_NDR;
    let Some(out) = shape(opnum) else {
        return Err(status::NCA_S_OP_RNG_ERROR);
    };
    let mut r = NdrReader::new(stub, syntax);
    let mut w = NdrWriter::new(syntax);
    match out {
        Out::Status => {}
        Out::Enum(names) => {
            for _ in 0..names {
                r.unique_wstring().map_err(bad)?;
            }
            r.align_ptr().map_err(bad)?;
            let level = r.u32().map_err(bad)?;
            r.align_ptr().map_err(bad)?;
            let _tag = r.u32().map_err(bad)?;
            r.align_ptr().map_err(bad)?;
            if r.ptr().map_err(bad)? {
                r.align_ptr().map_err(bad)?;
                let _entries = r.u32().map_err(bad)?;
                if r.ptr().map_err(bad)? {
                    // Entries in a request: their shape is not known here.
                    return Err(status::NCA_S_FAULT_NDR);
                }
            }
            let _pref_max = r.u32().map_err(bad)?;
            r.align_ptr().map_err(bad)?;
            let resume = if r.ptr().map_err(bad)? {
                Some(r.u32().map_err(bad)?)
            } else {
                None
            };
            write_enum_struct(&mut w, level, Some(&[]));
            write_tail(&mut w, 0, resume, werr::NOT_SUPPORTED);
            return Ok(w.into_bytes());
        }
        Out::Info { refs, id } => {
            r.unique_wstring().map_err(bad)?;
            if id {
                r.u32().map_err(bad)?;
            }
            for _ in 0..refs {
                r.wstring().map_err(bad)?;
            }
            let level = r.u32().map_err(bad)?;
            w.align_ptr();
            w.u32(level);
            w.align_ptr();
            w.ptr(false);
        }
        Out::ParmErr => {
            w.align_ptr();
            w.ptr(false);
        }
        Out::Dword => w.u32(0),
        Out::NullPtr => {
            w.align_ptr();
            w.ptr(false);
        }
        Out::Handle => {
            w.align(4);
            w.bytes(&[0; 20]);
        }
        Out::Disks => {
            r.unique_wstring().map_err(bad)?;
            let _level = r.u32().map_err(bad)?;
            r.align_ptr().map_err(bad)?;
            let _entries = r.u32().map_err(bad)?;
            if r.ptr().map_err(bad)? {
                return Err(status::NCA_S_FAULT_NDR);
            }
            let _pref_max = r.u32().map_err(bad)?;
            r.align_ptr().map_err(bad)?;
            let resume = if r.ptr().map_err(bad)? {
                Some(r.u32().map_err(bad)?)
            } else {
                None
            };
            // This server has no disks (it serves IPC$ and what an
            // embedder registers): an empty list is the true answer.
            w.align_ptr();
            w.u32(0);
            w.ptr(false);
            write_tail(&mut w, 0, resume, werr::SUCCESS);
            return Ok(w.into_bytes());
        }
        Out::PathCanonicalize | Out::NameCanonicalize => {
            r.unique_wstring().map_err(bad)?;
            r.wstring().map_err(bad)?;
            let len = r.u32().map_err(bad)? as usize;
            if len > MAX_OUT_BUFFER {
                return Err(status::NCA_S_FAULT_NDR);
            }
            w.count(len);
            w.bytes(&vec![0; len]);
            if out == Out::PathCanonicalize {
                w.align(4);
                w.u32(0);
            }
        }
    }
    w.align(4);
    w.u32(werr::NOT_SUPPORTED);
    Ok(w.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_only_and_faults() {
        let st = answer(2, &[], Syntax::Ndr20).unwrap();
        assert_eq!(st, werr::NOT_SUPPORTED.to_le_bytes());
        assert_eq!(
            answer(29, &[], Syntax::Ndr20),
            Err(status::NCA_S_OP_RNG_ERROR)
        );
        assert_eq!(
            answer(58, &[], Syntax::Ndr20),
            Err(status::NCA_S_OP_RNG_ERROR)
        );
    }

    #[test]
    fn enum_echoes_level_and_resume() {
        for syntax in [Syntax::Ndr20, Syntax::Ndr64] {
            let req = super::super::share_enum_request(syntax, Some("\\\\s"), 1, !0, Some(0));
            let resp = answer(0, &req, syntax).unwrap();
            let d =
                super::super::decode_enum_response(&resp, syntax, super::super::InfoClass::Share)
                    .unwrap();
            assert_eq!(d.info.level, 1);
            assert_eq!(d.resume, Some(0));
            assert_eq!(d.status, werr::NOT_SUPPORTED);
            assert!(d.rows().is_empty());
        }
    }

    #[test]
    fn canonicalize_buffer_is_bounded() {
        let mut w = NdrWriter::new(Syntax::Ndr20);
        w.unique_wstring(None);
        w.wstring("a");
        w.u32(1 << 20);
        assert_eq!(
            answer(34, &w.into_bytes(), Syntax::Ndr20),
            Err(status::NCA_S_FAULT_NDR)
        );
    }
}
