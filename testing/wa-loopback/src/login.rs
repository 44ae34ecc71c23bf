//! Logging a paired device in, answering its queries, and the faults a real server
//! sends: every stanza between a finished Noise handshake and the client's
//! `Event::Connected`, as pure functions over [`Node`]. Nothing here does I/O; the
//! connection loop sends what these return.
//!
//! All references are to the crates the client is built from, version 0.7.0:
//! `wr` = whatsapp-rust, `wc` = wacore, `wb` = wacore-binary.
//!
//! # What the client does after the handshake
//!
//! 1. It waits for `<success>`. Only two attributes are read
//!    (`wr/src/client/node_io.rs:983-998`): `t`, the server's unix time in seconds, used
//!    for the clock-skew offset when it parses as a positive integer
//!    (`wr/src/unified_session.rs:46-57`), and `lid`, the account's LID, stored when it
//!    differs from the one on record (`node_io.rs:1005-1015`). A missing `lid` only logs
//!    a warning. `<success>`, `<failure>`, `<stream:error>` and `<ib>` are processed in
//!    order on the read loop (`node_io.rs:566-568`); everything else is spawned.
//! 2. `handle_success` bumps the connection generation synchronously
//!    (`node_io.rs:940`) and spawns the post-login task (`node_io.rs:1002-1563`):
//!    - `<ib><unified_session id=…/></ib>` (`node_io.rs:1069`): no answer expected.
//!    - a look at the local Signal store for a session with device 0
//!      (`node_io.rs:1076`, `wr/src/client/sessions.rs:555-592`): no stanza.
//!    - on a detached task, the pre-key upload when the store says the server has
//!      none (`node_io.rs:1104-1129`, `wr/src/prekeys.rs:254-282`): an
//!      `xmlns="encrypt" type="set"` IQ carrying `<registration>`, `<type>`,
//!      `<identity>`, `<list>` and `<skey>`; then maybe a signed pre-key rotation,
//!      `xmlns="encrypt" type="set"` with `<rotate>`.
//!    - **awaited**: `<iq xmlns="passive" type="set"><active/></iq>`
//!      (`node_io.rs:1139`, `wr/src/client/iq_ops.rs:6-9`). Left unanswered, the
//!      task sits out the 75 s IQ timeout (`wr/src/request.rs:20`).
//!    - **awaited**: the end of the offline queue, `<ib><offline count=…/></ib>`
//!      (`node_io.rs:1147`, `wr/src/handlers/ib.rs:250-256`). Without it the client
//!      waits 60 s (`wr/src/client/sessions.rs:52,174-241`). The marker must come
//!      after `<success>`: the finisher remembers the generation it started under and
//!      stands down if `<success>` bumps it afterwards (`sessions.rs:96-122`). A real
//!      server sends it after the `<active/>` IQ; see [`follow_up`].
//!    - on a detached task, after the offline wait (`node_io.rs:1160-1256`), in
//!      parallel: props (`xmlns="abt" type="get"` with `<props>`), the blocklist
//!      (`xmlns="blocklist" type="get"`), privacy settings (`xmlns="privacy"
//!      type="get"` with `<privacy/>`), the key-bundle digest (`xmlns="encrypt"
//!      type="get"` with `<digest/>`) and a usync of the account's own devices. None
//!      of them gates `Connected`.
//! 3. Which path leads to `Connected` depends on `needs_initial_sync`
//!    (`node_io.rs:1260-1263`): true when pairing armed the bootstrap gate in this
//!    very `Client` (`wr/src/pair.rs:475-478`, only for the connection after the 515)
//!    or when the stored push name is empty.
//!    - **Ordinary path** (`node_io.rs:1541-1562`): when the push name is known,
//!      `<presence type="available" name=…/>` (a plain send), presence
//!      re-subscriptions (plain sends), then `Connected`. So a loopback server gets
//!      `Connected` after two round trips: answer `<active/>`, send the offline
//!      marker.
//!    - **Bootstrap path** (`node_io.rs:1263-1540`): first a grace of up to **10 s**
//!      for the primary phone's `AppStateSyncKeyShare` (`node_io.rs:1324-1343`),
//!      skipped only when a key share already arrived in this `Client`
//!      (`wr/src/message/special.rs:139-143`; the flag is never reset). Then,
//!      awaited, `<iq xmlns="w:sync:app:state" type="set"><sync>` with
//!      `<collection name="critical_block" return_snapshot="true"/>` and
//!      `critical_unblock_low` (`wr/src/client/app_state.rs:1615-1645`, 30 s
//!      timeout). Answered with a clean, empty `<collection name=…/>` per collection,
//!      both count as synced (`app_state.rs:1866-1871`) and `Connected` follows
//!      (`node_io.rs:1368-1385`). Answered with `type="error"` collections carrying
//!      400/404, they are fatal, and the client still connects, then reports
//!      `Event::AppStateSyncFailed` (`node_io.rs:1402-1448`). The three regular
//!      collections follow in the background (`node_io.rs:1495-1540`). A 180 s
//!      watchdog reconnects if none of this finishes (`node_io.rs:1276-1313`).
//!
//!    The server cannot skip the 10 s grace by itself: the key share is a
//!    Signal-encrypted `<message>` from the account's device 0. To keep `Connected`
//!    fast, pairing should give the device a push name (`<pair-success>` carrying
//!    `<biz name=…/>` sets it, `wr/src/pair.rs:281-288,441-447`), and the first
//!    connection after pairing should run in a fresh `Client`, or the phone should
//!    send the key share early. wa-supervisor turns auto-reconnect off, so after the
//!    515 it builds a new `Bot`: a fresh `Client`, where the gate is not armed.
//! 4. `Connected` is published by `publish_connected` (`wr/src/client/lifecycle.rs:227-234`),
//!    which also sets `is_ready`, the flag `wait_for_connected` waits on
//!    (`lifecycle.rs:176-178`).
//!
//! # Answers
//!
//! The client matches an answer to its request by the `id` alone
//! (`node_io.rs:481-500`), then requires `type="result"`; a `type="error"` answer
//! with `<error code=… text=…/>` becomes `IqError::ServerError`
//! (`wc/src/request.rs:257-305`). Each request's own parser then reads the children
//! it needs (`wc/src/iq/*.rs`, `parse_response`). [`answer_iq`] gives each known IQ
//! the smallest answer its parser accepts.
//!
//! # Keepalive
//!
//! Every 15 to 30 s of silence (`wc/src/protocol/keepalive.rs:11-18`) the client sends
//! `<iq xmlns="w:p" type="get" to="s.whatsapp.net" id=…/>`, with no child
//! (`wc/src/iq/keepalive.rs:41-48`), and waits 20 s. Any `type="result"` with the same
//! id is a pong; a `t` attribute, when present, refreshes the clock skew
//! (`wr/src/keepalive.rs:96-106`). The ping is skipped while other IQs are
//! outstanding (`keepalive.rs:80-85`), and if nothing at all arrives within 20 s of a
//! client send the socket is declared dead and the client reconnects
//! (`keepalive.rs:217-233`). Hence an IQ left unanswered both silences the pings and,
//! 20 s later, costs the connection. The server may also ping the client: an
//! `<iq type="get">` with a `<ping/>` child gets a `type="result"` pong
//! (`node_io.rs:1985-2005`); see [`server_ping`].
//!
//! # Faults and the client's reaction
//!
//! `<stream:error>` is handled by `handle_stream_error` (`node_io.rs:1722-1893`),
//! `<failure>` by `handle_connect_failure` (`node_io.rs:1899-1990`), both on the read
//! loop, and both the same before and after `<success>`. After either, the run loop
//! (`lifecycle.rs:571-694`) reconnects at once when the disconnect was expected,
//! after a Fibonacci backoff (1 s, 1 s, 2 s, …, 900 s at most) otherwise, and not at
//! all when auto-reconnect is off, which the terminal faults switch off themselves.
//! An `Event::Disconnected` is dispatched only when the read loop ended on a
//! transport event (`lifecycle.rs:601-638`, `node_io.rs:243-270`), never when a
//! stanza ended it.
//!
//! | Server sends | Client event | Then |
//! |---|---|---|
//! | [`stream_error`]`(515)` | none | closes the socket, reconnects at once (auto-reconnect on) |
//! | [`stream_error`]`(516)` or `(401)` | `LoggedOut { on_connect: false, reason: LoggedOut }` | closes, stays down |
//! | [`stream_error`]`(409)` | `StreamReplaced` | closes, stays down |
//! | [`replaced`] | `StreamReplaced` | closes, stays down |
//! | [`conflict`]`("device_removed")` or any other type | `LoggedOut { on_connect: false, reason: LoggedOut }` | closes, stays down |
//! | [`stream_error`]`(503)` | none | keeps the socket; the server must close it: `Disconnected`, backoff |
//! | [`stream_error`]`(429)` | none | as 503, with the backoff advanced by five steps (8 s and up) |
//! | [`stream_error`] with any other code | `StreamError { code }` | keeps the connection |
//! | [`stream_error_ack`] | `StreamError { code: "" }` | keeps the connection |
//! | [`xml_not_well_formed`] | `StreamError { code: "" }` | closes the socket, reconnects after backoff |
//! | [`xmlstreamend`] | none | closes, reconnects after backoff |
//! | [`failure`]`(401 \| 403 \| 406, ..)` | `LoggedOut { on_connect: true, reason }` | stays down |
//! | [`failure`]`(402, Some(code), Some(expire))` | `TemporaryBan { code, expire }` | stays down |
//! | [`failure`]`(402)` without code or expire | `ConnectFailure { reason: TempBanned }` | stays down |
//! | [`failure`]`(405, ..)` | `ClientOutdated` | stays down |
//! | [`failure`]`(500 \| 503, ..)` | `ConnectFailure { reason }` | reconnects after backoff |
//! | [`failure`] with any other reason | `ConnectFailure { reason }` | stays down |
//! | a dropped socket | `Disconnected { reason }` | reconnects after backoff |
//!
//! "Stays down" is `enable_auto_reconnect = false`. `Connected` is never dispatched for
//! a connection that a fault ended first: the post-login task checks the generation
//! before dispatching (`node_io.rs:1557-1561`).

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeValue};

/// The server's own JID, as the real server writes it in `from`.
pub const SERVER: &str = "s.whatsapp.net";

/// What [`answer_iq`] reports as the server's pre-key count. Anything at or above the
/// client's minimum of 5 (`wr/src/prekeys.rs:27-34`) keeps a non-forced replenish from
/// uploading again; a connection loop that tracks the real count answers with
/// [`prekey_count_result`] instead.
pub const PREKEY_COUNT_ANSWER: u32 = 812;

/// `<success t=… lid=…/>`: logs a registered device in.
///
/// `t` should be the current unix time in seconds: the client takes the difference
/// from its own clock as the server's clock skew, and ignores zero or negatives.
/// `lid` is the account's LID (user part, `@lid`, no device); without it the client
/// logs a warning and keeps whatever LID it stored at pairing.
pub fn success_node(t: i64, lid: Option<&Jid>) -> Node {
    let mut builder = NodeBuilder::new("success").attr("t", t);
    if let Some(lid) = lid {
        builder = builder.attr("lid", lid);
    }
    builder.build()
}

/// `<ib><offline count="0"/></ib>`: the offline queue is empty and delivered.
///
/// The post-login task waits for exactly this (up to 60 s) before it dispatches
/// `Connected`, so a server with nothing queued still has to say so.
pub fn offline_done() -> Node {
    offline_end(0)
}

/// `<ib><offline count=…/></ib>`: the end of an offline queue of `count` stanzas,
/// sent after the last of them.
pub fn offline_end(count: u32) -> Node {
    NodeBuilder::new("ib")
        .children([NodeBuilder::new("offline").attr("count", count).build()])
        .build()
}

/// `<notification type="account_sync" pushname=…>`: the account's push name,
/// as the server sends it when the phone changes it. The client stores the name,
/// dispatches `SelfPushNameUpdated` and, as WhatsApp Web does, announces itself
/// `available` (`wr/src/handlers/notification/device.rs`,
/// `wr/src/client/accessors.rs`).
pub fn push_name_notification(id: &str, name: &str, t: i64) -> Node {
    NodeBuilder::new("notification")
        .attr("from", SERVER)
        .attr("type", "account_sync")
        .attr("id", id)
        .attr("t", t.to_string())
        .attr("pushname", name)
        .build()
}

/// What the client is asking for, as far as logging in and staying connected go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IqKind {
    /// `xmlns="w:p" type="get"`: the keepalive ping.
    Keepalive,
    /// `xmlns="passive" type="set"` with `<active/>`: the end of passive mode, after
    /// which the server delivers the offline queue.
    Active,
    /// `xmlns="passive" type="set"` with `<passive/>`.
    Passive,
    /// `xmlns="w:sync:app:state" type="set"` with `<sync>`: an app-state fetch, or a
    /// patch upload when a `<collection>` carries `<patch>`.
    AppStateSync,
    /// `xmlns="abt" type="get"` with `<props>`: A/B props.
    Props,
    /// `xmlns="blocklist" type="get"`.
    Blocklist,
    /// `xmlns="blocklist" type="set"` with `<item action=…>`.
    BlocklistUpdate,
    /// `xmlns="privacy" type="get"` with `<privacy/>`.
    PrivacySettings,
    /// Any other `xmlns="privacy"` request: a setting change, privacy tokens.
    PrivacyUpdate,
    /// `xmlns="encrypt" type="get"` with `<count/>`.
    PreKeyCount,
    /// `xmlns="encrypt" type="get"` with `<digest/>`.
    Digest,
    /// `xmlns="encrypt" type="set"` with `<list>` and `<skey>`: the client's key bundle.
    /// The answer is a bare result; whoever encrypts to this device keeps the bundle.
    PreKeyUpload,
    /// `xmlns="encrypt" type="set"` with `<rotate>`: a new signed pre-key.
    SignedPreKeyRotation,
    /// `xmlns="urn:xmpp:whatsapp:dirty" type="set"` with `<clean>`.
    DirtyClean,
    /// `xmlns="md" type="set"` with `<remove-companion-device>`: logout.
    RemoveCompanionDevice,
    /// `xmlns="usync"`: device lists, contacts, LIDs. Answered elsewhere.
    Usync,
    /// `xmlns="encrypt" type="get"` with `<key>`: pre-key bundles of other devices.
    /// Answered elsewhere.
    PreKeyFetch,
    /// `xmlns="md"` with `<link_code_companion_reg>`: pairing by code. Answered
    /// elsewhere.
    PairCode,
    /// Anything else the client asks.
    Other,
}

impl IqKind {
    /// Whether [`answer_iq`] leaves this request to another part of the server.
    pub fn answered_elsewhere(self) -> bool {
        matches!(self, Self::Usync | Self::PreKeyFetch | Self::PairCode)
    }
}

/// Sorts an `<iq>` the client sent. `None` when `node` is not a request, i.e. not an
/// `<iq>` of `type="get"` or `type="set"`: answers the client sends back
/// (`type="result"`, `type="error"`) must not be answered again.
pub fn classify_iq(node: &Node) -> Option<IqKind> {
    if node.tag != "iq" {
        return None;
    }
    let kind = attr(node, "type")?;
    if kind != "get" && kind != "set" {
        return None;
    }
    let get = kind == "get";
    let has = |tag: &str| node.get_optional_child(tag).is_some();
    let xmlns = attr(node, "xmlns").unwrap_or_default();
    Some(match xmlns.as_str() {
        "w:p" => IqKind::Keepalive,
        "passive" if has("active") => IqKind::Active,
        "passive" => IqKind::Passive,
        "w:sync:app:state" if has("sync") => IqKind::AppStateSync,
        "abt" if has("props") => IqKind::Props,
        "blocklist" if get => IqKind::Blocklist,
        "blocklist" => IqKind::BlocklistUpdate,
        "privacy" if get && has("privacy") => IqKind::PrivacySettings,
        "privacy" => IqKind::PrivacyUpdate,
        "encrypt" if get && has("key") => IqKind::PreKeyFetch,
        "encrypt" if get && has("count") => IqKind::PreKeyCount,
        "encrypt" if get && has("digest") => IqKind::Digest,
        "encrypt" if !get && has("rotate") => IqKind::SignedPreKeyRotation,
        "encrypt" if !get && has("list") && has("skey") => IqKind::PreKeyUpload,
        "urn:xmpp:whatsapp:dirty" => IqKind::DirtyClean,
        "md" if has("link_code_companion_reg") => IqKind::PairCode,
        "md" if has("remove-companion-device") => IqKind::RemoveCompanionDevice,
        "usync" => IqKind::Usync,
        _ => IqKind::Other,
    })
}

/// The server's answer to an IQ the client sent, or `None` when there is nothing to
/// answer here: `node` is not a request, has no `id`, or is one of the requests
/// another part of the server answers ([`IqKind::answered_elsewhere`]). Those are
/// recognised by `xmlns="usync"`, by `xmlns="encrypt" type="get"` with a `<key>` child,
/// and by `xmlns="md"` with `<link_code_companion_reg>`.
///
/// Known requests get the smallest answer the client's parser accepts:
///
/// - keepalive, `<active/>`/`<passive/>`, blocklist and privacy changes, pre-key
///   upload and rotation, dirty-bit cleaning, logout: a bare result;
/// - props: `<props protocol="1"/>`, no experiments;
/// - blocklist: an empty `<list/>`;
/// - privacy settings: everything `all`, the server default;
/// - pre-key count: [`PREKEY_COUNT_ANSWER`];
/// - app state: every requested collection clean and empty, see [`app_state_empty`];
/// - the key-bundle digest: a bare result, which the client reads as unparseable and
///   skips quietly (`wr/src/prekeys.rs:885-889`). A 404 would make it re-upload every
///   key, and 503 logs a warning, so the bare result is the quiet one while the server
///   keeps no bundle to digest.
///
/// Anything else gets a bare `type="result"`. That is the safe default because the
/// alternative, silence, is worse on every count: the client's request sits out its
/// timeout (75 s by default), the keepalive stops pinging while it waits, and 20 s
/// after the send the dead-socket check drops the connection. A bare result resolves
/// the request at once: requests whose parser needs nothing succeed, requests whose
/// parser needs children fail fast with a parse error. The cost is that a request
/// with nothing to parse is told it worked when this server did nothing, e.g. a
/// profile change. Use [`iq_error`] where a test needs the refusal instead.
pub fn answer_iq(node: &Node) -> Option<Node> {
    let kind = classify_iq(node)?;
    if kind.answered_elsewhere() {
        return None;
    }
    attr(node, "id")?;
    let answer = match kind {
        IqKind::Props => result_with(
            node,
            [NodeBuilder::new("props").attr("protocol", "1").build()],
        ),
        IqKind::Blocklist => result_with(node, [NodeBuilder::new("list").build()]),
        IqKind::PrivacySettings => result_with(node, [privacy_defaults()]),
        IqKind::PreKeyCount => prekey_count_result(node, PREKEY_COUNT_ANSWER),
        IqKind::AppStateSync => app_state_empty(node),
        IqKind::Keepalive
        | IqKind::Active
        | IqKind::Passive
        | IqKind::BlocklistUpdate
        | IqKind::PrivacyUpdate
        | IqKind::Digest
        | IqKind::PreKeyUpload
        | IqKind::SignedPreKeyRotation
        | IqKind::DirtyClean
        | IqKind::RemoveCompanionDevice
        | IqKind::Other => iq_result(node),
        IqKind::Usync | IqKind::PreKeyFetch | IqKind::PairCode => return None,
    };
    Some(answer)
}

/// What the server sends right after the answer to `node`, if anything: the
/// offline-queue end marker after the `<active/>` IQ, which is where a real server
/// starts delivering the queue. Sending [`offline_done`] any time after `<success>`
/// works as well; sending it before `<success>` does not (see the module docs).
pub fn follow_up(node: &Node) -> Option<Node> {
    (classify_iq(node)? == IqKind::Active).then(offline_done)
}

/// A bare `<iq type="result" id=… from=…/>` for the request `node`: the answer the
/// client expects wherever it parses nothing. `from` echoes the request's `to`, as the
/// real server does; the client itself matches on `id` only.
pub fn iq_result(node: &Node) -> Node {
    reply(node, "result").build()
}

/// `<iq type="error" id=…><error code=… text=…/></iq>`: the request `node` refused.
/// The client turns it into `IqError::ServerError { code, text, .. }`.
pub fn iq_error(node: &Node, code: u16, text: &str) -> Node {
    reply(node, "error")
        .children([NodeBuilder::new("error")
            .attr("code", code)
            .attr("text", text)
            .build()])
        .build()
}

/// `<iq type="result"><count value=…/></iq>`: the answer to a pre-key count request.
pub fn prekey_count_result(node: &Node, count: u32) -> Node {
    result_with(
        node,
        [NodeBuilder::new("count").attr("value", count).build()],
    )
}

/// The answer to an app-state request that has nothing to hand out: one clean
/// `<collection name=…/>` per requested collection, no snapshot, no patches.
///
/// The client counts each as synced (`wr/src/client/app_state.rs:1866-1871`): nothing
/// to decrypt, so no app-state key is needed, and the bootstrap completes. Echoing every
/// requested name matters: a collection the answer leaves out is retried, not synced
/// (`app_state.rs:1880-1892`). The same shape acknowledges a patch upload.
pub fn app_state_empty(node: &Node) -> Node {
    let collections = requested_collections(node)
        .map(|name| NodeBuilder::new("collection").attr("name", name).build())
        .collect::<Vec<_>>();
    result_with(
        node,
        [NodeBuilder::new("sync").children(collections).build()],
    )
}

/// The answer to an app-state request that refuses every requested collection with
/// `code`: `<collection name=… type="error"><error code=… text=…/></collection>`.
///
/// 400 and 404 are fatal to the client: on the bootstrap path it connects anyway and
/// reports `Event::AppStateSyncFailed` with those collections. 409 is a conflict,
/// anything else is retried later.
pub fn app_state_refused(node: &Node, code: u16) -> Node {
    let collections = requested_collections(node)
        .map(|name| {
            NodeBuilder::new("collection")
                .attr("name", name)
                .attr("type", "error")
                .children([NodeBuilder::new("error")
                    .attr("code", code)
                    .attr("text", "")
                    .build()])
                .build()
        })
        .collect::<Vec<_>>();
    result_with(
        node,
        [NodeBuilder::new("sync").children(collections).build()],
    )
}

/// `<iq type="get" xmlns="urn:xmpp:ping" id=… from="s.whatsapp.net"><ping/></iq>`: the
/// server checking on the client, which answers with a `type="result"` pong to the same
/// id. Traffic the server starts itself, so it also keeps an idle client's dead-socket
/// check quiet.
pub fn server_ping(id: &str) -> Node {
    NodeBuilder::new("iq")
        .attr("type", "get")
        .attr("xmlns", "urn:xmpp:ping")
        .attr("id", id)
        .attr("from", SERVER)
        .children([NodeBuilder::new("ping").build()])
        .build()
}

/// `<stream:error code=…/>`. 515 after pairing asks for a new connection; see the
/// module docs for what every other code does.
pub fn stream_error(code: u16) -> Node {
    NodeBuilder::new("stream:error").attr("code", code).build()
}

/// `<stream:error><conflict type="replaced"/></stream:error>`: another connection took
/// this device's place. The client dispatches `Event::StreamReplaced` and stays down.
pub fn replaced() -> Node {
    conflict("replaced")
}

/// `<stream:error><conflict type=…/></stream:error>`. `"replaced"` means
/// `StreamReplaced`; any other non-empty type (the real server uses
/// `"device_removed"` when the phone unlinks the device) means `LoggedOut`.
pub fn conflict(kind: &str) -> Node {
    NodeBuilder::new("stream:error")
        .children([NodeBuilder::new("conflict").attr("type", kind).build()])
        .build()
}

/// `<stream:error><ack id=… class=…/></stream:error>`: the server still waiting for a
/// transport ack of a stanza. The client dispatches `StreamError` with an empty code
/// and keeps the connection.
pub fn stream_error_ack(id: &str, class: &str) -> Node {
    NodeBuilder::new("stream:error")
        .children([NodeBuilder::new("ack")
            .attr("id", id)
            .attr("class", class)
            .build()])
        .build()
}

/// `<stream:error><xml-not-well-formed/></stream:error>`: the server could not read a
/// frame. The client dispatches `StreamError`, closes the socket and reconnects after
/// its backoff.
pub fn xml_not_well_formed() -> Node {
    NodeBuilder::new("stream:error")
        .children([NodeBuilder::new("xml-not-well-formed").build()])
        .build()
}

/// `<xmlstreamend/>`: the server ending the stream cleanly. The client dispatches
/// nothing and reconnects after its backoff.
pub fn xmlstreamend() -> Node {
    NodeBuilder::new("xmlstreamend").build()
}

/// `<failure reason=… code=… expire=…/>`: the server refusing the login, or ending a
/// session it already accepted.
///
/// `code` and `expire` matter for `reason = 402` only: the ban's sub-reason
/// (101 to 106, `wc/src/types/events.rs:1423-1436`) and its length in seconds. With
/// both, the client dispatches `Event::TemporaryBan`; without either,
/// `Event::ConnectFailure { reason: TempBanned }`. See the module docs for the other
/// reasons.
pub fn failure(reason: u16, code: Option<u32>, expire: Option<u64>) -> Node {
    let mut builder = NodeBuilder::new("failure").attr("reason", reason);
    if let Some(code) = code {
        builder = builder.attr("code", code);
    }
    if let Some(expire) = expire {
        builder = builder.attr("expire", expire);
    }
    builder.build()
}

/// Privacy settings as a new account has them.
fn privacy_defaults() -> Node {
    let categories = [
        "last",
        "online",
        "profile",
        "status",
        "groupadd",
        "readreceipts",
        "calladd",
    ]
    .map(|name| {
        NodeBuilder::new("category")
            .attr("name", name)
            .attr("value", "all")
            .build()
    });
    NodeBuilder::new("privacy").children(categories).build()
}

/// Names of the `<collection>` children of an app-state request's `<sync>`.
fn requested_collections(node: &Node) -> impl Iterator<Item = String> + '_ {
    node.get_optional_child("sync")
        .into_iter()
        .flat_map(|sync| sync.get_children_by_tag("collection"))
        .filter_map(|collection| attr(collection, "name"))
}

fn result_with(node: &Node, children: impl IntoIterator<Item = Node>) -> Node {
    reply(node, "result").children(children).build()
}

/// The head of an answer to `node`: same `id`, `from` set to where the request went.
fn reply(node: &Node, kind: &'static str) -> NodeBuilder {
    let mut builder = NodeBuilder::new("iq").attr("type", kind);
    if let Some(id) = node.attrs.get("id") {
        builder = builder.attr("id", id.clone());
    }
    let from = node
        .attrs
        .get("to")
        .cloned()
        .unwrap_or_else(|| NodeValue::from(SERVER));
    builder.attr("from", from)
}

/// An attribute as text, whether it was written as a string or as a JID.
fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs.get(key).map(|value| value.as_str().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wacore::appstate::patch_decode::{CollectionSyncError, WAPatchName, parse_patch_lists_ref};
    use wacore::iq::blocklist::{GetBlocklistSpec, UpdateBlocklistSpec};
    use wacore::iq::devices::RemoveCompanionDeviceSpec;
    use wacore::iq::dirty::CleanDirtyBitsSpec;
    use wacore::iq::keepalive::KeepaliveSpec;
    use wacore::iq::passive::PassiveModeSpec;
    use wacore::iq::prekeys::{DigestKeyBundleSpec, PreKeyCountSpec, PreKeyFetchSpec};
    use wacore::iq::privacy::{
        PrivacyCategory, PrivacySettingsSpec, PrivacyValue, SetPrivacySettingSpec,
    };
    use wacore::iq::props::PropsSpec;
    use wacore::iq::spec::IqSpec;
    use wacore::iq::usync::DeviceListSpec;
    use wacore::prekeys::PreKeyUtils;
    use wacore::request::{InfoQuery, IqError, RequestUtils};
    use wacore::stanza::connect_failure::ConnectFailureStanza;
    use wacore::types::events::{ConnectFailureReason, TempBanReason};
    use wacore_binary::marshal::{marshal, unmarshal_ref};
    use wacore_binary::util::unpack;

    /// Through the wire and back, the way the client reads a frame: marshal, strip
    /// the format byte, decode.
    fn wire(node: &Node) -> Node {
        let bytes = marshal(node).expect("marshal");
        let payload = unpack(&bytes).expect("unpack");
        unmarshal_ref(&payload).expect("unmarshal").to_owned()
    }

    /// The `<iq>` the client's own code builds for `query`.
    fn client_iq(query: InfoQuery<'_>, id: &str) -> Node {
        RequestUtils::new("loopback".to_string()).build_iq_node(query, Some(id.to_string()))
    }

    /// Sends `spec`'s request through [`answer_iq`] and hands the decoded answer to
    /// the client's own checks: the IQ envelope first, then the spec's parser.
    fn round_trip<S: IqSpec>(spec: &S) -> (IqKind, Result<S::Response, anyhow::Error>) {
        let request = wire(&client_iq(spec.build_iq(), "req-1"));
        let kind = classify_iq(&request).expect("a client request");
        let answer = wire(&answer_iq(&request).expect("answered here"));
        assert_eq!(attr(&answer, "id").as_deref(), Some("req-1"));
        RequestUtils::new("loopback".to_string())
            .parse_iq_response(&answer.as_node_ref())
            .expect("a result envelope");
        (kind, spec.parse_response(&answer.as_node_ref()))
    }

    #[test]
    fn success_carries_what_the_client_reads() {
        let lid: Jid = "100000000000001@lid".parse().unwrap();
        let node = wire(&success_node(1_700_000_000, Some(&lid)));

        assert_eq!(node.tag, "success");
        let mut attrs = node.attrs();
        assert_eq!(attrs.optional_string("t").as_deref(), Some("1700000000"));
        // The client reads `lid` with `ValueRef::to_jid`.
        let node_ref = node.as_node_ref();
        assert_eq!(node_ref.get_attr("lid").and_then(|v| v.to_jid()), Some(lid));
    }

    #[test]
    fn success_without_lid_has_only_the_time() {
        let node = wire(&success_node(5, None));
        assert!(node.attrs.get("lid").is_none());
        assert_eq!(attr(&node, "t").as_deref(), Some("5"));
    }

    #[test]
    fn offline_marker_is_an_ib_with_an_offline_count() {
        let node = wire(&offline_done());
        assert_eq!(node.tag, "ib");
        let offline = node.get_optional_child("offline").expect("<offline>");
        assert_eq!(attr(offline, "count").as_deref(), Some("0"));
        assert_eq!(
            attr(
                wire(&offline_end(7)).get_optional_child("offline").unwrap(),
                "count"
            )
            .as_deref(),
            Some("7")
        );
    }

    #[test]
    fn keepalive_gets_a_pong() {
        let (kind, parsed) = round_trip(&KeepaliveSpec::with_timeout(
            std::time::Duration::from_secs(20),
        ));
        assert_eq!(kind, IqKind::Keepalive);
        parsed.expect("the client accepts the pong");
    }

    #[test]
    fn leaving_passive_mode_is_answered_and_followed_by_the_offline_marker() {
        let (kind, parsed) = round_trip(&PassiveModeSpec::active());
        assert_eq!(kind, IqKind::Active);
        parsed.expect("the client accepts the answer");

        let request = client_iq(PassiveModeSpec::active().build_iq(), "a");
        assert_eq!(follow_up(&request), Some(offline_done()));

        let (kind, _) = round_trip(&PassiveModeSpec::passive());
        assert_eq!(kind, IqKind::Passive);
        let request = client_iq(PassiveModeSpec::passive().build_iq(), "p");
        assert_eq!(follow_up(&request), None);
    }

    #[test]
    fn props_parse_as_an_empty_full_update() {
        let (kind, parsed) = round_trip(&PropsSpec::new());
        assert_eq!(kind, IqKind::Props);
        let props = parsed.expect("the client parses the props");
        assert!(!props.delta_update);
        assert!(props.experiment_props.is_empty());
    }

    #[test]
    fn blocklist_is_empty() {
        let (kind, parsed) = round_trip(&GetBlocklistSpec);
        assert_eq!(kind, IqKind::Blocklist);
        assert!(parsed.expect("the client parses the list").is_empty());

        let jid: Jid = "100000000000002@lid".parse().unwrap();
        let (kind, parsed) = round_trip(&UpdateBlocklistSpec::block(&jid));
        assert_eq!(kind, IqKind::BlocklistUpdate);
        parsed.expect("a bare result is a successful block");
    }

    #[test]
    fn privacy_settings_leave_read_receipts_on() {
        let (kind, parsed) = round_trip(&PrivacySettingsSpec::new());
        assert_eq!(kind, IqKind::PrivacySettings);
        let settings = parsed.expect("the client parses the settings");
        // The client persists read receipts as disabled only on `none`.
        assert_eq!(
            settings.get_value(&PrivacyCategory::ReadReceipts),
            Some(&PrivacyValue::All)
        );

        let (kind, parsed) = round_trip(&SetPrivacySettingSpec::new(
            PrivacyCategory::Last,
            PrivacyValue::Contacts,
        ));
        assert_eq!(kind, IqKind::PrivacyUpdate);
        parsed.expect("a bare result is an accepted change");
    }

    #[test]
    fn prekey_count_is_above_the_replenish_threshold() {
        let (kind, parsed) = round_trip(&PreKeyCountSpec::new());
        assert_eq!(kind, IqKind::PreKeyCount);
        assert_eq!(
            parsed.expect("the client parses the count").count,
            PREKEY_COUNT_ANSWER as usize
        );

        let request = client_iq(PreKeyCountSpec::new().build_iq(), "c");
        let answer = wire(&prekey_count_result(&request, 3));
        let count = PreKeyCountSpec::new()
            .parse_response(&answer.as_node_ref())
            .expect("parses");
        assert_eq!(count.count, 3);
    }

    /// The quiet path on purpose: the client maps an unparseable digest to "skip"
    /// without re-uploading its keys.
    #[test]
    fn digest_answer_is_one_the_client_skips() {
        let (kind, parsed) = round_trip(&DigestKeyBundleSpec::new());
        assert_eq!(kind, IqKind::Digest);
        assert!(parsed.is_err(), "a bare result carries no digest");
    }

    #[test]
    fn key_bundle_upload_is_recognised_and_accepted() {
        let content = PreKeyUtils::build_upload_prekeys_request(
            7,
            &[1; 32],
            1,
            &[2; 32],
            &[3; 64],
            [(1, [4u8; 32].as_slice()), (2, [5u8; 32].as_slice())],
        );
        let query = InfoQuery::set(
            "encrypt",
            Jid::new("", wacore_binary::Server::Pn),
            Some(wacore_binary::NodeContent::Nodes(content)),
        );
        let request = wire(&client_iq(query, "up"));
        assert_eq!(classify_iq(&request), Some(IqKind::PreKeyUpload));
        let answer = answer_iq(&request).expect("answered here");
        assert_eq!(attr(&answer, "type").as_deref(), Some("result"));
        assert!(answer.children().is_none());
    }

    #[test]
    fn dirty_bits_and_logout_get_bare_results() {
        let (kind, parsed) =
            round_trip(&CleanDirtyBitsSpec::from_raw("account_sync", Some("1")).unwrap());
        assert_eq!(kind, IqKind::DirtyClean);
        parsed.expect("accepted");

        let own: Jid = "15550000001:3@s.whatsapp.net".parse().unwrap();
        let (kind, parsed) = round_trip(&RemoveCompanionDeviceSpec::new(&own));
        assert_eq!(kind, IqKind::RemoveCompanionDevice);
        parsed.expect("accepted");
    }

    #[test]
    fn device_queries_and_bundle_fetches_are_left_alone() {
        let peer: Jid = "15550000002:0@s.whatsapp.net".parse().unwrap();

        let usync = wire(&client_iq(
            DeviceListSpec::new(vec![peer.clone()], "sid").build_iq(),
            "u",
        ));
        assert_eq!(classify_iq(&usync), Some(IqKind::Usync));
        assert_eq!(answer_iq(&usync), None);

        let fetch = wire(&client_iq(PreKeyFetchSpec::new(vec![peer]).build_iq(), "k"));
        assert_eq!(classify_iq(&fetch), Some(IqKind::PreKeyFetch));
        assert_eq!(answer_iq(&fetch), None);
    }

    #[test]
    fn answers_and_id_less_requests_are_not_answered() {
        let request = client_iq(PassiveModeSpec::active().build_iq(), "x");
        let answer = iq_result(&request);
        assert_eq!(classify_iq(&answer), None);
        assert_eq!(answer_iq(&answer), None);
        assert_eq!(answer_iq(&iq_error(&request, 500, "boom")), None);

        let mut no_id = request.clone();
        no_id.attrs = wacore_binary::Attrs::new();
        no_id.attrs.insert("xmlns", "passive");
        no_id.attrs.insert("type", "set");
        assert_eq!(answer_iq(&no_id), None);

        assert_eq!(classify_iq(&offline_done()), None);
    }

    #[test]
    fn unknown_requests_get_a_bare_result() {
        let query = InfoQuery::get(
            "w:m",
            Jid::new("", wacore_binary::Server::Pn),
            Some(wacore_binary::NodeContent::Nodes(vec![
                NodeBuilder::new("media_conn").build(),
            ])),
        );
        let request = client_iq(query, "m");
        assert_eq!(classify_iq(&request), Some(IqKind::Other));
        let answer = wire(&answer_iq(&request).expect("answered"));
        RequestUtils::new("loopback".to_string())
            .parse_iq_response(&answer.as_node_ref())
            .expect("a result envelope");
        assert_eq!(attr(&answer, "from").as_deref(), Some(SERVER));
    }

    #[test]
    fn errors_reach_the_client_as_server_errors() {
        let request = client_iq(PassiveModeSpec::active().build_iq(), "e");
        let answer = wire(&iq_error(&request, 503, "service-unavailable"));
        let err = RequestUtils::new("loopback".to_string())
            .parse_iq_response(&answer.as_node_ref())
            .expect_err("an error envelope");
        assert!(
            matches!(err, IqError::ServerError { code: 503, ref text, .. } if text == "service-unavailable")
        );
    }

    /// The critical-sync request exactly as the client writes it
    /// (`wr/src/client/app_state.rs:1613-1645`).
    fn app_state_request(names: &[WAPatchName]) -> Node {
        let collections = names
            .iter()
            .map(|name| {
                NodeBuilder::new("collection")
                    .attr("name", name.as_str())
                    .attr("return_snapshot", "true")
                    .build()
            })
            .collect::<Vec<_>>();
        let query = InfoQuery::set(
            "w:sync:app:state",
            Jid::new("", wacore_binary::Server::Pn),
            Some(wacore_binary::NodeContent::Nodes(vec![
                NodeBuilder::new("sync").children(collections).build(),
            ])),
        );
        wire(&client_iq(query, "sync-1"))
    }

    #[test]
    fn critical_app_state_comes_back_clean_and_empty() {
        let names = [WAPatchName::CriticalBlock, WAPatchName::CriticalUnblockLow];
        let request = app_state_request(&names);
        assert_eq!(classify_iq(&request), Some(IqKind::AppStateSync));

        let answer = wire(&answer_iq(&request).expect("answered here"));
        RequestUtils::new("loopback".to_string())
            .parse_iq_response(&answer.as_node_ref())
            .expect("a result envelope");
        let lists = parse_patch_lists_ref(&answer.as_node_ref()).expect("the client parses it");
        let got: Vec<_> = lists.iter().map(|list| list.name).collect();
        assert_eq!(got, names);
        for list in &lists {
            assert!(list.error.is_none(), "{:?} must not be an error", list.name);
            assert!(!list.has_more_patches);
            assert!(list.patches.is_empty());
            assert!(list.snapshot.is_none() && list.snapshot_ref.is_none());
        }
    }

    #[test]
    fn refused_app_state_is_fatal_to_the_client() {
        let request = app_state_request(&[WAPatchName::CriticalBlock]);
        let answer = wire(&app_state_refused(&request, 404));
        let lists = parse_patch_lists_ref(&answer.as_node_ref()).expect("parses");
        assert_eq!(lists.len(), 1);
        assert!(matches!(
            lists[0].error,
            Some(CollectionSyncError::Fatal { code: 404, .. })
        ));
    }

    #[test]
    fn server_ping_is_one_the_client_pongs() {
        let node = wire(&server_ping("ping-1"));
        // The client's test (node_io.rs:1991-1995): a get (or no type) with <ping/>.
        assert_eq!(attr(&node, "type").as_deref(), Some("get"));
        assert!(node.get_optional_child("ping").is_some());
        assert_eq!(attr(&node, "id").as_deref(), Some("ping-1"));
        assert_eq!(
            classify_iq(&node).map(|k| k.answered_elsewhere()),
            Some(false)
        );
    }

    /// What `handle_stream_error` reads: `code`, and the `type` of a `<conflict>`.
    fn stream_error_view(node: &Node) -> (String, Option<String>) {
        assert_eq!(node.tag, "stream:error");
        let code = attr(node, "code").unwrap_or_default();
        let conflict = node
            .get_optional_child("conflict")
            .map(|c| attr(c, "type").unwrap_or_default());
        (code, conflict)
    }

    #[test]
    fn stream_errors_carry_what_the_handler_reads() {
        for code in [515, 516, 401, 409, 429, 503] {
            let node = wire(&stream_error(code));
            assert_eq!(stream_error_view(&node), (code.to_string(), None));
        }
        assert_eq!(
            stream_error_view(&wire(&replaced())),
            (String::new(), Some("replaced".to_string()))
        );
        assert_eq!(
            stream_error_view(&wire(&conflict("device_removed"))),
            (String::new(), Some("device_removed".to_string()))
        );

        let ack = wire(&stream_error_ack("3EB0ABC", "message"));
        assert_eq!(stream_error_view(&ack), (String::new(), None));
        let inner = ack.get_optional_child("ack").expect("<ack>");
        assert_eq!(attr(inner, "id").as_deref(), Some("3EB0ABC"));
        assert_eq!(attr(inner, "class").as_deref(), Some("message"));

        let bad = wire(&xml_not_well_formed());
        assert_eq!(stream_error_view(&bad), (String::new(), None));
        assert!(bad.get_optional_child("xml-not-well-formed").is_some());

        assert_eq!(wire(&xmlstreamend()).tag, "xmlstreamend");
    }

    /// The failures through the client's own parser and its own verdicts
    /// (`ConnectFailureReason::is_logged_out` / `should_reconnect`), which
    /// `handle_connect_failure` branches on.
    #[test]
    fn failures_classify_as_the_intended_events() {
        let parse = |node: &Node| {
            let node = wire(node);
            let node_ref = node.as_node_ref();
            let parsed = ConnectFailureStanza::parse(&node_ref);
            (parsed.reason, parsed.code, parsed.expire)
        };

        for (reason, expected) in [
            (401, ConnectFailureReason::LoggedOut),
            (403, ConnectFailureReason::AccountLocked),
            (406, ConnectFailureReason::UnknownLogout),
        ] {
            let (got, _, _) = parse(&failure(reason, None, None));
            let got = got.expect("a reason");
            assert_eq!(got, expected);
            assert!(got.is_logged_out(), "{reason} must log out");
        }

        let (reason, code, expire) = parse(&failure(402, Some(101), Some(3600)));
        assert_eq!(reason, Some(ConnectFailureReason::TempBanned));
        assert_eq!(
            TempBanReason::from(code.expect("a ban code")),
            TempBanReason::SentToTooManyPeople
        );
        assert_eq!(expire, Some(3600));

        let (reason, code, expire) = parse(&failure(402, None, None));
        assert_eq!(reason, Some(ConnectFailureReason::TempBanned));
        assert_eq!((code, expire), (None, None), "no ban without both");

        let (reason, _, _) = parse(&failure(405, None, None));
        assert_eq!(reason, Some(ConnectFailureReason::ClientOutdated));

        for reason in [500, 503] {
            let got = parse(&failure(reason, None, None)).0.expect("a reason");
            assert!(got.should_reconnect(), "{reason} reconnects");
            assert!(!got.is_logged_out());
        }
        let got = parse(&failure(400, None, None)).0.expect("a reason");
        assert!(!got.should_reconnect() && !got.is_logged_out());
    }
}
