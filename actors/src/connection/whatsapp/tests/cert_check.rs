//! The certificate-check probe against wacore-noise's real verification.
//!
//! Whether the checks are on here depends on how the tests were invoked, not on
//! this crate: `cargo test -p wa-actors --features whatsapp` builds wacore-noise as
//! shipped (checks on), while `cargo test --workspace` also builds the daemon's
//! tests, whose dev-dependency turns `danger-skip-cert-chain-verify` on for the whole
//! invocation, this crate included. So no test here asserts on or off; each holds
//! either way and pins down what the probe's answer means. That a shipped build
//! says "on" and a test build "off" is proved on the binary itself: `.ci/run` and
//! the daemon's `tests/build_info.rs`.

use whatsapp_rust::wacore::noise::{HandshakeError, HandshakeUtils};

use super::super::cert_check::{
    PROBE_INTERMEDIATE_KEY, PROBE_LEAF_KEY, ROOT_ISSUER_SERIAL, unsigned_chain,
};
use super::super::server_certificate_check_enabled;

/// The probe's chain is refused for its intermediate's signature and nothing else,
/// or accepted whole: so "refused" means exactly "signatures are checked".
#[test]
fn the_probe_chain_fails_on_its_signature_or_not_at_all() {
    let chain = unsigned_chain(ROOT_ISSUER_SERIAL, &PROBE_LEAF_KEY);
    match HandshakeUtils::verify_server_cert(&chain, &PROBE_LEAF_KEY) {
        Ok(verified) => {
            // Checks off: every other check passed and both links were read.
            assert_eq!(verified.intermediate_key, PROBE_INTERMEDIATE_KEY);
            assert_eq!(verified.leaf_key, PROBE_LEAF_KEY);
            assert!(!server_certificate_check_enabled());
        }
        Err(HandshakeError::CertVerification(reason)) => {
            assert!(
                reason.contains("intermediate signature"),
                "refused for something other than the signature: {reason}"
            );
            assert!(server_certificate_check_enabled());
        }
        Err(other) => panic!("the probe chain does not even decode: {other}"),
    }
}

/// The verification reads the chain the probe builds: an intermediate that does not
/// name WhatsApp's root is refused whether or not signatures are checked (the serial
/// is checked before them). Were the probe's chain ignored, this would pass.
#[test]
fn an_intermediate_from_another_root_is_refused_either_way() {
    let chain = unsigned_chain(ROOT_ISSUER_SERIAL + 7, &PROBE_LEAF_KEY);
    match HandshakeUtils::verify_server_cert(&chain, &PROBE_LEAF_KEY) {
        Err(HandshakeError::CertVerification(reason)) => {
            assert!(reason.contains("issuer serial"), "{reason}")
        }
        other => panic!("expected a refused issuer serial, got {other:?}"),
    }
}

/// Acceptance is not unconditional even with signatures unchecked: a leaf that
/// certifies another key than the server's is refused either way.
#[test]
fn a_leaf_for_another_key_is_refused_either_way() {
    let chain = unsigned_chain(ROOT_ISSUER_SERIAL, &PROBE_LEAF_KEY);
    let other_key = [0x11; 32];
    assert!(HandshakeUtils::verify_server_cert(&chain, &other_key).is_err());
}
