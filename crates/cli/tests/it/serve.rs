//! `shipledger check-config` and `shipledger serve`, as an operator runs them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shipledger_sandbox::erp::{SandboxErp, SandboxErpConfig};
use shipledger_sandbox::traffic::{Traffic, TrafficConfig};
use shipledger_sandbox::{Sandbox, SandboxConfig};

fn config_text(store: &str, erp: &str, ss: &str, listen: &str) -> String {
    format!(
        r#"
[store]
url = "{store}"

[server]
listen = "{listen}"

[[connections]]
name = "acme-uk"

[connections.erp]
kind = "sandbox"
url = "{erp}"
api_key_env = "T_ERP_KEY"

[connections.shipstation]
base_url = "{ss}"
api_key_env = "T_SS_KEY"
api_secret_env = "T_SS_SECRET"

[connections.policy]
poll_interval = "1s"
"#
    )
}

fn shipledger() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shipledger"));
    c.env("T_ERP_KEY", "sandbox-erp-key").env("T_SS_KEY", "sandbox-key").env("T_SS_SECRET", "a-very-secret-value");
    c
}

#[test]
fn check_config_accepts_a_good_file_without_printing_secrets_and_refuses_a_bad_one_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, config_text("sqlite://x.db", "http://127.0.0.1:1", "http://127.0.0.1:2", "127.0.0.1:0")).unwrap();
    let out = shipledger().args(["check-config", "--config"]).arg(&good).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("acme-uk") && stdout.contains("$T_SS_SECRET"), "{stdout}");
    assert!(!stdout.contains("a-very-secret-value"), "a secret was printed: {stdout}");

    let out = shipledger().env_remove("T_SS_SECRET").args(["check-config", "--config"]).arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("T_SS_SECRET"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[store]\nurl = \"mysql://nope\"\n").unwrap();
    let out = shipledger().args(["check-config", "--config"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_pushes_the_sandbox_erps_paid_orders_and_reports_them_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let ss = Sandbox::start(
        SandboxConfig { api_secret: "a-very-secret-value".into(), ..SandboxConfig::default() },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let erp = SandboxErp::start(SandboxErpConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let plan = Traffic::plan(TrafficConfig { orders: 60, seed: 9, ..TrafficConfig::default() });
    plan.apply(&erp.base_url()).await.unwrap();
    let releasable = plan.orders.iter().filter(|o| o.expected.to_string() == "released").count() as u64;

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("shipledger.toml");
    let store = format!("sqlite://{}", dir.path().join("s.db").display());
    std::fs::write(&config, config_text(&store, &erp.base_url(), &ss.base_url(), &format!("127.0.0.1:{port}"))).unwrap();
    let mut child = shipledger()
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let metrics = loop {
        if let Ok(r) = http.get(format!("{base}/metrics")).send().await {
            let text = r.text().await.unwrap();
            if text.contains(&format!("shipledger_orders{{connection=\"acme-uk\",state=\"pushed\"}} {releasable}")) {
                break text;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "serve did not push {releasable} orders in time");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(metrics.contains("shipledger_exceptions_open{connection=\"acme-uk\",kind=\"held_unpaid\",owner=\"finance\"}"), "{metrics}");
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("{base}/readyz")).send().await.unwrap().status(), 200);
    let stats = ss.stats();
    assert_eq!(stats["orders"].as_u64(), Some(releasable));
    let _ = child.kill();
    let _ = child.wait();
}
