//! The API key that guards every `/api/*` and `/sim/*` route.
//!
//! There is no default key anywhere: the Node server shipped one, and every install
//! that forgot to change it was open. The key comes from `WHATSAPP_SERVER_API_KEY`
//! (the name the Django side uses), else from `[server] api_key_file`, else from
//! `<sessions dir>/api_key`, which the first start fills with 256 random bits. The
//! key itself is never logged or echoed (its `Debug` is redacted); only the path of
//! the file it came from is.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

/// The environment variable holding the key.
pub const ENV_API_KEY: &str = "WHATSAPP_SERVER_API_KEY";
/// The generated key's file name inside the sessions directory (the actor library
/// reserves it as an organization id).
pub const GENERATED_FILE: &str = "api_key";

/// Why the API key could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("{ENV_API_KEY} is set but empty")]
    EmptyEnv,
    #[error("API key file {path} is empty")]
    EmptyFile { path: PathBuf },
    #[error("cannot read API key file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot create API key file {path}: {cause}")]
    Create {
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// Where the key came from (for the start-up log line; never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
    Generated(PathBuf),
}

/// The API key. Compared in constant time; its `Debug` does not show it.
#[derive(Clone)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl ApiKey {
    /// A key from a known string (tests, and the resolution below). Surrounding
    /// whitespace is not part of a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into().trim().to_owned())
    }

    /// Whether `presented` is the key, in time independent of where they differ
    /// (only a length mismatch answers early, and the length is no secret: a
    /// generated key is always 64 hex digits).
    pub fn matches(&self, presented: &[u8]) -> bool {
        bool::from(self.0.as_bytes().ct_eq(presented))
    }

    /// The key as text, for a client that must send it (tests, the CLI).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Finds the key: `env_key` (the value of [`ENV_API_KEY`]), else `key_file`,
    /// else the generated file in `sessions_dir`, created on first use.
    pub fn resolve(
        env_key: Option<String>,
        key_file: Option<&Path>,
        sessions_dir: &Path,
    ) -> Result<(Self, KeySource), ApiKeyError> {
        if let Some(key) = env_key {
            let key = Self::new(key);
            if key.0.is_empty() {
                return Err(ApiKeyError::EmptyEnv);
            }
            tracing::info!(source = ENV_API_KEY, "API key loaded");
            return Ok((key, KeySource::Env));
        }
        if let Some(path) = key_file {
            let key = read_key(path)?;
            warn_if_readable_by_others(path);
            tracing::info!(path = %path.display(), "API key loaded from file");
            return Ok((key, KeySource::File(path.to_owned())));
        }
        let path = sessions_dir.join(GENERATED_FILE);
        match read_key(&path) {
            Ok(key) => {
                warn_if_readable_by_others(&path);
                tracing::info!(path = %path.display(), "API key loaded from file");
                Ok((key, KeySource::File(path)))
            }
            Err(ApiKeyError::Read { cause, .. }) if cause.kind() == ErrorKind::NotFound => {
                let key = generate(sessions_dir, &path)?;
                tracing::info!(
                    path = %path.display(),
                    "no API key configured: generated a new one; give the Django side the contents of this file"
                );
                Ok((key, KeySource::Generated(path)))
            }
            Err(e) => Err(e),
        }
    }
}

impl ApiKey {
    /// Finds the key as [`ApiKey::resolve`] does, but never creates one: for a
    /// client (the CLI) talking to a running daemon.
    pub fn find(
        env_key: Option<String>,
        key_file: Option<&Path>,
        sessions_dir: &Path,
    ) -> Result<Self, ApiKeyError> {
        if let Some(key) = env_key {
            let key = Self::new(key);
            return if key.0.is_empty() {
                Err(ApiKeyError::EmptyEnv)
            } else {
                Ok(key)
            };
        }
        read_key(key_file.unwrap_or(&sessions_dir.join(GENERATED_FILE)))
    }
}

fn read_key(path: &Path) -> Result<ApiKey, ApiKeyError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ApiKeyError::Read {
        path: path.to_owned(),
        cause,
    })?;
    let key = ApiKey::new(text);
    if key.0.is_empty() {
        return Err(ApiKeyError::EmptyFile {
            path: path.to_owned(),
        });
    }
    Ok(key)
}

/// Writes a fresh 256-bit key, hex encoded, to `path` (0600), creating the
/// sessions directory (0700) if needed. `create_new` makes two racing first starts
/// agree on one key instead of overwriting each other.
fn generate(sessions_dir: &Path, path: &Path) -> Result<ApiKey, ApiKeyError> {
    let create_err = |cause| ApiKeyError::Create {
        path: path.to_owned(),
        cause,
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(sessions_dir)
        .map_err(create_err)?;

    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();

    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(key.as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| file.sync_all())
                .map_err(create_err)?;
            Ok(ApiKey(key))
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read_key(path),
        Err(e) => Err(create_err(e)),
    }
}

/// A key file others can read is a key others can use: say so at every start,
/// naming the file and its mode (never the key).
fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o044 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:03o}"),
                "API key file {} is readable by other users (mode {mode:03o}); chmod 600 it",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// The tests of this module run one at a time. Each installs a scoped
    /// subscriber, and tracing recomputes its global level filter whenever one comes
    /// or goes: done from two threads at once, that race can leave a test's
    /// subscriber filtered off, and its captured log empty.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Captures everything logged while `f` runs.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(data);
                Ok(data.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        let out = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        (out, text)
    }

    #[test]
    fn first_start_generates_a_private_key_and_logs_only_its_path() {
        let _serial = serial();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sessions");
        let ((key, source), log) = logged(|| ApiKey::resolve(None, None, &dir).unwrap());

        let path = dir.join(GENERATED_FILE);
        assert_eq!(source, KeySource::Generated(path.clone()));
        assert_eq!(key.expose().len(), 64);
        assert!(key.expose().bytes().all(|b| b.is_ascii_hexdigit()));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), key.expose());

        assert!(log.contains(&path.display().to_string()), "{log}");
        assert!(!log.contains(key.expose()), "key leaked into the log");
        assert!(!format!("{key:?}").contains(key.expose()));
    }

    #[test]
    fn later_starts_reuse_the_generated_key() {
        let _serial = serial();
        let tmp = tempfile::tempdir().unwrap();
        let (first, _) = ApiKey::resolve(None, None, tmp.path()).unwrap();
        let ((second, source), log) = logged(|| ApiKey::resolve(None, None, tmp.path()).unwrap());
        assert_eq!(first.expose(), second.expose());
        assert_eq!(source, KeySource::File(tmp.path().join(GENERATED_FILE)));
        assert!(!log.contains(first.expose()));
        // Two installs never share a key.
        let other = tempfile::tempdir().unwrap();
        let (third, _) = ApiKey::resolve(None, None, other.path()).unwrap();
        assert_ne!(first.expose(), third.expose());
    }

    #[test]
    fn the_environment_wins_then_the_key_file() {
        let _serial = serial();
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("key");
        std::fs::write(&file, "  from-file\n").unwrap();

        let ((key, source), log) =
            logged(|| ApiKey::resolve(Some("from-env".into()), Some(&file), tmp.path()).unwrap());
        assert_eq!((key.expose(), source), ("from-env", KeySource::Env));
        assert!(!log.contains("from-env"));

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let ((key, source), log) =
            logged(|| ApiKey::resolve(None, Some(&file), tmp.path()).unwrap());
        assert_eq!(
            (key.expose(), source),
            ("from-file", KeySource::File(file.clone()))
        );
        assert!(!log.contains("from-file"));
        assert!(
            !log.contains("WARN"),
            "a private file is not warned about: {log}"
        );
        assert!(!tmp.path().join(GENERATED_FILE).exists());
    }

    #[test]
    fn a_key_file_others_can_read_is_warned_about_by_path_and_mode() {
        let _serial = serial();
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("key");
        std::fs::write(&file, "the-key-itself\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let (_, log) = logged(|| ApiKey::resolve(None, Some(&file), tmp.path()).unwrap());
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warnings.len(), 1, "{log}");
        assert!(
            warnings[0].contains(&format!(
                "API key file {} is readable by other users (mode 640); chmod 600 it",
                file.display()
            )),
            "{log}"
        );
        assert!(!log.contains("the-key-itself"), "{log}");
    }

    #[test]
    fn empty_or_missing_configured_keys_are_errors() {
        let _serial = serial();
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            ApiKey::resolve(Some(" \n".into()), None, tmp.path()),
            Err(ApiKeyError::EmptyEnv)
        ));
        let empty = tmp.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert!(matches!(
            ApiKey::resolve(None, Some(&empty), tmp.path()),
            Err(ApiKeyError::EmptyFile { .. })
        ));
        let missing = tmp.path().join("missing");
        assert!(matches!(
            ApiKey::resolve(None, Some(&missing), tmp.path()),
            Err(ApiKeyError::Read { .. })
        ));
    }

    #[test]
    fn matching_is_exact() {
        let _serial = serial();
        let key = ApiKey::new("secret");
        assert!(key.matches(b"secret"));
        for wrong in [&b""[..], b"secre", b"secret ", b"Secret", b"secretsecret"] {
            assert!(!key.matches(wrong));
        }
    }
}
