//! The far end of a send: the fake contacts a linked client talks to, answered
//! in the shapes whatsapp-rust 0.7.0 parses.
//!
//! What the client does to send a text to `PHONE@s.whatsapp.net` (`send/mod.rs`
//! `send_dm_branch`), and what this module answers:
//!
//! 1. Unless it already knows the contact's LID, a usync with only `<lid/>`
//!    (`context="background"`). Answered per user with `<lid val="…@lid"/>` when a
//!    mapping was registered with [`Contacts::set_lid`], else a bare `<lid/>`: then
//!    the client keeps the contact on phone-number addressing for both the stanza
//!    and the Signal session. (It asks again on every send while no LID is known.)
//! 2. Device lists (`<devices version="2"/>`, `context="message"`) for the
//!    contact and for its own account: every user has device 0 only. The account's
//!    own list deliberately leaves out the linked device itself: listing a companion
//!    requires a signed `<key-index-list>`, and the client drops its own device from
//!    the fan-out anyway. So a DM fans out to the contact's device 0 and to the
//!    account's phone (device 0), which gets a `DeviceSentMessage`.
//! 3. Prekey bundles (`xmlns="encrypt"`, `<key><user jid=… reason="identity"/>`)
//!    for every device without a session, with PN jids upgraded to LID where the
//!    client knows a mapping (it always knows its own, from pair-success). Each
//!    bundle has a fresh one-time prekey and a signed prekey signed by the contact's
//!    identity key, so the client really builds a session. Devices other than 0
//!    get a per-user `<error code="406"/>`.
//! 4. `<message to=… type="text" id=…><participants><to jid=…><enc v="2"
//!    type="pkmsg">…</enc></to>…</participants><device-identity>…</device-identity>
//!    </message>`, read by [`sent_message`].
//!
//! Every other iq (the login-time prekey upload, count and digest included) gets
//! `None` here.

use std::collections::HashMap;

use wacore::iq::prekeys::PreKeyBundleUserNode;
use wacore::libsignal::protocol::{IdentityKey, KeyPair, PreKeyBundle};
use wacore::protocol::ProtocolNode as _;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, SERVER_JID, Server};

/// Bytes that no Signal envelope parser accepts: the version nibble of the first
/// byte is 0, below every version libsignal reads.
const JUNK_CIPHERTEXT: &[u8] = b"\x00loopback: not a signal message";

/// One fake contact's Signal key material, private halves included so that the
/// server can later decrypt what the client sends it.
pub struct ContactKeys {
    pub registration_id: u32,
    pub identity: KeyPair,
    pub signed_pre_key_id: u32,
    pub signed_pre_key: KeyPair,
    /// By `identity`, over the 33-byte serialized signed prekey, as libsignal checks it.
    pub signed_pre_key_signature: [u8; 64],
    /// One-time prekeys handed out so far, oldest first; each bundle takes a new one.
    pub one_time_pre_keys: Vec<(u32, KeyPair)>,
}

impl ContactKeys {
    /// Fresh keys around a given identity, e.g. the account key that signed a link,
    /// so the phone's device 0 and the pairing's account signature agree.
    pub fn with_identity(identity: KeyPair) -> Self {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let signed_pre_key = KeyPair::generate(&mut rng);
        let signed_pre_key_signature = identity
            .private_key
            .calculate_signature(&signed_pre_key.public_key.serialize(), &mut rng)
            .expect("a Curve25519 key pair made by KeyPair::generate always signs");
        Self {
            // Signal registration ids are 14-bit and never 0.
            registration_id: rand::RngExt::random_range(&mut rng, 1..=0x3fff),
            identity,
            signed_pre_key_id: 1,
            signed_pre_key,
            signed_pre_key_signature,
            one_time_pre_keys: Vec::new(),
        }
    }

    /// Fresh keys with a fresh identity.
    pub fn generate() -> Self {
        Self::with_identity(KeyPair::generate(
            &mut rand::make_rng::<rand::rngs::StdRng>(),
        ))
    }

    /// A bundle for `device`, handing out a new one-time prekey.
    fn issue_bundle(&mut self, device: u16) -> PreKeyBundle {
        let id = self.one_time_pre_keys.len() as u32 + 1;
        let key = KeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>());
        let public = key.public_key;
        self.one_time_pre_keys.push((id, key));
        PreKeyBundle::new(
            self.registration_id,
            u32::from(device).into(),
            Some((id.into(), public)),
            self.signed_pre_key_id.into(),
            self.signed_pre_key.public_key,
            self.signed_pre_key_signature.to_vec(),
            IdentityKey::new(self.identity.public_key),
        )
        .expect("PreKeyBundle::new only packs its arguments")
    }
}

/// The fake contacts, keyed by phone-number user; a LID registered with
/// [`Contacts::set_lid`] names the same contact.
#[derive(Default)]
pub struct Contacts {
    keys: HashMap<String, ContactKeys>,
    lid_of_pn: HashMap<String, String>,
    pn_of_lid: HashMap<String, String>,
}

impl Contacts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `lid_user@lid` another address of `pn_user`: the usync `<lid/>`
    /// protocol reports it and both addresses share one key set. Register the
    /// account's own LID (the one in pair-success) this way, since the client
    /// fetches its phone's prekeys by LID.
    pub fn set_lid(&mut self, pn_user: &str, lid_user: &str) {
        self.lid_of_pn
            .insert(pn_user.to_owned(), lid_user.to_owned());
        self.pn_of_lid
            .insert(lid_user.to_owned(), pn_user.to_owned());
    }

    /// Gives `user` (a PN user, or a LID registered with [`Self::set_lid`]) chosen
    /// keys instead of generated ones.
    pub fn insert_keys(&mut self, user: &str, keys: ContactKeys) {
        let owner = self.owner(user).to_owned();
        self.keys.insert(owner, keys);
    }

    /// The keys of the contact behind `jid`, created on first use.
    pub fn keys_mut(&mut self, jid: &Jid) -> &mut ContactKeys {
        let owner = self.owner(&jid.user).to_owned();
        self.keys.entry(owner).or_insert_with(ContactKeys::generate)
    }

    /// The keys of the contact behind `jid`, if it has been used.
    pub fn keys(&self, jid: &Jid) -> Option<&ContactKeys> {
        self.keys.get(self.owner(&jid.user))
    }

    fn owner<'a>(&'a self, user: &'a str) -> &'a str {
        self.pn_of_lid.get(user).map_or(user, String::as_str)
    }

    /// The result for a usync query or a prekey-bundle fetch; `None` for any other
    /// iq. `own` is the linked device's own jid: its account is answered like any
    /// contact (device 0 only), and its own device never gets a bundle.
    pub fn answer(&mut self, iq: &Node, own: &Jid) -> Option<Node> {
        if iq.tag != "iq" || attr(iq, "type").as_deref() != Some("get") {
            return None;
        }
        let id = attr(iq, "id")?;
        let content = match attr(iq, "xmlns").as_deref() {
            Some("usync") => self.answer_usync(iq.get_optional_child("usync")?)?,
            Some("encrypt") => self.answer_prekeys(iq.get_optional_child("key")?, own)?,
            _ => return None,
        };
        Some(
            NodeBuilder::new("iq")
                .attr("from", SERVER_JID)
                .attr("type", "result")
                .attr("id", id)
                .children([content])
                .build(),
        )
    }

    fn answer_usync(&mut self, usync: &Node) -> Option<Node> {
        let protocols: Vec<String> = usync
            .get_optional_child("query")?
            .children()
            .unwrap_or_default()
            .iter()
            .map(|p| p.tag.to_string())
            .collect();
        let users = usync
            .get_optional_child("list")?
            .get_children_by_tag("user")
            .filter_map(|user| self.usync_user(user, &protocols))
            .collect::<Vec<_>>();

        let mut result = NodeBuilder::new("usync");
        for key in ["sid", "mode", "context"] {
            if let Some(value) = attr(usync, key) {
                result = result.attr(key, value);
            }
        }
        Some(
            result
                .attr("index", "0")
                .attr("last", "true")
                .children([NodeBuilder::new("list").children(users).build()])
                .build(),
        )
    }

    /// One `<user>` of a usync result; a user named only by a `<contact>` phone
    /// gets the jid of that phone.
    fn usync_user(&mut self, user: &Node, protocols: &[String]) -> Option<Node> {
        let phone = user
            .get_optional_child("contact")
            .and_then(Node::content_as_string);
        let jid = match user.attrs().optional_jid("jid") {
            Some(jid) => jid.to_non_ad(),
            None => {
                let digits: String = phone
                    .as_deref()?
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect();
                if digits.is_empty() {
                    return None;
                }
                Jid::pn(digits)
            }
        };

        let mut children = Vec::new();
        for protocol in protocols {
            match protocol.as_str() {
                "devices" => children.push(
                    NodeBuilder::new("devices")
                        .children([NodeBuilder::new("device-list")
                            .children([NodeBuilder::new("device").attr("id", "0").build()])
                            .build()])
                        .build(),
                ),
                "lid" => {
                    let mut lid = NodeBuilder::new("lid");
                    if jid.server == Server::Pn
                        && let Some(lid_user) = self.lid_of_pn.get(jid.user.as_str())
                    {
                        lid = lid.attr("val", Jid::lid(lid_user.as_str()));
                    }
                    children.push(lid.build());
                }
                "contact" => {
                    let mut contact = NodeBuilder::new("contact").attr("type", "in");
                    if let Some(phone) = &phone {
                        contact = contact.string_content(phone.clone());
                    }
                    children.push(contact.build());
                }
                _ => {}
            }
        }
        // Created now, so that every user the client learns of has keys behind it.
        self.keys_mut(&jid);
        Some(
            NodeBuilder::new("user")
                .attr("jid", jid)
                .children(children)
                .build(),
        )
    }

    fn answer_prekeys(&mut self, key: &Node, own: &Jid) -> Option<Node> {
        let requested: Vec<Jid> = key
            .get_children_by_tag("user")
            .filter_map(|user| user.attrs().optional_jid("jid"))
            .collect();
        if requested.is_empty() {
            return None;
        }
        let users = requested
            .into_iter()
            .map(|jid| {
                let is_own_device = jid.device == own.device
                    && (jid.user == own.user || self.owner(&jid.user) == own.user.as_str());
                if jid.device != 0 || is_own_device {
                    return NodeBuilder::new("user")
                        .attr("jid", jid)
                        .children([NodeBuilder::new("error")
                            .attr("code", "406")
                            .attr("text", "not-acceptable")
                            .build()])
                        .build();
                }
                let bundle = self.keys_mut(&jid).issue_bundle(jid.device);
                PreKeyBundleUserNode::from_bundle(jid, &bundle, None)
                    .expect("a bundle built from key pairs has every field")
                    .into_node()
            })
            .collect::<Vec<_>>();
        Some(NodeBuilder::new("list").children(users).build())
    }
}

fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs.get(key).map(|v| v.as_str().into_owned())
}

/// A message stanza the client sent, as far as the server needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub to: Jid,
    pub id: String,
    /// The stanza's `type` attribute (`text`, `media`, `reaction`, …).
    pub kind: String,
    /// For `kind` `media`: the `mediatype` of its `<enc>` (`image`, `document`,
    /// …), which the client sets from the message it encrypted.
    pub media_type: Option<String>,
    /// The `type` of every `<enc>`, direct ones first (`pkmsg`, `msg`, `skmsg`).
    pub enc_types: Vec<String>,
    /// The device jids of `<participants><to jid>`, in stanza order.
    pub recipients: Vec<Jid>,
}

/// Recognises a client `<message>` to a user (phone number or LID) carrying
/// encrypted content, directly or per participant; `None` for anything else.
pub fn sent_message(node: &Node) -> Option<SentMessage> {
    if node.tag != "message" {
        return None;
    }
    let mut attrs = node.attrs();
    let to = attrs.optional_jid("to")?;
    if !matches!(to.server, Server::Pn | Server::Lid) {
        return None;
    }
    let id = attrs.optional_string("id")?.into_owned();
    let kind = attrs.optional_string("type")?.into_owned();

    let mut encs: Vec<&Node> = node.get_children_by_tag("enc").collect();
    let mut recipients = Vec::new();
    if let Some(participants) = node.get_optional_child("participants") {
        for to_node in participants.get_children_by_tag("to") {
            if let Some(jid) = to_node.attrs().optional_jid("jid") {
                recipients.push(jid);
            }
            encs.extend(to_node.get_children_by_tag("enc"));
        }
    }
    let enc_types: Vec<String> = encs.iter().filter_map(|enc| attr(enc, "type")).collect();
    let media_type = encs.iter().find_map(|enc| attr(enc, "mediatype"));
    if enc_types.is_empty() {
        return None;
    }
    Some(SentMessage {
        to,
        id,
        kind,
        media_type,
        enc_types,
        recipients,
    })
}

/// An incoming text from `from` whose `<enc type="msg">` is junk.
///
/// The client fails to parse the Signal envelope, dispatches
/// `Event::UndecryptableMessage` (not unavailable, `DecryptFailMode::Show`) and
/// answers with a nack, `<ack class="message" id=ID to=FROM from=OWN_PN type="text"
/// error="487"/>` (parsing error); it sends no delivery receipt and no retry
/// receipt. (A well-formed `msg` from a sender without a session would instead get
/// `<receipt type="retry">` plus a transport ack.) The server can ignore the nack.
pub fn undecryptable_message(from: &Jid, id: &str, t: i64) -> Node {
    NodeBuilder::new("message")
        .attr("from", from.clone())
        .attr("type", "text")
        .attr("id", id)
        .attr("t", t.to_string())
        .children([NodeBuilder::new("enc")
            .attr("v", "2")
            .attr("type", "msg")
            .bytes(JUNK_CIPHERTEXT.to_vec())
            .build()])
        .build()
}

/// Which receipt a recipient's phone sends for a message it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptKind {
    /// `<receipt>` without a type: delivered to the recipient's phone.
    Delivered,
    /// `<receipt type="read">`: the recipient opened it.
    Read,
}

/// The receipt the phone of `from` sends for the message `id`, as the server
/// relays it: `<receipt from=FROM id=ID t=T [type="read"]/>`. The client turns it
/// into `Event::Receipt` (type `Delivered` or `Read`, sender `from`) and acks it.
pub fn receipt(from: &Jid, id: &str, kind: ReceiptKind, t: i64) -> Node {
    let mut builder = NodeBuilder::new("receipt")
        .attr("from", from.clone())
        .attr("id", id)
        .attr("t", t.to_string());
    if kind == ReceiptKind::Read {
        builder = builder.attr("type", "read");
    }
    builder.build()
}

/// Whether `node` is the client's nack of an injected undecryptable message.
pub fn is_undecryptable_nack(node: &Node, id: &str) -> bool {
    node.tag == "ack"
        && attr(node, "class").as_deref() == Some("message")
        && attr(node, "id").as_deref() == Some(id)
        && attr(node, "error").as_deref() == Some("487")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wacore::iq::prekeys::PreKeyFetchSpec;
    use wacore::iq::spec::IqSpec;
    use wacore::iq::usync::{DeviceListSpec, IsOnWhatsAppSpec, LidQuerySpec};
    use wacore::libsignal::protocol::{PreKeySignalMessage, SignalMessage};
    use wacore::request::RequestUtils;
    use wacore_binary::OwnedNodeRef;

    const CONTACT: &str = "15550003333";
    const OWN: &str = "15550001111";
    const OWN_LID: &str = "100000000000001";

    fn own() -> Jid {
        Jid::pn_device(OWN, 7)
    }

    /// The iq the client would put on the wire for `spec`.
    fn request<S: IqSpec>(spec: &S) -> Node {
        RequestUtils::new("test".to_owned()).build_iq_node(spec.build_iq(), Some("q-1".into()))
    }

    /// Encodes and decodes the way the socket does, so the client's parsers read
    /// what they would really receive.
    fn over_the_wire(node: &Node) -> OwnedNodeRef {
        let bytes = wacore_binary::marshal(node).expect("node encodes");
        let unpacked = wacore_binary::util::unpack(&bytes).expect("frame unpacks");
        OwnedNodeRef::new(unpacked.into_owned()).expect("node decodes")
    }

    fn answered<S: IqSpec>(contacts: &mut Contacts, spec: &S) -> S::Response {
        let reply = contacts
            .answer(&over_the_wire(&request(spec)).to_owned_node(), &own())
            .expect("an answer");
        assert_eq!(attr(&reply, "id").as_deref(), Some("q-1"));
        assert_eq!(attr(&reply, "type").as_deref(), Some("result"));
        spec.parse_response(over_the_wire(&reply).get())
            .expect("the client's parser accepts the answer")
    }

    #[test]
    fn device_lists_have_device_zero_for_contacts_and_the_own_account() {
        let mut contacts = Contacts::new();
        let spec = DeviceListSpec::new(vec![Jid::pn(CONTACT), own().to_non_ad()], "sid-1")
            .require_complete_response();
        let response = answered(&mut contacts, &spec);
        assert_eq!(response.device_lists.len(), 2);
        for list in &response.device_lists {
            let devices: Vec<u16> = list.devices.iter().map(|d| d.device).collect();
            assert_eq!(devices, [0], "{}", list.user);
            assert!(list.key_index_bytes.is_none());
        }
        assert!(response.lid_mappings.is_empty());
        assert!(contacts.keys(&Jid::pn(CONTACT)).is_some());
    }

    #[test]
    fn own_device_sync_with_hashes_is_answered_in_full() {
        let mut contacts = Contacts::new();
        contacts.set_lid(OWN, OWN_LID);
        let hashes = [(Jid::pn(OWN), ("2:stale".to_owned(), 1_700_000_000))]
            .into_iter()
            .collect();
        let spec = DeviceListSpec::with_hashes(vec![Jid::pn(OWN), Jid::lid(OWN_LID)], "s", hashes);
        let response = answered(&mut contacts, &spec);
        let users: Vec<String> = response
            .device_lists
            .iter()
            .map(|l| l.user.to_string())
            .collect();
        assert_eq!(
            users,
            [format!("{OWN}@s.whatsapp.net"), format!("{OWN_LID}@lid")]
        );
    }

    #[test]
    fn lid_query_reports_only_registered_mappings() {
        let mut contacts = Contacts::new();
        let spec = LidQuerySpec::new(vec![Jid::pn(CONTACT)], "sid-2");
        assert!(answered(&mut contacts, &spec).lid_mappings.is_empty());

        contacts.set_lid(CONTACT, "200000000000002");
        let mappings = answered(&mut contacts, &spec).lid_mappings;
        assert_eq!(mappings.len(), 1);
        assert_eq!(mappings[0].phone_number.as_str(), CONTACT);
        assert_eq!(mappings[0].lid.as_str(), "200000000000002");
    }

    #[test]
    fn is_on_whatsapp_says_every_number_is_registered() {
        use wacore::iq::usync::{IsOnWhatsAppQueryType, IsOnWhatsAppUser};
        let spec = IsOnWhatsAppSpec::new(
            vec![IsOnWhatsAppUser {
                jid: Jid::pn(CONTACT),
                known_lid: None,
            }],
            "sid-3",
            IsOnWhatsAppQueryType::Pn,
        );
        let mut contacts = Contacts::new();
        let results = answered(&mut contacts, &spec);
        assert_eq!(results.len(), 1);
        assert!(results[0].is_registered);
        assert_eq!(results[0].jid, Jid::pn(CONTACT));
    }

    #[test]
    fn prekey_bundles_parse_and_their_signed_prekey_verifies() {
        let mut contacts = Contacts::new();
        contacts.set_lid(OWN, OWN_LID);
        let contact = Jid::pn(CONTACT);
        let own_phone_by_lid = Jid::lid(OWN_LID);
        let spec = PreKeyFetchSpec::new(vec![contact.clone(), own_phone_by_lid.clone()]);
        let outcome = answered(&mut contacts, &spec);
        assert!(outcome.rejected.is_empty());
        assert_eq!(outcome.bundles.len(), 2);

        for jid in [&contact, &own_phone_by_lid] {
            let bundle = &outcome.bundles[jid];
            let keys = contacts.keys(jid).expect("keys exist after a fetch");
            let identity = bundle.identity_key().unwrap();
            assert_eq!(identity.public_key(), &keys.identity.public_key);
            assert_eq!(bundle.registration_id().unwrap(), keys.registration_id);
            // The check libsignal's process_prekey_bundle makes before building a session.
            assert!(identity.public_key().verify_signature(
                &bundle.signed_pre_key_public().unwrap().serialize(),
                bundle.signed_pre_key_signature().unwrap(),
            ));
            let (id, public) = keys.one_time_pre_keys.last().unwrap();
            assert_eq!(u32::from(bundle.pre_key_id().unwrap().unwrap()), *id);
            assert_eq!(
                bundle.pre_key_public().unwrap().as_ref(),
                Some(&public.public_key)
            );
        }
        // The phone's PN and LID addresses are one contact.
        assert!(std::ptr::eq(
            contacts.keys(&Jid::pn(OWN)).unwrap(),
            contacts.keys(&own_phone_by_lid).unwrap()
        ));

        // A second fetch hands out a new one-time prekey.
        let again = answered(&mut contacts, &PreKeyFetchSpec::new(vec![contact.clone()]));
        assert_eq!(
            u32::from(again.bundles[&contact].pre_key_id().unwrap().unwrap()),
            2
        );
    }

    #[test]
    fn prekeys_for_unknown_devices_are_rejected_by_name() {
        let mut contacts = Contacts::new();
        let companion = Jid::pn_device(CONTACT, 3);
        let outcome = answered(
            &mut contacts,
            &PreKeyFetchSpec::new(vec![companion.clone(), own()]),
        );
        assert!(outcome.bundles.is_empty());
        let rejected: Vec<(Jid, u16)> = outcome
            .rejected
            .iter()
            .map(|r| (r.jid.clone(), r.code))
            .collect();
        assert_eq!(rejected, [(companion, 406), (own(), 406)]);
    }

    #[test]
    fn other_iqs_are_left_alone() {
        let mut contacts = Contacts::new();
        let count = request(&wacore::iq::prekeys::PreKeyCountSpec::new());
        assert!(contacts.answer(&count, &own()).is_none());
        let digest = request(&wacore::iq::prekeys::DigestKeyBundleSpec::new());
        assert!(contacts.answer(&digest, &own()).is_none());
        let ping = NodeBuilder::new("iq")
            .attr("type", "get")
            .attr("id", "p")
            .attr("xmlns", "w:p")
            .build();
        assert!(contacts.answer(&ping, &own()).is_none());
    }

    #[test]
    fn sent_message_reads_a_fanout_and_a_direct_enc() {
        let to = Jid::pn(CONTACT);
        let fanout = NodeBuilder::new("message")
            .attr("to", to.clone())
            .attr("id", "3EB0AA")
            .attr("type", "text")
            .children([
                NodeBuilder::new("participants")
                    .children([
                        NodeBuilder::new("to")
                            .attr("jid", to.clone())
                            .children([NodeBuilder::new("enc")
                                .attr("v", "2")
                                .attr("type", "pkmsg")
                                .bytes(vec![1, 2, 3])
                                .build()])
                            .build(),
                        NodeBuilder::new("to")
                            .attr("jid", Jid::lid(OWN_LID))
                            .children([NodeBuilder::new("enc")
                                .attr("v", "2")
                                .attr("type", "msg")
                                .bytes(vec![4])
                                .build()])
                            .build(),
                    ])
                    .build(),
                NodeBuilder::new("device-identity").bytes(vec![9]).build(),
            ])
            .build();
        let sent = sent_message(&over_the_wire(&fanout).to_owned_node()).unwrap();
        assert_eq!(
            sent,
            SentMessage {
                to: to.clone(),
                id: "3EB0AA".into(),
                kind: "text".into(),
                media_type: None,
                enc_types: vec!["pkmsg".into(), "msg".into()],
                recipients: vec![to.clone(), Jid::lid(OWN_LID)],
            }
        );

        let direct = NodeBuilder::new("message")
            .attr("to", Jid::lid("200000000000002"))
            .attr("id", "3EB0BB")
            .attr("type", "media")
            .children([NodeBuilder::new("enc")
                .attr("v", "2")
                .attr("type", "msg")
                .attr("mediatype", "document")
                .bytes(vec![1])
                .build()])
            .build();
        let sent = sent_message(&direct).unwrap();
        assert_eq!(
            (sent.kind.as_str(), sent.enc_types.as_slice()),
            ("media", &["msg".to_owned()][..])
        );
        assert_eq!(sent.media_type.as_deref(), Some("document"));
        assert!(sent.recipients.is_empty());

        let group = NodeBuilder::new("message")
            .attr("to", Jid::group("1203630000"))
            .attr("id", "g")
            .attr("type", "text")
            .children([NodeBuilder::new("enc").attr("type", "skmsg").build()])
            .build();
        assert!(sent_message(&group).is_none());
        let receipt = NodeBuilder::new("receipt")
            .attr("to", to)
            .attr("id", "r")
            .build();
        assert!(sent_message(&receipt).is_none());
    }

    #[test]
    fn undecryptable_message_parses_as_a_message_but_not_as_signal() {
        let from = Jid::pn(CONTACT);
        let node = undecryptable_message(&from, "3EB0CC", 1_700_000_000);
        let wire = over_the_wire(&node);
        let info = wacore::messages::parse_message_info(wire.get(), &own(), None)
            .expect("the client's stanza parser accepts it");
        assert_eq!(info.id, "3EB0CC");
        assert_eq!(info.source.sender, from);
        assert!(!info.source.is_from_me);

        let enc = wire.get().get_optional_child("enc").unwrap();
        assert_eq!(
            enc.get_attr("type").map(|v| v.as_str()).as_deref(),
            Some("msg")
        );
        let ciphertext = enc.content_bytes().expect("non-empty enc content");
        assert!(!ciphertext.is_empty());
        // The receive path's envelope parse fails: event plus a 487 nack, not silence.
        assert!(SignalMessage::try_from(ciphertext).is_err());
        assert!(PreKeySignalMessage::try_from(ciphertext).is_err());

        let nack = NodeBuilder::new("ack")
            .attr("class", "message")
            .attr("id", "3EB0CC")
            .attr("to", from)
            .attr("type", "text")
            .attr("error", "487")
            .build();
        assert!(is_undecryptable_nack(&nack, "3EB0CC"));
        assert!(!is_undecryptable_nack(&nack, "other"));
    }

    #[test]
    fn contact_keys_can_carry_a_given_identity() {
        let identity = KeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>());
        let public = identity.public_key;
        let mut contacts = Contacts::new();
        contacts.set_lid(OWN, OWN_LID);
        contacts.insert_keys(OWN_LID, ContactKeys::with_identity(identity));
        assert_eq!(
            contacts.keys(&Jid::pn(OWN)).unwrap().identity.public_key,
            public
        );
        let keys = contacts.keys(&Jid::pn(OWN)).unwrap();
        assert!(public.verify_signature(
            &keys.signed_pre_key.public_key.serialize(),
            &keys.signed_pre_key_signature
        ));
        assert!((1..=0x3fff).contains(&keys.registration_id));
    }
}
