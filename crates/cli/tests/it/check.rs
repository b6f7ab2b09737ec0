//! `shipledger check-config --connect`, as an operator runs it before `serve`: the
//! real binary reaches the sandbox ShipStation and the sandbox ERP, or a real Tryton,
//! with the configured credentials, reads only, and says per system what works and
//! what does not; it exits 0 when everything required works (warnings alone do not
//! fail) and 1 naming the cause when something does not.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use shipledger_sandbox::erp::{SandboxErp, SandboxErpConfig};
use shipledger_sandbox::{Sandbox, SandboxConfig};

use crate::tryton::tryton_db::TrytonDb;

const SECRET: &str = "a-very-secret-value";
const TOKEN: &str = "the-webhook-token-nobody-sees";

/// What the binary printed and how it exited.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    fn find_row(&self, system: &str, check: &str) -> Option<String> {
        self.stdout
            .lines()
            .find(|l| {
                let cells: Vec<&str> = l.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
                cells.get(1) == Some(&system) && cells.get(2) == Some(&check)
            })
            .map(str::to_string)
    }

    /// The table row of `system` / `check`, e.g. ("shipstation v1", "key").
    fn row(&self, system: &str, check: &str) -> String {
        self.find_row(system, check)
            .unwrap_or_else(|| panic!("no row {system} / {check}:\n{}", self.all()))
    }
}

/// `check-config --connect` on `config` with these environment variables, run off the
/// test's runtime so the sandboxes keep answering.
async fn check(config: &Path, env: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shipledger"));
    cmd.args(["check-config", "--connect", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    let outcome = Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for secret in [SECRET, TOKEN] {
        assert!(!outcome.all().contains(secret), "a secret was printed:\n{}", outcome.all());
    }
    outcome
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn sandbox_config(erp: &str, ss: &str, server: &str) -> String {
    format!(
        r#"
[store]
url = "sqlite://unused.db"
{server}
[[connections]]
name = "acme-uk"
[connections.erp]
kind = "sandbox"
url = "{erp}"
api_key_env = "C_ERP_KEY"
[connections.shipstation]
base_url = "{ss}"
api_key_env = "C_SS_KEY"
api_secret_env = "C_SS_SECRET"
v2_base_url = "{ss}"
v2_api_key_env = "C_SS_V2_KEY"
webhook_token_env = "C_HOOK_TOKEN"
"#
    )
}

const GOOD_ENV: &[(&str, &str)] = &[
    ("C_ERP_KEY", "sandbox-erp-key"),
    ("C_SS_KEY", "sandbox-key"),
    ("C_SS_SECRET", SECRET),
    ("C_SS_V2_KEY", "sandbox-v2-key"),
    ("C_HOOK_TOKEN", TOKEN),
];

fn env_with(var: &'static str, value: &'static str) -> Vec<(&'static str, &'static str)> {
    GOOD_ENV
        .iter()
        .map(|(k, v)| if *k == var { (*k, value) } else { (*k, *v) })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_the_sandboxes_every_system_is_ok_and_a_wrong_shipstation_key_fails_by_name_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let ss = Sandbox::start(
        SandboxConfig {
            api_secret: SECRET.into(),
            ..SandboxConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let erp = SandboxErp::start(SandboxErpConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let config = write(dir.path(), "c.toml", &sandbox_config(&erp.base_url(), &ss.base_url(), ""));

    let good = check(&config, GOOD_ENV).await;
    assert_eq!(good.code, Some(0), "{}", good.all());
    for (system, item) in [
        ("erp (sandbox)", "server"),
        ("erp (sandbox)", "key"),
        ("shipstation v1", "key"),
        ("shipstation v2", "key"),
    ] {
        assert!(good.row(system, item).contains(" ok "), "{}", good.row(system, item));
    }
    let budget = good.row("shipstation v1", "rate budget");
    assert!(budget.contains("requests left in this window"), "{budget}");
    let hooks = good.row("webhooks", "SHIP_NOTIFY");
    assert!(
        hooks.contains("warning") && hooks.contains("public_url is not set"),
        "a warning, not a failure: {hooks}"
    );

    let wrong = check(&config, &env_with("C_SS_KEY", "not-the-key")).await;
    assert_eq!(wrong.code, Some(1), "{}", wrong.all());
    let row = wrong.row("shipstation v1", "key");
    assert!(row.contains("FAILED") && row.contains("$C_SS_KEY"), "{row}");
    assert!(
        wrong.stderr.contains("shipstation v1 key") && wrong.stderr.contains("refused"),
        "the error names the cause: {}",
        wrong.stderr
    );
    assert!(wrong.row("erp (sandbox)", "key").contains(" ok "), "only ShipStation is blamed");

    let wrong_v2 = check(&config, &env_with("C_SS_V2_KEY", "not-the-v2-key")).await;
    assert_eq!(wrong_v2.code, Some(1), "{}", wrong_v2.all());
    assert!(
        wrong_v2.stderr.contains("shipstation v2 key") && wrong_v2.stderr.contains("$C_SS_V2_KEY"),
        "{}",
        wrong_v2.stderr
    );

    let wrong_erp = check(&config, &env_with("C_ERP_KEY", "not-the-erp-key")).await;
    assert_eq!(wrong_erp.code, Some(1), "{}", wrong_erp.all());
    assert!(wrong_erp.stderr.contains("erp (sandbox) key"), "{}", wrong_erp.stderr);

    let nowhere = write(
        dir.path(),
        "nowhere.toml",
        &sandbox_config("http://127.0.0.1:1", "http://127.0.0.1:1", ""),
    );
    let unreachable = check(&nowhere, GOOD_ENV).await;
    assert_eq!(unreachable.code, Some(1), "{}", unreachable.all());
    assert!(
        unreachable.row("erp (sandbox)", "server").contains("FAILED"),
        "{}",
        unreachable.all()
    );
    assert!(
        unreachable.row("shipstation v1", "server").contains("FAILED"),
        "{}",
        unreachable.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_check_finds_our_ship_notify_subscription_under_the_public_url_and_warns_about_a_stale_token() {
    let dir = tempfile::tempdir().unwrap();
    let ss = Sandbox::start(
        SandboxConfig {
            api_secret: SECRET.into(),
            ..SandboxConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let erp = SandboxErp::start(SandboxErpConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let server = "[server]\npublic_url = \"https://ops.example.com/shipledger/\"";
    let config = write(dir.path(), "c.toml", &sandbox_config(&erp.base_url(), &ss.base_url(), server));
    let subscribe = async |url: String, event: &str| {
        let r = reqwest::Client::new()
            .post(format!("{}/webhooks/subscribe", ss.base_url()))
            .basic_auth("sandbox-key", Some(SECRET))
            .json(&json!({"target_url": url, "event": event}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    };

    // Someone else's subscription, and ours for another event: not ours for SHIP_NOTIFY.
    subscribe("https://elsewhere.example.com/hook".into(), "SHIP_NOTIFY").await;
    subscribe(
        format!("https://ops.example.com/shipledger/webhooks/shipstation/acme-uk/{TOKEN}"),
        "ORDER_NOTIFY",
    )
    .await;
    let none = check(&config, GOOD_ENV).await;
    assert_eq!(
        none.code,
        Some(0),
        "a missing subscription is a warning (polling covers): {}",
        none.all()
    );
    let row = none.row("webhooks", "SHIP_NOTIFY");
    assert!(
        row.contains("warning") && row.contains("https://ops.example.com/shipledger/webhooks/shipstation/acme-uk/"),
        "{row}"
    );

    // Subscribed with a token that is no longer ours.
    subscribe(
        "https://ops.example.com/shipledger/webhooks/shipstation/acme-uk/an-old-token".into(),
        "SHIP_NOTIFY",
    )
    .await;
    let stale = check(&config, GOOD_ENV).await;
    assert_eq!(stale.code, Some(0), "{}", stale.all());
    let row = stale.row("webhooks", "SHIP_NOTIFY");
    assert!(
        row.contains("warning") && row.contains("another token") && !row.contains("an-old-token"),
        "{row}"
    );

    subscribe(
        format!("https://ops.example.com/shipledger/webhooks/shipstation/acme-uk/{TOKEN}"),
        "SHIP_NOTIFY",
    )
    .await;
    let subscribed = check(&config, GOOD_ENV).await;
    assert_eq!(subscribed.code, Some(0), "{}", subscribed.all());
    let row = subscribed.row("webhooks", "SHIP_NOTIFY");
    assert!(row.contains(" ok ") && row.contains("$C_HOOK_TOKEN"), "{row}");
    assert!(
        subscribed.stdout.contains("(0 warning(s))"),
        "nothing left to warn about: {}",
        subscribed.all()
    );
}

fn tryton_config(erp_url: &str, ss: &str) -> String {
    format!(
        r#"
[store]
url = "sqlite://unused.db"
[[connections]]
name = "acme-tryton"
[connections.erp]
kind = "tryton"
url = "{erp_url}"
api_key_env = "C_ERP_KEY"
[connections.shipstation]
base_url = "{ss}"
api_key_env = "C_SS_KEY"
api_secret_env = "C_SS_SECRET"
v2_base_url = "{ss}"
v2_api_key_env = "C_SS_V2_KEY"
webhook_token_env = "C_HOOK_TOKEN"
[connections.policy]
# The seed's latest USD rate is 30 days old (scripts/tryton/seed.py): a brand that
# updates its rates monthly says how old a rate may be.
fx_max_age = "40days"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_tryton_a_seeded_database_passes_and_a_wrong_key_or_a_missing_database_fails_naming_it() {
    let Some(db) = TrytonDb::create("checkok") else { return };
    let dir = tempfile::tempdir().unwrap();
    let ss = Sandbox::start(
        SandboxConfig {
            api_secret: SECRET.into(),
            ..SandboxConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let key: &'static str = Box::leak(db.key.clone().into_boxed_str());
    let env = env_with("C_ERP_KEY", key);
    let config = write(dir.path(), "t.toml", &tryton_config(&db.url, &ss.base_url()));

    let good = check(&config, &env).await;
    assert_eq!(good.code, Some(0), "{}", good.all());
    for item in [
        "server",
        "database",
        "key",
        "company",
        "modules",
        "package type",
        "carrier",
        "journal",
        "warehouse",
    ] {
        assert!(
            good.row("erp (tryton)", item).contains(" ok "),
            "{}",
            good.row("erp (tryton)", item)
        );
    }
    assert!(
        good.row("erp (tryton)", "package type").contains("stock.package.type"),
        "{}",
        good.all()
    );
    assert!(!good.all().contains(key), "the Tryton key was printed");

    let wrong_key = check(&config, &env_with("C_ERP_KEY", "not-the-tryton-key")).await;
    assert_eq!(wrong_key.code, Some(1), "{}", wrong_key.all());
    assert!(
        wrong_key.row("erp (tryton)", "database").contains(" ok "),
        "the database is there: {}",
        wrong_key.all()
    );
    assert!(
        wrong_key.stderr.contains("erp (tryton) key") && wrong_key.stderr.contains("401"),
        "{}",
        wrong_key.stderr
    );

    // A name no database has ever had on this Tryton (trytond keeps a pool per name).
    let missing_url = format!("{}_missing", db.url);
    let missing = write(dir.path(), "missing.toml", &tryton_config(&missing_url, &ss.base_url()));
    let no_db = check(&missing, &env).await;
    assert_eq!(no_db.code, Some(1), "{}", no_db.all());
    assert!(
        no_db.stderr.contains("erp (tryton) database") && no_db.stderr.contains(&format!("{}_missing", db.name)),
        "the missing database is named, not the key: {}",
        no_db.stderr
    );
    assert_eq!(
        no_db.find_row("erp (tryton)", "key"),
        None,
        "a key cannot be judged without its database: {}",
        no_db.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_tryton_a_database_without_a_package_type_fails_naming_what_to_create() {
    let Some(db) = TrytonDb::create("checkpkg") else { return };
    let dir = tempfile::tempdir().unwrap();
    let ss = Sandbox::start(
        SandboxConfig {
            api_secret: SECRET.into(),
            ..SandboxConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let types = db.get("stock.package.type", &["name"], None).await;
    let types = types.as_array().unwrap();
    assert!(!types.is_empty(), "the seed has a package type");
    for t in types {
        db.delete(&format!("stock.package.type/{}", t["id"])).await;
    }
    let key: &'static str = Box::leak(db.key.clone().into_boxed_str());
    let config = write(dir.path(), "t.toml", &tryton_config(&db.url, &ss.base_url()));
    let out = check(&config, &env_with("C_ERP_KEY", key)).await;
    assert_eq!(out.code, Some(1), "{}", out.all());
    let row = out.row("erp (tryton)", "package type");
    assert!(row.contains("FAILED") && row.contains("stock.package.type"), "{row}");
    assert!(out.stderr.contains("erp (tryton) package type"), "{}", out.stderr);
    assert!(
        out.row("erp (tryton)", "journal").contains(" ok "),
        "only the package type is missing: {}",
        out.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_cost_accounts_the_check_names_an_account_the_erp_lacks_and_a_closed_period() {
    let dir = tempfile::tempdir().unwrap();
    let ss = Sandbox::start(SandboxConfig { api_secret: SECRET.into(), ..SandboxConfig::default() }, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let erp = SandboxErp::start(SandboxErpConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let accounts = "[connections.accounts]\nshipping_expense = \"5100\"\nshipping_expense_by_carrier = { ups = \"5199\" }\naccrued_shipping = \"2150\"\n";
    let config = write(dir.path(), "c.toml", &format!("{}{accounts}", sandbox_config(&erp.base_url(), &ss.base_url(), "")));
    let out = check(&config, GOOD_ENV).await;
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(out.row("erp (sandbox)", "account 5100").contains(" ok "), "{}", out.all());
    assert!(out.row("erp (sandbox)", "journal MISC").contains(" ok "), "{}", out.all());
    let missing = out.row("erp (sandbox)", "account 5199");
    assert!(missing.contains("FAILED") && missing.contains("[connections.accounts]"), "{missing}");
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    assert!(out.row("erp (sandbox)", &format!("period of {today}")).contains(" ok "), "{}", out.all());

    // The chart fixed, this month's period closed: only the period fails.
    let http = reqwest::Client::new();
    let base = erp.base_url();
    http.post(format!("{base}/_sandbox/accounts")).json(&json!({"accounts": ["5199"]})).send().await.unwrap().error_for_status().unwrap();
    let month = format!("{:04}-{:02}", today.year(), today.month());
    http.put(format!("{base}/_sandbox/periods/{month}")).json(&json!({"state": "closed"})).send().await.unwrap().error_for_status().unwrap();
    let out = check(&config, GOOD_ENV).await;
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(out.row("erp (sandbox)", "account 5199").contains(" ok "), "{}", out.all());
    let period = out.row("erp (sandbox)", &format!("period of {today}"));
    assert!(period.contains("FAILED") && period.contains("closed"), "{period}");
}
