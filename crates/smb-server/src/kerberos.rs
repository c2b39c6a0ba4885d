//! The server's Kerberos acceptor: built from the `keytab` and
//! `kerberos-service` settings, or plugged in by an embedder
//! ([`ServeOptions::kerberos`](crate::ServeOptions::kerberos)).
//!
//! The keytab is read once, when the server starts and whenever `ctl config
//! set keytab` (or `kerberos-service`) is given, here on the starting or
//! admin thread: `smb-krb5` copies it into a `MEMORY:` keytab, so a logon on
//! a shard thread reads no file. Without the `kerberos` feature (no MIT
//! krb5 linked) a keytab setting is an error and logons are NTLMSSP only.

use std::sync::Arc;

use parking_lot::Mutex;
use smb_auth::kerberos::KerberosAcceptor;

use crate::config::Effective;

type Loaded = (String, String, Arc<dyn KerberosAcceptor>);

/// The acceptor in force and where it came from.
#[derive(Default)]
pub(crate) struct KerberosSlot {
    /// An embedder's acceptor: used as is, whatever the settings say.
    embedder: Option<Arc<dyn KerberosAcceptor>>,
    /// (keytab, service, acceptor) last loaded from the settings.
    loaded: Mutex<Option<Loaded>>,
}

impl std::fmt::Debug for KerberosSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KerberosSlot")
            .field("embedder", &self.embedder.is_some())
            .field(
                "loaded",
                &self
                    .loaded
                    .lock()
                    .as_ref()
                    .map(|(k, s, _)| (k.clone(), s.clone())),
            )
            .finish()
    }
}

impl KerberosSlot {
    pub(crate) fn new(embedder: Option<Arc<dyn KerberosAcceptor>>) -> Self {
        KerberosSlot {
            embedder,
            loaded: Mutex::new(None),
        }
    }

    /// The acceptor for `eff`: the embedder's, else the keytab's (loaded
    /// again when the keytab or service changed, or when `reload`).
    pub(crate) fn acceptor(
        &self,
        eff: &Effective,
        reload: bool,
    ) -> Result<Option<Arc<dyn KerberosAcceptor>>, String> {
        if let Some(a) = &self.embedder {
            return Ok(Some(a.clone()));
        }
        let mut loaded = self.loaded.lock();
        if eff.keytab.is_empty() {
            *loaded = None;
            return Ok(None);
        }
        if let Some((k, s, a)) = loaded.as_ref() {
            if !reload && *k == eff.keytab && *s == eff.kerberos_service {
                return Ok(Some(a.clone()));
            }
        }
        let a = load(&eff.keytab, &eff.kerberos_service)?;
        *loaded = Some((eff.keytab.clone(), eff.kerberos_service.clone(), a.clone()));
        Ok(Some(a))
    }
}

#[cfg(feature = "kerberos")]
fn load(keytab: &str, service: &str) -> Result<Arc<dyn KerberosAcceptor>, String> {
    let a = smb_krb5::GssAcceptor::from_keytab(keytab, service)?;
    tracing::info!(
        keytab,
        service = a.service(),
        keys = a.keys(),
        "Kerberos keytab loaded into memory"
    );
    Ok(Arc::new(a))
}

#[cfg(not(feature = "kerberos"))]
fn load(keytab: &str, _service: &str) -> Result<Arc<dyn KerberosAcceptor>, String> {
    Err(format!(
        "keytab {keytab}: this build has no Kerberos (the `kerberos` feature is off)"
    ))
}
