//! Sandbox fidelity: ShipStation clients we did NOT write, run against the
//! sandbox ShipStation (`shipledger sandbox shipstation`), must see what the
//! real API would show them.
//!
//! Clients (pinned, installed by `scripts/fidelity-deps.sh` into
//! `.cache/fidelity/`): npm `shipstation-node` 1.5.6, PyPI
//! `shipstation-api-wrapper` 0.1.2 and PyPI `shipstation` 0.1.3 (natecox).
//! Each is driven by a script under `tests/fidelity/` that prints one JSON
//! object of observations; the tests here start a sandbox on a random port with
//! random credentials, run the script, and assert on the observations and on
//! `GET /_sandbox/stats`. Facts asserted come from
//! shared/reference/shipstation-api.md §1.5, §1.6, §1.8 and §6.
//!
//! Without `.cache/fidelity` the tests are skipped loudly, or fail when `CI` is
//! set.

use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

fn random_token(prefix: &str) -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    format!("{prefix}{:016x}", h.finish())
}

/// Where the third-party clients live; `None` (after a loud message) when they
/// are not installed and this is not CI.
struct Deps {
    node_modules: PathBuf,
    python: PathBuf,
}

fn deps() -> Option<Deps> {
    let cache = repo_root().join(".cache/fidelity");
    let node_modules = cache.join("node/node_modules");
    let python = cache.join("venv/bin/python");
    if node_modules.join("shipstation-node/package.json").is_file() && python.is_file() {
        return Some(Deps {
            node_modules,
            python,
        });
    }
    let message = format!(
        "third-party client deps not installed in {}; run scripts/fidelity-deps.sh",
        cache.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("sandbox fidelity tests need their deps in CI: {message}");
    }
    eprintln!();
    eprintln!("==================================================================");
    eprintln!("SKIPPED: {message}");
    eprintln!("==================================================================");
    None
}

/// A running `shipledger sandbox shipstation`, killed on drop.
struct Sandbox {
    child: Child,
    base: String,
    key: String,
    secret: String,
    log: PathBuf,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Sandbox {
    fn start(name: &str) -> Sandbox {
        let key = random_token("key-");
        let secret = random_token("secret-");
        let log =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fidelity-{name}-sandbox.log"));
        let stderr = File::create(&log).expect("create the sandbox log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_shipledger"))
            .args(["sandbox", "shipstation", "--listen", "127.0.0.1:0"])
            .args(["--api-key", &key, "--api-secret", &secret])
            // The scripts make ~25 requests each; keep them clear of the
            // 40/min default so a slow machine never sees a 429.
            .args(["--rate-limit", "1000", "--rate-window", "60"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn the shipledger binary");

        // Read stdout on a thread (keeps draining it afterwards so the pipe
        // never fills) and wait for the "listening on" line.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.split("listening on ").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(url.trim().trim_end_matches('/').to_string());
                }
            }
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("http client");
        let mut sandbox = Sandbox {
            child,
            base: String::new(),
            key,
            secret,
            log,
            runtime,
            http,
        };
        match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(base) => sandbox.base = base,
            Err(_) => {
                let status = sandbox.child.try_wait().ok().flatten();
                panic!(
                    "the sandbox did not print 'sandbox shipstation listening on http://...' within {:?} \
                     (exit status: {status:?}); its stderr:\n{}",
                    STARTUP_TIMEOUT,
                    sandbox.log_tail()
                );
            }
        }
        sandbox
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `GET /_sandbox/stats` (no auth).
    fn stats(&self) -> Value {
        let url = format!("{}/_sandbox/stats", self.base);
        self.runtime.block_on(async {
            let response = self
                .http
                .get(&url)
                .send()
                .await
                .expect("GET /_sandbox/stats");
            assert!(
                response.status().is_success(),
                "GET /_sandbox/stats: HTTP {}",
                response.status()
            );
            response.json::<Value>().await.expect("stats JSON")
        })
    }

    /// A v1 GET with the sandbox's Basic credentials: (status, JSON body).
    fn get(&self, path_and_query: &str) -> (u16, Value) {
        let url = format!("{}{path_and_query}", self.base);
        self.runtime.block_on(async {
            let response = self
                .http
                .get(&url)
                .basic_auth(&self.key, Some(&self.secret))
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
            let status = response.status().as_u16();
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            (status, body)
        })
    }

    /// Run one fidelity script against this sandbox and parse its JSON.
    fn run(&self, mut command: Command) -> Value {
        command
            .env("SANDBOX_URL", &self.base)
            .env("SANDBOX_KEY", &self.key)
            .env("SANDBOX_SECRET", &self.secret)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let shown = format!("{command:?}");
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
        let mut out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let out_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + SCRIPT_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the script") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        let context = || {
            format!(
                "script: {shown}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- sandbox log (tail) ---\n{}",
                self.log_tail()
            )
        };
        let Some(status) = status else {
            panic!(
                "the fidelity script ran longer than {SCRIPT_TIMEOUT:?}\n{}",
                context()
            );
        };
        let line = stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let parsed: Option<Value> = serde_json::from_str(line).ok();
        if !status.success() {
            let error = parsed
                .as_ref()
                .and_then(|v| v.get("error"))
                .map(|e| e.to_string())
                .unwrap_or_else(|| "(no JSON error)".into());
            panic!(
                "the fidelity script failed ({status}): {error}\n{}",
                context()
            );
        }
        parsed
            .unwrap_or_else(|| panic!("the fidelity script printed no JSON object\n{}", context()))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Client {
    ShipstationNode,
    /// `run.mjs gaps`: the endpoints, ids, weights and headers of issue 9.
    ShipstationNodeGaps,
    ApiWrapper,
    /// `run_api_wrapper.py gaps`: customers' filters and sort.
    ApiWrapperGaps,
    Natecox,
}

/// Start a sandbox and run one client's script against it. `None` when the
/// deps are missing outside CI (the test then passes as skipped).
fn drive(client: Client) -> Option<(Sandbox, Value)> {
    let deps = deps()?;
    let root = repo_root();
    let (name, command) = match client {
        Client::ShipstationNode | Client::ShipstationNodeGaps => {
            let mut c = Command::new("node");
            c.arg(root.join("tests/fidelity/node/run.mjs"))
                .env("FIDELITY_NODE_MODULES", &deps.node_modules);
            if matches!(client, Client::ShipstationNodeGaps) {
                c.arg("gaps");
            }
            ("shipstation-node", c)
        }
        Client::ApiWrapper | Client::ApiWrapperGaps => {
            let mut c = Command::new(&deps.python);
            c.arg(root.join("tests/fidelity/python/run_api_wrapper.py"));
            if matches!(client, Client::ApiWrapperGaps) {
                c.arg("gaps");
            }
            ("api-wrapper", c)
        }
        Client::Natecox => {
            let mut c = Command::new(&deps.python);
            c.arg(root.join("tests/fidelity/python/run_natecox.py"));
            ("natecox", c)
        }
    };
    let sandbox = Sandbox::start(&format!("{name}-{}", random_token("")));
    let obs = sandbox.run(command);
    Some((sandbox, obs))
}

/// `obs[pointer]`, failing with the whole observation object when absent.
fn at<'a>(obs: &'a Value, pointer: &str) -> &'a Value {
    obs.pointer(pointer)
        .unwrap_or_else(|| panic!("observation {pointer} missing from {obs:#}"))
}

fn str_at<'a>(obs: &'a Value, pointer: &str) -> &'a str {
    at(obs, pointer).as_str().unwrap_or_else(|| {
        panic!(
            "observation {pointer} is not a string: {}",
            at(obs, pointer)
        )
    })
}

fn i64_at(obs: &Value, pointer: &str) -> i64 {
    at(obs, pointer).as_i64().unwrap_or_else(|| {
        panic!(
            "observation {pointer} is not an integer: {}",
            at(obs, pointer)
        )
    })
}

fn array_at<'a>(obs: &'a Value, pointer: &str) -> &'a Vec<Value> {
    at(obs, pointer).as_array().unwrap_or_else(|| {
        panic!(
            "observation {pointer} is not an array: {}",
            at(obs, pointer)
        )
    })
}

fn with_key<'a>(orders: &'a [Value], key: &str) -> Vec<&'a Value> {
    orders.iter().filter(|o| o["orderKey"] == key).collect()
}

fn stat(stats: &Value, pointer: &str) -> i64 {
    stats
        .pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("/_sandbox/stats has no integer {pointer}: {stats:#}"))
}

fn requests_for(stats: &Value, route: &str) -> i64 {
    stats["requests"][route].as_i64().unwrap_or(0)
}

// ---------------------------------------------------------------------------
// npm shipstation-node 1.5.6
// ---------------------------------------------------------------------------

#[test]
fn shipstation_node_upserts_by_order_key_without_duplicates() {
    let Some((sandbox, obs)) = drive(Client::ShipstationNode) else {
        return;
    };
    let key = str_at(&obs, "/order/key");
    let id = i64_at(&obs, "/order/created/orderId");

    assert_eq!(
        str_at(&obs, "/order/created/orderKey"),
        key,
        "createorder must keep the caller's orderKey"
    );
    assert_eq!(
        i64_at(&obs, "/order/upserted/orderId"),
        id,
        "createorder with an existing orderKey updates that order"
    );
    assert_eq!(
        str_at(&obs, "/order/upserted/internalNotes"),
        "upserted by shipstation-node"
    );

    // createorders: per-order results, the existing key updated in place.
    assert_eq!(at(&obs, "/bulk/hasErrors"), false, "{obs:#}");
    let results = array_at(&obs, "/bulk/results");
    assert_eq!(results.len(), 2, "one result per order: {results:?}");
    assert!(results.iter().all(|r| r["success"] == true), "{results:?}");
    let again = with_key(results, key);
    assert_eq!(again.len(), 1, "{results:?}");
    assert_eq!(
        again[0]["orderId"], id,
        "createorders with an existing orderKey updates that order"
    );

    let listed = array_at(&obs, "/listByNumber/orders");
    let mine = with_key(listed, key);
    assert_eq!(
        mine.len(),
        1,
        "exactly one order carries the orderKey: {listed:#?}"
    );
    assert_eq!(mine[0]["internalNotes"], "upserted by shipstation-node");
    assert_eq!(mine[0]["customField1"], "bulk-upsert");
    assert_eq!(at(&obs, "/get/orderId"), id);
    assert_eq!(
        at(&obs, "/get/customField1"),
        "bulk-upsert",
        "GET /orders/{{id}} shows the last upsert"
    );

    let stats = sandbox.stats();
    assert_eq!(stat(&stats, "/duplicate_order_keys"), 0, "{stats:#}");
    assert_eq!(
        stat(&stats, "/orders"),
        2,
        "two keys, two orders: {stats:#}"
    );
    assert_eq!(
        requests_for(&stats, "POST /orders/createorder"),
        2,
        "{stats:#}"
    );
    assert_eq!(
        requests_for(&stats, "POST /orders/createorders"),
        1,
        "{stats:#}"
    );
}

#[test]
fn shipstation_node_lists_orders_by_order_number_as_a_starts_with_match() {
    let Some((_sandbox, obs)) = drive(Client::ShipstationNode) else {
        return;
    };
    // NODE-x and NODE-x-B both start with NODE-x.
    let listed = array_at(&obs, "/listByNumber/orders");
    assert_eq!(i64_at(&obs, "/listByNumber/total"), 2, "{obs:#}");
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert_eq!(
        with_key(listed, str_at(&obs, "/bulk/otherKey")).len(),
        1,
        "{listed:#?}"
    );
    assert_eq!(i64_at(&obs, "/listAll/total"), 2, "{obs:#}");
}

#[test]
fn shipstation_node_sees_a_label_in_shipments_but_not_in_fulfillments() {
    let Some((_sandbox, obs)) = drive(Client::ShipstationNode) else {
        return;
    };
    let id = i64_at(&obs, "/order/created/orderId");
    let shipment_id = at(&obs, "/label/shipmentId").clone();

    let shipments = array_at(&obs, "/shipments/list");
    assert_eq!(i64_at(&obs, "/shipments/total"), 1, "{obs:#}");
    assert_eq!(shipments.len(), 1, "{shipments:#?}");
    let s = &shipments[0];
    assert_eq!(
        s["shipmentId"], shipment_id,
        "GET /shipments shows the label's shipment"
    );
    assert_eq!(s["orderId"], id);
    assert_eq!(s["orderKey"], at(&obs, "/order/key").clone());
    assert_eq!(s["carrierCode"], "ups");
    assert_eq!(s["serviceCode"], "ups_ground");
    assert_eq!(s["voided"], false);
    assert_eq!(
        s["shipmentCost"].as_f64(),
        Some(7.25),
        "shipmentCost is a bare number: {s:#}"
    );
    assert!(
        s["trackingNumber"].as_str().is_some_and(|t| !t.is_empty()),
        "{s:#}"
    );
    assert_eq!(
        s["shipmentItems"],
        Value::Null,
        "shipmentItems is null unless includeShipmentItems=true"
    );
    let with_items = array_at(&obs, "/shipments/withItems");
    assert_eq!(with_items.len(), 1, "{with_items:#?}");
    let items = with_items[0]["shipmentItems"].as_array();
    assert!(
        items.is_some_and(|i| !i.is_empty()),
        "includeShipmentItems=true lists the items: {with_items:#?}"
    );

    assert_eq!(
        str_at(&obs, "/orderStatusAfterLabel"),
        "shipped",
        "a label ships its order"
    );
    assert_eq!(
        i64_at(&obs, "/fulfillmentsForLabelledOrder"),
        0,
        "labels appear in /shipments, not /fulfillments"
    );
}

#[test]
fn shipstation_node_markshipped_bug_gets_the_404_real_shipstation_gives() {
    let Some((_sandbox, obs)) = drive(Client::ShipstationNode) else {
        return;
    };
    let calls = array_at(&obs, "/calls");
    assert!(
        calls
            .iter()
            .any(|c| c["method"] == "POST" && c["path"] == "/orders/markshipped"),
        "the client really calls /orders/markshipped: {calls:?}"
    );
    assert_eq!(i64_at(&obs, "/markShipped/status"), 404, "{obs:#}");
    assert!(
        at(&obs, "/markShipped/body/Message").is_string(),
        "errors use the ASP.NET {{\"Message\": ...}} shape: {obs:#}"
    );
    assert_eq!(
        str_at(&obs, "/markShipped/orderStatusAfter"),
        "awaiting_shipment",
        "a 404 changed nothing"
    );
}

#[test]
fn shipstation_node_subscribes_lists_and_deletes_a_webhook() {
    let Some((_sandbox, obs)) = drive(Client::ShipstationNode) else {
        return;
    };
    let id = i64_at(&obs, "/webhook/id");
    let url = str_at(&obs, "/webhook/targetUrl");
    assert_eq!(
        str_at(&obs, "/webhook/listShape"),
        "object.webhooks",
        "GET /webhooks is {{\"webhooks\":[...]}} (the client wrongly types it as an array)"
    );
    let listed = array_at(&obs, "/webhook/listed");
    let hook = listed
        .iter()
        .find(|h| h["WebHookID"] == id)
        .unwrap_or_else(|| panic!("subscribed webhook {id} not listed: {listed:#?}"));
    assert_eq!(hook["Url"], url, "PascalCase Url carries target_url");
    assert_eq!(hook["HookType"], "ORDER_NOTIFY");
    assert_eq!(hook["Name"], "fidelity shipstation-node");
    let after = array_at(&obs, "/webhook/listedAfterDelete");
    assert!(
        after.iter().all(|h| h["WebHookID"] != id),
        "DELETE /webhooks/{id} unsubscribes: {after:#?}"
    );
}

#[test]
fn shipstation_node_gets_a_thin_order_notify_webhook_it_can_refetch() {
    let Some((sandbox, obs)) = drive(Client::ShipstationNode) else {
        return;
    };
    let deliveries = array_at(&obs, "/webhook/deliveries");
    assert!(
        !deliveries.is_empty(),
        "an ORDER_NOTIFY subscriber gets a POST after orders are created; stats: {:#}",
        sandbox.stats()
    );
    let body = &deliveries[0]["body"];
    assert_eq!(body["resource_type"], "ORDER_NOTIFY", "{body:#}");
    let resource_url = body["resource_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no resource_url: {body:#}"));
    assert!(
        resource_url.starts_with(&format!("{}/orders?", sandbox.base)),
        "resource_url points at the sandbox's own /orders: {resource_url}"
    );
    assert!(
        resource_url.len() <= 200,
        "resource_url is at most 200 characters"
    );
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(2),
        "v1 payloads are thin: only resource_url and resource_type: {body:#}"
    );
    assert_eq!(i64_at(&obs, "/webhook/refetch/status"), 200, "{obs:#}");
    let keys = array_at(&obs, "/webhook/refetch/orderKeys");
    assert!(
        keys.iter().any(|k| k == str_at(&obs, "/order/key")),
        "re-fetching resource_url returns the notified order: {keys:?}"
    );
}

#[test]
fn shipstation_node_is_refused_with_a_wrong_secret_and_gets_carriers_as_an_array() {
    let Some((_sandbox, obs)) = drive(Client::ShipstationNode) else {
        return;
    };
    assert_eq!(i64_at(&obs, "/wrongSecretStatus"), 401);
    assert_eq!(
        at(&obs, "/stores/isArray"),
        true,
        "GET /stores is a bare array: {obs:#}"
    );
    // carriers.get('ups') sends GET /carriers?carrierCode=ups (its bug); the
    // real endpoint ignores the parameter and returns every carrier.
    assert_eq!(i64_at(&obs, "/carriersGet/status"), 200);
    assert_eq!(at(&obs, "/carriersGet/isArray"), true, "{obs:#}");
    assert!(i64_at(&obs, "/carriersGet/count") >= 1, "{obs:#}");
}

// npm shipstation-node 1.5.6, issue 9: what a third-party client found
// missing or wrong (reference §1.2, §1.6, §1.9)

#[test]
fn a_refused_request_still_carries_the_rate_limit_headers() {
    let Some((_sandbox, obs)) = drive(Client::ShipstationNodeGaps) else {
        return;
    };
    assert_eq!(i64_at(&obs, "/refused/status"), 401);
    // The sandbox runs with --rate-limit 1000; a 401 spends nothing.
    assert_eq!(str_at(&obs, "/refused/rate/limit"), "1000", "{obs:#}");
    assert_eq!(str_at(&obs, "/refused/rate/remaining"), "1000", "{obs:#}");
    let reset: u64 = str_at(&obs, "/refused/rate/reset").parse().expect("reset is seconds");
    assert!((1..=60).contains(&reset), "X-Rate-Limit-Reset counts seconds down: {reset}");
}

#[test]
fn a_product_id_never_moves_when_a_sku_that_sorts_first_appears() {
    let Some((_sandbox, obs)) = drive(Client::ShipstationNodeGaps) else {
        return;
    };
    let before = i64_at(&obs, "/products/before/productId");
    assert_eq!(
        i64_at(&obs, "/products/after/productId"),
        before,
        "ENGINE-1 keeps its productId after AAA-FIRST appears: {obs:#}"
    );
    let abacus = i64_at(&obs, "/products/abacus/productId");
    assert_ne!(abacus, before, "a new SKU is a new product");
    // Order lines carry the product id of their SKU.
    assert_eq!(
        at(&obs, "/products/lineProductIds"),
        &serde_json::json!([before, [abacus, before]]),
        "{obs:#}"
    );
}

#[test]
fn a_product_weight_in_ounces_reads_back_exactly() {
    let Some((_sandbox, obs)) = drive(Client::ShipstationNodeGaps) else {
        return;
    };
    // The line weighed { value: 8, units: "ounces" }; 1.5 pounds is 24 ounces.
    assert_eq!(
        at(&obs, "/products/before/weightOz"),
        &serde_json::json!(8),
        "{obs:#}"
    );
    assert_eq!(
        at(&obs, "/products/abacus/weightOz"),
        &serde_json::json!(24),
        "{obs:#}"
    );
}

#[test]
fn a_product_updated_with_put_is_what_get_returns() {
    let Some((_sandbox, obs)) = drive(Client::ShipstationNodeGaps) else {
        return;
    };
    assert_eq!(at(&obs, "/products/update/response/success"), true, "{obs:#}");
    let reread = at(&obs, "/products/update/reread");
    assert_eq!(reread["productId"], at(&obs, "/products/before/productId").clone());
    assert_eq!(reread["name"], "Difference engine, mark II");
    assert_eq!(reread["weightOz"], serde_json::json!(8.5));
    assert_eq!(reread["price"], serde_json::json!(21.5));
    assert_eq!(reread["sku"], "ENGINE-1");
}

#[test]
fn assigning_a_user_records_it_on_every_order_or_on_none() {
    let Some((_sandbox, obs)) = drive(Client::ShipstationNodeGaps) else {
        return;
    };
    let user = str_at(&obs, "/users/userId");
    assert_eq!(at(&obs, "/users/assigned/success"), true, "{obs:#}");
    assert_eq!(
        at(&obs, "/users/userIdsAfterAssign"),
        &serde_json::json!([user, user]),
        "{obs:#}"
    );
    // unassignuser naming a missing order changes nothing.
    assert_eq!(i64_at(&obs, "/users/partialStatus"), 404, "{obs:#}");
    assert_eq!(str_at(&obs, "/users/userIdAfterPartial"), user);
    assert_eq!(at(&obs, "/users/unassigned/success"), true);
    assert_eq!(at(&obs, "/users/userIdAfterUnassign"), &Value::Null, "{obs:#}");
}

#[test]
fn rates_depend_on_weight_and_destination_and_are_what_a_label_costs() {
    let Some((_sandbox, obs)) = drive(Client::ShipstationNodeGaps) else {
        return;
    };
    let rates = array_at(&obs, "/rates/rates");
    let codes: Vec<&str> = rates.iter().filter_map(|r| r["serviceCode"].as_str()).collect();
    assert_eq!(codes, ["fedex_ground", "fedex_2day"], "domestic services only: {rates:#?}");
    for r in rates {
        let keys: Vec<&String> = r.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        assert_eq!(keys, ["otherCost", "serviceCode", "serviceName", "shipmentCost"], "{r:#}");
    }
    let ground = |list: &[Value]| {
        list.iter()
            .find(|r| r["serviceCode"] == "fedex_ground")
            .map(|r| (r["shipmentCost"].to_string(), r["otherCost"].to_string()))
            .unwrap_or_else(|| panic!("no fedex_ground rate: {list:#?}"))
    };
    // 40 oz is three started pounds; 5 lb is five.
    assert_eq!(ground(rates), ("7".into(), "0.28".into()));
    assert_eq!(ground(array_at(&obs, "/rates/heavier")), ("8.5".into(), "0.34".into()));
    assert_eq!(array_at(&obs, "/rates/heavier").len(), 1, "serviceCode narrows the list");
    let abroad = array_at(&obs, "/rates/abroad");
    assert!(
        abroad.iter().all(|r| r["serviceCode"] == "fedex_international_economy"),
        "to GB only international services: {abroad:#?}"
    );

    let label = at(&obs, "/createLabel/label");
    assert_eq!(label["orderId"], Value::Null, "a label without an order: {label:#}");
    assert_eq!(label["serviceCode"], "fedex_ground");
    assert_eq!(
        label["shipmentCost"].to_string(),
        "7.28",
        "the label costs the quote: shipmentCost + otherCost"
    );
    assert!(label["labelData"].as_str().is_some_and(|d| !d.is_empty()), "{label:#}");
}

#[test]
fn a_label_without_an_order_is_listed_and_notified_like_any_label() {
    let Some((_sandbox, obs)) = drive(Client::ShipstationNodeGaps) else {
        return;
    };
    let label = at(&obs, "/createLabel/label");
    let listed = array_at(&obs, "/createLabel/listed");
    assert_eq!(listed.len(), 1, "GET /shipments?trackingNumber= finds it: {obs:#}");
    assert_eq!(listed[0]["shipmentId"], label["shipmentId"]);
    assert_eq!(listed[0]["trackingNumber"], label["trackingNumber"]);
    assert_eq!(listed[0]["labelData"], Value::Null, "lists carry no label data");
    let deliveries = array_at(&obs, "/createLabel/deliveries");
    assert_eq!(deliveries.len(), 1, "one SHIP_NOTIFY: {deliveries:#?}");
    assert_eq!(deliveries[0]["body"]["resource_type"], "SHIP_NOTIFY");
    assert_eq!(i64_at(&obs, "/createLabel/refetched/status"), 200, "{obs:#}");
    assert_eq!(
        at(&obs, "/createLabel/refetched/shipmentIds"),
        &serde_json::json!([label["shipmentId"]]),
        "the resource_url lists the new label: {obs:#}"
    );
}

#[test]
fn added_funds_raise_the_balance_get_carriers_shows() {
    let Some((_sandbox, obs)) = drive(Client::ShipstationNodeGaps) else {
        return;
    };
    // Stamps.com starts at 250.00 in the sandbox.
    assert_eq!(at(&obs, "/carriers/funded/code"), "stamps_com");
    assert_eq!(at(&obs, "/carriers/funded/balance"), &serde_json::json!(275.5), "{obs:#}");
    assert_eq!(at(&obs, "/carriers/balanceAfter"), &serde_json::json!(275.5), "{obs:#}");
    // Below the 10.00 minimum: refused, balance unchanged.
    assert_eq!(i64_at(&obs, "/carriers/tooLittleStatus"), 400);
    assert_eq!(at(&obs, "/carriers/balanceAfterRefusal"), &serde_json::json!(275.5));
}

#[test]
fn a_deactivated_store_leaves_the_list_until_it_is_reactivated_and_put_renames_it() {
    let Some((_sandbox, obs)) = drive(Client::ShipstationNodeGaps) else {
        return;
    };
    let id = at(&obs, "/stores/storeId").clone();
    assert_eq!(at(&obs, "/stores/deactivated/success"), true, "{obs:#}");
    assert!(!array_at(&obs, "/stores/activeAfterDeactivate").contains(&id), "{obs:#}");
    assert_eq!(
        at(&obs, "/stores/inactiveListed"),
        &serde_json::json!([false]),
        "showInactive=true lists it with active false: {obs:#}"
    );
    assert_eq!(at(&obs, "/stores/reactivated/success"), true);
    assert!(array_at(&obs, "/stores/activeAgain").contains(&id), "{obs:#}");
    assert_eq!(at(&obs, "/stores/refresh/storeId"), &id);
    assert!(at(&obs, "/stores/refresh/refreshStatusId").is_i64(), "{obs:#}");
    assert_eq!(str_at(&obs, "/stores/reread/storeName"), "Renamed by shipstation-node");
    assert_eq!(str_at(&obs, "/stores/reread/website"), "https://shop.example");
    assert_eq!(at(&obs, "/stores/reread/active"), true);
    let marketplaces = array_at(&obs, "/stores/marketplaces");
    assert!(
        marketplaces.iter().all(|m| m["marketplaceId"].is_i64() && m["name"].is_string() && m["canRefresh"].is_boolean()),
        "{marketplaces:#?}"
    );
}

#[test]
fn a_warehouse_is_created_updated_listed_and_deleted() {
    let Some((_sandbox, obs)) = drive(Client::ShipstationNodeGaps) else {
        return;
    };
    let id = at(&obs, "/warehouses/made/warehouseId").clone();
    assert!(id.is_i64(), "{obs:#}");
    assert_eq!(at(&obs, "/warehouses/made/isDefault"), false);
    assert_eq!(
        at(&obs, "/warehouses/made/returnAddress/city"),
        "Round Rock",
        "no returnAddress means the origin address"
    );
    assert!(array_at(&obs, "/warehouses/listedIds").contains(&id));
    assert_eq!(str_at(&obs, "/warehouses/got/warehouseName"), "Overflow East");
    assert_eq!(str_at(&obs, "/warehouses/got/city"), "Pflugerville");
    assert_eq!(at(&obs, "/warehouses/deleted/success"), true);
    assert!(!array_at(&obs, "/warehouses/listedIdsAfterDelete").contains(&id), "{obs:#}");
    assert_eq!(i64_at(&obs, "/warehouses/getAfterDeleteStatus"), 404);
}

// ---------------------------------------------------------------------------
// PyPI shipstation-api-wrapper 0.1.2
// ---------------------------------------------------------------------------

#[test]
fn api_wrapper_reposts_a_fetched_order_as_an_update_of_the_same_order() {
    let Some((sandbox, obs)) = drive(Client::ApiWrapper) else {
        return;
    };
    let key = str_at(&obs, "/order/key");
    let id = i64_at(&obs, "/order/created/orderId");
    assert_eq!(str_at(&obs, "/order/created/orderKey"), key);
    // add_note re-posts the GET /orders/{id} body, read-only fields and all.
    assert_eq!(i64_at(&obs, "/order/upserted/orderId"), id, "{obs:#}");
    let notes = str_at(&obs, "/order/upserted/internalNotes");
    assert!(
        notes.contains("second-note") && notes.contains("created-by-wrapper"),
        "{notes:?}"
    );
    assert_eq!(i64_at(&obs, "/order/saturday/orderId"), id);
    assert_eq!(at(&obs, "/order/saturday/saturdayDelivery"), true);

    let listed = array_at(&obs, "/listByNumber/orders");
    let mine = with_key(listed, key);
    assert_eq!(mine.len(), 1, "one order for the orderKey: {listed:#?}");
    assert_eq!(mine[0]["saturdayDelivery"], true);
    assert_eq!(mine[0]["internalNotes"], notes);

    let stats = sandbox.stats();
    assert_eq!(stat(&stats, "/duplicate_order_keys"), 0, "{stats:#}");
    assert_eq!(stat(&stats, "/orders"), 2, "{stats:#}");
}

#[test]
fn api_wrapper_finds_orders_by_order_number_as_a_starts_with_match() {
    let Some((_sandbox, obs)) = drive(Client::ApiWrapper) else {
        return;
    };
    // WRAP-x-1 matches WRAP-x-1 and WRAP-x-10.
    let listed = array_at(&obs, "/listByNumber/orders");
    assert_eq!(i64_at(&obs, "/listByNumber/total"), 2, "{obs:#}");
    assert_eq!(
        with_key(listed, str_at(&obs, "/sibling/key")).len(),
        1,
        "{listed:#?}"
    );
    assert_eq!(i64_at(&obs, "/listAll/total"), 2);
}

#[test]
fn api_wrapper_holds_an_order_until_a_date() {
    let Some((_sandbox, obs)) = drive(Client::ApiWrapper) else {
        return;
    };
    assert_eq!(i64_at(&obs, "/hold/status"), 200, "{obs:#}");
    assert_eq!(at(&obs, "/hold/body/success"), true, "{obs:#}");
    assert_eq!(str_at(&obs, "/hold/orderStatusAfter"), "on_hold");
}

#[test]
fn api_wrapper_reaches_tags_with_its_prebuilt_auth_header() {
    let Some((_sandbox, obs)) = drive(Client::ApiWrapper) else {
        return;
    };
    // It sends `Authorization: Basic {api_key}` verbatim; a wrong pair is refused.
    assert_eq!(i64_at(&obs, "/wrongSecretStatus"), 401);
    assert_eq!(
        i64_at(&obs, "/listTags/status"),
        200,
        "GET /accounts/listtags: {obs:#}"
    );
    assert_eq!(at(&obs, "/listTags/isArray"), true);
    // Its shipments.list() calls GET /orders (its bug), which must still work.
    assert_eq!(str_at(&obs, "/shipmentsListBug/path"), "/orders");
    assert_eq!(i64_at(&obs, "/shipmentsListBug/status"), 200);
}

#[test]
fn api_wrapper_lists_customers_and_products() {
    let Some((_sandbox, obs)) = drive(Client::ApiWrapper) else {
        return;
    };
    assert_eq!(
        i64_at(&obs, "/customers/status"),
        200,
        "GET /customers: {obs:#}"
    );
    assert_eq!(at(&obs, "/customers/hasCustomersKey"), true);
    assert_eq!(
        i64_at(&obs, "/products/status"),
        200,
        "GET /products: {obs:#}"
    );
    assert_eq!(at(&obs, "/products/hasProductsKey"), true);
}

#[test]
fn api_wrapper_filters_customers_by_state_and_country_and_sorts_them() {
    let Some((_sandbox, obs)) = drive(Client::ApiWrapperGaps) else {
        return;
    };
    let names = |pointer: &str| at(&obs, pointer).clone();
    assert_eq!(
        names("/customers/all"),
        serde_json::json!(["Grace Hopper", "Ada Lovelace", "Katherine Johnson"]),
        "customer id order without sortBy: {obs:#}"
    );
    assert_eq!(names("/customers/us"), serde_json::json!(["Grace Hopper", "Katherine Johnson"]));
    assert_eq!(names("/customers/usVirginia"), serde_json::json!(["Grace Hopper"]));
    assert_eq!(
        names("/customers/byNameDesc"),
        serde_json::json!(["Katherine Johnson", "Grace Hopper", "Ada Lovelace"])
    );
    assert_eq!(
        names("/customers/byNameAsc"),
        serde_json::json!(["Ada Lovelace", "Grace Hopper", "Katherine Johnson"])
    );
    assert_eq!(
        names("/customers/byCreateDesc"),
        serde_json::json!(["Katherine Johnson", "Ada Lovelace", "Grace Hopper"])
    );
    assert_eq!(
        i64_at(&obs, "/customers/badSortStatus"),
        400,
        "sortBy is Name, ModifyDate or CreateDate"
    );
}

// ---------------------------------------------------------------------------
// PyPI shipstation 0.1.3 (natecox/pyshipstation)
// ---------------------------------------------------------------------------

#[test]
fn natecox_client_sees_the_eight_ounce_line_as_a_product_of_exactly_eight_ounces() {
    let Some((_sandbox, obs)) = drive(Client::Natecox) else {
        return;
    };
    assert_eq!(
        at(&obs, "/sentWeight"),
        &serde_json::json!({"units": "ounces", "value": "8"}),
        "it sends the weight as a string"
    );
    assert_eq!(str_at(&obs, "/product/sku"), "ENIGMA-1", "{obs:#}");
    assert_eq!(
        at(&obs, "/product/weightOz"),
        &serde_json::json!(8),
        "8 oz reads 8, not 7.999993: {obs:#}"
    );
    assert!(i64_at(&obs, "/product/productId") > 0);
}

#[test]
fn natecox_client_upserts_string_typed_orders_by_order_key() {
    let Some((sandbox, obs)) = drive(Client::Natecox) else {
        return;
    };
    let key = str_at(&obs, "/order/key");
    let id = i64_at(&obs, "/order/created/orderId");
    // It sends numbers as strings; Json.NET coerces them.
    assert_eq!(str_at(&obs, "/order/sentQuantity"), "2");
    assert_eq!(str_at(&obs, "/order/sentUnitPrice"), "19.99");
    assert_eq!(
        at(&obs, "/order/created/quantities"),
        &serde_json::json!([2]),
        "{obs:#}"
    );
    assert_eq!(
        at(&obs, "/order/created/unitPrices/0").as_f64(),
        Some(19.99),
        "{obs:#}"
    );
    assert_eq!(str_at(&obs, "/order/created/orderKey"), key);
    assert_eq!(i64_at(&obs, "/order/upserted/orderId"), id, "{obs:#}");
    assert_eq!(
        str_at(&obs, "/order/upserted/customerNotes"),
        "upserted by natecox"
    );

    let listed = array_at(&obs, "/listByNumber/orders");
    let mine = with_key(listed, key);
    assert_eq!(mine.len(), 1, "one order for the orderKey: {listed:#?}");
    assert_eq!(mine[0]["customerNotes"], "upserted by natecox");

    let stats = sandbox.stats();
    assert_eq!(stat(&stats, "/duplicate_order_keys"), 0, "{stats:#}");
    let (status, order) = sandbox.get(&format!("/orders/{id}"));
    assert_eq!(status, 200);
    assert_eq!(order["orderKey"], key);
}

#[test]
fn natecox_client_without_an_order_key_creates_a_new_order_each_time() {
    let Some((sandbox, obs)) = drive(Client::Natecox) else {
        return;
    };
    let first = i64_at(&obs, "/keyless/first/orderId");
    let second = i64_at(&obs, "/keyless/second/orderId");
    assert_ne!(
        first, second,
        "re-sending a keyless order duplicates it, as ShipStation does"
    );
    let k1 = str_at(&obs, "/keyless/first/orderKey");
    let k2 = str_at(&obs, "/keyless/second/orderKey");
    assert!(
        !k1.is_empty() && !k2.is_empty() && k1 != k2,
        "ShipStation generates a key: {k1:?} {k2:?}"
    );
    // NATE-x matches the keyed order and both keyless NATE-x-NOKEY orders.
    assert_eq!(i64_at(&obs, "/listByNumber/total"), 3, "{obs:#}");

    let stats = sandbox.stats();
    assert_eq!(stat(&stats, "/orders"), 3, "{stats:#}");
    assert_eq!(stat(&stats, "/duplicate_order_keys"), 0, "{stats:#}");
    assert!(
        stat(&stats, "/duplicate_order_numbers") >= 1,
        "the keyless pair shares a number: {stats:#}"
    );
}

#[test]
fn natecox_client_fetch_orders_bug_gets_the_404_real_shipstation_gives() {
    let Some((_sandbox, obs)) = drive(Client::Natecox) else {
        return;
    };
    assert_eq!(str_at(&obs, "/fetchOrdersBug/path"), "/orders/list");
    assert_eq!(i64_at(&obs, "/fetchOrdersBug/status"), 404, "{obs:#}");
    assert!(
        at(&obs, "/fetchOrdersBug/body/Message").is_string(),
        "errors use the ASP.NET {{\"Message\": ...}} shape: {obs:#}"
    );
}

#[test]
fn natecox_client_manages_webhooks_through_its_generic_helpers() {
    let Some((_sandbox, obs)) = drive(Client::Natecox) else {
        return;
    };
    assert_eq!(i64_at(&obs, "/wrongSecretStatus"), 401);
    assert_eq!(i64_at(&obs, "/stores/status"), 200);
    assert_eq!(at(&obs, "/stores/isArray"), true);
    let id = at(&obs, "/webhook/id").clone();
    assert!(
        id.is_i64(),
        "POST /webhooks/subscribe returns {{\"id\": int}}: {obs:#}"
    );
    assert_eq!(str_at(&obs, "/webhook/listShape"), "object.webhooks");
    let urls = array_at(&obs, "/webhook/listedUrls");
    assert!(
        urls.iter().any(|u| u == str_at(&obs, "/webhook/targetUrl")),
        "{urls:?}"
    );
    assert!(
        array_at(&obs, "/webhook/listedIds").contains(&id),
        "{obs:#}"
    );
    let delete = i64_at(&obs, "/webhook/deleteStatus");
    assert!(
        (200..300).contains(&delete),
        "DELETE /webhooks/{id}: HTTP {delete}"
    );
    assert!(
        !array_at(&obs, "/webhook/listedIdsAfterDelete").contains(&id),
        "{obs:#}"
    );
}
