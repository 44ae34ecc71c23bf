//! Patients' numbers in logs (CONTRACT §1: never at info or warn level).
//!
//! Where an operator needs to tell senders apart (a decrypt failure from one
//! contact or from many), a log line carries a masked form that keeps the country
//! code and the last two digits: enough to see "the same contact again", not
//! enough to call anyone.

/// `573001234567@s.whatsapp.net` → `57…67`; anything with fewer than 6 digits
/// (not a phone number) → `…`.
pub fn mask_phone(raw: &str) -> String {
    let user = raw.split(['@', ':']).next().unwrap_or_default();
    let digits: Vec<char> = user.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 {
        return "…".to_owned();
    }
    let head: String = digits[..2].iter().collect();
    let tail: String = digits[digits.len() - 2..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_only_their_ends() {
        for (raw, want) in [
            ("573001234567@s.whatsapp.net", "57…67"),
            ("573001234567:12@s.whatsapp.net", "57…67"),
            ("573001234567", "57…67"),
            ("12345", "…"),
            ("", "…"),
            ("lid-abc@lid", "…"),
        ] {
            assert_eq!(mask_phone(raw), want, "{raw}");
            assert!(!mask_phone(raw).contains("300123"));
        }
    }
}
