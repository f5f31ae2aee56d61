// Bundles worker.ts into dist/worker.js with esbuild, and puts beside it the files the Worker imports
// as modules (the kernels' .wasm, the model's files), where config.capnp embeds them from.
//
// usage: node build.mjs   (run from anywhere; olmo-js must be built: `npm run build` in the repository)
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { basename, join } from "node:path";

const here = new URL(".", import.meta.url).pathname;
const out = join(here, "dist");
mkdirSync(out, { recursive: true });

// The kernels and the model files stay imports, renamed to the module names config.capnp gives them
// (their file names): workerd loads them as the Worker's modules, compiled (.wasm) or as bytes.
const workerModules = {
  name: "worker-modules",
  setup(b) {
    b.onResolve({ filter: /\.(wasm|json|safetensors)$/ }, async (args) => {
      if (args.pluginData === "resolving") return undefined;
      const resolved = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: "resolving" });
      if (resolved.errors.length > 0) return { errors: resolved.errors };
      copyFileSync(resolved.path, join(out, basename(resolved.path)));
      return { path: `./${basename(resolved.path)}`, external: true };
    });
  },
};

await build({
  entryPoints: [join(here, "worker.ts")],
  outfile: join(out, "worker.js"),
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "neutral",
  logLevel: "warning",
  plugins: [workerModules],
});
console.log(`built ${join(out, "worker.js")}`);
