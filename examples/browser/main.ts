// The demo page: a Web Worker does the work (browsers only let workers block in Atomics.wait, which
// the WASM backend's threads use); this page sends it requests and shows what comes back. Beside the
// tools (generate, train, evaluate), the learner's views look inside one forward pass on the user's
// text: tokens, the next-token distribution, attention (each in its own file here).

import type { SamplingOptions, StepMetrics } from "../../src/index.js";
import { hoverText, renderAttention } from "./attention-view.js";
import type { Inspected } from "./inspected.js";
import { renderNextToken } from "./next-token-view.js";
import { renderTokens, richestWord, tokenStrip } from "./tokens-view.js";
import { renderSamples, renderTraining, type Sample, type TrainingRun } from "./training-view.js";

const $ = (id: string) => document.getElementById(id) as HTMLElement & { value: string };
const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
// What the page has produced, for people poking in the console and for the browser tests.
const state: Record<string, unknown> = {};
(window as unknown as { demo: unknown }).demo = state;

const TABS = ["generate", "evaluate", "tokenize", "next", "attention", "train"];
/** The views that look at the text of the bar above them (one forward pass, shared). */
const LOOK_TABS = new Set(["tokenize", "next", "attention"]);
let currentTab = "generate";
function showTab(tab: string): void {
  currentTab = tab;
  state.view = tab;
  for (const other of TABS) {
    $(other).classList.toggle("active", other === tab);
    $(`tab-${other}`).classList.toggle("active", other === tab);
  }
  $("look-bar").hidden = !LOOK_TABS.has(tab);
  if (LOOK_TABS.has(tab)) look();
}
for (const tab of TABS) $(`tab-${tab}`).onclick = () => showTab(tab);

// Buttons that start work wait while the worker is busy; the adapter's download waits for a trained step
// (and may be asked for mid-run); Reset waits for a model that differs from its files.
let busy = false;
let model = { text: "", changed: false, adapterSteps: 0 };
function updateButtons(): void {
  for (const id of ["run", "train-run", "eval-run", "look-run"]) ($(id) as unknown as HTMLButtonElement).disabled = busy;
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
  $("progress").hidden = true;
  updateButtons();
  // A look asked for while the worker was busy runs now.
  if (LOOK_TABS.has(currentTab)) look();
}

/** The status line of the tab a message is for. */
const statusOf = (target: string) => ({ train: "train-status", evaluate: "eval-status", inspect: "look-status" })[target] ?? "status";

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
    case "progress":
      $("progress").hidden = false;
      ($("progress-bar") as unknown as HTMLProgressElement).value = data.total > 0 ? data.done / data.total : 0;
      $("progress-text").textContent = `${data.what}: ${(data.done / 1e6).toFixed(1)} of ${(data.total / 1e6).toFixed(1)} MB`;
      break;
    case "model":
      $("model-state").textContent = data.text;
      // The look views show the model as it was: loaded again, trained or reset, they look again.
      if (data.text !== model.text) lookedAt = null;
      model = data;
      updateButtons();
      break;
    case "inspected":
      $("look-status").textContent = `${data.ids.length} tokens, one forward pass in ${(data.seconds * 1000).toFixed(0)} ms`;
      inspected = data;
      lookedAt = { prompt: data.prompt, model: model.text, backend: $("backend").value };
      state.inspected = data;
      word = richestWord(data);
      position = data.ids.length - 1;
      [layer, head] = [0, 0];
      renderLook();
      done();
      break;
    case "schedule":
      run = { steps: data.schedule.length, warmup: data.warmup, schedule: data.schedule, metrics: [], maxGradNorm: 1 };
      state.schedule = data.schedule;
      renderTraining(run, trainingRoot);
      break;
    case "sample":
      samples[data.when as "before" | "after"] = data;
      state.samples = { ...samples };
      renderSamples(samples, $("samples"));
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
    case "loss": {
      const { type: _, ...metrics } = data;
      run?.metrics.push(metrics as StepMetrics);
      state.metrics = run?.metrics.slice();
      if (run) renderTraining(run, trainingRoot);
      $("train-status").textContent = `step ${data.step}: loss ${data.loss.toFixed(3)}`;
      break;
    }
    case "trained":
      if (data.metrics.length) $("train-status").textContent = `trained ${data.metrics.length} steps: loss ${data.metrics[0].loss.toFixed(3)} → ${data.metrics.at(-1).loss.toFixed(3)}`;
      state.metrics = data.metrics;
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
      if (data.target === "inspect") lookFailed = `${$("backend").value} ${model.text} ${$("look-text").value}`;
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
  state.metrics = undefined;
  state.samples = undefined;
  run = null;
  samples = {};
  renderSamples(samples, $("samples"));
  const sample = { prompt: $("sample-prompt").value, tokens: 24 };
  start({
    type: "train", text: $("text").value, steps: Number($("steps").value), lr: Number($("lr").value), warmup: Number($("warmup").value),
    ...(sample.prompt ? { sample } : {}), ...(method() === "lora" ? { lora } : {}),
  });
};
$("eval-run").onclick = () => {
  state.evaluated = undefined;
  $("eval-result").innerHTML = "";
  start({ type: "evaluate", task: $("task").value, rows: $("rows").value });
};
$("download").onclick = () => worker.postMessage({ type: "adapter" });
$("reset").onclick = () => worker.postMessage({ type: "reset" });

// The training view's run and samples, drawn as the worker posts them.
let run: TrainingRun | null = null;
let samples: Partial<Record<"before" | "after", Sample>> = {};
const trainingRoot = { stats: $("train-stats"), loss: $("curve"), grad: $("grad-chart"), lr: $("lr-chart") };

// The look views: one forward pass over the text in the bar (the worker's "inspect"), drawn three ways.
let inspected: Inspected | null = null;
/** The text, model state and backend the views show; null once the model changed. */
let lookedAt: { prompt: string; model: string; backend: string } | null = null;
/** The last look that failed (a text too long, say), not tried again until asked. */
let lookFailed: string | null = null;
let word = 0;
let position = 0;
let layer = 0;
let head = 0;

/** Look at the bar's text, unless the views already show it on the model as it is (or the worker is busy: done() calls again). */
function look(force = false): void {
  const prompt = $("look-text").value;
  const key = `${$("backend").value} ${model.text} ${prompt}`;
  if (!force && lookedAt && `${lookedAt.backend} ${lookedAt.model} ${lookedAt.prompt}` === key && inspected) return;
  if (!force && lookFailed === key) return;
  if (busy) {
    $("look-status").textContent = "waiting for the worker ...";
    return;
  }
  state.inspected = undefined;
  lookFailed = null;
  start({ type: "inspect", prompt });
}
$("look-run").onclick = () => look(true);
$("look-text").addEventListener("keydown", (e) => (e as KeyboardEvent).key === "Enter" && look(true));

/** The token text of an id: the prompt's tokens and each position's likeliest, as the worker sent them. */
const tokenText = (id: number) => inspected?.vocabulary[id] ?? { text: `#${id}`, piece: `#${id}` };

function samplingOptions(): SamplingOptions {
  const number = (id: string) => Number($(id).value);
  return {
    doSample: ($("do-sample") as unknown as HTMLInputElement).checked,
    temperature: number("temperature"), topK: number("top-k"), topP: number("top-p"),
    noRepeatNgramSize: number("no-repeat"), repetitionPenalty: number("repetition-penalty"),
  };
}

function renderLook(): void {
  if (!inspected) return;
  state.tokens = renderTokens(inspected, word, { summary: $("token-summary"), strip: $("token-strip"), merges: $("merges") });
  renderNext();
  state.attention = renderAttention(inspected, layer, head, {
    info: $("attention-info"), grid: $("attention-grid"), title: $("attention-title"), map: $("attention-map"), legend: $("attention-legend"),
  });
}

function renderNext(): void {
  for (const id of ["temperature", "top-k", "top-p", "no-repeat", "repetition-penalty"]) {
    const value = Number($(id).value);
    $(`${id}-value`).textContent = id === "top-k" && value === 0 ? "off" : id === "no-repeat" && value === 0 ? "off" : String(value);
  }
  if (!inspected) return;
  $("next-strip").innerHTML = tokenStrip(inspected, { pieces: false, selectedPosition: position });
  state.nextToken = renderNextToken(inspected, position, samplingOptions(), tokenText, { summary: $("next-summary"), chart: $("next-chart") });
}
for (const id of ["do-sample", "temperature", "top-k", "top-p", "no-repeat", "repetition-penalty"]) $(id).addEventListener("input", renderNext);

$("token-strip").addEventListener("click", (e) => {
  const w = (e.target as HTMLElement).closest<HTMLElement>(".word");
  if (!w || !inspected) return;
  word = Number(w.dataset.word);
  state.tokens = renderTokens(inspected, word, { summary: $("token-summary"), strip: $("token-strip"), merges: $("merges") });
});
$("next-strip").addEventListener("click", (e) => {
  const p = (e.target as HTMLElement).closest<HTMLElement>(".position");
  if (!p) return;
  position = Number(p.dataset.position);
  renderNext();
});
$("attention-grid").addEventListener("click", (e) => {
  const thumb = (e.target as HTMLElement).closest<HTMLElement>(".thumb");
  if (!thumb || !inspected) return;
  [layer, head] = [Number(thumb.dataset.layer), Number(thumb.dataset.head)];
  renderLook();
});
$("attention-map").addEventListener("mouseover", (e) => {
  const cell = (e.target as Element).closest<SVGRectElement>("rect.cell");
  if (!cell || !inspected) return;
  const [q, k, value] = [Number(cell.dataset.q), Number(cell.dataset.k), Number(cell.dataset.value)];
  $("attention-hover").innerHTML = hoverText(inspected, q, k, value);
  state.attentionHover = { layer, head, q, k, value };
});
renderNext();
renderSamples(samples, $("samples"));
