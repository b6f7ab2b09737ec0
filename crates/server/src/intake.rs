//! Group commit of webhook deliveries: the receivers hand each delivery's [`Change`]
//! to one committer task, which stores whatever has queued up meanwhile (up to
//! [`MAX_BATCH`]) in one transaction ([`Store::commit_batch`]) and then answers every
//! delivery of the batch.
//!
//! - **Acknowledged means committed.** A receiver answers 200 only once its
//!   delivery's batch has committed; the durability is the store's (on SQLite its
//!   `synchronous` setting, see `shipledger_store::sqlite`).
//! - **All or nothing.** A batch that fails fails every delivery in it (503, so
//!   ShipStation sends each again) and writes none of them. Deliveries are keyed by
//!   their body's hash, so one sent again is stored once, in a batch or not.
//! - **Bounded.** At most [`QUEUE`] deliveries wait for the committer; one arriving
//!   at a full queue is answered 503 with `Retry-After` at once instead of waiting in
//!   memory without bound.
//! - **Wakes the engine.** After a batch that planned a job the committer signals the
//!   waker the server was given ([`crate::Server::wake_on_intake`]), so an idle lane
//!   takes the new work at once instead of at its next idle check.
//!
//! While one batch commits the next one gathers, so under load the batches grow by
//! themselves and a lone delivery is stored as soon as it arrives (no timer waits
//! for company).

use std::sync::Arc;

use shipledger_store::{Change, CommitOutcome, Store};
use tokio::sync::{Notify, mpsc, oneshot};

/// The most deliveries one transaction stores.
pub const MAX_BATCH: usize = 256;
/// The most deliveries waiting for the committer; more are answered 503.
pub const QUEUE: usize = 2048;

/// One delivery waiting to be stored, and where its answer goes.
pub(crate) struct Delivery {
    change: Change,
    answer: oneshot::Sender<Result<CommitOutcome, String>>,
}

/// Why a delivery was not stored.
#[derive(Debug)]
pub(crate) enum NotStored {
    /// The queue is full: send it again shortly.
    Busy,
    /// Its batch failed (or the committer is gone): nothing of it was written.
    Failed(String),
}

/// The receivers' side of the committer.
#[derive(Clone)]
pub(crate) struct Inbox {
    queue: mpsc::Sender<Delivery>,
}

impl Inbox {
    /// A committer's queue of `capacity` deliveries: the inbox the receivers send to,
    /// and the receiving end for [`commit_loop`].
    pub(crate) fn new(capacity: usize) -> (Inbox, mpsc::Receiver<Delivery>) {
        let (queue, deliveries) = mpsc::channel(capacity.max(1));
        (Inbox { queue }, deliveries)
    }

    /// Store `change` with the next batch; its outcome once the batch committed.
    pub(crate) async fn store(&self, change: Change) -> Result<CommitOutcome, NotStored> {
        let (answer, answered) = oneshot::channel();
        match self.queue.try_send(Delivery { change, answer }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => return Err(NotStored::Busy),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(NotStored::Failed("the server is stopping; nothing is stored any more".into()));
            }
        }
        match answered.await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(NotStored::Failed(e)),
            Err(_) => Err(NotStored::Failed("the committer stopped before it stored the delivery".into())),
        }
    }
}

/// Store what the receivers queue, batch after batch, until every [`Inbox`] is gone
/// (the server stopped) and the queue is empty. After a batch that planned a job,
/// `wake` is signalled (`notify_waiters`).
pub(crate) async fn commit_loop(
    store: Arc<dyn Store>,
    mut deliveries: mpsc::Receiver<Delivery>,
    max_batch: usize,
    wake: Option<Arc<Notify>>,
) {
    let max_batch = max_batch.max(1);
    let mut batch = Vec::with_capacity(max_batch);
    while deliveries.recv_many(&mut batch, max_batch).await > 0 {
        let (changes, answers): (Vec<Change>, Vec<_>) = batch.drain(..).map(|d| (d.change, d.answer)).unzip();
        let size = changes.len();
        let outcomes: Vec<Result<CommitOutcome, String>> = match store.commit_batch(&changes).await {
            Ok(outcomes) => {
                tracing::debug!(deliveries = size, "stored a batch of webhook deliveries");
                outcomes.into_iter().map(Ok).collect()
            }
            // A batch is one transaction for speed only: when it fails, its deliveries
            // are stored one by one, so one that the store refuses every time (say a
            // body PostgreSQL will not hold) fails alone, not the others with it, burst
            // after burst.
            Err(e) if size > 1 => {
                tracing::warn!(deliveries = size, error = %e, "a batch of webhook deliveries failed; storing them one by one");
                let mut each = Vec::with_capacity(size);
                for change in changes {
                    each.push(store.commit(change).await.map_err(|e| {
                        tracing::error!(error = %e, "could not store a webhook delivery");
                        e.to_string()
                    }));
                }
                each
            }
            Err(e) => {
                tracing::error!(error = %e, "could not store a webhook delivery");
                vec![Err(e.to_string())]
            }
        };
        if outcomes.iter().any(|o| o.as_ref().is_ok_and(|o| !o.jobs_planned.is_empty()))
            && let Some(wake) = &wake
        {
            wake.notify_waiters();
        }
        for (answer, outcome) in answers.into_iter().zip(outcomes) {
            // A sender that hung up meanwhile is told nothing; what was stored stays.
            let _ = answer.send(outcome);
        }
    }
}
