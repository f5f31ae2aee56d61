// The demo page: a Web Worker does the work (browsers only let workers block in Atomics.wait, which
// the WASM backend's threads use); this page sends it requests and shows what comes back.

const $ = (id: string) => document.getElementById(id) as HTMLElement & { value: string };
const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
// What the page has produced, for people poking in the console and for the browser test.
const state: Record<string, unknown> = {};
(window as unknown as { demo: unknown }).demo = state;

for (const tab of ["generate", "train"]) {
  $(`tab-${tab}`).onclick = () => {
    for (const other of ["generate", "train"]) {
      $(other).classList.toggle("active", other === tab);
      $(`tab-${other}`).classList.toggle("active", other === tab);
    }
  };
}

// The WebGPU adapter's name, shown while the webgpu backend is selected.
let adapter = "";
const showAdapter = () => ($("backend-info").textContent = $("backend").value === "webgpu" && adapter ? `adapter: ${adapter}` : "");
$("backend").onchange = showAdapter;

worker.onmessage = ({ data }) => {
  switch (data.type) {
    case "env": {
      $("env").textContent = `Threads: ${data.threads}${data.threads === 1 ? " (no cross-origin isolation: SharedArrayBuffer unavailable)" : ""}.`;
      const option = document.querySelector<HTMLOptionElement>('#backend option[value="webgpu"]')!;
      option.disabled = !data.webgpu;
      option.textContent = data.webgpu ? "webgpu (GPU)" : "webgpu (this browser has no WebGPU)";
      break;
    }
    case "backend":
      if (data.adapter) adapter = data.adapter;
      showAdapter();
      break;
    case "status":
      $(data.target === "train" ? "train-status" : "status").textContent = data.text;
      break;
    case "text":
      $("output").textContent += data.text;
      break;
    case "generated":
      $("status").textContent = `${data.tokens} tokens, ${data.tokensPerSecond.toFixed(1)} tokens/s`;
      state.generated = data;
      break;
    case "loss":
      $("curve").innerHTML = data.svg;
      $("train-status").textContent = `step ${data.step}: loss ${data.loss.toFixed(3)}`;
      break;
    case "trained":
      state.losses = data.losses;
      break;
    case "error":
      $(data.target === "train" ? "train-status" : "status").textContent = `error: ${data.message}`;
      state.error = data.message;
      break;
  }
};

// The model: the folder the user picked, if any, else the folder URL. Files go to the worker as File
// objects (structured clone), read there a tensor at a time.
let picked: File[] | null = null;
const folder = $("folder") as unknown as HTMLInputElement;
folder.onchange = () => {
  picked = folder.files && folder.files.length > 0 ? Array.from(folder.files) : null;
  $("picked").textContent = picked ? `using the picked folder (${picked.length} files)` : "";
};
const model = () => ({ backend: $("backend").value, model: new URL($("model").value, location.href).href, ...(picked ? { files: picked } : {}) });

$("run").onclick = () => {
  $("output").textContent = $("prompt").value;
  state.generated = undefined;
  worker.postMessage({ type: "generate", ...model(), prompt: $("prompt").value, maxNewTokens: Number($("tokens").value) });
};
$("train-run").onclick = () => {
  worker.postMessage({ type: "train", ...model(), text: $("text").value, steps: Number($("steps").value) });
};
