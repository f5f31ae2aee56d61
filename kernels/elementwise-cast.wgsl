// cast and fill: the elementwise kernels that see dtypes. Reference: src/backends/js/elementwise.ts
// (cast, fill). The cast kernel's entry point is `castValues`: `cast` is a reserved word in WGSL.
//
// Buffers are bound as raw u32 words. A 32-bit dtype (f32, i32) has one element per word; a 16-bit
// dtype (bf16, f16) two, so one invocation writes one whole output word (no two invocations share a
// word: WGSL has no 16-bit stores). Dtypes are common.wgsl's DTYPE_* codes.

struct Params {
  size: u32,       // elements
  fromType: u32,  // dtype code of x (cast)
  toType: u32,    // dtype code of out
  valueBits: u32,  // fill: the value already encoded in the output dtype (16-bit values repeated twice)
  words: u32,      // output words to write
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

// out[w] = the fill value, for every output word w (a trailing half word is filled too: harmless).
@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let w = flatGroup(group, groups) * 256u + lane;
  if (w < p.words) {
    out[w] = p.valueBits;
  }
}

/** Element i of x as an f32 value (i32 converted; bf16 and f16 widened). */
fn readValue(i: u32) -> f32 {
  switch (p.fromType) {
    case DTYPE_BF16: { return bf16ToF32(half16(x[i / 2u], i)); }
    case DTYPE_F16: { return f16ToF32(half16(x[i / 2u], i)); }
    case DTYPE_I32: { return f32(bitcast<i32>(x[i])); }
    case DTYPE_F32, default: { return bitcast<f32>(x[i]); }
  }
}

/** A value encoded in the output dtype (f32 -> i32 truncates toward zero, as Math.trunc). */
fn encode(v: f32) -> u32 {
  switch (p.toType) {
    case DTYPE_BF16: { return f32ToBf16(v); }
    case DTYPE_F16: { return f32ToF16(v); }
    case DTYPE_I32: { return bitcast<u32>(i32(v)); }
    case DTYPE_F32, default: { return bitcast<u32>(v); }
  }
}

// out = x converted element by element; one output word per invocation.
@compute @workgroup_size(256)
fn castValues(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lane: u32) {
  let w = flatGroup(group, groups) * 256u + lane;
  if (w >= p.words) {
    return;
  }
  if (p.toType == DTYPE_BF16 || p.toType == DTYPE_F16) {
    let i = 2u * w;
    let low = encode(readValue(i));
    let high = select(0u, encode(readValue(i + 1u)), i + 1u < p.size);
    out[w] = low | (high << 16u);
  } else if (p.fromType == DTYPE_I32 && p.toType == DTYPE_I32) {
    out[w] = x[w];
  } else {
    out[w] = encode(readValue(w));
  }
}
