//! The sandbox ERP's control API under `/_sandbox/`: what the web shop, the payment
//! provider, customer service and the warehouse manager do to the ERP, on request.
//! No authentication. The table of paths is in the module above.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use jiff::SignedDuration;
use serde::Deserialize;
use serde_json::{Value, json};
use shipledger_core::order::Address;

use super::model::{FxRow, LinePatch, OrderInput, PaymentInput, Product};
use super::routes::stock_json;
use super::server::{ApiError, ErpShared, parse_body};

type St = State<Arc<ErpShared>>;
type Answer = Result<(StatusCode, Json<Value>), ApiError>;

pub(crate) fn routes() -> Router<Arc<ErpShared>> {
    Router::new()
        .route("/_sandbox/orders", post(create_order))
        .route("/_sandbox/orders/bulk", post(create_orders))
        .route("/_sandbox/orders/{id}/payment", post(set_payment))
        .route("/_sandbox/orders/{id}/cancel", post(cancel))
        .route("/_sandbox/orders/{id}/hold", post(hold))
        .route("/_sandbox/orders/{id}/release", post(release))
        .route("/_sandbox/orders/{id}/ship-to", put(ship_to))
        .route("/_sandbox/orders/{id}/lines/{line_id}", patch(patch_line))
        .route("/_sandbox/orders/{id}/touch", post(touch))
        .route("/_sandbox/products", post(add_products))
        .route("/_sandbox/stock/{sku}", put(set_stock))
        .route("/_sandbox/fx", get(rates).post(add_rate))
        .route("/_sandbox/periods/{month}", put(set_period))
        .route("/_sandbox/accounts", post(add_accounts))
        .route("/_sandbox/faults", get(get_faults).put(put_faults))
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/clock", get(clock))
        .route("/_sandbox/clock/advance", post(advance))
        .route("/_sandbox/reset", post(reset))
}

fn ok(v: Value) -> Answer {
    Ok((StatusCode::OK, Json(v)))
}

fn empty_or<T: serde::de::DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_body(bytes)
}

async fn create_order(State(shared): St, body: Bytes) -> Answer {
    let input: OrderInput = parse_body(&body)?;
    let now = shared.clock.now();
    let (order, created) = shared.with_world(|w| w.upsert_order(input, now))?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({"order": order, "created": created, "duplicate": !created}))))
}

#[derive(Deserialize)]
struct Bulk {
    orders: Vec<OrderInput>,
}

/// Several orders in one go, all under one clock reading (so they share a
/// millisecond: the change feed's cursor must tell them apart by id).
async fn create_orders(State(shared): St, body: Bytes) -> Answer {
    let bulk: Bulk = parse_body(&body)?;
    let now = shared.clock.now();
    let results = shared.with_world(|w| {
        bulk.orders.into_iter().map(|o| w.upsert_order(o, now)).collect::<Result<Vec<_>, _>>()
    })?;
    let orders: Vec<Value> = results.into_iter().map(|(o, created)| json!({"order": o, "created": created})).collect();
    ok(json!({"orders": orders}))
}

async fn set_payment(State(shared): St, Path(id): Path<String>, body: Bytes) -> Answer {
    let input: PaymentInput = parse_body(&body)?;
    let now = shared.clock.now();
    let order = shared.with_world(|w| w.set_payment(&id, input, now))?;
    ok(json!({"order": order}))
}

async fn cancel(State(shared): St, Path(id): Path<String>, body: Bytes) -> Answer {
    let b: HoldBody = empty_or(&body)?;
    let now = shared.clock.now();
    let order = shared.with_world(|w| w.cancel_order(&id, b.reason, now))?;
    ok(json!({"order": order}))
}

/// The body of a hold or a cancel: `{reason?}`.
#[derive(Deserialize, Default)]
struct HoldBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn hold(State(shared): St, Path(id): Path<String>, body: Bytes) -> Answer {
    let b: HoldBody = empty_or(&body)?;
    let now = shared.clock.now();
    let order = shared.with_world(|w| w.hold_order(&id, true, b.reason.or_else(|| Some("held in the ERP".into())), now))?;
    ok(json!({"order": order}))
}

async fn release(State(shared): St, Path(id): Path<String>) -> Answer {
    let now = shared.clock.now();
    let order = shared.with_world(|w| w.hold_order(&id, false, None, now))?;
    ok(json!({"order": order}))
}

async fn ship_to(State(shared): St, Path(id): Path<String>, body: Bytes) -> Answer {
    let address: Address = parse_body(&body)?;
    let now = shared.clock.now();
    let order = shared.with_world(|w| w.set_ship_to(&id, address, now))?;
    ok(json!({"order": order}))
}

async fn patch_line(State(shared): St, Path((id, line_id)): Path<(String, String)>, body: Bytes) -> Answer {
    let p: LinePatch = parse_body(&body)?;
    let now = shared.clock.now();
    let order = shared.with_world(|w| w.patch_line(&id, &line_id, p, now))?;
    ok(json!({"order": order}))
}

async fn touch(State(shared): St, Path(id): Path<String>) -> Answer {
    let now = shared.clock.now();
    let order = shared.with_world(|w| w.touch(&id, now))?;
    ok(json!({"order": order}))
}

#[derive(Deserialize)]
struct Products {
    products: Vec<ProductIn>,
}

/// One product (no `#[serde(flatten)]`: the exact-decimal weight must be read
/// straight from the body).
#[derive(Deserialize)]
struct ProductIn {
    sku: String,
    name: String,
    #[serde(with = "shipledger_core::json::decimal_number_option", default)]
    weight: Option<rust_decimal::Decimal>,
    #[serde(default)]
    weight_uom: Option<String>,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    on_hand: Option<i64>,
}

async fn add_products(State(shared): St, body: Bytes) -> Answer {
    let list: Products = parse_body(&body)?;
    let result = shared.with_world(|w| {
        let mut out = Vec::new();
        for p in list.products {
            let product = w.upsert_product(Product {
                sku: p.sku,
                name: p.name,
                weight: p.weight,
                weight_uom: p.weight_uom.unwrap_or_else(|| "g".into()),
                active: p.active.unwrap_or(true),
            })?;
            if let Some(n) = p.on_hand {
                w.set_stock(&product.sku, n)?;
            }
            out.push(product);
        }
        Ok::<_, super::model::Refusal>(out)
    })?;
    ok(json!({"products": result}))
}

#[derive(Deserialize)]
struct StockBody {
    on_hand: i64,
}

async fn set_stock(State(shared): St, Path(sku): Path<String>, body: Bytes) -> Answer {
    let b: StockBody = parse_body(&body)?;
    let level = shared.with_world(|w| w.set_stock(&sku, b.on_hand))?;
    ok(stock_json(&sku, level))
}

async fn rates(State(shared): St) -> Answer {
    ok(shared.read_world(|w| json!({"base_currency": w.base_currency, "rates": w.fx})))
}

async fn add_rate(State(shared): St, body: Bytes) -> Answer {
    let row: FxRow = parse_body(&body)?;
    let row = shared.with_world(|w| w.add_rate(row))?;
    ok(json!(row))
}

#[derive(Deserialize, Default)]
struct Faults {
    #[serde(default)]
    fail_next: u32,
    #[serde(default)]
    latency_ms: u64,
}

async fn get_faults(State(shared): St) -> Answer {
    ok(shared.read_world(|w| json!({"fail_next": w.fail_next, "latency_ms": w.latency_ms})))
}

async fn put_faults(State(shared): St, body: Bytes) -> Answer {
    let f: Faults = empty_or(&body)?;
    shared.with_world(|w| {
        w.fail_next = f.fail_next;
        w.latency_ms = f.latency_ms;
    });
    ok(json!({"fail_next": f.fail_next, "latency_ms": f.latency_ms}))
}

/// The statistics document (`GET /_sandbox/stats`).
pub(crate) fn stats_json(shared: &ErpShared) -> Value {
    shared.read_world(|w| {
        let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
        let mut by_payment: BTreeMap<&str, u64> = BTreeMap::new();
        for o in w.orders.values() {
            *by_status.entry(o.status.as_str()).or_default() += 1;
            let p = o.payments.last().map(|p| p.state.as_str()).unwrap_or("none");
            *by_payment.entry(p).or_default() += 1;
        }
        let mut fulfilments: BTreeMap<&str, u64> = BTreeMap::new();
        for f in w.fulfilments.values() {
            *fulfilments.entry(f.state.as_str()).or_default() += 1;
        }
        let reserved: i64 = w.stock.values().map(|s| s.reserved).sum();
        let on_hand: i64 = w.stock.values().map(|s| s.on_hand).sum();
        json!({
            "orders": w.orders.len(),
            "orders_by_status": by_status,
            "orders_by_payment": by_payment,
            "duplicates_received": w.stats.duplicates_received,
            "products": w.products.len(),
            "stock": {"on_hand": on_hand, "reserved": reserved},
            "fulfilments": w.fulfilments.len(),
            "fulfilments_by_state": fulfilments,
            "journals": w.journals.len(),
            "stock_adjustments": w.adjustments.len(),
            "requests": w.stats.requests,
            "requests_total": w.stats.requests.values().sum::<u64>(),
            "unauthorized": w.stats.unauthorized,
            "refusals": w.stats.refusals,
            "faults_injected": w.stats.faults_injected,
        })
    })
}

async fn stats(State(shared): St) -> Answer {
    ok(stats_json(&shared))
}

fn clock_json(shared: &ErpShared) -> Value {
    json!({"now": shared.clock.now().to_string(), "offset_seconds": shared.clock.offset().as_secs()})
}

async fn clock(State(shared): St) -> Answer {
    ok(clock_json(&shared))
}

#[derive(Deserialize, Default)]
struct Advance {
    #[serde(default)]
    seconds: i64,
}

async fn advance(State(shared): St, body: Bytes) -> Answer {
    let a: Advance = empty_or(&body)?;
    if a.seconds < 0 {
        return Err(ApiError::invalid("seconds must be zero or more: the clock only moves forward"));
    }
    shared.clock.advance(SignedDuration::from_secs(a.seconds));
    ok(clock_json(&shared))
}

async fn reset(State(shared): St) -> Answer {
    let fresh = shared.fresh_world();
    shared.with_world(|w| *w = fresh);
    ok(json!({"reset": true}))
}

#[derive(Deserialize)]
struct PeriodInput {
    state: shipledger_core::journal::PeriodState,
}

/// Open, close or lock a month's period (`2026-11`).
async fn set_period(State(shared): St, Path(month): Path<String>, body: Bytes) -> Answer {
    let input: PeriodInput = parse_body(&body)?;
    shared.with_world(|w| w.set_period(&month, input.state))?;
    ok(json!({"period": month, "state": input.state}))
}

#[derive(Deserialize, Default)]
struct AccountsInput {
    #[serde(default)]
    accounts: Vec<String>,
    #[serde(default)]
    journals: Vec<String>,
}

/// Add accounts and journals to the chart.
async fn add_accounts(State(shared): St, body: Bytes) -> Answer {
    let input: AccountsInput = parse_body(&body)?;
    let (accounts, journals) = shared.with_world(|w| {
        w.accounts.extend(input.accounts.into_iter().map(|a| a.trim().to_string()).filter(|a| !a.is_empty()));
        w.journal_codes.extend(input.journals.into_iter().map(|j| j.trim().to_string()).filter(|j| !j.is_empty()));
        Ok::<_, super::model::Refusal>((w.accounts.clone(), w.journal_codes.clone()))
    })?;
    ok(json!({"accounts": accounts, "journals": journals}))
}
