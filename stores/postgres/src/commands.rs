//! [`PostgresCommands`]: requests one node hands to another (the owner of an
//! org), and their answers, through `wa_commands`.
//!
//! The sender inserts the request and notifies `wa_commands` (payload: the node
//! it is for); that node takes its requests (each exactly once: `taken_at` is set
//! in the statement that reads them), answers each into its row and notifies
//! `wa_replies` (payload: the request's id); the sender, waiting, reads the answer.
//! Requests and answers are opaque JSON to this module.

use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::Value;
use wa_actors::OrgId;

use crate::Error;

/// The channel a request is announced on (payload: the node it is for).
pub const COMMANDS_CHANNEL: &str = "wa_commands";
/// The channel an answer is announced on (payload: the request's id).
pub const REPLIES_CHANNEL: &str = "wa_replies";

/// One request taken by the node it was for.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    pub id: i64,
    pub org: String,
    pub request: Value,
}

/// The requests between nodes, seen from one node.
pub struct PostgresCommands {
    pool: Pool,
    node_id: String,
}

impl PostgresCommands {
    pub fn new(pool: Pool, node_id: String) -> Self {
        Self { pool, node_id }
    }

    /// Hands `request` about `org` to node `to`; returns the request's id.
    pub async fn send(&self, to: &str, org: &OrgId, request: &Value) -> Result<i64, Error> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO wa_commands (to_node, org, request) VALUES ($1, $2, $3) RETURNING id",
                &[&to, &org.as_str(), request],
            )
            .await?
            .get(0);
        tx.execute("SELECT pg_notify($1, $2)", &[&COMMANDS_CHANNEL, &to])
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Takes every request for this node not taken yet, oldest first.
    pub async fn take(&self) -> Result<Vec<Command>, Error> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "UPDATE wa_commands SET taken_at = now() WHERE id IN (SELECT id FROM wa_commands \
                 WHERE to_node = $1 AND taken_at IS NULL ORDER BY id FOR UPDATE SKIP LOCKED) \
                 RETURNING id, org, request",
                &[&self.node_id],
            )
            .await?;
        let mut taken: Vec<Command> = rows
            .iter()
            .map(|row| Command {
                id: row.get(0),
                org: row.get(1),
                request: row.get(2),
            })
            .collect();
        taken.sort_by_key(|c| c.id);
        Ok(taken)
    }

    /// Answers request `id`.
    pub async fn answer(&self, id: i64, reply: &Value) -> Result<(), Error> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await?;
        tx.execute(
            "UPDATE wa_commands SET reply = $2, replied_at = now() WHERE id = $1",
            &[&id, reply],
        )
        .await?;
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&REPLIES_CHANNEL, &id.to_string()],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The answer to request `id`, once there is one.
    pub async fn reply(&self, id: i64) -> Result<Option<Value>, Error> {
        let conn = self.pool.get().await?;
        Ok(conn
            .query_opt("SELECT reply FROM wa_commands WHERE id = $1", &[&id])
            .await?
            .and_then(|row| row.get(0)))
    }

    /// Withdraws request `id` when nobody took it yet (its sender gave up);
    /// returns whether it did.
    pub async fn withdraw(&self, id: i64) -> Result<bool, Error> {
        let conn = self.pool.get().await?;
        Ok(conn
            .execute(
                "DELETE FROM wa_commands WHERE id = $1 AND taken_at IS NULL",
                &[&id],
            )
            .await?
            > 0)
    }

    /// Deletes requests older than `age`, answered or not.
    pub async fn forget_older_than(&self, age: Duration) -> Result<u64, Error> {
        let conn = self.pool.get().await?;
        Ok(conn
            .execute(
                "DELETE FROM wa_commands WHERE created_at < now() - make_interval(secs => $1)",
                &[&age.as_secs_f64()],
            )
            .await?)
    }
}
