// The same code on other JavaScript hosts: greedy generation on the default model must give exactly
// the ids it gives in Node.

import { spawnSync } from "node:child_process";
import { test } from "uvu";
import { createWasmBackend, generate, loadOlmo } from "../src/index.js";
import { folderSource } from "../src/node/index.js";
import { repoRoot } from "./helpers.js";

const MODEL = `${repoRoot}models/olmo-tiny-shakespeare`;
const PROMPT = "ROMEO:";

async function nodeIds(): Promise<number[]> {
  const { model, tokenizer } = await loadOlmo(folderSource(MODEL), await createWasmBackend({ threads: 1 }));
  const ids = (await generate(model, tokenizer!.encode(PROMPT), { maxNewTokens: 24 })).newIds;
  model.dispose();
  return ids;
}

test("Deno: greedy generation on the default model equals Node's", async () => {
  const deno = spawnSync(`${repoRoot}node_modules/.bin/deno`, ["run", `--allow-read=${repoRoot}`, `${repoRoot}test/hosts/deno-generate.mjs`, MODEL, PROMPT], {
    encoding: "utf8",
    timeout: 60000,
  });
  if (deno.status !== 0) throw new Error(`deno exited with ${deno.status}: ${deno.stderr}`);
  const { ids } = JSON.parse(deno.stdout.trim().split("\n").pop()!) as { ids: number[] };
  const want = await nodeIds();
  if (ids.join() !== want.join()) throw new Error(`Deno generated [${ids}], Node [${want}]`);
});

test.run();
