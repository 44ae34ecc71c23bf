-- The files of queued media messages (CONTRACT §14), which any node may accept and
-- the org's owner delivers: kept here until the message is settled.
CREATE TABLE wa_media (
    message_id TEXT PRIMARY KEY,
    bytes      BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
