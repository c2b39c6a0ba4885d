//! Parsing allocates nothing: a counting global allocator watches this thread while every
//! layer (frames, protocol id, compound, header, each request/response view, contexts) runs.

use smb_wire::compound::Compound;
use smb_wire::frame::{write_frame_header, Frames};
use smb_wire::header::{flags, Command, HeaderRepr};
use smb_wire::msg::negotiate::{NegotiateContextRepr, NegotiateRequestRepr};
use smb_wire::msg::*;
use smb_wire::protocol_id::classify;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static WATCH: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if WATCH.with(|w| w.get()) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call forwards to the system allocator with the caller's arguments unchanged;
// the extra bookkeeping touches only an atomic and a const-initialised thread-local.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
                if let Response::Create(c) = r {
                    acc += c.contexts().map(|c| c.data.len() as u64).sum::<u64>();
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
                    _ => {}
                }
            }
        }
    }
    (n, acc)
}

#[test]
fn parsing_allocates_nothing() {
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

    ALLOCS.store(0, Ordering::Relaxed);
    WATCH.with(|w| w.set(true));
    let (n, acc) = walk(&stream);
    WATCH.with(|w| w.set(false));
    assert_eq!(n, 18);
    assert_ne!(acc, 0);
    assert_eq!(ALLOCS.load(Ordering::Relaxed), 0, "parsing allocated");

    // The counter itself works: an allocation while watching is seen.
    WATCH.with(|w| w.set(true));
    let v = std::hint::black_box(vec![1u8; 10]);
    WATCH.with(|w| w.set(false));
    drop(v);
    assert_eq!(ALLOCS.load(Ordering::Relaxed), 1);
}
