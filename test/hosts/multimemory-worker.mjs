// Runs in a module Web Worker of multimemory.html: the multi-memory check (multimemory-browser.ts,
// bundled as build/hosts/multimemory.js) on 2 threads; its report goes back to the page.
import { multimemoryInBrowser } from "../../build/hosts/multimemory.js";

try {
  postMessage(await multimemoryInBrowser(2));
} catch (e) {
  postMessage({ error: String((e && e.stack) || e) });
}
