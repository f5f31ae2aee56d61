// Which kernel loops spill vector registers: compiles assembly/index.ts (relaxed-SIMD build, names
// kept), has V8's optimizing compiler (TurboFan) compile every function at once and print its x64
// code, and lists each innermost loop with its instructions, vector instructions and vector moves
// to or from the stack frame ([rbp-...]). A loop whose accumulators do not fit V8's 15 vector
// registers shows stack moves, and an accumulator kept on the stack puts a store and a reload on its
// dependency chain every iteration (bench/NOTES.md, "Registers").
//
//   node bench/microkernel/registers.mjs                 every loop with 8+ vector instructions
//   node bench/microkernel/registers.mjs gemvRows        the loops of functions whose name contains it
//   node bench/microkernel/registers.mjs gemvRows --code  ... and their instructions
//   --plain: the plain-SIMD build instead
//   --source DIR: compile DIR/index.ts instead of assembly/ (a modified copy, to compare)
//
// Loops are found as backward jumps; TurboFan sometimes lays a loop out in pieces, so a loop listed
// here may be a copy of one iteration (it unrolls) or a range that holds cold code too. x64 only.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";

const args = process.argv.slice(2);
const sourceAt = args.indexOf("--source");
const source = sourceAt < 0 ? null : args[sourceAt + 1];
if (sourceAt >= 0 && (!source || source.startsWith("--"))) throw new Error("--source needs a directory (one holding index.ts)");
const filter = args.find((a, i) => !a.startsWith("--") && (sourceAt < 0 || i !== sourceAt + 1));
const plain = args.includes("--plain"), showCode = args.includes("--code");
const root = new URL("../../", import.meta.url).pathname;
const asc = `${root}node_modules/assemblyscript/bin/asc.js`;
const wasm = `/tmp/olmo-js-registers${plain ? "" : "-relaxed"}.wasm`;
execFileSync(process.execPath, [
  asc, source ? `${source}/index.ts` : `${root}assembly/index.ts`, "-o", wasm, "--runtime", "stub", "-O3", "--noAssert", "--enable", "simd", ...(plain ? [] : ["--enable", "relaxed-simd"]),
  "--importMemory", "--noExportMemory", "--initialMemory", "2", "--maximumMemory", "65536", "--debug",
]);
// Instantiate with stand-in imports; the code is printed as each function compiles.
const program = `/tmp/olmo-js-registers.mjs`;
writeFileSync(program, `
import { readFileSync } from "node:fs";
const module = new WebAssembly.Module(readFileSync(${JSON.stringify(wasm)}));
const imports = {};
for (const { module: m, name, kind } of WebAssembly.Module.imports(module)) {
  imports[m] ??= {};
  imports[m][name] = kind === "memory" ? new WebAssembly.Memory({ initial: 2, maximum: 65536 }) : () => {};
}
new WebAssembly.Instance(module, imports);
`);
const listing = execFileSync(process.execPath, [
  "--experimental-wasm-relaxed-simd", "--no-liftoff", "--no-wasm-lazy-compilation", "--print-wasm-code", program,
], { encoding: "utf8", maxBuffer: 1 << 30 });

/** Function name -> [offset, instruction text][]. */
const functions = new Map();
let current;
for (const line of listing.split("\n")) {
  if (line.startsWith("name: ")) functions.set(line.slice(6), (current = []));
  const m = /^0x[0-9a-f]+\s+([0-9a-f]+)\s+[0-9a-f]+\s+(.*)$/.exec(line);
  if (m && current) current.push([parseInt(m[1], 16), m[2].trim()]);
}
const stackMove = /xmm\d+,\[rbp[-+]|\[rbp[-+]0x[0-9a-f]+\],xmm/;
for (const [name, code] of functions) {
  if (filter && !name.includes(filter)) continue;
  const loops = [];
  for (const [offset, text] of code) {
    const target = /<\+0x([0-9a-f]+)>/.exec(text);
    if (target && text.startsWith("j") && parseInt(target[1], 16) < offset) loops.push([parseInt(target[1], 16), offset]);
  }
  const innermost = loops.filter((l) => !loops.some((o) => o !== l && l[0] <= o[0] && o[1] <= l[1]));
  for (const [start, end] of innermost) {
    const body = code.filter(([offset]) => offset >= start && offset <= end).map(([, text]) => text);
    const vector = body.filter((t) => t.includes("xmm")).length;
    if (vector < 8 && !filter) continue;
    const moves = body.filter((t) => stackMove.test(t)).length;
    console.log(`${name.padEnd(44)} loop +${start.toString(16)}..+${end.toString(16)}: ${String(body.length).padStart(4)} instructions, ${String(vector).padStart(3)} vector, ${String(moves).padStart(3)} vector stack moves`);
    if (showCode) console.log(body.map((t) => `    ${t}`).join("\n"));
  }
}
