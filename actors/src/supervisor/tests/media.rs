//! Files and numbers through the actor tree (CONTRACT §14): media messages in
//! order with texts' lifecycle, their files removed once settled, the number
//! check before a first attempt, and the sweep of leftover files at start.

use super::*;
use crate::connection::{ConnectRequest, Connection, ConnectionError, Connector, EventStream};
use crate::media::detect::samples;
use crate::media::{MEDIA_DIR, Media};
use crate::outbox::NOT_ON_WHATSAPP;
use crate::outbox::{Enqueued, Message, MessageBody, MessageId, MessageStatus, Update, Updated};
use crate::{MediaRequest, MessageRequest};

const CUSTOMER: &str = "573009999999";

fn media_dir(rig: &Rig) -> PathBuf {
    rig.root.path().join(MEDIA_DIR)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn enqueue_file(
    sup: &Supervisor,
    org: &OrgId,
    bytes: &[u8],
    filename: Option<&str>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Enqueued, SendError> {
    let mut file = sup
        .outbox()
        .media()
        .incoming(sup.config().media.max_bytes)
        .await
        .unwrap();
    file.write(bytes).await.unwrap();
    sup.enqueue_media(MediaRequest {
        org: org.clone(),
        phone: CUSTOMER.into(),
        file,
        mimetype: None,
        filename: filename.map(str::to_owned),
        caption: Some("Su fórmula".into()),
        idempotency_key: None,
        expires_at,
    })
    .await
}

async fn new_file(rig: &Rig, org: &OrgId, bytes: &[u8], filename: Option<&str>) -> Message {
    match enqueue_file(&rig.sup, org, bytes, filename, None)
        .await
        .unwrap()
    {
        Enqueued::New(m) => m,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn files_queued_before_pairing_go_out_in_order_as_image_and_document() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.show_qr(&a).await;
    let image = new_file(&rig, &a, &samples::png(), None).await;
    let text = match rig
        .sup
        .enqueue(MessageRequest {
            org: a.clone(),
            phone: CUSTOMER.into(),
            body: MessageBody::Text("y su cita".into()),
            idempotency_key: None,
            expires_at: None,
        })
        .await
        .unwrap()
    {
        Enqueued::New(m) => m,
        other => panic!("{other:?}"),
    };
    let document = new_file(&rig, &a, &samples::pdf(), None).await;
    assert_eq!(
        files_in(&media_dir(&rig)).len(),
        2,
        "one file per media message"
    );
    let MessageBody::Media(body) = &document.body else {
        panic!("{:?}", document.body)
    };
    assert_eq!(
        body.filename.as_deref(),
        Some("document.pdf"),
        "a document is never nameless"
    );

    rig.sim.scan(&a, "573001234567").unwrap();
    wait_message(&rig, &document.message_id, MessageStatus::Sent).await;
    let sent: Vec<(String, &str, Option<String>)> = rig
        .sim
        .sent(&a)
        .into_iter()
        .map(|r| (r.message_id, r.kind, r.mimetype))
        .collect();
    assert_eq!(
        sent,
        [
            (
                image.message_id.to_string(),
                "image",
                Some("image/png".to_owned())
            ),
            (text.message_id.to_string(), "text", None),
            (
                document.message_id.to_string(),
                "document",
                Some("application/pdf".to_owned())
            ),
        ]
    );
    assert_eq!(rig.sim.sent(&a)[0].bytes, Some(samples::png().len()));
    rig.settle_for(Duration::from_millis(100)).await;
    assert!(files_in(&media_dir(&rig)).is_empty(), "sent: no file left");
}

#[tokio::test(start_paused = true)]
async fn cancelled_and_expired_files_are_removed_and_never_sent() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.show_qr(&a).await;
    let cancelled = new_file(&rig, &a, &samples::png(), Some("ojo.png")).await;
    // Expiry reads the wall clock, which paused time does not move: a message
    // accepted already past its expiry is expired by the next sweep.
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    let Enqueued::New(expiring) = enqueue_file(&rig.sup, &a, &samples::jpeg(), None, Some(past))
        .await
        .unwrap()
    else {
        panic!("new")
    };
    assert!(files_in(&media_dir(&rig)).contains(&cancelled.message_id.to_string()));
    let Updated::Applied(m) = rig
        .sup
        .outbox()
        .update(&cancelled.message_id, Update::Cancelled)
        .await
        .unwrap()
    else {
        panic!("cancelled while queued")
    };
    assert_eq!(m.status, MessageStatus::Cancelled);
    assert!(!files_in(&media_dir(&rig)).contains(&cancelled.message_id.to_string()));
    wait_message(&rig, &expiring.message_id, MessageStatus::Expired).await;
    rig.settle_for(Duration::from_millis(100)).await;
    assert!(
        files_in(&media_dir(&rig)).is_empty(),
        "expired: no file left"
    );
    rig.sim.scan(&a, "573001234567").unwrap();
    rig.wait(&a, SessionStatus::Connected).await;
    rig.settle_for(Duration::from_secs(5)).await;
    assert!(rig.sim.sent(&a).is_empty());
}

#[tokio::test(start_paused = true)]
async fn refused_files_and_duplicates_leave_nothing_behind() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    // PNG bytes under a PDF's name: refused, nothing kept.
    let refused = enqueue_file(&rig.sup, &a, &samples::png(), Some("receta.pdf"), None).await;
    assert!(
        matches!(
            refused,
            Err(SendError::Media(
                crate::media::MediaError::ExtensionMismatch { .. }
            ))
        ),
        "{refused:?}"
    );
    let unknown = enqueue_file(&rig.sup, &a, &samples::gif(), None, None).await;
    assert!(matches!(unknown, Err(SendError::Media(_))), "{unknown:?}");
    assert!(files_in(&media_dir(&rig)).is_empty());

    // The same key twice: one message, one file; another file under it: a conflict.
    let keyed = |bytes: Vec<u8>| {
        let sup = rig.sup.clone();
        let a = a.clone();
        async move {
            let mut file = sup.outbox().media().incoming(1 << 20).await.unwrap();
            file.write(&bytes).await.unwrap();
            sup.enqueue_media(MediaRequest {
                org: a,
                phone: CUSTOMER.into(),
                file,
                mimetype: Some("image/png".into()),
                filename: None,
                caption: None,
                idempotency_key: Some("appt-9-photo".into()),
                expires_at: None,
            })
            .await
        }
    };
    let Enqueued::New(first) = keyed(samples::png()).await.unwrap() else {
        panic!("new")
    };
    let Enqueued::Duplicate(again) = keyed(samples::png()).await.unwrap() else {
        panic!("duplicate")
    };
    assert_eq!(again.message_id, first.message_id);
    let mut other = samples::png();
    other.push(0);
    assert!(matches!(
        keyed(other).await,
        Err(SendError::Outbox(crate::outbox::OutboxError::KeyReused(_)))
    ));
    let files = files_in(&media_dir(&rig));
    assert!(
        files.is_empty() || files == [first.message_id.to_string()],
        "at most the first message's file: {files:?}"
    );
    wait_message(&rig, &first.message_id, MessageStatus::Sent).await;
    assert_eq!(rig.sim.sent(&a).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_number_not_on_whatsapp_fails_before_any_attempt() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.sim.set_on_whatsapp(&a, CUSTOMER, false);
    let image = new_file(&rig, &a, &samples::png(), None).await;
    let failed = wait_message(&rig, &image.message_id, MessageStatus::Failed).await;
    assert_eq!(failed.error.as_deref(), Some(NOT_ON_WHATSAPP));
    assert_eq!(failed.attempts, 0, "no attempt was made");
    assert!(rig.sim.sent(&a).is_empty());
    rig.settle_for(Duration::from_millis(100)).await;
    assert!(
        files_in(&media_dir(&rig)).is_empty(),
        "failed: no file left"
    );
    // The same answer for the API, from the cache; another number is on WhatsApp.
    assert_eq!(rig.sup.check_number(&a, CUSTOMER).await, Ok(false));
    assert_eq!(rig.sup.check_number(&a, "573001110000").await, Ok(true));
    assert_eq!(
        rig.sup.check_number(&org("9"), CUSTOMER).await,
        Err(crate::NumberCheckError::NotConnected {
            status: SessionStatus::NotStarted
        })
    );
}

/// A connection whose number check always fails, as on a flaky network.
struct CheckFails(SimConnector);

struct Flaky(Arc<dyn Connection>);

#[async_trait::async_trait]
impl Connection for Flaky {
    async fn send_text(&self, p: &str, t: &str, id: &str) -> Result<(), ConnectionError> {
        self.0.send_text(p, t, id).await
    }
    async fn send_media(&self, p: &str, m: &Media, id: &str) -> Result<(), ConnectionError> {
        self.0.send_media(p, m, id).await
    }
    async fn is_on_whatsapp(&self, _: &str) -> Result<bool, ConnectionError> {
        Err(ConnectionError::Failed("the usync query timed out".into()))
    }
    async fn logout(&self) -> Result<(), ConnectionError> {
        self.0.logout().await
    }
    async fn shutdown(&self) {
        self.0.shutdown().await
    }
}

#[async_trait::async_trait]
impl Connector for CheckFails {
    async fn connect(
        &self,
        request: ConnectRequest,
    ) -> Result<(Arc<dyn Connection>, EventStream), ConnectionError> {
        let (conn, events) = self.0.connect(request).await?;
        Ok((Arc::new(Flaky(conn)), events))
    }
    fn has_credentials(&self, dir: &Path) -> Result<bool, ConnectionError> {
        self.0.has_credentials(dir)
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_number_check_does_not_fail_the_message() {
    let root = tempfile::tempdir().unwrap();
    let sim = SimConnector::default();
    let sup = spawn_sup(
        SupervisorConfig::new(root.path()),
        Arc::new(CheckFails(sim.clone())),
        no_events(),
    )
    .await;
    let a = org("2");
    sup.start(&a, None).await.unwrap();
    sup.wait_for(&a, LONG, |s| s.status == SessionStatus::QrReady)
        .await
        .unwrap();
    sim.scan(&a, "573001234567").unwrap();
    sup.wait_for(&a, LONG, |s| s.status == SessionStatus::Connected)
        .await
        .unwrap();
    let Enqueued::New(m) = enqueue_file(&sup, &a, &samples::pdf(), Some("receta.pdf"), None)
        .await
        .unwrap()
    else {
        panic!("new")
    };
    for _ in 0..1000 {
        if sup
            .outbox()
            .get(&m.message_id)
            .await
            .unwrap()
            .unwrap()
            .status
            == MessageStatus::Sent
        {
            break;
        }
        settle().await;
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    let m = sup.outbox().get(&m.message_id).await.unwrap().unwrap();
    assert_eq!((m.status, m.attempts), (MessageStatus::Sent, 1), "{m:?}");
    assert_eq!(sim.sent(&a)[0].filename.as_deref(), Some("receta.pdf"));
    // The API hears that the check failed; it is not taken for "not on WhatsApp".
    assert!(matches!(
        sup.check_number(&a, CUSTOMER).await,
        Err(crate::NumberCheckError::Failed(_))
    ));
}

#[tokio::test]
async fn leftover_files_are_swept_at_start() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(MEDIA_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    let orphan = MessageId::generate();
    std::fs::write(dir.join(orphan.as_str()), b"no message").unwrap();
    std::fs::write(dir.join(".incoming-3EB0CRASHED"), b"half an upload").unwrap();
    let sup = spawn_sup(
        SupervisorConfig::new(root.path()),
        Arc::new(SimConnector::default()),
        no_events(),
    )
    .await;
    assert!(files_in(&dir).is_empty(), "{:?}", files_in(&dir));
    sup.shutdown().await;
}
