// Closeness checks that report the worst element. No Node imports: the host parity bundle
// (test/hosts/webgpu-parity.ts) runs them in Deno and in browsers too.

export interface Tolerance {
  /** Absolute tolerance. */
  atol: number;
  /** Relative tolerance (of the expected value). */
  rtol: number;
}

/**
 * Throw unless |actual - expected| <= atol + rtol * |expected| everywhere, naming the worst element.
 * NaN must match NaN; infinities must match exactly.
 */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, label: string): void {
  if (actual.length !== expected.length) throw new Error(`${label}: ${actual.length} values, expected ${expected.length}`);
  let worst = -1, worstExcess = 0, maxAbs = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (Number.isNaN(e) || !Number.isFinite(e)) {
      if (!Object.is(a, e) && !(Number.isNaN(a) && Number.isNaN(e))) throw new Error(`${label}: element ${i} is ${a}, expected ${e}`);
      continue;
    }
    const diff = Math.abs(a - e);
    if (!(diff <= tol.atol + tol.rtol * Math.abs(e))) {
      const excess = diff - (tol.atol + tol.rtol * Math.abs(e));
      if (worst < 0 || excess > worstExcess || Number.isNaN(diff)) { worst = i; worstExcess = excess; }
    }
    if (diff > maxAbs) maxAbs = diff;
  }
  if (worst >= 0) {
    throw new Error(
      `${label}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} ` +
        `(max abs diff ${maxAbs.toExponential(3)}, atol ${tol.atol}, rtol ${tol.rtol})`,
    );
  }
}

/** ||a - b|| / ||b|| (Euclidean norms): how far a whole vector (an update, a set of logits) is from another. */
export function relativeDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0, norm = 0;
  for (let i = 0; i < a.length; i++) {
    diff += (a[i]! - b[i]!) ** 2;
    norm += b[i]! ** 2;
  }
  return Math.sqrt(diff / norm);
}
