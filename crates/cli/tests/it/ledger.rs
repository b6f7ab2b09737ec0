//! The month-end story on a real Tryton (GBP company), through `shipledger costs
//! post`: two months of USD and EUR labels post as one journal per day in GBP, each
//! move balanced, posted and carrying its lines' second-currency amounts, and equal
//! to the labels' costs converted at Tryton's own rates, recomputed here from the
//! rates the story wrote into Tryton; a window whose EUR rate is missing posts
//! nothing and shows one finance exception until the rate is added to Tryton, then
//! posts once; once finance closes October, a late October label is not written
//! there but lands in November's first day, carried over; running again posts
//! nothing. Everything is read back from Tryton's own API.

use std::collections::BTreeMap;
use std::process::Command;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use shipledger_core::Currency;
use shipledger_core::cost::{Charge, CostSource, LabelFacts, NewCostEntry};
use shipledger_core::money::Money;
use shipledger_store::Change;

use crate::tryton::tryton_db::TrytonDb;

struct Books {
    db: TrytonDb,
    config: std::path::PathBuf,
    store_url: String,
    _dir: tempfile::TempDir,
}

fn tryton_date(d: Date) -> Value {
    json!({"__class__": "date", "year": d.year(), "month": d.month(), "day": d.day()})
}

fn dec(v: &Value) -> rust_decimal::Decimal {
    let text = v.get("decimal").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| v.to_string());
    text.trim_matches('"').parse().unwrap()
}

impl Books {
    async fn open(db: TrytonDb) -> Books {
        let dir = tempfile::tempdir().unwrap();
        let store_url = format!("sqlite://{}", dir.path().join("s.db").display());
        let config = dir.path().join("shipledger.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[store]
url = "{store_url}"
[[connections]]
name = "acme-tryton"
[connections.erp]
kind = "tryton"
url = "{erp}"
api_key_env = "L_ERP_KEY"
[connections.erp.tryton]
journal_party = "Royal Mail"
[connections.shipstation]
base_url = "http://127.0.0.1:9"
api_key_env = "L_SS_KEY"
api_secret_env = "L_SS_SECRET"
[connections.accounts]
shipping_expense = "5.1.3"
accrued_shipping = "2.1.1"
journal = "MISC"
[connections.policy]
company_timezone = "UTC"
"#,
                erp = db.url
            ),
        )
        .unwrap();
        let store = shipledger_store::open(&store_url).await.unwrap();
        store.ensure_connection("acme-tryton", jiff::Timestamp::now()).await.unwrap();
        Books { db, config, store_url, _dir: dir }
    }

    /// One unit of GBP is `rate` units of `currency` from `day` on (Tryton's way).
    async fn rate(&self, currency: &str, day: Date, rate: &str) {
        let id = self.db.seed["currencies"][currency].as_i64().unwrap();
        self.db
            .send(reqwest::Method::POST, "currency.currency.rate", json!({"currency": id, "date": tryton_date(day), "rate": {"__class__": "Decimal", "decimal": rate}}))
            .await;
    }

    async fn label(&self, id: i64, carrier: &str, day: Date, minor: i64, currency: Currency) {
        let store = shipledger_store::open(&self.store_url).await.unwrap();
        let at = day.at(12, 0, 0, 0).to_zoned(TimeZone::UTC).unwrap().timestamp();
        let label = LabelFacts {
            shipment_key: format!("label:{id}"),
            erp_id: None,
            ss_order_id: id + 1000,
            carrier: carrier.into(),
            service: None,
            ship_date: Some(day),
            label_created_at: at,
        };
        let mut change = Change::new("acme-tryton", jiff::Timestamp::now());
        change.cost_entries.push(NewCostEntry::first(label, Charge::Postage, Money::from_minor(minor, currency), CostSource::ShipstationV2));
        store.commit(change).await.unwrap();
    }

    fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_shipledger"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("L_ERP_KEY", &self.db.key)
            .env("L_SS_KEY", "unused")
            .env("L_SS_SECRET", "unused")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    fn post(&self) -> String {
        let (ok, text) = self.cli(&["costs", "post"]);
        assert!(ok, "costs post: {text}");
        text
    }

    fn open_exceptions(&self, kind: &str) -> Vec<Value> {
        let (ok, text) = self.cli(&["exceptions", "list", "--format", "json"]);
        assert!(ok, "{text}");
        let all: Value = serde_json::from_str(&text).unwrap();
        all.as_array().unwrap().iter().filter(|e| e["kind"] == kind).cloned().collect()
    }

    /// shipledger's moves in Tryton (their description ends with the batch key).
    async fn moves(&self) -> Vec<Value> {
        let v = self
            .db
            .get(
                "account.move",
                &["state", "date", "description", "period.state", "lines.debit", "lines.credit", "lines.account.code", "lines.amount_second_currency", "lines.second_currency.code"],
                Some(json!([["description", "like", "%/costs/%"]])),
            )
            .await;
        v.as_array().cloned().unwrap_or_default()
    }

    async fn close_period(&self, day: Date) {
        let periods = self
            .db
            .get("account.period", &["state"], Some(json!([["type", "=", "standard"], ["start_date", "<=", tryton_date(day)], ["end_date", ">=", tryton_date(day)]])))
            .await;
        let id = periods[0]["id"].as_i64().expect("a period holds the day");
        self.db.button(&format!("account.period/{id}/close")).await;
    }
}

/// `minor ÷ rate` rounded half-even, the rate given with four decimals: the story's
/// own arithmetic (Tryton: amount × rate(GBP) ÷ rate(currency), rate(GBP) = 1).
fn to_gbp(minor: i64, rate: &str) -> i64 {
    let den: i128 = rate.replace('.', "").parse().unwrap();
    assert_eq!(rate.split('.').nth(1).map(str::len), Some(4), "four decimals");
    let n = i128::from(minor) * 10_000;
    let (q, r) = (n / den, n % den);
    let q = match (2 * r).cmp(&den) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q % 2),
    };
    i64::try_from(q).unwrap()
}

fn sum(lines: &[Value], side: &str) -> rust_decimal::Decimal {
    lines.iter().map(|l| dec(&l[side])).sum()
}

/// A Tryton GBP amount in pence (it must be whole pence).
fn pence(d: rust_decimal::Decimal) -> i64 {
    let m = Money::from_decimal(d, Currency::GBP, shipledger_core::money::Rounding::HalfEven).unwrap();
    assert_eq!(m.to_decimal(), d.normalize(), "{d} is whole pence");
    m.minor()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_months_of_usd_and_eur_labels_post_in_gbp_to_the_penny_on_a_real_tryton_and_a_closed_month_is_never_written() {
    let Some(db) = TrytonDb::create("ledger") else { return };
    let books = Books::open(db).await;
    let today = jiff::Timestamp::now().to_zoned(TimeZone::UTC).date();
    let m2 = today.first_of_month().checked_sub(jiff::Span::new().months(1)).unwrap();
    let m1 = m2.checked_sub(jiff::Span::new().months(1)).unwrap();
    let day = |start: Date, n: i64| start.checked_add(jiff::Span::new().days(n)).unwrap();
    let (d1, d2, d3, d4) = (day(m1, 5), day(m1, 6), day(m2, 9), day(m2, 23));
    // Tryton's rates (1 GBP = rate units), one per currency and day; d4 has no EUR rate
    // (the seed's is of 2000, far older than fx_max_age).
    let rates: BTreeMap<(Date, &str), &str> = BTreeMap::from([
        ((d1, "USD"), "1.2731"),
        ((d1, "EUR"), "1.1642"),
        ((d2, "USD"), "1.2698"),
        ((d2, "EUR"), "1.1655"),
        ((d3, "USD"), "1.2513"),
        ((d3, "EUR"), "1.1721"),
        ((d4, "USD"), "1.2467"),
    ]);
    for ((d, c), r) in &rates {
        books.rate(c, *d, r).await;
    }
    let labels: Vec<(i64, &str, Date, i64, Currency)> = vec![
        (1, "ups", d1, 1_234, Currency::USD),
        (2, "ups", d1, 1, Currency::USD),
        (3, "dhl", d1, 999, Currency::EUR),
        (4, "ups", d2, 73_350, Currency::USD),
        (5, "dhl", d3, 405, Currency::EUR),
        (6, "ups", d3, 1_015, Currency::USD),
        (7, "ups", d4, 640, Currency::USD),
        (8, "dhl", d4, 333, Currency::EUR),
    ];
    for (id, carrier, d, minor, cur) in &labels {
        books.label(*id, carrier, *d, *minor, *cur).await;
    }
    let base = |d: Date, minor: i64, cur: Currency| to_gbp(minor, rates[&(d, cur.code())]);
    let has_rate = |d: Date, cur: Currency| rates.contains_key(&(d, cur.code()));

    // 1. Three windows post; d4's waits for its EUR rate, with one finance exception.
    let said = books.post();
    assert!(said.contains("3 journal(s) posted"), "{said}");
    assert!(said.contains("wait for a rate"), "{said}");
    let moves = books.moves().await;
    assert_eq!(moves.len(), 3, "{moves:#?}");
    let mut want: BTreeMap<Date, i64> = BTreeMap::new();
    for (_, _, d, minor, cur) in labels.iter().filter(|(_, _, d, _, cur)| has_rate(*d, *cur)) {
        *want.entry(*d).or_default() += base(*d, *minor, *cur);
    }
    for m in &moves {
        let date: Date = format!("{}-{:02}-{:02}", m["date"]["year"], m["date"]["month"].as_i64().unwrap(), m["date"]["day"].as_i64().unwrap()).parse().unwrap();
        let lines = m["lines"].as_array().unwrap();
        assert_eq!(m["state"], "posted", "{m}");
        assert_eq!(sum(lines, "debit"), sum(lines, "credit"), "balanced: {m}");
        assert_eq!(pence(sum(lines, "debit")), want[&date], "the move of {date} is its labels converted at Tryton's rates, to the penny");
        assert!(lines.iter().all(|l| l["second_currency"]["code"] == "USD" || l["second_currency"]["code"] == "EUR"), "every line has its second currency: {m}");
    }
    let fx = books.open_exceptions("fx_rate_missing");
    assert_eq!(fx.len(), 1, "{fx:#?}");
    assert_eq!(fx[0]["owner"], "finance");
    assert!(fx[0]["record"].as_str().unwrap().contains(&format!("EUR/GBP {d4}")), "{}", fx[0]);

    // 2. Running again posts nothing new.
    let said = books.post();
    assert!(said.contains("0 journal(s) posted"), "{said}");
    assert_eq!(books.moves().await.len(), 3);

    // 3. The EUR rate arrives: d4 posts once, and the exception closes by itself.
    books.rate("EUR", d4, "1.1702").await;
    let said = books.post();
    assert!(said.contains("1 journal(s) posted"), "{said}");
    assert!(books.open_exceptions("fx_rate_missing").is_empty());
    let moves = books.moves().await;
    assert_eq!(moves.len(), 4);
    let d4_pence = base(d4, 640, Currency::USD) + to_gbp(333, "1.1702");
    assert!(
        moves.iter().any(|m| pence(sum(m["lines"].as_array().unwrap(), "debit")) == d4_pence),
        "{moves:#?}"
    );

    // 4. Finance closes the first month; a late label of d1 is not written there but
    // lands in the second month's first day, carried over, at d1's rate.
    books.close_period(d1).await;
    books.label(9, "ups", d1, 2_500, Currency::USD).await;
    let said = books.post();
    assert!(said.contains("1 journal(s) posted"), "{said}");
    let moves = books.moves().await;
    assert_eq!(moves.len(), 5);
    let first_of_m2 = json!({"__class__": "date", "year": m2.year(), "month": m2.month(), "day": 1});
    let carried: Vec<&Value> = moves.iter().filter(|m| m["date"] == first_of_m2).collect();
    assert_eq!(carried.len(), 1, "{moves:#?}");
    assert_eq!(pence(sum(carried[0]["lines"].as_array().unwrap(), "debit")), base(d1, 2_500, Currency::USD));
    assert!(carried[0]["description"].as_str().unwrap().contains("1 carried over"), "{}", carried[0]);
    let closed_moves: usize = moves
        .iter()
        .filter(|m| m["date"]["month"].as_i64() == Some(i64::from(m1.month())) && m["date"]["year"].as_i64() == Some(i64::from(m1.year())))
        .count();
    assert_eq!(closed_moves, 2, "the closed month holds only what was posted before it closed");
    let (ok, text) = books.cli(&["costs", "batches", "--format", "json"]);
    assert!(ok, "{text}");
    let batches: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(batches.as_array().unwrap().len(), 5);
    assert!(batches.as_array().unwrap().iter().all(|b| b["state"] == "posted" && b["erp_move_id"].is_string()), "{batches:#}");

    // 5. And again: nothing.
    books.post();
    assert_eq!(books.moves().await.len(), 5);
}
