//! Posting one event: signed, retried on network errors and 5xx with exponential
//! backoff and jitter, at most `max_attempts` times; a 2xx is delivered, any other
//! answer (4xx, 3xx: redirects are not followed) is final.

use std::time::Duration;

use reqwest::{StatusCode, Url, header};
use wa_actors::Backoff;

use super::config::{WebhookConfig, WebhookSecret};
use super::sign;

/// How one event's delivery ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered { attempts: u32 },
    /// The receiver refused it for good (not 2xx, not 5xx).
    Rejected { status: u16, attempts: u32 },
    /// Every attempt failed on the network or with a 5xx.
    GaveUp { attempts: u32, last_error: String },
}

/// Posts events to one URL.
pub struct Poster {
    client: reqwest::Client,
    url: Url,
    secret: WebhookSecret,
    max_attempts: u32,
    backoff: Backoff,
}

impl Poster {
    /// `config` must be enabled and valid.
    pub fn new(config: &WebhookConfig) -> Result<Self, String> {
        config.validate()?;
        let url = Url::parse(config.url.trim()).map_err(|e| e.to_string())?;
        let secret = config
            .secret
            .clone()
            .ok_or_else(|| "webhook secret missing".to_owned())?;
        let client = reqwest::Client::builder()
            .timeout(config.timeout())
            .connect_timeout(config.timeout())
            .redirect(reqwest::redirect::Policy::none())
            // The receiver is on this machine; an HTTP_PROXY meant for the outside
            // world must not carry appointment data through it.
            .no_proxy()
            .user_agent(concat!("wa-supervisor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(Self {
            client,
            url,
            secret,
            max_attempts: config.max_attempts.max(1),
            backoff: Backoff {
                initial: Duration::from_millis(config.initial_backoff_ms),
                max: Duration::from_millis(config.max_backoff_ms),
                jitter: 0.5,
            },
        })
    }

    /// The URL without any user or password, for logs.
    pub fn url_for_logs(&self) -> String {
        let mut url = self.url.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.to_string()
    }

    /// Delivers `body` (already serialized: these bytes are signed and sent).
    pub async fn deliver(&self, event_id: &str, body: Vec<u8>) -> Outcome {
        let signature = sign::signature(self.secret.as_bytes(), &body);
        let mut last_error = String::new();
        for attempt in 1..=self.max_attempts {
            if attempt > 1 {
                tokio::time::sleep(self.backoff.delay(attempt - 2)).await;
            }
            let sent = self
                .client
                .post(self.url.clone())
                .header(header::CONTENT_TYPE, "application/json")
                .header(sign::SIGNATURE_HEADER, &signature)
                .header(sign::EVENT_ID_HEADER, event_id)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => {
                    return Outcome::Delivered { attempts: attempt };
                }
                Ok(response) if retryable(response.status()) => {
                    last_error = format!("HTTP {}", response.status().as_u16());
                }
                Ok(response) => {
                    return Outcome::Rejected {
                        status: response.status().as_u16(),
                        attempts: attempt,
                    };
                }
                // Connect, timeout, reset: the receiver may be restarting.
                Err(e) => last_error = error_chain(e.without_url()),
            }
            tracing::debug!(event_id, attempt, error = %last_error, "webhook attempt failed");
        }
        Outcome::GaveUp {
            attempts: self.max_attempts,
            last_error,
        }
    }
}

fn retryable(status: StatusCode) -> bool {
    status.is_server_error()
}

/// reqwest's top-level message is generic ("error sending request"); the cause
/// says what happened (refused, timed out).
fn error_chain(e: reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
