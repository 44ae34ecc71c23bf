//! The operator's commands: each one HTTP call (or a few) to the running daemon,
//! printed for a person.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::api_key::{ApiKey, ApiKeyError, ENV_API_KEY};
use crate::cli::ClientArgs;
use crate::client::{Client, ClientError};
use crate::config::{Config, ConfigError};
use crate::qr_render;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{0}\nhint: set WHATSAPP_SERVER_API_KEY, or run this on the daemon's host as a user that can read its key file"
    )]
    Key(#[from] ApiKeyError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Failed(String),
}

/// Connects to the daemon the configuration (or `--url`) names, with its key.
pub fn connect(args: &ClientArgs) -> Result<Client, CommandError> {
    let config = Config::load(args.config.as_deref(), |name| std::env::var(name).ok())?;
    let key = ApiKey::find(
        std::env::var(ENV_API_KEY).ok(),
        config.server.api_key_file.as_deref(),
        &config.sessions.dir,
    )?;
    let url = match &args.url {
        Some(url) => url.clone(),
        None => {
            let mut addr = config.server.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
    };
    Ok(Client::new(url, key))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

/// `status [ORG]`.
pub async fn status(client: &Client, org: Option<&str>) -> Result<(), CommandError> {
    let Some(org) = org else {
        return sessions(client).await;
    };
    let s = client.get(&format!("/api/status/{org}")).await?;
    println!(
        "organization {}: {}",
        text(&s, "organization_id"),
        text(&s, "status")
    );
    if let Some(phone) = s.get("phone_number").and_then(Value::as_str) {
        println!("  phone:    {phone}");
    }
    if let Some(reason) = s.get("reason").and_then(Value::as_str) {
        println!("  reason:   {reason}");
    }
    if let Some(retry) = s.get("retry_at").and_then(Value::as_str) {
        println!("  retry at: {retry}");
    }
    Ok(())
}

/// `sessions`.
pub async fn sessions(client: &Client) -> Result<(), CommandError> {
    let all = client.get("/api/sessions").await?;
    let list = all["sessions"].as_array().cloned().unwrap_or_default();
    println!("{:<24} {:<16} PHONE", "ORGANIZATION", "STATUS");
    for s in &list {
        println!(
            "{:<24} {:<16} {}",
            text(s, "organization_id"),
            text(s, "status"),
            text(s, "phone_number")
        );
    }
    println!("{} session(s)", list.len());
    Ok(())
}

/// `start ORG [--phone N]`.
pub async fn start(client: &Client, org: &str, phone: Option<&str>) -> Result<(), CommandError> {
    let mut body = json!({ "organization_id": org });
    if let Some(phone) = phone {
        body["phone_number"] = json!(phone);
    }
    let r = client.post("/api/start-session", body).await?;
    println!("{} (status {})", text(&r, "message"), text(&r, "status"));
    Ok(())
}

/// `clean ORG`.
pub async fn clean(client: &Client, org: &str) -> Result<(), CommandError> {
    let r = client
        .post(
            "/api/force-clean-session",
            json!({ "organization_id": org }),
        )
        .await?;
    println!("{}", text(&r, "message"));
    if let Some(backup) = r.get("backup").and_then(Value::as_str) {
        println!("backup: _backups/{org}/{backup}");
    }
    Ok(())
}

/// `logout ORG`.
pub async fn logout(client: &Client, org: &str) -> Result<(), CommandError> {
    let r = client
        .post("/api/logout", json!({ "organization_id": org }))
        .await?;
    println!("{}", text(&r, "message"));
    Ok(())
}

/// `backups ORG`: one line each, newest first.
pub async fn backups(client: &Client, org: &str) -> Result<(), CommandError> {
    let r = client.get(&format!("/api/backups/{org}")).await?;
    let list = r["backups"].as_array().cloned().unwrap_or_default();
    println!("{:<48} {:<16} {:<28} BYTES", "NAME", "REASON", "CREATED");
    for b in &list {
        println!(
            "{:<48} {:<16} {:<28} {}",
            text(b, "name"),
            text(b, "reason"),
            text(b, "created_at"),
            b.get("bytes").and_then(Value::as_u64).unwrap_or_default()
        );
    }
    println!("{} backup(s) of organization {org}", list.len());
    Ok(())
}

/// `restore ORG NAME`.
pub async fn restore(client: &Client, org: &str, name: &str) -> Result<(), CommandError> {
    let r = client
        .post(
            "/api/restore",
            json!({ "organization_id": org, "backup": name }),
        )
        .await?;
    println!("{} (status {})", text(&r, "message"), text(&r, "status"));
    if let Some(phone) = r.get("phone_number").and_then(Value::as_str) {
        println!("phone: {phone}");
    }
    match r.get("before_restore").and_then(Value::as_str) {
        Some(kept) => println!("the replaced session was kept as backup {kept}"),
        None => println!("there was no live session to keep"),
    }
    Ok(())
}

/// `send ORG PHONE TEXT`.
pub async fn send(
    client: &Client,
    org: &str,
    phone: &str,
    message: &str,
) -> Result<(), CommandError> {
    let r = client
        .post(
            "/api/send-message",
            json!({ "organization_id": org, "phone": phone, "message": message }),
        )
        .await?;
    println!(
        "sent to {} (message id {})",
        text(&r, "phone"),
        text(&r, "message_id")
    );
    Ok(())
}

/// `send-file ORG PHONE FILE [--caption TEXT]`: queues the file through the
/// outbox (`POST /api/send-media`, as JSON with the file in base64) and prints
/// its message id; `wa-supervisor` does not wait for the delivery.
pub async fn send_file(
    client: &Client,
    org: &str,
    phone: &str,
    file: &Path,
    caption: Option<&str>,
) -> Result<(), CommandError> {
    use base64::Engine as _;
    let bytes = std::fs::read(file)
        .map_err(|e| CommandError::Failed(format!("cannot read {}: {e}", file.display())))?;
    let filename = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| CommandError::Failed(format!("{} is not a file", file.display())))?;
    let mut body = json!({
        "organization_id": org,
        "phone": phone,
        "filename": filename,
        "media_base64": base64::engine::general_purpose::STANDARD.encode(&bytes),
    });
    if let Some(caption) = caption {
        body["caption"] = json!(caption);
    }
    let r = client.post("/api/send-media", body).await?;
    println!(
        "{} {} queued for {} (message id {}, status {})",
        text(&r, "kind"),
        filename,
        text(&r, "phone"),
        text(&r, "message_id"),
        text(&r, "status")
    );
    println!(
        "follow it with: GET /api/messages/{}",
        text(&r, "message_id")
    );
    Ok(())
}

/// `qr ORG`: draws the QR, redraws it as it rotates, returns once connected.
pub async fn qr(client: &Client, org: &str) -> Result<(), CommandError> {
    let mut shown: Option<String> = None;
    loop {
        let s = client.get(&format!("/api/status/{org}")).await?;
        match text(&s, "status") {
            "connected" => {
                println!("connected as {}", text(&s, "phone_number"));
                return Ok(());
            }
            "qr_ready" => {
                // The QR may be scanned between the two calls: then there is none.
                match client.get(&format!("/api/qr/{org}?format=raw")).await {
                    Ok(r) => draw(org, &r, &mut shown)?,
                    Err(ClientError::Api { status: 404, .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            "connecting" | "reconnecting" => {}
            other => {
                return Err(CommandError::Failed(format!(
                    "organization {org} is {other}; no QR code to scan (try: wa-supervisor start {org})"
                )));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Draws the QR in `raw` unless it is the one already on screen.
fn draw(org: &str, raw: &Value, shown: &mut Option<String>) -> Result<(), CommandError> {
    let Some(payload) = raw.get("qr_raw").and_then(Value::as_str) else {
        return Ok(());
    };
    if shown.as_deref() == Some(payload) {
        return Ok(());
    }
    let drawn = qr_render::terminal(payload).map_err(|e| CommandError::Failed(e.to_string()))?;
    // Clear the screen and draw from the top, so a rotation replaces the old code.
    print!("\x1b[2J\x1b[H");
    println!("{drawn}");
    println!("Scan with WhatsApp → Linked devices → Link a device (organization {org})");
    if let Some(code) = raw.get("pairing_code").and_then(Value::as_str) {
        println!("or enter the pairing code {code}");
    }
    *shown = Some(payload.to_owned());
    Ok(())
}
