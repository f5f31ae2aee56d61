// Chat prompts as transformers' `tokenizer.apply_chat_template(messages, add_generation_prompt=True)`
// renders them: the model folder's tokenizer_config.json holds a Jinja template (`chat_template`) and
// the special tokens it names (`bos_token`, `eos_token`, ...). @huggingface/jinja is the Jinja subset
// transformers.js uses for the same templates (with transformers' trim_blocks / lstrip_blocks and its
// `raise_exception`), so a template renders here as it does in Python.

import { Template } from "@huggingface/jinja";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** The special tokens tokenizer_config.json names, passed to the template as transformers passes them. */
const SPECIAL_TOKEN_FIELDS = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"] as const;

export class ChatTemplate {
  private constructor(
    private readonly template: Template,
    /** Template variables: the special tokens that are set (a token left null is not passed, as in transformers). */
    readonly specialTokens: Readonly<Record<string, string>>,
    /** Where the template came from, for errors while it renders. */
    private readonly file = "the chat template's tokenizer_config.json",
  ) {}

  /** The end-of-turn token the template writes after an assistant message (tokenizer_config.json's eos_token), if any. */
  get eosToken(): string | undefined {
    return this.specialTokens.eos_token;
  }

  /**
   * The chat template of a model folder from its tokenizer_config.json text (null when the folder has
   * none). `folder` names the folder in errors. Throws when there is no template to render.
   */
  static fromTokenizerConfig(text: string | null, folder: string): ChatTemplate {
    const file = `${folder}/tokenizer_config.json`;
    const noTemplate = (why: string) =>
      new Error(`${folder} has no chat_template (${why}); chat needs an instruct/chat model's tokenizer_config.json (base models have none: use generate with a plain prompt)`);
    if (text === null) throw noTemplate("no tokenizer_config.json");
    let config: unknown;
    try {
      config = JSON.parse(text);
    } catch (e) {
      throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof config !== "object" || config === null || Array.isArray(config)) throw new Error(`${file}: expected a JSON object`);
    const fields = config as Record<string, unknown>;
    const raw = fields.chat_template;
    if (raw === undefined || raw === null) throw noTemplate(`tokenizer_config.json has no "chat_template"`);
    let source: unknown = raw;
    // Newer files may hold several named templates ([{ name, template }]); chat uses the one named "default".
    if (Array.isArray(raw)) {
      const named = raw.find((t): t is { template: unknown } => typeof t === "object" && t !== null && (t as { name?: unknown }).name === "default");
      if (!named) throw noTemplate(`tokenizer_config.json's "chat_template" list has no template named "default"`);
      source = named.template;
    }
    if (typeof source !== "string" || source === "") throw new Error(`${file}: "chat_template" must be a non-empty string (or a list of { name, template }), got ${JSON.stringify(source)?.slice(0, 80)}`);
    const specialTokens: Record<string, string> = {};
    for (const key of SPECIAL_TOKEN_FIELDS) {
      const value = fields[key];
      if (value === undefined || value === null) continue;
      // A string, or an AddedToken as transformers serialises it: { "content": "<|endoftext|>", ... }.
      const content = typeof value === "object" ? (value as { content?: unknown }).content : value;
      if (typeof content !== "string") throw new Error(`${file}: "${key}" must be a string or an object with a string "content", got ${JSON.stringify(value)}`);
      specialTokens[key] = content;
    }
    let template: Template;
    try {
      template = new Template(source);
    } catch (e) {
      throw new Error(`${file}: chat_template cannot be parsed: ${(e as Error).message}`);
    }
    return new ChatTemplate(template, specialTokens, file);
  }

  /** The prompt for `messages`, ending with the assistant's turn opened (addGenerationPrompt, default true). */
  render(messages: readonly ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    checkMessages(messages);
    let prompt: string;
    try {
      prompt = this.template.render({
        ...this.specialTokens,
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: options.addGenerationPrompt ?? true,
      });
    } catch (e) {
      // Its raise_exception (roles that must alternate, say) or a mistake in the template itself.
      throw new Error(`${this.file}: chat_template failed to render: ${(e as Error).message}`);
    }
    if (prompt === "") throw new Error(`${this.file}: chat_template rendered an empty prompt for these ${messages.length} message(s)`);
    return prompt;
  }
}

function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages) || messages.length === 0) throw new Error("chat: messages must be a non-empty array of { role, content }");
  messages.forEach((m, i) => {
    if (typeof m !== "object" || m === null || !["system", "user", "assistant"].includes(m.role)) {
      throw new Error(`chat: messages[${i}].role must be "system", "user" or "assistant", got ${JSON.stringify((m as { role?: unknown } | null)?.role)}`);
    }
    if (typeof m.content !== "string") throw new Error(`chat: messages[${i}].content must be a string`);
  });
}
