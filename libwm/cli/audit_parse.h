/* wm audit: an OpenAI-compatible response body, parsed (audit_parse.c).
 * Kept apart so that fuzz/fuzz_audit_response.c can drive it.
 *
 * Formats read (non-streaming):
 *  - /v1/completions: choices[0].text; log-probabilities either as
 *    choices[0].logprobs.content[] (llama.cpp server: {token, bytes,
 *    logprob, top_logprobs: [{token, bytes, logprob}]}) or the legacy
 *    OpenAI/vLLM layout choices[0].logprobs.{tokens[], top_logprobs[] (an
 *    object token -> logprob per position)};
 *  - /v1/chat/completions: choices[0].message.content and
 *    choices[0].logprobs.content[] as above;
 *  - vLLM's prompt log-probabilities (completions with prompt_logprobs and
 *    return_token_ids): choices[0].prompt_logprobs, a list with null first,
 *    then per prompt position an object token id -> {logprob, rank,
 *    decoded_token}, holding the top-k AND the prompt's own token whatever
 *    its rank; and choices[0].prompt_token_ids.  As defined in vLLM's
 *    vllm/entrypoints/openai/completion/serving.py and vllm/logprobs.py at
 *    commit cc139d8ea6ff4db984778a3e77e95e1d1c7f1362.
 *  - usage.{prompt_tokens, completion_tokens} when present.
 * Token strings are taken from "bytes" (exact bytes) when given, else from
 * "token" / "decoded_token". */
#ifndef WM_CLI_AUDIT_PARSE_H
#define WM_CLI_AUDIT_PARSE_H

#include <stddef.h>

enum { AP_COMPLETIONS, AP_CHAT };
enum { AP_TEXT, AP_LOGPROBS, AP_PROMPT };

typedef struct ap_cand {
    char *s;
    size_t n;
    double logprob;
} ap_cand;

typedef struct ap_tok {
    char *s;          /* the token at this position (NULL: unknown, vLLM's first prompt position) */
    size_t n;
    ap_cand *top;     /* its top-k candidates: AP_LOGPROBS the k most likely given; AP_PROMPT
                         those of rank <= k only (never the prompt token for its own sake) */
    size_t n_top;
} ap_tok;

typedef struct ap_resp {
    char *text;       /* the generated text (AP_TEXT, AP_LOGPROBS) */
    size_t text_len;
    ap_tok *toks;     /* generated tokens (AP_LOGPROBS) or prompt positions (AP_PROMPT) */
    size_t n_toks;
    long long prompt_tokens, completion_tokens; /* usage; -1 when absent */
    int withheld;     /* AP_LOGPROBS: logprobs null with a text holding U+FFFD: llama.cpp
                         withholds the probabilities of a token that is an incomplete UTF-8
                         sequence (n_toks is then 0); any other null logprobs is an error */
} ap_resp;

/* Parse body[0..len) for `api` and `what`; k: the top-k asked for (>= 1 for
 * AP_LOGPROBS and AP_PROMPT).  0, or -1 with the reason (JSON path or
 * column) in msg; on failure *r holds nothing to free. */
int ap_parse(const char *body, size_t len, int api, int what, size_t k, ap_resp *r, char *msg, size_t mlen);
void ap_free(ap_resp *r);

/* --mode auto: what one probe response (a request asking for prompt_logprobs and
 * top-k log-probabilities at once) offers: AP_PROMPT (prompt log-probabilities
 * with candidates), else AP_LOGPROBS (top-k of the generated tokens), else
 * AP_TEXT (an answer only), with *why saying which; -1 with the reason in msg
 * when the body is not even an answer. */
int ap_probe(const char *body, size_t len, int api, size_t k, const char **why, char *msg, size_t mlen);

#endif
