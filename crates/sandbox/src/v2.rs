//! ShipStation v2, the parts shipledger uses: labels (with `shipment_cost` as
//! `{currency, amount}` and `se-` ids that are the v1 shipment ids), tracking by label
//! and by carrier and number, tracking subscriptions, `track` webhooks, and inventory
//! with its warehouses and locations. snake_case, UTC ISO-8601 times, money objects.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::Shared;
use crate::error::V2Error;
use crate::query::Query;
use crate::state::{InventoryLocation, InventoryWarehouse, Shipment, StockLevel, Tracking, World};

type Shared_ = State<Arc<Shared>>;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v2/labels", get(list_labels))
        .route("/v2/labels/{label_id}", get(get_label))
        .route("/v2/labels/{label_id}/track", get(track_label))
        .route("/v2/labels/{label_id}/void", put(void_label))
        .route("/v2/tracking", get(get_tracking))
        .route("/v2/tracking/start", post(start_tracking))
        .route("/v2/tracking/stop", post(stop_tracking))
        .route("/v2/environment/webhooks", get(list_webhooks).post(create_webhook))
        .route(
            "/v2/environment/webhooks/{webhook_id}",
            get(get_webhook).put(update_webhook).delete(delete_webhook),
        )
        .route("/v2/inventory", get(list_inventory).post(change_inventory))
        .route("/v2/inventory_warehouses", get(list_inv_warehouses).post(create_inv_warehouse))
        .route(
            "/v2/inventory_warehouses/{id}",
            get(get_inv_warehouse).put(update_inv_warehouse).delete(delete_inv_warehouse),
        )
        .route("/v2/inventory_locations", get(list_inv_locations).post(create_inv_location))
        .route(
            "/v2/inventory_locations/{id}",
            get(get_inv_location).put(update_inv_location).delete(delete_inv_location),
        )
        .route("/jwks", get(jwks))
}

fn iso(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn money(amount: Decimal, currency: &str) -> Value {
    let amount: Value = serde_json::from_str(&amount.normalize().to_string()).unwrap_or(json!(0));
    json!({"currency": currency.to_ascii_lowercase(), "amount": amount})
}

fn parse_label_id(id: &str) -> Result<i64, V2Error> {
    id.strip_prefix("se-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| V2Error::not_found(format!("label '{id}' not found; label ids look like se-123")))
}

fn carrier_id(w: &World, code: &str) -> String {
    w.carrier(code).map(|c| c.carrier_id.clone()).unwrap_or_else(|| "se-0".into())
}

fn coarse_status(t: Option<&Tracking>) -> &'static str {
    match t.map(Tracking::status_code) {
        Some("DE") | Some("SP") => "delivered",
        Some("EX") => "error",
        Some("AC") | Some("IT") | Some("AT") => "in_transit",
        _ => "unknown",
    }
}

pub fn label_json(w: &World, s: &Shipment) -> Value {
    let tracking = w.tracking.get(&s.tracking_number);
    let status = if s.voided { "voided" } else { "completed" };
    json!({
        "label_id": format!("se-{}", s.shipment_id),
        "status": status,
        "shipment_id": s.order_id.map(|id| format!("se-{id}")),
        "external_shipment_id": s.order_key,
        "external_order_id": null,
        "ship_date": format!("{}T00:00:00Z", s.ship_date),
        "created_at": iso(s.create_date),
        "shipment_cost": money(s.shipment_cost, &s.currency),
        "insurance_cost": money(s.insurance_cost, &s.currency),
        "requested_comparison_amount": null,
        "tracking_number": s.tracking_number,
        "is_return_label": false,
        "rma_number": null,
        "is_international": s.ship_to.get("country").and_then(Value::as_str).is_some_and(|c| c != "US"),
        "batch_id": "",
        "carrier_id": carrier_id(w, &s.carrier_code),
        "charge_event": "carrier_default",
        "service_code": s.service_code,
        "carrier_code": s.carrier_code,
        "package_code": s.package_code,
        "voided": s.voided,
        "voided_at": s.void_date.map(iso),
        "label_format": "pdf",
        "display_scheme": "label",
        "label_layout": "4x6",
        "trackable": true,
        "label_image_id": null,
        "carrier_code_label": s.carrier_code,
        "tracking_status": coarse_status(tracking),
        "label_download": {"href": format!("https://sandbox.invalid/labels/{}.pdf", s.shipment_id)},
        "form_download": null,
        "insurance_claim": null,
        "packages": [{
            "package_code": s.package_code,
            "weight": v2_weight(&s.weight),
            "tracking_number": s.tracking_number,
            "label_messages": {"reference1": s.order_number, "reference2": null, "reference3": null},
        }],
        "alternative_identifiers": [],
    })
}

/// A v1 weight (`{value, units: "ounces"}`) as v2 shows it (`{value, unit: "ounce"}`).
fn v2_weight(v1: &Value) -> Value {
    if v1.is_null() {
        return Value::Null;
    }
    match crate::state::weight_in_ounces(v1) {
        Some(ounces) => {
            let value: Value = serde_json::from_str(&ounces.normalize().to_string()).unwrap_or(json!(0));
            json!({"value": value, "unit": "ounce"})
        }
        None => Value::Null,
    }
}

fn event_json(e: &crate::state::TrackEvent) -> Value {
    let carrier_local = crate::state::pacific_civil(e.occurred_at);
    json!({
        "occurred_at": iso(e.occurred_at),
        "carrier_occurred_at": carrier_local,
        "description": e.description,
        "city_locality": e.city_locality,
        "state_province": e.state_province,
        "postal_code": e.postal_code,
        "country_code": e.country_code,
        "company_name": null,
        "signer": e.signer,
        "event_code": e.event_code,
        "carrier_detail_code": null,
        "status_code": e.status_code,
        "status_detail_code": e.status_detail_code,
        "status_description": status_description(&e.status_code),
        "status_detail_description": e.description,
        "carrier_status_code": e.event_code,
        "carrier_status_description": e.description,
        "latitude": null,
        "longitude": null,
        "proof_of_delivery_url": null,
    })
}

fn status_description(code: &str) -> &'static str {
    match code {
        "AC" => "Accepted",
        "IT" => "In Transit",
        "DE" => "Delivered",
        "EX" => "Exception",
        "AT" => "Delivery Attempt",
        "NY" => "Not Yet In System",
        "SP" => "Delivered To Collection Location",
        _ => "Unknown",
    }
}

/// The v2 tracking object, as `/track`, `/v2/tracking` and `track` webhooks carry it.
pub fn tracking_json(w: &World, t: &Tracking) -> Value {
    let last = t.events.last();
    let status = t.status_code();
    let delivered = t.events.iter().find(|e| e.status_code == "DE").map(|e| iso(e.occurred_at));
    json!({
        "tracking_number": t.tracking_number,
        "tracking_url": format!("https://sandbox.invalid/track/{}", t.tracking_number),
        "status_code": status,
        "status_detail_code": last.and_then(|e| e.status_detail_code.clone()).unwrap_or_else(|| "NOT_YET_RECEIVED_BY_CARRIER".into()),
        "status_description": status_description(status),
        "status_detail_description": last.map(|e| e.description.clone()).unwrap_or_else(|| "Label created, the carrier has not received the package yet.".into()),
        "carrier_code": t.carrier_code,
        "carrier_id": w.carrier(&t.carrier_code).map(|c| c.shipping_provider_id).unwrap_or(0),
        "carrier_status_code": last.and_then(|e| e.event_code.clone()),
        "carrier_detail_code": null,
        "carrier_status_description": last.map(|e| e.description.clone()),
        "ship_date": t.ship_date.map(|d| format!("{d}T00:00:00Z")),
        "estimated_delivery_date": null,
        "actual_delivery_date": delivered,
        "exception_description": t.events.iter().rev().find(|e| e.status_code == "EX").map(|e| e.description.clone()),
        "events": t.events.iter().rev().map(event_json).collect::<Vec<_>>(),
    })
}

fn links(base: &str, page: usize, pages: usize) -> Value {
    let href = |p: usize| json!({"href": format!("{base}page={p}")});
    json!({
        "first": href(1),
        "last": href(pages.max(1)),
        "prev": if page > 1 { href(page - 1) } else { json!({}) },
        "next": if page < pages { href(page + 1) } else { json!({}) },
    })
}

fn paging(q: &Query) -> Result<(usize, usize), V2Error> {
    let page = q.str("page").map(|p| p.parse::<usize>()).transpose().map_err(|_| V2Error::invalid("page must be a positive integer"))?.unwrap_or(1);
    let size = q.str("page_size").map(|p| p.parse::<usize>()).transpose().map_err(|_| V2Error::invalid("page_size must be a positive integer"))?.unwrap_or(25);
    if page == 0 || size == 0 || size > 500 {
        return Err(V2Error::invalid("page must be 1 or more and page_size between 1 and 500"));
    }
    Ok((page, size))
}

fn time_param(q: &Query, name: &str) -> Result<Option<Timestamp>, V2Error> {
    q.str(name)
        .map(|v| v.parse::<Timestamp>().map_err(|e| V2Error::invalid(format!("{name} '{v}' is not an ISO-8601 UTC time: {e}"))))
        .transpose()
}

async fn list_labels(State(shared): Shared_, RawQuery(raw): RawQuery) -> Result<Json<Value>, V2Error> {
    let q = Query::parse(raw.as_deref());
    let (page, size) = paging(&q)?;
    let status = q.str("label_status");
    let tracking = q.str("tracking_number");
    let shipment = q.str("shipment_id");
    let carrier = q.str("carrier_id");
    let service = q.str("service_code");
    let start = time_param(&q, "created_at_start")?;
    let end = time_param(&q, "created_at_end")?;
    let desc = q.str("sort_dir").is_some_and(|d| d.eq_ignore_ascii_case("desc"));
    // `created_at` (the default) or `modified_at`: when the label was made, voided or
    // its tracking last moved. Anything else is refused, as ShipStation does.
    let by_modified = match q.str("sort_by") {
        None | Some("created_at") => false,
        Some("modified_at") => true,
        Some(other) => {
            return Err(V2Error::invalid(format!("sort_by '{other}' is not one of modified_at, created_at")));
        }
    };
    let base = format!("{}/v2/labels?", shared.base_url);
    shared.read_world(|w| {
        let mut list: Vec<&Shipment> = w
            .shipments
            .values()
            .filter(|s| status.is_none_or(|st| if st == "voided" { s.voided } else { st == "completed" && !s.voided }))
            .filter(|s| tracking.is_none_or(|t| s.tracking_number == t))
            .filter(|s| shipment.is_none_or(|id| s.order_id.is_some_and(|o| format!("se-{o}") == id)))
            .filter(|s| carrier.is_none_or(|c| carrier_id(w, &s.carrier_code) == c))
            .filter(|s| service.is_none_or(|c| s.service_code == c))
            .filter(|s| start.is_none_or(|t| s.create_date >= t) && end.is_none_or(|t| s.create_date <= t))
            .collect();
        if by_modified {
            list.sort_by_key(|s| (s.modified_at, s.shipment_id));
        } else {
            list.sort_by_key(|s| (s.create_date, s.shipment_id));
        }
        if desc {
            list.reverse();
        }
        let total = list.len();
        let pages = total.div_ceil(size);
        let labels: Vec<Value> = list.into_iter().skip((page - 1) * size).take(size).map(|s| label_json(w, s)).collect();
        Ok(Json(json!({"labels": labels, "total": total, "page": page, "pages": pages, "links": links(&base, page, pages)})))
    })
}

async fn get_label(State(shared): Shared_, Path(id): Path<String>) -> Result<Json<Value>, V2Error> {
    let n = parse_label_id(&id)?;
    shared.read_world(|w| {
        let s = w.shipments.get(&n).ok_or_else(|| V2Error::not_found(format!("label {id} not found")))?;
        Ok(Json(label_json(w, s)))
    })
}

async fn track_label(State(shared): Shared_, Path(id): Path<String>) -> Result<Json<Value>, V2Error> {
    let n = parse_label_id(&id)?;
    shared.read_world(|w| {
        let s = w.shipments.get(&n).ok_or_else(|| V2Error::not_found(format!("label {id} not found")))?;
        let t = w
            .tracking
            .get(&s.tracking_number)
            .ok_or_else(|| V2Error::not_found(format!("label {id} has no tracking")))?;
        Ok(Json(tracking_json(w, t)))
    })
}

async fn void_label(State(shared): Shared_, Path(id): Path<String>) -> Result<Json<Value>, V2Error> {
    let n = parse_label_id(&id)?;
    let now = shared.clock.now();
    shared.with_world(|w| match w.void_label(n, now) {
        Ok(()) => Ok(Json(json!({"approved": true, "message": "Request for refund submitted.  This label has been voided.", "reason_code": null}))),
        Err(crate::state::Refusal::Invalid(m)) => {
            Ok(Json(json!({"approved": false, "message": m, "reason_code": "label_already_voided"})))
        }
        Err(e) => Err(e.into()),
    })
}

fn carrier_and_number(q: &Query) -> Result<(String, String), V2Error> {
    let carrier = q.str("carrier_code").ok_or_else(|| V2Error::invalid("carrier_code is required"))?;
    let number = q.str("tracking_number").ok_or_else(|| V2Error::invalid("tracking_number is required"))?;
    Ok((carrier.to_string(), number.to_string()))
}

async fn get_tracking(State(shared): Shared_, RawQuery(raw): RawQuery) -> Result<Json<Value>, V2Error> {
    let (carrier, number) = carrier_and_number(&Query::parse(raw.as_deref()))?;
    shared.read_world(|w| {
        let t = w
            .tracking
            .get(&number)
            .filter(|t| t.carrier_code.eq_ignore_ascii_case(&carrier))
            .ok_or_else(|| V2Error::not_found(format!("no tracking for {carrier} {number}")))?;
        Ok(Json(tracking_json(w, t)))
    })
}

async fn start_tracking(State(shared): Shared_, RawQuery(raw): RawQuery) -> Result<StatusCode, V2Error> {
    let (carrier, number) = carrier_and_number(&Query::parse(raw.as_deref()))?;
    shared.with_world(|w| {
        let code = w
            .carrier(&carrier)
            .map(|c| c.code.clone())
            .ok_or_else(|| V2Error::invalid(format!("carrier_code '{carrier}' is not connected")))?;
        let entry = w.tracking.entry(number.clone()).or_insert_with(|| Tracking {
            tracking_number: number.clone(),
            carrier_code: code,
            label_shipment_id: None,
            ship_date: None,
            events: Vec::new(),
            started: true,
        });
        entry.started = true;
        Ok(StatusCode::NO_CONTENT)
    })
}

async fn stop_tracking(State(shared): Shared_, RawQuery(raw): RawQuery) -> Result<StatusCode, V2Error> {
    let (_, number) = carrier_and_number(&Query::parse(raw.as_deref()))?;
    shared.with_world(|w| {
        if let Some(t) = w.tracking.get_mut(&number) {
            t.started = false;
        }
        Ok(StatusCode::NO_CONTENT)
    })
}

// ---------------------------------------------------------------- webhooks

const V2_EVENTS: [&str; 10] = [
    "batch",
    "carrier_connected",
    "order_source_refresh_complete",
    "rate",
    "report_complete",
    "sales_orders_imported",
    "track",
    "track_event_v2",
    "batch_processed_v2",
    "label_created_v2",
];

fn webhook_json(h: &crate::state::WebhookV2) -> Value {
    json!({
        "webhook_id": h.webhook_id,
        "url": h.url,
        "event": h.event,
        "name": h.name,
        "store_id": h.store_id,
        "headers": h.headers.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
    })
}

fn body_json(body: &Bytes) -> Result<Value, V2Error> {
    serde_json::from_slice(body).map_err(|e| V2Error::invalid(format!("the request body is not valid JSON: {e}")))
}

fn headers_of(v: &Value) -> Vec<(String, String)> {
    v.get("headers")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|h| Some((h.get("key")?.as_str()?.to_string(), h.get("value")?.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

async fn list_webhooks(State(shared): Shared_) -> Json<Value> {
    shared.read_world(|w| Json(Value::Array(w.webhooks_v2.values().map(webhook_json).collect())))
}

async fn create_webhook(State(shared): Shared_, body: Bytes) -> Result<(StatusCode, Json<Value>), V2Error> {
    let v = body_json(&body)?;
    let url = v.get("url").and_then(Value::as_str).ok_or_else(|| V2Error::invalid("url is required"))?.to_string();
    url::Url::parse(&url).map_err(|_| V2Error::invalid(format!("url '{url}' is not a valid URL")))?;
    let event = v.get("event").and_then(Value::as_str).unwrap_or_default().to_string();
    if !V2_EVENTS.contains(&event.as_str()) {
        return Err(V2Error::invalid(format!("event '{event}' is not one of {}", V2_EVENTS.join(", "))));
    }
    shared.with_world(|w| {
        if w.webhooks_v2.values().any(|h| h.event == event && h.url == url) {
            return Err(V2Error::conflict("webhook_event_type_conflict", format!("a {event} webhook for {url} already exists")));
        }
        w.ids.webhook += 1;
        let hook = crate::state::WebhookV2 {
            webhook_id: format!("se-{}", w.ids.webhook),
            url,
            event,
            name: v.get("name").and_then(Value::as_str).map(str::to_string),
            store_id: v.get("store_id").and_then(Value::as_i64),
            headers: headers_of(&v),
        };
        let out = webhook_json(&hook);
        w.webhooks_v2.insert(hook.webhook_id.clone(), hook);
        Ok((StatusCode::CREATED, Json(out)))
    })
}

async fn get_webhook(State(shared): Shared_, Path(id): Path<String>) -> Result<Json<Value>, V2Error> {
    shared.read_world(|w| {
        w.webhooks_v2.get(&id).map(|h| Json(webhook_json(h))).ok_or_else(|| V2Error::not_found(format!("webhook {id} not found")))
    })
}

async fn update_webhook(State(shared): Shared_, Path(id): Path<String>, body: Bytes) -> Result<StatusCode, V2Error> {
    let v = body_json(&body)?;
    shared.with_world(|w| {
        let hook = w.webhooks_v2.get_mut(&id).ok_or_else(|| V2Error::not_found(format!("webhook {id} not found")))?;
        if let Some(url) = v.get("url").and_then(Value::as_str) {
            hook.url = url.to_string();
        }
        if v.get("headers").is_some() {
            hook.headers = headers_of(&v);
        }
        Ok(StatusCode::NO_CONTENT)
    })
}

async fn delete_webhook(State(shared): Shared_, Path(id): Path<String>) -> Result<StatusCode, V2Error> {
    shared.with_world(|w| match w.webhooks_v2.remove(&id) {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(V2Error::not_found(format!("webhook {id} not found"))),
    })
}

async fn jwks(State(shared): Shared_) -> Json<Value> {
    Json(shared.signer.jwks())
}

// ---------------------------------------------------------------- inventory

async fn list_inventory(State(shared): Shared_, RawQuery(raw): RawQuery) -> Result<Json<Value>, V2Error> {
    let q = Query::parse(raw.as_deref());
    let sku = q.str("sku");
    let warehouse = q.str("inventory_warehouse_id");
    let location = q.str("inventory_location_id");
    let group = q.str("group_by").unwrap_or("location");
    let limit = q.str("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(100).clamp(1, 500);
    let cursor = q.str("cursor").and_then(|c| c.parse::<usize>().ok()).unwrap_or(0);
    shared.read_world(|w| {
        let wh_of = |loc: &str| w.inventory_locations.get(loc).map(|l| l.warehouse_id.clone()).unwrap_or_default();
        // (sku, place) -> (on hand, allocated, average cost)
        type Row = (i64, i64, Option<(Decimal, String)>);
        let mut rows: std::collections::BTreeMap<(String, String), Row> = Default::default();
        for s in w.stock.iter().filter(|s| s.condition == "sellable") {
            if sku.is_some_and(|k| s.sku != k) || location.is_some_and(|l| s.location_id != l) {
                continue;
            }
            let wh = wh_of(&s.location_id);
            if warehouse.is_some_and(|x| wh != x) {
                continue;
            }
            let place = if group == "warehouse" { wh } else { s.location_id.clone() };
            let row = rows.entry((s.sku.clone(), place)).or_insert((0, 0, None));
            row.0 += s.on_hand;
            row.1 += s.allocated;
            if row.2.is_none() {
                row.2 = s.average_cost.clone();
            }
        }
        let all: Vec<Value> = rows
            .into_iter()
            .map(|((sku, place), (on_hand, allocated, cost))| {
                let (wh, loc) = if group == "warehouse" {
                    (place, Value::Null)
                } else {
                    (wh_of(&place), Value::String(place))
                };
                json!({
                    "sku": sku,
                    "on_hand": on_hand,
                    "allocated": allocated,
                    "available": on_hand - allocated,
                    "average_cost": cost.map(|(a, c)| money(a, &c)),
                    "inventory_warehouse_id": wh,
                    "inventory_location_id": loc,
                })
            })
            .collect();
        let total = all.len();
        let page: Vec<Value> = all.into_iter().skip(cursor).take(limit).collect();
        let next = if cursor + limit < total {
            json!({"href": format!("{}/v2/inventory?limit={limit}&cursor={}", shared.base_url, cursor + limit)})
        } else {
            json!({})
        };
        Ok(Json(json!({"inventory": page, "total": total, "page": cursor / limit + 1, "pages": total.div_ceil(limit), "links": {"next": next}})))
    })
}

async fn change_inventory(State(shared): Shared_, body: Bytes) -> Result<StatusCode, V2Error> {
    let v = body_json(&body)?;
    let kind = v.get("transaction_type").and_then(Value::as_str).ok_or_else(|| V2Error::invalid("transaction_type is required"))?.to_string();
    let sku = v.get("sku").and_then(Value::as_str).ok_or_else(|| V2Error::invalid("sku is required"))?.to_string();
    let location = v
        .get("inventory_location_id")
        .and_then(Value::as_str)
        .ok_or_else(|| V2Error::invalid("inventory_location_id is required"))?
        .to_string();
    let quantity = v.get("quantity").and_then(Value::as_i64).ok_or_else(|| V2Error::invalid("quantity is required and must be an integer"))?;
    let condition = v.get("condition").and_then(Value::as_str).unwrap_or("sellable").to_string();
    if !["sellable", "damaged", "expired", "qa_hold"].contains(&condition.as_str()) {
        return Err(V2Error::invalid(format!("condition '{condition}' is not sellable, damaged, expired or qa_hold")));
    }
    let cost = match v.get("cost") {
        Some(c) if !c.is_null() => {
            let amount = c.get("amount").map(|a| a.to_string()).unwrap_or_default();
            let amount: Decimal = amount.trim_matches('"').parse().map_err(|_| V2Error::invalid("cost.amount must be a number"))?;
            let currency = c.get("currency").and_then(Value::as_str).unwrap_or("usd").to_string();
            Some((amount, currency))
        }
        _ => None,
    };
    shared.with_world(|w| {
        if !w.inventory_locations.contains_key(&location) {
            return Err(V2Error::not_found(format!("inventory location {location} not found")));
        }
        let idx = match w.stock.iter().position(|s| s.sku == sku && s.location_id == location && s.condition == condition) {
            Some(i) => i,
            None => {
                w.stock.push(StockLevel { sku: sku.clone(), location_id: location.clone(), condition: condition.clone(), on_hand: 0, allocated: 0, average_cost: None });
                w.stock.len() - 1
            }
        };
        let level = &mut w.stock[idx];
        match kind.as_str() {
            "increment" if quantity > 0 => level.on_hand += quantity,
            "decrement" if quantity > 0 => {
                if level.on_hand < quantity {
                    return Err(V2Error::invalid(format!("cannot decrement {sku} by {quantity}: only {} on hand", level.on_hand)));
                }
                level.on_hand -= quantity
            }
            "adjust" if quantity >= 0 => level.on_hand = quantity,
            "modify" => {}
            "increment" | "decrement" | "adjust" => return Err(V2Error::invalid(format!("quantity {quantity} is not valid for {kind}"))),
            other => return Err(V2Error::invalid(format!("transaction_type '{other}' is not increment, decrement, adjust or modify"))),
        }
        if cost.is_some() {
            level.average_cost = cost;
        }
        Ok(StatusCode::NO_CONTENT)
    })
}

fn inv_warehouse_json(wh: &InventoryWarehouse) -> Value {
    json!({"inventory_warehouse_id": wh.id, "name": wh.name, "created_at": iso(wh.created_at), "updated_at": iso(wh.created_at)})
}

fn inv_location_json(l: &InventoryLocation) -> Value {
    json!({"inventory_location_id": l.id, "name": l.name, "inventory_warehouse_id": l.warehouse_id, "created_at": iso(l.created_at), "updated_at": iso(l.created_at)})
}

async fn list_inv_warehouses(State(shared): Shared_) -> Json<Value> {
    shared.read_world(|w| {
        let list: Vec<Value> = w.inventory_warehouses.values().map(inv_warehouse_json).collect();
        let total = list.len();
        Json(json!({"inventory_warehouses": list, "total": total, "page": 1, "pages": 1, "links": {}}))
    })
}

async fn create_inv_warehouse(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V2Error> {
    let v = body_json(&body)?;
    let name = v.get("name").and_then(Value::as_str).ok_or_else(|| V2Error::invalid("name is required"))?.to_string();
    let now = shared.clock.now();
    shared.with_world(|w| {
        w.ids.inventory += 1;
        let wh = InventoryWarehouse { id: format!("se-{}", w.ids.inventory), name, created_at: now };
        let out = inv_warehouse_json(&wh);
        w.inventory_warehouses.insert(wh.id.clone(), wh);
        Ok(Json(out))
    })
}

async fn get_inv_warehouse(State(shared): Shared_, Path(id): Path<String>) -> Result<Json<Value>, V2Error> {
    shared.read_world(|w| {
        w.inventory_warehouses.get(&id).map(|x| Json(inv_warehouse_json(x))).ok_or_else(|| V2Error::not_found(format!("inventory warehouse {id} not found")))
    })
}

async fn update_inv_warehouse(State(shared): Shared_, Path(id): Path<String>, body: Bytes) -> Result<StatusCode, V2Error> {
    let v = body_json(&body)?;
    shared.with_world(|w| {
        let wh = w.inventory_warehouses.get_mut(&id).ok_or_else(|| V2Error::not_found(format!("inventory warehouse {id} not found")))?;
        if let Some(name) = v.get("name").and_then(Value::as_str) {
            wh.name = name.to_string();
        }
        Ok(StatusCode::NO_CONTENT)
    })
}

async fn delete_inv_warehouse(State(shared): Shared_, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Result<StatusCode, V2Error> {
    let remove = Query::parse(raw.as_deref()).str("remove_inventory") == Some("1");
    shared.with_world(|w| {
        if !w.inventory_warehouses.contains_key(&id) {
            return Err(V2Error::not_found(format!("inventory warehouse {id} not found")));
        }
        let locations: Vec<String> = w.inventory_locations.values().filter(|l| l.warehouse_id == id).map(|l| l.id.clone()).collect();
        let stocked = w.stock.iter().any(|s| locations.contains(&s.location_id) && s.on_hand > 0);
        if stocked && !remove {
            return Err(V2Error::invalid(format!("inventory warehouse {id} has stock on hand; pass remove_inventory=1 to delete it with its stock")));
        }
        w.stock.retain(|s| !locations.contains(&s.location_id));
        w.inventory_locations.retain(|_, l| l.warehouse_id != id);
        w.inventory_warehouses.remove(&id);
        Ok(StatusCode::NO_CONTENT)
    })
}

async fn list_inv_locations(State(shared): Shared_) -> Json<Value> {
    shared.read_world(|w| {
        let list: Vec<Value> = w.inventory_locations.values().map(inv_location_json).collect();
        let total = list.len();
        Json(json!({"inventory_locations": list, "total": total, "page": 1, "pages": 1, "links": {}}))
    })
}

async fn create_inv_location(State(shared): Shared_, body: Bytes) -> Result<Json<Value>, V2Error> {
    let v = body_json(&body)?;
    let name = v.get("name").and_then(Value::as_str).ok_or_else(|| V2Error::invalid("name is required"))?.to_string();
    let wh = v.get("inventory_warehouse_id").and_then(Value::as_str).ok_or_else(|| V2Error::invalid("inventory_warehouse_id is required"))?.to_string();
    let now = shared.clock.now();
    shared.with_world(|w| {
        if !w.inventory_warehouses.contains_key(&wh) {
            return Err(V2Error::not_found(format!("inventory warehouse {wh} not found")));
        }
        w.ids.inventory += 1;
        let loc = InventoryLocation { id: format!("se-{}", w.ids.inventory), name, warehouse_id: wh, created_at: now };
        let out = inv_location_json(&loc);
        w.inventory_locations.insert(loc.id.clone(), loc);
        Ok(Json(out))
    })
}

async fn get_inv_location(State(shared): Shared_, Path(id): Path<String>) -> Result<Json<Value>, V2Error> {
    shared.read_world(|w| {
        w.inventory_locations.get(&id).map(|x| Json(inv_location_json(x))).ok_or_else(|| V2Error::not_found(format!("inventory location {id} not found")))
    })
}

async fn update_inv_location(State(shared): Shared_, Path(id): Path<String>, body: Bytes) -> Result<StatusCode, V2Error> {
    let v = body_json(&body)?;
    shared.with_world(|w| {
        let loc = w.inventory_locations.get_mut(&id).ok_or_else(|| V2Error::not_found(format!("inventory location {id} not found")))?;
        if let Some(name) = v.get("name").and_then(Value::as_str) {
            loc.name = name.to_string();
        }
        Ok(StatusCode::NO_CONTENT)
    })
}

async fn delete_inv_location(State(shared): Shared_, Path(id): Path<String>) -> Result<StatusCode, V2Error> {
    shared.with_world(|w| {
        if w.stock.iter().any(|s| s.location_id == id && s.on_hand > 0) {
            return Err(V2Error::invalid(format!("inventory location {id} has stock on hand; move or adjust it first")));
        }
        w.inventory_locations.remove(&id).ok_or_else(|| V2Error::not_found(format!("inventory location {id} not found")))?;
        w.stock.retain(|s| s.location_id != id);
        Ok(StatusCode::NO_CONTENT)
    })
}
