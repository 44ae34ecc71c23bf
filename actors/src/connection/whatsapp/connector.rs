//! Opens one whatsapp-rust `Bot` per connect on the org's SQLite store.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;
use whatsapp_rust::bot::Bot;
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::store::{Backend, SqliteStore};
use whatsapp_rust::transport::TokioWebSocketTransportFactory;

use super::connection::{Forwarder, WhatsAppConnection};
use super::store::{has_device, store_path};
use crate::connection::{
    ConnectRequest, Connection, ConnectionError, Connector, EventStream, StartMode,
};

/// How the WhatsApp connector connects.
#[derive(Clone, Debug, Default)]
pub struct WhatsAppOptions {
    /// Pin the WhatsApp Web version `(primary, secondary, tertiary)` instead of
    /// looking the current one up on web.whatsapp.com (at most once a day per
    /// store), so connecting does not depend on that look-up.
    pub version: Option<(u32, u32, u32)>,
    /// Connect to this WebSocket URL instead of WhatsApp's (e.g. a loopback test
    /// server). `wss://` URLs are still verified against the system's roots.
    pub ws_url: Option<String>,
}

/// The [`Connector`] of `[connection] kind = "whatsapp"`.
#[derive(Clone, Debug, Default)]
pub struct WhatsAppConnector {
    options: WhatsAppOptions,
}

impl WhatsAppConnector {
    pub fn new(options: WhatsAppOptions) -> Self {
        Self { options }
    }

    pub fn options(&self) -> &WhatsAppOptions {
        &self.options
    }

    /// Opens a connection and returns it as its concrete type (tests look inside).
    pub async fn open(
        &self,
        request: ConnectRequest,
    ) -> Result<(Arc<WhatsAppConnection>, EventStream), ConnectionError> {
        let path = store_path(&request.dir);
        let url = path.to_str().ok_or_else(|| {
            ConnectionError::StoreUnavailable(format!("{} is not UTF-8", path.display()))
        })?;
        let store = Arc::new(
            SqliteStore::new(url)
                .await
                .map_err(|e| ConnectionError::StoreUnavailable(e.to_string()))?,
        );
        let store_handle = Arc::downgrade(&store);

        let mut transport = TokioWebSocketTransportFactory::new();
        if let Some(url) = &self.options.ws_url {
            transport = transport.with_url(url.clone());
        }
        let pair_code = match &request.mode {
            StartMode::Pair {
                phone_for_code: Some(phone),
            } => Some(PairCodeOptions {
                phone_number: phone.clone(),
                ..PairCodeOptions::default()
            }),
            _ => None,
        };
        let mut builder = Bot::builder()
            .with_backend_arc(store as Arc<dyn Backend>)
            .with_transport_factory(transport)
            // The daemon only sends; the chat history is of no use to it.
            .skip_history_sync();
        if let Some(version) = self.options.version {
            builder = builder.with_version(version);
        }
        let bot = builder
            .build()
            .await
            .map_err(|e| ConnectionError::StoreUnavailable(e.to_string()))?;

        let client = bot.client();
        // The org actor decides every reconnect (CONTRACT §4): one Bot, one run.
        client.enable_auto_reconnect.store(false, Ordering::SeqCst);

        let (tx, rx) = mpsc::unbounded_channel();
        let forwarder = Arc::new(Forwarder::new(request.org.clone(), tx, pair_code));
        forwarder.attach(&client);
        let subscription = client.subscribe_handler(forwarder.clone());
        // 515 and 429/503 stream errors have no event of their own; see the raw stanza.
        let raw_nodes = client.acquire_raw_node_forwarding();

        let handle = bot.spawn();
        forwarder.request_pair_code(true);
        let finisher = forwarder.clone();
        let run = tokio::spawn(async move {
            handle.await;
            finisher.finish();
        });

        let conn = WhatsAppConnection {
            org: request.org,
            client: Mutex::new(Some(client)),
            forwarder,
            run: Mutex::new(Some(run)),
            subscription: Mutex::new(Some(subscription)),
            raw_nodes: Mutex::new(Some(raw_nodes)),
            store: store_handle,
        };
        Ok((Arc::new(conn), rx))
    }
}

#[async_trait]
impl Connector for WhatsAppConnector {
    async fn connect(
        &self,
        request: ConnectRequest,
    ) -> Result<(Arc<dyn Connection>, EventStream), ConnectionError> {
        let (conn, events) = self.open(request).await?;
        Ok((conn, events))
    }

    fn has_credentials(&self, dir: &Path) -> Result<bool, ConnectionError> {
        Ok(has_device(dir))
    }
}
