-- Processes, not only node ids (CONTRACT §13). The fake phone's record counts an
-- overlap by processes, not by the cluster's heartbeats: each process shows it is
-- alive every second, and a connection belongs to the process that opened it.
CREATE TABLE wa_sim_presence (
    instance TEXT PRIMARY KEY,
    alive_at TIMESTAMPTZ NOT NULL
);
ALTER TABLE wa_sim_links ADD COLUMN instance TEXT NOT NULL DEFAULT '';
CREATE INDEX wa_sim_links_instance ON wa_sim_links (instance);

-- The process that runs under each node id, new at every start: a second process
-- under the id of a live one is refused at start.
ALTER TABLE wa_nodes ADD COLUMN instance TEXT NOT NULL DEFAULT '';
