// Expected ids for the parity corpus from independent implementations:
//   @huggingface/tokenizers 0.2.0 (the JavaScript port of Hugging Face
//   tokenizers) for every tokenizer.json, and for GPT-2 additionally OpenAI's
//   original encoder (gpt-3-encoder 1.1.4), which treats special-token strings
//   as text: libwm's WM_ENC_SPECIAL_AS_TEXT.
// Offline after `npm install @huggingface/tokenizers@0.2.0 gpt-3-encoder@1.1.4`:
//   node tests/tokenizer/make_expected.mjs FIXTURES_DIR > tests/tokenizer/expected.jsonl
import fs from "fs";
import { createRequire } from "module";
import { Tokenizer } from "@huggingface/tokenizers";

const require = createRequire(import.meta.url);
const gpt3 = require("gpt-3-encoder");
const dir = process.argv[2];
const corpus = JSON.parse(fs.readFileSync(new URL("./corpus.json", import.meta.url), "utf8"));
for (const name of ["gpt2", "llama3", "qwen3", "deepseek_v3", "gpt4o", "qwen3-nfkc", "llama3-nfd", "gpt2-digits"]) {
  const tok = new Tokenizer(JSON.parse(fs.readFileSync(`${dir}/${name}/tokenizer.json`, "utf8")), {});
  corpus.forEach((text, i) => {
    const ids = tok.encode(text, { add_special_tokens: false }).ids;
    console.log(JSON.stringify({ tokenizer: name, text: i, special_as_text: false, oracle: "@huggingface/tokenizers@0.2.0", ids }));
  });
}
corpus.forEach((text, i) => {
  console.log(JSON.stringify({ tokenizer: "gpt2", text: i, special_as_text: true, oracle: "gpt-3-encoder@1.1.4", ids: gpt3.encode(text) }));
});
