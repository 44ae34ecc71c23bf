//! `DeviceStore`: the store's own device row.

use std::sync::Arc;

use wacore::store::Device;
use wacore::store::device::{CachedNoiseCert, CachedServerCertChain};
use whatsapp_rust::waproto::whatsapp::ADVSignedDeviceIdentity;

use crate::backends::Db;

on_both_backends!(
    a_store_has_no_device_until_one_is_created_once,
    a_saved_device_loads_back_field_for_field,
    saving_without_creating_first_creates_the_row,
);

/// A device as comparable JSON: its own serde form, which leaves out only the
/// runtime-only fields (device props, client profile).
fn json(device: &Device) -> serde_json::Value {
    serde_json::to_value(device).unwrap()
}

/// A device with every optional field set and no field at its default.
fn paired(mut device: Device) -> Device {
    device.pn = Some("5511987650001:5@s.whatsapp.net".parse().unwrap());
    device.lid = Some("100000012345678:5@lid".parse().unwrap());
    device.registration_id = 2_147_483_647;
    device.signed_pre_key_id = 9;
    device.account = Some(Arc::new(ADVSignedDeviceIdentity {
        details: Some(vec![1, 2, 3]),
        account_signature_key: Some(vec![4; 32]),
        account_signature: Some(vec![5; 64]),
        device_signature: Some(vec![6; 64]),
    }));
    device.push_name = "Óptica Sol".into();
    device.app_version_primary = 2;
    device.app_version_secondary = 3000;
    device.app_version_tertiary = 4_000_000_000;
    device.app_version_last_fetched_ms = 1_700_000_000_123;
    device.edge_routing_info = Some(vec![8, 9]);
    device.props_hash = Some("props-hash".into());
    device.next_pre_key_id = 813;
    device.first_unupload_pre_key_id = 800;
    device.server_has_prekeys = true;
    device.nct_salt = Some(vec![7; 16]);
    device.server_cert_chain = Some(CachedServerCertChain {
        intermediate: CachedNoiseCert {
            key: [0xab; 32],
            not_before: 1_700_000_000,
            not_after: 1_900_000_000,
        },
        leaf: CachedNoiseCert {
            key: [0xcd; 32],
            not_before: 1_700_000_500,
            not_after: 1_899_999_500,
        },
    });
    device.login_counter = 3;
    device.lid_migrated = true;
    device.last_signed_pre_key_rotation_ms = 1_700_000_000_456;
    device.read_receipts_disabled = true;
    device
}

async fn a_store_has_no_device_until_one_is_created_once(db: &dyn Db) {
    let s = db.raw_store("a").await;
    assert!(!s.exists().await.unwrap());
    assert!(s.load().await.unwrap().is_none());

    s.create().await.unwrap();
    assert!(s.exists().await.unwrap());
    let fresh = s.load().await.unwrap().expect("a device row");
    assert!(fresh.pn.is_none() && fresh.lid.is_none(), "not paired yet");
    assert!(fresh.account.is_none());
    assert_eq!(fresh.push_name, "");
    assert_eq!(fresh.next_pre_key_id, 1);
    assert!(!fresh.is_registered());

    assert!(
        s.create().await.is_err(),
        "a second create fails: the row exists (as upstream)"
    );
    let after = s.load().await.unwrap().unwrap();
    assert_eq!(
        json(&after),
        json(&fresh),
        "the failed create changed nothing"
    );
}

async fn a_saved_device_loads_back_field_for_field(db: &dyn Db) {
    let s = db.store("a").await;
    let device = paired(s.load().await.unwrap().unwrap());
    s.save(&device).await.unwrap();
    let loaded = s.load().await.unwrap().unwrap();
    assert_eq!(json(&loaded), json(&device));
    assert!(loaded.is_registered());

    // Clearing the optional fields clears them in the store too.
    let mut cleared = loaded;
    cleared.account = None;
    cleared.edge_routing_info = None;
    cleared.props_hash = None;
    cleared.nct_salt = None;
    cleared.server_cert_chain = None;
    cleared.lid = None;
    s.save(&cleared).await.unwrap();
    assert_eq!(json(&s.load().await.unwrap().unwrap()), json(&cleared));
}

async fn saving_without_creating_first_creates_the_row(db: &dyn Db) {
    let s = db.raw_store("a").await;
    let device = paired(Device::new());
    s.save(&device).await.unwrap();
    assert!(s.exists().await.unwrap());
    assert_eq!(json(&s.load().await.unwrap().unwrap()), json(&device));
}
