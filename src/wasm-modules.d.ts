// Kernel binaries are imported as bytes; see scripts/build.mjs.

/** Kernel binaries, embedded by esbuild's binary loader (see scripts/build.mjs). */
declare module "*.wasm" {
  const bytes: Uint8Array<ArrayBuffer>;
  export default bytes;
}

/** WGSL shader sources, embedded as text by esbuild's text loader (see scripts/build.mjs). */
declare module "*.wgsl" {
  const source: string;
  export default source;
}
