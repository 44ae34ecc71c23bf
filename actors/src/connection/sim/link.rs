//! One fake phone's world (it outlives each connection), and one connection of it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{SentRecord, SimConnector};
use crate::OrgId;
use crate::connection::{Connection, ConnectionError, ConnectionEvent};
use crate::media::Media;

/// One fake phone's world.
#[derive(Default)]
pub(super) struct Phone {
    pub network_down: bool,
    pub send_fails: bool,
    /// The next send never returns.
    pub send_hangs: bool,
    /// Numbers that are not on WhatsApp (every valid number is, by default).
    pub not_on_whatsapp: HashSet<String>,
    pub link: Option<Arc<Link>>,
    pub sent: Vec<SentRecord>,
}

/// One connection of one phone.
pub(super) struct Link {
    pub dir: PathBuf,
    pub pairing: bool,
    pub state: Mutex<LinkState>,
}

#[derive(Default)]
pub(super) struct LinkState {
    pub events: Option<mpsc::UnboundedSender<ConnectionEvent>>,
    pub qr: Option<String>,
    pub online_as: Option<String>,
    pub qr_task: Option<JoinHandle<()>>,
    /// A zombie: sends are swallowed without a server ack.
    pub no_ack: bool,
}

impl Link {
    pub(super) fn emit(&self, event: ConnectionEvent) {
        if let Some(tx) = &self.state.lock().unwrap().events {
            let _ = tx.send(event);
        }
    }

    pub(super) fn is_open(&self) -> bool {
        self.state.lock().unwrap().events.is_some()
    }

    /// Ends the connection: no event follows and the stream closes.
    pub(super) fn close(&self) {
        let mut st = self.state.lock().unwrap();
        st.events = None;
        st.qr = None;
        st.online_as = None;
        if let Some(task) = st.qr_task.take() {
            task.abort();
        }
    }

    /// Emits a final event and closes.
    pub(super) fn end_with(&self, event: ConnectionEvent) {
        self.emit(event);
        self.close();
    }

    /// Takes the QR on screen, so that one scan (not two racing ones) pairs.
    pub(super) fn take_qr(&self) -> Option<String> {
        let mut st = self.state.lock().unwrap();
        if !self.pairing || st.events.is_none() {
            return None;
        }
        st.qr.take()
    }
}

/// One open connection of a fake phone.
pub(super) struct SimConnection {
    pub org: OrgId,
    pub link: Arc<Link>,
    /// Its id in the ledger, when there is one.
    pub link_id: Option<i64>,
    pub connector: SimConnector,
}

#[async_trait]
impl Connection for SimConnection {
    async fn send_text(
        &self,
        phone: &str,
        text: &str,
        message_id: &str,
    ) -> Result<(), ConnectionError> {
        self.deliver(SentRecord::text(phone, text, message_id))
            .await
    }

    async fn send_media(
        &self,
        phone: &str,
        media: &Media,
        message_id: &str,
    ) -> Result<(), ConnectionError> {
        self.deliver(SentRecord::media(phone, media, message_id))
            .await
    }

    async fn is_on_whatsapp(&self, phone: &str) -> Result<bool, ConnectionError> {
        if self.link.state.lock().unwrap().online_as.is_none() {
            return Err(ConnectionError::NotConnected);
        }
        let valid = phone.len() >= 8 && phone.bytes().all(|b| b.is_ascii_digit());
        Ok(valid
            && self
                .connector
                .with_phone(&self.org, |state| !state.not_on_whatsapp.contains(phone)))
    }

    async fn logout(&self) -> Result<(), ConnectionError> {
        self.shutdown().await;
        Ok(())
    }

    async fn shutdown(&self) {
        self.link.close();
        if let (Some(ledger), Some(link)) = (&self.connector.ledger, self.link_id) {
            ledger.close(&self.org, link).await;
        }
    }
}

impl SimConnection {
    /// Records one delivery attempt and acknowledges it (unless a zombie).
    async fn deliver(&self, record: SentRecord) -> Result<(), ConnectionError> {
        let message_id = record.message_id.clone();
        let no_ack = {
            let st = self.link.state.lock().unwrap();
            if st.online_as.is_none() {
                return Err(ConnectionError::NotConnected);
            }
            st.no_ack
        };
        if self
            .connector
            .with_phone(&self.org, |state| std::mem::take(&mut state.send_hangs))
        {
            return std::future::pending().await;
        }
        let recorded = self.connector.with_phone(&self.org, |state| {
            if std::mem::take(&mut state.send_fails) {
                return Err(ConnectionError::Failed(
                    "the server did not accept the message".into(),
                ));
            }
            state.sent.push(record.clone());
            Ok(())
        });
        recorded?;
        // With several nodes, the record every node reads (and the check that
        // this node still drives the org).
        if let (Some(ledger), Some(link)) = (&self.connector.ledger, self.link_id) {
            ledger.record(&self.org, link, &record).await?;
        }
        if !no_ack {
            // The fake phone's server acknowledges every message at once.
            self.link.emit(ConnectionEvent::ServerAck {
                message_id,
                error: None,
            });
        }
        Ok(())
    }
}
