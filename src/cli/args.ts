// The `olmo` commands' options, parsed by Node's util.parseArgs (strict) from one declarative spec per
// command. Everything a flag's value must satisfy is declared in its spec entry (a number's range and
// whether it is an integer, a choice among words, whether it is required) and checked here, for every
// command, before the command does anything. Errors name the flag and what was expected; all problems
// of one command line are reported in one message.

import { parseArgs as nodeParseArgs } from "node:util";
import { closest } from "../core/format.js";

/** The range a numeric flag's value must lie in; bounds are inclusive unless marked exclusive. */
export interface NumberRange {
  integer?: boolean;
  min?: number;
  max?: number;
  minExclusive?: boolean;
  maxExclusive?: boolean;
}

export interface OptionSpec {
  /** Takes a value (`--name VALUE` or `--name=VALUE`) or is a flag (`--name`). */
  kind: "value" | "flag";
  help: string;
  /** The value is a number in this range. */
  number?: NumberRange;
  /** The value is one of these words. */
  choices?: readonly string[];
  /** The option must be given. */
  required?: boolean;
  /** The name of the value in the usage text (default VALUE, or N for numbers). */
  placeholder?: string;
}

export type CommandSpec = Record<string, OptionSpec>;

export interface ParseOptions {
  /** A positional argument fills this option (`olmo generate "ROMEO:"` is `--prompt "ROMEO:"`). */
  positional?: string;
  /** Groups of options of which exactly one must be given. */
  exactlyOne?: readonly (readonly string[])[];
  /** Groups of options of which at least one must be given (which may go together is the command's to check). */
  atLeastOne?: readonly (readonly string[])[];
}

export interface ParsedArgs {
  values: Map<string, string>;
  flags: Set<string>;
  /** The checked value of every numeric option given. */
  numbers: Map<string, number>;
  /** -h or --help was given: print usage(command, spec) and do nothing else. */
  help: boolean;
}

/** A mistake in the command line (exit status 2); the command name is added by the caller. */
export class UsageError extends Error {}

/** "a number > 0", "an integer in [1, 8]": the range as the usage text and errors state it. */
export function describeRange(r: NumberRange): string {
  const kind = r.integer ? "an integer" : "a number";
  const lo = r.min === undefined ? null : `${r.minExclusive ? ">" : ">="} ${r.min}`;
  const hi = r.max === undefined ? null : `${r.maxExclusive ? "<" : "<="} ${r.max}`;
  if (lo && hi) return `${kind} in ${r.minExclusive ? "(" : "["}${r.min}, ${r.max}${r.maxExclusive ? ")" : "]"}`;
  return [kind, lo ?? hi].filter(Boolean).join(" ");
}

/** The number `raw` as `--name` must be, or a problem naming the flag and the range. */
export function checkNumber(name: string, raw: string, r: NumberRange): number | string {
  const v = Number(raw);
  const ok =
    raw.trim() !== "" && Number.isFinite(v) && (!r.integer || Number.isSafeInteger(v)) &&
    (r.min === undefined || (r.minExclusive ? v > r.min : v >= r.min)) &&
    (r.max === undefined || (r.maxExclusive ? v < r.max : v <= r.max));
  return ok ? v : `--${name} must be ${describeRange(r)}, got ${raw}`;
}

/**
 * Negative numbers are values, not options: strict parseArgs calls `--lr -1` ambiguous. No option of
 * ours is a digit, so a "-" followed by a digit or "." after a value option is joined to it (`--lr=-1`),
 * and the range check then says what --lr accepts.
 */
function joinNegativeNumbers(args: readonly string[], spec: CommandSpec): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!, next = args[i + 1];
    if (arg.startsWith("--") && !arg.includes("=") && spec[arg.slice(2)]?.kind === "value" && next !== undefined && /^-[\d.]/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

function placeholder(o: OptionSpec): string {
  return o.placeholder ?? (o.number ? "N" : "VALUE");
}

const HELP: OptionSpec = { kind: "flag", help: "show this help" };

/**
 * Parse `args` of `olmo <command>` against `spec` (-h / --help are always accepted). Throws one
 * UsageError listing every problem: unknown options (with the closest known one), missing values,
 * numbers out of range, words not among the choices, missing required options.
 */
export function parseArgs(command: string, args: readonly string[], spec: CommandSpec, options: ParseOptions = {}): ParsedArgs {
  const full: CommandSpec = { ...spec, help: spec.help ?? HELP };
  const nodeOptions = Object.fromEntries(
    Object.entries(full).map(([name, o]) => [name, name === "help" ? { type: "boolean" as const, short: "h" } : { type: o.kind === "value" ? ("string" as const) : ("boolean" as const) }]),
  );
  const joined = joinNegativeNumbers(args, full);
  const problems: string[] = [];
  // Unknown options first, all of them, each with the closest known name: strict parsing stops at the first.
  const { tokens } = nodeParseArgs({ args: joined, options: nodeOptions, strict: false, allowPositionals: true, tokens: true });
  for (const t of tokens) {
    if (t.kind !== "option" || t.name in full) continue;
    const guess = closest(t.name, Object.keys(full));
    problems.push(`unknown argument "${t.rawName}"${guess ? ` (did you mean --${guess}?)` : ""}`);
  }
  if (problems.length) throw new UsageError(problems.join("\n"));
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = nodeParseArgs({ args: joined, options: nodeOptions, strict: true, allowPositionals: options.positional !== undefined });
  } catch (e) {
    const error = e as Error & { code?: string };
    if (error.code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
      const extra = tokens.find((t) => t.kind === "positional");
      throw new UsageError(`unexpected argument "${extra?.kind === "positional" ? extra.value : "?"}": options are --name VALUE`);
    }
    // Node's "Option '--prompt <value>' argument missing", in this CLI's words.
    // And its "Option '--prompt' argument is ambiguous" for a value that looks like another option.
    const missing = /^Option '--([\w-]+) <value>' argument missing/.exec(error.message);
    if (missing && full[missing[1]!]) throw new UsageError(`--${missing[1]} needs a value: --${missing[1]} ${placeholder(full[missing[1]!]!)}`);
    const ambiguous = /^Option '--([\w-]+)' argument is ambiguous/.exec(error.message);
    if (ambiguous && full[ambiguous[1]!]) {
      const name = ambiguous[1]!, value = placeholder(full[name]!);
      throw new UsageError(`--${name} needs a value: --${name} ${value} (a value that starts with "-" is written --${name}=-${value})`);
    }
    if (error.code?.startsWith("ERR_PARSE_ARGS")) throw new UsageError(error.message.split("\n")[0]!);
    throw e;
  }
  const values = new Map<string, string>(), flags = new Set<string>(), numbers = new Map<string, number>();
  for (const [name, v] of Object.entries(parsed.values)) {
    if (typeof v === "string") values.set(name, v);
    else if (v === true) flags.add(name);
  }
  if (flags.has("help")) return { values, flags, numbers, help: true };
  let fromPositional = false;
  if (options.positional !== undefined && parsed.positionals.length > 0) {
    const name = options.positional;
    if (parsed.positionals.length > 1) problems.push(`expected one ${name} argument, got ${parsed.positionals.length}: quote a ${name} with spaces`);
    else if (values.has(name)) problems.push(`give the ${name} either as an argument or as --${name}, not both`);
    else {
      values.set(name, parsed.positionals[0]!);
      fromPositional = true;
    }
  }
  const positionalProblem = parsed.positionals.length > 0 && !fromPositional; // said above
  for (const [name, o] of Object.entries(full)) {
    const raw = values.get(name);
    if (raw === undefined) {
      if (o.required) problems.push(`--${name} is required (${o.help})`);
      continue;
    }
    if (o.number) {
      const v = checkNumber(name, raw, o.number);
      if (typeof v === "string") problems.push(v);
      else numbers.set(name, v);
    }
    if (o.choices && !o.choices.includes(raw)) problems.push(`--${name} must be ${o.choices.join(", ").replace(/, ([^,]*)$/, " or $1")}, got ${raw}`);
  }
  // The positional form is named too ("PROMPT" as the argument, or --prompt TEXT).
  const groupNames = (group: readonly string[]) => {
    const names = group.flatMap((n) => [...(n === options.positional ? [`"${n.toUpperCase()}" (the argument)`] : []), `--${n}${full[n]?.kind === "value" ? ` ${placeholder(full[n]!)}` : ""}`]);
    return names.length > 1 ? `${names.slice(0, -1).join(", ")} or ${names.at(-1)}` : names[0]!;
  };
  for (const group of options.exactlyOne ?? []) {
    if (positionalProblem && group.includes(options.positional!)) continue; // said above
    const given = group.filter((name) => values.has(name) || flags.has(name));
    const typed = (n: string) => (n === options.positional && fromPositional ? `"${n.toUpperCase()}"` : `--${n}`);
    if (given.length !== 1) problems.push(`give exactly one of ${groupNames(group)}${given.length ? ` (got ${given.map(typed).join(" and ")})` : ""}`);
  }
  for (const group of options.atLeastOne ?? []) {
    if (!group.some((name) => values.has(name) || flags.has(name))) problems.push(`give one of ${groupNames(group)}`);
  }
  if (problems.length) throw new UsageError(problems.join("\n"));
  return { values, flags, numbers, help: false };
}

export function usage(command: string, spec: CommandSpec, positional?: string): string {
  const full: CommandSpec = { ...spec, help: spec.help ?? HELP };
  const lines = Object.entries(full).map(([name, o]) => {
    const value = o.kind === "value" ? ` ${placeholder(o)}` : "";
    const detail = [o.required ? "required" : null, o.number ? describeRange(o.number) : null, o.choices ? o.choices.join(" | ") : null].filter(Boolean).join("; ");
    // Two spaces at least between a long flag and its help.
    return `  ${name === "help" ? "-h, " : ""}--${name}${value}`.padEnd(28) + "  " + o.help + (detail ? ` (${detail})` : "");
  });
  return [`usage: olmo ${command} ${positional ? `[${positional.toUpperCase()}] ` : ""}[options]`, ...lines].join("\n");
}

/** Comma-separated token ids ("1552,310,247"), each a non-negative decimal integer (not 1e3, 0x1F or +13). */
export function parseIdList(flag: string, raw: string): number[] {
  return raw.split(",").map((s, i) => {
    const v = Number(s.trim());
    if (!/^\d+$/.test(s.trim()) || !Number.isSafeInteger(v)) throw new UsageError(`${flag} item ${i} ("${s}") is not a token id (a decimal integer >= 0)`);
    return v;
  });
}

/** The number given for --name, or undefined when absent; for options declared without a `number` range. */
export function numberOption(command: string, values: Map<string, string>, name: string): number | undefined {
  const raw = values.get(name);
  if (raw === undefined) return undefined;
  const v = checkNumber(name, raw, {});
  if (typeof v === "string") throw new UsageError(`olmo ${command}: ${v}`);
  return v;
}
