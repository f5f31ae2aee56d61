// A ZIP archive of uncompressed ("stored") files: how the demo hands over a folder (a PEFT adapter's
// two files) in one download. The layout is PKWARE's APPNOTE.TXT: per file a local header (4.3.7),
// its name and its bytes; then a central directory header (4.3.12) per file; then the end of central
// directory record (4.3.16). All numbers are little-endian.
//
// Stored, not deflated: a safetensors file is float bytes that deflate barely shrinks, and a stored
// entry is only a header and the bytes. No ZIP64 either, so every size and offset must fit in 32 bits.

export interface ZipEntry {
  /** The path inside the archive, with "/" between folders (a folder needs no entry of its own). */
  name: string;
  /** The file's bytes, in pieces (as encodeSafetensors returns them). */
  data: readonly Uint8Array[];
}

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

/** CRC-32 of the pieces taken as one byte string (the IEEE / zlib CRC that ZIP stores per file). */
export function crc32(pieces: readonly Uint8Array[]): number {
  let crc = 0xffffffff;
  for (const piece of pieces) for (const byte of piece) crc = CRC_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** MS-DOS time and date fields (2-second resolution, local time, years from 1980), as ZIP tools read them. */
function dosTimeAndDate(d: Date): [number, number] {
  const year = Math.min(Math.max(d.getFullYear(), 1980), 2107);
  return [(d.getHours() << 11) | (d.getMinutes() << 5) | (d.getSeconds() >> 1), ((year - 1980) << 9) | ((d.getMonth() + 1) << 5) | d.getDate()];
}

/** The archive's bytes, in pieces (for a Blob): the entries stored in the given order, all dated `modified`. */
export function zipStored(entries: readonly ZipEntry[], modified = new Date()): Uint8Array[] {
  if (entries.length > 0xffff) throw new Error(`zip: ${entries.length} entries; this writer has no ZIP64, which more than 65535 need`);
  const [time, date] = dosTimeAndDate(modified);
  const files: Uint8Array[] = [];
  const directory: Uint8Array[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = new TextEncoder().encode(entry.name);
    const size = entry.data.reduce((n, piece) => n + piece.length, 0);
    if (offset + 30 + name.length + size > 0xffffffff) throw new Error(`zip: ${entry.name} would end past 4 GiB; this writer has no ZIP64`);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true); // local file header signature
    local.setUint16(4, 10, true); // version needed to extract: 1.0, stored files
    local.setUint16(6, 1 << 11, true); // flags: bit 11, the name is UTF-8
    local.setUint16(8, 0, true); // compression method: stored
    local.setUint16(10, time, true);
    local.setUint16(12, date, true);
    local.setUint32(14, crc32(entry.data), true);
    local.setUint32(18, size, true); // compressed size
    local.setUint32(22, size, true); // uncompressed size
    local.setUint16(26, name.length, true);
    local.setUint16(28, 0, true); // extra field length
    // The central directory header repeats bytes 4..30 of the local one (version needed .. extra
    // field length) after its own signature and "version made by", then says where the file starts.
    const central = new DataView(new ArrayBuffer(46));
    central.setUint32(0, 0x02014b50, true); // central directory header signature
    central.setUint16(4, (3 << 8) | 20, true); // version made by: 2.0 on Unix, so the attributes below are a Unix mode
    new Uint8Array(central.buffer).set(new Uint8Array(local.buffer, 4, 26), 6);
    // Bytes 32..38 stay zero: file comment length, disk number, internal attributes.
    central.setUint32(38, 0o100644 << 16, true); // external attributes: a regular file, rw-r--r--
    central.setUint32(42, offset, true); // where the local header starts
    files.push(new Uint8Array(local.buffer), name, ...entry.data);
    directory.push(new Uint8Array(central.buffer), name);
    offset += 30 + name.length + size;
  }
  const directorySize = directory.reduce((n, piece) => n + piece.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true); // end of central directory signature
  // Bytes 4..8 stay zero: this disk's number and the one the directory starts on (a single-file archive).
  end.setUint16(8, entries.length, true); // entries on this disk
  end.setUint16(10, entries.length, true); // entries in all
  end.setUint32(12, directorySize, true);
  end.setUint32(16, offset, true); // where the central directory starts
  end.setUint16(20, 0, true); // archive comment length
  return [...files, ...directory, new Uint8Array(end.buffer)];
}
