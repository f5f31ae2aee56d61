// The WebGPU parity check as one self-contained module for other hosts (Deno, Chromium): bundled by
// scripts/build.mjs into build/hosts/webgpu-parity.js with the library inside. It runs every shared op
// case (test/backend-cases.ts) on the host's WebGPU against the reference backend, then greedy
// generation with the default model on both; Node runs the same cases in test/webgpu.test.ts.

import { createJsBackend, createWebGpuBackend, generate, loadOlmo, type ModelSource } from "../../src/index.js";

export { urlSource } from "../../src/index.js";
import { expectSameAsReference, opCases } from "../backend-cases.js";

export interface ParityReport {
  adapter: string;
  passed: number;
  failures: { name: string; error: string }[];
  /** Greedy ids of the default model on WebGPU and on the reference backend. */
  webgpuIds: number[];
  referenceIds: number[];
}

export async function webGpuParity(gpu: GPU, model: ModelSource, prompt = "ROMEO:"): Promise<ParityReport> {
  const backend = await createWebGpuBackend({ gpu });
  const report: ParityReport = { adapter: backend.adapter, passed: 0, failures: [], webgpuIds: [], referenceIds: [] };
  for (const c of opCases) {
    try {
      await expectSameAsReference(c, [["webgpu", backend]]);
      report.passed++;
    } catch (e) {
      report.failures.push({ name: c.name, error: String((e as Error).message) });
    }
  }
  for (const [key, b] of [["webgpuIds", backend], ["referenceIds", createJsBackend()]] as const) {
    const { model: olmo, tokenizer } = await loadOlmo(model, b);
    report[key] = (await generate(olmo, tokenizer!.encode(prompt), { maxNewTokens: 24 })).newIds;
    olmo.dispose();
  }
  backend.dispose();
  return report;
}

/** Throw unless every op case passed on `host` and both backends there generated Node's greedy ids. */
export function expectParity(report: ParityReport, host: string, nodeIds: readonly number[]): void {
  if (report.failures.length > 0) throw new Error(`on ${report.adapter}: ${report.failures.map((f) => `${f.name}: ${f.error}`).join("\n")}`);
  if (report.passed !== opCases.length) throw new Error(`${report.passed} of ${opCases.length} op cases ran`);
  if (report.webgpuIds.join() !== nodeIds.join() || report.referenceIds.join() !== nodeIds.join()) {
    throw new Error(`greedy ids: webgpu [${report.webgpuIds}], reference in ${host} [${report.referenceIds}], Node [${nodeIds}]`);
  }
}
