//! Credentials for the acceptor: the [`CredentialStore`] trait and a simple
//! in-memory store. NT hashes per MS-NLMP 3.3.1 (NTOWFv1).

use std::collections::HashMap;

pub use super::crypto::nt_hash;

/// What the acceptor needs to know about a user.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Credential {
    /// MD4(UTF-16LE(password)).
    pub nt_hash: [u8; 16],
    /// Whether the user may run administrative calls.
    pub admin: bool,
}

impl core::fmt::Debug for Credential {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Credential")
            .field("nt_hash", &"<redacted>")
            .field("admin", &self.admin)
            .finish()
    }
}

/// The authentication provider: looks users up by the name and domain the
/// client sent and gives their NT hash and administrator flag. Matching
/// rules (case, domain) are the store's business. smbcore's users file is
/// one implementation; an embedding server can answer from a directory or
/// a database.
///
/// ```
/// use smb_auth::ntlm::{nt_hash, Credential, CredentialStore};
///
/// /// Every user of domain `LAB` whose name starts with `svc-` has the
/// /// password `s3rvice`; nobody is an administrator.
/// struct ServiceAccounts;
///
/// impl CredentialStore for ServiceAccounts {
///     fn lookup(&self, user: &str, domain: &str) -> Option<Credential> {
///         (domain.eq_ignore_ascii_case("LAB") && user.starts_with("svc-"))
///             .then(|| Credential { nt_hash: nt_hash("s3rvice"), admin: false })
///     }
/// }
///
/// assert!(ServiceAccounts.lookup("svc-backup", "lab").is_some());
/// assert!(ServiceAccounts.lookup("alice", "LAB").is_none());
/// ```
pub trait CredentialStore {
    /// The credential of `user` in `domain`, or `None` for an unknown user.
    fn lookup(&self, user: &str, domain: &str) -> Option<Credential>;

    /// Whether the Kerberos principal `principal` (`user@REALM`, already
    /// authenticated by its ticket) is an administrator of this server.
    /// Nobody is, unless the store says so.
    fn principal_is_admin(&self, principal: &str) -> bool {
        let _ = principal;
        false
    }
}

/// A map from user name (case-insensitive) to credential; the domain the
/// client sends is ignored, as on a standalone server.
#[derive(Debug, Clone, Default)]
pub struct StaticCredentials {
    users: HashMap<String, Credential>,
}

impl StaticCredentials {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a user with a clear-text password.
    pub fn add_password(&mut self, user: &str, password: &str, admin: bool) -> &mut Self {
        self.add_hash(user, nt_hash(password), admin)
    }

    /// Adds (or replaces) a user with an NT hash.
    pub fn add_hash(&mut self, user: &str, nt_hash: [u8; 16], admin: bool) -> &mut Self {
        self.users
            .insert(user.to_lowercase(), Credential { nt_hash, admin });
        self
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the store has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl CredentialStore for StaticCredentials {
    fn lookup(&self, user: &str, _domain: &str) -> Option<Credential> {
        self.users.get(&user.to_lowercase()).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nt_hash_of_password_is_the_ms_nlmp_4_2_2_1_2_value() {
        // MS-NLMP 4.2.2.1.2 NTOWFv1("Password").
        assert_eq!(
            nt_hash("Password"),
            [
                0xa4, 0xf4, 0x9c, 0x40, 0x65, 0x10, 0xbd, 0xca, 0xb6, 0x82, 0x4e, 0xe7, 0xc3, 0x0f,
                0xd8, 0x52
            ]
        );
    }

    #[test]
    fn lookup_ignores_case() {
        let mut s = StaticCredentials::new();
        s.add_password("Admin", "pw", true);
        assert_eq!(s.lookup("ADMIN", "x").map(|c| c.admin), Some(true));
        assert!(s.lookup("other", "").is_none());
        assert_eq!(s.len(), 1);
    }
}
