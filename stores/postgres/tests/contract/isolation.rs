//! Two accounts' stores in one database (upstream: two device ids in one file;
//! ours: two organizations in one database) never see or touch each other's rows.

use std::sync::Arc;

use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::traits::{
    AppStateSyncKey, Backend, DeviceInfo, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry,
    PendingInboundKey, TcTokenEntry,
};

use crate::backends::Db;

const PEER: &str = "5511987650001@s.whatsapp.net";
const GROUP: &str = "120363021033254949@g.us";

on_both_backends!(
    two_stores_in_one_database_never_see_each_others_rows,
    one_stores_deletes_and_expiries_leave_the_others_rows,
);

/// One row of every kind, in `s`.
async fn fill(s: &Arc<dyn Backend>) {
    s.put_identity(PEER, [1; 32]).await.unwrap();
    s.put_session(PEER, b"session").await.unwrap();
    s.store_prekey(7, b"prekey", true).await.unwrap();
    s.store_signed_prekey(1, b"signed").await.unwrap();
    s.put_sender_key(GROUP, b"sender key").await.unwrap();
    let key = AppStateSyncKey {
        key_data: vec![3; 32],
        fingerprint: vec![],
        timestamp: 1,
    };
    s.set_sync_key(&[1], key).await.unwrap();
    let state = HashState {
        version: 5,
        ..HashState::default()
    };
    s.set_version("regular", state).await.unwrap();
    let mac = AppStateMutationMAC {
        index_mac: vec![4; 32],
        value_mac: b"value".to_vec(),
    };
    s.put_mutation_macs("regular", 5, &[mac]).await.unwrap();
    s.set_sender_key_status(GROUP, &[(PEER, true)])
        .await
        .unwrap();
    let mapping = LidPnMappingEntry {
        lid: "100000012345678".into(),
        phone_number: "5511987650001".into(),
        created_at: 1,
        updated_at: 1,
        learning_source: "usync".into(),
    };
    s.put_lid_mapping(&mapping).await.unwrap();
    s.save_base_key(PEER, "M1", b"base").await.unwrap();
    let devices = DeviceListRecord {
        user: "5511987650001".into(),
        devices: vec![DeviceInfo::new(0, None)],
        timestamp: 1,
        phash: None,
        raw_id: None,
    };
    s.update_device_list(devices).await.unwrap();
    s.put_group_metadata(GROUP, b"group").await.unwrap();
    let token = TcTokenEntry {
        token: vec![1],
        token_timestamp: 1,
        sender_timestamp: Some(1),
    };
    s.put_tc_token(PEER, &token).await.unwrap();
    s.store_sent_message(PEER, "M1", b"sent").await.unwrap();
    s.store_pending_inbound(PEER, PEER, "M1", b"pending")
        .await
        .unwrap();
    // Expiring, so that another store's expiry sweep would reach it if it could.
    let secret = MsgSecretEntry {
        chat: Arc::from(PEER),
        sender: Arc::from(PEER),
        msg_id: Arc::from("M1"),
        secret: [9; 32],
        expires_at: 1,
        message_ts: 0,
    };
    s.put_msg_secrets(vec![secret]).await.unwrap();
}

/// Reads every row [`fill`] wrote: all `Some` when `present`, all absent if not.
async fn assert_filled(s: &Arc<dyn Backend>, present: bool) {
    let seen = [
        s.load_identity(PEER).await.unwrap().is_some(),
        s.get_session(PEER).await.unwrap().is_some(),
        s.has_signal_state_for_user("5511987650001").await.unwrap(),
        s.load_prekey(7).await.unwrap().is_some(),
        s.get_max_prekey_id().await.unwrap() == 7,
        s.load_signed_prekey(1).await.unwrap().is_some(),
        !s.load_all_signed_prekeys().await.unwrap().is_empty(),
        s.get_sender_key(GROUP).await.unwrap().is_some(),
        s.get_sync_key(&[1]).await.unwrap().is_some(),
        s.get_latest_sync_key_id().await.unwrap().is_some(),
        s.get_version("regular").await.unwrap().version == 5,
        s.get_mutation_mac("regular", &[4; 32])
            .await
            .unwrap()
            .is_some(),
        !s.get_sender_key_devices(GROUP).await.unwrap().is_empty(),
        s.get_lid_mapping("100000012345678")
            .await
            .unwrap()
            .is_some(),
        s.get_pn_mapping("5511987650001").await.unwrap().is_some(),
        !s.get_all_lid_mappings().await.unwrap().is_empty(),
        s.has_same_base_key(PEER, "M1", b"base").await.unwrap(),
        s.get_devices("5511987650001").await.unwrap().is_some(),
        s.get_group_metadata(GROUP).await.unwrap().is_some(),
        s.get_tc_token(PEER).await.unwrap().is_some(),
        !s.get_all_tc_token_jids().await.unwrap().is_empty(),
        s.get_pending_inbound(PEER, PEER, "M1")
            .await
            .unwrap()
            .is_some(),
        s.get_msg_secret(PEER, PEER, "M1").await.unwrap().is_some(),
    ];
    for (i, seen) in seen.iter().enumerate() {
        assert_eq!(*seen, present, "read #{i}");
    }
}

async fn two_stores_in_one_database_never_see_each_others_rows(db: &dyn Db) {
    let sol = db.store("optica-sol").await;
    let luna = db.store("optica-luna").await;
    fill(&sol).await;
    assert_filled(&sol, true).await;
    assert_filled(&luna, false).await;
    assert_eq!(
        luna.take_sent_message(PEER, "M1").await.unwrap(),
        None,
        "another store's sent message"
    );

    let mut device = sol.load().await.unwrap().unwrap();
    device.push_name = "Sol".into();
    sol.save(&device).await.unwrap();
    assert_eq!(luna.load().await.unwrap().unwrap().push_name, "");
}

async fn one_stores_deletes_and_expiries_leave_the_others_rows(db: &dyn Db) {
    let sol = db.store("optica-sol").await;
    let luna = db.store("optica-luna").await;
    fill(&sol).await;

    let l = &luna;
    l.delete_identity(PEER).await.unwrap();
    l.delete_session(PEER).await.unwrap();
    l.mark_prekeys_uploaded(&[7]).await.unwrap();
    l.remove_prekey(7).await.unwrap();
    l.remove_signed_prekey(1).await.unwrap();
    l.delete_sender_key(GROUP).await.unwrap();
    l.delete_mutation_macs("regular", &[vec![4; 32]])
        .await
        .unwrap();
    l.clear_mutation_macs("regular").await.unwrap();
    l.delete_sender_key_device_rows(&[PEER]).await.unwrap();
    l.clear_sender_key_devices(GROUP).await.unwrap();
    l.clear_all_sender_key_devices().await.unwrap();
    l.delete_base_key(PEER, "M1").await.unwrap();
    l.delete_devices("5511987650001").await.unwrap();
    l.delete_group_metadata(GROUP).await.unwrap();
    l.delete_tc_token(PEER).await.unwrap();
    assert_eq!(
        l.delete_expired_tc_tokens(i64::MAX, i64::MAX)
            .await
            .unwrap(),
        0
    );
    assert_eq!(l.delete_expired_sent_messages(i64::MAX).await.unwrap(), 0);
    l.delete_pending_inbound_batch(&[PendingInboundKey {
        chat: PEER,
        sender: PEER,
        id: "M1",
    }])
    .await
    .unwrap();
    assert_eq!(l.delete_expired_pending_inbound(i64::MAX).await.unwrap(), 0);
    assert_eq!(l.delete_expired_msg_secrets(i64::MAX).await.unwrap(), 0);

    assert_filled(&sol, true).await;
    assert_eq!(
        sol.take_sent_message(PEER, "M1").await.unwrap(),
        Some(b"sent".to_vec())
    );
}
