// The safetensors reader under hostile input: random valid files round-trip exactly; single-byte
// corruptions of a header are refused or read as the same data layout; the data section must be tiled
// exactly by the tensors; shard names in an index stay inside the folder; NaN / Inf weights are
// reported at load with the tensor named.

import { readFileSync } from "node:fs";
import { test } from "uvu";
import {
  CheckpointError, createJsBackend, encodeSafetensors, loadCheckpoint, readSafetensorsHeader, type ByteSource, type ModelSource, type TensorToWrite,
} from "../src/index.js";
import { firstNonFinite, type SafetensorsDType, type SafetensorsHeader } from "../src/io/safetensors.js";
import { folderSource } from "../src/node/index.js";
import { repoRoot } from "./helpers.js";

const FIXTURES = `${repoRoot}test/fixtures/olmo`;
const BYTES: Record<SafetensorsDType, number> = { F32: 4, BF16: 2, F16: 2 };

/** A seeded PRNG (xorshift32): integers in [0, n). */
function prng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

function memoryFile(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: bytes.length,
    read: async (offset, length) => bytes.slice(offset, offset + length),
    readInto: async (offset, target) => target.set(bytes.subarray(offset, offset + target.length)),
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

async function read(bytes: Uint8Array): Promise<{ header: SafetensorsHeader; problems: string[] }> {
  const problems: string[] = [];
  const header = await readSafetensorsHeader(memoryFile("t.safetensors", bytes), problems);
  return { header, problems };
}

/** A random valid file: 0..6 tensors of random dtypes and shapes (empty and scalar ones included), random names and metadata. */
function randomTensors(next: (n: number) => number): { tensors: TensorToWrite[]; metadata: Record<string, string> } {
  const alphabet = ['a', 'b', '.', '_', '0', '9', 'é', '"', '\\', ' ', '🙂', '{', ':'];
  const word = (min: number) => Array.from({ length: min + next(6) }, () => alphabet[next(alphabet.length)]).join("");
  const names = new Set<string>();
  while (names.size < next(7)) {
    const name = word(1);
    if (name !== "__metadata__") names.add(name);
  }
  const tensors = [...names].map((name): TensorToWrite => {
    const dtype = (["F32", "BF16", "F16"] as const)[next(3)]!;
    const shape = Array.from({ length: next(4) }, () => next(5));
    const bytes = new Uint8Array(shape.reduce((a, b) => a * b, 1) * BYTES[dtype]);
    for (let i = 0; i < bytes.length; i++) bytes[i] = next(256);
    return { name, dtype, shape, bytes };
  });
  const metadata: Record<string, string> = {};
  for (let i = next(3); i > 0; i--) metadata[word(0)] = word(0);
  return { tensors, metadata };
}

/** Tensors as comparable records: name, dtype, shape, offsets and bytes. */
async function contents(header: SafetensorsHeader): Promise<Map<string, { dtype: string; shape: string; begin: number; end: number; bytes: string }>> {
  const out = new Map();
  for (const [name, t] of header.tensors) {
    const bytes = await t.file.read(t.begin, t.end - t.begin);
    out.set(name, { dtype: t.dtype, shape: t.shape.join(), begin: t.begin, end: t.end, bytes: Buffer.from(bytes).toString("hex") });
  }
  return out;
}

test("random valid files round-trip: names, dtypes, shapes, offsets, bytes and metadata", async () => {
  const next = prng(42);
  for (let n = 0; n < 300; n++) {
    const { tensors, metadata } = randomTensors(next);
    const file = concat(encodeSafetensors(tensors, metadata));
    const { header, problems } = await read(file);
    if (problems.length) throw new Error(`file ${n}: ${problems.join("; ")}`);
    if (JSON.stringify(header.metadata) !== JSON.stringify(metadata)) throw new Error(`file ${n}: metadata ${JSON.stringify(header.metadata)}`);
    if (header.tensors.size !== tensors.length) throw new Error(`file ${n}: ${header.tensors.size} tensors, wrote ${tensors.length}`);
    const dataStart = file.length - tensors.reduce((s, t) => s + t.bytes.length, 0);
    let offset = dataStart;
    for (const t of tensors) {
      const got = header.tensors.get(t.name);
      if (!got || got.dtype !== t.dtype || got.shape.join() !== t.shape.join() || got.begin !== offset || got.end !== offset + t.bytes.length) {
        throw new Error(`file ${n}: tensor ${JSON.stringify(t.name)} read as ${JSON.stringify(got && { ...got, file: undefined })}`);
      }
      const bytes = await got.file.read(got.begin, got.end - got.begin);
      if (Buffer.compare(Buffer.from(bytes), Buffer.from(t.bytes)) !== 0) throw new Error(`file ${n}: bytes of ${JSON.stringify(t.name)} differ`);
      offset += t.bytes.length;
    }
  }
});

// No checksum protects a header, so a byte flipped inside a name, a dtype ("F32" -> "I32"), a zero-size
// shape or a metadata string can give another valid file: that is the most a single-byte corruption may
// do. Never may it move a tensor's bytes (offsets, header length) or change more than one field.
test("single-byte header corruptions are refused, or change at most one name / dtype / shape / metadata field and never the data", async () => {
  const next = prng(7);
  let refused = 0, identical = 0, oneField = 0;
  for (let n = 0; n < 12; n++) {
    let sample = randomTensors(next);
    while (sample.tensors.length < 2) sample = randomTensors(next);
    const file = concat(encodeSafetensors(sample.tensors, sample.metadata));
    const original = await read(file);
    const originalTensors = await contents(original.header);
    const headerEnd = 8 + Number(new DataView(file.buffer).getBigUint64(0, true));
    for (let position = 0; position < headerEnd; position++) {
      for (const value of [file[position]! ^ 1, file[position]! ^ 0x10, next(256)]) {
        if (value === file[position]) continue;
        const corrupt = file.slice();
        corrupt[position] = value;
        const { header, problems } = await read(corrupt);
        if (problems.length) {
          if (header.tensors.size !== 0) throw new Error("a refused file still returned tensors");
          refused++;
          continue;
        }
        const where = `file ${n}, byte ${position} = 0x${value.toString(16)}`;
        const got = await contents(header);
        const layout = (m: typeof got) => [...m.values()].map((t) => `${t.begin}-${t.end}:${t.bytes}`).sort().join();
        if (layout(got) !== layout(originalTensors)) throw new Error(`${where}: the data layout changed and the file was accepted`);
        let differences = JSON.stringify(header.metadata) === JSON.stringify(original.header.metadata) ? 0 : 1;
        for (const [name, t] of originalTensors) {
          const same = got.get(name);
          if (!same) {
            differences++; // renamed: the tensor with the same bytes must differ in its name only
            const renamed = [...got.entries()].find(([other, u]) => !originalTensors.has(other) && u.begin === t.begin && u.end === t.end);
            if (!renamed || renamed[1].dtype !== t.dtype || renamed[1].shape !== t.shape) throw new Error(`${where}: tensor ${JSON.stringify(name)} changed in more than its name`);
          } else if (same.dtype !== t.dtype || same.shape !== t.shape || same.begin !== t.begin) {
            differences += (same.dtype !== t.dtype ? 1 : 0) + (same.shape !== t.shape ? 1 : 0) + (same.begin !== t.begin ? 2 : 0);
          }
        }
        if (differences > 1) throw new Error(`${where}: ${differences} fields changed and the file was accepted`);
        if (differences === 0) identical++;
        else oneField++;
      }
    }
  }
  // Mostly refused; the accepted ones show the comparison above ran.
  if (refused < 1000 || identical + oneField < 100) throw new Error(`too few cases exercised: ${refused} refused, ${identical} identical, ${oneField} one field`);
});

/** A file from a header object (given as JSON text, padded with `padding` spaces) and `dataBytes` bytes of data. */
function rawFile(headerJson: string, dataBytes: number, lengthDelta = 0): Uint8Array {
  const header = new TextEncoder().encode(headerJson);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(header.length + lengthDelta), true);
  return concat([prefix, header, new Uint8Array(dataBytes)]);
}

async function expectProblem(bytes: Uint8Array, fragment: string): Promise<void> {
  const { header, problems } = await read(bytes);
  if (!problems.some((p) => p.includes(fragment) && p.includes("t.safetensors"))) throw new Error(`problems ${JSON.stringify(problems)} lack "${fragment}"`);
  if (header.tensors.size !== 0) throw new Error("a refused file still returned tensors");
}

test("the tensors must tile the data section exactly: overlaps, holes, shifted headers and trailing bytes are refused", async () => {
  const a = (offsets: string) => `"a":{"dtype":"F32","shape":[2],"data_offsets":${offsets}}`;
  const b = (offsets: string) => `"b":{"dtype":"F32","shape":[2],"data_offsets":${offsets}}`;
  const good = rawFile(`{${a("[0,8]")},${b("[8,16]")}}    `, 16);
  if ((await read(good)).problems.length) throw new Error(`the valid file was refused: ${(await read(good)).problems}`);
  await expectProblem(rawFile(`{${a("[0,8]")},${b("[4,12]")}}`, 12), 'tensor "b" (data_offsets [4, 12]) overlaps tensor "a"');
  await expectProblem(rawFile(`{${a("[0,8]")},${b("[0,8]")}}`, 8), "overlaps");
  await expectProblem(rawFile(`{${a("[0,8]")},${b("[12,20]")}}`, 20), '4 bytes before tensor "b"');
  await expectProblem(rawFile(`{${a("[4,12]")}}`, 12), '4 bytes before tensor "a"');
  await expectProblem(rawFile(`{${a("[0,8]")},${b("[8,16]")}}`, 20), "the tensors' data ends at byte");
  // The header length 3 bytes short: the JSON still parses (its padding is cut), every tensor shifts by 3.
  await expectProblem(rawFile(`{${a("[0,8]")},${b("[8,16]")}}    `, 16, -3), "the header length");
  await expectProblem(rawFile(`{${a("[0,8]")},${a("[8,16]")}}`, 16), 'tensor "a" is named twice');
  await expectProblem(rawFile(`  {${a("[0,8]")}}`, 8), 'must start with "{"');
  await expectProblem(rawFile(`{"__metadata__":{"n":1},${a("[0,8]")}}`, 8), '"__metadata__" must be an object of strings');
  await expectProblem(rawFile(`{${a("[0,9007199254740993]")}}`, 8), 'bad header entry for tensor "a"');
  await expectProblem(concat([rawFile(`{"a\u00e9":1}`, 0).slice(0, 12), new Uint8Array([0xff]), rawFile(`{"a\u00e9":1}`, 0).slice(13)]), "not valid UTF-8");
  // Empty tensors take no bytes, anywhere in the order.
  const empty = rawFile(`{"e":{"dtype":"F16","shape":[0,3],"data_offsets":[8,8]},${a("[0,8]")},"s":{"dtype":"BF16","shape":[],"data_offsets":[8,10]}}`, 10);
  const { header, problems } = await read(empty);
  if (problems.length || header.tensors.size !== 3) throw new Error(`empty and scalar tensors: ${problems}`);
});

test("firstNonFinite finds NaN and infinities by their exponent bits in F32, BF16 and F16, aligned or not", () => {
  const f32 = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);
  const u16 = (bits: number[]) => new Uint8Array(Uint16Array.from(bits).buffer);
  const cases: [SafetensorsDType, Uint8Array, number][] = [
    ["F32", f32([0, -0, 1e-45, 3.4028234663852886e38, -1]), -1],
    ["F32", f32([1, 2, Number.NaN]), 2],
    ["F32", f32([-Infinity, 1]), 0],
    ["BF16", u16([0x3f80, 0x7f7f, 0x0001, 0xff7f]), -1],
    ["BF16", u16([0x3f80, 0x7f80]), 1],
    ["BF16", u16([0xffc1]), 0],
    ["F16", u16([0x3c00, 0x7bff, 0x0001, 0xfbff]), -1],
    ["F16", u16([0x3c00, 0x3c00, 0xfc00]), 2],
    ["F16", u16([0x7e00]), 0],
  ];
  // Long tensors: the scan tests whole words a block at a time, so put the bad value in either half of
  // a word, in a later block, and as the odd last value of a 16-bit tensor.
  const bad: Record<SafetensorsDType, number> = { F32: 0x7f800000, BF16: 0xff80, F16: 0x7c01 };
  for (const dtype of ["F32", "BF16", "F16"] as const) {
    // 8192 + 8 .. 8192 + 15: every word of one step of the scan's four-word loop, in each half (16-bit).
    const steps = Array.from({ length: 8 }, (_, j) => [20001, 8200 + j] as const);
    for (const [length, at] of [[20001, 17333], [20001, 17334], [20001, 20000], [9000, -1], ...steps] as const) {
      const values = dtype === "F32" ? new Uint32Array(length).fill(0x3f800000) : new Uint16Array(length).fill(0x3c00);
      if (at >= 0) values[at] = bad[dtype];
      cases.push([dtype, new Uint8Array(values.buffer), at]);
    }
  }
  // Every 16-bit pattern, in either half of a word, and every f32 exponent with both signs and the
  // mantissa's edges: non-finite exactly when the exponent bits are all ones (the scan's carry trick
  // must neither miss one nor see one in a finite neighbour's bits).
  for (const [dtype, exponent] of [["BF16", 0x7f80], ["F16", 0x7c00]] as const) {
    for (let v = 0; v < 0x10000; v++) {
      const want = (v & exponent) === exponent;
      cases.push([dtype, u16([v, 0x3c00]), want ? 0 : -1], [dtype, u16([0x3c00, v]), want ? 1 : -1]);
    }
  }
  for (let e = 0; e < 256; e++) {
    for (const sign of [0, 0x80000000]) {
      for (const mantissa of [0, 1, 0x400000, 0x7fffff]) {
        cases.push(["F32", new Uint8Array(Uint32Array.from([(sign | (e << 23) | mantissa) >>> 0, 0x3f800000]).buffer), e === 255 ? 0 : -1]);
      }
    }
  }
  for (const [dtype, bytes, want] of cases) {
    const unaligned = new Uint8Array(bytes.length + 1).subarray(1);
    unaligned.set(bytes);
    for (const b of [bytes, unaligned]) {
      const got = firstNonFinite(b, dtype);
      if (got !== want) throw new Error(`${dtype} [${[...bytes]}] (byteOffset ${b.byteOffset}): got ${got}, want ${want}`);
    }
  }
});

/** A folder held in memory: file name -> bytes. */
function memoryFolder(files: Map<string, Uint8Array>): ModelSource {
  return { name: "mem", open: async (file) => (files.has(file) ? memoryFile(`mem/${file}`, files.get(file)!) : null) };
}

async function fixtureFiles(folder: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for (const name of ["config.json", "model.safetensors"]) files.set(name, new Uint8Array(readFileSync(`${FIXTURES}/${folder}/${name}`)));
  return files;
}

/** The error message of loading `source`, or null when it loads. */
async function loadError(source: ModelSource, options: { allowNonFinite?: boolean; plain?: boolean } = {}): Promise<string | null> {
  try {
    const loaded = await loadCheckpoint(source, createJsBackend(), { allowNonFinite: options.allowNonFinite, weightDType: "f32" });
    for (const t of loaded.weights.values()) t.dispose();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

test("a NaN or infinite weight is reported at load with the tensor named, unless allowed (F32 and BF16 files, both read paths)", async () => {
  for (const [folder, tensor, element, bits] of [
    ["f32-untied-clip", "model.layers.1.mlp.up_proj.weight", 5, [0x00, 0x00, 0xc0, 0x7f]],
    ["bf16-tied", "model.layers.0.self_attn.k_proj.weight", 17, [0x80, 0x7f]],
  ] as const) {
    const files = await fixtureFiles(folder);
    const { header } = await read(files.get("model.safetensors")!);
    const entry = header.tensors.get(tensor)!;
    const bytes = files.get("model.safetensors")!.slice();
    bytes.set(bits, entry.begin + element * bits.length);
    files.set("model.safetensors", bytes);
    const source = memoryFolder(files);
    // Without readInto, the loader reads into a host array and uploads: the other path.
    const plain: ModelSource = {
      name: "mem", open: async (f) => { const s = await source.open(f); return s && { name: s.name, size: s.size, read: s.read }; },
    };
    for (const s of [source, plain]) {
      const message = await loadError(s);
      if (!message?.includes(`mem/model.safetensors: tensor "${tensor}" holds a non-finite weight`) || !message.includes(`at element ${element}`)) {
        throw new Error(`${folder}: ${message}`);
      }
      const allowed = await loadError(s, { allowNonFinite: true });
      if (allowed !== null) throw new Error(`${folder} with allowNonFinite: ${allowed}`);
    }
  }
  if ((await loadError(folderSource(`${FIXTURES}/bf16-tied`))) !== null) throw new Error("the clean fixture was refused");
});

test("an index's shard names must be plain file names of the folder, reported with the index named", async () => {
  const sharded = `${FIXTURES}/gqa-sharded`;
  const index = JSON.parse(readFileSync(`${sharded}/model.safetensors.index.json`, "utf8")) as { weight_map: Record<string, unknown> };
  const first = Object.keys(index.weight_map)[0]!;
  for (const [shard, fragment] of [
    [7, "got 7"],
    [null, "got null"],
    ["", 'got ""'],
    ["../model-00001-of-00005.safetensors", "../model"],
    ["sub/model.safetensors", "sub/model"],
    ["..", 'got ".."'],
    ["c:\\x.safetensors", "c:"],
  ] as const) {
    const folder = folderSource(sharded);
    const source: ModelSource = {
      name: folder.name,
      open: async (file) => {
        if (file !== "model.safetensors.index.json") return folder.open(file);
        const text = new TextEncoder().encode(JSON.stringify({ ...index, weight_map: { ...index.weight_map, [first]: shard } }));
        return memoryFile(`${sharded}/${file}`, text);
      },
    };
    const message = await loadError(source);
    if (!message?.includes(`model.safetensors.index.json: weight_map["${first}"] must be the file name of a shard`) || !message.includes(fragment)) {
      throw new Error(`shard ${JSON.stringify(shard)}: ${message}`);
    }
  }
  for (const text of ["null", "[]", '{"weight_map": [1]}']) {
    const source: ModelSource = { name: "mem", open: async (f) => (f === "model.safetensors.index.json" ? memoryFile("idx", new TextEncoder().encode(text)) : folderSource(sharded).open(f)) };
    const message = await loadError(source);
    if (!message?.includes('no "weight_map" object')) throw new Error(`${text}: ${message}`);
  }
  if (!(CheckpointError.prototype instanceof Error)) throw new Error("CheckpointError");
});

test.run();
