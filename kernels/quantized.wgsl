// Quantized weights: quantize, dequantize and the quantized embedding gather. Reference:
// src/backends/js/quantized.ts; the two schemes and their exact arithmetic are defined in
// src/core/quantize.ts (this file computes the same bits). The quantized matmul is in
// quantized-matmul.wgsl (its parameters differ).
//
// R = rows of the weight (N, or the table's V), C = its columns (K, or the embedding's dim), T = tokens.
//   x:      [R, C] f32, or bf16 / f16 packed two per u32 (X_DTYPE)
//   values: i8 packed four per u32, little-endian; int8: [R, C] bytes (a row need not start on a word);
//           int4: [R, C/2] bytes, each group of 32 inputs 16 bytes (4 words): element i of the group in
//           the low nibble of byte i, element i + 16 in the high nibble, each stored as q + 8; the
//           rows interleaved four at a time (int4Word in common.wgsl)
//   scales: int8: f32 SCB [R] (as u32 bits); int4: f16 d [R, C/32] packed two per u32, interleaved
//           like the values (int4ScaleIndex)
//   ids:    i32 [T];  out: f32 [R, C] (dequantize) or [T, C] (embeddingQuantized)
//
// Operands larger than one storage binding are bound in blocks of rows (src/backends/webgpu/blocks.ts):
// a call sees rows rowStart .. rowStart + blockRows. Every block but the last starts at an aligned byte
// offset (minStorageBufferOffsetAlignment, a multiple of 4), so no u32 word of values or scales is
// shared by two calls, and within one call each word is written by one invocation.

struct Params {
  rows: u32,      // rows of this call: rows of the block (quantize, dequantize), or T (embeddingQuantized)
  cols: u32,      // C
  vocab: u32,     // V, for embeddingQuantized's range check
  rowStart: u32,  // embeddingQuantized: the first table row this call binds
  blockRows: u32, // embeddingQuantized: table rows this call binds
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> values: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<u32>;
@group(0) @binding(4) var<storage, read_write> valuesOut: array<u32>;
@group(0) @binding(5) var<storage, read_write> scalesOut: array<u32>;
@group(0) @binding(6) var<storage, read> ids: array<i32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

/** QUANT_INT8 or QUANT_INT4 (a pipeline-creation constant: each scheme compiles without the other). */
override SCHEME: u32 = QUANT_INT8;
/** The dtype of quantize's input: DTYPE_F32, DTYPE_BF16 or DTYPE_F16. */
override X_DTYPE: u32 = DTYPE_F32;

fn readX(index: u32) -> f32 {
  if (X_DTYPE == DTYPE_BF16) {
    return bf16ToF32(half16(x[index / 2u], index));
  }
  if (X_DTYPE == DTYPE_F16) {
    return f16ToF32(half16(x[index / 2u], index));
  }
  return bitcast<f32>(x[index]);
}

/** The integer q of element `col` of row `row` of the `rows` rows bound (rows counted within this call's block). */
fn quantizedValue(rows: u32, row: u32, col: u32) -> i32 {
  if (SCHEME == QUANT_INT8) {
    let byte = row * p.cols + col;
    return i32(values[byte / 4u] << (24u - 8u * (byte % 4u))) >> 24u; // sign-extend the byte
  }
  let i = col % QUANT_GROUP;
  let byte = i % 16u; // of the group's 16: element i in the low nibble, i + 16 in the high one
  let word = values[int4Word(rows, p.cols / QUANT_GROUP, row, col / QUANT_GROUP, byte / 4u)];
  let nibble = (word >> (8u * (byte % 4u) + 4u * (i / 16u))) & 0xfu;
  return i32(nibble) - 8;
}

/** The scale element `col` of row `row` is multiplied by: f32(SCB / 127) for int8, d for int4. */
fn quantizedScale(rows: u32, row: u32, col: u32) -> f32 {
  if (SCHEME == QUANT_INT8) {
    return divideRounded(bitcast<f32>(scales[row]), 127.0);
  }
  let index = int4ScaleIndex(rows, p.cols / QUANT_GROUP, row, col / QUANT_GROUP);
  return f16ToF32(half16(scales[index / 2u], index));
}

// -------------------------------------------------------------------------------------------------
// quantize (quantizeHost): int8 in two passes (the row maxima, then the bytes: a word may hold bytes
// of two rows when C is not a multiple of 4), int4 in one (its groups are whole words).

// int8, pass 1: scalesOut[r] = SCB = max |x[r, :]|. One 64-wide workgroup per row.
@compute @workgroup_size(64)
fn quantizeRowScales(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = flatGroup(group, groups);
  if (row >= p.rows) {
    return; // the whole workgroup: the reduction's barriers stay uniform
  }
  var absmax = 0.0;
  for (var c = lane; c < p.cols; c += 64u) {
    absmax = max(absmax, abs(readX(row * p.cols + c)));
  }
  absmax = workgroupMax(absmax, lane);
  if (lane == 0u) {
    scalesOut[row] = bitcast<u32>(absmax);
  }
}

// int8, pass 2: one invocation per word of values (four bytes, possibly of two rows):
// q = clamp(round(x * f32(127 / SCB)), -127, 127), 0 on a row of zeros. WGSL's round() is half to even.
@compute @workgroup_size(256)
fn quantizeInt8Values(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let word = flatGroup(group, groups) * 256u + lane;
  let size = p.rows * p.cols;
  if (word * 4u >= size) {
    return;
  }
  var packed = 0u;
  var row = 0xffffffffu;
  var inverse = 0.0;
  for (var b = 0u; b < 4u; b++) {
    let e = word * 4u + b;
    if (e >= size) {
      break; // the buffer's padding after the last row stays 0
    }
    if (e / p.cols != row) {
      row = e / p.cols;
      let absmax = bitcast<f32>(scalesOut[row]);
      inverse = select(divideRounded(127.0, absmax), 0.0, absmax == 0.0);
    }
    let q = i32(clamp(round(readX(e) * inverse), -127.0, 127.0));
    packed |= (u32(q) & 0xffu) << (8u * b);
  }
  valuesOut[word] = packed;
}

// int4: one invocation per two consecutive scales (of the interleaved order, flat over the block's
// rows), so that each f16 scale word (two scales) has one writer; each scale's group writes its own
// four words of values. Per group: m = the element of largest magnitude (the first on ties),
// d = f16(m / -8), q = clamp(round(x / d), -8, 7) (0 where d = 0).
@compute @workgroup_size(256)
fn quantizeInt4(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let pair = flatGroup(group, groups) * 256u + lane;
  let groupsPerRow = p.cols / QUANT_GROUP;
  let count = p.rows * groupsPerRow;
  if (pair * 2u >= count) {
    return;
  }
  var scaleWord = 0u;
  for (var half = 0u; half < 2u; half++) {
    let index = pair * 2u + half;
    if (index >= count) {
      break; // an odd last scale: the other half of its word is padding
    }
    // Scale `index` is row `row`'s group g, where rows first.. form its quad (int4ScaleIndex inverted).
    let first = (index / (4u * groupsPerRow)) * 4u;
    let quadRows = min(4u, p.rows - first);
    let within = index - first * groupsPerRow;
    let g = within / quadRows;
    let row = first + within % quadRows;
    let start = row * p.cols + g * QUANT_GROUP;
    var m = 0.0;
    for (var i = 0u; i < QUANT_GROUP; i++) {
      let v = readX(start + i);
      if (abs(v) > abs(m)) {
        m = v;
      }
    }
    // m * -0.125 is m / -8 exactly (a power of two), apart from f32 subnormals, which f16 rounds to 0.
    let bits = f32ToF16(m * -0.125);
    scaleWord |= bits << (16u * half);
    let d = f16ToF32(bits);
    var q: array<u32, QUANT_GROUP>;
    for (var i = 0u; i < QUANT_GROUP; i++) {
      var level = 0.0;
      if (d != 0.0) {
        level = clamp(round(divideRounded(readX(start + i), d)), -8.0, 7.0);
      }
      q[i] = u32(i32(level) + 8);
    }
    for (var w = 0u; w < 4u; w++) {
      var packed = 0u;
      for (var b = 0u; b < 4u; b++) {
        packed |= (q[4u * w + b] | (q[4u * w + b + 16u] << 4u)) << (8u * b);
      }
      valuesOut[int4Word(p.rows, groupsPerRow, row, g, w)] = packed;
    }
  }
  scalesOut[pair] = scaleWord;
}

// -------------------------------------------------------------------------------------------------
// dequantize (dequantizeHost): out[r, c] = q[r, c] * scale. One 64-wide workgroup per row: int8's
// per-row scale is divided once.

@compute @workgroup_size(64)
fn dequantize(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = flatGroup(group, groups);
  if (row >= p.rows) {
    return;
  }
  dequantizeRow(p.rows, row, row * p.cols, lane);
}

// -------------------------------------------------------------------------------------------------
// embeddingQuantized: out[t, :] = dequant(table)[ids[t], :]. One 64-wide workgroup per token; this
// call writes the tokens whose rows it binds. A bad id gives NaN and a report, as embedding.wgsl.

@compute @workgroup_size(64)
fn embeddingQuantized(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let t = flatGroup(group, groups);
  if (t >= p.rows) {
    return;
  }
  let id = ids[t];
  if (id < 0 || u32(id) >= p.vocab) {
    for (var c = lane; c < p.cols; c += 64u) {
      out[t * p.cols + c] = quietNaN();
    }
    if (lane == 0u) {
      report(STATUS_EMBEDDING, t, id, p.vocab);
    }
    return;
  }
  if (u32(id) < p.rowStart || u32(id) >= p.rowStart + p.blockRows) {
    return;
  }
  let row = u32(id) - p.rowStart;
  dequantizeRow(p.blockRows, row, t * p.cols, lane);
}

/** out[outStart + c] = dequant(W)[row, c] (W: the `rows` rows bound) for the columns c of this 64-wide workgroup's lane. */
fn dequantizeRow(rows: u32, row: u32, outStart: u32, lane: u32) {
  var rowScale = 0.0;
  if (SCHEME == QUANT_INT8) {
    rowScale = quantizedScale(rows, row, 0u);
  }
  for (var c = lane; c < p.cols; c += 64u) {
    var s = rowScale;
    if (SCHEME == QUANT_INT4) {
      s = quantizedScale(rows, row, c);
    }
    out[outStart + c] = f32(quantizedValue(rows, row, c)) * s;
  }
}
