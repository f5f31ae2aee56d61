// Bundles function.ts into dist/function.js with esbuild, as edge-runtime runs it: one classic script
// that answers the `fetch` event. The `.wasm?module` imports become the modules the runtime hands
// over (serve.mjs compiles the .wasm files copied beside the bundle, as Vercel does when it deploys).
//
// usage: node build.mjs   (run from anywhere; olmo-js must be built: `npm run build` in the repository)
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { basename, join } from "node:path";

const here = new URL(".", import.meta.url).pathname;
const out = join(here, "dist");
mkdirSync(out, { recursive: true });

const wasmModules = {
  name: "wasm-modules",
  setup(b) {
    b.onResolve({ filter: /\.wasm\?module$/ }, async (args) => {
      const resolved = await b.resolve(args.path.slice(0, -"?module".length), { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer });
      if (resolved.errors.length > 0) return { errors: resolved.errors };
      copyFileSync(resolved.path, join(out, basename(resolved.path)));
      return { path: basename(resolved.path), namespace: "wasm-module" };
    });
    // serve.mjs puts the compiled modules in `__wasmModules`, by file name.
    b.onLoad({ filter: /.*/, namespace: "wasm-module" }, (args) => ({ contents: `export default globalThis.__wasmModules[${JSON.stringify(args.path)}];`, loader: "js" }));
  },
};

await build({
  entryPoints: [join(here, "function.ts")],
  outfile: join(out, "function.js"),
  bundle: true,
  format: "iife",
  globalName: "edgeFunction",
  footer: { js: 'addEventListener("fetch", (event) => event.respondWith(edgeFunction.default(event.request)));' },
  target: "es2022",
  platform: "neutral",
  logLevel: "warning",
  plugins: [wasmModules],
});
console.log(`built ${join(out, "function.js")}`);
