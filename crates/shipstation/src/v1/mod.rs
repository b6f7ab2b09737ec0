//! The ShipStation v1 API (`ssapi.shipstation.com`): orders, shipments (labels),
//! fulfillments, webhooks, stores, warehouses and carriers.
//!
//! [`V1Client`] is a thin, typed layer over the shared request loop (`transport`): it builds paths
//! and query strings, refuses requests that break documented rules (more than 100
//! orders per `createorders`, `pageSize` above 500, an order without `orderKey`), and
//! pages through lists with [`Pager`].

pub mod model;
pub mod query;

use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::Arc;

use jiff::civil::Date;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::{Host, Url};

use crate::budget::{InMemoryRateBudget, RateBudget};
use shipledger_core::clock::{Clock, SystemClock};
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::retry::Idempotency;
use crate::transport::{Api, Reach, Transport};
use model::*;
use query::*;

/// The most orders one `POST /orders/createorders` may carry.
pub const MAX_ORDERS_PER_CREATE: usize = 100;

/// A ShipStation v1 client. Cheap to clone; clones share the rate budget.
///
/// Every request first asks the [`RateBudget`] for a slot, then reports the
/// `X-Rate-Limit-*` headers back; failures are retried as
/// [`is_retriable`](crate::is_retriable) decides.
#[derive(Debug, Clone)]
pub struct V1Client {
    transport: Arc<Transport>,
}

impl V1Client {
    /// A client with its own in-memory budget on the real clock. Clients of the same
    /// API key in one process should share a budget: use [`V1Client::with_budget`].
    pub fn new(config: ClientConfig) -> Result<Self> {
        Self::with_budget(
            config,
            Arc::new(InMemoryRateBudget::new()),
            Arc::new(SystemClock),
        )
    }

    /// A client that consults `budget` (shared with other clients, processes, ...)
    /// and waits on `clock`.
    pub fn with_budget(
        config: ClientConfig,
        budget: Arc<dyn RateBudget>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        Ok(V1Client {
            transport: Arc::new(Transport::new(Api::V1, config, budget, clock)?),
        })
    }

    /// This client spending `budget` instead (the same key, so the same window when
    /// the budget is kept under [`V1Client::budget_key`]): e.g. one that leaves part of
    /// every window to other work.
    pub fn with_other_budget(&self, budget: Arc<dyn RateBudget>) -> Result<Self> {
        Ok(V1Client { transport: Arc::new(self.transport.rebudgeted(budget)?) })
    }

    /// The API root this client talks to (the host webhook resource URLs must match).
    pub fn base_url(&self) -> &Url {
        &self.transport.config().base_url
    }

    /// The key this client's requests are counted under in the budget.
    pub fn budget_key(&self) -> String {
        self.transport.config().budget_key("v1")
    }

    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.transport.endpoint(segments);
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
        idem: Idempotency,
    ) -> Result<T> {
        self.transport
            .send(Method::POST, self.url(segments, &[]), body, idem)
            .await
    }

    // ----- orders -------------------------------------------------------------

    /// `POST /orders/createorder`: create, or update (full replace) the order with the
    /// same `orderKey`.
    ///
    /// The order **must** carry an `orderKey`: it makes the call an upsert, which is
    /// what lets the client retry it after a timeout or a 5xx without creating a
    /// duplicate. Use a deterministic key such as `erp:<connection>:<order-id>`.
    pub async fn create_order(&self, order: &Order) -> Result<Order> {
        require_order_key(order)?;
        self.post(&["orders", "createorder"], order, Idempotency::Idempotent)
            .await
    }

    /// `POST /orders/createorders`: up to [`MAX_ORDERS_PER_CREATE`] orders in one
    /// request (one request of the rate budget). Each must carry an `orderKey` (see
    /// [`V1Client::create_order`]). Check [`CreateOrdersResult::has_errors`]: some
    /// orders can fail while others succeed.
    pub async fn create_orders(&self, orders: &[Order]) -> Result<CreateOrdersResult> {
        if orders.len() > MAX_ORDERS_PER_CREATE {
            return Err(Error::InvalidRequest(format!(
                "createorders takes at most {MAX_ORDERS_PER_CREATE} orders per request, got {}; split the batch",
                orders.len()
            )));
        }
        if orders.is_empty() {
            return Ok(CreateOrdersResult {
                has_errors: false,
                results: Vec::new(),
            });
        }
        for order in orders {
            require_order_key(order)?;
        }
        self.post(&["orders", "createorders"], orders, Idempotency::Idempotent)
            .await
    }

    /// `GET /orders/{orderId}`. A merged-away order answers
    /// [`Error::NotFound`].
    pub async fn get_order(&self, order_id: i64) -> Result<Order> {
        self.transport
            .get(self.url(&["orders", &order_id.to_string()], &[]))
            .await
    }

    /// `GET /orders`: one page.
    pub async fn list_orders(&self, filter: &OrderFilter) -> Result<Page<Order>> {
        self.transport
            .get(self.url(&["orders"], &filter.to_query()?))
            .await
    }

    /// A pager over `GET /orders`, starting at `filter.page` (default 1).
    pub fn orders_pager(&self, filter: &OrderFilter) -> Result<Pager<'_, Order>> {
        Ok(Pager::new(
            &self.transport,
            self.url(&["orders"], &filter.to_query()?),
            filter.page,
            |o: &Order| o.order_id,
        ))
    }

    /// Every order matching `filter`, de-duplicated by `orderId`. Page over a fixed
    /// window (an end in the past) so the set does not move while you read it.
    pub async fn all_orders(&self, filter: &OrderFilter) -> Result<Vec<Order>> {
        self.orders_pager(filter)?.collect_all().await
    }

    /// `DELETE /orders/{orderId}`: a soft delete (the order is hidden, not erased).
    pub async fn delete_order(&self, order_id: i64) -> Result<SuccessResult> {
        let url = self.url(&["orders", &order_id.to_string()], &[]);
        let request = crate::transport::describe(&Method::DELETE, &url);
        let body = self
            .transport
            .call(Method::DELETE, url.clone(), None, Idempotency::Idempotent)
            .await?;
        crate::transport::decode(&request, &url, &body)
    }

    /// `POST /orders/holduntil`: `on_hold` until `hold_until` (then back to
    /// `awaiting_shipment`).
    pub async fn hold_until(&self, order_id: i64, hold_until: Date) -> Result<SuccessResult> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            order_id: i64,
            hold_until_date: String,
        }
        let body = Body {
            order_id,
            hold_until_date: hold_until.to_string(),
        };
        self.post(&["orders", "holduntil"], &body, Idempotency::Idempotent)
            .await
    }

    /// `POST /orders/restorefromhold`: back to `awaiting_shipment`.
    pub async fn restore_from_hold(&self, order_id: i64) -> Result<SuccessResult> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            order_id: i64,
        }
        self.post(
            &["orders", "restorefromhold"],
            &Body { order_id },
            Idempotency::Idempotent,
        )
        .await
    }

    /// `POST /orders/markasshipped` (the real path; some libraries use a wrong one).
    /// The order then appears under `/fulfillments`, never under `/shipments`.
    pub async fn mark_as_shipped(&self, request: &MarkAsShipped) -> Result<MarkAsShippedResult> {
        self.post(
            &["orders", "markasshipped"],
            request,
            Idempotency::Idempotent,
        )
        .await
    }

    // ----- shipments and fulfillments -----------------------------------------

    /// `GET /shipments`: one page of labels created in ShipStation (voided ones too).
    pub async fn list_shipments(&self, filter: &ShipmentFilter) -> Result<Page<Shipment>> {
        self.transport
            .get(self.url(&["shipments"], &filter.to_query()?))
            .await
    }

    /// A pager over `GET /shipments`.
    pub fn shipments_pager(&self, filter: &ShipmentFilter) -> Result<Pager<'_, Shipment>> {
        Ok(Pager::new(
            &self.transport,
            self.url(&["shipments"], &filter.to_query()?),
            filter.page,
            |s: &Shipment| Some(s.shipment_id),
        ))
    }

    /// Every shipment matching `filter`, de-duplicated by `shipmentId`.
    pub async fn all_shipments(&self, filter: &ShipmentFilter) -> Result<Vec<Shipment>> {
        self.shipments_pager(filter)?.collect_all().await
    }

    /// `GET /fulfillments`: one page.
    pub async fn list_fulfillments(&self, filter: &FulfillmentFilter) -> Result<Page<Fulfillment>> {
        self.transport
            .get(self.url(&["fulfillments"], &filter.to_query()?))
            .await
    }

    /// A pager over `GET /fulfillments`.
    pub fn fulfillments_pager(&self, filter: &FulfillmentFilter) -> Result<Pager<'_, Fulfillment>> {
        Ok(Pager::new(
            &self.transport,
            self.url(&["fulfillments"], &filter.to_query()?),
            filter.page,
            |f: &Fulfillment| Some(f.fulfillment_id),
        ))
    }

    /// Every fulfillment matching `filter`, de-duplicated by `fulfillmentId`.
    pub async fn all_fulfillments(&self, filter: &FulfillmentFilter) -> Result<Vec<Fulfillment>> {
        self.fulfillments_pager(filter)?.collect_all().await
    }

    // ----- webhooks ------------------------------------------------------------

    /// `POST /webhooks/subscribe`. Not idempotent (a repeat makes a second
    /// subscription), so it is retried only when ShipStation cannot have processed
    /// it; list first if unsure.
    pub async fn subscribe_webhook(&self, request: &SubscribeWebhook) -> Result<SubscribeResult> {
        self.post(
            &["webhooks", "subscribe"],
            request,
            Idempotency::NotIdempotent,
        )
        .await
    }

    /// `GET /webhooks`.
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        let list: WebhookList = self.transport.get(self.url(&["webhooks"], &[])).await?;
        Ok(list.webhooks)
    }

    /// `DELETE /webhooks/{webhookId}`.
    pub async fn unsubscribe_webhook(&self, webhook_id: i64) -> Result<()> {
        let url = self.url(&["webhooks", &webhook_id.to_string()], &[]);
        self.transport
            .send_no_content(Method::DELETE, url, None, Idempotency::Idempotent)
            .await
    }

    /// `GET <resource_url>` of a v1 webhook payload, with this client's credentials.
    ///
    /// The URL must point at the configured API or one of its numbered `ssapiN`
    /// shards ([`resource_url_mismatch`]) and be at most [`MAX_RESOURCE_URL_LEN`]
    /// characters, else [`Error::InvalidRequest`] and nothing is sent. A redirect is
    /// followed only within those origins; one elsewhere is not sent and fails as
    /// [`Error::RedirectRefused`]. For SHIP_NOTIFY URLs, pass them through
    /// [`with_shipment_items`] first, or use [`V1Client::fetch_webhook_resource`].
    pub async fn get_resource<T: DeserializeOwned>(&self, resource_url: &Url) -> Result<T> {
        let url = checked_resource_url(resource_url.as_str(), self.base_url())?;
        self.transport.get_within(Reach::WebhookResource, url).await
    }

    /// Everything a v1 webhook payload points at, every page, typed by its
    /// `resource_type`; shipment URLs get `includeShipmentItems=true`. The URL is
    /// checked and redirects are limited as for [`V1Client::get_resource`].
    pub async fn fetch_webhook_resource(
        &self,
        payload: &WebhookPayload,
    ) -> Result<WebhookResource> {
        let url = checked_resource_url(&payload.resource_url, self.base_url())?;
        Ok(match &payload.resource_type {
            WebhookEvent::OrderNotify | WebhookEvent::ItemOrderNotify => WebhookResource::Orders(
                Pager::new(&self.transport, url, None, |o: &Order| o.order_id)
                    .within(Reach::WebhookResource)
                    .collect_all()
                    .await?,
            ),
            WebhookEvent::ShipNotify | WebhookEvent::ItemShipNotify => WebhookResource::Shipments(
                Pager::new(
                    &self.transport,
                    with_shipment_items(&url),
                    None,
                    |s: &Shipment| Some(s.shipment_id),
                )
                .within(Reach::WebhookResource)
                .collect_all()
                .await?,
            ),
            WebhookEvent::FulfillmentShipped | WebhookEvent::FulfillmentRejected => {
                WebhookResource::Fulfillments(
                    Pager::new(&self.transport, url, None, |f: &Fulfillment| {
                        Some(f.fulfillment_id)
                    })
                    .within(Reach::WebhookResource)
                    .collect_all()
                    .await?,
                )
            }
            WebhookEvent::Other(kind) => {
                return Err(Error::InvalidRequest(format!(
                    "webhook resource_type {kind} is unknown to this client; fetch {url} with get_resource"
                )));
            }
        })
    }

    // ----- account -------------------------------------------------------------

    /// `GET /stores` (`showInactive` when asked).
    pub async fn list_stores(&self, show_inactive: bool) -> Result<Vec<Store>> {
        let query = if show_inactive {
            vec![("showInactive", "true".to_owned())]
        } else {
            Vec::new()
        };
        self.transport.get(self.url(&["stores"], &query)).await
    }

    /// `GET /warehouses` (ship-from locations).
    pub async fn list_warehouses(&self) -> Result<Vec<Warehouse>> {
        self.transport.get(self.url(&["warehouses"], &[])).await
    }

    /// `GET /carriers`.
    pub async fn list_carriers(&self) -> Result<Vec<Carrier>> {
        self.transport.get(self.url(&["carriers"], &[])).await
    }

    /// `GET /carriers/listservices?carrierCode=`.
    pub async fn list_services(&self, carrier_code: &str) -> Result<Vec<CarrierService>> {
        self.transport
            .get(self.url(
                &["carriers", "listservices"],
                &[("carrierCode", carrier_code.to_owned())],
            ))
            .await
    }

    /// `GET /carriers/listpackages?carrierCode=`.
    pub async fn list_packages(&self, carrier_code: &str) -> Result<Vec<CarrierPackage>> {
        self.transport
            .get(self.url(
                &["carriers", "listpackages"],
                &[("carrierCode", carrier_code.to_owned())],
            ))
            .await
    }
}

fn require_order_key(order: &Order) -> Result<()> {
    match order.order_key.as_deref().map(str::trim) {
        Some(key) if !key.is_empty() => Ok(()),
        _ => Err(Error::InvalidRequest(format!(
            "order {:?} has no orderKey; shipledger always sends one so that creating it is an idempotent upsert (without it a retry duplicates the order)",
            order.order_number
        ))),
    }
}

/// What a v1 webhook's `resource_url` held.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookResource {
    Orders(Vec<Order>),
    Shipments(Vec<Shipment>),
    Fulfillments(Vec<Fulfillment>),
}

/// `url` with `includeShipmentItems=true` when it lists shipments (SHIP_NOTIFY
/// resource URLs come without items, sometimes with `includeShipmentItems=False`);
/// other URLs unchanged.
pub fn with_shipment_items(url: &Url) -> Url {
    let is_shipments = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .is_some_and(|last| last.eq_ignore_ascii_case("shipments"));
    if !is_shipments {
        return url.clone();
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("includeShipmentItems"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut out = url.clone();
    out.set_query(None);
    {
        let mut pairs = out.query_pairs_mut();
        for (k, v) in &kept {
            pairs.append_pair(k, v);
        }
        pairs.append_pair("includeShipmentItems", "true");
    }
    out
}

/// Reads a v1 list page by page.
///
/// It asks for page 1, 2, ... and stops when a page is empty, when it has read
/// `pages` pages (if `pages` is positive: ShipStation's own examples show
/// `"pages": 0` with `"total": 2`, so `0` is not trusted), or when a page brings
/// nothing new (a server that ignores `page`). Records already seen (by id) on an
/// earlier page are dropped, since a live list can shift under a reader.
pub struct Pager<'c, T> {
    transport: &'c Transport,
    reach: Reach,
    base: Url,
    next_page: u32,
    done: bool,
    total: Option<i64>,
    seen: HashSet<i64>,
    id_of: fn(&T) -> Option<i64>,
    _items: PhantomData<fn() -> T>,
}

impl<'c, T: DeserializeOwned> Pager<'c, T> {
    fn new(
        transport: &'c Transport,
        base: Url,
        first_page: Option<u32>,
        id_of: fn(&T) -> Option<i64>,
    ) -> Self {
        Pager {
            transport,
            reach: Reach::Configured,
            base,
            next_page: first_page.unwrap_or(1).max(1),
            done: false,
            total: None,
            seen: HashSet::new(),
            id_of,
            _items: PhantomData,
        }
    }

    /// Follow redirects within `reach` instead of the configured origin only.
    fn within(mut self, reach: Reach) -> Self {
        self.reach = reach;
        self
    }

    /// The next page's new records, or `None` when the list is exhausted.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>> {
        if self.done {
            return Ok(None);
        }
        let requested = self.next_page;
        let mut url = self.base.clone();
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.set_query(None);
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &kept {
                pairs.append_pair(k, v);
            }
            pairs.append_pair("page", &requested.to_string());
        }
        let page: Page<T> = self.transport.get_within(self.reach, url).await?;
        self.next_page = requested.saturating_add(1);
        self.total.get_or_insert(page.total);
        if page.items.is_empty() {
            self.done = true;
            return Ok(None);
        }
        let before = self.seen.len();
        let mut anonymous = 0usize;
        let mut fresh = Vec::with_capacity(page.items.len());
        for item in page.items {
            match (self.id_of)(&item) {
                Some(id) => {
                    if self.seen.insert(id) {
                        fresh.push(item);
                    }
                }
                None => {
                    anonymous += 1;
                    fresh.push(item);
                }
            }
        }
        if self.seen.len() == before && anonymous == 0 {
            // Nothing new: the server is repeating itself.
            self.done = true;
            return Ok(None);
        }
        if page.pages > 0 && i64::from(requested) >= page.pages {
            self.done = true;
        }
        Ok(Some(fresh))
    }

    /// The list's `total` as its first page read said, before any page is read `None`.
    pub fn total(&self) -> Option<i64> {
        self.total
    }

    /// Whether the list is known to be exhausted: the next [`Pager::next_page`] asks
    /// nothing and says `None`.
    pub fn finished(&self) -> bool {
        self.done
    }

    /// Every remaining record.
    pub async fn collect_all(mut self) -> Result<Vec<T>> {
        let mut all = Vec::new();
        while let Some(mut page) = self.next_page().await? {
            all.append(&mut page);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ship_notify_urls_get_their_items_and_others_are_untouched() {
        let url: Url = "https://ssapi11.shipstation.com/shipments?storeID=12&batchId=99&includeShipmentItems=False".parse().unwrap();
        assert_eq!(
            with_shipment_items(&url).as_str(),
            "https://ssapi11.shipstation.com/shipments?storeID=12&batchId=99&includeShipmentItems=true"
        );
        let orders: Url = "https://ssapi.shipstation.com/orders?storeID=1&importBatch=abc"
            .parse()
            .unwrap();
        assert_eq!(with_shipment_items(&orders), orders);
    }

    #[test]
    fn a_foreign_resource_url_is_refused_for_the_reason_that_applies() {
        let base: Url = "https://ssapi.shipstation.com".parse().unwrap();
        let reason = |url: &str| resource_url_mismatch(&url.parse().unwrap(), &base);
        assert_eq!(reason("https://ssapi11.shipstation.com:443/shipments"), None);
        assert_eq!(reason("http://ssapi.shipstation.com/shipments"), Some(ForeignReason::Scheme));
        assert_eq!(reason("ftp://ssapi.shipstation.com/shipments"), Some(ForeignReason::Scheme));
        assert_eq!(reason("https://u:p@ssapi.shipstation.com/shipments"), Some(ForeignReason::Userinfo));
        assert_eq!(reason("https://ssapi.shipstation.com.evil.com/shipments"), Some(ForeignReason::Host));
        assert_eq!(reason("https://evil.com:8443/shipments"), Some(ForeignReason::Host), "the host first");
        assert_eq!(reason("https://ssapi.shipstation.com:8443/shipments"), Some(ForeignReason::Port));
    }

    #[test]
    fn an_over_long_resource_url_is_refused_before_it_is_parsed() {
        let base: Url = "https://ssapi.shipstation.com".parse().unwrap();
        let at = |len: usize| format!("https://ssapi.shipstation.com/orders?x={}", "1".repeat(len - 39));
        assert_eq!(at(MAX_RESOURCE_URL_LEN).len(), MAX_RESOURCE_URL_LEN);
        assert!(checked_resource_url(&at(MAX_RESOURCE_URL_LEN), &base).is_ok());
        let err = checked_resource_url(&at(MAX_RESOURCE_URL_LEN + 1), &base).unwrap_err();
        assert!(err.to_string().contains("2049 characters"), "{err}");
    }

    #[test]
    fn an_order_without_an_order_key_is_refused() {
        let mut order = Order::new(
            "k",
            "100",
            "2024-01-01T00:00:00Z".parse().unwrap(),
            OrderStatus::AwaitingShipment,
            Address::default(),
        );
        assert!(require_order_key(&order).is_ok());
        order.order_key = Some("  ".into());
        assert!(
            require_order_key(&order)
                .unwrap_err()
                .to_string()
                .contains("orderKey")
        );
    }
}

/// The longest webhook `resource_url` shipledger accepts, in characters. ShipStation's
/// are a host, a path and a few ids; anything longer is refused before it is stored.
pub const MAX_RESOURCE_URL_LEN: usize = 2048;

/// Why a URL is not one shipledger fetches with a connection's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForeignReason {
    /// Not the configured API's scheme (or not http(s) at all).
    Scheme,
    /// It carries a user name or password.
    Userinfo,
    /// Another host (not the configured one, nor one of its `ssapiN` shards).
    Host,
    /// Another port (explicit or the scheme's default).
    Port,
    /// The allowed host answered with a redirect to a URL off the allowed origins.
    Redirect,
}

impl ForeignReason {
    /// The short name an exception's detail carries: `scheme`, `userinfo`, `host`,
    /// `port` or `redirect`.
    pub fn code(self) -> &'static str {
        match self {
            ForeignReason::Scheme => "scheme",
            ForeignReason::Userinfo => "userinfo",
            ForeignReason::Host => "host",
            ForeignReason::Port => "port",
            ForeignReason::Redirect => "redirect",
        }
    }

    /// What was wrong, as the end of a sentence ("... because ...").
    pub fn explain(self) -> &'static str {
        match self {
            ForeignReason::Scheme => "its scheme is not the configured API's",
            ForeignReason::Userinfo => "it carries a user name or password",
            ForeignReason::Host => "its host is not the configured API's host (nor one of its numbered ssapiN shards)",
            ForeignReason::Port => "its port is not the configured API's port",
            ForeignReason::Redirect => "the configured API answered it with a redirect to another origin",
        }
    }
}

/// Whether a v1 webhook's `resource_url` points at the configured ShipStation API,
/// so that fetching it with our credentials is safe: see [`resource_url_mismatch`].
pub fn resource_url_allowed(resource_url: &Url, base: &Url) -> bool {
    resource_url_mismatch(resource_url, base).is_none()
}

/// Why `resource_url` does not point at the configured ShipStation API `base`, or
/// `None` when it does.
///
/// The scheme and the port (explicit or the scheme's default) must equal `base`'s,
/// the URL must carry no user information, and the host must equal `base`'s host or,
/// when that is `ssapi.<domain>`, be a numbered shard `ssapi<digits>.<domain>`
/// (ShipStation uses e.g. `ssapi11.shipstation.com`). IP addresses match only the
/// same address given as `base`. Hosts compare as [`Url`] normalises them (lowercase,
/// IDNA in ASCII form).
pub fn resource_url_mismatch(resource_url: &Url, base: &Url) -> Option<ForeignReason> {
    if resource_url.scheme() != base.scheme() || !matches!(resource_url.scheme(), "http" | "https") {
        return Some(ForeignReason::Scheme);
    }
    if !resource_url.username().is_empty() || resource_url.password().is_some() {
        return Some(ForeignReason::Userinfo);
    }
    let host_ok = match (resource_url.host(), base.host()) {
        (Some(Host::Domain(host)), Some(Host::Domain(base_host))) => {
            host == base_host
                || base_host
                    .strip_prefix("ssapi.")
                    .filter(|d| !d.is_empty())
                    .and_then(|domain| host.strip_suffix(domain))
                    .and_then(|rest| rest.strip_suffix('.'))
                    .and_then(|label| label.strip_prefix("ssapi"))
                    .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        }
        (Some(Host::Ipv4(a)), Some(Host::Ipv4(b))) => a == b,
        (Some(Host::Ipv6(a)), Some(Host::Ipv6(b))) => a == b,
        _ => false,
    };
    if !host_ok {
        return Some(ForeignReason::Host);
    }
    match (resource_url.port_or_known_default(), base.port_or_known_default()) {
        (Some(a), Some(b)) if a == b => None,
        _ => Some(ForeignReason::Port),
    }
}

/// The URL of a webhook resource to fetch: no longer than [`MAX_RESOURCE_URL_LEN`],
/// parseable, and on the configured API ([`resource_url_mismatch`]).
fn checked_resource_url(raw: &str, base: &Url) -> Result<Url> {
    let len = raw.chars().count();
    if len > MAX_RESOURCE_URL_LEN {
        return Err(Error::InvalidRequest(format!(
            "webhook resource_url is {len} characters long, more than the {MAX_RESOURCE_URL_LEN} accepted; not fetched"
        )));
    }
    let url = Url::parse(raw).map_err(|e| {
        Error::InvalidRequest(format!("webhook resource_url {raw:?} is not a URL: {e}"))
    })?;
    if let Some(reason) = resource_url_mismatch(&url, base) {
        return Err(Error::InvalidRequest(format!(
            "webhook resource_url {url} is not fetched: {}, and only {base} is trusted with this connection's credentials",
            reason.explain()
        )));
    }
    Ok(url)
}
