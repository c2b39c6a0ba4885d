//! Property tests: encode -> parse round trips for the header and every message type, and
//! the frame/compound layers around them.

use proptest::collection::vec;
use proptest::prelude::*;
use smb_wire::compound::Compound;
use smb_wire::frame::{split_frame, FrameMark};
use smb_wire::header::{flags, Command, Header, HeaderId, HeaderRepr};
use smb_wire::msg::negotiate::{NegotiateContextRepr, NegotiateRequestRepr, NegotiateResponseRepr};
use smb_wire::msg::*;
use smb_wire::NtStatus;

fn hdr(command: Command, response: bool) -> HeaderRepr {
    let mut h = HeaderRepr::request(command, 5, 6, 7);
    if response {
        h.flags |= flags::SERVER_TO_REDIR;
    }
    h
}

/// Emits into a dirty, reused buffer at a non-zero start and returns the message bytes.
fn emit<B: EmitBody + ?Sized>(command: Command, response: bool, b: &B, prefix: usize) -> Vec<u8> {
    let mut out = vec![0xA5; prefix];
    let r = emit_message(&hdr(command, response), b, &mut out);
    out[r].to_vec()
}

fn fid() -> impl Strategy<Value = FileId> {
    (any::<u64>(), any::<u64>()).prop_map(|(persistent, volatile)| FileId {
        persistent,
        volatile,
    })
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn utf16(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u16>(), 0..max).prop_map(|v| v.iter().flat_map(|u| u.to_le_bytes()).collect())
}

proptest! {
    #[test]
    fn header(cc in any::<u16>(), st in any::<u32>(), cmd in any::<u16>(), cr in any::<u16>(),
              fl in any::<u32>(), nc in any::<u32>(), mid in any::<u64>(), asy in any::<bool>(),
              a in any::<u64>(), sid in any::<u64>(), sig in any::<[u8; 16]>()) {
        let id = if asy { HeaderId::Async { async_id: a } } else {
            HeaderId::Sync { process_id: a as u32, tree_id: (a >> 32) as u32 }
        };
        let fl = if asy { fl | flags::ASYNC_COMMAND } else { fl & !flags::ASYNC_COMMAND };
        let r = HeaderRepr { credit_charge: cc, status: NtStatus(st), command: Command::from_u16(cmd),
            credit: cr, flags: fl, next_command: nc, message_id: mid, id, session_id: sid, signature: sig };
        let mut out = Vec::new();
        r.emit(&mut out);
        let h = Header::new_checked(&out[..]).unwrap();
        prop_assert_eq!(HeaderRepr::parse(&h), r);
    }

    #[test]
    fn frames_and_compound(bodies in vec(bytes(40), 1..5), max_extra in 0usize..3) {
        // A compound of ECHO-like messages with padded bodies, framed.
        let mut out = Vec::new();
        let mark = FrameMark::begin(&mut out);
        let mut starts = Vec::new();
        for (i, b) in bodies.iter().enumerate() {
            let start = out.len();
            starts.push(start);
            let mut h = hdr(Command::Echo, false);
            h.next_command = 0;
            h.emit(&mut out);
            out.extend_from_slice(b);
            if i + 1 < bodies.len() {
                while (out.len() - start) % 8 != 0 { out.push(0); }
                let next = (out.len() - start) as u32;
                out[start + 20..start + 24].copy_from_slice(&next.to_le_bytes());
            }
        }
        let len = mark.finish(&mut out).unwrap();
        let (payload, used) = split_frame(&out, len + max_extra).unwrap().unwrap();
        prop_assert_eq!(used, out.len());
        let msgs: Vec<_> = Compound::new(&out[payload]).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(msgs.len(), bodies.len());
        for (m, b) in msgs.iter().zip(&bodies) {
            prop_assert_eq!(&m[64..64 + b.len()], &b[..]);
        }
    }

    #[test]
    fn negotiate_request(sm in any::<u16>(), caps in any::<u32>(), guid in any::<[u8; 16]>(),
                         mut dialects in vec(any::<u16>(), 1..12), salt in bytes(40),
                         name in utf16(20), raw in bytes(30), raw_type in 9u16..100,
                         with_ctx in any::<bool>(), start_time in any::<u64>(), prefix in 0usize..9) {
        let hashes = [1u16];
        let ciphers = [2u16, 1, 4];
        let ctx = [
            NegotiateContextRepr::PreauthIntegrity { hash_algorithms: U16s::Native(&hashes), salt: &salt },
            NegotiateContextRepr::Encryption { ciphers: U16s::Native(&ciphers) },
            NegotiateContextRepr::NetName(&name),
            NegotiateContextRepr::Raw { context_type: raw_type, data: &raw },
        ];
        if with_ctx { dialects.push(0x0311); }
        let offers_311 = dialects.contains(&0x0311);
        let r = NegotiateRequestRepr {
            security_mode: sm, capabilities: caps, client_guid: guid,
            client_start_time: if offers_311 { 0 } else { start_time },
            dialects: U16s::Native(&dialects),
            contexts: if with_ctx { &ctx } else { &[] },
        };
        let m = emit(Command::Negotiate, false, &r, prefix);
        let (_, req) = parse_request(&m).unwrap();
        let Request::Negotiate(v) = req else { panic!("{req:?}") };
        let mut buf = [NegotiateContextRepr::NetName(&[]); 8];
        prop_assert_eq!(v.repr(&mut buf), r);
    }

    #[test]
    fn negotiate_response(sm in any::<u16>(), d in prop::sample::select(vec![0x0202u16, 0x0210, 0x02FF, 0x0300, 0x0302, 0x0311]),
                          guid in any::<[u8; 16]>(), caps in any::<u32>(), sizes in any::<[u32; 3]>(),
                          times in any::<[u64; 2]>(), sec in bytes(200), salt in bytes(32), prefix in 0usize..9) {
        let algs = [0u16, 1, 2];
        let hashes = [1u16];
        let ctx = [
            NegotiateContextRepr::PreauthIntegrity { hash_algorithms: U16s::Native(&hashes), salt: &salt },
            NegotiateContextRepr::Signing { algorithms: U16s::Native(&algs) },
        ];
        let r = NegotiateResponseRepr {
            security_mode: sm, dialect_revision: d, server_guid: guid, capabilities: caps,
            max_transact_size: sizes[0], max_read_size: sizes[1], max_write_size: sizes[2],
            system_time: times[0], server_start_time: times[1], security_buffer: &sec,
            contexts: if d == 0x0311 { &ctx } else { &[] },
        };
        let m = emit(Command::Negotiate, true, &r, prefix);
        let Response::Negotiate(v) = parse_response(&m).unwrap().1 else { panic!() };
        let mut buf = [NegotiateContextRepr::NetName(&[]); 4];
        prop_assert_eq!(v.repr(&mut buf), r);
    }

    #[test]
    fn session_setup(f in any::<u8>(), sm in any::<u8>(), caps in any::<u32>(), ch in any::<u32>(),
                     prev in any::<u64>(), tok in bytes(300), sf in any::<u16>(), prefix in 0usize..9) {
        let r = session_setup::SessionSetupRequestRepr { flags: f, security_mode: sm, capabilities: caps,
            channel: ch, previous_session_id: prev, security_buffer: &tok };
        let m = emit(Command::SessionSetup, false, &r, prefix);
        let Request::SessionSetup(v) = parse_request(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let r = session_setup::SessionSetupResponseRepr { session_flags: sf, security_buffer: &tok };
        let m = emit(Command::SessionSetup, true, &r, prefix);
        let Response::SessionSetup(v) = parse_response(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
    }

    #[test]
    fn fixed_size(res in any::<u16>(), prefix in 0usize..9) {
        macro_rules! check {
            ($m:ident, $req:ident, $resp:ident, $cmd:expr, $rv:ident, $sv:ident) => {{
                let r = $m::$req { reserved: res };
                let m = emit($cmd, false, &r, prefix);
                let Request::$rv(v) = parse_request(&m).unwrap().1 else { panic!() };
                prop_assert_eq!(v.repr(), r);
                let r = $m::$resp { reserved: res };
                let m = emit($cmd, true, &r, prefix);
                let Response::$sv(v) = parse_response(&m).unwrap().1 else { panic!() };
                prop_assert_eq!(v.repr(), r);
            }};
        }
        check!(echo, EchoRequestRepr, EchoResponseRepr, Command::Echo, Echo, Echo);
        check!(logoff, LogoffRequestRepr, LogoffResponseRepr, Command::Logoff, Logoff, Logoff);
        check!(tree_disconnect, TreeDisconnectRequestRepr, TreeDisconnectResponseRepr,
               Command::TreeDisconnect, TreeDisconnect, TreeDisconnect);
        let r = cancel::CancelRequestRepr { reserved: res };
        let m = emit(Command::Cancel, false, &r, prefix);
        let Request::Cancel(v) = parse_request(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
    }

    #[test]
    fn tree_connect(ext in any::<bool>(), fl in 0u16..4, path in utf16(60), st in any::<u8>(),
                    sf in any::<u32>(), caps in any::<u32>(), ma in any::<u32>(), prefix in 0usize..9) {
        let r = tree_connect::TreeConnectRequestRepr {
            flags: fl | if ext { tree_connect::flags::EXTENSION_PRESENT } else { 0 }, path: &path };
        let m = emit(Command::TreeConnect, false, &r, prefix);
        let Request::TreeConnect(v) = parse_request(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let r = tree_connect::TreeConnectResponseRepr { share_type: st, share_flags: sf, capabilities: caps, maximal_access: ma };
        let m = emit(Command::TreeConnect, true, &r, prefix);
        let Response::TreeConnect(v) = parse_response(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
    }

    #[test]
    fn create(a in any::<[u32; 6]>(), b in any::<[u8; 2]>(), cf in any::<u64>(), name in utf16(40),
              cnames in vec(vec(any::<u8>(), 1..8), 0..4), cdata in vec(bytes(20), 4),
              times in any::<[u64; 4]>(), sizes in any::<[u64; 2]>(), id in fid(), prefix in 0usize..9) {
        let ctxs: Vec<create::CreateContext<'_>> = cnames.iter().zip(&cdata)
            .map(|(n, d)| create::CreateContext { name: n, data: d }).collect();
        let r = create::CreateRequestRepr {
            security_flags: b[0], requested_oplock_level: b[1], impersonation_level: a[0],
            smb_create_flags: cf, desired_access: a[1], file_attributes: a[2], share_access: a[3],
            create_disposition: a[4], create_options: a[5], name: &name, contexts: &ctxs,
        };
        let m = emit(Command::Create, false, &r, prefix);
        let Request::Create(v) = parse_request(&m).unwrap().1 else { panic!() };
        let mut buf = [create::CreateContext { name: &[], data: &[] }; 4];
        prop_assert_eq!(v.repr(&mut buf), r);
        let r = create::CreateResponseRepr {
            oplock_level: b[0], flags: b[1], create_action: a[0], times, allocation_size: sizes[0],
            end_of_file: sizes[1], file_attributes: a[1], file_id: id, contexts: &ctxs,
        };
        let m = emit(Command::Create, true, &r, prefix);
        let Response::Create(v) = parse_response(&m).unwrap().1 else { panic!() };
        let mut buf = [create::CreateContext { name: &[], data: &[] }; 4];
        prop_assert_eq!(v.repr(&mut buf), r);
    }

    #[test]
    fn close(fl in any::<u16>(), id in fid(), times in any::<[u64; 4]>(), s in any::<[u64; 2]>(), at in any::<u32>()) {
        let r = close::CloseRequestRepr { flags: fl, file_id: id };
        let m = emit(Command::Close, false, &r, 1);
        let Request::Close(v) = parse_request(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let r = close::CloseResponseRepr { flags: fl, times, allocation_size: s[0], end_of_file: s[1], file_attributes: at };
        let m = emit(Command::Close, true, &r, 1);
        let Response::Close(v) = parse_response(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
    }

    #[test]
    fn read_write(b in any::<[u8; 2]>(), n in any::<[u32; 5]>(), off in any::<u64>(), id in fid(),
                  ci in bytes(20), data in bytes(200), prefix in 0usize..9) {
        let r = read::ReadRequestRepr { padding: b[0], flags: b[1], length: n[0], offset: off, file_id: id,
            minimum_count: n[1], channel: n[2], remaining_bytes: n[3], channel_info: &ci };
        let m = emit(Command::Read, false, &r, prefix);
        let Request::Read(v) = parse_request(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let r = read::ReadResponseRepr { data_remaining: n[0], flags: n[1], data: &data };
        let m = emit(Command::Read, true, &r, prefix);
        let Response::Read(v) = parse_response(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let r = write::WriteRequestRepr { offset: off, file_id: id, channel: n[0], remaining_bytes: n[1],
            flags: n[2], data: &data, channel_info: &ci };
        let m = emit(Command::Write, false, &r, prefix);
        let Request::Write(v) = parse_request(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let r = write::WriteResponseRepr { count: n[0], remaining: n[1] };
        let m = emit(Command::Write, true, &r, prefix);
        let Response::Write(v) = parse_response(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
    }

    #[test]
    fn ioctl_query_info(n in any::<[u32; 6]>(), id in fid(), input in bytes(100), output in bytes(100),
                        b in any::<[u8; 2]>(), prefix in 0usize..9) {
        let r = ioctl::IoctlRequestRepr { ctl_code: n[0], file_id: id, max_input_response: n[1],
            max_output_response: n[2], flags: n[3], input: &input, output: &output };
        let m = emit(Command::Ioctl, false, &r, prefix);
        let Request::Ioctl(v) = parse_request(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let r = ioctl::IoctlResponseRepr { ctl_code: n[0], file_id: id, flags: n[1], input: &input, output: &output };
        let m = emit(Command::Ioctl, true, &r, prefix);
        let Response::Ioctl(v) = parse_response(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let r = query_info::QueryInfoRequestRepr { info_type: b[0], file_info_class: b[1],
            output_buffer_length: n[0], additional_information: n[1], flags: n[2], file_id: id, input: &input };
        let m = emit(Command::QueryInfo, false, &r, prefix);
        let Request::QueryInfo(v) = parse_request(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let r = query_info::QueryInfoResponseRepr { output: &output };
        let m = emit(Command::QueryInfo, true, &r, prefix);
        let Response::QueryInfo(v) = parse_response(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
    }

    #[test]
    fn flush_lock(id in fid(), seq in any::<u32>(), raw in vec((any::<u64>(), any::<u64>(), any::<u32>()), 1..20),
                  res in any::<u16>(), prefix in 0usize..9) {
        let r = flush::FlushRequestRepr { file_id: id };
        let m = emit(Command::Flush, false, &r, prefix);
        let Request::Flush(v) = parse_request(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let r = flush::FlushResponseRepr { reserved: res };
        let m = emit(Command::Flush, true, &r, prefix);
        let Response::Flush(v) = parse_response(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let locks: Vec<lock::LockElement> = raw.iter()
            .map(|&(offset, length, flags)| lock::LockElement { offset, length, flags }).collect();
        let r = lock::LockRequestRepr { lock_sequence: seq, file_id: id, locks: lock::LockElements::Native(&locks) };
        let m = emit(Command::Lock, false, &r, prefix);
        let Request::Lock(v) = parse_request(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        prop_assert_eq!(usize::from(v.lock_count()), locks.len());
        // One element fewer than LockCount says is always refused.
        prop_assert!(parse_request(&m[..m.len() - 1]).is_err());
        let r = lock::LockResponseRepr { reserved: res };
        let m = emit(Command::Lock, true, &r, prefix);
        let Response::Lock(v) = parse_response(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
    }

    #[test]
    fn query_directory(b in any::<[u8; 2]>(), n in any::<[u32; 2]>(), id in fid(), pat in utf16(40),
                       cls in 0usize..6, names in vec(utf16(30), 0..12), short in utf16(14),
                       times in any::<[u64; 4]>(), sizes in any::<[u64; 3]>(), limit in 0u32..2000,
                       prefix in 0usize..9) {
        let r = query_directory::QueryDirectoryRequestRepr { file_information_class: b[0], flags: b[1],
            file_index: n[0], file_id: id, file_name: &pat, output_buffer_length: n[1] };
        let m = emit(Command::QueryDirectory, false, &r, prefix);
        let Request::QueryDirectory(v) = parse_request(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);

        let class = dir_info::DirectoryInfoClass::ALL[cls];
        let entries: Vec<_> = names.iter().enumerate().map(|(i, name)| dir_info::DirectoryEntry {
            file_index: i as u32, times, end_of_file: sizes[0], allocation_size: sizes[1],
            file_attributes: n[0], ea_size: n[1], short_name: &short, file_id: sizes[2], name,
        }).collect();
        // In place, after a header at a non-zero offset of a dirty buffer.
        let mut out = vec![0xA5; prefix];
        hdr(Command::QueryDirectory, true).emit(&mut out);
        let mut w = query_directory::QueryDirectoryResponseWriter::begin(prefix, &mut out, class, limit);
        let written = entries.iter().take_while(|e| w.push(e)).count();
        prop_assert_eq!(w.finish(), written);
        let Response::QueryDirectory(v) = parse_response(&out[prefix..]).unwrap().1 else { panic!() };
        prop_assert!(v.output().len() <= limit as usize);
        let got: Vec<_> = dir_info::DirectoryEntries::parse(class, v.output()).unwrap().collect();
        let want: Vec<_> = entries[..written].iter().map(|e| e.for_class(class)).collect();
        prop_assert_eq!(got, want);
        // The Repr with the same output gives the same body.
        let again = emit(Command::QueryDirectory, true, &v.repr(), 0);
        prop_assert_eq!(&again[64..], &out[prefix + 64..]);
    }

    #[test]
    fn set_info_change_notify(b in any::<[u8; 2]>(), n in any::<[u32; 2]>(), fl in any::<u16>(), id in fid(),
                              buf in bytes(100), names in vec(utf16(20), 0..8), limit in 0u32..400,
                              prefix in 0usize..9) {
        let r = set_info::SetInfoRequestRepr { info_type: b[0], file_info_class: b[1],
            additional_information: n[0], file_id: id, buffer: &buf };
        let m = emit(Command::SetInfo, false, &r, prefix);
        let Request::SetInfo(v) = parse_request(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let m = emit(Command::SetInfo, true, &set_info::SetInfoResponseRepr, prefix);
        let Response::SetInfo(v) = parse_response(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), set_info::SetInfoResponseRepr);

        let r = change_notify::ChangeNotifyRequestRepr { flags: fl, output_buffer_length: n[0], file_id: id,
            completion_filter: n[1] };
        let m = emit(Command::ChangeNotify, false, &r, prefix);
        let Request::ChangeNotify(v) = parse_request(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let mut out = Vec::new();
        let mut w = change_notify::FileNotifyWriter::new(&mut out, limit);
        let notes: Vec<_> = names.iter().enumerate()
            .map(|(i, name)| change_notify::FileNotify { action: i as u32 + 1, name }).collect();
        let written = notes.iter().take_while(|e| w.push(e)).count();
        prop_assert!(w.finish() <= limit as usize);
        let r = change_notify::ChangeNotifyResponseRepr { output: &out };
        let m = emit(Command::ChangeNotify, true, &r, prefix);
        let Response::ChangeNotify(v) = parse_response(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let got: Vec<_> = change_notify::FileNotifyEntries::parse(v.output()).unwrap().collect();
        prop_assert_eq!(&got[..], &notes[..written]);
    }

    #[test]
    fn oplock_break(level in any::<u8>(), id in fid(), key in any::<[u8; 16]>(), e in any::<u16>(),
                    st in any::<[u32; 6]>(), dur in any::<u64>(), prefix in 0usize..9) {
        use oplock_break::*;
        let r = OplockBreakRepr { oplock_level: level, file_id: id };
        let m = emit(Command::OplockBreak, false, &r, prefix);
        let Request::OplockBreak(OplockBreakRequest::Oplock(v)) = parse_request(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let m = emit(Command::OplockBreak, true, &r, prefix);
        let Response::OplockBreak(OplockBreakResponse::Oplock(v)) = parse_response(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let r = LeaseBreakRepr { flags: st[0], lease_key: key, lease_state: st[1], lease_duration: dur };
        let m = emit(Command::OplockBreak, false, &r, prefix);
        let Request::OplockBreak(OplockBreakRequest::Lease(v)) = parse_request(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let m = emit(Command::OplockBreak, true, &r, prefix);
        let Response::OplockBreak(OplockBreakResponse::Lease(v)) = parse_response(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let r = LeaseBreakNotificationRepr { new_epoch: e, flags: st[0], lease_key: key, current_lease_state: st[1],
            new_lease_state: st[2], break_reason: st[3], access_mask_hint: st[4], share_mask_hint: st[5] };
        let m = emit(Command::OplockBreak, true, &r, prefix);
        let Response::OplockBreak(OplockBreakResponse::LeaseNotification(v)) = parse_response(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
    }

    #[test]
    fn error_and_notification(cc in any::<u8>(), data in bytes(64), nt in 1u32..10, note in bytes(16),
                              st in 0xC000_0001u32..0xC000_0300) {
        let r = error::ErrorResponseRepr { error_context_count: cc, error_data: &data };
        let mut h = hdr(Command::TreeConnect, true);
        h.status = NtStatus(st);
        let mut out = Vec::new();
        emit_message(&h, &r, &mut out);
        let Response::Error(v) = parse_response(&out).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
        let r = notification::ServerToClientNotificationRepr { notification_type: nt, notification: &note };
        let m = emit(Command::ServerToClientNotification, true, &r, 0);
        let Response::Notification(v) = parse_response(&m).unwrap().1 else { panic!() };
        prop_assert_eq!(v.repr(), r);
    }

    #[test]
    fn parsers_never_panic_on_mutations(seed in bytes(300), flips in vec((any::<usize>(), any::<u8>()), 0..8)) {
        let mut m = Vec::new();
        hdr(Command::Create, false).emit(&mut m);
        m.extend_from_slice(&seed);
        for (i, v) in flips { let n = m.len(); m[i % n] = v; }
        for c in 0..0x14u16 {
            m[12..14].copy_from_slice(&c.to_le_bytes());
            let _ = parse_request(&m);
            m[16] |= 1;
            let _ = parse_response(&m);
            m[16] &= !1;
        }
    }
}
