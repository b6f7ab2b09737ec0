//! ShipStation v1 wire models: what `ssapi.shipstation.com` sends and accepts,
//! field for field, in camelCase (PascalCase for the webhook list).
//!
//! Conventions, the same on every type:
//! - money is `rust_decimal::Decimal` read from the JSON number's own digits (never
//!   `f64`); v1 carries no currency, so the caller decides it (the account's);
//! - date-times are UTC [`jiff::Timestamp`]s, converted from v1's offset-less US
//!   Pacific strings at this boundary; date-only fields (`shipDate`) are
//!   [`jiff::civil::Date`];
//! - anything ShipStation may send as `null` is an `Option`, or a list/flag that reads
//!   `null` as empty/false;
//! - unknown fields are ignored, and `None` fields are not sent. `createorder` is a full
//!   replace, so update an order by sending back the whole `Order` you read.

use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use shipledger_core::json::{decimal_number, decimal_number_option};
use shipledger_core::time::pacific;

use crate::wire::{date_option, null_default};

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this client does not know, kept as sent.
            Other(String),
        }

        impl $name {
            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $wire,)+
                    $name::Other(s) => s.as_str(),
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $($wire => $name::$variant,)+
                    other => $name::Other(other.to_owned()),
                })
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as ::serde::Deserialize>::deserialize(d)?;
                Ok(s.parse().unwrap_or_else(|never: std::convert::Infallible| match never {}))
            }
        }
    };
}
pub(crate) use string_enum;

string_enum! {
    /// `orderStatus`. Unknown values are kept in `Other`, not refused.
    OrderStatus {
        AwaitingPayment => "awaiting_payment",
        AwaitingShipment => "awaiting_shipment",
        PendingFulfillment => "pending_fulfillment",
        Shipped => "shipped",
        OnHold => "on_hold",
        Cancelled => "cancelled",
    }
}

impl OrderStatus {
    /// Only open orders can be updated by `createorder`; `shipped` and `cancelled`
    /// are locked.
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            OrderStatus::AwaitingPayment
                | OrderStatus::AwaitingShipment
                | OrderStatus::PendingFulfillment
                | OrderStatus::OnHold
        )
    }
}

string_enum! {
    /// v1 webhook events (`event` on subscribe, `resource_type` in payloads,
    /// `HookType` in the list).
    WebhookEvent {
        OrderNotify => "ORDER_NOTIFY",
        ItemOrderNotify => "ITEM_ORDER_NOTIFY",
        ShipNotify => "SHIP_NOTIFY",
        ItemShipNotify => "ITEM_SHIP_NOTIFY",
        FulfillmentShipped => "FULFILLMENT_SHIPPED",
        FulfillmentRejected => "FULFILLMENT_REJECTED",
    }
}

/// A postal address (`shipTo`, `billTo`, warehouse origin). Every field may be null;
/// `billTo` is often just a name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street3: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residential: Option<bool>,
    /// Read-only: "Address validated successfully", "Address validation warning", ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_verified: Option<String>,
}

/// `{value, units}` with `units` one of `pounds`, `ounces`, `grams`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weight {
    #[serde(with = "decimal_number")]
    pub value: Decimal,
    /// Kept as sent; [`Weight::to_core`] interprets it.
    pub units: String,
    /// Read-only numeric unit code.
    #[serde(
        rename = "WeightUnits",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub weight_units: Option<i64>,
}

impl Weight {
    /// A weight in one of v1's units.
    pub fn new(value: Decimal, unit: shipledger_core::WeightUnit) -> Option<Weight> {
        Some(Weight {
            value,
            units: unit.as_v1_str()?.to_owned(),
            weight_units: None,
        })
    }

    /// The exact domain weight, or why not (unknown unit, negative value).
    pub fn to_core(&self) -> Result<shipledger_core::Weight, shipledger_core::WeightError> {
        let unit = shipledger_core::WeightUnit::parse(&self.units)?;
        shipledger_core::Weight::from_decimal(self.value, unit)
    }
}

/// `{length, width, height, units}` with `units` `inches` or `centimeters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dimensions {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_number_option"
    )]
    pub length: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_number_option"
    )]
    pub width: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_number_option"
    )]
    pub height: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
}

/// `insuranceOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InsuranceOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insure_shipment: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_number_option"
    )]
    pub insured_value: Option<Decimal>,
}

/// One customs line of `internationalOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomsItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customs_item_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
    /// A bare number in the account currency.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_number_option"
    )]
    pub value: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harmonized_tariff_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_of_origin: Option<String>,
}

/// `internationalOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InternationalOptions {
    /// `merchandise`, `documents`, `gift`, `returned_goods`, `sample`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customs_items: Option<Vec<CustomsItem>>,
    /// `return_to_sender` or `treat_as_abandoned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_delivery: Option<String>,
}

/// `advancedOptions`. `storeId` is fixed at creation; `mergedOrSplit`, `mergedIds`
/// and `parentId` are read-only and tell splits and merges apart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdvancedOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_machinable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saturday_delivery: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains_alcohol: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_field1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_field2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_field3: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_or_split: Option<bool>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub merged_ids: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<i64>,
    /// `my_account`, `my_other_account`, `recipient`, `third_party`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_to_party: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_to_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_to_postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_to_country_code: Option<String>,
    /// A `shippingProviderId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_to_my_other_account: Option<serde_json::Value>,
}

/// `{name, value}` of an order item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemOption {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// One order line (also the shape of a shipment's `shipmentItems`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_item_id: Option<i64>,
    /// Our ERP line id: the key that maps shipment lines back to order lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_item_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Weight>,
    #[serde(default, deserialize_with = "null_default")]
    pub quantity: i64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_number_option"
    )]
    pub unit_price: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_number_option"
    )]
    pub tax_amount: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_number_option"
    )]
    pub shipping_amount: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse_location: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub options: Vec<ItemOption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfillment_sku: Option<String>,
    /// True for non-physical lines (discounts, fees).
    #[serde(default, deserialize_with = "null_default")]
    pub adjustment: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upc: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "pacific::serde_v1_option"
    )]
    pub create_date: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "pacific::serde_v1_option"
    )]
    pub modify_date: Option<Timestamp>,
}

/// A line of a shipment: the same shape as an order line.
pub type ShipmentItem = OrderItem;

/// A v1 order. Required to create one: `orderNumber`, `orderDate`, `orderStatus`,
/// `billTo`, `shipTo` — and, for shipledger, always an `orderKey` (see
/// [`V1Client::create_order`](crate::V1Client::create_order)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<i64>,
    /// Display number: not unique, and its list filter is a prefix match.
    pub order_number: String,
    /// The upsert key, fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_key: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "pacific::serde_v1_option"
    )]
    pub order_date: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "pacific::serde_v1_option"
    )]
    pub create_date: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "pacific::serde_v1_option"
    )]
    pub modify_date: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "pacific::serde_v1_option"
    )]
    pub payment_date: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "pacific::serde_v1_option"
    )]
    pub ship_by_date: Option<Timestamp>,
    pub order_status: OrderStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_email: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub bill_to: Address,
    #[serde(default, deserialize_with = "null_default")]
    pub ship_to: Address,
    #[serde(default, deserialize_with = "null_default")]
    pub items: Vec<OrderItem>,
    /// Read-only, computed by ShipStation.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_number_option"
    )]
    pub order_total: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_number_option"
    )]
    pub amount_paid: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_number_option"
    )]
    pub tax_amount: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_number_option"
    )]
    pub shipping_amount: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gift: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gift_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_shipping_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_code: Option<String>,
    /// `none`, `delivery`, `signature`, `adult_signature`, `direct_signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "date_option")]
    pub ship_date: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "date_option")]
    pub hold_until_date: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Weight>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<Dimensions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insurance_options: Option<InsuranceOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub international_options: Option<InternationalOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_options: Option<AdvancedOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_ids: Option<Vec<i64>>,
    /// GUID of the assigned user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub externally_fulfilled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub externally_fulfilled_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub externally_fulfilled_by_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub externally_fulfilled_by_name: Option<String>,
}

impl Order {
    /// A new order with the fields ShipStation requires; everything else empty.
    pub fn new(
        order_key: impl Into<String>,
        order_number: impl Into<String>,
        order_date: Timestamp,
        order_status: OrderStatus,
        ship_to: Address,
    ) -> Order {
        Order {
            order_id: None,
            order_number: order_number.into(),
            order_key: Some(order_key.into()),
            order_date: Some(order_date),
            create_date: None,
            modify_date: None,
            payment_date: None,
            ship_by_date: None,
            order_status,
            customer_id: None,
            customer_username: None,
            customer_email: None,
            bill_to: Address {
                name: ship_to.name.clone(),
                ..Address::default()
            },
            ship_to,
            items: Vec::new(),
            order_total: None,
            amount_paid: None,
            tax_amount: None,
            shipping_amount: None,
            customer_notes: None,
            internal_notes: None,
            gift: None,
            gift_message: None,
            payment_method: None,
            requested_shipping_service: None,
            carrier_code: None,
            service_code: None,
            package_code: None,
            confirmation: None,
            ship_date: None,
            hold_until_date: None,
            weight: None,
            dimensions: None,
            insurance_options: None,
            international_options: None,
            advanced_options: None,
            tag_ids: None,
            user_id: None,
            externally_fulfilled: None,
            externally_fulfilled_by: None,
            externally_fulfilled_by_id: None,
            externally_fulfilled_by_name: None,
        }
    }
}

/// The answer of `POST /orders/createorders`: one result per order, partial success
/// possible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrdersResult {
    #[serde(default, deserialize_with = "null_default")]
    pub has_errors: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub results: Vec<CreateOrderResult>,
}

/// One order's outcome in [`CreateOrdersResult`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrderResult {
    #[serde(default)]
    pub order_id: Option<i64>,
    #[serde(default)]
    pub order_number: Option<String>,
    #[serde(default)]
    pub order_key: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub success: bool,
    #[serde(default)]
    pub error_message: Option<String>,
}

/// Why ShipStation refused one order of a `createorders` batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderRefusal {
    /// The order exists but takes no more changes: it is shipped, cancelled or merged
    /// into another ("order 12 (SO-1) is shipped and can no longer be updated").
    Locked,
    /// Anything else: a field ShipStation rejects, or a save that failed on its side.
    Other,
}

impl CreateOrderResult {
    /// `None` when ShipStation accepted the order; otherwise why it did not. ShipStation
    /// says it only in words, so this is the one place that reads them.
    pub fn refusal(&self) -> Option<OrderRefusal> {
        if self.success && self.order_id.is_some_and(|id| id > 0) {
            return None;
        }
        let message = self.error_message.as_deref().unwrap_or_default().to_ascii_lowercase();
        if message.contains("can no longer be updated") || message.contains("cannot be updated") {
            Some(OrderRefusal::Locked)
        } else {
            Some(OrderRefusal::Other)
        }
    }
}

/// One page of a v1 list: `{orders|shipments|fulfillments|..., total, page, pages}`.
///
/// `pages` can be `0` while `total > 0` (it is in ShipStation's own examples); the
/// pagers in [`V1Client`](crate::V1Client) cope.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Page<T> {
    #[serde(
        rename = "items",
        alias = "orders",
        alias = "shipments",
        alias = "fulfillments",
        alias = "products",
        alias = "customers",
        default = "Vec::new",
        deserialize_with = "null_default"
    )]
    pub items: Vec<T>,
    #[serde(default, deserialize_with = "null_default")]
    pub total: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub page: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub pages: i64,
}

/// A label created in ShipStation (`GET /shipments`). Voided labels stay listed
/// with `voided: true`. `shipmentItems` is `None` unless the list was asked with
/// `includeShipmentItems=true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipment {
    pub shipment_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_number: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "pacific::serde_v1_option"
    )]
    pub create_date: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "date_option")]
    pub ship_date: Option<Date>,
    /// Postage, in the carrier account's currency (v1 names none).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_number_option"
    )]
    pub shipment_cost: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_number_option"
    )]
    pub insurance_cost: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub is_return_label: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse_id: Option<i64>,
    #[serde(default, deserialize_with = "null_default")]
    pub voided: bool,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "pacific::serde_v1_option"
    )]
    pub void_date: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketplace_notified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ship_to: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Weight>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<Dimensions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insurance_options: Option<InsuranceOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_options: Option<AdvancedOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment_items: Option<Vec<ShipmentItem>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_data: Option<String>,
}

/// An order marked as shipped without a ShipStation label (`GET /fulfillments`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fulfillment {
    pub fulfillment_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "pacific::serde_v1_option"
    )]
    pub create_date: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "date_option")]
    pub ship_date: Option<Date>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "pacific::serde_v1_option"
    )]
    pub void_date: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "pacific::serde_v1_option"
    )]
    pub delivery_date: Option<Timestamp>,
    /// Free text here ("USPS", "FedEx"), not a lowercase carrier code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_fill_provider_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_fill_provider_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfillment_provider_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfillment_service_code: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_number_option"
    )]
    pub fulfillment_fee: Option<Decimal>,
    #[serde(default, deserialize_with = "null_default")]
    pub void_requested: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub voided: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub marketplace_notified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ship_to: Option<Address>,
}

/// `POST /orders/markasshipped`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarkAsShipped {
    pub order_id: i64,
    pub carrier_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "date_option")]
    pub ship_date: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
    #[serde(default)]
    pub notify_customer: bool,
    #[serde(default)]
    pub notify_sales_channel: bool,
}

/// The answer to `markasshipped`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarkAsShippedResult {
    #[serde(default)]
    pub order_id: Option<i64>,
    #[serde(default)]
    pub order_number: Option<String>,
}

/// `{success, message}`, the answer of holduntil, restorefromhold, delete, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuccessResult {
    #[serde(default, deserialize_with = "null_default")]
    pub success: bool,
    #[serde(default)]
    pub message: Option<String>,
}

/// One subscription in `GET /webhooks` (PascalCase on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    #[serde(rename = "WebHookID")]
    pub webhook_id: i64,
    #[serde(rename = "HookType")]
    pub hook_type: WebhookEvent,
    #[serde(rename = "Url", default)]
    pub url: Option<String>,
    #[serde(rename = "StoreID", default)]
    pub store_id: Option<i64>,
    #[serde(rename = "Name", default)]
    pub name: Option<String>,
    #[serde(rename = "Active", default, deserialize_with = "null_default")]
    pub active: bool,
    #[serde(rename = "SellerID", default)]
    pub seller_id: Option<i64>,
    #[serde(rename = "MessageFormat", default)]
    pub message_format: Option<String>,
    #[serde(rename = "IsLabelAPIHook", default, deserialize_with = "null_default")]
    pub is_label_api_hook: bool,
}

/// `GET /webhooks`: a wrapper object, not a bare array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookList {
    #[serde(default, deserialize_with = "null_default")]
    pub webhooks: Vec<Webhook>,
}

/// `POST /webhooks/subscribe` (snake_case on the wire, unlike the rest of v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeWebhook {
    pub target_url: String,
    pub event: WebhookEvent,
    #[serde(default)]
    pub store_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub friendly_name: Option<String>,
}

/// The answer to a subscription: the new webhook's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeResult {
    pub id: i64,
}

/// What ShipStation POSTs to a v1 webhook URL: a hint, unsigned. Fetch
/// `resource_url` (after checking its host) with
/// [`V1Client::get_resource`](crate::V1Client::get_resource).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookPayload {
    pub resource_url: String,
    pub resource_type: WebhookEvent,
}

/// A status mapping of a store (`GET /stores/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusMapping {
    pub order_status: OrderStatus,
    #[serde(default)]
    pub status_key: Option<String>,
}

/// A selling channel (`GET /stores`). The manual store has `marketplaceId` 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Store {
    pub store_id: i64,
    #[serde(default)]
    pub store_name: Option<String>,
    #[serde(default)]
    pub marketplace_id: Option<i64>,
    #[serde(default)]
    pub marketplace_name: Option<String>,
    #[serde(default)]
    pub account_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub integration_url: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub active: bool,
    #[serde(default)]
    pub company_name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub public_email: Option<String>,
    #[serde(default)]
    pub website: Option<String>,
    #[serde(default, with = "pacific::serde_v1_option")]
    pub refresh_date: Option<Timestamp>,
    #[serde(default, with = "pacific::serde_v1_option")]
    pub last_refresh_attempt: Option<Timestamp>,
    #[serde(default, with = "pacific::serde_v1_option")]
    pub create_date: Option<Timestamp>,
    #[serde(default, with = "pacific::serde_v1_option")]
    pub modify_date: Option<Timestamp>,
    #[serde(default, deserialize_with = "null_default")]
    pub auto_refresh: bool,
    #[serde(default)]
    pub status_mappings: Option<Vec<StatusMapping>>,
}

/// A ship-from location (`GET /warehouses`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Warehouse {
    pub warehouse_id: i64,
    #[serde(default)]
    pub warehouse_name: Option<String>,
    #[serde(default)]
    pub origin_address: Option<Address>,
    #[serde(default)]
    pub return_address: Option<Address>,
    #[serde(default, with = "pacific::serde_v1_option")]
    pub create_date: Option<Timestamp>,
    #[serde(default, deserialize_with = "null_default")]
    pub is_default: bool,
}

/// A connected carrier account (`GET /carriers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Carrier {
    #[serde(default)]
    pub name: Option<String>,
    pub code: String,
    #[serde(default)]
    pub account_number: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub requires_funded_account: bool,
    #[serde(default, with = "decimal_number_option")]
    pub balance: Option<Decimal>,
    #[serde(default)]
    pub nickname: Option<String>,
    #[serde(default)]
    pub shipping_provider_id: Option<i64>,
    #[serde(default, deserialize_with = "null_default")]
    pub primary: bool,
}

/// A carrier's service (`GET /carriers/listservices`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CarrierService {
    #[serde(default)]
    pub carrier_code: Option<String>,
    pub code: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub domestic: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub international: bool,
}

/// A carrier's package type (`GET /carriers/listpackages`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CarrierPackage {
    #[serde(default)]
    pub carrier_code: Option<String>,
    pub code: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub domestic: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub international: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn an_unknown_order_status_is_kept_not_refused() {
        let s: OrderStatus = serde_json::from_str(r#""awaiting_pickup""#).unwrap();
        assert_eq!(s, OrderStatus::Other("awaiting_pickup".into()));
        assert_eq!(serde_json::to_string(&s).unwrap(), r#""awaiting_pickup""#);
        let s: OrderStatus = serde_json::from_str(r#""pending_fulfillment""#).unwrap();
        assert_eq!(s, OrderStatus::PendingFulfillment);
        assert!(s.is_open());
        assert!(!OrderStatus::Shipped.is_open());
    }

    #[test]
    fn a_createorders_refusal_of_a_shipped_or_merged_order_is_locked_and_others_are_not() {
        let result = |success: bool, id: i64, message: Option<&str>| CreateOrderResult {
            order_id: Some(id),
            order_number: Some("SO-1".into()),
            order_key: Some("k".into()),
            success,
            error_message: message.map(Into::into),
        };
        assert_eq!(result(true, 12, None).refusal(), None);
        for locked in [
            "order 12 (SO-1) is shipped and can no longer be updated",
            "order 12 (SO-1) was merged into order 13 and can no longer be updated",
            "This order Cannot Be Updated.",
        ] {
            assert_eq!(result(false, 0, Some(locked)).refusal(), Some(OrderRefusal::Locked), "{locked}");
        }
        assert_eq!(
            result(false, 0, Some("An error occurred while saving the order. Please try again.")).refusal(),
            Some(OrderRefusal::Other)
        );
        // Success without an orderId is no acceptance.
        assert_eq!(result(true, 0, None).refusal(), Some(OrderRefusal::Other));
    }

    #[test]
    fn the_documented_order_example_reads_with_pacific_times_and_exact_money() {
        let json = r#"{
            "orderId": 94113592, "orderNumber": "TEST-ORDER-API-DOCS", "orderKey": "0f6bec18-3e89-4881-83aa-f392d84f4c74",
            "orderDate": "2015-06-29T08:46:27.0000000", "createDate": "2015-07-16T14:00:34.8230000",
            "modifyDate": "2015-08-17T09:24:19.0000000", "paymentDate": "2015-06-29T08:46:27.0000000",
            "shipByDate": "2015-07-05T00:00:00.0000000", "orderStatus": "awaiting_shipment",
            "customerId": 37701499, "customerUsername": "headhoncho@whitehouse.gov", "customerEmail": "headhoncho@whitehouse.gov",
            "billTo": {"name": "The President", "company": null, "street1": null, "street2": null, "street3": null,
                       "city": null, "state": null, "postalCode": null, "country": null, "phone": null,
                       "residential": null, "addressVerified": null},
            "shipTo": {"name": "The President", "company": "US Govt", "street1": "1600 Pennsylvania Ave",
                       "street2": "Oval Office", "street3": null, "city": "Washington", "state": "DC",
                       "postalCode": "20500", "country": "US", "phone": "555-555-5555", "residential": false,
                       "addressVerified": "Address validation warning"},
            "items": [{"orderItemId": 128836912, "lineItemKey": "vd08-MSLbtx", "sku": "ABC123",
                       "name": "Test item #1", "imageUrl": null,
                       "weight": {"value": 24, "units": "ounces", "WeightUnits": 1}, "quantity": 2,
                       "unitPrice": 99.99, "taxAmount": 2.5, "shippingAmount": 5, "warehouseLocation": "Aisle 1, Bin 7",
                       "options": [{"name": "Size", "value": "Large"}], "productId": 7239919, "fulfillmentSku": null,
                       "adjustment": false, "upc": null, "createDate": "2015-07-16T14:00:34.823",
                       "modifyDate": "2015-07-16T14:00:34.823"},
                      {"orderItemId": 128836913, "lineItemKey": null, "sku": "DISCOUNT CODE", "name": "10% OFF",
                       "imageUrl": null, "weight": {"value": 0, "units": "ounces", "WeightUnits": 1}, "quantity": 1,
                       "unitPrice": -20.55, "taxAmount": null, "shippingAmount": null, "warehouseLocation": null,
                       "options": null, "productId": null, "fulfillmentSku": null, "adjustment": true, "upc": null,
                       "createDate": "2015-07-16T14:00:34.823", "modifyDate": "2015-07-16T14:00:34.823"}],
            "orderTotal": 194.43, "amountPaid": 218.73, "taxAmount": 5, "shippingAmount": 10,
            "customerNotes": "Please ship as soon as possible!", "internalNotes": "Customer called and would like to upgrade shipping",
            "gift": true, "giftMessage": "Thank you!", "paymentMethod": "Credit Card", "requestedShippingService": "Priority Mail",
            "carrierCode": "fedex", "serviceCode": "fedex_2day", "packageCode": "package", "confirmation": "delivery",
            "shipDate": "2015-07-02", "holdUntilDate": null,
            "weight": {"value": 48, "units": "ounces", "WeightUnits": 1},
            "dimensions": {"units": "inches", "length": 7, "width": 5, "height": 6},
            "insuranceOptions": {"provider": "carrier", "insureShipment": true, "insuredValue": 200},
            "internationalOptions": {"contents": null, "customsItems": null, "nonDelivery": null},
            "advancedOptions": {"warehouseId": 98765, "nonMachinable": false, "saturdayDelivery": false,
                "containsAlcohol": false, "mergedOrSplit": false, "mergedIds": [], "parentId": null, "storeId": 12345,
                "customField1": "Custom data that you can add to an order. See Custom Field #2 & #3 for more info!",
                "customField2": "Per UI settings, this information can appear on some carrier's shipping labels. See link below",
                "customField3": "https://help.shipstation.com/hc/en-us/articles/206639957", "source": "Webstore",
                "billToParty": null, "billToAccount": null, "billToPostalCode": null, "billToCountryCode": null},
            "tagIds": null, "userId": null, "externallyFulfilled": false, "externallyFulfilledBy": null
        }"#;
        let order: Order = serde_json::from_str(json).unwrap();
        assert_eq!(
            order.order_date,
            Some("2015-06-29T15:46:27Z".parse().unwrap())
        );
        assert_eq!(order.ship_date, Some(jiff::civil::date(2015, 7, 2)));
        assert_eq!(
            order.order_total,
            Some(Decimal::from_str("194.43").unwrap())
        );
        assert_eq!(
            order.items[1].unit_price,
            Some(Decimal::from_str("-20.55").unwrap())
        );
        assert!(order.items[1].adjustment);
        assert!(order.items[1].options.is_empty());
        assert_eq!(
            order.items[0]
                .weight
                .as_ref()
                .unwrap()
                .to_core()
                .unwrap()
                .to_decimal_places(shipledger_core::WeightUnit::Ounces, 2),
            Decimal::from(24)
        );
        assert_eq!(
            order.advanced_options.as_ref().unwrap().store_id,
            Some(12345)
        );

        // Round trip: what we send back is what we read.
        let again: Order = serde_json::from_str(&serde_json::to_string(&order).unwrap()).unwrap();
        assert_eq!(again, order);
    }

    #[test]
    fn the_webhook_list_is_pascal_case_inside_a_wrapper() {
        let json = r#"{"webhooks":[{"IsLabelAPIHook":false,"WebHookID":123,"SellerID":100000,"StoreID":12345,
            "HookType":"ITEM_ORDER_NOTIFY","MessageFormat":"Json","Url":"https://example.com/hook","Name":"My hook",
            "BulkCopyBatchID":null,"BulkCopyRecordID":null,"Active":true,"WebhookLogs":[],"Seller":null,"Store":null}]}"#;
        let list: WebhookList = serde_json::from_str(json).unwrap();
        assert_eq!(list.webhooks[0].webhook_id, 123);
        assert_eq!(list.webhooks[0].hook_type, WebhookEvent::ItemOrderNotify);
        assert!(list.webhooks[0].active);
    }

    #[test]
    fn a_list_page_reads_whichever_array_key_it_has() {
        let page: Page<Fulfillment> = serde_json::from_str(
            r#"{"fulfillments":[{"fulfillmentId":33974374,"orderId":191759016,"orderNumber":"101",
                "carrierCode":"USPS","voided":false,"fulfillmentFee":0.1}],"total":1,"page":1,"pages":0}"#,
        )
        .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(
            page.items[0].fulfillment_fee,
            Some(Decimal::from_str("0.1").unwrap())
        );
        assert_eq!((page.total, page.page, page.pages), (1, 1, 0));
    }
}
