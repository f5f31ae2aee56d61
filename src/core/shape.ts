// Row-major shape arithmetic shared by the ops and the backends.

/** Elements of a tensor of this shape (1 for a scalar's empty shape). */
export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Element strides of a contiguous row-major array of this shape: the last axis has stride 1. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    strides[axis] = stride;
    stride *= shape[axis]!;
  }
  return strides;
}
