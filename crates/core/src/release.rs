//! The release gate: may this ERP order go to ShipStation?
//!
//! Only when payment is captured (for at least the order's total, in its currency)
//! and every pre-flight check passes: each physical line has a known SKU and a
//! positive weight (from the line, else the product master), the ship-to address has
//! what a carrier needs, and the currency is one this connection accepts. A failing
//! order is held, with one [`Finding`] per kind naming the exact fields at fault;
//! nothing is defaulted or guessed. Whether the order was released before is the
//! engine's question, not this module's.

use serde::{Deserialize, Serialize};

use crate::exception::ExceptionKind;
use crate::money::{Currency, Money};
use crate::order::{Address, ErpOrder, PaymentState, Product};
use crate::weight::Weight;

/// What a connection accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatePolicy {
    /// Currencies this connection ships orders in; any ISO 4217 code when empty.
    pub currencies: Vec<Currency>,
}

/// One reason to hold an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: ExceptionKind,
    /// The fields at fault, e.g. `lines[L2].weight`, `ship_to.postal_code`.
    pub fields: Vec<String>,
    /// What is wrong and what to do, in words.
    pub detail: String,
}

/// A physical line cleared to ship, with its weight resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearedLine {
    pub line_id: String,
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    pub unit_price: Money,
    pub unit_weight: Weight,
    /// Where the weight came from: `line` or `product`.
    pub weight_source: WeightSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightSource {
    Line,
    Product,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    Release { currency: Currency, lines: Vec<ClearedLine> },
    Hold { findings: Vec<Finding> },
}

impl Verdict {
    pub fn is_release(&self) -> bool {
        matches!(self, Verdict::Release { .. })
    }
}

/// Countries whose addresses have no postal code (ISO 3166-1 alpha-2).
const NO_POSTAL_CODE: &[&str] = &[
    "AE", "AG", "AN", "AO", "AW", "BF", "BI", "BJ", "BO", "BS", "BW", "BZ", "CD", "CF", "CG", "CI", "CK", "CM", "DJ",
    "DM", "ER", "FJ", "GA", "GD", "GH", "GM", "GQ", "GY", "HK", "JM", "KI", "KM", "KN", "KP", "LC", "ML", "MO", "MR",
    "MW", "NR", "NU", "QA", "RW", "SB", "SC", "SL", "SO", "SR", "ST", "SY", "TD", "TF", "TG", "TK", "TL", "TO", "TT",
    "TV", "UG", "VU", "YE", "ZW",
];

/// Every ISO 3166-1 alpha-2 code in use.
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// Is `code` an ISO 3166-1 alpha-2 country code?
pub fn is_country(code: &str) -> bool {
    code.len() == 2 && COUNTRIES.split(' ').any(|c| c == code)
}

fn blank(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(|s| s.trim().is_empty())
}

/// The ship-to fields a carrier needs that are missing, as `ship_to.<field>` names.
pub fn missing_address_fields(a: &Address) -> Vec<String> {
    let mut missing = Vec::new();
    if blank(&a.name) {
        missing.push("ship_to.name".to_string());
    }
    if blank(&a.street1) {
        missing.push("ship_to.street1".to_string());
    }
    if blank(&a.city) {
        missing.push("ship_to.city".to_string());
    }
    let country = a.country.as_deref().map(str::trim).unwrap_or("");
    if !is_country(country) {
        missing.push("ship_to.country".to_string());
    } else if !NO_POSTAL_CODE.contains(&country) && blank(&a.postal_code) {
        missing.push("ship_to.postal_code".to_string());
    }
    missing
}

/// Decide whether `order` may be released. `product` looks a SKU up in the ERP's
/// product master.
pub fn check(order: &ErpOrder, product: impl Fn(&str) -> Option<Product>, policy: &GatePolicy) -> Verdict {
    let mut findings = Vec::new();

    let currency = match Currency::parse(&order.currency) {
        Ok(c) if policy.currencies.is_empty() || policy.currencies.contains(&c) => Some(c),
        Ok(c) => {
            findings.push(Finding {
                kind: ExceptionKind::HeldUnsupportedCurrency,
                fields: vec!["currency".into()],
                detail: format!(
                    "order {} is in {c}, which this connection does not ship in (it accepts {}); add {c} to the connection's currencies or fix the order",
                    order.number,
                    policy.currencies.iter().map(|c| c.code()).collect::<Vec<_>>().join(", ")
                ),
            });
            None
        }
        Err(_) => {
            findings.push(Finding {
                kind: ExceptionKind::HeldUnsupportedCurrency,
                fields: vec!["currency".into()],
                detail: format!(
                    "order {} has currency '{}', which is not an ISO 4217 code; correct it in the ERP",
                    order.number, order.currency
                ),
            });
            None
        }
    };

    let payment = &order.payment;
    if payment.state != PaymentState::Captured {
        findings.push(Finding {
            kind: ExceptionKind::HeldUnpaid,
            fields: vec!["payment".into()],
            detail: if payment.source == "none" {
                format!("order {} has no payment recorded in the ERP; it ships once payment is captured", order.number)
            } else {
                format!(
                    "order {} payment is {} (per {}); it ships once payment is captured",
                    order.number,
                    payment.state.as_str(),
                    payment.source
                )
            },
        });
    } else if let Some(cur) = currency {
        match order_total(order, cur) {
            Some(_) if payment.amount.currency() != cur => findings.push(Finding {
                kind: ExceptionKind::HeldUnpaid,
                fields: vec!["payment.amount".into()],
                detail: format!(
                    "order {} is in {cur} but the captured payment ({}) is in {}; check the payment in the ERP",
                    order.number, payment.amount, payment.amount.currency()
                ),
            }),
            Some(total) if payment.amount.minor() < total.minor() => findings.push(Finding {
                kind: ExceptionKind::HeldUnpaid,
                fields: vec!["payment.amount".into()],
                detail: format!(
                    "order {} totals {total} but only {} is captured (per {}); capture the rest in the ERP",
                    order.number, payment.amount, payment.source
                ),
            }),
            Some(_) => {}
            None => findings.push(Finding {
                kind: ExceptionKind::HeldUnsupportedCurrency,
                fields: vec!["lines.unit_price".into()],
                detail: format!("order {}: line prices are not all in {cur}; correct them in the ERP", order.number),
            }),
        }
    }

    let mut unknown = Vec::new();
    let mut weightless = Vec::new();
    let mut cleared = Vec::new();
    for line in order.physical_lines().filter(|l| l.quantity > 0) {
        let Some(sku) = line.sku.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
            unknown.push((format!("lines[{}].sku", line.line_id), format!("line {} has no SKU", line.line_id)));
            continue;
        };
        let master = product(sku);
        // An unknown SKU is the root cause: its missing master weight is not reported
        // as a second problem.
        match &master {
            Some(p) if p.active => {}
            Some(_) => {
                unknown.push((
                    format!("lines[{}].sku", line.line_id),
                    format!("line {} SKU {sku} is inactive in the product master", line.line_id),
                ));
                continue;
            }
            None => {
                unknown.push((
                    format!("lines[{}].sku", line.line_id),
                    format!("line {} SKU {sku} is not in the product master", line.line_id),
                ));
                continue;
            }
        }
        let weight = match (line.unit_weight, master.as_ref().and_then(|p| p.unit_weight)) {
            (Some(w), _) if !w.is_zero() => Some((w, WeightSource::Line)),
            (_, Some(w)) if !w.is_zero() => Some((w, WeightSource::Product)),
            _ => None,
        };
        match weight {
            Some((unit_weight, weight_source)) => cleared.push(ClearedLine {
                line_id: line.line_id.clone(),
                sku: sku.to_string(),
                name: line.name.clone(),
                quantity: line.quantity,
                unit_price: line.unit_price,
                unit_weight,
                weight_source,
            }),
            None => weightless.push((
                format!("lines[{}].weight", line.line_id),
                format!("line {} ({sku}) has no positive weight on the line or in the product master", line.line_id),
            )),
        }
    }
    if !unknown.is_empty() {
        findings.push(Finding {
            kind: ExceptionKind::HeldUnknownSku,
            fields: unknown.iter().map(|(f, _)| f.clone()).collect(),
            detail: format!(
                "order {}: {}; add the product to the ERP's product master or correct the line",
                order.number,
                unknown.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>().join("; ")
            ),
        });
    }
    if !weightless.is_empty() {
        findings.push(Finding {
            kind: ExceptionKind::HeldMissingWeight,
            fields: weightless.iter().map(|(f, _)| f.clone()).collect(),
            detail: format!(
                "order {}: {}; set the weight in the ERP (shipledger never assumes one)",
                order.number,
                weightless.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>().join("; ")
            ),
        });
    }
    if order.physical_lines().all(|l| l.quantity == 0) {
        findings.push(Finding {
            kind: ExceptionKind::HeldNothingToShip,
            fields: vec!["lines".into()],
            detail: format!("order {} has no physical line to ship", order.number),
        });
    }

    let missing = missing_address_fields(&order.ship_to);
    if !missing.is_empty() {
        findings.push(Finding {
            kind: ExceptionKind::HeldIncompleteAddress,
            detail: format!(
                "order {} ship-to address lacks {}; complete it in the ERP",
                order.number,
                missing.iter().map(|f| f.trim_start_matches("ship_to.")).collect::<Vec<_>>().join(", ")
            ),
            fields: missing,
        });
    }

    match (findings.is_empty(), currency) {
        (true, Some(currency)) => Verdict::Release { currency, lines: cleared },
        _ => {
            findings.sort_by_key(|f| f.kind);
            Verdict::Hold { findings }
        }
    }
}

/// Lines plus shipping plus tax, in `currency`; `None` when an amount is in another
/// currency.
pub fn order_total(order: &ErpOrder, currency: Currency) -> Option<Money> {
    let mut total = Money::zero(currency);
    for line in &order.lines {
        let amount = line.unit_price.checked_mul_int(i64::from(line.quantity)).ok()?;
        total = total.checked_add(&amount).ok()?;
    }
    for extra in [order.shipping_paid, order.tax_paid].into_iter().flatten() {
        total = total.checked_add(&extra).ok()?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{ErpLine, ErpOrderStatus, PaymentEvidence};
    use jiff::Timestamp;

    fn gbp(minor: i64) -> Money {
        Money::from_minor(minor, Currency::GBP)
    }

    fn paid_order() -> ErpOrder {
        ErpOrder {
            erp_id: "SO-1".into(),
            number: "SO-1".into(),
            status: ErpOrderStatus::Open,
            status_reason: None,
            currency: "GBP".into(),
            placed_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
            customer_email: None,
            ship_to: Address {
                name: Some("Ada Lovelace".into()),
                street1: Some("12 St James's Sq".into()),
                city: Some("London".into()),
                postal_code: Some("SW1Y 4JH".into()),
                country: Some("GB".into()),
                ..Address::default()
            },
            bill_to: None,
            lines: vec![
                ErpLine {
                    line_id: "L1".into(),
                    sku: Some("MUG".into()),
                    name: "Mug".into(),
                    quantity: 2,
                    unit_price: gbp(1250),
                    unit_weight: Some(Weight::from_grams(350)),
                    physical: true,
                },
                ErpLine {
                    line_id: "L2".into(),
                    sku: Some("TEA".into()),
                    name: "Tea".into(),
                    quantity: 1,
                    unit_price: gbp(2000),
                    unit_weight: None,
                    physical: true,
                },
                ErpLine {
                    line_id: "D1".into(),
                    sku: None,
                    name: "Discount".into(),
                    quantity: 1,
                    unit_price: gbp(-500),
                    unit_weight: None,
                    physical: false,
                },
            ],
            shipping_paid: Some(gbp(495)),
            tax_paid: None,
            payment: PaymentEvidence {
                state: PaymentState::Captured,
                source: "payment:PAY-1".into(),
                amount: gbp(4495),
                at: None,
            },
            requested_service: None,
            customer_reference: None,
        }
    }

    fn master(sku: &str) -> Option<Product> {
        match sku {
            "MUG" => Some(Product { sku: "MUG".into(), name: "Mug".into(), unit_weight: Some(Weight::from_grams(350)), active: true }),
            "TEA" => Some(Product { sku: "TEA".into(), name: "Tea".into(), unit_weight: Some(Weight::from_grams(250)), active: true }),
            "BOX" => Some(Product { sku: "BOX".into(), name: "Box".into(), unit_weight: None, active: true }),
            _ => None,
        }
    }

    fn findings(v: Verdict) -> Vec<Finding> {
        match v {
            Verdict::Hold { findings } => findings,
            Verdict::Release { .. } => panic!("expected a hold"),
        }
    }

    #[test]
    fn a_captured_complete_order_is_released_with_weights_from_line_or_master() {
        let Verdict::Release { currency, lines } = check(&paid_order(), master, &GatePolicy::default()) else {
            panic!("expected a release")
        };
        assert_eq!(currency, Currency::GBP);
        assert_eq!(lines.len(), 2, "the discount line is not packed");
        assert_eq!(lines[0].weight_source, WeightSource::Line);
        assert_eq!(lines[1].unit_weight, Weight::from_grams(250));
        assert_eq!(lines[1].weight_source, WeightSource::Product);
    }

    #[test]
    fn an_authorised_only_order_is_held_for_finance_naming_the_payment_document() {
        let mut order = paid_order();
        order.payment.state = PaymentState::Authorised;
        let f = findings(check(&order, master, &GatePolicy::default()));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, ExceptionKind::HeldUnpaid);
        assert_eq!(f[0].kind.owner(), crate::exception::Owner::Finance);
        assert!(f[0].detail.contains("authorised") && f[0].detail.contains("PAY-1"), "{}", f[0].detail);
    }

    #[test]
    fn a_partial_capture_is_not_enough() {
        let mut order = paid_order();
        order.payment.amount = gbp(1000);
        let f = findings(check(&order, master, &GatePolicy::default()));
        assert_eq!(f[0].kind, ExceptionKind::HeldUnpaid);
        assert_eq!(f[0].fields, ["payment.amount"]);
    }

    #[test]
    fn a_zero_weight_line_is_held_for_ops_and_named_never_defaulted() {
        let mut order = paid_order();
        order.lines[0].unit_weight = Some(Weight::ZERO);
        order.lines[1].sku = Some("BOX".into());
        let f = findings(check(&order, |s| master(s).map(|mut p| { if s == "MUG" { p.unit_weight = None } p }), &GatePolicy::default()));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, ExceptionKind::HeldMissingWeight);
        assert_eq!(f[0].fields, ["lines[L1].weight", "lines[L2].weight"]);
    }

    #[test]
    fn an_unknown_sku_and_an_incomplete_address_are_both_reported() {
        let mut order = paid_order();
        order.lines[1].sku = Some("NOPE".into());
        order.ship_to.postal_code = None;
        order.ship_to.city = Some("  ".into());
        let f = findings(check(&order, master, &GatePolicy::default()));
        let kinds: Vec<_> = f.iter().map(|f| f.kind).collect();
        assert!(kinds.contains(&ExceptionKind::HeldUnknownSku));
        assert!(kinds.contains(&ExceptionKind::HeldIncompleteAddress));
        let address = f.iter().find(|f| f.kind == ExceptionKind::HeldIncompleteAddress).unwrap();
        assert_eq!(address.fields, ["ship_to.city", "ship_to.postal_code"]);
    }

    #[test]
    fn an_unknown_sku_is_reported_once_not_also_as_a_missing_weight() {
        let mut order = paid_order();
        order.lines[1].sku = Some("NOPE".into());
        let f = findings(check(&order, master, &GatePolicy::default()));
        assert_eq!(f.iter().map(|f| f.kind).collect::<Vec<_>>(), [ExceptionKind::HeldUnknownSku]);
    }

    #[test]
    fn countries_without_postal_codes_do_not_need_one() {
        let mut order = paid_order();
        order.ship_to.country = Some("HK".into());
        order.ship_to.postal_code = None;
        assert!(check(&order, master, &GatePolicy::default()).is_release());
        order.ship_to.country = Some("XX".into());
        let f = findings(check(&order, master, &GatePolicy::default()));
        assert_eq!(f[0].fields, ["ship_to.country"]);
    }

    #[test]
    fn a_currency_the_connection_does_not_ship_in_is_held_for_finance() {
        let policy = GatePolicy { currencies: vec![Currency::USD] };
        let f = findings(check(&paid_order(), master, &policy));
        assert_eq!(f[0].kind, ExceptionKind::HeldUnsupportedCurrency);
        let mut order = paid_order();
        order.currency = "QQQ".into();
        let f = findings(check(&order, master, &GatePolicy::default()));
        assert!(f.iter().any(|f| f.kind == ExceptionKind::HeldUnsupportedCurrency));
    }

    fn kinds(v: Verdict) -> Vec<ExceptionKind> {
        findings(v).iter().map(|f| f.kind).collect()
    }

    fn cleared(v: Verdict) -> Vec<ClearedLine> {
        match v {
            Verdict::Release { lines, .. } => lines,
            Verdict::Hold { findings } => panic!("expected a release, got {findings:?}"),
        }
    }

    #[test]
    fn an_order_with_no_payment_recorded_is_held_saying_that_nothing_was_paid() {
        let mut order = paid_order();
        order.payment.state = PaymentState::Unpaid;
        order.payment.source = "none".into();
        let f = findings(check(&order, master, &GatePolicy::default()));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, ExceptionKind::HeldUnpaid);
        assert_eq!(f[0].fields, ["payment"]);
        assert_eq!(f[0].detail, "order SO-1 has no payment recorded in the ERP; it ships once payment is captured");
    }

    #[test]
    fn a_refunded_order_is_held_as_unpaid_naming_the_refund() {
        let mut order = paid_order();
        order.payment.state = PaymentState::Refunded;
        let f = findings(check(&order, master, &GatePolicy::default()));
        assert_eq!(f.iter().map(|f| f.kind).collect::<Vec<_>>(), [ExceptionKind::HeldUnpaid]);
        assert_eq!(f[0].detail, "order SO-1 payment is refunded (per payment:PAY-1); it ships once payment is captured");
    }

    #[test]
    fn a_capture_of_exactly_the_total_releases_one_penny_short_holds_and_more_releases() {
        // 2 × 12.50 + 20.00 − 5.00 discount + 4.95 shipping = 44.95, as captured.
        assert_eq!(order_total(&paid_order(), Currency::GBP), Some(gbp(4495)));
        assert!(check(&paid_order(), master, &GatePolicy::default()).is_release());
        let mut short = paid_order();
        short.payment.amount = gbp(4494);
        let f = findings(check(&short, master, &GatePolicy::default()));
        assert_eq!(f[0].kind, ExceptionKind::HeldUnpaid);
        assert_eq!(f[0].detail, "order SO-1 totals 44.95 GBP but only 44.94 GBP is captured (per payment:PAY-1); capture the rest in the ERP");
        let mut over = paid_order();
        over.payment.amount = gbp(5000);
        assert!(check(&over, master, &GatePolicy::default()).is_release());
    }

    #[test]
    fn tax_counts_toward_the_total_that_must_be_captured() {
        let mut order = paid_order();
        order.tax_paid = Some(gbp(899));
        assert_eq!(order_total(&order, Currency::GBP), Some(gbp(5394)));
        assert_eq!(kinds(check(&order, master, &GatePolicy::default())), [ExceptionKind::HeldUnpaid]);
        order.payment.amount = gbp(5394);
        assert!(check(&order, master, &GatePolicy::default()).is_release());
    }

    #[test]
    fn a_capture_in_another_currency_is_held_for_finance_even_when_the_number_is_enough() {
        let mut order = paid_order();
        order.payment.amount = Money::from_minor(99_999, Currency::USD);
        let f = findings(check(&order, master, &GatePolicy::default()));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, ExceptionKind::HeldUnpaid);
        assert_eq!(f[0].fields, ["payment.amount"]);
        assert!(f[0].detail.contains("is in GBP") && f[0].detail.contains("is in USD"), "{}", f[0].detail);
    }

    #[test]
    fn line_prices_in_another_currency_than_the_order_hold_it_for_finance() {
        let mut order = paid_order();
        order.lines[1].unit_price = Money::from_minor(2000, Currency::EUR);
        let f = findings(check(&order, master, &GatePolicy::default()));
        assert_eq!(f.iter().map(|f| f.kind).collect::<Vec<_>>(), [ExceptionKind::HeldUnsupportedCurrency]);
        assert_eq!(f[0].fields, ["lines.unit_price"]);
        assert_eq!(order_total(&order, Currency::GBP), None);
    }

    #[test]
    fn a_currency_the_policy_names_is_released_and_a_refusal_lists_what_is_accepted() {
        let policy = GatePolicy { currencies: vec![Currency::EUR, Currency::GBP] };
        assert!(check(&paid_order(), master, &policy).is_release());
        let policy = GatePolicy { currencies: vec![Currency::EUR, Currency::USD] };
        let f = findings(check(&paid_order(), master, &policy));
        assert_eq!(f[0].fields, ["currency"]);
        assert!(f[0].detail.contains("it accepts EUR, USD"), "{}", f[0].detail);
        assert_eq!(f[0].kind.owner(), crate::exception::Owner::Finance);
    }

    #[test]
    fn a_line_without_a_sku_is_held_as_an_unknown_sku_for_ops() {
        let mut order = paid_order();
        order.lines[1].sku = Some("   ".into());
        let f = findings(check(&order, master, &GatePolicy::default()));
        assert_eq!(f.iter().map(|f| f.kind).collect::<Vec<_>>(), [ExceptionKind::HeldUnknownSku]);
        assert_eq!(f[0].fields, ["lines[L2].sku"]);
        assert!(f[0].detail.contains("line L2 has no SKU"), "{}", f[0].detail);
        assert_eq!(f[0].kind.owner(), crate::exception::Owner::Ops);
    }

    #[test]
    fn an_inactive_product_is_held_as_unknown_even_though_the_master_has_its_weight() {
        let inactive = |s: &str| master(s).map(|mut p| { p.active = s != "TEA"; p });
        let f = findings(check(&paid_order(), inactive, &GatePolicy::default()));
        assert_eq!(f.iter().map(|f| f.kind).collect::<Vec<_>>(), [ExceptionKind::HeldUnknownSku]);
        assert!(f[0].detail.contains("SKU TEA is inactive in the product master"), "{}", f[0].detail);
    }

    #[test]
    fn a_line_weight_wins_over_the_master_and_a_zero_on_the_line_falls_back_to_the_master() {
        let mut order = paid_order();
        order.lines[0].unit_weight = Some(Weight::from_grams(400));
        let lines = cleared(check(&order, master, &GatePolicy::default()));
        assert_eq!((lines[0].unit_weight, lines[0].weight_source), (Weight::from_grams(400), WeightSource::Line));
        order.lines[0].unit_weight = Some(Weight::ZERO);
        let lines = cleared(check(&order, master, &GatePolicy::default()));
        assert_eq!((lines[0].unit_weight, lines[0].weight_source), (Weight::from_grams(350), WeightSource::Product));
    }

    #[test]
    fn a_zero_weight_in_the_master_and_none_on_the_line_holds_the_order() {
        let mut order = paid_order();
        order.lines[1].sku = Some("CARD".into());
        let zero = |s: &str| match s {
            "CARD" => Some(Product { sku: "CARD".into(), name: "Card".into(), unit_weight: Some(Weight::ZERO), active: true }),
            other => master(other),
        };
        let f = findings(check(&order, zero, &GatePolicy::default()));
        assert_eq!(f.iter().map(|f| f.kind).collect::<Vec<_>>(), [ExceptionKind::HeldMissingWeight]);
        assert_eq!(f[0].fields, ["lines[L2].weight"]);
        assert!(f[0].detail.contains("shipledger never assumes one"), "{}", f[0].detail);
    }

    #[test]
    fn a_line_of_zero_quantity_is_not_checked_and_is_not_cleared() {
        let mut order = paid_order();
        order.lines[1].quantity = 0;
        order.lines[1].sku = Some("NOPE".into());
        let lines = cleared(check(&order, master, &GatePolicy::default()));
        assert_eq!(lines.iter().map(|l| l.line_id.as_str()).collect::<Vec<_>>(), ["L1"]);
    }

    #[test]
    fn an_order_with_nothing_physical_to_ship_is_held() {
        let mut order = paid_order();
        for line in &mut order.lines {
            if line.physical {
                line.quantity = 0;
            }
        }
        let f = findings(check(&order, master, &GatePolicy::default()));
        assert_eq!(f.iter().map(|f| f.kind).collect::<Vec<_>>(), [ExceptionKind::HeldNothingToShip]);
        assert_eq!(f[0].fields, ["lines"]);
        let mut services_only = paid_order();
        services_only.lines.retain(|l| !l.physical);
        assert_eq!(kinds(check(&services_only, master, &GatePolicy::default())), [ExceptionKind::HeldNothingToShip]);
    }

    #[test]
    fn every_problem_is_reported_once_per_kind_in_a_fixed_order() {
        let mut order = paid_order();
        order.payment.state = PaymentState::Authorised;
        order.lines[0].sku = Some("NOPE".into());
        order.lines[1].sku = Some("GONE".into());
        order.lines.push(ErpLine {
            line_id: "L3".into(),
            sku: Some("BOX".into()),
            name: "Box".into(),
            quantity: 1,
            unit_price: gbp(0),
            unit_weight: None,
            physical: true,
        });
        order.ship_to.street1 = None;
        let f = findings(check(&order, master, &GatePolicy::default()));
        assert_eq!(
            f.iter().map(|f| f.kind).collect::<Vec<_>>(),
            [
                ExceptionKind::HeldUnpaid,
                ExceptionKind::HeldMissingWeight,
                ExceptionKind::HeldUnknownSku,
                ExceptionKind::HeldIncompleteAddress
            ]
        );
        let unknown = f.iter().find(|f| f.kind == ExceptionKind::HeldUnknownSku).unwrap();
        assert_eq!(unknown.fields, ["lines[L1].sku", "lines[L2].sku"]);
        let weight = f.iter().find(|f| f.kind == ExceptionKind::HeldMissingWeight).unwrap();
        assert_eq!(weight.fields, ["lines[L3].weight"]);
    }

    #[test]
    fn an_address_needs_a_name_street_city_and_a_real_country_and_a_postal_code_where_it_has_them() {
        let complete = paid_order().ship_to;
        assert!(missing_address_fields(&complete).is_empty());
        let blank = Address { name: Some(" ".into()), country: Some("GB".into()), ..Address::default() };
        assert_eq!(
            missing_address_fields(&blank),
            ["ship_to.name", "ship_to.street1", "ship_to.city", "ship_to.postal_code"]
        );
        // A country is an ISO code as written, padding aside: no guessing from "gb" or "UK".
        for (country, missing) in [(" GB ", None), ("gb", Some("ship_to.country")), ("UK", Some("ship_to.country"))] {
            let a = Address { country: Some(country.into()), ..complete.clone() };
            assert_eq!(missing_address_fields(&a).first().map(String::as_str), missing, "{country}");
        }
        let no_country = Address { country: None, postal_code: None, ..complete };
        assert_eq!(missing_address_fields(&no_country), ["ship_to.country"], "the postal code is judged once the country is known");
    }
}
