// Memory-read experiment (not part of the library): how fast one thread reads a buffer much larger than
// the caches when it reads it as S sequential streams side by side (S equal parts of the buffer, 64
// bytes of each per step) rather than front to back. The decode GEMV (gemvRows in assembly/gemv.ts)
// and the bandwidth probe (assembly/diagnostics.ts) read four streams per thread because of it.
// Run: node bench/microkernel/streams.mjs

let sink: f32 = 0;

export function readStreams(ptr: usize, bytes: i32, streams: i32): void {
  const part = <usize>(bytes / streams) & ~63;
  let a = f32x4.splat(0), b = f32x4.splat(0), c = f32x4.splat(0), d = f32x4.splat(0);
  for (let offset: usize = 0; offset < part; offset += 64) {
    for (let s = 0; s < streams; s++) {
      const p = ptr + <usize>s * part + offset;
      a = f32x4.add(a, v128.load(p));
      b = f32x4.add(b, v128.load(p, 16));
      c = f32x4.add(c, v128.load(p, 32));
      d = f32x4.add(d, v128.load(p, 48));
    }
  }
  const sum = f32x4.add(f32x4.add(a, b), f32x4.add(c, d));
  sink += f32x4.extract_lane(sum, 0);
}
