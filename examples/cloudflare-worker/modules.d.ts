// The model's files as the Worker imports them: data modules, whose default export is the file's bytes
// (config.capnp declares them; with wrangler, a `Data` rule for these files does the same). The
// kernels' .wasm imports are typed by olmo-js itself.
declare module "olmo-js/models/olmo-tiny-shakespeare/config.json" {
  const bytes: ArrayBuffer;
  export default bytes;
}
declare module "olmo-js/models/olmo-tiny-shakespeare/tokenizer.json" {
  const bytes: ArrayBuffer;
  export default bytes;
}
declare module "*.safetensors" {
  const bytes: ArrayBuffer;
  export default bytes;
}
