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
// Modes: `node run.mjs` (the order, label and webhook story) or
// `node run.mjs gaps` (products, user assignment, rates and labels without an
// order, carrier funds, stores, warehouses, and the rate headers on a 401),
// each against a sandbox of its own.
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
const MODE = process.argv[2] ?? "main";

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
    if (e?.response) return { status: e.response.status, body: e.response.data, headers: e.response.headers };
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
const shipDeliveries = [];
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
    (req.url.endsWith("/ship") ? shipDeliveries : deliveries).push({ method: req.method, path: req.url, body: parsed });
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

async function main() {
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
}

const rateHeaders = (h) =>
  h && {
    limit: h["x-rate-limit-limit"] ?? null,
    remaining: h["x-rate-limit-remaining"] ?? null,
    reset: h["x-rate-limit-reset"] ?? null,
  };

const sku = (products, s) => (products?.products ?? []).find((p) => p.sku === s) ?? null;

async function gaps() {
  // The client spends a token bucket of its own (40 a minute) before every
  // request; each part below gets a fresh client so the script never waits on it.
  let ss = makeClient(KEY, SECRET);

  // A 401 carries the X-Rate-Limit-* headers every answer does.
  const wrong = makeClient(KEY, SECRET + "-wrong");
  const refused = await attempt(() => wrong.v1.orders.list());
  obs.refused = { status: refused.status, rate: rateHeaders(refused.headers) };

  // Products: made at the first sight of a SKU; the id never moves when a SKU
  // that sorts before it appears; weightOz exact; PUT replaces the product.
  const first = order({ key: orderKey, number: orderNumber, internalNotes: "gaps" });
  first.items[0].weight = { value: 8, units: "ounces" };
  const created = await must("POST /orders/createorder", () => ss.v1.orders.createOrUpdate(first));
  const before = await must("GET /products", () => ss.v1.products.list({ sku: "ENGINE-1" }));
  const second = order({ key: `${orderKey}-2`, number: `${orderNumber}-2`, internalNotes: "gaps 2" });
  second.items = [
    { lineItemKey: "line-a", sku: "AAA-FIRST", name: "Abacus", weight: { value: 1.5, units: "pounds" }, quantity: 1, unitPrice: 3.1 },
    ...second.items,
  ];
  const other = await must("POST /orders/createorder (new SKU)", () => ss.v1.orders.createOrUpdate(second));
  const after = await must("GET /products (after a new SKU)", () => ss.v1.products.list({ pageSize: 500 }));
  const engine = sku(after, "ENGINE-1");
  const abacus = sku(after, "AAA-FIRST");
  obs.products = {
    before: sku(before, "ENGINE-1"),
    after: engine,
    abacus,
    lineProductIds: [created.items?.[0]?.productId ?? null, other.items?.map((i) => i.productId) ?? null],
  };
  if (!engine) fail("GET /products does not list ENGINE-1", { products: after });
  const update = await must("PUT /products/{id}", () =>
    ss.v1.products.update({ ...engine, name: "Difference engine, mark II", weightOz: 8.5, price: 21.5 }),
  );
  const reread = await must("GET /products/{id} after PUT", () => ss.v1.products.get(engine.productId));
  obs.products.update = { response: update, reread };

  // Users: assign and unassign, all-or-nothing.
  ss = makeClient(KEY, SECRET);
  const users = await must("GET /users", () => ss.v1.users.list());
  const userId = users?.[0]?.userId;
  const assigned = await must("POST /orders/assignuser", () => ss.v1.orders.assignUser([created.orderId, other.orderId], userId));
  const assignedOrders = [
    await must("GET /orders/{id}", () => ss.v1.orders.get(created.orderId)),
    await must("GET /orders/{id}", () => ss.v1.orders.get(other.orderId)),
  ];
  const partial = await attempt(() => ss.v1.orders.unassignUser([created.orderId, 999999999]));
  const afterPartial = await must("GET /orders/{id}", () => ss.v1.orders.get(created.orderId));
  const unassigned = await must("POST /orders/unassignuser", () => ss.v1.orders.unassignUser([created.orderId]));
  const afterUnassign = await must("GET /orders/{id}", () => ss.v1.orders.get(created.orderId));
  obs.users = {
    userId,
    assigned,
    userIdsAfterAssign: assignedOrders.map((o) => o.userId),
    partialStatus: partial.status,
    userIdAfterPartial: afterPartial.userId,
    unassigned,
    userIdAfterUnassign: afterUnassign.userId,
  };

  ss = makeClient(KEY, SECRET);
  // Rates, then a label without an order: listed by /shipments, SHIP_NOTIFY sent.
  await must("POST /webhooks/subscribe (SHIP_NOTIFY)", () =>
    ss.v1.webhooks.subscribe({ target_url: hookUrl + "/ship", event: "SHIP_NOTIFY", store_id: null, friendly_name: "gaps" }),
  );
  const rateRequest = {
    carrierCode: "fedex",
    fromPostalCode: "78701",
    toCountry: "US",
    toState: "TX",
    toPostalCode: "78756",
    weight: { value: 40, units: "ounces" },
  };
  const rates = await must("POST /shipments/getrates", () => ss.v1.shipments.getRates(rateRequest));
  const heavier = await must("POST /shipments/getrates (heavier)", () =>
    ss.v1.shipments.getRates({ ...rateRequest, weight: { value: 5, units: "pounds" }, serviceCode: "fedex_ground" }),
  );
  const abroad = await must("POST /shipments/getrates (abroad)", () =>
    ss.v1.shipments.getRates({ ...rateRequest, toCountry: "GB", toState: "", toPostalCode: "SW1A 1AA" }),
  );
  const address = (name, city, state, postalCode) => ({
    name, company: null, street1: "1 Test St", street2: null, street3: null, city, state, postalCode, country: "US", phone: null, residential: false,
  });
  const label = await must("POST /shipments/createlabel", () =>
    ss.v1.shipments.createLabel({
      carrierCode: "fedex",
      serviceCode: "fedex_ground",
      packageCode: "package",
      confirmation: "none",
      shipDate: "2024-03-04",
      weight: { value: 40, units: "ounces" },
      shipFrom: address("Sandbox Goods", "Austin", "TX", "78701"),
      shipTo: address("Katherine Johnson", "Austin", "TX", "78756"),
      testLabel: false,
    }),
  );
  const listed = await must("GET /shipments?trackingNumber=", () => ss.v1.shipments.list({ trackingNumber: label.trackingNumber }));
  const deadline = Date.now() + WEBHOOK_WAIT_MS;
  while (shipDeliveries.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  let refetched = null;
  const hook = shipDeliveries.find((d) => d.body?.resource_url);
  if (hook && hook.body.resource_url.startsWith(BASE + "/")) {
    const r = await attempt(() => ss.v1.request({ url: hook.body.resource_url, method: "GET" }));
    refetched = { status: r.status, shipmentIds: (r.body?.shipments ?? []).map((x) => x.shipmentId) };
  }
  obs.rates = { rates, heavier, abroad };
  obs.createLabel = {
    label,
    listed: listed?.shipments ?? [],
    deliveries: shipDeliveries,
    refetched,
  };

  // Carrier funds.
  ss = makeClient(KEY, SECRET);
  const funded = await must("POST /carriers/addfunds", () => ss.v1.carriers.addFunds("stamps_com", 25.5));
  const carriers = await must("GET /carriers", () => ss.v1.carriers.list());
  const tooLittle = await attempt(() => ss.v1.carriers.addFunds("stamps_com", 5));
  obs.carriers = {
    funded,
    balanceAfter: carriers.find((c) => c.code === "stamps_com")?.balance ?? null,
    tooLittleStatus: tooLittle.status,
    balanceAfterRefusal: (await must("GET /carriers", () => ss.v1.carriers.list())).find((c) => c.code === "stamps_com")?.balance ?? null,
  };

  ss = makeClient(KEY, SECRET);
  // Stores: marketplaces, deactivate/reactivate, refresh status, PUT.
  const stores = await must("GET /stores", () => ss.v1.stores.list());
  const store = stores[stores.length - 1];
  const marketplaces = await must("GET /stores/marketplaces", () => ss.v1.stores.listMarketplaces());
  const deactivated = await must("POST /stores/deactivate", () => ss.v1.stores.deactivate(store.storeId));
  const activeAfter = await must("GET /stores", () => ss.v1.stores.list());
  const allAfter = await must("GET /stores?showInactive=true", () => ss.v1.stores.list({ showInactive: true }));
  const reactivated = await must("POST /stores/reactivate", () => ss.v1.stores.reactivate(store.storeId));
  const activeAgain = await must("GET /stores", () => ss.v1.stores.list());
  const refresh = await must("GET /stores/getrefreshstatus", () => ss.v1.stores.getRefreshRate(store.storeId));
  const full = await must("GET /stores/{id}", () => ss.v1.stores.get(store.storeId));
  const updated = await must("PUT /stores/{id}", () =>
    ss.v1.stores.update(store.storeId, { ...full, storeName: "Renamed by shipstation-node", website: "https://shop.example" }),
  );
  const storeReread = await must("GET /stores/{id} after PUT", () => ss.v1.stores.get(store.storeId));
  const ids = (list) => list.map((s) => s.storeId);
  obs.stores = {
    storeId: store.storeId,
    marketplaces,
    deactivated,
    activeAfterDeactivate: ids(activeAfter),
    inactiveListed: allAfter.filter((s) => s.storeId === store.storeId).map((s) => s.active),
    reactivated,
    activeAgain: ids(activeAgain),
    refresh,
    updated: { storeName: updated.storeName, website: updated.website },
    reread: { storeName: storeReread.storeName, website: storeReread.website, active: storeReread.active },
  };

  ss = makeClient(KEY, SECRET);
  // Warehouses (ship-from locations): create, update, delete, list.
  const origin = address("Dock 2", "Round Rock", "TX", "78664");
  const made = await must("POST /warehouses/createwarehouse", () =>
    ss.v1.warehouses.create({ warehouseName: "Overflow", originAddress: origin, isDefault: false }),
  );
  const listedMade = await must("GET /warehouses", () => ss.v1.warehouses.list());
  const changed = await must("PUT /warehouses/{id}", () =>
    ss.v1.warehouses.update(made.warehouseId, { ...made, warehouseName: "Overflow East", originAddress: { ...origin, city: "Pflugerville" } }),
  );
  const got = await must("GET /warehouses/{id}", () => ss.v1.warehouses.get(made.warehouseId));
  const deleted = await must("DELETE /warehouses/{id}", () => ss.v1.warehouses.delete(made.warehouseId));
  const listedAfterDelete = await must("GET /warehouses after delete", () => ss.v1.warehouses.list());
  const gone = await attempt(() => ss.v1.warehouses.get(made.warehouseId));
  obs.warehouses = {
    made,
    listedIds: listedMade.map((w) => w.warehouseId),
    changed: { warehouseName: changed.warehouseName, city: changed.originAddress?.city },
    got: { warehouseName: got.warehouseName, city: got.originAddress?.city, returnCity: got.returnAddress?.city },
    deleted,
    listedIdsAfterDelete: listedAfterDelete.map((w) => w.warehouseId),
    getAfterDeleteStatus: gone.status,
  };
}

try {
  if (MODE === "gaps") await gaps();
  else if (MODE === "main") await main();
  else fail(`unknown mode '${MODE}' (use no argument or 'gaps')`);
} catch (e) {
  fail(`unexpected exception: ${e?.stack ?? e}`);
} finally {
  receiver.close();
}

process.stdout.write(JSON.stringify(obs) + "\n");
process.exit(0);
