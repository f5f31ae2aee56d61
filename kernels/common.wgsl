// Helpers shared by every kernel file: the WebGPU backend (src/backends/webgpu/shaders.ts) puts this
// text in front of each file before compiling it. WGSL has no #include, so this is the include.
//
// Conventions of all kernel files:
//   - binding 0 is the `Params` uniform of the file (one struct per file; the backend reads its field
//     names from the WGSL text and fills them by name);
//   - storage bindings have distinct numbers within a file, so any entry point may use any subset;
//     binding 15 is the status buffer declared here, for kernels that report bad ids;
//   - 16-bit tensors (bf16, f16) are stored packed, two per u32, element 2i in the low half;
//   - large 1-D dispatches use a 2-D grid (at most 65535 workgroups per dimension): see flatGroup.

// Numbers the host passes to the kernels, defined once for WGSL. The TypeScript ones are in
// src/backends/codes.ts; test/codes.test.ts checks that the languages agree.

// The dtype of a buffer (matmul's B_DTYPE, embedding's TABLE_DTYPE, elementwise-cast.wgsl's types).
const DTYPE_F32: u32 = 0u;
const DTYPE_BF16: u32 = 1u;
const DTYPE_F16: u32 = 2u;
const DTYPE_I32: u32 = 3u;
const DTYPE_I8: u32 = 4u;
// The scheme of a quantized weight (src/core/quantize.ts).
const QUANT_INT8: u32 = 0u;
const QUANT_INT4: u32 = 1u;
// Inputs per int4 scale and per activation scale (QUANT_GROUP of src/core/quantize.ts).
const QUANT_GROUP: u32 = 32u;

// int4 interleaves its rows four at a time (int4ByteOffset and int4ScaleIndex of src/core/quantize.ts):
// rows 4b..4b+3 form a quad (the last holds what is left), and each group of a quad is the rows'
// words side by side: word v of every row, then word v + 1. `rows` is the weight's rows as bound.

/** The index in values (u32 words) of word v (bytes 4v..4v+3) of row `row`'s group g. */
fn int4Word(rows: u32, groups: u32, row: u32, g: u32, v: u32) -> u32 {
  let first = row & ~3u;
  let quadRows = min(4u, rows - first);
  return first * groups * 4u + g * 4u * quadRows + v * quadRows + (row - first);
}

/** The index in scales (f16, two to a word) of row `row`'s group g. */
fn int4ScaleIndex(rows: u32, groups: u32, row: u32, g: u32) -> u32 {
  let first = row & ~3u;
  return first * groups + g * min(4u, rows - first) + (row - first);
}
// The operation of elementwise.wgsl's `binary`.
const BINARY_ADD: u32 = 0u;
const BINARY_SUB: u32 = 1u;
const BINARY_MUL: u32 = 2u;
// The largest rank of the shapes and strides in Params (layout.wgsl, layout-sum.wgsl).
const MAX_RANK: u32 = 8u;

/** The linear workgroup number of a 2-D grid of workgroups, row-major. */
fn flatGroup(group: vec3u, groups: vec3u) -> u32 {
  return group.y * groups.x + group.x;
}

/** A shape or strides of up to MAX_RANK axes, four to a vec4 (uniform arrays need 16-byte elements). */
alias Dims = array<vec4u, MAX_RANK / 4u>;

/** Axis i of a Dims. */
fn dimAt(v: Dims, i: u32) -> u32 {
  return v[i / 4u][i % 4u];
}

/** The 16-bit element `index` of a packed array, given the u32 word that holds it. */
fn half16(word: u32, index: u32) -> u32 {
  return (word >> ((index & 1u) * 16u)) & 0xffffu;
}

fn bf16ToF32(bits: u32) -> f32 {
  return bitcast<f32>(bits << 16u);
}

/** f32 -> bf16 bits, round to nearest even; NaN stays a quiet NaN (as PyTorch and src/core/dtype.ts). */
fn f32ToBf16(x: f32) -> u32 {
  let bits = bitcast<u32>(x);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    return 0x7fc0u | ((bits >> 16u) & 0x8000u);
  }
  return (bits + 0x7fffu + ((bits >> 16u) & 1u)) >> 16u;
}

fn f16ToF32(bits: u32) -> f32 {
  let sign = (bits & 0x8000u) << 16u;
  let exponent = (bits >> 10u) & 0x1fu;
  let mantissa = bits & 0x3ffu;
  if (exponent == 0u) {
    // Zero or subnormal: mantissa * 2^-24, exact in f32 (and a normal f32, so no flush to zero).
    let magnitude = f32(mantissa) * 5.9604644775390625e-8;
    return select(magnitude, -magnitude, sign != 0u);
  }
  if (exponent == 31u) {
    return bitcast<f32>(sign | 0x7f800000u | (mantissa << 13u)); // inf or NaN
  }
  return bitcast<f32>(sign | ((exponent + 112u) << 23u) | (mantissa << 13u));
}

/** f32 -> f16 bits, round to nearest even, overflow to infinity (as src/core/dtype.ts). */
fn f32ToF16(x: f32) -> u32 {
  let bits = bitcast<u32>(x);
  let sign = (bits >> 16u) & 0x8000u;
  let magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) {
    return sign | 0x7e00u; // NaN
  }
  if (magnitude >= 0x477ff000u) {
    return sign | 0x7c00u; // >= 65520 rounds to infinity
  }
  if (magnitude >= 0x38800000u) {
    // A normal f16: rebias the exponent (127 -> 15) and round the mantissa at bit 13, to even.
    let rounded = magnitude + 0x0fffu + ((magnitude >> 13u) & 1u);
    return sign | ((rounded - 0x38000000u) >> 13u);
  }
  // A subnormal f16 (units of 2^-24) or zero: shift the full mantissa right, rounding to even.
  let exponent = magnitude >> 23u;
  let shift = 126u - exponent; // >= 14 here
  if (shift > 24u) {
    return sign; // below half the smallest subnormal
  }
  let mantissa = (magnitude & 0x7fffffu) | 0x800000u;
  var q = mantissa >> shift;
  let rest = mantissa & ((1u << shift) - 1u);
  let halfway = 1u << (shift - 1u);
  if (rest > halfway || (rest == halfway && (q & 1u) == 1u)) {
    q += 1u;
  }
  return sign | q;
}

/**
 * x / y rounded correctly (to nearest, ties to even), for finite x and finite nonzero y; an infinite y
 * gives a signed 0 (as IEEE). WGSL's own `/` on f32 may be off by up to 2.5 ulps (and is on real GPUs),
 * but the quantized kernels (quantized*.wgsl) must compute the bits src/core/quantize.ts computes on
 * the host, f32(127 / max) and f32(x / d), so the quotient is made here by integer long division of
 * the 24-bit significands: exact on every GPU, about 30 integer steps, used once per row or block.
 */
fn divideRounded(x: f32, y: f32) -> f32 {
  let xb = bitcast<u32>(x);
  let yb = bitcast<u32>(y);
  let sign = (xb ^ yb) & 0x80000000u;
  var xe = i32((xb >> 23u) & 0xffu);
  var ye = i32((yb >> 23u) & 0xffu);
  var xm = xb & 0x7fffffu;
  var ym = yb & 0x7fffffu;
  if ((xe == 0 && xm == 0u) || ye == 255) {
    return bitcast<f32>(sign);
  }
  // Significands as integers in [2^23, 2^24) (subnormals normalized): x = xm * 2^(xe - 150).
  if (xe == 0) {
    let shift = countLeadingZeros(xm) - 8u;
    xm <<= shift;
    xe = 1 - i32(shift);
  } else {
    xm |= 0x800000u;
  }
  if (ye == 0) {
    let shift = countLeadingZeros(ym) - 8u;
    ym <<= shift;
    ye = 1 - i32(shift);
  } else {
    ym |= 0x800000u;
  }
  // x / y = (r / ym) * 2^e with r / ym in [1, 2).
  var e = xe - ye;
  var r = xm;
  if (r < ym) {
    r <<= 1u;
    e -= 1;
  }
  // 26 bits of the quotient: q = floor(r / ym * 2^25), with the remainder left in r (the sticky bit).
  var q = 0u;
  for (var i = 0u; i < 26u; i++) {
    q <<= 1u;
    if (r >= ym) {
      r -= ym;
      q |= 1u;
    }
    r <<= 1u;
  }
  // The result is q * 2^(e - 25). Keep 24 bits (shift 2) for a normal result; for a subnormal one keep
  // the bits above 2^-149 (shift -124 - e). Then round to nearest even on the dropped bits.
  let shift = u32(max(2, -124 - e));
  if (shift > 26u) {
    return bitcast<f32>(sign); // below half the smallest subnormal
  }
  var mantissa = q >> shift;
  let rest = q & ((1u << shift) - 1u);
  let half = 1u << (shift - 1u);
  if (rest > half || (rest == half && (r != 0u || (mantissa & 1u) == 1u))) {
    mantissa += 1u;
  }
  // A normal result's exponent field is e + 127 >= 1 and its mantissa holds the implicit bit, so the
  // sum carries a rounding overflow (mantissa = 2^24) into the exponent; a subnormal has field 0.
  let biased = max(e + 127, 1);
  let bits = min(u32(biased - 1) * 0x800000u + mantissa, 0x7f800000u); // overflow: infinity
  return bitcast<f32>(sign | bits);
}

// A quiet NaN, the result of bad input (an id out of range). WGSL rejects NaN in constant expressions,
// so it is made from a private variable at run time.
var<private> quietNaNBits: u32 = 0x7fc00000u;

fn quietNaN() -> f32 {
  return bitcast<f32>(quietNaNBits);
}

// Reductions over a 64-wide workgroup (row kernels: layer norm, softmax, sum). Every invocation of
// the workgroup must call them (they contain barriers), and each gets the result.
var<workgroup> scratch: array<f32, 64>;

fn workgroupSum(value: f32, lane: u32) -> f32 {
  scratch[lane] = value;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      scratch[lane] += scratch[lane + stride];
    }
    workgroupBarrier();
  }
  let total = scratch[0];
  workgroupBarrier();
  return total;
}

fn workgroupMax(value: f32, lane: u32) -> f32 {
  scratch[lane] = value;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      scratch[lane] = max(scratch[lane], scratch[lane + stride]);
    }
    workgroupBarrier();
  }
  let total = scratch[0];
  workgroupBarrier();
  return total;
}

// Bad-input reports: [kernel code, position, value, limit] of the first bad id a kernel met. The
// backend reads it with every read-back and throws (src/backends/webgpu/runtime.ts); the kernel codes
// are STATUS_KERNELS's in src/backends/webgpu/shaders.ts.
@group(0) @binding(15) var<storage, read_write> status: array<atomic<u32>, 4>;

const STATUS_EMBEDDING = 1u;
const STATUS_CROSS_ENTROPY = 2u;

/** Record the first bad id (a weak compare-exchange may fail spuriously, hence the loop). */
fn report(code: u32, position: u32, value: i32, limit: u32) {
  loop {
    let attempt = atomicCompareExchangeWeak(&status[0], 0u, code);
    if (attempt.exchanged) {
      atomicStore(&status[1], position);
      atomicStore(&status[2], bitcast<u32>(value));
      atomicStore(&status[3], limit);
      break;
    }
    if (attempt.old_value != 0u) {
      break;
    }
  }
}
