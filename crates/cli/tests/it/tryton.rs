//! End to end against a real Tryton (from PyPI, `scripts/tryton.sh`) and the sandbox
//! ShipStation, through `shipledger serve` with `kind = "tryton"`: the paid sales
//! are released and the unpaid and weightless held; the warehouse ships the
//! three-line sale in two parcels and voids and re-makes the other's label; Tryton's
//! shipments are packed on the labels and done only on the carrier's first scans,
//! with the live tracking numbers; the labels' USD costs post as one GBP journal.
//! And: held sales are released within `held_recheck_interval` once fixed where the
//! clerk fixes them (the product's weight, the customer's address, the payment), and
//! a released sale whose shipment is cancelled and its moves ignored is cancelled in
//! ShipStation with an ops exception giving Tryton's reason.
//! Everything is checked by reading Tryton's own API.

use std::process::Command;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};
use shipledger_core::money::{Currency, Money, Rounding};
use shipledger_erp::tryton::{TrytonClient, TrytonSettings};
use shipledger_erp::Erp;
use shipledger_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

#[path = "../../../erp/tests/support/tryton_db.rs"]
pub(crate) mod tryton_db;
use tryton_db::TrytonDb;

use crate::support::{Process, post_json, v1_get, wait_until_explained};

struct World {
    db: TrytonDb,
    ss: SandboxHandle,
    http: reqwest::Client,
    config: std::path::PathBuf,
    /// The store `serve` keeps (read only by a timed-out wait, to say where it stands).
    store_url: String,
    /// `serve`'s stdout and stderr.
    log: std::path::PathBuf,
}

impl World {
    async fn tryton(&self, path: &str, fields: &[&str], domain: Value) -> Value {
        self.db.get(path, fields, Some(domain)).await
    }

    async fn shipments(&self, sale: i64) -> Vec<Value> {
        self.db.shipments_of(sale).await
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        post_json(&self.http, &format!("{}/_sandbox{path}", self.ss.base_url()), body).await
    }

    async fn ss_get(&self, path: &str) -> Value {
        v1_get(&self.http, &self.ss.base_url(), path, ("sandbox-key", "sandbox-secret")).await
    }

    /// Wait for `done`; a wait that times out says what the store holds (every
    /// shipment, the write-back jobs, each order's timeline) and shows the end of
    /// serve's log, so a rare timeout explains itself.
    async fn wait_until(&self, what: &str, deadline: Duration, done: impl AsyncFnMut() -> bool) {
        wait_until_explained(what, deadline, &self.log, done, async || self.store_view().await).await
    }

    /// What serve's store holds about the shipments: every shipment row, the
    /// `write_fulfilment` jobs, and the timeline of every order they belong to.
    async fn store_view(&self) -> String {
        use shipledger_store::{JobFilter, JobKind, ShipmentFilter};
        let store = match shipledger_store::open(&self.store_url).await {
            Ok(store) => store,
            Err(e) => return format!("(the store could not be opened: {e})"),
        };
        let mut out = String::new();
        let shipments = store.list_shipments(ShipmentFilter::default()).await.unwrap_or_default();
        out += &format!("--- the store's {} shipment(s) ---\n", shipments.len());
        for s in &shipments {
            out += &format!(
                "{} order {} tracking {} state {} voided {} erp fulfilment {} first scan {} updated {}\n",
                s.shipment_key,
                s.erp_id.as_deref().unwrap_or("-"),
                s.tracking_number.as_deref().unwrap_or("-"),
                s.state,
                s.voided,
                s.erp_fulfilment_id.as_deref().unwrap_or("-"),
                s.first_scan_at.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
                s.updated_at,
            );
        }
        let jobs = store.list_jobs(JobFilter { kind: Some(JobKind::WriteFulfilment), ..Default::default() }).await.unwrap_or_default();
        out += &format!("--- the store's {} write_fulfilment job(s) ---\n", jobs.len());
        for j in &jobs {
            out += &format!(
                "{} {} attempts {} next run {} last error {}\n",
                j.idempotency_key,
                j.state,
                j.attempts,
                j.next_run_at,
                j.last_error.as_deref().unwrap_or("-"),
            );
        }
        let orders: std::collections::BTreeSet<(String, String)> =
            shipments.iter().filter_map(|s| s.erp_id.clone().map(|id| (s.connection.clone(), id))).collect();
        for (connection, erp_id) in orders {
            let events = store.order_timeline(&connection, &erp_id).await.unwrap_or_default();
            out += &format!("--- the timeline of order {erp_id} ({} event(s)) ---\n", events.len());
            for e in events {
                out += &format!("{} {} {} {}\n", e.event.at, e.event.kind, e.tracking_number.as_deref().unwrap_or("-"), e.event.detail);
            }
        }
        out
    }

    /// The CLI's `ARGS --config <this story's>` with its secrets: whether it worked,
    /// its stdout, and all it said (stdout then stderr).
    fn shipledger(&self, args: &[&str]) -> (bool, Vec<u8>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_shipledger"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("E_ERP_KEY", &self.db.key)
            .env("E_SS_KEY", "sandbox-key")
            .env("E_SS_SECRET", "sandbox-secret")
            .env("E_SS_V2_KEY", "sandbox-v2-key")
            .output()
            .unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), out.stdout, said)
    }

    fn open_exceptions(&self) -> Vec<Value> {
        let (ok, stdout, said) = self.shipledger(&["exceptions", "list", "--format", "json"]);
        assert!(ok, "{said}");
        serde_json::from_slice::<Value>(&stdout).unwrap().as_array().cloned().unwrap_or_default()
    }
}

fn sale_id(db: &TrytonDb, reference: &str) -> i64 {
    db.seed["sales"].as_array().unwrap().iter().find(|s| s["reference"] == reference).unwrap()["id"].as_i64().unwrap()
}

/// `shipledger serve` over a fresh SQLite store, against this Tryton database and
/// a new sandbox ShipStation, with these extra `[connections.policy]` lines.
async fn serve(db: TrytonDb, policy: &str) -> (World, Process, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ss = Sandbox::start(SandboxConfig { rate_limit: 1_000, ..SandboxConfig::default() }, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("shipledger.toml");
    let store_url = format!("sqlite://{}", dir.path().join("s.db").display());
    std::fs::write(
        &config,
        format!(
            r#"
[store]
url = "{store_url}"
[server]
listen = "127.0.0.1:{port}"
[[connections]]
name = "acme-tryton"
[connections.erp]
kind = "tryton"
url = "{erp}"
api_key_env = "E_ERP_KEY"
[connections.erp.tryton]
journal_party = "Royal Mail"
[connections.shipstation]
base_url = "{ss}"
api_key_env = "E_SS_KEY"
api_secret_env = "E_SS_SECRET"
v2_base_url = "{ss}"
v2_api_key_env = "E_SS_V2_KEY"
[connections.accounts]
shipping_expense = "5.1.3"
accrued_shipping = "2.1.1"
[connections.policy]
poll_interval = "1s"
shipment_poll_interval = "1s"
{policy}
"#,
            erp = db.url,
            ss = ss.base_url(),
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let serve = Process(
        Command::new(env!("CARGO_BIN_EXE_shipledger"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("E_ERP_KEY", &db.key)
            .env("E_SS_KEY", "sandbox-key")
            .env("E_SS_SECRET", "sandbox-secret")
            .env("E_SS_V2_KEY", "sandbox-v2-key")
            // Every lane step that did work, with its report: what a timed-out wait
            // shows from the log's end.
            .env("RUST_LOG", "info,shipledger_engine::lanes=debug")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap(),
    );
    (World { db, ss, http: reqwest::Client::new(), config, store_url, log }, serve, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_against_a_real_tryton_ships_split_and_voided_parcels_once_and_posts_the_costs_in_gbp() {
    let Some(db) = TrytonDb::create("e2e") else { return };
    // A label the carrier has not scanned is checked again after a wait that doubles
    // per empty check. After the electronic notice below, the label's coarse status
    // (`in_transit`) no longer moves when the real scan comes, so the sweep finds that
    // scan only at the label's next due check: with the default backoff that is about
    // as long again as the label's age, which a loaded machine stretches past the
    // test's time. Checked at least every 2 s here, the scan is seen within seconds
    // (and the notice, checked as often, is still not taken for a scan).
    let (w, _serve, _dir) = serve(db, "scan_check_max_interval = \"2s\"").await;
    let (paid_one, paid_three, unpaid, weightless) =
        (sale_id(&w.db, "SHOP-1001"), sale_id(&w.db, "SHOP-1002"), sale_id(&w.db, "SHOP-1003"), sale_id(&w.db, "SHOP-1004"));

    // 1. Release: the two paid sales with weights reach ShipStation; the others are held.
    w.wait_until("the paid sales in ShipStation and the others held", Duration::from_secs(90), async || {
        w.ss.stats()["orders"] == json!(2) && w.open_exceptions().len() >= 2
    })
    .await;
    let held: Vec<(String, String)> = w
        .open_exceptions()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap().to_string(), e["record"].as_str().unwrap().to_string()))
        .collect();
    assert!(held.contains(&("held_unpaid".into(), format!("order:{unpaid}"))), "{held:?}");
    assert!(held.contains(&("held_missing_weight".into(), format!("order:{weightless}"))), "{held:?}");
    let orders = w.ss_get("/orders?pageSize=100").await;
    let order_of = |sale: i64| {
        orders["orders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["orderKey"].as_str().unwrap_or_default() == format!("shipledger:acme-tryton:{sale}"))
            .unwrap_or_else(|| panic!("sale {sale} is in ShipStation: {orders}"))
            .clone()
    };
    let three = order_of(paid_three);
    let one = order_of(paid_one);
    let items = three["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "the shipping service line is not a parcel item");
    assert_eq!(three["advancedOptions"]["customField3"], "SHOP-1002", "the warehouse sees the customer's reference");
    assert_eq!(one["advancedOptions"]["customField3"], "SHOP-1001");

    // 2. The warehouse: SHOP-1002 in two parcels; SHOP-1001 labelled, voided, re-labelled.
    let three_id = three["orderId"].as_i64().unwrap();
    let one_id = one["orderId"].as_i64().unwrap();
    let first = w
        .control(&format!("/orders/{three_id}/labels"), json!({"shipmentCost": 4.10, "items": [{"lineItemKey": items[0]["lineItemKey"]}, {"lineItemKey": items[1]["lineItemKey"]}]}))
        .await;
    let voided = w.control(&format!("/orders/{one_id}/labels"), json!({"shipmentCost": 3.20})).await;
    w.wait_until("the first two labels packed in Tryton", Duration::from_secs(90), async || {
        let a = w.shipments(paid_three).await;
        let b = w.shipments(paid_one).await;
        a.iter().any(|s| s["state"] == "packed") && b.iter().any(|s| s["state"] == "packed")
    })
    .await;
    w.control(&format!("/shipments/{}/void", voided["shipment"]["shipmentId"]), json!({})).await;
    let relabel = w.control(&format!("/orders/{one_id}/labels"), json!({"shipmentCost": 3.20})).await;
    let second = w.control(&format!("/orders/{three_id}/labels"), json!({"shipmentCost": 5.75})).await;
    let live: Vec<String> =
        [&first, &relabel, &second].iter().map(|l| l["trackingNumber"].as_str().unwrap().to_string()).collect();
    w.wait_until("every live label packed in Tryton and the voided one cancelled", Duration::from_secs(120), async || {
        let a = w.shipments(paid_three).await;
        let b = w.shipments(paid_one).await;
        a.iter().filter(|s| s["state"] == "packed").count() == 2
            && b.iter().filter(|s| s["state"] == "packed").count() == 1
            && b.iter().any(|s| s["state"] == "cancelled")
    })
    .await;
    // No scan yet: nothing is done.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for sale in [paid_one, paid_three] {
        assert!(w.shipments(sale).await.iter().all(|s| s["state"] != "done"), "a shipment was done before its first scan");
    }

    // 3. The carrier: an electronic notice is not a scan; the first real scan is.
    for number in &live {
        w.control("/tracking/events", json!({"trackingNumber": number, "statusCode": "NY", "statusDetailCode": "ELEC_ADVICE_RECD_BY_CARRIER"})).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(w.shipments(paid_three).await.iter().all(|s| s["state"] != "done"), "an electronic notice completed a shipment");
    for number in &live {
        w.control("/tracking/events", json!({"trackingNumber": number, "statusCode": "IT"})).await;
    }
    w.wait_until("both sales sent in Tryton", Duration::from_secs(120), async || {
        let sales = w.tryton("sale.sale", &["shipment_state"], json!([["id", "in", [paid_one, paid_three]]])).await;
        sales.as_array().unwrap().iter().all(|s| s["shipment_state"] == "sent")
    })
    .await;

    // Read straight from Tryton: one done shipment per label, with its live number.
    let mut done_refs = Vec::new();
    for sale in [paid_one, paid_three] {
        for s in w.shipments(sale).await {
            match s["state"].as_str().unwrap() {
                "done" => {
                    done_refs.push(s["shipping_reference"].as_str().unwrap().to_string());
                    let packages: Vec<&str> =
                        s["packages"].as_array().unwrap().iter().filter_map(|p| p["shipping_reference"].as_str()).collect();
                    assert_eq!(packages, vec![s["shipping_reference"].as_str().unwrap()], "the parcel carries the number");
                }
                "cancelled" => {
                    // The voided label's number stays on its cancelled shipment and parcel,
                    // marked dead, so a lookup by number finds only live parcels.
                    let dead = format!("VOID-{}", voided["trackingNumber"].as_str().unwrap());
                    assert_eq!(s["shipping_reference"], json!(dead), "only the voided label is cancelled");
                    let packages: Vec<&str> =
                        s["packages"].as_array().unwrap().iter().filter_map(|p| p["shipping_reference"].as_str()).collect();
                    assert_eq!(packages, vec![dead.as_str()], "its parcel is marked too");
                }
                other => panic!("sale {sale} has a shipment left {other}: {s}"),
            }
        }
    }
    done_refs.sort();
    let mut expected = live.clone();
    expected.sort();
    assert_eq!(done_refs, expected, "one done shipment per live label, with the live tracking number");
    assert_eq!(w.shipments(paid_three).await.iter().filter(|s| s["state"] == "done").count(), 2, "two parcels, two shipments");

    // 4. Month end, early: `shipledger costs post --until today` posts the labels'
    // costs, in USD from ShipStation, as one GBP journal at Tryton's own rate, with
    // the USD originals; the voided label's cost and its reversal cancel out.
    let erp = TrytonClient::new(&w.db.url, &w.db.key, TrytonSettings { journal_party: Some("Royal Mail".into()), ..Default::default() }).unwrap();
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    // The seed's USD rate is a month old: finance enters a fresh one (two days ago, so
    // it covers a Pacific ship date of yesterday too).
    let fresh = today.checked_sub(jiff::Span::new().days(2)).unwrap();
    let usd_id = w.db.seed["currencies"]["USD"].as_i64().unwrap();
    w.db.send(
        reqwest::Method::POST,
        "currency.currency.rate",
        json!({"currency": usd_id, "date": {"__class__": "date", "year": fresh.year(), "month": fresh.month(), "day": fresh.day()}, "rate": {"__class__": "Decimal", "decimal": "1.2617"}}),
    )
    .await;
    let rate = erp.fx_quote(Currency::USD, Currency::GBP, today).await.unwrap().expect("Tryton has today's USD rate");
    assert_eq!(rate.date, fresh);
    let shipments = w.ss_get("/shipments?pageSize=100").await;
    let mut total_gbp = Money::from_minor(0, Currency::GBP);
    let mut total_usd = Money::from_minor(0, Currency::USD);
    for s in shipments["shipments"].as_array().unwrap().iter().filter(|s| s["voided"] == json!(false)) {
        let usd = Money::parse(&s["shipmentCost"].to_string(), Currency::USD, Rounding::HalfEven).unwrap();
        total_gbp = total_gbp.checked_add(&shipledger_core::fx::convert(usd, rate.rate_from, rate.rate_to, Currency::GBP).unwrap()).unwrap();
        total_usd = total_usd.checked_add(&usd).unwrap();
    }
    assert_eq!(total_usd, Money::from_minor(410 + 320 + 575, Currency::USD), "the voided label's cost is not in it");
    let (ok, _, said) = w.shipledger(&["costs", "post", "--until", &today.to_string()]);
    assert!(ok, "costs post: {said}");
    assert!(said.contains("1 journal(s) posted"), "{said}");
    let moves = w
        .tryton(
            "account.move",
            &["state", "lines.debit", "lines.credit", "lines.second_currency.code", "lines.amount_second_currency"],
            json!([["description", "like", format!("%acme-tryton/costs/{today}..{today}/r0]")]]),
        )
        .await;
    let moves = moves.as_array().unwrap();
    assert_eq!(moves.len(), 1);
    assert_eq!(moves[0]["state"], "posted", "Tryton accepted the journal");
    let dec = |v: &Value| v["decimal"].as_str().unwrap().parse::<Decimal>().unwrap();
    let move_lines = moves[0]["lines"].as_array().unwrap();
    let debit: Decimal = move_lines.iter().map(|l| dec(&l["debit"])).sum();
    let credit: Decimal = move_lines.iter().map(|l| dec(&l["credit"])).sum();
    assert_eq!(debit, credit, "every posted move is balanced");
    assert_eq!(debit, total_gbp.to_decimal());
    assert!(move_lines.iter().all(|l| l["second_currency"]["code"] == "USD"));
    let second: Decimal = move_lines.iter().filter(|l| dec(&l["debit"]) > Decimal::ZERO).map(|l| dec(&l["amount_second_currency"]).abs()).sum();
    assert_eq!(second, total_usd.to_decimal(), "the debit lines carry the USD originals");
    // Every posted move in this company balances.
    let all = w.tryton("account.move", &["lines.debit", "lines.credit"], json!([["state", "=", "posted"]])).await;
    for m in all.as_array().unwrap() {
        let lines = m["lines"].as_array().unwrap();
        let d: Decimal = lines.iter().map(|l| dec(&l["debit"])).sum();
        let c: Decimal = lines.iter().map(|l| dec(&l["credit"])).sum();
        assert_eq!(d, c, "move {} is balanced", m["id"]);
    }

    // 4b. The carrier's invoice comes: a fuel surcharge on one parcel, 0.30 more
    // postage on another, and a parcel nobody here shipped. A bad amount stops the
    // file first, with nothing imported; fixed, the adjustments post as the next
    // GBP journal in Tryton, balanced and to the penny at Tryton's rate.
    let live_labels: Vec<&Value> = shipments["shipments"].as_array().unwrap().iter().filter(|s| s["voided"] == json!(false)).collect();
    let carrier = live_labels[0]["carrierCode"].as_str().unwrap().to_string();
    let (t1, t2) = (live_labels[0]["trackingNumber"].as_str().unwrap(), live_labels[1]["trackingNumber"].as_str().unwrap());
    let cost = |s: &Value| Money::parse(&s["shipmentCost"].to_string(), Currency::USD, Rounding::HalfEven).unwrap();
    let (c1, c2) = (cost(live_labels[0]), cost(live_labels[1]));
    let dir = tempfile::tempdir().unwrap();
    let invoice = dir.path().join("carrier-invoice.csv");
    let write = |amount_of_fuel: &str| {
        std::fs::write(
            &invoice,
            format!(
                "tracking_number,invoice_number,invoice_date,charge_type,amount,currency\n\
                 {t1},INV-77,{today},Transportation,{},USD\n\
                 {t1},INV-77,{today},Fuel Surcharge,{amount_of_fuel},USD\n\
                 {t2},INV-77,{today},Transportation,{},USD\n\
                 1ZNOTOURS,INV-77,{today},Transportation,9.99,USD\n",
                c1.to_decimal(),
                c2.checked_add(&Money::from_minor(30, Currency::USD)).unwrap().to_decimal()
            ),
        )
        .unwrap();
    };
    let path = invoice.display().to_string();
    write("1.1O");
    let (ok, _, said) = w.shipledger(&["costs", "import-invoice", &path, "--carrier", &carrier]);
    assert!(!ok, "a bad amount stops the import: {said}");
    assert!(said.contains("carrier-invoice.csv, row 3, amount") && said.contains("Nothing from"), "{said}");
    let (ok, stdout, said) = w.shipledger(&["costs", "list", "--format", "json"]);
    assert!(ok, "{said}");
    assert!(!String::from_utf8_lossy(&stdout).contains("invoice_adjustment"), "nothing of the bad file was imported");
    write("1.10");
    let (ok, _, said) = w.shipledger(&["costs", "import-invoice", &path, "--carrier", &carrier]);
    assert!(ok, "import: {said}");
    assert!(said.contains("1 invoice(s) imported") && said.contains("2 adjustment(s) netting 1.40 USD") && said.contains("1 unmatched parcel(s)"), "{said}");
    let (ok, _, said) = w.shipledger(&["costs", "import-invoice", &path, "--carrier", &carrier]);
    assert!(ok && said.contains("0 invoice(s) imported, 1 already imported; 0 adjustment(s)"), "the same invoice again changes nothing: {said}");
    let unmatched: Vec<Value> = w.open_exceptions().into_iter().filter(|e| e["kind"] == "invoice_charge_unmatched").collect();
    assert_eq!(unmatched.len(), 1, "{unmatched:?}");
    assert_eq!((unmatched[0]["owner"].as_str(), unmatched[0]["record"].as_str()), (Some("finance"), Some(format!("invoice_charge:{carrier}:INV-77:1ZNOTOURS").as_str())));
    let tomorrow = today.checked_add(jiff::Span::new().days(1)).unwrap();
    let (ok, _, said) = w.shipledger(&["costs", "post", "--until", &tomorrow.to_string()]);
    assert!(ok && said.contains("1 journal(s) posted"), "the adjustments post in the next batch: {said}");
    let moves = w
        .tryton("account.move", &["state", "lines.debit", "lines.credit"], json!([["description", "like", format!("%acme-tryton/costs/{tomorrow}..{tomorrow}/r0]")]]))
        .await;
    let moves = moves.as_array().unwrap();
    assert_eq!(moves.len(), 1, "{moves:?}");
    assert_eq!(moves[0]["state"], "posted");
    let lines = moves[0]["lines"].as_array().unwrap();
    let debit: Decimal = lines.iter().map(|l| dec(&l["debit"])).sum();
    let credit: Decimal = lines.iter().map(|l| dec(&l["credit"])).sum();
    assert_eq!(debit, credit, "the adjustments' move is balanced");
    let gbp = |minor: i64| shipledger_core::fx::convert(Money::from_minor(minor, Currency::USD), rate.rate_from, rate.rate_to, Currency::GBP).unwrap();
    assert_eq!(debit, gbp(110).checked_add(&gbp(30)).unwrap().to_decimal(), "each adjustment converted at Tryton's rate, to the penny");

    // 5. The reconciler judges invoicing against Tryton too: every sale was invoiced
    // when processed (invoice method `order`) and its invoice posted, so what shipped
    // is what was invoiced, and the held sales can still ship.
    let (ok, _, said) = w.shipledger(&["reconcile"]);
    assert!(ok, "reconcile: {said}");
    assert!(!said.contains("does not report invoicing"), "{said}");
    assert!(!said.contains("shipped_not_invoiced") && !said.contains("invoiced_not_shipped"), "{said}");

    // 6. The close report of this month lists the same totals as the journals Tryton
    // holds for it, to the penny, and its verdict names what keeps the month open:
    // it has not ended, and UPS billed a parcel nobody here shipped. Nothing else
    // (the held sales are work for the warehouse and finance, not the books').
    let period = format!("{:04}-{:02}", today.year(), today.month());
    let (ok, stdout, said) = w.shipledger(&["close-report", "--period", &period, "--format", "json"]);
    assert!(ok, "close-report: {said}");
    let report: Value = serde_json::from_slice(&stdout).unwrap();
    let month_moves = w
        .tryton("account.move", &["state", "lines.debit", "lines.credit"], json!([["description", "like", format!("%acme-tryton/costs/{period}-%")]]))
        .await;
    let month_moves = month_moves.as_array().unwrap();
    assert!(!month_moves.is_empty());
    let debit_of = |m: &Value| m["lines"].as_array().unwrap().iter().map(|l| dec(&l["debit"])).sum::<Decimal>();
    let in_tryton: Decimal = month_moves.iter().map(debit_of).sum();
    let amount = |v: &Value| v["amount"].as_str().unwrap().parse::<Decimal>().unwrap();
    let journals = report["journals"].as_array().unwrap();
    assert_eq!(journals.len(), month_moves.len(), "one journal per move Tryton holds for the month: {journals:#?}");
    assert!(journals.iter().all(|j| j["state"] == "posted"));
    assert_eq!(journals.iter().map(|j| amount(&j["total"])).sum::<Decimal>(), in_tryton, "the journals' totals are Tryton's, to the penny");
    assert_eq!(amount(&report["posting"]["posted"]), in_tryton, "what the report says is posted is what Tryton holds");
    let by_carrier: Decimal = report["posting"]["posted_by_carrier"].as_array().unwrap().iter().map(|g| amount(&g["base"])).sum();
    assert_eq!(by_carrier, in_tryton);
    assert_eq!(report["base_currency"], "GBP");
    let blockers: Vec<(String, String, String)> = report["verdict"]["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["code"].as_str().unwrap().into(), b["record"].as_str().unwrap().into(), b["owner"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        blockers,
        vec![
            ("period_not_ended".to_string(), format!("period:{period}"), "finance".to_string()),
            ("invoice_charge_unmatched".into(), format!("invoice_charge:{carrier}:INV-77:1ZNOTOURS"), "finance".into()),
        ],
        "{:#}",
        report["verdict"]
    );
    assert_eq!(report["verdict"]["ready"], json!(false));
    let (ok, stdout, said) = w.shipledger(&["close-report", "--period", &period]);
    assert!(ok, "{said}");
    let md = String::from_utf8(stdout).unwrap();
    assert!(md.contains(&format!("## Verdict: {period} is not ready to close: 2 blockers")) && md.contains("1ZNOTOURS"), "{md}");
    let (ok, stdout, said) = w.shipledger(&["close-report", "--period", &period, "--format", "csv"]);
    assert!(ok, "{said}");
    let csv = String::from_utf8(stdout).unwrap();
    assert!(csv.starts_with("section,item,record,owner,carrier,currency,count,amount,base_amount,date,detail\n"), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("blocker,invoice_charge_unmatched,")), "{csv}");
}

/// ShipStation's order for a sale, if it has one.
async fn ss_order(w: &World, sale: i64) -> Option<Value> {
    let orders = w.ss_get("/orders?pageSize=100").await;
    orders["orders"].as_array().unwrap().iter().find(|o| o["orderKey"] == format!("shipledger:acme-tryton:{sale}")).cloned()
}

fn id_in(v: &Value, field: &str) -> i64 {
    v[field].as_i64().or_else(|| v[field]["id"].as_i64()).unwrap_or_else(|| panic!("no {field} id in {v}"))
}

/// How long a fix may take to reach ShipStation: the recheck interval, plus a poll
/// and a push.
const RECHECK: Duration = Duration::from_secs(4);
const WITHIN_RECHECK: Duration = Duration::from_secs(4 + 15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_against_a_real_tryton_releases_held_sales_once_fixed_where_the_clerk_fixes_them_and_withdraws_a_sale_whose_shipment_is_cancelled() {
    let Some(db) = TrytonDb::create("e2erecheck") else { return };
    let (bob, alice, unpaid, weightless) =
        (sale_id(&db, "SHOP-1002"), sale_id(&db, "SHOP-1001"), sale_id(&db, "SHOP-1003"), sale_id(&db, "SHOP-1004"));
    // Bob's address lost its postal code before shipledger first saw his sale.
    let address = id_in(&db.get(&format!("sale.sale/{bob}"), &["shipment_address"], None).await, "shipment_address");
    db.send(reqwest::Method::PUT, &format!("party.address/{address}"), json!({"postal_code": null})).await;
    let (w, _serve, _dir) = serve(db, &format!("held_recheck_interval = \"{}s\"", RECHECK.as_secs())).await;

    w.wait_until("Alice's sale in ShipStation and the three others held", Duration::from_secs(90), async || {
        // ShipStation first: `exceptions list` must not open the store before serve
        // has made it.
        if w.ss.stats()["orders"] != json!(1) {
            return false;
        }
        let kinds: Vec<String> = w.open_exceptions().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect();
        ["held_unpaid", "held_missing_weight", "held_incomplete_address"].iter().all(|k| kinds.iter().any(|h| h == k))
    })
    .await;
    assert!(ss_order(&w, alice).await.is_some());

    // The clerk fixes each where the hold message says; none of it touches the sale.
    let kg = id_in(&w.db.get(&format!("product.template/{}", w.db.id("/products/MUG-WHT/template_id")), &["weight_uom"], None).await, "weight_uom");
    w.db.send(
        reqwest::Method::PUT,
        &format!("product.template/{}", w.db.id("/products/GIFT-CARD-BOX/template_id")),
        json!({"weight": 0.12, "weight_uom": kg}),
    )
    .await;
    w.db.send(reqwest::Method::PUT, &format!("party.address/{address}"), json!({"postal_code": "M3 2BW"})).await;
    w.wait_until("the weightless and the addressless sales released within the recheck interval", WITHIN_RECHECK, async || {
        ss_order(&w, weightless).await.is_some() && ss_order(&w, bob).await.is_some()
    })
    .await;
    let gift = ss_order(&w, weightless).await.unwrap();
    assert!(gift["items"].as_array().unwrap().iter().any(|i| i["sku"] == "GIFT-CARD-BOX" && i["weight"]["value"] == json!(120)), "{gift}");
    assert_eq!(ss_order(&w, bob).await.unwrap()["shipTo"]["postalCode"], "M3 2BW");

    // The unpaid sale: a card payment submitted and processing is not money yet.
    let total = w.db.seed["sales"].as_array().unwrap().iter().find(|s| s["id"] == unpaid).unwrap()["total_amount"].clone();
    let party = id_in(&w.db.get(&format!("sale.sale/{unpaid}"), &["party"], None).await, "party");
    let payment = w
        .db
        .send(
            reqwest::Method::POST,
            "account.payment",
            json!({
                "company": w.db.id("/company/id"), "journal": w.db.id("/payment_journal_id"), "kind": "receivable",
                "party": party, "origin": format!("sale.sale,{unpaid}"),
                "amount": {"__class__": "Decimal", "decimal": total},
                "date": {"__class__": "date", "year": 2026, "month": 11, "day": 24},
            }),
        )
        .await;
    let pid = payment.as_i64().or_else(|| payment["id"].as_i64()).expect("the payment id");
    w.db.button(&format!("account.payment/{pid}/submit")).await;
    w.db.proteus(&format!("payment = Model.get('account.payment')({pid})\npayment.click('process_wizard')"));
    tokio::time::sleep(RECHECK * 2).await;
    assert!(ss_order(&w, unpaid).await.is_none(), "an authorised payment does not release the sale");
    assert!(w.open_exceptions().iter().any(|e| e["kind"] == "held_unpaid" && e["record"] == format!("order:{unpaid}")));
    w.db.button(&format!("account.payment/{pid}/succeed")).await;
    w.wait_until("the sale released once its payment succeeded", WITHIN_RECHECK, async || ss_order(&w, unpaid).await.is_some()).await;

    // Alice's shipment is cancelled in Tryton and the exception handled by ignoring
    // the moves: the sale is done with nothing shipped.
    let shipment = w.shipments(alice).await;
    w.db.button(&format!("stock.shipment.out/{}/cancel", shipment[0]["id"])).await;
    let moves = w.tryton("stock.move", &["origin"], json!([["origin.sale", "=", alice, "sale.line"]])).await;
    for m in moves.as_array().unwrap() {
        let line = m["origin"].as_str().and_then(|o| o.strip_prefix("sale.line,")).unwrap();
        w.db.send(reqwest::Method::PUT, &format!("sale.line/{line}"), json!({"moves_ignored": [["add", [m["id"]]]]})).await;
    }
    w.db.button(&format!("sale.sale/{alice}/process")).await;
    w.wait_until("Alice's order cancelled in ShipStation", WITHIN_RECHECK, async || {
        ss_order(&w, alice).await.is_some_and(|o| o["orderStatus"] == "cancelled")
    })
    .await;
    let withdrawn: Vec<Value> =
        w.open_exceptions().into_iter().filter(|e| e["kind"] == "order_withdrawn" && e["record"] == format!("order:{alice}")).collect();
    assert_eq!(withdrawn.len(), 1, "one ops exception says why");
    assert_eq!(withdrawn[0]["owner"], "ops");
    let text = withdrawn[0].to_string();
    assert!(text.contains("sale done in Tryton with its shipment cancelled and the moves ignored"), "{text}");
}

/// check-config --connect's rate item against the real Tryton: the seeded USD rate
/// (30 days old) is usable within a 40-day fx_max_age, EUR's (of 2000) is not, and
/// the failed item names EUR and the sources tried; GBP, the base, needs none.
#[tokio::test]
async fn check_config_finds_trytons_usd_rate_and_names_eur_whose_rate_is_too_old() {
    let Some(db) = TrytonDb::create("fxcheck") else { return };
    let toml = format!(
        r#"
[store]
url = "sqlite://unused.db"

[[connections]]
name = "acme-tryton"

[connections.erp]
kind = "tryton"
url = "{}"
api_key_env = "FXCHECK_TRYTON_KEY"

[connections.shipstation]
base_url = "http://127.0.0.1:9"
api_key_env = "FXCHECK_SS_KEY"
api_secret_env = "FXCHECK_SS_SECRET"

[connections.policy]
currencies = ["USD", "EUR", "GBP"]
fx_max_age = "40days"
"#,
        db.url
    );
    let key = db.key.clone();
    let env = move |name: &str| Some(if name == "FXCHECK_TRYTON_KEY" { key.clone() } else { "unused".into() });
    let config = shipledger_engine::config::Config::parse(&toml, "fx.toml", &env).unwrap();
    let c = &config.connections[0];
    let erp = shipledger_engine::erp_for(c).unwrap();
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let items = shipledger_engine::check::fx_rates(c, erp.as_ref(), today).await;
    let whats: Vec<&str> = items.iter().map(|i| i.what.as_str()).collect();
    assert_eq!(whats, vec!["rate USD→GBP", "rate EUR→GBP"], "{items:#?}");
    assert_eq!(items[0].status, shipledger_erp::CheckStatus::Ok, "{items:#?}");
    assert!(items[0].detail.starts_with("erp (tryton:currency.currency.rate:"), "{}", items[0].detail);
    assert_eq!(items[1].status, shipledger_erp::CheckStatus::Failed, "{items:#?}");
    assert!(items[1].detail.contains("EUR") && items[1].detail.contains("sources tried (erp)") && items[1].detail.contains("2000-01-01"), "{}", items[1].detail);
}
