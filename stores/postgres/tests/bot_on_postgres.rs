//! The real whatsapp-rust client on `PostgresStore`, against the loopback WhatsApp
//! Web server: it pairs, restarts its stream on the 515, logs in and sends a real
//! message; then a second client, on a new pool over the same database, logs in
//! with the stored credentials alone (Noise IK, no QR).

use std::sync::Arc;
use std::time::Duration;

use wa_loopback::{Loopback, Pattern, ServerEvent};
use wa_store_postgres::testing::database;
use wa_store_postgres::{PostgresStore, migrate, pool_for};
use whatsapp_rust::async_channel::Receiver;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::store::Backend;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::types::events::{ChannelEventHandler, Event, Subscription};
use whatsapp_rust::{Client, Jid};

const ORG: &str = "optica-sol";
const PHONE: &str = "573001112233";
const CUSTOMER: &str = "573009998877";
const WAIT: Duration = Duration::from_secs(20);

struct Running {
    client: Arc<Client>,
    handle: BotHandle,
    events: Receiver<Arc<Event>>,
    _subscription: Subscription,
}

async fn start(server: &Loopback, store: Arc<PostgresStore>) -> Running {
    let bot = Bot::builder()
        .with_backend_arc(store as Arc<dyn Backend>)
        .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(server.url()))
        // Pinned: no version look-up over HTTP.
        .with_version((2, 3000, 1_027_000_000))
        .skip_history_sync()
        .build()
        .await
        .expect("a bot on the PostgreSQL store");
    let client = bot.client();
    let (handler, events) = ChannelEventHandler::new();
    let subscription = client.subscribe_handler(handler);
    Running {
        client,
        handle: bot.spawn(),
        events,
        _subscription: subscription,
    }
}

impl Running {
    /// The first event `pick` accepts, and every event before it.
    async fn until<T>(
        &self,
        what: &str,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> (T, Vec<Arc<Event>>) {
        let mut before = Vec::new();
        let found = tokio::time::timeout(WAIT, async {
            loop {
                let event = self.events.recv().await.expect("the client is running");
                if let Some(found) = pick(&event) {
                    return found;
                }
                before.push(event);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"));
        (found, before)
    }

    async fn send(&self, server: &Loopback, text: &str) -> Vec<String> {
        let sent = self
            .client
            .send_text(Jid::pn(CUSTOMER), text)
            .await
            .expect("the message goes out");
        let recorded = server
            .wait_for("the message", WAIT, |events| {
                events.iter().find_map(|e| match e {
                    ServerEvent::Message(m) if m.id == sent.message_id => Some(m.clone()),
                    _ => None,
                })
            })
            .await
            .unwrap();
        assert_eq!(recorded.to.user.as_str(), CUSTOMER);
        recorded.enc_types
    }

    async fn stop(self) {
        self.client.disconnect().await;
        tokio::time::timeout(WAIT, self.handle)
            .await
            .expect("the client stops");
    }
}

async fn count(pool: &deadpool_postgres::Pool, sql: &str) -> i64 {
    let client = pool.get().await.unwrap();
    client.query_one(sql, &[&ORG]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pairs_sends_and_logs_in_again_from_postgres_alone() {
    let db = database().await;
    migrate(db.pool()).await.unwrap();
    let server = Loopback::start().await.unwrap();

    // Pair: QR, the phone scans it, 515, the client logs in with its new account.
    let store = Arc::new(PostgresStore::new(db.pool().clone(), ORG).await.unwrap());
    let first = start(&server, store).await;
    let (qr, _) = first
        .until("QR", |e| match e {
            Event::PairingQrCode(qr) => Some(qr.code.clone()),
            _ => None,
        })
        .await;
    server.scan(&qr, PHONE).unwrap();
    first
        .until("pairing", |e| {
            matches!(e, Event::PairSuccess(_)).then_some(())
        })
        .await;
    first
        .until("login", |e| matches!(e, Event::Connected(_)).then_some(()))
        .await;
    let enc = first.send(&server, "Su cita es mañana a las 10:00").await;
    assert!(
        enc.iter().any(|t| t == "pkmsg"),
        "a new Signal session: {enc:?}"
    );
    first.stop().await;

    // What the next login needs is in the database, under this org.
    let pool = db.pool();
    assert_eq!(
        count(pool, "SELECT count(*) FROM wa_device WHERE store_id = $1 AND pn LIKE '573001112233%' AND account IS NOT NULL AND server_cert_chain IS NOT NULL").await,
        1,
        "the paired device, its account and the server certificate for IK"
    );
    assert!(
        count(pool, "SELECT count(*) FROM wa_sessions WHERE store_id = $1").await > 0,
        "the Signal session with the customer"
    );

    // A new pool and a new store (as after a restart, or on another node).
    let fresh_pool = pool_for(db.config().clone(), 4).unwrap();
    let store = Arc::new(PostgresStore::new(fresh_pool, ORG).await.unwrap());
    let logins_before = server.events().len();
    let second = start(&server, store).await;
    let ((), before_login) = second
        .until("login", |e| matches!(e, Event::Connected(_)).then_some(()))
        .await;
    assert!(
        !before_login
            .iter()
            .any(|e| matches!(**e, Event::PairingQrCode(_) | Event::PairSuccess(_))),
        "no pairing the second time"
    );
    assert_eq!(
        second
            .client
            .pn()
            .map(|jid| jid.user.to_string())
            .as_deref(),
        Some(PHONE)
    );
    let login = server.events()[logins_before..]
        .iter()
        .find_map(|e| match e {
            ServerEvent::LoggedIn { phone, pattern } => Some((phone.clone(), *pattern)),
            _ => None,
        });
    assert_eq!(
        login,
        Some((PHONE.to_string(), Pattern::Ik)),
        "the cached certificate"
    );

    second.send(&server, "Recordatorio: su cita es hoy").await;
    second.stop().await;
}
