//! The REST API against its own OpenAPI document, by a tool we did not write:
//! schemathesis (PyPI, installed by `scripts/api-test-deps.sh`) reads
//! `/api/v1/openapi.json` from a running `shipledger serve` and sends generated
//! requests (documented examples, boundary values, fuzzed input; capped so the run
//! stays short) to every route with an admin token, over a store that has real
//! exceptions (ShipStation refused some pushes). It must find no server error, no
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
