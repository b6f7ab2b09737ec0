//! Orders as the ERP holds them: the snapshot shipledger reads, checks and pushes.
//!
//! An [`ErpOrder`] is what an ERP connector returns for one sales order (or one
//! fulfilment request where the ERP splits an order): its lines with SKUs, quantities
//! and per-unit weights, its ship-to [`Address`], its currency and the
//! [`PaymentEvidence`] that says whether — and on which document — payment was
//! captured. shipledger never invents any of it: a missing weight stays missing and
//! holds the order.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::weight::Weight;

/// A stock-keeping unit: trimmed, non-empty, at most 100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

impl Sku {
    pub fn parse(raw: &str) -> Result<Sku, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("a SKU cannot be empty".into());
        }
        if s.chars().count() > 100 {
            return Err(format!("SKU '{s}' is longer than 100 characters"));
        }
        Ok(Sku(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sku {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Sku::parse(&s)
    }
}

impl From<Sku> for String {
    fn from(s: Sku) -> String {
        s.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A postal address as the ERP holds it. Fields are optional here: whether the
/// address is complete enough to ship to is the release gate's question.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub name: Option<String>,
    pub company: Option<String>,
    pub street1: Option<String>,
    pub street2: Option<String>,
    pub city: Option<String>,
    /// State, county or province.
    pub region: Option<String>,
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// Where the ERP says the money stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    Unpaid,
    /// Authorised (card hold) but not captured: not money yet.
    Authorised,
    Captured,
    Refunded,
}

impl PaymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::Unpaid => "unpaid",
            PaymentState::Authorised => "authorised",
            PaymentState::Captured => "captured",
            PaymentState::Refunded => "refunded",
        }
    }
}

/// Proof of payment, recorded on the order when it is released: which document or
/// field said so, for how much, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentEvidence {
    pub state: PaymentState,
    /// The ERP document or field the state was read from, e.g. `payment:PAY-1001` or
    /// `sale.sale.state=processing`.
    pub source: String,
    /// Amount captured (or authorised) in the order's currency.
    pub amount: Money,
    #[serde(with = "crate::time::serde_millis_option", default)]
    pub at: Option<Timestamp>,
}

/// The ERP's own lifecycle for an order, as far as shipping cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErpOrderStatus {
    /// Confirmed and waiting to ship.
    Open,
    /// Held in the ERP (credit check, fraud review, customer request).
    OnHold,
    Cancelled,
}

/// One order line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpLine {
    /// The ERP's line id; becomes ShipStation's `lineItemKey`.
    pub line_id: String,
    /// `None` when the ERP line carries no SKU (the gate holds such a line).
    pub sku: Option<String>,
    pub name: String,
    pub quantity: u32,
    pub unit_price: Money,
    /// Weight of one unit as the line carries it; the product master fills a gap.
    pub unit_weight: Option<Weight>,
    /// False for discounts, gift cards, services: nothing to pack.
    pub physical: bool,
}

/// A sales order (or a fulfilment request of one) as the ERP holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpOrder {
    /// The ERP's id of the order or fulfilment request; stable forever.
    pub erp_id: String,
    /// The number people see (`SO-1001`).
    pub number: String,
    pub status: ErpOrderStatus,
    /// Why the ERP holds the order or no longer wants it shipped, in the connector's
    /// words when the ERP says (a hold reason; "its shipment was cancelled and its
    /// moves ignored in Tryton"); `None` for an open order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// The order's currency code as the ERP gives it (checked by the gate).
    pub currency: String,
    #[serde(with = "crate::time::serde_millis")]
    pub placed_at: Timestamp,
    /// When the ERP last changed the order (drives the watermark).
    #[serde(with = "crate::time::serde_millis")]
    pub updated_at: Timestamp,
    pub customer_email: Option<String>,
    pub ship_to: Address,
    pub bill_to: Option<Address>,
    pub lines: Vec<ErpLine>,
    pub shipping_paid: Option<Money>,
    pub tax_paid: Option<Money>,
    pub payment: PaymentEvidence,
    /// The service the customer chose, if the ERP records one.
    pub requested_service: Option<String>,
    /// The customer's own reference for the order (their PO number, say), if the ERP
    /// records one; the warehouse sees it in ShipStation. Absent in snapshots stored
    /// before it existed.
    #[serde(default)]
    pub customer_reference: Option<String>,
}

impl ErpOrder {
    /// Physical lines: what ShipStation has to pack.
    pub fn physical_lines(&self) -> impl Iterator<Item = &ErpLine> {
        self.lines.iter().filter(|l| l.physical)
    }
}

/// What the ERP's product master says about a SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub sku: String,
    pub name: String,
    /// Weight of one unit; `None` when the master has no weight.
    pub unit_weight: Option<Weight>,
    pub active: bool,
}

/// The deterministic ShipStation `orderKey` of an ERP order on a connection:
/// `shipledger:{connection}:{erp_id}`. The same order always gets the same key, so
/// a retried `createorders` updates instead of duplicating.
pub fn order_key(connection: &str, erp_id: &str) -> String {
    format!("shipledger:{connection}:{erp_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_key_is_the_same_every_time_and_differs_across_connections() {
        assert_eq!(order_key("acme-uk", "SO-1"), order_key("acme-uk", "SO-1"));
        assert_ne!(order_key("acme-uk", "SO-1"), order_key("acme-us", "SO-1"));
    }

    #[test]
    fn a_snapshot_stored_before_the_customer_reference_existed_still_reads() {
        let order = ErpOrder {
            erp_id: "SO-1".into(),
            number: "SO-1".into(),
            status: ErpOrderStatus::Open,
            status_reason: None,
            currency: "GBP".into(),
            placed_at: Timestamp::from_second(1_790_000_000).unwrap(),
            updated_at: Timestamp::from_second(1_790_000_000).unwrap(),
            customer_email: None,
            ship_to: Address::default(),
            bill_to: None,
            lines: Vec::new(),
            shipping_paid: None,
            tax_paid: None,
            payment: PaymentEvidence {
                state: PaymentState::Unpaid,
                source: "none".into(),
                amount: Money::from_minor(0, crate::money::Currency::GBP),
                at: None,
            },
            requested_service: None,
            customer_reference: Some("PO-778".into()),
        };
        let mut stored = serde_json::to_value(&order).unwrap();
        assert_eq!(stored["customer_reference"], "PO-778");
        stored.as_object_mut().unwrap().remove("customer_reference");
        let read: ErpOrder = serde_json::from_value(stored).unwrap();
        assert_eq!(read, ErpOrder { customer_reference: None, ..order });
    }

    #[test]
    fn a_blank_sku_is_refused() {
        assert!(Sku::parse("  ").is_err());
        assert_eq!(Sku::parse(" MUG-1 ").unwrap().as_str(), "MUG-1");
    }
}
