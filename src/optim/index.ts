export { AdamW, clipGradientNorm, gradientNorm, type AdamWOptions, type Parameter } from "./adamw.js";
export { learningRate, type ScheduleName, type ScheduleOptions } from "./schedule.js";
