// Matmul measurements shared by `olmo bench matmul` and `npm run bench`.
//
// out = a @ b with a: [M, K]. For M > 1, b: [K, N] (GEMM). For M = 1 (decoding one token), b is a weight
// stored as OLMo stores it, [N, K], and multiplied transposed: the GEMV path. Weights are cycled
// through enough copies to exceed the 32 MiB L3 cache twice, so GEMV figures are streaming-from-memory
// figures, not cache figures. The result is the median of repeated runs.

import { matmul, noGrad, randn, scope, type AnyBackend, type Tensor } from "../index.js";
import { parseArgs, UsageError, usage, type CommandSpec } from "./args.js";
import { backendByName } from "./backends.js";

export interface MatmulMeasurement {
  backend: string;
  threads: number;
  m: number;
  k: number;
  n: number;
  dtype: "f32" | "bf16";
  /** The wasm backend ran its relaxed-SIMD build (fused multiply-adds), not the plain-SIMD one. */
  relaxedSimd: boolean;
  /** Median GFLOP/s (2 M N K flops per product). */
  gflops: number;
  /** Weight bytes read per second (GB/s), the figure of merit for GEMV. */
  weightGBps: number;
  medianMs: number;
  runs: number;
}

const CYCLE_BYTES = 64 * 2 ** 20;

/** Median milliseconds of `once(i)` over repeated runs (at least 3, for at least minSeconds), after one warm-up run. */
export function medianTime(once: (i: number) => void, minSeconds: number): { medianMs: number; runs: number } {
  once(0); // warm up: compile, allocate
  const times: number[] = [];
  const started = performance.now();
  for (let i = 1; times.length < 3 || (performance.now() - started < minSeconds * 1000 && times.length < 1000); i++) {
    const t0 = performance.now();
    once(i);
    times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  return { medianMs: times[Math.floor(times.length / 2)]!, runs: times.length };
}

/** The operands of one measurement: a: [M, K] and enough weight copies to cycle through memory. */
function matmulOperands(backend: AnyBackend, m: number, k: number, n: number, dtype: "f32" | "bf16") {
  const decode = m === 1;
  const weightBytes = k * n * (dtype === "bf16" ? 2 : 4);
  const copies = decode ? Math.max(1, Math.ceil(CYCLE_BYTES / weightBytes)) : 1;
  const a = randn([m, k], { seed: 1, backend });
  const weights: Tensor[] = [];
  for (let i = 0; i < copies; i++) weights.push(randn(decode ? [n, k] : [k, n], { seed: 2 + i, backend, dtype, std: 0.02 }));
  return {
    /** The i-th product (weights cycle); its result is freed by the enclosing scope. */
    product: (i: number) => void matmul(a, weights[i % copies]!, { transB: decode }),
    dispose: () => [a, ...weights].forEach((t) => t.dispose()),
    measurement: (threads: number, medianMs: number, runs: number): MatmulMeasurement => ({
      backend: backend.name, threads, m, k, n, dtype, medianMs, runs, relaxedSimd: (backend as { relaxedSimd?: boolean }).relaxedSimd === true,
      gflops: (2 * m * n * k) / (medianMs / 1000) / 1e9,
      weightGBps: weightBytes / (medianMs / 1000) / 1e9,
    }),
  };
}

export function measureMatmul(
  backend: AnyBackend, threads: number, m: number, k: number, n: number, dtype: "f32" | "bf16", minSeconds = 1,
): MatmulMeasurement {
  return noGrad(() => {
    const operands = matmulOperands(backend, m, k, n, dtype);
    const { medianMs, runs } = medianTime((i) => scope(() => operands.product(i)), minSeconds);
    operands.dispose();
    return operands.measurement(threads, medianMs, runs);
  });
}

/**
 * The same measurement on a backend that queues its work (WebGPU): each sample records `repeat`
 * products and waits for the GPU to finish them, so the time covers execution, not recording.
 * `repeat` is chosen from a warm-up so one sample takes about 20 ms.
 */
export async function measureMatmulQueued(
  backend: AnyBackend, m: number, k: number, n: number, dtype: "f32" | "bf16", minSeconds = 1,
): Promise<MatmulMeasurement> {
  const operands = matmulOperands(backend, m, k, n, dtype);
  let product = 0;
  const sample = async (repeat: number) => {
    const t0 = performance.now();
    noGrad(() => scope(() => {
      for (let r = 0; r < repeat; r++) operands.product(product++);
    }));
    await backend.sync();
    return (performance.now() - t0) / repeat;
  };
  await sample(1); // compile pipelines, fill the buffer pool
  const repeat = Math.min(200, Math.max(1, Math.ceil(20 / (await sample(1)))));
  const times: number[] = [];
  const started = performance.now();
  while (times.length < 3 || (performance.now() - started < minSeconds * 1000 && times.length < 200)) times.push(await sample(repeat));
  operands.dispose();
  times.sort((x, y) => x - y);
  return operands.measurement(1, times[Math.floor(times.length / 2)]!, times.length * repeat);
}

const positive = { integer: true, min: 1 } as const;
const spec: CommandSpec = {
  m: { kind: "value", required: true, number: positive, help: "rows of a (1 = decode GEMV with a [N, K] weight)" },
  k: { kind: "value", required: true, number: positive, help: "inner size" },
  n: { kind: "value", required: true, number: positive, help: "columns of the output" },
  threads: { kind: "value", number: { integer: true, min: 1, max: 256 }, help: "threads for the wasm backend (default 1)" },
  backend: { kind: "value", choices: ["wasm", "webgpu", "js"], help: "backend (default wasm)" },
  dtype: { kind: "value", choices: ["f32", "bf16"], help: "weights (default f32)" },
  seconds: { kind: "value", number: { min: 0, minExclusive: true }, help: "minimum measuring time (default 1)" },
  "plain-simd": { kind: "flag", help: "wasm: the plain-SIMD build (mul + add) instead of the relaxed-SIMD one" },
  json: { kind: "flag", help: "print one JSON object" },
};

export async function runBench(args: string[]): Promise<void> {
  const [what, ...rest] = args;
  if (what === "--help" || what === "-h") return void console.log(usage("bench matmul", spec));
  if (what !== "matmul") throw new UsageError(`expected "olmo bench matmul ...", got "${what ?? ""}"\n\n${usage("bench matmul", spec)}`);
  const parsed = parseArgs("bench matmul", rest, spec);
  if (parsed.help) return void console.log(usage("bench matmul", spec));
  const { values, flags, numbers } = parsed;
  const [m, k, n] = [numbers.get("m")!, numbers.get("k")!, numbers.get("n")!];
  const dtype = (values.get("dtype") ?? "f32") as "f32" | "bf16";
  const threads = numbers.get("threads") ?? 1;
  const seconds = numbers.get("seconds") ?? 1;
  const backend = await backendByName(values.get("backend") ?? "wasm", threads, { relaxedSimd: !flags.has("plain-simd") });
  // A backend that reads back synchronously runs each kernel when it is called, so timing the calls
  // times the work; one without (WebGPU) queues kernels, and is timed up to sync().
  const result = backend.downloadSync
    ? measureMatmul(backend, threads, m, k, n, dtype, seconds)
    : await measureMatmulQueued(backend, m, k, n, dtype, seconds);
  backend.dispose();
  if (flags.has("json")) console.log(JSON.stringify(result));
  else {
    console.log(
      `${result.backend} ${threads} thread(s) ${result.m}x${result.k}x${result.n} ${dtype}: ${result.gflops.toFixed(2)} GFLOP/s, ` +
        `${result.weightGBps.toFixed(2)} GB/s of weights, median ${result.medianMs.toFixed(3)} ms over ${result.runs} runs`,
    );
  }
}
