// Dtype conversions against PyTorch's rounding, and the PRNG against an independent implementation.

import { test } from "uvu";
import {
  bf16ToF32, cast, createJsBackend, f16ToF32, f32ToBf16, f32ToF16, matmul, Random, randn, rand, tensor,
} from "../src/index.js";
import { exactLog } from "../src/core/random.js";
import { assertClose, readJson } from "./helpers.js";

const fixture = readJson<{
  conversions: { f32Bits: number[]; bf16Bits: number[]; f16Bits: number[] };
  prng: { seeds: number[]; uint32: number[][]; normal: number[][] };
}>("test/fixtures/ops.json");
const inputs = new Float32Array(Uint32Array.from(fixture.conversions.f32Bits).buffer);
const backend = createJsBackend();

test("f32 -> bf16 rounds to nearest even like torch.bfloat16", () => {
  inputs.forEach((x, i) => {
    const got = f32ToBf16(x), want = fixture.conversions.bf16Bits[i]!;
    if (got !== want) throw new Error(`f32ToBf16(${x}) = 0x${got.toString(16)}, PyTorch gives 0x${want.toString(16)}`);
  });
});

test("f32 -> f16 rounds to nearest even like torch.float16 (overflow, subnormals)", () => {
  inputs.forEach((x, i) => {
    const got = f32ToF16(x), want = fixture.conversions.f16Bits[i]!;
    if (got !== want) throw new Error(`f32ToF16(${x}) = 0x${got.toString(16)}, PyTorch gives 0x${want.toString(16)}`);
  });
});

test("every bf16 and f16 bit pattern widens exactly and narrows back to itself", () => {
  for (let bits = 0; bits < 65536; bits++) {
    const b = bf16ToF32(bits), h = f16ToF32(bits);
    if (!Number.isNaN(b) && f32ToBf16(b) !== bits) throw new Error(`bf16 0x${bits.toString(16)} does not round-trip`);
    if (!Number.isNaN(h) && f32ToF16(h) !== bits) throw new Error(`f16 0x${bits.toString(16)} does not round-trip`);
  }
});

test("tensors stored in bf16 / f16 read back as the rounded values; cast widens and narrows", async () => {
  const values = Array.from(inputs.slice(0, 40));
  const expected = fixture.conversions.bf16Bits.slice(0, 40).map(bf16ToF32);
  const t = tensor(values, [40], { dtype: "bf16", backend });
  assertClose(await t.data(), expected, { atol: 0, rtol: 0 }, "bf16 tensor");
  assertClose(await cast(t, "f32").data(), expected, { atol: 0, rtol: 0 }, "cast bf16 -> f32");
  const f = tensor(values, [40], { backend });
  const raw = await cast(f, "f16").rawData();
  if (Array.from(raw).join() !== fixture.conversions.f16Bits.slice(0, 40).join()) throw new Error("cast f32 -> f16 bits differ");
});

test("matmul reads bf16 weights as their rounded f32 values", async () => {
  const a = tensor([[1, 2], [3, 4]], undefined, { backend });
  const w = [[0.1, 0.2], [0.3, 0.4]];
  const rounded = w.map((row) => row.map((v) => bf16ToF32(f32ToBf16(v))));
  const out = await matmul(a, tensor(w, undefined, { backend, dtype: "bf16" })).data();
  const want = [1 * rounded[0]![0]! + 2 * rounded[1]![0]!, 1 * rounded[0]![1]! + 2 * rounded[1]![1]!];
  assertClose(out.slice(0, 2), want, { atol: 1e-6, rtol: 1e-6 }, "bf16 matmul");
});

test("PRNG: xoshiro128** draws equal an independent Python implementation", () => {
  fixture.prng.seeds.forEach((seed, k) => {
    const r = new Random(seed);
    const got = fixture.prng.uint32[k]!.map(() => r.nextUint32());
    if (got.join() !== fixture.prng.uint32[k]!.join()) throw new Error(`seed ${seed}: ${got} != ${fixture.prng.uint32[k]}`);
  });
});

test("PRNG: polar-method normals equal Python's (math.log) to 1e-14", () => {
  fixture.prng.seeds.forEach((seed, k) => {
    const r = new Random(seed);
    // exactLog is not libm's log, so the last bits may differ; nothing else can.
    assertClose(fixture.prng.normal[k]!.map(() => r.normal()), fixture.prng.normal[k]!, { atol: 1e-14, rtol: 1e-14 }, `seed ${seed}`);
  });
});

test("exactLog agrees with Math.log to 2 ulp across magnitudes", () => {
  for (const x of [1e-300, 1e-20, 0.001, 0.5, 0.7071, 1, 1.0000001, 2, Math.E, 10, 12345.678, 1e200]) {
    const want = Math.log(x);
    if (Math.abs(exactLog(x) - want) > 4.5e-16 * Math.max(1, Math.abs(want))) throw new Error(`exactLog(${x}) = ${exactLog(x)}, Math.log = ${want}`);
  }
});

test("seeded randn / rand are reproducible and have the right moments", async () => {
  const a = Array.from(await randn([4000], { seed: 3, backend }).data());
  const b = await randn([4000], { seed: 3, backend }).data();
  if (a.join() !== b.join()) throw new Error("same seed gave different normals");
  const m = a.reduce((s, v) => s + v, 0) / a.length;
  const variance = a.reduce((s, v) => s + (v - m) ** 2, 0) / a.length;
  // For 4000 samples the standard error of the mean is 0.016 and of the variance about 0.022: 5 sigma.
  if (Math.abs(m) > 0.08 || Math.abs(variance - 1) > 0.12) throw new Error(`normal mean ${m}, variance ${variance}`);
  const u = await rand([4000], { seed: 3, low: -1, high: 3, backend }).data();
  if (Math.min(...u) < -1 || Math.max(...u) >= 3) throw new Error("uniform out of [low, high)");
});

test.run();
