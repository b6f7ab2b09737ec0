//! The sandbox ERP connector: [`SandboxErpClient`] speaks the sandbox ERP's JSON API
//! (`shipledger_sandbox::erp`) over HTTP with a bearer key and maps it to the
//! [`Erp`] trait.
//!
//! What it owns: the wire shapes, their mapping to core types (exact decimal amounts
//! in the order's currency become [`Money`], weights with their unit become
//! [`Weight`], payment documents become [`PaymentEvidence`]), and the mapping of
//! answers to [`ErpError`]: a connection failure, a timeout, 429 or a 5xx is
//! `Unavailable` (retriable); 401/403 `Unauthorized`; 404 `NotFound`; 400, 409 and
//! 422 `Refused` with the ERP's own message; an answer that does not parse is
//! `Decode`, naming the record and field. It never retries by itself: the outbox
//! does, and decides when.
//!
//! Payment evidence is read from the order's payment documents: captured documents
//! (summed) win, else authorised ones, else refunded, else an unpaid one; the source
//! is `payment:PAY-…` (several joined by `+`), or `none` when the order has no
//! payment document at all.
//!
//! [`Erp::check`] reads the company: the server answers, the key is accepted, the
//! base currency is set.
//!
//! An order on hold or cancelled carries the ERP's reason (`hold_reason`,
//! `cancel_reason`) as its `status_reason`; [`Erp::orders`] reads orders by id
//! (`GET /api/orders?id=…`, 100 per request) whatever their status.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shipledger_core::json::{decimal_number, decimal_number_option};
use shipledger_core::money::{Currency, Money, Rounding};
use shipledger_core::order::{Address, ErpLine, ErpOrder, ErpOrderStatus, PaymentEvidence, PaymentState, Product};
use shipledger_core::weight::{Weight, WeightUnit};
use url::Url;

use crate::{
    BoxFuture, CheckItem, Cursor, Erp, ErpError, FulfilmentRecord, Invoiced, FulfilmentState, FulfilmentWrite, FxQuote, JournalRecord,
    JournalWrite, LedgerSetup, Package, PeriodState, Result, StockAdjustment, StockLevel,
};

/// SKUs per `GET /api/products` request (keeps URLs short).
const SKUS_PER_REQUEST: usize = 50;

/// A client of one sandbox ERP.
#[derive(Clone)]
pub struct SandboxErpClient {
    base: Url,
    api_key: String,
    http: reqwest::Client,
}

impl fmt::Debug for SandboxErpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxErpClient").field("base", &self.base.as_str()).field("api_key", &"<redacted>").finish()
    }
}

impl SandboxErpClient {
    /// A client for the sandbox ERP at `base_url` (e.g. `http://127.0.0.1:8091`),
    /// with a 5 s connect and 30 s request timeout.
    pub fn new(base_url: &str, api_key: &str) -> Result<SandboxErpClient> {
        SandboxErpClient::with_timeouts(base_url, api_key, Duration::from_secs(5), Duration::from_secs(30))
    }

    pub fn with_timeouts(base_url: &str, api_key: &str, connect: Duration, request: Duration) -> Result<SandboxErpClient> {
        let bad = |detail: String| ErpError::Refused {
            what: format!("the base URL '{base_url}'"),
            message: format!("{detail}; set the connection's erp.url to the sandbox ERP's http(s) address"),
        };
        let mut base = Url::parse(base_url.trim()).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(bad("it is not an http(s) URL".into()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(connect)
            .timeout(request)
            .user_agent(concat!("shipledger/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad(format!("the HTTP client could not be built: {e}")))?;
        Ok(SandboxErpClient { base, api_key: api_key.to_string(), http })
    }

    /// `base` + `api/<segments…>`, each segment escaped.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().expect("checked in new: a base URL");
            path.pop_if_empty().push("api");
            for s in segments {
                path.push(s);
            }
        }
        url
    }

    fn unavailable(&self, detail: String) -> ErpError {
        ErpError::Unavailable { url: self.base.to_string(), detail }
    }

    /// Send and read the whole answer; only transport failures are errors here.
    async fn send(&self, method: Method, url: Url, body: Option<&(dyn erased::Body + Sync)>) -> Result<(StatusCode, Vec<u8>)> {
        let mut req = self.http.request(method.clone(), url.clone()).bearer_auth(&self.api_key);
        if let Some(b) = body {
            let bytes = b.to_json().map_err(|e| self.unavailable(format!("the request body could not be written: {e}")))?;
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(bytes);
        }
        let metric = crate::request_metric(&self.base, &method, &url);
        let started = std::time::Instant::now();
        let resp = req.send().await.map_err(|e| {
            metric.failed(started.elapsed());
            let kind = crate::transport_failure(&e);
            self.unavailable(format!("{method} {} {kind}: {e}", url.path()))
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| {
            metric.failed(started.elapsed());
            self.unavailable(format!("{method} {}: reading the answer failed: {e}", url.path()))
        })?;
        metric.answered(status.as_u16(), started.elapsed());
        Ok((status, bytes.to_vec()))
    }

    /// A non-2xx answer as an [`ErpError`]; `what` names the request for people.
    fn failure(&self, status: StatusCode, body: &[u8], what: &str) -> ErpError {
        let (_, message) = error_of(body);
        match status.as_u16() {
            401 | 403 => ErpError::Unauthorized { detail: format!("HTTP {}: {message}", status.as_u16()) },
            404 => ErpError::NotFound { what: format!("{what} ({message})") },
            400 | 409 | 422 => ErpError::Refused { what: what.to_string(), message },
            _ => self.unavailable(format!("{what}: HTTP {}: {message}", status.as_u16())),
        }
    }

    async fn call<T: DeserializeOwned>(&self, method: Method, url: Url, body: Option<&(dyn erased::Body + Sync)>, what: &str) -> Result<T> {
        let (status, bytes) = self.send(method, url, body).await?;
        if !status.is_success() {
            return Err(self.failure(status, &bytes, what));
        }
        serde_json::from_slice(&bytes).map_err(|e| ErpError::Decode { what: what.to_string(), detail: e.to_string() })
    }
}

/// `{"error": {"code", "message"}}`, or the body's first 200 characters.
fn error_of(body: &[u8]) -> (Option<String>, String) {
    #[derive(Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        code: Option<String>,
        message: String,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(e) => (e.error.code, e.error.message),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(200).collect();
            (None, if text.trim().is_empty() { "(no message)".into() } else { text })
        }
    }
}

/// Serialising a borrowed body without making `send` generic.
mod erased {
    pub trait Body {
        fn to_json(&self) -> serde_json::Result<Vec<u8>>;
    }
    impl<T: serde::Serialize> Body for T {
        fn to_json(&self) -> serde_json::Result<Vec<u8>> {
            serde_json::to_vec(self)
        }
    }
}

// ----- wire shapes -------------------------------------------------------------

#[derive(Deserialize)]
struct OrdersPage {
    orders: Vec<WireOrder>,
}

#[derive(Deserialize)]
struct WireOrder {
    id: String,
    number: String,
    status: String,
    #[serde(default)]
    hold_reason: Option<String>,
    #[serde(default)]
    cancel_reason: Option<String>,
    currency: String,
    placed_at: Timestamp,
    updated_at_ms: i64,
    #[serde(default)]
    customer_email: Option<String>,
    ship_to: Address,
    #[serde(default)]
    bill_to: Option<Address>,
    lines: Vec<WireLine>,
    #[serde(with = "decimal_number_option", default)]
    shipping: Option<Decimal>,
    #[serde(with = "decimal_number_option", default)]
    tax: Option<Decimal>,
    #[serde(default)]
    requested_service: Option<String>,
    #[serde(default)]
    payments: Vec<WirePayment>,
    /// Quantities invoiced per line id.
    #[serde(default)]
    invoiced: std::collections::BTreeMap<String, u32>,
}

#[derive(Deserialize)]
struct WireLine {
    id: String,
    #[serde(default)]
    sku: Option<String>,
    name: String,
    quantity: u32,
    #[serde(with = "decimal_number")]
    unit_price: Decimal,
    #[serde(with = "decimal_number_option", default)]
    weight: Option<Decimal>,
    #[serde(default)]
    weight_uom: Option<String>,
    physical: bool,
}

#[derive(Deserialize)]
struct WirePayment {
    id: String,
    state: PaymentState,
    #[serde(with = "decimal_number")]
    amount: Decimal,
    currency: String,
    created_at: Timestamp,
    #[serde(default)]
    authorised_at: Option<Timestamp>,
    #[serde(default)]
    captured_at: Option<Timestamp>,
    #[serde(default)]
    refunded_at: Option<Timestamp>,
    updated_at: Timestamp,
}

#[derive(Deserialize)]
struct ProductsPage {
    products: Vec<WireProduct>,
}

#[derive(Deserialize)]
struct WireProduct {
    sku: String,
    name: String,
    #[serde(with = "decimal_number_option", default)]
    weight: Option<Decimal>,
    #[serde(default)]
    weight_uom: Option<String>,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Serialize, Deserialize)]
struct WireFulfilmentLine {
    line_id: String,
    quantity: u32,
}

#[derive(Serialize)]
struct WireFulfilmentWrite<'a> {
    key: &'a str,
    state: FulfilmentState,
    lines: Vec<WireFulfilmentLine>,
    packages: &'a [Package],
}

#[derive(Deserialize)]
struct WireFulfilment {
    id: String,
    key: String,
    order_id: String,
    state: FulfilmentState,
    lines: Vec<WireFulfilmentLine>,
    #[serde(default)]
    packages: Vec<Package>,
    updated_at: Timestamp,
}

impl From<WireFulfilment> for FulfilmentRecord {
    fn from(f: WireFulfilment) -> Self {
        FulfilmentRecord {
            id: f.id,
            key: f.key,
            erp_order_id: f.order_id,
            state: f.state,
            lines: f.lines.into_iter().map(|l| (l.line_id, l.quantity)).collect(),
            packages: f.packages,
            updated_at: f.updated_at,
        }
    }
}

#[derive(Deserialize)]
struct FulfilmentsPage {
    fulfilments: Vec<WireFulfilment>,
}

#[derive(Deserialize)]
struct Company {
    base_currency: String,
}

#[derive(Deserialize)]
struct WireFx {
    from: String,
    to: String,
    #[serde(with = "decimal_number")]
    rate_from: Decimal,
    #[serde(with = "decimal_number")]
    rate_to: Decimal,
    date: Date,
    source: String,
}

#[derive(Deserialize)]
struct AdjustAnswer {
    stock: StockLevel,
}

// ----- mapping -----------------------------------------------------------------

fn weight_of(value: Option<Decimal>, uom: Option<&str>, whose: &str) -> std::result::Result<Option<Weight>, String> {
    let Some(v) = value else { return Ok(None) };
    let unit = WeightUnit::parse(uom.unwrap_or("g")).map_err(|e| format!("{whose} weight: {e}"))?;
    Weight::from_decimal(v, unit).map(Some).map_err(|e| format!("{whose} weight: {e}"))
}

fn order_of(o: WireOrder) -> std::result::Result<ErpOrder, String> {
    let id = o.id.clone();
    let currency = Currency::parse(&o.currency).map_err(|e| format!("order {id} currency: {e}"))?;
    let amount = |d: Decimal, what: &str| Money::from_decimal(d, currency, Rounding::Exact).map_err(|e| format!("order {id} {what}: {e}"));
    let status = match o.status.as_str() {
        "open" => ErpOrderStatus::Open,
        "on_hold" => ErpOrderStatus::OnHold,
        "cancelled" => ErpOrderStatus::Cancelled,
        other => return Err(format!("order {id} status '{other}' is not open, on_hold or cancelled")),
    };
    let mut lines = Vec::with_capacity(o.lines.len());
    for l in o.lines {
        lines.push(ErpLine {
            unit_price: amount(l.unit_price, &format!("line {} unit_price", l.id))?,
            unit_weight: weight_of(l.weight, l.weight_uom.as_deref(), &format!("order {id} line {}", l.id))?,
            line_id: l.id,
            sku: l.sku.filter(|s| !s.trim().is_empty()),
            name: l.name,
            quantity: l.quantity,
            physical: l.physical,
        });
    }
    let updated_at = Timestamp::from_millisecond(o.updated_at_ms).map_err(|e| format!("order {id} updated_at_ms: {e}"))?;
    let status_reason = match status {
        ErpOrderStatus::Open => None,
        ErpOrderStatus::OnHold => Some(format!("on hold in the sandbox ERP: {}", o.hold_reason.as_deref().unwrap_or("no reason given"))),
        ErpOrderStatus::Cancelled => Some(format!("cancelled in the sandbox ERP: {}", o.cancel_reason.as_deref().unwrap_or("no reason given"))),
    };
    Ok(ErpOrder {
        status_reason,
        payment: evidence(&id, currency, &o.payments)?,
        erp_id: o.id,
        number: o.number,
        status,
        currency: currency.code().to_string(),
        placed_at: o.placed_at,
        updated_at,
        customer_email: o.customer_email,
        ship_to: o.ship_to,
        bill_to: o.bill_to,
        lines,
        shipping_paid: o.shipping.map(|d| amount(d, "shipping")).transpose()?,
        tax_paid: o.tax.map(|d| amount(d, "tax")).transpose()?,
        requested_service: o.requested_service,
        customer_reference: None,
    })
}

/// The order's payment evidence from its payment documents (see the module docs).
fn evidence(order_id: &str, order_currency: Currency, payments: &[WirePayment]) -> std::result::Result<PaymentEvidence, String> {
    for state in [PaymentState::Captured, PaymentState::Authorised, PaymentState::Refunded, PaymentState::Unpaid] {
        let docs: Vec<&WirePayment> = payments.iter().filter(|p| p.state == state).collect();
        if docs.is_empty() {
            continue;
        }
        let docs = if state == PaymentState::Unpaid { vec![*docs.last().expect("non-empty")] } else { docs };
        let mut amount = Money::zero(order_currency);
        for p in &docs {
            let c = Currency::parse(&p.currency).map_err(|e| format!("order {order_id} payment {} currency: {e}", p.id))?;
            let m = Money::from_decimal(p.amount, c, Rounding::Exact).map_err(|e| format!("order {order_id} payment {} amount: {e}", p.id))?;
            amount = if docs.len() == 1 {
                m
            } else {
                amount.checked_add(&m).map_err(|e| format!("order {order_id} payments: {e}"))?
            };
        }
        let at = docs
            .iter()
            .filter_map(|p| match state {
                PaymentState::Captured => p.captured_at,
                PaymentState::Authorised => p.authorised_at,
                PaymentState::Refunded => p.refunded_at,
                PaymentState::Unpaid => Some(p.created_at),
            }.or(Some(p.updated_at)))
            .max();
        let ids: Vec<&str> = docs.iter().map(|p| p.id.as_str()).collect();
        return Ok(PaymentEvidence { state, source: format!("payment:{}", ids.join("+")), amount, at });
    }
    Ok(PaymentEvidence { state: PaymentState::Unpaid, source: "none".into(), amount: Money::zero(order_currency), at: None })
}

fn product_of(p: WireProduct) -> std::result::Result<Product, String> {
    Ok(Product {
        unit_weight: weight_of(p.weight, p.weight_uom.as_deref(), &format!("product {}", p.sku))?,
        sku: p.sku,
        name: p.name,
        active: p.active,
    })
}

fn decode(what: &str) -> impl Fn(String) -> ErpError + '_ {
    move |detail| ErpError::Decode { what: what.to_string(), detail }
}

// ----- the trait ---------------------------------------------------------------

impl Erp for SandboxErpClient {
    fn kind(&self) -> &'static str {
        "sandbox"
    }

    /// The server answers, the key is accepted, and the company has a base currency
    /// (the sandbox ERP holds nothing else that must be set up first).
    fn check(&self) -> BoxFuture<'_, Vec<CheckItem>> {
        Box::pin(async move {
            let server = || CheckItem::ok("server", format!("the sandbox ERP at {} answers", self.base));
            match self.call::<Company>(Method::GET, self.url(&["company"]), None, "the company").await {
                Ok(c) => vec![
                    server(),
                    CheckItem::ok("key", "accepted"),
                    CheckItem::ok("company", format!("base currency {}", c.base_currency)),
                ],
                Err(ErpError::Unavailable { detail, .. }) => {
                    vec![CheckItem::failed("server", format!("{detail}; start the sandbox ERP or fix erp.url"))]
                }
                Err(ErpError::Unauthorized { detail }) => vec![
                    server(),
                    CheckItem::failed("key", format!("refused ({detail}); put the sandbox ERP's key in the variable api_key_env names")),
                ],
                Err(ErpError::NotFound { what }) => vec![CheckItem::failed(
                    "server",
                    format!("{} answers, but not as the sandbox ERP ({what} is not found); check erp.url", self.base),
                )],
                Err(e) => vec![server(), CheckItem::failed("company", e.to_string())],
            }
        })
    }

    fn changed_orders<'a>(&'a self, since: Option<&'a Cursor>, limit: u32) -> BoxFuture<'a, Result<Vec<ErpOrder>>> {
        Box::pin(async move {
            let mut url = self.url(&["orders"]);
            {
                let mut q = url.query_pairs_mut();
                if let Some(c) = since {
                    q.append_pair("updated_after_ms", &c.updated_at.as_millisecond().to_string());
                    q.append_pair("after_id", &c.erp_id);
                }
                q.append_pair("limit", &limit.clamp(1, 500).to_string());
            }
            let what = "the changed orders";
            let page: OrdersPage = self.call(Method::GET, url, None, what).await?;
            page.orders.into_iter().map(|o| order_of(o).map_err(decode(what))).collect()
        })
    }

    fn orders<'a>(&'a self, erp_ids: &'a [String]) -> BoxFuture<'a, Result<Vec<ErpOrder>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for chunk in erp_ids.chunks(crate::ORDERS_PER_READ) {
                let mut url = self.url(&["orders"]);
                url.query_pairs_mut().extend_pairs(chunk.iter().map(|id| ("id", id.as_str())));
                let what = "the orders read by id";
                let page: OrdersPage = self.call(Method::GET, url, None, what).await?;
                for o in page.orders {
                    out.push(order_of(o).map_err(decode(what))?);
                }
            }
            Ok(out)
        })
    }

    fn invoiced<'a>(&'a self, erp_ids: &'a [String]) -> BoxFuture<'a, Result<Option<Invoiced>>> {
        Box::pin(async move {
            let mut out = Invoiced::new();
            for chunk in erp_ids.chunks(crate::ORDERS_PER_READ) {
                let mut url = self.url(&["orders"]);
                url.query_pairs_mut().extend_pairs(chunk.iter().map(|id| ("id", id.as_str())));
                let page: OrdersPage = self.call(Method::GET, url, None, "the orders' invoicing").await?;
                for o in page.orders {
                    out.insert(o.id, o.invoiced);
                }
            }
            Ok(Some(out))
        })
    }

    fn products<'a>(&'a self, skus: &'a [String]) -> BoxFuture<'a, Result<Vec<Product>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for chunk in skus.chunks(SKUS_PER_REQUEST) {
                let mut url = self.url(&["products"]);
                url.query_pairs_mut().extend_pairs(chunk.iter().map(|s| ("sku", s.as_str())));
                let what = "the product master";
                let page: ProductsPage = self.call(Method::GET, url, None, what).await?;
                for p in page.products {
                    out.push(product_of(p).map_err(decode(what))?);
                }
            }
            Ok(out)
        })
    }

    fn record_fulfilment<'a>(&'a self, write: &'a FulfilmentWrite) -> BoxFuture<'a, Result<FulfilmentRecord>> {
        Box::pin(async move {
            let body = WireFulfilmentWrite {
                key: &write.key,
                state: write.state,
                lines: write.lines.iter().map(|(line_id, quantity)| WireFulfilmentLine { line_id: line_id.clone(), quantity: *quantity }).collect(),
                packages: &write.packages,
            };
            let what = format!(
                "the {} fulfilment {} of order {}",
                match write.state {
                    FulfilmentState::Packed => "packed",
                    FulfilmentState::Completed => "completed",
                    FulfilmentState::Cancelled => "cancelled",
                },
                write.key,
                write.erp_order_id
            );
            let url = self.url(&["orders", &write.erp_order_id, "fulfilments"]);
            let doc: WireFulfilment = self.call(Method::POST, url, Some(&body), &what).await?;
            Ok(doc.into())
        })
    }

    fn fulfilments<'a>(&'a self, erp_order_id: &'a str) -> BoxFuture<'a, Result<Vec<FulfilmentRecord>>> {
        Box::pin(async move {
            let url = self.url(&["orders", erp_order_id, "fulfilments"]);
            let page: FulfilmentsPage = self.call(Method::GET, url, None, &format!("fulfilments of order {erp_order_id}")).await?;
            Ok(page.fulfilments.into_iter().map(Into::into).collect())
        })
    }

    fn base_currency(&self) -> BoxFuture<'_, Result<Currency>> {
        Box::pin(async move {
            let what = "the company's base currency";
            let c: Company = self.call(Method::GET, self.url(&["company"]), None, what).await?;
            Currency::parse(&c.base_currency).map_err(|e| ErpError::Decode { what: what.into(), detail: e.to_string() })
        })
    }

    fn fx_quote<'a>(&'a self, from: Currency, to: Currency, date: Date) -> BoxFuture<'a, Result<Option<FxQuote>>> {
        Box::pin(async move {
            let mut url = self.url(&["fx"]);
            url.query_pairs_mut().append_pair("from", from.code()).append_pair("to", to.code()).append_pair("date", &date.to_string());
            let what = format!("the {from}→{to} rate on {date}");
            let (status, bytes) = self.send(Method::GET, url, None).await?;
            if status == StatusCode::NOT_FOUND && error_of(&bytes).0.as_deref() == Some("no_rate") {
                return Ok(None);
            }
            if !status.is_success() {
                return Err(self.failure(status, &bytes, &what));
            }
            let fx: WireFx = serde_json::from_slice(&bytes).map_err(|e| ErpError::Decode { what: what.clone(), detail: e.to_string() })?;
            let cur = |c: &str| Currency::parse(c).map_err(|e| ErpError::Decode { what: what.clone(), detail: e.to_string() });
            Ok(Some(FxQuote { from: cur(&fx.from)?, to: cur(&fx.to)?, rate_from: fx.rate_from, rate_to: fx.rate_to, date: fx.date, source: fx.source }))
        })
    }

    fn post_journal<'a>(&'a self, journal: &'a JournalWrite) -> BoxFuture<'a, Result<JournalRecord>> {
        Box::pin(async move {
            let what = format!("the journal {}", journal.key);
            let posted: JournalRecord = match self.call(Method::POST, self.url(&["journals"]), Some(journal), &what).await {
                Ok(posted) => posted,
                // A refusal because the period is not open is told apart: the caller
                // moves the costs to the next open period.
                Err(ErpError::Refused { what, message }) => {
                    return Err(match self.period_state(journal.date).await {
                        Ok(state) if !state.is_open() => ErpError::PeriodNotOpen { what, date: journal.date, state },
                        _ => ErpError::Refused { what, message },
                    });
                }
                Err(e) => return Err(e),
            };
            // Read back: the ERP holds what was asked, posted.
            let read: JournalRecord = self.call(Method::GET, self.url(&["journals", posted.id.as_str()]), None, &what).await?;
            read.verify(journal).map_err(|message| ErpError::Refused { what, message })?;
            Ok(read)
        })
    }

    fn period_state<'a>(&'a self, date: Date) -> BoxFuture<'a, Result<PeriodState>> {
        Box::pin(async move {
            #[derive(Deserialize)]
            struct Period {
                state: PeriodState,
            }
            let day = date.to_string();
            let p: Period = self.call(Method::GET, self.url(&["periods", day.as_str()]), None, &format!("the period of {date}")).await?;
            Ok(p.state)
        })
    }

    fn ledger_setup<'a>(&'a self, accounts: &'a [String], journal: &'a str) -> BoxFuture<'a, Result<LedgerSetup>> {
        Box::pin(async move {
            #[derive(Deserialize)]
            struct Chart {
                accounts: Vec<String>,
                journals: Vec<String>,
            }
            let chart: Chart = self.call(Method::GET, self.url(&["accounts"]), None, "the chart of accounts").await?;
            Ok(LedgerSetup {
                missing_accounts: accounts.iter().filter(|a| !chart.accounts.contains(a)).cloned().collect(),
                journal_exists: chart.journals.iter().any(|j| j == journal),
            })
        })
    }

    fn stock<'a>(&'a self, sku: &'a str) -> BoxFuture<'a, Result<StockLevel>> {
        Box::pin(async move { self.call(Method::GET, self.url(&["stock", sku]), None, &format!("stock of SKU {sku}")).await })
    }

    fn adjust_stock<'a>(&'a self, adjustment: &'a StockAdjustment) -> BoxFuture<'a, Result<StockLevel>> {
        Box::pin(async move {
            let what = format!("the stock adjustment {} ({} {:+})", adjustment.key, adjustment.sku, adjustment.delta);
            let answer: AdjustAnswer = self.call(Method::POST, self.url(&["stock", "adjustments"]), Some(adjustment), &what).await?;
            Ok(answer.stock)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pay(id: &str, state: PaymentState, amount: &str) -> WirePayment {
        let t = Timestamp::from_second(1_700_000_000).unwrap();
        WirePayment {
            id: id.into(),
            state,
            amount: amount.parse().unwrap(),
            currency: "GBP".into(),
            created_at: t,
            authorised_at: Some(t),
            captured_at: (state == PaymentState::Captured).then_some(t),
            refunded_at: None,
            updated_at: t,
        }
    }

    #[test]
    fn an_order_without_payment_documents_has_no_evidence() {
        let e = evidence("SO-1", Currency::GBP, &[]).unwrap();
        assert_eq!((e.state, e.source.as_str(), e.amount.minor(), e.at), (PaymentState::Unpaid, "none", 0, None));
    }

    #[test]
    fn a_capture_outranks_an_older_authorisation_and_names_its_document() {
        let e = evidence("SO-1", Currency::GBP, &[pay("PAY-1", PaymentState::Authorised, "10.00"), pay("PAY-2", PaymentState::Captured, "12.50")]).unwrap();
        assert_eq!(e.state, PaymentState::Captured);
        assert_eq!(e.source, "payment:PAY-2");
        assert_eq!(e.amount, Money::from_minor(1250, Currency::GBP));
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let c = SandboxErpClient::new("http://127.0.0.1:1", "s3cret-key").unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(SandboxErpClient::new("not a url", "k").is_err());
    }

    #[test]
    fn path_segments_are_escaped() {
        let c = SandboxErpClient::new("http://erp.test/prefix", "k").unwrap();
        assert_eq!(c.url(&["stock", "A/B C"]).as_str(), "http://erp.test/prefix/api/stock/A%2FB%20C");
    }
}
