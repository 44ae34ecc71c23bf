//! One whatsapp-rust `Bot` as a [`Connection`], and the handler that turns its
//! events into the connection's ordered [`EventStream`](crate::connection::EventStream).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tracing::Instrument as _;
use whatsapp_rust::download::MediaType;
use whatsapp_rust::media::{DocumentOptions, ImageOptions};
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::send::SendOptions;
use whatsapp_rust::store::Backend;
use whatsapp_rust::types::events::{Event, EventHandler, EventInterest, Subscription};
use whatsapp_rust::upload::{UploadOptions, UploadResponse};
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{Client, Jid, RawNodeLease};

use super::events::{OwnAccount, interest, map_event};
use super::presence::{self, Presence};
use crate::OrgId;
use crate::connection::{Class, Connection, ConnectionError, ConnectionEvent, classify};
use crate::media::{Media, MediaKind};

/// How long `shutdown` waits for the run loop to stop after `disconnect()` flushed.
/// A loop that is not done by then is stuck in a connect attempt (whatsapp-rust
/// does not race its 20 s connect timeout against `disconnect`), which holds no
/// unsaved state, so it is aborted.
const RUN_LOOP_STOP: Duration = Duration::from_millis(1500);
/// How long the first pairing-code request waits for the socket (as the library's).
const PAIR_CODE_SOCKET_WAIT: Duration = Duration::from_secs(30);
/// How long `shutdown` waits for the last user of the store to let go of it.
/// Together with the above it stays inside the org driver's 5 s shutdown grace.
const STORE_RELEASE: Duration = Duration::from_secs(2);

/// The event handler registered on the client's bus. It runs inline on the
/// library's dispatch path, so it only maps and enqueues (never blocks).
pub(super) struct Forwarder {
    org: OrgId,
    events: Mutex<Option<mpsc::UnboundedSender<ConnectionEvent>>>,
    client: OnceLock<Weak<Client>>,
    /// A connection-ending event (anything but progress or a decrypt error) went out.
    ended: AtomicBool,
    /// The socket came up at least once (a QR, a pairing code or a login).
    reached: AtomicBool,
    /// Pairing by phone number: asked once the socket is up, and again when the
    /// server wants a fresh code.
    pair_code: Option<PairCodeOptions>,
    /// Whether to go `unavailable` after each login.
    presence: Presence,
    /// Our own tasks on the client (pairing-code requests, presence); shutdown
    /// aborts them, as some hold the client.
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Forwarder {
    pub(super) fn new(
        org: OrgId,
        events: mpsc::UnboundedSender<ConnectionEvent>,
        pair_code: Option<PairCodeOptions>,
        presence: Presence,
    ) -> Self {
        Self {
            org,
            events: Mutex::new(Some(events)),
            client: OnceLock::new(),
            ended: AtomicBool::new(false),
            reached: AtomicBool::new(false),
            pair_code,
            presence,
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Keeps a task of ours on the client, so that shutdown aborts it.
    pub(super) fn track(&self, task: AbortHandle) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    pub(super) fn attach(&self, client: &Arc<Client>) {
        let _ = self.client.set(Arc::downgrade(client));
    }

    fn emit(&self, event: ConnectionEvent) {
        let guard = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = guard.as_ref() else { return };
        let class = classify(&event);
        match class {
            Class::Progress => self.reached.store(true, Ordering::SeqCst),
            Class::DecryptError | Class::Delivery => {}
            _ => self.ended.store(true, Ordering::SeqCst),
        }
        // The class only: events carry QR payloads and senders' numbers.
        tracing::debug!(org_id = %self.org, class = ?class, "whatsapp event");
        let _ = tx.send(event);
    }

    /// Ends the stream: no event follows.
    pub(super) fn close(&self) {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// The run loop stopped by itself. whatsapp-rust reports a failed connect
    /// (DNS, refused, TLS, handshake, timeout) only in its log, so when nothing
    /// ended the connection yet this says so; then the stream ends.
    pub(super) fn finish(&self) {
        let mut guard = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = guard.take()
            && !self.ended.load(Ordering::SeqCst)
        {
            let reason = if self.reached.load(Ordering::SeqCst) {
                "the connection to WhatsApp ended"
            } else {
                "could not connect to WhatsApp (network, TLS or handshake failure)"
            };
            let _ = tx.send(ConnectionEvent::NetworkFailure {
                reason: reason.to_owned(),
            });
        }
    }

    fn note_unmapped(&self, event: &Event) {
        let org = &self.org;
        match event {
            Event::PairingCodeError(e) => {
                tracing::warn!(org_id = %org, error = %e.error, throttled = e.rejection.as_ref().is_some_and(|r| r.is_throttled()), "WhatsApp refused the pairing code; the QR code still works");
            }
            Event::PairError(e) => {
                tracing::warn!(org_id = %org, error = %e.error, "pairing failed");
            }
            Event::QrScannedWithoutMultidevice(_) => {
                tracing::warn!(org_id = %org, "the QR code was scanned by a phone without multi-device support");
            }
            Event::PairingCodeRefresh(_) => self.request_pair_code(false),
            // The library announced this device online just before `Connected`.
            Event::Connected(_) if self.presence == Presence::NeverOnline => self.go_unavailable(),
            _ => {}
        }
    }

    /// Sends presence `unavailable` from a task of ours (the handler must not wait).
    fn go_unavailable(&self) {
        let (Some(client), Ok(runtime)) = (
            self.client.get().and_then(Weak::upgrade),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let task =
            runtime.spawn(async move { presence::go_unavailable(&client).await }.in_current_span());
        self.track(task.abort_handle());
    }

    /// Asks for a pairing code when pairing by phone number: the first time once
    /// the socket is up (what `BotBuilder::with_pair_code` does, but in a task we
    /// can abort: the library's own waits 30 s for a socket while holding the
    /// client), and again whenever the server invalidated the code.
    pub(super) fn request_pair_code(&self, first: bool) {
        let (Some(options), Some(client)) = (
            self.pair_code.clone(),
            self.client.get().and_then(Weak::upgrade),
        ) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let org = self.org.clone();
        let task = runtime.spawn(
            async move {
                if first {
                    // No socket: the run loop's end reports the failure.
                    if client.wait_for_socket(PAIR_CODE_SOCKET_WAIT).await.is_err()
                        || client.is_logged_in()
                    {
                        return;
                    }
                }
                // On failure the library also dispatches `PairingCodeError`.
                if let Err(error) = client.pair_with_code(options).await {
                    tracing::debug!(org_id = %org, %error, "no pairing code");
                }
            }
            .in_current_span(),
        );
        self.track(task.abort_handle());
    }

    pub(super) fn abort_tasks(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

impl EventHandler for Forwarder {
    fn handle_event(&self, event: Arc<Event>) {
        self.note_unmapped(&event);
        let client = self.client.get().and_then(Weak::upgrade);
        let mapped = map_event(&event, || OwnAccount {
            pn: client.as_ref().and_then(|c| c.pn()),
            lid: client.as_ref().and_then(|c| c.lid()),
        });
        if let Some(mapped) = mapped {
            self.emit(mapped);
        }
    }

    fn interest(&self) -> EventInterest {
        interest()
    }
}

/// One open (or opening) whatsapp-rust client of one org.
pub struct WhatsAppConnection {
    /// The org's span: what the connection does on a caller's task runs in it.
    pub(super) span: tracing::Span,
    pub(super) client: Mutex<Option<Arc<Client>>>,
    pub(super) forwarder: Arc<Forwarder>,
    /// Awaits the bot's run loop, then ends the event stream.
    pub(super) run: Mutex<Option<JoinHandle<()>>>,
    pub(super) subscription: Mutex<Option<Subscription>>,
    pub(super) raw_nodes: Mutex<Option<RawNodeLease>>,
    pub(super) store: Weak<dyn Backend>,
}

impl WhatsAppConnection {
    fn client(&self) -> Result<Arc<Client>, ConnectionError> {
        self.client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(ConnectionError::NotConnected)
    }

    fn online(&self) -> Result<Arc<Client>, ConnectionError> {
        let client = self.client()?;
        if client.is_connected() && client.is_logged_in() {
            Ok(client)
        } else {
            Err(ConnectionError::NotConnected)
        }
    }

    /// Whether the client has let go of the store (every handle to it dropped).
    pub fn store_released(&self) -> bool {
        self.store.strong_count() == 0
    }
}

#[async_trait]
impl Connection for WhatsAppConnection {
    async fn send_text(
        &self,
        phone: &str,
        text: &str,
        message_id: &str,
    ) -> Result<(), ConnectionError> {
        use whatsapp_rust::proto_helpers::MessageBuilderExt as _;
        let client = self.online()?;
        let options = SendOptions::default().with_message_id(message_id);
        client
            .send_message_with_options(Jid::pn(phone), wa::Message::text(text), options)
            .instrument(self.span.clone())
            .await
            .map_err(|e| ConnectionError::Failed(e.to_string()))?;
        Ok(())
    }

    async fn send_media(
        &self,
        phone: &str,
        media: &Media,
        message_id: &str,
    ) -> Result<(), ConnectionError> {
        let client = self.online()?;
        // Every attempt uploads again: an upload is cheap next to a message
        // that never arrives, and WhatsApp's media links expire.
        let kind = match media.kind {
            MediaKind::Image => MediaType::Image,
            MediaKind::Document => MediaType::Document,
        };
        let upload = client
            .upload(media.bytes.to_vec(), kind, UploadOptions::new())
            .instrument(self.span.clone())
            .await
            .map_err(|e| ConnectionError::Failed(format!("the upload failed: {e}")))?;
        let message = media_message(upload, media);
        let options = SendOptions::default().with_message_id(message_id);
        client
            .send_message_with_options(Jid::pn(phone), message, options)
            .instrument(self.span.clone())
            .await
            .map_err(|e| ConnectionError::Failed(e.to_string()))?;
        Ok(())
    }

    async fn is_on_whatsapp(&self, phone: &str) -> Result<bool, ConnectionError> {
        let client = self.online()?;
        let results = client
            .contacts()
            .is_on_whatsapp(&[Jid::pn(phone)])
            .instrument(self.span.clone())
            .await
            .map_err(|e| ConnectionError::Failed(e.to_string()))?;
        Ok(results.iter().any(|r| r.is_registered))
    }

    async fn logout(&self) -> Result<(), ConnectionError> {
        let client = self.client()?;
        let online = client.is_connected() && client.is_logged_in();
        // Best effort by design: the library sends the removal IQ when it can and
        // tears the client down either way.
        client.logout().instrument(self.span.clone()).await;
        if online {
            Ok(())
        } else {
            Err(ConnectionError::NotConnected)
        }
    }

    async fn shutdown(&self) {
        self.shutdown_in_span().instrument(self.span.clone()).await
    }
}

/// The image or document message of an uploaded file.
fn media_message(upload: UploadResponse, media: &Media) -> wa::Message {
    match media.kind {
        MediaKind::Image => whatsapp_rust::media::image_message(
            upload,
            ImageOptions {
                caption: media.caption.clone(),
                mimetype: Some(media.mimetype.clone()),
                ..ImageOptions::default()
            },
        ),
        MediaKind::Document => whatsapp_rust::media::document_message(
            upload,
            DocumentOptions {
                mimetype: Some(media.mimetype.clone()),
                file_name: media.filename.clone(),
                title: media.filename.clone(),
                caption: media.caption.clone(),
                ..DocumentOptions::default()
            },
        ),
    }
}

impl WhatsAppConnection {
    async fn shutdown_in_span(&self) {
        // No event after this point, whatever the teardown dispatches.
        self.forwarder.close();
        self.forwarder.abort_tasks();
        let client = self.client.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(client) = &client {
            // Flushes buffered receipts, Signal state and the device snapshot, and
            // stops the run loop (terminal: the next connect builds a new Bot).
            client.disconnect().await;
        }
        let run = self.run.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut run) = run
            && tokio::time::timeout(RUN_LOOP_STOP, &mut run).await.is_err()
        {
            tracing::debug!("the WhatsApp run loop is still connecting; aborting it");
            run.abort();
        }
        drop(
            self.subscription
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        drop(
            self.raw_nodes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        drop(client);
        // The background saver's last flush and detached tasks hold the client,
        // and so the store, a little longer: wait until nothing does.
        let deadline = tokio::time::Instant::now() + STORE_RELEASE;
        while !self.store_released() {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("the WhatsApp store is still in use after shutdown");
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for WhatsAppConnection {
    /// Dropped without `shutdown`: stop the client anyway (flushing when a
    /// runtime is at hand), so it never keeps running unowned.
    fn drop(&mut self) {
        self.forwarder.close();
        self.forwarder.abort_tasks();
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(client) = client {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let span = self.span.clone();
                    runtime.spawn(async move { client.disconnect().await }.instrument(span));
                }
                Err(_) => client.signal_shutdown_sync(),
            }
        }
    }
}
