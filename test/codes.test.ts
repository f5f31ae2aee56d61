// The numbers the host passes to compiled kernels (dtype codes, binary-op codes, the maximum rank) are
// defined once per language: src/backends/codes.ts (TypeScript), assembly/common.ts (AssemblyScript)
// and kernels/common.wgsl (WGSL). This test reads the two kernel sources and checks they agree with the
// TypeScript table, name by name, so changing a code in one language alone fails here.

import { readFileSync } from "node:fs";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { BINARY_CODE, DTYPE_CODE, MAX_RANK, QUANT_CODE } from "../src/backends/codes.js";
import { QUANT_GROUP } from "../src/core/quantize.js";
import { repoRoot } from "./helpers.js";

/** Every code the kernels must share, under the name each kernel language gives it. */
const expected: Record<string, number> = {
  MAX_RANK,
  ...Object.fromEntries(Object.entries(DTYPE_CODE).map(([dtype, code]) => [`DTYPE_${dtype.toUpperCase()}`, code])),
  ...Object.fromEntries(Object.entries(BINARY_CODE).map(([op, code]) => [`BINARY_${op.toUpperCase()}`, code])),
  ...Object.fromEntries(Object.entries(QUANT_CODE).map(([scheme, code]) => [`QUANT_${scheme.toUpperCase()}`, code])),
};

/** `const NAME: type = value` declarations of a source file (AssemblyScript `export const`, WGSL `const`). */
function constants(file: string): Map<string, number> {
  const source = readFileSync(`${repoRoot}${file}`, "utf8");
  const found = new Map<string, number>();
  for (const match of source.matchAll(/^\s*(?:export\s+)?const\s+([A-Z0-9_]+)\s*:\s*\w+\s*=\s*(\d+)u?\s*;/gm)) {
    found.set(match[1]!, Number(match[2]));
  }
  return found;
}

for (const file of ["assembly/common.ts", "kernels/common.wgsl"]) {
  test(`${file} defines every shared code with the value of src/backends/codes.ts`, () => {
    const found = constants(file);
    for (const [name, value] of Object.entries(expected)) {
      assert.ok(found.has(name), `${file} does not define ${name}`);
      assert.is(found.get(name), value, `${file}: ${name}`);
    }
  });
}

// The quantized kernels' block size; the WGSL shaders address blocks by it (kernels/quantized*.wgsl).
test("kernels/common.wgsl's QUANT_GROUP is src/core/quantize.ts's", () => {
  assert.is(constants("kernels/common.wgsl").get("QUANT_GROUP"), QUANT_GROUP);
});

test.run();
