//! The users file: who may log in with NTLMv2, and who is an administrator.
//!
//! ```toml
//! [[user]]
//! name = "admin"
//! password = "secret"      # or nt_hash = "32 hex digits"
//! admin = true
//! ```
//!
//! User names match case-insensitively, as on Windows and Samba.
//!
//! A Kerberos principal (a name with `@REALM`) is listed without a password:
//! its ticket is its proof. Such an entry only says whether the principal
//! is an administrator; a principal not listed may still log on with a
//! ticket, as an ordinary user.
//!
//! ```toml
//! [[user]]
//! name = "bob@SMBCORE.TEST"
//! admin = true
//! ```

use std::collections::HashMap;
use std::path::Path;

use smb_auth::ntlm::{Credential, CredentialStore};

/// Parsed users, keyed by lower-cased name.
#[derive(Debug, Clone, Default)]
pub struct UserFile {
    users: HashMap<String, Credential>,
    /// Kerberos principals (lower-cased `user@realm`) and their admin flag.
    principals: HashMap<String, bool>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm {
    #[serde(default)]
    user: Vec<UserForm>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserForm {
    name: String,
    password: Option<String>,
    nt_hash: Option<String>,
    #[serde(default)]
    admin: bool,
}

impl UserFile {
    /// Read and parse a users file; errors are one line naming the file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read users file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("users file {}: {e}", path.display()))
    }

    /// Parse the TOML text of a users file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let form: FileForm = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let mut users = HashMap::new();
        let mut principals = HashMap::new();
        for u in form.user {
            if u.name.is_empty() {
                return Err("a [[user]] has an empty name".into());
            }
            if u.name.contains('@') && u.password.is_none() && u.nt_hash.is_none() {
                if principals.insert(u.name.to_lowercase(), u.admin).is_some() {
                    return Err(format!("user {} is listed twice", u.name));
                }
                continue;
            }
            let nt_hash = match (u.password, u.nt_hash) {
                (Some(p), None) => smb_auth::ntlm::nt_hash(&p),
                (None, Some(h)) => parse_hex16(&h)
                    .ok_or_else(|| format!("user {}: nt_hash must be 32 hex digits", u.name))?,
                _ => {
                    return Err(format!(
                        "user {}: give exactly one of password or nt_hash",
                        u.name
                    ))
                }
            };
            let key = u.name.to_lowercase();
            if users
                .insert(
                    key,
                    Credential {
                        nt_hash,
                        admin: u.admin,
                    },
                )
                .is_some()
            {
                return Err(format!("user {} is listed twice", u.name));
            }
        }
        Ok(UserFile { users, principals })
    }

    /// Add or replace a user (for embedding and tests).
    pub fn add(&mut self, name: &str, password: &str, admin: bool) {
        self.users.insert(
            name.to_lowercase(),
            Credential {
                nt_hash: smb_auth::ntlm::nt_hash(password),
                admin,
            },
        );
    }

    /// Add or replace a Kerberos principal (`user@REALM`) entry.
    pub fn add_principal(&mut self, principal: &str, admin: bool) {
        self.principals.insert(principal.to_lowercase(), admin);
    }

    /// Number of users (password and principal entries).
    pub fn len(&self) -> usize {
        self.users.len() + self.principals.len()
    }

    /// Whether no user is defined.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.principals.is_empty()
    }
}

impl CredentialStore for UserFile {
    fn lookup(&self, user: &str, _domain: &str) -> Option<Credential> {
        self.users.get(&user.to_lowercase()).cloned()
    }

    fn principal_is_admin(&self, principal: &str) -> bool {
        self.principals
            .get(&principal.to_lowercase())
            .copied()
            .unwrap_or(false)
    }
}

fn parse_hex16(s: &str) -> Option<[u8; 16]> {
    let s = s.trim();
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwords_hashes_and_admin_flags() {
        let f = UserFile::parse(
            r#"
[[user]]
name = "Admin"
password = "Password"
admin = true

[[user]]
name = "bob"
nt_hash = "a4f49c406510bdcab6824ee7c30fd852"
"#,
        )
        .unwrap();
        let a = f.lookup("ADMIN", "").unwrap();
        assert!(a.admin);
        // MS-NLMP 4.2.2.1.2: NTOWFv1("Password").
        assert_eq!(
            a.nt_hash,
            parse_hex16("a4f49c406510bdcab6824ee7c30fd852").unwrap()
        );
        let b = f.lookup("Bob", "DOMAIN").unwrap();
        assert!(!b.admin);
        assert!(f.lookup("carol", "").is_none());
    }

    #[test]
    fn principals_without_passwords_say_who_is_an_administrator() {
        let f = UserFile::parse(
            r#"
[[user]]
name = "bob@SMBCORE.TEST"
admin = true

[[user]]
name = "carol@SMBCORE.TEST"
"#,
        )
        .unwrap();
        assert!(f.principal_is_admin("BOB@smbcore.test"));
        assert!(!f.principal_is_admin("carol@SMBCORE.TEST"));
        assert!(!f.principal_is_admin("bob@OTHER.TEST"));
        // A principal entry is no NTLM password.
        assert!(f.lookup("bob@SMBCORE.TEST", "").is_none());
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn rejects_bad_files_with_a_reason() {
        assert!(UserFile::parse("[[user]]\nname = \"x\"\n")
            .unwrap_err()
            .contains("exactly one"));
        assert!(
            UserFile::parse("[[user]]\nname = \"x\"\nnt_hash = \"zz\"\n")
                .unwrap_err()
                .contains("32 hex")
        );
        assert!(UserFile::parse("[[user]]\nname = \"x\"\npassword = \"a\"\nshell = 1\n").is_err());
        assert!(UserFile::parse(
            "[[user]]\nname = \"x\"\npassword = \"a\"\n[[user]]\nname = \"X\"\npassword = \"b\"\n"
        )
        .unwrap_err()
        .contains("twice"));
    }
}
