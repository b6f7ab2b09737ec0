//! The sandbox ERP's API under `/api/` (bearer auth is applied in `server`): thin
//! handlers that parse, lock the world, call the model and shape the answer. The
//! table of paths is in the module above.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::model::{FulfilmentInput, JournalInput, StockAdjustmentInput, StockRecord};
use super::server::{ApiError, ErpShared, parse_body};

type St = State<Arc<ErpShared>>;
type Answer = Result<(StatusCode, Json<Value>), ApiError>;

pub(crate) fn routes() -> Router<Arc<ErpShared>> {
    Router::new()
        .route("/api/company", get(company))
        .route("/api/orders", get(orders))
        .route("/api/orders/{id}", get(order))
        .route("/api/orders/{id}/fulfilments", get(fulfilments).post(record_fulfilment))
        .route("/api/products", get(products))
        .route("/api/journals", post(post_journal))
        .route("/api/journals/{id}", get(journal))
        .route("/api/fx", get(fx))
        .route("/api/periods/{date}", get(period))
        .route("/api/accounts", get(accounts))
        .route("/api/stock/adjustments", post(adjust_stock))
        .route("/api/stock/{sku}", get(stock))
}

/// Query pairs, repeated keys kept (`sku=A&sku=B`).
fn pairs(raw: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()).into_owned().collect()
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

fn ok(v: Value) -> Answer {
    Ok((StatusCode::OK, Json(v)))
}

pub(crate) fn stock_json(sku: &str, s: StockRecord) -> Value {
    json!({"sku": sku, "on_hand": s.on_hand, "reserved": s.reserved, "available": s.on_hand - s.reserved})
}

async fn company(State(shared): St) -> Answer {
    ok(shared.read_world(|w| json!({"name": w.company_name, "base_currency": w.base_currency})))
}

async fn orders(State(shared): St, RawQuery(q): RawQuery) -> Answer {
    let q = pairs(&q);
    let ids: Vec<&str> = q.iter().filter(|(k, _)| k == "id").map(|(_, v)| v.as_str()).filter(|v| !v.is_empty()).collect();
    if !ids.is_empty() {
        if ids.len() > 500 {
            return Err(ApiError::invalid(format!("at most 500 ids per request, got {}", ids.len())));
        }
        if q.iter().any(|(k, _)| k != "id") {
            return Err(ApiError::invalid("id cannot be combined with the change feed's parameters"));
        }
        return ok(shared.read_world(|w| json!({"orders": w.orders_by_id(&ids), "next": null})));
    }
    let after_ms = match first(&q, "updated_after_ms") {
        Some(v) => Some(v.parse::<i64>().map_err(|_| ApiError::invalid(format!("updated_after_ms must be epoch milliseconds, got '{v}'")))?),
        None => None,
    };
    let after_id = first(&q, "after_id").unwrap_or("");
    if after_ms.is_none() && !after_id.is_empty() {
        return Err(ApiError::invalid("after_id needs updated_after_ms"));
    }
    let limit = match first(&q, "limit") {
        Some(v) => v.parse::<usize>().ok().filter(|l| (1..=500).contains(l)).ok_or_else(|| ApiError::invalid(format!("limit must be 1 to 500, got '{v}'")))?,
        None => 100,
    };
    ok(shared.read_world(|w| {
        let page = w.changed_orders(after_ms.map(|ms| (ms, after_id)), limit);
        let next = page.last().map(|o| json!({"updated_after_ms": o.updated_at_ms, "after_id": o.id}));
        json!({"orders": page, "next": next})
    }))
}

async fn order(State(shared): St, Path(id): Path<String>) -> Answer {
    let o = shared.read_world(|w| w.order(&id).cloned())?;
    ok(json!(o))
}

async fn fulfilments(State(shared): St, Path(id): Path<String>) -> Answer {
    let list = shared.read_world(|w| w.fulfilments_of(&id))?;
    ok(json!({"fulfilments": list}))
}

async fn record_fulfilment(State(shared): St, Path(id): Path<String>, body: Bytes) -> Answer {
    let input: FulfilmentInput = parse_body(&body)?;
    let now = shared.clock.now();
    let result = shared.with_world(|w| {
        let r = w.record_fulfilment(&id, input, now);
        refusal_stat(w, &r);
        r
    });
    let (doc, created) = result?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(json!(doc))))
}

async fn products(State(shared): St, RawQuery(q): RawQuery) -> Answer {
    let skus: Vec<String> = pairs(&q).into_iter().filter(|(k, _)| k == "sku").map(|(_, v)| v.trim().to_string()).collect();
    ok(shared.read_world(|w| {
        let list: Vec<_> = if skus.is_empty() {
            w.products.values().collect()
        } else {
            skus.iter().filter_map(|s| w.products.get(s)).collect()
        };
        json!({"products": list})
    }))
}

async fn post_journal(State(shared): St, body: Bytes) -> Answer {
    let input: JournalInput = parse_body(&body)?;
    let now = shared.clock.now();
    let result = shared.with_world(|w| {
        let r = w.post_journal(input, now);
        refusal_stat(w, &r);
        r
    });
    let (j, created) = result?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(json!(j))))
}

async fn journal(State(shared): St, Path(id): Path<String>) -> Answer {
    let j = shared.read_world(|w| w.journal(&id).cloned())?;
    ok(json!(j))
}

async fn fx(State(shared): St, RawQuery(q): RawQuery) -> Answer {
    let q = pairs(&q);
    let from = first(&q, "from").ok_or_else(|| ApiError::invalid("from is required (an ISO 4217 code)"))?;
    let to = first(&q, "to").ok_or_else(|| ApiError::invalid("to is required (an ISO 4217 code)"))?;
    let date = match first(&q, "date") {
        Some(d) => d.parse::<jiff::civil::Date>().map_err(|e| ApiError::invalid(format!("date must be YYYY-MM-DD, got '{d}': {e}")))?,
        None => shared.clock.now().to_zoned(jiff::tz::TimeZone::UTC).date(),
    };
    let answer = shared.read_world(|w| w.fx(from, to, date))?;
    ok(json!(answer))
}

async fn stock(State(shared): St, Path(sku): Path<String>) -> Answer {
    let level = shared.read_world(|w| w.stock_of(&sku))?;
    ok(stock_json(&sku, level))
}

async fn adjust_stock(State(shared): St, body: Bytes) -> Answer {
    let input: StockAdjustmentInput = parse_body(&body)?;
    let now = shared.clock.now();
    let result = shared.with_world(|w| {
        let r = w.adjust_stock(input, now);
        refusal_stat(w, &r);
        r
    });
    let (doc, level, created) = result?;
    let body = json!({"adjustment": doc, "stock": stock_json(&doc.sku, level)});
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(body)))
}

fn refusal_stat<T>(w: &mut super::model::ErpWorld, r: &Result<T, super::model::Refusal>) {
    use super::model::Refusal::*;
    if let Err(e) = r {
        let code = match e {
            NotFound(_) => "not_found",
            NoRate(_) => "no_rate",
            Invalid(_) => "invalid",
            Conflict(_) => "conflict",
            Unprocessable(_) => "unprocessable",
        };
        *w.stats.refusals.entry(code.to_string()).or_default() += 1;
    }
}

async fn period(State(shared): St, Path(date): Path<String>) -> Answer {
    let date: jiff::civil::Date = date.parse().map_err(|e| ApiError::invalid(format!("{date:?} is not a date YYYY-MM-DD: {e}")))?;
    let (name, state) = shared.read_world(|w| (super::model::period_name(date), w.period_state(date)));
    ok(json!({"date": date, "period": name, "state": state}))
}

async fn accounts(State(shared): St) -> Answer {
    ok(shared.read_world(|w| json!({"accounts": w.accounts, "journals": w.journal_codes})))
}
