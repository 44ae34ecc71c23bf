//! [`listen`]: PostgreSQL notifications (`LISTEN`) as a stream of [`Heard`].
//!
//! One connection of its own (a pooled one would be returned to the pool and
//! stop listening), reopened with a backoff whenever it breaks. Notifications
//! sent while it was down are lost, so every (re)connection is reported as
//! [`Heard::Connected`]: whoever listens reads afresh what it follows.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Config, NoTls};

/// What the listener heard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heard {
    /// Listening (again): anything announced before may have been missed.
    Connected,
    /// A notification on `channel`.
    Notice { channel: String, payload: String },
}

/// How often the listening connection is checked (a silent break is found then).
const PING: Duration = Duration::from_secs(10);
/// The longest wait before reconnecting.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Listens on `channels` until the receiver is dropped.
pub fn listen(config: Config, channels: &[&str]) -> mpsc::UnboundedReceiver<Heard> {
    let (tx, rx) = mpsc::unbounded_channel();
    let statement: String = channels
        .iter()
        .map(|c| format!("LISTEN {c};"))
        .collect::<Vec<_>>()
        .join(" ");
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        while !tx.is_closed() {
            match session(&config, &statement, &tx).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %crate::error::describe(&e), "the cluster's notifications stopped; reconnecting");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    });
    rx
}

/// One listening connection, until it breaks (or nobody listens any more).
async fn session(
    config: &Config,
    statement: &str,
    tx: &mpsc::UnboundedSender<Heard>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = crate::pool::bounded(config.clone()).connect(NoTls).await?;
    let (notices, mut heard) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    let notice = Heard::Notice {
                        channel: n.channel().to_owned(),
                        payload: n.payload().to_owned(),
                    };
                    if notices.send(notice).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    client.batch_execute(statement).await?;
    if tx.send(Heard::Connected).is_err() {
        return Ok(());
    }
    let mut ping = tokio::time::interval(PING);
    ping.tick().await;
    loop {
        tokio::select! {
            notice = heard.recv() => match notice {
                Some(notice) => {
                    if tx.send(notice).is_err() {
                        return Ok(());
                    }
                }
                None => break,
            },
            _ = ping.tick() => client.simple_query("").await.map(drop)?,
        }
    }
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
