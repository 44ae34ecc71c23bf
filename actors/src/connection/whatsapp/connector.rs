//! Opens one whatsapp-rust `Bot` per connect on the org's store: SQLite in its
//! directory by default, or a store the daemon provides ([`StoreBackend::Custom`]).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;
use tracing::Instrument as _;
use whatsapp_rust::anyhow;
use whatsapp_rust::bot::Bot;
use whatsapp_rust::http::HttpClient;
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::store::{Backend, SqliteStore};
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::wacore::net::{HttpRequest, HttpResponse, StreamingHttpResponse, UploadBody};
use whatsapp_rust::wacore::store::DevicePropsOverride;

use super::connection::{Forwarder, WhatsAppConnection};
use super::org_runtime::{OrgRuntime, org_span};
use super::presence::{self, Presence};
use super::store::{StoreProblem, check_usable, has_device, store_path};
use super::store_fault::{StoreFault, classify_store_error, error_chain};
use crate::OrgId;
use crate::connection::{
    ConnectRequest, Connection, ConnectionError, Connector, EventStream, StartMode,
};

/// Opens the whatsapp-rust store of one org for a connect, when the stores are not
/// the SQLite files of the sessions directory (PostgreSQL, CONTRACT §13).
#[async_trait]
pub trait BackendFactory: Send + Sync + 'static {
    /// The org's store. A store that cannot be reached is
    /// [`ConnectionError::StoreUnavailable`] (the session waits and retries).
    async fn open(&self, org: &OrgId) -> Result<Arc<dyn Backend>, ConnectionError>;
}

/// Where a connection finds the org's whatsapp-rust store.
#[derive(Clone, Default)]
pub enum StoreBackend {
    /// `<org dir>/whatsapp.db`, SQLite (CONTRACT §7).
    #[default]
    Sqlite,
    /// Whatever the factory opens for the org.
    Custom(Arc<dyn BackendFactory>),
}

impl std::fmt::Debug for StoreBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "Sqlite",
            Self::Custom(_) => "Custom",
        })
    }
}

/// The name a linked device shows under "Linked devices" on the phone, unless
/// configured otherwise.
pub const DEFAULT_DEVICE_NAME: &str = "wa-supervisor";

/// How the WhatsApp connector connects.
#[derive(Clone, Debug)]
pub struct WhatsAppOptions {
    /// Pin the WhatsApp Web version `(primary, secondary, tertiary)` instead of
    /// looking the current one up on web.whatsapp.com (at most once a day per
    /// store), so connecting does not depend on that look-up.
    pub version: Option<(u32, u32, u32)>,
    /// Connect to this WebSocket URL instead of WhatsApp's (e.g. a loopback test
    /// server). `wss://` URLs are still verified against the system's roots.
    pub ws_url: Option<String>,
    /// The name the phone shows for this device under "Linked devices" (the OS
    /// name of the device properties). It is sent when the device pairs and fixed
    /// from then on: a new name applies to the next pairing only.
    pub device_name: String,
    /// Appear online while connected, as WhatsApp Web does. Off by default: while
    /// a linked device is online WhatsApp holds back notifications on the phone,
    /// and the shop would stop hearing its patients.
    pub mark_online: bool,
    /// Where each org's whatsapp-rust store lives: its SQLite file by default.
    pub store: StoreBackend,
    /// The HTTP client media uploads go through, instead of the library's own
    /// (ureq). Tests hand in one that reaches a loopback upload host.
    pub http_client: Option<MediaHttpClient>,
}

/// An HTTP client for whatsapp-rust's media uploads (and its version look-up).
#[derive(Clone)]
pub struct MediaHttpClient(pub Arc<dyn HttpClient>);

impl std::fmt::Debug for MediaHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaHttpClient(..)")
    }
}

/// The library takes its client by value; this hands it the shared one.
#[async_trait]
impl HttpClient for MediaHttpClient {
    async fn execute(&self, request: HttpRequest) -> anyhow::Result<HttpResponse> {
        self.0.execute(request).await
    }

    fn supports_streaming(&self) -> bool {
        self.0.supports_streaming()
    }

    fn execute_streaming(&self, request: HttpRequest) -> anyhow::Result<StreamingHttpResponse> {
        self.0.execute_streaming(request)
    }

    fn supports_upload_streaming(&self) -> bool {
        self.0.supports_upload_streaming()
    }

    fn execute_upload(
        &self,
        request: HttpRequest,
        body: UploadBody,
        content_length: u64,
    ) -> anyhow::Result<HttpResponse> {
        self.0.execute_upload(request, body, content_length)
    }
}

impl Default for WhatsAppOptions {
    fn default() -> Self {
        Self {
            version: None,
            ws_url: None,
            device_name: DEFAULT_DEVICE_NAME.to_owned(),
            mark_online: false,
            store: StoreBackend::Sqlite,
            http_client: None,
        }
    }
}

impl WhatsAppOptions {
    fn presence(&self) -> Presence {
        if self.mark_online {
            Presence::Online
        } else {
            Presence::NeverOnline
        }
    }
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
    ///
    /// Everything the connection and its client do, and every line they log, runs
    /// inside the org's span.
    pub async fn open(
        &self,
        request: ConnectRequest,
    ) -> Result<(Arc<WhatsAppConnection>, EventStream), ConnectionError> {
        let span = org_span(&request.org);
        self.open_in(request, span.clone()).instrument(span).await
    }

    async fn open_in(
        &self,
        request: ConnectRequest,
        span: tracing::Span,
    ) -> Result<(Arc<WhatsAppConnection>, EventStream), ConnectionError> {
        let store: Arc<dyn Backend> = match &self.options.store {
            StoreBackend::Sqlite => open_store(&request.dir)
                .await
                .inspect_err(report)
                .map_err(StoreProblem::into_error)?,
            StoreBackend::Custom(factory) => factory.open(&request.org).await?,
        };
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
            .with_backend_arc(store)
            .with_transport_factory(transport)
            .with_runtime(OrgRuntime::new(span.clone()))
            .with_http_client(self.options.http_client.clone().unwrap_or_else(|| {
                MediaHttpClient(Arc::new(whatsapp_rust::http::UreqHttpClient::new()))
            }))
            // Sent in the registration payload, so it only matters when pairing;
            // the phone shows it under "Linked devices".
            .with_device_props(DevicePropsOverride::new().with_os(self.options.device_name.clone()))
            // The daemon only sends; the chat history is of no use to it.
            .skip_history_sync();
        if let Some(version) = self.options.version {
            builder = builder.with_version(version);
        }
        let bot = builder.build().await.map_err(|e| {
            let (text, os_code) = error_chain(&e);
            let problem = StoreProblem {
                fault: classify_store_error(&text, os_code),
                detail: text,
            };
            report(&problem);
            problem.into_error()
        })?;

        let client = bot.client();
        // The org actor decides every reconnect (CONTRACT §4): one Bot, one run.
        client.enable_auto_reconnect.store(false, Ordering::SeqCst);

        let (tx, rx) = mpsc::unbounded_channel();
        let forwarder = Arc::new(Forwarder::new(
            request.org.clone(),
            tx,
            pair_code,
            self.options.presence(),
        ));
        forwarder.attach(&client);
        let subscription = client.subscribe_handler(forwarder.clone());
        // 515 and 429/503 stream errors have no event of their own; see the raw stanza.
        let raw_nodes = client.acquire_raw_node_forwarding();
        if !self.options.mark_online {
            let watcher =
                tokio::spawn(presence::watch(Arc::downgrade(&client)).instrument(span.clone()));
            forwarder.track(watcher.abort_handle());
        }

        let handle = bot.spawn();
        forwarder.request_pair_code(true);
        let finisher = forwarder.clone();
        let run = tokio::spawn(
            async move {
                handle.await;
                finisher.finish();
            }
            .instrument(span.clone()),
        );

        let conn = WhatsAppConnection {
            span,
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

/// Opens the org's store after checking that it can be used, so that a broken or
/// unwritable store is reported at once, in its class.
async fn open_store(dir: &Path) -> Result<Arc<SqliteStore>, StoreProblem> {
    let checked = dir.to_path_buf();
    tokio::task::spawn_blocking(move || check_usable(&checked))
        .await
        .map_err(|e| StoreProblem {
            fault: StoreFault::Io,
            detail: format!("the store check did not finish: {e}"),
        })??;
    let path = store_path(dir);
    let url = path.to_str().ok_or_else(|| StoreProblem {
        fault: StoreFault::Io,
        detail: format!("{} is not UTF-8", path.display()),
    })?;
    let store = SqliteStore::new(url).await.map_err(|e| {
        let (text, os_code) = error_chain(&e);
        StoreProblem {
            fault: classify_store_error(&text, os_code),
            detail: text,
        }
    })?;
    Ok(Arc::new(store))
}

/// A store that cannot be used is an operator's business (CONTRACT §8 levels):
/// an error, except for a lock that will pass by itself.
fn report(problem: &StoreProblem) {
    if problem.fault.needs_an_operator() {
        tracing::error!(fault = ?problem.fault, error = %problem.detail, "the session store cannot be used");
    } else {
        tracing::warn!(fault = ?problem.fault, error = %problem.detail, "the session store is busy");
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
        has_device(dir)
    }
}
