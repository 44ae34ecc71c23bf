//! The one module of the daemon that knows which connections exist: it builds the
//! connector that `[connection] kind` names (real WhatsApp Web or the simulator's
//! fake phones), turns the plain `[whatsapp]` and `[sim]` tables into their
//! options, and asks the WhatsApp connection whether it checks the server's
//! certificate (for `build-info`). Everything else in the daemon sees only the
//! actor crate's `Connector` trait.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wa_actors::OrgId;
use wa_actors::connection::sim::{SimConnector, SimTiming};
use wa_actors::connection::whatsapp::{
    BackendFactory, StoreBackend, WhatsAppConnector, WhatsAppOptions,
};
use wa_actors::connection::{ConnectionError, Connector};
use wa_store_postgres::{PostgresSimLedger, PostgresStore};

use crate::cluster::Database;
use crate::config::{Config, ConfigError, ConnectionKind, SimConfig, WhatsappConfig};

/// The connection the org actors open, and the fake phones when it is the simulator.
pub struct Connection {
    pub connector: Arc<dyn Connector>,
    /// For the `/sim` routes; `None` with the real connection.
    pub fake_phones: Option<SimConnector>,
}

/// Builds the connector `[connection] kind` names; with a shared `database`
/// (`[store] kind = "postgres"`) its stores are there: the WhatsApp stores, or the
/// fake phones' credentials and record.
pub fn connect(config: &Config, database: Option<&Database>) -> Result<Connection, ConfigError> {
    Ok(match config.connection.kind {
        ConnectionKind::Sim => {
            let timing = sim_timing(&config.sim);
            let phones = match database {
                None => SimConnector::new(timing),
                Some(db) => SimConnector::with_ledger(
                    timing,
                    Arc::new(PostgresSimLedger::new(
                        db.pool.clone(),
                        Arc::new(db.fencing.clone()),
                        db.node_id.clone(),
                    )),
                ),
            };
            Connection {
                connector: Arc::new(phones.clone()),
                fake_phones: Some(phones),
            }
        }
        ConnectionKind::Whatsapp => {
            let mut options = whatsapp_options(&config.whatsapp)?;
            if let Some(db) = database {
                options.store = StoreBackend::Custom(Arc::new(PostgresStores { db: db.into() }));
            }
            Connection {
                connector: Arc::new(WhatsAppConnector::new(options)),
                fake_phones: None,
            }
        }
    })
}

/// The WhatsApp stores in the shared database, each fenced by its org's lease.
struct PostgresStores {
    db: StoresOn,
}

/// What opening a store needs of the [`Database`].
struct StoresOn {
    pool: wa_store_postgres::deadpool_postgres::Pool,
    fencing: wa_actors::cluster::Fencing,
}

impl From<&Database> for StoresOn {
    fn from(db: &Database) -> Self {
        Self {
            pool: db.pool.clone(),
            fencing: db.fencing.clone(),
        }
    }
}

#[async_trait]
impl BackendFactory for PostgresStores {
    async fn open(
        &self,
        org: &OrgId,
    ) -> Result<Arc<dyn wa_actors::connection::whatsapp::Backend>, ConnectionError> {
        let fence = Arc::new(self.db.fencing.clone());
        let store = PostgresStore::new_fenced(self.db.pool.clone(), org.as_str(), fence)
            .await
            .map_err(|e| ConnectionError::StoreUnavailable(e.to_string()))?;
        Ok(Arc::new(store))
    }
}

/// Whether this binary checks the WhatsApp server's certificate chain against
/// WhatsApp's key (off only in the build `cargo test` makes).
pub fn server_certificate_check_enabled() -> bool {
    wa_actors::connection::whatsapp::server_certificate_check_enabled()
}

fn whatsapp_options(config: &WhatsappConfig) -> Result<WhatsAppOptions, ConfigError> {
    Ok(WhatsAppOptions {
        version: config.pinned_version()?,
        ws_url: config.ws_url().map(str::to_owned),
        device_name: config.device_name.trim().to_owned(),
        mark_online: config.mark_online,
        store: StoreBackend::Sqlite,
        // The library's own HTTP client (ureq) for media uploads.
        http_client: None,
    })
}

/// `[whatsapp]` defaults to the connection's own options.
impl Default for WhatsappConfig {
    fn default() -> Self {
        let options = WhatsAppOptions::default();
        Self {
            version: String::new(),
            ws_url: String::new(),
            device_name: options.device_name,
            mark_online: options.mark_online,
        }
    }
}

fn sim_timing(config: &SimConfig) -> SimTiming {
    SimTiming {
        first_qr: Duration::from_secs(config.first_qr_seconds),
        next_qr: Duration::from_secs(config.next_qr_seconds),
        qr_count: config.qr_count,
    }
}

/// `[sim]` defaults to the fake phone's own timing.
impl Default for SimConfig {
    fn default() -> Self {
        let timing = SimTiming::default();
        Self {
            first_qr_seconds: timing.first_qr.as_secs(),
            next_qr_seconds: timing.next_qr.as_secs(),
            qr_count: timing.qr_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_turn_into_the_connections_options() {
        let (ours, theirs) = (sim_timing(&SimConfig::default()), SimTiming::default());
        assert_eq!(
            (ours.first_qr, ours.next_qr, ours.qr_count),
            (theirs.first_qr, theirs.next_qr, theirs.qr_count)
        );
        let options = whatsapp_options(&WhatsappConfig {
            version: "2.3000.1027000000".into(),
            ws_url: "ws://127.0.0.1:9/ws/chat".into(),
            device_name: " Óptica Sol ".into(),
            mark_online: true,
        })
        .unwrap();
        assert_eq!(options.version, Some((2, 3000, 1027000000)));
        assert_eq!(options.ws_url.as_deref(), Some("ws://127.0.0.1:9/ws/chat"));
        assert_eq!(
            (options.device_name.as_str(), options.mark_online),
            ("Óptica Sol", true)
        );
        let options = whatsapp_options(&WhatsappConfig::default()).unwrap();
        let theirs = WhatsAppOptions::default();
        assert_eq!((options.version, options.ws_url), (None, None));
        assert_eq!(
            (options.device_name, options.mark_online),
            (theirs.device_name, theirs.mark_online)
        );
    }

    #[test]
    fn the_kind_picks_the_connector() {
        let sim = Config {
            connection: crate::config::ConnectionConfig {
                kind: ConnectionKind::Sim,
            },
            ..Config::default()
        };
        assert!(connect(&sim, None).unwrap().fake_phones.is_some());
        assert!(
            connect(&Config::default(), None)
                .unwrap()
                .fake_phones
                .is_none()
        );
    }
}
