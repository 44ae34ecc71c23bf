//! Does this build check the WhatsApp server's certificate chain?
//!
//! In the Noise handshake the server proves who it is with a two-link chain: an
//! intermediate certificate signed with WhatsApp's root key (hard-coded in
//! wacore-noise) and a leaf, for the server's static key, signed by the intermediate.
//! wacore-noise's feature `danger-skip-cert-chain-verify` skips both signature checks
//! so that tests can pair against a loopback server, which cannot sign with
//! WhatsApp's key. A binary built with it would let anyone who can redirect its
//! connection read and forge every message, so it must never be deployed.
//!
//! A feature of another crate is invisible to `cfg!` here, and Cargo may turn it on
//! for one invocation and not another (it unifies features across everything it
//! builds at once). So instead of guessing, this asks the verification code itself:
//! it hands wacore-noise a chain that is right in every way except that its
//! signatures are zeros. Refused means the signatures are checked; accepted means
//! they are not.

use whatsapp_rust::wacore::noise::HandshakeUtils;
use whatsapp_rust::waproto::buffa::{Message as _, MessageField};
use whatsapp_rust::waproto::whatsapp::CertChain;
use whatsapp_rust::waproto::whatsapp::cert_chain::NoiseCertificate;
use whatsapp_rust::waproto::whatsapp::cert_chain::noise_certificate::Details;

/// The issuer serial an intermediate must name: WhatsApp's root. wacore-noise 0.7.0
/// keeps it private (`WA_CERT_ISSUER_SERIAL`), so it is repeated here; a wrong value
/// makes every probe fail before the signatures and the tests say so.
pub(super) const ROOT_ISSUER_SERIAL: u32 = 0;

/// The server's static key the probe's leaf certifies. Any 32 bytes do: the chain
/// is only ever verified, never used to encrypt.
pub(super) const PROBE_LEAF_KEY: [u8; 32] = [0x5a; 32];

pub(super) const PROBE_INTERMEDIATE_KEY: [u8; 32] = [0xcc; 32];
const INTERMEDIATE_SERIAL: u32 = 1;

/// `true` when this build verifies the server's certificate chain against
/// WhatsApp's root key (every shipped build); `false` when wacore-noise was built
/// with `danger-skip-cert-chain-verify` (test builds only).
///
/// Cheap (two protobuf encodings and at most one signature check), so it can be
/// asked at start-up and by `build-info` without caching.
pub fn server_certificate_check_enabled() -> bool {
    let chain = unsigned_chain(ROOT_ISSUER_SERIAL, &PROBE_LEAF_KEY);
    HandshakeUtils::verify_server_cert(&chain, &PROBE_LEAF_KEY).is_err()
}

/// An encoded `CertChain` whose intermediate names `root_issuer_serial` as its
/// issuer and whose leaf certifies `leaf_key`, with both signatures all zeros (never
/// a valid XEdDSA signature). With the root serial and the same key given to the
/// verification, signatures are the only thing wrong with it.
pub(super) fn unsigned_chain(root_issuer_serial: u32, leaf_key: &[u8; 32]) -> Vec<u8> {
    let intermediate = Details {
        serial: Some(INTERMEDIATE_SERIAL),
        issuer_serial: Some(root_issuer_serial),
        key: Some(PROBE_INTERMEDIATE_KEY.to_vec()),
        not_before: Some(1_700_000_000),
        not_after: Some(4_000_000_000),
    };
    let leaf = Details {
        serial: Some(INTERMEDIATE_SERIAL + 1),
        issuer_serial: Some(INTERMEDIATE_SERIAL),
        key: Some(leaf_key.to_vec()),
        not_before: Some(1_700_000_000),
        not_after: Some(4_000_000_000),
    };
    CertChain {
        leaf: MessageField::some(NoiseCertificate {
            details: Some(leaf.encode_to_vec()),
            signature: Some(vec![0; 64]),
        }),
        intermediate: MessageField::some(NoiseCertificate {
            details: Some(intermediate.encode_to_vec()),
            signature: Some(vec![0; 64]),
        }),
    }
    .encode_to_vec()
}
