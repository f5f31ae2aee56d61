// The system programs that tests and benchmarks drive and npm cannot install (Chromium, unzip): where
// they are, and how headless Chromium is started (Debian's `chromium`, driven by playwright-core,
// whose own browser downloads we do not use). helpers.ts turns a missing one into skipped tests.

import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import type { Browser, BrowserContext } from "playwright-core";

/** The first executable `program` in the folders of the PATH, or null. */
export function onPath(program: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(delimiter).filter((d) => d)) {
    try {
      accessSync(join(dir, program), constants.X_OK);
      return join(dir, program);
    } catch {
      // not in this folder
    }
  }
  return null;
}

/** Chromium for headless runs: $CHROMIUM_PATH, else `chromium` on the PATH (Debian's package), else null. */
export function findChromium(): string | null {
  const path = process.env.CHROMIUM_PATH;
  if (!path) return onPath("chromium");
  try {
    accessSync(path, constants.X_OK);
    return path;
  } catch {
    throw new Error(`CHROMIUM_PATH=${path} is not an executable file`);
  }
}

/** How to get Chromium where `findChromium` finds none. */
export const CHROMIUM_INSTALL = "apt-get install chromium (Debian's package; or set CHROMIUM_PATH)";

// No sandbox (Chromium will not start its sandbox as root, and CI runs as root), no background
// network (there is none here). WebGPU on SwiftShader (Chromium's own CPU Vulkan): the only adapter on
// a machine without a GPU.
const CHROMIUM_ARGS = [
  "--headless=new", "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
  "--disable-quic", "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader",
];

/** Start headless Chromium at `executablePath`, with `extraArgs` after the common flags. */
export async function launchChromium(executablePath: string, extraArgs: string[] = []): Promise<Browser> {
  // Imported here, not at the top: every test imports this file through helpers.ts, few start Chromium.
  const { chromium } = await import("playwright-core");
  return chromium.launch({ executablePath, args: [...CHROMIUM_ARGS, ...extraArgs] });
}

/**
 * Chromium with a profile folder of its own (a persistent context): its storage has the quota of a
 * normal profile, where a plain launch's pages get an incognito context whose Cache API holds a few
 * hundred MB at most.
 */
export async function launchChromiumWithProfile(executablePath: string, profileDir: string): Promise<BrowserContext> {
  const { chromium } = await import("playwright-core");
  return chromium.launchPersistentContext(profileDir, { executablePath, args: CHROMIUM_ARGS });
}

