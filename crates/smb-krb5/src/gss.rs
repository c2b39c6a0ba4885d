//! The calls into MIT krb5's GSS-API (and the few krb5 calls that copy a
//! keytab into memory). All of this crate's `unsafe` lives here; every
//! handle the library returns is owned by a guard that releases it on drop.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt;
use std::ptr;

use libgssapi_sys as sys;

/// DER contents of 1.2.840.113554.1.2.2.5.5, GSS_C_INQ_SSPI_SESSION_KEY:
/// the context's session key (acceptor subkey, else initiator subkey, else
/// the ticket session key), as MS-KILE 3.1.1.2 wants for SMB.
const OID_INQ_SSPI_SESSION_KEY: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x05, 0x05,
];
/// DER contents of 1.2.840.113554.1.2.2 (Kerberos V5).
const OID_KRB5: &[u8] = smb_auth::kerberos::OID_KRB5;
/// 1.2.840.113554.1.2.2.1: GSS_KRB5_NT_PRINCIPAL_NAME.
const OID_KRB5_NT_PRINCIPAL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x01];
/// 1.2.840.113554.1.2.1.4: GSS_C_NT_HOSTBASED_SERVICE (`service@host`).
const OID_NT_HOSTBASED_SERVICE: &[u8] =
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x01, 0x04];

const GSS_S_CONTINUE_NEEDED: u32 = 1;
const GSS_S_DEFECTIVE_TOKEN: u32 = 9 << 16;
const GSS_S_BAD_MECH: u32 = 1 << 16;
const ROUTINE_ERROR: u32 = 0xff << 16;

fn is_error(major: u32) -> bool {
    major & 0xffff_0000 != 0
}

/// A GSS-API failure: the major and (mechanism) minor status.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GssError {
    /// The GSS major status.
    pub major: u32,
    /// The mechanism's status (a krb5 error code for Kerberos).
    pub minor: u32,
}

impl GssError {
    /// Whether the major status says the token was not a valid token.
    pub fn is_defective_token(&self) -> bool {
        let r = self.major & ROUTINE_ERROR;
        r == GSS_S_DEFECTIVE_TOKEN || r == GSS_S_BAD_MECH
    }

    /// The krb5 error code carried in the minor status.
    pub fn krb5_code(&self) -> i32 {
        self.minor as i32
    }
}

impl fmt::Debug for GssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for GssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) (major {:#x}, minor {})",
            status_text(self.major, 1),
            status_text(self.minor, 2),
            self.major,
            self.minor as i32
        )
    }
}

impl std::error::Error for GssError {}

/// gss_display_status for one code (`kind` 1: GSS code, 2: mechanism code).
fn status_text(code: u32, kind: c_int) -> String {
    let mut out = String::new();
    let mut ctx: u32 = 0;
    let mut mech = oid_desc(OID_KRB5);
    loop {
        let mut minor = 0u32;
        let mut buf = OwnedBuffer::empty();
        // SAFETY: every pointer is to a live local; `buf` takes the buffer
        // the library allocates and releases it on drop.
        let major = unsafe {
            sys::gss_display_status(&mut minor, code, kind, &mut mech, &mut ctx, &mut buf.0)
        };
        if is_error(major) {
            break;
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(&String::from_utf8_lossy(buf.as_slice()));
        if ctx == 0 {
            break;
        }
    }
    out
}

fn oid_desc(bytes: &'static [u8]) -> sys::gss_OID_desc_struct {
    sys::gss_OID_desc_struct {
        length: bytes.len() as u32,
        // The library only reads OIDs passed in.
        elements: bytes.as_ptr() as *mut c_void,
    }
}

fn borrowed_buffer(bytes: &[u8]) -> sys::gss_buffer_desc {
    sys::gss_buffer_desc {
        length: bytes.len(),
        // The library only reads input buffers.
        value: bytes.as_ptr() as *mut c_void,
    }
}

/// A buffer the library allocated (gss_release_buffer on drop).
struct OwnedBuffer(sys::gss_buffer_desc);

impl OwnedBuffer {
    fn empty() -> Self {
        OwnedBuffer(sys::gss_buffer_desc {
            length: 0,
            value: ptr::null_mut(),
        })
    }

    fn as_slice(&self) -> &[u8] {
        if self.0.value.is_null() || self.0.length == 0 {
            return &[];
        }
        // SAFETY: the library filled `value` with `length` bytes it owns
        // until gss_release_buffer, which only Drop calls.
        unsafe { std::slice::from_raw_parts(self.0.value as *const u8, self.0.length) }
    }
}

impl Drop for OwnedBuffer {
    fn drop(&mut self) {
        if !self.0.value.is_null() {
            let mut minor = 0;
            // SAFETY: the buffer came from the library and is released once.
            unsafe { sys::gss_release_buffer(&mut minor, &mut self.0) };
        }
    }
}

/// A GSS name (gss_release_name on drop).
struct Name(sys::gss_name_t);

impl Name {
    fn import(text: &str, kind: &'static [u8]) -> Result<Name, GssError> {
        let mut minor = 0;
        let mut buf = borrowed_buffer(text.as_bytes());
        let mut oid = oid_desc(kind);
        let mut name: sys::gss_name_t = ptr::null_mut();
        // SAFETY: input buffer and OID point to live data for the call; the
        // name it returns is owned by the guard below.
        let major = unsafe { sys::gss_import_name(&mut minor, &mut buf, &mut oid, &mut name) };
        let name = Name(name);
        if is_error(major) {
            return Err(GssError { major, minor });
        }
        Ok(name)
    }

    fn display(&self) -> Result<String, GssError> {
        let mut minor = 0;
        let mut buf = OwnedBuffer::empty();
        // SAFETY: `self.0` is a live name; the text goes to `buf`.
        let major =
            unsafe { sys::gss_display_name(&mut minor, self.0, &mut buf.0, ptr::null_mut()) };
        if is_error(major) {
            return Err(GssError { major, minor });
        }
        Ok(String::from_utf8_lossy(buf.as_slice()).into_owned())
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        if !self.0.is_null() {
            let mut minor = 0;
            // SAFETY: a name from the library, released once.
            unsafe { sys::gss_release_name(&mut minor, &mut self.0) };
        }
    }
}

/// A security context (gss_delete_sec_context on drop).
struct Ctx(sys::gss_ctx_id_t);

impl Drop for Ctx {
    fn drop(&mut self) {
        if !self.0.is_null() {
            let mut minor = 0;
            // SAFETY: a context from the library, deleted once; no output token.
            unsafe { sys::gss_delete_sec_context(&mut minor, &mut self.0, ptr::null_mut()) };
        }
    }
}

impl Ctx {
    /// Seconds left of the context (the ticket's end minus now).
    fn lifetime(&self) -> Result<u32, GssError> {
        let mut minor = 0;
        let mut life = 0u32;
        // SAFETY: a live context; only the lifetime out-pointer is asked for.
        let major = unsafe {
            sys::gss_inquire_context(
                &mut minor,
                self.0,
                ptr::null_mut(),
                ptr::null_mut(),
                &mut life,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if is_error(major) {
            return Err(GssError { major, minor });
        }
        Ok(life)
    }

    /// GSS_C_INQ_SSPI_SESSION_KEY: the session key bytes.
    fn session_key(&self) -> Result<Vec<u8>, GssError> {
        let mut minor = 0;
        let mut oid = oid_desc(OID_INQ_SSPI_SESSION_KEY);
        let mut set: sys::gss_buffer_set_t = ptr::null_mut();
        // SAFETY: a live, established context; the buffer set is released
        // below on every path.
        let major =
            unsafe { sys::gss_inquire_sec_context_by_oid(&mut minor, self.0, &mut oid, &mut set) };
        if is_error(major) {
            return Err(GssError { major, minor });
        }
        let key = if set.is_null() {
            Vec::new()
        } else {
            // SAFETY: a non-null set from the library: `count` buffers at
            // `elements`, each `length` bytes at `value`.
            unsafe {
                let s = &*set;
                if s.count == 0 || s.elements.is_null() {
                    Vec::new()
                } else {
                    let b = &*s.elements;
                    if b.value.is_null() {
                        Vec::new()
                    } else {
                        std::slice::from_raw_parts(b.value as *const u8, b.length).to_vec()
                    }
                }
            }
        };
        let mut minor = 0;
        // SAFETY: the set from the call above, released once (null is fine).
        unsafe { sys::gss_release_buffer_set(&mut minor, &mut set) };
        if key.is_empty() {
            return Err(GssError {
                major: sys::_GSS_S_FAILURE,
                minor: 0,
            });
        }
        Ok(key)
    }
}

/// Credentials (gss_release_cred on drop).
#[derive(Debug)]
pub struct Cred(sys::gss_cred_id_t);

// SAFETY: MIT krb5 locks a credential internally (krb5_gss_cred_id_rec has
// its own mutex), so one acceptor credential may serve concurrent
// gss_accept_sec_context calls from several shard threads; it is released
// once, by Drop, when no call can use it any more.
unsafe impl Send for Cred {}
// SAFETY: see above.
unsafe impl Sync for Cred {}

impl Drop for Cred {
    fn drop(&mut self) {
        if !self.0.is_null() {
            let mut minor = 0;
            // SAFETY: a credential from the library, released once.
            unsafe { sys::gss_release_cred(&mut minor, &mut self.0) };
        }
    }
}

impl Cred {
    /// Acceptor credentials for host-based service `service` (`cifs@host`)
    /// from the keytab `keytab` (e.g. `MEMORY:name`), with MIT's replay
    /// cache off (`rcache = none:`: the caller keeps its own, in memory).
    pub fn acceptor(service: &str, keytab: &str) -> Result<Cred, GssError> {
        let name = Name::import(service, OID_NT_HOSTBASED_SERVICE)?;
        let keys = [c"keytab", c"rcache"];
        let kt = CString::new(keytab).map_err(|_| GssError {
            major: sys::_GSS_S_FAILURE,
            minor: 0,
        })?;
        let values = [kt.as_c_str(), c"none:"];
        let mut elements: Vec<sys::gss_key_value_element_struct> = keys
            .iter()
            .zip(values.iter())
            .map(|(k, v)| sys::gss_key_value_element_struct {
                key: k.as_ptr(),
                value: v.as_ptr(),
            })
            .collect();
        let store = sys::gss_key_value_set_struct {
            count: elements.len() as u32,
            elements: elements.as_mut_ptr(),
        };
        let mut mech = oid_desc(OID_KRB5);
        let mut mechs = sys::gss_OID_set_desc_struct {
            count: 1,
            elements: &mut mech,
        };
        let mut cred: sys::gss_cred_id_t = ptr::null_mut();
        let mut minor = 0;
        // SAFETY: name, OID set and key/value set point to live locals for
        // the duration of the call; the credential goes to the guard.
        let major = unsafe {
            sys::gss_acquire_cred_from(
                &mut minor,
                name.0,
                0,
                &mut mechs,
                sys::GSS_C_ACCEPT as sys::gss_cred_usage_t,
                &store,
                &mut cred,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        let cred = Cred(cred);
        if is_error(major) {
            return Err(GssError { major, minor });
        }
        Ok(cred)
    }

    /// Initiator credentials: `principal`'s, obtained from the KDC with
    /// `password` (kept in memory), or with `None` the default ccache's.
    pub fn initiator(principal: &str, password: Option<&str>) -> Result<Cred, GssError> {
        let name = Name::import(principal, OID_KRB5_NT_PRINCIPAL)?;
        let mut mech = oid_desc(OID_KRB5);
        let mut mechs = sys::gss_OID_set_desc_struct {
            count: 1,
            elements: &mut mech,
        };
        let mut cred: sys::gss_cred_id_t = ptr::null_mut();
        let mut minor = 0;
        let major = match password {
            Some(p) => {
                let mut pw = borrowed_buffer(p.as_bytes());
                // SAFETY: as for gss_acquire_cred_from above.
                unsafe {
                    sys::gss_acquire_cred_with_password(
                        &mut minor,
                        name.0,
                        &mut pw,
                        0,
                        &mut mechs,
                        sys::GSS_C_INITIATE as sys::gss_cred_usage_t,
                        &mut cred,
                        ptr::null_mut(),
                        ptr::null_mut(),
                    )
                }
            }
            // SAFETY: as above.
            None => unsafe {
                sys::gss_acquire_cred(
                    &mut minor,
                    name.0,
                    0,
                    &mut mechs,
                    sys::GSS_C_INITIATE as sys::gss_cred_usage_t,
                    &mut cred,
                    ptr::null_mut(),
                    ptr::null_mut(),
                )
            },
        };
        let cred = Cred(cred);
        if is_error(major) {
            return Err(GssError { major, minor });
        }
        Ok(cred)
    }
}

/// What one accepted AP-REQ gives.
pub struct Accepted {
    /// The AP-REP token (may be empty).
    pub output: Vec<u8>,
    /// `user@REALM`.
    pub principal: String,
    /// The session key.
    pub key: Vec<u8>,
    /// Seconds the context (the ticket) stays valid; `u32::MAX`: indefinite.
    pub lifetime_secs: u32,
}

impl fmt::Debug for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("principal", &self.principal)
            .field("lifetime_secs", &self.lifetime_secs)
            .finish_non_exhaustive()
    }
}

/// Accepts one AP-REQ with `cred` (a one-leg Kerberos exchange).
pub fn accept(cred: &Cred, token: &[u8]) -> Result<Accepted, GssError> {
    let mut minor = 0;
    let mut ctx = Ctx(ptr::null_mut());
    let mut input = borrowed_buffer(token);
    let mut src: sys::gss_name_t = ptr::null_mut();
    let mut out = OwnedBuffer::empty();
    let mut flags = 0u32;
    let mut time_rec = 0u32;
    // SAFETY: every pointer is to a live local or guard; the context, name
    // and output buffer the library allocates are owned by guards.
    let major = unsafe {
        sys::gss_accept_sec_context(
            &mut minor,
            &mut ctx.0,
            cred.0,
            &mut input,
            ptr::null_mut(),
            &mut src,
            ptr::null_mut(),
            &mut out.0,
            &mut flags,
            &mut time_rec,
            ptr::null_mut(),
        )
    };
    let src = Name(src);
    if is_error(major) {
        return Err(GssError { major, minor });
    }
    if major & GSS_S_CONTINUE_NEEDED != 0 {
        // Kerberos over SMB is one leg (no DCE style, no user-to-user).
        return Err(GssError {
            major: GSS_S_DEFECTIVE_TOKEN,
            minor: 0,
        });
    }
    // MIT's `time_rec` from accept includes the clock skew it allows;
    // gss_inquire_context gives the ticket's own end (endtime - now).
    let _ = time_rec;
    Ok(Accepted {
        output: out.as_slice().to_vec(),
        principal: src.display()?,
        key: ctx.session_key()?,
        lifetime_secs: ctx.lifetime()?,
    })
}

/// The client side of one Kerberos context (mutual authentication).
pub struct Initiation {
    ctx: Ctx,
    target: Name,
    token: Vec<u8>,
}

impl fmt::Debug for Initiation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Initiation")
            .field("token_len", &self.token.len())
            .finish_non_exhaustive()
    }
}

// SAFETY: the context is used by one thread at a time (the owner of the
// `Initiation`, `&mut self` for every call), which MIT allows.
unsafe impl Send for Initiation {}

impl Initiation {
    /// Starts a context to `target` (`cifs@host`) with `cred` (`None`: the
    /// default credentials): the AP-REQ is [`Initiation::token`].
    pub fn start(cred: Option<&Cred>, target: &str) -> Result<Initiation, GssError> {
        let target = Name::import(target, OID_NT_HOSTBASED_SERVICE)?;
        let mut init = Initiation {
            ctx: Ctx(ptr::null_mut()),
            target,
            token: Vec::new(),
        };
        let major = init.step(cred, &[])?;
        if major & GSS_S_CONTINUE_NEEDED == 0 {
            // Without mutual authentication there would be no AP-REP to wait for.
            return Err(GssError {
                major: sys::_GSS_S_FAILURE,
                minor: 0,
            });
        }
        Ok(init)
    }

    /// The AP-REQ token.
    pub fn token(&self) -> &[u8] {
        &self.token
    }

    fn step(&mut self, cred: Option<&Cred>, input: &[u8]) -> Result<u32, GssError> {
        let mut minor = 0;
        let mut mech = oid_desc(OID_KRB5);
        let mut input = borrowed_buffer(input);
        let mut out = OwnedBuffer::empty();
        let mut ret_flags = 0u32;
        // SAFETY: every pointer is to a live local, guard or field; the
        // context and output buffer are owned by guards.
        let major = unsafe {
            sys::gss_init_sec_context(
                &mut minor,
                cred.map_or(ptr::null_mut(), |c| c.0),
                &mut self.ctx.0,
                self.target.0,
                &mut mech,
                sys::GSS_C_MUTUAL_FLAG | sys::GSS_C_INTEG_FLAG,
                0,
                ptr::null_mut(),
                if input.length == 0 {
                    ptr::null_mut()
                } else {
                    &mut input
                },
                ptr::null_mut(),
                &mut out.0,
                &mut ret_flags,
                ptr::null_mut(),
            )
        };
        if is_error(major) {
            return Err(GssError { major, minor });
        }
        self.token = out.as_slice().to_vec();
        Ok(major)
    }

    /// Checks the server's AP-REP and returns the session key.
    pub fn finish(&mut self, ap_rep: &[u8]) -> Result<Vec<u8>, GssError> {
        self.step(None, ap_rep)?;
        self.ctx.session_key()
    }
}

// ----- keytab copied into memory (krb5 API) -----------------------------

#[repr(C)]
struct KeyBlock {
    magic: i32,
    enctype: i32,
    length: u32,
    contents: *mut u8,
}

/// `krb5_keytab_entry` (krb5.h).
#[repr(C)]
struct KeytabEntry {
    magic: i32,
    principal: *mut c_void,
    timestamp: i32,
    vno: u32,
    key: KeyBlock,
}

#[link(name = "krb5")]
extern "C" {
    fn krb5_init_context(ctx: *mut *mut c_void) -> i32;
    fn krb5_free_context(ctx: *mut c_void);
    fn krb5_kt_resolve(ctx: *mut c_void, name: *const c_char, kt: *mut *mut c_void) -> i32;
    fn krb5_kt_start_seq_get(ctx: *mut c_void, kt: *mut c_void, cursor: *mut *mut c_void) -> i32;
    fn krb5_kt_next_entry(
        ctx: *mut c_void,
        kt: *mut c_void,
        entry: *mut KeytabEntry,
        cursor: *mut *mut c_void,
    ) -> i32;
    fn krb5_kt_end_seq_get(ctx: *mut c_void, kt: *mut c_void, cursor: *mut *mut c_void) -> i32;
    fn krb5_kt_add_entry(ctx: *mut c_void, kt: *mut c_void, entry: *mut KeytabEntry) -> i32;
    fn krb5_free_keytab_entry_contents(ctx: *mut c_void, entry: *mut KeytabEntry) -> i32;
    fn krb5_kt_close(ctx: *mut c_void, kt: *mut c_void) -> i32;
    fn krb5_get_error_message(ctx: *mut c_void, code: i32) -> *const c_char;
    fn krb5_unparse_name(ctx: *mut c_void, principal: *mut c_void, name: *mut *mut c_char) -> i32;
    fn krb5_free_unparsed_name(ctx: *mut c_void, name: *mut c_char);
    fn krb5_get_profile(ctx: *mut c_void, profile: *mut *mut c_void) -> i32;
    fn profile_get_integer(
        profile: *mut c_void,
        name: *const c_char,
        subname: *const c_char,
        subsubname: *const c_char,
        def_val: c_int,
        ret: *mut c_int,
    ) -> i32;
    fn profile_release(profile: *mut c_void);
    fn krb5_free_error_message(ctx: *mut c_void, msg: *const c_char);
}

/// The clock skew krb5.conf allows (`[libdefaults] clockskew`, seconds;
/// 300 when unset), as MIT reads it.
pub fn clock_skew_secs() -> u32 {
    let mut ctx: *mut c_void = ptr::null_mut();
    // SAFETY: out-pointers to locals; the profile and context are released
    // before returning.
    unsafe {
        if krb5_init_context(&mut ctx) != 0 {
            return 300;
        }
        let mut profile: *mut c_void = ptr::null_mut();
        let mut v: c_int = 300;
        if krb5_get_profile(ctx, &mut profile) == 0 {
            let _ = profile_get_integer(
                profile,
                c"libdefaults".as_ptr(),
                c"clockskew".as_ptr(),
                ptr::null(),
                300,
                &mut v,
            );
            profile_release(profile);
        }
        krb5_free_context(ctx);
        u32::try_from(v).unwrap_or(300)
    }
}

/// KRB5_KT_END: no more entries.
const KRB5_KT_END: i32 = -1765328202;

/// A copy of a keytab in a process-wide `MEMORY:` keytab, held open for as
/// long as this value lives (MIT frees a memory keytab with its last handle).
pub struct MemoryKeytab {
    ctx: *mut c_void,
    kt: *mut c_void,
    name: String,
    entries: usize,
    realms: Vec<String>,
}

// SAFETY: the krb5 context and handle are only used by `load` (before the
// value exists for anyone else) and by Drop; MIT's memory keytab list is
// locked internally, so the GSS-API calls that read it by name from other
// threads are safe.
unsafe impl Send for MemoryKeytab {}
// SAFETY: no method touches the context after `load`.
unsafe impl Sync for MemoryKeytab {}

impl fmt::Debug for MemoryKeytab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryKeytab")
            .field("name", &self.name)
            .field("entries", &self.entries)
            .finish()
    }
}

impl Drop for MemoryKeytab {
    fn drop(&mut self) {
        // SAFETY: handle and context from `load`, closed and freed once.
        unsafe {
            if !self.kt.is_null() {
                krb5_kt_close(self.ctx, self.kt);
            }
            krb5_free_context(self.ctx);
        }
    }
}

impl MemoryKeytab {
    /// Reads every entry of the keytab `source` (a path or `FILE:path`)
    /// into a new `MEMORY:` keytab named `name`.
    pub fn load(source: &str, name: &str) -> Result<MemoryKeytab, String> {
        let src_name = CString::new(source).map_err(|_| "keytab name has a NUL".to_string())?;
        let dst_name = CString::new(format!("MEMORY:{name}")).map_err(|_| "NUL".to_string())?;
        let mut ctx: *mut c_void = ptr::null_mut();
        // SAFETY: out-pointer to a local.
        let rc = unsafe { krb5_init_context(&mut ctx) };
        if rc != 0 {
            return Err(format!("krb5_init_context failed ({rc})"));
        }
        let mut mem = MemoryKeytab {
            ctx,
            kt: ptr::null_mut(),
            name: format!("MEMORY:{name}"),
            entries: 0,
            realms: Vec::new(),
        };
        let err = |ctx: *mut c_void, what: &str, rc: i32| -> String {
            // SAFETY: a live context; the message is copied, then freed.
            let msg = unsafe {
                let m = krb5_get_error_message(ctx, rc);
                let s = if m.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(m).to_string_lossy().into_owned()
                };
                krb5_free_error_message(ctx, m);
                s
            };
            format!("{what}: {msg} ({rc})")
        };
        // SAFETY: live context and C strings; handles are closed below or
        // by Drop; each entry is freed after it is copied.
        unsafe {
            let rc = krb5_kt_resolve(ctx, dst_name.as_ptr(), &mut mem.kt);
            if rc != 0 {
                return Err(err(ctx, "MEMORY keytab", rc));
            }
            let mut src: *mut c_void = ptr::null_mut();
            let rc = krb5_kt_resolve(ctx, src_name.as_ptr(), &mut src);
            if rc != 0 {
                return Err(err(ctx, source, rc));
            }
            let mut cursor: *mut c_void = ptr::null_mut();
            let rc = krb5_kt_start_seq_get(ctx, src, &mut cursor);
            if rc != 0 {
                krb5_kt_close(ctx, src);
                return Err(err(ctx, source, rc));
            }
            let mut result = Ok(());
            loop {
                let mut entry: KeytabEntry = std::mem::zeroed();
                let rc = krb5_kt_next_entry(ctx, src, &mut entry, &mut cursor);
                if rc == KRB5_KT_END {
                    break;
                }
                if rc != 0 {
                    result = Err(err(ctx, source, rc));
                    break;
                }
                let mut text: *mut c_char = ptr::null_mut();
                if krb5_unparse_name(ctx, entry.principal, &mut text) == 0 && !text.is_null() {
                    let p = CStr::from_ptr(text).to_string_lossy().into_owned();
                    krb5_free_unparsed_name(ctx, text);
                    if let Some(r) = crate::realm_of(&p) {
                        if !mem.realms.iter().any(|x| x == r) {
                            mem.realms.push(r.to_string());
                        }
                    }
                }
                let rc = krb5_kt_add_entry(ctx, mem.kt, &mut entry);
                krb5_free_keytab_entry_contents(ctx, &mut entry);
                if rc != 0 {
                    result = Err(err(ctx, "copying a keytab entry", rc));
                    break;
                }
                mem.entries += 1;
            }
            krb5_kt_end_seq_get(ctx, src, &mut cursor);
            krb5_kt_close(ctx, src);
            result?;
        }
        if mem.entries == 0 {
            return Err(format!("{source}: no keys"));
        }
        Ok(mem)
    }

    /// The `MEMORY:` name GSS-API finds it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of keys copied.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// The realms of the keytab's principals.
    pub fn realms(&self) -> &[String] {
        &self.realms
    }
}
