//! The real connection under the supervisor, with no network (a closed loopback
//! port, a pinned version: nothing leaves the machine), beside a simulated org.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::super::*;
use crate::connection::sim::{SimConnector, SimTiming};
use crate::connection::{ConnectRequest, Connection, ConnectionError, Connector, EventStream};
use crate::storage::fs_ops;
use crate::{Backoff, OrgId, SessionStatus, Supervisor, SupervisorConfig};

/// Orgs named `sim-…` get the fake phone; every other org the real client.
struct Mixed {
    sim: SimConnector,
    real: WhatsAppConnector,
}

#[async_trait]
impl Connector for Mixed {
    async fn connect(
        &self,
        request: ConnectRequest,
    ) -> Result<(Arc<dyn Connection>, EventStream), ConnectionError> {
        if request.org.as_str().starts_with("sim-") {
            self.sim.connect(request).await
        } else {
            self.real.connect(request).await
        }
    }

    fn has_credentials(&self, dir: &Path) -> Result<bool, ConnectionError> {
        Ok(self.sim.has_credentials(dir)? || self.real.has_credentials(dir)?)
    }
}

/// The delay a reason `…; retrying in N ms` announces.
fn retry_ms(reason: &str) -> Option<u64> {
    reason
        .rsplit_once("retrying in ")?
        .1
        .strip_suffix(" ms")?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_real_sessions_back_off_and_leave_other_orgs_alone() {
    let root = tempfile::tempdir().unwrap();
    let mut config = SupervisorConfig::new(root.path());
    config.reconnect = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(800),
        jitter: 0.0,
    };
    let sim = SimConnector::new(SimTiming::default());
    let connector = Mixed {
        sim: sim.clone(),
        real: WhatsAppConnector::new(WhatsAppOptions {
            version: Some((2, 3000, 1_027_000_000)),
            ws_url: Some("ws://127.0.0.1:1/ws/chat".into()),
            ..WhatsAppOptions::default()
        }),
    };
    let sup = Supervisor::spawn(crate::SupervisorParts {
        config,
        connector: Arc::new(connector),
        outbox: Arc::new(crate::outbox::MemoryStore::new()),
        events: Arc::new(crate::events::NoEvents),
    })
    .await
    .unwrap();
    let wait = Duration::from_secs(30);

    // A simulated shop, connected.
    let shop = OrgId::parse("sim-shop").unwrap();
    sup.start(&shop, None).await.unwrap();
    sup.wait_for(&shop, wait, |s| s.status == SessionStatus::QrReady)
        .await
        .unwrap();
    sim.scan(&shop, "573001234567").unwrap();
    let connected = sup
        .wait_for(&shop, wait, |s| s.status == SessionStatus::Connected)
        .await
        .unwrap();

    // Two real sessions that cannot reach WhatsApp.
    let real: Vec<OrgId> = ["wa-1", "wa-2"]
        .iter()
        .map(|id| OrgId::parse(id).unwrap())
        .collect();
    for org in &real {
        sup.start(org, None).await.unwrap();
    }
    // Follow one session's announced delays until the backoff reaches its cap.
    let mut delays: Vec<u64> = Vec::new();
    let mut rx = sup.watch(&real[0]).unwrap();
    while delays.last() != Some(&800) {
        tokio::time::timeout(wait, rx.changed())
            .await
            .expect("the session keeps trying")
            .unwrap();
        let s = rx.borrow().clone();
        assert!(
            matches!(
                s.status,
                SessionStatus::Connecting | SessionStatus::Reconnecting
            ),
            "{s:?}"
        );
        if let Some(ms) = s.reason.as_deref().and_then(retry_ms)
            && delays.last() != Some(&ms)
        {
            delays.push(ms);
        }
    }
    // Doubling from 100 ms to the 800 ms cap (a step may pass unobserved).
    assert!(delays.len() >= 3, "{delays:?}");
    assert!(delays.windows(2).all(|w| w[1] > w[0]), "{delays:?}");
    assert!(
        delays.iter().all(|d| [100, 200, 400, 800].contains(d)),
        "{delays:?}"
    );
    for org in &real {
        let store = fs_ops::live_dir(root.path(), org).join(STORE_FILE);
        assert!(store.is_file(), "{} created", store.display());
    }

    // The simulated shop never noticed.
    let shop_now = sup.status(&shop);
    assert_eq!(shop_now.status, SessionStatus::Connected);
    assert_eq!(shop_now.updated_at, connected.updated_at);
    sup.send_text(&shop, "573009999999", "hola", None)
        .await
        .unwrap();

    // A forced clean backs the real store up whole.
    let cleaned = sup.force_clean(&real[1]).await.unwrap();
    let backup = fs_ops::backups_dir(root.path(), &real[1])
        .join(cleaned.backup.expect("a backup"))
        .join(STORE_FILE);
    assert_eq!(integrity_check(&backup), "ok");

    let started = std::time::Instant::now();
    sup.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stops promptly: {:?}",
        started.elapsed()
    );
    assert_eq!(sim.overlaps(), 0);
}

/// `PRAGMA integrity_check` of an SQLite file, opened read-only.
fn integrity_check(path: &Path) -> String {
    use diesel::prelude::*;
    use diesel::sql_types::Text;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        integrity_check: String,
    }
    let url = format!("file:{}?mode=ro", path.display());
    let mut conn = diesel::SqliteConnection::establish(&url).expect("opens as SQLite");
    diesel::sql_query("PRAGMA integrity_check")
        .load::<Row>(&mut conn)
        .expect("integrity_check runs")
        .remove(0)
        .integrity_check
}
