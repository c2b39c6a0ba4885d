//! Parsing allocates nothing: a counting global allocator (dhat) watches while every layer
//! (frames, protocol id, compound, header, each request/response view, contexts) runs.

use smb_wire::compound::Compound;
use smb_wire::frame::{write_frame_header, Frames};
use smb_wire::header::{flags, Command, HeaderRepr};
use smb_wire::msg::negotiate::{NegotiateContextRepr, NegotiateRequestRepr};
use smb_wire::msg::*;
use smb_wire::protocol_id::classify;
// dhat's global allocator counts every allocation; this file has no libtest
// harness (`harness = false` in Cargo.toml), so no other thread runs while
// the parser is watched.
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn blocks() -> u64 {
    dhat::HeapStats::get().total_blocks
}

fn msg<B: EmitBody>(out: &mut Vec<u8>, command: Command, response: bool, next: bool, b: &B) {
    let start = out.len();
    let mut h = HeaderRepr::request(command, 1, 2, 3);
    if response {
        h.flags |= flags::SERVER_TO_REDIR;
    }
    emit_message(&h, b, out);
    if next {
        while (out.len() - start) % 8 != 0 {
            out.push(0);
        }
        let n = (out.len() - start) as u32;
        out[start + 20..start + 24].copy_from_slice(&n.to_le_bytes());
    }
}

fn walk(stream: &[u8]) -> (usize, u64) {
    let mut n = 0;
    let mut acc = 0u64;
    for f in Frames::new(stream, 1 << 20) {
        let f = f.unwrap();
        let _ = classify(f);
        for m in Compound::new(f) {
            let m = m.unwrap();
            n += 1;
            let response = m[16] & 1 != 0;
            if response {
                let (h, r) = parse_response(m).unwrap();
                acc = acc.wrapping_add(h.message_id());
                match r {
                    Response::Create(c) => {
                        acc += c.contexts().map(|c| c.data.len() as u64).sum::<u64>();
                    }
                    Response::QueryDirectory(q) => {
                        let class = dir_info::DirectoryInfoClass::IdBothDirectory;
                        let list = dir_info::DirectoryEntries::parse(class, q.output()).unwrap();
                        acc += list.map(|e| e.name.len() as u64).sum::<u64>();
                    }
                    Response::ChangeNotify(c) => {
                        let list = change_notify::FileNotifyEntries::parse(c.output()).unwrap();
                        acc += list.map(|e| e.name.len() as u64).sum::<u64>();
                    }
                    _ => {}
                }
            } else {
                let (h, r) = parse_request(m).unwrap();
                acc = acc.wrapping_add(h.session_id());
                match r {
                    Request::Negotiate(v) => {
                        for c in v.contexts() {
                            let _ = c.decode().unwrap();
                            acc += 1;
                        }
                        acc += v.dialects().iter().map(u64::from).sum::<u64>();
                    }
                    Request::TreeConnect(t) => acc += u64::from(t.is_ipc()),
                    Request::Create(c) => acc += c.contexts().count() as u64,
                    Request::Lock(l) => acc += l.locks().iter().map(|e| e.length).sum::<u64>(),
                    _ => {}
                }
            }
        }
    }
    (n, acc)
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut p = Vec::new();
    let ctx = [
        NegotiateContextRepr::PreauthIntegrity {
            hash_algorithms: U16s::Native(&[1]),
            salt: &[1; 32],
        },
        NegotiateContextRepr::Encryption {
            ciphers: U16s::Native(&[2, 1]),
        },
    ];
    msg(
        &mut p,
        Command::Negotiate,
        false,
        true,
        &NegotiateRequestRepr {
            security_mode: 1,
            capabilities: 0x7F,
            client_guid: [1; 16],
            client_start_time: 0,
            dialects: U16s::Native(&[0x0202, 0x0210, 0x0300, 0x0302, 0x0311]),
            contexts: &ctx,
        },
    );
    let path: Vec<u8> = "\\\\h\\IPC$"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let cc = [create::CreateContext {
        name: b"MxAc",
        data: &[],
    }];
    msg(
        &mut p,
        Command::SessionSetup,
        false,
        true,
        &session_setup::SessionSetupRequestRepr {
            security_buffer: b"NTLMSSP\0",
            ..Default::default()
        },
    );
    msg(
        &mut p,
        Command::TreeConnect,
        false,
        true,
        &tree_connect::TreeConnectRequestRepr {
            flags: 0,
            path: &path,
        },
    );
    msg(
        &mut p,
        Command::Create,
        false,
        true,
        &create::CreateRequestRepr {
            name: &path,
            contexts: &cc,
            ..Default::default()
        },
    );
    msg(
        &mut p,
        Command::Ioctl,
        false,
        true,
        &ioctl::IoctlRequestRepr {
            input: b"pdu",
            ..Default::default()
        },
    );
    msg(
        &mut p,
        Command::Read,
        false,
        true,
        &read::ReadRequestRepr::default(),
    );
    msg(
        &mut p,
        Command::Write,
        false,
        true,
        &write::WriteRequestRepr {
            data: b"x",
            ..Default::default()
        },
    );
    msg(
        &mut p,
        Command::QueryInfo,
        false,
        true,
        &query_info::QueryInfoRequestRepr::default(),
    );
    msg(
        &mut p,
        Command::Close,
        false,
        true,
        &close::CloseRequestRepr::default(),
    );
    msg(
        &mut p,
        Command::Echo,
        false,
        true,
        &echo::EchoRequestRepr::default(),
    );
    msg(
        &mut p,
        Command::Cancel,
        false,
        true,
        &cancel::CancelRequestRepr::default(),
    );
    msg(
        &mut p,
        Command::TreeDisconnect,
        false,
        true,
        &tree_disconnect::TreeDisconnectRequestRepr::default(),
    );
    let locks = [lock::LockElement {
        offset: 0,
        length: 1,
        flags: lock::flags::EXCLUSIVE_LOCK,
    }; 2];
    msg(
        &mut p,
        Command::Flush,
        false,
        true,
        &flush::FlushRequestRepr::default(),
    );
    msg(
        &mut p,
        Command::Lock,
        false,
        true,
        &lock::LockRequestRepr {
            locks: lock::LockElements::Native(&locks),
            ..Default::default()
        },
    );
    msg(
        &mut p,
        Command::QueryDirectory,
        false,
        true,
        &query_directory::QueryDirectoryRequestRepr {
            file_information_class: dir_info::class::ID_BOTH_DIRECTORY,
            file_name: b"*\0",
            ..Default::default()
        },
    );
    msg(
        &mut p,
        Command::SetInfo,
        false,
        true,
        &set_info::SetInfoRequestRepr {
            buffer: &[1],
            ..Default::default()
        },
    );
    msg(
        &mut p,
        Command::ChangeNotify,
        false,
        true,
        &change_notify::ChangeNotifyRequestRepr::default(),
    );
    msg(
        &mut p,
        Command::OplockBreak,
        false,
        true,
        &oplock_break::LeaseBreakRepr::default(),
    );
    msg(
        &mut p,
        Command::Logoff,
        false,
        false,
        &logoff::LogoffRequestRepr::default(),
    );
    let mut q = Vec::new();
    msg(
        &mut q,
        Command::Create,
        true,
        true,
        &create::CreateResponseRepr {
            contexts: &cc,
            ..Default::default()
        },
    );
    msg(
        &mut q,
        Command::Read,
        true,
        true,
        &read::ReadResponseRepr {
            data: b"data",
            ..Default::default()
        },
    );
    msg(
        &mut q,
        Command::SessionSetup,
        true,
        true,
        &session_setup::SessionSetupResponseRepr::default(),
    );
    msg(
        &mut q,
        Command::TreeConnect,
        true,
        true,
        &tree_connect::TreeConnectResponseRepr::default(),
    );
    let mut entries = Vec::new();
    let mut w = dir_info::DirectoryInfoWriter::new(
        &mut entries,
        dir_info::DirectoryInfoClass::IdBothDirectory,
        4096,
    );
    for name in [&b".\0"[..], b".\0.\0", b"f\0i\0l\0e\0"] {
        assert!(w.push(&dir_info::DirectoryEntry {
            name,
            ..Default::default()
        }));
    }
    w.finish();
    msg(
        &mut q,
        Command::QueryDirectory,
        true,
        true,
        &query_directory::QueryDirectoryResponseRepr { output: &entries },
    );
    let mut notes = Vec::new();
    let mut w = change_notify::FileNotifyWriter::new(&mut notes, 4096);
    for name in [&b"a\0"[..], b"b\0c\0"] {
        assert!(w.push(&change_notify::FileNotify { action: 1, name }));
    }
    w.finish();
    msg(
        &mut q,
        Command::ChangeNotify,
        true,
        true,
        &change_notify::ChangeNotifyResponseRepr { output: &notes },
    );
    msg(
        &mut q,
        Command::OplockBreak,
        true,
        true,
        &oplock_break::LeaseBreakNotificationRepr::default(),
    );
    msg(
        &mut q,
        Command::SetInfo,
        true,
        true,
        &set_info::SetInfoResponseRepr,
    );
    msg(
        &mut q,
        Command::Echo,
        true,
        false,
        &echo::EchoResponseRepr::default(),
    );
    let mut stream = Vec::new();
    write_frame_header(&mut stream, p.len());
    stream.extend_from_slice(&p);
    write_frame_header(&mut stream, q.len());
    stream.extend_from_slice(&q);

    let before = blocks();
    let (n, acc) = walk(&stream);
    let during = blocks() - before;
    assert_eq!(n, 28);
    assert_ne!(acc, 0);
    assert_eq!(during, 0, "parsing allocated");

    // The counter itself works: an allocation is seen.
    let before = blocks();
    let v = std::hint::black_box(vec![1u8; 10]);
    assert_eq!(blocks() - before, 1);
    drop(v);
    println!("test parsing_allocates_nothing ... ok");
    println!("\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}
