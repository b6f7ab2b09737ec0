//! The Tryton connection check behind [`Erp::check`](crate::Erp::check): what
//! `shipledger check-config --connect` reports about a Tryton database, read without
//! writing anything.
//!
//! In order, each step only when the one before it worked:
//!
//! 1. **server**: trytond answers at the URL's host and port at all;
//! 2. **database**: Tryton knows the database the URL names (it answers 404 for an
//!    unknown database whatever the key, and 401 for a bad key only on a database it
//!    has, so the two are told apart);
//! 3. **key**: the REST key is accepted, and its user sees the company;
//! 4. **modules**: `sale`, `stock`, `account`, `carrier`, `sale_shipment_cost`,
//!    `stock_package_shipping` and `product_measurements` are activated
//!    (`ir.module`); `sale_payment` is optional: without it payment evidence falls
//!    back to paid invoices, which is a warning under `payment = "auto"` and a failure
//!    under `payment = "sale_payment"`;
//! 5. **records**: at least one `stock.package.type` (a parcel needs one) and one
//!    carrier, the journal (`journal`, default `MISC`), the warehouse (`warehouse`,
//!    default `WH`) and, when set, the `journal_party`.

use serde_json::{Value, json};

use super::{PaymentRule, TrytonClient, record_id, records, rest};
use crate::{CheckItem, ErpError};

/// Modules shipledger cannot work without, and what each is for.
const REQUIRED_MODULES: &[(&str, &str)] = &[
    ("sale", "sales are the orders shipledger releases"),
    ("stock", "labels become customer shipments"),
    ("account", "shipping costs post as account moves"),
    ("carrier", "sales and shipments name their carrier"),
    ("sale_shipment_cost", "the shipping charge line and the label cost on the shipment"),
    ("stock_package_shipping", "the tracking number goes on the shipment's package"),
    ("product_measurements", "product weights, without which an order is held"),
];

const SALE_PAYMENT: &str = "sale_payment";

impl TrytonClient {
    pub(super) async fn check_connection(&self) -> Vec<CheckItem> {
        let mut out = Vec::new();
        let server = self.base.origin().ascii_serialization();
        let database = self.base.path().trim_matches('/').to_string();

        // 1-3: one read of the companies, without a context (no company is known yet).
        let url = {
            let mut u = self.url("model/company.company");
            u.query_pairs_mut()
                .append_pair("f", "rec_name")
                .append_pair("f", "currency.code")
                .append_pair("o", &rest::b64(&json!([["id", "ASC"]])));
            u
        };
        let companies = match self.send(reqwest::Method::GET, url, None, None, "the companies").await {
            Ok(v) => v,
            Err(ErpError::Unavailable { detail, .. }) if !detail.contains("HTTP ") => {
                out.push(CheckItem::failed(
                    "server",
                    format!("{detail}; start trytond, or fix the host and port in erp.url"),
                ));
                return out;
            }
            Err(ErpError::Unavailable { detail, .. }) => {
                out.push(CheckItem::failed(
                    "server",
                    format!("Tryton at {server} is failing: {detail}; see trytond's log"),
                ));
                return out;
            }
            Err(ErpError::NotFound { .. }) => {
                out.push(CheckItem::ok("server", format!("Tryton answers at {server}")));
                out.push(CheckItem::failed(
                    "database",
                    format!(
                        "Tryton at {server} has no database {database:?} (it answered 404); create it, or fix the database name at the end of erp.url"
                    ),
                ));
                return out;
            }
            Err(ErpError::Unauthorized { .. }) => {
                out.push(CheckItem::ok("server", format!("Tryton answers at {server}")));
                out.push(CheckItem::ok("database", format!("{database:?} exists")));
                out.push(CheckItem::failed(
                    "key",
                    format!(
                        "Tryton refused the REST key for database {database:?} (401); put a valid key of a user (res.user.application, application \"rest\", validated) in the variable api_key_env names"
                    ),
                ));
                return out;
            }
            Err(e) => {
                out.push(CheckItem::ok("server", format!("Tryton answers at {server}")));
                out.push(CheckItem::ok("database", format!("{database:?} exists")));
                out.push(CheckItem::failed("key", e.to_string()));
                return out;
            }
        };
        out.push(CheckItem::ok("server", format!("Tryton answers at {server}")));
        out.push(CheckItem::ok("database", format!("{database:?} exists")));
        let companies = match records(companies, "the companies") {
            Ok(c) => c,
            Err(e) => {
                out.push(CheckItem::failed("key", e.to_string()));
                return out;
            }
        };
        let company = match self.settings.company {
            Some(id) => companies.iter().find(|c| record_id(c) == id),
            None => companies.first(),
        };
        let Some(company) = company else {
            out.push(CheckItem::ok("key", "accepted"));
            out.push(CheckItem::failed(
                "company",
                match self.settings.company {
                    Some(id) => format!(
                        "the key's user cannot see company {id} (erp.tryton.company); give the user that company, or fix the setting"
                    ),
                    None => "the key's user sees no company; give the user a company in Tryton".into(),
                },
            ));
            return out;
        };
        out.push(CheckItem::ok("key", "accepted"));
        let currency = company
            .get("currency")
            .and_then(|c| c.get("code"))
            .and_then(rest::text_of)
            .unwrap_or_else(|| "no currency".into());
        let name = company.get("rec_name").and_then(rest::text_of).unwrap_or_default();
        out.push(CheckItem::ok("company", format!("{name} (id {}, {currency})", record_id(company))));

        // 4: modules.
        let mut names: Vec<&str> = REQUIRED_MODULES.iter().map(|(m, _)| *m).collect();
        names.push(SALE_PAYMENT);
        let activated: Option<Vec<String>> = match self
            .search(
                "ir.module",
                json!([["name", "in", names]]),
                &["name", "state"],
                None,
                None,
                "Tryton's modules",
            )
            .await
        {
            Ok(list) => Some(
                list.iter()
                    .filter(|m| m.get("state").and_then(Value::as_str) == Some("activated"))
                    .filter_map(|m| m.get("name").and_then(rest::text_of))
                    .collect(),
            ),
            Err(e) => {
                out.push(CheckItem::warning(
                    "modules",
                    format!("could not be read ({e}); let the key's user read ir.module to have them checked"),
                ));
                None
            }
        };
        let active = |m: &str| activated.as_ref().is_none_or(|a| a.iter().any(|n| n == m));
        if let Some(a) = &activated {
            let missing: Vec<&(&str, &str)> = REQUIRED_MODULES.iter().filter(|(m, _)| !a.iter().any(|n| n == m)).collect();
            for (m, why) in &missing {
                out.push(CheckItem::failed(
                    format!("module {m}"),
                    format!("not activated; activate it in Tryton (Administration > Modules): {why}"),
                ));
            }
            if missing.is_empty() {
                let list: Vec<&str> = REQUIRED_MODULES.iter().map(|(m, _)| *m).collect();
                out.push(CheckItem::ok("modules", format!("{} activated", list.join(", "))));
            }
            let has_payments = a.iter().any(|n| n == SALE_PAYMENT);
            out.push(match (self.settings.payment, has_payments) {
                (PaymentRule::InvoicePaid, _) => {
                    CheckItem::ok("payment evidence", "a sale counts as paid when its invoices are paid (payment = \"invoice_paid\")")
                }
                (_, true) => CheckItem::ok("payment evidence", "succeeded payments of the sale (sale_payment)"),
                (PaymentRule::Auto, false) => CheckItem::warning(
                    "payment evidence",
                    "sale_payment is not activated, so a sale counts as paid only once its invoices are paid; activate sale_payment to release sales paid in advance",
                ),
                (PaymentRule::SalePayment, false) => CheckItem::failed(
                    "payment evidence",
                    "payment = \"sale_payment\" but the module sale_payment is not activated; activate it, or set payment = \"invoice_paid\"",
                ),
            });
        }

        // 5: records.
        if active("stock_package_shipping") {
            out.push(self.at_least_one("package type", "stock.package.type", json!([]),
                "no stock.package.type exists, so no labelled parcel can be packed; create one (e.g. \"Box\") under Inventory > Configuration > Package Types").await);
        }
        if active("carrier") {
            out.push(
                self.at_least_one(
                    "carrier",
                    "carrier",
                    json!([]),
                    "no carrier exists; create the carriers ShipStation labels with (Carrier > Carriers) and put them on the sales",
                )
                .await,
            );
        }
        let journal = &self.settings.journal;
        out.push(self.at_least_one("journal", "account.journal", json!([["code", "=", journal]]),
            &format!("no account.journal has the code {journal:?}; create it, or set erp.tryton.journal to the code of the journal for shipping costs")).await);
        let warehouse = &self.settings.warehouse;
        out.push(
            self.at_least_one(
                "warehouse",
                "stock.location",
                json!([["code", "=", warehouse], ["type", "=", "warehouse"]]),
                &format!(
                    "no warehouse location has the code {warehouse:?}; set erp.tryton.warehouse to the code of the warehouse that ships"
                ),
            )
            .await,
        );
        if let Some(party) = &self.settings.journal_party {
            out.push(
                self.at_least_one(
                    "journal party",
                    "party.party",
                    json!([["name", "=", party]]),
                    &format!("no party is named {party:?}; create it, or fix erp.tryton.journal_party"),
                )
                .await,
            );
        }
        out
    }

    /// Ok naming the first record of `model` matching `domain`; else failed with
    /// `missing` (what to do).
    async fn at_least_one(&self, what: &str, model: &str, domain: Value, missing: &str) -> CheckItem {
        match self
            .search(model, domain, &["rec_name"], Some(json!([["id", "ASC"]])), Some(1), what)
            .await
        {
            Ok(found) => match found.first() {
                Some(r) => CheckItem::ok(
                    what,
                    format!(
                        "{model} {}",
                        r.get("rec_name")
                            .and_then(rest::text_of)
                            .unwrap_or_else(|| record_id(r).to_string())
                    ),
                ),
                None => CheckItem::failed(what, missing),
            },
            Err(e) => CheckItem::failed(what, format!("{model} could not be read: {e}")),
        }
    }
}
