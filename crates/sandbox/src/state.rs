//! The sandbox's world: every order, label (v1 "shipment", with or without an
//! order), fulfilment, product, webhook subscription and tracking history, the
//! account's stores, warehouses and carriers (with their rate card and balances), and
//! the rules ShipStation applies to them.
//!
//! Handlers render these records in v1 or v2 shapes; the rules live here so both APIs
//! and the control API see one truth: an order is shipped when live labels cover all
//! its physical lines, a void puts it back to `awaiting_shipment`, a merged-away order
//! vanishes, a split child carries `parentId`.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::simulator::SimulationConfig;

/// The statuses a v1 order can have.
pub const OPEN_STATUSES: [&str; 4] = ["awaiting_payment", "awaiting_shipment", "pending_fulfillment", "on_hold"];
pub const ALL_STATUSES: [&str; 6] =
    ["awaiting_payment", "awaiting_shipment", "pending_fulfillment", "shipped", "on_hold", "cancelled"];

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Store {
    pub store_id: i64,
    pub store_name: String,
    pub marketplace_id: i64,
    pub marketplace_name: String,
    pub create_date: Timestamp,
    /// `POST /stores/deactivate` clears it, `/stores/reactivate` sets it again.
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub modify_date: Option<Timestamp>,
    /// What `PUT /stores/{id}` may change, as last sent.
    #[serde(default)]
    pub settings: StoreSettings,
}

/// The editable part of a store (`PUT /stores/{id}` replaces all of it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoreSettings {
    pub email: Option<String>,
    pub integration_url: Option<String>,
    pub company_name: String,
    pub phone: String,
    pub public_email: String,
    pub website: String,
    pub auto_refresh: bool,
    /// `(orderStatus, statusKey)`; the default mappings when empty.
    pub status_mappings: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Warehouse {
    pub warehouse_id: i64,
    pub warehouse_name: String,
    pub origin_address: Value,
    /// The origin address when none was given.
    #[serde(default)]
    pub return_address: Value,
    pub create_date: Timestamp,
    pub is_default: bool,
    /// `DELETE /warehouses/{id}` is a soft delete: the location goes inactive.
    #[serde(default = "yes")]
    pub active: bool,
}

/// A product, one per SKU: made when an order line first shows the SKU (as
/// ShipStation does on import), with an id that never changes afterwards, and
/// replaced wholesale by `PUT /products/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Product {
    pub product_id: i64,
    pub sku: String,
    pub name: String,
    pub price: Option<Decimal>,
    pub default_cost: Option<Decimal>,
    pub length: Option<Decimal>,
    pub width: Option<Decimal>,
    pub height: Option<Decimal>,
    /// Exact ounces, as sent or as converted from the line's weight.
    pub weight_oz: Option<Decimal>,
    pub customs_value: Option<Decimal>,
    pub active: bool,
    /// Every other product field, as the client last sent it.
    pub rest: serde_json::Map<String, Value>,
    pub create_date: Timestamp,
    pub modify_date: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Carrier {
    pub code: String,
    pub name: String,
    pub carrier_id: String,
    pub shipping_provider_id: i64,
    pub services: Vec<(String, String, bool, bool)>,
    pub packages: Vec<(String, String, bool, bool)>,
    /// Prefix of the tracking numbers this carrier issues.
    pub tracking_prefix: String,
    /// Prepaid postage (funded carriers only), raised by `POST /carriers/addfunds`.
    #[serde(default)]
    pub balance: Decimal,
}

impl Carrier {
    /// Postage is bought in advance from a balance (Stamps.com), not invoiced.
    pub fn requires_funded_account(&self) -> bool {
        self.code == "stamps_com"
    }
}

/// One order line as ShipStation keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub order_item_id: i64,
    pub line_item_key: Option<String>,
    pub sku: Option<String>,
    pub name: String,
    pub image_url: Option<String>,
    pub weight: Value,
    pub quantity: i64,
    pub unit_price: Option<Decimal>,
    pub tax_amount: Option<Decimal>,
    pub shipping_amount: Option<Decimal>,
    pub warehouse_location: Option<String>,
    pub options: Value,
    pub product_id: Option<i64>,
    pub fulfillment_sku: Option<String>,
    pub adjustment: bool,
    pub upc: Option<String>,
    pub create_date: Timestamp,
    pub modify_date: Timestamp,
}

/// The typed part of `advancedOptions`; the rest is kept as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Advanced {
    pub store_id: i64,
    pub warehouse_id: Option<i64>,
    pub merged_or_split: bool,
    pub merged_ids: Vec<i64>,
    pub parent_id: Option<i64>,
    /// Every other advanced option, as the client sent it.
    pub rest: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub order_id: i64,
    pub order_number: String,
    pub order_key: String,
    pub order_date: Option<Timestamp>,
    pub create_date: Timestamp,
    pub modify_date: Timestamp,
    pub payment_date: Option<Timestamp>,
    pub ship_by_date: Option<Timestamp>,
    pub order_status: String,
    pub customer_id: Option<i64>,
    pub customer_username: Option<String>,
    pub customer_email: Option<String>,
    pub bill_to: Value,
    pub ship_to: Value,
    pub items: Vec<Item>,
    pub amount_paid: Option<Decimal>,
    pub tax_amount: Option<Decimal>,
    pub shipping_amount: Option<Decimal>,
    pub customer_notes: Option<String>,
    pub internal_notes: Option<String>,
    pub gift: bool,
    pub gift_message: Option<String>,
    pub payment_method: Option<String>,
    pub requested_shipping_service: Option<String>,
    pub carrier_code: Option<String>,
    pub service_code: Option<String>,
    pub package_code: Option<String>,
    pub confirmation: Option<String>,
    pub ship_date: Option<Date>,
    pub hold_until_date: Option<Date>,
    pub weight: Value,
    pub dimensions: Value,
    pub insurance_options: Value,
    pub international_options: Value,
    pub advanced: Advanced,
    pub tag_ids: Option<Vec<i64>>,
    pub user_id: Option<String>,
    pub externally_fulfilled: bool,
    pub externally_fulfilled_by: Option<String>,
    /// Soft-deleted with `DELETE /orders/{id}`: hidden from lists.
    pub active: bool,
    /// Absorbed by a merge into this order: 404 everywhere.
    pub merged_into: Option<i64>,
    /// The import batch of the createorder call that last wrote it (ORDER_NOTIFY).
    pub import_batch: String,
}

impl Order {
    /// Visible through the API (not merged away).
    pub fn visible(&self) -> bool {
        self.merged_into.is_none()
    }

    pub fn is_open(&self) -> bool {
        OPEN_STATUSES.contains(&self.order_status.as_str())
    }

    pub fn store_id(&self) -> i64 {
        self.advanced.store_id
    }

    pub fn recipient_name(&self) -> String {
        self.ship_to.get("name").and_then(Value::as_str).unwrap_or_default().to_string()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShipmentItem {
    pub order_item_id: i64,
    pub line_item_key: Option<String>,
    pub sku: Option<String>,
    pub name: String,
    pub image_url: Option<String>,
    pub weight: Value,
    pub quantity: i64,
    pub unit_price: Option<Decimal>,
    pub warehouse_location: Option<String>,
    pub options: Value,
    pub product_id: Option<i64>,
    pub fulfillment_sku: Option<String>,
    pub adjustment: bool,
    pub upc: Option<String>,
}

/// A label: a v1 shipment and a v2 label (`se-{shipment_id}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shipment {
    pub shipment_id: i64,
    /// `None` for a label made without an order (`POST /shipments/createlabel`).
    pub order_id: Option<i64>,
    pub order_key: Option<String>,
    pub order_number: Option<String>,
    pub user_id: Option<String>,
    pub customer_email: Option<String>,
    pub create_date: Timestamp,
    pub ship_date: Date,
    pub shipment_cost: Decimal,
    pub insurance_cost: Decimal,
    /// Currency of the carrier account (v1 shows none; v2 shows it).
    pub currency: String,
    pub tracking_number: String,
    pub carrier_code: String,
    pub service_code: String,
    pub package_code: String,
    pub confirmation: Option<String>,
    pub warehouse_id: Option<i64>,
    pub store_id: i64,
    pub voided: bool,
    pub void_date: Option<Timestamp>,
    pub ship_to: Value,
    pub weight: Value,
    pub dimensions: Value,
    pub items: Vec<ShipmentItem>,
    /// The notification batch (SHIP_NOTIFY `batchId`).
    pub batch_id: i64,
    /// When the label last changed: made, voided, or its tracking moved (a carrier
    /// event). v2 sorts labels by it (`sort_by=modified_at`) but shows no field for
    /// it. A state saved before it existed reads the epoch; loading fixes that
    /// ([`World::backfill_label_times`]).
    #[serde(default)]
    pub modified_at: Timestamp,
}

/// An order marked shipped without a ShipStation label.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fulfillment {
    pub fulfillment_id: i64,
    pub order_id: i64,
    pub order_number: String,
    pub user_id: Option<String>,
    pub customer_email: Option<String>,
    pub tracking_number: Option<String>,
    pub create_date: Timestamp,
    pub ship_date: Option<Date>,
    pub void_date: Option<Timestamp>,
    pub delivery_date: Option<Timestamp>,
    pub carrier_code: String,
    pub voided: bool,
    pub marketplace_notified: bool,
    pub notify_customer: bool,
    pub ship_to: Value,
    pub store_id: i64,
    pub batch_id: i64,
}

/// One carrier event on a tracking number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackEvent {
    pub occurred_at: Timestamp,
    pub status_code: String,
    pub status_detail_code: Option<String>,
    pub description: String,
    pub city_locality: Option<String>,
    pub state_province: Option<String>,
    pub postal_code: Option<String>,
    pub country_code: Option<String>,
    pub event_code: Option<String>,
    pub signer: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tracking {
    pub tracking_number: String,
    pub carrier_code: String,
    pub label_shipment_id: Option<i64>,
    pub ship_date: Option<Date>,
    pub events: Vec<TrackEvent>,
    /// Subscribed with `POST /v2/tracking/start` (labels are tracked automatically).
    pub started: bool,
}

impl Tracking {
    /// The status the latest event left (NY before any scan).
    pub fn status_code(&self) -> &str {
        self.events.last().map(|e| e.status_code.as_str()).unwrap_or("NY")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookV1 {
    pub id: i64,
    pub target_url: String,
    pub event: String,
    pub store_id: Option<i64>,
    pub friendly_name: Option<String>,
    pub created: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookV2 {
    pub webhook_id: String,
    pub url: String,
    pub event: String,
    pub name: Option<String>,
    pub store_id: Option<i64>,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InventoryWarehouse {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InventoryLocation {
    pub id: String,
    pub name: String,
    pub warehouse_id: String,
    pub created_at: Timestamp,
}

/// Stock of one SKU at one location in one condition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StockLevel {
    pub sku: String,
    pub location_id: String,
    pub condition: String,
    pub on_hand: i64,
    pub allocated: i64,
    pub average_cost: Option<(Decimal, String)>,
}

/// Counters behind `GET /_sandbox/stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    pub requests: BTreeMap<String, u64>,
    pub rate_limited: u64,
    pub v2_rate_limited: u64,
    pub unauthorized: u64,
    pub faults: BTreeMap<String, u64>,
    pub webhooks_delivered: u64,
    pub webhooks_failed: u64,
    pub webhooks_dropped: u64,
    pub webhooks_duplicated: u64,
    pub webhook_attempts: u64,
}

/// The v1 fixed window of one key pair.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Window {
    pub started: Option<Timestamp>,
    pub used: u32,
}

fn first_product_id() -> i64 {
    5_000_000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ids {
    #[serde(default = "first_product_id")]
    pub product: i64,
    pub order: i64,
    pub item: i64,
    pub shipment: i64,
    pub fulfillment: i64,
    pub webhook: i64,
    pub customer: i64,
    pub batch: i64,
    pub tracking: i64,
    pub inventory: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    pub stores: Vec<Store>,
    pub warehouses: Vec<Warehouse>,
    pub carriers: Vec<Carrier>,
    pub tags: Vec<(i64, String, String)>,
    pub orders: BTreeMap<i64, Order>,
    pub order_keys: HashMap<String, i64>,
    /// By product id; one per SKU.
    #[serde(default)]
    pub products: BTreeMap<i64, Product>,
    pub customers: HashMap<String, i64>,
    pub shipments: BTreeMap<i64, Shipment>,
    pub fulfillments: BTreeMap<i64, Fulfillment>,
    pub tracking: BTreeMap<String, Tracking>,
    pub webhooks: BTreeMap<i64, WebhookV1>,
    pub webhooks_v2: BTreeMap<String, WebhookV2>,
    pub inventory_warehouses: BTreeMap<String, InventoryWarehouse>,
    pub inventory_locations: BTreeMap<String, InventoryLocation>,
    pub stock: Vec<StockLevel>,
    pub stats: Stats,
    pub windows: HashMap<String, Window>,
    pub v2_windows: HashMap<String, Window>,
    pub faults: crate::faults::Faults,
    pub simulation: SimulationConfig,
    /// Per order: what the simulated warehouse has decided and when it acts next.
    pub sim_plans: BTreeMap<i64, crate::simulator::Plan>,
    pub ids: Ids,
}

/// A line and quantity to put in a label or move in a split.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinePick {
    pub order_item_id: Option<i64>,
    pub line_item_key: Option<String>,
    pub sku: Option<String>,
    pub quantity: Option<i64>,
}

/// What makes a label.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelRequest {
    pub carrier_code: Option<String>,
    pub service_code: Option<String>,
    pub package_code: Option<String>,
    pub confirmation: Option<String>,
    #[serde(default, with = "shipledger_core::json::decimal_number_option")]
    pub shipment_cost: Option<Decimal>,
    #[serde(default, with = "shipledger_core::json::decimal_number_option")]
    pub insurance_cost: Option<Decimal>,
    pub currency: Option<String>,
    pub tracking_number: Option<String>,
    pub ship_date: Option<Date>,
    /// Lines in this parcel; all unshipped lines when absent.
    pub items: Option<Vec<LinePick>>,
}

/// A refusal, in words a test or a user can act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    NotFound(String),
    Invalid(String),
}

impl World {
    pub fn new(now: Timestamp) -> Self {
        let mut world = World {
            stores: vec![
                Store {
                    store_id: 310_001,
                    store_name: "ShipStation Manual Store".into(),
                    marketplace_id: 0,
                    marketplace_name: "ShipStation".into(),
                    create_date: now,
                    active: true,
                    modify_date: None,
                    settings: StoreSettings::default(),
                },
                Store {
                    store_id: 310_002,
                    store_name: "Wholesale (manual)".into(),
                    marketplace_id: 0,
                    marketplace_name: "ShipStation".into(),
                    create_date: now,
                    active: true,
                    modify_date: None,
                    settings: StoreSettings::default(),
                },
            ],
            warehouses: vec![Warehouse {
                warehouse_id: 51_001,
                warehouse_name: "Main warehouse".into(),
                origin_address: serde_json::json!({
                    "name": "Main warehouse", "company": "Sandbox Goods", "street1": "1 Dock Road",
                    "street2": null, "street3": null, "city": "Austin", "state": "TX",
                    "postalCode": "78701", "country": "US", "phone": "512-555-0100",
                    "residential": false, "addressVerified": null
                }),
                return_address: Value::Null,
                create_date: now,
                is_default: true,
                active: true,
            }],
            carriers: default_carriers(),
            tags: vec![(1001, "Priority".into(), "#FF0000".into()), (1002, "Gift".into(), "#00AA00".into())],
            orders: BTreeMap::new(),
            order_keys: HashMap::new(),
            products: BTreeMap::new(),
            customers: HashMap::new(),
            shipments: BTreeMap::new(),
            fulfillments: BTreeMap::new(),
            tracking: BTreeMap::new(),
            webhooks: BTreeMap::new(),
            webhooks_v2: BTreeMap::new(),
            inventory_warehouses: BTreeMap::new(),
            inventory_locations: BTreeMap::new(),
            stock: Vec::new(),
            stats: Stats::default(),
            windows: HashMap::new(),
            v2_windows: HashMap::new(),
            faults: Default::default(),
            simulation: Default::default(),
            sim_plans: BTreeMap::new(),
            ids: Ids {
                product: first_product_id(),
                order: 94_100_000,
                item: 128_000_000,
                shipment: 72_500_000,
                fulfillment: 33_900_000,
                webhook: 10_400,
                customer: 41_000_000,
                batch: 880_000,
                tracking: 1,
                inventory: 1,
            },
        };
        let wh = InventoryWarehouse { id: "se-1".into(), name: "Main warehouse".into(), created_at: now };
        let loc = InventoryLocation {
            id: "se-2".into(),
            name: "Bin A1".into(),
            warehouse_id: wh.id.clone(),
            created_at: now,
        };
        world.inventory_warehouses.insert(wh.id.clone(), wh);
        world.inventory_locations.insert(loc.id.clone(), loc);
        world.ids.inventory = 3;
        world
    }

    pub fn next_batch(&mut self) -> i64 {
        self.ids.batch += 1;
        self.ids.batch
    }

    pub fn default_store_id(&self) -> i64 {
        self.stores.iter().find(|s| s.marketplace_id == 0).map(|s| s.store_id).unwrap_or(0)
    }

    pub fn visible_order(&self, order_id: i64) -> Result<&Order, Refusal> {
        match self.orders.get(&order_id) {
            Some(o) if o.visible() => Ok(o),
            _ => Err(Refusal::NotFound(format!("order {order_id} not found"))),
        }
    }

    pub fn carrier(&self, code: &str) -> Option<&Carrier> {
        self.carriers.iter().find(|c| c.code.eq_ignore_ascii_case(code))
    }

    pub fn customer_id(&mut self, email: Option<&str>, username: Option<&str>) -> Option<i64> {
        let key = email.or(username)?.to_ascii_lowercase();
        if key.is_empty() {
            return None;
        }
        if let Some(id) = self.customers.get(&key) {
            return Some(*id);
        }
        self.ids.customer += 1;
        let id = self.ids.customer;
        self.customers.insert(key, id);
        Some(id)
    }

    /// The product of an order line's SKU, made the first time the SKU is seen with
    /// the next product id; later lines with the SKU get the same id and change
    /// nothing (`PUT /products/{id}` is how a product changes).
    pub fn product_for(&mut self, item: &Item, now: Timestamp) -> Option<i64> {
        let sku = item.sku.as_deref().filter(|s| !s.is_empty() && !item.adjustment)?;
        if let Some(p) = self.products.values().find(|p| p.sku == sku) {
            return Some(p.product_id);
        }
        self.ids.product += 1;
        let product_id = self.ids.product;
        let mut rest = serde_json::Map::new();
        rest.insert("fulfillmentSku".into(), serde_json::json!(item.fulfillment_sku));
        rest.insert("warehouseLocation".into(), serde_json::json!(item.warehouse_location));
        self.products.insert(
            product_id,
            Product {
                product_id,
                sku: sku.to_string(),
                name: item.name.clone(),
                price: item.unit_price,
                default_cost: None,
                length: None,
                width: None,
                height: None,
                weight_oz: weight_in_ounces(&item.weight),
                customs_value: None,
                active: true,
                rest,
                create_date: now,
                modify_date: now,
            },
        );
        Some(product_id)
    }

    /// Products for a state file written before the sandbox kept them: every SKU of
    /// the orders gets its product in order-id order (the order ShipStation first saw
    /// them), and lines without a product id get theirs. Does nothing when every
    /// line already has one.
    pub fn backfill_products(&mut self, now: Timestamp) {
        let ids: Vec<i64> = self.orders.keys().copied().collect();
        for id in ids {
            let mut items = std::mem::take(&mut self.orders.get_mut(&id).expect("listed").items);
            for item in items.iter_mut().filter(|i| i.product_id.is_none()) {
                item.product_id = self.product_for(item, now);
            }
            self.orders.get_mut(&id).expect("listed").items = items;
        }
    }

    /// Quantity of each order item already in live (not voided) labels.
    pub fn shipped_quantities(&self, order_id: i64) -> HashMap<i64, i64> {
        let mut out = HashMap::new();
        for s in self.shipments.values().filter(|s| s.order_id == Some(order_id) && !s.voided) {
            for item in &s.items {
                *out.entry(item.order_item_id).or_insert(0) += item.quantity;
            }
        }
        out
    }

    /// Physical lines still waiting for a label: (order item id, quantity left).
    pub fn unshipped(&self, order: &Order) -> Vec<(i64, i64)> {
        let shipped = self.shipped_quantities(order.order_id);
        order
            .items
            .iter()
            .filter(|i| !i.adjustment)
            .map(|i| (i.order_item_id, i.quantity - shipped.get(&i.order_item_id).copied().unwrap_or(0)))
            .filter(|(_, left)| *left > 0)
            .collect()
    }

    fn resolve_pick(order: &Order, pick: &LinePick) -> Result<usize, Refusal> {
        let found = order.items.iter().position(|i| {
            (pick.order_item_id.is_some() && pick.order_item_id == Some(i.order_item_id))
                || (pick.line_item_key.is_some() && pick.line_item_key == i.line_item_key)
                || (pick.order_item_id.is_none()
                    && pick.line_item_key.is_none()
                    && pick.sku.is_some()
                    && pick.sku == i.sku)
        });
        found.ok_or_else(|| {
            Refusal::Invalid(format!(
                "order {} has no line matching {}; pick lines by orderItemId, lineItemKey or sku",
                order.order_id,
                serde_json::to_string(pick).unwrap_or_default()
            ))
        })
    }

    /// Create a label for some or all unshipped lines of an open order.
    pub fn create_label(&mut self, order_id: i64, req: &LabelRequest, now: Timestamp) -> Result<i64, Refusal> {
        let order = self.visible_order(order_id)?.clone();
        if !matches!(order.order_status.as_str(), "awaiting_shipment" | "pending_fulfillment") {
            return Err(Refusal::Invalid(format!(
                "order {order_id} is {}; only awaiting_shipment or pending_fulfillment orders can be labelled",
                order.order_status
            )));
        }
        let unshipped: HashMap<i64, i64> = self.unshipped(&order).into_iter().collect();
        let mut lines: Vec<(usize, i64)> = Vec::new();
        match &req.items {
            None => {
                for (idx, item) in order.items.iter().enumerate() {
                    if let Some(left) = unshipped.get(&item.order_item_id) {
                        lines.push((idx, *left));
                    }
                }
            }
            Some(picks) => {
                for pick in picks {
                    let idx = Self::resolve_pick(&order, pick)?;
                    let item = &order.items[idx];
                    let left = unshipped.get(&item.order_item_id).copied().unwrap_or(0);
                    let qty = pick.quantity.unwrap_or(left);
                    if qty <= 0 || qty > left {
                        return Err(Refusal::Invalid(format!(
                            "order {order_id} line {} has {left} left to ship; cannot label {qty}",
                            item.line_item_key.clone().unwrap_or_else(|| item.order_item_id.to_string())
                        )));
                    }
                    lines.push((idx, qty));
                }
            }
        }
        if lines.is_empty() {
            return Err(Refusal::Invalid(format!("order {order_id} has nothing left to ship")));
        }
        let carrier_code = req
            .carrier_code
            .clone()
            .or_else(|| order.carrier_code.clone())
            .unwrap_or_else(|| "ups".into());
        let carrier = self.carrier(&carrier_code).cloned().ok_or_else(|| {
            Refusal::Invalid(format!("unknown carrierCode {carrier_code}; see GET /carriers"))
        })?;
        let service_code = req
            .service_code
            .clone()
            .or_else(|| order.service_code.clone())
            .unwrap_or_else(|| carrier.services[0].0.clone());
        let items: Vec<ShipmentItem> = lines
            .iter()
            .map(|(idx, qty)| {
                let i = &order.items[*idx];
                ShipmentItem {
                    order_item_id: i.order_item_id,
                    line_item_key: i.line_item_key.clone(),
                    sku: i.sku.clone(),
                    name: i.name.clone(),
                    image_url: i.image_url.clone(),
                    weight: i.weight.clone(),
                    quantity: *qty,
                    unit_price: i.unit_price,
                    warehouse_location: i.warehouse_location.clone(),
                    options: i.options.clone(),
                    product_id: i.product_id,
                    fulfillment_sku: i.fulfillment_sku.clone(),
                    adjustment: i.adjustment,
                    upc: i.upc.clone(),
                }
            })
            .collect();
        let ship_date = req.ship_date.unwrap_or_else(|| pacific_date(now));
        let shipment_id = self.issue_label(
            Shipment {
                shipment_id: 0,
                order_id: Some(order_id),
                order_key: Some(order.order_key.clone()),
                order_number: Some(order.order_number.clone()),
                user_id: order.user_id.clone(),
                customer_email: order.customer_email.clone(),
                create_date: now,
                ship_date,
                shipment_cost: req.shipment_cost.unwrap_or_else(|| Decimal::new(895, 2)),
                insurance_cost: req.insurance_cost.unwrap_or_default(),
                currency: req.currency.clone().unwrap_or_else(|| "USD".into()).to_ascii_uppercase(),
                tracking_number: String::new(),
                carrier_code: carrier.code.clone(),
                service_code,
                package_code: req.package_code.clone().unwrap_or_else(|| "package".into()),
                confirmation: req.confirmation.clone().or_else(|| Some("none".into())),
                warehouse_id: order.advanced.warehouse_id,
                store_id: order.store_id(),
                voided: false,
                void_date: None,
                ship_to: order.ship_to.clone(),
                weight: order.weight.clone(),
                dimensions: order.dimensions.clone(),
                items,
                batch_id: 0,
                modified_at: now,
            },
            &carrier,
            req.tracking_number.clone(),
        );
        let fully_shipped = {
            let order = &self.orders[&order_id];
            self.unshipped(order).is_empty()
        };
        let order = self.orders.get_mut(&order_id).expect("order exists");
        order.modify_date = now;
        if fully_shipped {
            order.order_status = "shipped".into();
            order.ship_date = Some(ship_date);
        }
        Ok(shipment_id)
    }

    /// Give a label its shipment id, tracking number (unless one is given) and
    /// notification batch, and start tracking it. Shared by labels for orders and
    /// labels without one.
    pub fn issue_label(&mut self, mut shipment: Shipment, carrier: &Carrier, tracking_number: Option<String>) -> i64 {
        self.ids.shipment += 1;
        let shipment_id = self.ids.shipment;
        self.ids.tracking += 1;
        let tracking_number = tracking_number
            .unwrap_or_else(|| format!("{}{:010}", carrier.tracking_prefix, shipment_id * 7 + self.ids.tracking));
        shipment.shipment_id = shipment_id;
        shipment.tracking_number = tracking_number.clone();
        shipment.batch_id = self.next_batch();
        self.tracking.insert(
            tracking_number.clone(),
            Tracking {
                tracking_number,
                carrier_code: carrier.code.clone(),
                label_shipment_id: Some(shipment_id),
                ship_date: Some(shipment.ship_date),
                events: Vec::new(),
                started: false,
            },
        );
        self.shipments.insert(shipment_id, shipment);
        shipment_id
    }

    /// Void a label: it stays listed with `voided` and `voidDate`; its lines are
    /// waiting for a label again.
    pub fn void_label(&mut self, shipment_id: i64, now: Timestamp) -> Result<(), Refusal> {
        let shipment = self
            .shipments
            .get_mut(&shipment_id)
            .ok_or_else(|| Refusal::NotFound(format!("shipment {shipment_id} not found")))?;
        if shipment.voided {
            return Err(Refusal::Invalid(format!("shipment {shipment_id} is already voided")));
        }
        shipment.voided = true;
        shipment.void_date = Some(now);
        shipment.modified_at = now;
        let order_id = shipment.order_id;
        if let Some(order) = order_id.and_then(|id| self.orders.get_mut(&id)) {
            if order.order_status == "shipped" {
                order.order_status = "awaiting_shipment".into();
                order.ship_date = None;
            }
            order.modify_date = now;
        }
        Ok(())
    }

    /// Split some lines of an open order into a new child order.
    pub fn split_order(&mut self, order_id: i64, picks: &[LinePick], now: Timestamp) -> Result<i64, Refusal> {
        let parent = self.visible_order(order_id)?.clone();
        if !parent.is_open() {
            return Err(Refusal::Invalid(format!(
                "order {order_id} is {}; only open orders can be split",
                parent.order_status
            )));
        }
        if picks.is_empty() {
            return Err(Refusal::Invalid("a split needs at least one line in items".into()));
        }
        if !self.shipped_quantities(order_id).is_empty() {
            return Err(Refusal::Invalid(format!(
                "order {order_id} already has labels; void them before splitting"
            )));
        }
        let mut parent_items = parent.items.clone();
        let mut child_items = Vec::new();
        for pick in picks {
            let idx = Self::resolve_pick(&parent, pick)?;
            let available = parent_items[idx].quantity;
            let qty = pick.quantity.unwrap_or(available);
            if qty <= 0 || qty > available {
                return Err(Refusal::Invalid(format!(
                    "order {order_id} line {} has quantity {available}; cannot split off {qty}",
                    parent_items[idx].order_item_id
                )));
            }
            self.ids.item += 1;
            let mut moved = parent_items[idx].clone();
            moved.order_item_id = self.ids.item;
            moved.quantity = qty;
            moved.create_date = now;
            moved.modify_date = now;
            child_items.push(moved);
            parent_items[idx].quantity -= qty;
            parent_items[idx].modify_date = now;
        }
        parent_items.retain(|i| i.quantity > 0);
        if parent_items.iter().all(|i| i.adjustment) {
            return Err(Refusal::Invalid(format!(
                "splitting these lines would leave order {order_id} empty; leave at least one line"
            )));
        }
        let siblings = self.orders.values().filter(|o| o.advanced.parent_id == Some(order_id)).count();
        self.ids.order += 1;
        let child_id = self.ids.order;
        let mut child = parent.clone();
        child.order_id = child_id;
        child.order_number = format!("{}-{}", parent.order_number, siblings + 1);
        child.order_key = uuid_like(child_id);
        child.items = child_items;
        child.create_date = now;
        child.modify_date = now;
        child.advanced.parent_id = Some(order_id);
        child.advanced.merged_or_split = true;
        child.advanced.merged_ids = Vec::new();
        self.order_keys.insert(child.order_key.clone(), child_id);
        self.orders.insert(child_id, child);
        let parent = self.orders.get_mut(&order_id).expect("parent exists");
        parent.items = parent_items;
        parent.advanced.merged_or_split = true;
        parent.modify_date = now;
        Ok(child_id)
    }

    /// Merge open orders into the first: the others vanish from the API.
    pub fn merge_orders(&mut self, ids: &[i64], now: Timestamp) -> Result<i64, Refusal> {
        let Some((&survivor, absorbed)) = ids.split_first() else {
            return Err(Refusal::Invalid("a merge needs orderIds: [survivor, absorbed...]".into()));
        };
        if absorbed.is_empty() {
            return Err(Refusal::Invalid("a merge needs at least two orderIds".into()));
        }
        let mut all = vec![survivor];
        all.extend_from_slice(absorbed);
        for id in &all {
            let order = self.visible_order(*id)?;
            if !order.is_open() {
                return Err(Refusal::Invalid(format!(
                    "order {id} is {}; only open orders can be merged",
                    order.order_status
                )));
            }
            if !self.shipped_quantities(*id).is_empty() {
                return Err(Refusal::Invalid(format!("order {id} has labels; void them before merging")));
            }
        }
        let mut moved = Vec::new();
        for id in absorbed {
            let order = self.orders.get_mut(id).expect("checked");
            order.merged_into = Some(survivor);
            order.modify_date = now;
            moved.extend(order.items.clone());
        }
        let order = self.orders.get_mut(&survivor).expect("checked");
        order.items.extend(moved);
        order.advanced.merged_or_split = true;
        order.advanced.merged_ids.extend_from_slice(absorbed);
        order.modify_date = now;
        Ok(survivor)
    }

    /// Mark an order shipped without a ShipStation label (a fulfilment).
    pub fn mark_shipped(
        &mut self,
        order_id: i64,
        carrier_code: &str,
        tracking_number: Option<String>,
        ship_date: Option<Date>,
        notify_customer: bool,
        now: Timestamp,
    ) -> Result<i64, Refusal> {
        let order = self.visible_order(order_id)?.clone();
        if order.order_status == "cancelled" {
            return Err(Refusal::Invalid(format!("order {order_id} is cancelled and cannot be marked shipped")));
        }
        self.ids.fulfillment += 1;
        let fulfillment_id = self.ids.fulfillment;
        let batch_id = self.next_batch();
        let ship_date = ship_date.or_else(|| Some(pacific_date(now)));
        self.fulfillments.insert(
            fulfillment_id,
            Fulfillment {
                fulfillment_id,
                order_id,
                order_number: order.order_number.clone(),
                user_id: order.user_id.clone(),
                customer_email: order.customer_email.clone(),
                tracking_number,
                create_date: now,
                ship_date,
                void_date: None,
                delivery_date: None,
                carrier_code: carrier_code.to_string(),
                voided: false,
                marketplace_notified: false,
                notify_customer,
                ship_to: order.ship_to.clone(),
                store_id: order.store_id(),
                batch_id,
            },
        );
        let order = self.orders.get_mut(&order_id).expect("exists");
        order.order_status = "shipped".into();
        order.ship_date = ship_date;
        order.modify_date = now;
        Ok(fulfillment_id)
    }

    /// Append a carrier event to a tracking number, recorded at `now`: every label
    /// with that number was modified then (its `tracking_status` may have moved).
    pub fn add_track_event(&mut self, tracking_number: &str, event: TrackEvent, now: Timestamp) -> Result<(), Refusal> {
        let tracking = self.tracking.get_mut(tracking_number).ok_or_else(|| {
            Refusal::NotFound(format!(
                "tracking number {tracking_number} is unknown; create a label or POST /v2/tracking/start first"
            ))
        })?;
        tracking.events.push(event);
        tracking.events.sort_by_key(|e| e.occurred_at);
        for label in self.shipments.values_mut().filter(|s| s.tracking_number == tracking_number) {
            label.modified_at = label.modified_at.max(now);
        }
        Ok(())
    }

    /// Labels of a state saved before labels kept their modified time: modified
    /// when made, or when voided.
    pub fn backfill_label_times(&mut self) {
        for label in self.shipments.values_mut().filter(|s| s.modified_at < s.create_date) {
            label.modified_at = label.void_date.unwrap_or(label.create_date).max(label.create_date);
        }
    }

    /// Orders whose orderKey made more than one order, and orderNumbers used by more
    /// than one visible order (counted over what exists, not our own bookkeeping).
    pub fn duplicates(&self) -> (u64, u64) {
        let mut keys: HashMap<&str, u64> = HashMap::new();
        let mut numbers: HashMap<&str, u64> = HashMap::new();
        for o in self.orders.values().filter(|o| o.visible() && o.advanced.parent_id.is_none()) {
            *keys.entry(o.order_key.as_str()).or_default() += 1;
            *numbers.entry(o.order_number.as_str()).or_default() += 1;
        }
        let dup_keys = keys.values().filter(|n| **n > 1).map(|n| n - 1).sum();
        let dup_numbers = numbers.values().filter(|n| **n > 1).map(|n| n - 1).sum();
        (dup_keys, dup_numbers)
    }
}

/// One rate, as `POST /shipments/getrates` lists it (and `createlabel` charges).
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    pub service_code: String,
    pub service_name: String,
    pub shipment_cost: Decimal,
    pub other_cost: Decimal,
}

/// What a rate depends on.
pub struct RateRequest<'a> {
    pub service_code: Option<&'a str>,
    pub ounces: Decimal,
    pub international: bool,
    pub confirmation: Option<&'a str>,
    pub residential: bool,
}

impl Carrier {
    /// The sandbox's rate card, deterministic from weight and service: the n-th
    /// service (0-based) of a carrier costs 5.50 + 3.25·n for the first pound and
    /// 0.75 + 0.50·n for each further started pound, international services 12.00
    /// and 1.75 more; `otherCost` is a 4 % fuel surcharge plus the confirmation fee
    /// (signature 2.95, adult 6.95, direct 4.25) and, for UPS and FedEx, 3.50 to a
    /// residence. Every amount is rounded half-even to the cent. Services that do
    /// not serve the destination (domestic or international) are left out.
    pub fn rates(&self, req: &RateRequest) -> Result<Vec<Rate>, Refusal> {
        if let Some(code) = req.service_code
            && !self.services.iter().any(|(c, ..)| c.eq_ignore_ascii_case(code))
        {
            return Err(Refusal::Invalid(format!(
                "serviceCode {code} is not a service of carrier {}; see GET /carriers/listservices?carrierCode={}",
                self.code, self.code
            )));
        }
        let cent = |d: Decimal| d.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointNearestEven);
        let pounds = (req.ounces / Decimal::from(16)).ceil().max(Decimal::ONE);
        let fee = match req.confirmation.unwrap_or("none") {
            "signature" => Decimal::new(295, 2),
            "adult_signature" => Decimal::new(695, 2),
            "direct_signature" => Decimal::new(425, 2),
            _ => Decimal::ZERO,
        };
        let residence = if req.residential && matches!(self.code.as_str(), "ups" | "fedex") {
            Decimal::new(350, 2)
        } else {
            Decimal::ZERO
        };
        let mut out = Vec::new();
        for (n, (code, name, domestic, international)) in self.services.iter().enumerate() {
            if req.service_code.is_some_and(|c| !c.eq_ignore_ascii_case(code)) {
                continue;
            }
            if (req.international && !international) || (!req.international && !domestic) {
                continue;
            }
            let n = Decimal::from(n as i64);
            let (mut first, mut further) = (Decimal::new(550, 2) + Decimal::new(325, 2) * n, Decimal::new(75, 2) + Decimal::new(50, 2) * n);
            if req.international {
                first += Decimal::new(1200, 2);
                further += Decimal::new(175, 2);
            }
            let shipment_cost = cent(first + further * (pounds - Decimal::ONE));
            let other_cost = cent(shipment_cost * Decimal::new(4, 2)) + fee + residence;
            out.push(Rate { service_code: code.clone(), service_name: name.clone(), shipment_cost, other_cost });
        }
        if out.is_empty() && let Some(code) = req.service_code {
            let reach = if req.international { "international" } else { "domestic" };
            return Err(Refusal::Invalid(format!("serviceCode {code} of carrier {} does not serve {reach} shipments", self.code)));
        }
        Ok(out)
    }
}

/// A v1 `{value, units}` weight in ounces, on exact decimals: ounces as sent,
/// pounds × 16, grams and kilograms ÷ 28.349523125 g (rounded half-even to
/// 6 places, the only inexact case). `None` when absent or unreadable.
pub fn weight_in_ounces(weight: &Value) -> Option<Decimal> {
    use shipledger_core::WeightUnit;
    let text = match weight.get("value")? {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    let value = if text.contains(['e', 'E']) { Decimal::from_scientific(&text).ok()? } else { text.parse::<Decimal>().ok()? };
    let unit = WeightUnit::parse(weight.get("units")?.as_str()?).ok()?;
    let grams_per_ounce = Decimal::new(28_349_523_125, 9);
    let ounces = match unit {
        WeightUnit::Ounces => value,
        WeightUnit::Pounds => value * Decimal::from(16),
        WeightUnit::Grams => (value / grams_per_ounce).round_dp(6),
        WeightUnit::Kilograms => (value * Decimal::from(1000) / grams_per_ounce).round_dp(6),
    };
    Some(ounces.normalize())
}

/// The Pacific calendar date of an instant (ShipStation's `shipDate`).
pub fn pacific_date(ts: Timestamp) -> Date {
    ts.to_zoned(jiff::tz::TimeZone::get("America/Los_Angeles").expect("bundled tzdb"))
        .date()
}

/// A GUID-shaped key, as ShipStation generates when a client sends none.
pub fn uuid_like(seed: i64) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(seed.to_be_bytes());
    let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn default_carriers() -> Vec<Carrier> {
    let s = |code: &str, name: &str, dom: bool, intl: bool| (code.to_string(), name.to_string(), dom, intl);
    vec![
        Carrier {
            code: "ups".into(),
            name: "UPS".into(),
            carrier_id: "se-100001".into(),
            shipping_provider_id: 100001,
            services: vec![
                s("ups_ground", "UPS® Ground", true, false),
                s("ups_2nd_day_air", "UPS 2nd Day Air®", true, false),
                s("ups_worldwide_expedited", "UPS Worldwide Expedited®", false, true),
            ],
            packages: vec![s("package", "Package", true, true), s("ups_letter", "UPS Letter", true, true)],
            tracking_prefix: "1Z999AA1".into(),
            balance: Decimal::ZERO,
        },
        Carrier {
            code: "fedex".into(),
            name: "FedEx".into(),
            carrier_id: "se-100002".into(),
            shipping_provider_id: 100002,
            services: vec![
                s("fedex_ground", "FedEx Ground®", true, false),
                s("fedex_2day", "FedEx 2Day®", true, false),
                s("fedex_international_economy", "FedEx International Economy®", false, true),
            ],
            packages: vec![s("package", "Package", true, true), s("fedex_envelope", "FedEx® Envelope", true, true)],
            tracking_prefix: "7946".into(),
            balance: Decimal::ZERO,
        },
        Carrier {
            code: "stamps_com".into(),
            name: "Stamps.com".into(),
            carrier_id: "se-100003".into(),
            shipping_provider_id: 100003,
            services: vec![
                s("usps_ground_advantage", "USPS Ground Advantage", true, false),
                s("usps_priority_mail", "USPS Priority Mail", true, false),
                s("usps_priority_mail_international", "USPS Priority Mail Intl", false, true),
            ],
            packages: vec![s("package", "Package", true, true), s("flat_rate_envelope", "Flat Rate Envelope", true, true)],
            tracking_prefix: "9400".into(),
            balance: Decimal::new(250, 0),
        },
        Carrier {
            code: "royal_mail".into(),
            name: "Royal Mail".into(),
            carrier_id: "se-100004".into(),
            shipping_provider_id: 100004,
            services: vec![
                s("rm_tracked_48", "Royal Mail Tracked 48", true, false),
                s("rm_tracked_24", "Royal Mail Tracked 24", true, false),
            ],
            packages: vec![s("package", "Parcel", true, true)],
            tracking_prefix: "RM".into(),
            balance: Decimal::ZERO,
        },
    ]
}

/// An instant as offset-less Pacific wall-clock text (`carrier_occurred_at`).
pub fn pacific_civil(ts: Timestamp) -> String {
    ts.to_zoned(jiff::tz::TimeZone::get("America/Los_Angeles").expect("bundled tzdb"))
        .datetime()
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string()
}
