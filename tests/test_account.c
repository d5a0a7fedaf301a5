/* The account layer and attribution (schemes/account.c, detect/attribute.c):
 * - the null law against brute-force enumeration of every codeword (small
 *   number of non-trivial positions), and Chernoff's fallback never below
 *   the exact tail;
 * - embedding with an account against a per-token reference (rows,
 *   candidates, batches, sampler), and the errors;
 * - attribution on text generated for accounts: every contributor named,
 *   no innocent one, the innocents' p-values uniform given colluding data;
 * - the base test unaffected: green rate with and without the account
 *   layer on the same synthetic model;
 * - key files carry account-delta, and keys without it keep their ids;
 * - the fused sweep equals the two-pass composition it replaced, bit for
 *   bit, every dtype, batch 1 and 64. */
#include "detect/detect_internal.h"
#include "testutil.h"

#define L WM_ACCOUNT_POSITIONS
#define Q WM_ACCOUNT_SYMBOLS

static wm_watermark *account_wm(wm__rng *r, uint32_t V, double account_delta)
{
    wm_params p = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH, .context_width = 1, .gamma = 0.25, .delta = 2.0, .account_delta = account_delta };
    return random_wm_params(r, &p, V);
}

/* Exact P(D >= x) for every x by enumerating the codewords of the
 * positions in `live` (the others read equal counts, contributing 0). */
static void brute_tail(const uint64_t h[L][Q], const size_t *live, size_t n_live, double *tail, size_t n_tail)
{
    memset(tail, 0, n_tail * sizeof *tail);
    size_t total = (size_t)1 << (2 * n_live);
    for (size_t w = 0; w < total; w++) {
        uint64_t d = 0;
        for (size_t i = 0; i < n_live; i++) {
            const uint64_t *row = h[live[i]];
            uint64_t m = row[0];
            for (size_t a = 1; a < Q; a++) m = row[a] < m ? row[a] : m;
            d += row[(w >> (2 * i)) & 3] - m;
        }
        for (uint64_t x = 0; x <= d && x < n_tail; x++) tail[x] += 1.0 / (double)total;
    }
}

/* The library's tail for a count tally. */
static double log_tail(const uint64_t h[L][Q], uint64_t x, int *exact)
{
    static double d[L][Q];
    for (size_t j = 0; j < L; j++)
        for (size_t a = 0; a < Q; a++) d[j][a] = (double)h[j][a];
    return wm__attribution_log_tail((const double(*)[Q])d, (double)x, exact);
}

static void test_null_exact(void **state)
{
    (void)state;
    wm__rng r;
    wm__rng_seed(&r, 1);
    static uint64_t h[L][Q];
    double tail[4096];
    size_t checked = 0;
    for (int trial = 0; trial < 60; trial++) {
        size_t n_live = 1 + wm__rng_next(&r) % 7, live[7];
        for (size_t j = 0; j < L; j++) /* equal counts: no information */
            for (size_t a = 0; a < Q; a++) h[j][a] = 5 + (uint64_t)j % 3;
        for (size_t i = 0; i < n_live; i++) {
            live[i] = (size_t)(wm__rng_next(&r) % L);
            for (size_t k = 0; k < i; k++)
                if (live[k] == live[i]) live[i] = (live[i] + 1) % L, k = (size_t)-1;
            for (size_t a = 0; a < Q; a++) h[live[i]][a] = wm__rng_next(&r) % (trial < 30 ? 6 : 300);
        }
        brute_tail(h, live, n_live, tail, 4096);
        for (uint64_t x = 0; x < 4096; x++) {
            int exact;
            double lt = log_tail((const uint64_t(*)[Q])h, x, &exact);
            assert_true(exact);
            if (tail[x] == 0) {
                assert_true(lt == -INFINITY);
                break;
            }
            assert_true(fabs(lt - log(tail[x])) < 1e-11 * (1 + fabs(lt)));
            checked++;
        }
    }
    printf("null law: %zu tails equal to the enumeration of every codeword\n", checked);
}

/* A tally too spread for the convolution: the bound is used, never below
 * the exact tail, and within a few nats of it. */
static void test_null_bound(void **state)
{
    (void)state;
    wm__rng r;
    wm__rng_seed(&r, 2);
    static uint64_t h[L][Q];
    double tail[64];
    for (int trial = 0; trial < 20; trial++) {
        size_t live[4] = { 3, 77, 150, 255 };
        for (size_t j = 0; j < L; j++)
            for (size_t a = 0; a < Q; a++) h[j][a] = 9;
        /* position 3 spreads by more than the exact limit (2^20); the
         * others by a little, so D's tail has many steps near the top */
        for (size_t a = 0; a < Q; a++) h[3][a] = (uint64_t)a << 20;
        for (size_t i = 1; i < 4; i++)
            for (size_t a = 0; a < Q; a++) h[live[i]][a] = wm__rng_next(&r) % 20;
        uint64_t top = 3u << 20;
        /* the exact tail of D at x = top + y is P(top pick) * tail_rest(y) */
        uint64_t rest[L][Q];
        memcpy(rest, h, sizeof rest);
        for (size_t a = 0; a < Q; a++) rest[3][a] = 9;
        brute_tail((const uint64_t(*)[Q])rest, live + 1, 3, tail, 64);
        for (uint64_t y = 0; y < 64 && tail[y] > 0; y++) {
            int exact;
            double lt = log_tail((const uint64_t(*)[Q])h, top + y, &exact), ex = log(0.25 * tail[y]);
            assert_false(exact);
            assert_true(lt >= ex - 1e-9);
            assert_true(lt <= ex + 6);
        }
    }
}

/* Reference: logit + delta [green] + account_delta [part == symbol]. */
static void reference_row(const wm_watermark *wm, uint64_t account, wm_token prev, const float *in, float *out,
                          uint32_t V)
{
    unsigned char code[WM__CODE_BYTES];
    wm__account_code(wm, account, code);
    uint64_t seed = wm__seed(wm, &prev);
    unsigned c = wm__account_symbol(code, wm__account_pos(wm, seed));
    wm_kernel_params k = WM_INIT(wm_kernel_params); /* the deltas as the watermark holds them */
    assert_int_equal(wm_kernel_params_get(wm, &k), WM_OK);
    for (uint32_t v = 0; v < V; v++) {
        bool g;
        assert_int_equal(wm_is_green(wm, &prev, 1, (wm_token)v, &g), WM_OK);
        out[v] = in[v] + (g ? k.delta : 0.0f);
        if (account) out[v] += wm__account_part(wm, seed, (wm_token)v) == c ? k.account_delta : 0.0f;
    }
}

static void test_embed(void **state)
{
    (void)state;
    const uint32_t V = 1003; /* not a multiple of 64: a partial last block */
    wm__rng r;
    wm__rng_seed(&r, 3);
    wm_watermark *wm = account_wm(&r, V, 1.5);
    float *in = malloc(4 * (V + 5) * sizeof *in), *got = malloc(4 * (V + 5) * sizeof *got),
          *ref = malloc(V * sizeof *ref);
    size_t parts[Q] = { 0 };
    for (int trial = 0; trial < 40; trial++) {
        uint64_t account = trial % 4 == 0 ? WM_ACCOUNT_NONE : wm__rng_next(&r) | 1;
        wm_token prev = (wm_token)(wm__rng_next(&r) % V);
        synth_logits(&r, in, V);
        in[V - 1] = 0.5f;
        reference_row(wm, account, prev, in, ref, V);
        memcpy(got, in, V * sizeof *got);
        assert_int_equal(wm_bias_logits(wm, account, &prev, 1, got, V), WM_OK);
        assert_memory_equal(got, ref, V * sizeof *ref);
        /* candidates in a shuffled order, padding ids included */
        wm_token ids[64];
        float cl[64];
        for (int i = 0; i < 64; i++) {
            ids[i] = (wm_token)(wm__rng_next(&r) % (V + 5));
            cl[i] = ids[i] < (wm_token)V ? in[ids[i]] : 3.0f;
        }
        assert_int_equal(wm_bias_candidates(wm, account, &prev, 1, 64, ids, sizeof *ids, cl, sizeof *cl), WM_OK);
        for (int i = 0; i < 64; i++) assert_true(cl[i] == (ids[i] < (wm_token)V ? ref[ids[i]] : 3.0f));
        if (account) {
            uint64_t seed = wm__seed(wm, &prev);
            for (uint32_t v = 0; v < V; v++) parts[wm__account_part(wm, seed, (wm_token)v)]++;
        }
    }
    /* the parts split the vocabulary in quarters */
    for (size_t a = 0; a < Q; a++) assert_true(fabs((double)parts[a] / (30.0 * V) - 0.25) < 0.01);
    /* a batch: one account per row, rows padded */
    uint64_t acc[4] = { 11, WM_ACCOUNT_NONE, 12, 11 };
    wm_token ctx[4] = { 1, 2, 3, 4 };
    const wm_token *cp[4] = { ctx, ctx + 1, ctx + 2, ctx + 3 };
    size_t nc[4] = { 1, 1, 1, 1 };
    synth_logits(&r, in, 4 * (V + 5));
    memcpy(got, in, 4 * (V + 5) * sizeof *got);
    assert_int_equal(wm_bias_logits_batch(wm, 4, acc, cp, nc, got, WM_DTYPE_F32, V, V + 5), WM_OK);
    for (int s = 0; s < 4; s++) {
        reference_row(wm, acc[s], ctx[s], in + s * (V + 5), ref, V);
        assert_memory_equal(got + s * (V + 5), ref, V * sizeof *ref);
    }
    /* a key without an account layer refuses an account, changing nothing */
    wm_watermark *plain = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, V);
    memcpy(got, in, V * sizeof *got);
    assert_int_equal(wm_bias_logits(plain, 5, ctx, 1, got, V), WM_ERR_UNSUPPORTED);
    assert_int_equal(wm_bias_logits_batch(plain, 4, acc, cp, nc, got, WM_DTYPE_F32, V, V + 5), WM_ERR_UNSUPPORTED);
    assert_int_equal(wm_bias_candidates(plain, 5, ctx, 1, 1, ctx, sizeof *ctx, got, sizeof *got), WM_ERR_UNSUPPORTED);
    assert_memory_equal(got, in, V * sizeof *got);
    wm_sampler *s = NULL;
    wm_sampler_params sp = WM_SAMPLER_PARAMS_DEFAULT;
    sp.account = 5;
    assert_int_equal(wm_sampler_new(&s, plain, &sp), WM_ERR_UNSUPPORTED);
    assert_null(s);
    sp.account = WM_ACCOUNT_NONE;
    assert_int_equal(wm_sampler_new(&s, plain, &sp), WM_OK);
    assert_int_equal(wm_sampler_reset(s, 1, 5), WM_ERR_UNSUPPORTED);
    wm_sampler_free(s);
    wm_watermark *gum = test_wm_gumbel(1, WM_SEEDING_LEFTHASH, V);
    sp.account = 5;
    assert_int_equal(wm_sampler_new(&s, gum, &sp), WM_ERR_UNSUPPORTED);
    wm_watermark_free(gum);
    wm_watermark_free(plain);
    wm_watermark_free(wm);
    free(in);
    free(got);
    free(ref);
}

/* The fused sweep (a scheme's bias_row_with with the layer's fields, what
 * embed.c runs for a row under an account) against the two-pass
 * composition it replaces (the scheme's bias_row, then the layer's):
 * random rows of every dtype (16-bit rows as random bit patterns: NaN,
 * infinities and subnormals among them), batches of 1 and 64 through
 * wm_bias_logits_batch, widths that take the fused kernel (gamma 1/4: 2-bit
 * fields like the parts) and the chunked sweep (1- and 16-bit fields), and
 * vocabularies around the kernel's 512-token groups and the 4,096-token
 * chunks. */
static void test_fused_equals_two_pass(void **state)
{
    (void)state;
    wm__rng r;
    wm__rng_seed(&r, 31);
    test_kernel_runs("bias_row2", 2, wm__bias_row2_avx512() != NULL);
    const double gammas[] = { 0.25, 0.75, 0.5, 0.1 };
    const uint32_t vocab[] = { 300, 1003, 8192, 4096 + 517, 151936 };
    const wm_dtype dts[] = { WM_DTYPE_F32, WM_DTYPE_BF16, WM_DTYPE_F16 };
    for (size_t gi = 0; gi < sizeof gammas / sizeof gammas[0]; gi++)
        for (size_t vi = 0; vi < sizeof vocab / sizeof vocab[0]; vi++) {
            uint32_t V = vocab[vi];
            size_t stride = V + 3;
            wm_params p = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH,
                            .context_width = 1, .gamma = gammas[gi], .delta = 2.0, .account_delta = 0.75 };
            wm_watermark *wm = random_wm_params(&r, &p, V);
            /* the fused path is chosen through the tables */
            assert_non_null(wm->scheme->bias_row_with);
            assert_non_null(wm->account->fields);
            for (size_t di = 0; di < 3; di++)
                for (size_t B = 1; B <= 64; B += 63) {
                    if (V == 151936 && B == 64 && gi) continue; /* keep the suite's time */
                    wm_dtype dt = dts[di];
                    size_t es = dt == WM_DTYPE_F32 ? 4 : 2, bytes = B * stride * es;
                    unsigned char *in = malloc(bytes), *got = malloc(bytes), *ref = malloc(bytes);
                    uint64_t acc[64];
                    wm_token ctx[64];
                    const wm_token *cp[64];
                    size_t nc[64];
                    if (dt == WM_DTYPE_F32) {
                        synth_logits(&r, (float *)in, (uint32_t)(B * stride));
                        float sp[] = { -0.0f, 0.0f, INFINITY, -INFINITY, NAN, 1e38f, -3e38f, 1e-40f };
                        for (size_t i = 0; i < B * stride; i += 97) ((float *)in)[i] = sp[(i / 97) % 8];
                    } else {
                        for (size_t i = 0; i < B * stride; i++) ((uint16_t *)in)[i] = (uint16_t)wm__rng_next(&r);
                    }
                    memcpy(ref, in, bytes);
                    for (size_t s = 0; s < B; s++) {
                        acc[s] = s % 5 == 4 ? WM_ACCOUNT_NONE : wm__rng_next(&r) | 1;
                        ctx[s] = (wm_token)(wm__rng_next(&r) % V);
                        cp[s] = ctx + s;
                        nc[s] = 1;
                        uint64_t seed = wm__seed(wm, ctx + s);
                        void *row = ref + s * stride * es;
                        wm->scheme->bias_row(wm, seed, row, dt);
                        if (acc[s] != WM_ACCOUNT_NONE) {
                            unsigned char code[WM__CODE_BYTES];
                            wm->account->codes(wm, acc + s, 1, code);
                            wm->account->bias_row(wm, seed, wm__account_symbol(code, wm->account->pos(wm, seed)), row,
                                                  dt);
                        }
                    }
                    memcpy(got, in, bytes);
                    assert_int_equal(wm_bias_logits_batch(wm, B, acc, cp, nc, got, dt, V, stride), WM_OK);
                    if (memcmp(got, ref, bytes))
                        fail_msg("fused != two-pass: gamma %g V %u dtype %d batch %zu", gammas[gi], V, (int)dt, B);
                    free(in);
                    free(got);
                    free(ref);
                }
            wm_watermark_free(wm);
        }
}

/* n documents of len tokens from the synthetic model, for account acc. */
static void generate(const wm_watermark *wm, wm__rng *r, uint64_t acc, wm_corpus *c, size_t n, size_t len,
                     uint32_t V)
{
    float *l = malloc(V * sizeof *l);
    wm_token *t = malloc(len * sizeof *t);
    wm_sampler *s;
    wm_sampler_params sp = WM_SAMPLER_PARAMS_DEFAULT;
    sp.seed = wm__rng_next(r);
    sp.account = acc;
    assert_int_equal(wm_sampler_new(&s, wm, &sp), WM_OK);
    for (size_t d = 0; d < n; d++) {
        t[0] = (wm_token)(wm__rng_next(r) % V);
        for (size_t i = 1; i < len; i++) {
            synth_logits(r, l, V);
            assert_int_equal(wm_sampler_sample(s, t, i, l, V, true, t + i), WM_OK);
        }
        assert_int_equal(wm_corpus_add(c, t, len, 0), WM_OK);
    }
    wm_sampler_free(s);
    free(l);
    free(t);
}

/* K accounts write a corpus together; 20,000 ids are searched. */
static void test_attribution(void **state)
{
    (void)state;
    const uint32_t V = 2000;
    const size_t n_ids = 20000;
    wm__rng r;
    wm__rng_seed(&r, 4);
    uint64_t *ids = malloc(n_ids * sizeof *ids);
    wm_account_score top[16] = { WM_INIT(wm_account_score) };
    double *p = malloc(n_ids * sizeof *p);
    const size_t ks[] = { 1, 3, 10 };
    for (size_t ki = 0; ki < 3; ki++) {
        size_t K = ks[ki];
        wm_watermark *wm = account_wm(&r, V, 1.0);
        for (size_t i = 0; i < n_ids; i++) ids[i] = wm__rng_next(&r) | 1;
        wm_corpus *c;
        assert_int_equal(wm_corpus_new(&c, wm, WM_ACCOUNTS), WM_OK);
        /* 6,000, 3 x 4,000 and 10 x 10,000 tokens: an account's evidence
         * grows with its own tokens over the root of the corpus's */
        size_t docs = K == 1 ? 30 : K == 3 ? 20 : 50;
        for (size_t k = 0; k < K; k++) generate(wm, &r, ids[k * 97], c, docs, 200, V);
        wm_attribution at = WM_INIT(wm_attribution);
        assert_int_equal(wm_corpus_attribute(c, ids, n_ids, 0.01, top, 16, &at), WM_OK);
        assert_true(at.exact && at.accounts == n_ids && at.n_top == 16);
        size_t found = 0;
        for (size_t i = 0; i < 16; i++) {
            int guilty = 0;
            for (size_t k = 0; k < K; k++) guilty |= top[i].account == ids[k * 97];
            found += guilty && top[i].named;
            assert_true(guilty || !top[i].named); /* no innocent named */
            if (i) assert_true(top[i].log10_p >= top[i - 1].log10_p);
        }
        printf("K = %zu: %zu of %zu contributors named among %zu ids; best %.1f, first innocent %.2f "
               "(log10 p family)\n", K, found, K, n_ids, top[0].log10_p_family, top[K].log10_p_family);
        assert_int_equal(found, K);
        assert_int_equal(at.named, K);
        /* every id's p, by scoring each alone: the innocents' are uniform
         * (discrete, so compared at the thresholds), given colluding data */
        size_t le01 = 0, le1 = 0, n_inn = 0;
        for (size_t i = 0; i < n_ids; i++) {
            int guilty = 0;
            for (size_t k = 0; k < K; k++) guilty |= i == k * 97;
            if (guilty) continue;
            wm_account_score one = WM_INIT(wm_account_score);
            wm_attribution a1 = WM_INIT(wm_attribution);
            assert_int_equal(wm_corpus_attribute(c, ids + i, 1, 0.01, &one, 1, &a1), WM_OK);
            p[n_inn++] = pow(10, one.log10_p);
            le01 += one.log10_p <= -2;
            le1 += one.log10_p <= -1;
            if (i > 3000) break; /* 3,000 alone is enough for the tolerance below */
        }
        /* binomial: at most 1% and 10%, plus 4 standard deviations */
        printf("  innocents alone: %zu of %zu at p <= 0.01, %zu at p <= 0.1\n", le01, n_inn, le1);
        assert_true(le01 <= 0.01 * n_inn + 4 * sqrt(0.01 * n_inn));
        assert_true(le1 <= 0.1 * n_inn + 4 * sqrt(0.1 * n_inn));
        assert_true(le1 >= 0.1 * n_inn - 4 * sqrt(0.1 * n_inn)); /* and not grossly conservative */
        wm_corpus_free(c);
        wm_watermark_free(wm);
    }
    free(ids);
    free(p);
}

/* The base test does not see the account layer: the same model and seeds,
 * with and without it, give green rates within sampling error. */
static void test_base_unchanged(void **state)
{
    (void)state;
    const uint32_t V = 2000;
    wm__rng r, r2;
    double rate[2];
    for (int with = 0; with < 2; with++) {
        wm__rng_seed(&r, 5);
        wm_watermark *wm = account_wm(&r, V, 1.0);
        wm_corpus *c;
        assert_int_equal(wm_corpus_new(&c, wm, 0), WM_OK);
        wm__rng_seed(&r2, 6);
        generate(wm, &r2, with ? 77 : WM_ACCOUNT_NONE, c, 40, 200, V);
        wm_score s = WM_INIT(wm_score);
        assert_int_equal(wm_corpus_score(c, 0.01, &s), WM_OK);
        rate[with] = s.statistic / (double)s.scored;
        wm_corpus_free(c);
        wm_watermark_free(wm);
    }
    printf("green rate without the account layer %.4f, with %.4f\n", rate[0], rate[1]);
    /* two rates over ~8,000 tuples: sd of the difference about 0.007 */
    assert_true(fabs(rate[0] - rate[1]) < 0.03);
}

/* Reading: a suspect that leans towards account u's parts at rate rho.
 * Plain and weighted readers name u, and u's statistic equals a brute
 * force over the reading rule (first occurrence of a seed in a document,
 * each (seed, prediction) once); a suspect that leans nowhere names nobody. */
static void read_corpus(const wm_watermark *wm, wm__rng *r, uint64_t u, double rho, wm_reader *plain,
                        wm_reader *weighted, double *brute_plain, double *brute_w)
{
    enum { V = 500, DOCS = 60, N = 120 };
    static unsigned char seen_tuple[V][V];
    static double wsum[V][V];
    memset(seen_tuple, 0, sizeof seen_tuple);
    memset(wsum, 0, sizeof wsum);
    unsigned char code[WM__CODE_BYTES];
    wm__account_code(wm, u, code);
    wm_token t[N], pred[N];
    float w[N];
    for (int d = 0; d < DOCS; d++) {
        random_tokens(r, t, N, V);
        unsigned char seen_seed[V] = { 0 };
        for (size_t i = 0; i < N; i++) {
            pred[i] = (wm_token)(wm__rng_next(r) % V);
            w[i] = (float)(0.25 + wm__rng_uniform(r));
            if (i == 0) continue;
            uint64_t seed = wm__seed(wm, &t[i - 1]);
            if (wm__rng_uniform(r) < rho) { /* a token of u's part */
                unsigned c = wm__account_symbol(code, wm__account_pos(wm, seed));
                while (wm__account_part(wm, seed, pred[i]) != c) pred[i] = (wm_token)(wm__rng_next(r) % V);
            }
            if (seen_seed[t[i - 1]]++) continue; /* not the seed's first occurrence */
            if (!seen_tuple[t[i - 1]][pred[i]]++) {
                unsigned c = wm__account_symbol(code, wm__account_pos(wm, seed));
                *brute_plain += wm__account_part(wm, seed, pred[i]) == c;
            }
            wsum[t[i - 1]][pred[i]] += w[i];
        }
        assert_int_equal(wm_reader_add(plain, t, N, 0, pred, NULL, 1), WM_OK);
        assert_int_equal(wm_reader_add(weighted, t, N, 0, pred, w, 1), WM_OK);
    }
    for (uint32_t s = 0; s < V; s++)
        for (uint32_t q = 0; q < V; q++)
            if (seen_tuple[s][q]) {
                wm_token st = (wm_token)s;
                uint64_t seed = wm__seed(wm, &st);
                unsigned c = wm__account_symbol(code, wm__account_pos(wm, seed));
                *brute_w += wm__account_part(wm, seed, (wm_token)q) == c ? wsum[s][q] : 0;
            }
}

static void test_reading(void **state)
{
    (void)state;
    wm__rng r;
    wm__rng_seed(&r, 8);
    const size_t n_ids = 5000;
    uint64_t *ids = malloc(n_ids * sizeof *ids);
    for (int lean = 1; lean >= 0; lean--) {
        wm_watermark *wm = account_wm(&r, 500, 1.0);
        for (size_t i = 0; i < n_ids; i++) ids[i] = wm__rng_next(&r) | 1;
        wm_reader *plain, *weighted;
        assert_int_equal(wm_reader_new(&plain, wm, WM_ACCOUNTS), WM_OK);
        assert_int_equal(wm_reader_new(&weighted, wm, WM_ACCOUNTS | WM_READ_WEIGHTED), WM_OK);
        double bp = 0, bw = 0;
        read_corpus(wm, &r, ids[1234], lean ? 0.3 : 0, plain, weighted, &bp, &bw);
        wm_account_score top[3] = { WM_INIT(wm_account_score) }, one = WM_INIT(wm_account_score);
        wm_attribution a = WM_INIT(wm_attribution), b = WM_INIT(wm_attribution), a1 = WM_INIT(wm_attribution);
        assert_int_equal(wm_reader_attribute(plain, ids, n_ids, 1e-3, top, 3, &a), WM_OK);
        assert_int_equal(wm_reader_attribute(plain, ids + 1234, 1, 1e-3, &one, 1, &a1), WM_OK);
        assert_true(one.statistic == bp && a.exact);
        printf("reading, %s: plain: named %llu, best %llu at %.1f;", lean ? "leaning to u" : "no lean",
               (unsigned long long)a.named, (unsigned long long)top[0].account, top[0].log10_p_family);
        if (lean) assert_true(a.named == 1 && top[0].account == ids[1234]);
        else assert_true(a.named == 0);
        assert_int_equal(wm_reader_attribute(weighted, ids, n_ids, 1e-3, top, 3, &b), WM_OK);
        assert_int_equal(wm_reader_attribute(weighted, ids + 1234, 1, 1e-3, &one, 1, &a1), WM_OK);
        assert_true(fabs(one.statistic - bw) < 1e-9 * bw && !b.exact);
        printf(" weighted: named %llu, best %.1f\n", (unsigned long long)b.named, top[0].log10_p_family);
        if (lean) assert_true(b.named == 1 && top[0].account == ids[1234]);
        else assert_true(b.named == 0);
        wm_reader_free(plain);
        wm_reader_free(weighted);
        wm_watermark_free(wm);
    }
    /* the flag needs an account layer; attribute needs the flag */
    wm_watermark *plain_wm = test_wm(0.25, 1, WM_SEEDING_LEFTHASH, 100);
    wm_reader *rd;
    assert_int_equal(wm_reader_new(&rd, plain_wm, WM_ACCOUNTS), WM_ERR_UNSUPPORTED);
    assert_int_equal(wm_reader_new(&rd, plain_wm, 0), WM_OK);
    wm_account_score t1 = WM_INIT(wm_account_score);
    wm_attribution at = WM_INIT(wm_attribution);
    assert_int_equal(wm_reader_attribute(rd, ids, 1, 1e-3, &t1, 1, &at), WM_ERR_ARG);
    wm_reader_free(rd);
    wm_watermark_free(plain_wm);
    free(ids);
}

static void test_args(void **state)
{
    (void)state;
    wm__rng r;
    wm__rng_seed(&r, 7);
    wm_watermark *wm = account_wm(&r, 100, 1.0);
    wm_corpus *c, *plain;
    wm_account_score t[2] = { WM_INIT(wm_account_score) };
    wm_attribution a = WM_INIT(wm_attribution);
    uint64_t ids[2] = { 3, 0 };
    assert_int_equal(wm_corpus_new(&c, wm, WM_ACCOUNTS), WM_OK);
    assert_int_equal(wm_corpus_new(&plain, wm, 0), WM_OK);
    assert_int_equal(wm_corpus_attribute(plain, ids, 1, 0.01, t, 1, &a), WM_ERR_ARG);
    assert_int_equal(wm_corpus_attribute(c, ids, 2, 0.01, t, 2, &a), WM_ERR_ARG); /* id 0 */
    assert_int_equal(wm_corpus_attribute(c, ids, 1, 0, t, 1, &a), WM_ERR_ARG);
    assert_int_equal(wm_corpus_attribute(c, NULL, 1, 0.01, t, 1, &a), WM_ERR_ARG);
    assert_int_equal(wm_corpus_attribute(c, ids, 1, 0.01, NULL, 1, &a), WM_ERR_ARG);
    /* an empty corpus names nobody, p = 1 */
    assert_int_equal(wm_corpus_attribute(c, ids, 1, 0.01, t, 2, &a), WM_OK);
    assert_true(a.n_top == 1 && a.named == 0 && t[0].log10_p == 0 && !t[0].named);
    assert_int_equal(wm_corpus_attribute(c, ids, 0, 0.01, t, 2, &a), WM_OK);
    assert_true(a.n_top == 0 && a.accounts == 0);
    wm_corpus_free(c);
    wm_corpus_free(plain);
    wm_watermark_free(wm);
}

/* account-delta in key files: saved, loaded, part of the id; absent when 0,
 * so the ids of keys made before it existed do not change. */
static void test_key_file(void **state)
{
    (void)state;
    const char *text0 =
        "libwm-key 2\nid 0000000000000000\nscheme kgw\nseeding lefthash\ncontext-width 1\ngamma 0.25\n"
        "delta 2\nsecret 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    wm_params p = WM_INIT(wm_params);
    assert_int_equal(wm_params_init(&p, "kgw"), WM_OK);
    unsigned char seed[32];
    for (int i = 0; i < 32; i++) seed[i] = (unsigned char)i;
    wm_key *k0, *k1, *back;
    char id0[WM_KEY_ID_SIZE], id1[WM_KEY_ID_SIZE], idb[WM_KEY_ID_SIZE];
    assert_int_equal(wm_key_from_seed(&k0, &p, seed), WM_OK);
    p.account_delta = 1.25;
    assert_int_equal(wm_key_from_seed(&k1, &p, seed), WM_OK);
    assert_int_equal(wm_key_id(k0, id0), WM_OK);
    assert_int_equal(wm_key_id(k1, id1), WM_OK);
    assert_string_not_equal(id0, id1);
    /* the file without account-delta parses to k0's id */
    char buf[512];
    snprintf(buf, sizeof buf, "%s", text0);
    memcpy(strstr(buf, "id ") + 3, id0, 16);
    wm_error err = { "" };
    assert_int_equal(wm__key_parse(&back, buf, strlen(buf), "k0", &err), WM_OK);
    wm_params q = WM_INIT(wm_params);
    assert_int_equal(wm_key_params(back, &q), WM_OK);
    assert_true(q.account_delta == 0);
    wm_key_free(back);
    /* with the line, after delta */
    char buf1[600];
    const char *d = strstr(text0, "delta 2\n") + 8;
    snprintf(buf1, sizeof buf1, "%.*saccount-delta 1.25\n%s", (int)(d - text0), text0, d);
    memcpy(strstr(buf1, "id ") + 3, id1, 16);
    assert_int_equal(wm__key_parse(&back, buf1, strlen(buf1), "k1", &err), WM_OK);
    assert_int_equal(wm_key_params(back, &q), WM_OK);
    assert_true(q.account_delta == 1.25);
    assert_int_equal(wm_key_id(back, idb), WM_OK);
    assert_string_equal(idb, id1);
    wm_key_free(back);
    /* an explicit 0 or a bad value is refused with the line named */
    char bad[600];
    snprintf(bad, sizeof bad, "%.*saccount-delta 0\n%s", (int)(d - text0), text0, d);
    assert_int_equal(wm__key_parse(&back, bad, strlen(bad), "kb", &err), WM_ERR_FORMAT);
    assert_non_null(strstr(err.message, "kb:8: account-delta"));
    wm_key_free(k0);
    wm_key_free(k1);
}

/* Candidates in the layouts engines pass them (llama.cpp: the whole
 * vocabulary in id order; after a sort: shuffled; runs with gaps and
 * padding ids, a run crossing into the padding): the same biases as each
 * candidate alone, which takes the per-block scalar path, bit for bit.
 * For every field width of the green list, without and with an account. */
typedef struct cand { wm_token id; float logit; float p; } cand; /* llama_token_data */

static void test_candidate_runs(void **state)
{
    (void)state;
    const uint32_t V = 20011, PAD = 300; /* a partial last block, ids up to V + PAD */
    const double gammas[] = { 0.5, 0.25, 0.0625, 0.00390625, 0.1 }; /* fields of 1, 2, 4, 8, 16 bits */
    wm__rng r;
    wm__rng_seed(&r, 30);
    float *in = malloc(V * sizeof *in), *ref = malloc(V * sizeof *ref);
    cand *c = malloc((V + 2 * PAD) * sizeof *c);
    for (size_t gi = 0; gi < sizeof gammas / sizeof *gammas; gi++) {
        for (int with = 0; with < 2; with++) {
            wm_params p = { .size = sizeof(wm_params), .scheme = "kgw", .seeding = WM_SEEDING_LEFTHASH,
                            .context_width = 1, .gamma = gammas[gi], .delta = 2.0, .account_delta = with ? 1.5 : 0 };
            wm_watermark *wm = random_wm_params(&r, &p, V);
            uint64_t account = with ? wm__rng_next(&r) | 1 : WM_ACCOUNT_NONE;
            wm_token prev = (wm_token)(wm__rng_next(&r) % V);
            synth_logits(&r, in, V);
            for (uint32_t v = 0; v < V; v++) { /* the reference: one candidate at a time */
                cand one = { (wm_token)v, in[v], 0 };
                assert_int_equal(wm_bias_candidates(wm, account, &prev, 1, 1, &one.id, sizeof one, &one.logit,
                                                    sizeof one), WM_OK);
                ref[v] = one.logit;
            }
            for (int layout = 0; layout < 3; layout++) {
                size_t n = 0;
                if (layout < 2) {
                    for (uint32_t v = 0; v < V; v++) c[n++].id = (wm_token)v;
                    for (size_t i = n - 1; layout == 1 && i > 0; i--) { /* Fisher-Yates */
                        size_t k = wm__rng_next(&r) % (i + 1);
                        wm_token t = c[i].id;
                        c[i].id = c[k].id;
                        c[k].id = t;
                    }
                } else {
                    while (n < V) { /* runs of 1..1,100 ids, a padding id or a jump between */
                        size_t len = 1 + wm__rng_next(&r) % 1100;
                        uint32_t t0 = (uint32_t)(wm__rng_next(&r) % V);
                        for (size_t k = 0; k < len && n < V; k++) c[n++].id = (wm_token)((t0 + k) % (V + PAD));
                        if (wm__rng_next(&r) % 2 && n < V) c[n++].id = (wm_token)(V + wm__rng_next(&r) % PAD);
                    }
                    for (uint32_t k = 0; k < 2 * PAD; k++) c[n++].id = (wm_token)(V - PAD + k); /* into the padding */
                }
                for (size_t i = 0; i < n; i++) {
                    c[i].logit = (uint32_t)c[i].id < V ? in[c[i].id] : 3.0f;
                    c[i].p = 0.25f;
                }
                assert_int_equal(wm_bias_candidates(wm, account, &prev, 1, n, &c[0].id, sizeof *c, &c[0].logit,
                                                    sizeof *c), WM_OK);
                for (size_t i = 0; i < n; i++) {
                    assert_true(c[i].logit == ((uint32_t)c[i].id < V ? ref[c[i].id] : 3.0f));
                    assert_true(c[i].p == 0.25f); /* nothing beside the logits written */
                }
            }
            wm_watermark_free(wm);
        }
    }
    free(in);
    free(ref);
    free(c);
}

int main(void)
{
    test_forced_isa();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_exact),  cmocka_unit_test(test_null_bound), cmocka_unit_test(test_embed),
        cmocka_unit_test(test_attribution), cmocka_unit_test(test_base_unchanged), cmocka_unit_test(test_reading),
        cmocka_unit_test(test_args), cmocka_unit_test(test_candidate_runs),
        cmocka_unit_test(test_key_file),    cmocka_unit_test(test_fused_equals_two_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
