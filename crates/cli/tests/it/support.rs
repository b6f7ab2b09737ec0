//! What the end-to-end tests share: a `shipledger` process stopped with the test,
//! the sandbox ShipStation's v1 and control APIs, and waiting for an outcome with
//! the process's log at hand when it does not come.

use std::path::Path;
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

/// Poll `done` until it holds; past `deadline`, fail with the last lines of `log`.
pub async fn wait_until(what: &str, deadline: Duration, log: &Path, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        if started.elapsed() >= deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("timed out waiting for {what}\n{}", log.lines().rev().take(40).collect::<Vec<_>>().join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
