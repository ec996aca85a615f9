//! Streaming UTF-8 validation of text messages (RFC 6455 §8.1).
//!
//! A text message may be split across frames, and a frame across reads, at any byte — even inside a
//! multi-byte character. The validator keeps at most the 3 bytes of an incomplete character between
//! pieces and fails as soon as a piece contains a byte that can never become valid, so a peer that
//! sends invalid text is closed (1007) without waiting for the rest of its frame.

/// The incremental validator: feed pieces with [`Utf8Validator::feed`], then call
/// [`Utf8Validator::finish`] at the end of the message.
///
/// ```
/// use duplex_proto::utf8::Utf8Validator;
/// let mut v = Utf8Validator::default();
/// let euro = "€".as_bytes(); // e2 82 ac
/// assert!(v.feed(&euro[..1]).is_ok());
/// assert!(v.feed(&euro[1..]).is_ok());
/// assert!(v.finish().is_ok());
/// assert!(v.feed(&[0xff]).is_err());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

/// Invalid UTF-8 in a text message: close code 1007.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

impl std::fmt::Display for InvalidUtf8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid UTF-8 in a text message")
    }
}

impl std::error::Error for InvalidUtf8 {}

impl Utf8Validator {
    /// Validates the next piece of the message.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        // First complete a character left over from the previous piece, one byte at a time.
        while self.partial_len > 0 {
            let Some((&b, rest)) = data.split_first() else {
                return Ok(());
            };
            self.partial[self.partial_len as usize] = b;
            self.partial_len += 1;
            data = rest;
            match simdutf8::compat::from_utf8(&self.partial[..self.partial_len as usize]) {
                Ok(_) => self.partial_len = 0,
                Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                Err(_) => {} // still incomplete
            }
        }
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                // Valid so far, but the last character is cut off: keep its bytes (at most 3).
                let tail = &data[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Checks that the message did not end inside a character, and resets for the next message.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let incomplete = self.partial_len != 0;
        self.partial_len = 0;
        if incomplete {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }

    /// Validates a whole message at once (a close reason, a single-frame message).
    pub fn validate(data: &[u8]) -> Result<(), InvalidUtf8> {
        simdutf8::basic::from_utf8(data).map(|_| ()).map_err(|_| InvalidUtf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn streamed(data: &[u8], cuts: &[usize]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::default();
        let mut at = 0;
        for &c in cuts {
            let c = c.min(data.len()).max(at);
            v.feed(&data[at..c])?;
            at = c;
        }
        v.feed(&data[at..])?;
        v.finish()
    }

    #[test]
    fn fails_fast_on_first_invalid_byte() {
        let mut v = Utf8Validator::default();
        // Autobahn 6.4.1: a valid prefix then 0xf4 0x90 (beyond U+10FFFF) must fail at once.
        assert!(v.feed("κόσμε".as_bytes()).is_ok());
        assert!(v.feed(&[0xf4]).is_ok());
        assert!(v.feed(&[0x90]).is_err());
    }

    #[test]
    fn surrogates_and_overlongs_are_invalid() {
        for bad in [&[0xed, 0xa0, 0x80][..], &[0xc0, 0xaf], &[0xe0, 0x80, 0xaf], &[0xf8, 0x88, 0x80, 0x80, 0x80]] {
            assert!(streamed(bad, &[]).is_err());
            assert!(streamed(bad, &[1, 2]).is_err());
        }
    }

    proptest! {
        #[test]
        fn agrees_with_std(data: Vec<u8>, mut cuts: Vec<usize>) {
            cuts.sort();
            prop_assert_eq!(streamed(&data, &cuts).is_ok(), std::str::from_utf8(&data).is_ok());
        }

        #[test]
        fn accepts_any_valid_string_cut_anywhere(s: String, mut cuts: Vec<usize>) {
            cuts.sort();
            prop_assert!(streamed(s.as_bytes(), &cuts).is_ok());
        }
    }
}
