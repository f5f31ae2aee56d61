// The quantized matmul: out = Qx(a) dequant(W)^T. Reference: matmulQuantized in
// src/backends/js/quantized.ts; the arithmetic is defined in src/core/quantize.ts.
//
// M = rows of a, K = inputs, N = outputs (rows of W), B = ceil(K / 32) blocks of inputs.
//   a:       f32 [M, K]
//   values:  W's integers, i8 packed four per u32 (int8: [N, K] bytes, a row need not start on a word;
//            int4: [N, K/2] bytes, 16 per group of 32 inputs, rows interleaved four at a time: see
//            quantized.wgsl and int4Word in common.wgsl)
//   scales:  int8: f32 SCB [N]; int4: f16 d [N, B] packed two per u32, interleaved like the values
//   activations:      a quantized per block of 32, [M, B * 8] words: four i8 to a word, the last
//                     block of a row padded with zeros (so the weight bytes past K it meets count 0)
//   activationScales: f32 [M, B], s = f32(max|x| / 127)
//   out:     f32 [M, outColumns]; this call writes columns nOffset .. nOffset + N
//
// Two passes. quantizeActivations fills the scratch buffers; then one of:
//   gemvQuantized    M = 1 (decoding): 8 outputs per 256-wide workgroup, 32 invocations each; an
//                    invocation takes whole blocks (8 consecutive words of W, so 32 invocations read
//                    1 KiB of a row in one sweep), sums its block's 32 integer products exactly in i32,
//                    then adds s * d * dot in f32; the 32 partial sums meet in workgroup memory.
//   matmulQuantized  tiled, as matmul.wgsl: a 16x16 workgroup computes a 64x64 block of out, each
//                    invocation a 4x4 block; a block of 32 inputs of 64 rows and 64 weights passes
//                    through workgroup memory at a time (int4 nibbles widened to i8 on the way in).
// int8's per-row f32(SCB / 127) multiplies the finished sum once; int4's d multiplies each block.
// The integer products are unpacked by hand (dot4): dot4I8Packed (WGSL's packed_4x8_integer_dot_product
// language feature) does the same in one instruction but is not in every WebGPU implementation.
//
// W larger than one storage binding is bound in blocks of its rows (n), a and out in blocks of rows (m):
// see matmulQuantized in src/backends/webgpu/quantized.ts.

struct Params {
  m: u32,
  n: u32,
  k: u32,
  blocks: u32,     // B
  outColumns: u32,
  nOffset: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> values: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<u32>;
@group(0) @binding(4) var<storage, read_write> activationsOut: array<u32>;
@group(0) @binding(5) var<storage, read_write> activationScalesOut: array<f32>;
@group(0) @binding(6) var<storage, read> activations: array<u32>;
@group(0) @binding(7) var<storage, read> activationScales: array<f32>;
@group(0) @binding(8) var<storage, read_write> out: array<f32>;

/** QUANT_INT8 or QUANT_INT4 (a pipeline-creation constant). */
override SCHEME: u32 = QUANT_INT8;

const WORDS = QUANT_GROUP / 4u; // words per block of 32 i8

// -------------------------------------------------------------------------------------------------
// Pass 1: a's blocks of 32, quantized as quantizeActivationRow. One invocation per (row, block).

@compute @workgroup_size(256)
fn quantizeActivations(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let unit = flatGroup(group, groups) * 256u + lane;
  if (unit >= p.m * p.blocks) {
    return;
  }
  let row = unit / p.blocks;
  let block = unit % p.blocks;
  let start = block * QUANT_GROUP;
  let end = min(p.k, start + QUANT_GROUP);
  let base = row * p.k;
  var absmax = 0.0;
  for (var kk = start; kk < end; kk++) {
    absmax = max(absmax, abs(a[base + kk]));
  }
  var inverse = 0.0;
  var s = 0.0;
  if (absmax != 0.0) {
    s = divideRounded(absmax, 127.0);
    inverse = divideRounded(127.0, absmax);
  }
  activationScalesOut[unit] = s;
  for (var w = 0u; w < WORDS; w++) {
    var packed = 0u;
    for (var b = 0u; b < 4u; b++) {
      let kk = start + w * 4u + b;
      if (kk < end) {
        let q = i32(clamp(round(a[base + kk] * inverse), -127.0, 127.0));
        packed |= (u32(q) & 0xffu) << (8u * b);
      }
    }
    activationsOut[unit * WORDS + w] = packed;
  }
}

// -------------------------------------------------------------------------------------------------
// Reading W

/** Four i8 packed in a u32, dotted: an exact i32. */
fn dot4(x: u32, y: u32) -> i32 {
  let shifts = vec4u(24u, 16u, 8u, 0u);
  let xs = vec4i(vec4u(x) << shifts) >> vec4u(24u);
  let ys = vec4i(vec4u(y) << shifts) >> vec4u(24u);
  return dot(xs, ys);
}

/** The four bytes of values at byte offset `byte` (any alignment), as one little-endian word. */
fn valueBytes(byte: u32) -> u32 {
  let word = byte / 4u;
  let shift = 8u * (byte % 4u);
  let low = values[word];
  if (shift == 0u) {
    return low;
  }
  // The next word may lie past the binding at the end of the last row: those bytes meet zero activations.
  let high = values[min(word + 1u, arrayLength(&values) - 1u)];
  return (low >> shift) | (high << (32u - shift));
}

/** Four nibbles (0..15, one per byte, the stored q + 8) as four i8 q in -8..7. */
fn signedNibbles(nibbles: u32) -> u32 {
  let t = nibbles ^ 0x08080808u;                  // q's low four bits (two's complement)
  return t | (((t >> 3u) & 0x01010101u) * 0xf0u); // sign-extend bit 3 into the high nibble
}

/** Block `block` of W's row `row` (within this call's rows) as 8 words of four i8: element i in byte i % 4 of word i / 4. */
fn weightBlock(row: u32, block: u32) -> array<u32, WORDS> {
  var words: array<u32, WORDS>;
  if (SCHEME == QUANT_INT8) {
    let start = row * p.k + block * QUANT_GROUP;
    for (var w = 0u; w < WORDS; w++) {
      words[w] = valueBytes(start + 4u * w);
    }
  } else {
    // Byte j of the group's 16 holds elements j (low nibble) and j + 16 (high nibble).
    for (var w = 0u; w < 4u; w++) {
      let word = values[int4Word(p.n, p.blocks, row, block, w)];
      words[w] = signedNibbles(word & 0x0f0f0f0fu);
      words[w + 4u] = signedNibbles((word >> 4u) & 0x0f0f0f0fu);
    }
  }
  return words;
}

/** The scale of block `block` of W's row `row`: int4's d; 1 for int8 (whose scale is per row). */
fn weightBlockScale(row: u32, block: u32) -> f32 {
  if (SCHEME == QUANT_INT8) {
    return 1.0;
  }
  let index = int4ScaleIndex(p.n, p.blocks, row, block);
  return f16ToF32(half16(scales[index / 2u], index));
}

/** The scale of W's whole row `row`: int8's f32(SCB / 127); 1 for int4. */
fn weightRowScale(row: u32) -> f32 {
  if (SCHEME == QUANT_INT8) {
    return divideRounded(bitcast<f32>(scales[row]), 127.0);
  }
  return 1.0;
}

// -------------------------------------------------------------------------------------------------
// Pass 2, M = 1

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn gemvQuantized(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let slot = lane / 32u;
  let sub = lane % 32u;
  let column = flatGroup(group, groups) * 8u + slot;
  var sum = 0.0;
  if (column < p.n) {
    for (var block = sub; block < p.blocks; block += 32u) {
      let w = weightBlock(column, block);
      var products = 0;
      for (var i = 0u; i < WORDS; i++) {
        products += dot4(activations[block * WORDS + i], w[i]);
      }
      sum += f32(products) * activationScales[block] * weightBlockScale(column, block);
    }
  }
  partial[lane] = sum;
  workgroupBarrier();
  for (var stride = 16u; stride > 0u; stride >>= 1u) {
    if (sub < stride) {
      partial[lane] += partial[lane + stride];
    }
    workgroupBarrier();
  }
  if (sub == 0u && column < p.n) {
    out[p.nOffset + column] = partial[lane] * weightRowScale(column);
  }
}

// -------------------------------------------------------------------------------------------------
// Pass 2, tiled

const TILE = 64u;

var<workgroup> tileA: array<array<u32, WORDS>, TILE>;  // [row][word] of one block
var<workgroup> tileW: array<array<u32, WORDS>, TILE>;  // [column][word]
var<workgroup> tileAScale: array<f32, TILE>;
var<workgroup> tileWScale: array<f32, TILE>;

@compute @workgroup_size(16, 16)
fn matmulQuantized(
  @builtin(workgroup_id) group: vec3u,
  @builtin(local_invocation_id) local: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let row0 = group.y * TILE;
  let col0 = group.x * TILE;
  var acc: array<array<f32, 4>, 4>;
  for (var block = 0u; block < p.blocks; block++) {
    // 64 rows x 8 words of activations, two words per invocation (neighbouring lanes, neighbouring words).
    for (var r = 0u; r < 2u; r++) {
      let e = lane + r * 256u;
      let i = e / WORDS;
      let w = e % WORDS;
      var word = 0u;
      if (row0 + i < p.m) {
        word = activations[((row0 + i) * p.blocks + block) * WORDS + w];
      }
      tileA[i][w] = word;
    }
    // 64 weight rows' blocks, four invocations per row, two words each (int4: one stored word each).
    let j = lane / 4u;
    let part = lane % 4u;
    if (col0 + j < p.n) {
      let column = col0 + j;
      if (SCHEME == QUANT_INT8) {
        let start = column * p.k + block * QUANT_GROUP;
        tileW[j][part] = valueBytes(start + 4u * part);
        tileW[j][part + 4u] = valueBytes(start + 4u * (part + 4u));
      } else {
        let word = values[int4Word(p.n, p.blocks, column, block, part)];
        tileW[j][part] = signedNibbles(word & 0x0f0f0f0fu);
        tileW[j][part + 4u] = signedNibbles((word >> 4u) & 0x0f0f0f0fu);
      }
    } else {
      tileW[j][part] = 0u;
      tileW[j][part + 4u] = 0u;
    }
    if (lane < TILE) {
      var s = 0.0;
      if (row0 + lane < p.m) {
        s = activationScales[(row0 + lane) * p.blocks + block];
      }
      tileAScale[lane] = s;
    } else if (lane < 2u * TILE) {
      let c = lane - TILE;
      var d = 0.0;
      if (col0 + c < p.n) {
        d = weightBlockScale(col0 + c, block);
      }
      tileWScale[c] = d;
    }
    workgroupBarrier();
    var wv: array<array<u32, WORDS>, 4>;
    for (var c = 0u; c < 4u; c++) {
      wv[c] = tileW[local.x + 16u * c];
    }
    for (var r = 0u; r < 4u; r++) {
      let av = tileA[local.y + 16u * r];
      let aScale = tileAScale[local.y + 16u * r];
      for (var c = 0u; c < 4u; c++) {
        var products = 0;
        for (var i = 0u; i < WORDS; i++) {
          products += dot4(av[i], wv[c][i]);
        }
        acc[r][c] += f32(products) * aScale * tileWScale[local.x + 16u * c];
      }
    }
    workgroupBarrier();
  }
  for (var c = 0u; c < 4u; c++) {
    let column = col0 + local.x + 16u * c;
    if (column < p.n) {
      let scale = weightRowScale(column);
      for (var r = 0u; r < 4u; r++) {
        let row = row0 + local.y + 16u * r;
        if (row < p.m) {
          out[row * p.outColumns + p.nOffset + column] = acc[r][c] * scale;
        }
      }
    }
  }
}
