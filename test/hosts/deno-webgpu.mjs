// Run by Deno (see test/hosts.test.ts): the WebGPU parity check (build/hosts/webgpu-parity.js) on
// Deno's built-in navigator.gpu, the default model read through Deno's file API. Prints the report.
import { webGpuParity } from "../../build/hosts/webgpu-parity.js";
import { denoFolderSource } from "./deno-source.mjs";

const [dir] = Deno.args;
const source = denoFolderSource(dir);
console.log(JSON.stringify(await webGpuParity(navigator.gpu, source)));
