//! The server's stories: shipledger's HTTP surface on a free port, over a SQLite store
//! in a temporary directory (the receivers' refusals on PostgreSQL as well, when
//! `TEST_DATABASE_URL` is set), with the sandbox ShipStation sending real deliveries.

// The engine's store fixtures and in-memory ERP, for the stories that run on both
// stores and hand a delivery on to the engine.
#[allow(dead_code, unused_imports)]
#[path = "../../../engine/tests/it/helpers.rs"]
mod helpers;
mod api;
mod api_records;
mod intake;
mod metrics;
mod redirects;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use shipledger_core::clock::{Clock, ManualClock, SystemClock};
use shipledger_core::exception::{ExceptionKind, Owner};
use shipledger_engine::config::Config;
use shipledger_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use shipledger_server::{ConnectionHooks, Server, hooks_from_config};
use shipledger_store::{ExceptionFilter, ExceptionRecord, ExceptionState, Job, JobFilter, JobKind, Store};
use tokio::sync::watch;

use crate::helpers::{Backend, TestDb};

const CONNECTION: &str = "acme";
const TOKEN: &str = "hook-token-5f1c9a7e";

/// shipledger's server on a free port with its own store.
struct Shipledger {
    url: String,
    addr: SocketAddr,
    store: Arc<dyn Store>,
    /// The server's clock (real time unless the story gave it a manual one).
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    _stop: watch::Sender<bool>,
    _db: TestDb,
}

/// Stamp a story once per store backend: `on_both_stores! { async fn name(backend) { ... } }`;
/// `Shipledger::on(backend, ..)` is `None` on PostgreSQL when it is not configured.
macro_rules! on_both_stores {
    ($(async fn $name:ident($backend:ident) $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let $backend = $crate::helpers::Backend::Sqlite;
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let $backend = $crate::helpers::Backend::Postgres;
                    $body
                }
            )*
        }
    };
}
pub(crate) use on_both_stores;

impl Shipledger {
    async fn start(hooks: Vec<ConnectionHooks>) -> Shipledger {
        Shipledger::on(Backend::Sqlite, hooks).await.expect("SQLite always runs")
    }

    /// On `backend`'s store; `None` when that is PostgreSQL and it is not configured.
    async fn on(backend: Backend, hooks: Vec<ConnectionHooks>) -> Option<Shipledger> {
        Shipledger::on_clock(backend, hooks, Arc::new(SystemClock)).await
    }

    /// Like [`Shipledger::on`], the receivers reading now from `clock`.
    async fn on_clock(backend: Backend, hooks: Vec<ConnectionHooks>, clock: Arc<dyn Clock>) -> Option<Shipledger> {
        let db = TestDb::new(backend)?;
        // Metered, as `serve` wires it: /metrics shows what the receivers stored.
        let store: Arc<dyn Store> =
            shipledger_engine::metrics::MeteredStore::wrap(shipledger_store::open(&db.url).await.unwrap()).await.unwrap();
        for h in &hooks {
            store.ensure_connection(&h.name, clock.now()).await.unwrap();
        }
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), store.clone(), clock.clone(), hooks).await.unwrap();
        let addr = server.local_addr().unwrap();
        let url = format!("http://{addr}");
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(server.run(stop_rx));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        Some(Shipledger { url, addr, store, clock, http, _stop: stop, _db: db })
    }

    /// A v1 connection whose ShipStation is at `base`.
    async fn v1(base: &str) -> Shipledger {
        Shipledger::start(vec![hooks(base)]).await
    }

    fn v1_url(&self, token: &str) -> String {
        format!("{}/webhooks/shipstation/{CONNECTION}/{token}", self.url)
    }

    fn v2_url(&self) -> String {
        format!("{}/webhooks/shipstation-v2/{CONNECTION}", self.url)
    }

    async fn post(&self, url: &str, body: impl Into<String>) -> u16 {
        self.post_with(url, body, &[]).await
    }

    /// The status and the text of the answer.
    async fn post_text(&self, url: &str, body: impl Into<String>) -> (u16, String) {
        let r = self.http.post(url).header("content-type", "application/json").body(body.into()).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn post_with(&self, url: &str, body: impl Into<String>, headers: &[(&str, &str)]) -> u16 {
        let mut request = self.http.post(url).header("content-type", "application/json").body(body.into());
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.unwrap().status().as_u16()
    }

    async fn jobs(&self, kind: &str) -> Vec<Job> {
        self.store
            .list_jobs(JobFilter {
                connection: Some(CONNECTION.into()),
                kind: Some(JobKind::parse(kind).expect("a job kind")),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
    }

    async fn all_jobs(&self) -> Vec<Job> {
        self.store
            .list_jobs(JobFilter { connection: Some(CONNECTION.into()), limit: 100, ..Default::default() })
            .await
            .unwrap()
    }

    async fn exceptions(&self, kind: ExceptionKind) -> Vec<ExceptionRecord> {
        self.store
            .list_exceptions(ExceptionFilter {
                connection: Some(CONNECTION.into()),
                kind: Some(kind),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
    }
}

fn hooks(base: &str) -> ConnectionHooks {
    ConnectionHooks {
        name: CONNECTION.into(),
        token: Some(TOKEN.into()),
        shipstation_base: base.parse().unwrap(),
        v2_keys: None,
    }
}

fn ship_notify(resource_url: &str) -> String {
    json!({"resource_url": resource_url, "resource_type": "SHIP_NOTIFY"}).to_string()
}

/// A listener that counts the requests it is sent (any method, any path).
async fn counting_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "[]"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

// ---- v1: the token, the durable inbox, the host check

#[tokio::test]
async fn a_wrong_token_an_unknown_connection_or_a_connection_without_token_is_a_404_and_nothing_is_stored() {
    let mut no_token = hooks("https://ssapi.shipstation.com");
    no_token.name = "quiet".into();
    no_token.token = None;
    let sl = Shipledger::start(vec![hooks("https://ssapi.shipstation.com"), no_token]).await;
    let body = ship_notify("https://ssapi.shipstation.com/shipments?storeID=1&batchId=2");

    assert_eq!(sl.post(&sl.v1_url("hook-token-5f1c9a7f"), body.clone()).await, 404);
    assert_eq!(sl.post(&sl.v1_url("hook-token"), body.clone()).await, 404);
    assert_eq!(sl.post(&format!("{}/webhooks/shipstation/nobody/{TOKEN}", sl.url), body.clone()).await, 404);
    assert_eq!(sl.post(&format!("{}/webhooks/shipstation/quiet/{TOKEN}", sl.url), body.clone()).await, 404);

    assert!(sl.all_jobs().await.is_empty());
    let all = sl.store.list_exceptions(ExceptionFilter { limit: 100, ..Default::default() }).await.unwrap();
    assert!(all.is_empty(), "{all:?}");
}

#[tokio::test]
async fn a_delivery_with_the_right_token_is_stored_as_an_inbox_job_that_asks_for_shipment_items() {
    let sl = Shipledger::v1("https://ssapi.shipstation.com").await;
    let body = ship_notify("https://ssapi11.shipstation.com/shipments?storeID=12&batchId=99&includeShipmentItems=False");

    assert_eq!(sl.post(&sl.v1_url(TOKEN), body.clone()).await, 200);

    let jobs = sl.jobs("ingest_v1_webhook").await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = &jobs[0];
    let payload = job.spec.payload();
    assert!(job.idempotency_key.starts_with("v1hook:") && job.idempotency_key.len() == "v1hook:".len() + 64);
    assert_eq!(
        payload["resource_url"],
        json!("https://ssapi11.shipstation.com/shipments?storeID=12&batchId=99&includeShipmentItems=true")
    );
    assert_eq!(payload["resource_type"], json!("SHIP_NOTIFY"));
    let received: Timestamp = payload["received_at"].as_str().unwrap().parse().unwrap();
    assert!(Timestamp::now().duration_since(received) < SignedDuration::from_secs(60));
    let timeline = sl.store.timeline(CONNECTION, "webhook", "SHIP_NOTIFY").await.unwrap();
    assert_eq!(timeline.iter().filter(|e| e.kind == "received").count(), 1);
}

#[tokio::test]
async fn the_same_delivery_twice_is_still_one_job_and_both_answers_are_200() {
    let sl = Shipledger::v1("https://ssapi.shipstation.com").await;
    let body = ship_notify("https://ssapi.shipstation.com/shipments?storeID=12&batchId=7");

    assert_eq!(sl.post(&sl.v1_url(TOKEN), body.clone()).await, 200);
    assert_eq!(sl.post(&sl.v1_url(TOKEN), body.clone()).await, 200);
    assert_eq!(sl.jobs("ingest_v1_webhook").await.len(), 1);

    let other = ship_notify("https://ssapi.shipstation.com/shipments?storeID=12&batchId=8");
    assert_eq!(sl.post(&sl.v1_url(TOKEN), other).await, 200);
    assert_eq!(sl.jobs("ingest_v1_webhook").await.len(), 2);
}

#[tokio::test]
async fn a_body_that_is_not_a_v1_webhook_is_a_400_and_nothing_is_stored() {
    let sl = Shipledger::v1("https://ssapi.shipstation.com").await;
    assert_eq!(sl.post(&sl.v1_url(TOKEN), "not json").await, 400);
    assert_eq!(sl.post(&sl.v1_url(TOKEN), r#"{"resource_type":"SHIP_NOTIFY"}"#).await, 400);
    assert_eq!(sl.post(&sl.v1_url(TOKEN), ship_notify("not a url")).await, 400);
    assert!(sl.all_jobs().await.is_empty());
}

/// Send the head of a POST and then `body` (maybe less than the head announces), and
/// read the answer's status: what a receiver says before, or without, reading the rest.
async fn raw_post(addr: SocketAddr, path: &str, head: &[(&str, String)], body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n");
    for (name, value) in head {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to POST {path} within 5 s: the receiver is waiting for the body");
    let answer = String::from_utf8_lossy(&answer);
    answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

/// A v1 delivery pointing at `base` with a query making it exactly `len` characters.
fn resource_url_of_len(base: &str, path: &str, len: usize) -> String {
    let head = format!("{base}{path}?importBatch=");
    assert!(len > head.len());
    format!("{head}{}", "7".repeat(len - head.len()))
}

on_both_stores! {
    async fn a_resource_url_on_another_host_is_refused_never_fetched_and_raised_to_the_admin(backend) {
        let (configured, configured_hits) = counting_listener().await;
        let (foreign, foreign_hits) = counting_listener().await;
        let Some(sl) = Shipledger::on(backend, vec![hooks(&format!("http://{configured}"))]).await else { return };

        let probe = format!("http://{foreign}/shipments?storeID=1&batchId=2");
        assert_eq!(sl.post(&sl.v1_url(TOKEN), ship_notify(&probe)).await, 400);
        assert_eq!(sl.post(&sl.v1_url(TOKEN), ship_notify("https://evil.example/shipments")).await, 400);
        // Twice: the same open exception, seen twice.
        assert_eq!(sl.post(&sl.v1_url(TOKEN), ship_notify(&probe)).await, 400);

        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(foreign_hits.load(Ordering::SeqCst), 0, "the foreign host was never contacted");
        assert_eq!(configured_hits.load(Ordering::SeqCst), 0, "the receiver fetches nothing itself");
        assert!(sl.all_jobs().await.is_empty());

        let exceptions = sl.exceptions(ExceptionKind::WebhookForeignHost).await;
        assert_eq!(exceptions.len(), 2, "{exceptions:?}");
        let e = exceptions.iter().find(|e| e.record_id == foreign.to_string()).expect("one names the probed host");
        assert_eq!((e.owner, e.state, e.record_type.as_str()), (Owner::Admin, ExceptionState::Open, "webhook"));
        assert_eq!(e.occurrences, 2);
        assert_eq!(e.detail["resource_url"], json!(probe));
        assert_eq!(e.detail["resource_type"], json!("SHIP_NOTIFY"));
        assert_eq!(e.detail["reason"], json!("port"), "same address, another port");
        let message = e.detail["message"].as_str().unwrap();
        assert!(message.contains("nothing was fetched") && message.contains("probing"), "{message}");
        assert!(message.contains("its port is not the configured API's port"), "{message}");
        let evil = exceptions.iter().find(|e| e.record_id == "evil.example").expect("one names evil.example");
        assert_eq!(evil.detail["reason"], json!("scheme"), "https where the API is http");
    }

    async fn the_foreign_host_exception_names_each_reason_and_keeps_the_latest_fifty_distinct_urls(backend) {
        let base = "https://ssapi.shipstation.com";
        let Some(sl) = Shipledger::on(backend, vec![hooks(base)]).await else { return };

        for (url, host, reason) in [
            ("http://ssapi.shipstation.com/shipments?batchId=1", "ssapi.shipstation.com", "scheme"),
            ("https://ops:hunter2@ssapi.shipstation.com/shipments?batchId=1", "ssapi.shipstation.com", "userinfo"),
            ("https://ssapi.shipstation.com:8443/shipments?batchId=1", "ssapi.shipstation.com:8443", "port"),
        ] {
            let (status, answer) = sl.post_text(&sl.v1_url(TOKEN), ship_notify(url)).await;
            assert_eq!(status, 400, "{url}");
            assert!(answer.contains(reason), "{url}: {answer}");
            let found = sl.exceptions(ExceptionKind::WebhookForeignHost).await;
            let e = found.iter().find(|e| e.record_id == host).unwrap_or_else(|| panic!("{host}: {found:?}"));
            assert_eq!(e.detail["reason"], json!(reason), "{url}: {}", e.detail);
        }
        let same_host = sl.exceptions(ExceptionKind::WebhookForeignHost).await.into_iter().find(|e| e.record_id == "ssapi.shipstation.com").unwrap();
        assert_eq!(same_host.detail["reasons"], json!(["scheme", "userinfo"]));
        assert_eq!(same_host.detail["offending_urls"].as_array().unwrap().len(), 2);
        let all = sl.exceptions(ExceptionKind::WebhookForeignHost).await;
        assert!(all.iter().all(|e| !e.detail.to_string().contains("hunter2")), "a password is never kept: {all:?}");

        // Sixty probes of one host, and one of them again: one exception, the latest fifty URLs.
        let probe = |n: usize| format!("https://evil.example/shipments?batchId={n}");
        for n in 1..=60 {
            assert_eq!(sl.post(&sl.v1_url(TOKEN), ship_notify(&probe(n))).await, 400);
        }
        assert_eq!(sl.post(&sl.v1_url(TOKEN), ship_notify(&probe(20))).await, 400);
        let e = sl.exceptions(ExceptionKind::WebhookForeignHost).await.into_iter().find(|e| e.record_id == "evil.example").unwrap();
        assert_eq!(e.occurrences, 61);
        let urls: Vec<&str> = e.detail["offending_urls"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
        assert_eq!(urls.len(), 50, "{urls:?}");
        assert_eq!(urls.first().copied(), Some(probe(11).as_str()), "the oldest ones dropped");
        assert_eq!(urls.last().copied(), Some(probe(20).as_str()), "a URL seen again moves to the end");
        assert_eq!(urls.iter().filter(|u| **u == probe(20)).count(), 1, "each URL once");
        assert_eq!(e.detail["reasons"], json!(["host"]));
        // Every refusal is on the timeline.
        let refused = sl.store.timeline(CONNECTION, "webhook", "evil.example").await.unwrap();
        assert_eq!(refused.iter().filter(|ev| ev.kind == "refused").count(), 61);
    }

    async fn a_wrong_token_or_an_unknown_connection_is_refused_without_reading_the_body(backend) {
        let Some(sl) = Shipledger::on(backend, vec![hooks("https://ssapi.shipstation.com")]).await else { return };
        // Ten megabytes announced, none sent: only an answer that does not wait for them arrives.
        let ten_mb = vec![("content-length", (10 * 1024 * 1024).to_string())];
        assert_eq!(raw_post(sl.addr, &format!("/webhooks/shipstation/{CONNECTION}/wrong-token"), &ten_mb, b"").await, 404);
        assert_eq!(raw_post(sl.addr, &format!("/webhooks/shipstation/nobody/{TOKEN}"), &ten_mb, b"").await, 404);
        assert_eq!(raw_post(sl.addr, &format!("/webhooks/shipstation-v2/{CONNECTION}"), &ten_mb, b"").await, 404);
        // The right token, but more than 1 MiB announced: 413 before any of it is read.
        assert_eq!(raw_post(sl.addr, &format!("/webhooks/shipstation/{CONNECTION}/{TOKEN}"), &ten_mb, b"").await, 413);

        assert!(sl.all_jobs().await.is_empty());
        let all = sl.store.list_exceptions(ExceptionFilter { limit: 100, ..Default::default() }).await.unwrap();
        assert!(all.is_empty(), "{all:?}");
    }

    async fn a_body_over_one_mebibyte_is_refused_with_413_and_nothing_is_stored(backend) {
        let Some(sl) = Shipledger::on(backend, vec![hooks("https://ssapi.shipstation.com")]).await else { return };
        let delivery = ship_notify("https://ssapi.shipstation.com/shipments?storeID=1&batchId=2");
        let padded = |len: usize| format!("{delivery}{}", " ".repeat(len - delivery.len()));

        // Streamed without a length: refused once the 1,048,577th byte arrives.
        let over = padded(shipledger_server::MAX_WEBHOOK_BODY + 1);
        let chunked = [("transfer-encoding", "chunked".to_string())];
        let chunk = [format!("{:x}\r\n", over.len()).as_bytes(), over.as_bytes()].concat();
        assert_eq!(raw_post(sl.addr, &format!("/webhooks/shipstation/{CONNECTION}/{TOKEN}"), &chunked, &chunk).await, 413);
        let (status, answer) = sl.post_text(&sl.v1_url(TOKEN), padded(2 * 1024 * 1024)).await;
        assert_eq!(status, 413);
        assert!(answer.contains("1 MiB") && answer.contains("nothing stored"), "{answer}");
        assert!(sl.all_jobs().await.is_empty(), "nothing stored, so nothing to retry");

        // Exactly 1 MiB is still a delivery.
        assert_eq!(sl.post(&sl.v1_url(TOKEN), padded(shipledger_server::MAX_WEBHOOK_BODY)).await, 200);
        assert_eq!(sl.jobs("ingest_v1_webhook").await.len(), 1);
    }

    async fn a_resource_url_over_2048_characters_is_refused_and_nothing_is_stored(backend) {
        let base = "https://ssapi.shipstation.com";
        let Some(sl) = Shipledger::on(backend, vec![hooks(base)]).await else { return };

        let (status, answer) = sl.post_text(&sl.v1_url(TOKEN), ship_notify(&resource_url_of_len(base, "/orders", 2049))).await;
        assert_eq!(status, 400);
        assert!(answer.contains("2049 characters") && answer.contains("at most 2048"), "{answer}");
        // A megabyte-long URL, and one of 1.5 MB, which no longer fits in a webhook body.
        let huge = resource_url_of_len(base, "/shipments", 1_000_000);
        assert_eq!(sl.post(&sl.v1_url(TOKEN), ship_notify(&huge)).await, 400);
        let huger = resource_url_of_len(base, "/shipments", 1_500_000);
        assert_eq!(sl.post(&sl.v1_url(TOKEN), ship_notify(&huger)).await, 413);
        // Short enough as sent, too long once includeShipmentItems=true is added.
        assert_eq!(sl.post(&sl.v1_url(TOKEN), ship_notify(&resource_url_of_len(base, "/shipments", 2040))).await, 400);
        assert!(sl.all_jobs().await.is_empty(), "nothing stored, so nothing to retry");
        assert!(sl.store.list_exceptions(ExceptionFilter { limit: 10, ..Default::default() }).await.unwrap().is_empty());

        assert_eq!(sl.post(&sl.v1_url(TOKEN), ship_notify(&resource_url_of_len(base, "/orders", 2048))).await, 200);
        assert_eq!(sl.jobs("ingest_v1_webhook").await.len(), 1);
    }
}

// ---- with the sandbox ShipStation: real deliveries

struct TestSandbox {
    handle: SandboxHandle,
    http: reqwest::Client,
    config: SandboxConfig,
}

impl TestSandbox {
    async fn start() -> TestSandbox {
        let config = SandboxConfig::default();
        let handle = Sandbox::start(config.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        TestSandbox { handle, http, config }
    }

    fn base(&self) -> String {
        self.handle.base_url()
    }

    /// The configuration a deployment would have for this sandbox.
    fn config(&self) -> Config {
        let text = format!(
            r#"
[store]
url = "sqlite://unused.db"

[[connections]]
name = "{CONNECTION}"

[connections.erp]
kind = "sandbox"
url = "http://127.0.0.1:1"
api_key_env = "ERP_KEY"

[connections.shipstation]
base_url = "{base}"
api_key_env = "SS_KEY"
api_secret_env = "SS_SECRET"
webhook_token_env = "SS_WEBHOOK_TOKEN"
v2_webhook_keys_url = "{base}/jwks"
"#,
            base = self.base()
        );
        Config::parse(&text, "test.toml", &|name| match name {
            "SS_WEBHOOK_TOKEN" => Some(TOKEN.into()),
            _ => Some(format!("value-of-{name}")),
        })
        .unwrap()
    }

    async fn v1_post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base()))
            .basic_auth(&self.config.api_key, Some(&self.config.api_secret))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "POST {path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn v2_post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base()))
            .header("API-Key", &self.config.v2_api_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "POST {path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let r = self.http.post(format!("{}/_sandbox{path}", self.base())).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "POST /_sandbox{path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Wait until every queued webhook was delivered (or given up).
    async fn flush(&self) {
        let drained = self.control("/webhooks/flush", json!({})).await;
        assert_eq!(drained["drained"], json!(true), "{drained}");
    }

    async fn deliveries(&self) -> Vec<Value> {
        let body: Value = self
            .http
            .get(format!("{}/_sandbox/webhooks/deliveries", self.base()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["deliveries"].as_array().cloned().unwrap_or_default()
    }

    /// An order, a label for it and a carrier scan: SHIP_NOTIFY and `track` webhooks.
    async fn ship_one_order(&self) {
        let order = self
            .v1_post(
                "/orders/createorder",
                json!({
                    "orderNumber": "1001",
                    "orderKey": "acme-1001",
                    "orderDate": "2024-07-01T09:15:00.0000000",
                    "orderStatus": "awaiting_shipment",
                    "billTo": {"name": "Ada Lovelace"},
                    "shipTo": {"name": "Ada Lovelace", "street1": "12 St James's Sq", "city": "London",
                               "postalCode": "SW1Y 4JH", "country": "GB"},
                    "items": [{"lineItemKey": "L1", "sku": "MUG-BLUE", "name": "Blue mug", "quantity": 1,
                               "unitPrice": 12.50, "weight": {"value": 350, "units": "grams"}}]
                }),
            )
            .await;
        let order_id = order["orderId"].as_i64().unwrap();
        let label = self.control(&format!("/orders/{order_id}/labels"), json!({})).await;
        self.control("/tracking/events", json!({"trackingNumber": label["trackingNumber"], "statusCode": "IT"})).await;
        self.flush().await;
    }
}

/// A local receiver that answers 200 and keeps what it was sent.
async fn recorder() -> (String, Arc<Mutex<Vec<(HeaderMap, Bytes)>>>) {
    let seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let keep = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn the_sandbox_deliveries_of_a_shipped_order_land_in_the_inbox_v1_by_token_and_v2_by_signature() {
    let sb = TestSandbox::start().await;
    let hooks = hooks_from_config(&sb.config()).await.unwrap();
    assert!(hooks[0].v2_keys.is_some());
    let sl = Shipledger::start(hooks).await;
    sb.v1_post("/webhooks/subscribe", json!({"target_url": sl.v1_url(TOKEN), "event": "SHIP_NOTIFY"})).await;
    sb.v2_post("/v2/environment/webhooks", json!({"url": sl.v2_url(), "event": "track"})).await;

    sb.ship_one_order().await;

    let deliveries = sb.deliveries().await;
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert!(deliveries.iter().all(|d| d["state"] == json!("delivered") && d["last_status"] == json!(200)), "{deliveries:?}");

    let v1 = sl.jobs("ingest_v1_webhook").await;
    assert_eq!(v1.len(), 1, "{v1:?}");
    let url: url::Url = v1[0].spec.payload()["resource_url"].as_str().unwrap().parse().unwrap();
    assert_eq!(url.host_str(), Some("127.0.0.1"));
    assert!(url.query_pairs().any(|(k, v)| k == "includeShipmentItems" && v == "true"), "{url}");

    let v2 = sl.jobs("ingest_v2_track").await;
    assert_eq!(v2.len(), 1, "{v2:?}");
    assert!(v2[0].idempotency_key.starts_with("v2hook:"));
    assert_eq!(v2[0].spec.payload()["resource_type"], json!("API_TRACK"));
    assert_eq!(v2[0].spec.payload()["data"]["status_code"], json!("IT"));
    assert!(sl.exceptions(ExceptionKind::WebhookSignatureInvalid).await.is_empty());

    // /metrics still reports the connection.
    let metrics = sl.http.get(format!("{}/metrics", sl.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"shipledger_jobs{connection="acme",kind="ingest_v2_track",state="pending"} 1"#), "{metrics}");
}

#[tokio::test]
async fn a_tampered_or_replayed_v2_delivery_is_refused_and_raised_as_one_signature_exception() {
    let sb = TestSandbox::start().await;
    let sl = Shipledger::start(hooks_from_config(&sb.config()).await.unwrap()).await;
    let (capture, seen) = recorder().await;
    sb.v2_post("/v2/environment/webhooks", json!({"url": capture, "event": "track"})).await;
    sb.ship_one_order().await;
    let (headers, body) = seen.lock().unwrap().first().cloned().expect("the sandbox delivered a signed track webhook");
    let header = |name: &str| headers[name].to_str().unwrap().to_string();
    let (key_id, signature, timestamp) = (
        header("x-shipengine-rsa-sha256-key-id"),
        header("x-shipengine-rsa-sha256-signature"),
        header("x-shipengine-timestamp"),
    );
    let body = String::from_utf8(body.to_vec()).unwrap();
    let signed = |ts: &str| {
        vec![
            ("x-shipengine-rsa-sha256-key-id", key_id.clone()),
            ("x-shipengine-rsa-sha256-signature", signature.clone()),
            ("x-shipengine-timestamp", ts.to_string()),
        ]
    };
    let send = |body: String, headers: Vec<(&'static str, String)>| {
        let sl = &sl;
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            sl.post_with(&sl.v2_url(), body, &h).await
        }
    };

    // Without its headers the endpoint hides: 404, and nothing is raised.
    assert_eq!(send(body.clone(), vec![]).await, 404);
    assert!(sl.exceptions(ExceptionKind::WebhookSignatureInvalid).await.is_empty());

    // A changed body no longer matches its signature.
    let tampered = body.replacen("\"IT\"", "\"DE\"", 1);
    assert_ne!(tampered, body);
    assert_eq!(send(tampered, signed(&timestamp)).await, 401);

    // A replay ten minutes later is outside the window.
    let sent: Timestamp = timestamp.parse().unwrap();
    let stale = (sent - SignedDuration::from_mins(10)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(send(body.clone(), signed(&stale)).await, 400);

    assert!(sl.all_jobs().await.is_empty(), "nothing refused is stored");
    let exceptions = sl.exceptions(ExceptionKind::WebhookSignatureInvalid).await;
    assert_eq!(exceptions.len(), 1, "{exceptions:?}");
    let e = &exceptions[0];
    assert_eq!((e.owner, e.record_type.as_str(), e.record_id.as_str()), (Owner::Admin, "webhook", "v2"));
    assert_eq!(e.occurrences, 2);
    assert!(e.detail["reason"].as_str().unwrap().contains("window"), "{}", e.detail);

    // The genuine delivery, as captured, is still accepted.
    assert_eq!(send(body, signed(&timestamp)).await, 200);
    assert_eq!(sl.jobs("ingest_v2_track").await.len(), 1);
}

#[tokio::test]
async fn a_v2_delivery_is_judged_by_shipledgers_clock_refused_from_the_future_and_once_five_minutes_old() {
    // A genuine signed track delivery from the sandbox ShipStation, sent at `sent`.
    let sb = TestSandbox::start().await;
    let (capture, seen) = recorder().await;
    sb.v2_post("/v2/environment/webhooks", json!({"url": capture, "event": "track"})).await;
    sb.ship_one_order().await;
    let (headers, body) = seen.lock().unwrap().first().cloned().expect("the sandbox delivered a signed track webhook");
    let signed: Vec<(String, String)> = ["x-shipengine-rsa-sha256-key-id", "x-shipengine-rsa-sha256-signature", "x-shipengine-timestamp"]
        .iter()
        .map(|name| (name.to_string(), headers[*name].to_str().unwrap().to_string()))
        .collect();
    let sent: Timestamp = signed[2].1.parse().unwrap();
    let body = String::from_utf8(body.to_vec()).unwrap();

    // shipledger's clock stands six minutes before the send time: the delivery comes
    // from its future (a sender's clock far ahead, or a forgery dated ahead).
    let clock = Arc::new(ManualClock::new(sent - SignedDuration::from_mins(6)));
    let hooks = hooks_from_config(&sb.config()).await.unwrap();
    let sl = Shipledger::on_clock(Backend::Sqlite, hooks, clock.clone()).await.unwrap();
    let send = async || {
        let h: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        sl.post_with(&sl.v2_url(), body.clone(), &h).await
    };
    assert_eq!(send().await, 400, "six minutes ahead of shipledger's now");
    assert!(sl.jobs("ingest_v2_track").await.is_empty());

    // At its send time it is stored, stamped with shipledger's now.
    clock.advance(SignedDuration::from_mins(6));
    assert_eq!(send().await, 200);
    let jobs = sl.jobs("ingest_v2_track").await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].created_at.as_millisecond(), sent.as_millisecond(), "stamped with shipledger's now");
    // Five minutes later it is still inside the window (and still one job).
    clock.advance(SignedDuration::from_mins(5));
    assert_eq!(send().await, 200);
    // A second more and it is a replay.
    clock.advance(SignedDuration::from_secs(1));
    assert_eq!(send().await, 400, "more than five minutes old");
    assert_eq!(sl.jobs("ingest_v2_track").await.len(), 1, "nothing refused is stored");

    let exceptions = sl.exceptions(ExceptionKind::WebhookSignatureInvalid).await;
    assert_eq!(exceptions.len(), 1, "{exceptions:?}");
    assert_eq!(exceptions[0].occurrences, 2, "the future delivery and the replay");
    assert!(exceptions[0].detail["reason"].as_str().unwrap().contains("window"), "{}", exceptions[0].detail);
    assert_eq!(sl.clock.now(), sent + SignedDuration::from_secs(5 * 60 + 1));
}

#[tokio::test]
async fn v2_webhooks_are_hidden_for_a_connection_without_keys() {
    let sl = Shipledger::v1("https://ssapi.shipstation.com").await;
    let status = sl
        .post_with(
            &sl.v2_url(),
            "{}",
            &[
                ("x-shipengine-rsa-sha256-key-id", "k"),
                ("x-shipengine-rsa-sha256-signature", "c2ln"),
                ("x-shipengine-timestamp", "2026-01-01T00:00:00Z"),
            ],
        )
        .await;
    assert_eq!(status, 404);
    assert!(sl.exceptions(ExceptionKind::WebhookSignatureInvalid).await.is_empty());
}

#[tokio::test]
async fn keys_that_cannot_be_fetched_stop_startup_with_the_connection_and_the_url() {
    let sb = TestSandbox::start().await;
    let mut config = sb.config();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url: url::Url = format!("http://{closed}/jwks").parse().unwrap();
    config.connections[0].shipstation.v2_webhook_keys_url = Some(url.clone());
    let err = hooks_from_config(&config).await.unwrap_err();
    assert!(err.contains(CONNECTION) && err.contains(url.as_str()), "{err}");
}
