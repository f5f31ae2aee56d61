// The accuracy of the WASM kernels' four-lane exp (expF32x4 in assembly/common.ts), which softmax,
// log-sum-exp, cross-entropy, attention and SiLU use. Op tolerances would accept a much worse exp,
// so its error is measured on its own: the largest error in ulps against Math.exp (double) over its
// range, sampled densely, in both builds (plain SIMD; relaxed SIMD, where multiply-adds are fused),
// plus what it returns outside that range. The meter is shown to fail a deliberately wrong exp.
//
// The exp is reached through bench/microkernel/exp.ts (expF32x4 over an array), which scripts/build.mjs
// builds beside the kernels into build/wasm/exp*.wasm and which the library does not ship: it runs
// exactly the function the kernels inline, where a kernel computing "exp of its input" would add its
// own arithmetic around it (a subtraction, a multiplication) and its own input limits.

import { setFlagsFromString } from "node:v8";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { probeWasmFeatures } from "../src/backends/wasm/features.js";
import expPlain from "../build/wasm/exp.wasm";
import expRelaxed from "../build/wasm/exp-relaxed.wasm";

/** The range expF32x4 computes e^x over (assembly/common.ts); outside it, it returns 0 or e^88.3. */
const LOW = Math.fround(-87.3), HIGH = Math.fround(88.3);
/** The claim, "about 1 ulp": the fused build's last rounding can add a hundredth or so (bench/NOTES.md has the measured figures). */
const MAX_ULPS = 1.05;

type Exp = (xs: Float32Array) => Float32Array;

/** expF32x4 of one build, over arrays. */
function wasmExp(binary: Uint8Array<ArrayBuffer>): Exp {
  const instance = new WebAssembly.Instance(new WebAssembly.Module(binary), {});
  const { expArray, memory } = instance.exports as { expArray(x: number, out: number, n: number): void; memory: WebAssembly.Memory };
  const base = 1024;
  return (xs) => {
    const n = Math.ceil(xs.length / 4) * 4, bytes = base + 8 * n;
    if (memory.buffer.byteLength < bytes) memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / 65536));
    new Float32Array(memory.buffer, base, n).set(xs);
    expArray(base, base + 4 * n, n);
    return new Float32Array(memory.buffer, base + 4 * n, xs.length).slice();
  };
}

/** One ulp of a float32 near v (v > 0): the spacing of the binade v lies in, normal or subnormal. */
function ulpOf(v: number): number {
  return 2 ** (Math.max(Math.floor(Math.log2(v)), -126) - 23);
}

/** The largest error of `exp` over xs, in ulps of the exact result (Math.exp in double), and where. */
function maxUlpError(exp: Exp, xs: Float32Array): { ulps: number; at: number } {
  const ys = exp(xs);
  let ulps = 0, at = NaN;
  for (let i = 0; i < xs.length; i++) {
    const exact = Math.exp(xs[i]!), error = Math.abs(ys[i]! - exact) / ulpOf(exact);
    if (!(error <= ulps)) [ulps, at] = [error, xs[i]!];
  }
  return { ulps, at };
}

/**
 * Dense samples of [LOW, HIGH]: every STRIDE-th float32 bit pattern of each sign (so every binade, down
 * to the subnormal x near 0, with mantissas of every residue), then 2^21 evenly spaced points.
 */
function samples(): Float32Array {
  const STRIDE = 257, EVEN = 1 << 21;
  const toBits = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0]!;
  const positive = Math.floor(toBits(HIGH) / STRIDE) + 1, negative = Math.floor(toBits(-LOW) / STRIDE) + 1;
  const xs = new Float32Array(positive + negative + EVEN + 1);
  const bits = new Uint32Array(xs.buffer, 0, positive + negative);
  for (let i = 0; i < positive; i++) bits[i] = i * STRIDE;
  for (let i = 0; i < negative; i++) bits[positive + i] = (0x80000000 | (i * STRIDE)) >>> 0;
  for (let i = 0; i <= EVEN; i++) xs[positive + negative + i] = LOW + ((HIGH - LOW) * i) / EVEN;
  return xs;
}

// Relaxed SIMD is behind a flag in Node 20 (createNodeWasmBackend turns it on the same way).
if (!probeWasmFeatures().relaxedSimd) setFlagsFromString("--experimental-wasm-relaxed-simd");
const builds: [string, Exp][] = [["plain SIMD", wasmExp(expPlain)], ["relaxed SIMD (fused)", wasmExp(expRelaxed)]];
const xs = samples();

for (const [build, exp] of builds) {
  test(`expF32x4 (${build}) is within ${MAX_ULPS} ulp of e^x over [-87.3, 88.3] (${xs.length} points)`, () => {
    const { ulps, at } = maxUlpError(exp, xs);
    assert.ok(ulps <= MAX_ULPS, `largest error ${ulps.toFixed(3)} ulp at x = ${at}`);
  });

  test(`expF32x4 (${build}) outside its range, and at special values`, () => {
    const x = Float32Array.of(0, -0, 1, -Infinity, -1e30, -103.9, -88, Math.fround(-87.31), HIGH, 88.5, 88.72, 100, 1e30, Infinity, NaN);
    const [one, minusZero, e, ...rest] = exp(x);
    assert.is(one, 1, "e^0");
    assert.is(minusZero, 1, "e^-0");
    assert.is(e, Math.fround(Math.E), "e^1");
    const [minusInf, huge, subnormal, below, justBelow, atHigh, above, nearOverflow, hundred, huge2, inf, nan] = rest;
    // Below LOW the exact e^x is under 1.2e-38 (subnormal or 0): the result is +0, not a subnormal.
    for (const [value, label] of [[minusInf, "-inf"], [huge, "-1e30"], [subnormal, "-103.9"], [below, "-88"], [justBelow, "-87.31"]] as const) {
      assert.ok(Object.is(value, 0), `e^${label} = ${value}, want +0`);
    }
    // Above HIGH the result stays e^88.3 (about 2.1e38), finite, where e^x overflows past 88.72.
    assert.ok(Number.isFinite(atHigh!) && Math.abs(atHigh! - Math.exp(HIGH)) <= MAX_ULPS * ulpOf(Math.exp(HIGH)), `e^88.3 = ${atHigh}`);
    for (const value of [above, nearOverflow, hundred, huge2, inf]) assert.is(value, atHigh, "x > 88.3 gives e^88.3");
    assert.ok(Number.isNaN(nan!), "e^NaN is NaN");
  });
}

test("the meter: e^x rounded to float32 scores at most 0.5 ulp", () => {
  const { ulps } = maxUlpError((v) => v.map((x) => Math.fround(Math.exp(x))), xs);
  assert.ok(ulps <= 0.5 + 1e-9, `${ulps}`);
});

test(`the meter: an exp two ulps off, and one with a degree-5 polynomial, score above ${MAX_ULPS} ulp`, () => {
  const twoUlpsOff: Exp = (v) => v.map((x) => Math.fround(Math.exp(x) + 2 * ulpOf(Math.exp(x))));
  assert.ok(maxUlpError(twoUlpsOff, xs).ulps > MAX_ULPS, "two ulps off");
  // expF32x4's own steps in float32 arithmetic, with the polynomial's highest-degree term dropped.
  const f = Math.fround;
  const degree5: Exp = (v) =>
    v.map((x) => {
      const n = Math.round(f(x * f(1.44269504089)));
      const r = f(f(x - f(n * f(0.693359375))) + f(n * f(2.12194440e-4)));
      let p = f(1.3981999507e-3);
      for (const c of [8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1]) p = f(f(p * r) + f(c));
      return f(f(f(f(p * r) * r) + r) + 1) * 2 ** n;
    });
  const { ulps, at } = maxUlpError(degree5, xs);
  assert.ok(ulps > MAX_ULPS, `degree 5: ${ulps} ulp at ${at}`);
});

test.run();
