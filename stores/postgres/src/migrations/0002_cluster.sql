-- Several daemons (nodes) on one database (CONTRACT §13): ownership leases, the
-- outbox, published session snapshots, backups of stores, requests between nodes,
-- and the fake phone's record for simulation mode.

-- A backup is a store renamed: every table that references wa_stores follows a
-- renamed store_id, so one UPDATE of wa_stores moves a whole session.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT conrelid::regclass AS tbl, conname
        FROM pg_constraint
        WHERE contype = 'f' AND confrelid = 'wa_stores'::regclass
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', c.tbl, c.conname);
        EXECUTE format(
            'ALTER TABLE %s ADD CONSTRAINT %I FOREIGN KEY (store_id) '
            'REFERENCES wa_stores (store_id) ON DELETE CASCADE ON UPDATE CASCADE',
            c.tbl, c.conname);
    END LOOP;
END $$;

-- Nodes: one row per daemon, refreshed by its heartbeat.
CREATE TABLE wa_nodes (
    node_id    TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Leases: the org runs on node_id until expires_at. A row whose expires_at has
-- passed is free (its node died, paused, or released it); no row: the org runs
-- nowhere. token grows with every new owner (from one sequence for every org, so
-- none is ever given twice): a write carrying an older one is refused (wa_fence).
CREATE SEQUENCE wa_lease_tokens;
CREATE TABLE wa_leases (
    org        TEXT PRIMARY KEY,
    node_id    TEXT,
    token      BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX wa_leases_expires ON wa_leases (expires_at);
CREATE INDEX wa_leases_node ON wa_leases (node_id, expires_at);

-- Whether the org's lease still has p_token and has not expired; locks the lease
-- row FOR SHARE until the calling transaction ends, so a claim (which needs the
-- row FOR UPDATE) waits for the write, and a write after the claim is refused.
CREATE FUNCTION wa_fence(p_org TEXT, p_token BIGINT) RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM wa_leases
        WHERE org = p_org AND token = p_token AND expires_at > now()
        FOR SHARE;
    RETURN FOUND;
END $$;

-- The session snapshot each org's owner publishes; every node reads them.
CREATE TABLE wa_snapshots (
    org             TEXT PRIMARY KEY,
    node_id         TEXT NOT NULL,
    token           BIGINT NOT NULL,
    status          TEXT NOT NULL,
    phone_number    TEXT,
    qr              TEXT,
    pairing_code    TEXT,
    retry_at        TIMESTAMPTZ,
    next_attempt_at TIMESTAMPTZ,
    reason          TEXT,
    updated_at      TIMESTAMPTZ NOT NULL
);

-- Backups: stores renamed to '<org>/<name>'; listed here with their metadata.
-- No ON UPDATE: a listed backup is never renamed (a restore unlists it first).
CREATE TABLE wa_backups (
    store_id   TEXT PRIMARY KEY REFERENCES wa_stores (store_id) ON DELETE CASCADE,
    org        TEXT NOT NULL,
    name       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    bytes      BIGINT NOT NULL,
    UNIQUE (org, name)
);

-- The size of a store's rows, summed over every table that holds them.
CREATE FUNCTION wa_store_bytes(p_store TEXT) RETURNS BIGINT
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t regclass;
    n BIGINT;
    total BIGINT := 0;
BEGIN
    FOR t IN
        SELECT conrelid::regclass FROM pg_constraint
        WHERE contype = 'f' AND confrelid = 'wa_stores'::regclass
          AND conrelid <> 'wa_backups'::regclass
    LOOP
        EXECUTE format(
            'SELECT coalesce(sum(pg_column_size(x.*)), 0) FROM %s x WHERE store_id = $1', t)
            INTO n USING p_store;
        total := total + n;
    END LOOP;
    RETURN total;
END $$;

-- The outbox (CONTRACT §10), as the embedded SQLite one.
CREATE TABLE wa_outbox (
    seq             BIGSERIAL PRIMARY KEY,
    message_id      TEXT NOT NULL UNIQUE,
    org             TEXT NOT NULL,
    phone           TEXT NOT NULL,
    body_kind       TEXT NOT NULL,
    body_text       TEXT,
    idempotency_key TEXT,
    origin          TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ,
    delivered_at    TIMESTAMPTZ,
    read_at         TIMESTAMPTZ,
    error           TEXT,
    -- A media message (body_kind 'media'): what the outbox keeps of its file.
    media_kind      TEXT,
    media_mimetype  TEXT,
    media_filename  TEXT,
    media_caption   TEXT,
    media_sha256    TEXT,
    media_size      BIGINT
);
CREATE UNIQUE INDEX wa_outbox_org_key ON wa_outbox (org, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX wa_outbox_org_seq ON wa_outbox (org, seq);
CREATE INDEX wa_outbox_pending ON wa_outbox (org, seq)
    WHERE status IN ('queued', 'sending');
CREATE INDEX wa_outbox_pending_expiry ON wa_outbox (expires_at)
    WHERE status IN ('queued', 'sending');
CREATE INDEX wa_outbox_status_seq ON wa_outbox (status, seq);

-- Requests one node hands to another (the org's owner) and their answers.
CREATE TABLE wa_commands (
    id         BIGSERIAL PRIMARY KEY,
    to_node    TEXT NOT NULL,
    org        TEXT NOT NULL,
    request    JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    taken_at   TIMESTAMPTZ,
    reply      JSONB,
    replied_at TIMESTAMPTZ
);
CREATE INDEX wa_commands_pending ON wa_commands (to_node, id) WHERE taken_at IS NULL;
CREATE INDEX wa_commands_created ON wa_commands (created_at);

-- Simulation mode: the fake phone's credentials are part of the org's store ...
CREATE TABLE wa_sim_credentials (
    store_id    TEXT PRIMARY KEY REFERENCES wa_stores (store_id)
                ON DELETE CASCADE ON UPDATE CASCADE,
    credentials JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- ... while what WhatsApp's server would see is a log of its own: every delivery
-- attempt, the connections open, and the overlaps (a connection opened while
-- another of the org was open on a live node).
CREATE TABLE wa_sim_sent (
    seq        BIGSERIAL PRIMARY KEY,
    org        TEXT NOT NULL,
    node_id    TEXT NOT NULL,
    to_phone   TEXT NOT NULL,
    text       TEXT NOT NULL,
    message_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX wa_sim_sent_org ON wa_sim_sent (org, seq);

CREATE TABLE wa_sim_links (
    link_id   BIGSERIAL PRIMARY KEY,
    org       TEXT NOT NULL,
    node_id   TEXT NOT NULL,
    token     BIGINT NOT NULL,
    opened_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX wa_sim_links_org ON wa_sim_links (org);

CREATE TABLE wa_sim_overlaps (
    org   TEXT PRIMARY KEY,
    count BIGINT NOT NULL
);
