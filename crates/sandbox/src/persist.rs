//! `--state PATH` for both sandboxes: the whole world as one JSON file, written
//! atomically (a temporary file, then a rename) a moment after changes and on
//! shutdown, and read back at start.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};

/// Read a state file; `Ok(None)` when there is none yet.
pub(crate) fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Write a state file atomically.
pub(crate) fn write<T: Serialize>(value: &T, path: &Path) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Call `save` at most every 200 ms while `dirty` is notified, until stopped.
pub(crate) async fn keep_saved(
    dirty: &Notify,
    save: impl Fn() -> std::io::Result<()>,
    path: &Path,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = dirty.notified() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Err(e) = save() {
            tracing::warn!(path = %path.display(), error = %e, "could not write the sandbox state file");
        }
    }
}
