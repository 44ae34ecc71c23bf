//! Live session events shared between nodes: each node announces the events of
//! the orgs it drives on one channel, so that every node's `GET /api/events`
//! carries every org's (CONTRACT §12, §13). The payloads are the caller's; this
//! module only carries them.

use deadpool_postgres::Pool;

/// The channel of shared live events.
pub const EVENTS_CHANNEL: &str = "wa_events";

/// The largest payload PostgreSQL carries in a notification is just under 8000
/// bytes; a longer one is refused by the caller instead of failing the batch.
pub const MAX_PAYLOAD: usize = 7900;

/// Announces `payloads` on [`EVENTS_CHANNEL`], in order, in one round trip.
pub async fn announce(pool: &Pool, payloads: &[String]) -> Result<(), String> {
    let conn = pool.get().await.map_err(|e| e.to_string())?;
    conn.execute(
        "SELECT pg_notify($1, payload) FROM unnest($2::text[]) WITH ORDINALITY AS t(payload, n) \
         ORDER BY n",
        &[&EVENTS_CHANNEL, &payloads],
    )
    .await
    .map(drop)
    .map_err(|e| e.to_string())
}
