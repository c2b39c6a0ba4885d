//! Per-connection protocol state (MS-SMB2 3.3.1.7 `Connection`).

use smb_auth::signing::SigningAlgorithm;

use super::backend::Files;
use super::credits::CreditWindow;
use super::ipc::Pipes;
use super::transmit::TxQueue;

/// Where the connection is in negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing received yet.
    Fresh,
    /// An SMB1 multi-protocol NEGOTIATE was answered with dialect 2.???;
    /// an SMB2 NEGOTIATE must follow.
    Wildcard,
    /// A dialect is in force.
    Negotiated,
}

/// What the engine keeps per connection beside the table's fields.
#[derive(Debug)]
pub struct ConnState {
    pub(crate) phase: Phase,
    /// Connection.Dialect.
    pub(crate) dialect: u16,
    /// Connection.ClientGuid, ClientSecurityMode, ClientCapabilities (kept
    /// for FSCTL_VALIDATE_NEGOTIATE_INFO, 3.3.5.15.12).
    pub(crate) client_guid: [u8; 16],
    pub(crate) client_security_mode: u16,
    pub(crate) client_capabilities: u32,
    /// Capabilities and SecurityMode the server answered with.
    pub(crate) server_capabilities: u32,
    pub(crate) server_security_mode: u16,
    /// Signing algorithm for 3.1.1 (SIGNING_CAPABILITIES), else by dialect.
    pub(crate) signing_algorithm: SigningAlgorithm,
    /// Connection.PreauthIntegrityHashValue (3.1.1 only).
    pub(crate) preauth: Option<Box<smb_auth::preauth::PreauthHash>>,
    /// The MessageId window.
    pub(crate) credits: CreditWindow,
    /// Open named pipes.
    pub(crate) pipes: Pipes,
    /// Disk-share sessions, trees, opens and pending operations.
    pub(crate) files: Files,
    /// Output for this connection only, waiting for its socket.
    pub(crate) tx: TxQueue,
    /// Answers to failed logons held back for this connection.
    pub(crate) held_answers: u8,
}

impl ConnState {
    /// A connection that has sent nothing yet.
    pub fn new() -> Self {
        ConnState {
            phase: Phase::Fresh,
            dialect: 0,
            client_guid: [0; 16],
            client_security_mode: 0,
            client_capabilities: 0,
            server_capabilities: 0,
            server_security_mode: 0,
            signing_algorithm: SigningAlgorithm::HmacSha256,
            preauth: None,
            credits: CreditWindow::new(),
            pipes: Pipes::default(),
            files: Files::default(),
            tx: TxQueue::default(),
            held_answers: 0,
        }
    }

    /// Whether a dialect is in force.
    pub fn is_negotiated(&self) -> bool {
        self.phase == Phase::Negotiated
    }

    /// The dialect in force (0 before negotiation).
    pub fn dialect(&self) -> u16 {
        self.dialect
    }
}

impl Default for ConnState {
    fn default() -> Self {
        Self::new()
    }
}
