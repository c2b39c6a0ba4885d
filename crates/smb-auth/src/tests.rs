//! Cross-module tests: initiator <-> acceptor round trips, published vectors
//! run through the acceptor, real Windows SPNEGO tokens, and fuzzing of every
//! parser.

use crate::kdf::tests::{key16, vector};
use crate::ntlm::crypto::mic_zeroed;
use crate::ntlm::msg::utf16le;
use crate::ntlm::*;
use crate::spnego::*;
use crate::AuthError;

const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
const TIMESTAMP: u64 = 0x01d9_0000_1234_5678;

fn cfg(anonymous: bool, guest: bool) -> AcceptorConfig {
    AcceptorConfig {
        netbios_computer: "SMBCORE".into(),
        netbios_domain: "WORKGROUP".into(),
        dns_computer: "smbcore.example".into(),
        dns_domain: "example".into(),
        allow_anonymous: anonymous,
        allow_guest: guest,
    }
}

fn store() -> StaticCredentials {
    let mut s = StaticCredentials::new();
    s.add_password("alice", "Secret-1", true)
        .add_password("bob", "hunter2", false);
    s
}

/// Runs a whole SPNEGO exchange in memory.
fn spnego_login(
    ntlm: NtlmInitiator,
    cfg: AcceptorConfig,
) -> Result<(AuthOutcome, Option<[u8; 16]>), AuthError> {
    let mut client = SpnegoInitiator::new(ntlm);
    let mut server = SpnegoAcceptor::new(cfg, SERVER_CHALLENGE, TIMESTAMP);
    let store = store();
    let Step::Continue(chal) = server.step(&client.initial_token(), &store)? else {
        panic!("first leg must continue");
    };
    let auth = client.respond(&chal, [0xaa; 8], [0x5c; 16])?;
    let Step::Done { output, outcome } = server.step(&auth, &store)? else {
        panic!("second leg must finish");
    };
    let client_key = client.finish(&output)?;
    Ok((outcome, client_key))
}

#[test]
fn user_login_agrees_on_the_session_key() {
    let (outcome, client_key) = spnego_login(
        NtlmInitiator::user("Alice", "WORKGROUP", "Secret-1"),
        cfg(false, false),
    )
    .unwrap();
    assert_eq!(
        outcome.identity,
        Identity::User {
            name: "Alice".into(),
            domain: "WORKGROUP".into(),
            admin: true
        }
    );
    assert_eq!(
        outcome.session_key,
        Some([0x5c; 16]),
        "KEY_EXCH carries the exported key"
    );
    assert_eq!(client_key, outcome.session_key);
    assert!(outcome.negotiated_flags & NegotiateFlags::KEY_EXCH != 0);
}

#[test]
fn wrong_password_is_logon_failure() {
    let err = spnego_login(NtlmInitiator::user("bob", "", "hunter3"), cfg(true, true)).unwrap_err();
    assert_eq!(err, AuthError::LogonFailure);
    assert_eq!(err.ntstatus(), 0xC000_006D);
}

#[test]
fn unknown_user_is_guest_only_when_allowed() {
    let (outcome, _) =
        spnego_login(NtlmInitiator::user("mallory", "", "x"), cfg(false, true)).unwrap();
    assert_eq!(outcome.identity, Identity::Guest);
    assert_eq!(outcome.session_key, None);
    let err = spnego_login(NtlmInitiator::user("mallory", "", "x"), cfg(true, false)).unwrap_err();
    assert_eq!(err, AuthError::LogonFailure);
}

#[test]
fn anonymous_is_accepted_only_when_allowed() {
    let (outcome, key) = spnego_login(NtlmInitiator::anonymous(), cfg(true, false)).unwrap();
    assert_eq!(outcome.identity, Identity::Anonymous);
    assert_eq!((outcome.session_key, key), (None, None));
    let err = spnego_login(NtlmInitiator::anonymous(), cfg(false, true)).unwrap_err();
    assert_eq!(err, AuthError::LogonFailure);
}

fn ntlm_pair(user: NtlmInitiator) -> (NtlmInitiator, NtlmAcceptor, Vec<u8>) {
    let mut c = user;
    let mut s = NtlmAcceptor::new(&cfg(false, false), SERVER_CHALLENGE, TIMESTAMP);
    let chal = s.challenge(&c.negotiate()).unwrap();
    (c, s, chal)
}

#[test]
fn raw_ntlm_login_and_mic_tampering() {
    let (mut c, mut s, chal) = ntlm_pair(NtlmInitiator::user("bob", "X", "hunter2"));
    let (auth, key) = c.authenticate(&chal, [1; 8], [2; 16]).unwrap();
    let good = s.authenticate(&auth, &store()).unwrap();
    assert_eq!(good.session_key, key);

    // The workstation name is covered only by the MIC.
    let (mut c, mut s, chal) = ntlm_pair(NtlmInitiator::user("bob", "X", "hunter2"));
    c.set_workstation("PC1");
    let (mut auth, _) = c.authenticate(&chal, [1; 8], [2; 16]).unwrap();
    let at = auth.windows(6).position(|w| w == utf16le("PC1")).unwrap();
    auth[at] = b'Q';
    assert_eq!(
        s.authenticate(&auth, &store()).unwrap_err(),
        AuthError::MicMismatch
    );

    let (mut c, mut s, chal) = ntlm_pair(NtlmInitiator::user("bob", "X", "hunter2"));
    let (mut auth, _) = c.authenticate(&chal, [1; 8], [2; 16]).unwrap();
    auth[msg::MIC_OFFSET] ^= 1;
    assert_eq!(
        s.authenticate(&auth, &store()).unwrap_err(),
        AuthError::MicMismatch
    );

    // A second AUTHENTICATE on the same acceptor is refused.
    assert!(matches!(
        s.authenticate(&auth, &store()),
        Err(AuthError::UnexpectedMessage(_))
    ));
}

/// The NtChallengeResponse smbtorture's smb2.session.ntlmssp_bug14932 sends
/// (captured from `smbtorture ... -U% smb2.session.ntlmssp_bug14932`): a
/// well-formed NTLMv2_RESPONSE header (MS-NLMP 2.2.2.8, RespType 1,
/// HiRespType 1) whose AV pair list is garbage (AvLen runs past the end).
const BUG14932_NT_RESPONSE: &str = concat!(
    "abababababababababababababababab01010000000000003f3f3f3f3f3f3f3f",
    "b8823af1b3dd08150000000011a20881503822782b9447fe54947bff17275ab4",
    "f418badc2c38fd5bfb0ec1851ecc92bb9bb1c4d55314ff8c7649f5459019a2",
);

/// An AUTHENTICATE_MESSAGE from `user` with the given responses, answered to
/// a fresh acceptor's CHALLENGE.
fn authenticate_with(
    cfg: AcceptorConfig,
    user: &str,
    lm: Vec<u8>,
    nt: Vec<u8>,
) -> Result<AuthOutcome, AuthError> {
    let mut c = NtlmInitiator::anonymous();
    let mut s = NtlmAcceptor::new(&cfg, SERVER_CHALLENGE, TIMESTAMP);
    let chal = s.challenge(&c.negotiate()).unwrap();
    let flags = ChallengeMessage::parse(&chal).unwrap().flags();
    let auth = AuthenticateRepr {
        lm_response: lm,
        nt_response: nt,
        domain: Vec::new(),
        user: utf16le(user),
        workstation: utf16le("VM"),
        encrypted_session_key: vec![0x48; 16],
        flags,
        version: Some(Version::DEFAULT),
        with_mic: false,
    }
    .emit();
    s.authenticate(&auth, &store())
}

/// Samba bug 14932 (smbtorture smb2.session.ntlmssp_bug14932, also with the
/// anonymous credentials `-U%`): a malformed NTLMv2_CLIENT_CHALLENGE
/// (MS-NLMP 2.2.2.7) is STATUS_INVALID_PARAMETER for every user name, the
/// empty one included, whatever the anonymous and guest policy; the
/// structure is checked before the user is looked up.
#[test]
fn malformed_ntlmv2_blob_is_invalid_parameter_for_every_user() {
    let nt = hex(BUG14932_NT_RESPONSE);
    for user in ["", "bob", "mallory"] {
        for (anonymous, guest) in [(true, true), (true, false), (false, false), (false, true)] {
            let err = authenticate_with(cfg(anonymous, guest), user, vec![0; 24], nt.clone())
                .expect_err("a malformed blob never logs on");
            assert!(
                matches!(err, AuthError::Malformed(_)),
                "user {user:?} anonymous {anonymous} guest {guest}: {err:?}"
            );
            assert_eq!(err.ntstatus(), 0xC000_000D, "STATUS_INVALID_PARAMETER");
        }
    }
}

/// The other structural defects of MS-NLMP 2.2.2.7 are refused the same way:
/// too short for the fixed part, RespType or HiRespType not 1, and an AV pair
/// list without MsvAvEOL (MS-NLMP 2.2.2.1: it MUST end the list).
#[test]
fn ntlmv2_client_challenge_structure_is_checked_before_lookup() {
    let good_av = {
        let mut w = AvPairsWriter::new();
        w.push_str(av_id::NB_DOMAIN_NAME, "WORKGROUP");
        w.finish()
    };
    let blob = |resp: u8, hi: u8, av: &[u8]| {
        let mut nt = vec![0xab; 16];
        let mut temp = crypto::client_blob(TIMESTAMP, &[0x3f; 8], av);
        temp[0] = resp;
        temp[1] = hi;
        temp.truncate(28 + av.len());
        nt.extend_from_slice(&temp);
        nt
    };
    let no_eol = &good_av[..good_av.len() - 4];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("short", blob(1, 1, &good_av)[..16 + 27].to_vec()),
        ("RespType", blob(2, 1, &good_av)),
        ("HiRespType", blob(1, 0, &good_av)),
        ("no MsvAvEOL", blob(1, 1, no_eol)),
        ("empty AV list", blob(1, 1, &[])),
    ];
    for (what, nt) in cases {
        for user in ["", "bob", "mallory"] {
            let err =
                authenticate_with(cfg(true, true), user, vec![0; 24], nt.clone()).expect_err(what);
            assert!(
                matches!(err, AuthError::Malformed(_)),
                "{what}, user {user:?}: {err:?}"
            );
        }
    }
    // A well-formed blob with a wrong proof is a plain logon failure, and
    // with an unknown user and guest allowed it is guest.
    let nt = blob(1, 1, &good_av);
    assert_eq!(
        authenticate_with(cfg(true, false), "bob", vec![0; 24], nt.clone()).unwrap_err(),
        AuthError::LogonFailure
    );
    assert_eq!(
        authenticate_with(cfg(true, false), "", vec![0; 24], nt.clone()).unwrap_err(),
        AuthError::LogonFailure
    );
    assert_eq!(
        authenticate_with(cfg(false, true), "mallory", vec![0; 24], nt)
            .unwrap()
            .identity,
        Identity::Guest
    );
}

/// A credential store that counts its lookups.
struct CountingStore {
    inner: StaticCredentials,
    lookups: std::cell::Cell<usize>,
}

impl CredentialStore for CountingStore {
    fn lookup(&self, user: &str, domain: &str) -> Option<Credential> {
        self.lookups.set(self.lookups.get() + 1);
        self.inner.lookup(user, domain)
    }
}

/// What one AUTHENTICATE cost the acceptor: its result, the credential
/// lookups, and the HMAC-MD5 computations with the bytes they covered.
fn logon_work(
    user: &str,
    domain: &str,
    password: &str,
    guest: bool,
) -> (Result<Identity, AuthError>, usize, (usize, usize)) {
    let store = CountingStore {
        inner: store(),
        lookups: Default::default(),
    };
    let mut c = NtlmInitiator::user(user, domain, password);
    let mut s = NtlmAcceptor::new(&cfg(false, guest), SERVER_CHALLENGE, TIMESTAMP);
    let chal = s.challenge(&c.negotiate()).unwrap();
    let (auth, _) = c.authenticate(&chal, [1; 8], [2; 16]).unwrap();
    crypto::HMAC_MD5_WORK.with(|w| w.set((0, 0)));
    let result = s.authenticate(&auth, &store).map(|o| o.identity);
    let work = crypto::HMAC_MD5_WORK.with(|w| w.get());
    (result, store.lookups.get(), work)
}

/// A user name that does not exist costs the acceptor the same work as a
/// known user with a wrong password (the NTOWFv2 and NTProofStr HMACs of
/// MS-NLMP 3.3.2, against a dummy key), so the failure's timing does not
/// tell which names exist. "bob" is known, "eve" is not (same length, so the
/// HMAC inputs are the same size too).
#[test]
fn unknown_user_costs_the_same_work_as_a_wrong_password() {
    for domain in ["", "WORKGROUP", "workgroup"] {
        let (known, known_lookups, known_work) = logon_work("bob", domain, "wrong", false);
        let (unknown, unknown_lookups, unknown_work) = logon_work("eve", domain, "wrong", false);
        assert_eq!(known, Err(AuthError::LogonFailure));
        assert_eq!(unknown, Err(AuthError::LogonFailure));
        assert_eq!((known_lookups, unknown_lookups), (1, 1));
        assert!(known_work.0 > 0, "the proof is checked: {known_work:?}");
        assert_eq!(
            unknown_work, known_work,
            "domain {domain:?}: (HMAC-MD5 calls, bytes) for an unknown user vs a wrong password"
        );
        // With guest allowed the unknown user is guest, after the same work.
        let (guest, _, guest_work) = logon_work("eve", domain, "wrong", true);
        assert_eq!(guest, Ok(Identity::Guest));
        assert_eq!(guest_work, known_work);
    }
    // A client that knows the dummy key still cannot log on as a user that
    // does not exist.
    let mut c = NtlmInitiator::with_nt_hash("eve", "", crate::ntlm::acceptor::UNKNOWN_USER_NT_HASH);
    let mut s = NtlmAcceptor::new(&cfg(false, false), SERVER_CHALLENGE, TIMESTAMP);
    let chal = s.challenge(&c.negotiate()).unwrap();
    let (auth, _) = c.authenticate(&chal, [1; 8], [2; 16]).unwrap();
    assert_eq!(
        s.authenticate(&auth, &store()),
        Err(AuthError::LogonFailure)
    );
}

#[test]
fn spnego_acceptor_answers_raw_ntlmssp_in_kind() {
    let mut c = NtlmInitiator::user("alice", "", "Secret-1");
    let mut s = SpnegoAcceptor::new(cfg(false, false), SERVER_CHALLENGE, TIMESTAMP);
    let Step::Continue(chal) = s.step(&c.negotiate(), &store()).unwrap() else {
        panic!()
    };
    assert!(s.is_raw());
    assert_eq!(&chal[..8], b"NTLMSSP\0");
    let (auth, key) = c.authenticate(&chal, [3; 8], [4; 16]).unwrap();
    let Step::Done { output, outcome } = s.step(&auth, &store()).unwrap() else {
        panic!()
    };
    assert!(output.is_empty());
    assert_eq!(outcome.session_key, key);
}

#[test]
fn ntlm_not_first_selects_ntlm_and_requires_the_mech_list_mic() {
    const OID_KRB5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
    let mut mechs = Vec::new();
    crate::der::write(&mut mechs, 0x06, OID_KRB5);
    crate::der::write(&mut mechs, 0x06, OID_NTLMSSP);
    let mech_types = crate::der::tlv(0x30, &mechs);
    let first = encode_neg_token_init(&mech_types, Some(b"kerberos-ap-req"), None);

    let run = |with_mic: bool| -> Result<Step, AuthError> {
        let mut c = NtlmInitiator::user("alice", "", "Secret-1");
        let mut s = SpnegoAcceptor::new(cfg(false, false), SERVER_CHALLENGE, TIMESTAMP);
        let Step::Continue(sel) = s.step(&first, &store())? else {
            panic!()
        };
        let NegotiationToken::Resp(r) = parse_token(&sel)? else {
            panic!()
        };
        assert_eq!(
            (r.supported_mech, r.response_token),
            (Some(OID_NTLMSSP), None)
        );
        let neg = encode_neg_token_resp(None, None, Some(&c.negotiate()), None);
        let Step::Continue(chal_tok) = s.step(&neg, &store())? else {
            panic!()
        };
        let NegotiationToken::Resp(r) = parse_token(&chal_tok)? else {
            panic!()
        };
        let (auth, key) = c.authenticate(r.response_token.unwrap(), [5; 8], [6; 16])?;
        let mic = with_mic.then(|| {
            NtlmSecurity::new(&key.unwrap(), c.negotiated_flags(), true)
                .unwrap()
                .sign(&mech_types)
        });
        let last = encode_neg_token_resp(None, None, Some(&auth), mic.as_ref().map(|m| &m[..]));
        s.step(&last, &store())
    };
    assert!(matches!(run(true), Ok(Step::Done { .. })));
    assert_eq!(run(false).unwrap_err(), AuthError::MechListMicMismatch);
}

#[test]
fn tampered_mech_list_mic_is_rejected() {
    let mut client = SpnegoInitiator::new(NtlmInitiator::user("alice", "", "Secret-1"));
    let mut server = SpnegoAcceptor::new(cfg(false, false), SERVER_CHALLENGE, TIMESTAMP);
    let Step::Continue(chal) = server.step(&client.initial_token(), &store()).unwrap() else {
        panic!()
    };
    let mut auth = client.respond(&chal, [0xaa; 8], [0x5c; 16]).unwrap();
    let n = auth.len();
    auth[n - 9] ^= 0x40; // inside the mechListMIC checksum, the last field
    assert_eq!(
        server.step(&auth, &store()).unwrap_err(),
        AuthError::MechListMicMismatch
    );
}

/// MS-NLMP 4.2.4.3: the specification's AUTHENTICATE_MESSAGE (NTLMv2, KEY_EXCH,
/// no MIC) verified by the acceptor: user "User", domain "Domain", password
/// "Password", RandomSessionKey 0x55 * 16.
#[test]
fn ms_nlmp_4_2_4_3_authenticate_message_is_accepted() {
    let spec_auth: Vec<u8> = [
        "4e544c4d5353500003000000180018006c00000054005400840000000c000c00",
        "480000000800080054000000100010005c00000010001000d8000000358288e2",
        "0501280a0000000f44006f006d00610069006e00550073006500720043004f00",
        "4d005000550054004500520086c35097ac9cec102554764a57cccc19aaaaaaaa",
        "aaaaaaaa68cd0ab851e51c96aabc927bebef6a1c010100000000000000000000",
        "00000000aaaaaaaaaaaaaaaa0000000002000c0044006f006d00610069006e00",
        "01000c005300650072007600650072000000000000000000c5dad2544fc97990",
        "94ce1ce90bc9d03e",
    ]
    .concat()
    .as_bytes()
    .chunks(2)
    .map(|c| u8::from_str_radix(core::str::from_utf8(c).unwrap(), 16).unwrap())
    .collect();
    let mut s = NtlmAcceptor::new(&cfg(false, false), SERVER_CHALLENGE, TIMESTAMP);
    s.challenge(&NtlmInitiator::anonymous().negotiate())
        .unwrap();
    let mut users = StaticCredentials::new();
    users.add_password("User", "Password", false);
    let out = s.authenticate(&spec_auth, &users).unwrap();
    assert_eq!(out.session_key, Some([0x55; 16]));
    assert_eq!(out.workstation, "COMPUTER");
    assert_eq!(
        out.identity,
        Identity::User {
            name: "User".into(),
            domain: "Domain".into(),
            admin: false
        }
    );
}

/// The security buffer of a captured SMB2 message (offset, length at 64+`at`).
fn security_buffer(packet: &[u8], at: usize) -> &[u8] {
    let off = u16::from_le_bytes([packet[64 + at], packet[65 + at]]) as usize;
    let len = u16::from_le_bytes([packet[66 + at], packet[67 + at]]) as usize;
    &packet[off..off + len]
}

/// Windows client and server tokens from Microsoft's SMB 3.1.1 example
/// (tests/vectors/ms-smb2-311-session.txt): parse every leg, check the NTLM
/// MIC and both mechListMICs with the published session key.
#[test]
fn windows_spnego_tokens_parse_and_their_mics_verify() {
    let neg_resp = vector("neg_resp");
    let hint = security_buffer(&neg_resp, 56);
    let NegotiationToken::Init(h) = parse_token(hint).unwrap() else {
        panic!()
    };
    assert!(h.offers(OID_NTLMSSP));

    let req1 = vector("setup_req1");
    let NegotiationToken::Init(init) = parse_token(security_buffer(&req1, 12)).unwrap() else {
        panic!()
    };
    assert_eq!(init.mech_types_der, &ntlm_mech_types()[..]);
    let negotiate = init.mech_token.unwrap();
    NegotiateMessage::parse(negotiate).unwrap();

    let resp1 = vector("setup_resp1");
    let NegotiationToken::Resp(r1) = parse_token(security_buffer(&resp1, 4)).unwrap() else {
        panic!()
    };
    assert_eq!(r1.neg_state, Some(NegState::AcceptIncomplete));
    assert_eq!(r1.supported_mech, Some(OID_NTLMSSP));
    let challenge = r1.response_token.unwrap();
    let chal = ChallengeMessage::parse(challenge).unwrap();
    assert_eq!(
        chal.target_info().get(av_id::NB_COMPUTER_NAME),
        Some(&utf16le("SUT311")[..])
    );

    let req2 = vector("setup_req2");
    let NegotiationToken::Resp(r2) = parse_token(security_buffer(&req2, 12)).unwrap() else {
        panic!()
    };
    let auth_bytes = r2.response_token.unwrap();
    let auth = AuthenticateMessage::parse(auth_bytes).unwrap();
    let key = key16("session_key");
    assert_eq!(
        mic_zeroed(&key, negotiate, challenge, auth_bytes).as_ref(),
        auth.mic()
    );

    let mut server = NtlmSecurity::new(&key, auth.flags(), false).unwrap();
    assert!(server.verify(init.mech_types_der, r2.mech_list_mic.unwrap()));
    let ours = server.sign(init.mech_types_der);

    let resp2 = vector("setup_resp2");
    let NegotiationToken::Resp(r3) = parse_token(security_buffer(&resp2, 4)).unwrap() else {
        panic!()
    };
    assert_eq!(r3.neg_state, Some(NegState::AcceptCompleted));
    assert_eq!(
        r3.mech_list_mic,
        Some(&ours[..]),
        "our mechListMIC is the one Windows sent"
    );
}

#[test]
fn hint_token_offers_ntlm() {
    let t = neg_token_init_hint();
    let NegotiationToken::Init(i) = parse_token(&t).unwrap() else {
        panic!()
    };
    assert_eq!(i.mech_types().collect::<Vec<_>>(), vec![OID_NTLMSSP]);
    assert_eq!(i.mech_token, None);
    assert_eq!(
        parse_token(&reject()).unwrap(),
        NegotiationToken::Resp(NegTokenResp {
            neg_state: Some(NegState::Reject),
            ..Default::default()
        })
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn parse_everything(bytes: &[u8]) {
        let _ = NegotiateMessage::parse(bytes);
        let _ = ChallengeMessage::parse(bytes).map(|c| c.target_info().iter().count());
        let _ = AuthenticateMessage::parse(bytes).map(|a| (a.mic(), a.version()));
        let _ = AvPairs::parse(bytes).map(|a| (a.flags(), a.timestamp()));
        let _ = parse_token(bytes).map(|t| match t {
            NegotiationToken::Init(i) => i.mech_types().count(),
            NegotiationToken::Resp(_) => 0,
        });
        let _ = SpnegoAcceptor::new(cfg(true, true), SERVER_CHALLENGE, 0).step(bytes, &store());
        let mut s = NtlmAcceptor::new(&cfg(true, true), SERVER_CHALLENGE, 0);
        s.challenge(&NtlmInitiator::anonymous().negotiate())
            .unwrap();
        let _ = s.authenticate(bytes, &store());
        let mut c = NtlmInitiator::user("a", "b", "c");
        c.negotiate();
        let _ = c.authenticate(bytes, [0; 8], [0; 16]);
    }

    /// A valid exchange's messages, for mutation.
    fn valid_messages() -> Vec<Vec<u8>> {
        let mut client = SpnegoInitiator::new(NtlmInitiator::user("alice", "", "Secret-1"));
        let mut server = SpnegoAcceptor::new(cfg(false, false), SERVER_CHALLENGE, TIMESTAMP);
        let first = client.initial_token();
        let Ok(Step::Continue(chal)) = server.step(&first, &store()) else {
            panic!()
        };
        let auth = client.respond(&chal, [0xaa; 8], [0x5c; 16]).unwrap();
        let NegotiationToken::Resp(r) = parse_token(&auth).unwrap() else {
            panic!()
        };
        let NegotiationToken::Resp(c) = parse_token(&chal).unwrap() else {
            panic!()
        };
        vec![
            first.clone(),
            chal.clone(),
            auth.clone(),
            r.response_token.unwrap().to_vec(),
            c.response_token.unwrap().to_vec(),
        ]
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            parse_everything(&bytes);
        }

        #[test]
        fn random_ntlmssp_bodies_never_panic(ty in 1u32..4, bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut m = b"NTLMSSP\0".to_vec();
            m.extend_from_slice(&ty.to_le_bytes());
            m.extend_from_slice(&bytes);
            parse_everything(&m);
        }

        #[test]
        fn mutated_valid_messages_never_panic(which in 0usize..5, pos in any::<usize>(), val in any::<u8>(), cut in any::<usize>()) {
            let msgs = valid_messages();
            let mut m = msgs[which].clone();
            let p = pos % m.len();
            m[p] = val;
            parse_everything(&m);
            let c = cut % (m.len() + 1);
            parse_everything(&m[..c]);
            // Through a live acceptor waiting for AUTHENTICATE, too.
            let mut server = SpnegoAcceptor::new(cfg(true, true), SERVER_CHALLENGE, TIMESTAMP);
            let _ = server.step(&msgs[0], &store());
            let _ = server.step(&m, &store());
        }
    }
}

/// Prints our CHALLENGE for the NEGOTIATE in $NEG_HEX (tool for
/// tests/vectors/impacket-gen.py; not a test).
#[test]
#[ignore]
fn gen_challenge_for_impacket() {
    let neg = hex(&std::env::var("NEG_HEX").unwrap());
    let mut s = NtlmAcceptor::new(&impacket_cfg(), IMPACKET_CHALLENGE, IMPACKET_TIMESTAMP);
    let chal = s.challenge(&neg).unwrap();
    println!(
        "CHALLENGE {}",
        chal.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
}

const IMPACKET_CHALLENGE: [u8; 8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
const IMPACKET_TIMESTAMP: u64 = 0x01da_8c3f_5e6a_1b00;

fn impacket_cfg() -> AcceptorConfig {
    cfg(true, false)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// impacket's NTLMv2 AUTHENTICATE (and its anonymous one) against our own
/// CHALLENGE, recorded in tests/vectors/impacket-ntlm.txt.
#[test]
fn impacket_authenticate_messages_verify() {
    let text = include_str!("../tests/vectors/impacket-ntlm.txt");
    let mut users = StaticCredentials::new();
    users.add_password("alice", "Secret-1", false);
    let mut seen = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let mut s = NtlmAcceptor::new(&impacket_cfg(), IMPACKET_CHALLENGE, IMPACKET_TIMESTAMP);
        assert_eq!(
            s.challenge(&hex(f[1])).unwrap(),
            hex(f[2]),
            "the recorded CHALLENGE is ours"
        );
        let out = s.authenticate(&hex(f[3]), &users).unwrap();
        match f[0] {
            "user" => {
                assert_eq!(
                    out.identity,
                    Identity::User {
                        name: "alice".into(),
                        domain: "WORKGROUP".into(),
                        admin: false
                    }
                );
                assert_eq!(out.session_key.map(|k| k.to_vec()), Some(hex(f[4])));
            }
            "anonymous" => assert_eq!((out.identity, out.session_key), (Identity::Anonymous, None)),
            other => panic!("unknown case {other}"),
        }
        // The same message with a wrong password in the store fails.
        let mut s = NtlmAcceptor::new(&impacket_cfg(), IMPACKET_CHALLENGE, IMPACKET_TIMESTAMP);
        s.challenge(&hex(f[1])).unwrap();
        let mut wrong = StaticCredentials::new();
        wrong.add_password("alice", "Secret-2", false);
        if f[0] == "user" {
            assert_eq!(
                s.authenticate(&hex(f[3]), &wrong).unwrap_err(),
                AuthError::LogonFailure
            );
        }
        seen += 1;
    }
    assert_eq!(seen, 2);
}

#[test]
fn initiator_rejects_a_tampered_server_mech_list_mic_and_a_reject() {
    let mut client = SpnegoInitiator::new(NtlmInitiator::user("alice", "", "Secret-1"));
    let mut server = SpnegoAcceptor::new(cfg(false, false), SERVER_CHALLENGE, TIMESTAMP);
    let Step::Continue(chal) = server.step(&client.initial_token(), &store()).unwrap() else {
        panic!()
    };
    let auth = client.respond(&chal, [0xaa; 8], [0x5c; 16]).unwrap();
    let Step::Done { mut output, .. } = server.step(&auth, &store()).unwrap() else {
        panic!()
    };
    let n = output.len();
    output[n - 9] ^= 1;
    assert_eq!(
        client.finish(&output).unwrap_err(),
        AuthError::MechListMicMismatch
    );

    let mut client = SpnegoInitiator::new(NtlmInitiator::anonymous());
    client.initial_token();
    assert_eq!(
        client.respond(&reject(), [0; 8], [0; 16]).unwrap_err(),
        AuthError::Rejected
    );
}
