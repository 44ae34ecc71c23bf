//! Media on the loopback server: the media-connection query and the upload host.
//!
//! To send a file, whatsapp-rust asks the chat server for a media connection
//! (`<iq xmlns="w:m" type="set"><media_conn/></iq>`, answered with an auth token
//! and upload hosts), encrypts the file, POSTs the ciphertext to
//! `https://<host>/mms/<type>/<token>?auth=…&token=…` through its `HttpClient`,
//! and sends a message carrying the returned `url` and `direct_path`.
//!
//! The server answers the query with [`MEDIA_HOST`] and [`MEDIA_AUTH`]. No real
//! socket serves that host: [`MediaHttp`] is an `HttpClient` to hand the client
//! (whatsapp-rust's `BotBuilder::with_http_client`), which carries each request
//! straight to the server in-process, where it is checked and recorded as
//! [`ServerEvent::Upload`](crate::ServerEvent::Upload).

use std::sync::Arc;

use anyhow::Result;
use wacore::iq::mediaconn::{HostType, MediaConnHostExtended, MediaConnResponseExtended};
use wacore::net::{HttpClient, HttpRequest, HttpResponse};
use wacore::protocol::ProtocolNode as _;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Node, SERVER_JID};

use crate::server::{ServerEvent, Shared};

/// The upload host the media connection names.
pub const MEDIA_HOST: &str = "mmg.loopback.invalid";
/// The auth token every upload must carry.
pub const MEDIA_AUTH: &str = "loopback-media-auth";

/// A file the client uploaded, as the upload host saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// The media type of the upload path: `image`, `document`, …
    pub media_type: String,
    /// The ciphertext's length.
    pub bytes: usize,
    /// The token of the path: the ciphertext's SHA-256, URL-safe base64.
    pub token: String,
}

/// The result of a media-connection query; `None` for any other node.
pub(crate) fn answer_media_conn(iq: &Node) -> Option<Node> {
    let attr = |key: &str| iq.attrs.get(key).map(|v| v.as_str().into_owned());
    if iq.tag != "iq"
        || attr("xmlns").as_deref() != Some("w:m")
        || iq.get_optional_child("media_conn").is_none()
    {
        return None;
    }
    let id = attr("id")?;
    let host = MediaConnHostExtended::simple(MEDIA_HOST.to_owned(), HostType::Primary);
    let conn = MediaConnResponseExtended::mock(MEDIA_AUTH.to_owned(), 3600, vec![host]);
    Some(
        NodeBuilder::new("iq")
            .attr("from", SERVER_JID)
            .attr("type", "result")
            .attr("id", id)
            .children([conn.into_node()])
            .build(),
    )
}

/// The client's way to the upload host (see the module docs).
#[derive(Clone)]
pub struct MediaHttp {
    pub(crate) shared: Arc<Shared>,
}

impl MediaHttp {
    fn answer(&self, request: &HttpRequest) -> HttpResponse {
        let status = |code: u16, body: &str| HttpResponse {
            status_code: code,
            body: body.as_bytes().to_vec(),
        };
        let Some(rest) = request.url.strip_prefix("https://") else {
            return status(400, "not https");
        };
        let (host, rest) = rest.split_once('/').unwrap_or((rest, ""));
        if host != MEDIA_HOST {
            return status(404, "unknown host");
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        };
        if request.method != "POST" {
            return status(405, "POST only");
        }
        if param("auth") != Some(MEDIA_AUTH) {
            return status(401, "bad media auth");
        }
        let mut parts = path.split('/');
        let (Some("mms"), Some(media_type), Some(token), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return status(404, "not an upload path");
        };
        let body = request.body.as_deref().unwrap_or_default();
        if body.is_empty() || param("token") != Some(token) {
            return status(400, "no body or a token mismatch");
        }
        self.shared.record(ServerEvent::Upload(Upload {
            media_type: media_type.to_owned(),
            bytes: body.len(),
            token: token.to_owned(),
        }));
        let direct_path = format!("/v/t62.loopback/{token}");
        let reply = format!(
            r#"{{"url":"https://{MEDIA_HOST}{direct_path}","direct_path":"{direct_path}"}}"#
        );
        status(200, &reply)
    }
}

#[async_trait::async_trait]
impl HttpClient for MediaHttp {
    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse> {
        Ok(self.answer(&request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wacore::iq::mediaconn::MediaConnSpec;
    use wacore::iq::spec::IqSpec;
    use wacore::request::RequestUtils;
    use wacore_binary::OwnedNodeRef;

    #[test]
    fn the_media_conn_answer_parses_as_the_client_reads_it() {
        let spec = MediaConnSpec::new();
        let request =
            RequestUtils::new("t".to_owned()).build_iq_node(spec.build_iq(), Some("m-1".into()));
        let reply = answer_media_conn(&request).expect("a media_conn query is answered");
        let bytes = wacore_binary::marshal(&reply).unwrap();
        let unpacked = wacore_binary::util::unpack(&bytes).unwrap();
        let node = OwnedNodeRef::new(unpacked.into_owned()).unwrap();
        let conn = spec.parse_response(node.get()).unwrap();
        assert_eq!(conn.auth, MEDIA_AUTH);
        let hosts: Vec<&str> = conn.hosts.iter().map(|h| h.hostname.as_str()).collect();
        assert_eq!(hosts, [MEDIA_HOST]);
        let other = NodeBuilder::new("iq")
            .attr("xmlns", "w:p")
            .attr("id", "x")
            .build();
        assert!(answer_media_conn(&other).is_none());
    }

    #[tokio::test]
    async fn uploads_are_checked_and_recorded() {
        let http = MediaHttp {
            shared: Arc::new(Shared::new()),
        };
        let url =
            |auth: &str| format!("https://{MEDIA_HOST}/mms/image/TOKEN?auth={auth}&token=TOKEN");
        let ok = http
            .execute(HttpRequest::post(url(MEDIA_AUTH)).with_body(vec![1u8, 2, 3]))
            .await
            .unwrap();
        assert_eq!(ok.status_code, 200);
        let reply: serde_json::Value = serde_json::from_slice(&ok.body).unwrap();
        assert_eq!(reply["direct_path"], "/v/t62.loopback/TOKEN");
        let refused = http
            .execute(HttpRequest::post(url("stale")).with_body(vec![1u8]))
            .await
            .unwrap();
        assert_eq!(
            refused.status_code, 401,
            "a stale auth makes the client refresh"
        );
        assert_eq!(
            http.shared.events(),
            [ServerEvent::Upload(Upload {
                media_type: "image".into(),
                bytes: 3,
                token: "TOKEN".into()
            })]
        );
    }
}
