// The core bundle (dist/index.js) runs on every JavaScript host: it must import nothing, Node
// built-ins least of all. Node-only code lives in dist/node.js and dist/cli.js.

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

test("the Node entry and the CLI are separate bundles", () => {
  const node = readFileSync(`${repoRoot}dist/node.js`, "utf8");
  if (!/from "node:worker_threads"/.test(node)) throw new Error("dist/node.js should hold the worker_threads adapter");
});

test.run();
