//! SPNEGO, RFC 4178 with the MS-SPNG 2.2 extensions (NegTokenInit2 hints),
//! wrapping NTLMSSP and Kerberos for SMB2 SESSION_SETUP (MS-SMB2 3.3.5.5.3).
//!
//! Kerberos (MS-KILE 3.4.5) is taken when the client puts it first with an
//! optimistic AP-REQ and a [`KerberosAcceptor`] is configured: one leg,
//! answered with accept-completed and the AP-REP. Otherwise NTLMSSP.
//!
//! - [`neg_token_init_hint`]: the token for the SMB2 NEGOTIATE response.
//! - [`parse_token`]: NegTokenInit (with or without the GSS-API
//!   InitialContextToken wrapper, RFC 2743 3.1) and NegTokenResp.
//! - [`SpnegoAcceptor`] / [`SpnegoInitiator`]: one exchange each, with the
//!   mechListMIC (RFC 4178 5) produced and checked by NTLM session security.

use std::sync::Arc;

use crate::der::{self, Reader};
use crate::error::AuthError;
use crate::kerberos::{is_kerberos_oid, KerberosAcceptor, KerberosFailure, OID_KRB5, OID_MS_KRB5};
use crate::ntlm::msg::{message_type, MSG_AUTHENTICATE, MSG_CHALLENGE, MSG_NEGOTIATE};
use crate::ntlm::{
    AcceptorConfig, AuthOutcome, CredentialStore, Identity, NegotiateFlags, NtlmAcceptor,
    NtlmInitiator, NtlmSecurity,
};

/// DER contents of OID 1.3.6.1.5.5.2 (SPNEGO).
pub const OID_SPNEGO: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
/// DER contents of OID 1.3.6.1.4.1.311.2.2.10 (NTLMSSP).
pub const OID_NTLMSSP: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a];

const TAG_APP0: u8 = 0x60;
const TAG_SEQ: u8 = 0x30;
const TAG_OID: u8 = 0x06;
const TAG_OCTETS: u8 = 0x04;
const TAG_ENUM: u8 = 0x0a;
const TAG_GENERAL_STRING: u8 = 0x1b;
const fn ctx(n: u8) -> u8 {
    0xa0 | n
}

/// NegTokenResp negState (RFC 4178 4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegState {
    /// accept-completed (0).
    AcceptCompleted,
    /// accept-incomplete (1).
    AcceptIncomplete,
    /// reject (2).
    Reject,
    /// request-mic (3).
    RequestMic,
}

impl NegState {
    fn from_u8(v: u8) -> Result<Self, AuthError> {
        Ok(match v {
            0 => Self::AcceptCompleted,
            1 => Self::AcceptIncomplete,
            2 => Self::Reject,
            3 => Self::RequestMic,
            _ => return Err(AuthError::Malformed("SPNEGO: negState")),
        })
    }
    fn to_u8(self) -> u8 {
        match self {
            Self::AcceptCompleted => 0,
            Self::AcceptIncomplete => 1,
            Self::Reject => 2,
            Self::RequestMic => 3,
        }
    }
}

/// A parsed NegTokenInit (RFC 4178 4.2.1; NegTokenInit2 of MS-SPNG 2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegTokenInit<'a> {
    /// The DER MechTypeList (the SEQUENCE, tag included): what the mechListMIC covers.
    pub mech_types_der: &'a [u8],
    /// mechToken, the optimistic token of the first mechanism.
    pub mech_token: Option<&'a [u8]>,
    /// mechListMIC.
    pub mech_list_mic: Option<&'a [u8]>,
}

impl<'a> NegTokenInit<'a> {
    /// The offered mechanism OIDs (DER contents), in preference order.
    pub fn mech_types(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let inner = Reader::new(self.mech_types_der)
            .read()
            .map(|t| t.content)
            .unwrap_or(&[]);
        let mut r = Reader::new(inner);
        core::iter::from_fn(move || match r.read() {
            Ok(t) if t.tag == TAG_OID => Some(t.content),
            _ => None,
        })
    }

    /// Whether `oid` is offered.
    pub fn offers(&self, oid: &[u8]) -> bool {
        self.mech_types().any(|m| m == oid)
    }

    fn parse(content: &'a [u8]) -> Result<Self, AuthError> {
        let mut seq = Reader::new(Reader::new(content).expect(TAG_SEQ)?.content);
        let mut out = NegTokenInit {
            mech_types_der: &[],
            mech_token: None,
            mech_list_mic: None,
        };
        while !seq.is_empty() {
            let f = seq.read()?;
            let inner = Reader::new(f.content).read()?;
            match (f.tag, inner.tag) {
                (t, TAG_SEQ) if t == ctx(0) => {
                    let mut check = Reader::new(inner.content);
                    while !check.is_empty() {
                        check.expect(TAG_OID)?;
                    }
                    out.mech_types_der = inner.raw;
                }
                (t, TAG_OCTETS) if t == ctx(2) => out.mech_token = Some(inner.content),
                // [3] is mechListMIC in RFC 4178 and negHints in NegTokenInit2.
                (t, TAG_OCTETS) if t == ctx(3) || t == ctx(4) => {
                    out.mech_list_mic = Some(inner.content)
                }
                _ => {} // reqFlags, negHints: not needed
            }
        }
        if out.mech_types_der.is_empty() {
            return Err(AuthError::Malformed("SPNEGO: no mechTypes"));
        }
        Ok(out)
    }
}

/// A parsed NegTokenResp (RFC 4178 4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NegTokenResp<'a> {
    /// negState.
    pub neg_state: Option<NegState>,
    /// supportedMech (OID contents).
    pub supported_mech: Option<&'a [u8]>,
    /// responseToken.
    pub response_token: Option<&'a [u8]>,
    /// mechListMIC.
    pub mech_list_mic: Option<&'a [u8]>,
}

impl<'a> NegTokenResp<'a> {
    fn parse(content: &'a [u8]) -> Result<Self, AuthError> {
        let mut seq = Reader::new(Reader::new(content).expect(TAG_SEQ)?.content);
        let mut out = NegTokenResp::default();
        while !seq.is_empty() {
            let f = seq.read()?;
            let inner = Reader::new(f.content).read()?;
            match (f.tag, inner.tag) {
                (0xa0, TAG_ENUM) => {
                    let [v] = inner.content else {
                        return Err(AuthError::Malformed("SPNEGO: negState length"));
                    };
                    out.neg_state = Some(NegState::from_u8(*v)?);
                }
                (0xa1, TAG_OID) => out.supported_mech = Some(inner.content),
                (0xa2, TAG_OCTETS) => out.response_token = Some(inner.content),
                (0xa3, TAG_OCTETS) => out.mech_list_mic = Some(inner.content),
                _ => return Err(AuthError::Malformed("SPNEGO: NegTokenResp field")),
            }
        }
        Ok(out)
    }
}

/// A NegotiationToken (RFC 4178 4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegotiationToken<'a> {
    /// negTokenInit.
    Init(NegTokenInit<'a>),
    /// negTokenResp.
    Resp(NegTokenResp<'a>),
}

/// Parses a SPNEGO token: an InitialContextToken (`0x60`, SPNEGO OID, then a
/// NegotiationToken) or a bare NegotiationToken (`0xa0` / `0xa1`).
pub fn parse_token(buf: &[u8]) -> Result<NegotiationToken<'_>, AuthError> {
    let mut r = Reader::new(buf);
    let mut outer = r.read()?;
    if outer.tag == TAG_APP0 {
        let mut inner = Reader::new(outer.content);
        if inner.expect(TAG_OID)?.content != OID_SPNEGO {
            return Err(AuthError::NotSupported("GSS mechanism other than SPNEGO"));
        }
        outer = inner.read()?;
    }
    match outer.tag {
        0xa0 => Ok(NegotiationToken::Init(NegTokenInit::parse(outer.content)?)),
        0xa1 => Ok(NegotiationToken::Resp(NegTokenResp::parse(outer.content)?)),
        _ => Err(AuthError::Malformed("SPNEGO: not a NegotiationToken")),
    }
}

/// The DER MechTypeList offering only NTLMSSP.
pub fn ntlm_mech_types() -> Vec<u8> {
    der::tlv(TAG_SEQ, &der::tlv(TAG_OID, OID_NTLMSSP))
}

/// The DER MechTypeList offering MS-KRB5, KRB5 and NTLMSSP, in that order
/// (as Windows offers them).
pub fn kerberos_mech_types() -> Vec<u8> {
    let mut list = der::tlv(TAG_OID, OID_MS_KRB5);
    der::write(&mut list, TAG_OID, OID_KRB5);
    der::write(&mut list, TAG_OID, OID_NTLMSSP);
    der::tlv(TAG_SEQ, &list)
}

/// The SPNEGO token for the SMB2 NEGOTIATE response security buffer: an
/// InitialContextToken holding a NegTokenInit2 (MS-SPNG 2.2.1) that offers
/// NTLMSSP, with the customary "not_defined_in_RFC4178@please_ignore" hint.
pub fn neg_token_init_hint() -> Vec<u8> {
    neg_token_init_hint_for(false)
}

/// [`neg_token_init_hint`], offering MS-KRB5 and KRB5 before NTLMSSP when
/// `kerberos` (the server has a keytab).
pub fn neg_token_init_hint_for(kerberos: bool) -> Vec<u8> {
    let mechs = if kerberos {
        kerberos_mech_types()
    } else {
        ntlm_mech_types()
    };
    let mut body = der::tlv(ctx(0), &mechs);
    let hint = der::tlv(
        TAG_SEQ,
        &der::tlv(
            ctx(0),
            &der::tlv(TAG_GENERAL_STRING, b"not_defined_in_RFC4178@please_ignore"),
        ),
    );
    der::write(&mut body, ctx(3), &hint);
    wrap_init(&der::tlv(TAG_SEQ, &body))
}

fn wrap_init(seq: &[u8]) -> Vec<u8> {
    let mut inner = der::tlv(TAG_OID, OID_SPNEGO);
    der::write(&mut inner, ctx(0), seq);
    der::tlv(TAG_APP0, &inner)
}

/// Encodes an InitialContextToken with a NegTokenInit (RFC 4178 4.2.1).
pub fn encode_neg_token_init(
    mech_types_der: &[u8],
    mech_token: Option<&[u8]>,
    mech_list_mic: Option<&[u8]>,
) -> Vec<u8> {
    let mut body = der::tlv(ctx(0), mech_types_der);
    if let Some(t) = mech_token {
        der::write(&mut body, ctx(2), &der::tlv(TAG_OCTETS, t));
    }
    if let Some(m) = mech_list_mic {
        der::write(&mut body, ctx(3), &der::tlv(TAG_OCTETS, m));
    }
    wrap_init(&der::tlv(TAG_SEQ, &body))
}

/// Encodes a NegTokenResp (RFC 4178 4.2.2), `[1]`-tagged as SMB carries it.
pub fn encode_neg_token_resp(
    neg_state: Option<NegState>,
    supported_mech: Option<&[u8]>,
    response_token: Option<&[u8]>,
    mech_list_mic: Option<&[u8]>,
) -> Vec<u8> {
    let mut body = Vec::new();
    if let Some(s) = neg_state {
        der::write(&mut body, ctx(0), &der::tlv(TAG_ENUM, &[s.to_u8()]));
    }
    if let Some(m) = supported_mech {
        der::write(&mut body, ctx(1), &der::tlv(TAG_OID, m));
    }
    if let Some(t) = response_token {
        der::write(&mut body, ctx(2), &der::tlv(TAG_OCTETS, t));
    }
    if let Some(m) = mech_list_mic {
        der::write(&mut body, ctx(3), &der::tlv(TAG_OCTETS, m));
    }
    der::tlv(ctx(1), &der::tlv(TAG_SEQ, &body))
}

/// The first SESSION_SETUP token of a Kerberos logon: NegTokenInit offering
/// MS-KRB5, KRB5 and NTLMSSP with the AP-REQ as the optimistic mechToken.
pub fn kerberos_initial_token(ap_req: &[u8]) -> Vec<u8> {
    encode_neg_token_init(&kerberos_mech_types(), Some(ap_req), None)
}

/// The AP-REP out of the server's final token (accept-completed with
/// Kerberos as supportedMech); `None` when it carries no response token.
pub fn kerberos_final_token(server_token: &[u8]) -> Result<Option<&[u8]>, AuthError> {
    let NegotiationToken::Resp(resp) = parse_token(server_token)? else {
        return Err(AuthError::UnexpectedMessage(
            "SPNEGO: expected NegTokenResp",
        ));
    };
    if resp.neg_state != Some(NegState::AcceptCompleted) {
        return Err(AuthError::Rejected);
    }
    if resp.supported_mech.is_some_and(|m| !is_kerberos_oid(m)) {
        return Err(AuthError::NotSupported(
            "SPNEGO: server chose another mechanism than Kerberos",
        ));
    }
    Ok(resp.response_token)
}

/// accept-incomplete with supportedMech NTLMSSP and a response token.
pub fn accept_incomplete(response_token: &[u8]) -> Vec<u8> {
    encode_neg_token_resp(
        Some(NegState::AcceptIncomplete),
        Some(OID_NTLMSSP),
        Some(response_token),
        None,
    )
}

/// accept-completed, with an optional mechListMIC.
pub fn accept_completed(mech_list_mic: Option<&[u8]>) -> Vec<u8> {
    encode_neg_token_resp(Some(NegState::AcceptCompleted), None, None, mech_list_mic)
}

/// reject.
pub fn reject() -> Vec<u8> {
    encode_neg_token_resp(Some(NegState::Reject), None, None, None)
}

/// The outcome of one [`SpnegoAcceptor::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send `output` with STATUS_MORE_PROCESSING_REQUIRED and wait for the next leg.
    Continue(Vec<u8>),
    /// Authentication finished: send `output` (possibly empty) with STATUS_SUCCESS.
    Done {
        /// The final security buffer.
        output: Vec<u8>,
        /// Who logged on, with the session key.
        outcome: AuthOutcome,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AcceptState {
    Start,
    WaitNegotiate,
    WaitAuthenticate,
    /// Kerberos was selected without an optimistic token: wait for the AP-REQ.
    WaitKerberos,
    Done,
}

/// Server side of one SESSION_SETUP exchange: SPNEGO (or raw NTLMSSP,
/// answered in kind) around an [`NtlmAcceptor`].
#[derive(Debug, Clone)]
pub struct SpnegoAcceptor {
    ntlm: NtlmAcceptor,
    state: AcceptState,
    raw: bool,
    mech_types: Vec<u8>,
    mic_required: bool,
    kerberos: Option<Arc<dyn KerberosAcceptor>>,
    /// The Kerberos OID the client named (echoed as supportedMech).
    krb_oid: &'static [u8],
}

impl SpnegoAcceptor {
    /// A new exchange; see [`NtlmAcceptor::new`] for the inputs.
    pub fn new(cfg: AcceptorConfig, server_challenge: [u8; 8], timestamp: u64) -> Self {
        SpnegoAcceptor {
            ntlm: NtlmAcceptor::new(&cfg, server_challenge, timestamp),
            state: AcceptState::Start,
            raw: false,
            mech_types: Vec::new(),
            mic_required: false,
            kerberos: None,
            krb_oid: OID_KRB5,
        }
    }

    /// Accepts Kerberos too, checking AP-REQs with `acceptor`.
    pub fn with_kerberos(mut self, acceptor: Option<Arc<dyn KerberosAcceptor>>) -> Self {
        self.kerberos = acceptor;
        self
    }

    /// Whether the client spoke raw NTLMSSP rather than SPNEGO.
    pub fn is_raw(&self) -> bool {
        self.raw
    }

    /// Handles one SESSION_SETUP security buffer.
    pub fn step(&mut self, input: &[u8], store: &dyn CredentialStore) -> Result<Step, AuthError> {
        let state = core::mem::replace(&mut self.state, AcceptState::Done);
        match state {
            AcceptState::Start if message_type(input).is_some() => {
                self.raw = true;
                let out = self.ntlm.challenge(input)?;
                self.state = AcceptState::WaitAuthenticate;
                Ok(Step::Continue(out))
            }
            AcceptState::Start => {
                let NegotiationToken::Init(init) = parse_token(input)? else {
                    return Err(AuthError::UnexpectedMessage("SPNEGO: NegTokenResp first"));
                };
                let first = init.mech_types().next();
                if let (Some(first), true) = (first, self.kerberos.is_some()) {
                    if is_kerberos_oid(first) {
                        self.krb_oid = if first == OID_MS_KRB5 {
                            OID_MS_KRB5
                        } else {
                            OID_KRB5
                        };
                        return match init.mech_token {
                            Some(tok) => self.accept_kerberos(tok, store),
                            None => {
                                self.state = AcceptState::WaitKerberos;
                                Ok(Step::Continue(encode_neg_token_resp(
                                    Some(NegState::AcceptIncomplete),
                                    Some(self.krb_oid),
                                    None,
                                    None,
                                )))
                            }
                        };
                    }
                }
                if !init.offers(OID_NTLMSSP) {
                    return Err(AuthError::NotSupported("SPNEGO: NTLMSSP not offered"));
                }
                self.mech_types = init.mech_types_der.to_vec();
                let preferred = init.mech_types().next() == Some(OID_NTLMSSP);
                match init.mech_token {
                    Some(tok) if preferred => {
                        if message_type(tok) != Some(MSG_NEGOTIATE) {
                            return Err(AuthError::Malformed(
                                "SPNEGO: mechToken is not NTLMSSP NEGOTIATE",
                            ));
                        }
                        let chal = self.ntlm.challenge(tok)?;
                        self.state = AcceptState::WaitAuthenticate;
                        Ok(Step::Continue(accept_incomplete(&chal)))
                    }
                    _ => {
                        // NTLMSSP is not the optimistic mechanism: select it and
                        // ask for its first token; the MIC becomes mandatory.
                        self.mic_required = !preferred;
                        self.state = AcceptState::WaitNegotiate;
                        Ok(Step::Continue(encode_neg_token_resp(
                            Some(NegState::AcceptIncomplete),
                            Some(OID_NTLMSSP),
                            None,
                            None,
                        )))
                    }
                }
            }
            AcceptState::WaitNegotiate => {
                let NegotiationToken::Resp(resp) = parse_token(input)? else {
                    return Err(AuthError::UnexpectedMessage(
                        "SPNEGO: expected NegTokenResp",
                    ));
                };
                let tok = resp
                    .response_token
                    .filter(|t| message_type(t) == Some(MSG_NEGOTIATE))
                    .ok_or(AuthError::Malformed("SPNEGO: expected NTLMSSP NEGOTIATE"))?;
                let chal = self.ntlm.challenge(tok)?;
                self.state = AcceptState::WaitAuthenticate;
                Ok(Step::Continue(encode_neg_token_resp(
                    Some(NegState::AcceptIncomplete),
                    None,
                    Some(&chal),
                    None,
                )))
            }
            AcceptState::WaitAuthenticate if self.raw => {
                if message_type(input) != Some(MSG_AUTHENTICATE) {
                    return Err(AuthError::UnexpectedMessage(
                        "expected NTLMSSP AUTHENTICATE",
                    ));
                }
                let outcome = self.ntlm.authenticate(input, store)?;
                Ok(Step::Done {
                    output: Vec::new(),
                    outcome,
                })
            }
            AcceptState::WaitAuthenticate => {
                let NegotiationToken::Resp(resp) = parse_token(input)? else {
                    return Err(AuthError::UnexpectedMessage(
                        "SPNEGO: expected NegTokenResp",
                    ));
                };
                if resp.neg_state == Some(NegState::Reject) {
                    return Err(AuthError::Rejected);
                }
                let tok = resp
                    .response_token
                    .filter(|t| message_type(t) == Some(MSG_AUTHENTICATE))
                    .ok_or(AuthError::Malformed(
                        "SPNEGO: expected NTLMSSP AUTHENTICATE",
                    ))?;
                let outcome = self.ntlm.authenticate(tok, store)?;
                let mic = self.mech_list_mic(&outcome, resp.mech_list_mic)?;
                Ok(Step::Done {
                    output: accept_completed(mic.as_ref().map(|m| &m[..])),
                    outcome,
                })
            }
            AcceptState::WaitKerberos => {
                let NegotiationToken::Resp(resp) = parse_token(input)? else {
                    return Err(AuthError::UnexpectedMessage(
                        "SPNEGO: expected NegTokenResp",
                    ));
                };
                let tok = resp
                    .response_token
                    .ok_or(AuthError::Kerberos(KerberosFailure::Malformed))?;
                self.accept_kerberos(tok, store)
            }
            AcceptState::Done => Err(AuthError::UnexpectedMessage(
                "SPNEGO exchange already finished",
            )),
        }
    }

    /// Checks an AP-REQ (MS-KILE 3.4.5.1) and finishes the exchange with
    /// accept-completed carrying the AP-REP. The principal becomes the user
    /// (`alice@REALM`, the realm as domain); `store` says whether it is an
    /// administrator.
    fn accept_kerberos(
        &mut self,
        token: &[u8],
        store: &dyn CredentialStore,
    ) -> Result<Step, AuthError> {
        // A mechToken that names Kerberos but carries NTLMSSP is refused
        // before the Kerberos library sees it.
        if message_type(token).is_some() {
            return Err(AuthError::Kerberos(KerberosFailure::Malformed));
        }
        let Some(krb) = self.kerberos.as_ref() else {
            return Err(AuthError::NotSupported("Kerberos"));
        };
        let out = krb.accept(token).map_err(AuthError::Kerberos)?;
        let realm = out
            .principal
            .rsplit_once('@')
            .map(|(_, r)| r.to_string())
            .unwrap_or_default();
        let admin = store.principal_is_admin(&out.principal);
        let outcome = AuthOutcome {
            identity: Identity::User {
                name: out.principal.clone(),
                domain: realm.clone(),
                admin,
            },
            workstation: String::new(),
            domain: realm,
            session_key: Some(out.smb_session_key()),
            negotiated_flags: 0,
            ticket_lifetime: out.lifetime,
            kerberos: true,
        };
        let response = (!out.output.is_empty()).then_some(&out.output[..]);
        Ok(Step::Done {
            output: encode_neg_token_resp(
                Some(NegState::AcceptCompleted),
                Some(self.krb_oid),
                response,
                None,
            ),
            outcome,
        })
    }

    /// Checks the client's mechListMIC and produces ours (RFC 4178 5,
    /// MS-SPNG 3.3.5.1): only with a session key, i.e. not for anonymous or guest.
    fn mech_list_mic(
        &self,
        outcome: &AuthOutcome,
        client_mic: Option<&[u8]>,
    ) -> Result<Option<[u8; 16]>, AuthError> {
        let Some(key) = outcome.session_key else {
            return Ok(None);
        };
        let Some(client_mic) = client_mic else {
            return if self.mic_required {
                Err(AuthError::MechListMicMismatch)
            } else {
                Ok(None)
            };
        };
        let mut sec = NtlmSecurity::new(&key, outcome.negotiated_flags, false)
            .map_err(|_| AuthError::MechListMicMismatch)?;
        if !sec.verify(&self.mech_types, client_mic) {
            return Err(AuthError::MechListMicMismatch);
        }
        Ok(Some(sec.sign(&self.mech_types)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InitState {
    Start,
    SentNegotiate,
    SentAuthenticate,
    Done,
}

/// Client side of one SESSION_SETUP exchange: SPNEGO around an
/// [`NtlmInitiator`], with a mechListMIC when a session key exists.
#[derive(Debug)]
pub struct SpnegoInitiator {
    ntlm: NtlmInitiator,
    state: InitState,
    mech_types: Vec<u8>,
    security: Option<NtlmSecurity>,
    session_key: Option<[u8; 16]>,
}

impl SpnegoInitiator {
    /// Wraps `ntlm`.
    pub fn new(ntlm: NtlmInitiator) -> Self {
        SpnegoInitiator {
            ntlm,
            state: InitState::Start,
            mech_types: ntlm_mech_types(),
            security: None,
            session_key: None,
        }
    }

    /// The first SESSION_SETUP token: NegTokenInit offering NTLMSSP with the
    /// NEGOTIATE_MESSAGE as mechToken.
    pub fn initial_token(&mut self) -> Vec<u8> {
        let neg = self.ntlm.negotiate();
        self.state = InitState::SentNegotiate;
        encode_neg_token_init(&self.mech_types, Some(&neg), None)
    }

    /// Answers the server's accept-incomplete (carrying the CHALLENGE) with
    /// the AUTHENTICATE_MESSAGE and, with a session key, a mechListMIC.
    pub fn respond(
        &mut self,
        server_token: &[u8],
        client_challenge: [u8; 8],
        exported_session_key: [u8; 16],
    ) -> Result<Vec<u8>, AuthError> {
        if self.state != InitState::SentNegotiate {
            return Err(AuthError::UnexpectedMessage(
                "SPNEGO initiator: not waiting for a challenge",
            ));
        }
        self.state = InitState::Done;
        let NegotiationToken::Resp(resp) = parse_token(server_token)? else {
            return Err(AuthError::UnexpectedMessage(
                "SPNEGO: expected NegTokenResp",
            ));
        };
        if resp.neg_state == Some(NegState::Reject) {
            return Err(AuthError::Rejected);
        }
        if resp.supported_mech.is_some_and(|m| m != OID_NTLMSSP) {
            return Err(AuthError::NotSupported(
                "SPNEGO: server chose another mechanism",
            ));
        }
        let chal = resp
            .response_token
            .filter(|t| message_type(t) == Some(MSG_CHALLENGE))
            .ok_or(AuthError::Malformed("SPNEGO: expected NTLMSSP CHALLENGE"))?;
        let (auth, key) = self
            .ntlm
            .authenticate(chal, client_challenge, exported_session_key)?;
        self.session_key = key;
        let flags = self.ntlm.negotiated_flags();
        let mic = match key {
            Some(k) if flags & NegotiateFlags::EXTENDED_SESSIONSECURITY != 0 => {
                let mut sec = NtlmSecurity::new(&k, flags, true)?;
                let m = sec.sign(&self.mech_types);
                self.security = Some(sec);
                Some(m)
            }
            _ => None,
        };
        self.state = InitState::SentAuthenticate;
        Ok(encode_neg_token_resp(
            None,
            None,
            Some(&auth),
            mic.as_ref().map(|m| &m[..]),
        ))
    }

    /// Checks the server's final token (accept-completed, and its mechListMIC
    /// when it sends one) and returns the session key.
    pub fn finish(&mut self, server_token: &[u8]) -> Result<Option<[u8; 16]>, AuthError> {
        if self.state != InitState::SentAuthenticate {
            return Err(AuthError::UnexpectedMessage(
                "SPNEGO initiator: nothing to finish",
            ));
        }
        self.state = InitState::Done;
        let NegotiationToken::Resp(resp) = parse_token(server_token)? else {
            return Err(AuthError::UnexpectedMessage(
                "SPNEGO: expected NegTokenResp",
            ));
        };
        if resp.neg_state != Some(NegState::AcceptCompleted) {
            return Err(AuthError::Rejected);
        }
        // A server without a session key (guest) sends no mechListMIC.
        if let (Some(sec), Some(mic)) = (self.security.as_mut(), resp.mech_list_mic) {
            if !sec.verify(&self.mech_types, mic) {
                return Err(AuthError::MechListMicMismatch);
            }
        }
        Ok(self.session_key)
    }
}
