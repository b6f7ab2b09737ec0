//! A private Tryton database for one test: a clone of the seeded template that
//! `scripts/tryton.sh up` builds, served by the trytond it started, dropped again
//! when the test ends. Shared by the connector tests and the end-to-end tests
//! (`#[path]`-included).
//!
//! Where Tryton is: `TRYTON_URL`, `TRYTON_API_KEY` and `TRYTON_SEED_JSON` from the
//! environment, else `.cache/tryton/env` (written by `scripts/tryton.sh up`).
//! Without either, the test says SKIPPED loudly, unless `CI` is set, where it fails:
//! CI must run the Tryton tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

pub struct TrytonDb {
    /// `http://127.0.0.1:PORT/DATABASE`: what `erp.url` names.
    pub url: String,
    pub key: String,
    /// The seed's summary (ids of the company, currencies, products, sales, ...).
    pub seed: Value,
    pub name: String,
    script: PathBuf,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root")
}

fn from_env_file(name: &str) -> Option<String> {
    let text = std::fs::read_to_string(root().join(".cache/tryton/env")).ok()?;
    text.lines().find_map(|l| {
        let l = l.trim().strip_prefix("export ").unwrap_or(l.trim());
        let (k, v) = l.split_once('=')?;
        (k == name).then(|| v.trim_matches(|c| c == '"' || c == '\'').to_string())
    })
}

fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).or_else(|| from_env_file(name))
}

impl TrytonDb {
    /// A fresh clone, or `None` (with a loud message) when no Tryton is provisioned
    /// and this is not CI.
    pub fn create(label: &str) -> Option<TrytonDb> {
        let (Some(base), Some(key), Some(seed_path)) = (setting("TRYTON_URL"), setting("TRYTON_API_KEY"), setting("TRYTON_SEED_JSON")) else {
            if std::env::var_os("CI").is_some() {
                panic!("CI runs the Tryton tests but no Tryton is provisioned: run `scripts/tryton.sh up` (scripts/test does)");
            }
            eprintln!("SKIPPED {label}: no Tryton provisioned; run `scripts/tryton.sh up` (scripts/test does) to run the Tryton tests");
            return None;
        };
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!(
            "sl_{}_{}_{}_{nanos}",
            label.chars().filter(|c| c.is_ascii_alphanumeric()).take(20).collect::<String>().to_lowercase(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let script = root().join("scripts/tryton.sh");
        let out = Command::new("bash").arg(&script).arg("clone").arg(&name).output().expect("bash runs scripts/tryton.sh");
        assert!(
            out.status.success(),
            "scripts/tryton.sh clone {name} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let seed: Value = serde_json::from_str(&std::fs::read_to_string(&seed_path).expect("the seed summary")).expect("seed JSON");
        Some(TrytonDb { url: format!("{}/{name}", base.trim_end_matches('/')), key, seed, name, script })
    }

    /// The seed's id at a JSON pointer, e.g. `/products/MUG-WHT/id`.
    pub fn id(&self, pointer: &str) -> i64 {
        self.seed.pointer(pointer).and_then(Value::as_i64).unwrap_or_else(|| panic!("seed has no {pointer}"))
    }
}

impl TrytonDb {
    fn b64(v: &Value) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE.encode(v.to_string())
    }

    /// Read straight from Tryton's REST API (company 1), as an auditor would.
    pub async fn get(&self, path: &str, fields: &[&str], domain: Option<Value>) -> Value {
        let mut url = reqwest::Url::parse(&format!("{}/rest/model/{path}", self.url)).unwrap();
        {
            let mut q = url.query_pairs_mut();
            for f in fields {
                q.append_pair("f", f);
            }
            if let Some(d) = &domain {
                q.append_pair("d", &Self::b64(d));
            }
        }
        let r = reqwest::Client::new()
            .get(url)
            .bearer_auth(&self.key)
            .header("X-Tryton-Context", Self::b64(&serde_json::json!({"company": 1})))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Press a button in Tryton directly, as a clerk (or a crashed run) would have.
    pub async fn button(&self, path: &str) {
        let r = reqwest::Client::new()
            .post(format!("{}/rest/model/{path}", self.url))
            .bearer_auth(&self.key)
            .header("X-Tryton-Context", Self::b64(&serde_json::json!({"company": 1})))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    /// Delete a record straight through Tryton's REST API, e.g.
    /// `stock.package.type/1`, as an administrator would.
    pub async fn delete(&self, path: &str) {
        let r = reqwest::Client::new()
            .delete(format!("{}/rest/model/{path}", self.url))
            .bearer_auth(&self.key)
            .header("X-Tryton-Context", Self::b64(&serde_json::json!({"company": 1})))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "DELETE {path}: {}", r.status());
    }

    /// Send `body` to Tryton's REST API as a clerk would (company 1): `POST
    /// model/MODEL` creates, `PUT model/MODEL/ID` writes, `POST model/MODEL/ID/BUTTON`
    /// presses a button. Answers Tryton's JSON.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = reqwest::Client::new()
            .request(method.clone(), format!("{}/rest/model/{path}", self.url))
            .bearer_auth(&self.key)
            .header("X-Tryton-Context", Self::b64(&serde_json::json!({"company": 1})))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Run a Python snippet with proteus bound to this database (in-process trytond,
    /// as the seed does), for what the REST API cannot do: wizards. `DB` and `CONF`
    /// are set; `Model` and `Wizard` are imported.
    pub fn proteus(&self, snippet: &str) {
        let cache = root().join(".cache/tryton");
        let script = format!(
            "import sys\nfrom proteus import Model, Wizard, config\nDB, CONF = sys.argv[1], sys.argv[2]\nconfig.set_trytond(DB, config_file=CONF)\n{snippet}\n"
        );
        let out = Command::new(cache.join("venv/bin/python"))
            .arg("-c")
            .arg(&script)
            .arg(&self.name)
            .arg(cache.join("trytond.conf"))
            .output()
            .expect("the Tryton venv's python runs");
        assert!(out.status.success(), "proteus on {}:\n{snippet}\n{}", self.name, String::from_utf8_lossy(&out.stderr));
    }

    /// A new sale placed and confirmed as a clerk would (the customer by name, lines
    /// as product code and quantity, GBP, the seed's payment term and carrier), with
    /// this invoice method (`order`, `fulfillment` or `manual`); processing, its
    /// shipment waiting, its invoice (if the method makes one now) a draft and not
    /// paid. Answers the sale id.
    pub async fn place_sale(&self, reference: &str, customer: &str, lines: &[(&str, u32)], invoice_method: &str) -> i64 {
        let lines: Vec<String> = lines.iter().map(|(code, q)| format!("({code:?}, {q})")).collect();
        self.proteus(&format!(
            "Sale = Model.get('sale.sale')\n\
             party, = Model.get('party.party').find([('name', '=', {customer:?})])\n\
             term = Model.get('account.invoice.payment_term').find([])[0]\n\
             carrier = Model.get('carrier').find([])[0]\n\
             sale = Sale(party=party, payment_term=term, carrier=carrier, invoice_method={invoice_method:?},\n\
                 shipment_method='order', reference={reference:?})\n\
             for code, quantity in [{}]:\n\
             \x20   line = sale.lines.new()\n\
             \x20   line.product, = Model.get('product.product').find([('code', '=', code)])\n\
             \x20   line.quantity = quantity\n\
             sale.click('quote')\n\
             sale.click('confirm')\n\
             sale.reload()\n\
             assert sale.state == 'processing' and sale.shipment_state == 'waiting', (sale.state, sale.shipment_state)",
            lines.join(", ")
        ));
        let found = self.get("sale.sale", &["id"], Some(serde_json::json!([["reference", "=", reference]]))).await;
        found[0]["id"].as_i64().unwrap_or_else(|| panic!("sale {reference} was placed: {found}"))
    }

    /// The customer invoices and credit notes of a sale (through their lines' origin,
    /// a credit note's through the line it credits), as Tryton has them: id, state and
    /// each line's origin and quantity.
    pub async fn invoices_of(&self, sale: i64) -> Vec<Value> {
        let domain = serde_json::json!(["OR",
            ["lines.origin.sale", "=", sale, "sale.line"],
            ["lines.origin.origin.sale", "=", sale, "account.invoice.line", "sale.line"]]);
        let v = self.get("account.invoice", &["state", "type", "lines.origin", "lines.quantity"], Some(domain)).await;
        v.as_array().cloned().unwrap_or_default()
    }

    /// Post a draft (or validated) invoice, as the accountant does.
    pub async fn post_invoice(&self, invoice: i64) {
        self.button(&format!("account.invoice/{invoice}/post")).await
    }

    /// Credit a posted invoice with Tryton's credit wizard, as the accountant does.
    /// With `refund` the credit note is posted and the invoice cancelled; without, the
    /// credit note stays a draft, keeps only the line crediting `keep` (a sale line
    /// id) with `quantity` (negative), and is posted.
    pub fn credit_invoice(&self, invoice: i64, refund: bool, keep: Option<(i64, i32)>) {
        let trim = match keep {
            Some((sale_line, quantity)) => format!(
                "for line in list(credit.lines):\n\
                 \x20   if line.origin.origin.id != {sale_line}:\n\
                 \x20       credit.lines.remove(line)\n\
                 \x20   else:\n\
                 \x20       line.quantity = {quantity}\n\
                 credit.save()\n"
            ),
            None => String::new(),
        };
        let post = if refund { "" } else { "credit.click('post')\n" };
        self.proteus(&format!(
            "Invoice = Model.get('account.invoice')\n\
             invoice = Invoice({invoice})\n\
             credit = Wizard('account.invoice.credit', [invoice])\n\
             credit.form.with_refund = {}\n\
             credit.execute('credit')\n\
             credit, = Invoice.find([('lines.origin.invoice', '=', {invoice}, 'account.invoice.line')])\n\
             {trim}{post}\
             credit.reload()\n\
             assert credit.state in ('posted', 'paid'), credit.state",
            if refund { "True" } else { "False" }
        ));
    }

    /// The outbound shipments of a sale, as Tryton has them.
    pub async fn shipments_of(&self, sale: i64) -> Vec<Value> {
        let v = self
            .get(
                "stock.shipment.out",
                &["state", "reference", "shipping_reference", "packages.shipping_reference"],
                Some(serde_json::json!([["moves.origin.sale", "=", sale, "sale.line"]])),
            )
            .await;
        v.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for TrytonDb {
    fn drop(&mut self) {
        if std::env::var_os("SHIPLEDGER_KEEP_TRYTON_DB").is_some() {
            eprintln!("kept Tryton database {} ({})", self.name, self.url);
            return;
        }
        let _ = Command::new("bash").arg(&self.script).arg("drop").arg(&self.name).output();
    }
}
