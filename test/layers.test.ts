// Layers import downward only, and no two files import each other, even through others.
//
// The layers, bottom to top (CONTRIBUTING.md and README.md's Architecture say why):
//   core → ops | backends → tokenizer | optim → model → io | train | eval → api → src/index.ts → node | worker.ts → cli
// A file may import its own folder and any layer below its own. Folders side by side in one layer
// (ops and backends, tokenizer and optim, io and train) do not import each other: the ops reach
// kernels only through the core's Backend interface, and a backend never calls an op.
//
// Type-only imports count like any other. They vanish from the JavaScript, but a lower layer that
// names an upper layer's type still cannot be read, changed or moved without it (the model once took
// its weight names from the checkpoint loader that imported the model's config: a loop of types).
//
// This test parses every .ts file under src/ with the TypeScript compiler (imports, `export ... from`,
// dynamic `import()`), and fails on each cycle (its files in order) and each upward import (file → file).

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { test } from "uvu";

/** The repository root (tests are bundled into build/test/); not helpers.ts's, which would bundle the library in. */
const repoRoot = new URL("../../", import.meta.url).pathname;

/** Layers bottom to top; folders in one inner list are side by side. Paths are relative to src/. */
const LAYERS: string[][] = [
  ["core", "*.d.ts"], // the tensor core, and the ambient declarations (no imports) beside src/index.ts
  ["ops", "backends"],
  ["tokenizer", "optim"],
  ["model"],
  ["io", "train", "eval"],
  ["api"], // the one-line API: OlmoGenerator, its Web Worker server and client
  ["index.ts"], // the core bundle's entry: re-exports the layers below it
  ["node", "worker.ts"], // olmo-js/node, and olmo-js/worker (the worker module, on the core bundle)
  ["cli"],
];

/** Which layer and which folder of it a file (relative to src/) belongs to, or null when none. */
function placeOf(file: string): { layer: number; part: string } | null {
  for (let layer = 0; layer < LAYERS.length; layer++) {
    for (const part of LAYERS[layer]!) {
      const matches = part === "*.d.ts" ? !file.includes("/") && file.endsWith(".d.ts") : part.endsWith(".ts") ? file === part : file.startsWith(`${part}/`);
      if (matches) return { layer, part };
    }
  }
  return null;
}

/** Every .ts file under `dir`, as paths relative to it. */
function tsFiles(dir: string, prefix = ""): string[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true }).flatMap((entry) => {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) return tsFiles(dir, path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** The module specifiers a file imports or re-exports from, static and dynamic. */
function importedSpecifiers(path: string): string[] {
  const source = ts.createSourceFile(path, readFileSync(path, "utf8"), ts.ScriptTarget.Latest, false);
  const specifiers: string[] = [];
  const visit = (node: ts.Node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      specifiers.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && ts.isStringLiteral(node.arguments[0]!)) {
      specifiers.push(node.arguments[0].text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      specifiers.push(node.argument.literal.text); // import("../x.js").Type
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return specifiers;
}

/**
 * The import graph of the .ts files under `srcDir`: file -> files it imports (relative to srcDir).
 * Packages and Node built-ins are not files of the tree; nor are the kernels' assets (.wasm, .wgsl)
 * outside src/, which import nothing.
 */
function importGraph(srcDir: string): { graph: Map<string, string[]>; unresolved: string[] } {
  const graph = new Map<string, string[]>();
  const unresolved: string[] = [];
  const files = new Set(tsFiles(srcDir));
  for (const file of files) {
    const targets: string[] = [];
    for (const specifier of importedSpecifiers(join(srcDir, file))) {
      if (!specifier.startsWith(".")) continue;
      const target = relative(srcDir, resolve(dirname(join(srcDir, file)), specifier)).replace(/\.js$/, ".ts");
      if (target.startsWith("..")) continue;
      if (files.has(target)) targets.push(target);
      else unresolved.push(`${file} imports "${specifier}", which is no .ts file under src/`);
    }
    graph.set(file, [...new Set(targets)]);
  }
  return { graph, unresolved };
}

/**
 * Per knot of files that reach one another through imports (a strongly connected component of more
 * than one file, or one file importing itself; Tarjan's algorithm): its files, and one shortest cycle
 * through them in import order, the first file repeated at the end.
 */
function findCycles(graph: Map<string, string[]>): { cycle: string[]; knot: string[] }[] {
  const index = new Map<string, number>(), low = new Map<string, number>(), onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let next = 0;
  const connect = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) components.push(component);
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) connect(v);
  // Within a component every file reaches every other: a breadth-first search from the first file's
  // imports back to it gives one shortest cycle to report.
  return components.map((component) => {
    const members = new Set(component);
    const start = [...component].sort()[0]!;
    const cameFrom = new Map<string, string>();
    const queue = [start];
    while (queue.length) {
      const v = queue.shift()!;
      for (const w of graph.get(v) ?? []) {
        if (!members.has(w) || cameFrom.has(w)) continue;
        cameFrom.set(w, v);
        if (w === start) queue.length = 0;
        else queue.push(w);
      }
    }
    const cycle = [start];
    for (let v = cameFrom.get(start)!; v !== start; v = cameFrom.get(v)!) cycle.unshift(v);
    return { cycle: [start, ...cycle], knot: [...component].sort() };
  });
}

/** Imports that go up a layer or sideways between folders of one layer, as "file → file (why)". */
function layerViolations(graph: Map<string, string[]>): string[] {
  const violations: string[] = [];
  for (const [file, targets] of graph) {
    const from = placeOf(file);
    if (!from) {
      violations.push(`${file} belongs to no layer: add its folder to LAYERS here and to CONTRIBUTING.md`);
      continue;
    }
    for (const target of targets) {
      const to = placeOf(target);
      if (!to || to.part === from.part || to.layer < from.layer) continue;
      const why = to.layer > from.layer ? `${from.part} sits below ${to.part}` : `${from.part} and ${to.part} are side by side`;
      violations.push(`src/${file} → src/${target} (${why})`);
    }
  }
  return violations.sort();
}

test("the cycle finder and the layer check catch what they are for (synthetic graphs)", () => {
  const cyclic = new Map([
    ["core/a.ts", ["core/b.ts"]],
    ["core/b.ts", ["ops/c.ts"]],
    ["ops/c.ts", ["core/a.ts", "ops/d.ts"]],
    ["ops/d.ts", []],
    ["ops/e.ts", ["ops/e.ts"]],
  ]);
  const cycles = findCycles(cyclic).map((c) => c.cycle.join(" → ")).sort();
  const want = ["core/a.ts → core/b.ts → ops/c.ts → core/a.ts", "ops/e.ts → ops/e.ts"];
  if (cycles.join("\n") !== want.join("\n")) throw new Error(`findCycles found:\n${cycles.join("\n")}\nexpected:\n${want.join("\n")}`);
  if (findCycles(new Map([["a.ts", ["b.ts"]], ["b.ts", []]])).length !== 0) throw new Error("findCycles reported a cycle in a chain");

  const upward = layerViolations(new Map([
    ["core/autograd.ts", ["ops/elementwise.ts", "core/tensor.ts"]],
    ["ops/matmul.ts", ["backends/js/matmul.ts", "core/backend.ts"]],
    ["cli/main.ts", ["node/index.ts", "index.ts", "model/olmo.ts"]],
    ["elsewhere/x.ts", []],
  ]));
  const wantUpward = [
    "elsewhere/x.ts belongs to no layer: add its folder to LAYERS here and to CONTRIBUTING.md",
    "src/core/autograd.ts → src/ops/elementwise.ts (core sits below ops)",
    "src/ops/matmul.ts → src/backends/js/matmul.ts (ops and backends are side by side)",
  ];
  if (upward.join("\n") !== wantUpward.join("\n")) throw new Error(`layerViolations found:\n${upward.join("\n")}\nexpected:\n${wantUpward.join("\n")}`);
});

const { graph, unresolved } = importGraph(join(repoRoot, "src"));

test("every relative import under src/ names a .ts file there", () => {
  if (graph.size < 50) throw new Error(`found only ${graph.size} files under ${repoRoot}src: is the test reading the right tree?`);
  if (unresolved.length) throw new Error(unresolved.join("\n"));
});

test("no import cycles under src/", () => {
  const knots = findCycles(graph);
  if (knots.length) {
    const described = knots.map(({ cycle, knot }) =>
      `  ${cycle.map((f) => `src/${f}`).join(" → ")}` + (knot.length > cycle.length - 1 ? `\n    (one of the cycles among ${knot.map((f) => `src/${f}`).join(", ")})` : ""));
    throw new Error(`${knots.length} import cycle(s):\n${described.join("\n")}`);
  }
});

test("every import under src/ goes down the layers", () => {
  const violations = layerViolations(graph);
  if (violations.length) throw new Error(`${violations.length} import(s) against the layers:\n  ${violations.join("\n  ")}`);
});

test.run();
