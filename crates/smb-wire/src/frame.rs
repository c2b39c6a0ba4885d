//! RFC 1002 session-message framing as used by SMB2 direct TCP (MS-SMB2 2.1).
//!
//! Each frame is a zero type byte, a 24-bit big-endian payload length, then the payload.

use crate::error::WireError;
use core::fmt;
use core::ops::Range;

/// Length of the framing header.
pub const FRAME_HEADER_LEN: usize = 4;
/// The largest length the 24-bit field can carry.
pub const MAX_FRAME_LEN: usize = 0x00FF_FFFF;

/// A framing error; the connection must be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The type byte is not 0x00 (direct TCP carries only session messages).
    BadType(u8),
    /// The announced length exceeds the configured maximum.
    TooLarge {
        /// Announced payload length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        WireError::from(*self).fmt(f)
    }
}

impl std::error::Error for FrameError {}

impl From<FrameError> for WireError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::BadType(got) => WireError::BadFrameType { got },
            FrameError::TooLarge { len, max } => WireError::FrameTooLarge { len, max },
        }
    }
}

/// Finds the first frame in `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, or `Ok(Some((payload, consumed)))` where
/// `payload` indexes the payload inside `buf` and `consumed` is the frame's total length. The
/// type byte is checked as soon as one byte is present and the length as soon as four are, so
/// an oversized frame is refused before any of its body is buffered.
pub fn split_frame(
    buf: &[u8],
    max_frame: usize,
) -> Result<Option<(Range<usize>, usize)>, FrameError> {
    let Some(&ty) = buf.first() else {
        return Ok(None);
    };
    if ty != 0 {
        return Err(FrameError::BadType(ty));
    }
    let Some(h) = buf.get(..FRAME_HEADER_LEN) else {
        return Ok(None);
    };
    let len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
    if len > max_frame {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame,
        });
    }
    let end = FRAME_HEADER_LEN + len;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((FRAME_HEADER_LEN..end, end)))
}

/// Iterator over the complete frames at the front of a buffer. Stops at the first partial
/// frame (see [`Frames::consumed`]) or after yielding an error.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    buf: &'a [u8],
    pos: usize,
    max_frame: usize,
    failed: bool,
}

impl<'a> Frames<'a> {
    /// Iterates over the frames in `buf`, each at most `max_frame` payload bytes.
    pub fn new(buf: &'a [u8], max_frame: usize) -> Self {
        Frames {
            buf,
            pos: 0,
            max_frame,
            failed: false,
        }
    }

    /// Bytes taken by the frames yielded so far (the caller drops them from its buffer).
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// The bytes left after the frames yielded so far (a partial frame, or garbage after an error).
    pub fn remainder(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<&'a [u8], FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.remainder();
        match split_frame(rest, self.max_frame) {
            Ok(None) => None,
            Ok(Some((range, used))) => {
                self.pos += used;
                rest.get(range).map(Ok)
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for Frames<'_> {}

/// Appends a frame header for a payload of `len` bytes.
///
/// # Panics
/// If `len` exceeds [`MAX_FRAME_LEN`] (an encoder bug: SMB2 messages are far smaller).
pub fn write_frame_header(out: &mut Vec<u8>, len: usize) {
    assert!(
        len <= MAX_FRAME_LEN,
        "frame payload of {len} bytes too large"
    );
    out.extend_from_slice(&[0, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
}

/// A reserved frame header, patched by [`FrameMark::finish`] once the payload is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "finish() writes the frame length"]
pub struct FrameMark {
    at: usize,
}

impl FrameMark {
    /// Appends a placeholder frame header to `out`; write the payload after it.
    pub fn begin(out: &mut Vec<u8>) -> FrameMark {
        let at = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        FrameMark { at }
    }

    /// Where the payload starts in `out`.
    pub fn payload_start(&self) -> usize {
        self.at + FRAME_HEADER_LEN
    }

    /// Writes the length of everything appended since [`FrameMark::begin`]. Fails (and leaves
    /// the header zeroed) when the payload is larger than [`MAX_FRAME_LEN`].
    pub fn finish(self, out: &mut [u8]) -> Result<usize, FrameError> {
        let len = out.len().saturating_sub(self.payload_start());
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge {
                len,
                max: MAX_FRAME_LEN,
            });
        }
        if let Some(h) = out.get_mut(self.at..self.at + FRAME_HEADER_LEN) {
            h.copy_from_slice(&[0, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        write_frame_header(&mut v, payload.len());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn whole_frame() {
        let f = frame(b"hello");
        assert_eq!(split_frame(&f, 100), Ok(Some((4..9, 9))));
    }

    #[test]
    fn partial_frames_need_more() {
        let f = frame(b"hello");
        for cut in 0..f.len() {
            assert_eq!(split_frame(&f[..cut], 100), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn bad_type_is_seen_from_the_first_byte() {
        assert_eq!(split_frame(&[0x85], 100), Err(FrameError::BadType(0x85)));
        assert_eq!(
            split_frame(&[0x81, 0, 0, 0], 100),
            Err(FrameError::BadType(0x81))
        );
    }

    #[test]
    fn too_large_is_refused_with_only_the_header() {
        let h = [0u8, 0x01, 0x00, 0x01];
        assert_eq!(
            split_frame(&h, 0x10000),
            Err(FrameError::TooLarge {
                len: 0x10001,
                max: 0x10000
            })
        );
        assert_eq!(split_frame(&h, 0x10001), Ok(None));
    }

    #[test]
    fn iterator_over_several_and_a_partial() {
        let mut buf = frame(b"ab");
        buf.extend(frame(b""));
        buf.extend(frame(b"xyz"));
        buf.extend(&frame(b"partial")[..6]);
        let mut it = Frames::new(&buf, 64);
        assert_eq!(it.next(), Some(Ok(&b"ab"[..])));
        assert_eq!(it.next(), Some(Ok(&b""[..])));
        assert_eq!(it.next(), Some(Ok(&b"xyz"[..])));
        assert_eq!(it.next(), None);
        assert_eq!(it.consumed(), 6 + 4 + 7);
        assert_eq!(it.remainder().len(), 6);
    }

    #[test]
    fn iterator_stops_after_error() {
        let mut buf = frame(b"ab");
        buf.extend([1, 0, 0, 0]);
        buf.extend(frame(b"zz"));
        let mut it = Frames::new(&buf, 64);
        assert_eq!(it.next(), Some(Ok(&b"ab"[..])));
        assert_eq!(it.next(), Some(Err(FrameError::BadType(1))));
        assert_eq!(it.next(), None);
        assert_eq!(it.consumed(), 6);
    }

    #[test]
    fn mark_and_patch() {
        let mut out = vec![9u8];
        let m = FrameMark::begin(&mut out);
        out.extend_from_slice(&[7; 300]);
        assert_eq!(m.finish(&mut out), Ok(300));
        assert_eq!(&out[..6], &[9, 0, 0, 0x01, 0x2C, 7]);
        assert_eq!(split_frame(&out[1..], 1000), Ok(Some((4..304, 304))));
    }
}
