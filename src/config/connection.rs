//! `[connection]`: which connection the org actors open.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKind {
    /// Real WhatsApp Web.
    #[default]
    Whatsapp,
    /// The scriptable fake phone of CONTRACT §9.
    Sim,
}

impl ConnectionKind {
    /// The name used in `config.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Whatsapp => "whatsapp",
            Self::Sim => "sim",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionConfig {
    pub kind: ConnectionKind,
}
