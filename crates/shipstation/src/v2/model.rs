//! ShipStation v2 wire models (`api.shipstation.com/v2`, ShipEngine-based):
//! snake_case, `se-` string ids, ISO-8601 UTC times, and money as
//! `{currency, amount}` with a currency code in either case.
//!
//! The carrier-acceptance rules live here ([`TrackingStatus::is_carrier_acceptance`],
//! [`is_physical_detail_code`], [`TrackingInfo::first_carrier_acceptance`]): the
//! difference between "a label exists" and "the carrier has the parcel".

use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shipledger_core::Currency;
use shipledger_core::json::{decimal_number, decimal_number_option};

use crate::v1::model::string_enum;
use crate::wire::{date_option, null_default, string_or_int_option, utc_option};

/// `se-123` → `123`: v2 label ids are `se-` plus the v1 `shipmentId`, v2 shipment ids
/// `se-` plus the v1 `orderId`. `None` for anything else.
pub fn label_id_to_shipment_id(label_id: &str) -> Option<i64> {
    let digits = label_id.strip_prefix("se-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `123` → `se-123` (the inverse of [`label_id_to_shipment_id`]).
pub fn shipment_id_to_label_id(shipment_id: i64) -> String {
    format!("se-{shipment_id}")
}

/// v2 money: `{"currency": "usd", "amount": 12.0}`. The currency is read
/// case-insensitively; the amount keeps the JSON number's exact digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub currency: Currency,
    #[serde(with = "decimal_number")]
    pub amount: Decimal,
}

impl Money {
    /// The domain amount in minor units, or why not (more decimals than the currency has).
    pub fn to_core(
        &self,
        rounding: shipledger_core::Rounding,
    ) -> Result<shipledger_core::Money, shipledger_core::MoneyError> {
        shipledger_core::Money::from_decimal(self.amount, self.currency, rounding)
    }
}

/// `{value, unit}` with `unit` `pound|ounce|gram|kilogram`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weight {
    #[serde(with = "decimal_number")]
    pub value: Decimal,
    pub unit: String,
}

/// `{length, width, height, unit}` with `unit` `inch|centimeter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dimensions {
    #[serde(default, with = "decimal_number_option")]
    pub length: Option<Decimal>,
    #[serde(default, with = "decimal_number_option")]
    pub width: Option<Decimal>,
    #[serde(default, with = "decimal_number_option")]
    pub height: Option<Decimal>,
    #[serde(default)]
    pub unit: Option<String>,
}

string_enum! {
    /// A label's `status`.
    LabelStatus {
        Processing => "processing",
        Completed => "completed",
        Error => "error",
        Voided => "voided",
    }
}

/// One package of a label, with its own tracking number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelPackage {
    #[serde(default, with = "string_or_int_option")]
    pub package_id: Option<String>,
    #[serde(default)]
    pub package_code: Option<String>,
    #[serde(default)]
    pub tracking_number: Option<String>,
    #[serde(default)]
    pub weight: Option<Weight>,
    #[serde(default)]
    pub dimensions: Option<Dimensions>,
    #[serde(default)]
    pub external_package_id: Option<String>,
    #[serde(default)]
    pub sequence: Option<i64>,
}

/// `label_download`: where the label file is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelDownload {
    #[serde(default)]
    pub href: Option<String>,
    #[serde(default)]
    pub pdf: Option<String>,
    #[serde(default)]
    pub png: Option<String>,
    #[serde(default)]
    pub zpl: Option<String>,
}

/// A v2 label (= a v1 shipment). `label_id` is `se-<v1 shipmentId>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub label_id: String,
    #[serde(default)]
    pub status: Option<LabelStatus>,
    #[serde(default)]
    pub shipment_id: Option<String>,
    #[serde(default)]
    pub external_shipment_id: Option<String>,
    #[serde(default)]
    pub external_order_id: Option<String>,
    #[serde(default, with = "date_option")]
    pub ship_date: Option<Date>,
    #[serde(default, with = "utc_option")]
    pub created_at: Option<Timestamp>,
    #[serde(default)]
    pub shipment_cost: Option<Money>,
    #[serde(default)]
    pub insurance_cost: Option<Money>,
    #[serde(default)]
    pub tracking_number: Option<String>,
    #[serde(default)]
    pub tracking_url: Option<String>,
    /// Coarse: `unknown|in_transit|error|delivered`. Use [`TrackingInfo`] for scans.
    #[serde(default)]
    pub tracking_status: Option<String>,
    #[serde(default)]
    pub trackable: Option<bool>,
    #[serde(default, deserialize_with = "null_default")]
    pub is_return_label: bool,
    #[serde(default)]
    pub is_international: Option<bool>,
    #[serde(default, deserialize_with = "null_default")]
    pub test_label: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub voided: bool,
    #[serde(default, with = "utc_option")]
    pub voided_at: Option<Timestamp>,
    #[serde(default)]
    pub carrier_id: Option<String>,
    #[serde(default)]
    pub carrier_code: Option<String>,
    #[serde(default)]
    pub service_code: Option<String>,
    #[serde(default)]
    pub package_code: Option<String>,
    #[serde(default)]
    pub confirmation: Option<String>,
    /// `carrier_default|on_creation|on_carrier_acceptance`.
    #[serde(default)]
    pub charge_event: Option<String>,
    #[serde(default)]
    pub batch_id: Option<String>,
    #[serde(default)]
    pub label_format: Option<String>,
    #[serde(default)]
    pub label_layout: Option<String>,
    #[serde(default)]
    pub label_download: Option<LabelDownload>,
    #[serde(default, deserialize_with = "null_default")]
    pub packages: Vec<LabelPackage>,
}

impl Label {
    /// The v1 `shipmentId` this label is.
    pub fn v1_shipment_id(&self) -> Option<i64> {
        label_id_to_shipment_id(&self.label_id)
    }
}

/// `{href}`; an empty `{}` reads as `href: None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Link {
    #[serde(default)]
    pub href: Option<String>,
}

/// `links` of a v2 list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Links {
    #[serde(default)]
    pub first: Option<Link>,
    #[serde(default)]
    pub last: Option<Link>,
    #[serde(default)]
    pub prev: Option<Link>,
    #[serde(default)]
    pub next: Option<Link>,
}

impl Links {
    /// The next page's URL, if there is one.
    pub fn next_href(&self) -> Option<&str> {
        self.next
            .as_ref()?
            .href
            .as_deref()
            .filter(|h| !h.is_empty())
    }
}

/// `GET /v2/labels`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelList {
    #[serde(default, deserialize_with = "null_default")]
    pub labels: Vec<Label>,
    #[serde(default, deserialize_with = "null_default")]
    pub total: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub page: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub pages: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub links: Links,
}

string_enum! {
    /// The two-letter tracking `status_code`. Unknown codes are kept, not refused.
    TrackingStatus {
        /// Unknown.
        Unknown => "UN",
        /// Accepted: first physical scan or pickup.
        Accepted => "AC",
        /// In transit.
        InTransit => "IT",
        /// Delivered.
        Delivered => "DE",
        /// Exception.
        Exception => "EX",
        /// Delivery attempted.
        DeliveryAttempt => "AT",
        /// Not yet in system: a label exists, the carrier has no parcel.
        NotYetInSystem => "NY",
        /// Delivered to a service point.
        ServicePoint => "SP",
    }
}

impl TrackingStatus {
    /// Does this status prove the carrier physically has the parcel? `AC`, `IT`,
    /// `AT`, `DE` and `SP` do; `NY`, `UN`, `EX` and unknown codes do not. Many
    /// carriers skip `AC` and go straight from `NY` to `IT`, so do not wait for `AC`.
    pub fn is_carrier_acceptance(&self) -> bool {
        matches!(
            self,
            TrackingStatus::Accepted
                | TrackingStatus::InTransit
                | TrackingStatus::DeliveryAttempt
                | TrackingStatus::Delivered
                | TrackingStatus::ServicePoint
        )
    }
}

/// Detail codes that mean the carrier has only the electronic manifest, not the
/// parcel. They veto acceptance even when the status code looks further along.
pub const PRE_ACCEPTANCE_DETAIL_CODES: [&str; 5] = [
    "ELEC_ADVICE_RECD_BY_CARRIER",
    "AWAITING_DESPATCH",
    "COLLECTION_REQUESTED",
    "NOT_YET_RECEIVED_BY_CARRIER",
    "COLLECTION_FAILED",
];

/// Does this `status_detail_code` mean a physical scan? `COLLECTION_MADE`,
/// `DESPATCHED`, `RECEIVED_BY_CARRIER`, `RECD_BY_CARRIER_NO_ELEC_ADVICE`,
/// `IN_TRANSIT`, `HUB_SCAN_*`, `RECEIVED_LOCAL_DELIVERY_DEPOT`, `OUT_FOR_DELIVERY`
/// and `DELIVERED*` do; the electronic-advice codes
/// ([`PRE_ACCEPTANCE_DETAIL_CODES`]) and anything unknown do not.
pub fn is_physical_detail_code(code: &str) -> bool {
    let code = code.trim().to_ascii_uppercase();
    matches!(
        code.as_str(),
        "COLLECTION_MADE"
            | "DESPATCHED"
            | "RECEIVED_BY_CARRIER"
            | "RECD_BY_CARRIER_NO_ELEC_ADVICE"
            | "IN_TRANSIT"
            | "RECEIVED_LOCAL_DELIVERY_DEPOT"
            | "OUT_FOR_DELIVERY"
    ) || code.starts_with("HUB_SCAN_")
        || code.starts_with("DELIVERED")
}

fn is_pre_acceptance_detail_code(code: &str) -> bool {
    let code = code.trim().to_ascii_uppercase();
    PRE_ACCEPTANCE_DETAIL_CODES.contains(&code.as_str())
}

/// The acceptance rule for one status/detail pair: a pre-acceptance detail code
/// vetoes; otherwise an accepting status or a physical detail code accepts.
pub fn is_carrier_acceptance(status: Option<&TrackingStatus>, detail_code: Option<&str>) -> bool {
    if detail_code.is_some_and(is_pre_acceptance_detail_code) {
        return false;
    }
    status.is_some_and(TrackingStatus::is_carrier_acceptance)
        || detail_code.is_some_and(is_physical_detail_code)
}

/// One tracking event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackingEvent {
    /// When it happened, UTC. Use this as the scan time.
    #[serde(default, with = "utc_option")]
    pub occurred_at: Option<Timestamp>,
    /// The carrier's local wall-clock time, without an offset: kept as sent. See
    /// [`TrackingEvent::carrier_local_time`].
    #[serde(default)]
    pub carrier_occurred_at: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub city_locality: Option<String>,
    #[serde(default)]
    pub state_province: Option<String>,
    #[serde(default)]
    pub postal_code: Option<String>,
    #[serde(default)]
    pub country_code: Option<String>,
    #[serde(default)]
    pub company_name: Option<String>,
    #[serde(default)]
    pub signer: Option<String>,
    #[serde(default)]
    pub event_code: Option<String>,
    #[serde(default)]
    pub status_code: Option<TrackingStatus>,
    #[serde(default)]
    pub status_detail_code: Option<String>,
    #[serde(default)]
    pub status_description: Option<String>,
    #[serde(default)]
    pub status_detail_description: Option<String>,
    #[serde(default)]
    pub carrier_status_code: Option<String>,
    #[serde(default)]
    pub carrier_status_description: Option<String>,
    #[serde(default)]
    pub carrier_detail_code: Option<String>,
    /// Coordinates (not money: a float is fine).
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
    #[serde(default)]
    pub proof_of_delivery_url: Option<String>,
}

impl TrackingEvent {
    /// Does this event prove the carrier physically has the parcel? See
    /// [`is_carrier_acceptance`].
    pub fn is_carrier_acceptance(&self) -> bool {
        is_carrier_acceptance(
            self.status_code.as_ref(),
            self.status_detail_code.as_deref(),
        )
    }

    /// `carrier_occurred_at` as a civil (zone-less) date-time, if it parses.
    pub fn carrier_local_time(&self) -> Option<jiff::civil::DateTime> {
        let text = self.carrier_occurred_at.as_deref()?.trim();
        let text = text.strip_suffix('Z').unwrap_or(text);
        text.parse().ok()
    }
}

/// `GET /v2/labels/{id}/track`, `GET /v2/tracking`, and the `data` of track webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackingInfo {
    #[serde(default)]
    pub tracking_number: Option<String>,
    #[serde(default)]
    pub tracking_url: Option<String>,
    #[serde(default)]
    pub status_code: Option<TrackingStatus>,
    #[serde(default)]
    pub status_description: Option<String>,
    #[serde(default)]
    pub status_detail_code: Option<String>,
    #[serde(default)]
    pub status_detail_description: Option<String>,
    #[serde(default)]
    pub carrier_code: Option<String>,
    /// An integer here, a string elsewhere: kept as text.
    #[serde(default, with = "string_or_int_option")]
    pub carrier_id: Option<String>,
    #[serde(default)]
    pub carrier_status_code: Option<String>,
    #[serde(default)]
    pub carrier_detail_code: Option<String>,
    #[serde(default)]
    pub carrier_status_description: Option<String>,
    #[serde(default, with = "utc_option")]
    pub ship_date: Option<Timestamp>,
    #[serde(default, with = "utc_option")]
    pub estimated_delivery_date: Option<Timestamp>,
    #[serde(default, with = "utc_option")]
    pub actual_delivery_date: Option<Timestamp>,
    #[serde(default)]
    pub exception_description: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub events: Vec<TrackingEvent>,
}

impl TrackingInfo {
    /// The earliest event (by `occurred_at`) that proves the carrier has the parcel.
    pub fn first_carrier_acceptance(&self) -> Option<&TrackingEvent> {
        self.events
            .iter()
            .filter(|e| e.is_carrier_acceptance())
            .min_by_key(|e| e.occurred_at.unwrap_or(Timestamp::MAX))
    }

    /// Has the carrier physically accepted the parcel, by any event or by the summary?
    pub fn is_carrier_accepted(&self) -> bool {
        self.first_carrier_acceptance().is_some()
            || is_carrier_acceptance(
                self.status_code.as_ref(),
                self.status_detail_code.as_deref(),
            )
    }
}

/// `{key, value}` header of a v2 webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookHeader {
    pub key: String,
    pub value: String,
}

/// A v2 webhook subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub webhook_id: String,
    #[serde(default)]
    pub url: Option<String>,
    /// `track`, `track_event_v2`, `batch`, `label_created_v2`, ...
    pub event: String,
    #[serde(default, deserialize_with = "null_default")]
    pub headers: Vec<WebhookHeader>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, with = "string_or_int_option")]
    pub store_id: Option<String>,
}

/// `POST /v2/environment/webhooks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateWebhook {
    pub event: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<WebhookHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<i64>,
}

/// What ShipStation POSTs to a v2 webhook URL. Verify the signature over the raw
/// body first ([`verify_v2_webhook`](crate::verify_v2_webhook)).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookPayload {
    pub resource_url: String,
    /// `API_TRACK`, `TRACK_EVENT_V2`, `BATCH_PROCESSED_V2`, ...
    pub resource_type: String,
    /// The full object for fat events (tracking), kept raw so numbers stay exact.
    #[serde(default)]
    pub data: Option<Box<RawValue>>,
}

impl PartialEq for WebhookPayload {
    fn eq(&self, other: &Self) -> bool {
        self.resource_url == other.resource_url
            && self.resource_type == other.resource_type
            && self.data.as_ref().map(|d| d.get()) == other.data.as_ref().map(|d| d.get())
    }
}

impl WebhookPayload {
    /// Is this a tracking event (`API_TRACK` or `TRACK_EVENT_V2`)?
    pub fn is_tracking(&self) -> bool {
        matches!(
            self.resource_type.to_ascii_uppercase().as_str(),
            "API_TRACK" | "TRACK_EVENT_V2" | "TRACK"
        )
    }

    /// `data` read as `T` (e.g. [`TrackingInfo`]); `None` when there is no data.
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> Option<Result<T, serde_json::Error>> {
        self.data
            .as_ref()
            .map(|raw| serde_json::from_str(raw.get()))
    }
}

/// One stock record of `GET /v2/inventory`. `available = on_hand - allocated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryItem {
    pub sku: String,
    #[serde(default, deserialize_with = "null_default")]
    pub on_hand: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub allocated: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub available: i64,
    #[serde(default)]
    pub average_cost: Option<Money>,
    #[serde(default, with = "string_or_int_option")]
    pub inventory_warehouse_id: Option<String>,
    #[serde(default, with = "string_or_int_option")]
    pub inventory_location_id: Option<String>,
}

/// `GET /v2/inventory` (cursor-paged through `links.next`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryList {
    #[serde(default, deserialize_with = "null_default")]
    pub inventory: Vec<InventoryItem>,
    #[serde(default)]
    pub total: Option<i64>,
    #[serde(default)]
    pub page: Option<i64>,
    #[serde(default)]
    pub pages: Option<i64>,
    #[serde(default, deserialize_with = "null_default")]
    pub links: Links,
}

/// One entry of a v2 error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// `carrier|order_source|shipstation`: tells a carrier's limit from ShipStation's.
    #[serde(default)]
    pub error_source: Option<String>,
    #[serde(default)]
    pub error_type: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// A v2 error body: `{request_id, errors: [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub errors: Vec<ApiError>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn label_ids_and_v1_shipment_ids_convert_both_ways() {
        assert_eq!(label_id_to_shipment_id("se-123"), Some(123));
        assert_eq!(shipment_id_to_label_id(123), "se-123");
        assert_eq!(label_id_to_shipment_id("se-"), None);
        assert_eq!(label_id_to_shipment_id("123"), None);
        assert_eq!(label_id_to_shipment_id("se-12a"), None);
        assert_eq!(label_id_to_shipment_id("se--1"), None);
    }

    #[test]
    fn lowercase_currency_and_exact_amounts_are_read() {
        let m: Money = serde_json::from_str(r#"{"currency":"usd","amount":12.345}"#).unwrap();
        assert_eq!(m.currency, Currency::USD);
        assert_eq!(m.amount, Decimal::from_str("12.345").unwrap());
        let m: Money = serde_json::from_str(r#"{"currency":"Gbp","amount":0.1}"#).unwrap();
        assert_eq!(m.currency, Currency::GBP);
        assert_eq!(m.amount, Decimal::from_str("0.1").unwrap());
    }

    #[test]
    fn carrier_acceptance_needs_a_physical_scan() {
        use TrackingStatus::*;
        for s in [
            Accepted,
            InTransit,
            DeliveryAttempt,
            Delivered,
            ServicePoint,
        ] {
            assert!(s.is_carrier_acceptance(), "{s}");
        }
        for s in [
            NotYetInSystem,
            Unknown,
            Exception,
            TrackingStatus::Other("ZZ".into()),
        ] {
            assert!(!s.is_carrier_acceptance(), "{s}");
        }
        for code in [
            "COLLECTION_MADE",
            "DESPATCHED",
            "RECEIVED_BY_CARRIER",
            "RECD_BY_CARRIER_NO_ELEC_ADVICE",
            "IN_TRANSIT",
            "HUB_SCAN_OUT",
            "OUT_FOR_DELIVERY",
            "DELIVERED_TO_NEIGHBOUR",
        ] {
            assert!(is_physical_detail_code(code), "{code}");
            assert!(
                is_carrier_acceptance(Some(&NotYetInSystem), Some(code)),
                "{code}"
            );
        }
        for code in [
            "ELEC_ADVICE_RECD_BY_CARRIER",
            "AWAITING_DESPATCH",
            "COLLECTION_REQUESTED",
            "NOT_YET_RECEIVED_BY_CARRIER",
        ] {
            assert!(!is_physical_detail_code(code), "{code}");
            assert!(
                !is_carrier_acceptance(Some(&Accepted), Some(code)),
                "{code} must veto"
            );
        }
    }

    #[test]
    fn the_first_acceptance_is_the_earliest_physical_event() {
        let info: TrackingInfo = serde_json::from_str(
            r#"{"tracking_number":"1Z","status_code":"IT","carrier_id":12,"events":[
                {"occurred_at":"2024-03-02T10:00:00Z","carrier_occurred_at":"2024-03-02T05:00:00","status_code":"IT","status_detail_code":"IN_TRANSIT"},
                {"occurred_at":"2024-03-01T18:00:00Z","carrier_occurred_at":"2024-03-01T13:00:00","status_code":"AC","status_detail_code":"COLLECTION_MADE"},
                {"occurred_at":"2024-03-01T09:00:00Z","status_code":"NY","status_detail_code":"ELEC_ADVICE_RECD_BY_CARRIER"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(info.carrier_id.as_deref(), Some("12"));
        let first = info.first_carrier_acceptance().unwrap();
        assert_eq!(
            first.occurred_at,
            Some("2024-03-01T18:00:00Z".parse().unwrap())
        );
        assert_eq!(
            first.carrier_local_time(),
            Some(jiff::civil::datetime(2024, 3, 1, 13, 0, 0, 0))
        );
        assert!(info.is_carrier_accepted());
    }

    #[test]
    fn a_track_webhook_carries_its_tracking_object() {
        let payload: WebhookPayload = serde_json::from_str(
            r#"{"resource_url":"https://api.shipstation.com/v2/labels/se-1/track","resource_type":"TRACK_EVENT_V2",
                "data":{"tracking_number":"1Z","status_code":"NY","events":[]}}"#,
        )
        .unwrap();
        assert!(payload.is_tracking());
        let info: TrackingInfo = payload.data_as().unwrap().unwrap();
        assert_eq!(info.status_code, Some(TrackingStatus::NotYetInSystem));
        assert!(!info.is_carrier_accepted());
    }
}
