// What an edge function gets from its platform: `.wasm?module` imports compiled to WebAssembly.Modules,
// and its environment variables.
declare module "*.wasm?module" {
  const module: WebAssembly.Module;
  export default module;
}
declare const process: { env: Record<string, string | undefined> };
