// The WebGPU backend (Dawn in Node, on whatever Vulkan driver the machine has: Mesa's lavapipe in CI)
// against the reference backend: every op forward and backward on the shared cases, AdamW, buffers
// split to respect a small storage-binding limit, and the errors of bad input and bad environments.

import { test } from "uvu";
import * as ops from "../src/index.js";
import {
  createJsBackend, createWebGpuBackend, randn, requestWebGpuDevice, tensor, webGpuBackendOn, type Tensor,
} from "../src/index.js";
import { createNodeWebGpuBackend } from "../src/node/index.js";
import { formatBytes } from "../src/core/format.js";
import { adamwSteps, expectSameAsReference, opCases } from "./backend-cases.js";
import { assertClose, requireVulkan, testIf } from "./helpers.js";

const reference = createJsBackend();
// Without a Vulkan driver only the cases that fake the GPU run (the others are skipped, said on stderr).
const gpu = (await requireVulkan("the webgpu.test cases on Dawn")) ? await createNodeWebGpuBackend() : null;
if (gpu) console.log(`webgpu tests on: ${gpu.adapter}`);
const gpuTest = testIf(gpu !== null);

for (const c of opCases) {
  gpuTest(`webgpu = js: ${c.name}`, () => expectSameAsReference(c, [["webgpu", gpu!]]));
}

gpuTest("webgpu = js: three AdamW steps with weight decay", async () => {
  // Same f32 formula in both; the GPU's sqrt and division may differ by an ulp: 1e-6 is many ulps.
  assertClose(await adamwSteps(gpu!, 1001), await adamwSteps(reference, 1001), { atol: 1e-6, rtol: 1e-6 }, "param");
});

gpuTest("buffers larger than one storage binding are split: elementwise, AdamW, matmul weight, embedding", async () => {
  // 8 KiB bindings: every operand below is split into two or three pieces.
  const small = await createNodeWebGpuBackend({ maxBindingBytes: 8192 });
  const cases = [
    { name: "scale [5000]", inputs: [{ shape: [5000] }], fn: (x: Tensor) => ops.scale(x, 0.5) },
    { name: "cast [5000] to bf16", inputs: [{ shape: [5000], grad: false }], fn: (x: Tensor) => ops.cast(ops.cast(x, "bf16"), "f32") },
    {
      name: "bf16 weight [600, 8] times 1 row (GEMV)",
      inputs: [{ shape: [1, 8] }, { shape: [600, 8], dtype: "bf16" as const, grad: false }],
      fn: (a: Tensor, w: Tensor) => ops.matmul(a, w, { transB: true }),
    },
    {
      name: "bf16 weight [600, 8] times 3 rows (tiled)",
      inputs: [{ shape: [3, 8] }, { shape: [600, 8], dtype: "bf16" as const, grad: false }],
      fn: (a: Tensor, w: Tensor) => ops.matmul(a, w, { transB: true }),
    },
    {
      name: "embedding [600, 8] and its gradient",
      inputs: [{ shape: [600, 8] }, { shape: [7], dtype: "i32" as const, max: 600 }],
      fn: (t: Tensor, ids: Tensor) => ops.embedding(t, ids),
    },
  ];
  for (const c of cases) await expectSameAsReference(c as Parameters<typeof expectSameAsReference>[0], [[`webgpu, 8 KiB bindings: ${c.name}`, small]]);
  assertClose(await adamwSteps(small, 5000), await adamwSteps(reference, 5000), { atol: 1e-6, rtol: 1e-6 }, "AdamW in pieces");
  small.dispose();
});

async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected an error");
}

gpuTest("a bad token id or target id is reported when the result is read, and the backend goes on", async () => {
  const table = randn([33, 4], { backend: gpu! });
  const out = ops.embedding(table, tensor(Int32Array.from([1, 2, 99]), [3], { backend: gpu!, dtype: "i32" }));
  const message = await rejection(out.data());
  if (message !== "embedding: token id 99 at position 2 is out of range [0, 33)") throw new Error(message);
  const logits = randn([2, 5], { backend: gpu! });
  const loss = ops.negativeLogLikelihood(logits, tensor(Int32Array.from([4, -1]), [2], { backend: gpu!, dtype: "i32" }));
  const lossMessage = await rejection(loss.data());
  if (lossMessage !== "crossEntropy: target id -1 at position 1 is out of range [0, 5)") throw new Error(lossMessage);
  const fine = await ops.embedding(table, tensor(Int32Array.from([0]), [1], { backend: gpu!, dtype: "i32" })).data();
  if (fine.length !== 4 || !fine.every(Number.isFinite)) throw new Error(`after a report: ${fine}`);
});

test("no WebGPU, no adapter, too-small limits: clear errors", async () => {
  const noGpu = await rejection(createWebGpuBackend({ gpu: undefined }));
  if (!noGpu.includes("this host has no WebGPU") || !noGpu.includes("createNodeWebGpuBackend")) throw new Error(noGpu);
  const noAdapter = await rejection(createWebGpuBackend({ gpu: { requestAdapter: async () => null } as unknown as GPU }));
  if (!noAdapter.includes("no GPU adapter") || !noAdapter.includes("Vulkan driver")) throw new Error(noAdapter);
  const weak = { limits: { maxComputeInvocationsPerWorkgroup: 128, maxComputeWorkgroupSizeX: 128, maxStorageBuffersPerShaderStage: 8, maxComputeWorkgroupStorageSize: 16384 } };
  const tooSmall = await rejection(createWebGpuBackend({ gpu: { requestAdapter: async () => weak } as unknown as GPU }));
  if (tooSmall !== "webgpu backend: the adapter's maxComputeInvocationsPerWorkgroup is 128; the kernels need 256") throw new Error(tooSmall);
});

gpuTest("an allocation over the device's maxBufferSize fails at once with the numbers", () => {
  // Just over this device's limit (lavapipe's is 4 GiB - 1 byte; an H200's through Dawn is 8 GiB or more).
  const elements = Math.floor(gpu!.limits.maxBufferSize / 4) + 64;
  let message = "";
  try {
    gpu!.allocate("f32", elements);
  } catch (e) {
    message = (e as Error).message;
  }
  if (!message.includes(`cannot allocate ${formatBytes(elements * 4)} for a f32 tensor of ${elements} elements`) || !message.includes("maxBufferSize")) {
    throw new Error(`over maxBufferSize (${gpu!.limits.maxBufferSize} bytes): ${message || "no error"}`);
  }
});

gpuTest("a lost device makes the next call throw instead of hanging", async () => {
  const { device, adapter } = await requestWebGpuDevice({ gpu: gpu!.dawn });
  const backend = webGpuBackendOn(device, adapter);
  const x = randn([4], { backend });
  await x.data();
  device.destroy();
  await device.lost;
  let message = "";
  try {
    ops.scale(x, 2);
  } catch (e) {
    message = (e as Error).message;
  }
  if (!message.startsWith("webgpu backend: the GPU device was lost (destroyed)")) throw new Error(message);
});

test.run();
