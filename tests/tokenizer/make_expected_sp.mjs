// Expected ids and decodings for the SentencePiece-style tokenizers (Llama 2,
// Gemma 3, Gemini, and the variants fetch-fixtures.sh makes of them) from
// Hugging Face tokenizers itself: the official Node binding, npm
// tokenizers@0.23.2 (the Rust library, prebuilt), fetched with the fixtures
// by scripts/fetch-fixtures.sh.  Every document of corpus.json and then of
// corpus_sp.json (numbered on after corpus.json's; a hand-written list of
// the cases the SentencePiece family adds), encoded with addSpecialTokens
// false, decoded with skipSpecialTokens false.
//   node tests/tokenizer/make_expected_sp.mjs FIXTURES_DIR > tests/tokenizer/expected_sp.jsonl
// With --check EXPECTED_JSONL (the suite's tokenizer_sp_live test): the
// live binding's output must equal the committed file line for line; a
// missing binding or fixture is a failure (scripts/fetch-fixtures.sh, which
// the suite runs first, installs both).
import fs from "fs";
import path from "path";
import { createRequire } from "module";

const dir = path.resolve(process.argv[2]);
const check = process.argv[3] === "--check" ? process.argv[4] : null;
const require = createRequire(`${dir}/node/`);
let Tokenizer;
try {
  ({ Tokenizer } = require("tokenizers"));
} catch (e) {
  console.error(`tokenizers binding not found under ${dir}/node (run scripts/fetch-fixtures.sh): ${e.message}`);
  process.exit(1);
}
const lines = [];
const emit = check ? (l) => lines.push(l) : (l) => console.log(l);
const version = JSON.parse(fs.readFileSync(`${dir}/node/node_modules/tokenizers/package.json`, "utf8")).version;
const read = (f) => JSON.parse(fs.readFileSync(new URL(f, import.meta.url), "utf8"));
const corpus = read("./corpus.json").concat(read("./corpus_sp.json"));
for (const name of ["llama2", "gemma3", "gemini", "llama2-ms-first", "llama2-ms-split", "llama2-removed", "gemini-regex"]) {
  if (check && !fs.existsSync(`${dir}/${name}/tokenizer.json`)) {
    console.error(`${dir}/${name}/tokenizer.json missing (run scripts/fetch-fixtures.sh)`);
    process.exit(1);
  }
  const tok = Tokenizer.fromFile(`${dir}/${name}/tokenizer.json`);
  for (let i = 0; i < corpus.length; i++) {
    const enc = await tok.encode(corpus[i], null, { addSpecialTokens: false });
    const ids = enc.getIds();
    const decoded = await tok.decode(ids, false);
    emit(JSON.stringify({ tokenizer: name, text: i, oracle: `tokenizers@${version}`, ids, decoded }));
  }
}
if (check) {
  const want = fs.readFileSync(check, "utf8").split("\n").filter((l) => l);
  for (let i = 0; i < Math.max(want.length, lines.length); i++) {
    if (want[i] !== lines[i]) {
      console.error(`${check}:${i + 1}: differs from the live reference\n  committed: ${want[i]}\n  live:      ${lines[i]}`);
      process.exit(1);
    }
  }
  console.log(`live reference tokenizers@${version}: ${lines.length} lines equal to ${check}`);
}
