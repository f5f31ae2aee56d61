// The type of `import simd from "olmo-js/dist/olmo-simd.wasm"` (and olmo-relaxed-simd.wasm): the
// kernels as Cloudflare Workers and Vercel's edge runtime hand a .wasm import over, compiled. Pass
// them to createWasmBackend({ modules: { simd, relaxedSimd } }). (A bundler that imports .wasm files
// as bytes instead gives a Uint8Array: compile it with WebAssembly.compile first.)
declare const kernels: WebAssembly.Module;
export default kernels;
