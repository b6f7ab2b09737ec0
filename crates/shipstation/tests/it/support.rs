//! A throwaway HTTP server per test: binds 127.0.0.1:0, records every request it
//! sees, and stops when dropped.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use serde_json::{Value, json};
use shipledger_core::clock::{Clock, SystemClock};
use shipledger_shipstation::{ClientConfig, InMemoryRateBudget, V1Client, V2Client};
use tokio::sync::oneshot;
use url::Url;

#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub query: String,
}

impl Seen {
    /// The value of a query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

pub struct Mock {
    pub base: Url,
    log: Arc<Mutex<Vec<Seen>>>,
    _stop: oneshot::Sender<()>,
}

impl Mock {
    pub async fn start(router: Router) -> Mock {
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let recorder = log.clone();
        let router = router.layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let recorder = recorder.clone();
                async move {
                    recorder.lock().unwrap().push(Seen {
                        at: Instant::now(),
                        method: req.method().to_string(),
                        path: req.uri().path().to_owned(),
                        query: req.uri().query().unwrap_or("").to_owned(),
                    });
                    next.run(req).await
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Mock {
            base: format!("http://{addr}").parse().unwrap(),
            log,
            _stop: stop,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    pub fn url(&self, path_and_query: &str) -> Url {
        self.base.join(path_and_query).unwrap()
    }
}

/// A v1 config for a mock: quick backoff so retry tests stay fast.
pub fn v1_config(mock: &Mock) -> ClientConfig {
    let mut config = ClientConfig::v1(mock.base.clone(), "test-key", "test-secret");
    config.backoff_base = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(50);
    config.max_retries = 3;
    config.timeout = Duration::from_secs(5);
    config
}

/// A v1 client on the real clock with a small reset margin.
pub fn v1_client(mock: &Mock) -> V1Client {
    v1_client_with(v1_config(mock), Arc::new(SystemClock))
}

pub fn v1_client_with(config: ClientConfig, clock: Arc<dyn Clock>) -> V1Client {
    let budget =
        InMemoryRateBudget::with_clock(clock.clone()).with_margin(Duration::from_millis(100));
    V1Client::with_budget(config, Arc::new(budget), clock).unwrap()
}

pub fn v2_client(mock: &Mock) -> V2Client {
    let mut config = ClientConfig::v2(mock.base.clone(), "test-v2-key");
    config.backoff_base = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(50);
    let budget = InMemoryRateBudget::new().with_margin(Duration::from_millis(100));
    V2Client::with_budget(config, Arc::new(budget), Arc::new(SystemClock)).unwrap()
}

/// A minimal v1 order as ShipStation returns it.
pub fn order_json(order_id: i64, order_number: &str) -> Value {
    json!({
        "orderId": order_id,
        "orderNumber": order_number,
        "orderKey": format!("key-{order_id}"),
        "orderDate": "2024-07-04T09:30:00.0000000",
        "orderStatus": "awaiting_shipment",
        "billTo": {"name": "A Buyer"},
        "shipTo": {"name": "A Buyer", "street1": "1 Main St", "city": "Austin", "state": "TX", "postalCode": "78701", "country": "US"},
        "items": []
    })
}
