/* libFuzzer target: `wm audit`'s response parser (libwm/cli/audit_parse.c).
 * The first byte picks the API (chat or completions), what is read (text,
 * generated log-probabilities, vLLM prompt log-probabilities) and k; the
 * rest is the response body.  Any bytes must be accepted or refused with a
 * message, and what is accepted must be well formed: every string as long
 * as it says, at most k candidates a position, log-probabilities <= 0.
 * ap_probe (--mode auto) on the same body: a mode and its reason, or a
 * refusal with a message. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int api = data[0] & 1 ? AP_CHAT : AP_COMPLETIONS;
    int what = ((data[0] >> 1) & 3) % 3;
    size_t k = 1 + ((data[0] >> 3) & 7);
    ap_resp r;
    char msg[512] = "";
    if (ap_parse((const char *)data + 1, size - 1, api, what, k, &r, msg, sizeof msg) == 0) {
        if (what != AP_PROMPT && !r.text) __builtin_trap();
        for (size_t i = 0; i < r.n_toks; i++) {
            const ap_tok *t = &r.toks[i];
            if (t->n_top > k || (t->s && t->s[t->n] != 0)) __builtin_trap();
            for (size_t j = 0; j < t->n_top; j++) {
                if (!t->top[j].s || t->top[j].s[t->top[j].n] != 0) __builtin_trap();
                if (!(t->top[j].logprob <= 0) || !isfinite(t->top[j].logprob)) __builtin_trap();
                if (j && t->top[j].logprob > t->top[j - 1].logprob) __builtin_trap(); /* most likely first */
            }
        }
        ap_free(&r);
    } else if (!msg[0]) {
        __builtin_trap(); /* a refusal always says why */
    }
    /* --mode auto's decision on the same body: a mode with its reason, or a refusal with a message */
    const char *why = NULL;
    msg[0] = 0;
    int m = ap_probe((const char *)data + 1, size - 1, api, k, &why, msg, sizeof msg);
    if (m < 0 ? !msg[0] : (m != AP_TEXT && m != AP_LOGPROBS && m != AP_PROMPT) || !why) __builtin_trap();
    if (m == AP_PROMPT && api == AP_CHAT) __builtin_trap(); /* chat has no prompt log-probabilities */
    return 0;
}
