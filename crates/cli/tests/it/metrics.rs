//! `/metrics` during and after a short `shipledger demo`: scraped like Prometheus
//! would, parsed as the text exposition format, and held against what the store and
//! the run's report say.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prometheus_parse::{Sample, Scrape, Value};
use shipledger_store::{ExceptionFilter, ExceptionState, JobState};

use crate::support::Process;

const CONNECTION: &str = "demo";

async fn scrape(http: &reqwest::Client, base: &str) -> Option<Scrape> {
    let text = http.get(format!("{base}/metrics")).send().await.ok()?.text().await.ok()?;
    Some(Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the exposition format parses"))
}

/// Samples of `metric` whose labels include every `(name, value)` of `labels`.
fn samples<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

fn number(sample: &Sample) -> f64 {
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{} is not a single number: {other:?}", sample.metric),
    }
}

/// The sum over every sample of `metric` matching `labels`.
fn total(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    samples(scrape, metric, labels).into_iter().map(number).sum()
}

const CREATEORDERS: &[(&str, &str)] = &[("system", "shipstation_v1"), ("endpoint", "/orders/createorders"), ("method", "POST")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_demo_shows_its_requests_jobs_webhooks_and_open_exceptions_on_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let log = std::fs::File::create(dir.path().join("demo.log")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(env!("CARGO_BIN_EXE_shipledger"))
        .args(["demo", "--orders", "30", "--seed", "5", "--until-idle", "--spread", "5", "--timeout", "240", "--linger", "30"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--report")
        .arg(&report)
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the shipledger binary runs");
    let mut child = Process(child);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let demo_log = || std::fs::read_to_string(dir.path().join("demo.log")).unwrap_or_default();

    // While it works: orders go to ShipStation and the outbox has kinds of jobs.
    let working = loop {
        assert!(started.elapsed() < Duration::from_secs(120), "no createorders on /metrics in time:\n{}", demo_log());
        if let Some(s) = scrape(&http, &base).await
            && total(&s, "shipledger_external_requests_total", CREATEORDERS) > 0.0
        {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(!samples(&working, "shipledger_jobs", &[("connection", CONNECTION), ("kind", "sync_order")]).is_empty());

    // The end: the report is written, the server lingers for the last scrape.
    let report: serde_json::Value = loop {
        assert!(started.elapsed() < Duration::from_secs(280), "the demo wrote no report in time:\n{}", demo_log());
        if let Ok(text) = std::fs::read_to_string(&report)
            && let Ok(r) = serde_json::from_str(&text)
        {
            break r;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("the demo exited ({status}) before its report:\n{}", demo_log());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(report["idle"], serde_json::json!(true), "{report}");
    // Past one gauge refresh, so orders and jobs are counted as they ended.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = scrape(&http, &base).await.expect("the demo's server answers after its report");
    let store = shipledger_store::open(&format!("sqlite://{}", dir.path().join("demo.db").display())).await.unwrap();

    // ShipStation requests: counted per templated endpoint, never an id.
    let createorders = total(&end, "shipledger_external_requests_total", CREATEORDERS);
    assert!(createorders > 0.0);
    assert_eq!(
        createorders,
        report["shipstation"]["requests"]["createorders"].as_u64().unwrap() as f64,
        "every createorders the sandbox saw is counted, once"
    );
    for s in samples(&end, "shipledger_external_requests_total", &[]) {
        let endpoint = s.labels.get("endpoint").unwrap();
        let holds_an_id = |seg: &str| seg.bytes().any(|b| b.is_ascii_digit()) && !(seg.starts_with('v') && seg.len() <= 3);
        assert!(!endpoint.contains('?') && !endpoint.split('/').any(holds_an_id), "{endpoint}");
    }
    assert!(total(&end, "shipledger_external_requests_total", &[("system", "erp")]) > 0.0, "the ERP is counted too");
    assert!(total(&end, "shipledger_external_requests_total", &[("system", "shipstation_v2")]) > 0.0, "v2 tracking reads are counted");

    // Its latency: a real histogram with buckets, as many observations as requests.
    let histogram = samples(&end, "shipledger_external_request_duration_seconds", CREATEORDERS);
    assert_eq!(histogram.len(), 1, "{histogram:?}");
    let Value::Histogram(buckets) = &histogram[0].value else { panic!("not a histogram: {:?}", histogram[0]) };
    assert_eq!(buckets.len(), shipledger_core::metrics::LATENCY_BUCKETS.len() + 1, "each bucket and +Inf: {buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count), "cumulative: {buckets:?}");
    assert_eq!(buckets.last().unwrap().count, createorders);
    assert_eq!(total(&end, "shipledger_external_request_duration_seconds_count", CREATEORDERS), createorders);

    // The rate budget left, per key fingerprint (never the API key itself).
    let budget = samples(&end, "shipledger_rate_budget_remaining", &[]);
    assert!(!budget.is_empty(), "no rate budget gauge");
    for b in &budget {
        let key = b.labels.get("key").unwrap();
        assert!(key.starts_with("shipstation-v1:") && !key.contains("sandbox-key"), "{key}");
        assert!((0.0..=120.0).contains(&number(b)), "{b:?}");
    }

    // Webhook intake, from both receivers.
    for source in ["v1", "v2"] {
        let accepted = total(&end, "shipledger_webhooks_received_total", &[("connection", CONNECTION), ("source", source), ("outcome", "accepted")]);
        assert!(accepted > 0.0, "no {source} webhook counted");
    }

    // Jobs: every kind the run used has pending and running gauges that agree with
    // the store, an age, and its finished jobs counted.
    let mut in_store: BTreeMap<(String, &str), f64> = BTreeMap::new();
    for (kind, state, n) in store.count_jobs(CONNECTION).await.unwrap() {
        if matches!(state, JobState::Pending | JobState::Running) {
            in_store.insert((kind, state.as_str()), n as f64);
        }
    }
    for kind in ["sync_order", "ingest_v1_webhook", "ingest_v2_track", "write_fulfilment"] {
        for state in ["pending", "running"] {
            let gauge = samples(&end, "shipledger_jobs", &[("connection", CONNECTION), ("kind", kind), ("state", state)]);
            assert_eq!(gauge.len(), 1, "no {state} gauge for {kind}");
            assert_eq!(number(gauge[0]), in_store.get(&(kind.to_string(), state)).copied().unwrap_or(0.0), "{kind} {state}");
        }
        let age = samples(&end, "shipledger_job_oldest_pending_age_seconds", &[("connection", CONNECTION), ("kind", kind)]);
        assert_eq!(age.len(), 1, "no age gauge for {kind}");
        assert!(number(age[0]) >= 0.0);
        let done = total(&end, "shipledger_jobs_finished_total", &[("connection", CONNECTION), ("kind", kind), ("state", "done")]);
        assert!(done > 0.0, "no {kind} job counted as done");
    }

    // Orders by state, as the store counts them.
    for (state, n) in store.count_orders_by_state(CONNECTION).await.unwrap() {
        assert_eq!(total(&end, "shipledger_orders", &[("connection", CONNECTION), ("state", state.as_str())]), n as f64, "{state}");
    }

    // Open exceptions by kind and owner: exactly what the store has open.
    let open = store
        .list_exceptions(ExceptionFilter { connection: Some(CONNECTION.into()), state: Some(ExceptionState::Open), limit: 0, ..Default::default() })
        .await
        .unwrap();
    let mut expected: BTreeMap<(String, String), f64> = BTreeMap::new();
    for e in &open {
        *expected.entry((e.kind.code().to_string(), e.owner.to_string())).or_default() += 1.0;
    }
    assert!(expected.contains_key(&("held_unpaid".to_string(), "finance".to_string())), "{expected:?}");
    let gauges: BTreeMap<(String, String), f64> = samples(&end, "shipledger_exceptions_open", &[("connection", CONNECTION)])
        .into_iter()
        .filter(|s| number(s) > 0.0)
        .map(|s| ((s.labels.get("kind").unwrap().to_string(), s.labels.get("owner").unwrap().to_string()), number(s)))
        .collect();
    assert_eq!(gauges, expected);

    let _ = child.0.kill();
}
