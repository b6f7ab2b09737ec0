//! What the end-to-end tests share: a `shipledger` process stopped with the test,
//! the configuration file it reads, the sandbox ShipStation's v1 and control APIs,
//! and waiting for an outcome with the process's log at hand when it does not come.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A child process, killed and reaped when the test lets go of it.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET {base}{path}` on ShipStation's v1 API with the account's key and secret.
pub async fn v1_get(http: &reqwest::Client, base: &str, path: &str, (key, secret): (&str, &str)) -> Value {
    let r = http.get(format!("{base}{path}")).basic_auth(key, Some(secret)).send().await.unwrap();
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.unwrap()
}

/// `POST` a JSON body (the sandbox's control API); the answer's JSON, if any.
pub async fn post_json(http: &reqwest::Client, url: &str, body: Value) -> Value {
    let r = http.post(url).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "POST {url}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

/// How many of the log's last lines a timed-out wait shows.
const LOG_TAIL: usize = 60;

/// Poll `done` until it holds; past `deadline`, fail with the last lines of `log`.
pub async fn wait_until(what: &str, deadline: Duration, log: &Path, done: impl AsyncFnMut() -> bool) {
    wait_until_explained(what, deadline, log, done, async || String::new()).await
}

/// [`wait_until`], and past `deadline` the failure also says what `explain` finds (the
/// store's view of the records waited for, say), before the log's last lines, so a
/// wait that times out once in a while explains itself.
pub async fn wait_until_explained(
    what: &str,
    deadline: Duration,
    log: &Path,
    mut done: impl AsyncFnMut() -> bool,
    explain: impl AsyncFnOnce() -> String,
) {
    let started = Instant::now();
    while !done().await {
        if started.elapsed() >= deadline {
            let explained = explain().await;
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
            panic!("timed out waiting for {what} after {deadline:?}\n{explained}\n--- the last {LOG_TAIL} lines of {} ---\n{tail}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// What a test's `shipledger.toml` says: one connection to the two sandboxes, with
/// its secrets named `{env}_ERP_KEY`, `{env}_SS_KEY`, `{env}_SS_SECRET` (and
/// `{env}_SS_V2_KEY`, `{env}_HOOK_TOKEN` when asked for).
pub struct TestConfig<'a> {
    pub store_url: &'a str,
    /// `[server] listen`, when the test scrapes the server or sends it webhooks.
    pub listen: Option<&'a str>,
    pub connection: &'a str,
    /// The prefix of every secret's environment variable.
    pub env: &'a str,
    pub erp: &'a str,
    pub ss: &'a str,
    /// ShipStation v2 on the same sandbox (`v2_base_url`, `{env}_SS_V2_KEY`).
    pub v2: bool,
    /// The webhook receivers: the v1 token from `{env}_HOOK_TOKEN`, the v2 keys from
    /// the sandbox's `/jwks`.
    pub webhooks: bool,
    /// The `[connections.policy]` lines.
    pub policy: &'a str,
}

/// Write `config` as `dir/shipledger.toml`; its path.
pub fn write_config(dir: &Path, config: &TestConfig) -> PathBuf {
    let TestConfig { store_url, listen, connection, env, erp, ss, v2, webhooks, policy } = config;
    let mut text = format!("[store]\nurl = \"{store_url}\"\n\n");
    if let Some(listen) = listen {
        text += &format!("[server]\nlisten = \"{listen}\"\n\n");
    }
    text += &format!(
        "[[connections]]\nname = \"{connection}\"\n\n\
         [connections.erp]\nkind = \"sandbox\"\nurl = \"{erp}\"\napi_key_env = \"{env}_ERP_KEY\"\n\n\
         [connections.shipstation]\nbase_url = \"{ss}\"\napi_key_env = \"{env}_SS_KEY\"\napi_secret_env = \"{env}_SS_SECRET\"\n"
    );
    if *v2 {
        text += &format!("v2_base_url = \"{ss}\"\nv2_api_key_env = \"{env}_SS_V2_KEY\"\n");
    }
    if *webhooks {
        text += &format!("webhook_token_env = \"{env}_HOOK_TOKEN\"\nv2_webhook_keys_url = \"{ss}/jwks\"\n");
    }
    text += &format!("\n[connections.policy]\n{policy}\n");
    let path = dir.join("shipledger.toml");
    std::fs::write(&path, text).unwrap();
    path
}
