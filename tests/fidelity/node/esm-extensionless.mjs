// Module-resolution hooks that let Node load shipstation-node 1.5.6 unmodified.
//
// The published package is broken under plain Node: dist/*.js are ES modules
// (`import ... from './v1/V1API'`) but the package has no "type": "module" and
// its relative imports have no file extension or point at a directory
// (`export * from './v2/types'`). Node's ESM resolver refuses both. These hooks
// retry a failed relative specifier with `.js` and `/index.js` and load the
// package's dist files as ES modules. They change how files are found, never
// what the client sends.

const PACKAGE_DIST = "/node_modules/shipstation-node/dist/";

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    const relative = specifier.startsWith("./") || specifier.startsWith("../");
    const fixable =
      err?.code === "ERR_MODULE_NOT_FOUND" || err?.code === "ERR_UNSUPPORTED_DIR_IMPORT";
    if (relative && fixable) {
      for (const suffix of [".js", "/index.js"]) {
        try {
          return await nextResolve(specifier + suffix, context);
        } catch {
          // try the next suffix
        }
      }
    }
    throw err;
  }
}

export async function load(url, context, nextLoad) {
  if (url.startsWith("file:") && url.includes(PACKAGE_DIST) && url.endsWith(".js")) {
    return nextLoad(url, { ...context, format: "module" });
  }
  return nextLoad(url, context);
}
