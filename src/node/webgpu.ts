// The WebGPU backend in Node, through Dawn (Google's WebGPU implementation) from the `webgpu` npm
// package, an optional peer dependency: `npm install webgpu`. Dawn needs a GPU driver: Vulkan on Linux
// (a GPU-less Linux machine can use Mesa's lavapipe: apt-get install libvulkan1 mesa-vulkan-drivers,
// Mesa 23 or newer), Metal on macOS, D3D12 on Windows.

import { createWebGpuBackend, type WebGpuBackend, type WebGpuBackendOptions } from "../backends/webgpu/index.js";

interface DawnModule {
  create(flags: string[]): GPU;
  globals: object;
}

export interface NodeWebGpuBackend extends WebGpuBackend {
  /** Dawn's GPU object: it must outlive the device, so the backend keeps it (and a test may open a second device on it). */
  readonly dawn: GPU;
}

/** The WebGPU backend on Dawn. `dawnFlags` go to Dawn's create() ("backend=vulkan", say). */
export async function createNodeWebGpuBackend(options: Omit<WebGpuBackendOptions, "gpu"> & { dawnFlags?: string[] } = {}): Promise<NodeWebGpuBackend> {
  let dawn: DawnModule;
  try {
    dawn = (await import("webgpu")) as unknown as DawnModule;
  } catch (e) {
    throw new Error(
      `webgpu backend: Node needs the \`webgpu\` package (Dawn) for WebGPU: npm install webgpu (${(e as Error).message.split("\n")[0]})`,
    );
  }
  const gpu = dawn.create(options.dawnFlags ?? []);
  const backend = await createWebGpuBackend({ ...options, gpu });
  return Object.assign(backend, { dawn: gpu });
}
