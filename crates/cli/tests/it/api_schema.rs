//! The REST API against its own OpenAPI document, by a tool we did not write:
//! schemathesis (PyPI, installed by `scripts/api-test-deps.sh`) reads
//! `/api/v1/openapi.json` from a running `shipledger serve` and sends generated
//! requests (documented examples, boundary values, fuzzed input; capped so the run
//! stays short) to every route with an admin token, over a store that has real
//! exceptions (ShipStation refused some pushes), a reconciler run with its findings,
//! and a label with its cost entries and their batch. It must find no server error, no
//! status the document does not list for the route, no body that does not match
//! its schema and no wrong content type. Token revocation is left out (the fuzzer
//! would revoke its own token); `crates/server/tests/it/api.rs` covers it.
//!
//! Without `.cache/apitest` the test is skipped loudly, or fails when `CI` is set.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shipledger_sandbox::erp::{SandboxErp, SandboxErpConfig};
use shipledger_sandbox::traffic::{Traffic, TrafficConfig};
use shipledger_sandbox::{Faults, Sandbox, SandboxConfig};

use crate::support::{Process, TestConfig, write_config};

fn schemathesis() -> Option<std::path::PathBuf> {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/apitest/venv/bin/schemathesis");
    if bin.is_file() {
        return Some(bin);
    }
    let message = "schemathesis is not installed in .cache/apitest; run scripts/api-test-deps.sh";
    if std::env::var_os("CI").is_some() {
        panic!("the schema-driven API test needs it in CI: {message}");
    }
    eprintln!("\n==================================================================\nSKIPPED: {message}\n==================================================================");
    None
}

fn shipledger(args: &[&str], config: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shipledger"));
    c.args(args)
        .arg("--config")
        .arg(config)
        .env("T_ERP_KEY", "sandbox-erp-key")
        .env("T_SS_KEY", "sandbox-key")
        .env("T_SS_SECRET", "sandbox-secret")
        .env("RUST_LOG", "warn");
    c
}

/// A label of `acme` with its postage (converted) and insurance (waiting for a rate),
/// the postage in a planned batch.
async fn seed_costs(url: &str) {
    use shipledger_core::cost::{Charge, CostSource, LabelFacts, NewCostEntry};
    use shipledger_core::fx::{Conversion, RateSource};
    use shipledger_core::journal::{JournalLine, JournalWrite, Window};
    use shipledger_core::{Currency, Money};
    use shipledger_store::{BatchMember, BatchState, Change, NewCostBatch, NewCostConversion, ShipmentKind, ShipmentLine, ShipmentState, ShipmentUpsert};

    let store = shipledger_store::open(url).await.unwrap();
    store.ensure_connection("acme", jiff::Timestamp::now()).await.unwrap();
    let now = jiff::Timestamp::now();
    let day = Window { start: now.to_zoned(jiff::tz::TimeZone::UTC).date(), end: now.to_zoned(jiff::tz::TimeZone::UTC).date() };
    let label = ShipmentUpsert {
        shipment_key: "label:8001".into(),
        kind: ShipmentKind::Label,
        ss_id: 8001,
        ss_order_id: 9001,
        ss_order_key: None,
        erp_id: Some("SO-1".into()),
        carrier: "ups".into(),
        service: None,
        tracking_number: Some("1Z8001".into()),
        ship_date: Some(day.start),
        cost_minor: Some(1234),
        cost_currency: Some("USD".into()),
        ss_created_at: now,
        voided: false,
        voided_at: None,
        lines: vec![ShipmentLine { line_item_key: Some("L1".into()), sku: Some("MUG".into()), quantity: 1 }],
        first_scan_at: None,
        tracking_status: None,
        state: ShipmentState::Packed,
        erp_fulfilment_id: None,
    };
    let facts = LabelFacts {
        shipment_key: label.shipment_key.clone(),
        erp_id: label.erp_id.clone(),
        ss_order_id: label.ss_order_id,
        carrier: label.carrier.clone(),
        service: None,
        ship_date: label.ship_date,
        label_created_at: now,
    };
    let usd = |minor| Money::from_minor(minor, Currency::USD);
    let postage = NewCostEntry::first(facts.clone(), Charge::Postage, usd(1234), CostSource::ShipstationV2);
    let insurance = NewCostEntry::first(facts, Charge::Insurance, usd(150), CostSource::ShipstationV2);
    let mut change = Change::new("acme", now);
    change.shipments.push(label);
    change.cost_entries = vec![postage.clone(), insurance];
    store.commit(change).await.unwrap();
    let conversion = Conversion::make(&postage.entry_key, postage.amount, Currency::GBP, "1.25".parse().unwrap(), rust_decimal::Decimal::ONE, day.start, day.start, RateSource::Fixed).unwrap();
    let gbp = conversion.base;
    let mut change = Change::new("acme", now);
    change.cost_conversions.push(NewCostConversion { conversion, source_detail: "fx_fixed USD/GBP".into() });
    store.commit(change).await.unwrap();
    let key = format!("acme/costs/{}..{}/r0", day.start, day.end);
    let zero = Money::from_minor(0, Currency::GBP);
    let mut change = Change::new("acme", now);
    change.cost_batches.push(NewCostBatch {
        batch_key: key.clone(),
        window: day,
        revision: 0,
        journal: JournalWrite {
            key,
            date: day.end,
            memo: "shipping costs".into(),
            lines: vec![
                JournalLine { account: "5.1.3".into(), debit: gbp, credit: zero, original: Some(usd(1234)), memo: None },
                JournalLine { account: "2.1.1".into(), debit: zero, credit: gbp, original: Some(usd(1234)), memo: None },
            ],
        },
        members: vec![BatchMember { entry_key: postage.entry_key.clone(), carried_from: None }],
        state: BatchState::Planned,
        detail: None,
        total: gbp,
    });
    store.commit(change).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_to_every_api_route_find_no_server_error_and_no_undocumented_answer() {
    let Some(schemathesis) = schemathesis() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ss = Sandbox::start(SandboxConfig { rate_limit: 1_000, ..SandboxConfig::default() }, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let erp = SandboxErp::start(SandboxErpConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    Traffic::plan(TrafficConfig { orders: 20, seed: 3, ..TrafficConfig::default() }).apply(&erp.base_url()).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let store = format!("sqlite://{}", dir.path().join("s.db").display());
    let config = write_config(
        dir.path(),
        &TestConfig {
            store_url: &store,
            listen: Some(&listen),
            connection: "acme",
            env: "T",
            erp: &erp.base_url(),
            ss: &ss.base_url(),
            v2: false,
            webhooks: false,
            policy: "[connections.policy.retry.sync_order]\nmax_attempts = 1\n",
        },
    );
    // Half the pushes are refused: given-up jobs with their exceptions, held orders too.
    ss.set_faults(Faults { createorders_fail: 0.5, ..Faults::default() }).unwrap();
    assert!(shipledger(&["sync", "--once"], &config).status().unwrap().success());
    // A reconciler run with its findings, and a label with its costs and their batch,
    // so the record routes answer real bodies too.
    let out = shipledger(&["reconcile"], &config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    seed_costs(&store).await;
    let out = shipledger(&["tokens", "create", "--name", "fuzzer", "--role", "admin", "--all-connections"], &config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let _serve = Process(shipledger(&["serve"], &config).stdout(Stdio::null()).stderr(log).spawn().unwrap());
    let base = format!("http://{listen}");
    let started = Instant::now();
    while reqwest::get(format!("{base}/api/v1/openapi.json")).await.map(|r| r.status().as_u16()).ok() != Some(200) {
        assert!(started.elapsed() < Duration::from_secs(60), "serve did not answer");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // schemathesis keeps a cache (`.schemathesis/`) where it runs: in the temporary
    // directory, not the source tree.
    let workdir = dir.path().to_path_buf();
    let run = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis)
            .current_dir(workdir)
            .args(["run", &format!("{base}/api/v1/openapi.json")])
            .args(["-H", &format!("Authorization: Bearer {secret}")])
            .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
            .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "25", "--seed", "7"])
            .args(["--exclude-method", "DELETE", "--no-color"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "schemathesis found problems:\n{report}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(report.contains("passed") && !report.contains(" failed"), "{report}");
    ss.shutdown().await;
    erp.shutdown().await;
}
