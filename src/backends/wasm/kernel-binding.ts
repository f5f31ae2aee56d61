// The shapes the generated kernel table (kernel-signatures.generated.ts) is written in. They live apart
// from boundary.ts, which checks calls against that table, so the two import in one direction only.

/** Bytes in the shared memory a kernel may use: a tensor's buffer, a workspace, a parameter block. */
export interface Region {
  readonly ptr: number;
  /** How many bytes from ptr belong to this region. */
  readonly bytes: number;
}

/** A kernel as WebAssembly exports it: positional numbers, then (tid, threads). */
export type KernelExport = (...args: number[]) => number;

/** What the host knows about one kernel (see kernel-signatures.generated.ts). */
export interface KernelBinding<Args, Pointers extends string> {
  readonly name: string;
  /** Its position in the worker pool's table. */
  readonly index: number;
  /** Parameters before (tid, threads). */
  readonly arity: number;
  /** Its buffer parameters, and those of them it accepts as absent (passed as 0). */
  readonly pointers: readonly Pointers[];
  readonly optional: readonly Pointers[];
  /** Call `f` (this kernel's export) with the arguments in the export's order; returns its result, or 0. */
  call(f: KernelExport, args: Args, tid: number, threads: number): number;
  /** Write the arguments in the export's order into the pool's argument slots. */
  write(args: Args, slots: Float64Array): void;
}
