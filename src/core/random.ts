// Seeded random numbers, bit-identical on every JavaScript host.
//
// Generator: xoshiro128** (Blackman & Vigna, https://prng.di.unimi.it/xoshiro128starstar.c), 32-bit
// state words updated with Math.imul, shifts and xors only, seeded by expanding the seed with
// SplitMix32. Every step is exact integer arithmetic, so a seed gives the same stream in V8,
// SpiderMonkey, JavaScriptCore and on any CPU.
//
// Uniform floats take the top 24 bits of a draw: u = (x >>> 8) / 2^24, exactly representable in f32,
// in [0, 1).
//
// Normals use Marsaglia's polar method. It needs sqrt (correctly rounded by IEEE 754, so identical
// everywhere) and a logarithm. Math.log is *not* specified bit-exactly by ECMAScript and differs
// between engines in the last bit, so `exactLog` below computes it from +, *, / only.

export class Random {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spareNormal: number | null = null;

  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new Error(`Random: seed must be an integer, got ${seed}`);
    // SplitMix32 expands one 32-bit seed into four well-mixed, not-all-zero state words.
    let x = seed >>> 0;
    const splitmix = () => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = splitmix();
    this.s1 = splitmix();
    this.s2 = splitmix();
    this.s3 = splitmix();
  }

  /** Next 32-bit unsigned integer (xoshiro128**). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 24 random bits (exact in f32). */
  uniform(): number {
    return (this.nextUint32() >>> 8) / 16777216;
  }

  /** Standard normal (mean 0, variance 1), Marsaglia polar method. */
  normal(): number {
    if (this.spareNormal !== null) {
      const spare = this.spareNormal;
      this.spareNormal = null;
      return spare;
    }
    for (;;) {
      const u = 2 * this.uniform() - 1;
      const v = 2 * this.uniform() - 1;
      const s = u * u + v * v;
      if (s === 0 || s >= 1) continue;
      const factor = Math.sqrt((-2 * exactLog(s)) / s);
      this.spareNormal = v * factor;
      return u * factor;
    }
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

const LN2 = 0.6931471805599453;
const SQRT2 = 1.4142135623730951;

/**
 * Natural logarithm of a positive finite number using only +, -, *, / (so it is bit-identical on every
 * engine). Write x = m * 2^e with m in [sqrt(1/2), sqrt(2)), then log(m) = 2 atanh(z) with
 * z = (m - 1) / (m + 1), |z| < 0.1716, summed as z + z^3/3 + ... to 20 terms (error < 1e-30).
 */
export function exactLog(x: number): number {
  if (!(x > 0) || !Number.isFinite(x)) throw new Error(`exactLog: expected a positive finite number, got ${x}`);
  let exponent = 0;
  let m = x;
  // Scaling by powers of two is exact.
  while (m >= SQRT2) {
    m /= 2;
    exponent++;
  }
  while (m < SQRT2 / 2) {
    m *= 2;
    exponent--;
  }
  const z = (m - 1) / (m + 1);
  const z2 = z * z;
  let term = z;
  let sum = 0;
  for (let k = 1; k < 41; k += 2) {
    sum += term / k;
    term *= z2;
  }
  return 2 * sum + exponent * LN2;
}
