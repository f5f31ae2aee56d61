// The multiple-choice tasks of OLMo's model card, each written as OLMo's own downstream evaluator
// writes it (allenai/OLMo, olmo/eval/downstream.py: the ICLMultiChoiceTaskDataset subclasses and
// label_to_task_map). For every row of a task's Hugging Face dataset a task gives, per choice:
//   - context:       the prompt the model reads (doc_to_text; winogrande has one per choice)
//   - continuation:  the answer string whose log-probability is scored (doc_to_continuations: with
//                    its leading space; winogrande has one continuation shared by both choices)
//   - domain conditional: the short prompt of pmi_dc's denominator (doc_to_domain_conditional)
// and the index of the right choice (doc_to_label). The headline metric of each task is its
// `metric_type` in that file.
//
// Rows are the datasets' rows as users have them (JSON lines, or Parquet read into objects): a field
// that is missing or of the wrong type is an EvalDataError naming the row and the field.

export type MetricName = "acc" | "len_norm" | "pmi_dc";

export class EvalDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EvalDataError";
  }
}

/** One row's prompts, per choice. */
export interface TaskItem {
  contexts: string[];
  continuations: string[];
  domainConditionals: string[];
  label: number;
}

export interface MultipleChoiceTask {
  name: string;
  /** The Hugging Face dataset (path and config) that OLMo loads, and the split it scores. */
  dataset: string;
  split: string;
  /** downstream.py's metric_type for the task: the headline number. */
  primaryMetric: MetricName;
  /** The row fields the task reads, for error messages and documentation. */
  fields: readonly string[];
  item(row: RowReader): TaskItem;
}

/** Typed access to one dataset row; every failure names the row and the field. */
export class RowReader {
  constructor(
    readonly row: unknown,
    /** e.g. "arc_easy.jsonl line 3" or "row 3". */
    readonly where: string,
    readonly task: MultipleChoiceTask,
  ) {
    if (typeof row !== "object" || row === null || Array.isArray(row)) {
      throw new EvalDataError(`${where}: a ${task.name} row must be an object with the fields ${task.fields.join(", ")}; got ${describe(row)}`);
    }
  }

  /** The value at a dotted path ("choices.text"). */
  get(path: string): unknown {
    let value: unknown = this.row;
    for (const key of path.split(".")) {
      if (typeof value !== "object" || value === null || !(key in value)) {
        throw this.error(path, `is missing (a ${this.task.name} row has the fields ${this.task.fields.join(", ")})`);
      }
      value = (value as Record<string, unknown>)[key];
    }
    return value;
  }

  has(path: string): boolean {
    let value: unknown = this.row;
    for (const key of path.split(".")) {
      if (typeof value !== "object" || value === null || !(key in value)) return false;
      value = (value as Record<string, unknown>)[key];
    }
    return value !== null && value !== undefined;
  }

  string(path: string): string {
    const v = this.get(path);
    if (typeof v !== "string") throw this.error(path, `must be a string, got ${describe(v)}`);
    return v;
  }

  /** An integer, given as a number, a bigint (Parquet int64) or a decimal string ("3", as hellaswag's label). */
  integer(path: string): number {
    const v = this.get(path);
    const n = typeof v === "bigint" ? Number(v) : typeof v === "string" && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v;
    if (typeof n !== "number" || !Number.isInteger(n)) throw this.error(path, `must be an integer, got ${describe(v)}`);
    return n;
  }

  boolean(path: string): boolean {
    const v = this.get(path);
    if (typeof v !== "boolean") throw this.error(path, `must be true or false, got ${describe(v)}`);
    return v;
  }

  /** A list of integers (each as integer() takes it). */
  integers(path: string): number[] {
    const v = this.get(path);
    const list = Array.isArray(v) ? v : null;
    const asInteger = (x: unknown) => (typeof x === "bigint" ? Number(x) : x);
    if (!list || list.some((x) => !Number.isInteger(asInteger(x)))) throw this.error(path, `must be a list of integers, got ${describe(v)}`);
    return list.map((x) => asInteger(x) as number);
  }

  /** A list of strings (a JSON array, or Parquet's list column, which may arrive as any array-like). */
  strings(path: string): string[] {
    const v = this.get(path);
    const list = Array.isArray(v) ? v : null;
    if (!list || list.some((s) => typeof s !== "string")) throw this.error(path, `must be a list of strings, got ${describe(v)}`);
    if (list.length === 0) throw this.error(path, "is an empty list");
    return list as string[];
  }

  error(path: string, problem: string): EvalDataError {
    return new EvalDataError(`${this.where}: field "${path}" ${problem}`);
  }
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 40) + "..." : v);
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v)}`;
}

// ---- Python string methods, as downstream.py uses them ----------------------------------------------

// Python's str.isspace() set: wider than JS's trim() (\x1c-\x1f, \x85) and without U+FEFF.
const PY_SPACE = "\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, "gu");

/** Python's str.strip(). */
export function pyStrip(s: string): string {
  return s.replace(PY_STRIP, "");
}

/** Python's str.capitalize(): the first character upper case, the rest lower case. */
export function pyCapitalize(s: string): string {
  const [first, ...rest] = Array.from(s);
  return first === undefined ? "" : first.toUpperCase() + rest.join("").toLowerCase();
}

/** Python's len(): code points, not UTF-16 units. */
export function pyLen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Python's str.replace(old, new): every non-overlapping occurrence, left to right. */
function replaceAll(s: string, from: string, to: string): string {
  return s.split(from).join(to);
}

// ---- The tasks ---------------------------------------------------------------------------------------

/** ARC (ai2_arc): "Question: Q\nAnswer:" and " " + each choice; answerKey A-E (or 1-5). */
function arc(name: string, config: string, primaryMetric: MetricName): MultipleChoiceTask {
  return {
    name,
    dataset: `ai2_arc ${config}`,
    split: "validation",
    primaryMetric,
    fields: ["question", "choices.text", "answerKey"],
    item(row) {
      const choices = row.strings("choices.text");
      return {
        contexts: choices.map(() => "Question: " + row.string("question") + "\nAnswer:"),
        continuations: choices.map((c) => " " + c),
        domainConditionals: choices.map(() => "Answer:"),
        label: letterLabel(row, "answerKey", ["A", "B", "C", "D", "E"], choices.length, { "1": "A", "2": "B", "3": "C", "4": "D", "5": "E" }),
      };
    },
  };
}

/** The index of a letter answer key in `letters` (downstream.py indexes a fixed list, not the row's labels). */
function letterLabel(row: RowReader, field: string, letters: string[], choices: number, numbers: Record<string, string> = {}, strip = false): number {
  let key = row.string(field);
  if (strip) key = pyStrip(key);
  key = numbers[key] ?? key;
  const label = letters.indexOf(key);
  if (label < 0) throw row.error(field, `must be one of ${letters.join(", ")}, got ${JSON.stringify(key)}`);
  if (label >= choices) throw row.error(field, `is ${key}, but the row has only ${choices} choices`);
  return label;
}

/** A 0-based label within [0, choices). */
function checkedLabel(row: RowReader, field: string, label: number, choices: number): number {
  if (label < 0 || label >= choices) throw row.error(field, `must pick one of the ${choices} choices, got ${label}`);
  return label;
}

const hellaswagPreprocess = (text: string) => {
  // The brackets are WikiHow artifacts (downstream.py's HellaSwag.preprocess). Python's "." matches
  // anything but "\n" (JS's also refuses "\r" and the line separators).
  text = pyStrip(text);
  text = replaceAll(text, " [title]", ". ");
  text = text.replace(/\[[^\n]*?\]/g, "");
  return replaceAll(text, "  ", " ");
};

const tasks: MultipleChoiceTask[] = [
  arc("arc_easy", "ARC-Easy", "acc"),
  arc("arc_challenge", "ARC-Challenge", "len_norm"),
  {
    name: "boolq",
    dataset: "boolq",
    split: "validation",
    primaryMetric: "acc",
    fields: ["passage", "question", "answer"],
    item(row) {
      const prompt = row.string("passage") + "\nQuestion: " + row.string("question") + "?\nAnswer:";
      // The boolq dataset's `answer` (true / false); super_glue's boolq config has `label` (1 = true).
      const yes = row.has("answer") || !row.has("label") ? row.boolean("answer") : checkedLabel(row, "label", row.integer("label"), 2) === 1;
      return {
        contexts: [prompt, prompt],
        continuations: [" yes", " no"],
        domainConditionals: ["Answer:", "Answer:"],
        label: yes ? 0 : 1,
      };
    },
  },
  {
    name: "copa",
    dataset: "super_glue copa",
    split: "validation",
    primaryMetric: "acc",
    fields: ["premise", "choice1", "choice2", "question", "label"],
    item(row) {
      const question = row.string("question");
      if (question !== "cause" && question !== "effect") throw row.error("question", `must be "cause" or "effect", got ${JSON.stringify(question)}`);
      const connective = question === "cause" ? "because" : "therefore";
      // The premise without its final period, then the connective; each choice with a lower-case first letter.
      const premise = Array.from(pyStrip(row.string("premise"))).slice(0, -1).join("");
      const lowerFirst = (s: string) => {
        const [first, ...rest] = Array.from(s);
        return (first ?? "").toLowerCase() + rest.join("");
      };
      const prompt = premise + " " + connective;
      return {
        contexts: [prompt, prompt],
        continuations: [" " + lowerFirst(row.string("choice1")), " " + lowerFirst(row.string("choice2"))],
        domainConditionals: [connective, connective],
        label: checkedLabel(row, "label", row.integer("label"), 2),
      };
    },
  },
  {
    name: "hellaswag",
    dataset: "hellaswag",
    split: "validation",
    primaryMetric: "len_norm",
    fields: ["activity_label", "ctx_a", "ctx_b", "endings", "label"],
    item(row) {
      const endings = row.strings("endings");
      const ctxA = row.string("ctx_a"), ctxB = row.string("ctx_b");
      const prompt = hellaswagPreprocess(row.string("activity_label") + ": " + ctxA + " " + pyCapitalize(ctxB));
      let dc = hellaswagPreprocess(pyCapitalize(ctxB));
      if (dc.length === 0) dc = hellaswagPreprocess(ctxA).split(" ").at(-1)!; // never an empty domain prompt
      return {
        contexts: endings.map(() => prompt),
        continuations: endings.map((e) => " " + hellaswagPreprocess(e)),
        domainConditionals: endings.map(() => dc),
        label: checkedLabel(row, "label", row.integer("label"), endings.length),
      };
    },
  },
  {
    name: "openbookqa",
    dataset: "openbookqa main",
    split: "validation",
    primaryMetric: "len_norm",
    fields: ["question_stem", "choices.text", "answerKey"],
    item(row) {
      const choices = row.strings("choices.text");
      const stem = row.string("question_stem");
      const dc = pyStrip(stem).split(" ").at(-1)!;
      return {
        contexts: choices.map(() => stem),
        continuations: choices.map((c) => " " + c),
        domainConditionals: choices.map(() => dc),
        label: letterLabel(row, "answerKey", ["A", "B", "C", "D"], choices.length, {}, true),
      };
    },
  },
  {
    name: "piqa",
    dataset: "piqa plain_text",
    split: "validation",
    primaryMetric: "len_norm",
    fields: ["goal", "sol1", "sol2", "label"],
    item(row) {
      const prompt = "Question: " + row.string("goal") + "\nAnswer:";
      return {
        contexts: [prompt, prompt],
        continuations: [" " + row.string("sol1"), " " + row.string("sol2")],
        domainConditionals: ["Answer:", "Answer:"],
        label: checkedLabel(row, "label", row.integer("label"), 2),
      };
    },
  },
  {
    name: "sciq",
    dataset: "sciq",
    split: "validation",
    primaryMetric: "acc",
    fields: ["support", "question", "distractor1", "distractor2", "distractor3", "correct_answer"],
    item(row) {
      const prompt = pyStrip(row.string("support")) + "\nQuestion: " + row.string("question") + "\nAnswer:";
      const answers = [row.string("distractor1"), row.string("distractor2"), row.string("distractor3"), row.string("correct_answer")];
      return {
        contexts: answers.map(() => prompt),
        continuations: answers.map((a) => " " + a),
        domainConditionals: answers.map(() => "Answer:"),
        label: 3, // the correct answer is always last
      };
    },
  },
  {
    name: "winogrande",
    dataset: "winogrande winogrande_xl",
    split: "validation",
    primaryMetric: "acc",
    fields: ["sentence", "option1", "option2", "answer"],
    item(row) {
      // Partial scoring: the sentence up to "_" with each option filled in is the context, and the
      // rest of the sentence is the one continuation both choices score.
      const sentence = row.string("sentence");
      const blank = sentence.indexOf("_");
      if (blank < 0) throw row.error("sentence", `has no "_" to fill in: ${JSON.stringify(sentence)}`);
      const options = [row.string("option1"), row.string("option2")];
      const continuation = " " + pyStrip(sentence.slice(blank + 1));
      return {
        contexts: options.map((o) => sentence.slice(0, blank) + o),
        continuations: [continuation, continuation],
        domainConditionals: options,
        label: checkedLabel(row, "answer", row.integer("answer") - 1, 2),
      };
    },
  },
  {
    // downstream.py's MMLU with its default prompt (no instruction, no shots, no letter labels); OLMo
    // reports it per category (mmlu_stem, mmlu_humanities, ...): score each category's rows as a task.
    name: "mmlu",
    dataset: "hails/mmlu_no_train (or cais/mmlu) all",
    split: "validation",
    primaryMetric: "len_norm",
    fields: ["question", "choices", "answer"],
    item(row) {
      const choices = row.strings("choices");
      const prompt = "Question: " + pyStrip(row.string("question")) + "\nAnswer:";
      return {
        contexts: choices.map(() => prompt),
        continuations: choices.map((c) => " " + c),
        domainConditionals: choices.map(() => "Answer:"),
        label: checkedLabel(row, "answer", row.integer("answer"), choices.length),
      };
    },
  },
  {
    // Not in downstream.py. TruthfulQA's multiple_choice config scored as "MC1": the one true answer
    // among mc1_targets.choices (labels: 1 for it, 0 for the others), in the zero-shot
    // "Question: ... Answer:" form downstream.py gives mmlu. (EleutherAI's lm-evaluation-harness puts a
    // six-shot preamble before the question and also reports MC2, the probability mass of all true
    // answers of mc2_targets: its numbers are not these.)
    name: "truthful_qa",
    dataset: "truthful_qa multiple_choice",
    split: "validation",
    primaryMetric: "acc",
    fields: ["question", "mc1_targets.choices", "mc1_targets.labels"],
    item(row) {
      const choices = row.strings("mc1_targets.choices"), labels = row.integers("mc1_targets.labels");
      if (labels.length !== choices.length) throw row.error("mc1_targets.labels", `has ${labels.length} labels for ${choices.length} choices`);
      if (labels.filter((l) => l === 1).length !== 1 || labels.some((l) => l !== 0 && l !== 1)) {
        throw row.error("mc1_targets.labels", `must mark exactly one choice 1 and the others 0, got [${labels.join(", ")}]`);
      }
      const prompt = "Question: " + pyStrip(row.string("question")) + "\nAnswer:";
      return {
        contexts: choices.map(() => prompt),
        continuations: choices.map((c) => " " + c),
        domainConditionals: choices.map(() => "Answer:"),
        label: labels.indexOf(1),
      };
    },
  },
];

/** Other names of the same tasks (downstream.py's label_to_task_map keys, and the Hub's names). */
const aliases: Record<string, string> = { openbook_qa: "openbookqa", truthfulqa: "truthful_qa", truthfulqa_mc1: "truthful_qa" };

export const MULTIPLE_CHOICE_TASKS: readonly string[] = tasks.map((t) => t.name);

export function multipleChoiceTask(name: string): MultipleChoiceTask {
  const task = tasks.find((t) => t.name === (aliases[name] ?? name));
  if (!task) throw new EvalDataError(`unknown task "${name}": the tasks are ${MULTIPLE_CHOICE_TASKS.join(", ")}`);
  return task;
}
