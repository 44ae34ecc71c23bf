//! Files sent as WhatsApp media (CONTRACT §14): what a media message carries, which
//! files are accepted and how their type is told from their bytes
//! ([`detect`](detect::detect)), and where a queued file waits on disk until its
//! message is settled ([`MediaFiles`]).

pub mod detect;
mod files;

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

pub use detect::{ACCEPTED, FileType, MediaError, check_declared, detect};
pub use files::{INCOMING_PREFIX, Incoming, IncomingError, MEDIA_DIR, MediaFiles, SharedMedia};

/// How WhatsApp shows a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// A picture in the chat, with an optional caption.
    Image,
    /// A file to open or download, shown with its file name.
    Document,
}

impl MediaKind {
    pub const ALL: [MediaKind; 2] = [Self::Image, Self::Document];

    /// The wire name (`image`, `document`), as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Document => "document",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the outbox keeps of a media message. The bytes themselves wait in
/// [`MediaFiles`] under the message's id; `sha256` and `size` tell two files
/// apart when an idempotency key comes back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaBody {
    pub kind: MediaKind,
    /// As detected from the bytes (never as the caller declared it).
    pub mimetype: String,
    /// The name the recipient sees on a document.
    pub filename: Option<String>,
    pub caption: Option<String>,
    /// The file's SHA-256, lower-case hex.
    pub sha256: String,
    /// The file's length in bytes.
    pub size: u64,
}

/// A file on its way to a recipient: what [`Connection::send_media`] sends.
///
/// [`Connection::send_media`]: crate::connection::Connection::send_media
#[derive(Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: MediaKind,
    pub mimetype: String,
    pub filename: Option<String>,
    pub caption: Option<String>,
    pub bytes: Arc<Vec<u8>>,
}

impl Media {
    /// The file of `body`, read back from disk.
    pub fn of(body: &MediaBody, bytes: Vec<u8>) -> Self {
        Self {
            kind: body.kind,
            mimetype: body.mimetype.clone(),
            filename: body.filename.clone(),
            caption: body.caption.clone(),
            bytes: Arc::new(bytes),
        }
    }
}

/// The bytes stay out of debug output (a patient's document).
impl fmt::Debug for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Media")
            .field("kind", &self.kind)
            .field("mimetype", &self.mimetype)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
