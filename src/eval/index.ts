// Evaluation: perplexity, and the model card's multiple-choice tasks scored as OLMo scores them.
export { MULTIPLE_CHOICE_TASKS, multipleChoiceTask, EvalDataError, RowReader, pyStrip, pyCapitalize, pyLen, type MetricName, type MultipleChoiceTask, type TaskItem } from "./tasks.js";
export {
  scoreMultipleChoice, scoreContinuations, scorePacked, prepareItem, taskMetrics,
  type ChoiceScore, type ItemScore, type TaskScores, type ScoreOptions, type ContinuationRequest, type PreparedItem,
} from "./score.js";
export { perplexity, perplexityWindows, type PerplexityOptions, type PerplexityResult, type Window } from "./perplexity.js";
export { parseJsonRows, type ParsedRows } from "./rows.js";
