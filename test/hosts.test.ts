// The same code on other JavaScript hosts: greedy generation on the default model must give exactly
// the ids it gives in Node.

import { spawnSync } from "node:child_process";
import { test } from "uvu";
import { createWasmBackend, generate, loadOlmo } from "../src/index.js";
import { folderSource } from "../src/node/index.js";
import { repoRoot, requireVulkan, testIf } from "./helpers.js";
import { expectParity, type ParityReport } from "./hosts/webgpu-parity.js";

const MODEL = `${repoRoot}models/olmo-tiny-shakespeare`;
const PROMPT = "ROMEO:";

async function nodeIds(): Promise<number[]> {
  const { model, tokenizer } = await loadOlmo(folderSource(MODEL), await createWasmBackend({ threads: 1 }));
  const ids = (await generate(model, tokenizer!.encode(PROMPT), { maxNewTokens: 24 })).newIds;
  model.dispose();
  return ids;
}

/** Runs a host's script (test/hosts/) and returns the ids it printed. */
function hostIds(command: string, args: string[]): number[] {
  const run = spawnSync(command, args, { encoding: "utf8", timeout: 60000 });
  if (run.status !== 0) throw new Error(`${command} exited with ${run.status}: ${run.stderr}`);
  return (JSON.parse(run.stdout.trim().split("\n").pop()!) as { ids: number[] }).ids;
}

const want = nodeIds();

for (const threads of ["1", "2"]) {
  const how = threads === "1" ? "1 thread" : "2 threads (Web Workers)";
  test(`Deno, ${how}: greedy generation on the default model equals Node's`, async () => {
    const ids = hostIds(`${repoRoot}node_modules/.bin/deno`, ["run", `--allow-read=${repoRoot}`, `${repoRoot}test/hosts/deno-generate.mjs`, MODEL, PROMPT, threads]);
    if (ids.join() !== (await want).join()) throw new Error(`Deno generated [${ids}], Node [${await want}]`);
  });

  test(`Bun, ${how}: greedy generation on the default model equals Node's`, async () => {
    const ids = hostIds(`${repoRoot}node_modules/.bin/bun`, [`${repoRoot}test/hosts/bun-generate.mjs`, MODEL, PROMPT, threads]);
    if (ids.join() !== (await want).join()) throw new Error(`Bun generated [${ids}], Node [${await want}]`);
  });
}

// Deno's navigator.gpu needs a Vulkan driver too (skipped, said on stderr, without one).
const vulkan = await requireVulkan("the Deno WebGPU case of hosts.test");

testIf(vulkan)("Deno WebGPU (navigator.gpu): every op case matches the reference backend; greedy ids equal Node's", async () => {
  const run = spawnSync(`${repoRoot}node_modules/.bin/deno`, ["run", `--allow-read=${repoRoot}`, `${repoRoot}test/hosts/deno-webgpu.mjs`, MODEL], {
    encoding: "utf8",
    timeout: 300000,
  });
  if (run.status !== 0) throw new Error(`deno exited with ${run.status}: ${run.stderr}`);
  expectParity(JSON.parse(run.stdout.trim().split("\n").pop()!) as ParityReport, "Deno", await want);
});

test.run();
