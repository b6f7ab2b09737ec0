//! Cost journals, against the sandbox ERP (GBP): two months of USD and EUR labels
//! become one balanced journal per posting window in GBP, whose amounts the story
//! recomputes from the label costs and the rates on its own, to the penny; nothing
//! posts twice; a window waiting for a EUR rate posts nothing and shows one finance
//! exception until the rate is there, then posts once; a closed period is never
//! written and its costs land in the next open one, also when it closes after the
//! batch was planned; a late entry for a posted window is carried into the next.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use shipledger_core::cost::{Charge, CostSource, LabelFacts, NewCostEntry, entry_key};
use shipledger_core::exception::{ExceptionKind, Owner};
use shipledger_core::fx::RateSource;
use shipledger_core::journal::Window;
use shipledger_core::{Currency, Money};
use shipledger_engine::config::FixedRate;
use shipledger_engine::flows::{fx, journals};
use shipledger_erp::sandbox::SandboxErpClient;
use shipledger_sandbox::erp::{SandboxErp, SandboxErpConfig, SandboxErpHandle};
use shipledger_store::{BatchState, Change, CostBatchFilter, CostBatchRecord, ExceptionFilter, ExceptionState, JobFilter, JobKind};

use crate::helpers::World;

/// The sandbox ERP as the connection's ERP, with journal accounts, daily windows in
/// UTC and rates from an ECB-layout file the story writes.
pub(crate) struct Ledger {
    pub(crate) erp: SandboxErpHandle,
    pub(crate) rates: PathBuf,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Ledger {
    pub(crate) async fn on(w: &mut World) -> Ledger {
        let erp = SandboxErp::start(SandboxErpConfig { api_key: "k".into(), ..Default::default() }, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rates = dir.path().join("eurofxref-hist.csv");
        std::fs::write(&rates, "Date,USD,GBP,\n").unwrap();
        let conn = &mut w.engine.connections[0];
        conn.erp = Arc::new(SandboxErpClient::new(&erp.base_url(), "k").unwrap());
        // The sandbox chart's accounts: Stamps.com prepaid, the other carriers accrued.
        conn.accounts = Some(shipledger_sandbox::erp::model::chart_accounts());
        conn.policy.fx_sources = vec![RateSource::File];
        conn.policy.fx_rates_file = Some(rates.clone());
        conn.policy.company_timezone = Some(TimeZone::UTC);
        Ledger { erp, rates, _dir: dir, http: reqwest::Client::new() }
    }

    /// ECB rows: per date, USD and GBP per one EUR.
    pub(crate) fn write_rates(&self, rows: &[(Date, &str, &str)]) {
        let mut text = String::from("Date,USD,GBP,\n");
        for (d, usd, gbp) in rows {
            text.push_str(&format!("{d},{usd},{gbp},\n"));
        }
        std::fs::write(&self.rates, text).unwrap();
    }

    async fn period(&self, month: &str, state: &str) {
        let r = self.http.put(format!("{}/_sandbox/periods/{month}", self.erp.base_url())).json(&serde_json::json!({"state": state})).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    pub(crate) fn journals(&self) -> Vec<shipledger_sandbox::erp::model::Journal> {
        self.erp.snapshot().journals.into_values().collect()
    }
}

/// A label's postage as an entry, made at noon UTC on `day`.
async fn postage(w: &World, id: i64, carrier: &str, day: Date, minor: i64, currency: Currency) -> String {
    let at = day.at(12, 0, 0, 0).to_zoned(TimeZone::UTC).unwrap().timestamp();
    let label = LabelFacts {
        shipment_key: format!("label:{id}"),
        erp_id: Some(format!("SO-{id}")),
        ss_order_id: id + 1000,
        carrier: carrier.into(),
        service: None,
        ship_date: Some(day),
        label_created_at: at,
    };
    let key = entry_key(&label.shipment_key, &Charge::Postage, 0);
    let mut change = Change::new("acme-uk", jiff::Timestamp::now());
    change.cost_entries.push(NewCostEntry::first(label, Charge::Postage, Money::from_minor(minor, currency), CostSource::ShipstationV2));
    w.store.commit(change).await.unwrap();
    key
}

/// What `costs post` does: convert, plan, post.
async fn post(w: &World, until: Option<Date>) -> journals::BatchReport {
    journals::post_now(&w.engine, &w.engine.connections[0], until).await.unwrap().1
}

async fn batches(w: &World) -> Vec<CostBatchRecord> {
    w.store.list_cost_batches(CostBatchFilter { connection: Some("acme-uk".into()), ..Default::default() }).await.unwrap()
}

async fn open(w: &World, kind: ExceptionKind) -> Vec<shipledger_store::ExceptionRecord> {
    let filter = ExceptionFilter { connection: Some("acme-uk".into()), kind: Some(kind), state: Some(ExceptionState::Open), ..Default::default() };
    w.store.list_exceptions(filter).await.unwrap()
}

/// `minor × num ÷ den` rounded half-even, in integers: the story's own arithmetic.
fn half_even(minor: i64, num: i128, den: i128) -> i64 {
    let n = i128::from(minor) * num;
    let (q, r) = (n / den, n % den);
    let q = match (2 * r.abs()).cmp(&den) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + n.signum(),
        std::cmp::Ordering::Equal => q + (q % 2),
    };
    i64::try_from(q).unwrap()
}

/// The first of the month `back` months before today's (UTC).
fn month_start(back: i64) -> Date {
    let today = jiff::Timestamp::now().to_zoned(TimeZone::UTC).date();
    today.first_of_month().checked_sub(jiff::Span::new().months(back)).unwrap()
}

fn day(start: Date, n: i64) -> Date {
    start.checked_add(jiff::Span::new().days(n)).unwrap()
}

crate::stories! {
    async fn two_months_of_usd_and_eur_labels_post_one_balanced_journal_per_window_to_the_penny(w: World) {
        let ledger = Ledger::on(&mut w).await;
        let (m1, m2) = (month_start(2), month_start(1));
        // Per EUR: USD and GBP (ECB layout); a label converts at its ship date's row.
        let days = [day(m1, 4), day(m1, 5), day(m2, 9), m2.last_of_month()];
        let usd_per_eur = ["1.0812", "1.0799", "1.0565", "1.0401"];
        let gbp_per_eur = ["0.8571", "0.8566", "0.8321", "0.8299"];
        ledger.write_rates(&days.iter().zip(usd_per_eur).zip(gbp_per_eur).map(|((d, u), g)| (*d, u, g)).collect::<Vec<_>>());
        // (label, carrier, day, minor, currency)
        let labels: Vec<(i64, &str, usize, i64, Currency)> = vec![
            (9101, "ups", 0, 1_234, Currency::USD),
            (9102, "ups", 0, 1, Currency::USD),
            (9103, "stamps_com", 0, 999, Currency::EUR),
            (9104, "ups", 1, 73_350, Currency::USD),
            (9105, "ups", 2, 405, Currency::EUR),
            (9106, "stamps_com", 2, 1_015, Currency::USD),
            (9107, "ups", 3, 640, Currency::USD),
            (9108, "ups", 3, 333, Currency::EUR),
        ];
        for (id, carrier, d, minor, cur) in &labels {
            postage(&w, *id, carrier, days[*d], *minor, *cur).await;
        }
        let report = post(&w, None).await;
        assert_eq!(report.posted.len(), 4, "{report:?}");
        assert!(report.waiting_for_rate.is_empty() && report.failed.is_empty(), "{report:?}");

        // Recomputed from the label costs and the file's rates: GBP = amount × GBP/EUR ÷ CUR/EUR.
        // Every rate has four decimals: 1.0812 is 10812 / 10000.
        let scale = |s: &str| -> i128 { s.replace('.', "").parse().unwrap() };
        let mut want: BTreeMap<Date, i64> = BTreeMap::new();
        for (_, _, d, minor, cur) in &labels {
            let base = if *cur == Currency::EUR {
                half_even(*minor, scale(gbp_per_eur[*d]), 10_000)
            } else {
                half_even(*minor, scale(gbp_per_eur[*d]), scale(usd_per_eur[*d]))
            };
            *want.entry(days[*d]).or_default() += base;
        }
        let journals = ledger.journals();
        assert_eq!(journals.len(), 4, "one journal per window that had labels");
        for j in &journals {
            let debit: i64 = j.lines.iter().map(|l| l.debit.minor()).sum();
            let credit: i64 = j.lines.iter().map(|l| l.credit.minor()).sum();
            assert_eq!(debit, credit, "{} balances", j.key);
            assert_eq!(debit, want[&j.date], "{} equals its entries converted at the recorded rates", j.key);
            assert!(j.posted);
            assert!(j.lines.iter().all(|l| l.original.is_some_and(|o| o.currency() != Currency::GBP)), "every line carries its second-currency amount");
        }
        // Per window, the store's batch says the same, with the ERP's move read back.
        let stored = batches(&w).await;
        assert_eq!(stored.len(), 4);
        for b in &stored {
            assert_eq!(b.state, BatchState::Posted);
            assert_eq!(b.total.minor(), want[&b.window.end]);
            let j = journals.iter().find(|j| j.key == b.batch_key).expect("the ERP holds it under the batch key");
            assert_eq!(b.erp_move_id.as_deref(), Some(j.id.as_str()));
        }
        // The day-0 window: ups USD, stamps_com EUR; lines per carrier × currency.
        let first = journals.iter().find(|j| j.date == days[0]).unwrap();
        let accounts: Vec<(&str, Option<Money>)> = first.lines.iter().map(|l| (l.account.as_str(), l.original)).collect();
        assert!(accounts.contains(&("1.1.9", Some(Money::from_minor(999, Currency::EUR)))), "stamps_com is prepaid: {accounts:?}");
        assert!(accounts.contains(&("2.1.1", Some(Money::from_minor(1_235, Currency::USD)))), "ups accrues: {accounts:?}");
        let timeline = w.store.timeline("acme-uk", "cost_batch", &stored[0].batch_key).await.unwrap();
        let kinds: Vec<&str> = timeline.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, vec!["batch_planned", "journal_posted"]);

        // Re-running the period posts nothing new.
        let again = post(&w, Some(jiff::Timestamp::now().to_zoned(TimeZone::UTC).date())).await;
        assert!(again.planned.is_empty() && again.posted.is_empty(), "{again:?}");
        assert_eq!(ledger.journals().len(), 4);
        assert_eq!(ledger.erp.stats()["journals"], 4);
    }

    async fn a_window_missing_its_eur_rate_posts_nothing_until_the_rate_is_added_then_posts_once(w: World) {
        let ledger = Ledger::on(&mut w).await;
        let d = day(month_start(1), 2);
        // USD converts at a fixed rate; the file's only row is ten days old, so EUR has
        // no usable rate (older than fx_max_age).
        let policy = &mut w.engine.connections[0].policy;
        policy.fx_sources = vec![RateSource::File, RateSource::Fixed];
        policy.fx_fixed = vec![FixedRate { from: Currency::USD, to: Currency::GBP, rate: "0.79".parse().unwrap(), date: d }];
        std::fs::write(&ledger.rates, format!("Date,USD,GBP,\n{},1.0565,0.8321,\n", day(d, -10))).unwrap();
        postage(&w, 9201, "ups", d, 1_000, Currency::USD).await;
        postage(&w, 9202, "ups", d, 1_000, Currency::EUR).await;
        let report = post(&w, None).await;
        assert!(report.posted.is_empty() && report.planned.is_empty(), "{report:?}");
        assert_eq!(report.waiting_for_rate.values().sum::<usize>(), 1, "the window waits for its EUR entry: {report:?}");
        let fx = open(&w, ExceptionKind::FxRateMissing).await;
        assert_eq!(fx.len(), 1, "one finance exception for the pair and date: {fx:?}");
        assert_eq!((fx[0].owner, fx[0].record_id.as_str()), (Owner::Finance, format!("EUR/GBP {d}").as_str()));
        assert!(ledger.journals().is_empty(), "nothing posted while a rate is missing");
        assert!(batches(&w).await.is_empty());
        assert!(post(&w, None).await.posted.is_empty(), "still nothing on a second run");

        std::fs::write(&ledger.rates, format!("Date,USD,GBP,\n{d},1.0565,0.8321,\n")).unwrap();
        let report = post(&w, None).await;
        assert_eq!(report.posted.len(), 1, "{report:?}");
        assert!(open(&w, ExceptionKind::FxRateMissing).await.is_empty(), "the exception closed by itself");
        let j = ledger.journals();
        assert_eq!(j.len(), 1);
        let debit: i64 = j[0].lines.iter().map(|l| l.debit.minor()).sum();
        // 10.00 USD × 0.79 (fixed) + 10.00 EUR × 0.8321 ÷ 1 (the file, added late).
        assert_eq!(debit, half_even(1_000, 79, 100) + half_even(1_000, 8_321, 10_000));
        assert!(post(&w, None).await.posted.is_empty(), "posted once");
        assert_eq!(ledger.journals().len(), 1);
    }

    async fn a_closed_period_is_never_written_and_its_costs_land_in_the_next_open_period(w: World) {
        let ledger = Ledger::on(&mut w).await;
        let (m1, m2) = (month_start(2), month_start(1));
        let (early, later) = (day(m1, 10), day(m2, 3));
        std::fs::write(&ledger.rates, format!("Date,USD,GBP,\n{early},1.08,0.86,\n{later},1.06,0.83,\n")).unwrap();
        ledger.period(&format!("{:04}-{:02}", m1.year(), m1.month()), "closed").await;
        let late = postage(&w, 9301, "ups", early, 500, Currency::USD).await;
        postage(&w, 9302, "ups", later, 700, Currency::USD).await;
        let report = post(&w, None).await;
        assert_eq!(report.posted.len(), 2, "{report:?}");
        let j = ledger.journals();
        assert!(j.iter().all(|j| (j.date.year(), j.date.month()) != (m1.year(), m1.month())), "nothing was written into the closed period");
        // The late entry goes into the next open window: the first day of the next month.
        let stored = batches(&w).await;
        let carried_batch = stored.iter().find(|b| b.window.start == m2).expect("a batch on the first open day");
        assert_eq!((carried_batch.entry_count, carried_batch.carried_over), (1, 1));
        let members = w.store.cost_batch_members("acme-uk", &carried_batch.batch_key).await.unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!((members[0].entry_key.as_str(), members[0].carried_from), (late.as_str(), Some(Window { start: early, end: early })));
        let carried_journal = j.iter().find(|j| j.key == carried_batch.batch_key).unwrap();
        let debit: i64 = carried_journal.lines.iter().map(|l| l.debit.minor()).sum();
        assert_eq!(debit, half_even(500, 86, 108), "the late entry keeps its own day's rate");
        let own = stored.iter().find(|b| b.window.start == later).unwrap();
        assert_eq!((own.entry_count, own.carried_over, own.total.minor()), (1, 0, half_even(700, 83, 106)));
        // Reopened, the month still gets nothing: its entry is posted already.
        ledger.period(&format!("{:04}-{:02}", m1.year(), m1.month()), "open").await;
        assert!(post(&w, None).await.posted.is_empty());
        assert_eq!(ledger.journals().len(), 2);
    }

    async fn a_period_that_closes_after_its_batch_was_planned_is_not_written_and_the_batch_moves_on(w: World) {
        let ledger = Ledger::on(&mut w).await;
        let d = day(month_start(2), 20);
        std::fs::write(&ledger.rates, format!("Date,USD,GBP,\n{d},1.08,0.86,\n")).unwrap();
        postage(&w, 9401, "ups", d, 900, Currency::USD).await;
        let conn = &w.engine.connections[0];
        fx::convert(&w.engine, conn).await.unwrap();
        let planned = journals::plan(&w.engine, conn, None).await.unwrap();
        assert_eq!(planned.planned.len(), 1);
        // Finance closes the month before the posting job runs.
        ledger.period(&format!("{:04}-{:02}", d.year(), d.month()), "closed").await;
        let ran = journals::run(&w.engine, conn).await.unwrap();
        assert_eq!(ran.withdrawn, planned.planned, "{ran:?}");
        assert!(ledger.journals().is_empty(), "nothing written into the closed period");
        let again = post(&w, None).await;
        assert_eq!(again.posted.len(), 1, "{again:?}");
        let all = batches(&w).await;
        assert_eq!(all.iter().map(|b| (b.revision, b.state)).collect::<Vec<_>>().len(), 2);
        assert_eq!(all.iter().filter(|b| b.state == BatchState::Withdrawn).count(), 1);
        let posted = all.iter().find(|b| b.state == BatchState::Posted).unwrap();
        assert!(posted.window.start > d, "posted in a later, open window: {}", posted.window);
        assert_eq!(posted.carried_over, 1);
        assert_eq!(ledger.journals().len(), 1);
        let jobs = w.store.list_jobs(JobFilter { kind: Some(JobKind::PostJournal), ..Default::default() }).await.unwrap();
        assert!(jobs.iter().all(|j| j.state == shipledger_store::JobState::Done), "{jobs:?}");
    }

    async fn a_late_entry_for_a_posted_window_is_carried_into_the_next_open_window(w: World) {
        let ledger = Ledger::on(&mut w).await;
        let m = month_start(1);
        let (d1, d2) = (day(m, 5), day(m, 6));
        std::fs::write(&ledger.rates, format!("Date,USD,GBP,\n{d1},1.08,0.86,\n{d2},1.07,0.85,\n")).unwrap();
        postage(&w, 9501, "ups", d1, 1_000, Currency::USD).await;
        assert_eq!(post(&w, None).await.posted.len(), 1);
        // A label of day 1 seen late, and one of day 2.
        postage(&w, 9502, "ups", d1, 200, Currency::USD).await;
        postage(&w, 9503, "ups", d2, 300, Currency::USD).await;
        let report = post(&w, None).await;
        assert_eq!(report.posted.len(), 1, "{report:?}");
        let all = batches(&w).await;
        let second = all.iter().find(|b| b.window.start == d2).expect("day 2's batch");
        assert_eq!((second.entry_count, second.carried_over), (2, 1));
        let j = ledger.journals().into_iter().find(|j| j.date == d2).unwrap();
        let debit: i64 = j.lines.iter().map(|l| l.debit.minor()).sum();
        assert_eq!(debit, half_even(200, 86, 108) + half_even(300, 85, 107));
        assert!(j.memo.contains("1 carried over"), "{}", j.memo);
    }
}
