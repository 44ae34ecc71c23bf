-- The whatsapp-rust store of many organizations in one database.
--
-- Every table but wa_stores is keyed by store_id first: one org's store never reads
-- or writes another's rows, and deleting the org's wa_stores row removes them all.
-- Tables mirror upstream's SQLite schema (whatsapp-rust-sqlite-storage 0.7.0), where
-- rows are keyed by an integer device_id instead. Unix-second timestamps are BIGINT,
-- as the trait passes them; u32 ids and counters are BIGINT so none wraps.

CREATE TABLE wa_stores (
    store_id   TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- DeviceStore: the device's own keys and account, one row per store.
CREATE TABLE wa_device (
    store_id                        TEXT PRIMARY KEY REFERENCES wa_stores ON DELETE CASCADE,
    -- What DeviceStore::create returns ("its generated device_id").
    id                              INTEGER GENERATED ALWAYS AS IDENTITY UNIQUE,
    pn                              TEXT,
    lid                             TEXT,
    registration_id                 BIGINT NOT NULL,
    -- Key pairs: 32 private bytes, then 32 public bytes (as upstream).
    noise_key                       BYTEA NOT NULL,
    identity_key                    BYTEA NOT NULL,
    signed_pre_key                  BYTEA NOT NULL,
    signed_pre_key_id               BIGINT NOT NULL,
    signed_pre_key_signature        BYTEA NOT NULL,
    adv_secret_key                  BYTEA NOT NULL,
    -- ADVSignedDeviceIdentity, protobuf.
    account                         BYTEA,
    push_name                       TEXT NOT NULL,
    app_version_primary             BIGINT NOT NULL,
    app_version_secondary           BIGINT NOT NULL,
    app_version_tertiary            BIGINT NOT NULL,
    app_version_last_fetched_ms     BIGINT NOT NULL,
    edge_routing_info               BYTEA,
    props_hash                      TEXT,
    next_pre_key_id                 BIGINT NOT NULL,
    first_unupload_pre_key_id       BIGINT NOT NULL,
    server_has_prekeys              BOOLEAN NOT NULL,
    nct_salt                        BYTEA,
    -- CachedServerCertChain as JSON: a cache for Noise IK, dropped when unreadable.
    server_cert_chain               JSONB,
    login_counter                   INTEGER NOT NULL,
    lid_migrated                    BOOLEAN NOT NULL,
    last_signed_pre_key_rotation_ms BIGINT NOT NULL,
    read_receipts_disabled          BOOLEAN NOT NULL,
    updated_at                      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- SignalStore.
CREATE TABLE wa_identities (
    store_id TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    address  TEXT NOT NULL,
    key      BYTEA NOT NULL,
    PRIMARY KEY (store_id, address)
);

CREATE TABLE wa_sessions (
    store_id TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    address  TEXT NOT NULL,
    record   BYTEA NOT NULL,
    PRIMARY KEY (store_id, address)
);

CREATE TABLE wa_prekeys (
    store_id TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    id       BIGINT NOT NULL,
    record   BYTEA NOT NULL,
    uploaded BOOLEAN NOT NULL,
    PRIMARY KEY (store_id, id)
);

CREATE TABLE wa_signed_prekeys (
    store_id TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    id       BIGINT NOT NULL,
    record   BYTEA NOT NULL,
    PRIMARY KEY (store_id, id)
);

CREATE TABLE wa_sender_keys (
    store_id TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    address  TEXT NOT NULL,
    record   BYTEA NOT NULL,
    PRIMARY KEY (store_id, address)
);

-- AppSyncStore.
CREATE TABLE wa_app_state_keys (
    store_id    TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    key_id      BYTEA NOT NULL,
    key_data    BYTEA NOT NULL,
    fingerprint BYTEA NOT NULL,
    timestamp   BIGINT NOT NULL,
    PRIMARY KEY (store_id, key_id)
);

CREATE TABLE wa_app_state_versions (
    store_id           TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    name               TEXT NOT NULL,
    -- HashState: u64 version (bit-cast), 128-byte ltHash, index -> value MAC map
    -- as a JSON object of base64 strings, and the MAC-mismatch latch.
    version            BIGINT NOT NULL,
    hash               BYTEA NOT NULL,
    index_value_map    JSONB NOT NULL,
    mac_mismatch_fatal BOOLEAN NOT NULL,
    PRIMARY KEY (store_id, name)
);

CREATE TABLE wa_app_state_mutation_macs (
    store_id  TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    name      TEXT NOT NULL,
    index_mac BYTEA NOT NULL,
    version   BIGINT NOT NULL,
    value_mac BYTEA NOT NULL,
    PRIMARY KEY (store_id, name, index_mac)
);

-- ProtocolStore.
CREATE TABLE wa_sender_key_devices (
    store_id   TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    group_jid  TEXT NOT NULL,
    device_jid TEXT NOT NULL,
    has_key    BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (store_id, group_jid, device_jid)
);
-- delete_sender_key_device_rows removes a device from every group.
CREATE INDEX wa_sender_key_devices_by_device ON wa_sender_key_devices (store_id, device_jid);

CREATE TABLE wa_lid_pn_mappings (
    store_id        TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    lid             TEXT NOT NULL,
    phone_number    TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    learning_source TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (store_id, lid)
);
-- get_pn_mapping: the most recently updated LID of a phone number.
CREATE INDEX wa_lid_pn_mappings_by_phone ON wa_lid_pn_mappings (store_id, phone_number, updated_at DESC);

CREATE TABLE wa_base_keys (
    store_id   TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    address    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    base_key   BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (store_id, address, message_id)
);

CREATE TABLE wa_device_registry (
    store_id   TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    -- Vec<DeviceInfo> as JSON (upstream keeps the same JSON as TEXT).
    devices    JSONB NOT NULL,
    timestamp  BIGINT NOT NULL,
    phash      TEXT,
    raw_id     BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (store_id, user_id)
);

CREATE TABLE wa_group_metadata (
    store_id   TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    group_jid  TEXT NOT NULL,
    info       BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (store_id, group_jid)
);

CREATE TABLE wa_tc_tokens (
    store_id         TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    jid              TEXT NOT NULL,
    -- Empty: a placeholder that only carries sender_timestamp.
    token            BYTEA NOT NULL,
    token_timestamp  BIGINT NOT NULL,
    sender_timestamp BIGINT,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (store_id, jid)
);

CREATE TABLE wa_sent_messages (
    store_id   TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    chat_jid   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    payload    BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (store_id, chat_jid, message_id)
);
CREATE INDEX wa_sent_messages_by_age ON wa_sent_messages (store_id, created_at);

CREATE TABLE wa_pending_inbound (
    store_id    TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    chat        TEXT NOT NULL,
    sender      TEXT NOT NULL,
    id          TEXT NOT NULL,
    message     BYTEA NOT NULL,
    inserted_at BIGINT NOT NULL,
    PRIMARY KEY (store_id, chat, sender, id)
);
CREATE INDEX wa_pending_inbound_by_age ON wa_pending_inbound (store_id, inserted_at);

-- MsgSecretStore.
CREATE TABLE wa_msg_secrets (
    store_id   TEXT NOT NULL REFERENCES wa_stores ON DELETE CASCADE,
    chat       TEXT NOT NULL,
    sender     TEXT NOT NULL,
    msg_id     TEXT NOT NULL,
    secret     BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    -- 0: never expires.
    expires_at BIGINT NOT NULL,
    -- 0: parent message time unknown.
    message_ts BIGINT NOT NULL,
    PRIMARY KEY (store_id, chat, sender, msg_id)
);
CREATE INDEX wa_msg_secrets_by_expiry ON wa_msg_secrets (store_id, expires_at);
