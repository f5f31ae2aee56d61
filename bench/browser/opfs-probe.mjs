self.onmessage = async () => {
  try {
    const root = await navigator.storage.getDirectory();
    const t0 = performance.now();
    const response = await fetch("/model/model.safetensors");
    const file = await root.getFileHandle("model2.safetensors", { create: true });
    const w = await file.createWritable();
    const reader = response.body.getReader();
    for (let c = await reader.read(); !c.done; c = await reader.read()) await w.write(c.value);
    await w.close();
    const size = (await file.getFile()).size;
    postMessage({ kind: "progress", msg: `written (createWritable) ${size} in ${((performance.now() - t0) / 1000).toFixed(1)} s` });
    const pages = Math.ceil(size / 65536) + 16;
    for (const [label, mode, grow] of [["rw, fixed memory", undefined, false], ["ro, fixed memory", "read-only", false], ["ro, grown memory max 4G", "read-only", true]]) {
      const memory = grow ? new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true }) : new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
      if (grow) memory.grow(pages);
      const view = new Uint8Array(memory.buffer);
      const handle = await file.createSyncAccessHandle(mode ? { mode } : undefined);
      const t1 = performance.now();
      const CH = 32 * 2 ** 20;
      let calls = 0, minN = Infinity;
      for (let off = 0; off < size; ) {
        const n = handle.read(view.subarray(off, Math.min(size, off + CH)), { at: off });
        calls++; minN = Math.min(minN, n);
        if (n <= 0) throw new Error("eof");
        off += n;
      }
      const t2 = performance.now();
      handle.close();
      postMessage({ kind: "progress", msg: `${label}: fresh ${((t2 - t1) / 1000).toFixed(2)} s, ${calls} reads, smallest ${minN}` });
    }
    postMessage({ kind: "done" });
  } catch (e) {
    postMessage({ kind: "error", message: String(e && e.stack || e) });
  }
};
