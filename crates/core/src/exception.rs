//! Exceptions: every mismatch or refusal shipledger finds becomes one, with a kind,
//! an owner (finance or ops) and a severity, so it lands on somebody's desk instead of
//! in a log. The kind decides the owner; nobody has to triage.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Who has to act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    Ops,
    Finance,
    /// The people who run shipledger (configuration, credentials, security).
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

macro_rules! kinds {
    ($($variant:ident => $code:literal, $owner:ident, $severity:ident, $what:literal;)*) => {
        /// What went wrong, as a stable code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ExceptionKind {
            $($variant,)*
        }

        impl ExceptionKind {
            pub const ALL: &'static [ExceptionKind] = &[$(ExceptionKind::$variant,)*];

            /// The stable code (`held_missing_weight`), used in the API, the CLI and reports.
            pub fn code(self) -> &'static str {
                match self { $(ExceptionKind::$variant => $code,)* }
            }

            pub fn owner(self) -> Owner {
                match self { $(ExceptionKind::$variant => Owner::$owner,)* }
            }

            pub fn severity(self) -> Severity {
                match self { $(ExceptionKind::$variant => Severity::$severity,)* }
            }

            /// One sentence for people: what it means.
            pub fn meaning(self) -> &'static str {
                match self { $(ExceptionKind::$variant => $what,)* }
            }

            pub fn parse(code: &str) -> Option<ExceptionKind> {
                match code { $($code => Some(ExceptionKind::$variant),)* _ => None }
            }
        }
    };
}

kinds! {
    HeldUnpaid => "held_unpaid", Finance, Warning,
        "payment is not captured (unpaid, authorised only or refunded); the order waits";
    HeldMissingWeight => "held_missing_weight", Ops, Error,
        "a physical line has no positive weight on the line or in the product master";
    HeldUnknownSku => "held_unknown_sku", Ops, Error,
        "a line's SKU is missing or not in the product master";
    HeldIncompleteAddress => "held_incomplete_address", Ops, Error,
        "the ship-to address lacks a field a carrier needs";
    HeldUnsupportedCurrency => "held_unsupported_currency", Finance, Error,
        "the order's currency is not an ISO 4217 code this connection accepts";
    HeldNothingToShip => "held_nothing_to_ship", Ops, Warning,
        "the order has no physical line";
    PushRejected => "push_rejected", Ops, Error,
        "ShipStation refused the order; the message says why";
    PushUnverified => "push_unverified", Ops, Error,
        "ShipStation accepted the order but it could not be read back";
    OrderWithdrawn => "order_withdrawn", Ops, Warning,
        "the ERP no longer wants a released order shipped: it is cancelled in ShipStation, or the labels already made are named to void";
    ChangeAfterShipment => "change_after_shipment", Ops, Warning,
        "the ERP changed an order ShipStation has already shipped or cancelled";
    OverShipment => "over_shipment", Ops, Error,
        "live shipments carry more of a line than the ERP order has";
    UnknownShipmentLine => "unknown_shipment_line", Ops, Error,
        "a shipment item names no line of its ERP order";
    OrphanShipment => "orphan_shipment", Ops, Warning,
        "a ShipStation shipment belongs to no order shipledger pushed";
    VoidAfterWriteBack => "void_after_write_back", Ops, Error,
        "a label was voided after its ERP fulfilment was written, and the ERP could not reverse it";
    LabelCostMissing => "label_cost_missing", Finance, Warning,
        "a live label came without its postage cost, so the cost ledger has no entry for it; it closes by itself when a later read of the label carries the cost";
    FxRateMissing => "fx_rate_missing", Finance, Error,
        "no configured source has a usable rate for a currency pair on a date, so cost entries in that currency wait unconverted and their batch is not posted; add the rate in the ERP, the rates file or the config's fixed rates, and it closes by itself once they convert";
    CostBatchFailed => "cost_batch_failed", Finance, Error,
        "a due cost batch could not become its journal (an account not configured) or the ERP did not post it as planned; fix what the exception names and it posts, then this closes";
    CostsNoOpenPeriod => "costs_no_open_period", Finance, Error,
        "cost entries belong to windows whose ERP periods are closed or locked, and no later open period exists to carry them into; open the next period (or fiscal year) in the ERP and they post there";
    ScanOverdue => "scan_overdue", Ops, Warning,
        "a label has had no carrier scan for longer than the policy allows";
    AwaitingShipmentTooLong => "awaiting_shipment_too_long", Ops, Warning,
        "an order has waited in ShipStation for a label longer than the policy allows";
    TrackingWriteBackFailed => "tracking_write_back_failed", Ops, Error,
        "the ERP refused or did not show a fulfilment with its tracking";
    WebhookForeignHost => "webhook_foreign_host", Admin, Critical,
        "a webhook pointed at, or its fetch was redirected to, a host that is not the configured ShipStation; nothing was fetched from it";
    WebhookSignatureInvalid => "webhook_signature_invalid", Admin, Error,
        "a v2 webhook's signature or timestamp did not verify; it was refused";
    JobKindUnknown => "job_kind_unknown", Admin, Error,
        "the store holds pending jobs of a kind this version of shipledger does not know; they are not run";
    IntegrationFault => "integration_fault", Admin, Error,
        "work was given up because a system refused shipledger's credentials or configuration, or answered in a way shipledger cannot read; an admin must fix the connection";
    JobPayloadUnreadable => "job_payload_unreadable", Admin, Error,
        "jobs whose payload does not have their kind's shape were finished dead, not run; the rest of their kind still run";
    PaidNotInShipStation => "paid_not_in_shipstation", Ops, Error,
        "the reconciler found a paid, open ERP order with something to ship that is not in ShipStation and was not held by the gate";
    UnknownShipStationOrder => "unknown_shipstation_order", Ops, Warning,
        "the reconciler found an order in this connection's ShipStation stores that shipledger never released (made by hand or by another integration)";
    DuplicateShipStationOrder => "duplicate_shipstation_order", Ops, Error,
        "the reconciler found more than one live ShipStation order for one ERP order: the warehouse could ship it twice";
    StatusMismatch => "status_mismatch", Ops, Warning,
        "the reconciler found an order cancelled or held on one side and live on the other";
    ShippedNotFulfilled => "shipped_not_fulfilled", Ops, Error,
        "the reconciler found live labels (or an order marked shipped) in ShipStation with no fulfilment in the ERP: stock is not decremented";
    FulfilledWithoutLabel => "fulfilled_without_label", Ops, Error,
        "the reconciler found an ERP fulfilment with no live ShipStation label behind it";
    TrackingMismatch => "tracking_mismatch", Ops, Error,
        "the reconciler found a live label whose tracking number is on none of the order's ERP fulfilments (write-back missing or different)";
    VoidedAfterFulfilled => "voided_after_fulfilled", Ops, Error,
        "the reconciler found a live ERP fulfilment whose only label was voided in ShipStation";
    PastShipByDate => "past_ship_by_date", Ops, Warning,
        "an order awaiting shipment in ShipStation is past its ship-by date with no label";
    CarrierException => "carrier_exception", Ops, Warning,
        "the carrier reports an exception on a parcel (damaged, returned, undeliverable, address problem)";
    ShippedNotInvoiced => "shipped_not_invoiced", Finance, Warning,
        "the ERP shipped more of an order than it invoiced: revenue is not recorded for goods that left";
    InvoicedNotShipped => "invoiced_not_shipped", Finance, Error,
        "the ERP invoiced more of an order than it shipped, and nothing more will ship";
    InvoiceChargeUnmatched => "invoice_charge_unmatched", Finance, Warning,
        "a carrier invoice bills a tracking number no label of this connection has (a label made outside ShipStation, another brand's, or one not synced yet); it closes by itself when the invoice is imported again after the label is known";
    InvoiceCostVariance => "invoice_cost_variance", Finance, Warning,
        "what the carrier invoiced for a label differs from the label's cost by more than the policy's percentage and floor (a weight or dimension audit, a surcharge); the ledger is adjusted to the invoice, this asks whether to dispute it";
    LabelCostOutlier => "label_cost_outlier", Finance, Warning,
        "the reconciler found a label costing far more than its peers (same carrier, service and weight band over the cost-model window): a wrong service, a dimensional weight or a surcharge; the detail gives the peers, their median and MAD, and the score";
    ShippingUndercharged => "shipping_undercharged", Finance, Warning,
        "the reconciler found an order that charged the customer for shipping and cost more to ship (its labels with what the carrier invoiced) than it charged, by more than the variance policy's percentage and floor; free shipping is reported in the close report, never raised";
    CostEntryUnposted => "cost_entry_unposted", Finance, Warning,
        "a cost entry's posting window has closed but the entry is in no posted journal";
}

impl ExceptionKind {
    /// Whether a live exception of this kind keeps a period from closing
    /// (`shipledger close-report`): it means the period's books or stock are wrong or
    /// incomplete — a cost missing, unconverted or unposted, a carrier's charge nobody
    /// can place, goods shipped without their ERP fulfilment or invoice, or the
    /// reverse. The rest are questions to answer (a variance to dispute, an outlier, a
    /// loss on shipping) or work still to do that the books do not depend on.
    pub fn blocks_close(self) -> bool {
        use ExceptionKind::*;
        matches!(
            self,
            LabelCostMissing
                | FxRateMissing
                | CostBatchFailed
                | CostsNoOpenPeriod
                | CostEntryUnposted
                | InvoiceChargeUnmatched
                | ShippedNotInvoiced
                | InvoicedNotShipped
                | ShippedNotFulfilled
                | FulfilledWithoutLabel
                | VoidedAfterFulfilled
                | VoidAfterWriteBack
                | TrackingWriteBackFailed
                | OverShipment
                | UnknownShipmentLine
        )
    }
}

impl fmt::Display for ExceptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Owner {
    /// `ops`, `finance` or `admin` (as [`Owner`] displays).
    pub fn parse(text: &str) -> Option<Owner> {
        match text {
            "ops" => Some(Owner::Ops),
            "finance" => Some(Owner::Finance),
            "admin" => Some(Owner::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Owner::Ops => "ops",
            Owner::Finance => "finance",
            Owner::Admin => "admin",
        })
    }
}

impl Severity {
    /// How long an exception of this severity may stay live before it is overdue,
    /// unless the connection's policy says otherwise for its kind: critical 1 h,
    /// error 24 h, warning 72 h, info never.
    pub fn default_sla(self) -> Option<std::time::Duration> {
        let hours = |h: u64| Some(std::time::Duration::from_secs(h * 3600));
        match self {
            Severity::Critical => hours(1),
            Severity::Error => hours(24),
            Severity::Warning => hours(72),
            Severity::Info => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_code_and_has_an_owner() {
        for kind in ExceptionKind::ALL {
            assert_eq!(ExceptionKind::parse(kind.code()), Some(*kind));
            assert!(!kind.meaning().is_empty());
        }
        assert_eq!(ExceptionKind::HeldUnpaid.owner(), Owner::Finance);
        assert_eq!(ExceptionKind::HeldMissingWeight.owner(), Owner::Ops);
    }
}
