//! The control API under `/_sandbox/`: what a warehouse, a carrier, a clock and an
//! unreliable network would do, on request. No authentication, no rate limit.
//!
//! | request | effect |
//! | --- | --- |
//! | `POST /_sandbox/orders/{orderId}/labels` `{carrierCode?, serviceCode?, packageCode?, shipmentCost?, insuranceCost?, currency?, trackingNumber?, shipDate?, items?: [{orderItemId \| lineItemKey \| sku, quantity?}]}` | a label for all unshipped lines or the ones named (several labels per order = split ship); SHIP_NOTIFY; answers `{shipment, labelId, trackingNumber}` |
//! | `POST /_sandbox/shipments/{shipmentId}/void` (or `/_sandbox/labels/se-{id}/void`) | void the label; the order waits for a label again |
//! | `POST /_sandbox/orders/{orderId}/split` `{items: [...]}` | move those lines into a child order (`parentId`, `mergedOrSplit`); answers the child |
//! | `POST /_sandbox/orders/merge` `{orderIds: [survivor, absorbed...]}` | absorbed orders vanish from the API; answers the survivor |
//! | `POST /_sandbox/tracking/events` `{trackingNumber, statusCode, statusDetailCode?, description?, occurredAt?, city?, state?, postalCode?, country?}` | a carrier event (NY, AC, IT, AT, DE, EX, SP, UN); v2 tracking and `track` webhooks |
//! | `POST /_sandbox/orders/{orderId}/mark-shipped` `{carrierCode, trackingNumber?, shipDate?}` | shipped outside ShipStation: a fulfillment, FULFILLMENT_SHIPPED |
//! | `GET`/`PUT /_sandbox/faults` | see [`Faults`](crate::Faults) |
//! | `GET`/`PUT /_sandbox/simulation` | see [`SimulationConfig`](crate::SimulationConfig) |
//! | `GET /_sandbox/clock`, `POST /_sandbox/clock/advance` `{seconds}` | the virtual clock; advancing runs the simulator at once |
//! | `GET /_sandbox/stats` | requests by path, 429s sent, orders, duplicates by `orderKey` and `orderNumber`, webhooks |
//! | `GET /_sandbox/webhooks/deliveries`, `POST /_sandbox/webhooks/flush` | what was delivered; wait (≤ 10 s) until nothing is pending |
//! | `GET /_sandbox/webhook-key` | `{key_id, public_key_pem}` for v2 signatures (also `GET /jwks`) |
//! | `POST /_sandbox/reset` | an empty account again (faults and simulation off) |

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::state::{LabelRequest, LinePick, Refusal, Shipment, TrackEvent};
use crate::{Faults, Shared, SimulationConfig, delivery};

type Shared_ = State<Arc<Shared>>;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sandbox/reset", post(reset))
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/clock", get(clock))
        .route("/_sandbox/clock/advance", post(advance))
        .route("/_sandbox/orders/merge", post(merge))
        .route("/_sandbox/orders/{order_id}/labels", post(label))
        .route("/_sandbox/orders/{order_id}/split", post(split))
        .route("/_sandbox/orders/{order_id}/mark-shipped", post(mark_shipped))
        .route("/_sandbox/shipments/{shipment_id}/void", post(void))
        .route("/_sandbox/labels/{label_id}/void", post(void_by_label))
        .route("/_sandbox/tracking/events", post(track_event))
        .route("/_sandbox/faults", get(get_faults).put(put_faults))
        .route("/_sandbox/simulation", get(get_simulation).put(put_simulation))
        .route("/_sandbox/webhooks/deliveries", get(deliveries))
        .route("/_sandbox/webhooks/flush", post(flush))
        .route("/_sandbox/webhook-key", get(webhook_key))
}

/// A control-API refusal: `{"error": ...}` with 404 or 400.
pub struct ControlError(StatusCode, String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<Refusal> for ControlError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound(m) => ControlError(StatusCode::NOT_FOUND, m),
            Refusal::Invalid(m) => ControlError(StatusCode::BAD_REQUEST, m),
        }
    }
}

fn body<T: for<'de> Deserialize<'de> + Default>(bytes: &Bytes) -> Result<T, ControlError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| ControlError(StatusCode::BAD_REQUEST, format!("the request body does not parse: {e}")))
}

fn id(raw: &str, what: &str) -> Result<i64, ControlError> {
    raw.trim_start_matches("se-")
        .parse()
        .map_err(|_| ControlError(StatusCode::NOT_FOUND, format!("{what} '{raw}' is not a number")))
}

/// Create a label and tell SHIP_NOTIFY subscribers. Shared by the control API, v1's
/// `createlabelfororder` and the simulator.
pub(crate) fn label_and_notify(shared: &Shared, order_id: i64, req: &LabelRequest, now: Timestamp) -> Result<Shipment, Refusal> {
    shared.with_world(|w| {
        let shipment_id = w.create_label(order_id, req, now)?;
        let shipment = w.shipments[&shipment_id].clone();
        delivery::ship_notify(shared, w, shipment.store_id, shipment.batch_id);
        Ok(shipment)
    })
}

async fn label(State(shared): Shared_, Path(order_id): Path<String>, bytes: Bytes) -> Result<Json<Value>, ControlError> {
    let order_id = id(&order_id, "orderId")?;
    let req: LabelRequest = body(&bytes)?;
    if let Some(c) = &req.currency
        && shipledger_core::Currency::parse(c).is_err()
    {
        return Err(ControlError(StatusCode::BAD_REQUEST, format!("currency '{c}' is not an ISO 4217 code")));
    }
    let now = shared.clock.now();
    let s = label_and_notify(&shared, order_id, &req, now)?;
    Ok(Json(json!({
        "shipment": crate::v1::shipment_json(&s, true),
        "labelId": format!("se-{}", s.shipment_id),
        "trackingNumber": s.tracking_number,
    })))
}

async fn void(State(shared): Shared_, Path(shipment_id): Path<String>) -> Result<Json<Value>, ControlError> {
    let shipment_id = id(&shipment_id, "shipmentId")?;
    do_void(&shared, shipment_id)
}

async fn void_by_label(State(shared): Shared_, Path(label_id): Path<String>) -> Result<Json<Value>, ControlError> {
    let shipment_id = id(&label_id, "labelId")?;
    do_void(&shared, shipment_id)
}

fn do_void(shared: &Shared, shipment_id: i64) -> Result<Json<Value>, ControlError> {
    let now = shared.clock.now();
    shared.with_world(|w| {
        w.void_label(shipment_id, now)?;
        Ok(Json(crate::v1::shipment_json(&w.shipments[&shipment_id], true)))
    })
}

#[derive(Deserialize, Default)]
struct Picks {
    #[serde(default)]
    items: Vec<LinePick>,
}

async fn split(State(shared): Shared_, Path(order_id): Path<String>, bytes: Bytes) -> Result<Json<Value>, ControlError> {
    let order_id = id(&order_id, "orderId")?;
    let picks: Picks = body(&bytes)?;
    let now = shared.clock.now();
    shared.with_world(|w| {
        let child = w.split_order(order_id, &picks.items, now)?;
        Ok(Json(crate::v1::order_json(&w.orders[&child])))
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Merge {
    #[serde(default)]
    order_ids: Vec<i64>,
}

async fn merge(State(shared): Shared_, bytes: Bytes) -> Result<Json<Value>, ControlError> {
    let m: Merge = body(&bytes)?;
    let now = shared.clock.now();
    shared.with_world(|w| {
        let survivor = w.merge_orders(&m.order_ids, now)?;
        Ok(Json(crate::v1::order_json(&w.orders[&survivor])))
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MarkShipped {
    carrier_code: Option<String>,
    tracking_number: Option<String>,
    ship_date: Option<jiff::civil::Date>,
    #[serde(default)]
    notify_customer: bool,
}

async fn mark_shipped(State(shared): Shared_, Path(order_id): Path<String>, bytes: Bytes) -> Result<Json<Value>, ControlError> {
    let order_id = id(&order_id, "orderId")?;
    let m: MarkShipped = body(&bytes)?;
    let carrier = m.carrier_code.unwrap_or_else(|| "Other".into());
    let now = shared.clock.now();
    shared.with_world(|w| {
        let fid = w.mark_shipped(order_id, &carrier, m.tracking_number, m.ship_date, m.notify_customer, now)?;
        let (store, batch) = (w.fulfillments[&fid].store_id, w.fulfillments[&fid].batch_id);
        delivery::fulfillment_notify(&shared, w, store, batch);
        Ok(Json(json!({"fulfillmentId": fid, "orderId": order_id})))
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct EventRequest {
    tracking_number: String,
    status_code: String,
    status_detail_code: Option<String>,
    description: Option<String>,
    occurred_at: Option<Timestamp>,
    city: Option<String>,
    state: Option<String>,
    postal_code: Option<String>,
    country: Option<String>,
    signer: Option<String>,
}

const STATUS_CODES: [&str; 8] = ["UN", "AC", "IT", "DE", "EX", "AT", "NY", "SP"];

async fn track_event(State(shared): Shared_, bytes: Bytes) -> Result<Json<Value>, ControlError> {
    let e: EventRequest = body(&bytes)?;
    let code = e.status_code.to_ascii_uppercase();
    if !STATUS_CODES.contains(&code.as_str()) {
        return Err(ControlError(
            StatusCode::BAD_REQUEST,
            format!("statusCode '{}' is not one of {}", e.status_code, STATUS_CODES.join(", ")),
        ));
    }
    let now = shared.clock.now();
    let event = TrackEvent {
        occurred_at: e.occurred_at.unwrap_or(now),
        status_detail_code: e.status_detail_code,
        description: e.description.unwrap_or_else(|| default_description(&code).into()),
        city_locality: e.city,
        state_province: e.state,
        postal_code: e.postal_code,
        country_code: e.country,
        event_code: Some(code.clone()),
        signer: e.signer,
        status_code: code,
    };
    shared.with_world(|w| {
        w.add_track_event(&e.tracking_number, event, now)?;
        delivery::track_notify(&shared, w, &e.tracking_number);
        Ok(Json(crate::v2::tracking_json(w, &w.tracking[&e.tracking_number])))
    })
}

fn default_description(code: &str) -> &'static str {
    match code {
        "AC" => "Picked up by the carrier",
        "IT" => "In transit",
        "DE" => "Delivered",
        "EX" => "Delivery exception",
        "AT" => "Delivery attempted",
        "NY" => "Label created, not yet received by the carrier",
        "SP" => "Delivered to a collection point",
        _ => "Unknown",
    }
}

async fn get_faults(State(shared): Shared_) -> Json<Faults> {
    Json(shared.read_world(|w| w.faults.clone()))
}

async fn put_faults(State(shared): Shared_, bytes: Bytes) -> Result<Json<Faults>, ControlError> {
    let f: Faults = body(&bytes)?;
    f.validate().map_err(|m| ControlError(StatusCode::BAD_REQUEST, m))?;
    shared.with_world(|w| w.faults = f.clone());
    Ok(Json(f))
}

async fn get_simulation(State(shared): Shared_) -> Json<SimulationConfig> {
    Json(shared.read_world(|w| w.simulation.clone()))
}

async fn put_simulation(State(shared): Shared_, bytes: Bytes) -> Result<Json<SimulationConfig>, ControlError> {
    let s: SimulationConfig = body(&bytes)?;
    s.validate().map_err(|m| ControlError(StatusCode::BAD_REQUEST, m))?;
    shared.with_world(|w| w.simulation = s.clone());
    Ok(Json(s))
}

fn clock_json(shared: &Shared) -> Value {
    let now = shared.clock.now();
    json!({
        "now": now.to_string(),
        "pacific": shipledger_core::time::pacific::format_v1_timestamp(now),
        "offset_seconds": shared.clock.offset().as_secs(),
    })
}

async fn clock(State(shared): Shared_) -> Json<Value> {
    Json(clock_json(&shared))
}

#[derive(Deserialize, Default)]
struct Advance {
    #[serde(default)]
    seconds: i64,
}

async fn advance(State(shared): Shared_, bytes: Bytes) -> Result<Json<Value>, ControlError> {
    let a: Advance = body(&bytes)?;
    if a.seconds < 0 {
        return Err(ControlError(StatusCode::BAD_REQUEST, "seconds must be zero or more: the clock only moves forward".into()));
    }
    shared.clock.advance(SignedDuration::from_secs(a.seconds));
    crate::simulator::tick(&shared, shared.clock.now());
    Ok(Json(clock_json(&shared)))
}

/// The statistics document (`GET /_sandbox/stats`).
pub(crate) fn stats_json(shared: &Shared) -> Value {
    let pending = shared.outbox.pending();
    shared.read_world(|w| {
        let (dup_keys, dup_numbers) = w.duplicates();
        let mut by_status = serde_json::Map::new();
        for o in w.orders.values().filter(|o| o.visible()) {
            let n = by_status.entry(o.order_status.clone()).or_insert(json!(0));
            *n = json!(n.as_u64().unwrap_or(0) + 1);
        }
        let total: u64 = w.stats.requests.values().sum();
        json!({
            "requests": w.stats.requests,
            "requests_total": total,
            "rate_limited": w.stats.rate_limited + w.stats.v2_rate_limited,
            "rate_limited_v1": w.stats.rate_limited,
            "rate_limited_v2": w.stats.v2_rate_limited,
            "unauthorized": w.stats.unauthorized,
            "faults": w.stats.faults,
            "orders": w.orders.values().filter(|o| o.visible()).count(),
            "orders_by_status": by_status,
            "orders_merged_away": w.orders.values().filter(|o| !o.visible()).count(),
            "duplicate_order_keys": dup_keys,
            "duplicate_order_numbers": dup_numbers,
            "shipments": w.shipments.len(),
            "shipments_voided": w.shipments.values().filter(|s| s.voided).count(),
            "fulfillments": w.fulfillments.len(),
            "tracking_events": w.tracking.values().map(|t| t.events.len()).sum::<usize>(),
            "webhooks": {
                "subscriptions_v1": w.webhooks.len(),
                "subscriptions_v2": w.webhooks_v2.len(),
                "delivered": w.stats.webhooks_delivered,
                "failed": w.stats.webhooks_failed,
                "dropped": w.stats.webhooks_dropped,
                "duplicated": w.stats.webhooks_duplicated,
                "attempts": w.stats.webhook_attempts,
                "pending": pending,
            },
        })
    })
}

async fn stats(State(shared): Shared_) -> Json<Value> {
    Json(stats_json(&shared))
}

async fn deliveries(State(shared): Shared_) -> Json<Value> {
    Json(json!({"deliveries": shared.outbox.records()}))
}

async fn flush(State(shared): Shared_) -> Json<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let in_flight = shared.outbox.pending() > 0
            || shared.outbox.records().iter().any(|r| r.state == "pending");
        if !in_flight || std::time::Instant::now() >= deadline {
            return Json(json!({"pending": shared.outbox.pending(), "drained": !in_flight}));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn webhook_key(State(shared): Shared_) -> Json<Value> {
    Json(json!({"key_id": shared.signer.key_id(), "public_key_pem": shared.signer.public_key_pem()}))
}

async fn reset(State(shared): Shared_) -> Json<Value> {
    let now = shared.clock.now();
    shared.outbox.clear();
    shared.with_world(|w| *w = crate::state::World::new(now));
    Json(json!({"reset": true}))
}
