//! Group commit in the receivers: deliveries that arrive together are stored in one
//! transaction, each answered 200 only once its batch committed; a batch the store
//! cannot write answers every delivery in it 503 and stores none of them; a full
//! queue answers 503 with `Retry-After` at once; a batch that planned work wakes the
//! engine. The store here is the bare one (not metered), so its own `commit_batch`
//! runs, on SQLite and on PostgreSQL.

use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use shipledger_core::clock::{Clock, SystemClock};
use shipledger_server::{ConnectionHooks, Server};
use shipledger_store::Store;
use sqlx::Connection as _;
use tokio::sync::{Notify, watch};

use crate::helpers::{Backend, TestDb};
use crate::{CONNECTION, TOKEN, hooks, on_both_stores, ship_notify};

const BASE: &str = "https://ssapi.shipstation.com";
/// A brand configured in the receiver but never registered in the store.
const GHOST: &str = "ghost";

/// shipledger's server over a bare store of `backend`, with the intake limits given.
struct Rig {
    url: String,
    /// The receiver's URL for [`GHOST`].
    ghost_url: String,
    store: Arc<dyn Store>,
    db: TestDb,
    backend: Backend,
    http: reqwest::Client,
    _stop: watch::Sender<bool>,
}

impl Rig {
    async fn start(backend: Backend, queue: usize, max_batch: usize, wake: Option<Arc<Notify>>) -> Option<Rig> {
        let db = TestDb::new(backend)?;
        let store = shipledger_store::open(&db.url).await.unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        store.ensure_connection(CONNECTION, clock.now()).await.unwrap();
        // A second brand the receiver knows but the store was never told of: every
        // delivery to it fails in the store, every time.
        let ghost = ConnectionHooks { name: GHOST.into(), ..hooks(BASE) };
        let mut server = Server::bind("127.0.0.1:0".parse().unwrap(), store.clone(), clock, vec![hooks(BASE), ghost])
            .await
            .unwrap()
            .intake_limits(queue, max_batch);
        if let Some(wake) = wake {
            server = server.wake_on_intake(wake);
        }
        let url = format!("http://{}/webhooks/shipstation/{CONNECTION}/{TOKEN}", server.local_addr().unwrap());
        let ghost_url = format!("http://{}/webhooks/shipstation/{GHOST}/{TOKEN}", server.local_addr().unwrap());
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(server.run(stop_rx));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        Some(Rig { url, ghost_url, store, db, backend, http, _stop: stop })
    }

    /// Deliver batch `n`'s SHIP_NOTIFY: the status and the `Retry-After` header.
    async fn deliver(&self, n: usize) -> (u16, Option<String>) {
        deliver(&self.http, &self.url, n).await
    }

    /// Deliver every one of `ns` at once, each answer with its delivery.
    async fn deliver_all(&self, ns: impl IntoIterator<Item = usize>) -> Vec<(usize, u16, Option<String>)> {
        let sent: Vec<_> = ns
            .into_iter()
            .map(|n| {
                let (http, url) = (self.http.clone(), self.url.clone());
                tokio::spawn(async move {
                    let (status, retry) = deliver(&http, &url, n).await;
                    (n, status, retry)
                })
            })
            .collect();
        let mut answers = Vec::new();
        for s in sent {
            answers.push(s.await.unwrap());
        }
        answers
    }

    async fn stored(&self) -> u64 {
        let counts = self.store.count_jobs(CONNECTION).await.unwrap();
        counts.iter().filter(|(kind, _, _)| kind == "ingest_v1_webhook").map(|(_, _, n)| n).sum()
    }

    async fn received_events(&self) -> usize {
        self.store.timeline(CONNECTION, "webhook", "SHIP_NOTIFY").await.unwrap().len()
    }

    /// Another connection to the store's database, to hold its locks or change its
    /// tables behind the store's back.
    async fn side(&self) -> Side {
        match self.backend {
            Backend::Sqlite => Side::Sqlite(sqlx::SqliteConnection::connect(&self.db.url).await.unwrap()),
            Backend::Postgres => Side::Postgres(sqlx::PgConnection::connect(&self.db.url).await.unwrap()),
        }
    }
}

enum Side {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Side {
    async fn run(&mut self, statement: &str) {
        match self {
            Side::Sqlite(c) => sqlx::raw_sql(statement).execute(c).await.map(|_| ()),
            Side::Postgres(c) => sqlx::raw_sql(statement).execute(c).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// Hold the lock every insert into the inbox needs, until [`Side::release`].
    async fn hold_the_inbox(&mut self) {
        match self {
            Side::Sqlite(_) => self.run("BEGIN IMMEDIATE").await,
            Side::Postgres(_) => self.run("BEGIN; LOCK TABLE jobs IN EXCLUSIVE MODE").await,
        }
    }

    async fn release(&mut self) {
        self.run("ROLLBACK").await;
    }
}

async fn deliver(http: &reqwest::Client, url: &str, n: usize) -> (u16, Option<String>) {
    let body = ship_notify(&format!("{BASE}/shipments?storeID=12&batchId={n}"));
    let answer = http.post(url).header("content-type", "application/json").body(body).send().await.unwrap();
    let retry = answer.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (answer.status().as_u16(), retry)
}

/// Whether `notified` has been signalled, without waiting for it.
async fn signalled(notified: &mut std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(notified.as_mut().poll(cx).is_ready())).await
}

on_both_stores! {
    async fn a_burst_of_deliveries_is_acknowledged_in_full_and_each_stored_once(backend) {
        let Some(rig) = Rig::start(backend, 4096, 64, None).await else { return };
        // 150 labels' webhooks at once, the first 30 of them sent twice by ShipStation.
        let answers = rig.deliver_all((0..150).chain(0..30)).await;
        assert!(answers.iter().all(|(_, status, _)| *status == 200), "{answers:?}");
        assert_eq!(rig.stored().await, 150, "one inbox job per delivery, however often it came");
        assert_eq!(rig.received_events().await, 180, "every delivery is on the webhooks' timeline");
    }

    async fn a_full_intake_queue_answers_503_with_retry_after_at_once_and_stores_nothing_of_those(backend) {
        // Two deliveries wait at most, two are stored per transaction.
        let Some(rig) = Rig::start(backend, 2, 2, None).await else { return };
        let mut side = rig.side().await;
        side.hold_the_inbox().await;

        // While the store is held, ten deliveries arrive together: the committer holds
        // at most two, the queue two more; the rest are turned away at once.
        let (http, url) = (rig.http.clone(), rig.url.clone());
        let (tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
        for n in 0..10 {
            let (http, url, tx) = (http.clone(), url.clone(), tx.clone());
            tokio::spawn(async move {
                let _ = tx.send((n, deliver(&http, &url, n).await));
            });
        }
        drop(tx);
        let mut busy = Vec::new();
        while busy.len() < 6 {
            let (n, (status, retry)) = tokio::time::timeout(Duration::from_secs(20), answers.recv())
                .await
                .expect("a full queue answers at once, while the store is still held")
                .expect("ten answers");
            assert_eq!((status, retry.as_deref()), (503, Some("1")), "delivery {n}: only a busy answer comes before the store is free");
            busy.push(n);
        }
        assert_eq!(rig.stored().await, 0);
        side.release().await;

        let mut ok = Vec::new();
        while let Some((n, (status, retry))) = answers.recv().await {
            match (status, retry.as_deref()) {
                (200, None) => ok.push(n),
                (503, Some("1")) => busy.push(n),
                other => panic!("delivery {n} answered {other:?}"),
            }
        }
        assert!((1..=4).contains(&ok.len()), "the committer's two and the queue's two at most: {ok:?}, busy {busy:?}");
        assert_eq!(rig.stored().await, ok.len() as u64, "what was acknowledged is stored, and nothing turned away");

        // ShipStation sends the turned-away ones again after Retry-After.
        for n in &busy {
            assert_eq!(rig.deliver(*n).await, (200, None));
        }
        assert_eq!(rig.stored().await, 10);
    }

    async fn a_batch_the_store_cannot_write_answers_every_delivery_503_and_stores_none(backend) {
        let Some(rig) = Rig::start(backend, 64, 16, None).await else { return };
        let mut side = rig.side().await;
        // The timeline's table is gone: each delivery's job is written, then its event fails.
        side.run("ALTER TABLE events RENAME TO events_away").await;
        let answers = rig.deliver_all(0..8).await;
        for (n, status, retry) in &answers {
            assert_eq!((*status, retry.as_deref()), (503, None), "delivery {n}: a store failure, not a busy queue");
        }
        assert_eq!(rig.stored().await, 0, "no job of a failed batch is kept");

        side.run("ALTER TABLE events_away RENAME TO events").await;
        let answers = rig.deliver_all(0..8).await;
        assert!(answers.iter().all(|(_, status, _)| *status == 200), "{answers:?}");
        assert_eq!(rig.stored().await, 8);
        assert_eq!(rig.received_events().await, 8, "only the deliveries stored are on the timeline");
    }

    async fn a_delivery_the_store_refuses_every_time_fails_alone_and_the_rest_of_its_batch_is_stored(backend) {
        let Some(rig) = Rig::start(backend, 64, 64, None).await else { return };
        // Hold the inbox: the committer waits on its first batch while the rest queue
        // up behind it, the bad delivery among them, and go in the next batch together.
        let mut side = rig.side().await;
        side.hold_the_inbox().await;
        let send = |url: &String, n: usize| {
            let (http, url) = (rig.http.clone(), url.clone());
            tokio::spawn(async move { deliver(&http, &url, n).await })
        };
        let mut good: Vec<_> = (0..4).map(|n| send(&rig.url, n)).collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let poisoned = send(&rig.ghost_url, 99);
        good.extend((4..8).map(|n| send(&rig.url, n)));
        tokio::time::sleep(Duration::from_millis(300)).await;
        side.release().await;
        for answer in good {
            assert_eq!(answer.await.unwrap(), (200, None), "a good delivery is stored although its batch held a bad one");
        }
        assert_eq!(poisoned.await.unwrap(), (503, None), "the delivery the store refuses is answered 503, so ShipStation sends it again");
        assert_eq!(rig.stored().await, 8);
        assert_eq!(rig.received_events().await, 8);
    }

    async fn a_stored_delivery_wakes_the_engine_before_it_is_answered_and_nothing_else_does(backend) {
        let wake = Arc::new(Notify::new());
        let Some(rig) = Rig::start(backend, 64, 16, Some(wake.clone())).await else { return };

        let mut notified = pin!(wake.notified());
        notified.as_mut().enable();
        assert_eq!(rig.deliver(1).await.0, 200);
        assert!(signalled(&mut notified).await, "the lanes were woken by the time the delivery was acknowledged");

        let mut notified = pin!(wake.notified());
        notified.as_mut().enable();
        assert_eq!(rig.deliver(1).await.0, 200, "sent again");
        let wrong = rig.http.post(rig.url.replace(TOKEN, "guessed")).body(ship_notify(BASE)).send().await.unwrap();
        assert_eq!(wrong.status().as_u16(), 404);
        assert!(!signalled(&mut notified).await, "a duplicate or a refusal plans nothing: no wake-up");

        assert_eq!(rig.deliver(2).await.0, 200);
        assert!(signalled(&mut notified).await);
    }
}
