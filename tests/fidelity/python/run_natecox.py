"""Drive PyPI `shipstation` 0.1.3 (natecox/pyshipstation, unmodified) against
the sandbox.

Base URL: an attribute, `ss = ShipStation(key, secret); ss.url = SANDBOX_URL`.
Auth: requests' `auth=(key, secret)`, i.e. Basic base64(key:secret).

What it sends (read from its source):
- submit_orders(): POST /orders/createorder with `ShipStationOrder.as_dict()`,
  in which every scalar is str()-ed ("quantity": "2", "unitPrice": "19.99",
  "amountPaid": "0"), unset fields are null, `orderKey` is null unless given,
  the item key goes out as "key" (not lineItemKey), shipTo/billTo carry no
  "country" (ShipStationAddress drops it), and orderDate is Python isoformat
  with microseconds. Real ShipStation (Json.NET) coerces numeric strings.
- fetch_orders(): GET /orders/list?... -- a path ShipStation does not have
  (known bug): the real API answers 404.
- get()/post(): generic helpers (used here for /stores and webhooks).
The helpers return nothing, so the exchanges are read from a recorder around
requests' Session.send (fidelity_common.Run).

Prints one JSON object of observations; exits 1 on anything unexpected.
"""

from __future__ import annotations

import json
import warnings
from decimal import Decimal

warnings.filterwarnings("ignore", category=SyntaxWarning)  # `is not 2` in the package

from fidelity_common import Run, order_summary  # noqa: E402
from shipstation.api import (  # noqa: E402
    ShipStation,
    ShipStationAddress,
    ShipStationItem,
    ShipStationOrder,
    ShipStationWeight,
)

run = Run("shipstation==0.1.3")


def build_order(key: str | None, number: str, notes: str) -> ShipStationOrder:
    order = ShipStationOrder(order_key=key, order_number=number)
    order.set_status("awaiting_shipment")
    order.set_order_date("2024-03-01T10:00:00.000000")
    order.set_customer_details(username="alan@example.com", email="alan@example.com")
    address = ShipStationAddress(
        name="Alan Turing",
        street1="2 Bletchley Park",
        city="Milton Keynes",
        state="",
        postal_code="MK3 6EB",
        country="GB",  # dropped by the client (ShipStationAddress never stores it)
    )
    order.set_shipping_address(address)
    order.set_billing_address(ShipStationAddress(name="Alan Turing"))
    item = ShipStationItem(
        key="line-1", sku="ENIGMA-1", name="Rotor", quantity=2, unit_price=Decimal("19.99")
    )
    item.set_weight(ShipStationWeight(units="ounces", value=8))
    order.add_item(item)
    order.customer_notes = notes
    return order


def main() -> None:
    obs = run.obs
    obs["baseUrlOverride"] = "ss.url = SANDBOX_URL"

    wrong = ShipStation(key=run.key, secret=run.secret + "-wrong")
    wrong.url = run.base
    obs["wrongSecretStatus"] = run.exchange(lambda: wrong.get(endpoint="/orders"))["status"]

    ss = ShipStation(key=run.key, secret=run.secret)
    ss.url = run.base

    number = f"NATE-{run.tag}"
    key = f"nate-key-{run.tag}"

    def submit(order: ShipStationOrder) -> dict:
        ss.orders = [order]
        return run.exchange(ss.submit_orders)

    # 1. Create with an orderKey, every value a string.
    created = submit(build_order(key, number, "created by natecox"))
    body = run.expect_ok("submit_orders (create)", created)
    obs["order"] = {
        "number": number,
        "key": key,
        "sentQuantity": created["sent"]["items"][0].get("quantity"),
        "sentUnitPrice": created["sent"]["items"][0].get("unitPrice"),
        "created": order_summary(body),
    }

    # 2. Upsert: same orderKey, customerNotes changed.
    upserted = run.expect_ok("submit_orders (upsert)", submit(build_order(key, number, "upserted by natecox")))
    obs["order"]["upserted"] = order_summary(upserted)

    # 3. No orderKey, sent twice: ShipStation creates two orders (the #1 cause
    #    of duplicates). The sandbox must do the same, not dedupe by number.
    keyless_number = f"NATE-{run.tag}-NOKEY"
    first = run.expect_ok("submit_orders (no key, 1)", submit(build_order(None, keyless_number, "no key")))
    second = run.expect_ok("submit_orders (no key, 2)", submit(build_order(None, keyless_number, "no key")))
    obs["keyless"] = {
        "number": keyless_number,
        "first": order_summary(first),
        "second": order_summary(second),
    }

    # 4. The client's known bug: fetch_orders() calls GET /orders/list.
    bug = run.exchange(lambda: ss.fetch_orders(parameters={"order_number": number}))
    obs["fetchOrdersBug"] = {
        "path": bug["path"],
        "query": bug["query"],
        "status": bug["status"],
        "body": bug["body"],
    }

    # 5. Read back with plain HTTP what the client cannot list.
    listed = run.api("GET", "/orders", params={"orderNumber": number, "pageSize": 500})
    if listed.status_code != 200:
        run.fail(f"GET /orders?orderNumber= failed with HTTP {listed.status_code}", body=listed.text)
    orders = listed.json().get("orders") or []
    obs["listByNumber"] = {
        "total": listed.json().get("total"),
        "orders": [order_summary(o) for o in orders],
    }

    # 6. Generic helpers: GET /stores, webhooks subscribe + list; delete with
    #    plain HTTP (the client has no DELETE).
    stores = run.exchange(lambda: ss.get(endpoint="/stores"))
    obs["stores"] = {"status": stores["status"], "isArray": isinstance(stores["body"], list)}

    target = f"http://127.0.0.1:9/hooks/natecox-{run.tag}"
    subscribe = run.exchange(
        lambda: ss.post(
            endpoint="/webhooks/subscribe",
            data=json.dumps(
                {"target_url": target, "event": "SHIP_NOTIFY", "store_id": None, "friendly_name": "natecox"}
            ),
        )
    )
    sub_body = run.expect_ok("POST /webhooks/subscribe", subscribe)
    hooks = run.expect_ok("GET /webhooks", run.exchange(lambda: ss.get(endpoint="/webhooks")))
    webhook_id = sub_body.get("id") if isinstance(sub_body, dict) else None
    deleted = run.api("DELETE", f"/webhooks/{webhook_id}")
    after = run.api("GET", "/webhooks")
    obs["webhook"] = {
        "targetUrl": target,
        "id": webhook_id,
        "listShape": "object.webhooks" if isinstance(hooks, dict) and "webhooks" in hooks else type(hooks).__name__,
        "listedUrls": [h.get("Url") for h in (hooks.get("webhooks") if isinstance(hooks, dict) else []) or []],
        "listedIds": [h.get("WebHookID") for h in (hooks.get("webhooks") if isinstance(hooks, dict) else []) or []],
        "deleteStatus": deleted.status_code,
        "listedIdsAfterDelete": [h.get("WebHookID") for h in (after.json().get("webhooks") or [])]
        if after.status_code == 200
        else None,
    }

    # 7. The product its orders made: the line weighed "8" (a string) ounces.
    products = run.expect_ok(
        "GET /products?sku=", run.exchange(lambda: ss.get(endpoint="/products", payload={"sku": "ENIGMA-1"}))
    )
    obs["product"] = next(
        (p for p in products.get("products") or [] if p.get("sku") == "ENIGMA-1"), None
    )
    obs["sentWeight"] = created["sent"]["items"][0].get("weight")


run.finish(main)
