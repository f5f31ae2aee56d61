// The host objects that olmo-js' public types mention beyond ES2022: WebGPU's (GPUDevice, GPUBuffer,
// ...), WebAssembly's and the Fetch API's Response, as empty interfaces. The package's declarations
// reference this file (scripts/build.mjs adds the reference), so a program using olmo-js type-checks
// with `strict` and `skipLibCheck: false` without @webgpu/types and without the DOM library (a Node
// program has neither). Where those declarations are present, these merge with them and change
// nothing. Interfaces only: a type alias or a `declare var` here would clash with them instead of
// merging. The build fails when the declarations name a WebGPU type missing here;
// test/package.test.ts compiles a consumer.

interface GPU {}
interface GPUDevice {}
interface GPUBuffer {}

declare namespace WebAssembly {
  interface Module {}
  interface Memory {}
}

interface Response {}
