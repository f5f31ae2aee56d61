// Runs the two builds of bench/microkernel/exp.ts that `npm run build` makes (build/wasm/exp.wasm, plain
// SIMD; exp-relaxed.wasm, fused multiply-adds) and prints, for each, expF32x4's largest error in ulps
// against f64 Math.exp over 4M evenly spaced points of each of three ranges, its results for special
// inputs, and its time per element. test/exp.test.ts asserts the error bound.
import { readFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";

setFlagsFromString("--experimental-wasm-relaxed-simd");
const builds = new URL("../../build/wasm/", import.meta.url).pathname;
const N = 1 << 22;

/** One ulp of the f32 nearest v (v > 0). */
function ulp(v) {
  const f = new Float32Array([v]), bits = new Uint32Array(f.buffer), at = f[0];
  bits[0] += 1;
  return f[0] - at;
}

for (const [build, file] of [["plain", "exp.wasm"], ["relaxed (fused)", "exp-relaxed.wasm"]]) {
  const { instance } = await WebAssembly.instantiate(readFileSync(builds + file), {});
  const { expArray, memory } = instance.exports;
  memory.grow(Math.ceil((8 * N + 1024) / 65536) + 1);
  const xs = new Float32Array(memory.buffer, 1024, N), ys = new Float32Array(memory.buffer, 1024 + 4 * N, N);
  let worst = 0, worstAt = 0;
  for (const [lo, hi] of [[-87.3, 88.3], [-1, 1], [-20, 0]]) {
    for (let i = 0; i < N; i++) xs[i] = lo + ((hi - lo) * i) / (N - 1);
    expArray(1024, 1024 + 4 * N, N);
    for (let i = 0; i < N; i++) {
      const want = Math.exp(xs[i]), error = Math.abs(ys[i] - want) / ulp(want);
      if (error > worst) [worst, worstAt] = [error, xs[i]];
    }
  }
  const special = [-Infinity, -100, 0, 1, 100, Infinity, NaN];
  xs.set(special);
  expArray(1024, 1024 + 4 * N, 8);
  const results = special.map((x, i) => `${x} -> ${ys[i]}`).join(", ");
  for (let i = 0; i < N; i++) xs[i] = -20 * ((i * 7919) % N) / N;
  for (let i = 0; i < 10; i++) expArray(1024, 1024 + 4 * N, N);
  const t0 = performance.now();
  for (let i = 0; i < 50; i++) expArray(1024, 1024 + 4 * N, N);
  const ns = ((performance.now() - t0) * 1e6) / (50 * N);
  console.log(`${build.padEnd(16)} largest error ${worst.toFixed(2)} ulp (at x = ${worstAt.toPrecision(6)}); ${ns.toFixed(2)} ns per element`);
  console.log(`${"".padEnd(16)} ${results}`);
}
