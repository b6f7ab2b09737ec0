//! The Tryton connector: [`TrytonClient`] speaks Tryton 8.x's REST API (see
//! [`rest`]) with a bearer key (`res.user.application`, application `rest`) and maps
//! it to the [`Erp`] trait.
//!
//! - **Ready orders** are `sale.sale` records matching a configurable domain (by
//!   default `state = processing` and `shipment_state = waiting`, plus cancelled
//!   sales so the gate hears of cancellations), read in `(write_date or
//!   create_date, id)` order. Lines of type `line` become [`ErpLine`]s: the
//!   product's `code` is the SKU, `weight` with `weight_uom` our [`Weight`], goods
//!   are physical and services (the shipping line) are not. Payment evidence comes
//!   from `trytond-sale-payment` where installed (payments that `succeeded` for the
//!   sale, summed against its total), else from the configured rule
//!   (`invoice_paid`: the sale's `invoice_state` is `paid`); the source names what
//!   was read either way.
//! - **Orders read again** ([`Erp::orders`]) are the same `sale.sale` records by id,
//!   outside the ready domain too, so a sale that left it says why: a processing
//!   sale cannot be cancelled, its shipment is; shipment state `exception` (waiting
//!   for someone to handle it) is on hold, and `none` once the cancelled moves were
//!   ignored (the sale then `done`, or processing, with nothing to ship) is
//!   cancelled, each with that reason in `status_reason`.
//! - **Fulfilments** are `stock.shipment.out` records, one per ShipStation label,
//!   found again by our key in the shipment's `reference`. *Packed* claims the
//!   sale's waiting shipment, trims its inventory moves to the label's lines (what
//!   is not in the parcel stays behind: Tryton's own sale process puts it in a new
//!   waiting shipment), runs `assign_try`, `pick`, puts the label's tracking number
//!   on a `stock.package` (where `stock_package_shipping` is active) and on the
//!   shipment's `shipping_reference`, records the label cost, then `pack`.
//!   *Completed* is `do`. *Cancelled* (a voided label) cancels a packed shipment,
//!   marks its dead tracking number `VOID-<number>` on the shipment and its package
//!   (a lookup of a number finds only live parcels; the record we read back still
//!   names the label's number), and has the sale recreate its moves, so the goods
//!   wait for the next label; a shipment already `done` is not cancelled by a
//!   machine (cancelling it puts stock back): that is refused, and the engine
//!   raises what a person must undo.
//!   Every step reads the state first, so a repeated or resumed write does nothing
//!   twice, and a 400 on a transition already made is recognised as done.
//! - **Journals** are `account.move` records in the company currency on the
//!   configured journal (default `MISC`), with `second_currency` and
//!   `amount_second_currency` for the original amount, then posted; our key rides
//!   in the move's `description`. A move Tryton refuses to post (unbalanced) is
//!   deleted again, so nothing half-written stays behind.
//! - **FX**: `currency.currency.rate` (1 unit of the company currency is `rate`
//!   units of the currency) on or before the date.
//! - **Stock**: `product.product` quantities in the configured warehouse; an
//!   adjustment is a confirmed `stock.inventory` on the warehouse's storage
//!   location, found again by an attachment named after our key.
//!
//! - **Invoicing** (`tryton/invoices.rs`): per sale, the quantity of each goods line
//!   on posted (or paid) customer invoices, less posted credit notes, read for a
//!   hundred sales in two requests.
//!
//! - **Check** (`check-config --connect`, `tryton/check.rs`): server, database, key,
//!   modules and the records shipledger needs, read without writing.
//!
//! Errors keep Tryton's words: a 400 is [`ErpError::Refused`] with Tryton's
//! message and the record it was about; 401 `Unauthorized`; 404 `NotFound`
//! (Tryton answers 404 for an unknown database too); 403 `Refused` (an access
//! rule or a method the key's user may not call); 429, 5xx and transport failures
//! `Unavailable`.

mod check;
mod invoices;
pub mod rest;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use shipledger_core::money::{Currency, Money, Rounding};
use shipledger_core::order::{Address, ErpLine, ErpOrder, ErpOrderStatus, PaymentEvidence, PaymentState, Product};
use shipledger_core::weight::{Weight, WeightUnit};
use url::Url;

use crate::{
    BoxFuture, Cursor, Erp, ErpError, FulfilmentRecord, FulfilmentState, FulfilmentWrite, FxQuote, Invoiced, JournalLine,
    JournalRecord, JournalWrite, LedgerSetup, Package, PeriodState, Result, StockAdjustment, StockLevel,
};

/// How a sale's payment is evidenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentRule {
    /// `sale_payment` when the module is installed, else `invoice_paid`.
    #[default]
    Auto,
    /// `trytond-sale-payment`: payments of the sale that `succeeded`.
    SalePayment,
    /// The sale's invoices are paid (`invoice_state = paid`).
    InvoicePaid,
}

/// The `[connections.erp.tryton]` settings; every one has a default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrytonSettings {
    /// The company whose sales, stock and journals are ours (the first one the
    /// key's user sees when unset).
    pub company: Option<i64>,
    /// Which sales are fulfilment-ready, as a Tryton domain (JSON).
    pub ready_domain: Value,
    pub payment: PaymentRule,
    /// The warehouse (`stock.location` code) whose stock is read and adjusted.
    pub warehouse: String,
    /// The journal (`account.journal` code) shipping costs are posted to.
    pub journal: String,
    /// The party put on journal lines whose account needs one (the payable to the
    /// carrier or ShipStation), by name.
    pub journal_party: Option<String>,
}

impl Default for TrytonSettings {
    fn default() -> Self {
        TrytonSettings {
            company: None,
            ready_domain: json!(["OR",
                [["state", "=", "processing"], ["shipment_state", "=", "waiting"]],
                [["state", "=", "cancelled"]]]),
            payment: PaymentRule::Auto,
            warehouse: "WH".into(),
            journal: "MISC".into(),
            journal_party: None,
        }
    }
}

/// Sales read per request beyond the caller's limit, so a page rarely has to drop
/// its last millisecond.
const SLACK: u32 = 50;
/// How old a sale's write must be before it is read (see `changed_orders`).
const SETTLE: jiff::SignedDuration = jiff::SignedDuration::from_secs(5);
/// Sales named per `orders_touched_since` (more wait for the scheduled re-read).
const TOUCHED_MAX: u32 = 1000;
/// Our prefix on shipment references and move descriptions.
const SALE_LINE: &str = "sale.line,";
/// Put in front of a voided label's tracking number on its cancelled shipment and
/// package.
const VOID_MARK: &str = "VOID-";

/// A client of one Tryton database.
pub struct TrytonClient {
    /// `http://host:port/DATABASE/` (ends in a slash).
    base: Url,
    api_key: String,
    settings: TrytonSettings,
    http: reqwest::Client,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    company: Option<i64>,
    company_currency: Option<(i64, Currency)>,
    currency_ids: HashMap<String, i64>,
    payment_rule: Option<PaymentRule>,
    packages: Option<bool>,
    package_type: Option<i64>,
    shipment_cost_lines: Option<bool>,
}

impl fmt::Debug for TrytonClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrytonClient").field("base", &self.base.as_str()).field("api_key", &"<redacted>").finish()
    }
}

type Obj = serde_json::Map<String, Value>;

impl TrytonClient {
    /// A client for the Tryton database at `url` (`http://host:8000/DATABASE`),
    /// with a 5 s connect and 60 s request timeout.
    pub fn new(url: &str, api_key: &str, settings: TrytonSettings) -> Result<TrytonClient> {
        let bad = |detail: String| ErpError::Refused {
            what: format!("the Tryton URL '{url}'"),
            message: format!("{detail}; set the connection's erp.url to http(s)://HOST:PORT/DATABASE"),
        };
        let mut base = Url::parse(url.trim()).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(bad("it is not an http(s) URL".into()));
        }
        if base.path().trim_matches('/').is_empty() {
            return Err(bad("it names no database (the path must be /DATABASE)".into()));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(ErpError::Refused {
                what: "the Tryton URL".into(),
                message: "it carries a user or password; put the REST key in the variable api_key_env names instead".into(),
            });
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("shipledger/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad(format!("the HTTP client could not be built: {e}")))?;
        Ok(TrytonClient { base, api_key: api_key.to_string(), settings, http, cache: Mutex::new(Cache::default()) })
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(&format!("rest/{path}")).expect("a relative REST path")
    }

    fn unavailable(&self, detail: String) -> ErpError {
        ErpError::Unavailable { url: self.base.to_string(), detail }
    }

    async fn context(&self) -> Result<Value> {
        Ok(json!({"company": self.company().await?}))
    }

    /// One request; `what` names it for people ("sale 12", "the move for …").
    async fn send(&self, method: Method, url: Url, body: Option<&Value>, context: Option<&Value>, what: &str) -> Result<Value> {
        let mut req = self.http.request(method.clone(), url.clone()).bearer_auth(&self.api_key);
        if let Some(ctx) = context {
            req = req.header("X-Tryton-Context", rest::b64(ctx));
        }
        if let Some(b) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(b.to_string());
        }
        let metric = crate::request_metric(&self.base, &method, &url);
        let started = std::time::Instant::now();
        let resp = req.send().await.map_err(|e| {
            metric.failed(started.elapsed());
            let kind = crate::transport_failure(&e);
            self.unavailable(format!("{what}: {method} {} {kind}: {e}", url.path()))
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| {
            metric.failed(started.elapsed());
            self.unavailable(format!("{what}: reading Tryton's answer failed: {e}"))
        })?;
        metric.answered(status.as_u16(), started.elapsed());
        if !status.is_success() {
            return Err(self.failure(status, &bytes, what));
        }
        if bytes.is_empty() || status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ErpError::Decode { what: what.to_string(), detail: e.to_string() })
    }

    fn failure(&self, status: StatusCode, body: &[u8], what: &str) -> ErpError {
        let message = rest::error_message(body);
        match status.as_u16() {
            401 => ErpError::Unauthorized { detail: format!("Tryton answered 401 for {what}") },
            400 => ErpError::Refused { what: what.to_string(), message },
            403 => ErpError::Refused {
                what: what.to_string(),
                message: "Tryton answered 403: the key's user may not do this (check its groups and access rules)".into(),
            },
            404 => ErpError::NotFound { what: format!("{what} (or the database {})", self.base.path().trim_matches('/')) },
            _ => self.unavailable(format!("{what}: HTTP {}: {message}", status.as_u16())),
        }
    }

    /// `GET rest/model/{model}` with a domain, fields, order and limit.
    async fn search(&self, model: &str, domain: Value, fields: &[&str], order: Option<Value>, limit: Option<u32>, what: &str) -> Result<Vec<Obj>> {
        self.search_in(model, domain, fields, order, limit, None, what).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn search_in(
        &self,
        model: &str,
        domain: Value,
        fields: &[&str],
        order: Option<Value>,
        limit: Option<u32>,
        context: Option<Value>,
        what: &str,
    ) -> Result<Vec<Obj>> {
        let mut url = self.url(&format!("model/{model}"));
        {
            let mut q = url.query_pairs_mut();
            for f in fields {
                q.append_pair("f", f);
            }
            q.append_pair("d", &rest::b64(&domain));
            if let Some(o) = &order {
                q.append_pair("o", &rest::b64(o));
            }
            if let Some(l) = limit {
                q.append_pair("s", &l.to_string());
            }
        }
        let context = match context {
            Some(c) => c,
            None => self.context().await?,
        };
        let v = self.send(Method::GET, url, None, Some(&context), what).await?;
        records(v, what)
    }

    async fn read(&self, model: &str, id: i64, fields: &[&str], what: &str) -> Result<Obj> {
        let mut url = self.url(&format!("model/{model}/{id}"));
        {
            let mut q = url.query_pairs_mut();
            for f in fields {
                q.append_pair("f", f);
            }
        }
        let context = self.context().await?;
        let v = self.send(Method::GET, url, None, Some(&context), what).await?;
        match v {
            Value::Object(m) => Ok(m),
            other => Err(ErpError::Decode { what: what.to_string(), detail: format!("expected a record, got {other}") }),
        }
    }

    async fn create(&self, model: &str, values: Value, what: &str) -> Result<i64> {
        let url = self.url(&format!("model/{model}"));
        let context = self.context().await?;
        let v = self.send(Method::POST, url, Some(&values), Some(&context), what).await?;
        rest::id_of(&v).ok_or_else(|| ErpError::Decode { what: what.to_string(), detail: format!("no id in {v}") })
    }

    async fn write(&self, model: &str, id: i64, values: Value, what: &str) -> Result<()> {
        let url = self.url(&format!("model/{model}/{id}"));
        let context = self.context().await?;
        self.send(Method::PUT, url, Some(&values), Some(&context), what).await.map(|_| ())
    }

    async fn delete(&self, model: &str, id: i64, what: &str) -> Result<()> {
        let url = self.url(&format!("model/{model}/{id}"));
        let context = self.context().await?;
        self.send(Method::DELETE, url, None, Some(&context), what).await.map(|_| ())
    }

    /// A button or method on one record.
    async fn call(&self, model: &str, id: i64, action: &str, what: &str) -> Result<Value> {
        let url = self.url(&format!("model/{model}/{id}/{action}"));
        let context = self.context().await?;
        self.send(Method::POST, url, Some(&json!({})), Some(&context), what).await
    }

    // ----- lookups, cached ------------------------------------------------------

    async fn company(&self) -> Result<i64> {
        if let Some(id) = self.settings.company {
            return Ok(id);
        }
        if let Some(id) = self.cache.lock().unwrap().company {
            return Ok(id);
        }
        let url = {
            let mut u = self.url("model/company.company");
            u.query_pairs_mut().append_pair("f", "id").append_pair("s", "1").append_pair("o", &rest::b64(&json!([["id", "ASC"]])));
            u
        };
        let v = self.send(Method::GET, url, None, None, "the companies").await?;
        let first = records(v, "the companies")?.first().map(record_id);
        let id = first.ok_or_else(|| ErpError::NotFound { what: "company the key's user can see".into() })?;
        self.cache.lock().unwrap().company = Some(id);
        Ok(id)
    }

    async fn company_currency(&self) -> Result<(i64, Currency)> {
        if let Some(c) = self.cache.lock().unwrap().company_currency {
            return Ok(c);
        }
        let company = self.company().await?;
        let what = format!("company {company}");
        let rec = self.read("company.company", company, &["currency.code"], &what).await?;
        let cur = rec.get("currency").cloned().unwrap_or(Value::Null);
        let id = rest::id_of(&cur).ok_or_else(|| decode(&what, "it has no currency"))?;
        let code = cur.get("code").and_then(Value::as_str).unwrap_or_default();
        let currency = Currency::parse(code).map_err(|e| decode(&what, &format!("currency {code:?}: {e}")))?;
        self.cache.lock().unwrap().company_currency = Some((id, currency));
        Ok((id, currency))
    }

    async fn currency_id(&self, currency: Currency) -> Result<i64> {
        if let Some(id) = self.cache.lock().unwrap().currency_ids.get(currency.code()) {
            return Ok(*id);
        }
        let found = self
            .search("currency.currency", json!([["code", "=", currency.code()]]), &["code"], None, Some(1), "the currencies")
            .await?;
        let id = found
            .first()
            .map(record_id)
            .ok_or_else(|| ErpError::NotFound { what: format!("currency {} (add it in Tryton's currencies)", currency.code()) })?;
        self.cache.lock().unwrap().currency_ids.insert(currency.code().to_string(), id);
        Ok(id)
    }

    async fn has_field(&self, model: &str, field: &str) -> Result<bool> {
        let found = self
            .search(
                "ir.model.field",
                json!([["model", "=", model], ["name", "=", field]]),
                &["name"],
                None,
                Some(1),
                "Tryton's field list",
            )
            .await;
        match found {
            Ok(list) => Ok(!list.is_empty()),
            // ir.model.field unreadable by the key's user: try the field itself.
            Err(ErpError::Refused { .. }) => {
                // Tryton answers an unknown field with a 500; anything else that
                // fails (a timeout, a bad key) is not an answer, and is not cached.
                match self.search(model, json!([]), &[field], None, Some(1), "a field probe").await {
                    Ok(_) => Ok(true),
                    Err(ErpError::Unavailable { detail, .. }) if detail.contains("HTTP 500") => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn payment_rule(&self) -> Result<PaymentRule> {
        if self.settings.payment != PaymentRule::Auto {
            return Ok(self.settings.payment);
        }
        if let Some(r) = self.cache.lock().unwrap().payment_rule {
            return Ok(r);
        }
        let rule = if self.has_field("sale.sale", "payments").await? { PaymentRule::SalePayment } else { PaymentRule::InvoicePaid };
        self.cache.lock().unwrap().payment_rule = Some(rule);
        Ok(rule)
    }

    async fn packages_enabled(&self) -> Result<bool> {
        if let Some(p) = self.cache.lock().unwrap().packages {
            return Ok(p);
        }
        let on = self.has_field("stock.package", "shipping_reference").await?;
        self.cache.lock().unwrap().packages = Some(on);
        Ok(on)
    }

    async fn package_type(&self) -> Result<i64> {
        if let Some(t) = self.cache.lock().unwrap().package_type {
            return Ok(t);
        }
        let found = self.search("stock.package.type", json!([]), &["name"], Some(json!([["id", "ASC"]])), Some(1), "the package types").await?;
        let id = found
            .first()
            .map(record_id)
            .ok_or_else(|| ErpError::NotFound { what: "stock.package.type (create one, e.g. \"Box\", for ShipStation parcels)".into() })?;
        self.cache.lock().unwrap().package_type = Some(id);
        Ok(id)
    }

    async fn warehouse(&self) -> Result<(i64, i64)> {
        let code = &self.settings.warehouse;
        let found = self
            .search("stock.location", json!([["code", "=", code], ["type", "=", "warehouse"]]), &["storage_location"], None, Some(1), "the warehouse")
            .await?;
        let w = found.first().ok_or_else(|| ErpError::NotFound { what: format!("warehouse with code {code:?} (set erp.tryton.warehouse)") })?;
        let id = record_id(w);
        let storage = w.get("storage_location").and_then(rest::id_of).ok_or_else(|| decode("the warehouse", "it has no storage location"))?;
        Ok((id, storage))
    }

    async fn product_by_code(&self, sku: &str) -> Result<i64> {
        let found = self.search("product.product", json!([["code", "=", sku]]), &["code"], None, Some(2), "the product master").await?;
        match found.as_slice() {
            [one] => Ok(record_id(one)),
            [] => Err(ErpError::NotFound { what: format!("product with code {sku}") }),
            _ => Err(ErpError::Refused { what: format!("product code {sku}"), message: "more than one product has this code".into() }),
        }
    }

    // ----- orders ---------------------------------------------------------------

    /// Whether `sale_shipment_cost` marks the sale's shipping charge lines.
    async fn shipment_cost_lines(&self) -> Result<bool> {
        if let Some(on) = self.cache.lock().unwrap().shipment_cost_lines {
            return Ok(on);
        }
        let on = self.has_field("sale.line", "shipment_cost").await?;
        self.cache.lock().unwrap().shipment_cost_lines = Some(on);
        Ok(on)
    }

    async fn sale_lines(&self, sale_ids: &[i64]) -> Result<BTreeMap<i64, Vec<Obj>>> {
        let mut fields = vec![
            "sale", "type", "sequence", "description", "quantity", "unit_price", "amount", "product.code", "product.rec_name",
            "product.type", "product.weight", "product.weight_uom.symbol",
        ];
        if self.shipment_cost_lines().await? {
            fields.push("shipment_cost");
        }
        let found = self
            .search(
                "sale.line",
                json!([["sale", "in", sale_ids]]),
                &fields,
                Some(json!([["sale", "ASC"], ["sequence", "ASC NULLS FIRST"], ["id", "ASC"]])),
                None,
                "the sale lines",
            )
            .await?;
        let mut by_sale: BTreeMap<i64, Vec<Obj>> = BTreeMap::new();
        for l in found {
            if let Some(sale) = l.get("sale").and_then(rest::id_of) {
                by_sale.entry(sale).or_default().push(l);
            }
        }
        Ok(by_sale)
    }

    // ----- fulfilments ----------------------------------------------------------

    /// Every outbound shipment of a sale (cancelled ones too), each with the sale's
    /// moves in it (the outgoing ones, whose origin is a sale line), from one read of
    /// the moves.
    async fn sale_shipments(&self, sale_id: i64) -> Result<Vec<(Obj, Vec<Obj>)>> {
        let what = format!("the shipments of sale {sale_id}");
        let mut fields = vec!["shipment"];
        fields.extend_from_slice(MOVE_FIELDS_IN_SHIPMENT);
        let moves = self.search("stock.move", json!([["origin.sale", "=", sale_id, "sale.line"]]), &fields, None, None, &what).await?;
        let mut by_shipment: BTreeMap<i64, Vec<Obj>> = BTreeMap::new();
        for m in moves {
            let shipment = m.get("shipment").and_then(Value::as_str).and_then(|s| s.strip_prefix("stock.shipment.out,")).and_then(|s| s.parse().ok());
            if let Some(id) = shipment {
                by_shipment.entry(id).or_default().push(m);
            }
        }
        if by_shipment.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = by_shipment.keys().copied().collect();
        let shipments = self
            .search("stock.shipment.out", json!([["id", "in", ids]]), SHIPMENT_FIELDS, Some(json!([["id", "ASC"]])), None, &what)
            .await?;
        Ok(shipments
            .into_iter()
            .map(|s| {
                let moves = by_shipment.remove(&record_id(&s)).unwrap_or_default();
                (s, moves)
            })
            .collect())
    }

    async fn shipment_by_key(&self, key: &str) -> Result<Option<Obj>> {
        let found = self
            .search("stock.shipment.out", json!([["reference", "=", key]]), SHIPMENT_FIELDS, None, Some(2), &format!("the shipment for {key}"))
            .await?;
        Ok(found.into_iter().next())
    }

    async fn shipment(&self, id: i64) -> Result<Obj> {
        self.read("stock.shipment.out", id, SHIPMENT_FIELDS, &format!("shipment {id}")).await
    }

    async fn moves_of(&self, shipment_id: i64) -> Result<Vec<Obj>> {
        self.search(
            "stock.move",
            json!([["shipment", "=", format!("stock.shipment.out,{shipment_id}")]]),
            MOVE_FIELDS_IN_SHIPMENT,
            Some(json!([["id", "ASC"]])),
            None,
            &format!("the moves of shipment {shipment_id}"),
        )
        .await
    }

    /// Run a transition unless the shipment is already past it, then read it back:
    /// Tryton's workflow quietly ignores a transition it does not allow, and answers
    /// 400 to one already made, so only the state read afterwards decides.
    async fn transition(&self, id: i64, action: &str, reached: &[&str]) -> Result<Obj> {
        let before = self.shipment(id).await?;
        if reached.contains(&state(&before)) {
            return Ok(before);
        }
        let what = format!("{action} on shipment {}", rec_name(&before));
        let refusal = match self.call("stock.shipment.out", id, action, &what).await {
            Ok(_) => None,
            Err(ErpError::Refused { message, .. }) => Some(message),
            Err(e) => return Err(e),
        };
        let after = self.shipment(id).await?;
        if reached.contains(&state(&after)) {
            return Ok(after);
        }
        Err(ErpError::Refused {
            what,
            message: match refusal {
                Some(m) => m,
                None => format!("Tryton left the shipment {} instead of moving it on", state(&after)),
            },
        })
    }

    /// Outgoing quantity per sale line in a shipment's moves.
    fn outgoing(moves: &[Obj]) -> BTreeMap<String, Decimal> {
        let mut out: BTreeMap<String, Decimal> = BTreeMap::new();
        for m in moves {
            if let Some(line) = m.get("origin").and_then(Value::as_str).and_then(|o| o.strip_prefix(SALE_LINE)) {
                *out.entry(line.to_string()).or_default() += m.get("quantity").and_then(rest::decimal_of).unwrap_or_default();
            }
        }
        out
    }

    fn wanted(write: &FulfilmentWrite) -> BTreeMap<String, Decimal> {
        let mut wanted: BTreeMap<String, Decimal> = BTreeMap::new();
        for (line, qty) in &write.lines {
            *wanted.entry(line.clone()).or_default() += Decimal::from(*qty);
        }
        wanted
    }

    /// The sale's unclaimed shipment (draft, waiting or assigned) whose goods cover
    /// the label's lines, claimed by writing our key into its `reference`; the sale
    /// is asked to process first when there is none yet.
    async fn claim(&self, write: &FulfilmentWrite, sale_id: i64) -> Result<Obj> {
        let wanted = Self::wanted(write);
        for attempt in 0..2 {
            for (s, moves) in self.sale_shipments(sale_id).await? {
                let free = matches!(state(&s), "draft" | "waiting" | "assigned")
                    && rest::text_of(s.get("reference").unwrap_or(&Value::Null)).is_none();
                if !free {
                    continue;
                }
                let id = record_id(&s);
                let have = Self::outgoing(&moves);
                if !wanted.iter().all(|(line, q)| have.get(line).is_some_and(|h| h >= q)) {
                    continue;
                }
                self.write("stock.shipment.out", id, json!({"reference": write.key}), &format!("claiming shipment {id} for {}", write.key))
                    .await?;
                return self.shipment(id).await;
            }
            if attempt == 0 {
                // The remainder of a partial parcel appears when the sale processes.
                if let Err(e) = self.call("sale.sale", sale_id, "process", &format!("processing sale {sale_id}")).await {
                    tracing::warn!(sale = sale_id, error = %e, "Tryton would not process the sale");
                }
            }
        }
        Err(ErpError::Refused {
            what: format!("packing {} for sale {sale_id}", write.key),
            message: format!(
                "no waiting shipment of the sale holds {} (the goods are in other parcels, or the sale is not confirmed)",
                wanted.iter().map(|(l, q)| format!("{q} of sale line {l}")).collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// Trim a claimed, waiting shipment to the label's lines: its inventory moves
    /// (storage to output) carry what is picked; what is not in the parcel is taken
    /// out and Tryton puts it in a new waiting shipment.
    async fn fit(&self, id: i64, write: &FulfilmentWrite) -> Result<()> {
        let moves = self.moves_of(id).await?;
        let mut line_of_outgoing: HashMap<i64, String> = HashMap::new();
        for m in &moves {
            if let Some(line) = m.get("origin").and_then(Value::as_str).and_then(|o| o.strip_prefix(SALE_LINE)) {
                line_of_outgoing.insert(record_id(m), line.to_string());
            }
        }
        let available = Self::outgoing(&moves);
        let mut wanted = Self::wanted(write);
        let what = || format!("packing {} on shipment {id}", write.key);
        for (line, qty) in &wanted {
            let have = available.get(line).copied().unwrap_or_default();
            if *qty > have {
                return Err(ErpError::Refused { what: what(), message: format!("sale line {line} has {have} waiting in this shipment but the parcel holds {qty}") });
            }
        }
        let inventory: Vec<&Obj> = moves
            .iter()
            .filter(|m| m.get("origin").and_then(Value::as_str).is_some_and(|o| o.starts_with("stock.move,")))
            .collect();
        if inventory.is_empty() {
            // A one-step warehouse (storage is the output): nothing to trim, so the
            // parcel must be the whole shipment.
            let whole = available.iter().filter(|(_, q)| !q.is_zero()).all(|(l, q)| wanted.get(l) == Some(q));
            if !whole {
                return Err(ErpError::Refused {
                    what: what(),
                    message: "this warehouse ships in one step, so a parcel must hold the whole shipment; split it in Tryton first".into(),
                });
            }
            return Ok(());
        }
        for m in inventory {
            let out = m.get("origin").and_then(Value::as_str).and_then(|o| o.strip_prefix("stock.move,")).and_then(|s| s.parse::<i64>().ok());
            let Some(line) = out.and_then(|o| line_of_outgoing.get(&o)) else { continue };
            let mid = record_id(m);
            let have = m.get("quantity").and_then(rest::decimal_of).unwrap_or_default();
            let left = wanted.get(line).copied().unwrap_or_default();
            let take = left.min(have);
            if take.is_zero() {
                self.delete("stock.move", mid, &format!("taking sale line {line} out of shipment {id}")).await?;
            } else if take != have {
                self.write("stock.move", mid, json!({"quantity": rest::decimal(take)}), &format!("sale line {line} in shipment {id}")).await?;
            }
            if let Some(w) = wanted.get_mut(line) {
                *w -= take;
            }
        }
        Ok(())
    }

    async fn pack(&self, write: &FulfilmentWrite, sale_id: i64) -> Result<Obj> {
        let mut shipment = match self.shipment_by_key(&write.key).await? {
            Some(s) => s,
            None => self.claim(write, sale_id).await?,
        };
        let id = record_id(&shipment);
        if matches!(state(&shipment), "packed" | "shipped" | "done" | "cancelled") {
            return Ok(shipment);
        }
        if matches!(state(&shipment), "draft" | "waiting" | "assigned") {
            // Back to waiting (assigned by a clerk or Tryton's scheduler), so the
            // moves can be trimmed to the parcel; trimming twice changes nothing.
            if state(&shipment) != "waiting" {
                self.transition(id, "wait", &["waiting"]).await?;
            }
            if let Err(e) = self.fit(id, write).await {
                // Not this shipment: give it back for another label.
                let _ = self.write("stock.shipment.out", id, json!({"reference": null}), &format!("releasing shipment {id}")).await;
                return Err(e);
            }
            self.transition(id, "assign_try", &["assigned", "picked", "packed", "shipped", "done"]).await.map_err(|e| match e {
                ErpError::Refused { what, .. } => ErpError::Refused {
                    what,
                    message: "Tryton could not assign the stock for this parcel (not enough on hand in the warehouse); it is tried again".into(),
                },
                other => other,
            })?;
        }
        shipment = self.transition(id, "pick", &["picked", "packed", "shipped", "done"]).await?;
        let package = write.packages.first();
        let tracking = package.map(|p| p.tracking_number.clone()).unwrap_or_default();
        if state(&shipment) == "picked" {
            if self.packages_enabled().await? && !tracking.is_empty() {
                let existing = self.packages_of(id).await?;
                if existing.is_empty() {
                    let moves: Vec<i64> = self
                        .moves_of(id)
                        .await?
                        .iter()
                        .filter(|m| m.get("origin").and_then(Value::as_str).is_some_and(|o| o.starts_with(SALE_LINE)))
                        .filter(|m| m.get("quantity").and_then(rest::decimal_of).is_some_and(|q| !q.is_zero()))
                        .map(record_id)
                        .collect();
                    let package_type = self.package_type().await?;
                    self.create(
                        "stock.package",
                        json!({
                            "shipment": format!("stock.shipment.out,{id}"),
                            "type": package_type,
                            "moves": [["add", moves]],
                            "shipping_reference": tracking,
                            "company": self.company().await?,
                        }),
                        &format!("the parcel {tracking} of shipment {id}"),
                    )
                    .await?;
                }
            }
            let mut values = json!({"shipping_reference": tracking});
            if let Some(cost) = package.and_then(|p| p.cost) {
                values["cost_edit"] = json!(true);
                values["cost"] = rest::decimal(cost.to_decimal());
                values["cost_currency"] = json!(self.currency_id(cost.currency()).await?);
            }
            self.write("stock.shipment.out", id, values, &format!("tracking {tracking} on shipment {id}")).await?;
            shipment = self.transition(id, "pack", &["packed", "shipped", "done"]).await?;
            // What stayed behind goes to a new waiting shipment.
            if let Err(e) = self.call("sale.sale", sale_id, "process", &format!("processing sale {sale_id}")).await {
                tracing::warn!(sale = sale_id, error = %e, "Tryton would not process the sale after packing");
            }
        }
        Ok(shipment)
    }

    /// Reverse a voided label: a packed shipment is cancelled and its goods go back
    /// to the sale for the next label; resumable at every step.
    async fn cancel(&self, write: &FulfilmentWrite, sale_id: i64) -> Result<Option<Obj>> {
        let Some(shipment) = self.shipment_by_key(&write.key).await? else { return Ok(None) };
        let id = record_id(&shipment);
        if state(&shipment) == "done" {
            return Err(ErpError::Refused {
                what: format!("reversing shipment {} of sale {sale_id}", rec_name(&shipment)),
                message: "it is done in Tryton; cancelling a done shipment puts its stock back, which shipledger leaves to a person".into(),
            });
        }
        let cancelled = self.transition(id, "cancel", &["cancelled"]).await?;
        // The sale recreates the cancelled outgoing moves, so the goods wait for the
        // next label in a new shipment (what Tryton's "handle shipment exception"
        // wizard does). Adding a move already recreated changes nothing, so a retry
        // after a crash between the steps finishes the job.
        let mut by_line: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for m in self.moves_of(id).await? {
            let Some(line) = m.get("origin").and_then(Value::as_str).and_then(|o| o.strip_prefix(SALE_LINE)) else { continue };
            let line: i64 = line.parse().map_err(|_| decode(&format!("shipment {id}"), &format!("a move's origin names sale line {line:?}")))?;
            by_line.entry(line).or_default().extend(m.get("id").and_then(Value::as_i64));
        }
        for (line, mids) in by_line {
            self.write("sale.line", line, json!({"moves_recreated": [["add", mids]]}), &format!("recreating the goods of sale line {line}")).await?;
        }
        self.call("sale.sale", sale_id, "process", &format!("processing sale {sale_id}")).await?;
        // Last, so that the goods are back on the sale (its shipment state no longer
        // `exception`) even while marking the dead number keeps failing.
        self.mark_void(id, &cancelled).await?;
        Ok(Some(self.shipment(id).await?))
    }

    /// The `stock.package` records of shipment `id`, with their `shipping_reference`.
    async fn packages_of(&self, id: i64) -> Result<Vec<Obj>> {
        self.search(
            "stock.package",
            json!([["shipment", "=", format!("stock.shipment.out,{id}")]]),
            &["shipping_reference"],
            None,
            None,
            &format!("the packages of shipment {id}"),
        )
        .await
    }

    /// Mark a voided label's tracking number on its cancelled shipment and package
    /// (`VOID-` in front), so that looking a number up in Tryton finds only live
    /// parcels, while the dead number stays readable; marking twice changes nothing.
    async fn mark_void(&self, id: i64, shipment: &Obj) -> Result<()> {
        if let Some(number) = shipment.get("shipping_reference").and_then(rest::text_of)
            && !number.starts_with(VOID_MARK)
        {
            let values = json!({"shipping_reference": format!("{VOID_MARK}{number}")});
            self.write("stock.shipment.out", id, values, &format!("marking the voided tracking {number} on shipment {id}")).await?;
        }
        if !self.packages_enabled().await? {
            return Ok(());
        }
        let packages = self.packages_of(id).await?;
        for p in packages {
            if let Some(number) = p.get("shipping_reference").and_then(rest::text_of)
                && !number.starts_with(VOID_MARK)
            {
                let pid = record_id(&p);
                let values = json!({"shipping_reference": format!("{VOID_MARK}{number}")});
                self.write("stock.package", pid, values, &format!("marking the voided tracking {number} on package {pid}")).await?;
            }
        }
        Ok(())
    }

    fn record_of(&self, s: &Obj, sale_id: i64, moves: &[Obj]) -> Option<FulfilmentRecord> {
        let key = rest::text_of(s.get("reference")?)?;
        let fstate = match state(s) {
            // Handed over in Tryton but not yet done: packed, as far as we are concerned.
            "packed" | "shipped" => FulfilmentState::Packed,
            "done" => FulfilmentState::Completed,
            "cancelled" => FulfilmentState::Cancelled,
            _ => return None,
        };
        let mut lines: BTreeMap<String, u32> = BTreeMap::new();
        for m in moves {
            if let Some(line) = m.get("origin").and_then(Value::as_str).and_then(|o| o.strip_prefix(SALE_LINE)) {
                let q = m.get("quantity").and_then(rest::decimal_of).unwrap_or_default();
                let q: u32 = q.trunc().try_into().unwrap_or(0);
                if q > 0 {
                    *lines.entry(line.to_string()).or_default() += q;
                }
            }
        }
        let carrier = s.get("carrier").and_then(|c| c.get("rec_name")).and_then(rest::text_of).unwrap_or_default();
        let ship_date = s.get("effective_date").and_then(rest::date_of);
        // A cancelled shipment's numbers are marked dead in Tryton (`mark_void`); the
        // record still names the label they came from.
        let number = |v: &Value| {
            let n = rest::text_of(v)?;
            Some(match (fstate, n.strip_prefix(VOID_MARK)) {
                (FulfilmentState::Cancelled, Some(live)) => live.to_string(),
                _ => n,
            })
        };
        let mut numbers: Vec<String> = s
            .get("packages")
            .and_then(Value::as_array)
            .map(|ps| ps.iter().filter_map(|p| p.get("shipping_reference").and_then(number)).collect())
            .unwrap_or_default();
        if let Some(r) = s.get("shipping_reference").and_then(number)
            && !numbers.contains(&r)
        {
            numbers.push(r);
        }
        let cost = match (s.get("cost").and_then(rest::decimal_of), s.get("cost_currency").and_then(|c| c.get("code")).and_then(Value::as_str)) {
            (Some(amount), Some(code)) => Currency::parse(code).ok().and_then(|c| Money::from_decimal(amount, c, Rounding::HalfEven).ok()),
            _ => None,
        };
        let packages = numbers
            .into_iter()
            .enumerate()
            .map(|(i, n)| Package { carrier: carrier.clone(), service: None, tracking_number: n, ship_date, cost: if i == 0 { cost } else { None } })
            .collect();
        let updated_at = s
            .get("write_date")
            .and_then(rest::timestamp_of)
            .or_else(|| s.get("create_date").and_then(rest::timestamp_of))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        Some(FulfilmentRecord {
            id: s.get("number").and_then(rest::text_of).unwrap_or_else(|| s.get("id").map(|v| v.to_string()).unwrap_or_default()),
            key,
            erp_order_id: sale_id.to_string(),
            state: fstate,
            lines: lines.into_iter().collect(),
            packages,
            updated_at,
        })
    }
}

/// What is read of a move in a shipment.
const MOVE_FIELDS_IN_SHIPMENT: &[&str] = &["quantity", "state", "origin", "from_location", "to_location", "product.code"];

const SHIPMENT_FIELDS: &[&str] = &[
    "number", "rec_name", "state", "reference", "shipping_reference", "packages.shipping_reference", "carrier.rec_name",
    "effective_date", "cost", "cost_currency.code", "write_date", "create_date",
];

fn state(s: &Obj) -> &str {
    s.get("state").and_then(Value::as_str).unwrap_or_default()
}

fn rec_name(s: &Obj) -> String {
    s.get("rec_name").and_then(rest::text_of).unwrap_or_else(|| s.get("id").map(|v| v.to_string()).unwrap_or_default())
}

fn records(v: Value, what: &str) -> Result<Vec<Obj>> {
    match v {
        Value::Array(items) => Ok(items.into_iter().filter_map(|i| if let Value::Object(m) = i { Some(m) } else { None }).collect()),
        other => Err(ErpError::Decode { what: what.to_string(), detail: format!("expected a list of records, got {other}") }),
    }
}

fn decode(what: &str, detail: &str) -> ErpError {
    ErpError::Decode { what: what.to_string(), detail: detail.to_string() }
}

fn sale_id(erp_order_id: &str) -> Result<i64> {
    erp_order_id.parse().map_err(|_| ErpError::NotFound { what: format!("sale {erp_order_id} (Tryton sale ids are numbers)") })
}

fn weight_of(value: Option<Decimal>, uom: Option<&str>, whose: &str) -> std::result::Result<Option<Weight>, String> {
    let Some(value) = value.filter(|v| !v.is_zero()) else { return Ok(None) };
    let unit = WeightUnit::parse(uom.unwrap_or("kg")).map_err(|e| format!("{whose}: weight unit: {e}"))?;
    Weight::from_decimal(value, unit).map(Some).map_err(|e| format!("{whose}: weight {value}: {e}"))
}

fn address_of(a: &Value, party: Option<&str>) -> Address {
    let text = |k: &str| a.get(k).and_then(rest::text_of);
    let street = text("street").unwrap_or_default();
    let mut street_lines = street.lines().map(str::trim).filter(|l| !l.is_empty());
    let street1 = street_lines.next().map(str::to_string);
    let rest_lines: Vec<&str> = street_lines.collect();
    let country = a.get("country").and_then(|c| c.get("code")).and_then(rest::text_of);
    let region = a.get("subdivision").and_then(|s| s.get("code")).and_then(rest::text_of).map(|code| match code.split_once('-') {
        Some((_, r)) => r.to_string(),
        None => code,
    });
    Address {
        name: text("party_name").or_else(|| party.map(str::to_string)),
        company: None,
        street1,
        street2: if rest_lines.is_empty() { None } else { Some(rest_lines.join(", ")) },
        city: text("city"),
        region,
        postal_code: text("postal_code"),
        country,
        phone: None,
        email: None,
    }
}

/// The `sale.sale` fields an order is made of.
fn sale_fields(rule: PaymentRule) -> Vec<&'static str> {
    let mut fields = vec![
        "number", "reference", "state", "shipment_state", "invoice_state", "create_date", "write_date", "sale_date",
        "currency.code", "total_amount", "party.name", "party.email", "carrier.rec_name",
        "shipment_address.party_name", "shipment_address.street", "shipment_address.city",
        "shipment_address.postal_code", "shipment_address.country.code", "shipment_address.subdivision.code",
    ];
    if rule == PaymentRule::SalePayment {
        fields.extend(["payments.state", "payments.amount", "payments.kind"]);
    }
    fields
}

impl TrytonClient {
    /// These sales as orders, with their lines read in one request.
    async fn orders_of(&self, sales: &[Obj], rule: PaymentRule) -> Result<Vec<ErpOrder>> {
        let ids: Vec<i64> = sales.iter().map(record_id).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let lines = self.sale_lines(&ids).await?;
        sales
            .iter()
            .map(|s| {
                let sid = record_id(s);
                self.order_of(s, lines.get(&sid).map(Vec::as_slice).unwrap_or_default(), rule)
                    .map_err(|detail| ErpError::Decode { what: format!("sale {sid}"), detail })
            })
            .collect()
    }

    fn order_of(&self, sale: &Obj, lines: &[Obj], rule: PaymentRule) -> std::result::Result<ErpOrder, String> {
        let id = sale.get("id").and_then(Value::as_i64).ok_or("a sale without an id")?;
        let whose = format!("sale {id}");
        let code = sale.get("currency").and_then(|c| c.get("code")).and_then(Value::as_str).ok_or(format!("{whose} has no currency"))?;
        let currency = Currency::parse(code).map_err(|e| format!("{whose}: currency {code:?}: {e}"))?;
        let money = |v: Option<&Value>, what: &str| -> std::result::Result<Money, String> {
            let d = v.and_then(rest::decimal_of).unwrap_or_default();
            Money::from_decimal(d, currency, Rounding::HalfEven).map_err(|e| format!("{whose}: {what} {d}: {e}"))
        };
        let mut out_lines = Vec::new();
        let mut shipping: Option<Money> = None;
        for l in lines {
            if l.get("type").and_then(Value::as_str) != Some("line") {
                continue;
            }
            if l.get("shipment_cost").is_some_and(|c| !c.is_null()) {
                // The shipping charge (sale_shipment_cost): what the customer paid
                // for shipping, not a parcel item.
                let amount = money(l.get("amount"), "shipping charge")?;
                shipping = Some(match shipping {
                    Some(s) => s.checked_add(&amount).map_err(|e| format!("{whose}: shipping charge: {e}"))?,
                    None => amount,
                });
                continue;
            }
            let lid = record_id(l);
            let lwhose = format!("{whose} line {lid}");
            let mut qty = l.get("quantity").and_then(rest::decimal_of).unwrap_or_default();
            let product = l.get("product").cloned().unwrap_or(Value::Null);
            let sku = product.get("code").and_then(rest::text_of);
            let physical = product.get("type").and_then(Value::as_str) == Some("goods");
            let mut unit_price = money(l.get("unit_price"), "unit price")?;
            if qty.fract() != Decimal::ZERO || qty.is_sign_negative() {
                if physical {
                    return Err(format!("{lwhose}: quantity {qty} of goods is not a whole, positive number of units"));
                }
                // A service by the hour, say: one unit at the line's amount.
                unit_price = money(l.get("amount"), "line amount")?;
                qty = Decimal::ONE;
            }
            let weight = weight_of(
                product.get("weight").and_then(rest::decimal_of),
                product.get("weight_uom").and_then(|u| u.get("symbol")).and_then(Value::as_str),
                &lwhose,
            )?;
            out_lines.push(ErpLine {
                line_id: lid.to_string(),
                sku,
                name: l
                    .get("description")
                    .and_then(rest::text_of)
                    .or_else(|| product.get("rec_name").and_then(rest::text_of))
                    .unwrap_or_default(),
                quantity: qty.trunc().try_into().map_err(|_| format!("{lwhose}: quantity {qty} is too large"))?,
                unit_price,
                unit_weight: weight,
                physical,
            });
        }
        let total = money(sale.get("total_amount"), "total")?;
        let payment = match rule {
            PaymentRule::SalePayment | PaymentRule::Auto => {
                let payments = sale.get("payments").and_then(Value::as_array).cloned().unwrap_or_default();
                let mut paid = Decimal::ZERO;
                let mut ids = Vec::new();
                let mut pending = false;
                for p in &payments {
                    let amount = p.get("amount").and_then(rest::decimal_of).unwrap_or_default();
                    // Refunds are payable payments: Tryton subtracts them too.
                    let sign = if p.get("kind").and_then(Value::as_str) == Some("payable") { -Decimal::ONE } else { Decimal::ONE };
                    match p.get("state").and_then(Value::as_str) {
                        Some("succeeded") => {
                            paid += sign * amount;
                            ids.push(rest::id_of(p).unwrap_or_default().to_string());
                        }
                        Some("approved" | "processing" | "submitted") if sign.is_sign_positive() => pending = true,
                        _ => {}
                    }
                }
                let amount = Money::from_decimal(paid.max(Decimal::ZERO), currency, Rounding::HalfEven)
                    .map_err(|e| format!("{whose}: payments {paid}: {e}"))?;
                let covered = amount.checked_cmp(&total).is_ok_and(|o| o.is_ge());
                let state = if covered && (paid > Decimal::ZERO || total.minor() == 0) {
                    PaymentState::Captured
                } else if paid < Decimal::ZERO || (paid.is_zero() && !ids.is_empty()) {
                    PaymentState::Refunded
                } else if pending || !paid.is_zero() {
                    PaymentState::Authorised
                } else {
                    PaymentState::Unpaid
                };
                PaymentEvidence {
                    state,
                    source: if ids.is_empty() { "tryton:sale_payment:none".into() } else { format!("tryton:account.payment:{}", ids.join("+")) },
                    amount,
                    at: None,
                }
            }
            PaymentRule::InvoicePaid => {
                let invoice_state = sale.get("invoice_state").and_then(Value::as_str).unwrap_or("none");
                let paid = invoice_state == "paid";
                PaymentEvidence {
                    state: if paid { PaymentState::Captured } else { PaymentState::Unpaid },
                    source: format!("tryton:sale.invoice_state:{invoice_state}"),
                    amount: if paid { total } else { Money::from_minor(0, currency) },
                    at: None,
                }
            }
        };
        let (status, status_reason) = status_of(sale, out_lines.iter().any(|l| l.physical));
        let party = sale.get("party").and_then(|p| p.get("name")).and_then(Value::as_str);
        let ship_to = address_of(sale.get("shipment_address").unwrap_or(&Value::Null), party);
        let created = sale.get("create_date").and_then(rest::timestamp_of).unwrap_or(Timestamp::UNIX_EPOCH);
        Ok(ErpOrder {
            erp_id: id.to_string(),
            number: sale.get("number").and_then(rest::text_of).unwrap_or_else(|| id.to_string()),
            status,
            status_reason,
            currency: currency.code().to_string(),
            placed_at: created,
            updated_at: updated_of(sale),
            customer_email: sale.get("party").and_then(|p| p.get("email")).and_then(rest::text_of),
            ship_to,
            bill_to: None,
            lines: out_lines,
            shipping_paid: shipping,
            tax_paid: None,
            payment,
            requested_service: sale.get("carrier").and_then(|c| c.get("rec_name")).and_then(rest::text_of),
            customer_reference: sale.get("reference").and_then(rest::text_of),
        })
    }
}

/// Whether Tryton still wants a sale shipped, and why not. A processing sale cannot
/// be cancelled in Tryton: its shipment is cancelled instead, which leaves the sale
/// in shipment state `exception` until someone handles it (recreate the moves: it
/// ships again; ignore them: nothing is left to ship, shipment state `none`, and the
/// sale goes `done` once invoiced).
fn status_of(sale: &Obj, has_goods: bool) -> (ErpOrderStatus, Option<String>) {
    let state = sale.get("state").and_then(Value::as_str).unwrap_or("draft");
    let shipment = sale.get("shipment_state").and_then(Value::as_str).unwrap_or("none");
    match (state, shipment) {
        ("cancelled", _) => (ErpOrderStatus::Cancelled, Some("sale cancelled in Tryton".into())),
        ("processing" | "done", "exception") => (
            ErpOrderStatus::OnHold,
            Some(
                "its shipment was cancelled in Tryton and waits for the sale's shipment exception to be handled \
                 (recreate the moves to ship it, ignore them to withdraw it)"
                    .into(),
            ),
        ),
        ("processing" | "done", "none") if has_goods => (
            ErpOrderStatus::Cancelled,
            Some(format!("sale {state} in Tryton with its shipment cancelled and the moves ignored: nothing is left to ship")),
        ),
        ("processing" | "confirmed" | "done", _) => (ErpOrderStatus::Open, None),
        (other, _) => (ErpOrderStatus::OnHold, Some(format!("sale is {other} in Tryton"))),
    }
}

fn updated_of(sale: &Obj) -> Timestamp {
    sale.get("write_date")
        .and_then(rest::timestamp_of)
        .or_else(|| sale.get("create_date").and_then(rest::timestamp_of))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn record_id(s: &Obj) -> i64 {
    s.get("id").and_then(Value::as_i64).unwrap_or_default()
}

/// Sales last written (or, never written, created) in `[from, to)`.
fn updated_between(from: Option<Timestamp>, to: Option<Timestamp>) -> Value {
    let clause = |field: &str| {
        let mut c = Vec::new();
        if let Some(f) = from {
            c.push(json!([field, ">=", rest::datetime(f)]));
        }
        if let Some(t) = to {
            c.push(json!([field, "<", rest::datetime(t)]));
        }
        c
    };
    let mut written = vec![json!(["write_date", "!=", null])];
    written.extend(clause("write_date"));
    let mut created = vec![json!(["write_date", "=", null])];
    created.extend(clause("create_date"));
    json!(["OR", written, created])
}

/// Our cursor keeps milliseconds; Tryton keeps microseconds. Sales compare by the
/// millisecond, then by numeric id.
fn position(t: Timestamp, id: i64) -> (i64, i64) {
    (t.as_millisecond(), id)
}

impl Erp for TrytonClient {
    fn kind(&self) -> &'static str {
        "tryton"
    }

    fn check(&self) -> BoxFuture<'_, Vec<crate::CheckItem>> {
        Box::pin(self.check_connection())
    }

    fn changed_orders<'a>(&'a self, since: Option<&'a Cursor>, limit: u32) -> BoxFuture<'a, Result<Vec<ErpOrder>>> {
        Box::pin(async move {
            let limit = limit.clamp(1, 500) as usize;
            let rule = self.payment_rule().await?;
            let fields = sale_fields(rule);
            // Tryton stamps write_date when a transaction starts: a sale committed
            // late could carry a time before one already read. Sales are read only
            // once they are SETTLE old.
            let settled = Timestamp::now() - SETTLE;
            let ms = |t: Timestamp| Timestamp::from_millisecond(t.as_millisecond()).unwrap_or(t);
            let next_ms = |t: Timestamp| Timestamp::from_millisecond(t.as_millisecond() + 1).unwrap_or(t);
            let search = |window: Value, order: Value, n: usize| {
                let domain = json!([self.settings.ready_domain.clone(), window, updated_between(None, Some(settled))]);
                let fields = fields.clone();
                async move { self.search("sale.sale", domain, &fields, Some(order), Some(n as u32), "the changed sales").await }
            };
            let by_id = json!([["id", "ASC"]]);
            let mut picked: Vec<Obj> = Vec::new();
            let mut after = None;
            if let Some(c) = since {
                // First the rest of the cursor's millisecond, by id.
                let cid: i64 = c.erp_id.parse().unwrap_or(0);
                let group = search(
                    json!([updated_between(Some(ms(c.updated_at)), Some(next_ms(c.updated_at))), ["id", ">", cid]]),
                    by_id.clone(),
                    limit,
                )
                .await?;
                picked.extend(group);
                after = Some(next_ms(c.updated_at));
            }
            if picked.len() < limit {
                // Then later sales by time; a page that comes back full may end in
                // the middle of a millisecond, so its last millisecond is left for
                // the next call (or, when it is all one millisecond, read by id).
                let want = limit - picked.len();
                let mut later = search(
                    updated_between(after, None),
                    json!([["write_date", "ASC NULLS FIRST"], ["create_date", "ASC"], ["id", "ASC"]]),
                    want + SLACK as usize,
                )
                .await?;
                later.sort_by_key(|s| position(updated_of(s), record_id(s)));
                if later.len() >= want + SLACK as usize
                    && let (Some(first), Some(last)) = (later.first(), later.last())
                {
                    let last_ms = updated_of(last).as_millisecond();
                    if updated_of(first).as_millisecond() == last_ms {
                        let t = updated_of(last);
                        later = search(updated_between(Some(ms(t)), Some(next_ms(t))), by_id.clone(), want).await?;
                    } else {
                        later.retain(|s| updated_of(s).as_millisecond() != last_ms);
                    }
                }
                later.truncate(want);
                picked.extend(later);
            }
            picked.sort_by_key(|s| position(updated_of(s), record_id(s)));
            self.orders_of(&picked, rule).await
        })
    }

    /// Ready sales with a line whose product (`product.product` or its template) or
    /// whose shipment address (`party.address`) was written since `since`, less the
    /// settling time (a write is stamped when its transaction starts).
    fn orders_touched_since<'a>(&'a self, since: Timestamp) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let t = rest::datetime(since - SETTLE);
            let domain = json!([
                self.settings.ready_domain.clone(),
                ["OR",
                    ["lines.product.write_date", ">=", t],
                    ["lines.product.template.write_date", ">=", t],
                    ["shipment_address.write_date", ">=", t]],
            ]);
            let sales = self.search("sale.sale", domain, &["id"], Some(json!([["id", "ASC"]])), Some(TOUCHED_MAX), "the sales whose products or addresses changed").await?;
            Ok(sales.iter().map(|s| record_id(s).to_string()).collect())
        })
    }

    fn orders<'a>(&'a self, erp_ids: &'a [String]) -> BoxFuture<'a, Result<Vec<ErpOrder>>> {
        Box::pin(async move {
            let rule = self.payment_rule().await?;
            let fields = sale_fields(rule);
            let mut out = Vec::new();
            for chunk in erp_ids.chunks(crate::ORDERS_PER_READ) {
                // Ids that are not sale ids name no sale: absent, like unknown ones.
                let ids: Vec<i64> = chunk.iter().filter_map(|id| id.parse().ok()).collect();
                if ids.is_empty() {
                    continue;
                }
                // Whatever their state: a sale that left the ready set is read too,
                // and its status says what became of it.
                let sales = self.search("sale.sale", json!([["id", "in", ids]]), &fields, None, None, "the sales read by id").await?;
                let mut orders = self.orders_of(&sales, rule).await?;
                let asked: HashMap<&str, usize> = chunk.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
                orders.sort_by_key(|o| asked.get(o.erp_id.as_str()).copied());
                out.extend(orders);
            }
            Ok(out)
        })
    }

    fn invoiced<'a>(&'a self, erp_ids: &'a [String]) -> BoxFuture<'a, Result<Option<Invoiced>>> {
        Box::pin(async move { self.invoiced_of(erp_ids).await.map(Some) })
    }

    fn products<'a>(&'a self, skus: &'a [String]) -> BoxFuture<'a, Result<Vec<Product>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for chunk in skus.chunks(100) {
                let found = self
                    .search_in(
                        "product.product",
                        json!([["code", "in", chunk]]),
                        &["code", "rec_name", "active", "weight", "weight_uom.symbol"],
                        None,
                        None,
                        Some(json!({"company": self.company().await?, "active_test": false})),
                        "the product master",
                    )
                    .await?;
                for p in found {
                    let Some(sku) = p.get("code").and_then(rest::text_of) else { continue };
                    let weight = weight_of(
                        p.get("weight").and_then(rest::decimal_of),
                        p.get("weight_uom").and_then(|u| u.get("symbol")).and_then(Value::as_str),
                        &format!("product {sku}"),
                    )
                    .map_err(|detail| ErpError::Decode { what: format!("product {sku}"), detail })?;
                    out.push(Product {
                        sku,
                        name: p.get("rec_name").and_then(rest::text_of).unwrap_or_default(),
                        unit_weight: weight,
                        active: p.get("active").and_then(Value::as_bool).unwrap_or(true),
                    });
                }
            }
            Ok(out)
        })
    }

    fn record_fulfilment<'a>(&'a self, write: &'a FulfilmentWrite) -> BoxFuture<'a, Result<FulfilmentRecord>> {
        Box::pin(async move {
            let sale = sale_id(&write.erp_order_id)?;
            let shipment = match write.state {
                FulfilmentState::Packed => self.pack(write, sale).await?,
                FulfilmentState::Completed => {
                    let packed = self.pack(write, sale).await?;
                    let id = record_id(&packed);
                    if state(&packed) == "cancelled" {
                        return Err(ErpError::Refused {
                            what: format!("completing shipment {} of sale {sale}", rec_name(&packed)),
                            message: "it was cancelled (its label was voided)".into(),
                        });
                    }
                    if let Some(date) = write.packages.first().and_then(|p| p.ship_date)
                        && matches!(state(&packed), "packed" | "shipped")
                    {
                        self.write("stock.shipment.out", id, json!({"effective_date": rest::date(date)}), &format!("the ship date of shipment {id}"))
                            .await?;
                    }
                    self.transition(id, "do", &["done"]).await?
                }
                FulfilmentState::Cancelled => match self.cancel(write, sale).await? {
                    Some(s) => s,
                    None => {
                        return Err(ErpError::NotFound { what: format!("shipment for {} in sale {sale}", write.key) });
                    }
                },
            };
            let id = record_id(&shipment);
            let moves = self.moves_of(id).await?;
            self.record_of(&shipment, sale, &moves)
                .ok_or_else(|| decode(&format!("shipment {id}"), &format!("it is {} after the write", state(&shipment))))
        })
    }

    fn fulfilments<'a>(&'a self, erp_order_id: &'a str) -> BoxFuture<'a, Result<Vec<FulfilmentRecord>>> {
        Box::pin(async move {
            let sale = sale_id(erp_order_id)?;
            let mut out = Vec::new();
            for (s, moves) in self.sale_shipments(sale).await? {
                if rest::text_of(s.get("reference").unwrap_or(&Value::Null)).is_none() {
                    continue;
                }
                out.extend(self.record_of(&s, sale, &moves));
            }
            Ok(out)
        })
    }

    fn base_currency(&self) -> BoxFuture<'_, Result<Currency>> {
        Box::pin(async move { Ok(self.company_currency().await?.1) })
    }

    fn fx_quote<'a>(&'a self, from: Currency, to: Currency, date: Date) -> BoxFuture<'a, Result<Option<FxQuote>>> {
        Box::pin(async move {
            // One unit of the company currency is `rate` units of a currency: the
            // latest `currency.currency.rate` row on or before the date, as Tryton's
            // own `currency.currency.compute` reads it. No row → Tryton refuses to
            // convert, and so do we.
            let rate_of = |c: Currency| async move {
                let cid = self.currency_id(c).await?;
                let found = self
                    .search(
                        "currency.currency.rate",
                        json!([["currency", "=", cid], ["date", "<=", rest::date(date)]]),
                        &["rate", "date"],
                        Some(json!([["date", "DESC"]])),
                        Some(1),
                        &format!("the {} rate on {date}", c.code()),
                    )
                    .await?;
                Ok::<_, ErpError>(found.first().and_then(|r| {
                    Some((r.get("rate").and_then(rest::decimal_of)?, r.get("date").and_then(rest::date_of)?, r.get("id").and_then(Value::as_i64)?))
                }))
            };
            let (Some(f), Some(t)) = (rate_of(from).await?, rate_of(to).await?) else { return Ok(None) };
            if f.0 <= Decimal::ZERO || t.0 <= Decimal::ZERO {
                return Ok(None);
            }
            // The company currency is usually the reference (its rate is 1 however
            // old its row): then only the other side's date says how fresh the quote
            // is. A company currency quoted against another reference (a rate other
            // than 1) has a dated rate like any other, and its date counts.
            let (_, company) = self.company_currency().await?;
            let dated: Vec<Date> = [(from, f.0, f.1), (to, t.0, t.1)]
                .into_iter()
                .filter(|(c, rate, _)| !(*c == company && *rate == Decimal::ONE))
                .map(|(_, _, d)| d)
                .collect();
            let quote_date = dated.into_iter().min().unwrap_or(f.1.max(t.1));
            Ok(Some(FxQuote {
                from,
                to,
                rate_from: f.0,
                rate_to: t.0,
                date: quote_date,
                source: format!("tryton:currency.currency.rate:{}+{}", f.2, t.2),
            }))
        })
    }

    fn post_journal<'a>(&'a self, journal: &'a JournalWrite) -> BoxFuture<'a, Result<JournalRecord>> {
        Box::pin(async move {
            let what = format!("journal {}", journal.key);
            let tag = format!("[{}]", journal.key);
            let existing = self
                .search("account.move", json!([["description", "like", format!("%{tag}")]]), MOVE_FIELDS, None, None, &what)
                .await?
                .into_iter()
                .find(|m| m.get("description").and_then(Value::as_str).is_some_and(|d| d.ends_with(&tag)));
            if let Some(m) = existing.as_ref().filter(|m| m.get("state").and_then(Value::as_str) == Some("posted")) {
                return self.verified(m, journal, &what);
            }
            // Nothing is written (not even a stale draft deleted) into a period that
            // is not open.
            let (state, _) = self.period_of(journal.date, &what).await?;
            if state != PeriodState::Open {
                return Err(ErpError::PeriodNotOpen { what, date: journal.date, state });
            }
            // A draft left by a crash between create and post: it may not be what is
            // asked now, so it goes and the move is made again.
            if let Some(m) = existing {
                let id = record_id(&m);
                self.delete("account.move", id, &format!("the unposted draft of {what}")).await?;
            }
            let move_id = self.create_move(journal, &tag, &what).await?;
            if let Err(e) = self.call("account.move", move_id, "post", &format!("posting {what}")).await {
                let m = self.read("account.move", move_id, MOVE_FIELDS, &what).await?;
                if m.get("state").and_then(Value::as_str) != Some("posted") {
                    // Nothing half-written stays behind: the draft goes.
                    if let Err(d) = self.delete("account.move", move_id, &format!("the unposted draft of {what}")).await {
                        return Err(ErpError::Refused {
                            what,
                            message: format!("{e}; and its draft move {move_id} could not be deleted ({d}): delete it in Tryton"),
                        });
                    }
                    return Err(e);
                }
            }
            let m = self.read("account.move", move_id, MOVE_FIELDS, &what).await?;
            self.verified(&m, journal, &what)
        })
    }

    fn company_timezone(&self) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(async move {
            let company = self.company().await?;
            let rec = self.read("company.company", company, &["timezone"], &format!("company {company}")).await?;
            Ok(rec.get("timezone").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_string))
        })
    }

    fn period_state<'a>(&'a self, date: Date) -> BoxFuture<'a, Result<PeriodState>> {
        Box::pin(async move { Ok(self.period_of(date, &format!("the period of {date}")).await?.0) })
    }

    fn ledger_setup<'a>(&'a self, accounts: &'a [String], journal: &'a str) -> BoxFuture<'a, Result<LedgerSetup>> {
        Box::pin(async move {
            let what = "the chart of accounts";
            let company = self.company().await?;
            let found = self
                .search("account.account", json!([["code", "in", accounts], ["company", "=", company]]), &["code"], None, None, what)
                .await?;
            let codes: Vec<String> = found.iter().filter_map(|a| a.get("code").and_then(rest::text_of)).collect();
            let journals = self.search("account.journal", json!([["code", "=", journal]]), &["code"], None, Some(1), what).await?;
            Ok(LedgerSetup {
                missing_accounts: accounts.iter().filter(|c| !codes.contains(c)).cloned().collect(),
                journal_exists: !journals.is_empty(),
            })
        })
    }

    fn stock<'a>(&'a self, sku: &'a str) -> BoxFuture<'a, Result<StockLevel>> {
        Box::pin(async move {
            let product = self.product_by_code(sku).await?;
            let (warehouse, _) = self.warehouse().await?;
            self.stock_at(sku, product, warehouse).await
        })
    }

    fn adjust_stock<'a>(&'a self, adjustment: &'a StockAdjustment) -> BoxFuture<'a, Result<StockLevel>> {
        Box::pin(async move {
            let product = self.product_by_code(&adjustment.sku).await?;
            let (warehouse, storage) = self.warehouse().await?;
            let what = format!("stock adjustment {}", adjustment.key);
            let seen = self
                .search("ir.attachment", json!([["name", "=", adjustment.key], ["resource", "like", "stock.inventory,%"]]), &["resource"], None, Some(1), &what)
                .await?;
            let inventory = match seen.first().and_then(|a| a.get("resource")).and_then(Value::as_str).and_then(|r| r.strip_prefix("stock.inventory,")) {
                Some(id) => id.parse::<i64>().map_err(|_| decode(&what, &format!("the attachment names inventory {id:?}")))?,
                None => {
                    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
                    let id = self
                        .create(
                            "stock.inventory",
                            json!({
                                "location": storage,
                                "company": self.company().await?,
                                "date": rest::date(today),
                                "empty_quantity": "keep",
                                "lines": [["create", [{"product": product}]]],
                            }),
                            &what,
                        )
                        .await?;
                    // Our key, so a retry finds this inventory instead of making another.
                    self.create(
                        "ir.attachment",
                        json!({"name": adjustment.key, "resource": format!("stock.inventory,{id}"), "type": "data", "description": adjustment.reason}),
                        &what,
                    )
                    .await?;
                    id
                }
            };
            let inv = self.read("stock.inventory", inventory, &["state"], &what).await?;
            if inv.get("state").and_then(Value::as_str) != Some("done") {
                // An inventory counts absolute quantities: the count is what Tryton
                // expects in the storage location now, plus the adjustment.
                let url = self.url(&format!("model/stock.inventory/{inventory}/complete_lines"));
                let context = self.context().await?;
                self.send(Method::POST, url, Some(&json!({"fill": false})), Some(&context), &format!("counting {what}")).await?;
                let lines = self
                    .search("stock.inventory.line", json!([["inventory", "=", inventory], ["product", "=", product]]), &["expected_quantity"], None, Some(1), &what)
                    .await?;
                let line = lines.first().ok_or_else(|| decode(&what, "the inventory has no line for the product"))?;
                let expected = line.get("expected_quantity").and_then(rest::decimal_of).unwrap_or_default();
                let target = expected + Decimal::from(adjustment.delta);
                if target.is_sign_negative() {
                    return Err(ErpError::Refused {
                        what,
                        message: format!("{} has {expected} in the storage location; removing {} would go below zero", adjustment.sku, -adjustment.delta),
                    });
                }
                let line_id = record_id(line);
                // Tryton keeps quantities as floats; a count of units is a whole number.
                let count: i64 = target.trunc().try_into().map_err(|_| decode(&what, &format!("count {target}")))?;
                if target.fract() != Decimal::ZERO {
                    return Err(ErpError::Refused { what, message: format!("{} is counted in fractions ({expected}); adjust it in Tryton", adjustment.sku) });
                }
                self.write("stock.inventory.line", line_id, json!({"quantity": count}), &what).await?;
                self.call("stock.inventory", inventory, "confirm", &format!("confirming {what}")).await?;
            }
            self.stock_at(&adjustment.sku, product, warehouse).await
        })
    }
}

const MOVE_FIELDS: &[&str] = &[
    "number", "state", "date", "description", "lines.account.code", "lines.debit", "lines.credit", "lines.description",
    "lines.second_currency.code", "lines.amount_second_currency",
];

impl TrytonClient {
    async fn stock_at(&self, sku: &str, product: i64, location: i64) -> Result<StockLevel> {
        let found = self
            .search_in(
                "product.product",
                json!([["id", "=", product]]),
                &["quantity", "forecast_quantity"],
                None,
                Some(1),
                Some(json!({"company": self.company().await?, "locations": [location]})),
                &format!("the stock of {sku}"),
            )
            .await?;
        let p = found.first().ok_or_else(|| ErpError::NotFound { what: format!("product {sku}") })?;
        let whole = |k: &str| -> i64 { p.get(k).and_then(rest::decimal_of).unwrap_or_default().trunc().try_into().unwrap_or(0) };
        let on_hand = whole("quantity");
        let forecast = whole("forecast_quantity");
        Ok(StockLevel { sku: sku.to_string(), on_hand, reserved: (on_hand - forecast).max(0) })
    }

    /// The state of the company's standard period holding `date`, with its id.
    async fn period_of(&self, date: Date, what: &str) -> Result<(PeriodState, Option<i64>)> {
        let company = self.company().await?;
        let periods = self
            .search(
                "account.period",
                json!([["company", "=", company], ["type", "=", "standard"],
                       ["start_date", "<=", rest::date(date)], ["end_date", ">=", rest::date(date)]]),
                &["state"],
                None,
                Some(1),
                what,
            )
            .await?;
        let Some(p) = periods.first() else { return Ok((PeriodState::Missing, None)) };
        let state = match p.get("state").and_then(Value::as_str) {
            Some("open") => PeriodState::Open,
            Some("closed") => PeriodState::Closed,
            Some("locked") => PeriodState::Locked,
            other => return Err(decode(what, &format!("period state {other:?}"))),
        };
        Ok((state, Some(record_id(p))))
    }

    /// The move read back as a [`JournalRecord`], checked against what was asked:
    /// posted, same date, same lines and amounts (base and second currency).
    fn verified(&self, m: &Obj, journal: &JournalWrite, what: &str) -> Result<JournalRecord> {
        let record = self.journal_record(m, journal)?;
        record.verify(journal).map_err(|message| ErpError::Refused { what: what.to_string(), message })?;
        Ok(record)
    }

    async fn create_move(&self, journal: &JournalWrite, tag: &str, what: &str) -> Result<i64> {
        let company = self.company().await?;
        let (_, base) = self.company_currency().await?;
        let journals = self.search("account.journal", json!([["code", "=", self.settings.journal]]), &["code"], None, Some(1), what).await?;
        let journal_id = journals.first().map(record_id).ok_or_else(|| ErpError::NotFound {
            what: format!("journal with code {:?} (set erp.tryton.journal)", self.settings.journal),
        })?;
        let periods = self
            .search(
                "account.period",
                json!([["company", "=", company], ["type", "=", "standard"], ["state", "=", "open"],
                       ["start_date", "<=", rest::date(journal.date)], ["end_date", ">=", rest::date(journal.date)]]),
                &["name"],
                None,
                Some(1),
                what,
            )
            .await?;
        let period = periods.first().map(record_id).ok_or_else(|| ErpError::Refused {
            what: what.to_string(),
            message: format!("Tryton has no open period for {}; open one (or the fiscal year) and the journal is posted on the next try", journal.date),
        })?;
        let mut lines = Vec::new();
        for l in &journal.lines {
            for m in [&l.debit, &l.credit] {
                if m.currency() != base {
                    return Err(ErpError::Refused {
                        what: what.to_string(),
                        message: format!("line on account {} is in {}, not the company currency {}", l.account, m.currency().code(), base.code()),
                    });
                }
            }
            let accounts = self
                .search("account.account", json!([["code", "=", l.account], ["company", "=", company]]), &["code", "party_required"], None, Some(1), what)
                .await?;
            let account = accounts.first().ok_or_else(|| ErpError::NotFound { what: format!("account {} in Tryton's chart", l.account) })?;
            let mut line = json!({
                "account": account.get("id").and_then(Value::as_i64),
                "debit": rest::decimal(l.debit.to_decimal()),
                "credit": rest::decimal(l.credit.to_decimal()),
            });
            if let Some(memo) = &l.memo {
                line["description"] = json!(memo);
            }
            if let Some(original) = l.original.filter(|o| o.currency() != base) {
                // Signed like the line's balance (debit - credit), as Tryton wants.
                let amount = original.to_decimal().abs();
                let balance = l.debit.minor() - l.credit.minor();
                let signed = if balance < 0 { -amount } else { amount };
                line["second_currency"] = json!(self.currency_id(original.currency()).await?);
                line["amount_second_currency"] = rest::decimal(signed);
            }
            if account.get("party_required").and_then(Value::as_bool) == Some(true) {
                let name = self.settings.journal_party.as_deref().ok_or_else(|| ErpError::Refused {
                    what: what.to_string(),
                    message: format!("account {} needs a party; set erp.tryton.journal_party to the carrier's or ShipStation's party name", l.account),
                })?;
                let parties = self.search("party.party", json!([["name", "=", name]]), &["name"], None, Some(1), what).await?;
                let party = parties.first().map(record_id).ok_or_else(|| ErpError::NotFound {
                    what: format!("party {name:?} (erp.tryton.journal_party)"),
                })?;
                line["party"] = json!(party);
            }
            lines.push(line);
        }
        self.create(
            "account.move",
            json!({
                "company": company,
                "journal": journal_id,
                "period": period,
                "date": rest::date(journal.date),
                "description": format!("{} {tag}", journal.memo),
                "lines": [["create", lines]],
            }),
            what,
        )
        .await
    }

    fn journal_record(&self, m: &Obj, journal: &JournalWrite) -> Result<JournalRecord> {
        let what = format!("journal {}", journal.key);
        let mut lines = Vec::new();
        for l in m.get("lines").and_then(Value::as_array).cloned().unwrap_or_default() {
            let base = journal.lines.first().map(|j| j.debit.currency()).unwrap_or(Currency::GBP);
            let money = |k: &str| -> Result<Money> {
                let d = l.get(k).and_then(rest::decimal_of).unwrap_or_default();
                Money::from_decimal(d, base, Rounding::HalfEven).map_err(|e| decode(&what, &format!("{k} {d}: {e}")))
            };
            let original = match (
                l.get("second_currency").and_then(|c| c.get("code")).and_then(Value::as_str),
                l.get("amount_second_currency").and_then(rest::decimal_of),
            ) {
                (Some(code), Some(amount)) => {
                    let c = Currency::parse(code).map_err(|e| decode(&what, &e.to_string()))?;
                    Some(Money::from_decimal(amount.abs(), c, Rounding::HalfEven).map_err(|e| decode(&what, &e.to_string()))?)
                }
                _ => None,
            };
            lines.push(JournalLine {
                account: l.get("account").and_then(|a| a.get("code")).and_then(rest::text_of).unwrap_or_default(),
                debit: money("debit")?,
                credit: money("credit")?,
                original,
                memo: l.get("description").and_then(rest::text_of),
            });
        }
        Ok(JournalRecord {
            id: m.get("number").and_then(rest::text_of).unwrap_or_else(|| m.get("id").map(|v| v.to_string()).unwrap_or_default()),
            key: journal.key.clone(),
            date: m.get("date").and_then(rest::date_of).unwrap_or(journal.date),
            posted: m.get("state").and_then(Value::as_str) == Some("posted"),
            lines,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_must_name_the_database() {
        assert!(TrytonClient::new("http://127.0.0.1:8000/", "k", TrytonSettings::default()).is_err());
        let c = TrytonClient::new("http://127.0.0.1:8000/shop", "k", TrytonSettings::default()).unwrap();
        assert_eq!(c.url("model/sale.sale").as_str(), "http://127.0.0.1:8000/shop/rest/model/sale.sale");
        assert!(!format!("{c:?}").contains("\"k\""));
    }

    #[test]
    fn a_multi_line_street_and_a_subdivision_become_our_address() {
        let a = json!({"street": "Flat 2\n18 Deansgate\n", "city": "Manchester", "postal_code": "M3 1AZ",
                       "country": {"code": "US"}, "subdivision": {"code": "US-NY"}, "party_name": null});
        let got = address_of(&a, Some("Dan Brown"));
        assert_eq!(got.street1.as_deref(), Some("Flat 2"));
        assert_eq!(got.street2.as_deref(), Some("18 Deansgate"));
        assert_eq!(got.region.as_deref(), Some("NY"));
        assert_eq!(got.name.as_deref(), Some("Dan Brown"));
    }

    #[test]
    fn weights_come_in_their_unit_and_zero_is_no_weight() {
        let kg = weight_of(Some(Decimal::new(2, 1)), Some("kg"), "x").unwrap().unwrap();
        assert_eq!(kg, Weight::from_grams(200));
        assert_eq!(weight_of(Some(Decimal::ZERO), Some("kg"), "x").unwrap(), None);
        assert_eq!(weight_of(None, None, "x").unwrap(), None);
        assert!(weight_of(Some(Decimal::ONE), Some("stone"), "sale 1 line 2").unwrap_err().contains("sale 1 line 2"));
    }
}
