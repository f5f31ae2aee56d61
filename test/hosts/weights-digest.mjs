// FNV-1a of every weight's stored bits, by weight name in sorted order: the browser load paths
// (sources.html on the page, sources-worker.mjs in a worker) and Node (test/browser.test.ts) compute it
// alike, so their weights can be compared bit for bit.
export async function weightsDigest(model, backend) {
  let hash = 0x811c9dc5;
  for (const name of [...model.weights.keys()].sort()) {
    const t = model.weights.get(name);
    const bits = await backend.download(t.bufferFor("digest"), t.dtype, t.size);
    const bytes = new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
    for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ bytes[i], 16777619) >>> 0;
  }
  return hash;
}
