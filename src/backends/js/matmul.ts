// Matrix multiply of the reference backend: the textbook triple loop, accumulated in the buffer's
// precision (f32 or f64), with the weights widened from bf16 / f16 first when stored that way.
//
//   out[b, i, j] = sum_p A[b, i, p] * B[b, p, j]
//   A[b, i, p] = transA ? a[b][p, i] : a[b][i, p]      a[b] starts at b * aBatchStride
//   B[b, p, j] = transB ? w[b][j, p] : w[b][p, j]      w[b] starts at b * bBatchStride

import type { KernelArgs } from "../../core/backend.js";
import { floats, widened, type JsBuffer } from "./buffer.js";

export function matmul(args: KernelArgs<JsBuffer>["matmul"]): void {
  const { batch, m, k, n, transA, transB, aBatchStride, bBatchStride } = args;
  const a = floats(args.a), w = widened(args.b, args.bDType), out = floats(args.out);
  for (let b = 0; b < batch; b++) {
    const aBase = b * aBatchStride, wBase = b * bBatchStride, outBase = b * m * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let p = 0; p < k; p++) {
          const av = transA ? a[aBase + p * m + i]! : a[aBase + i * k + p]!;
          const wv = transB ? w[wBase + j * k + p]! : w[wBase + p * n + j]!;
          acc += av * wv;
        }
        out[outBase + i * n + j] = acc;
      }
    }
  }
}
