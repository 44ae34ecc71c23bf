//! LID ↔ phone-number mappings. A LID maps to one phone number; a phone number
//! resolves to the LID most recently updated for it.

use tokio_postgres::Row;
use wacore::store::error::Result;
use wacore::store::traits::LidPnMappingEntry;

use crate::PostgresStore;
use crate::batch::coalesce;

pub(super) async fn by_lid(store: &PostgresStore, lid: &str) -> Result<Option<LidPnMappingEntry>> {
    let row = store
        .read_opt(
            "SELECT lid, phone_number, created_at, learning_source, updated_at
             FROM wa_lid_pn_mappings WHERE store_id = $1 AND lid = $2",
            &[&store.id(), &lid],
        )
        .await?;
    Ok(row.map(entry))
}

pub(super) async fn by_phone(
    store: &PostgresStore,
    phone: &str,
) -> Result<Option<LidPnMappingEntry>> {
    let row = store
        .read_opt(
            "SELECT lid, phone_number, created_at, learning_source, updated_at
             FROM wa_lid_pn_mappings WHERE store_id = $1 AND phone_number = $2
             ORDER BY updated_at DESC LIMIT 1",
            &[&store.id(), &phone],
        )
        .await?;
    Ok(row.map(entry))
}

/// Upserts: a known LID takes the new phone number, source and `updated_at` but
/// keeps the `created_at` it was first learned with (as upstream).
///
/// Upstream's table refers to the device row (a foreign key), so there a mapping
/// written before `DeviceStore::create` fails; here it belongs to the store, which
/// exists from `PostgresStore::new` on. The client creates the device row first.
pub(super) async fn put(store: &PostgresStore, entries: &[LidPnMappingEntry]) -> Result<()> {
    // A LID repeated in the batch: the first one's created_at, the last one's rest.
    let rows = coalesce(
        entries.iter().cloned(),
        |e| e.lid.clone(),
        |kept, later| {
            *kept = LidPnMappingEntry {
                created_at: kept.created_at,
                ..later
            }
        },
    );
    if rows.is_empty() {
        return Ok(());
    }
    let lids: Vec<&str> = rows.iter().map(|e| e.lid.as_str()).collect();
    let phones: Vec<&str> = rows.iter().map(|e| e.phone_number.as_str()).collect();
    let sources: Vec<&str> = rows.iter().map(|e| e.learning_source.as_str()).collect();
    let created: Vec<i64> = rows.iter().map(|e| e.created_at).collect();
    let updated: Vec<i64> = rows.iter().map(|e| e.updated_at).collect();
    store
        .write_one(
            "INSERT INTO wa_lid_pn_mappings
                 (store_id, lid, phone_number, created_at, learning_source, updated_at)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[])
             ON CONFLICT (store_id, lid) DO UPDATE SET phone_number = EXCLUDED.phone_number,
                 learning_source = EXCLUDED.learning_source, updated_at = EXCLUDED.updated_at",
            &[
                &store.id(),
                &lids,
                &phones,
                &created,
                &sources,
                &updated,
            ],
        )
        .await
        .map(drop)
}

pub(super) async fn all(store: &PostgresStore) -> Result<Vec<LidPnMappingEntry>> {
    let rows = store
        .read(
            "SELECT lid, phone_number, created_at, learning_source, updated_at
             FROM wa_lid_pn_mappings WHERE store_id = $1 ORDER BY lid",
            &[&store.id()],
        )
        .await?;
    Ok(rows.into_iter().map(entry).collect())
}

fn entry(row: Row) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: row.get(0),
        phone_number: row.get(1),
        created_at: row.get(2),
        learning_source: row.get(3),
        updated_at: row.get(4),
    }
}
