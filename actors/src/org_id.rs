//! Organization ids: the one piece of request data that becomes a path.
//!
//! Every org id is validated here, once, before it can reach the storage actor.
//! An [`OrgId`] can only be built through [`OrgId::parse`], so holding one is proof
//! that joining it to the sessions directory cannot escape it.

use std::fmt;

use serde::{Serialize, Serializer};

/// Names inside the sessions directory that are not organizations.
///
/// `_backups` holds backups (CONTRACT §7) and `api_key` the generated key file; an
/// organization with either name would collide with them, so both are refused.
pub const RESERVED_NAMES: &[&str] = &["_backups", "api_key"];

/// The longest organization id accepted.
pub const MAX_LEN: usize = 64;

/// A validated organization id: `^[A-Za-z0-9_-]{1,64}$`, not a reserved name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgId(String);

/// Why a string is not an organization id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgIdError {
    #[error("organization_id is empty")]
    Empty,
    #[error("organization_id is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("organization_id may contain only letters, digits, '_' and '-'")]
    BadCharacter,
    #[error("organization_id {0:?} is reserved")]
    Reserved(&'static str),
}

impl OrgId {
    /// Validates `raw` as an organization id.
    pub fn parse(raw: &str) -> Result<Self, OrgIdError> {
        if raw.is_empty() {
            return Err(OrgIdError::Empty);
        }
        if raw.len() > MAX_LEN {
            return Err(OrgIdError::TooLong);
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(OrgIdError::BadCharacter);
        }
        if let Some(reserved) = RESERVED_NAMES.iter().find(|name| **name == raw) {
            return Err(OrgIdError::Reserved(reserved));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for OrgId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl std::str::FromStr for OrgId {
    type Err = OrgIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_contract_alphabet() {
        for ok in ["2", "org-7", "A_b-9", &"x".repeat(64)] {
            assert_eq!(OrgId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_anything_that_could_name_another_path() {
        let cases: &[(&str, OrgIdError)] = &[
            ("", OrgIdError::Empty),
            ("..", OrgIdError::BadCharacter),
            ("../x", OrgIdError::BadCharacter),
            ("a/b", OrgIdError::BadCharacter),
            ("a\0b", OrgIdError::BadCharacter),
            ("ñandú", OrgIdError::BadCharacter),
            (" 2", OrgIdError::BadCharacter),
            ("_backups", OrgIdError::Reserved("_backups")),
            ("api_key", OrgIdError::Reserved("api_key")),
        ];
        for (raw, want) in cases {
            assert_eq!(OrgId::parse(raw).unwrap_err(), *want, "{raw:?}");
        }
        assert_eq!(
            OrgId::parse(&"x".repeat(65)).unwrap_err(),
            OrgIdError::TooLong
        );
    }
}
