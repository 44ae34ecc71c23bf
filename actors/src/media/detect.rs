//! Which files may be sent, told from their bytes, and whether what the caller
//! declared (a mimetype, a file name) agrees with them.
//!
//! The allow-list is one table, [`ACCEPTED`]: the three image formats WhatsApp
//! shows inline, and the documents a shop sends (PDF, and the Office formats of
//! today). The type always comes from the bytes, through `infer`'s magic-number
//! matchers; a declared type is only ever checked against it, never believed.

use super::MediaKind;

/// How many leading bytes [`detect`] needs to recognise every accepted type (an
/// Office file is found by the names of its first ZIP entries, a few KiB in).
pub const HEAD_BYTES: usize = 64 * 1024;

/// An accepted type.
#[derive(Debug)]
pub struct FileType {
    /// Its short name, for messages (`PNG`, `PDF`).
    pub name: &'static str,
    pub mimetype: &'static str,
    pub kind: MediaKind,
    /// File-name extensions that name this type (lower case, the first is usual).
    pub extensions: &'static [&'static str],
    matches: fn(&[u8]) -> bool,
}

/// Rows are told apart by their mimetype (a matcher function has no
/// meaningful identity to compare).
impl PartialEq for FileType {
    fn eq(&self, other: &Self) -> bool {
        self.mimetype == other.mimetype
    }
}

impl Eq for FileType {}

/// Every type that may be sent, one row each.
#[rustfmt::skip]
pub const ACCEPTED: [FileType; 7] = [
    FileType { name: "JPEG", mimetype: "image/jpeg", kind: MediaKind::Image, extensions: &["jpg", "jpeg", "jpe", "jfif"], matches: infer::image::is_jpeg },
    FileType { name: "PNG", mimetype: "image/png", kind: MediaKind::Image, extensions: &["png"], matches: infer::image::is_png },
    FileType { name: "WebP", mimetype: "image/webp", kind: MediaKind::Image, extensions: &["webp"], matches: infer::image::is_webp },
    FileType { name: "PDF", mimetype: "application/pdf", kind: MediaKind::Document, extensions: &["pdf"], matches: infer::archive::is_pdf },
    FileType { name: "DOCX", mimetype: "application/vnd.openxmlformats-officedocument.wordprocessingml.document", kind: MediaKind::Document, extensions: &["docx"], matches: infer::doc::is_docx },
    FileType { name: "XLSX", mimetype: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", kind: MediaKind::Document, extensions: &["xlsx"], matches: infer::doc::is_xlsx },
    FileType { name: "PPTX", mimetype: "application/vnd.openxmlformats-officedocument.presentationml.presentation", kind: MediaKind::Document, extensions: &["pptx"], matches: infer::doc::is_pptx },
];

/// Mimetypes that say nothing about the content: a declared one of these is not
/// checked against the bytes.
const UNSPECIFIC: [&str; 2] = ["application/octet-stream", "binary/octet-stream"];

/// Other spellings of an accepted mimetype that callers send.
const ALIASES: [(&str, &str); 2] = [("image/jpg", "image/jpeg"), ("image/pjpeg", "image/jpeg")];

/// The longest file name kept (WhatsApp shows far less).
pub const MAX_FILENAME_BYTES: usize = 255;

/// Why a file cannot be sent as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The bytes are of no accepted type; `looks_like` names what they seem to be,
    /// when `infer` knows it.
    #[error("the file's content is not an accepted type ({}){}", accepted_names(), .looks_like.as_deref().map(|m| format!("; it looks like {m}")).unwrap_or_default())]
    Unrecognized { looks_like: Option<String> },
    #[error("mimetype {declared} does not match the file's content ({detected})")]
    MimetypeMismatch {
        declared: String,
        detected: &'static str,
    },
    #[error("filename {filename:?} does not match the file's content ({detected}, .{expected})")]
    ExtensionMismatch {
        filename: String,
        detected: &'static str,
        expected: &'static str,
    },
    #[error("filename must be 1 to {MAX_FILENAME_BYTES} bytes of printable characters")]
    BadFilename,
}

fn accepted_names() -> String {
    ACCEPTED
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The accepted type of a file from its first bytes (at least [`HEAD_BYTES`] of
/// them when the file is that long), or why it is not accepted.
pub fn detect(head: &[u8]) -> Result<&'static FileType, MediaError> {
    if head.is_empty() {
        return Err(MediaError::Empty);
    }
    ACCEPTED
        .iter()
        .find(|t| (t.matches)(head))
        .ok_or_else(|| MediaError::Unrecognized {
            looks_like: infer::get(head).map(|t| t.mime_type().to_owned()),
        })
}

/// Checks what the caller declared against the detected type: a mimetype other
/// than an unspecific one must be the detected one, and a file name with an
/// extension must carry one of the type's. Returns the file name to keep: its
/// last path component (a name from a form may carry the sender's folders).
pub fn check_declared(
    detected: &'static FileType,
    mimetype: Option<&str>,
    filename: Option<&str>,
) -> Result<Option<String>, MediaError> {
    if let Some(declared) = mimetype {
        let essence = declared
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let essence = ALIASES
            .iter()
            .find(|(alias, _)| *alias == essence)
            .map_or(essence.as_str(), |(_, canonical)| canonical);
        if !essence.is_empty() && !UNSPECIFIC.contains(&essence) && essence != detected.mimetype {
            return Err(MediaError::MimetypeMismatch {
                declared: declared.trim().to_owned(),
                detected: detected.mimetype,
            });
        }
    }
    let Some(raw) = filename else { return Ok(None) };
    let name = raw.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if name.is_empty()
        || name.len() > MAX_FILENAME_BYTES
        || name.chars().any(char::is_control)
        || name == "."
        || name == ".."
    {
        return Err(MediaError::BadFilename);
    }
    if let Some((stem, extension)) = name.rsplit_once('.')
        && !stem.is_empty()
        && !detected
            .extensions
            .contains(&extension.to_ascii_lowercase().as_str())
    {
        return Err(MediaError::ExtensionMismatch {
            filename: name.to_owned(),
            detected: detected.mimetype,
            expected: detected.extensions[0],
        });
    }
    Ok(Some(name.to_owned()))
}

/// Small files of every accepted type (and a few others), made here so tests
/// need no fixtures on disk.
#[cfg(test)]
pub mod samples {
    /// A 1×1 PNG.
    pub fn png() -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(
            b"\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde",
        );
        png.extend_from_slice(
            b"\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef",
        );
        png.extend_from_slice(b"\x00\x00\x00\x00IEND\xaeB`\x82");
        png
    }

    /// The start of a JFIF JPEG.
    pub fn jpeg() -> Vec<u8> {
        let mut jpeg =
            b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00".to_vec();
        jpeg.extend_from_slice(&[0u8; 64]);
        jpeg.extend_from_slice(b"\xff\xd9");
        jpeg
    }

    /// A RIFF WebP header.
    pub fn webp() -> Vec<u8> {
        let mut webp = b"RIFF\x24\x00\x00\x00WEBPVP8 ".to_vec();
        webp.extend_from_slice(&[0u8; 32]);
        webp
    }

    /// A one-page PDF.
    pub fn pdf() -> Vec<u8> {
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n".to_vec()
    }

    /// The first entries of an Office Open XML file whose parts live under `dir`
    /// (`word/`, `xl/`, `ppt/`), in the order Office writes them: what `infer`
    /// reads to tell them apart (it looks at the fourth entry's folder).
    pub fn ooxml(dir: &str) -> Vec<u8> {
        const DATA: [u8; 32] = [b'x'; 32];
        let mut zip = Vec::new();
        let names = [
            "[Content_Types].xml".to_owned(),
            "_rels/.rels".to_owned(),
            format!("{dir}_rels/document.xml.rels"),
            format!("{dir}document.xml"),
        ];
        for name in names {
            zip.extend_from_slice(b"PK\x03\x04");
            // version, flags, method, time, date, crc: 14 bytes; then the
            // compressed and uncompressed sizes.
            zip.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            zip.extend_from_slice(&(DATA.len() as u32).to_le_bytes());
            zip.extend_from_slice(&(DATA.len() as u32).to_le_bytes());
            zip.extend_from_slice(&(name.len() as u16).to_le_bytes());
            zip.extend_from_slice(&0u16.to_le_bytes());
            zip.extend_from_slice(name.as_bytes());
            zip.extend_from_slice(&DATA);
        }
        zip
    }

    /// A GIF: a real image type that is not accepted.
    pub fn gif() -> Vec<u8> {
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::samples;
    use super::*;

    /// Every sample against the table: its detected type, or why not.
    #[test]
    fn types_come_from_the_bytes() {
        type Row = (&'static str, Vec<u8>, Option<(&'static str, MediaKind)>);
        #[rustfmt::skip]
        let table: Vec<Row> = vec![
            ("png",  samples::png(),          Some(("image/png", MediaKind::Image))),
            ("jpeg", samples::jpeg(),         Some(("image/jpeg", MediaKind::Image))),
            ("webp", samples::webp(),         Some(("image/webp", MediaKind::Image))),
            ("pdf",  samples::pdf(),          Some(("application/pdf", MediaKind::Document))),
            ("docx", samples::ooxml("word/"), Some((ACCEPTED[4].mimetype, MediaKind::Document))),
            ("xlsx", samples::ooxml("xl/"),   Some((ACCEPTED[5].mimetype, MediaKind::Document))),
            ("pptx", samples::ooxml("ppt/"),  Some((ACCEPTED[6].mimetype, MediaKind::Document))),
            ("gif",  samples::gif(),          None),
            ("text", b"hola, recordatorio".to_vec(), None),
            ("zip",  samples::ooxml("other/"), None),
        ];
        for (name, bytes, want) in table {
            let got = detect(&bytes).ok().map(|t| (t.mimetype, t.kind));
            assert_eq!(got, want, "{name}");
        }
        assert_eq!(detect(&[]), Err(MediaError::Empty));
    }

    #[test]
    fn an_unaccepted_type_is_named_when_known() {
        let err = detect(&samples::gif()).unwrap_err();
        assert_eq!(
            err,
            MediaError::Unrecognized {
                looks_like: Some("image/gif".into())
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("JPEG, PNG, WebP, PDF, DOCX, XLSX, PPTX"),
            "{text}"
        );
        assert!(text.ends_with("it looks like image/gif"), "{text}");
        let unknown = detect(b"plain words").unwrap_err().to_string();
        assert!(!unknown.contains("looks like"), "{unknown}");
    }

    /// What a caller may declare beside PNG bytes, one case per line.
    #[test]
    fn declarations_must_agree_with_the_bytes() {
        let png = detect(&samples::png()).unwrap();
        let pdf = detect(&samples::pdf()).unwrap();
        type Row<'a> = (
            &'a FileType,
            Option<&'a str>,
            Option<&'a str>,
            Result<Option<&'a str>, &'a str>,
        );
        #[rustfmt::skip]
        let table: Vec<Row> = vec![
            (png, None,                         None,                     Ok(None)),
            (png, Some("image/png"),            Some("foto.png"),         Ok(Some("foto.png"))),
            (png, Some("IMAGE/PNG; q=1"),       Some("FOTO.PNG"),         Ok(Some("FOTO.PNG"))),
            (png, Some("application/octet-stream"), Some("foto"),         Ok(Some("foto"))),
            (png, None,                         Some("C:\\fotos\\ojo.png"), Ok(Some("ojo.png"))),
            (png, None,                         Some("../../etc/ojo.png"), Ok(Some("ojo.png"))),
            (png, None,                         Some(".png"),             Ok(Some(".png"))),
            (png, Some("image/jpeg"),           None,                     Err("mimetype")),
            (png, None,                         Some("receta.pdf"),       Err("filename")),
            (png, None,                         Some("dir/"),             Err("bad")),
            (png, None,                         Some("a\nb.png"),         Err("bad")),
            (pdf, Some("application/pdf"),      Some("receta.PDF"),       Ok(Some("receta.PDF"))),
            (pdf, Some("image/png"),            Some("receta.pdf"),       Err("mimetype")),
        ];
        for (ft, mimetype, filename, want) in table {
            let got = check_declared(ft, mimetype, filename);
            match (want, &got) {
                (Ok(name), Ok(kept)) => {
                    assert_eq!(kept.as_deref(), name, "{mimetype:?} {filename:?}")
                }
                (Err("mimetype"), Err(MediaError::MimetypeMismatch { .. }))
                | (Err("filename"), Err(MediaError::ExtensionMismatch { .. }))
                | (Err("bad"), Err(MediaError::BadFilename)) => {}
                _ => panic!("{mimetype:?} {filename:?}: {got:?}"),
            }
        }
        let err = check_declared(png, None, Some("receta.pdf"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "filename \"receta.pdf\" does not match the file's content (image/png, .png)"
        );
        let err = check_declared(png, Some("image/jpg"), None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "mimetype image/jpg does not match the file's content (image/png)"
        );
    }
}
