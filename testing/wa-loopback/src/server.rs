//! The socket side: accepts WebSocket connections on loopback, runs the handshake,
//! then one task per connection reads the client's nodes and answers them, and
//! carries out the commands a test gives through [`crate::Loopback`].
//!
//! Over 400 lines because the connection loop, the shared state it records into
//! and the event log a test reads are one piece: split, each part would need the
//! others' private state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio_websockets::{Message, ServerBuilder, WebSocketStream};
use wacore_binary::consts::WA_CONN_HEADER;
use wacore_binary::{Jid, Node};
use wacore_noise::framing::{FrameDecoder, encode_frame};

use crate::contacts::{self, Contacts, ReceiptKind, SentMessage};
use crate::error::LoopbackError;
use crate::handshake::{self, Pattern, Reply, ServerIdentity};
use crate::login;
use crate::media::{self, Upload};
use crate::pairing::{self, PhoneProfile, ScannedQr};
use crate::wire::Wire;
use wacore::libsignal::protocol::KeyPair;
use wacore_binary::builder::NodeBuilder;

/// Everything a test may want to know happened, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// A handshake finished. `phone` is `None` for a device that is not paired yet;
    /// such a device registers, and `device_name` is the OS name of the device
    /// properties it registers with (what the phone lists under "Linked devices").
    Handshake {
        conn: u64,
        pattern: Pattern,
        phone: Option<String>,
        device_name: Option<String>,
    },
    /// QR refs went to an unpaired device (it shows QR codes now).
    QrRefs { conn: u64 },
    /// The device behind a scanned QR accepted the pairing; `device_name` is the
    /// name it registered with.
    Paired {
        phone: String,
        device: u16,
        device_name: Option<String>,
    },
    /// A paired device was logged in.
    LoggedIn { phone: String, pattern: Pattern },
    /// A paired device sent a message.
    Message(SentMessage),
    /// A paired device asked for a media connection (to upload a file).
    MediaConn { phone: String },
    /// The upload host received a file ([`crate::MediaHttp`]).
    Upload(Upload),
    /// The server answered a message of `phone`'s device: an ack, or a nack with
    /// `error`.
    Acked {
        phone: String,
        id: String,
        error: Option<u16>,
    },
    /// A paired device announced its presence (`available` or `unavailable`).
    Presence {
        phone: String,
        kind: String,
        name: Option<String>,
    },
    /// The server sent `phone`'s device a receipt for message `id` from `from`.
    ReceiptSent {
        phone: String,
        id: String,
        from: String,
        kind: ReceiptKind,
    },
    /// The server told `phone`'s device its push name (an `account_sync`
    /// notification).
    PushNameSent { phone: String, name: String },
    /// A connection ended (either side).
    Closed { conn: u64, phone: Option<String> },
}

/// What the server does with a message stanza of an account's device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AckMode {
    /// `<ack class="message" id=…>`, as WhatsApp does for every message it takes.
    #[default]
    Ack,
    /// Nothing: the message is recorded and never acknowledged (a zombie link).
    Withhold,
    /// `<ack class="message" id=… error=CODE>`: the server refused the message.
    Nack(u16),
}

/// A command for one live connection.
pub(crate) enum Command {
    /// Write a node.
    Send(Node),
    /// Write a node, then close the socket, as the real server does after
    /// `<stream:error>` and `<failure>`.
    SendAndClose(Node),
    /// Close the TCP connection without a word.
    Drop,
    /// Link the device to `phone`, as a phone that scanned its QR.
    Pair { qr: ScannedQr, phone: String },
}

struct Conn {
    tx: mpsc::UnboundedSender<Command>,
    client_static: [u8; 32],
    phone: Option<String>,
}

#[derive(Default)]
struct State {
    next_conn: u64,
    connections: HashMap<u64, Conn>,
    events: Vec<ServerEvent>,
    contacts: Contacts,
    /// Each paired account's LID user part, by phone number.
    lids: HashMap<String, String>,
    /// How each account's messages are answered; [`AckMode::Ack`] when unset.
    ack_modes: HashMap<String, AckMode>,
}

impl State {
    /// The account's LID, made up the first time the account is seen. The device
    /// stores it at pairing and resolves its own phone by it when it sends.
    fn lid_of(&mut self, phone: &str) -> String {
        if let Some(lid) = self.lids.get(phone) {
            return lid.clone();
        }
        let lid = format!(
            "{}",
            100_000_000_000_000u64 + rand::random::<u64>() % 900_000_000_000_000
        );
        self.contacts.set_lid(phone, &lid);
        self.lids.insert(phone.to_string(), lid.clone());
        lid
    }
}

pub(crate) struct Shared {
    identity: ServerIdentity,
    state: Mutex<State>,
    changed: Notify,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Self {
            identity: ServerIdentity::generate(),
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn record(&self, event: ServerEvent) {
        tracing::debug!(?event, "loopback");
        self.lock().events.push(event);
        self.changed.notify_waiters();
    }

    pub(crate) fn events(&self) -> Vec<ServerEvent> {
        self.lock().events.clone()
    }

    pub(crate) fn events_since(&self, from: usize) -> Vec<ServerEvent> {
        let state = self.lock();
        state.events.get(from..).unwrap_or_default().to_vec()
    }

    pub(crate) fn add_contact(&self, phone: &str) {
        self.lock().lid_of(phone);
    }

    /// Resolves when an event is recorded after this call.
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    pub(crate) fn set_ack_mode(&self, phone: &str, mode: AckMode) {
        self.lock().ack_modes.insert(phone.to_string(), mode);
    }

    fn ack_mode(&self, phone: &str) -> AckMode {
        self.lock()
            .ack_modes
            .get(phone)
            .copied()
            .unwrap_or_default()
    }

    /// Sends a command to the connection of the device whose noise key is given.
    pub(crate) fn command_device(
        &self,
        noise_key: &[u8; 32],
        command: Command,
    ) -> Result<(), LoopbackError> {
        let state = self.lock();
        let conn = state
            .connections
            .values()
            .find(|c| &c.client_static == noise_key)
            .ok_or(LoopbackError::NoSuchDevice)?;
        conn.tx
            .send(command)
            .map_err(|_| LoopbackError::NoSuchDevice)
    }

    /// Sends a command to every live connection of the account `phone`.
    pub(crate) fn command_account(
        &self,
        phone: &str,
        command: impl Fn() -> Command,
    ) -> Result<(), LoopbackError> {
        let state = self.lock();
        let mut sent = false;
        for conn in state.connections.values() {
            if conn.phone.as_deref() == Some(phone) {
                sent |= conn.tx.send(command()).is_ok();
            }
        }
        if sent {
            Ok(())
        } else {
            Err(LoopbackError::NotConnected(phone.to_string()))
        }
    }
}

pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(tcp, shared).await {
                tracing::debug!(error = %e, "loopback connection ended");
            }
        });
    }
}

/// Reads whole frames off the WebSocket, whatever its message boundaries.
struct Frames {
    ws: WebSocketStream<TcpStream>,
    decoder: FrameDecoder,
    header_pending: bool,
}

impl Frames {
    async fn next(&mut self) -> Result<BytesMut, LoopbackError> {
        loop {
            if let Some(frame) = self.decoder.decode_frame() {
                return Ok(frame);
            }
            let message = self.ws.next().await.ok_or(LoopbackError::Closed)??;
            if message.is_close() {
                return Err(LoopbackError::Closed);
            }
            if !message.is_binary() {
                continue;
            }
            let mut data: &[u8] = message.as_payload();
            if self.header_pending {
                // The intro header comes once, before the first frame.
                self.header_pending = false;
                data = data
                    .strip_prefix(&WA_CONN_HEADER[..])
                    .ok_or_else(|| LoopbackError::Handshake("no WA intro header".to_string()))?;
            }
            self.decoder.feed(data);
        }
    }

    async fn write(&mut self, frame: Vec<u8>) -> Result<(), LoopbackError> {
        self.ws.send(Message::binary(frame)).await?;
        Ok(())
    }
}

async fn serve(tcp: TcpStream, shared: Arc<Shared>) -> Result<(), LoopbackError> {
    let (_request, ws) = ServerBuilder::new().accept(tcp).await?;
    let mut frames = Frames {
        ws,
        decoder: FrameDecoder::new(),
        header_pending: true,
    };
    let hello = frames.next().await?;
    let done = match handshake::answer_hello(&shared.identity, &hello)? {
        Reply::Done(server_hello, done) => {
            frames.write(frame(&server_hello)?).await?;
            *done
        }
        Reply::AwaitFinish(server_hello, pending) => {
            frames.write(frame(&server_hello)?).await?;
            let finish = frames.next().await?;
            pending.finish(&finish)?
        }
    };
    let phone = done.payload.username.map(|u| u.to_string());
    let device = done.payload.device.unwrap_or(0) as u16;
    let device_name = registered_device_name(&done.payload);
    let (tx, rx) = mpsc::unbounded_channel();
    let conn = {
        let mut state = shared.lock();
        state.next_conn += 1;
        let id = state.next_conn;
        state.connections.insert(
            id,
            Conn {
                tx,
                client_static: done.client_static,
                phone: phone.clone(),
            },
        );
        id
    };
    shared.record(ServerEvent::Handshake {
        conn,
        pattern: done.pattern,
        phone: phone.clone(),
        device_name: device_name.clone(),
    });
    let mut link = Link {
        shared: shared.clone(),
        conn,
        frames,
        wire: Wire::new(done.read, done.write),
        own: phone.as_ref().map(|p| Jid::pn_device(p.as_str(), device)),
        device_name,
        pending_pair: None,
        next_id: 0,
    };
    let result = link.run(done.pattern, rx).await;
    if !matches!(result, Err(LoopbackError::Dropped)) {
        // The real server ends a stream with a close frame; only a drop is silent.
        let _ = link.frames.ws.close().await;
    }
    let phone = shared
        .lock()
        .connections
        .remove(&conn)
        .and_then(|c| c.phone);
    shared.record(ServerEvent::Closed { conn, phone });
    result
}

/// The OS name in the device properties a registering device sends (the
/// `ClientPayload`'s `device_pairing_data.device_props`); `None` for a login.
fn registered_device_name(payload: &waproto::whatsapp::ClientPayload) -> Option<String> {
    use waproto::buffa::Message as _;
    let props = payload
        .device_pairing_data
        .as_option()?
        .device_props
        .as_deref()?;
    waproto::whatsapp::DeviceProps::decode_from_slice(props)
        .ok()?
        .os
}

fn frame(payload: &[u8]) -> Result<Vec<u8>, LoopbackError> {
    encode_frame(payload, None).map_err(|e| LoopbackError::Frame(e.to_string()))
}

struct PendingPair {
    id: String,
    phone: String,
    device: u16,
    qr: ScannedQr,
}

/// One connection after its handshake.
struct Link {
    shared: Arc<Shared>,
    conn: u64,
    frames: Frames,
    wire: Wire,
    /// The paired device's own JID; `None` while the device is not paired.
    own: Option<Jid>,
    /// The name a registering device gave in its device properties.
    device_name: Option<String>,
    /// The pair-success IQ we sent, waiting for the device's signed answer.
    pending_pair: Option<PendingPair>,
    next_id: u64,
}

impl Link {
    async fn run(
        &mut self,
        pattern: Pattern,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) -> Result<(), LoopbackError> {
        match self.own.clone() {
            Some(own) => {
                let lid = self.shared.lock().lid_of(&own.user);
                let lid = Jid::lid(lid.as_str());
                // Recorded before it is written, so that a client that is
                // connected always finds its login in the record.
                self.shared.record(ServerEvent::LoggedIn {
                    phone: own.user.to_string(),
                    pattern,
                });
                self.send(&login::success_node(now(), Some(&lid))).await?;
            }
            None => {
                let id = self.id();
                let refs: Vec<String> = (0..6)
                    .map(|i| format!("loopback-ref-{}-{i}", self.conn))
                    .collect();
                self.send(&pairing::pair_device_refs_iq(&id, &refs)).await?;
                self.shared.record(ServerEvent::QrRefs { conn: self.conn });
            }
        }
        loop {
            tokio::select! {
                frame = self.frames.next() => {
                    let node = self.wire.open(frame?)?;
                    self.on_node(node).await?;
                }
                command = commands.recv() => {
                    let Some(command) = command else { return Ok(()) };
                    match command {
                        Command::Send(node) => self.send(&node).await?,
                        Command::SendAndClose(node) => {
                            self.send(&node).await?;
                            return Ok(());
                        }
                        Command::Drop => return Err(LoopbackError::Dropped),
                        Command::Pair { qr, phone } => {
                            let id = self.id();
                            let device = 1 + (self.conn % 50) as u16;
                            let lid = self.shared.lock().lid_of(&phone);
                            let account = KeyPair::generate(&mut rand::rng());
                            // A push name keeps the device off the path that waits
                            // for the phone's app-state keys on its first login.
                            let profile = PhoneProfile {
                                business_name: Some(format!("Loopback {phone}")),
                                ..PhoneProfile::default()
                            };
                            let node = pairing::pair_success_iq_signed(
                                &qr, &phone, device, Some(&lid), &id, &account, &profile,
                            );
                            self.send(&node).await?;
                            self.pending_pair = Some(PendingPair { id, phone, device, qr });
                        }
                    }
                }
            }
        }
    }

    async fn on_node(&mut self, node: Node) -> Result<(), LoopbackError> {
        tracing::trace!(tag = %node.tag, "loopback received");
        match node.tag.as_ref() {
            "iq" => self.on_iq(node).await,
            "message" => {
                if let Some(sent) = contacts::sent_message(&node) {
                    let id = sent.id.clone();
                    // The answer is decided as the stanza arrives, before it is
                    // recorded: a test that changes the mode once it sees the
                    // stanza changes the answer to the next one, never this one.
                    let mode = self.own_phone().map(|phone| self.shared.ack_mode(&phone));
                    self.shared.record(ServerEvent::Message(sent));
                    if let Some(mode) = mode {
                        self.answer_message(&node, id, mode).await?;
                    }
                }
                Ok(())
            }
            "presence" => {
                let attrs = |key: &str| node.attrs().optional_string(key).map(|v| v.to_string());
                // Its own presence, not a subscription to someone else's.
                if let (Some(own), None, Some(kind)) = (&self.own, attrs("to"), attrs("type")) {
                    self.shared.record(ServerEvent::Presence {
                        phone: own.user.to_string(),
                        kind,
                        name: attrs("name"),
                    });
                }
                Ok(())
            }
            "receipt" => {
                if let Some(ack) = server_ack(&node, "receipt") {
                    self.send(&ack).await?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn on_iq(&mut self, iq: Node) -> Result<(), LoopbackError> {
        let kind = iq.attrs().optional_string("type").map(|s| s.to_string());
        let id = iq.attrs().optional_string("id").map(|s| s.to_string());
        if matches!(kind.as_deref(), Some("result") | Some("error")) {
            let answers_pairing = matches!(
                (&id, &self.pending_pair),
                (Some(id), Some(pending)) if *id == pending.id
            );
            if answers_pairing && let Some(pending) = self.pending_pair.take() {
                // The device must countersign its identity as a real phone checks.
                let signed = pairing::parse_pair_device_sign(&iq).ok_or_else(|| {
                    LoopbackError::Handshake("pairing refused by the device".to_string())
                })?;
                signed
                    .verify(&pending.qr)
                    .map_err(|e| LoopbackError::Handshake(e.to_string()))?;
                self.shared.record(ServerEvent::Paired {
                    phone: pending.phone,
                    device: pending.device,
                    device_name: self.device_name.clone(),
                });
                // WhatsApp restarts the stream once a device is linked.
                self.send(&login::stream_error(515)).await?;
                return Err(LoopbackError::Restarted);
            }
            return Ok(());
        }
        let answer = {
            let mut state = self.shared.lock();
            match &self.own {
                Some(own) => state.contacts.answer(&iq, own),
                None => None,
            }
        };
        let media_conn = media::answer_media_conn(&iq);
        if media_conn.is_some()
            && let Some(own) = &self.own
        {
            self.shared.record(ServerEvent::MediaConn {
                phone: own.user.to_string(),
            });
        }
        let answer = answer.or(media_conn).or_else(|| login::answer_iq(&iq));
        if let Some(answer) = answer {
            self.send(&answer).await?;
        }
        if let Some(next) = login::follow_up(&iq) {
            self.send(&next).await?;
        }
        Ok(())
    }

    /// Acks, nacks or ignores a message stanza, as `mode` (the account's
    /// [`AckMode`] when it arrived) says.
    /// The logged-in account's number, once it has logged in.
    fn own_phone(&self) -> Option<String> {
        self.own.as_ref().map(|own| own.user.to_string())
    }

    async fn answer_message(
        &mut self,
        node: &Node,
        id: String,
        mode: AckMode,
    ) -> Result<(), LoopbackError> {
        let Some(phone) = self.own_phone() else {
            return Ok(());
        };
        let error = match mode {
            AckMode::Withhold => return Ok(()),
            AckMode::Ack => None,
            AckMode::Nack(code) => Some(code),
        };
        let Some(mut ack) = server_ack(node, "message") else {
            return Ok(());
        };
        if let Some(code) = error {
            ack.attrs.insert("error", code.to_string());
        }
        // Recorded before it is written, so that a client that has seen the ack
        // always finds it in the record.
        self.shared.record(ServerEvent::Acked { phone, id, error });
        self.send(&ack).await?;
        Ok(())
    }

    async fn send(&mut self, node: &Node) -> Result<(), LoopbackError> {
        let frame = self.wire.seal(node)?;
        self.frames.write(frame).await
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("loopback.{}.{}", self.conn, self.next_id)
    }
}

/// The server's `<ack>` of a message or receipt the device sent.
fn server_ack(node: &Node, class: &str) -> Option<Node> {
    let id = node.attrs().optional_string("id")?.to_string();
    let mut ack = NodeBuilder::new("ack").attr("class", class).attr("id", id);
    if let Some(to) = node.attrs().optional_string("to") {
        ack = ack.attr("from", to.to_string());
    }
    Some(ack.attr("t", now().to_string()).build())
}

/// Unix seconds, as stanzas carry time.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
