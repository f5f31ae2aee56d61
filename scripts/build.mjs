// Build everything `npm install` leaves ready: the library bundle, the CLI, type declarations, and the
// test and benchmark bundles. Run with `npm run build` (also the `prepare` script).
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { resolveSourceLinks } from "./source-links.mjs";
import { GENERATED_PATH, readKernelSignatures, renderKernelSignatures } from "./wasm-signatures.mjs";

const root = new URL("..", import.meta.url).pathname;
const entries = (dir, suffix) =>
  readdirSync(join(root, dir))
    .filter((f) => f.endsWith(suffix))
    .map((f) => join(root, dir, f));

rmSync(join(root, "dist"), { recursive: true, force: true });
rmSync(join(root, "build"), { recursive: true, force: true });

// The host's view of the kernels' signatures (src/backends/wasm/kernel-signatures.generated.ts), read
// from assembly/ before anything compiles against it; written only when it changed.
const signatures = renderKernelSignatures(readKernelSignatures(root));
const signaturesPath = join(root, GENERATED_PATH);
if (!existsSync(signaturesPath) || readFileSync(signaturesPath, "utf8") !== signatures) writeFileSync(signaturesPath, signatures);

// WebAssembly kernels (assembly/): a plain-SIMD build and a relaxed-SIMD one (fused multiply-add; see
// assembly/gemm.ts). The kernels use no atomics, so a shared-memory (threads) build differs from
// these only in one flag of the memory import: src/backends/wasm/module.ts sets it at run time
// instead of embedding two more copies. The same two builds of bench/microkernel/exp.ts (the kernels'
// four-lane exp over an array, with its own memory) go beside them for test/exp.test.ts and the exp
// benchmark; they are not part of the library.
const asc = join(root, "node_modules/assemblyscript/bin/asc.js");
const ascFlags = ["--runtime", "stub", "-O3", "--noAssert", "--enable", "simd"];
const kernelFlags = ["--importMemory", "--noExportMemory", "--initialMemory", "2", "--maximumMemory", "65536"];
const relaxedFlags = ["--enable", "relaxed-simd"];
for (const [entry, output, extra] of [
  ["assembly/index.ts", "kernels", kernelFlags],
  ["assembly/index.ts", "kernels-relaxed", [...kernelFlags, ...relaxedFlags]],
  ["bench/microkernel/exp.ts", "exp", []],
  ["bench/microkernel/exp.ts", "exp-relaxed", relaxedFlags],
]) {
  execFileSync(process.execPath, [asc, join(root, entry), "-o", join(root, `build/wasm/${output}.wasm`), ...ascFlags, ...extra], { stdio: "inherit" });
}

// The kernels as files too, for hosts that refuse to compile WebAssembly at run time: a Worker imports
// them as modules (`import simd from "olmo-js/dist/olmo-simd.wasm"`) and hands them to the backend
// (WasmBackendOptions.modules); their type is src/wasm-kernels.d.ts.
mkdirSync(join(root, "dist"), { recursive: true });
copyFileSync(join(root, "build/wasm/kernels.wasm"), join(root, "dist/olmo-simd.wasm"));
copyFileSync(join(root, "build/wasm/kernels-relaxed.wasm"), join(root, "dist/olmo-relaxed-simd.wasm"));

const common = { bundle: true, format: "esm", target: "es2022", sourcemap: true, logLevel: "warning", loader: { ".wasm": "binary", ".wgsl": "text" } };
// The package's own files (dist/index.js, node.js, worker.js, cli.js) get their maps beside them but no
// sourceMappingURL comment: the maps stay out of the npm package (package.json "files"; they would
// double its size and point at src/, which is not shipped), and a comment naming a missing map makes
// bundlers and devtools warn. The bundles are unminified, with each source file's path above its code.
const packaged = { ...common, sourcemap: "external" };

/** An esbuild plugin that turns an entry's imports of the core into imports of dist/index.js (`./index.js`). */
const coreFromIndex = (test) => ({
  name: "core-from-index",
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) => (test(args) ? { path: "./index.js", external: true } : undefined));
  },
});

await Promise.all([
  // The core library: no Node built-ins, runs in every JS host.
  build({ ...packaged, entryPoints: [join(root, "src/index.ts")], outfile: join(root, "dist/index.js"), platform: "neutral", metafile: true }).then(
    // The import graph, so a test can prove the core bundle imports nothing (no Node built-ins).
    (result) => writeFileSync(join(root, "dist/index.meta.json"), JSON.stringify(result.metafile)),
  ),
  // Node-only additions (worker_threads, files, the Hub cache, checkpoints). Their imports of the core
  // resolve to ./index.js at run time, so a program using both entries has one copy of the core (one
  // Tensor class, one memory counter).
  build({
    ...packaged, entryPoints: [join(root, "src/node/index.ts")], outfile: join(root, "dist/node.js"), platform: "node", external: ["webgpu"],
    plugins: [coreFromIndex((args) => args.importer.includes("/src/node/") && args.path.startsWith("../"))],
  }),
  // olmo-js/worker: the module a page starts as a Web Worker (src/worker.ts); the core comes from ./index.js the same way.
  build({
    ...packaged, entryPoints: [join(root, "src/worker.ts")], outfile: join(root, "dist/worker.js"), platform: "neutral",
    plugins: [coreFromIndex((args) => args.importer.endsWith("/src/worker.ts") && args.path === "./index.js")],
  }),
  // The command-line tool (Node only).
  build({
    ...packaged,
    entryPoints: [join(root, "src/cli/main.ts")],
    outfile: join(root, "dist/cli.js"),
    platform: "node",
    // Dawn's native addon (an optional peer dependency), and hyparquet (a dependency, loaded by `olmo eval` for Parquet files).
    external: ["webgpu", "hyparquet"],
    banner: { js: "#!/usr/bin/env node" },
  }),
  // The demo page (examples/browser): its script and worker, the source viewer, with their HTML and CSS
  // beside them; the page's links to the code get their line numbers here (scripts/source-links.mjs).
  build({
    ...common, entryPoints: ["main.ts", "worker.ts", "source.ts"].map((f) => join(root, "examples/browser", f)), outdir: join(root, "dist/demo"), platform: "browser",
  }).then(() => {
    writeFileSync(join(root, "dist/demo/index.html"), resolveSourceLinks(readFileSync(join(root, "examples/browser/index.html"), "utf8"), root));
    for (const f of ["source.html", "page.css"]) copyFileSync(join(root, "examples/browser", f), join(root, "dist/demo", f));
  }),
  // The WebGPU parity check for Deno and Chromium (test/hosts/): one module with the library inside.
  build({ ...common, entryPoints: [join(root, "test/hosts/webgpu-parity.ts")], outfile: join(root, "build/hosts/webgpu-parity.js"), platform: "neutral" }),
  // The multi-memory check for Chromium (test/hosts/multimemory.html), likewise.
  build({ ...common, entryPoints: [join(root, "test/hosts/multimemory-browser.ts")], outfile: join(root, "build/hosts/multimemory.js"), platform: "neutral" }),
  // Tests and benchmarks, one bundle per file; packages stay external.
  build({ ...common, entryPoints: entries("test", ".test.ts"), outdir: join(root, "build/test"), platform: "node", packages: "external" }),
  build({ ...common, entryPoints: entries("bench", ".ts"), outdir: join(root, "build/bench"), platform: "node", packages: "external" }),
]);

// The `olmo` bin must be executable (npx runs it directly).
chmodSync(join(root, "dist/cli.js"), 0o755);

// Type declarations for the package's `exports`.
execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.types.json")], {
  stdio: "inherit",
});

// The declarations name a few WebGPU interfaces (GPUDevice, GPUBuffer, ...) and WebAssembly's. A
// consumer without @webgpu/types or the DOM library (any Node program) would get "Cannot find name
// 'GPUDevice'", so src/public-globals.d.ts declares them as empty interfaces (which merge with the full
// ones where those are installed) and each entry's declarations reference it. Any other WebGPU name in
// the declarations fails the build here.
const types = join(root, "dist/types");
copyFileSync(join(root, "src/public-globals.d.ts"), join(types, "public-globals.d.ts"));
copyFileSync(join(root, "src/wasm-kernels.d.ts"), join(types, "wasm-kernels.d.ts"));
for (const [entry, reference] of [
  ["index.d.ts", "./public-globals.d.ts"], ["node/index.d.ts", "../public-globals.d.ts"], ["worker.d.ts", "./public-globals.d.ts"], ["wasm-kernels.d.ts", "./public-globals.d.ts"],
]) {
  const file = join(types, entry);
  writeFileSync(file, `/// <reference path="${reference}" />\n${readFileSync(file, "utf8")}`);
}
const declared = new Set([...readFileSync(join(root, "src/public-globals.d.ts"), "utf8").matchAll(/^interface (GPU\w*)/gm)].map((m) => m[1]));
const declarationFiles = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? (e.name === "cli" ? [] : declarationFiles(join(dir, e.name))) : e.name.endsWith(".d.ts") ? [join(dir, e.name)] : []));
const undeclared = new Set();
for (const file of declarationFiles(types)) {
  if (file.endsWith("public-globals.d.ts")) continue;
  const code = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, ""); // names in comments are not types
  for (const [name] of code.matchAll(/\bGPU[A-Z]?\w*\b/g)) if (!declared.has(name)) undeclared.add(`${name} (${file.slice(types.length + 1)})`);
}
if (undeclared.size) throw new Error(`the declarations name WebGPU types that src/public-globals.d.ts does not declare: ${[...undeclared].join(", ")}`);
