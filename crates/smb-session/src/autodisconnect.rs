//! autodisconnect
