//! The server's side of linking a device: what WhatsApp and the phone that scans
//! the QR send, built so that whatsapp-rust 0.7.0 accepts it.
//!
//! The flow, as the client (`whatsapp-rust/src/pair.rs`, `wacore/src/pair.rs`) runs it:
//!
//! 1. An unpaired client logs in with a registration payload; the server answers
//!    [`pair_device_refs_iq`]: `<iq from="s.whatsapp.net" type="set" xmlns="md"
//!    id=…><pair-device><ref>…</ref>…</pair-device></iq>`. Only `from` (must be
//!    exactly `s.whatsapp.net`) and the `<pair-device>` child matter; each `<ref>`
//!    carries its ref as **bytes** (the client reads `content_bytes()`). The client
//!    acks with `<iq to="s.whatsapp.net" id=… type="result"/>` and emits one
//!    `PairingQrCode` event per ref (60 s for the first, 20 s for the rest); when
//!    all refs expire it emits `PairingQrCodesExhausted` and disconnects.
//! 2. The QR string is `<ref>,<noise pub b64>,<identity pub b64>,<adv secret b64>,<client type>`
//!    ([`parse_qr`]).
//! 3. The phone links: the server sends [`pair_success_iq`]: `<iq from="s.whatsapp.net"
//!    type="set" xmlns="md" id=…><pair-success>` with
//!    - `<device-identity>`: an `ADVSignedDeviceIdentityHMAC` (required; missing →
//!      the client answers an `iq type="error"` with code 500). Its HMAC-SHA256 is
//!      keyed by the QR's adv secret (mismatch → error 401 `hmac-mismatch`), the inner
//!      `ADVSignedDeviceIdentity` carries an account signature (prefix `[6,0]` ‖
//!      details ‖ the device's identity pub) by `account_signature_key`, and the
//!      inner `ADVDeviceIdentity` must have a `key_index` (else 500);
//!    - `<device jid="PHONE:DEVICE@s.whatsapp.net" lid="LID:DEVICE@lid"/>`: read but
//!      not checked. Without `jid` the client stores an empty own jid; without `lid`
//!      it stores `Some(<empty jid>)` as its own LID, so both should be sent (WhatsApp
//!      always does). The LID also seeds the client's own LID↔PN mapping;
//!    - `<platform name=…/>` and `<biz name=…/>` are optional (the biz name becomes
//!      the push name); `<client-props>` is optional and, when absent, leaves the
//!      account "not LID-migrated", so DMs stay addressed by phone number.
//! 4. The client answers `<iq to="s.whatsapp.net" id=SAME type="result"><pair-device-sign>
//!    <device-identity key-index=N>ADVSignedDeviceIdentity with device_signature
//!    </device-identity></pair-device-sign></iq>` ([`parse_pair_device_sign`]), stops
//!    the QR rotation, emits `PairSuccess` and marks the next disconnect as expected.
//! 5. WhatsApp then ends the stream with `<stream:error code="515"/>`; the client
//!    reconnects at once and logs in with the new identity.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use wacore::libsignal::protocol::{KeyPair, PublicKey};
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, SERVER_JID};
use waproto::buffa::Message as _;
use waproto::whatsapp as wa;

/// Account-signature prefix of a regular (not business-hosted) account.
const ADV_PREFIX_ACCOUNT_SIGNATURE: &[u8] = &[6, 0];
/// Device-signature prefix the companion signs its identity with.
const ADV_PREFIX_DEVICE_SIGNATURE: &[u8] = &[6, 1];
/// What a scanned QR may start with when it came through the phone's camera app.
const NATIVE_CAMERA_DEEP_LINK_PREFIX: &str = "https://wa.me/settings/linked_devices#";

/// Why a QR string or a pairing reply could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    #[error("QR code has {0} comma-separated fields, expected at least 4")]
    TooFewFields(usize),
    #[error("QR code field `{0}` is empty")]
    EmptyField(&'static str),
    #[error("QR code field `{field}` is not base64: {source}")]
    Base64 {
        field: &'static str,
        source: base64::DecodeError,
    },
    #[error("QR code field `{field}` decodes to {len} bytes, expected 32")]
    KeyLength { field: &'static str, len: usize },
    #[error("pairing reply is malformed: {0}")]
    MalformedReply(&'static str),
    #[error("pairing reply does not decode: {0}")]
    Protobuf(String),
    #[error("signature does not verify: {0}")]
    BadSignature(&'static str),
}

/// What the phone learns from scanning the QR the client shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedQr {
    /// The ref the server handed out in `<pair-device>`.
    pub pairing_ref: String,
    /// The client's Noise static public key.
    pub noise_pub: [u8; 32],
    /// The client's Signal identity public key; the account signature covers it.
    pub identity_pub: [u8; 32],
    /// The shared secret the pair-success HMAC is keyed with.
    pub adv_secret: [u8; 32],
    /// The companion platform byte of the fifth field; `None` for the legacy four-field form.
    pub client_type: Option<String>,
}

/// Reads a QR string as the client renders it (`PairUtils::make_qr_data`), also
/// accepting the camera deep-link prefix and extra trailing fields, as the phone does.
pub fn parse_qr(code: &str) -> Result<ScannedQr, PairingError> {
    let body = code
        .strip_prefix(NATIVE_CAMERA_DEEP_LINK_PREFIX)
        .unwrap_or(code);
    let parts: Vec<&str> = body.trim().split(',').collect();
    if parts.len() < 4 {
        return Err(PairingError::TooFewFields(parts.len()));
    }
    let field = |index: usize, name: &'static str| -> Result<&str, PairingError> {
        match parts[index] {
            "" => Err(PairingError::EmptyField(name)),
            value => Ok(value),
        }
    };
    let key = |index: usize, name: &'static str| -> Result<[u8; 32], PairingError> {
        let bytes = BASE64
            .decode(field(index, name)?)
            .map_err(|source| PairingError::Base64 {
                field: name,
                source,
            })?;
        let len = bytes.len();
        bytes
            .try_into()
            .map_err(|_| PairingError::KeyLength { field: name, len })
    };
    Ok(ScannedQr {
        pairing_ref: field(0, "ref")?.to_owned(),
        noise_pub: key(1, "noise")?,
        identity_pub: key(2, "identity")?,
        adv_secret: key(3, "adv")?,
        client_type: match parts.get(4) {
            None => None,
            Some(_) => Some(field(4, "client_type")?.to_owned()),
        },
    })
}

/// The `<pair-device>` push that makes an unpaired client show QR codes, one per ref.
///
/// Refs go out as bytes because the client reads them with `content_bytes()`.
pub fn pair_device_refs_iq(iq_id: &str, refs: &[String]) -> Node {
    NodeBuilder::new("iq")
        .attr("from", SERVER_JID)
        .attr("type", "set")
        .attr("xmlns", "md")
        .attr("id", iq_id)
        .children([NodeBuilder::new("pair-device")
            .children(
                refs.iter()
                    .map(|r| NodeBuilder::new("ref").bytes(r.as_bytes().to_vec()).build()),
            )
            .build()])
        .build()
}

/// How the phone's side of a link is dressed; [`Default`] is a plain Android phone.
#[derive(Debug, Clone)]
pub struct PhoneProfile {
    /// `<platform name>`; the client only reports it in `PairSuccess`.
    pub platform: String,
    /// `<biz name>`; when set, the client takes it as its push name.
    pub business_name: Option<String>,
    /// `ADVDeviceIdentity.raw_id`: the account's identity generation. The client
    /// compares it with later key-index lists, so keep it stable per account.
    pub raw_id: u32,
    /// `ADVDeviceIdentity.timestamp`.
    pub timestamp: u64,
}

impl Default for PhoneProfile {
    fn default() -> Self {
        Self {
            platform: "android".to_owned(),
            business_name: None,
            raw_id: 1,
            timestamp: 0,
        }
    }
}

/// The `<pair-success>` iq the server sends once the phone has linked the device,
/// signed by a freshly generated account key.
///
/// `phone` is the account's number in digits, `device` the device id the server
/// assigns (also used as the ADV key index), `lid` the account's LID user part.
pub fn pair_success_iq(
    qr: &ScannedQr,
    phone: &str,
    device: u16,
    lid: Option<&str>,
    iq_id: &str,
) -> Node {
    let account = KeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>());
    pair_success_iq_signed(
        qr,
        phone,
        device,
        lid,
        iq_id,
        &account,
        &PhoneProfile::default(),
    )
}

/// Like [`pair_success_iq`], with the account key and the phone's profile given, so
/// the same account identity can sign several links and be served as the phone's
/// own identity elsewhere.
pub fn pair_success_iq_signed(
    qr: &ScannedQr,
    phone: &str,
    device: u16,
    lid: Option<&str>,
    iq_id: &str,
    account: &KeyPair,
    profile: &PhoneProfile,
) -> Node {
    let identity = signed_device_identity_hmac(qr, account, u32::from(device), profile);

    let mut device_node = NodeBuilder::new("device").attr("jid", Jid::pn_device(phone, device));
    if let Some(lid) = lid {
        device_node = device_node.attr("lid", Jid::lid_device(lid, device));
    }
    let mut children = vec![
        NodeBuilder::new("device-identity").bytes(identity).build(),
        NodeBuilder::new("platform")
            .attr("name", profile.platform.as_str())
            .build(),
        device_node.build(),
    ];
    if let Some(name) = &profile.business_name {
        children.push(NodeBuilder::new("biz").attr("name", name.as_str()).build());
    }

    NodeBuilder::new("iq")
        .attr("from", SERVER_JID)
        .attr("type", "set")
        .attr("xmlns", "md")
        .attr("id", iq_id)
        .children([NodeBuilder::new("pair-success").children(children).build()])
        .build()
}

/// The encoded `ADVSignedDeviceIdentityHMAC` for the device behind `qr`, the way
/// `PairUtils::do_pair_crypto` verifies it.
fn signed_device_identity_hmac(
    qr: &ScannedQr,
    account: &KeyPair,
    key_index: u32,
    profile: &PhoneProfile,
) -> Vec<u8> {
    let details = wa::ADVDeviceIdentity {
        raw_id: Some(profile.raw_id),
        timestamp: Some(profile.timestamp),
        key_index: Some(key_index),
        account_type: Some(wa::ADVEncryptionType::E2EE),
        device_type: Some(wa::ADVEncryptionType::E2EE),
    }
    .encode_to_vec();

    let mut signed_message =
        Vec::with_capacity(ADV_PREFIX_ACCOUNT_SIGNATURE.len() + details.len() + 32);
    signed_message.extend_from_slice(ADV_PREFIX_ACCOUNT_SIGNATURE);
    signed_message.extend_from_slice(&details);
    signed_message.extend_from_slice(&qr.identity_pub);
    let account_signature = account
        .private_key
        .calculate_signature(&signed_message, &mut rand::make_rng::<rand::rngs::StdRng>())
        .expect("a Curve25519 key pair made by KeyPair::generate always signs");

    let signed = wa::ADVSignedDeviceIdentity {
        details: Some(details),
        account_signature_key: Some(account.public_key.public_key_bytes().to_vec()),
        account_signature: Some(account_signature.to_vec()),
        device_signature: None,
    }
    .encode_to_vec();

    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&qr.adv_secret)
        .expect("HMAC-SHA256 takes a key of any length");
    mac.update(&signed);
    let hmac = mac.finalize().into_bytes().to_vec();

    wa::ADVSignedDeviceIdentityHMAC {
        details: Some(signed),
        hmac: Some(hmac),
        account_type: Some(wa::ADVEncryptionType::E2EE),
    }
    .encode_to_vec()
}

/// The client's answer to `<pair-success>`: its identity, now also signed by itself.
#[derive(Debug, Clone)]
pub struct PairDeviceSign {
    /// The `id` of the pair-success iq it answers.
    pub iq_id: String,
    /// `key-index` attribute, echoed from the ADV details.
    pub key_index: u32,
    /// The encoded `ADVSignedDeviceIdentity`, with `device_signature` set. The client
    /// stores this as its account and sends it in `<device-identity>` of pkmsg stanzas.
    pub signed_identity: Vec<u8>,
}

impl PairDeviceSign {
    /// Checks the device signature (`[6,1]` ‖ details ‖ identity ‖ account key)
    /// against the identity key the QR advertised.
    pub fn verify(&self, qr: &ScannedQr) -> Result<(), PairingError> {
        let signed = waproto::codec::adv_signed_device_identity_decode(&self.signed_identity)
            .map_err(|e| PairingError::Protobuf(e.to_string()))?;
        let details = signed
            .details
            .as_deref()
            .ok_or(PairingError::MalformedReply("no details"))?;
        let account_key = signed
            .account_signature_key
            .as_deref()
            .ok_or(PairingError::MalformedReply("no account signature key"))?;
        let device_signature = signed
            .device_signature
            .as_deref()
            .ok_or(PairingError::MalformedReply("no device signature"))?;
        let identity = PublicKey::from_djb_public_key_bytes(&qr.identity_pub)
            .map_err(|_| PairingError::BadSignature("identity key is not a curve point"))?;
        let message = [
            ADV_PREFIX_DEVICE_SIGNATURE,
            details,
            &qr.identity_pub[..],
            account_key,
        ]
        .concat();
        if identity.verify_signature(&message, device_signature) {
            Ok(())
        } else {
            Err(PairingError::BadSignature("device signature"))
        }
    }
}

/// Recognises the client's `<iq type="result"><pair-device-sign>` reply; `None` for
/// any other stanza.
pub fn parse_pair_device_sign(node: &Node) -> Option<PairDeviceSign> {
    if node.tag != "iq" || node.attrs.get("type").map(|v| v.as_str()).as_deref() != Some("result") {
        return None;
    }
    let identity = node
        .get_optional_child("pair-device-sign")?
        .get_optional_child("device-identity")?;
    let key_index = identity
        .attrs
        .get("key-index")?
        .as_str()
        .parse::<u32>()
        .ok()?;
    let signed_identity = match identity.content.as_ref()? {
        wacore_binary::NodeContent::Bytes(b) => b.clone(),
        _ => return None,
    };
    Some(PairDeviceSign {
        iq_id: node.attrs.get("id")?.as_str().into_owned(),
        key_index,
        signed_identity,
    })
}

/// The stream error WhatsApp closes the socket with after a successful link; the
/// client takes it as "reconnect now".
pub fn stream_error_515() -> Node {
    NodeBuilder::new("stream:error").attr("code", "515").build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wacore::companion_reg::CompanionWebClientType;
    use wacore::pair::{DeviceState, PairUtils};
    use wacore_binary::{NodeRef, OwnedNodeRef};

    fn device_state() -> DeviceState {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let mut adv_secret_key = [0u8; 32];
        rand::RngExt::fill(&mut rng, &mut adv_secret_key);
        DeviceState {
            identity_key: KeyPair::generate(&mut rng),
            noise_key: KeyPair::generate(&mut rng),
            adv_secret_key,
        }
    }

    /// Encodes and decodes the node the way the socket does, so the checks below
    /// read what the client would really receive.
    fn over_the_wire(node: &Node) -> OwnedNodeRef {
        let bytes = wacore_binary::marshal(node).expect("node encodes");
        let unpacked = wacore_binary::util::unpack(&bytes).expect("frame unpacks");
        OwnedNodeRef::new(unpacked.into_owned()).expect("node decodes")
    }

    fn client_reads_pair_success<'a>(iq: &'a NodeRef<'a>) -> &'a NodeRef<'a> {
        assert_eq!(
            iq.get_attr("from").map(|v| v.as_str()).as_deref(),
            Some(SERVER_JID)
        );
        assert!(iq.get_attr("id").is_some());
        iq.get_optional_child("pair-success")
            .expect("pair-success child")
    }

    #[test]
    fn parse_qr_reads_what_the_client_renders() {
        let state = device_state();
        let code = PairUtils::make_qr_data(&state, "2@abc==", CompanionWebClientType::Chrome);
        let qr = parse_qr(&code).unwrap();
        assert_eq!(qr.pairing_ref, "2@abc==");
        assert_eq!(
            &qr.noise_pub[..],
            state.noise_key.public_key.public_key_bytes()
        );
        assert_eq!(
            &qr.identity_pub[..],
            state.identity_key.public_key.public_key_bytes()
        );
        assert_eq!(qr.adv_secret, state.adv_secret_key);
        assert_eq!(qr.client_type.as_deref(), Some("1"));

        let prefixed = parse_qr(&format!("{NATIVE_CAMERA_DEEP_LINK_PREFIX}{code}")).unwrap();
        assert_eq!(prefixed, qr);
    }

    #[test]
    fn parse_qr_rejects_broken_codes() {
        assert!(matches!(
            parse_qr("a,b,c"),
            Err(PairingError::TooFewFields(3))
        ));
        assert!(matches!(
            parse_qr(",x,y,z"),
            Err(PairingError::EmptyField("ref"))
        ));
        assert!(matches!(
            parse_qr("r,!!,y,z"),
            Err(PairingError::Base64 { field: "noise", .. })
        ));
        let short = BASE64.encode([1u8; 16]);
        let key = BASE64.encode([1u8; 32]);
        assert!(matches!(
            parse_qr(&format!("r,{key},{short},{key},1")),
            Err(PairingError::KeyLength {
                field: "identity",
                len: 16
            })
        ));
        assert!(matches!(
            parse_qr(&format!("r,{key},{key},{key},")),
            Err(PairingError::EmptyField("client_type"))
        ));
        let legacy = parse_qr(&format!("r,{key},{key},{key}")).unwrap();
        assert_eq!(legacy.client_type, None);
    }

    #[test]
    fn pair_success_passes_the_clients_own_pair_crypto() {
        let state = device_state();
        let qr = parse_qr(&PairUtils::make_qr_data(
            &state,
            "ref-1",
            CompanionWebClientType::OtherWebClient,
        ))
        .unwrap();
        let node = pair_success_iq(&qr, "15550001111", 7, Some("100000000000001"), "ps-1");
        let wire = over_the_wire(&node);
        let success = client_reads_pair_success(wire.get());

        // The client's own extraction and verification.
        let identity = PairUtils::extract_device_identity_bytes(success).expect("device-identity");
        let (self_signed, key_index) =
            PairUtils::do_pair_crypto(&state, identity).expect("client accepts the link");
        assert_eq!(key_index, 7);

        // The client reads `jid` and `lid` off `<device>` with the attr parser.
        let mut device = success.get_optional_child("device").unwrap().attrs();
        let jid = device.optional_jid("jid").unwrap();
        let lid = device.optional_jid("lid").unwrap();
        assert_eq!(
            (jid.user.as_str(), jid.device, jid.is_pn()),
            ("15550001111", 7, true)
        );
        assert_eq!(
            (lid.user.as_str(), lid.device, lid.is_lid()),
            ("100000000000001", 7, true)
        );
        assert_eq!(
            success
                .get_optional_child("platform")
                .and_then(|p| p.get_attr("name"))
                .map(|v| v.as_str().into_owned())
                .as_deref(),
            Some("android")
        );
        // No client-props: the client keeps the account on phone-number addressing.
        assert!(PairUtils::extract_pairing_props(success).is_none());

        // The reply the client sends back parses and its device signature holds.
        let reply = PairUtils::build_pair_success_response("ps-1", self_signed, key_index);
        let sign = parse_pair_device_sign(&reply).expect("pair-device-sign reply");
        assert_eq!((sign.iq_id.as_str(), sign.key_index), ("ps-1", 7));
        sign.verify(&qr).expect("device signature verifies");
    }

    #[test]
    fn pair_success_with_a_wrong_adv_secret_is_refused_with_401() {
        let state = device_state();
        let mut qr = parse_qr(&PairUtils::make_qr_data(
            &state,
            "ref-1",
            CompanionWebClientType::Chrome,
        ))
        .unwrap();
        qr.adv_secret[0] ^= 0xff;
        let node = pair_success_iq(&qr, "15550001111", 3, None, "ps-2");
        let wire = over_the_wire(&node);
        let identity =
            PairUtils::extract_device_identity_bytes(client_reads_pair_success(wire.get()))
                .unwrap();
        let err = PairUtils::do_pair_crypto(&state, identity).expect_err("must be refused");
        assert_eq!((err.code, err.text), (401, "hmac-mismatch"));
    }

    #[test]
    fn pair_success_for_another_device_fails_the_account_signature() {
        let state = device_state();
        let other = device_state();
        let mut qr = parse_qr(&PairUtils::make_qr_data(
            &other,
            "ref-1",
            CompanionWebClientType::Chrome,
        ))
        .unwrap();
        // Right secret, wrong identity: the HMAC holds, the account signature does not.
        qr.adv_secret = state.adv_secret_key;
        let node = pair_success_iq(&qr, "15550001111", 3, None, "ps-3");
        let identity = PairUtils::extract_device_identity_bytes(
            node.as_node_ref()
                .get_optional_child("pair-success")
                .unwrap(),
        )
        .unwrap()
        .to_vec();
        let err = PairUtils::do_pair_crypto(&state, &identity).expect_err("must be refused");
        assert_eq!((err.code, err.text), (401, "signature-mismatch"));
    }

    #[test]
    fn business_name_and_account_key_are_honoured() {
        let state = device_state();
        let qr = parse_qr(&PairUtils::make_qr_data(
            &state,
            "r",
            CompanionWebClientType::Chrome,
        ))
        .unwrap();
        let account = KeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>());
        let profile = PhoneProfile {
            business_name: Some("Loopback Shop".to_owned()),
            ..PhoneProfile::default()
        };
        let node = pair_success_iq_signed(&qr, "15550002222", 2, None, "ps-4", &account, &profile);
        let success = node.get_optional_child("pair-success").unwrap();
        assert_eq!(
            success
                .get_optional_child("biz")
                .and_then(|b| b.attrs.get("name"))
                .map(|v| v.as_str().into_owned())
                .as_deref(),
            Some("Loopback Shop")
        );
        let (self_signed, _) = PairUtils::do_pair_crypto(
            &state,
            PairUtils::extract_device_identity_bytes(&success.as_node_ref()).unwrap(),
        )
        .unwrap();
        let signed = waproto::codec::adv_signed_device_identity_decode(&self_signed).unwrap();
        assert_eq!(
            signed.account_signature_key.as_deref(),
            Some(account.public_key.public_key_bytes())
        );
    }

    #[test]
    fn pair_device_refs_reach_the_client_as_byte_refs() {
        let refs = vec!["2@one".to_owned(), "2@two".to_owned()];
        let node = pair_device_refs_iq("pd-1", &refs);
        let wire = over_the_wire(&node);
        let iq = wire.get();
        assert_eq!(
            iq.get_attr("from").map(|v| v.as_str()).as_deref(),
            Some(SERVER_JID)
        );
        // The client's ack is built from the request's `from` and `id`.
        let ack = PairUtils::build_ack_node_ref(iq).expect("ack");
        assert_eq!(
            ack.attrs.get("id").map(|v| v.as_str()).as_deref(),
            Some("pd-1")
        );
        // The client's ref extraction, verbatim.
        let seen: Vec<String> = iq
            .get_optional_child("pair-device")
            .unwrap()
            .get_children_by_tag("ref")
            .filter_map(|r| {
                std::str::from_utf8(r.content_bytes()?)
                    .ok()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(seen, refs);
    }

    #[test]
    fn parse_pair_device_sign_ignores_other_stanzas() {
        let ack = NodeBuilder::new("iq")
            .attr("type", "result")
            .attr("id", "x")
            .build();
        assert!(parse_pair_device_sign(&ack).is_none());
        assert_eq!(stream_error_515().tag, "stream:error");
    }
}
