// The few web-standard globals the core uses. Every host olmo-js targets (Node 20+, browsers, Deno,
// Bun, edge workers) has them. Declared here instead of pulling in the DOM library, so the type checker
// rejects anything host-specific (Node's or the browser's) in the core.

declare class TextEncoder {
  encode(input?: string): Uint8Array;
}

declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean });
  decode(input?: ArrayBufferView | ArrayBuffer, options?: { stream?: boolean }): string;
}

declare const performance: { now(): number };

// Blob URLs, for the WASM backend's Web Worker threads (Worker itself is in wasm-globals.d.ts).
declare class Blob {
  constructor(parts: string[], options?: { type?: string });
}
declare const URL: { new (url: string, base?: string): { readonly pathname: string; readonly href: string }; createObjectURL(blob: Blob): string };

// The Fetch API's Response, which src/api/http.ts returns (it reaches the constructor through globalThis).
interface Response {}
