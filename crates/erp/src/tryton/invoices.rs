//! What a Tryton sale has invoiced, behind [`Erp::invoiced`](crate::Erp::invoiced):
//! per sale, the quantity of each goods line on posted customer invoices, keyed by
//! the sale line id the connector reports as the order's [`ErpLine`](shipledger_core::order::ErpLine).
//!
//! - **Counted**: lines of customer invoices (`account.invoice`, type `out`) in state
//!   `posted` or `paid` whose origin is one of the sale's goods lines. Tryton makes
//!   those invoices from the sale whatever its `invoice_method` (`order`: when the
//!   sale is processed; `fulfillment`: as its goods leave, for what left; `manual`:
//!   when a clerk asks), always as a draft: an invoice counts once it is posted,
//!   never while it is draft or validated, nor once cancelled.
//! - **Credit notes** (Tryton's credit wizard) copy each line with its quantity
//!   negated and the credited invoice line as origin: a posted one takes its quantity
//!   off the sale line. Credited "with refund", the credit note is posted and the
//!   credited invoice cancelled (the credit note reverses its posting): neither
//!   counts. A credit note a clerk makes on the sale line itself (a return) counts
//!   with its own sign.
//! - **Not counted**: services and the shipping charge (no fulfilment ships them, so
//!   the reconciler has nothing to hold them against), supplier invoices.
//! - **Quantities** are in the sale line's unit, which is the unit Tryton invoices it
//!   in; an invoice line in another unit is refused, not converted. A net negative
//!   (more credited than invoiced) is 0; a fraction of a unit is refused, naming the
//!   sale and its line, as the order's own quantities are.
//!
//! Requests: two per [`ORDERS_PER_READ`](crate::ORDERS_PER_READ) sales, the sales'
//! goods lines (`sale.line`) and, in one domain, every invoice line whose origin is
//! one of them or is an invoice line of theirs (`account.invoice.line`). Every sale id
//! asked for maps to a map, empty when nothing is posted; ids that are not numbers
//! name no sale and are absent, as in [`Erp::orders`](crate::Erp::orders).

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{Obj, SALE_LINE, TrytonClient, record_id, rest};
use crate::{ErpError, Invoiced, Result};

/// The origin of a credit note's line: the invoice line it credits.
const INVOICE_LINE: &str = "account.invoice.line,";
/// Invoice states whose lines are posted revenue.
const POSTED: &[&str] = &["posted", "paid"];
const INVOICE_LINE_FIELDS: &[&str] = &["origin", "quantity", "unit", "type", "invoice.state", "invoice.type", "invoice.number"];

impl TrytonClient {
    pub(super) async fn invoiced_of(&self, erp_ids: &[String]) -> Result<Invoiced> {
        let mut out = Invoiced::new();
        let mut line_fields = vec!["sale", "unit"];
        if self.shipment_cost_lines().await? {
            line_fields.push("shipment_cost");
        }
        for chunk in erp_ids.chunks(crate::ORDERS_PER_READ) {
            let ids: Vec<i64> = chunk.iter().filter_map(|id| id.parse().ok()).collect();
            if ids.is_empty() {
                continue;
            }
            let goods = self
                .search(
                    "sale.line",
                    json!([["sale", "in", ids], ["type", "=", "line"], ["product.type", "=", "goods"]]),
                    &line_fields,
                    None,
                    None,
                    "the sales' goods lines",
                )
                .await?;
            let invoice_lines = self
                .search(
                    "account.invoice.line",
                    json!(["OR",
                        ["origin.sale", "in", ids, "sale.line"],
                        ["origin.origin.sale", "in", ids, "account.invoice.line", "sale.line"]]),
                    INVOICE_LINE_FIELDS,
                    Some(json!([["id", "ASC"]])),
                    None,
                    "the sales' invoice lines",
                )
                .await?;
            for (sale, lines) in tally(&ids, &goods, &invoice_lines)? {
                out.insert(sale.to_string(), lines);
            }
        }
        Ok(out)
    }
}

fn origin_in(line: &Obj, prefix: &str) -> Option<i64> {
    line.get("origin").and_then(Value::as_str).and_then(|o| o.strip_prefix(prefix)).and_then(|id| id.parse().ok())
}

fn invoice_field<'a>(line: &'a Obj, field: &str) -> &'a str {
    line.get("invoice").and_then(|i| i.get(field)).and_then(Value::as_str).unwrap_or_default()
}

fn invoice_name(line: &Obj) -> String {
    let number = invoice_field(line, "number");
    if number.is_empty() {
        line.get("invoice").and_then(rest::id_of).map(|id| format!("invoice {id}")).unwrap_or_else(|| "an invoice".into())
    } else {
        format!("invoice {number}")
    }
}

/// Per sale, the posted quantity per goods line, from the sales' goods lines and
/// their invoice lines (credit notes' lines among them).
fn tally(sale_ids: &[i64], goods: &[Obj], invoice_lines: &[Obj]) -> Result<BTreeMap<i64, BTreeMap<String, u32>>> {
    // Goods lines that become parcel items: sale line -> (sale, unit).
    let goods: HashMap<i64, (i64, Option<i64>)> = goods
        .iter()
        .filter(|l| l.get("shipment_cost").is_none_or(Value::is_null))
        .filter_map(|l| Some((record_id(l), (l.get("sale").and_then(rest::id_of)?, l.get("unit").and_then(rest::id_of)))))
        .collect();
    let by_id: HashMap<i64, &Obj> = invoice_lines.iter().map(|l| (record_id(l), l)).collect();
    let mut sums: BTreeMap<i64, BTreeMap<i64, Decimal>> = sale_ids.iter().map(|s| (*s, BTreeMap::new())).collect();
    for line in invoice_lines {
        let posted = line.get("type").and_then(Value::as_str) == Some("line")
            && invoice_field(line, "type") == "out"
            && POSTED.contains(&invoice_field(line, "state"));
        if !posted {
            continue;
        }
        let sale_line = match origin_in(line, SALE_LINE) {
            Some(own) => own,
            None => {
                // A credit note's line: the sale line of the line it credits, unless
                // that invoice was cancelled by the refund this credit note is.
                let Some(credited) = origin_in(line, INVOICE_LINE).and_then(|id| by_id.get(&id)) else { continue };
                if invoice_field(credited, "state") == "cancelled" {
                    continue;
                }
                let Some(own) = origin_in(credited, SALE_LINE) else { continue };
                own
            }
        };
        let Some(&(sale, unit)) = goods.get(&sale_line) else { continue };
        let whose = || format!("sale {sale}");
        let unit_of_line = line.get("unit").and_then(rest::id_of);
        if let (Some(want), Some(got)) = (unit, unit_of_line)
            && want != got
        {
            return Err(ErpError::Decode {
                what: whose(),
                detail: format!(
                    "line {sale_line} is invoiced on {} (invoice line {}) in another unit than the sale line's; \
                     shipledger counts invoiced goods in the sale line's unit and does not convert them: \
                     invoice the line in its own unit",
                    invoice_name(line),
                    record_id(line)
                ),
            });
        }
        let qty = line.get("quantity").and_then(rest::decimal_of).ok_or_else(|| ErpError::Decode {
            what: whose(),
            detail: format!("invoice line {} of line {sale_line} on {} has no quantity", record_id(line), invoice_name(line)),
        })?;
        *sums.entry(sale).or_default().entry(sale_line).or_default() += qty;
    }
    let mut out = BTreeMap::new();
    for (sale, lines) in sums {
        let mut quantities = BTreeMap::new();
        for (line, qty) in lines {
            if qty.fract() != Decimal::ZERO {
                return Err(ErpError::Decode {
                    what: format!("sale {sale}"),
                    detail: format!("line {line}: the quantity invoiced, {}, is not a whole number of units", qty.normalize()),
                });
            }
            let whole: u32 = qty.max(Decimal::ZERO).try_into().map_err(|_| ErpError::Decode {
                what: format!("sale {sale}"),
                detail: format!("line {line}: the quantity invoiced, {qty}, is too large"),
            })?;
            quantities.insert(line.to_string(), whole);
        }
        out.insert(sale, quantities);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Obj {
        v.as_object().unwrap().clone()
    }

    fn goods() -> Vec<Obj> {
        vec![
            obj(json!({"id": 3, "sale": 2, "unit": 1, "shipment_cost": null})),
            obj(json!({"id": 4, "sale": 2, "unit": 1, "shipment_cost": null})),
            obj(json!({"id": 6, "sale": 2, "unit": 1, "shipment_cost": {"__class__": "Decimal", "decimal": "3.95"}})),
        ]
    }

    fn line(id: i64, origin: &str, qty: f64, state: &str) -> Obj {
        obj(json!({"id": id, "origin": origin, "quantity": qty, "unit": 1, "type": "line",
            "invoice": {"id": id * 10, "state": state, "type": "out", "number": format!("INV{id}")}}))
    }

    #[test]
    fn posted_lines_count_drafts_do_not_and_a_credit_note_takes_its_quantity_off() {
        let lines = vec![
            line(1, "sale.line,3", 2.0, "paid"),
            line(2, "sale.line,4", 1.0, "draft"),
            line(3, "sale.line,6", 1.0, "paid"),
            line(4, "account.invoice.line,1", -1.0, "posted"),
            line(5, "account.invoice.line,1", -1.0, "draft"),
        ];
        let got = tally(&[2, 9], &goods(), &lines).unwrap();
        assert_eq!(got[&2], BTreeMap::from([("3".to_string(), 1)]), "the shipping charge is not a parcel item");
        assert_eq!(got[&9], BTreeMap::new(), "a sale with nothing posted maps to an empty map");
    }

    #[test]
    fn a_refund_cancels_the_credited_invoice_and_neither_counts_and_more_credited_than_invoiced_is_zero() {
        let refunded = vec![line(1, "sale.line,3", 2.0, "cancelled"), line(2, "account.invoice.line,1", -2.0, "paid")];
        assert_eq!(tally(&[2], &goods(), &refunded).unwrap()[&2], BTreeMap::new());
        let over = vec![line(1, "sale.line,3", 1.0, "posted"), line(2, "sale.line,3", -3.0, "posted")];
        assert_eq!(tally(&[2], &goods(), &over).unwrap()[&2], BTreeMap::from([("3".to_string(), 0)]));
    }

    #[test]
    fn a_fraction_of_a_unit_or_another_unit_is_refused_naming_the_sale_and_line() {
        let half = vec![line(1, "sale.line,3", 1.5, "posted")];
        let err = tally(&[2], &goods(), &half).unwrap_err().to_string();
        assert!(err.contains("sale 2") && err.contains("line 3") && err.contains("1.5"), "{err}");
        let mut dozen = line(1, "sale.line,4", 1.0, "posted");
        dozen.insert("unit".into(), json!(7));
        let err = tally(&[2], &goods(), &[dozen]).unwrap_err().to_string();
        assert!(err.contains("sale 2") && err.contains("line 4") && err.contains("INV1"), "{err}");
    }
}
