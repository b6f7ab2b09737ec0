// Drives the third-party npm client `shipstation-node` (1.5.6, unmodified)
// against the shipledger sandbox and prints ONE JSON object of observations on
// stdout. crates/cli/tests/it/fidelity.rs asserts on them.
//
// Env: SANDBOX_URL (e.g. http://127.0.0.1:PORT, no trailing slash needed),
//      SANDBOX_KEY, SANDBOX_SECRET; optional FIDELITY_NODE_MODULES (defaults to
//      <repo>/.cache/fidelity/node/node_modules), WEBHOOK_WAIT_MS (default 10000).
//
// Base URL: shipstation-node hard-codes https://ssapi.shipstation.com/ and has
// no constructor option. BaseAPI.request() reads `this.baseURL` on every call
// and resources use relative urls ("orders/createorder"), so we set
// `client.v1.baseURL = SANDBOX_URL + "/"` (a plain JS property). Every request
// is also checked to resolve under SANDBOX_URL, so nothing can reach the real
// ShipStation.
//
// Exit code: 0 when every call behaved as the real API would let a caller
// expect (including the client's known markshipped bug getting a 404);
// 1 with {"error": ...} on stdout otherwise. Assertions about *values* are the
// Rust test's job; this script fails only on things it cannot continue past.

import { register } from "node:module";
import http from "node:http";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

register("./esm-extensionless.mjs", import.meta.url);

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules =
  process.env.FIDELITY_NODE_MODULES ??
  path.resolve(here, "../../../.cache/fidelity/node/node_modules");

const BASE = need("SANDBOX_URL").replace(/\/+$/, "");
const KEY = need("SANDBOX_KEY");
const SECRET = need("SANDBOX_SECRET");
const WEBHOOK_WAIT_MS = Number(process.env.WEBHOOK_WAIT_MS ?? "10000");

function need(name) {
  const v = process.env[name];
  if (!v) fail(`environment variable ${name} is not set`);
  return v;
}

const obs = { client: "shipstation-node@1.5.6", baseUrlOverride: "client.v1.baseURL", calls: [] };

function fail(message, extra = {}) {
  process.stdout.write(JSON.stringify({ ...obs, error: message, ...extra }) + "\n");
  process.exit(1);
}

const { default: ShipStation } = await import(
  pathToFileURL(path.join(nodeModules, "shipstation-node/dist/index.js")).href
).catch((e) => fail(`cannot load shipstation-node from ${nodeModules}: ${e}`));

function makeClient(apiKey, apiSecret) {
  const client = new ShipStation({ credentials: { v1: { apiKey, apiSecret } } });
  client.v1.baseURL = BASE + "/";
  // Record every request the client makes (method, path, status) and refuse
  // any that would leave the sandbox. Wrapping keeps the client's own request
  // building (auth header, baseURL join, params) untouched.
  const inner = client.v1.request;
  client.v1.request = async (req) => {
    const target = new URL(req.url, client.v1.baseURL);
    if (!target.href.startsWith(BASE + "/")) {
      fail(`client tried to call ${target.href}, outside the sandbox`);
    }
    const call = { method: req.method, path: target.pathname, status: null };
    obs.calls.push(call);
    try {
      const data = await inner(req);
      call.status = "2xx";
      return data;
    } catch (e) {
      call.status = e?.response?.status ?? null;
      throw e;
    }
  };
  return client;
}

// Call through the client; on an HTTP error return {status, body} instead of
// throwing so the caller can decide whether the status was expected.
async function attempt(fn) {
  try {
    return { status: 200, body: await fn() };
  } catch (e) {
    if (e?.response) return { status: e.response.status, body: e.response.data };
    throw e;
  }
}

async function must(what, fn) {
  const r = await attempt(fn);
  if (r.status !== 200) fail(`${what} failed with HTTP ${r.status}`, { body: r.body });
  return r.body;
}

async function control(method, p, body) {
  const res = await fetch(BASE + p, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, body: json };
}

// A webhook receiver so deliveries (thin {resource_url, resource_type}) can be seen.
const deliveries = [];
const receiver = http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    let parsed = body;
    try {
      parsed = JSON.parse(body);
    } catch {
      // keep raw
    }
    deliveries.push({ method: req.method, path: req.url, body: parsed });
    res.writeHead(200).end();
  });
});
await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
const hookUrl = `http://127.0.0.1:${receiver.address().port}/hooks/shipstation-node`;

const run = Date.now().toString(36) + Math.random().toString(36).slice(2, 6);
const orderKey = `node-key-${run}`;
const orderNumber = `NODE-${run}`;

function order({ key, number, internalNotes, customField1 = null }) {
  // A full order: createorder has no partial update, every upsert sends it all.
  return {
    orderNumber: number,
    orderKey: key,
    orderDate: "2024-03-01T10:00:00.0000000",
    paymentDate: "2024-03-01T10:05:00.0000000",
    orderStatus: "awaiting_shipment",
    customerUsername: "ada@example.com",
    customerEmail: "ada@example.com",
    billTo: { name: "Ada Lovelace" },
    shipTo: {
      name: "Ada Lovelace",
      street1: "12 Analytical Row",
      city: "London",
      state: "",
      postalCode: "NW1 6XE",
      country: "GB",
      phone: "+44 20 7946 0000",
      residential: true,
    },
    items: [
      {
        lineItemKey: "line-1",
        sku: "ENGINE-1",
        name: "Difference engine",
        weight: { value: 12, units: "ounces" },
        quantity: 2,
        unitPrice: 19.99,
      },
    ],
    amountPaid: 39.98,
    taxAmount: 0,
    shippingAmount: 0,
    internalNotes,
    weight: { value: 24, units: "ounces" },
    advancedOptions: { customField1 },
  };
}

const pick = (o) =>
  o && {
    orderId: o.orderId,
    orderKey: o.orderKey,
    orderNumber: o.orderNumber,
    orderStatus: o.orderStatus,
    internalNotes: o.internalNotes,
    customField1: o.advancedOptions?.customField1 ?? null,
  };

try {
  const ss = makeClient(KEY, SECRET);

  // Wrong credentials are refused (401), before anything else touches state.
  const wrong = makeClient(KEY, SECRET + "-wrong");
  obs.wrongSecretStatus = (await attempt(() => wrong.v1.orders.list())).status;

  const stores = await must("GET /stores", () => ss.v1.stores.list());
  obs.stores = { isArray: Array.isArray(stores), count: Array.isArray(stores) ? stores.length : null };

  // Subscribe a webhook first so order creation can trigger ORDER_NOTIFY.
  const sub = await must("POST /webhooks/subscribe", () =>
    ss.v1.webhooks.subscribe({
      target_url: hookUrl,
      event: "ORDER_NOTIFY",
      store_id: null,
      friendly_name: "fidelity shipstation-node",
    }),
  );
  obs.webhook = { targetUrl: hookUrl, subscribeResponse: sub, id: sub?.id ?? null };

  // 1. Create with an orderKey.
  const created = await must("POST /orders/createorder (create)", () =>
    ss.v1.orders.createOrUpdate(order({ key: orderKey, number: orderNumber, internalNotes: "created by shipstation-node" })),
  );
  // 2. Upsert: same orderKey, one field changed, full resource re-sent.
  const upserted = await must("POST /orders/createorder (upsert)", () =>
    ss.v1.orders.createOrUpdate(order({ key: orderKey, number: orderNumber, internalNotes: "upserted by shipstation-node" })),
  );
  obs.order = { key: orderKey, number: orderNumber, created: pick(created), upserted: pick(upserted) };

  // 3. Bulk: a new order (number shares the prefix) plus another upsert of the first.
  const otherKey = `${orderKey}-b`;
  const otherNumber = `${orderNumber}-B`;
  const bulk = await must("POST /orders/createorders", () =>
    ss.v1.orders.createOrUpdateMultiple([
      order({ key: otherKey, number: otherNumber, internalNotes: "bulk created" }),
      order({ key: orderKey, number: orderNumber, internalNotes: "upserted by shipstation-node", customField1: "bulk-upsert" }),
    ]),
  );
  obs.bulk = { otherKey, otherNumber, hasErrors: bulk?.hasErrors, results: bulk?.results };

  // 4. List by orderNumber (a starts-with filter: must return both), then all.
  const byNumber = await must("GET /orders?orderNumber=", () => ss.v1.orders.list({ orderNumber }));
  obs.listByNumber = {
    total: byNumber?.total,
    page: byNumber?.page,
    pages: byNumber?.pages,
    orders: (byNumber?.orders ?? []).map(pick),
  };
  const all = await must("GET /orders", () => ss.v1.orders.list({ pageSize: 500 }));
  obs.listAll = { total: all?.total, count: all?.orders?.length };

  // 5. Get the first order back.
  const got = await must("GET /orders/{id}", () => ss.v1.orders.get(created.orderId));
  obs.get = pick(got);

  // 6. A label made in the "ShipStation UI" (sandbox control API), then /shipments.
  const label = await control("POST", `/_sandbox/orders/${created.orderId}/labels`, {
    carrierCode: "ups",
    serviceCode: "ups_ground",
    shipmentCost: "7.25",
  });
  obs.label = { status: label.status, labelId: label.body?.labelId ?? null, shipmentId: label.body?.shipment?.shipmentId ?? null };
  if (label.status !== 200 && label.status !== 201) fail(`control API label creation failed: HTTP ${label.status}`, { body: label.body });

  const shipments = await must("GET /shipments?orderId=", () => ss.v1.shipments.list({ orderId: created.orderId }));
  const shipmentsWithItems = await must("GET /shipments?includeShipmentItems=true", () =>
    ss.v1.shipments.list({ orderId: created.orderId, includeShipmentItems: true }),
  );
  obs.shipments = {
    total: shipments?.total,
    list: (shipments?.shipments ?? []).map((s) => ({
      shipmentId: s.shipmentId,
      orderId: s.orderId,
      orderKey: s.orderKey,
      orderNumber: s.orderNumber,
      trackingNumber: s.trackingNumber,
      shipmentCost: s.shipmentCost,
      carrierCode: s.carrierCode,
      serviceCode: s.serviceCode,
      voided: s.voided,
      shipmentItems: s.shipmentItems ?? null,
    })),
    withItems: (shipmentsWithItems?.shipments ?? []).map((s) => ({
      shipmentId: s.shipmentId,
      shipmentItems: s.shipmentItems ?? null,
    })),
  };
  const afterLabel = await must("GET /orders/{id} after label", () => ss.v1.orders.get(created.orderId));
  obs.orderStatusAfterLabel = afterLabel?.orderStatus;

  const fulfillments = await must("GET /fulfillments?orderId=", () => ss.v1.fulfillments.list({ orderId: created.orderId }));
  obs.fulfillmentsForLabelledOrder = fulfillments?.fulfillments?.length ?? null;

  // 7. The client's known bug: markShipped posts to /orders/markshipped (the
  //    real path is /orders/markasshipped). ShipStation answers 404.
  const otherId = (bulk?.results ?? []).find((r) => r.orderKey === otherKey)?.orderId;
  const mark = await attempt(() =>
    ss.v1.orders.markShipped({ orderId: otherId, carrierCode: "usps", shipDate: "2024-03-02", trackingNumber: "9400100000000000000000" }),
  );
  const otherAfter = await must("GET /orders/{id} after markshipped", () => ss.v1.orders.get(otherId));
  obs.markShipped = { status: mark.status, body: mark.body, orderStatusAfter: otherAfter?.orderStatus };

  // 8. The client's carriers.get sends GET /carriers?carrierCode=ups; the real
  //    endpoint ignores the parameter and returns the whole array.
  const carriers = await attempt(() => ss.v1.carriers.get("ups"));
  obs.carriersGet = { status: carriers.status, isArray: Array.isArray(carriers.body), count: Array.isArray(carriers.body) ? carriers.body.length : null };

  // 9. Webhooks: list (the client types it as an array, ShipStation wraps it).
  const listed = await must("GET /webhooks", () => ss.v1.webhooks.list());
  const hooks = Array.isArray(listed) ? listed : listed?.webhooks;
  obs.webhook.listShape = Array.isArray(listed) ? "array" : listed && Array.isArray(listed.webhooks) ? "object.webhooks" : typeof listed;
  obs.webhook.listed = (hooks ?? []).map((h) => ({ WebHookID: h.WebHookID, HookType: h.HookType, Url: h.Url, Name: h.Name, Active: h.Active }));

  // Deliveries are asynchronous; give them a moment, then re-fetch the thin
  // payload's resource_url through the client (with its Basic auth).
  const deadline = Date.now() + WEBHOOK_WAIT_MS;
  while (deliveries.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  obs.webhook.deliveries = deliveries;
  const first = deliveries.find((d) => d.body && typeof d.body === "object" && d.body.resource_url);
  if (first) {
    const url = first.body.resource_url;
    if (url.startsWith(BASE + "/")) {
      const refetch = await attempt(() => ss.v1.request({ url, method: "GET" }));
      obs.webhook.refetch = {
        status: refetch.status,
        url,
        orderKeys: (refetch.body?.orders ?? []).map((o) => o.orderKey),
      };
    } else {
      // ShipStation's resource_url points at the host that sent it; one that
      // does not point at the sandbox is a fidelity finding, not a crash.
      obs.webhook.refetch = { status: null, url, skipped: "resource_url is not under SANDBOX_URL" };
    }
  }

  await must("DELETE /webhooks/{id}", () => ss.v1.webhooks.unsubscribe(obs.webhook.id));
  const listedAfter = await must("GET /webhooks after delete", () => ss.v1.webhooks.list());
  const hooksAfter = Array.isArray(listedAfter) ? listedAfter : listedAfter?.webhooks;
  obs.webhook.listedAfterDelete = (hooksAfter ?? []).map((h) => ({ WebHookID: h.WebHookID, Url: h.Url }));
} catch (e) {
  fail(`unexpected exception: ${e?.stack ?? e}`);
} finally {
  receiver.close();
}

process.stdout.write(JSON.stringify(obs) + "\n");
process.exit(0);
