// Opening a WebGPU device for the backend: find an adapter, check it has the limits the kernels need,
// and ask for the largest buffers and bindings it offers.

export interface WebGpuDeviceOptions {
  /** The WebGPU entry point; default `navigator.gpu`. Node: see createNodeWebGpuBackend. */
  gpu?: GPU;
  /** The adapter to prefer (WebGPU's GPUPowerPreference, spelled out so the public types need no WebGPU declarations). */
  powerPreference?: "low-power" | "high-performance";
}

/** What the kernels need from a device, beyond WebGPU's defaults. */
const REQUIRED = { maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupSizeX: 256, maxStorageBuffersPerShaderStage: 8, maxComputeWorkgroupStorageSize: 12 * 1024 };

/** Find an adapter and open a device on it, or explain why not. */
export async function requestWebGpuDevice(options: WebGpuDeviceOptions = {}): Promise<{ device: GPUDevice; adapter: string }> {
  const gpu = options.gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!gpu) {
    throw new Error(
      "webgpu backend: this host has no WebGPU (navigator.gpu is missing). Browsers need WebGPU (Chrome / Edge 113+, " +
        "or a flag); Deno has it built in; in Node use createNodeWebGpuBackend from olmo-js/node (Dawn, from the `webgpu` package).",
    );
  }
  const adapter = await gpu.requestAdapter(options.powerPreference ? { powerPreference: options.powerPreference } : undefined);
  if (!adapter) {
    throw new Error(
      "webgpu backend: no GPU adapter: WebGPU is present but found no usable GPU or driver. On Linux without a GPU, " +
        "install a Vulkan driver (Debian: apt-get install libvulkan1 mesa-vulkan-drivers, Mesa 23 or newer for Dawn) " +
        "or point VK_ICD_FILENAMES at one.",
    );
  }
  for (const [name, needed] of Object.entries(REQUIRED)) {
    const has = adapter.limits[name as keyof GPUSupportedLimits] as number;
    if (has < needed) throw new Error(`webgpu backend: the adapter's ${name} is ${has}; the kernels need ${needed}`);
  }
  const info = adapter.info ?? { vendor: "", architecture: "", device: "", description: "" };
  const description = [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(" ") || "unknown adapter";
  // The two size limits are asked for in full (model weights and activations are what they are), and
  // the finest storage offset alignment the adapter has (buffers split into blocks start at such offsets).
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: adapter.limits.maxBufferSize,
      minStorageBufferOffsetAlignment: adapter.limits.minStorageBufferOffsetAlignment,
    },
  });
  return { device, adapter: description };
}
