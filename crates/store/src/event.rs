//! The timeline's vocabulary: every kind of event shipledger writes ([`EventKind`])
//! and every kind of record an event or exception is about ([`RecordType`]), each
//! with the text the event log keeps. A new event kind is a new line here; nothing
//! else builds one from text.

string_enum! {
    /// What happened to a record, as the event log names it.
    EventKind {
        // ---- orders: release and recheck
        /// Passed the release gate; a push is planned.
        Released => "released",
        /// Failed the release gate; its exceptions say why.
        Held => "held",
        /// A released order's new version failed the gate; ShipStation keeps the last good one.
        ChangeRefusedByGate => "change_refused_by_gate",
        /// A released order changed in the ERP; an update of ShipStation is planned.
        UpdatePlanned => "update_planned",
        /// The ERP cancelled a released order; its cancellation in ShipStation is planned.
        CancelPlanned => "cancel_planned",
        /// The ERP cancelled an order before it was released.
        CancelledBeforeRelease => "cancelled_before_release",
        /// The ERP put a released order on hold; the hold in ShipStation is planned.
        HoldPlanned => "hold_planned",
        /// The ERP holds an order that was never released.
        HeldInErp => "held_in_erp",
        /// The ERP presented an order again with nothing to ship changed.
        ErpSeenUnchanged => "erp_seen_unchanged",
        // ---- orders: push
        /// ShipStation holds the order (read back).
        Pushed => "pushed",
        /// ShipStation's order was updated to the latest version (read back).
        UpdatedInShipstation => "updated_in_shipstation",
        /// ShipStation's order is cancelled (read back).
        CancelledInShipstation => "cancelled_in_shipstation",
        /// ShipStation's order is on hold (read back).
        HeldInShipstation => "held_in_shipstation",
        /// A push job found nothing to send.
        SyncSkipped => "sync_skipped",
        /// A push gave up; its exception says what to do.
        SyncFailed => "sync_failed",
        /// A void reopened the order in ShipStation; its latest version is sent again.
        ResendPlanned => "resend_planned",
        /// Every line shipped and every live shipment completed.
        Shipped => "shipped",
        // ---- shipments
        /// A label was seen in ShipStation.
        LabelSeen => "label_seen",
        /// A label was voided in ShipStation.
        Voided => "voided",
        /// ShipStation says the order was marked shipped without a ShipStation label.
        MarkedShippedElsewhere => "marked_shipped_elsewhere",
        /// The carrier's first physical scan.
        FirstScan => "first_scan",
        /// The ERP fulfilment is recorded as packed (read back).
        ErpPacked => "erp_packed",
        /// The ERP fulfilment is completed (read back).
        ErpCompleted => "erp_completed",
        /// The ERP fulfilment is reversed (read back).
        ErpCancelled => "erp_cancelled",
        /// A voided label's fulfilment was never written: the ERP holds none for it
        /// (read back), so there is nothing to reverse.
        ErpNothingToReverse => "erp_nothing_to_reverse",
        /// Recording the ERP fulfilment as packed gave up.
        ErpPackedFailed => "erp_packed_failed",
        /// Completing the ERP fulfilment gave up.
        ErpCompletedFailed => "erp_completed_failed",
        /// Reversing the ERP fulfilment gave up.
        ErpCancelledFailed => "erp_cancelled_failed",
        // ---- the cost ledger (on the label's shipment record)
        /// A label's charge, or a changed cost's difference, became a cost entry.
        CostRecorded => "cost_recorded",
        /// A voided label's cost entry was reversed.
        CostReversed => "cost_reversed",
        /// A cost entry was converted to the ERP's base currency (rate, date, source).
        CostConverted => "cost_converted",
        // ---- cost batches (on the batch record)
        /// A due batch's journal was frozen and its posting planned in the outbox.
        BatchPlanned => "batch_planned",
        /// The ERP holds the batch's journal, posted, as read back.
        JournalPosted => "journal_posted",
        /// The batch's ERP period closed before it posted; its entries go to the next open window.
        BatchWithdrawn => "batch_withdrawn",
        /// Posting the batch's journal failed or gave up; its exception says what to do.
        JournalFailed => "journal_failed",
        // ---- carrier invoices (on the invoice record)
        /// A carrier invoice was imported: its charges, matched and not.
        InvoiceImported => "invoice_imported",
        // ---- webhooks
        /// A webhook was stored in the inbox.
        Received => "received",
        /// A signed webhook of a kind shipledger does not ingest.
        Ignored => "ignored",
        /// A webhook pointing off the configured ShipStation API was refused.
        Refused => "refused",
        // ---- exceptions (a person's state change, on the exception's record)
        ExceptionOpen => "exception_open",
        ExceptionAcknowledged => "exception_acknowledged",
        ExceptionAssigned => "exception_assigned",
        ExceptionRetried => "exception_retried",
        ExceptionEdited => "exception_edited",
        ExceptionClosed => "exception_closed",
        ExceptionResolved => "exception_resolved",
        ExceptionIgnored => "exception_ignored",
    }
}

impl EventKind {
    /// The event a person's action on an exception leaves on its record.
    pub fn exception_action(action: &crate::model::ExceptionAction) -> EventKind {
        use crate::model::ExceptionAction;
        match action {
            ExceptionAction::Acknowledge => EventKind::ExceptionAcknowledged,
            ExceptionAction::Assign { .. } => EventKind::ExceptionAssigned,
            ExceptionAction::Retry => EventKind::ExceptionRetried,
            ExceptionAction::Edit { .. } => EventKind::ExceptionEdited,
            ExceptionAction::Resolve => EventKind::ExceptionResolved,
            ExceptionAction::Ignore => EventKind::ExceptionIgnored,
        }
    }
}

string_enum! {
    /// What an event or an exception is about.
    RecordType {
        /// An ERP order (record id: the ERP id).
        Order => "order",
        /// A ShipStation label or fulfillment (record id: the shipment key).
        Shipment => "shipment",
        /// A webhook (record id: its resource type, or the offending host).
        Webhook => "webhook",
        /// A kind of outbox job (record id: the kind as stored).
        JobKind => "job_kind",
        /// A currency pair's rate on a date (record id: `USD/GBP 2026-11-27`).
        FxRate => "fx_rate",
        /// A cost batch (record id: its key, `acme-uk/costs/2026-11-30..2026-11-30/r0`).
        CostBatch => "cost_batch",
        /// A carrier invoice (record id: `{carrier}:{number}`).
        CarrierInvoice => "carrier_invoice",
        /// A parcel's charges on a carrier invoice (record id: `{carrier}:{number}:{tracking number}`).
        InvoiceCharge => "invoice_charge",
        /// A connection as a whole (record id: its name).
        Connection => "connection",
    }
}
