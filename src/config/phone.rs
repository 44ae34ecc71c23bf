//! `[phone]`: how typed phone numbers are read. The default region is
//! [`PhoneRules::default`]'s.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::phone::PhoneRules;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhoneConfig {
    /// ISO 3166 region assumed for numbers given without a country code.
    pub default_region: String,
}

impl Default for PhoneConfig {
    fn default() -> Self {
        Self {
            default_region: PhoneRules::default().region().to_owned(),
        }
    }
}

impl PhoneConfig {
    /// How phone numbers are read; an unknown region is refused.
    pub fn rules(&self) -> Result<PhoneRules, ConfigError> {
        PhoneRules::new(&self.default_region)
            .map_err(|e| ConfigError::Invalid(format!("[phone] default_region: {e}")))
    }
}
