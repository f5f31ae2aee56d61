export { TokenDataset, DataError, type IdDType } from "./data.js";
export { chatExample, prepareTrainingData, type ChatMessage } from "./prepare.js";
export {
  Trainer, olmoLoss, trainableParameters, trainingBytes, loraTrainingBytes, NaNLossError, LossSpikeError, TrainingStoppedError, type TrainOptions, type StepMetrics,
} from "./trainer.js";
export { lossCurveSvg, niceTicks } from "./plot.js";
