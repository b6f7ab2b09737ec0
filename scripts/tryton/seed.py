"""Seed a fresh Tryton 8.2 database for shipledger's tests.

Usage: python seed.py DB CONF   (run with the venv that scripts/tryton.sh builds)

Runs through proteus straight against trytond (no server needed) and builds
the world the connector tests expect:

* a GBP company "Acme Brands Ltd" with the English minimal chart of accounts,
  fiscal years (with monthly periods and invoice sequences) for last year and
  this year;
* GBP, USD and EUR; USD 1.27 and EUR 1.17 dated 2000-01-01 plus a more recent
  USD 1.25 dated 30 days before today (rates mean 1 GBP = rate units);
* goods with codes and kg weights (TEE-BLK-M 0.2, MUG-WHT 0.45, HOOD-GRY-L
  0.7) and one without a weight (GIFT-CARD-BOX), opening stock in STO;
* a carrier (Royal Mail Tracked 48), a package type (Box);
* customers with complete addresses (countries GB and US are created if the
  country table is empty);
* four sales in state processing / shipment_state waiting, each with one
  waiting stock.shipment.out:
    SHOP-1001 paid, one line            SHOP-1003 unpaid
    SHOP-1002 paid, three lines         SHOP-1004 paid, with the weightless
                                                   product, shipped to the US
  "Paid" is real evidence, made the way a web shop does it with the
  sale_payment module: an account.payment (manual payment journal, origin =
  the sale) that succeeded for the whole total_amount, which confirms the
  sale; the sale's invoice is then posted and, through the payment journal's
  clearing account (account_payment_clearing), reconciled, so
  sale.invoice_state == 'paid'.  The unpaid sale is confirmed by hand and its
  invoice posted but not paid (invoice_state 'awaiting payment');
* a REST key (res.user.application, application 'rest', validated) for admin.

The last line on stdout is a JSON summary (ids, numbers, references, key).
"""
import datetime as dt
import json
import sys
from decimal import Decimal

from proteus import Model
from proteus import config as proteus_config

if len(sys.argv) != 3:
    sys.exit('usage: seed.py DB CONF')
DB, CONF = sys.argv[1], sys.argv[2]
proteus_config.set_trytond(DB, config_file=CONF)

# The modules ship these helpers with their scenario tests; they drive the
# same wizards a user would (company setup, chart creation).
from trytond.modules.account.tests.tools import (  # noqa: E402
    create_chart, create_fiscalyear, get_accounts)
from trytond.modules.account_invoice.tests.tools import (  # noqa: E402
    create_payment_term, set_fiscalyear_invoice_sequences)
from trytond.modules.company.tests.tools import (  # noqa: E402
    create_company, get_company)

TODAY = dt.date.today()
OLD_RATE_DATE = dt.date(2000, 1, 1)
RECENT_RATE_DATE = TODAY - dt.timedelta(days=30)


def log(*args):
    print('seed:', *args, file=sys.stderr, flush=True)


def one(model, domain):
    records = Model.get(model).find(domain)
    if len(records) != 1:
        raise SystemExit(
            f'seed: expected one {model} for {domain}, found {len(records)}')
    return records[0]


# --- countries ---------------------------------------------------------------
Country = Model.get('country.country')
Subdivision = Model.get('country.subdivision')


def country(code, name, code3, numeric):
    found = Country.find([('code', '=', code)])
    if found:
        return found[0]
    record = Country(code=code, name=name, code3=code3, code_numeric=numeric)
    record.save()
    return record


gb = country('GB', 'United Kingdom', 'GBR', '826')
us = country('US', 'United States', 'USA', '840')
ny = (Subdivision.find([('code', '=', 'US-NY')]) or [None])[0]
if ny is None:
    ny = Subdivision(country=us, code='US-NY', name='New York', type='state')
    ny.save()

# --- currencies and rates ----------------------------------------------------
Currency = Model.get('currency.currency')
Rate = Model.get('currency.currency.rate')


def currency(code, name, symbol, numeric):
    found = Currency.find([('code', '=', code)])
    if found:
        return found[0]
    record = Currency(
        code=code, name=name, symbol=symbol, numeric_code=numeric,
        rounding=Decimal('0.01'), digits=2)
    record.save()
    return record


def rate(cur, date, value):
    record = Rate(currency=cur, date=date, rate=Decimal(value))
    record.save()
    return record


gbp = currency('GBP', 'Pound Sterling', '£', '826')
usd = currency('USD', 'US Dollar', '$', '840')
eur = currency('EUR', 'Euro', '€', '978')
rate(gbp, OLD_RATE_DATE, '1')
usd_old = rate(usd, OLD_RATE_DATE, '1.27')
usd_recent = rate(usd, RECENT_RATE_DATE, '1.25')
eur_old = rate(eur, OLD_RATE_DATE, '1.17')
log(f'rates: USD 1.27 on {OLD_RATE_DATE}, USD 1.25 on {RECENT_RATE_DATE}, '
    f'EUR 1.17 on {OLD_RATE_DATE} (1 GBP = rate units)')

# --- company, chart, fiscal years ---------------------------------------------
Party = Model.get('party.party')
company_party = Party(name='Acme Brands Ltd')
company_address = company_party.addresses[0]
company_address.street = 'Unit 4, Riverside Works'
company_address.postal_code = 'M4 6BF'
company_address.city = 'Manchester'
company_address.country = gb
company_party.save()
create_company(party=company_party, currency=gbp)
company = get_company()
create_chart(company)
accounts = get_accounts(company)

fiscal_years = []
for year in (TODAY.year - 1, TODAY.year):
    fy = create_fiscalyear(
        company, today=(dt.date(year, 1, 1), dt.date(year, 12, 31)))
    fy = set_fiscalyear_invoice_sequences(fy)
    fy.save()
    fy.click('create_period')
    fiscal_years.append(fy)
current_period = one('account.period', [
        ('company', '=', company.id), ('type', '=', 'standard'),
        ('start_date', '<=', TODAY), ('end_date', '>=', TODAY)])
log(f'fiscal years {[f.name for f in fiscal_years]}, '
    f'period for today: {current_period.name}')

payment_term = create_payment_term()
payment_term.save()

misc_journal = one('account.journal', [('code', '=', 'MISC')])
cash_journal = one('account.journal', [('code', '=', 'CASH')])

# Accounts a shipping-cost journal uses: the carrier's invoices are an expense
# (5.1.3 Services) owed to the carrier (2.1.1 Trade Payables, party required).
shipping_expense = one('account.account', [('code', '=', '5.1.3')])

# Card payments land on a clearing account until the invoice reconciles them.
Account = Model.get('account.account')
card_clearing = Account(
    name='Card Payments Clearing', code='1.1.9',
    parent=accounts['cash'].parent, type=accounts['cash'].type,
    reconcile=True, deferral=True)
card_clearing.save()
PaymentJournal = Model.get('account.payment.journal')
card_journal = PaymentJournal(
    name='Web shop card payments', process_method='manual', currency=gbp,
    clearing_account=card_clearing, clearing_journal=cash_journal)
card_journal.save()

# --- products ---------------------------------------------------------------
unit = one('product.uom', [('name', '=', 'Unit')])
kg = one('product.uom', [('symbol', '=', 'kg')])
Category = Model.get('product.category')
goods_category = Category(
    name='Merchandise', accounting=True,
    account_expense=accounts['expense'], account_revenue=accounts['revenue'])
goods_category.save()

Template = Model.get('product.template')


def product(code, name, price, weight, type_='goods'):
    template = Template(
        name=name, code=code, type=type_, default_uom=unit, salable=True,
        list_price=Decimal(price), account_category=goods_category)
    if weight is not None:
        template.weight = weight
        template.weight_uom = kg
    template.save()
    record, = template.products
    return record


products = {
    'TEE-BLK-M': product('TEE-BLK-M', 'T-shirt black M', '25.00', 0.2),
    'MUG-WHT': product('MUG-WHT', 'Mug white', '12.00', 0.45),
    'HOOD-GRY-L': product('HOOD-GRY-L', 'Hoodie grey L', '55.00', 0.7),
    'GIFT-CARD-BOX': product('GIFT-CARD-BOX', 'Gift card box', '5.00', None),
}
shipping_service = product(
    'SHIP-RM48', 'Royal Mail Tracked 48', '3.95', None, type_='service')

carrier_party = Party(name='Royal Mail')
carrier_party.save()
Carrier = Model.get('carrier')
carrier = Carrier(party=carrier_party, carrier_product=shipping_service)
carrier.save()

PackageType = Model.get('stock.package.type')
box = PackageType(name='Box')
box.save()

# --- opening stock -------------------------------------------------------------
storage = one('stock.location', [('code', '=', 'STO')])
warehouse = one('stock.location', [('code', '=', 'WH')])
Inventory = Model.get('stock.inventory')
inventory = Inventory(location=storage, date=TODAY)
for code, quantity in [('TEE-BLK-M', 100), ('MUG-WHT', 50),
        ('HOOD-GRY-L', 20), ('GIFT-CARD-BOX', 30)]:
    line = inventory.lines.new()
    line.product = products[code]
    line.quantity = quantity
inventory.click('confirm')

# --- customers and sales -----------------------------------------------------------
Sale = Model.get('sale.sale')
Payment = Model.get('account.payment')
Invoice = Model.get('account.invoice')


def customer(name, street, postal_code, city, country_, subdivision=None,
        email=None):
    party = Party(name=name)
    address = party.addresses[0]
    address.street = street
    address.postal_code = postal_code
    address.city = city
    address.country = country_
    address.subdivision = subdivision
    if email:
        party.contact_mechanisms.new(type='email', value=email)
    party.save()
    return party


def pay(sale):
    """Capture the whole sale total like a web shop's card payment."""
    payment = Payment(
        journal=card_journal, kind='receivable', party=sale.party,
        origin=sale, amount=sale.total_amount, date=TODAY,
        reference=f'card {sale.reference}')
    payment.click('submit')
    payment.click('process_wizard')  # the "Process Payments" wizard
    payment.click('succeed')
    payment.reload()
    # The clearing move (debit card clearing, credit receivable) is created
    # in draft; post it like the clearing cron would.
    if payment.clearing_move and payment.clearing_move.state == 'draft':
        payment.clearing_move.click('post')
    return payment


def place(reference, party, lines, paid):
    sale = Sale(
        party=party, currency=gbp, payment_term=payment_term,
        invoice_method='order', shipment_method='order', carrier=carrier,
        reference=reference, description=f'Web order {reference}')
    for code, quantity in lines:
        line = sale.lines.new()
        line.product = products[code]  # on_change fills unit, price, ...
        line.quantity = quantity
    sale.click('quote')
    if paid:
        pay(sale)  # sale_payment confirms the sale once payments cover it
    else:
        sale.click('confirm')
    sale.reload()
    if sale.state != 'processing':
        raise SystemExit(f'seed: {reference} is {sale.state}, not processing')
    invoice, = sale.invoices
    invoice.click('post')
    sale.reload()
    expected = 'paid' if paid else 'awaiting payment'
    if sale.invoice_state != expected:
        raise SystemExit(
            f'seed: {reference} invoice_state {sale.invoice_state}, '
            f'expected {expected}')
    shipment, = sale.shipments
    if sale.shipment_state != 'waiting' or shipment.state != 'waiting':
        raise SystemExit(
            f'seed: {reference} shipment_state {sale.shipment_state}, '
            f'shipment {shipment.state}')
    log(f'sale {sale.id} {sale.number} {reference} total '
        f'{sale.total_amount} paid={paid} invoice_state={sale.invoice_state} '
        f'shipment {shipment.id} {shipment.number}')
    return sale


alice = customer('Alice Smith', '1 High Street', 'SW1A 1AA', 'London', gb,
    email='alice@example.com')
bob = customer('Bob Jones', 'Flat 2\n18 Deansgate', 'M3 2BW', 'Manchester',
    gb, email='bob@example.com')
carol = customer('Carol White', '7 Rose Street', 'EH2 2PR', 'Edinburgh', gb)
dan = customer('Dan Brown', '350 5th Avenue', '10118', 'New York', us,
    subdivision=ny, email='dan@example.com')

sales = [
    place('SHOP-1001', alice, [('MUG-WHT', 1)], paid=True),
    place('SHOP-1002', bob, [('TEE-BLK-M', 2), ('MUG-WHT', 1),
            ('HOOD-GRY-L', 1)], paid=True),
    place('SHOP-1003', carol, [('HOOD-GRY-L', 1)], paid=False),
    place('SHOP-1004', dan, [('GIFT-CARD-BOX', 1), ('TEE-BLK-M', 1)],
        paid=True),
]

# --- REST key ------------------------------------------------------------------------
Application = Model.get('res.user.application')
admin = one('res.user', [('login', '=', 'admin')])
application = Application(user=admin, application='rest')
application.save()  # the key defaults to 128 random hex characters
if application.state != 'validated':
    application.click('validate_')
    application.reload()
log(f'REST key for admin created ({application.state})')

summary = {
    'database': DB,
    'built_on': TODAY.isoformat(),
    'rest_key': application.key,
    'company': {'id': company.id, 'name': company.party.name,
        'currency_id': gbp.id},
    'currencies': {'GBP': gbp.id, 'USD': usd.id, 'EUR': eur.id},
    'rates': [
        {'currency': 'USD', 'date': OLD_RATE_DATE.isoformat(),
            'rate': '1.27', 'id': usd_old.id},
        {'currency': 'USD', 'date': RECENT_RATE_DATE.isoformat(),
            'rate': '1.25', 'id': usd_recent.id},
        {'currency': 'EUR', 'date': OLD_RATE_DATE.isoformat(),
            'rate': '1.17', 'id': eur_old.id},
    ],
    'accounts': {kind: {'id': a.id, 'code': a.code, 'name': a.name}
        for kind, a in sorted(accounts.items())},
    'shipping_expense_account': {'id': shipping_expense.id,
        'code': shipping_expense.code, 'name': shipping_expense.name},
    'journals': {'MISC': misc_journal.id, 'CASH': cash_journal.id},
    'payment_journal_id': card_journal.id,
    'period_today': {'id': current_period.id, 'name': current_period.name},
    'fiscal_years': [{'id': f.id, 'name': f.name} for f in fiscal_years],
    'locations': {'warehouse': warehouse.id, 'storage': storage.id,
        'output': warehouse.output_location.id,
        'customer': one('stock.location', [('code', '=', 'CUS')]).id},
    'carrier_id': carrier.id,
    'carrier_party_id': carrier_party.id,
    'package_type_id': box.id,
    'countries': {'GB': gb.id, 'US': us.id},
    'products': {code: {'id': p.id, 'template_id': p.template.id,
            'weight_kg': p.template.weight}
        for code, p in products.items()},
    'shipping_product_id': shipping_service.id,
    'sales': [{
            'id': s.id, 'number': s.number, 'reference': s.reference,
            'paid': s.invoice_state == 'paid',
            'invoice_state': s.invoice_state,
            'total_amount': str(s.total_amount),
            'shipment_ids': [sh.id for sh in s.shipments],
            'party': s.party.name,
            } for s in sales],
}
print(json.dumps(summary, indent=None, sort_keys=True))
