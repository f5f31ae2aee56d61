# workerd's configuration of the olmo-js Worker (worker.ts, bundled by build.mjs into dist/):
#   npx workerd serve config.capnp          then POST http://127.0.0.1:8787/generate
# `--socket-addr http=127.0.0.1:PORT` serves another port; $OLMO_MEMORY_LIMIT_MB sets the memory limit
# the Worker keeps to (default 128, Cloudflare's limit per isolate).
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "olmo", worker = .olmoWorker)],
  sockets = [(name = "http", address = "127.0.0.1:8787", http = (), service = "olmo")],
);

const olmoWorker :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "dist/worker.js"),
    # The kernels, compiled by workerd (a Worker may not compile WebAssembly itself).
    (name = "olmo-simd.wasm", wasm = embed "dist/olmo-simd.wasm"),
    (name = "olmo-relaxed-simd.wasm", wasm = embed "dist/olmo-relaxed-simd.wasm"),
    # The model folder, as bytes (a Worker has no file system).
    (name = "config.json", data = embed "dist/config.json"),
    (name = "tokenizer.json", data = embed "dist/tokenizer.json"),
    (name = "model.safetensors", data = embed "dist/model.safetensors"),
  ],
  bindings = [(name = "MEMORY_LIMIT_MB", fromEnvironment = "OLMO_MEMORY_LIMIT_MB")],
  compatibilityDate = "2025-09-01",
);
