// A small, strict argument parser for the `olmo` commands: --name value and --flag, with unknown or
// missing options reported by name.

export interface OptionSpec {
  /** Takes a value (`--name VALUE`) or is a flag (`--name`). */
  kind: "value" | "flag";
  help: string;
}

export type ParsedArgs = { values: Map<string, string>; flags: Set<string> };

export class UsageError extends Error {}

export function parseArgs(command: string, args: readonly string[], spec: Record<string, OptionSpec>): ParsedArgs {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const name = arg.startsWith("--") ? arg.slice(2) : null;
    const option = name === null ? undefined : spec[name];
    if (name === null || !option) throw new UsageError(`olmo ${command}: unknown argument "${arg}"\n\n${usage(command, spec)}`);
    if (option.kind === "flag") {
      flags.add(name);
      continue;
    }
    const value = args[++i];
    if (value === undefined) throw new UsageError(`olmo ${command}: --${name} needs a value (${option.help})`);
    values.set(name, value);
  }
  return { values, flags };
}

export function usage(command: string, spec: Record<string, OptionSpec>): string {
  const lines = Object.entries(spec).map(([name, o]) => `  --${name}${o.kind === "value" ? " VALUE" : ""}`.padEnd(28) + o.help);
  return [`usage: olmo ${command} [options]`, ...lines].join("\n");
}

/** Comma-separated token ids ("1552,310,247"), each a non-negative integer. */
export function parseIdList(flag: string, raw: string): number[] {
  return raw.split(",").map((s, i) => {
    const v = Number(s.trim());
    if (s.trim() === "" || !Number.isInteger(v) || v < 0) throw new UsageError(`${flag} item ${i} ("${s}") is not a token id`);
    return v;
  });
}

/** The number given for --name, or undefined when the flag is absent; anything not a finite number is a usage error. */
export function numberOption(command: string, values: Map<string, string>, name: string): number | undefined {
  const raw = values.get(name);
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(v)) throw new UsageError(`olmo ${command}: --${name} must be a number, got ${raw}`);
  return v;
}
