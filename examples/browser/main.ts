// The demo page: a Web Worker does the work (browsers only let workers block in Atomics.wait, which
// the WASM backend's threads use); this page sends it requests and shows what comes back.

const $ = (id: string) => document.getElementById(id) as HTMLElement & { value: string };
const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
// What the page has produced, for people poking in the console and for the browser test.
const state: Record<string, unknown> = {};
(window as unknown as { demo: unknown }).demo = state;

const TABS = ["generate", "train", "evaluate"];
for (const tab of TABS) {
  $(`tab-${tab}`).onclick = () => {
    for (const other of TABS) {
      $(other).classList.toggle("active", other === tab);
      $(`tab-${other}`).classList.toggle("active", other === tab);
    }
  };
}

// Buttons that start work wait while the worker is busy; the adapter's download waits for a trained step
// (and may be asked for mid-run); Reset waits for a model that differs from its files.
let busy = false;
let model = { changed: false, adapterSteps: 0 };
function updateButtons(): void {
  for (const id of ["run", "train-run", "eval-run"]) ($(id) as unknown as HTMLButtonElement).disabled = busy;
  ($("reset") as unknown as HTMLButtonElement).disabled = busy || !model.changed;
  ($("download") as unknown as HTMLButtonElement).disabled = model.adapterSteps === 0;
}
function start(message: Record<string, unknown>): void {
  busy = true;
  state.error = undefined;
  updateButtons();
  worker.postMessage({ ...message, ...modelRequest() });
}
function done(): void {
  busy = false;
  updateButtons();
}

/** The status line of the tab a message is for. */
const statusOf = (target: string) => ({ train: "train-status", evaluate: "eval-status" })[target] ?? "status";

interface Scores {
  task: string;
  items: number;
  acc: number;
  lenNorm: number;
  pmiDc: number;
  primaryMetric: string;
  itemsPerSecond: number;
  itemScores: { label: number; choices: { ll: number; llDc: number; chars: number }[] }[];
}

/** The three metrics, then one row per item: each choice's log-likelihood, acc's pick in bold. */
function showScores(s: Scores): void {
  const percent = (v: number) => `${(100 * v).toFixed(1)}%`;
  $("eval-status").textContent = `${s.items} items, ${s.itemsPerSecond.toFixed(2)} items/s`;
  const widest = Math.max(...s.itemScores.map((item) => item.choices.length));
  const rows = s.itemScores.map((item, i) => {
    const lls = item.choices.map((c) => c.ll);
    const pick = lls.indexOf(Math.max(...lls));
    const cells = item.choices.map((c, k) => `<td${k === pick ? ' class="pick"' : ""}>${c.ll.toFixed(2)}</td>`).join("");
    return `<tr><td>${i}</td><td>${item.label}</td>${cells}${"<td></td>".repeat(widest - item.choices.length)}<td>${pick === item.label ? "yes" : "no"}</td></tr>`;
  });
  const choices = Array.from({ length: widest }, (_, k) => `<th>ll ${k}</th>`).join("");
  $("eval-result").innerHTML =
    `<p>${s.task}: acc ${percent(s.acc)}, len_norm ${percent(s.lenNorm)}, pmi_dc ${percent(s.pmiDc)} (OLMo reports ${s.primaryMetric})</p>` +
    `<table><tr><th>item</th><th>label</th>${choices}<th>acc right</th></tr>${rows.join("")}</table>`;
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
      $("task").innerHTML = data.tasks.map((t: string) => `<option${t === "arc_easy" ? " selected" : ""}>${t}</option>`).join("");
      break;
    }
    case "backend":
      if (data.adapter) adapter = data.adapter;
      showAdapter();
      break;
    case "status":
      $(statusOf(data.target)).textContent = data.text;
      break;
    case "model":
      $("model-state").textContent = data.text;
      model = data;
      updateButtons();
      break;
    case "text":
      $("output").textContent += data.text;
      break;
    case "generated":
      $("status").textContent = `${data.tokens} tokens${data.withAdapter ? " with the LoRA adapter" : ""}, ${data.tokensPerSecond.toFixed(1)} tokens/s`;
      state.generated = data;
      done();
      break;
    case "trainable":
      $("trainable").textContent =
        `Training ${data.trainable.toLocaleString("en")} of the model's ${data.total.toLocaleString("en")} parameters (${Number(((100 * data.trainable) / data.total).toPrecision(2))}%).`;
      state.trainable = data;
      break;
    case "loss":
      $("curve").innerHTML = data.svg;
      $("train-status").textContent = `step ${data.step}: loss ${data.loss.toFixed(3)}`;
      break;
    case "trained":
      state.losses = data.losses;
      state.lora = data.lora;
      done();
      break;
    case "adapter": {
      const link = document.createElement("a");
      link.href = URL.createObjectURL(data.blob);
      link.download = data.name;
      link.click();
      // Revoked a minute later, not at once: the browser may not have read the blob yet (FileSaver.js waits too).
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
      break;
    }
    case "evaluated":
      showScores(data);
      state.evaluated = data;
      done();
      break;
    case "error":
      $(statusOf(data.target)).textContent = `error: ${data.message}`;
      state.error = data.message;
      done();
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
// The model folder's URL, or the picked folder's name, also recorded as the adapter's base model.
function modelRequest() {
  const url = new URL($("model").value, location.href).href;
  return { backend: $("backend").value, model: url, ...(picked ? { files: picked, base: picked[0]!.webkitRelativePath.split("/")[0] || "picked folder" } : { base: url }) };
}

$("run").onclick = () => {
  $("output").textContent = $("prompt").value;
  state.generated = undefined;
  start({ type: "generate", prompt: $("prompt").value, maxNewTokens: Number($("tokens").value) });
};

// Full fine-tuning or LoRA. LoRA's few parameters start from B = 0 and take a larger learning rate than
// full fine-tuning: on the tiny model and the default text, 16 LoRA steps on q and v lower the loss by
// 1.0 nat at 1e-2 and by 0.3 at 1e-3 (full fine-tuning at 1e-3: by 2.2).
const learningRates = { full: "0.001", lora: "0.01" };
const method = () => document.querySelector<HTMLInputElement>('input[name="method"]:checked')!.value as "full" | "lora";
document.querySelectorAll<HTMLInputElement>('input[name="method"]').forEach((radio) => {
  radio.onchange = () => {
    $("lora-options").hidden = method() !== "lora";
    $("lr").value = learningRates[method()];
  };
});
$("train-run").onclick = () => {
  const targets = Array.from(document.querySelectorAll<HTMLInputElement>('input[name="target"]:checked'), (box) => box.value);
  const lora = { r: Number($("lora-r").value), alpha: Number($("lora-alpha").value), targets, dropout: Number($("lora-dropout").value) };
  state.losses = undefined;
  start({ type: "train", text: $("text").value, steps: Number($("steps").value), lr: Number($("lr").value), ...(method() === "lora" ? { lora } : {}) });
};
$("eval-run").onclick = () => {
  state.evaluated = undefined;
  $("eval-result").innerHTML = "";
  start({ type: "evaluate", task: $("task").value, rows: $("rows").value });
};
$("download").onclick = () => worker.postMessage({ type: "adapter" });
$("reset").onclick = () => worker.postMessage({ type: "reset" });
