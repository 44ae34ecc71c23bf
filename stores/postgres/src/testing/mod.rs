//! A PostgreSQL for tests (feature `testing`): one server per test binary, one
//! fresh database per test.
//!
//! With `WA_TEST_DATABASE_URL` set (a role that may `CREATE DATABASE`), tests use
//! that server. Otherwise the first test starts a private cluster from Debian's
//! binaries (see [`cluster`]), which stops when the test binary exits. Either way
//! [`database`] creates a new empty database for the calling test and drops it when
//! the [`TestDatabase`] is dropped, so tests never see each other's rows.

mod cluster;

use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::Pool;
use tokio_postgres::{Config, NoTls};

use cluster::Cluster;

/// Connections per test database's pool.
const POOL_SIZE: usize = 8;

enum Server {
    External(Box<Config>),
    Local(Cluster),
}

static SERVER: OnceLock<Server> = OnceLock::new();

fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("WA_TEST_DATABASE_URL") {
        Ok(url) => {
            Server::External(Box::new(Config::from_str(&url).unwrap_or_else(|e| {
                panic!("WA_TEST_DATABASE_URL is not a PostgreSQL URL: {e}")
            })))
        }
        Err(_) => {
            let cluster = Cluster::start().unwrap_or_else(|e| panic!("{e}"));
            // SAFETY: registering a plain `extern "C" fn` has no preconditions.
            unsafe { libc::atexit(stop_local_cluster) };
            Server::Local(cluster)
        }
    })
}

extern "C" fn stop_local_cluster() {
    if let Some(Server::Local(cluster)) = SERVER.get() {
        cluster.stop();
    }
}

/// Where to connect as the administrator, to the server's `postgres` database.
fn admin_config() -> Config {
    match server() {
        Server::External(config) => (**config).clone(),
        Server::Local(cluster) => {
            let mut config = Config::new();
            config
                .host_path(cluster.socket_dir())
                .port(cluster::PORT)
                .user("postgres")
                .dbname("postgres");
            config
        }
    }
}

/// One test's own database, dropped with it.
pub struct TestDatabase {
    name: String,
    config: Config,
    pool: Pool,
}

impl TestDatabase {
    /// A pool on this database (the schema is empty until `migrate`).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Where this database is, to open further pools on it (e.g. a second process).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database as a connection string (key-value form), for a process of
    /// its own (a daemon under test).
    pub fn url(&self) -> String {
        use tokio_postgres::config::Host;
        let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        let mut parts = Vec::new();
        if let Some(host) = self.config.get_hosts().first() {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            parts.push(format!("host={}", quote(&host)));
        }
        if let Some(port) = self.config.get_ports().first() {
            parts.push(format!("port={port}"));
        }
        if let Some(user) = self.config.get_user() {
            parts.push(format!("user={}", quote(user)));
        }
        if let Some(password) = self.config.get_password() {
            parts.push(format!(
                "password={}",
                quote(&String::from_utf8_lossy(password))
            ));
        }
        parts.push(format!("dbname={}", quote(&self.name)));
        parts.join(" ")
    }
}

/// Creates a new, empty database for the calling test.
pub async fn database() -> TestDatabase {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "wa_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let admin = admin_config();
    let (client, connection) = admin
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL: {e}"));
    let connection = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
    drop(client);
    let _ = connection.await;

    let mut config = admin;
    config.dbname(&name);
    let pool = crate::pool_for(config.clone(), POOL_SIZE).expect("a pool on the test database");
    TestDatabase { name, config, pool }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.pool.close();
        let name = self.name.clone();
        // Drop may run on a runtime thread, so the drop gets a thread and a runtime
        // of its own; FORCE ends any connection a test left open.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let (client, connection) = admin_config().connect(NoTls).await.ok()?;
                let connection = tokio::spawn(connection);
                let dropped = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
                drop(client);
                let _ = connection.await;
                dropped.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) && !std::thread::panicking() {
            eprintln!("note: the test database {} was not dropped", self.name);
        }
    }
}
