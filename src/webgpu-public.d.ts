// The WebGPU objects that olmo-js' public types mention, as empty interfaces. The package's declarations
// reference this file (scripts/build.mjs adds the reference), so a program using olmo-js type-checks
// without @webgpu/types; where @webgpu/types (or a DOM library with WebGPU) is present, these merge
// with its full declarations and change nothing. Declared as interfaces only: a type alias or a
// `declare var` here would clash with those declarations instead of merging. The build fails when the
// declarations name a WebGPU type missing here.

interface GPU {}
interface GPUDevice {}
interface GPUBuffer {}
