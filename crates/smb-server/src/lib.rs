//! smb-server: the runtime.
