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

/// A sandbox at work in the background: its HTTP server and its helper tasks (the
/// state saver, webhook delivery, the simulator), stopped together. Dropping it
/// signals the stop; [`Running::stop`] also waits for them to finish.
pub(crate) struct Running {
    stop: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub(crate) fn new() -> Running {
        Running { stop: watch::channel(false).0, server: None, tasks: Vec::new() }
    }

    /// What a helper task watches to know when to stop.
    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    pub(crate) fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }

    /// Save `save`'s world to `path` a moment after each change, until stopped.
    pub(crate) fn keep_saved<S: Send + Sync + 'static>(
        &mut self,
        owner: std::sync::Arc<S>,
        dirty: fn(&S) -> &Notify,
        save: fn(&S, &Path) -> std::io::Result<()>,
        path: std::path::PathBuf,
    ) {
        let stop = self.stop_signal();
        self.spawn(async move { keep_saved(dirty(&owner), || save(&owner, &path), &path, stop).await });
    }

    /// Serve `app` until stopped, finishing the requests in flight.
    pub(crate) fn serve(&mut self, listener: tokio::net::TcpListener, app: axum::Router) {
        let mut stop = self.stop_signal();
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                })
                .await;
        }));
    }

    /// Stop the server and every task, and wait for them.
    pub(crate) async fn stop(&mut self) {
        self.stop.send_replace(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
