// Run by Deno (see test/hosts.test.ts): the WebGPU parity check (build/hosts/webgpu-parity.js) on
// Deno's built-in navigator.gpu, the default model read through Deno's file API. Prints the report.
import { webGpuParity } from "../../build/hosts/webgpu-parity.js";

const [dir] = Deno.args;
const source = {
  name: dir,
  open: async (file) => {
    try {
      const bytes = await Deno.readFile(`${dir}/${file}`);
      return { name: `${dir}/${file}`, size: bytes.length, read: async (offset, length) => bytes.slice(offset, offset + length) };
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  },
};
console.log(JSON.stringify(await webGpuParity(navigator.gpu, source)));
