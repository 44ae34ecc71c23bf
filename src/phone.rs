//! Phone number normalization for the numbers that arrive over HTTP.
//!
//! The Django client sends numbers the way shop staff typed them: with `+`, spaces,
//! dashes or parentheses, and often a national number without its country code.
//! WhatsApp wants digits with the country code. [`PhoneRules::normalize`] checks the
//! characters itself (so the error can name the offending one), then hands the
//! number to the `phonenumber` crate (Google's libphonenumber metadata), which
//! knows each country's numbering plan.

use std::str::FromStr;
use std::sync::Arc;

use phonenumber::country::Id as Region;
use phonenumber::{Mode, PhoneNumber};

/// The longest number E.164 allows (country code included).
pub const MAX_DIGITS: usize = 15;
/// The longest typed input looked at; a longer one is refused before parsing.
pub const MAX_INPUT: usize = 40;
/// A number without `+` that is not valid in the default region is read as
/// international digits only from this length on: a mistyped 10-digit national
/// number (`390 612 3456`) must be refused, not sent abroad (`+39 06 123456`, Rome).
pub const MIN_INTERNATIONAL_WITHOUT_PLUS: usize = 11;

/// Why a typed number is not a phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error(
        "phone number may contain only digits, '+', spaces, dashes, dots and parentheses (found {0:?})"
    )]
    BadCharacter(char),
    #[error("'+' may only start the phone number")]
    MisplacedPlus,
    #[error("phone number is too long ({0} digits; at most {MAX_DIGITS} with the country code)")]
    TooLong(usize),
    #[error("phone number is too long to be one ({0} characters)")]
    InputTooLong(usize),
    #[error("phone number is too short ({0} digits)")]
    TooShort(usize),
    #[error(
        "{digits} is not a valid phone number in region {region} nor with a country code; \
         give it as +<country code><number>"
    )]
    NotValid { digits: String, region: String },
}

/// Numbers whose reading is remembered: shops write to the same patients again
/// and again, and libphonenumber's regular expressions cost more than the rest of
/// a request. Some 10,000 entries of a few dozen bytes each.
const KNOWN_NUMBERS: usize = 10_000;

/// How typed numbers are read: the region assumed for numbers given without a
/// country code (`[phone] default_region`).
#[derive(Clone)]
pub struct PhoneRules {
    region: Region,
    /// `(typed with '+', digits)` → what libphonenumber made of them. Shared by
    /// the clones of one set of rules (the HTTP handlers' state).
    known: Arc<quick_cache::sync::Cache<(bool, String), Result<String, PhoneError>>>,
}

impl std::fmt::Debug for PhoneRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the remembered numbers: they are patients'.
        f.debug_struct("PhoneRules")
            .field("region", &self.region())
            .finish_non_exhaustive()
    }
}

impl PartialEq for PhoneRules {
    fn eq(&self, other: &Self) -> bool {
        self.region == other.region
    }
}

impl Eq for PhoneRules {}

/// `[phone] default_region` is not a region the numbering metadata knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown region {0:?}; use a two-letter ISO 3166 code such as \"CO\"")]
pub struct UnknownRegion(pub String);

impl PhoneRules {
    /// Rules for a two-letter ISO 3166 region code (`"CO"`, case-insensitive).
    pub fn new(region: &str) -> Result<Self, UnknownRegion> {
        Region::from_str(&region.trim().to_ascii_uppercase())
            .map(|region| Self {
                region,
                known: Arc::new(quick_cache::sync::Cache::new(KNOWN_NUMBERS)),
            })
            .map_err(|_| UnknownRegion(region.to_owned()))
    }

    /// The default region's code, e.g. `"CO"`.
    pub fn region(&self) -> &str {
        self.region.as_ref()
    }

    /// Turns a typed phone number into digits with the country code.
    ///
    /// Spaces, dashes, dots and parentheses are dropped, and `+` may lead. A number
    /// with `+` is read as international; one without is read first as a national
    /// number of the default region (which gets the region's country code), then,
    /// with at least [`MIN_INTERNATIONAL_WITHOUT_PLUS`] digits, as international
    /// digits without the `+` (`573001234567`, the form WhatsApp itself uses).
    /// Whatever is not a valid number of its country is refused.
    pub fn normalize(&self, raw: &str) -> Result<String, PhoneError> {
        let raw = raw.trim();
        if raw.chars().count() > MAX_INPUT {
            return Err(PhoneError::InputTooLong(raw.chars().count()));
        }
        let mut digits = String::with_capacity(raw.len());
        let mut plus = false;
        for c in raw.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if digits.is_empty() && !plus => plus = true,
                '+' => return Err(PhoneError::MisplacedPlus),
                '-' | '(' | ')' | '.' => {}
                c if c.is_whitespace() => {}
                c => return Err(PhoneError::BadCharacter(c)),
            }
        }
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }
        if digits.len() > MAX_DIGITS {
            return Err(PhoneError::TooLong(digits.len()));
        }
        if digits.len() < 3 {
            return Err(PhoneError::TooShort(digits.len()));
        }
        let key = (plus, digits);
        if let Some(known) = self.known.get(&key) {
            return known;
        }
        let read = self.read(key.0, &key.1);
        self.known.insert(key, read.clone());
        read
    }

    /// What libphonenumber makes of `digits` (3 to 15 of them), typed with a
    /// leading `+` or not.
    fn read(&self, plus: bool, digits: &str) -> Result<String, PhoneError> {
        let international = || valid(phonenumber::parse(None, format!("+{digits}")));
        let found = if plus {
            international()
        } else {
            valid(phonenumber::parse(Some(self.region), digits)).or_else(|| {
                (digits.len() >= MIN_INTERNATIONAL_WITHOUT_PLUS)
                    .then(international)
                    .flatten()
            })
        };
        match found {
            Some(number) => Ok(number
                .format()
                .mode(Mode::E164)
                .to_string()
                .trim_start_matches('+')
                .to_owned()),
            None => Err(PhoneError::NotValid {
                digits: digits.to_owned(),
                region: self.region().to_owned(),
            }),
        }
    }
}

impl Default for PhoneRules {
    /// Colombia: the shops are there.
    fn default() -> Self {
        Self::new("CO").expect("CO is a region")
    }
}

fn valid(parsed: Result<PhoneNumber, phonenumber::ParseError>) -> Option<PhoneNumber> {
    parsed.ok().filter(phonenumber::is_valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn co(raw: &str) -> Result<String, PhoneError> {
        PhoneRules::default().normalize(raw)
    }

    #[test]
    fn strips_what_people_type() {
        for raw in [
            "573001234567",
            "+573001234567",
            "+57 300 123 4567",
            "+57-300-123-4567",
            "+57 (300) 123-4567",
            "+57.300.123.4567",
            " 57\t3001234567 ",
        ] {
            assert_eq!(co(raw).unwrap(), "573001234567", "{raw:?}");
        }
    }

    #[test]
    fn a_national_number_gets_the_country_code_of_the_default_region() {
        assert_eq!(co("3001234567").unwrap(), "573001234567");
        assert_eq!(co("300 123 4567").unwrap(), "573001234567");
        assert_eq!(co("300-123-4567").unwrap(), "573001234567");
        // A Bogotá landline, national form.
        assert_eq!(co("601 234 5678").unwrap(), "576012345678");
        let mx = PhoneRules::new("mx").unwrap();
        assert_eq!(mx.region(), "MX");
        assert_eq!(mx.normalize("55 1234 5678").unwrap(), "525512345678");
    }

    #[test]
    fn international_numbers_keep_their_own_country_code() {
        assert_eq!(co("+1 415 555 2671").unwrap(), "14155552671");
        assert_eq!(co("+34 612 345 678").unwrap(), "34612345678");
        // Digits with a country code but without '+', as WhatsApp writes them.
        assert_eq!(co("34612345678").unwrap(), "34612345678");
    }

    #[test]
    fn invalid_numbers_name_the_problem() {
        assert_eq!(co(""), Err(PhoneError::Empty));
        assert_eq!(co(" + - "), Err(PhoneError::Empty));
        assert_eq!(co("57300abc4567"), Err(PhoneError::BadCharacter('a')));
        assert_eq!(
            co("573001234567@s.whatsapp.net"),
            Err(PhoneError::BadCharacter('@'))
        );
        assert_eq!(co("57+3001234567"), Err(PhoneError::MisplacedPlus));
        assert_eq!(co("12"), Err(PhoneError::TooShort(2)));
        assert_eq!(co(&"3".repeat(16)), Err(PhoneError::TooLong(16)));
        assert!(matches!(
            co(&"3 ".repeat(30)),
            Err(PhoneError::InputTooLong(_))
        ));
        for raw in [
            "12345",
            "3001234",
            "+57 300 123",
            "+999 123 456 789",
            "0000000000",
            // Not a CO number; read as international it would be Rome (+39 06 123456).
            "3906123456",
        ] {
            let err = co(raw).unwrap_err();
            assert!(matches!(err, PhoneError::NotValid { .. }), "{raw}: {err:?}");
            assert!(err.to_string().contains("region CO"), "{err}");
        }
    }

    #[test]
    fn unknown_regions_are_refused() {
        assert!(PhoneRules::new("XX").is_err());
        assert!(PhoneRules::new("").is_err());
        assert!(PhoneRules::new("Colombia").is_err());
    }

    #[test]
    fn a_number_read_again_is_read_the_same_from_memory() {
        let typed = [
            "+57 300 123 4567",
            "573001234567",
            "3001234567",
            "300-123-4567",
            "390 612 3456",
            "+34 612 345 678",
            "99999",
        ];
        let rules = PhoneRules::default();
        let first: Vec<_> = typed.iter().map(|raw| rules.normalize(raw)).collect();
        // Typed variants of one number share an entry: "+57 300…" and "573001234567"
        // differ in the '+', "3001234567" and "300-123-4567" do not.
        assert_eq!(rules.known.len(), typed.len() - 1);
        // A clone (each request's handler state) sees the same memory.
        let clone = rules.clone();
        for (raw, expected) in typed.iter().zip(&first) {
            assert_eq!(&clone.normalize(raw), expected, "{raw:?}");
            assert_eq!(&PhoneRules::default().normalize(raw), expected, "{raw:?}");
        }
        assert_eq!(rules.known.len(), typed.len() - 1);
    }

    #[test]
    fn rules_of_two_regions_never_share_a_reading() {
        let co = PhoneRules::default();
        let mx = PhoneRules::new("MX").unwrap();
        assert_eq!(co.normalize("3001234567").unwrap(), "573001234567");
        assert_ne!(mx.normalize("3001234567"), co.normalize("3001234567"));
    }
}
