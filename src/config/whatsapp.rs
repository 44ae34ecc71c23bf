//! `[whatsapp]`: how the real connection reaches WhatsApp Web, as plain data
//! (checked here, turned into the connector's options by [`crate::connector`]).

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The defaults are the connection's own (`Default` is in [`crate::connector`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhatsappConfig {
    /// A pinned WhatsApp Web version `"2.3000.1012345678"`; empty = look the current
    /// one up (at most once a day per session).
    pub version: String,
    /// Another WebSocket URL than WhatsApp's; empty = WhatsApp's own. Only for a
    /// test server: the server's certificate is still checked against WhatsApp's
    /// key, so this cannot be used to read anyone's traffic.
    pub ws_url: String,
    /// The name the shop's phone lists this device by under "Linked devices";
    /// fixed when the device pairs.
    pub device_name: String,
    /// Appear online while connected. Off: an online linked device makes WhatsApp
    /// hold back notifications on the shop's phone.
    pub mark_online: bool,
}

/// The longest device name accepted.
pub const DEVICE_NAME_MAX: usize = 64;

impl WhatsappConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.pinned_version()?;
        let ws = self.ws_url.trim();
        if !(ws.is_empty() || ws.starts_with("ws://") || ws.starts_with("wss://")) {
            return Err(ConfigError::Invalid(
                "[whatsapp] ws_url must start with ws:// or wss://".into(),
            ));
        }
        let name = self.device_name.trim();
        if name.is_empty()
            || name.chars().count() > DEVICE_NAME_MAX
            || name.chars().any(char::is_control)
        {
            return Err(ConfigError::Invalid(format!(
                "[whatsapp] device_name must be 1 to {DEVICE_NAME_MAX} printable characters"
            )));
        }
        Ok(())
    }

    /// The pinned version as numbers, when one is set.
    pub fn pinned_version(&self) -> Result<Option<(u32, u32, u32)>, ConfigError> {
        let v = self.version.trim();
        if v.is_empty() {
            return Ok(None);
        }
        let invalid = |why: &str| ConfigError::Invalid(format!("[whatsapp] version {v:?} {why}"));
        let parts: Vec<&str> = v.split('.').collect();
        match parts[..] {
            [a, b, c] => match (a.parse(), b.parse(), c.parse()) {
                (Ok(a), Ok(b), Ok(c)) => Ok(Some((a, b, c))),
                _ => Err(invalid("is not three numbers")),
            },
            _ => Err(invalid("is not of the form \"2.3000.1012345678\"")),
        }
    }

    /// The WebSocket URL to use instead of WhatsApp's, if any.
    pub fn ws_url(&self) -> Option<&str> {
        Some(self.ws_url.trim()).filter(|u| !u.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_urls_are_checked() {
        let with = |version: &str, ws_url: &str| WhatsappConfig {
            version: version.into(),
            ws_url: ws_url.into(),
            ..WhatsappConfig::default()
        };
        assert_eq!(
            with(" 2.3000.1012345678 ", "").pinned_version().unwrap(),
            Some((2, 3000, 1012345678))
        );
        assert_eq!(with("", "").pinned_version().unwrap(), None);
        for bad in ["2.3000", "2.x.1", "2.3000.1.2"] {
            assert!(with(bad, "").validate().is_err(), "{bad}");
        }
        assert!(with("", "http://127.0.0.1:1/ws").validate().is_err());
        assert_eq!(
            with("", " ws://127.0.0.1:1/ws ").ws_url(),
            Some("ws://127.0.0.1:1/ws")
        );
        assert_eq!(with("", "  ").ws_url(), None);
        let named = |name: &str| WhatsappConfig {
            device_name: name.into(),
            ..WhatsappConfig::default()
        };
        assert!(named("Óptica Sol – recepción").validate().is_ok());
        for bad in ["", "  ", "a\nb", &"x".repeat(65)] {
            assert!(named(bad).validate().is_err(), "{bad:?}");
        }
    }
}
