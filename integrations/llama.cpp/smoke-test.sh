#!/usr/bin/env bash
# The watermarking llama-server end to end, on a tiny random-weight model
# with GPT-2's tokenizer (tiny_model.py): two accounts' API keys, an
# unmapped key, streaming and not, completions and chat; every answer must
# be detected, the unmapped key refused, and the same server without
# --wm-key must produce text that is not flagged.  Prints cmocka-style lines.
#
#   integrations/llama.cpp/smoke-test.sh LIBWM_BUILD_DIR FIXTURES_DIR
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bld=$(cd "$1" && pwd) fix=$2
here=$root/integrations/llama.cpp
server=$("$here/build-server.sh" "$bld") || { echo "[  FAILED  ] 1 test(s): llama-server build"; exit 1; }
wm=$bld/libwm/wm
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
py=/usr/bin/python3
pass=0 fail=0
ok() { echo "[       OK ] $1"; pass=$((pass + 1)); }
bad() { echo "[  FAILED  ] $1"; fail=$((fail + 1)); }

"$py" "$here/tiny_model.py" "$root/.cache/llama-server/src/gguf-py" "$fix/llama/models/ggml-vocab-gpt-2.gguf" \
    "$tmp/tiny.gguf" 2>/dev/null || { bad "tiny model"; exit 1; }
"$wm" keygen -o "$tmp/k.wmkey" 2>/dev/null
printf '# API key, account id\nkey-alice 1001\nkey-bob 1002\n' > "$tmp/accounts.txt"
port=$((20000 + RANDOM % 20000))

start() { # start ARGS...: the server on $port, waits until it answers
    "$server" -m "$tmp/tiny.gguf" --port "$port" -c 1024 -np 2 "$@" > "$tmp/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf "localhost:$port/health" >/dev/null && return 0; sleep 0.2; done
    return 1
}
stop() { kill "$pid" && wait "$pid" 2>/dev/null; local rc=$?; pid=; return $((rc == 143 || rc == 0 ? 0 : 1)); }
ids() { # ids KEY N: N native completions' generated token ids, one line each
    for _ in $(seq "$2"); do
        curl -s ${1:+-H "Authorization: Bearer $1"} "localhost:$port/completion" \
            -d '{"prompt":"In the beginning","n_predict":120,"temperature":1.0,"top_k":40,"top_p":1.0,"min_p":0,"return_tokens":true}' |
            "$py" -c 'import json,sys; print(" ".join(map(str, json.load(sys.stdin)["tokens"])))'
    done
}
detect() { "$wm" detect --key "$tmp/k.wmkey" --ids --vocab 50257 --json "$@"; }

if start --wm-key "$tmp/k.wmkey" --wm-accounts "$tmp/accounts.txt"; then ok "server starts with --wm-key and --wm-accounts"; else bad "server start"; cat "$tmp/server.log"; exit 1; fi
grep -q "libwm: watermarking every completion with key" "$tmp/server.log" && ok "server names the key" || bad "server log"
ids key-alice 3 > "$tmp/alice.ids"; ids key-bob 3 > "$tmp/bob.ids"
n=$(detect "$tmp/alice.ids" "$tmp/bob.ids" | "$py" -c 'import json,sys; r=[json.loads(l) for l in sys.stdin]; print(sum(x["watermarked"] and x["log10_p"] < -6 for x in r), len(r))')
[ "$n" = "6 6" ] && ok "both accounts' answers watermarked and detected (p < 1e-6 each)" || bad "detection: $n"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer key-carol" "localhost:$port/completion" -d '{"prompt":"x","n_predict":4}')
[ "$code" = 401 ] && ok "an unmapped API key is refused (401)" || bad "unmapped key got HTTP $code"
# OpenAI endpoints, streaming and not: the text must come back (token ids are not returned there)
s=$(curl -s -N -H "Authorization: Bearer key-bob" "localhost:$port/v1/completions" -d '{"prompt":"And God said","max_tokens":20,"stream":true}' | grep -c '^data: ')
c=$(curl -s -H "X-Api-Key: key-alice" "localhost:$port/v1/chat/completions" -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":20}' | grep -c '"choices"')
[ "$s" -gt 2 ] && [ "$c" = 1 ] && ok "/v1/completions (stream) and /v1/chat/completions answer" || bad "OpenAI endpoints: stream $s chat $c"
stop && ok "server shuts down cleanly" || bad "server shutdown"

start || { bad "plain server start"; exit 1; }
ids "" 6 > "$tmp/plain.ids"
n=$(detect "$tmp/plain.ids" | "$py" -c 'import json,sys; r=[json.loads(l) for l in sys.stdin]; print(sum(x["log10_p"] < -3 for x in r), len(r))')
[ "$n" = "0 6" ] && ok "without --wm-key nothing is flagged" || bad "plain server: $n flagged"
stop

echo "[  PASSED  ] $pass test(s)."
[ "$fail" -gt 0 ] && echo "[  FAILED  ] $fail test(s)."
[ "$fail" -eq 0 ]
