// Checkpoints survive SIGKILL at any moment: `olmo train --save-every 1` on the smallest model is
// killed 50 times at seeded random moments (while loading, training, or inside a checkpoint write).
// After each kill the run folder must load as `--load` loads it, and a run resumed after every kill
// must end with the same bytes (weights and optimizer state) as a run never interrupted.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import { Random, TokenDataset, Trainer } from "../src/index.js";
import { loadTrainableModel, restoreTrainerState } from "../src/node/index.js";
import { readJson, repoRoot, wasmBackendsUnderTest } from "./helpers.js";

const KILLS = 50;
/** Kills in one run folder before its run is let finish, so every folder ends in a comparison. */
const KILLS_PER_FOLDER = 10;
const STEPS = 8;
const INIT = `${repoRoot}test/fixtures/train/init`;
const fixture = readJson<{ ids: number[]; mask: number[] }>("test/fixtures/train/expected.json");
const [wasm1] = await wasmBackendsUnderTest();

const dir = mkdtempSync(join(tmpdir(), "olmo-kill-"));
writeFileSync(join(dir, "input_ids.npy"), new Uint8Array(Uint16Array.from(fixture.ids).buffer));
writeFileSync(join(dir, "label_mask.npy"), Uint8Array.from(fixture.mask));

function trainArgs(from: string[], save: string): string[] {
  return [`${repoRoot}dist/cli.js`, "train", ...from, "--data", dir, "--seq-len", "8", "--batch-size", "2", "--threads", "1",
    "--steps", String(STEPS), "--lr", "1e-3", "--warmup", "2", "--save-every", "1", "--save", save];
}

/** What --load does: the latest folder's weights and optimizer state, and the trainer position. */
async function checkLoads(save: string): Promise<number> {
  const { model, folder } = await loadTrainableModel(save, wasm1!);
  try {
    const data = new TokenDataset(Uint16Array.from(fixture.ids), Uint8Array.from(fixture.mask), 8, model.config.vocabSize);
    const trainer = new Trainer(model, data, { steps: STEPS, batchSize: 2, lr: 1e-3 });
    await restoreTrainerState(folder, trainer, false);
    trainer.optimizer.dispose();
    return trainer.step;
  } finally {
    model.dispose();
  }
}

/** Run to the end, or SIGKILL after `delayMs`; true when it was killed. */
function runOrKill(args: string[], delayMs: number | null): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const timer = delayMs === null ? null : setTimeout(() => child.kill("SIGKILL"), delayMs);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      if (signal === "SIGKILL") resolve(true);
      else if (code === 0) resolve(false);
      else reject(new Error(`olmo train exited ${code}: ${stderr}`));
    });
  });
}

test(`${KILLS} SIGKILLs at random moments: every kill leaves a loadable run, and resuming gives the uninterrupted run's bytes`, async () => {
  const reference = join(dir, "reference");
  const started = performance.now();
  const straight = spawnSync(process.execPath, trainArgs(["--model", INIT], reference), { encoding: "utf8" });
  if (straight.status !== 0) throw new Error(straight.stderr);
  // Delays spread over one whole run (start-up, loading, steps and saves), measured on this machine.
  let runMs = performance.now() - started;
  const want = ["model.safetensors", "optimizer.safetensors"].map((f) => readFileSync(join(reference, `step-${STEPS}`, f)));
  const random = new Random(2024);
  let kills = 0, folders = 0, resumedFromCheckpoint = 0;
  while (kills < KILLS) {
    const save = join(dir, `run-${folders++}`);
    for (let inFolder = 0; ; inFolder++) {
      // A run that saved a step (latest, or a first save's step-N a kill left before latest) resumes it.
      const saved = existsSync(join(save, "latest")) || (existsSync(save) && readdirSync(save).some((f) => /^step-\d+$/.test(f)));
      const from = saved ? ["--load", save] : ["--model", INIT];
      const delay = kills < KILLS && inFolder < KILLS_PER_FOLDER ? random.uniform() * runMs : null;
      if (!(await runOrKill(trainArgs(from, save), delay))) {
        // A run that outlived its delay: later delays get shorter, so kills keep landing inside runs
        // however much faster than the first (cold) measurement the machine now runs them.
        if (delay !== null) runMs *= 0.8;
        break;
      }
      kills++;
      if (existsSync(join(save, "latest"))) {
        const step = await checkLoads(save);
        if (step > 0) resumedFromCheckpoint++;
      }
    }
    const got = ["model.safetensors", "optimizer.safetensors"].map((f) => readFileSync(join(save, `step-${STEPS}`, f)));
    if (!got[0]!.equals(want[0]!) || !got[1]!.equals(want[1]!)) throw new Error(`${save}: the resumed run's step-${STEPS} differs from the uninterrupted run's`);
    if ((await checkLoads(save)) !== STEPS) throw new Error(`${save}: latest is not step-${STEPS}`);
  }
  // The kills must have landed after checkpoints existed, or the test proved nothing about resuming.
  if (resumedFromCheckpoint < KILLS / 5) throw new Error(`only ${resumedFromCheckpoint} of ${kills} kills came after a checkpoint`);
  console.log(`  ${kills} kills over ${folders} run folders, ${resumedFromCheckpoint} after a checkpoint existed`);
  rmSync(dir, { recursive: true });
});

test.run();
