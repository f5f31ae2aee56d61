// olmo-js/worker: a module to start as a Web Worker; it serves OlmoGenerator to createWorkerClient
// (src/api/worker.ts) in the page:
//   const worker = new Worker(new URL("olmo-js/worker", import.meta.url), { type: "module" });
//   const olmo = await createWorkerClient(worker, "https://host/olmo-folder", { backend: "webgpu" });
// It imports the core bundle (dist/index.js) beside it, so the package holds one copy of the core.

import { serveGenerator, type MessageEndpoint } from "./index.js";

serveGenerator(globalThis as unknown as MessageEndpoint);
