// Types of scripts/wasm-signatures.mjs, for the test that imports it (test/wasm-boundary.test.ts).

export interface KernelParameter {
  name: string;
  type: "Pointer" | "OptionalPointer" | "i32" | "u32" | "f32" | "f64" | "usize";
}
export interface KernelSignature {
  name: string;
  file: string;
  parameters: KernelParameter[];
}
export interface KernelSignatures {
  kernels: KernelSignature[];
  queries: string[];
}
export const GENERATED_PATH: string;
export function readKernelSignatures(root: string): KernelSignatures;
export function renderKernelSignatures(signatures: KernelSignatures): string;
