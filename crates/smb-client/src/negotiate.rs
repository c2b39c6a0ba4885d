//! The NEGOTIATE exchange from the client's side: the offer (MS-SMB2 2.2.3, the 3.1.1
//! negotiate contexts of 2.2.3.1.1 and 2.2.3.1.7) and what the server chose (2.2.4,
//! 3.2.5.2).

use smb_auth::encryption::Cipher;
use smb_auth::signing::SigningAlgorithm;
use smb_wire::msg::negotiate::{
    capabilities, dialect, security_mode, NegotiateContextRepr, NegotiateRequestRepr,
    NegotiateResponse,
};
use smb_wire::msg::{EmitBody, U16s};

use crate::conn::ClientError;

/// SHA-512, the one preauth integrity hash (MS-SMB2 2.2.3.1.1).
pub const SHA512: u16 = 0x0001;

/// A NEGOTIATE request body (MS-SMB2 2.2.3). When 3.1.1 is offered it carries a
/// PREAUTH_INTEGRITY_CAPABILITIES context (SHA-512 with `salt`) and, when
/// `signing_algorithms` is not empty, a SIGNING_CAPABILITIES context (2.2.3.1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Dialects offered, ascending.
    pub dialects: Vec<u16>,
    /// SecurityMode (SMB2_NEGOTIATE_SIGNING_ENABLED by default).
    pub security_mode: u16,
    /// ClientGuid.
    pub client_guid: [u8; 16],
    /// Salt of the preauth integrity context.
    pub salt: [u8; 32],
    /// Signing algorithm ids to offer in 3.1.1, preferred first (none: no context, and the
    /// server signs with AES-CMAC, MS-SMB2 3.3.5.4).
    pub signing_algorithms: Vec<u16>,
    /// Cipher ids to offer, preferred first (MS-SMB2 2.2.3.1.2): in 3.1.1 an
    /// ENCRYPTION_CAPABILITIES context, in 3.0 / 3.0.2 SMB2_GLOBAL_CAP_ENCRYPTION
    /// (AES-128-CCM). None: encryption is not offered.
    pub ciphers: Vec<u16>,
}

impl Offer {
    /// An offer of `dialects` with signing enabled, no signing context.
    pub fn new(dialects: &[u16], client_guid: [u8; 16], salt: [u8; 32]) -> Offer {
        Offer {
            dialects: dialects.to_vec(),
            security_mode: security_mode::SIGNING_ENABLED,
            client_guid,
            salt,
            signing_algorithms: Vec::new(),
            ciphers: Vec::new(),
        }
    }

    /// Whether 3.1.1 is offered (and so the negotiate contexts are sent).
    pub fn offers_311(&self) -> bool {
        self.dialects.contains(&dialect::SMB311)
    }

    /// Reads the server's NEGOTIATE response `msg` (header + body): the dialect it chose,
    /// which must be one offered (MS-SMB2 3.2.5.2), and the signing algorithm sessions of this
    /// connection will use.
    pub fn accept(&self, msg: &[u8]) -> Result<Negotiated, ClientError> {
        let n = NegotiateResponse::parse(msg)?;
        let d = n.dialect_revision();
        if !self.dialects.contains(&d) {
            return Err(ClientError::BadDialect(d));
        }
        let mut signing = match d {
            dialect::SMB202 | dialect::SMB210 => SigningAlgorithm::HmacSha256,
            _ => SigningAlgorithm::AesCmac,
        };
        let mut cipher = None;
        if d == dialect::SMB311 {
            for c in n.contexts() {
                match c.decode() {
                    Ok(NegotiateContextRepr::Signing { algorithms }) => {
                        if let Some(a) =
                            algorithms.iter().next().and_then(SigningAlgorithm::from_id)
                        {
                            signing = a;
                        }
                    }
                    Ok(NegotiateContextRepr::Encryption { ciphers }) => {
                        cipher = ciphers
                            .iter()
                            .next()
                            .filter(|id| self.ciphers.contains(id))
                            .and_then(Cipher::from_id);
                    }
                    _ => {}
                }
            }
        } else if d >= dialect::SMB300
            && n.capabilities() & capabilities::ENCRYPTION != 0
            && self.ciphers.contains(&Cipher::Aes128Ccm.id())
        {
            cipher = Some(Cipher::Aes128Ccm);
        }
        Ok(Negotiated {
            dialect: d,
            signing,
            cipher,
        })
    }
}

impl EmitBody for Offer {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        let sha = [SHA512];
        let preauth = NegotiateContextRepr::PreauthIntegrity {
            hash_algorithms: U16s::Native(&sha),
            salt: &self.salt,
        };
        let signing = NegotiateContextRepr::Signing {
            algorithms: U16s::Native(&self.signing_algorithms),
        };
        let encryption = NegotiateContextRepr::Encryption {
            ciphers: U16s::Native(&self.ciphers),
        };
        let mut contexts = Vec::with_capacity(3);
        if self.offers_311() {
            contexts.push(preauth);
            if !self.signing_algorithms.is_empty() {
                contexts.push(signing);
            }
            if !self.ciphers.is_empty() {
                contexts.push(encryption);
            }
        }
        let caps = if self.ciphers.is_empty() {
            0
        } else {
            capabilities::ENCRYPTION
        };
        NegotiateRequestRepr {
            security_mode: self.security_mode,
            // 3.1.1: the client takes SERVER_TO_CLIENT_NOTIFICATION
            // (MS-SMB2 2.2.3, SMB2_GLOBAL_CAP_NOTIFICATIONS).
            capabilities: if self.offers_311() {
                caps | smb_wire::msg::negotiate::capabilities::NOTIFICATIONS
            } else {
                caps
            },
            client_guid: self.client_guid,
            client_start_time: 0,
            dialects: U16s::Native(&self.dialects),
            contexts: &contexts,
        }
        .emit_body(msg_start, out);
    }
}

/// What NEGOTIATE settled for the connection (MS-SMB2 3.2.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Connection.Dialect.
    pub dialect: u16,
    /// The algorithm session signing keys use: HMAC-SHA256 in 2.x, AES-CMAC in 3.0 / 3.0.2
    /// and in 3.1.1 without a SIGNING_CAPABILITIES answer, else the one the server picked
    /// (MS-SMB2 3.2.5.2, 3.1.4.1).
    pub signing: SigningAlgorithm,
    /// Connection.CipherId: the cipher the server chose from the offer, if any.
    pub cipher: Option<Cipher>,
}
