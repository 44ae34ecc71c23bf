//! Phone number normalization for the numbers that arrive over HTTP.
//!
//! The Django client sends numbers the way shop staff typed them: with `+`, spaces,
//! dashes or parentheses, and often a bare Colombian mobile number without its
//! country code. WhatsApp wants digits with the country code. Everything that turns
//! a typed number into that lives in [`normalize_phone`], so that a later issue can
//! swap it for the `phonenumber` crate in one place.

/// The shortest number (with country code) we accept.
pub const MIN_DIGITS: usize = 8;
/// The longest number E.164 allows.
pub const MAX_DIGITS: usize = 15;

/// Why a typed number is not a phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error(
        "phone number may contain only digits, '+', spaces, dashes and parentheses (found {0:?})"
    )]
    BadCharacter(char),
    #[error(
        "phone number must have {MIN_DIGITS} to {MAX_DIGITS} digits including the country code (got {0})"
    )]
    Length(usize),
}

/// Turns a typed phone number into digits with the country code.
///
/// `+`, whitespace, `-`, `(` and `)` are dropped; anything else but digits is an
/// error. A 10-digit number starting with `3` is a Colombian mobile number typed
/// without its country code (the shops are in Colombia), so `57` is prepended.
/// The result must have 8–15 digits.
pub fn normalize_phone(raw: &str) -> Result<String, PhoneError> {
    let mut digits = String::with_capacity(raw.len() + 2);
    for c in raw.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '+' | '-' | '(' | ')' => {}
            c if c.is_whitespace() => {}
            c => return Err(PhoneError::BadCharacter(c)),
        }
    }
    if digits.is_empty() {
        return Err(PhoneError::Empty);
    }
    if digits.len() == 10 && digits.starts_with('3') {
        digits.insert_str(0, "57");
    }
    if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) {
        return Err(PhoneError::Length(digits.len()));
    }
    Ok(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_what_people_type() {
        for raw in [
            "573001234567",
            "+57 300 123 4567",
            "+57-300-123-4567",
            "+57 (300) 123-4567",
            " 57\t3001234567 ",
        ] {
            assert_eq!(normalize_phone(raw).unwrap(), "573001234567", "{raw:?}");
        }
    }

    #[test]
    fn a_bare_colombian_mobile_gets_its_country_code() {
        assert_eq!(normalize_phone("3001234567").unwrap(), "573001234567");
        assert_eq!(normalize_phone("300 123 4567").unwrap(), "573001234567");
    }

    #[test]
    fn other_ten_digit_numbers_are_left_alone() {
        // A US number with its country code is 11 digits; 10 digits not starting
        // with 3 are taken as already international.
        assert_eq!(normalize_phone("2025550123").unwrap(), "2025550123");
        assert_eq!(normalize_phone("+1 202 555 0123").unwrap(), "12025550123");
    }

    #[test]
    fn length_is_checked_after_the_country_code() {
        assert_eq!(normalize_phone("12345678").unwrap(), "12345678");
        assert_eq!(normalize_phone("1234567"), Err(PhoneError::Length(7)));
        assert_eq!(normalize_phone(&"1".repeat(15)).unwrap(), "1".repeat(15));
        assert_eq!(
            normalize_phone(&"1".repeat(16)),
            Err(PhoneError::Length(16))
        );
    }

    #[test]
    fn refuses_letters_and_empty_input() {
        assert_eq!(normalize_phone(""), Err(PhoneError::Empty));
        assert_eq!(normalize_phone(" + - "), Err(PhoneError::Empty));
        assert_eq!(
            normalize_phone("57300abc4567"),
            Err(PhoneError::BadCharacter('a'))
        );
        assert_eq!(
            normalize_phone("573001234567@s.whatsapp.net"),
            Err(PhoneError::BadCharacter('@'))
        );
    }
}
