//! Rows to records, by hand, for both backends: [`RowExt`] reads a column of either
//! backend's row as a plain Rust value, and the mappers below build the model's
//! records from any `RowExt`. Anything that does not decode or parse is
//! [`StoreError::Corrupt`], naming the column.

use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use shipledger_core::exception::ExceptionKind;

use crate::{ExceptionAudit, 
    AwaitingScan, CostEntry, EventKind, JobDecodeError, ScanCheckState, JobSpec, RecordType, EventRecord, ExceptionRecord, ExceptionState, Job, JobState,
    OrderLineRecord, OrderRecord, OrderState, Result, ScheduleRecord, ShipmentKind, ShipmentLine, ShipmentRecord, ShipmentUpsert, ShipmentState,
    StoreError, TimelineEntry,
};

/// Typed column access, implemented for `SqliteRow` and `PgRow`.
pub(crate) trait RowExt {
    fn text(&self, column: &str) -> Result<String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn int(&self, column: &str) -> Result<i64>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;
    fn json(&self, column: &str) -> Result<Value>;
    fn opt_json(&self, column: &str) -> Result<Option<Value>>;
    fn flag(&self, column: &str) -> Result<bool>;

    fn time(&self, column: &str) -> Result<Timestamp> {
        from_millis(self.int(column)?, column)
    }

    fn opt_time(&self, column: &str) -> Result<Option<Timestamp>> {
        self.opt_int(column)?
            .map(|ms| from_millis(ms, column))
            .transpose()
    }

    /// A text column holding a civil date, `YYYY-MM-DD`.
    fn opt_date(&self, column: &str) -> Result<Option<jiff::civil::Date>> {
        self.opt_text(column)?
            .map(|text| {
                text.parse().map_err(|e| {
                    StoreError::Corrupt(format!("column {column} holds {text:?}, not a date: {e}"))
                })
            })
            .transpose()
    }

    /// A JSON column holding a serialized `T`.
    fn json_as<T: DeserializeOwned>(&self, column: &str) -> Result<T> {
        serde_json::from_value(self.json(column)?)
            .map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
    }

    /// A text column holding one of an enum's codes.
    fn parsed<T>(&self, column: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<T> {
        let text = self.text(column)?;
        parse(&text).ok_or_else(|| {
            StoreError::Corrupt(format!("column {column} holds an unknown value {text:?}"))
        })
    }
}

macro_rules! row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn text(&self, column: &str) -> Result<String> {
                decode(self, column)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>> {
                decode(self, column)
            }
            fn int(&self, column: &str) -> Result<i64> {
                decode(self, column)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>> {
                decode(self, column)
            }
            fn json(&self, column: &str) -> Result<Value> {
                decode(self, column)
            }
            fn opt_json(&self, column: &str) -> Result<Option<Value>> {
                decode(self, column)
            }
            fn flag(&self, column: &str) -> Result<bool> {
                decode(self, column)
            }
        }
    };
}

row_ext!(sqlx::sqlite::SqliteRow);
row_ext!(sqlx::postgres::PgRow);

fn decode<'r, R, T>(row: &'r R, column: &str) -> Result<T>
where
    R: sqlx::Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

fn from_millis(ms: i64, column: &str) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms)
        .map_err(|e| StoreError::Corrupt(format!("column {column} holds {ms}: {e}")))
}

/// Epoch milliseconds, as stored.
pub(crate) fn millis(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// A civil date as stored: `YYYY-MM-DD`.
pub(crate) fn date_text(date: jiff::civil::Date) -> String {
    date.to_string()
}

/// A serializable value as JSON to bind (shipment lines).
pub(crate) fn to_json<T: Serialize>(value: &T, what: impl std::fmt::Display) -> Result<Value> {
    serde_json::to_value(value)
        .map_err(|e| StoreError::Database(format!("{what}: cannot serialize: {e}")))
}

/// A serde enum (`Owner`, `Severity`) as the text it serializes to.
pub(crate) fn enum_text<T: Serialize + std::fmt::Debug>(value: T) -> String {
    match serde_json::to_value(&value) {
        Ok(Value::String(s)) => s,
        _ => format!("{value:?}").to_lowercase(),
    }
}

fn enum_from_text<T: DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(Value::String(text.to_string())).ok()
}

pub(crate) fn order(row: &impl RowExt) -> Result<OrderRecord> {
    Ok(OrderRecord {
        connection: row.text("connection")?,
        erp_id: row.text("erp_id")?,
        number: row.text("number")?,
        state: row.parsed("state", OrderState::parse)?,
        snapshot: row.json("snapshot")?,
        snapshot_hash: row.text("snapshot_hash")?,
        erp_updated_at: row.time("erp_updated_at")?,
        order_key: row.text("order_key")?,
        ss_order_id: row.opt_int("ss_order_id")?,
        ss_status: row.opt_text("ss_status")?,
        payment: row.opt_json("payment")?,
        pushed_hash: row.opt_text("pushed_hash")?,
        released_at: row.opt_time("released_at")?,
        pushed_at: row.opt_time("pushed_at")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub(crate) fn order_line(row: &impl RowExt) -> Result<OrderLineRecord> {
    Ok(OrderLineRecord {
        connection: row.text("connection")?,
        erp_id: row.text("erp_id")?,
        line_id: row.text("line_id")?,
        sku: row.opt_text("sku")?,
        name: row.text("name")?,
        quantity: row.int("quantity")?,
        unit_weight_mg: row.opt_int("unit_weight_mg")?,
        unit_price_minor: row.int("unit_price_minor")?,
        currency: row.text("currency")?,
        physical: row.flag("physical")?,
    })
}

/// A job row as its typed spec: an unknown kind or a payload of the wrong shape is an
/// error naming the job, never a job that runs on a guess.
pub(crate) fn job(row: &impl RowExt) -> Result<Job> {
    let job_id = row.int("id")?;
    let kind = row.text("kind")?;
    let spec = JobSpec::decode(&kind, row.json("payload")?).map_err(|e| match e {
        JobDecodeError::UnknownKind => StoreError::UnknownJobKind { job_id, kind: kind.clone() },
        JobDecodeError::Payload(detail) => StoreError::BadJob { job_id, kind: kind.clone(), detail },
    })?;
    Ok(Job {
        id: job_id,
        connection: row.text("connection")?,
        spec,
        idempotency_key: row.text("idempotency_key")?,
        state: row.parsed("state", JobState::parse)?,
        attempts: row.int("attempts")?,
        next_run_at: row.time("next_run_at")?,
        lease_until: row.opt_time("lease_until")?,
        lease_token: row.opt_text("lease_token")?,
        last_error: row.opt_text("last_error")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub(crate) fn schedule(row: &impl RowExt) -> Result<ScheduleRecord> {
    Ok(ScheduleRecord {
        connection: row.text("connection")?,
        name: row.text("name")?,
        next_due_at: row.opt_time("next_due_at")?,
        lease_token: row.opt_text("lease_token")?,
        lease_until: row.opt_time("lease_until")?,
        last_started_at: row.opt_time("last_started_at")?,
        last_success_at: row.opt_time("last_success_at")?,
        last_error: row.opt_text("last_error")?,
        runs: row.int("runs")?,
        updated_at: row.time("updated_at")?,
    })
}

pub(crate) fn event(row: &impl RowExt) -> Result<EventRecord> {
    Ok(EventRecord {
        id: row.int("id")?,
        connection: row.text("connection")?,
        record_type: row.parsed("record_type", RecordType::parse)?,
        record_id: row.text("record_id")?,
        kind: row.parsed("kind", EventKind::parse)?,
        detail: row.json("detail")?,
        at: row.time("at")?,
    })
}

pub(crate) fn timeline_entry(row: &impl RowExt) -> Result<TimelineEntry> {
    Ok(TimelineEntry { event: event(row)?, tracking_number: row.opt_text("tracking_number")? })
}

pub(crate) fn exception(row: &impl RowExt) -> Result<ExceptionRecord> {
    Ok(ExceptionRecord {
        id: row.int("id")?,
        connection: row.text("connection")?,
        kind: row.parsed("kind", ExceptionKind::parse)?,
        owner: row.parsed("owner", enum_from_text)?,
        severity: row.parsed("severity", enum_from_text)?,
        record_type: row.text("record_type")?,
        record_id: row.text("record_id")?,
        state: row.parsed("state", ExceptionState::parse)?,
        first_seen: row.time("first_seen")?,
        last_seen: row.time("last_seen")?,
        occurrences: row.int("occurrences")?,
        detail: row.json("detail")?,
        note: row.opt_text("note")?,
        assignee: row.opt_text("assignee")?,
        job_id: row.opt_int("job_id")?,
        acknowledged_at: row.opt_time("acknowledged_at")?,
        ended_at: row.opt_time("ended_at")?,
    })
}

pub(crate) fn reconcile_run(row: &impl RowExt) -> Result<crate::ReconcileRun> {
    Ok(crate::ReconcileRun {
        id: row.int("id")?,
        connection: row.text("connection")?,
        mode: row.parsed("mode", crate::ReconcileMode::parse)?,
        since: row.time("since")?,
        state: row.parsed("state", crate::ReconcileState::parse)?,
        started_at: row.time("started_at")?,
        finished_at: row.opt_time("finished_at")?,
        stats: row.json("stats")?,
        error: row.opt_text("error")?,
    })
}

pub(crate) fn reconcile_finding(row: &impl RowExt) -> Result<crate::ReconcileFindingRecord> {
    Ok(crate::ReconcileFindingRecord {
        id: row.int("id")?,
        run_id: row.int("run_id")?,
        connection: row.text("connection")?,
        kind: row.parsed("kind", ExceptionKind::parse)?,
        owner: row.parsed("owner", enum_from_text)?,
        record_type: row.text("record_type")?,
        record_id: row.text("record_id")?,
        detail: row.json("detail")?,
        exception_id: row.opt_int("exception_id")?,
    })
}

pub(crate) fn api_token(row: &impl RowExt) -> Result<crate::ApiTokenRecord> {
    let connections = row.json("connections")?;
    Ok(crate::ApiTokenRecord {
        id: row.int("id")?,
        name: row.text("name")?,
        role: row.parsed("role", crate::TokenRole::parse)?,
        scope: crate::TokenScope::from_json(&connections)
            .ok_or_else(|| StoreError::Corrupt(format!("api token connections {connections} is not a list of names")))?,
        prefix: row.text("prefix")?,
        created_at: row.time("created_at")?,
        revoked_at: row.opt_time("revoked_at")?,
        last_used_at: row.opt_time("last_used_at")?,
    })
}

pub(crate) fn exception_audit(row: &impl RowExt) -> Result<ExceptionAudit> {
    Ok(ExceptionAudit {
        id: row.int("id")?,
        exception_id: row.int("exception_id")?,
        connection: row.text("connection")?,
        at: row.time("at")?,
        actor: row.text("actor")?,
        action: row.text("action")?,
        before: row.json("before")?,
        after: row.json("after")?,
        note: row.opt_text("note")?,
    })
}

pub(crate) fn shipment(row: &impl RowExt) -> Result<ShipmentRecord> {
    Ok(ShipmentRecord {
        connection: row.text("connection")?,
        shipment: ShipmentUpsert {
            shipment_key: row.text("shipment_key")?,
            kind: row.parsed("kind", ShipmentKind::parse)?,
            ss_id: row.int("ss_id")?,
            ss_order_id: row.int("ss_order_id")?,
            ss_order_key: row.opt_text("ss_order_key")?,
            erp_id: row.opt_text("erp_id")?,
            carrier: row.text("carrier")?,
            service: row.opt_text("service")?,
            tracking_number: row.opt_text("tracking_number")?,
            ship_date: row.opt_date("ship_date")?,
            cost_minor: row.opt_int("cost_minor")?,
            cost_currency: row.opt_text("cost_currency")?,
            ss_created_at: row.time("ss_created_at")?,
            voided: row.flag("voided")?,
            voided_at: row.opt_time("voided_at")?,
            lines: row.json_as::<Vec<ShipmentLine>>("lines")?,
            first_scan_at: row.opt_time("first_scan_at")?,
            tracking_status: row.opt_text("tracking_status")?,
            state: row.parsed("state", ShipmentState::parse)?,
            erp_fulfilment_id: row.opt_text("erp_fulfilment_id")?,
        },
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

/// A shipment with the scan sweep's check state (the scan columns after its own).
pub(crate) fn awaiting_scan(row: &impl RowExt) -> Result<AwaitingScan> {
    let empty = row.int("scan_empty_checks")?;
    Ok(AwaitingScan {
        record: shipment(row)?,
        check: ScanCheckState {
            last_checked_at: row.opt_time("scan_checked_at")?,
            empty_checks: u32::try_from(empty)
                .map_err(|_| StoreError::Corrupt(format!("column scan_empty_checks holds {empty}")))?,
            next_due_at: row.opt_time("scan_due_at")?,
            coarse_status: row.opt_text("scan_coarse_status")?,
        },
    })
}

pub(crate) fn cost_entry(row: &impl RowExt) -> Result<CostEntry> {
    use shipledger_core::cost::{Charge, CostKind, CostSource, LabelFacts, NewCostEntry};
    let revision = row.int("revision")?;
    Ok(CostEntry {
        id: row.int("id")?,
        connection: row.text("connection")?,
        entry: NewCostEntry {
            entry_key: row.text("entry_key")?,
            kind: row.parsed("kind", CostKind::parse)?,
            charge: row.parsed("charge", Charge::parse)?,
            revision: u32::try_from(revision).map_err(|_| StoreError::Corrupt(format!("column revision holds {revision}")))?,
            amount: money_of(row, "amount_minor", "currency")?,
            label: LabelFacts {
                shipment_key: row.text("shipment_key")?,
                erp_id: row.opt_text("erp_id")?,
                ss_order_id: row.int("ss_order_id")?,
                carrier: row.text("carrier")?,
                service: row.opt_text("service")?,
                ship_date: row.opt_date("ship_date")?,
                label_created_at: row.time("label_created_at")?,
            },
            occurred_at: row.time("occurred_at")?,
            source: row.parsed("source", CostSource::parse)?,
            reverses_key: row.opt_text("reverses_key")?,
        },
        reverses: row.opt_int("reverses_id")?,
        recorded_at: row.time("recorded_at")?,
    })
}

pub(crate) fn cost_conversion(row: &impl RowExt) -> Result<crate::CostConversion> {
    use shipledger_core::fx::{Conversion, RateSource};
    let money = |minor: &str, currency: &str| money_of(row, minor, currency);
    let decimal = |column: &str| -> Result<rust_decimal::Decimal> {
        let text = row.text(column)?;
        rust_decimal::Decimal::from_str_exact(&text).map_err(|e| StoreError::Corrupt(format!("column {column} holds {text:?}, not a decimal: {e}")))
    };
    let date = |column: &str| date_of(row, column);
    let rounding = row.text("rounding")?;
    Ok(crate::CostConversion {
        connection: row.text("connection")?,
        entry_id: row.int("entry_id")?,
        conversion: Conversion {
            entry_key: row.text("entry_key")?,
            original: money("original_minor", "original_currency")?,
            base: money("base_minor", "base_currency")?,
            rate_from: decimal("rate_from")?,
            rate_to: decimal("rate_to")?,
            rate_date: date("rate_date")?,
            wanted_date: date("wanted_date")?,
            source: row.parsed("source", RateSource::parse)?,
            rounding: serde_json::from_value(Value::String(rounding.clone()))
                .map_err(|_| StoreError::Corrupt(format!("column rounding holds an unknown value {rounding:?}")))?,
            exact: decimal("exact")?,
        },
        source_detail: row.text("source_detail")?,
        converted_at: row.time("converted_at")?,
    })
}

pub(crate) fn cost_batch(row: &impl RowExt) -> Result<crate::CostBatchRecord> {
    use shipledger_core::journal::Window;
    let date = |column: &str| -> Result<jiff::civil::Date> {
        row.opt_date(column)?.ok_or_else(|| StoreError::Corrupt(format!("column {column} is empty")))
    };
    let small = |column: &str| -> Result<u32> {
        let n = row.int(column)?;
        u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("column {column} holds {n}")))
    };
    let code = row.text("base_currency")?;
    let currency = shipledger_core::Currency::parse(&code)
        .map_err(|e| StoreError::Corrupt(format!("column base_currency holds {code:?}: {e}")))?;
    Ok(crate::CostBatchRecord {
        id: row.int("id")?,
        connection: row.text("connection")?,
        batch_key: row.text("batch_key")?,
        window: Window { start: date("window_start")?, end: date("window_end")? },
        revision: small("revision")?,
        state: row.parsed("state", crate::BatchState::parse)?,
        journal: row.json_as("journal")?,
        total: shipledger_core::Money::from_minor(row.int("total_minor")?, currency),
        entry_count: small("entry_count")?,
        carried_over: small("carried_over")?,
        erp_move_id: row.opt_text("erp_move_id")?,
        detail: row.opt_text("detail")?,
        planned_at: row.time("planned_at")?,
        posted_at: row.opt_time("posted_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub(crate) fn batch_member(row: &impl RowExt) -> Result<crate::BatchMember> {
    use shipledger_core::journal::Window;
    let carried_from = match (row.opt_date("carried_from_start")?, row.opt_date("carried_from_end")?) {
        (Some(start), Some(end)) => Some(Window { start, end }),
        _ => None,
    };
    Ok(crate::BatchMember { entry_key: row.text("entry_key")?, carried_from })
}

/// A `COUNT(*)` as the trait reports it.
pub(crate) fn count(row: &impl RowExt) -> Result<u64> {
    let n = row.int("n")?;
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("a count of {n}")))
}

/// Apply a mapper to every row.
pub(crate) fn all<R, T>(rows: &[R], map: impl Fn(&R) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(map).collect()
}

fn money_of(row: &impl RowExt, minor: &str, currency: &str) -> Result<shipledger_core::Money> {
    let code = row.text(currency)?;
    let currency = shipledger_core::Currency::parse(&code).map_err(|e| StoreError::Corrupt(format!("column {currency} holds {code:?}: {e}")))?;
    Ok(shipledger_core::Money::from_minor(row.int(minor)?, currency))
}

fn date_of(row: &impl RowExt, column: &str) -> Result<jiff::civil::Date> {
    row.opt_date(column)?.ok_or_else(|| StoreError::Corrupt(format!("column {column} is empty")))
}

pub(crate) fn carrier_invoice(row: &impl RowExt) -> Result<crate::CarrierInvoiceRecord> {
    Ok(crate::CarrierInvoiceRecord {
        id: row.int("id")?,
        connection: row.text("connection")?,
        carrier: row.text("carrier")?,
        number: row.text("invoice_number")?,
        date: date_of(row, "invoice_date")?,
        file_name: row.text("file_name")?,
        content_sha256: row.text("content_sha256")?,
        imported_at: row.time("imported_at")?,
    })
}

pub(crate) fn invoice_charge(row: &impl RowExt) -> Result<crate::InvoiceChargeRecord> {
    let line = row.int("row_number")?;
    Ok(crate::InvoiceChargeRecord {
        id: row.int("id")?,
        connection: row.text("connection")?,
        invoice_id: row.int("invoice_id")?,
        carrier: row.text("carrier")?,
        invoice_number: row.text("invoice_number")?,
        invoice_date: date_of(row, "invoice_date")?,
        row: u64::try_from(line).map_err(|_| StoreError::Corrupt(format!("column row_number holds {line}")))?,
        tracking_number: row.text("tracking_number")?,
        charge_type: row.text("charge_type")?,
        charge: row.parsed("charge", shipledger_core::cost::Charge::parse)?,
        amount: money_of(row, "amount_minor", "currency")?,
        shipment_key: row.opt_text("shipment_key")?,
        matched_at: row.opt_time("matched_at")?,
    })
}
