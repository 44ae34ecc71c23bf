//! The responder side of WhatsApp's Noise handshakes, which `wacore-noise` does not
//! have: XX for a device that holds no server certificate yet (every fresh device,
//! and a paired one right after pairing), IK for a paired device that cached one.
//!
//! The steps mirror the initiator in `wacore-noise` 0.7.0 (`XxHandshakeState`,
//! `IkHandshakeState`) token by token; a responder that got one mix wrong would fail
//! the client's AEAD check, so a handshake that completes is its own proof.

use buffa::Message as _;
use wacore::libsignal::protocol::KeyPair;
use wacore_binary::consts::{NOISE_PATTERN_IK, NOISE_PATTERN_XX, WA_CONN_HEADER};
use wacore_noise::{NoiseCipher, NoiseHandshake};
use waproto::buffa;
use waproto::whatsapp as wa;
use waproto::whatsapp::cert_chain::{NoiseCertificate, noise_certificate};

use crate::error::LoopbackError;

/// The server's long-lived identity: its static key and the certificate chain
/// that names it. Kept for the server's whole life, so a device that cached the
/// chain can resume with IK after any number of reconnects.
pub struct ServerIdentity {
    keys: KeyPair,
    cert_chain: Vec<u8>,
}

impl ServerIdentity {
    pub fn generate() -> Self {
        let keys = KeyPair::generate(&mut rand::rng());
        let cert_chain = cert_chain_for(&public_bytes(&keys));
        Self { keys, cert_chain }
    }

    pub fn public_key(&self) -> [u8; 32] {
        public_bytes(&self.keys)
    }
}

/// Which handshake a client chose; tests assert that a paired device resumes with IK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    Xx,
    Ik,
}

/// A finished handshake: the transport ciphers, the client's static (noise) key and
/// its login payload.
pub struct Established {
    pub pattern: Pattern,
    /// Decrypts what the client sends.
    pub read: NoiseCipher,
    /// Encrypts what the server sends.
    pub write: NoiseCipher,
    pub client_static: [u8; 32],
    pub payload: wa::ClientPayload,
}

/// What the server answers to a ClientHello.
pub enum Reply {
    /// IK is one round trip: the handshake is done once the ServerHello is out.
    Done(Vec<u8>, Box<Established>),
    /// XX waits for the ClientFinish.
    AwaitFinish(Vec<u8>, Box<XxPending>),
}

/// An XX responder between its ServerHello and the client's ClientFinish.
pub struct XxPending {
    noise: NoiseHandshake,
    ephemeral: KeyPair,
}

/// Answers the client's first handshake message (header already stripped).
pub fn answer_hello(identity: &ServerIdentity, hello: &[u8]) -> Result<Reply, LoopbackError> {
    let message = wa::HandshakeMessage::decode_from_slice(hello)
        .map_err(|e| LoopbackError::Handshake(format!("client hello: {e}")))?;
    let hello = message
        .client_hello
        .into_option()
        .ok_or_else(|| LoopbackError::Handshake("no client hello".into()))?;
    let ephemeral = key32(hello.ephemeral.as_deref(), "client ephemeral")?;
    match (hello.r#static, hello.payload) {
        (Some(sealed_static), Some(sealed_payload)) => {
            ik(identity, ephemeral, &sealed_static, &sealed_payload)
        }
        _ => xx(identity, ephemeral),
    }
}

fn xx(identity: &ServerIdentity, client_ephemeral: [u8; 32]) -> Result<Reply, LoopbackError> {
    let mut noise = NoiseHandshake::new(NOISE_PATTERN_XX, &WA_CONN_HEADER).map_err(noise_err)?;
    noise.authenticate(&client_ephemeral);
    let ephemeral = KeyPair::generate(&mut rand::rng());
    let ephemeral_pub = public_bytes(&ephemeral);
    noise.authenticate(&ephemeral_pub);
    // ee
    noise
        .mix_shared_secret(ephemeral.private_key.serialize(), &client_ephemeral)
        .map_err(noise_err)?;
    let sealed_static = noise.encrypt(&identity.public_key()).map_err(noise_err)?;
    // es
    noise
        .mix_shared_secret(identity.keys.private_key.serialize(), &client_ephemeral)
        .map_err(noise_err)?;
    let sealed_chain = noise.encrypt(&identity.cert_chain).map_err(noise_err)?;
    let hello = server_hello(ephemeral_pub, Some(sealed_static), sealed_chain);
    Ok(Reply::AwaitFinish(
        hello,
        Box::new(XxPending { noise, ephemeral }),
    ))
}

impl XxPending {
    /// Reads the ClientFinish: the client's static key and its login payload.
    pub fn finish(mut self, finish: &[u8]) -> Result<Established, LoopbackError> {
        let message = wa::HandshakeMessage::decode_from_slice(finish)
            .map_err(|e| LoopbackError::Handshake(format!("client finish: {e}")))?;
        let finish = message
            .client_finish
            .into_option()
            .ok_or_else(|| LoopbackError::Handshake("no client finish".into()))?;
        let sealed_static = finish
            .r#static
            .ok_or_else(|| LoopbackError::Handshake("client finish without static".into()))?;
        let client_static = key32(
            Some(&self.noise.decrypt(&sealed_static).map_err(noise_err)?),
            "client static",
        )?;
        // se
        self.noise
            .mix_shared_secret(self.ephemeral.private_key.serialize(), &client_static)
            .map_err(noise_err)?;
        let sealed_payload = finish
            .payload
            .ok_or_else(|| LoopbackError::Handshake("client finish without payload".into()))?;
        let payload = self.noise.decrypt(&sealed_payload).map_err(noise_err)?;
        established(self.noise, Pattern::Xx, client_static, &payload)
    }
}

fn ik(
    identity: &ServerIdentity,
    client_ephemeral: [u8; 32],
    sealed_static: &[u8],
    sealed_payload: &[u8],
) -> Result<Reply, LoopbackError> {
    let mut noise = NoiseHandshake::new(NOISE_PATTERN_IK, &WA_CONN_HEADER).map_err(noise_err)?;
    // Pre-message: the responder's static, which the client cached.
    noise.authenticate(&identity.public_key());
    noise.authenticate(&client_ephemeral);
    // es
    noise
        .mix_shared_secret(identity.keys.private_key.serialize(), &client_ephemeral)
        .map_err(noise_err)?;
    let client_static = key32(
        Some(&noise.decrypt(sealed_static).map_err(noise_err)?),
        "client static",
    )?;
    // ss
    noise
        .mix_shared_secret(identity.keys.private_key.serialize(), &client_static)
        .map_err(noise_err)?;
    let payload = noise.decrypt(sealed_payload).map_err(noise_err)?;

    let ephemeral = KeyPair::generate(&mut rand::rng());
    let ephemeral_pub = public_bytes(&ephemeral);
    noise.authenticate(&ephemeral_pub);
    // ee, se
    noise
        .mix_shared_secret(ephemeral.private_key.serialize(), &client_ephemeral)
        .map_err(noise_err)?;
    noise
        .mix_shared_secret(ephemeral.private_key.serialize(), &client_static)
        .map_err(noise_err)?;
    let sealed_chain = noise.encrypt(&identity.cert_chain).map_err(noise_err)?;
    // No static in the ServerHello tells the client its IK was accepted.
    let hello = server_hello(ephemeral_pub, None, sealed_chain);
    let done = established(noise, Pattern::Ik, client_static, &payload)?;
    Ok(Reply::Done(hello, Box::new(done)))
}

fn established(
    noise: NoiseHandshake,
    pattern: Pattern,
    client_static: [u8; 32],
    payload: &[u8],
) -> Result<Established, LoopbackError> {
    let payload = wa::ClientPayload::decode_from_slice(payload)
        .map_err(|e| LoopbackError::Handshake(format!("client payload: {e}")))?;
    // The initiator's write key is the responder's read key and vice versa.
    let (client_write, client_read) = noise.finish().map_err(noise_err)?;
    Ok(Established {
        pattern,
        read: client_write,
        write: client_read,
        client_static,
        payload,
    })
}

fn server_hello(ephemeral: [u8; 32], sealed_static: Option<Vec<u8>>, payload: Vec<u8>) -> Vec<u8> {
    wa::HandshakeMessage {
        server_hello: buffa::MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(ephemeral.to_vec()),
            r#static: sealed_static,
            payload: Some(payload),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// A chain that passes every check of the client's `verify_server_cert` but the two
/// XEdDSA signatures (WhatsApp's root key is a constant of the client): a client
/// built without `danger-skip-cert-chain-verify` refuses it, as it must.
fn cert_chain_for(leaf_key: &[u8; 32]) -> Vec<u8> {
    // Valid from 2023-11 to 2030-03, the window wacore-noise's own fixtures use.
    let intermediate = noise_certificate::Details {
        serial: Some(1),
        issuer_serial: Some(0),
        key: Some(vec![0xCC; 32]),
        not_before: Some(1_700_000_000),
        not_after: Some(1_900_000_000),
    };
    let leaf = noise_certificate::Details {
        serial: Some(2),
        issuer_serial: Some(1),
        key: Some(leaf_key.to_vec()),
        not_before: Some(1_700_000_500),
        not_after: Some(1_899_999_500),
    };
    wa::CertChain {
        leaf: buffa::MessageField::some(NoiseCertificate {
            details: Some(leaf.encode_to_vec()),
            signature: Some(vec![0; 64]),
        }),
        intermediate: buffa::MessageField::some(NoiseCertificate {
            details: Some(intermediate.encode_to_vec()),
            signature: Some(vec![0; 64]),
        }),
    }
    .encode_to_vec()
}

fn public_bytes(keys: &KeyPair) -> [u8; 32] {
    keys.public_key
        .public_key_bytes()
        .try_into()
        .expect("an X25519 public key is 32 bytes")
}

fn key32(bytes: Option<&[u8]>, what: &str) -> Result<[u8; 32], LoopbackError> {
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| LoopbackError::Handshake(format!("{what} is not 32 bytes")))
}

fn noise_err(e: impl std::fmt::Display) -> LoopbackError {
    LoopbackError::Handshake(e.to_string())
}
