"""Shared plumbing for the PyPI-client fidelity scripts (run_*.py).

Reads SANDBOX_URL / SANDBOX_KEY / SANDBOX_SECRET, records the HTTP exchanges a
third-party client makes (without changing them), talks to the sandbox control
API and ShipStation with plain `requests` where a client has no method, and
prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import traceback
import uuid
from typing import Any, Callable
from urllib.parse import urlsplit

import requests
import requests.sessions


class Run:
    def __init__(self, client: str) -> None:
        self.base = self._need("SANDBOX_URL").rstrip("/")
        self.key = self._need("SANDBOX_KEY")
        self.secret = self._need("SANDBOX_SECRET")
        self.tag = uuid.uuid4().hex[:10]
        self.obs: dict[str, Any] = {"client": client, "calls": []}
        self._install_recorder()

    @staticmethod
    def _need(name: str) -> str:
        value = os.environ.get(name)
        if not value:
            print(json.dumps({"error": f"environment variable {name} is not set"}))
            sys.exit(1)
        return value

    # -- recording ---------------------------------------------------------
    def _install_recorder(self) -> None:
        """Wrap requests' Session.send so every exchange a client makes is
        recorded (method, path, status, JSON body) and no request can leave the
        sandbox. The request itself is sent unchanged."""
        original = requests.sessions.Session.send
        run = self

        def send(session, request, **kwargs):  # type: ignore[no-untyped-def]
            if not request.url.startswith(run.base + "/"):
                run.fail(f"a client tried to call {request.url}, outside the sandbox")
            response = original(session, request, **kwargs)
            try:
                body = response.json()
            except ValueError:
                body = response.text
            parts = urlsplit(request.url)
            run.last = {
                "method": request.method,
                "path": parts.path,
                "query": parts.query,
                "status": response.status_code,
                "body": body,
                "sent": _decode(request.body),
            }
            run.obs["calls"].append(
                {"method": request.method, "path": parts.path, "status": response.status_code}
            )
            return response

        requests.sessions.Session.send = send  # type: ignore[method-assign]
        self.last: dict[str, Any] | None = None

    def exchange(self, fn: Callable[[], Any]) -> dict[str, Any]:
        """Run one client call and return the exchange it made."""
        self.last = None
        fn()
        if self.last is None:
            self.fail("the client made no HTTP request")
        return self.last

    # -- plain HTTP (for what a client cannot do) ----------------------------
    def basic(self) -> str:
        return base64.b64encode(f"{self.key}:{self.secret}".encode()).decode()

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method, self.base + path, auth=(self.key, self.secret), timeout=10, **kwargs
        )

    def control(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, self.base + path, json=body, timeout=10)

    # -- output --------------------------------------------------------------
    def fail(self, message: str, **extra: Any) -> None:
        self.obs["error"] = message
        self.obs.update(extra)
        print(json.dumps(self.obs, default=str))
        sys.exit(1)

    def expect_ok(self, what: str, ex: dict[str, Any]) -> Any:
        if not 200 <= ex["status"] < 300:
            self.fail(f"{what} failed with HTTP {ex['status']}", body=ex["body"], sent=ex["sent"])
        return ex["body"]

    def finish(self, body: Callable[[], None]) -> None:
        try:
            body()
        except SystemExit:
            raise
        except Exception:  # noqa: BLE001 - report anything unexpected, then fail
            self.fail("unexpected exception:\n" + traceback.format_exc())
        print(json.dumps(self.obs, default=str))
        sys.exit(0)


def _decode(body: Any) -> Any:
    if body is None:
        return None
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        return json.loads(body)
    except (TypeError, ValueError):
        return body


def order_summary(order: dict[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(order, dict):
        return None
    return {
        "orderId": order.get("orderId"),
        "orderKey": order.get("orderKey"),
        "orderNumber": order.get("orderNumber"),
        "orderStatus": order.get("orderStatus"),
        "internalNotes": order.get("internalNotes"),
        "customerNotes": order.get("customerNotes"),
        "saturdayDelivery": (order.get("advancedOptions") or {}).get("saturdayDelivery"),
        "quantities": [i.get("quantity") for i in order.get("items") or []],
        "unitPrices": [i.get("unitPrice") for i in order.get("items") or []],
    }
