// The boundary between the WASM backend and its kernels (src/backends/wasm/boundary.ts): the generated
// signature table is what assembly/ declares and what the binary exports, arguments reach the export
// in its own order, a wrongly named or missing argument does not compile, and every buffer argument
// is range-checked before the call.

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createWasmBackend, type WasmBuffer } from "../src/index.js";
import type { BytesNeeded, Region } from "../src/backends/wasm/boundary.js";
import { WASM_KERNEL_NAMES, WASM_KERNELS, WASM_QUERIES, type WasmKernelArguments, type WasmKernelName } from "../src/backends/wasm/kernel-signatures.generated.js";
import { GENERATED_PATH, readKernelSignatures, renderKernelSignatures } from "../scripts/wasm-signatures.mjs";
import plainKernels from "../build/wasm/kernels.wasm";
import { repoRoot } from "./helpers.js";

const signatures = readKernelSignatures(repoRoot);

test(`${GENERATED_PATH} as committed is what assembly/ declares`, () => {
  // The build rewrites the file from assembly/ before this test runs, so the copy on disk always
  // agrees; what can go stale is the committed one (a signature changed, the regenerated file not
  // committed). Compare with git's copy where there is a repository (CI's clean clone), else with disk.
  const git = spawnSync("git", ["show", `HEAD:${GENERATED_PATH}`], { cwd: repoRoot, encoding: "utf8" });
  const committed = git.status === 0 ? git.stdout : readFileSync(repoRoot + GENERATED_PATH, "utf8");
  assert.ok(committed === renderKernelSignatures(signatures), `the committed ${GENERATED_PATH} differs from assembly/: run npm run build and commit it`);
});

test("the shipped binary exports exactly the kernels and queries of the table, with their parameter counts", () => {
  const memory = new WebAssembly.Memory({ initial: 2, maximum: 65536 });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(plainKernels), { env: { memory } });
  const exported = Object.keys(instance.exports).sort();
  assert.equal(exported, [...WASM_KERNEL_NAMES, ...WASM_QUERIES].sort());
  for (const name of WASM_KERNEL_NAMES) {
    const fn = instance.exports[name] as (...args: number[]) => number;
    assert.is(fn.length, WASM_KERNELS[name].arity + 2, `${name}: parameters of the export vs the table + (tid, threads)`);
  }
  for (const name of WASM_QUERIES) assert.is((instance.exports[name] as () => number).length, 0, name);
});

test("every kernel of the binary is called by the backend (bench-only exports belong in bench/)", () => {
  const adapters = readFileSync(`${repoRoot}src/backends/wasm/index.ts`, "utf8");
  for (const name of WASM_KERNEL_NAMES) assert.ok(adapters.includes(`"${name}"`), `src/backends/wasm/index.ts never calls ${name}`);
});

test("call and write put each named argument at its parameter's position in the AssemblyScript signature", () => {
  for (const { name, parameters } of signatures.kernels) {
    const kernel = WASM_KERNELS[name as WasmKernelName];
    // A distinct value per parameter: pointers as regions at distinct addresses.
    const args: Record<string, number | Region> = {};
    parameters.forEach((p, i) => (args[p.name] = p.type === "Pointer" || p.type === "OptionalPointer" ? { ptr: 1000 + i, bytes: 0 } : 1000 + i));
    let received: number[] = [];
    const spy = (...values: number[]) => ((received = values), 0);
    kernel.call(spy, args as never, 7, 9);
    assert.equal(received, [...parameters.map((_, i) => 1000 + i), 7, 9], `${name}: call`);
    const slots = new Float64Array(parameters.length);
    kernel.write(args as never, slots);
    assert.equal([...slots], parameters.map((_, i) => 1000 + i), `${name}: write`);
    // An optional pointer left out reaches the kernel as 0.
    for (const [i, p] of parameters.entries()) {
      if (p.type !== "OptionalPointer") continue;
      kernel.call(spy, { ...args, [p.name]: undefined } as never, 0, 1);
      assert.is(received[i], 0, `${name}: ${p.name} absent`);
    }
  }
});

/** Never called: its body is checked by `npm run typecheck`, where each @ts-expect-error must see an error. */
function namedArgumentsAreChecked(
  run: <K extends WasmKernelName>(name: K, work: number, args: WasmKernelArguments[K], needed: BytesNeeded<K>) => number, x: Region, out: Region,
): void {
  run("silu", 1, { x, out, size: 1 }, { x: 4, out: 4 });
  // @ts-expect-error an argument the kernel does not take
  run("silu", 1, { x, out, size: 1, extra: 2 }, { x: 4, out: 4 });
  // @ts-expect-error a missing argument
  run("silu", 1, { x, size: 1 }, { x: 4, out: 4 });
  // @ts-expect-error a misnamed argument
  run("silu", 1, { x, output: out, size: 1 }, { x: 4, out: 4 });
  // @ts-expect-error a number where a buffer goes
  run("silu", 1, { x, out: 1, size: 1 }, { x: 4, out: 4 });
  // @ts-expect-error a buffer where a number goes
  run("silu", 1, { x, out, size: x }, { x: 4, out: 4 });
  // @ts-expect-error a buffer argument without the bytes it must hold
  run("silu", 1, { x, out, size: 1 }, { x: 4 });
  // @ts-expect-error an optional buffer must still be named (as undefined when absent)
  run("layerNorm", 1, { x, out, rows: 1, cols: 1, eps: 1e-5 }, { x: 4, out: 4, mean: 4, rstd: 4 });
}
void namedArgumentsAreChecked;

// The buffer arguments the adapters did not range-check before every Pointer parameter was: each too
// small by one element, the others right, must be refused naming the kernel and the argument.
const backend = await createWasmBackend({ threads: 1 });
const f32 = (n: number) => backend.allocate("f32", n);
const i32 = (n: number) => backend.allocate("i32", n);
/** The call with every buffer the right size, and a replacement buffer one element short for `argument`. */
const cases: { kernel: string; argument: string; call(short?: [string, WasmBuffer]): void; size: number; dtype: "f32" | "i32" }[] = [];

{
  // Attention backward: B 1, H 2, G 1, Tq 3, Tk 3, S 4, D 4.
  const geometry = { batch: 1, heads: 2, kvHeads: 1, queryLen: 3, keyLen: 3, kvCapacity: 4, headDim: 4, scale: 0.5, causal: true };
  const qSize = 1 * 2 * 3 * 4, kvSize = 1 * 1 * 4 * 4, rows = 1 * 2 * 3;
  const sizes: Record<string, number> = { q: qSize, k: kvSize, v: kvSize, out: qSize, lse: rows, dout: qSize, dq: qSize, dk: kvSize, dv: kvSize };
  const buffers = Object.fromEntries(Object.entries(sizes).map(([name, n]) => [name, f32(n)]));
  for (const argument of ["q", "k", "v", "out", "lse"]) {
    cases.push({
      kernel: "attentionBackward", argument, size: sizes[argument]!, dtype: "f32",
      call: (short) => backend.kernels.attentionBackward({ ...geometry, ...buffers, ...(short && { [short[0]]: short[1] }) } as never),
    });
  }
}
{
  const rows = 3, cols = 5;
  const sizes: Record<string, number> = { x: rows * cols, mean: rows, rstd: rows, dout: rows * cols, dx: rows * cols };
  const buffers = Object.fromEntries(Object.entries(sizes).map(([name, n]) => [name, f32(n)]));
  for (const argument of ["mean", "rstd"]) {
    cases.push({
      kernel: "layerNormBackward", argument, size: sizes[argument]!, dtype: "f32",
      call: (short) => backend.kernels.layerNormBackward({ rows, cols, ...buffers, ...(short && { [short[0]]: short[1] }) } as never),
    });
  }
}
{
  const rows = 3, vocab = 7;
  const buffers = { logits: f32(rows * vocab), targets: i32(rows), lse: f32(rows), dnll: f32(rows), dlogits: f32(rows * vocab) };
  for (const [argument, dtype] of [["targets", "i32"], ["lse", "f32"]] as const) {
    cases.push({
      kernel: "crossEntropyBackward", argument, size: rows, dtype,
      call: (short) => backend.kernels.crossEntropyBackward({ rows, vocab, ...buffers, ...(short && { [short[0]]: short[1] }) } as never),
    });
  }
}

for (const c of cases) {
  test(`${c.kernel}: a "${c.argument}" buffer one element short is refused, naming kernel and argument`, () => {
    c.call(); // the right sizes run
    const short = backend.allocate(c.dtype, c.size - 1);
    let message = "";
    try {
      c.call([c.argument, short]);
    } catch (e) {
      message = (e as Error).message;
    }
    const want = `${c.kernel}: buffer "${c.argument}" holds ${4 * (c.size - 1)} bytes but the call needs ${4 * c.size}`;
    assert.ok(message.includes(want), `"${message}" lacks "${want}"`);
  });
}

test.run();
