// The WASM backend against the reference backend: every op forward and backward on random inputs with
// odd sizes and sizes that cross the matmul tiles (MR x NR 3 x 12 relaxed, 4 x 8 plain; KC 256, MC 120,
// NC 1920), on 1 and 2 threads, in both builds (relaxed SIMD, the default, and plain SIMD); plus its
// AdamW; its memory limit, kernel argument checks and clean shutdown.

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as ops from "../src/index.js";
import { createJsBackend, createWasmBackend, randn, scope, tensor, type WasmBuffer } from "../src/index.js";
import { adamwSteps, expectSameAsReference, opCases } from "./backend-cases.js";
import { createNodeWasmBackend } from "../src/node/index.js";
import { withSharedMemory } from "../src/backends/wasm/module.js";
import { assertClose, plainWasmBackendUnderTest, repoRoot, wasmBackendsUnderTest } from "./helpers.js";

// The default backends run the relaxed-SIMD build (fused multiply-adds; Node 20 gets the V8 flag from
// createNodeWasmBackend); relaxedSimd: false gives the plain-SIMD build that hosts without it run.
const [wasm1, wasm2] = await wasmBackendsUnderTest();
const plain1 = await createWasmBackend({ threads: 1, relaxedSimd: false });
const plain2 = await plainWasmBackendUnderTest();

test("the default backends run the relaxed-SIMD build, relaxedSimd: false the plain one", () => {
  if (!wasm1!.relaxedSimd || !wasm2!.relaxedSimd) throw new Error(`relaxedSimd: ${wasm1!.relaxedSimd}, ${wasm2!.relaxedSimd}`);
  if (plain1.relaxedSimd || plain2.relaxedSimd) throw new Error("relaxedSimd: false should run the plain build");
});

for (const c of opCases) {
  test(`wasm = js: ${c.name}`, () =>
    expectSameAsReference(c, [
      ["wasm 1 thread", wasm1!], ["wasm 2 threads", wasm2!], ["wasm plain SIMD, 1 thread", plain1], ["wasm plain SIMD, 2 threads", plain2],
    ]));
}

test("wasm = js: three AdamW steps with weight decay, both builds, 1 and 2 threads", async () => {
  // The kernel updates four parameters at a time in f32 arithmetic, the reference in f64 rounded to
  // f32 storage: relative differences of a few 1e-7 of values in [-1, 1]; 1e-6 is several times that.
  // 1001 parameters: the 2-thread split and the scalar tail both run.
  const want = await adamwSteps(createJsBackend(), 1001);
  for (const [label, backend] of [["1 thread", wasm1!], ["2 threads", wasm2!], ["plain, 1 thread", plain1], ["plain, 2 threads", plain2]] as const) {
    assertClose(await adamwSteps(backend, 1001), want, { atol: 1e-6, rtol: 1e-6 }, `AdamW on wasm ${label}`);
  }
});

test("the shared-memory binary made at run time is byte for byte what asc builds with --sharedMemory", () => {
  const dir = mkdtempSync(join(tmpdir(), "olmo-asc-"));
  const asc = `${repoRoot}node_modules/assemblyscript/bin/asc.js`;
  const flags = ["--runtime", "stub", "-O3", "--noAssert", "--enable", "simd", "--importMemory", "--noExportMemory", "--initialMemory", "2", "--maximumMemory", "65536"];
  for (const [name, extra] of [["kernels", []], ["kernels-relaxed", ["--enable", "relaxed-simd"]]] as const) {
    const out = `${dir}/${name}.wasm`;
    const r = spawnSync(process.execPath, [asc, `${repoRoot}assembly/index.ts`, "-o", out, ...flags, ...extra, "--enable", "threads", "--sharedMemory"], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(r.stderr);
    const want = readFileSync(out), got = withSharedMemory(readFileSync(`${repoRoot}build/wasm/${name}.wasm`));
    if (Buffer.compare(want, Buffer.from(got)) !== 0) throw new Error(`${name}: the run-time shared build differs from asc's`);
  }
  rmSync(dir, { recursive: true });
});

test("an allocation past the memory limit fails with the numbers", async () => {
  const small = await createWasmBackend({ maxMemoryBytes: 64 * 2 ** 20 });
  let message = "";
  try {
    tensor(new Float32Array(1), [1], { backend: small }); // fine
    ops.full([8192, 4096], 0, { backend: small }); // 128 MiB
  } catch (e) {
    message = (e as Error).message;
  }
  for (const fragment of ["cannot allocate 128.0 MiB", "f32 tensor of 33554432 elements", "64.0 MiB WebAssembly memory limit"]) {
    if (!message.includes(fragment)) throw new Error(`"${message}" lacks "${fragment}"`);
  }
});

test("a kernel called with buffers too small for its shapes is refused before it runs", () => {
  const a = wasm1!.allocate("f32", 6), b = wasm1!.allocate("f32", 6), out = wasm1!.allocate("f32", 4);
  let message = "";
  try {
    wasm1!.kernels.matmul({ a, b, out, bDType: "f32", batch: 1, m: 2, k: 4, n: 2, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 });
  } catch (e) {
    message = (e as Error).message;
  }
  if (!message.includes('matmul: buffer "a" holds 24 bytes but the call needs 32')) throw new Error(message);
  for (const buffer of [a, b, out] as WasmBuffer[]) wasm1!.free(buffer);
});

test("fill writes every dtype's elements and not a byte past them (i8 included), 1 and 2 threads", () => {
  // The loader zero-fills each new weight (i8 quantized values too) before reading into it.
  for (const backend of [wasm1!, wasm2!]) {
    for (const [dtype, bytesPer] of [["i8", 1], ["bf16", 2], ["f32", 4], ["i32", 4]] as const) {
      const size = 1001, guard = 64;
      const buffer = backend.allocate(dtype, size + guard);
      const bytes = backend.rawBytes!(buffer, dtype, size + guard)!;
      bytes.fill(0x5a);
      backend.kernels.fill({ out: buffer, dtype, size, value: 0 });
      const zeros = bytes.subarray(0, size * bytesPer).findIndex((b) => b !== 0);
      const past = bytes.subarray(size * bytesPer).findIndex((b) => b !== 0x5a);
      backend.free(buffer);
      if (zeros >= 0) throw new Error(`${dtype} on ${backend.threads} thread(s): byte ${zeros} of the fill is not 0`);
      if (past >= 0) throw new Error(`${dtype} on ${backend.threads} thread(s): byte ${past} past the fill was written`);
    }
  }
});

test("freed memory is reused: a loop of allocations stays flat", () => {
  const before = wasm1!.memoryUsage();
  for (let i = 0; i < 50; i++) scope(() => void ops.matmul(randn([64, 64], { backend: wasm1! }), randn([64, 64], { backend: wasm1! })));
  const after = wasm1!.memoryUsage();
  if (after.inUse !== before.inUse) throw new Error(`in use ${before.inUse} -> ${after.inUse}`);
  if (after.reserved > before.reserved + 3 * 64 * 64 * 4 + 1024) throw new Error(`heap grew ${before.reserved} -> ${after.reserved}`);
});

test("a Node program that used the 2-thread pool exits on its own", () => {
  const script = `
    import { createNodeWasmBackend } from ${JSON.stringify(`${repoRoot}dist/node.js`)};
    import { tensor, matmul } from ${JSON.stringify(`${repoRoot}dist/index.js`)};
    const backend = await createNodeWasmBackend({ threads: 2 });
    const a = tensor(new Float32Array(256 * 256).fill(1), [256, 256], { backend });
    process.stdout.write(String((await matmul(a, a).data())[0]));`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20000 });
  if (r.status !== 0 || r.stdout.trim() !== "256") throw new Error(`status ${r.status} signal ${r.signal}: ${r.stdout} ${r.stderr}`);
});

test.run();
