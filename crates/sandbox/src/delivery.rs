//! Webhook delivery, at least once.
//!
//! Events are queued while the world is locked ([`Outbox::push`]) and a background task
//! sends them: v1 as thin `{resource_url, resource_type}` bodies whose URL the sandbox
//! answers, v2 `track` events with the full tracking object and an RSA-SHA256
//! signature. A delivery that does not get a 2xx is retried with doubling delays, six
//! attempts in all. Injected faults drop a delivery or send it twice.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use crate::Shared;
use crate::state::World;

const MAX_ATTEMPTS: u32 = 6;
const LOG_LIMIT: usize = 2_000;

#[derive(Debug, Clone)]
struct Delivery {
    id: u64,
    url: String,
    event: String,
    body: String,
    headers: Vec<(String, String)>,
    signed: bool,
    attempts: u32,
    due: Instant,
}

/// What became of one delivery, for `GET /_sandbox/webhooks/deliveries`.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub id: u64,
    pub url: String,
    pub event: String,
    pub body: Value,
    pub attempts: u32,
    pub state: &'static str,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

#[derive(Default)]
pub struct Outbox {
    queue: Mutex<VecDeque<Delivery>>,
    log: Mutex<VecDeque<DeliveryRecord>>,
    wake: Notify,
    next_id: Mutex<u64>,
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&self, delivery: Delivery) {
        self.queue.lock().expect("outbox lock").push_back(delivery);
        self.wake.notify_one();
    }

    fn next_id(&self) -> u64 {
        let mut id = self.next_id.lock().expect("outbox id lock");
        *id += 1;
        *id
    }

    fn record(&self, record: DeliveryRecord) {
        let mut log = self.log.lock().expect("outbox log lock");
        if let Some(existing) = log.iter_mut().find(|r| r.id == record.id) {
            *existing = record;
        } else {
            log.push_back(record);
            if log.len() > LOG_LIMIT {
                log.pop_front();
            }
        }
    }

    pub fn records(&self) -> Vec<DeliveryRecord> {
        self.log.lock().expect("outbox log lock").iter().cloned().collect()
    }

    /// Deliveries still waiting for a first or a further attempt.
    pub fn pending(&self) -> usize {
        self.queue.lock().expect("outbox lock").len()
    }

    pub fn clear(&self) {
        self.queue.lock().expect("outbox lock").clear();
        self.log.lock().expect("outbox log lock").clear();
    }
}

/// Queue `body` for `url`, applying the drop and duplicate faults.
fn enqueue(shared: &Shared, world: &mut World, url: String, event: &str, body: Value, headers: Vec<(String, String)>, signed: bool) {
    let (drop, duplicate) = {
        let mut rng = shared.rng.lock().expect("rng lock");
        let f = &world.faults;
        let applies = f.applies_to_webhook(event);
        let drop = applies && f.webhook_drop > 0.0 && rng.gen_bool(f.webhook_drop.min(1.0));
        let dup = applies && f.webhook_duplicate > 0.0 && rng.gen_bool(f.webhook_duplicate.min(1.0));
        (drop, dup)
    };
    let body_text = body.to_string();
    let id = shared.outbox.next_id();
    if drop {
        world.stats.webhooks_dropped += 1;
        shared.outbox.record(DeliveryRecord {
            id,
            url,
            event: event.to_string(),
            body,
            attempts: 0,
            state: "dropped",
            last_status: None,
            last_error: None,
        });
        return;
    }
    let copies = if duplicate {
        world.stats.webhooks_duplicated += 1;
        2
    } else {
        1
    };
    for copy in 0..copies {
        let id = if copy == 0 { id } else { shared.outbox.next_id() };
        shared.outbox.record(DeliveryRecord {
            id,
            url: url.clone(),
            event: event.to_string(),
            body: body.clone(),
            attempts: 0,
            state: "pending",
            last_status: None,
            last_error: None,
        });
        shared.outbox.push(Delivery {
            id,
            url: url.clone(),
            event: event.to_string(),
            body: body_text.clone(),
            headers: headers.clone(),
            signed,
            attempts: 0,
            due: Instant::now(),
        });
    }
}

/// Tell v1 subscribers of `events` (for this store) to fetch `resource_url`.
fn notify_v1(shared: &Shared, world: &mut World, events: &[&str], store_id: i64, resource_url: impl Fn(&str) -> String) {
    let targets: Vec<(String, String)> = world
        .webhooks
        .values()
        .filter(|h| events.contains(&h.event.as_str()))
        .filter(|h| h.store_id.is_none_or(|s| s == store_id))
        .map(|h| (h.target_url.clone(), h.event.clone()))
        .collect();
    for (url, event) in targets {
        let body = json!({"resource_url": resource_url(&event), "resource_type": event});
        enqueue(shared, world, url, &event, body, Vec::new(), false);
    }
}

/// New orders imported in `batch` (ORDER_NOTIFY, ITEM_ORDER_NOTIFY).
pub fn order_notify(shared: &Shared, world: &mut World, store_id: i64, batch: &str) {
    let base = shared.base_url.clone();
    notify_v1(shared, world, &["ORDER_NOTIFY", "ITEM_ORDER_NOTIFY"], store_id, |_| {
        format!("{base}/orders?storeID={store_id}&importBatch={batch}")
    });
}

/// A label was created (SHIP_NOTIFY without items, ITEM_SHIP_NOTIFY with).
pub fn ship_notify(shared: &Shared, world: &mut World, store_id: i64, batch_id: i64) {
    let base = shared.base_url.clone();
    notify_v1(shared, world, &["SHIP_NOTIFY", "ITEM_SHIP_NOTIFY"], store_id, |event| {
        let items = if event == "ITEM_SHIP_NOTIFY" { "True" } else { "False" };
        format!("{base}/shipments?storeID={store_id}&batchId={batch_id}&includeShipmentItems={items}")
    });
}

/// An order was marked shipped without a label (FULFILLMENT_SHIPPED).
pub fn fulfillment_notify(shared: &Shared, world: &mut World, store_id: i64, batch_id: i64) {
    let base = shared.base_url.clone();
    notify_v1(shared, world, &["FULFILLMENT_SHIPPED"], store_id, |_| {
        format!("{base}/fulfillments?storeID={store_id}&batchId={batch_id}")
    });
}

/// A tracking number has a new event: every v2 `track` subscriber gets the full
/// tracking object, signed.
pub fn track_notify(shared: &Shared, world: &mut World, tracking_number: &str) {
    let Some(tracking) = world.tracking.get(tracking_number) else { return };
    let data = crate::v2::tracking_json(world, tracking);
    let resource_url = match tracking.label_shipment_id {
        Some(id) => format!("{}/v2/labels/se-{id}/track", shared.base_url),
        None => format!(
            "{}/v2/tracking?carrier_code={}&tracking_number={}",
            shared.base_url, tracking.carrier_code, tracking.tracking_number
        ),
    };
    let targets: Vec<crate::state::WebhookV2> = world
        .webhooks_v2
        .values()
        .filter(|h| h.event == "track" || h.event == "track_event_v2")
        .cloned()
        .collect();
    for crate::state::WebhookV2 { url, event, headers, .. } in targets {
        let resource_type = if event == "track" { "API_TRACK" } else { "TRACK_EVENT_V2" };
        let body = json!({"resource_url": resource_url, "resource_type": resource_type, "data": data});
        enqueue(shared, world, url, &event, body, headers, true);
    }
}

/// The delivery loop: send what is due, retry what failed, until stopped.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .user_agent("ShipStation-Sandbox-Webhooks/1.0")
        .build()
        .expect("an HTTP client builds");
    loop {
        if *stop.borrow() {
            return;
        }
        let due: Vec<Delivery> = {
            let mut queue = shared.outbox.queue.lock().expect("outbox lock");
            let now = Instant::now();
            let (ready, later): (VecDeque<_>, VecDeque<_>) = queue.drain(..).partition(|d| d.due <= now);
            *queue = later;
            ready.into_iter().collect()
        };
        for delivery in due {
            let shared = shared.clone();
            let client = client.clone();
            tokio::spawn(async move { attempt(&shared, &client, delivery).await });
        }
        let next_due = {
            let queue = shared.outbox.queue.lock().expect("outbox lock");
            queue.iter().map(|d| d.due).min()
        };
        let sleep = next_due
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600))
            .max(Duration::from_millis(5));
        tokio::select! {
            _ = shared.outbox.wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn attempt(shared: &Shared, client: &reqwest::Client, mut delivery: Delivery) {
    delivery.attempts += 1;
    let mut request = client
        .post(&delivery.url)
        .header("content-type", "application/json")
        .body(delivery.body.clone());
    for (k, v) in &delivery.headers {
        request = request.header(k, v);
    }
    if delivery.signed {
        let timestamp = signature_timestamp(jiff::Timestamp::now());
        let signature = shared.signer.sign(&timestamp, delivery.body.as_bytes());
        request = request
            .header("x-shipengine-rsa-sha256-key-id", shared.signer.key_id())
            .header("x-shipengine-rsa-sha256-signature", signature)
            .header("x-shipengine-timestamp", timestamp);
    }
    let outcome = request.send().await;
    let (ok, status, error) = match outcome {
        Ok(r) => (r.status().is_success(), Some(r.status().as_u16()), None),
        Err(e) => (false, None, Some(e.to_string())),
    };
    shared.with_world(|w| w.stats.webhook_attempts += 1);
    let body: Value = serde_json::from_str(&delivery.body).unwrap_or(Value::Null);
    let state = if ok {
        shared.with_world(|w| w.stats.webhooks_delivered += 1);
        "delivered"
    } else if delivery.attempts >= MAX_ATTEMPTS {
        shared.with_world(|w| w.stats.webhooks_failed += 1);
        "failed"
    } else {
        "retrying"
    };
    shared.outbox.record(DeliveryRecord {
        id: delivery.id,
        url: delivery.url.clone(),
        event: delivery.event.clone(),
        body,
        attempts: delivery.attempts,
        state,
        last_status: status,
        last_error: error,
    });
    if state == "retrying" {
        let backoff = shared.config.webhook_retry_base * 2u32.pow(delivery.attempts - 1);
        delivery.due = Instant::now() + backoff;
        shared.outbox.push(delivery);
    }
}

/// The `x-shipengine-timestamp` value for a send at `now`.
pub fn signature_timestamp(now: jiff::Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
