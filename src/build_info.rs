//! What this binary was built as, for operators and CI (`wa-supervisor build-info`)
//! and for the start-up log.
//!
//! The one property that matters is whether the WhatsApp server's certificate chain
//! is checked against WhatsApp's key: `cargo test` builds the binary with the check
//! off (so tests can pair against a loopback server), `cargo build` and `cargo run`
//! with it on. A binary cannot tell from how it was invoked, so it asks the
//! verification code, through [`crate::connector`].

use serde::Serialize;

use crate::connector::server_certificate_check_enabled;

/// Whether the server's certificate chain is checked against WhatsApp's root key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificateCheck {
    /// Checked: every build that may be deployed.
    On,
    /// Not checked: a test build, which must never be deployed.
    Off,
}

impl CertificateCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off => "off",
        }
    }
}

/// What `build-info` prints, as one JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildInfo {
    pub version: &'static str,
    pub server_certificate_check: CertificateCheck,
}

impl BuildInfo {
    /// This binary's, found out now (cheap: one signature check at most).
    pub fn of_this_build() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            server_certificate_check: if server_certificate_check_enabled() {
                CertificateCheck::On
            } else {
                CertificateCheck::Off
            },
        }
    }

    /// One line of JSON, e.g. `{"version":"0.1.0","server_certificate_check":"on"}`.
    pub fn to_json(&self) -> String {
        // Two strings: serializing them cannot fail.
        serde_json::to_string(self).expect("a BuildInfo always serializes")
    }

    /// The start-up line: `info` for a build that may be deployed, `warn` (loud in
    /// journald and log shippers) for one that must not be.
    pub fn log(&self) {
        let check = self.server_certificate_check.as_str();
        match self.server_certificate_check {
            CertificateCheck::On => tracing::info!(
                version = self.version,
                server_certificate_check = check,
                "wa-supervisor starting"
            ),
            CertificateCheck::Off => tracing::warn!(
                version = self.version,
                server_certificate_check = check,
                "wa-supervisor starting: this is a test build that does not check the \
                 WhatsApp server's certificate chain; it must not be deployed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_one_json_object_with_both_fields() {
        for (check, text) in [(CertificateCheck::On, "on"), (CertificateCheck::Off, "off")] {
            let info = BuildInfo {
                version: "1.2.3",
                server_certificate_check: check,
            };
            assert_eq!(
                info.to_json(),
                format!(r#"{{"version":"1.2.3","server_certificate_check":"{text}"}}"#)
            );
            assert_eq!(check.as_str(), text);
        }
    }
}
