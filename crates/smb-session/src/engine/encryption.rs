//! SMB3 encryption in the engine: the TRANSFORM path in, sealed responses
//! out, and the encryption policy (MS-SMB2 3.3.5.2.1.1 decrypting a
//! request, 3.3.4.1.4 encrypting a response, 3.3.5.5.3 session keys,
//! 3.3.5.2.9 / 3.3.5.2.11 RejectUnencryptedAccess, 3.3.5.7 share flags).
//!
//! A TRANSFORM frame is decrypted before anything else looks at it: where
//! it lies when the runtime lends its read buffer mutably
//! ([`Engine::handle_frame_in_place`], what both transports do), else in
//! the engine's reusable scratch buffer after one copy
//! ([`Engine::handle_frame`]); no allocation in the steady state. The plaintext, which may be a compound
//! chain, then takes the ordinary path with the frame marked encrypted:
//! signatures are not checked (the AEAD tag covered the bytes) and the
//! answer is sealed as one TRANSFORM, in place in the connection's own
//! output queue, with the session's next nonce.
//!
//! What the server sends unasked is sealed the same way for a session that
//! encrypts (3.3.4.1.4): oplock breaks (3.3.4.6, also when the open's share
//! asks for encryption; [`Engine::unsolicited_seal_session`]) and
//! SmbNotifySessionClosed (2.2.44.2, with the closed session's own keys).
//!
//! Every failure to decrypt (unknown session, session of another
//! connection or without keys, bad tag, OriginalMessageSize that does not
//! match, a TRANSFORM or compressed message inside a TRANSFORM, a header
//! whose SessionId differs from the TRANSFORM's) drops the connection, as
//! 3.3.5.2.1.1 says; other connections and sessions go on. A replayed
//! TRANSFORM decrypts, but its MessageId was used: the credit window drops
//! the connection.

use std::fmt;
use std::str::FromStr;

use smb_auth::encryption::{self, Cipher, NonceCounter, SessionCipher, TRANSFORM_HEADER_LEN};
use smb_wire::frame::FrameMark;
use smb_wire::header::{Command, Header, HEADER_LEN};
use smb_wire::protocol_id::{classify, ProtocolId};
use smb_wire::transform::TransformHeader;

use super::{Engine, FrameOutcome};
use crate::ids::{ConnId, SessionId};

/// Whether sessions and shares encrypt (Samba's `smb encrypt`, Windows'
/// EncryptData / RejectUnencryptedAccess).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub enum EncryptionPolicy {
    /// Encryption is not asked for; a client may still encrypt on its own
    /// (it is negotiated whenever a cipher is configured).
    #[default]
    Off,
    /// Asked for (SESSION_FLAG_ENCRYPT_DATA / SHAREFLAG_ENCRYPT_DATA), but
    /// unencrypted requests are still served.
    Desired,
    /// Asked for and enforced: an unencrypted request gets ACCESS_DENIED,
    /// and a session that cannot encrypt (anonymous, guest, SMB 2.x, no
    /// common cipher) is refused.
    Required,
}

impl EncryptionPolicy {
    /// The setting's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Desired => "desired",
            Self::Required => "required",
        }
    }
}

impl fmt::Display for EncryptionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EncryptionPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "no" | "false" | "disabled" => Ok(Self::Off),
            "desired" | "if_required" | "default" => Ok(Self::Desired),
            "required" | "mandatory" | "yes" | "true" => Ok(Self::Required),
            other => Err(format!(
                "encryption: expected off, desired or required, not {other:?}"
            )),
        }
    }
}

/// SMB2_SHAREFLAG_ENCRYPT_DATA (MS-SMB2 2.2.10).
pub(crate) const SHAREFLAG_ENCRYPT_DATA: u32 = 0x0000_8000;

/// A session's encryption state (MS-SMB2 3.3.1.8 Session.EncryptionKey,
/// DecryptionKey, EncryptData).
#[derive(Debug)]
pub(crate) struct SessionCrypt {
    pub keys: SessionCipher,
    pub nonces: NonceCounter,
    /// Session.EncryptData: every response is sealed.
    pub encrypt_data: bool,
    /// RejectUnencryptedAccess for this session.
    pub reject_unencrypted: bool,
    /// The client has sent an encrypted request: answers made outside a
    /// frame (pending completions, deferred srvsvc answers) are sealed too.
    pub client_encrypts: bool,
}

impl SessionCrypt {
    /// Whether messages of the session go out encrypted: it asked for
    /// encryption (EncryptData) or its client sends encrypted requests.
    pub fn encrypts(&self) -> bool {
        self.encrypt_data || self.client_encrypts
    }

    /// Seal everything from `payload_start` to the end of `out` as one
    /// TRANSFORM of session `sid` (MS-SMB2 3.1.4.3), in place: the messages
    /// move up by the 52-byte header and are encrypted where they lie, with
    /// the session's next nonce.
    pub(crate) fn seal(
        &mut self,
        sid: SessionId,
        out: &mut Vec<u8>,
        payload_start: usize,
    ) -> Result<(), SealError> {
        let Some(nonce) = self.nonces.next_nonce() else {
            return Err(SealError::NoncesSpent);
        };
        let len = out.len();
        out.resize(len + TRANSFORM_HEADER_LEN, 0);
        out.copy_within(payload_start..len, payload_start + TRANSFORM_HEADER_LEN);
        encryption::seal(
            &self.keys.encrypt,
            &nonce,
            sid.as_u64(),
            &mut out[payload_start..],
        );
        Ok(())
    }
}

/// Why a frame could not be sealed.
pub(crate) enum SealError {
    /// The session's nonce counter is spent: the session must end.
    NoncesSpent,
    /// The session has no keys (any more).
    NoKeys,
}

impl Engine {
    /// The cipher to use with a 3.1.1 client that offered `offered`, by
    /// the server's preference ([`super::EngineConfig::ciphers`]).
    pub(crate) fn choose_cipher(&self, offered: impl Fn(u16) -> bool) -> Option<Cipher> {
        self.cfg.ciphers.iter().copied().find(|c| offered(c.id()))
    }

    /// The encryption policy of a share (IPC$ or a registered one),
    /// combined with the global one: the stricter wins.
    pub(crate) fn share_policy(&self, share: &str, is_ipc: bool) -> EncryptionPolicy {
        let own = if is_ipc {
            self.cfg.ipc_encryption
        } else {
            self.find_share(share)
                .map_or(EncryptionPolicy::Off, |i| self.shares[i].encryption)
        };
        own.max(self.cfg.encryption)
    }

    /// Whether requests on tree `tree` of `sid` must come encrypted (its
    /// share's policy is `required`).
    pub(crate) fn tree_requires_encryption(&self, sid: SessionId, tree: u32) -> bool {
        if self.cfg.encryption < EncryptionPolicy::Required
            && self.cfg.ipc_encryption < EncryptionPolicy::Required
            && !self
                .shares
                .iter()
                .any(|s| s.encryption == EncryptionPolicy::Required)
        {
            return false;
        }
        crate::ids::TreeId::new(tree)
            .and_then(|t| self.table.tree(sid, t))
            .is_some_and(|t| self.share_policy(t.share, t.is_ipc) == EncryptionPolicy::Required)
    }

    /// Whether `sid` has encryption keys.
    pub(crate) fn session_can_encrypt(&self, sid: SessionId) -> bool {
        self.table
            .session(sid)
            .is_some_and(|s| s.ext.crypt.is_some())
    }

    /// A TRANSFORM frame (MS-SMB2 3.3.5.2.1.1) lent immutably: copied into
    /// the engine's scratch buffer, then [`Engine::handle_transform_in_place`].
    pub(crate) fn handle_transform(
        &mut self,
        conn: ConnId,
        payload: &[u8],
        now: std::time::Instant,
        out: &mut Vec<u8>,
    ) -> FrameOutcome {
        let mut buf = std::mem::take(&mut self.decrypt_buf);
        buf.clear();
        buf.extend_from_slice(payload);
        let outcome = self.handle_transform_in_place(conn, &mut buf, now, out);
        self.decrypt_buf = buf;
        outcome
    }

    /// A TRANSFORM frame (MS-SMB2 3.3.5.2.1.1): decrypt where it lies
    /// (`buf` holds garbage afterwards), then answer the plaintext like any
    /// frame, sealing the answer.
    pub(crate) fn handle_transform_in_place(
        &mut self,
        conn: ConnId,
        buf: &mut [u8],
        now: std::time::Instant,
        out: &mut Vec<u8>,
    ) -> FrameOutcome {
        let Ok(t) = TransformHeader::parse(&*buf) else {
            tracing::debug!(shard = self.shard, ?conn, "malformed TRANSFORM header");
            return FrameOutcome::Close;
        };
        let Some(sid) = SessionId::from_raw(t.session_id())
            .filter(|&id| self.table.session_conn(id) == Some(conn))
        else {
            tracing::debug!(
                shard = self.shard,
                ?conn,
                "TRANSFORM for an unknown session"
            );
            return FrameOutcome::Close;
        };
        let plain_ok = match self.table.session(sid).and_then(|s| s.ext.crypt.as_ref()) {
            Some(c) => encryption::open(&c.keys.decrypt, buf).is_ok(),
            None => false,
        };
        if !plain_ok {
            tracing::debug!(shard = self.shard, ?conn, session = %sid, "TRANSFORM did not decrypt");
            FrameOutcome::Close
        } else {
            let plain = &buf[TRANSFORM_HEADER_LEN..];
            if classify(plain) != ProtocolId::Smb2 {
                // A TRANSFORM (or compressed message) inside a TRANSFORM.
                tracing::debug!(
                    shard = self.shard,
                    ?conn,
                    "TRANSFORM carries no SMB2 message"
                );
                FrameOutcome::Close
            } else {
                if let Some(c) = self
                    .table
                    .session_mut(sid)
                    .and_then(|s| s.ext.crypt.as_mut())
                {
                    c.client_encrypts = true;
                }
                self.frame_encrypted = Some(sid);
                let o = self.handle_smb2(conn, plain, now, out);
                self.frame_encrypted = None;
                o
            }
        }
    }

    /// The session whose keys seal the answer to the frame being handled,
    /// whose first response starts at `first` in `out`: the request's own
    /// session when it came encrypted; otherwise a session with
    /// EncryptData, unless the answer is to NEGOTIATE or SESSION_SETUP
    /// (MS-SMB2 3.3.4.1.4).
    pub(crate) fn frame_seal_session(&self, first: &[u8]) -> Option<SessionId> {
        if let Some(sid) = self.frame_encrypted {
            return Some(sid);
        }
        let hdr = Header::new_unchecked(&first[..HEADER_LEN]);
        if matches!(hdr.command(), Command::Negotiate | Command::SessionSetup) {
            return None;
        }
        let sid = SessionId::from_raw(hdr.session_id())?;
        let c = self.table.session(sid)?.ext.crypt.as_ref()?;
        c.encrypt_data.then_some(sid)
    }

    /// The session whose keys seal an answer made outside a frame (a
    /// backend completion, a deferred srvsvc answer): one with EncryptData
    /// or whose client encrypts.
    pub(crate) fn async_seal_session(&self, conn: ConnId, msg: &[u8]) -> Option<SessionId> {
        let hdr = Header::new_unchecked(&msg[..HEADER_LEN]);
        let sid = SessionId::from_raw(hdr.session_id())?;
        if self.table.session_conn(sid) != Some(conn) {
            return None;
        }
        let c = self.table.session(sid)?.ext.crypt.as_ref()?;
        c.encrypts().then_some(sid)
    }

    /// Finish one answer made outside a frame (its message starts right
    /// after `mark`): seal it when its session encrypts, else sign it as
    /// usual, then write the frame length.
    pub(crate) fn finish_async_answer(
        &mut self,
        conn: ConnId,
        out: &mut Vec<u8>,
        mark: FrameMark,
        frame_start: usize,
        request_signed: bool,
        now: std::time::Instant,
    ) {
        let start = mark.payload_start();
        let seal = self.async_seal_session(conn, &out[start..]);
        if seal.is_none() {
            let end = out.len();
            self.sign_response(conn, &mut out[start..end], request_signed);
        } else if !self.seal_or_end(seal, out, frame_start, start, now) {
            return;
        }
        super::finish_frame(mark, out, frame_start);
    }

    /// Seal everything from `payload_start` to the end of `out` (one or a
    /// chain of messages) as one TRANSFORM for `sid`, in place: the
    /// messages move up by the 52-byte header and are encrypted where they
    /// lie.
    pub(crate) fn seal_output(
        &mut self,
        sid: SessionId,
        out: &mut Vec<u8>,
        payload_start: usize,
    ) -> Result<(), SealError> {
        let Some(c) = self
            .table
            .session_mut(sid)
            .and_then(|s| s.ext.crypt.as_mut())
        else {
            return Err(SealError::NoKeys);
        };
        c.seal(sid, out, payload_start)
    }

    /// The session whose keys seal a message the server sends unasked
    /// (an oplock break, MS-SMB2 3.3.4.6) about an open of `sid` on tree
    /// `tree` of `conn`: `sid` when it encrypts (EncryptData, or its client
    /// sends encrypted requests) or when the tree's share asks for
    /// encryption (TreeConnect.Share.EncryptData, 3.3.4.1.4).
    pub(crate) fn unsolicited_seal_session(
        &self,
        conn: ConnId,
        sid: SessionId,
        tree: u32,
    ) -> Option<SessionId> {
        if self.table.session_conn(sid) != Some(conn) {
            return None;
        }
        let c = self.table.session(sid)?.ext.crypt.as_ref()?;
        let share_encrypts = || {
            crate::ids::TreeId::new(tree)
                .and_then(|t| self.table.tree(sid, t))
                .is_some_and(|t| self.share_policy(t.share, t.is_ipc) >= EncryptionPolicy::Desired)
        };
        (c.encrypt_data || c.client_encrypts || share_encrypts()).then_some(sid)
    }

    /// Seal the frame whose payload starts at `payload_start` when `sid`
    /// says so; false when the frame cannot go out (its session's nonces
    /// are spent: the session is logged off and the frame removed, from
    /// `frame_start`).
    pub(crate) fn seal_or_end(
        &mut self,
        sid: Option<SessionId>,
        out: &mut Vec<u8>,
        frame_start: usize,
        payload_start: usize,
        now: std::time::Instant,
    ) -> bool {
        let Some(sid) = sid else {
            return true;
        };
        match self.seal_output(sid, out, payload_start) {
            Ok(()) => true,
            Err(SealError::NoKeys) => {
                out.truncate(frame_start);
                false
            }
            Err(SealError::NoncesSpent) => {
                tracing::warn!(shard = self.shard, session = %sid, "nonce counter spent: session ended");
                out.truncate(frame_start);
                if let Some(conn) = self.table.session_conn(sid) {
                    self.close_session_pipes(conn, sid);
                    self.close_session_files(conn, sid, now);
                }
                let _ = self.table.logoff(sid, now);
                false
            }
        }
    }
}
