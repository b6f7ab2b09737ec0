"""Drive PyPI `shipstation-api-wrapper` 0.1.2 (unmodified) against the sandbox.

Base URL: the client takes it as a constructor argument,
`ShipStationClient(api_key, base_url=SANDBOX_URL)`. Quirk: it sends
`Authorization: Basic {api_key}` verbatim, so `api_key` must already be
base64(key:secret).

What it sends (read from its source): GET /orders, GET /orders/{id},
GET /orders?orderNumber=, POST /orders/createorder with a caller's whole order
dict (its add_note / activate_saturday_delivery helpers re-post an order that
was fetched with GET — the documented "GET, modify, POST the full object"
update), POST /orders/holduntil, GET /accounts/listtags, GET /customers,
GET /products. Its `shipments.list()` is buggy: it calls GET /orders.

`run_api_wrapper.py gaps` instead orders for three customers in different
states and countries, and lists them through `customers.list` with its
stateCode / countryCode / sortBy / sortDir parameters.

Prints one JSON object of observations; exits 1 on anything unexpected.
"""

from __future__ import annotations

import base64
import copy
import sys

from fidelity_common import Run, order_summary
from shipstation_api_wrapper.api import ShipStationClient

run = Run("shipstation-api-wrapper==0.1.2")


def new_order(number: str, key: str) -> dict:
    return {
        "orderNumber": number,
        "orderKey": key,
        "orderDate": "2024-03-01T10:00:00.0000000",
        "paymentDate": "2024-03-01T10:05:00.0000000",
        "orderStatus": "awaiting_shipment",
        "customerEmail": "grace@example.com",
        "billTo": {"name": "Grace Hopper"},
        "shipTo": {
            "name": "Grace Hopper",
            "street1": "1 Compiler Way",
            "city": "Arlington",
            "state": "VA",
            "postalCode": "22201",
            "country": "US",
            "residential": True,
        },
        "items": [
            {
                "lineItemKey": "line-1",
                "sku": "BUG-1",
                "name": "First actual bug",
                "weight": {"value": 1, "units": "ounces"},
                "quantity": 1,
                "unitPrice": 5.0,
            }
        ],
        "amountPaid": 5.0,
        "internalNotes": "",
        "advancedOptions": {"saturdayDelivery": False},
    }


def main() -> None:
    obs = run.obs
    obs["baseUrlOverride"] = "ShipStationClient(api_key, base_url=SANDBOX_URL)"

    # Wrong credentials (the client's own auth header, with a wrong secret).
    wrong = ShipStationClient(
        base64.b64encode(f"{run.key}:{run.secret}-wrong".encode()).decode(), base_url=run.base
    )
    obs["wrongSecretStatus"] = run.exchange(lambda: wrong.orders.list())["status"]

    ss = ShipStationClient(run.basic(), base_url=run.base)

    number = f"WRAP-{run.tag}-1"
    key = f"wrap-key-{run.tag}"
    sibling_number = f"WRAP-{run.tag}-10"  # starts with `number`
    sibling_key = f"wrap-key-{run.tag}-10"

    # 1. Create through the client's add_note (POST /orders/createorder).
    created = run.expect_ok(
        "create via add_note",
        run.exchange(lambda: ss.orders.add_note("created-by-wrapper", new_order(number, key))),
    )
    sibling = run.expect_ok(
        "create sibling via add_note",
        run.exchange(lambda: ss.orders.add_note("sibling", new_order(sibling_number, sibling_key))),
    )
    obs["order"] = {"number": number, "key": key, "created": order_summary(created)}
    obs["sibling"] = {"number": sibling_number, "key": sibling_key, "created": order_summary(sibling)}
    order_id = created["orderId"]

    # 2. GET it back, then re-post the fetched object with a note added: the
    #    sandbox must take its own GET output (read-only fields and all) as an
    #    update of the same order, matched by orderKey / orderId.
    fetched = run.expect_ok("GET /orders/{id}", run.exchange(lambda: ss.orders.get_by_id(order_id)))
    obs["fetched"] = order_summary(fetched)
    sent_copy = copy.deepcopy(fetched)
    upserted = run.expect_ok(
        "upsert via add_note", run.exchange(lambda: ss.orders.add_note("second-note", sent_copy))
    )
    obs["order"]["upserted"] = order_summary(upserted)

    fetched2 = run.expect_ok("GET /orders/{id} (2)", run.exchange(lambda: ss.orders.get_by_id(order_id)))
    saturday = run.expect_ok(
        "upsert via activate_saturday_delivery",
        run.exchange(lambda: ss.orders.activate_saturday_delivery(fetched2, True)),
    )
    obs["order"]["saturday"] = order_summary(saturday)

    # 3. List by orderNumber (a starts-with filter in ShipStation).
    by_number = run.expect_ok(
        "GET /orders?orderNumber=", run.exchange(lambda: ss.orders.get_by_number(number))
    )
    obs["listByNumber"] = {
        "total": by_number.get("total"),
        "page": by_number.get("page"),
        "pages": by_number.get("pages"),
        "orders": [order_summary(o) for o in by_number.get("orders") or []],
    }
    listed = run.expect_ok("GET /orders", run.exchange(lambda: ss.orders.list()))
    obs["listAll"] = {"total": listed.get("total"), "count": len(listed.get("orders") or [])}

    # 4. Hold until a date: POST /orders/holduntil -> on_hold.
    hold = run.exchange(lambda: ss.orders.hold(sibling["orderId"], "2030-01-01"))
    after_hold = run.expect_ok(
        "GET /orders/{id} after hold", run.exchange(lambda: ss.orders.get_by_id(sibling["orderId"]))
    )
    obs["hold"] = {"status": hold["status"], "body": hold["body"], "orderStatusAfter": after_hold.get("orderStatus")}

    # 5. The rest of the client's surface: status codes only.
    tags = run.exchange(lambda: ss.tags.list())
    obs["listTags"] = {"status": tags["status"], "isArray": isinstance(tags["body"], list)}
    customers = run.exchange(lambda: ss.customers.list(pageSize=5))
    obs["customers"] = {
        "status": customers["status"],
        "hasCustomersKey": isinstance(customers["body"], dict) and "customers" in customers["body"],
    }
    products = run.exchange(lambda: ss.products.list_products())
    obs["products"] = {
        "status": products["status"],
        "hasProductsKey": isinstance(products["body"], dict) and "products" in products["body"],
    }
    # The client's shipments.list() really calls GET /orders (its bug).
    shipments = run.exchange(lambda: ss.shipments.list())
    obs["shipmentsListBug"] = {"path": shipments["path"], "status": shipments["status"]}


def customer_order(number: str, name: str, email: str, state: str, country: str) -> dict:
    order = new_order(number, f"wrap-key-{number}")
    order["customerEmail"] = email
    order["customerUsername"] = email
    order["billTo"] = {"name": name}
    order["shipTo"] = {**order["shipTo"], "name": name, "state": state, "country": country}
    return order


def gaps() -> None:
    obs = run.obs
    ss = ShipStationClient(run.basic(), base_url=run.base)
    people = [
        ("Grace Hopper", "grace@example.com", "VA", "US"),
        ("Ada Lovelace", "ada@example.com", "", "GB"),
        ("Katherine Johnson", "katherine@example.com", "WV", "US"),
    ]
    for n, (name, email, state, country) in enumerate(people):
        run.expect_ok(
            f"create the order of {name}",
            run.exchange(
                lambda: ss.orders.add_note("gaps", customer_order(f"WRAP-{run.tag}-C{n}", name, email, state, country))
            ),
        )

    def names(what: str, **params) -> list:
        body = run.expect_ok(what, run.exchange(lambda: ss.customers.list(**params)))
        return [c.get("name") for c in body.get("customers") or []]

    obs["customers"] = {
        "all": names("GET /customers"),
        "us": names("GET /customers?countryCode=US", countryCode="US"),
        "usVirginia": names("GET /customers?stateCode=VA&countryCode=US", stateCode="VA", countryCode="US"),
        "byNameDesc": names("GET /customers?sortBy=Name&sortDir=DESC", sortBy="Name", sortDir="DESC"),
        "byNameAsc": names("GET /customers?sortBy=Name", sortBy="Name"),
        "byCreateDesc": names("GET /customers?sortBy=CreateDate&sortDir=DESC", sortBy="CreateDate", sortDir="DESC"),
    }
    bad = run.exchange(lambda: ss.customers.list(sortBy="Email"))
    obs["customers"]["badSortStatus"] = bad["status"]


run.finish(gaps if sys.argv[1:] == ["gaps"] else main)
