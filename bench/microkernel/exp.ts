// The WASM kernels' four-lane exp (expF32x4 in assembly/common.ts) over an array, for its accuracy test
// (test/exp.test.ts) and benchmark (node bench/microkernel/exp.mjs). Not part of the library: npm run
// build compiles it into build/wasm/exp.wasm and exp-relaxed.wasm, beside the kernels, not into them.

import { expF32x4 } from "../../assembly/common";

export function expArray(x: usize, out: usize, n: i32): void {
  for (let i = 0; i < n; i += 4) v128.store(out + (<usize>i << 2), expF32x4(v128.load(x + (<usize>i << 2))));
}
