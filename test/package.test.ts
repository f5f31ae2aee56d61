// The package as npm users get it: `npm pack` of this repository, installed into a fresh project in a
// temporary folder, where
//   - the tarball holds the entries, their types, the kernels' .wasm, the default model, LICENSE and
//     CHANGELOG.md, and no source maps, sources or demo;
//   - strict TypeScript (skipLibCheck false, no @webgpu/types) compiles README's library sample and
//     samples of the one-line API, for Node (@types/node) and for browsers (lib DOM, a Web Worker), and
//     an edge runtime's program (the kernels imported as compiled modules) for both;
//   - README's one-line JS sample runs with node and prints what the installed `olmo generate` prints;
//   - CommonJS code finds every entry through the `default` condition and loads it with import().
//
// Install: `npm install --offline` of the tarball, its dependency (hyparquet) coming from the npm cache
// that `npm install` / `npm ci` of this repository filled. Where that cache lacks it, the tarball is
// unpacked into node_modules instead and hyparquet linked from this repository, said on stderr.

import { spawnSync, type SpawnSyncOptions } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import { repoRoot } from "./helpers.js";

const root = mkdtempSync(join(tmpdir(), "olmo-js-package-"));
const app = join(root, "app");
const tsc = join(repoRoot, "node_modules/typescript/bin/tsc");
// npm run passes its own settings down as npm_config_* variables; the consumer's npm must not inherit them.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_(config|package|lifecycle)_/i.test(k)));

function run(command: string, args: string[], cwd: string, options: SpawnSyncOptions = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(command, args, { cwd, env, encoding: "utf8", timeout: 120_000, ...options });
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) + (r.error ? String(r.error) : "") };
}

function mustRun(command: string, args: string[], cwd: string): string {
  const r = run(command, args, cwd);
  if (r.status !== 0) throw new Error(`${command} ${args.join(" ")} (in ${cwd}) exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The code of the first fenced block of `lang` after `heading` in README.md. */
function readmeBlock(heading: string, lang: string): string {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const at = readme.indexOf(heading);
  if (at === -1) throw new Error(`README.md has no "${heading}"`);
  const m = new RegExp("```" + lang + "\\n([\\s\\S]*?)```").exec(readme.slice(at));
  if (!m) throw new Error(`README.md has no \`\`\`${lang} block after "${heading}"`);
  return m[1]!;
}

let tarball = "";

test("npm pack: the entries, their types, the kernels' .wasm, the default model, LICENSE and CHANGELOG; no maps, sources or demo", () => {
  const out = mustRun("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", root], repoRoot);
  const [info] = JSON.parse(out.slice(out.indexOf("["))) as { filename: string; size: number; unpackedSize: number; files: { path: string }[] }[];
  tarball = join(root, info!.filename);
  const files = info!.files.map((f) => f.path);
  const needed = [
    "package.json", "README.md", "LICENSE", "CHANGELOG.md", "dist/index.js", "dist/node.js", "dist/worker.js", "dist/cli.js",
    "dist/types/index.d.ts", "dist/types/node/index.d.ts", "dist/types/worker.d.ts", "dist/types/public-globals.d.ts",
    "dist/olmo-simd.wasm", "dist/olmo-relaxed-simd.wasm", "dist/types/wasm-kernels.d.ts",
    "models/olmo-tiny-shakespeare/config.json", "models/olmo-tiny-shakespeare/model.safetensors", "models/olmo-tiny-shakespeare/tokenizer.json",
  ];
  const missing = needed.filter((f) => !files.includes(f));
  if (missing.length) throw new Error(`the tarball lacks ${missing.join(", ")}`);
  const unwanted = files.filter((f) => /\.map$|^src\/|^assembly\/|^kernels\/|^test\/|^dist\/demo\/|^dist\/types\/cli\/|\.meta\.json$/.test(f));
  if (unwanted.length) throw new Error(`the tarball holds ${unwanted.slice(0, 10).join(", ")}${unwanted.length > 10 ? ", ..." : ""}`);
  console.error(`package: ${(info!.size / 1e6).toFixed(1)} MB packed, ${(info!.unpackedSize / 1e6).toFixed(1)} MB unpacked, ${files.length} files`);
});

test("the tarball installs into a fresh project (offline, from the npm cache)", () => {
  mkdirSync(app, { recursive: true });
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  const install = run("npm", ["install", "--offline", "--no-audit", "--no-fund", tarball], app);
  if (install.status !== 0) {
    console.error(`package test: npm install --offline of the tarball failed (the npm cache lacks a dependency?); unpacking it instead, hyparquet linked from the repository:\n${install.stderr.split("\n").slice(0, 5).join("\n")}`);
    mkdirSync(join(app, "node_modules"), { recursive: true });
    mustRun("tar", ["-xzf", tarball, "-C", join(app, "node_modules")], app);
    renameSync(join(app, "node_modules/package"), join(app, "node_modules/olmo-js"));
    symlinkSync(join(repoRoot, "node_modules/hyparquet"), join(app, "node_modules/hyparquet"), "dir");
  }
  if (!existsSync(join(app, "node_modules/olmo-js/dist/index.js"))) throw new Error("olmo-js is not in the consumer's node_modules");
  if (existsSync(join(app, "node_modules/@webgpu/types"))) throw new Error("@webgpu/types got installed: the types check below would prove nothing");
});

test("strict TypeScript (skipLibCheck false, no @webgpu/types): README's library sample and the one-line API, for Node and for browsers", () => {
  writeFileSync(join(app, "readme-library.ts"), readmeBlock("## Use it as a library", "ts"));
  writeFileSync(join(app, "node-sample.ts"), `
import { NodeOlmoGenerator, DEFAULT_MODEL_DIR } from "olmo-js/node";
import { generate, type LoadProgress, type TextGenerateOptions } from "olmo-js";
const olmo = await NodeOlmoGenerator.fromPretrained(DEFAULT_MODEL_DIR, { backend: "wasm", dtype: "f32", threads: 1, onProgress: (p: LoadProgress) => void p.loaded });
const options: TextGenerateOptions = { maxNewTokens: 8, stop: ["\\n\\n"], repetitionPenalty: 1.1, signal: new AbortController().signal };
const text: string = await olmo.generate("ROMEO:", options);
for await (const piece of olmo.stream("ROMEO:", options)) process.stdout.write(piece);
const { newIds } = await generate(olmo.model, olmo.tokenizer.encode(text), { maxNewTokens: 4, shouldStop: (ids) => ids.length > 3 });
console.log(newIds.length);
olmo.dispose();
`);
  writeFileSync(join(app, "browser-sample.ts"), `
import { OlmoGenerator, createWorkerClient, createWebGpuBackend, requestWebGpuDevice, webGpuBackendOn, type WebGpuBackend } from "olmo-js";
import "olmo-js/worker";
const worker = new Worker(new URL("olmo-js/worker", import.meta.url), { type: "module" });
const client = await createWorkerClient(worker, "https://example.com/olmo-folder", { backend: "webgpu", onProgress: (p) => console.log(p.stage, p.file, p.loaded, p.total) });
const out = document.createElement("pre");
for await (const piece of client.stream("ROMEO:", { stop: ["\\n\\n"], signal: AbortSignal.timeout(10_000) })) out.textContent += piece;
await client.dispose();
worker.terminate();
const gpu: WebGpuBackend = await createWebGpuBackend({ powerPreference: "high-performance" });
const olmo = await OlmoGenerator.fromPretrained("allenai/OLMo-1B-hf", { backend: gpu, dtype: "bf16", revision: "main" });
console.log(await olmo.generate("Language models are", { doSample: true, topP: 0.9, seed: 1 }));
olmo.dispose();
const { device, adapter } = await requestWebGpuDevice();
webGpuBackendOn(device, adapter).dispose();
`);
  // An edge runtime's program: the kernels imported as compiled modules, the model from bytes, served over HTTP.
  writeFileSync(join(app, "edge-sample.ts"), `
import { bytesSource, createGenerateHandler, createWasmBackend, loadOlmo, OlmoGenerator, type WasmKernelModules } from "olmo-js";
import simd from "olmo-js/dist/olmo-simd.wasm";
import relaxedSimd from "olmo-js/dist/olmo-relaxed-simd.wasm";
const modules: WasmKernelModules = { simd, relaxedSimd };
const handler = createGenerateHandler({
  load: async () => {
    const backend = await createWasmBackend({ modules, maxMemoryBytes: 64 * 2 ** 20 });
    const { model, tokenizer } = await loadOlmo(bytesSource("model", { "config.json": "{}", "model.safetensors": new ArrayBuffer(8) }), backend);
    return new OlmoGenerator(model, tokenizer!, backend, true);
  },
  maxNewTokensLimit: 128,
  report: (generator) => ({ backend: generator.backend.name }),
});
export default { fetch: (request: Request): Promise<Response> => handler(request) };
`);
  const strict = { strict: true, skipLibCheck: false, noEmit: true, target: "ES2022" };
  writeFileSync(join(app, "tsconfig.node.json"), JSON.stringify({
    compilerOptions: { ...strict, module: "NodeNext", moduleResolution: "NodeNext", lib: ["ES2022"], types: ["node"], typeRoots: [join(repoRoot, "node_modules/@types")] },
    files: ["readme-library.ts", "node-sample.ts", "edge-sample.ts"],
  }));
  writeFileSync(join(app, "tsconfig.browser.json"), JSON.stringify({
    compilerOptions: { ...strict, module: "ESNext", moduleResolution: "Bundler", lib: ["ES2022", "DOM"], types: [] },
    files: ["browser-sample.ts", "edge-sample.ts"],
  }));
  for (const config of ["tsconfig.node.json", "tsconfig.browser.json"]) mustRun(process.execPath, [tsc, "-p", config], app);
});

test("README's one-line JS sample runs on the installed package and prints what the installed `olmo generate` prints", () => {
  const sample = readmeBlock("## Use it from JavaScript: one line", "js");
  if (!sample.includes('from "olmo-js/node"') || !sample.includes("maxNewTokens: 32")) throw new Error(`unexpected README sample:\n${sample}`);
  writeFileSync(join(app, "sample.mjs"), sample);
  const printed = mustRun(process.execPath, ["sample.mjs"], app);
  if (printed.trim().length < 20) throw new Error(`the sample printed ${JSON.stringify(printed)}`);
  const cli = JSON.parse(mustRun(process.execPath, [join(app, "node_modules/olmo-js/dist/cli.js"), "generate", "--json", "--max-new-tokens", "32", "ROMEO:"], app)) as { text: string };
  if (printed !== `${cli.text.replaceAll("<|endoftext|>", "")}\n`) throw new Error(`the sample printed ${JSON.stringify(printed)}; olmo generate: ${JSON.stringify(cli.text)}`);
});

test("CommonJS: require.resolve finds every entry (the default condition); import() loads them; require() where Node can require ES modules", () => {
  writeFileSync(join(app, "check.cjs"), `
const resolved = ["olmo-js", "olmo-js/node", "olmo-js/worker", "olmo-js/dist/olmo-simd.wasm", "olmo-js/dist/olmo-relaxed-simd.wasm"].map((p) => require.resolve(p));
let required;
try {
  required = typeof require("olmo-js").OlmoGenerator;
} catch (e) {
  required = e.code;
}
Promise.all([import("olmo-js"), import("olmo-js/node")]).then(([core, node]) => {
  console.log(JSON.stringify({ resolved, required, core: typeof core.OlmoGenerator, node: typeof node.NodeOlmoGenerator, model: node.DEFAULT_MODEL_DIR }));
});
`);
  const result = JSON.parse(mustRun(process.execPath, ["check.cjs"], app)) as { resolved: string[]; required: string; core: string; node: string; model: string };
  const want = ["dist/index.js", "dist/node.js", "dist/worker.js", "dist/olmo-simd.wasm", "dist/olmo-relaxed-simd.wasm"];
  if (!result.resolved.every((p, i) => p.endsWith(`node_modules/olmo-js/${want[i]}`))) throw new Error(`require.resolve: ${result.resolved.join(", ")}`);
  if (result.core !== "function" || result.node !== "function") throw new Error(`import(): ${JSON.stringify(result)}`);
  if (!existsSync(join(result.model, "model.safetensors"))) throw new Error(`DEFAULT_MODEL_DIR ${result.model} holds no model.safetensors`);
  // require() of an ES module works where Node has it unflagged (20.19+, 22.12+: process.features.require_module);
  // older Node refuses it, and README points CommonJS code to import() there.
  const expected = (process.features as { require_module?: boolean }).require_module ? "function" : "ERR_REQUIRE_ESM";
  if (result.required !== expected) throw new Error(`require("olmo-js") on Node ${process.versions.node}: ${result.required}, expected ${expected}`);
});

test.after(() => rmSync(root, { recursive: true, force: true }));

test.run();
