// Accuracy and speed experiment (not part of the library): the WASM kernels' four-lane exp
// (expF32x4 in assembly/common.ts) over an array. Run: node bench/microkernel/exp.mjs

import { expF32x4 } from "../../assembly/common";

export function expArray(x: usize, out: usize, n: i32): void {
  for (let i = 0; i < n; i += 4) v128.store(out + (<usize>i << 2), expF32x4(v128.load(x + (<usize>i << 2))));
}
