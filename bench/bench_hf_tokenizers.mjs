// The reference side of the tokenizer speed comparison: Hugging Face
// tokenizers itself (npm tokenizers@0.23.2, its official Node binding over
// the Rust library; fetched by scripts/fetch-fixtures.sh) on the same texts
// as wm_bench's "tokenize" bench, cut the same way (documents of about
// 4 KB ending at a newline), one document at a time (encode awaited in a
// loop: one thread), addSpecialTokens false.  JSON lines in wm_bench's
// format, with "impl".
//   WM_FIXTURES=.cache/fixtures WM_BENCH_TEXTS=.cache/bench \
//     node bench/bench_hf_tokenizers.mjs [REPEATS] [TOKENIZER...]
import fs from "fs";
import path from "path";
import { createRequire } from "module";

process.env.RAYON_NUM_THREADS = "1";
process.env.TOKENIZERS_PARALLELISM = "false";
const fixtures = path.resolve(process.env.WM_FIXTURES || ".cache/fixtures");
const texts = path.resolve(process.env.WM_BENCH_TEXTS || ".cache/bench");
const require = createRequire(`${fixtures}/node/`);
const { Tokenizer } = require("tokenizers");
const version = JSON.parse(fs.readFileSync(`${fixtures}/node/node_modules/tokenizers/package.json`, "utf8")).version;
const repeats = Number(process.argv[2] || 5);
const names = process.argv.length > 3 ? process.argv.slice(3) : ["llama2", "gemma3", "gemini"];

function docs(buf) { // wm_bench's run_encode cuts, on bytes
  const out = [];
  let off = 0;
  while (off < buf.length) {
    let end = Math.min(off + 4096, buf.length);
    while (end < buf.length && buf[end - 1] !== 0x0a) end++;
    out.push(buf.subarray(off, end).toString("utf8"));
    off = end;
  }
  return out;
}

for (const name of names) {
  const t0 = process.hrtime.bigint();
  const tok = Tokenizer.fromFile(`${fixtures}/${name}/tokenizer.json`);
  const load_s = Number(process.hrtime.bigint() - t0) / 1e9;
  for (const kind of ["prose", "code", "cjk"]) {
    const buf = fs.readFileSync(`${texts}/${kind}.txt`);
    const parts = docs(buf);
    let tokens = 0;
    for (const d of parts) tokens += (await tok.encode(d, null, { addSpecialTokens: false })).getIds().length;
    for (const mode of ["encode", "encodeBatch"]) {
      const speeds = [];
      for (let r = 0; r < repeats; r++) {
        const s = process.hrtime.bigint();
        if (mode === "encode") for (const d of parts) await tok.encode(d, null, { addSpecialTokens: false });
        else await tok.encodeBatch(parts, { addSpecialTokens: false }); // RAYON_NUM_THREADS=1: one thread
        speeds.push(buf.length / (Number(process.hrtime.bigint() - s) / 1e9) / 1e6);
      }
      speeds.sort((a, b) => a - b);
      const f = (x) => Math.round(x * 100) / 100;
      console.log(JSON.stringify({ bench: "tokenize", impl: `hf-tokenizers@${version}`, mode, tokenizer: name,
        text: kind, bytes: buf.length, docs: parts.length, tokens_in_docs: tokens, load_s: f(load_s),
        mb_per_s: { median: f(speeds[speeds.length >> 1]), min: f(speeds[0]), max: f(speeds[speeds.length - 1]) } }));
    }
  }
}
