// Builds bench/microkernel/streams.ts and prints one thread's read bandwidth over 32 MiB buffers (four
// of them, cycled, so nothing is served from the 32 MiB L3) for 1, 2, 4, 8 and 16 streams: the median
// of 24 reads, and the best.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const here = new URL(".", import.meta.url).pathname;
const asc = new URL("../../node_modules/assemblyscript/bin/asc.js", import.meta.url).pathname;
const out = "/tmp/olmo-js-streams.wasm";
execFileSync(process.execPath, [asc, `${here}streams.ts`, "-o", out, "--runtime", "stub", "-O3", "--noAssert", "--enable", "simd"]);
const { instance } = await WebAssembly.instantiate(readFileSync(out), {});
const { readStreams, memory } = instance.exports;
const bytes = 32 << 20, copies = 4, base = 1 << 20;
memory.grow((base + copies * bytes) / 65536);
new Uint8Array(memory.buffer).fill(1); // touch every page (and keep the floats normal)

for (const streams of [1, 2, 4, 8, 16]) {
  const times = [];
  for (let i = 0; i < 24; i++) {
    const t0 = performance.now();
    readStreams(base + (i % copies) * bytes, bytes, streams);
    times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  const gbps = (ms) => (bytes / ms / 1e6).toFixed(1);
  console.log(`${String(streams).padStart(2)} stream(s): ${gbps(times[12])} GB/s median, best ${gbps(times[0])}`);
}
