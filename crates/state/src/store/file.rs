//! The directory backend: one file per key, `<etag>\n<data>`.
//!
//! Every write takes an exclusive OS file lock on the key's lock file, checks the version, then
//! writes a temporary file and renames it over the key: readers see the old or the new value,
//! never a torn one, and concurrent writers in any process on this machine serialise.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;

use super::{StateError, StateStore, Versioned};
use crate::keys::check as check_key;

#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A version tag unique across processes: time, process id and a counter.
fn new_etag() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{nanos:x}-{:x}-{:x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn unavailable(path: &Path, e: &io::Error) -> StateError {
    StateError::Unavailable(format!("{}: {e}", path.display()))
}

impl FileStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StateError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        tokio::task::spawn_blocking(f).await.map_err(|e| StateError::Unavailable(format!("state task failed: {e}")))?
    }
}

fn read(path: &Path) -> Result<Option<Versioned>, StateError> {
    match fs::read(path) {
        Ok(bytes) => {
            let split = bytes.iter().position(|b| *b == b'\n').unwrap_or(bytes.len());
            let etag = String::from_utf8_lossy(&bytes[..split]).into_owned();
            let data = bytes.get(split + 1..).unwrap_or_default().to_vec();
            Ok(Some(Versioned { data, etag }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(unavailable(path, &e)),
    }
}

/// Holds the key's exclusive lock until dropped.
fn lock(path: &Path) -> Result<File, StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| unavailable(dir, &e))?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    let lock_path = dir.join(format!(".{}", name.to_string_lossy()));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| unavailable(&lock_path, &e))?;
    file.lock().map_err(|e| unavailable(&lock_path, &e))?;
    Ok(file)
}

fn write(path: &Path, data: &[u8]) -> Result<String, StateError> {
    let etag = new_etag();
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.{etag}.tmp", path.file_name().unwrap_or_default().to_string_lossy()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(etag.as_bytes())?;
        f.write_all(b"\n")?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename itself durable: after a power cut a sent record must not revert.
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(unavailable(path, &e));
    }
    Ok(etag)
}

#[async_trait]
impl StateStore for FileStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        let path = self.path(key)?;
        self.blocking(move || read(&path)).await
    }

    async fn create(&self, key: &str, data: &[u8]) -> Result<Option<String>, StateError> {
        let path = self.path(key)?;
        let data = data.to_vec();
        self.blocking(move || {
            let _lock = lock(&path)?;
            if path.exists() {
                return Ok(None);
            }
            write(&path, &data).map(Some)
        })
        .await
    }

    async fn replace(&self, key: &str, data: &[u8], etag: &str) -> Result<Option<String>, StateError> {
        let path = self.path(key)?;
        let (data, etag) = (data.to_vec(), etag.to_owned());
        self.blocking(move || {
            let _lock = lock(&path)?;
            match read(&path)? {
                Some(current) if current.etag == etag => write(&path, &data).map(Some),
                _ => Ok(None),
            }
        })
        .await
    }

    async fn delete(&self, key: &str, etag: Option<&str>) -> Result<bool, StateError> {
        let path = self.path(key)?;
        let etag = etag.map(str::to_owned);
        self.blocking(move || {
            let _lock = lock(&path)?;
            match read(&path)? {
                Some(current) if etag.as_deref().is_none_or(|e| e == current.etag) => {
                    fs::remove_file(&path).map_err(|e| unavailable(&path, &e))?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        self.blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let entries = match fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(unavailable(&dir, &e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| unavailable(&dir, &e))?;
                    let path = entry.path();
                    let name = entry.file_name();
                    if name.to_string_lossy().starts_with('.') {
                        continue;
                    }
                    let Ok(rel) = path.strip_prefix(&root) else { continue };
                    let key = rel.to_string_lossy().replace('\\', "/");
                    if path.is_dir() {
                        // Descend only where keys under this directory can match.
                        if prefix.starts_with(&format!("{key}/")) || key.starts_with(&prefix) || prefix.is_empty() {
                            stack.push(path);
                        }
                    } else if key.starts_with(&prefix) {
                        out.push(key);
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
}
