//! Phone numbers out of log lines.
//!
//! Patients' numbers must not reach the journal at `info` or above, yet an
//! operator has to tell one sender from another ("are these Bad MACs from one
//! contact or from many?"). So every number is replaced by a short keyed digest,
//! `pn#1a2b3c4d`: the first 8 hex digits of an HMAC-SHA256 of its digits under a
//! key made at start-up. The same number gives the same token for the daemon's
//! whole run; without the key, a token cannot be turned back into a number by
//! trying every number of a country.
//!
//! What counts as a number: a run of 8 to 15 digits (E.164's bounds; LIDs have 15),
//! optionally after `+`, that
//! touches no letter, `_`, `#` or dotted digits. That takes phone numbers and the
//! user part of JIDs (`573001234567@s.whatsapp.net`, `…:12@…`, LIDs), and leaves
//! message ids (`3EB0…`, hex mixed with letters), versions (`2.3000.1027000000`),
//! durations and counts, and tokens already masked (`pn#…`) alone.

use std::borrow::Cow;
use std::fmt::Write as _;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The shortest digit run taken for a phone number (the shortest E.164 numbers
/// in use, with their country code, have 8 digits).
const MIN_DIGITS: usize = 8;
/// The longest: E.164 allows 15 digits, and WhatsApp's LIDs have 15. A longer run
/// (a nanosecond time, a configured value out of range) names no one.
const MAX_DIGITS: usize = 15;

/// Fields that hold identifiers of ours, never a patient's number.
pub const NOT_MASKED: &[&str] = &[
    "org_id",
    "message_id",
    "request_id",
    "event_id",
    "idempotency_key",
];

/// Replaces numbers with keyed digests.
pub struct Masker {
    key: [u8; 32],
}

impl Masker {
    /// A masker with a fresh random key (one per daemon run).
    pub fn random() -> Self {
        Self::with_key(rand::random())
    }

    pub fn with_key(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// `pn#` and the first 8 hex digits of the keyed digest of `digits`.
    pub fn token(&self, digits: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(digits.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(11);
        out.push_str("pn#");
        for byte in &digest[..4] {
            let _ = write!(out, "{byte:02x}");
        }
        out
    }

    /// `text` with every number replaced by its token; borrowed when there is none.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let bytes = text.as_bytes();
        let mut out: Option<String> = None;
        let mut copied = 0;
        let mut i = 0;
        while i < bytes.len() {
            if !bytes[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let end = i;
            if !(MIN_DIGITS..=MAX_DIGITS).contains(&(end - start))
                || !stands_alone(bytes, start, end)
            {
                continue;
            }
            // A `+` right before belongs to the number.
            let from = if start > 0 && bytes[start - 1] == b'+' {
                start - 1
            } else {
                start
            };
            let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
            buf.push_str(&text[copied..from]);
            buf.push_str(&self.token(&text[start..end]));
            copied = end;
        }
        match out {
            None => Cow::Borrowed(text),
            Some(mut buf) => {
                buf.push_str(&text[copied..]);
                Cow::Owned(buf)
            }
        }
    }
}

/// Whether the digits `start..end` form a token of their own: not part of a word
/// (letters, `_`), of a token already masked (`#`), or of a dotted number (a
/// version, a decimal).
fn stands_alone(bytes: &[u8], start: usize, end: usize) -> bool {
    let joins = |b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b'#';
    let dotted = |dot: Option<&u8>, digit: Option<&u8>| {
        dot == Some(&b'.') && digit.is_some_and(u8::is_ascii_digit)
    };
    let before = start.checked_sub(1).map(|i| bytes[i]);
    let after = bytes.get(end).copied();
    !before.is_some_and(joins)
        && !after.is_some_and(joins)
        && !dotted(
            before.as_ref(),
            start.checked_sub(2).and_then(|i| bytes.get(i)),
        )
        && !dotted(after.as_ref(), bytes.get(end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker() -> Masker {
        Masker::with_key([7; 32])
    }

    /// One row per kind of text: what an operator sees for it.
    #[test]
    fn numbers_become_tokens_and_nothing_else_changes() {
        let m = masker();
        let t = |digits: &str| m.token(digits);
        let rows: Vec<(&str, String)> = vec![
            // Numbers and JIDs.
            ("573001234567", t("573001234567")),
            ("+573001234567", t("573001234567")),
            (
                "from 573001234567@s.whatsapp.net: Bad MAC",
                format!("from {}@s.whatsapp.net: Bad MAC", t("573001234567")),
            ),
            (
                "573001234567:12@s.whatsapp.net",
                format!("{}:12@s.whatsapp.net", t("573001234567")),
            ),
            (
                "100000000000001@lid",
                format!("{}@lid", t("100000000000001")),
            ),
            (
                "sender=\"573009998877@s.whatsapp.net\"",
                format!("sender=\"{}@s.whatsapp.net\"", t("573009998877")),
            ),
            (
                "a 12345678 b 87654321",
                format!("a {} b {}", t("12345678"), t("87654321")),
            ),
            (
                "loopback-junk-123456789",
                format!("loopback-junk-{}", t("123456789")),
            ),
            // Left alone.
            ("1234567", "1234567".into()),
            (
                "max_in_flight = 2305843009213693952",
                "max_in_flight = 2305843009213693952".into(),
            ),
            ("3EB0A1B2C3D4E5F6071829", "3EB0A1B2C3D4E5F6071829".into()),
            ("3EB012345678901234ABCD", "3EB012345678901234ABCD".into()),
            (
                "version 2.3000.1027000000",
                "version 2.3000.1027000000".into(),
            ),
            ("took 12345678.5 ms", "took 12345678.5 ms".into()),
            ("pn#12345678", "pn#12345678".into()),
            (
                "pn#0123456789abcdef:3@s.whatsapp.net",
                "pn#0123456789abcdef:3@s.whatsapp.net".into(),
            ),
            ("org_12345678", "org_12345678".into()),
            (
                "20261130T050130Z_bad_mac",
                "20261130T050130Z_bad_mac".into(),
            ),
            ("retrying in 60000 ms", "retrying in 60000 ms".into()),
            ("", String::new()),
        ];
        for (text, want) in rows {
            assert_eq!(m.mask(text), want, "{text:?}");
        }
    }

    #[test]
    fn a_token_is_stable_short_keyed_and_unlike_the_number() {
        let m = masker();
        let token = m.token("573001234567");
        assert_eq!(
            token,
            m.token("573001234567"),
            "the same number, the same token"
        );
        assert_ne!(
            token,
            m.token("573001234568"),
            "another number, another token"
        );
        assert_eq!(token.len(), 11);
        assert!(token.starts_with("pn#"));
        assert!(token[3..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(
            token,
            Masker::with_key([8; 32]).token("573001234567"),
            "another key, another token"
        );
    }

    #[test]
    fn text_without_numbers_is_not_copied() {
        assert!(matches!(
            masker().mask("session status changed"),
            Cow::Borrowed(_)
        ));
    }
}
