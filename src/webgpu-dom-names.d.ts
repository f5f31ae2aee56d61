// @webgpu/types (the WebGPU API's types, used by src/backends/webgpu) mentions these DOM names for the
// parts of WebGPU that touch canvases, images, video and events. The core uses none of those parts, so
// they are declared here as opaque names instead of pulling in the whole DOM library: the type checker
// still rejects any real DOM use in the core.

type BufferSource = ArrayBufferView | ArrayBuffer;
type PredefinedColorSpace = "srgb" | "display-p3";
interface EventInit {}
interface EventListenerOptions {}
interface AddEventListenerOptions {}
type EventListenerOrEventListenerObject = unknown;
interface Event {}
interface EventTarget {}
interface DOMException extends Error {}
interface ImageBitmap {}
interface ImageData {}
interface HTMLImageElement {}
interface HTMLVideoElement {}
interface OffscreenCanvas {}
interface VideoFrame {}
