// The matmul kernel (see KernelArgs["matmul"] in src/core/backend.ts):
//
//   out[b] = op(A[b]) @ op(B[b]),  op(A): [M, K], op(B): [K, N], out: [M, N], row-major f32.
//
// M > 1 takes the packed, register-blocked GEMM (gemm.ts); M = 1 (decoding one token) takes the GEMV
// paths (gemv.ts), which stream the weight rows once with no packing.
//
// Threads split the output columns (or the batch, when it has at least one entry per thread); each
// thread packs into its own workspace.

import { DTYPE_F32, partEnd, partStart, Pointer } from "./common";
import { gemm, matmulWorkspaceBytes, NOT_QUANTIZED, NR } from "./gemm";
import { gemvColumns, gemvRows } from "./gemv";

export function matmul(
  a: Pointer, b: Pointer, out: Pointer, bDType: i32, batch: i32, m: i32, k: i32, n: i32, transA: i32, transB: i32,
  aBatchStride: usize, bBatchStride: usize, workspace: Pointer, tid: i32, threads: i32,
): void {
  const bElementBytes: usize = bDType == DTYPE_F32 ? 4 : 2;
  const ws = workspace + <usize>tid * matmulWorkspaceBytes();
  // With at least one batch entry per thread, threads take whole entries; otherwise they split columns.
  const splitBatch = batch >= threads;
  const b0 = splitBatch ? partStart(batch, tid, threads, 1) : 0;
  const b1 = splitBatch ? partEnd(batch, tid, threads, 1) : batch;
  const n0 = splitBatch ? 0 : partStart(n, tid, threads, NR);
  const n1 = splitBatch ? n : partEnd(n, tid, threads, NR);
  if (n0 >= n1) return;
  for (let e = b0; e < b1; e++) {
    const ae = a + ((<usize>e * aBatchStride) << 2);
    const be = b + <usize>e * bBatchStride * bElementBytes;
    const oe = out + ((<usize>e * <usize>m * <usize>n) << 2);
    if (m == 1 && transB != 0) gemvRows(ae, be, bDType, oe, k, n0, n1, ws);
    else if (m == 1) gemvColumns(ae, be, bDType, oe, k, n, n0, n1);
    else gemm(ae, be, bDType, oe, m, k, n, transA != 0, transB != 0, n0, n1, ws, 0, NOT_QUANTIZED);
  }
}
