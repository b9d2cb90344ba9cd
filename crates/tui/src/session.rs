//! The stored session: one JSON file in the config directory, 0600, written atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What `finance login` keeps between runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub server: String,
    pub email: String,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// The session a login or registration on `server` answered with.
    pub fn from_auth(server: &str, auth: &finance_shared::AuthResponse) -> Self {
        let lifetime = chrono::Duration::seconds(i64::try_from(auth.expires_in).unwrap_or(0));
        Session {
            server: server.to_owned(),
            email: auth.user.email.clone(),
            token: auth.access_token.clone(),
            expires_at: Utc::now() + lifetime,
        }
    }

    /// Whether the token has not expired yet.
    pub fn is_valid(&self) -> bool {
        self.expires_at > Utc::now()
    }
}

/// Why the session file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session file {path} is unreadable ({reason}); log in again")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write session file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The session file's location.
#[derive(Clone, Debug)]
pub struct SessionStore {
    dir: PathBuf,
}

impl SessionStore {
    /// `dir`, or the platform config directory (`~/.config/finance` on Linux).
    pub fn new(dir: Option<PathBuf>) -> Self {
        let dir = dir
            .or_else(|| {
                directories::ProjectDirs::from("", "", "finance")
                    .map(|d| d.config_dir().to_path_buf())
            })
            .unwrap_or_else(|| PathBuf::from(".finance"));
        SessionStore { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("session.json")
    }

    /// The stored session; `Ok(None)` when there is none.
    pub fn load(&self) -> Result<Option<Session>, SessionError> {
        let path = self.path();
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| SessionError::Corrupt {
                        path,
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SessionError::Corrupt {
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// Writes the session: directory 0700, file 0600, via a temporary file and a rename.
    pub fn save(&self, session: &Session) -> Result<(), SessionError> {
        let path = self.path();
        let write = || -> std::io::Result<()> {
            create_private_dir(&self.dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            // NamedTempFile is created 0600 on Unix.
            tmp.write_all(&serde_json::to_vec_pretty(session)?)?;
            tmp.as_file().sync_all()?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|source| SessionError::Write {
            path: self.path(),
            source,
        })
    }

    /// Deletes the session file, if any.
    pub fn delete(&self) -> Result<(), SessionError> {
        match std::fs::remove_file(self.path()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SessionError::Write {
                path: self.path(),
                source,
            }),
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn session() -> Session {
        Session {
            server: "http://127.0.0.1:8080".into(),
            email: "ann@example.com".into(),
            token: "t0k3n".into(),
            expires_at: Utc::now() + chrono::Duration::hours(1),
        }
    }

    #[test]
    fn saves_privately_and_loads_back() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        let store = SessionStore::new(Some(root.path().join("cfg")));
        assert_eq!(store.load()?, None);
        let saved = session();
        store.save(&saved)?;
        assert_eq!(store.load()?, Some(saved));
        let file_mode = std::fs::metadata(store.path())?.permissions().mode() & 0o777;
        let dir_mode = std::fs::metadata(root.path().join("cfg"))?
            .permissions()
            .mode()
            & 0o777;
        assert_eq!((file_mode, dir_mode), (0o600, 0o700));
        store.delete()?;
        assert_eq!(store.load()?, None);
        Ok(())
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_panic() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        let store = SessionStore::new(Some(root.path().to_path_buf()));
        std::fs::write(store.path(), b"{not json")?;
        assert!(matches!(store.load(), Err(SessionError::Corrupt { .. })));
        Ok(())
    }
}
