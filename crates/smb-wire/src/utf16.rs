//! Allocation-free helpers for UTF-16LE strings as they appear on the wire (MS-SMB2 2.2:
//! "Unicode strings ... MUST be encoded in UTF-16LE").

/// Iterates over the UTF-16 code units of little-endian bytes (a trailing odd byte is ignored).
pub fn units(bytes: &[u8]) -> impl Iterator<Item = u16> + Clone + '_ {
    bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
}

fn fold_ascii(u: u16) -> u16 {
    if (u16::from(b'a')..=u16::from(b'z')).contains(&u) {
        u - 32
    } else {
        u
    }
}

/// Compares UTF-16LE `bytes` with an ASCII string, ignoring ASCII case.
pub fn eq_ignore_ascii_case(bytes: &[u8], ascii: &str) -> bool {
    bytes.len() == ascii.len() * 2
        && units(bytes)
            .zip(ascii.bytes())
            .all(|(u, a)| fold_ascii(u) == fold_ascii(u16::from(a)))
}

/// `true` when UTF-16LE `bytes` ends with the ASCII `suffix`, ignoring ASCII case.
pub fn ends_with_ignore_ascii_case(bytes: &[u8], suffix: &str) -> bool {
    let n = suffix.len() * 2;
    bytes.len() % 2 == 0
        && bytes.len() >= n
        && eq_ignore_ascii_case(&bytes[bytes.len() - n..], suffix)
}

/// The part after the last backslash (the share name of `\\server\share`).
pub fn last_component(bytes: &[u8]) -> &[u8] {
    let even = &bytes[..bytes.len() & !1];
    let mut start = 0;
    for (i, c) in even.chunks_exact(2).enumerate() {
        if c == [b'\\', 0] {
            start = (i + 1) * 2;
        }
    }
    &even[start..]
}

/// Decodes UTF-16LE into `out` as UTF-8, replacing invalid sequences with U+FFFD. Returns the
/// written prefix of `out`; stops (without splitting a character) when `out` is full.
pub fn decode_into<'b>(bytes: &[u8], out: &'b mut [u8]) -> &'b str {
    let mut n = 0;
    for ch in char::decode_utf16(units(bytes)) {
        let c = ch.unwrap_or(char::REPLACEMENT_CHARACTER);
        let l = c.len_utf8();
        let Some(dst) = out.get_mut(n..n + l) else {
            break;
        };
        c.encode_utf8(dst);
        n += l;
    }
    core::str::from_utf8(&out[..n]).unwrap_or("")
}

/// Appends `s` encoded as UTF-16LE (for encoders and tests).
pub fn encode_into(s: &str, out: &mut Vec<u8>) {
    for u in s.encode_utf16() {
        out.extend_from_slice(&u.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        encode_into(s, &mut v);
        v
    }

    #[test]
    fn compares_and_finds_share() {
        let p = w("\\\\host\\IPC$");
        assert!(ends_with_ignore_ascii_case(&p, "\\ipc$"));
        assert!(!ends_with_ignore_ascii_case(&p, "\\c$"));
        assert!(eq_ignore_ascii_case(last_component(&p), "ipc$"));
        assert!(!eq_ignore_ascii_case(last_component(&p), "ipc"));
        assert!(!ends_with_ignore_ascii_case(&p[1..], "ipc$"));
        assert_eq!(last_component(&w("share")), &w("share")[..]);
    }

    #[test]
    fn decodes_into_a_buffer() {
        let p = w("\\\\h\\Ünï");
        let mut buf = [0u8; 64];
        assert_eq!(decode_into(&p, &mut buf), "\\\\h\\Ünï");
        let mut small = [0u8; 5];
        assert_eq!(decode_into(&p, &mut small), "\\\\h\\");
        // Lone surrogate
        assert_eq!(decode_into(&[0x00, 0xD8], &mut buf), "\u{FFFD}");
    }
}
