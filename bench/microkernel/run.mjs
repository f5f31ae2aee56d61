// Builds bench/microkernel/kernels.ts twice (plain SIMD, relaxed SIMD) and prints each tile's GFLOP/s
// on one thread, best of three. Relaxed SIMD is behind a flag in Node 20 (on by default from Node 22,
// Chromium 114, Deno), so this script turns the flag on before compiling.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";

setFlagsFromString("--experimental-wasm-relaxed-simd");
const here = new URL(".", import.meta.url).pathname;
const asc = new URL("../../node_modules/assemblyscript/bin/asc.js", import.meta.url).pathname;
const KC = 256;

for (const [build, flags] of [["mul + add", []], ["relaxed madd", ["--enable", "relaxed-simd"]]]) {
  const out = `/tmp/olmo-js-microkernel-${flags.length}.wasm`;
  execFileSync(process.execPath, [asc, `${here}kernels.ts`, "-o", out, "--runtime", "stub", "-O3", "--noAssert", "--enable", "simd", ...flags, "--initialMemory", "16"]);
  const { instance } = await WebAssembly.instantiate(readFileSync(out), {});
  for (const [name, mr, nr] of [["k4x8", 4, 8], ["k6x8", 6, 8], ["k3x12", 3, 12]]) {
    const kernel = instance.exports[name];
    let best = 0;
    for (let trial = 0; trial < 3; trial++) {
      const reps = 100000;
      // A panel at 4096, B panel at 64 KiB, tile at 200000: all inside the 1 MiB memory.
      for (let i = 0; i < 1000; i++) kernel(4096, 65536, KC, 200000);
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) kernel(4096, 65536, KC, 200000);
      best = Math.max(best, (2 * mr * nr * KC * reps) / ((performance.now() - t0) / 1000) / 1e9);
    }
    console.log(`${build.padEnd(13)} ${name}  ${best.toFixed(1)} GFLOP/s`);
  }
}
