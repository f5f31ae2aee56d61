// Numbers the host passes to compiled kernels, defined once for TypeScript. The kernels' own copies are
// in assembly/common.ts (AssemblyScript) and kernels/common.wgsl (WGSL); test/codes.test.ts checks that
// the three languages agree.

import type { BinaryOp } from "../core/backend.js";
import type { DType, QuantScheme } from "../core/dtype.js";

/** The dtype of a buffer, as a kernel argument. */
export const DTYPE_CODE: Readonly<Record<DType, number>> = { f32: 0, bf16: 1, f16: 2, i32: 3, i8: 4 };
/** The operation of the `binary` kernel. */
export const BINARY_CODE: Readonly<Record<BinaryOp, number>> = { add: 0, sub: 1, mul: 2 };
/** The largest rank the layout kernels (sum, broadcast, permute, slice) take. */
export const MAX_RANK = 8;
/** The scheme of a quantized weight (src/core/quantize.ts), as a kernel argument. */
export const QUANT_CODE: Readonly<Record<QuantScheme, number>> = { int8: 0, int4: 1 };
