// The core bundle (dist/index.js) runs on every JavaScript host: it must import nothing, Node
// built-ins least of all. Node-only code lives in dist/node.js and dist/cli.js.

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "uvu";
import { repoRoot } from "./helpers.js";

test("the core bundle has no imports at all (no node: built-ins, no packages)", () => {
  const meta = JSON.parse(readFileSync(`${repoRoot}dist/index.meta.json`, "utf8")) as {
    outputs: Record<string, { imports: { path: string; kind: string }[] }>;
    inputs: Record<string, unknown>;
  };
  const output = Object.entries(meta.outputs).find(([file]) => file.endsWith("dist/index.js"));
  if (!output) throw new Error("dist/index.js is missing from the metafile");
  if (output[1].imports.length) throw new Error(`the core bundle imports ${output[1].imports.map((i) => i.path).join(", ")}`);
  const nodeOnly = Object.keys(meta.inputs).filter((f) => f.includes("src/node/") || f.includes("src/cli/"));
  if (nodeOnly.length) throw new Error(`Node-only sources in the core bundle: ${nodeOnly.join(", ")}`);
});

// dist/node.js is built with a plugin (scripts/build.mjs, "core-from-index") that turns its imports of
// the core into imports of ./index.js. Without it esbuild would bundle a second copy of the core into
// dist/node.js: a second Tensor class (tensors from one entry not `instanceof` the other's) and a second
// live-tensor counter (memory() blind to tensors the Node entry makes). Each test below fails then.

const coreMeta = () => JSON.parse(readFileSync(`${repoRoot}dist/index.meta.json`, "utf8")) as { inputs: Record<string, unknown> };
const nodeBundle = () => readFileSync(`${repoRoot}dist/node.js`, "utf8");

test("dist/node.js holds no second copy of the core: no core source, no core class, every core import from ./index.js", () => {
  const node = nodeBundle();
  if (!/from "node:worker_threads"/.test(node)) throw new Error("dist/node.js should hold the worker_threads adapter");
  // The sources esbuild put into dist/node.js (its source map, paths relative to dist/) must not
  // include any file of the core bundle (its metafile, paths relative to the repository).
  const sources = (JSON.parse(readFileSync(`${repoRoot}dist/node.js.map`, "utf8")) as { sources: string[] }).sources.map((f) =>
    f.replace(/^\.\.\//, ""),
  );
  if (!sources.some((f) => f.startsWith("src/node/"))) throw new Error(`dist/node.js.map names no src/node/ source: ${sources.join(", ")}`);
  const core = new Set(Object.keys(coreMeta().inputs));
  if (!core.has("src/core/tensor.ts")) throw new Error("the core metafile does not list src/core/tensor.ts");
  const copied = sources.filter((f) => core.has(f));
  if (copied.length) throw new Error(`dist/node.js bundles core sources again: ${copied.join(", ")}`);
  // The same from the code itself: no class the core bundle defines (esbuild emits `var Name = class`,
  // with a digit appended when a name is taken) is defined again in dist/node.js.
  const classes = [...readFileSync(`${repoRoot}dist/index.js`, "utf8").matchAll(/^var ([A-Za-z_$][\w$]*) = class\b/gm)].map((m) => m[1]!);
  if (!classes.includes("Tensor")) throw new Error(`no Tensor class found in dist/index.js (the scan is out of date): ${classes.join(", ")}`);
  const again = classes.filter((name) => new RegExp(`^(var ${name}\\d* = class|class ${name}\\d*\\b)`, "m").test(node));
  if (again.length) throw new Error(`dist/node.js defines core classes again: ${again.join(", ")}`);
  // Its static imports are Node built-ins or the core entry, ./index.js, and it does use the core.
  const imports = [...node.matchAll(/^import\b[^;]*?\bfrom "([^"]+)";/gm)].map((m) => m[1]!);
  const other = imports.filter((path) => !path.startsWith("node:") && path !== "./index.js");
  if (other.length) throw new Error(`dist/node.js imports ${other.join(", ")}; the core must come from ./index.js`);
  if (!imports.includes("./index.js")) throw new Error("dist/node.js does not import the core from ./index.js");
});

test("a program importing olmo-js and olmo-js/node sees one Tensor class and one memory counter", () => {
  // A separate Node program that imports the two entries by the package's name (Node resolves a
  // package's own name through its package.json "exports" from inside the package), as users do.
  // olmo-js/node's loadTrainableModel makes the model's weights; the core's Tensor and memory() must
  // see them.
  const program = `
    import * as core from "olmo-js";
    import * as node from "olmo-js/node";
    const before = core.memory();
    const { model } = await node.loadTrainableModel(${JSON.stringify(`${repoRoot}test/fixtures/olmo/f32-untied-clip`)}, core.createJsBackend());
    const during = core.memory();
    const weights = [...model.weights.values()];
    const result = {
      weights: weights.length,
      allCoreTensors: weights.every((t) => t instanceof core.Tensor),
      counted: during.tensors - before.tensors,
      countedBytes: during.bytes - before.bytes,
      weightBytes: weights.reduce((total, t) => total + 4 * t.size, 0),
    };
    model.dispose();
    result.leftAfterDispose = core.memory().tensors - before.tensors;
    console.log(JSON.stringify(result));`;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", program], { cwd: repoRoot, encoding: "utf8" });
  if (run.status !== 0) throw new Error(`the program failed: ${run.stderr}`);
  const r = JSON.parse(run.stdout) as Record<string, number | boolean>;
  if (!((r.weights as number) > 0)) throw new Error(`no weights loaded: ${run.stdout}`);
  if (r.allCoreTensors !== true) throw new Error(`olmo-js/node made tensors that are not olmo-js's Tensor: ${run.stdout}`);
  // The model's f32 weights are exactly what loading leaves alive.
  if (r.counted !== r.weights || r.countedBytes !== r.weightBytes || r.leftAfterDispose !== 0) {
    throw new Error(`olmo-js's memory() does not count the tensors olmo-js/node made: ${run.stdout}`);
  }
});

test.run();
