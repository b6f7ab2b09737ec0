//! The REST API's guard and its exception actions: two brands on one deployment, a
//! token per role. Every route refuses a missing and a wrong token (401, a problem
//! body); a viewer cannot act (403) nor an operator manage tokens; a token for brand
//! A never sees brand B's exceptions (its filter is refused, its ids answer 404). An
//! operator's acknowledge and resolve land in the audit log and on the record's
//! timeline under the token's name; bad input names its field. On SQLite and on
//! PostgreSQL.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};
use shipledger_core::clock::SystemClock;
use shipledger_core::exception::ExceptionKind;
use shipledger_engine::config::Policy;
use shipledger_server::Server;
use shipledger_server::api::{ApiConnection, tokens};
use shipledger_store::{Change, ExceptionAuditFilter, Store, TokenRole, TokenScope};
use tokio::sync::watch;

use crate::helpers::{Backend, TestDb};

pub(crate) struct Api {
    pub(crate) url: String,
    pub(crate) store: Arc<dyn Store>,
    http: reqwest::Client,
    _stop: watch::Sender<bool>,
    _db: TestDb,
}

impl Api {
    pub(crate) async fn token(&self, name: &str, role: TokenRole, scope: TokenScope) -> String {
        let issued = tokens::issue();
        let new = shipledger_store::NewApiToken { name: name.into(), role, scope, hash: issued.hash, prefix: issued.prefix };
        self.store.create_api_token(new, jiff::Timestamp::now()).await.unwrap();
        issued.secret
    }

    /// `GET path` with `token`: the status and the JSON body (a problem body for a 4xx or 5xx).
    pub(crate) async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None).await
    }

    pub(crate) async fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let problem = r.headers().get("content-type").is_some_and(|c| c == "application/problem+json");
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status >= 400 {
            assert!(problem, "{path}: a {status} is a problem body: {v}");
            assert_eq!(v["status"], status, "{v}");
        }
        (status, v)
    }
}

async fn start(backend: Backend) -> Option<Api> {
    let api = start_with(backend, &["acme", "beta"]).await?;
    let now = jiff::Timestamp::now();
    for brand in ["acme", "beta"] {
        let mut change = Change::new(brand, now);
        change.raise(ExceptionKind::PushRejected, "order", format!("{brand}-1"), json!({"message": "refused"}));
        api.store.commit(change).await.unwrap();
    }
    Some(api)
}

/// The API of a deployment serving `brands` (registered, nothing else in the store).
pub(crate) async fn start_with(backend: Backend, brands: &[&str]) -> Option<Api> {
    let db = TestDb::new(backend)?;
    let store = shipledger_store::open(&db.url).await.unwrap();
    let now = jiff::Timestamp::now();
    for brand in brands {
        store.ensure_connection(brand, now).await.unwrap();
    }
    let connections = brands.iter().map(|name| ApiConnection { name: name.to_string(), policy: Policy::default() }).collect();
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), store.clone(), Arc::new(SystemClock), vec![])
        .await
        .unwrap()
        .api(connections);
    let url = format!("http://{}", server.local_addr().unwrap());
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(server.run(stop_rx));
    Some(Api { url, store, http: reqwest::Client::new(), _stop: stop, _db: db })
}

async fn the_api_guards_every_route_and_audits_every_action(backend: Backend) {
    let Some(api) = start(backend).await else { return };
    let acme_only = TokenScope::Only(BTreeSet::from(["acme".to_string()]));
    let viewer = api.token("viewer", TokenRole::Viewer, acme_only.clone()).await;
    let operator = api.token("ops-acme", TokenRole::Operator, acme_only.clone()).await;
    let admin = api.token("admin", TokenRole::Admin, TokenScope::All).await;
    let ids = api.store.list_exceptions(Default::default()).await.unwrap();
    let (acme_id, beta_id) = (ids[0].id, ids[1].id);
    assert_eq!((ids[0].connection.as_str(), ids[1].connection.as_str()), ("acme", "beta"));

    // Every route the document lists refuses a missing and a wrong token.
    let (status, doc) = api.call(reqwest::Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut routes = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", &acme_id.to_string())
                .replace("{connection}", "acme")
                .replace("{erp_id}", "acme-1")
                .replace("{shipment_key}", "label%3A1");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for token in [None, Some("slt_not-a-token")] {
                let (status, problem) = api.call(m.clone(), &concrete, token, None).await;
                assert_eq!(status, 401, "{method} {path} with {token:?}: {problem}");
            }
            routes += 1;
        }
    }
    assert!(routes >= 21, "{routes} routes");

    // A viewer reads but cannot act; an operator acts but cannot manage tokens.
    let (status, page) = api.call(reqwest::Method::GET, "/api/v1/exceptions", Some(&viewer), None).await;
    assert_eq!(status, 200);
    let seen: Vec<&str> = page["items"].as_array().unwrap().iter().map(|e| e["connection"].as_str().unwrap()).collect();
    assert_eq!(seen, vec!["acme"], "an acme token sees only acme's");
    let ack = format!("/api/v1/exceptions/{acme_id}/acknowledge");
    assert_eq!(api.call(reqwest::Method::POST, &ack, Some(&viewer), None).await.0, 403);
    // Edit and retry is an operator's, and never reaches the ERP's data.
    let edit = format!("/api/v1/exceptions/{acme_id}/edit");
    let weight = serde_json::json!({"set": {"weight": "500"}});
    assert_eq!(api.call(reqwest::Method::POST, &edit, Some(&viewer), Some(weight.clone())).await.0, 403);
    let (status, problem) = api.call(reqwest::Method::POST, &edit, Some(&operator), Some(weight)).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "set.weight", "{problem}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("in the ERP"), "{problem}");
    assert_eq!(api.call(reqwest::Method::GET, "/api/v1/tokens", Some(&operator), None).await.0, 403);
    assert_eq!(api.call(reqwest::Method::GET, "/api/v1/tokens", Some(&admin), None).await.0, 200);

    // Another brand's data is not there for an acme token: refused by filter, 404 by id.
    assert_eq!(api.call(reqwest::Method::GET, "/api/v1/exceptions?connection=beta", Some(&operator), None).await.0, 403);
    for path in [format!("/api/v1/exceptions/{beta_id}"), format!("/api/v1/exceptions/{beta_id}/audit"), "/api/v1/connections/beta/orders/beta-1".into()] {
        assert_eq!(api.call(reqwest::Method::GET, &path, Some(&operator), None).await.0, 404, "{path}");
    }
    let (status, _) = api.call(reqwest::Method::POST, &format!("/api/v1/exceptions/{beta_id}/resolve"), Some(&operator), Some(json!({"note": "x"}))).await;
    assert_eq!(status, 404);
    let (_, conns) = api.call(reqwest::Method::GET, "/api/v1/connections", Some(&operator), None).await;
    assert_eq!(conns.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect::<Vec<_>>(), vec!["acme"]);

    // Bad input names its field.
    let (status, p) = api.call(reqwest::Method::GET, "/api/v1/exceptions?limit=0", Some(&viewer), None).await;
    assert_eq!((status, p["errors"][0]["field"].as_str()), (400, Some("limit")));
    let resolve = format!("/api/v1/exceptions/{acme_id}/resolve");
    let (status, p) = api.call(reqwest::Method::POST, &resolve, Some(&operator), Some(json!({}))).await;
    assert_eq!((status, p["errors"][0]["field"].as_str()), (400, Some("note")));

    // The operator acknowledges, then resolves; a second resolve is a conflict.
    let (status, acted) = api.call(reqwest::Method::POST, &ack, Some(&operator), Some(json!({"note": "on it"}))).await;
    assert_eq!((status, acted["exception"]["state"].as_str()), (200, Some("acknowledged")), "{acted}");
    let (status, acted) = api.call(reqwest::Method::POST, &resolve, Some(&operator), Some(json!({"note": "store fixed"}))).await;
    assert_eq!((status, acted["exception"]["state"].as_str()), (200, Some("resolved")));
    assert_eq!(api.call(reqwest::Method::POST, &resolve, Some(&operator), Some(json!({"note": "again"}))).await.0, 409);

    // In the audit log, under the token's name, and on the order's timeline.
    let audit = api.store.list_exception_audit(ExceptionAuditFilter { exception_id: Some(acme_id), ..Default::default() }).await.unwrap();
    let steps: Vec<(&str, &str)> = audit.iter().map(|a| (a.action.as_str(), a.actor.as_str())).collect();
    assert_eq!(steps, vec![("opened", "shipledger"), ("acknowledge", "token:ops-acme"), ("resolve", "token:ops-acme")]);
    // (The order itself was never synced here: the API does not invent it.)
    assert_eq!(api.call(reqwest::Method::GET, "/api/v1/connections/acme/orders/acme-1", Some(&viewer), None).await.0, 404);
    let timeline = api.store.timeline("acme", "order", "acme-1").await.unwrap();
    let kinds: Vec<&str> = timeline.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["exception_acknowledged", "exception_resolved"]);
    assert_eq!(timeline[1].detail["actor"], "token:ops-acme");

    // An admin limited to acme cannot mint a token for every brand; a revoked token opens nothing.
    let (status, created) = api
        .call(reqwest::Method::POST, "/api/v1/tokens", Some(&admin), Some(json!({"name": "dash", "role": "viewer", "connections": ["acme"]})))
        .await;
    assert_eq!(status, 200, "{created}");
    let secret = created["secret"].as_str().unwrap().to_string();
    assert_eq!(api.call(reqwest::Method::GET, "/api/v1/exceptions", Some(&secret), None).await.0, 200);
    let revoke = format!("/api/v1/tokens/{}", created["token"]["id"]);
    assert_eq!(api.call(reqwest::Method::DELETE, &revoke, Some(&admin), None).await.0, 200);
    assert_eq!(api.call(reqwest::Method::GET, "/api/v1/exceptions", Some(&secret), None).await.0, 401);
    // The secret was shown once: neither the list nor the store holds it.
    let (_, listed) = api.call(reqwest::Method::GET, "/api/v1/tokens", Some(&admin), None).await;
    assert!(!listed.to_string().contains(&secret[10..]), "{listed}");
    let stored = api.store.list_api_tokens().await.unwrap();
    assert!(stored.iter().any(|t| t.name == "dash" && t.revoked_at.is_some() && secret.starts_with(&t.prefix)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_is_guarded_by_role_and_connection_and_actions_are_audited_on_sqlite() {
    the_api_guards_every_route_and_audits_every_action(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_is_guarded_by_role_and_connection_and_actions_are_audited_on_postgres() {
    the_api_guards_every_route_and_audits_every_action(Backend::Postgres).await;
}
