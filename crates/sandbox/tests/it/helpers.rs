//! A sandbox on a free port, a client that speaks to it, and a webhook receiver.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use shipledger_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

pub struct TestSandbox {
    pub handle: SandboxHandle,
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
    pub secret: String,
    pub v2_key: String,
}

impl TestSandbox {
    pub async fn start() -> Self {
        Self::with(SandboxConfig::default()).await
    }

    pub async fn with(config: SandboxConfig) -> Self {
        let (key, secret, v2_key) = (config.api_key.clone(), config.api_secret.clone(), config.v2_api_key.clone());
        let handle = Sandbox::start(config, "127.0.0.1:0".parse().unwrap()).await.expect("sandbox starts");
        let base = handle.base_url();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        TestSandbox { handle, http, base, key, secret, v2_key }
    }

    pub fn v1(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{}", self.base, path)).basic_auth(&self.key, Some(&self.secret))
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self.v1(reqwest::Method::GET, path).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.v1(reqwest::Method::POST, path).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn v2_get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{}", self.base, path)).header("API-Key", &self.v2_key).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn v2_send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path)).header("API-Key", &self.v2_key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn control(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.http.post(format!("{}/_sandbox{}", self.base, path)).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn put_control(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.http.put(format!("{}/_sandbox{}", self.base, path)).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn stats(&self) -> Value {
        self.http.get(format!("{}/_sandbox/stats", self.base)).send().await.unwrap().json().await.unwrap()
    }

    /// Wait until every queued webhook has been delivered or given up.
    pub async fn flush(&self) {
        let (status, body) = self.control("/webhooks/flush", json!({})).await;
        assert_eq!(status, 200);
        assert_eq!(body["drained"], json!(true), "webhooks still pending: {body}");
    }

    /// Create one order through createorder and return it.
    pub async fn order(&self, body: Value) -> Value {
        let (status, order) = self.post("/orders/createorder", body).await;
        assert_eq!(status, 200, "createorder: {order}");
        order
    }
}

/// A realistic two-line order.
pub fn order_body(number: &str, key: &str) -> Value {
    json!({
        "orderNumber": number,
        "orderKey": key,
        "orderDate": "2024-07-01T09:15:00.0000000",
        "paymentDate": "2024-07-01T09:16:00.0000000",
        "orderStatus": "awaiting_shipment",
        "customerEmail": "ada@example.com",
        "billTo": {"name": "Ada Lovelace"},
        "shipTo": {"name": "Ada Lovelace", "street1": "12 St James's Sq", "city": "London", "postalCode": "SW1Y 4JH", "country": "GB"},
        "amountPaid": 54.30,
        "taxAmount": 4.30,
        "shippingAmount": 5.00,
        "items": [
            {"lineItemKey": "L1", "sku": "MUG-BLUE", "name": "Blue mug", "quantity": 2, "unitPrice": 12.50,
             "weight": {"value": 350, "units": "grams"}},
            {"lineItemKey": "L2", "sku": "TEA-EARL", "name": "Earl Grey 250g", "quantity": 1, "unitPrice": 20.00,
             "weight": {"value": 9, "units": "ounces"}}
        ]
    })
}

/// A local HTTP server that records every webhook it is sent.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    /// Answer this many first requests with 500.
    pub fail_first: Arc<Mutex<usize>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
        let fail_first: Arc<Mutex<usize>> = Arc::default();
        let (s, f) = (seen.clone(), fail_first.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (s, f) = (s.clone(), f.clone());
                async move {
                    let mut left = f.lock().unwrap();
                    if *left > 0 {
                        *left -= 1;
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    s.lock().unwrap().push((headers, body));
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, seen, fail_first }
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.seen.lock().unwrap().iter().map(|(_, b)| serde_json::from_slice(b).unwrap()).collect()
    }
}
