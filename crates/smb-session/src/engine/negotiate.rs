//! NEGOTIATE: dialect choice, 3.1.1 negotiate contexts, the SMB1
//! multi-protocol upgrade, and FSCTL_VALIDATE_NEGOTIATE_INFO.
//!
//! MS-SMB2 3.3.5.3 (SMB1 negotiate with "SMB 2.???" / "SMB 2.002"),
//! 3.3.5.4 (SMB2 NEGOTIATE), 3.3.5.15.12 (validate negotiate).

use std::time::Instant;

use smb_auth::encryption::Cipher;
use smb_auth::preauth::PreauthHash;
use smb_auth::signing::SigningAlgorithm;
use smb_wire::frame::FrameMark;
use smb_wire::header::{flags, Command, HeaderId, HeaderRepr, HEADER_LEN};
use smb_wire::msg::negotiate::{
    algorithm, capabilities, dialect, security_mode, NegotiateContextRepr, NegotiateRequest,
    NegotiateResponseRepr,
};
use smb_wire::msg::{EmitBody, U16s};
use smb_wire::NtStatus;

use super::conn::Phase;
use super::{Answer, Engine, FrameOutcome, Req};
use crate::ids::ConnId;

/// Dialects this engine implements, highest first.
const SUPPORTED: [u16; 5] = [
    dialect::SMB311,
    dialect::SMB302,
    dialect::SMB300,
    dialect::SMB210,
    dialect::SMB202,
];

impl Engine {
    fn allowed(&self, d: u16) -> bool {
        SUPPORTED.contains(&d) && d >= self.cfg.min_dialect && d <= self.cfg.max_dialect
    }

    fn security_mode(&self) -> u16 {
        security_mode::SIGNING_ENABLED
            | if self.cfg.require_signing {
                security_mode::SIGNING_REQUIRED
            } else {
                0
            }
    }

    fn capabilities_for(&self, d: u16) -> u32 {
        if d >= dialect::SMB210 {
            capabilities::LARGE_MTU
        } else {
            0
        }
    }

    fn max_io_for(&self, d: u16) -> u32 {
        if d >= dialect::SMB210 {
            self.cfg.max_io
        } else {
            65536
        }
    }

    /// SMB2 NEGOTIATE (3.3.5.4).
    pub(crate) fn handle_negotiate(&mut self, req: &Req<'_>, out: &mut Vec<u8>) -> Answer {
        let Some(c) = self.table.connection(req.conn) else {
            return Answer::Drop;
        };
        // A second NEGOTIATE on a negotiated connection: disconnect (3.3.5.4).
        if c.ext.phase == Phase::Negotiated {
            return Answer::Drop;
        }
        let wildcard = c.ext.phase == Phase::Wildcard;
        let Ok(nreq) = NegotiateRequest::parse(req.msg) else {
            return Answer::Fail(NtStatus::INVALID_PARAMETER);
        };
        let chosen = SUPPORTED
            .iter()
            .copied()
            .find(|&d| self.allowed(d) && nreq.offers(d));
        let Some(chosen) = chosen else {
            return Answer::Fail(NtStatus::NOT_SUPPORTED);
        };
        let _ = wildcard;
        let mut signing = if chosen >= dialect::SMB300 {
            SigningAlgorithm::AesCmac
        } else {
            SigningAlgorithm::HmacSha256
        };
        let salt: [u8; 32] = self.random_array();
        let mut saw_preauth = false;
        let mut saw_signing = false;
        // Connection.CipherId (3.3.5.4): 3.0 and 3.0.2 have AES-128-CCM
        // when the client announces CAP_ENCRYPTION; 3.1.1 chooses from the
        // client's ENCRYPTION_CAPABILITIES by the server's preference.
        let mut cipher = None;
        if (dialect::SMB300..dialect::SMB311).contains(&chosen)
            && nreq.capabilities() & capabilities::ENCRYPTION != 0
            && self.cfg.ciphers.contains(&Cipher::Aes128Ccm)
        {
            cipher = Some(Cipher::Aes128Ccm);
        }
        if chosen == dialect::SMB311 {
            for ctx in nreq.contexts() {
                let Ok(decoded) = ctx.decode() else {
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                };
                match decoded {
                    NegotiateContextRepr::PreauthIntegrity {
                        hash_algorithms, ..
                    } => {
                        if saw_preauth || !hash_algorithms.iter().any(|a| a == algorithm::SHA512) {
                            return Answer::Fail(NtStatus::INVALID_PARAMETER);
                        }
                        saw_preauth = true;
                    }
                    NegotiateContextRepr::Encryption { ciphers } => {
                        cipher = self.choose_cipher(|id| ciphers.iter().any(|c| c == id));
                    }
                    NegotiateContextRepr::Signing { algorithms } => {
                        saw_signing = true;
                        // Prefer GMAC, then CMAC, then HMAC-SHA256.
                        let offered: [bool; 3] = [
                            algorithms.iter().any(|a| a == algorithm::HMAC_SHA256),
                            algorithms.iter().any(|a| a == algorithm::AES_CMAC),
                            algorithms.iter().any(|a| a == algorithm::AES_GMAC),
                        ];
                        signing = if offered[2] {
                            SigningAlgorithm::AesGmac
                        } else if offered[1] {
                            SigningAlgorithm::AesCmac
                        } else if offered[0] {
                            SigningAlgorithm::HmacSha256
                        } else {
                            SigningAlgorithm::AesCmac
                        };
                    }
                    _ => {}
                }
            }
            if !saw_preauth {
                return Answer::Fail(NtStatus::INVALID_PARAMETER);
            }
        }
        let security_mode = self.security_mode();
        let mut caps = self.capabilities_for(chosen);
        if cipher.is_some() && chosen < dialect::SMB311 {
            caps |= capabilities::ENCRYPTION;
        }
        // MS-SMB2 3.3.5.4: notifications (SmbNotifySessionClosed) on 3.1.1
        // when the client takes them.
        if chosen == dialect::SMB311 && nreq.capabilities() & capabilities::NOTIFICATIONS != 0 {
            caps |= capabilities::NOTIFICATIONS;
        }
        let max_io = self.max_io_for(chosen);
        let signing_id = [signing.id()];
        let cipher_id = [cipher.map_or(0, Cipher::id)];
        // SIGNING_CAPABILITIES only answers a client that sent it, and
        // ENCRYPTION_CAPABILITIES only when a cipher was chosen (3.3.5.4).
        // With no common cipher the context is left out rather than sent
        // with cipher 0 (which smb-rs refuses as unparsable): either way
        // the client knows it cannot encrypt, and one that requires
        // encryption stops cleanly.
        let mut ctxs: [Option<NegotiateContextRepr<'_>>; 3] = [
            Some(NegotiateContextRepr::PreauthIntegrity {
                hash_algorithms: U16s::Native(&[algorithm::SHA512]),
                salt: &salt,
            }),
            saw_signing.then_some(NegotiateContextRepr::Signing {
                algorithms: U16s::Native(&signing_id),
            }),
            cipher.map(|_| NegotiateContextRepr::Encryption {
                ciphers: U16s::Native(&cipher_id),
            }),
        ];
        if chosen != dialect::SMB311 {
            ctxs = [None, None, None];
        }
        let ctx_list: Vec<NegotiateContextRepr<'_>> = ctxs.into_iter().flatten().collect();
        let hint = self.spnego_hint.clone();
        let body = NegotiateResponseRepr {
            security_mode,
            dialect_revision: chosen,
            server_guid: self.cfg.server_guid,
            capabilities: caps,
            max_transact_size: max_io,
            max_read_size: max_io,
            max_write_size: max_io,
            system_time: self.filetime(req.now),
            server_start_time: 0,
            security_buffer: &hint,
            contexts: &ctx_list,
        };
        let start = out.len() - HEADER_LEN;
        body.emit_body(start, out);
        let Some(c) = self.table.connection_mut(req.conn) else {
            return Answer::Drop;
        };
        let st = &mut c.ext;
        st.phase = Phase::Negotiated;
        st.dialect = chosen;
        st.client_guid = nreq.client_guid();
        st.client_security_mode = nreq.security_mode();
        st.client_capabilities = nreq.capabilities();
        st.server_capabilities = caps;
        st.server_security_mode = security_mode;
        st.signing_algorithm = signing;
        st.cipher = cipher;
        if chosen == dialect::SMB311 {
            // Connection.PreauthIntegrityHashValue = H(H(0 || request) || response).
            // The response's header fields (credits, status) are final
            // except the credit count, which the chain fills in later; so
            // hash the request now and the response once it is complete.
            let mut h = PreauthHash::new();
            h.update(req.msg);
            st.preauth = Some(Box::new(h));
        }
        Answer::Done(NtStatus::SUCCESS)
    }

    /// The SMB1 multi-protocol NEGOTIATE that starts an SMB2 connection
    /// (MS-SMB2 3.3.5.3.1).
    pub(crate) fn handle_smb1_negotiate(
        &mut self,
        conn: ConnId,
        payload: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> FrameOutcome {
        let Some(c) = self.table.connection_mut(conn) else {
            return FrameOutcome::Close;
        };
        if c.ext.phase != Phase::Fresh {
            return FrameOutcome::Close;
        }
        let Ok(neg) = smb_wire::smb1::Smb1NegotiateRequest::parse(payload) else {
            return FrameOutcome::Close;
        };
        let d = if neg.offers("SMB 2.???") && self.cfg.max_dialect >= dialect::SMB210 {
            dialect::WILDCARD
        } else if neg.offers("SMB 2.002") && self.allowed(dialect::SMB202) {
            dialect::SMB202
        } else {
            // SMB1 only: not spoken here.
            return FrameOutcome::Close;
        };
        tracing::debug!(
            ?conn,
            dialect = format_args!("{d:#06x}"),
            "SMB1 multi-protocol NEGOTIATE answered with SMB2"
        );
        // The SMB1 request used MessageId 0.
        let Some(c) = self.table.connection_mut(conn) else {
            return FrameOutcome::Close;
        };
        if c.ext.credits.consume(0, 1).is_err() {
            return FrameOutcome::Close;
        }
        let granted = c.ext.credits.grant(1, self.cfg.credit_cap);
        let mark = FrameMark::begin(out);
        let start = out.len();
        HeaderRepr {
            credit_charge: 0,
            status: NtStatus::SUCCESS,
            command: Command::Negotiate,
            credit: granted,
            flags: flags::SERVER_TO_REDIR,
            next_command: 0,
            message_id: 0,
            id: HeaderId::Sync {
                process_id: 0xFEFF,
                tree_id: 0,
            },
            session_id: 0,
            signature: [0; 16],
        }
        .emit(out);
        let security_mode = self.security_mode();
        let caps = self.capabilities_for(d);
        let max_io = self.max_io_for(d);
        let hint = self.spnego_hint.clone();
        NegotiateResponseRepr {
            security_mode,
            dialect_revision: d,
            server_guid: self.cfg.server_guid,
            capabilities: caps,
            max_transact_size: max_io,
            max_read_size: max_io,
            max_write_size: max_io,
            system_time: self.filetime(now),
            server_start_time: 0,
            security_buffer: &hint,
            contexts: &[],
        }
        .emit_body(start, out);
        if !super::finish_frame(mark, out, start - 4) {
            return FrameOutcome::Close;
        }
        let Some(c) = self.table.connection_mut(conn) else {
            return FrameOutcome::Close;
        };
        let st = &mut c.ext;
        if d == dialect::WILDCARD {
            st.phase = Phase::Wildcard;
        } else {
            st.phase = Phase::Negotiated;
            st.dialect = d;
            st.server_capabilities = caps;
            st.server_security_mode = security_mode;
        }
        FrameOutcome::Continue
    }

    /// FSCTL_VALIDATE_NEGOTIATE_INFO (3.3.5.15.12): the client repeats what
    /// it negotiated; any difference means a downgrade attack, and the
    /// connection is dropped.
    pub(crate) fn validate_negotiate(
        &mut self,
        conn: ConnId,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Answer> {
        let Some(c) = self.table.connection(conn) else {
            return Err(Answer::Drop);
        };
        let st = &c.ext;
        if st.dialect == dialect::SMB311 {
            // 3.1.1 protects negotiation with the preauth hash instead.
            return Err(Answer::Drop);
        }
        let Ok(v) = smb_wire::msg::ioctl::ValidateNegotiateInfoRequest::parse(input) else {
            return Err(Answer::Drop);
        };
        let common = SUPPORTED
            .iter()
            .copied()
            .find(|&d| self.allowed(d) && v.dialects.iter().any(|x| x == d));
        if v.capabilities != st.client_capabilities
            || v.guid != st.client_guid
            || v.security_mode != st.client_security_mode
            || common != Some(st.dialect)
        {
            tracing::debug!(
                ?conn,
                "VALIDATE_NEGOTIATE_INFO mismatch: dropping the connection"
            );
            return Err(Answer::Drop);
        }
        tracing::debug!(
            ?conn,
            dialect = format_args!("{:#06x}", st.dialect),
            "VALIDATE_NEGOTIATE_INFO ok"
        );
        smb_wire::msg::ioctl::ValidateNegotiateInfoResponse {
            capabilities: st.server_capabilities,
            guid: self.cfg.server_guid,
            security_mode: st.server_security_mode,
            dialect: st.dialect,
        }
        .emit(out);
        Ok(())
    }
}
