//! `--state PATH`: the world as one JSON file, written atomically (a temporary file
//! then a rename) a moment after changes and on shutdown, and read back at start.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::state::World;
use crate::{SandboxError, Shared};

pub fn load(path: &Path) -> Result<Option<World>, SandboxError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SandboxError::State { path: path.to_path_buf(), detail: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SandboxError::State { path: path.to_path_buf(), detail: e.to_string() }),
    }
}

pub fn save(shared: &Shared, path: &Path) -> std::io::Result<()> {
    let bytes = shared.read_world(|w| serde_json::to_vec(w))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Write the state file at most every 200 ms while the world changes.
pub async fn run(shared: Arc<Shared>, path: std::path::PathBuf, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shared.dirty.notified() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Err(e) = save(&shared, &path) {
            tracing::warn!(path = %path.display(), error = %e, "could not write the sandbox state file");
        }
    }
}
