// The demo's ZIP writer (examples/browser/zip.ts), read back by Info-ZIP's unzip, the tool a user
// unpacks the demo's adapter download with: its integrity test passes, the listing shows each entry
// stored with the given date, and the extracted files are the bytes that went in.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import { crc32, zipStored, type ZipEntry } from "../examples/browser/zip.js";
import { testIf, unzipUnderTest } from "./helpers.js";

const UNZIP = await unzipUnderTest("the unzip cases of zip.test");

const ascii = (s: string) => new TextEncoder().encode(s);

test("crc32: the CRC-32 check values, the same for a string cut into pieces", () => {
  // The catalogue's check value of CRC-32/ISO-HDLC (the ZIP and zlib CRC) is that of "123456789".
  for (const [text, want] of [["123456789", 0xcbf43926], ["", 0], ["The quick brown fox jumps over the lazy dog", 0x414fa339]] as const) {
    const whole = crc32([ascii(text)]);
    const cut = crc32([ascii(text.slice(0, 3)), new Uint8Array(0), ascii(text.slice(3))]);
    if (whole !== want || cut !== want) throw new Error(`crc32("${text}"): ${whole.toString(16)} whole, ${cut.toString(16)} in pieces, want ${want.toString(16)}`);
  }
});

testIf(UNZIP !== null)("unzip tests, lists and extracts an archive of stored files: an empty one, one in pieces, a UTF-8 name", () => {
  // A megabyte of pseudo-random bytes in three uneven pieces, so a wrong CRC or offset cannot pass by luck.
  const big = new Uint8Array(1 << 20);
  let x = 12345;
  for (let i = 0; i < big.length; i++) big[i] = (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24;
  const entries: ZipEntry[] = [
    { name: "adapter/adapter_config.json", data: [ascii('{"peft_type": "LORA"}\n')] },
    { name: "adapter/empty.bin", data: [] },
    { name: "adapter/adapter_model.safetensors", data: [big.subarray(0, 7), big.subarray(7, 300001), big.subarray(300001)] },
    { name: "adapter/données é.txt", data: [new TextEncoder().encode("accents: é, ü")] },
  ];
  const dir = mkdtempSync(join(tmpdir(), "olmo-zip-"));
  try {
    const archive = join(dir, "test.zip");
    writeFileSync(archive, Buffer.concat(zipStored(entries, new Date(2024, 4, 6, 7, 8, 10))));
    const tested = execFileSync(UNZIP!, ["-t", archive], { encoding: "utf8" });
    if (!tested.includes("No errors detected")) throw new Error(`unzip -t: ${tested}`);
    // zipinfo's -T listing: "-rw-r--r--  2.0 unx  1048576 b- stor 20240506.070810 adapter/adapter_model.safetensors".
    const listing = execFileSync(UNZIP!, ["-Z", "-T", archive], { encoding: "utf8" });
    for (const e of entries) {
      const size = e.data.reduce((n, p) => n + p.length, 0);
      const line = listing.split("\n").find((l) => l.endsWith(` ${e.name}`));
      if (!line || !new RegExp(`^-rw-r--r-- .* ${size} .* stor 20240506\\.070810 `).test(line)) {
        throw new Error(`${e.name} (${size} bytes) is not listed as a rw-r--r-- file stored at 2024-05-06 07:08:10:\n${listing}`);
      }
    }
    const out = join(dir, "out");
    execFileSync(UNZIP!, ["-q", archive, "-d", out]);
    for (const e of entries) {
      const got = readFileSync(join(out, e.name));
      if (Buffer.compare(got, Buffer.concat(e.data)) !== 0) throw new Error(`${e.name}: extracted ${got.length} bytes that differ from the ${Buffer.concat(e.data).length} written`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
