//! CONTRACT §14 on the real connection against the loopback server: a file is
//! uploaded through the media connection the server hands out, then sent as an
//! image or document message with the message's own id, and acked.

use std::sync::Arc;

use wa_loopback::{Loopback, ServerEvent, Upload};

use super::super::*;
use super::loopback::{CUSTOMER, PHONE, is_delivery, new_id, options, org_dir, pair_with, until};
use crate::connection::{Connection as _, ConnectionEvent};
use crate::media::{Media, MediaKind};

fn connector(server: &Loopback) -> WhatsAppConnector {
    WhatsAppConnector::new(WhatsAppOptions {
        http_client: Some(MediaHttpClient(Arc::new(server.media_http()))),
        ..options(server)
    })
}

fn media(kind: MediaKind, mimetype: &str, filename: Option<&str>, bytes: Vec<u8>) -> Media {
    Media {
        kind,
        mimetype: mimetype.into(),
        filename: filename.map(str::to_owned),
        caption: Some("Su fórmula".into()),
        bytes: Arc::new(bytes),
    }
}

/// The server's record of the message with `id`.
fn sent(server: &Loopback, id: &str) -> Option<wa_loopback::SentMessage> {
    server.events().into_iter().find_map(|e| match e {
        ServerEvent::Message(m) if m.id == id => Some(m),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_and_a_document_are_uploaded_sent_and_acked() {
    let server = Loopback::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = org_dir(&tmp, "optica-sol");
    let (conn, mut events) = pair_with(&server, &connector(&server), &dir, PHONE).await;

    let png = crate::media::detect::samples::png();
    let image = new_id();
    conn.send_media(
        CUSTOMER,
        &media(MediaKind::Image, "image/png", None, png.clone()),
        &image,
    )
    .await
    .unwrap();
    assert_eq!(
        until(&mut events, is_delivery).await,
        ConnectionEvent::ServerAck {
            message_id: image.clone(),
            error: None
        }
    );
    let pdf = crate::media::detect::samples::pdf();
    let document = new_id();
    let file = media(
        MediaKind::Document,
        "application/pdf",
        Some("receta.pdf"),
        pdf.clone(),
    );
    conn.send_media(CUSTOMER, &file, &document).await.unwrap();
    assert_eq!(
        until(&mut events, is_delivery).await,
        ConnectionEvent::ServerAck {
            message_id: document.clone(),
            error: None
        }
    );

    let log = server.events();
    assert!(
        log.contains(&ServerEvent::MediaConn {
            phone: PHONE.into()
        }),
        "the client asked for a media connection"
    );
    let uploads: Vec<Upload> = log
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Upload(u) => Some(u.clone()),
            _ => None,
        })
        .collect();
    let kinds: Vec<&str> = uploads.iter().map(|u| u.media_type.as_str()).collect();
    assert_eq!(kinds, ["image", "document"]);
    // Encrypted with AES-CBC (a padded multiple of 16) and a 10-byte MAC.
    for (upload, plain) in uploads.iter().zip([png.len(), pdf.len()]) {
        assert!(
            upload.bytes > plain && (upload.bytes - 10) % 16 == 0,
            "{upload:?}"
        );
    }
    for (id, kind) in [(&image, "image"), (&document, "document")] {
        let message = sent(&server, id).expect("the message reached the server");
        assert_eq!(message.kind, "media");
        assert_eq!(message.media_type.as_deref(), Some(kind));
        assert_eq!(message.to.user, CUSTOMER);
    }
    conn.shutdown().await;
}
