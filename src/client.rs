//! The CLI's side of the HTTP API: a small typed client for the running daemon.
//!
//! The CLI speaks the same API as Django, with the same key, so an operator sees
//! exactly what the app sees and nothing can be done from the shell that the API
//! would refuse.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::api_key::ApiKey;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach wa-supervisor at {url}: is it running? (systemctl status wa-supervisor)")]
    DaemonDown { url: String },
    #[error(
        "the daemon refused the API key: set WHATSAPP_SERVER_API_KEY (or [server] api_key_file) \
         to the key the daemon uses"
    )]
    Unauthorized,
    #[error("{error} (HTTP {status}){}", hint.as_deref().map(|h| format!("\nhint: {h}")).unwrap_or_default())]
    Api {
        status: u16,
        error: String,
        hint: Option<String>,
    },
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
}

pub struct Client {
    base: String,
    key: ApiKey,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: impl Into<String>, key: ApiKey) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("a plain HTTP client builds");
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            key,
            http,
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let response = request
            .header("X-API-Key", self.key.expose())
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() || e.is_timeout() {
                    ClientError::DaemonDown {
                        url: self.base.clone(),
                    }
                } else {
                    ClientError::Protocol(e.without_url().to_string())
                }
            })?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.without_url().to_string()))?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized);
        }
        if !status.is_success() {
            let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
            return Err(ClientError::Api {
                status: status.as_u16(),
                error: text("error").unwrap_or_else(|| body.to_string()),
                hint: text("hint"),
            });
        }
        Ok(body)
    }
}
