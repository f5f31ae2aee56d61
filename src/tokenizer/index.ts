export { Tokenizer, StreamDecoder, OLMO_EOS_TOKEN_ID, type TokenizerOptions, type EncodeOptions, type DecodeOptions, type TokenizedWord, type MergeStep } from "./tokenizer.js";
export { parseTokenizerJson, TokenizerConfigError, type TokenizerSpec, type AddedToken } from "./config.js";
