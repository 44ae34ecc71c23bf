//! `[webhook]`: where session events are posted, and how hard to try.
//!
//! The HMAC secret never lives in `config.toml`: it comes from
//! `WHATSAPP_WEBHOOK_SECRET` only, is never serialized, and prints as `<redacted>`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Environment variable holding the HMAC-SHA256 key the receiver verifies with.
pub const ENV_WEBHOOK_SECRET: &str = "WHATSAPP_WEBHOOK_SECRET";

/// The signing key. Its `Debug` never shows it, so a logged config cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// `None` for an empty (or all-whitespace) value: an empty key signs nothing.
    pub fn new(value: &str) -> Option<Self> {
        let value = value.trim();
        (!value.is_empty()).then(|| Self(value.to_owned()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// `[webhook]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Where events are POSTed; empty turns webhooks off.
    pub url: String,
    /// How long one delivery attempt may take, connect to last byte.
    pub timeout_ms: u64,
    /// Attempts per event (the first one included) before it is dropped.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled on each next one, with jitter.
    pub initial_backoff_ms: u64,
    /// The longest delay between two attempts.
    pub max_backoff_ms: u64,
    /// Events waiting per organization; when full, the oldest QR goes first.
    pub queue_size: usize,
    /// From `WHATSAPP_WEBHOOK_SECRET`; never in the file.
    #[serde(skip)]
    pub secret: Option<WebhookSecret>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout_ms: 5_000,
            max_attempts: 5,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 30_000,
            queue_size: 100,
            secret: None,
        }
    }
}

impl WebhookConfig {
    /// Whether events are posted at all.
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Refuses a configuration that would post unsigned, never, or in a busy loop.
    /// The message is for the operator; it never contains the secret.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        let url = reqwest::Url::parse(self.url.trim())
            .map_err(|e| format!("[webhook] url {:?} is not a URL: {e}", self.url))?;
        match url.scheme() {
            "http" => {}
            "https" => {
                return Err(
                    "[webhook] url: https is not built in (the receiver is the Django \
                     app on this machine); use http://127.0.0.1:…"
                        .into(),
                );
            }
            other => return Err(format!("[webhook] url: scheme {other:?} is not http")),
        }
        if self.secret.is_none() {
            return Err(format!(
                "[webhook] url is set but {ENV_WEBHOOK_SECRET} is not: every webhook is signed, \
                 so set {ENV_WEBHOOK_SECRET} (e.g. to the output of `openssl rand -hex 32`, the \
                 same value on the Django side) or leave [webhook] url empty"
            ));
        }
        if self.timeout_ms == 0 || self.max_attempts == 0 || self.queue_size == 0 {
            return Err(
                "[webhook] timeout_ms, max_attempts and queue_size must be at least 1".into(),
            );
        }
        if self.initial_backoff_ms == 0 || self.max_backoff_ms < self.initial_backoff_ms {
            return Err("[webhook] needs 0 < initial_backoff_ms <= max_backoff_ms".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(url: &str, secret: Option<&str>) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            secret: secret.and_then(WebhookSecret::new),
            ..WebhookConfig::default()
        }
    }

    #[test]
    fn off_by_default_and_valid_without_a_secret_when_off() {
        let c = WebhookConfig::default();
        assert!(!c.enabled());
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn a_url_without_a_secret_is_refused_with_the_variable_named() {
        let err = on("http://127.0.0.1:8000/hooks/wa/", None)
            .validate()
            .unwrap_err();
        assert!(err.contains(ENV_WEBHOOK_SECRET), "{err}");
        // An empty secret is no secret.
        assert!(on("http://127.0.0.1:8000/", Some("  ")).validate().is_err());
        assert_eq!(
            on("http://127.0.0.1:8000/", Some("s3cret")).validate(),
            Ok(())
        );
    }

    #[test]
    fn bad_urls_and_values_are_refused() {
        for url in ["not a url", "ftp://x/", "https://example.com/hook"] {
            assert!(on(url, Some("k")).validate().is_err(), "{url}");
        }
        for tune in [
            |c: &mut WebhookConfig| c.max_attempts = 0,
            |c: &mut WebhookConfig| c.timeout_ms = 0,
            |c: &mut WebhookConfig| c.queue_size = 0,
            |c: &mut WebhookConfig| c.initial_backoff_ms = 0,
            |c: &mut WebhookConfig| c.max_backoff_ms = 1,
        ] {
            let mut c = on("http://127.0.0.1:1/", Some("k"));
            tune(&mut c);
            assert!(c.validate().is_err(), "{c:?}");
        }
    }

    #[test]
    fn the_secret_never_prints() {
        let c = on("http://127.0.0.1:1/", Some("very-secret-value"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        let toml = toml::to_string(&c).unwrap();
        assert!(!toml.contains("very-secret-value"), "{toml}");
    }
}
