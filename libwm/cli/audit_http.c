/* wm audit's HTTP client: see audit_http.h. */
#include <curl/curl.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "audit_http.h"

#define MAX_BODY (256u << 20) /* a larger response is refused */

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct slot {
    CURL *h;
    size_t job;              /* index into jobs */
    int attempt;
    char *buf;
    size_t len, cap;
    int too_big;
    double retry_after, t0;
    char errbuf[CURL_ERROR_SIZE];
} slot;

typedef struct pending {
    size_t job;
    int attempt;             /* attempts made so far */
    double not_before;
} pending;

static size_t on_body(char *p, size_t size, size_t nm, void *arg)
{
    slot *s = arg;
    size_t n = size * nm;
    if (s->len + n > MAX_BODY) {
        s->too_big = 1;
        return 0;
    }
    if (s->len + n + 1 > s->cap) {
        size_t c = s->cap ? s->cap : 16384;
        while (c < s->len + n + 1) c *= 2;
        char *b = realloc(s->buf, c);
        if (!b) return 0;
        s->buf = b;
        s->cap = c;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = 0;
    return n;
}

static size_t on_header(char *p, size_t size, size_t nm, void *arg)
{
    slot *s = arg;
    size_t n = size * nm;
    if (n > 12 && !strncasecmp(p, "retry-after:", 12)) {
        char v[128];
        size_t m = n - 12 < sizeof v - 1 ? n - 12 : sizeof v - 1;
        memcpy(v, p + 12, m);
        v[m] = 0;
        char *q = v;
        while (*q == ' ' || *q == '\t') q++;
        q[strcspn(q, "\r\n")] = 0;
        char *end;
        double sec = strtod(q, &end);
        if (end != q && !*end && isfinite(sec) && sec >= 0) s->retry_after = sec;
        else {
            time_t when = curl_getdate(q, NULL);
            if (when != (time_t)-1) {
                double d = difftime(when, time(NULL));
                s->retry_after = d > 0 ? d : 0;
            }
        }
    }
    return n;
}

int http_global_init(void) { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1; }

/* Full jitter: uniform in [0, min(cap, base 2^(attempt-1))], at least the
 * server's Retry-After. */
static double backoff(int attempt, double retry_after)
{
    double b = 0.5 * pow(2, attempt - 1);
    if (b > 60) b = 60;
    double d = b * ((double)randombytes_uniform(1000001) / 1e6);
    return retry_after > d ? retry_after : d;
}

static int start(CURLM *m, slot *s, const char *url, struct curl_slist *hdr, const http_opts *o, const http_job *j,
                 char *err, size_t errlen)
{
    if (!s->h && !(s->h = curl_easy_init())) return snprintf(err, errlen, "libcurl: cannot make a handle"), -1;
    CURL *h = s->h;
    curl_easy_reset(h);
    s->len = 0;
    s->too_big = 0;
    s->retry_after = -1;
    s->errbuf[0] = 0;
    if (s->buf) s->buf[0] = 0;
    CURLcode c = CURLE_OK;
#define SET(opt, val) if (c == CURLE_OK) c = curl_easy_setopt(h, opt, val)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_HTTPHEADER, hdr);
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_POSTFIELDS, j->body);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->len);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, s);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, s);
    SET(CURLOPT_ERRORBUFFER, s->errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)(o->connect_timeout * 1000));
    SET(CURLOPT_TIMEOUT_MS, (long)(o->timeout * 1000));
    SET(CURLOPT_FOLLOWLOCATION, 0L); /* a redirect would resend the key elsewhere */
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_PRIVATE, s);
#undef SET
    if (c != CURLE_OK) return snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(c)), -1;
    if (curl_multi_add_handle(m, h) != CURLM_OK) return snprintf(err, errlen, "libcurl: cannot add a transfer"), -1;
    s->t0 = mono();
    return 0;
}

int http_run(const char *url, const char *api_key, const http_opts *o, const http_job *jobs, size_t n,
             unsigned char *done, http_on_attempt on_attempt, http_may_start may_start, void *arg,
             volatile int *stop, char *err, size_t errlen)
{
    int rc = 0;
    struct curl_slist *hdr = NULL, *h2;
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    if (hdr && (h2 = curl_slist_append(hdr, "Expect:"))) hdr = h2;
    else if (hdr) { curl_slist_free_all(hdr); hdr = NULL; }
    if (hdr && api_key) {
        size_t kl = strlen(api_key), hl = kl + 32;
        char *line = malloc(hl);
        h2 = line ? (snprintf(line, hl, "Authorization: Bearer %s", api_key), curl_slist_append(hdr, line)) : NULL;
        if (line) sodium_memzero(line, hl);
        free(line);
        if (h2) hdr = h2;
        else { curl_slist_free_all(hdr); hdr = NULL; }
    }
    CURLM *m = curl_multi_init();
    long conc = o->concurrency < 1 ? 1 : o->concurrency;
    slot *slots = calloc((size_t)conc, sizeof *slots);
    pending *q = calloc(n ? n : 1, sizeof *q);
    unsigned char *busy = calloc((size_t)conc, 1);
    if (!hdr || !m || !slots || !q || !busy) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
        goto out;
    }
    size_t nq = 0;
    for (size_t i = 0; i < n; i++)
        if (!done[i]) q[nq++] = (pending){ i, 0, 0 };
    long in_flight = 0;
    double last_start = -1e300;
    int stopping = 0;
    while (in_flight > 0 || (nq > 0 && !stopping)) {
        if (*stop && !stopping) stopping = 1, rc = 1;
        /* start what may start */
        while (!stopping && in_flight < conc && nq > 0) {
            double t = mono();
            size_t pick = nq;
            for (size_t i = 0; i < nq; i++)
                if (q[i].not_before <= t) { pick = i; break; }
            if (pick == nq) break;
            if (o->rate > 0 && t < last_start + 1.0 / o->rate) break;
            if (!may_start(arg)) {
                stopping = 1;
                rc = 1;
                break;
            }
            long si = 0;
            while (busy[si]) si++;
            slot *s = &slots[si];
            s->job = q[pick].job;
            s->attempt = q[pick].attempt + 1;
            memmove(q + pick, q + pick + 1, (nq - pick - 1) * sizeof *q);
            nq--;
            if (start(m, s, url, hdr, o, &jobs[s->job], err, errlen)) {
                rc = -1;
                stopping = 1;
                break;
            }
            busy[si] = 1;
            in_flight++;
            last_start = t;
        }
        if (in_flight == 0 && (stopping || nq == 0)) break;
        int running;
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            snprintf(err, errlen, "libcurl: multi_perform failed");
            rc = -1;
            break;
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            slot *s;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            CURLcode res = msg->data.result;
            curl_multi_remove_handle(m, s->h);
            in_flight--;
            busy[s - slots] = 0;
            long status = 0;
            curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
            char transport[CURL_ERROR_SIZE + 64] = "";
            if (res != CURLE_OK)
                snprintf(transport, sizeof transport, "%s%s", s->too_big ? "response over 256 MiB: " : "",
                         s->errbuf[0] ? s->errbuf : curl_easy_strerror(res));
            int transient = res != CURLE_OK ? !s->too_big : status == 429 || (status >= 500 && status <= 599);
            http_attempt a = { s->attempt, status, transport, s->retry_after, s->buf ? s->buf : "", s->len,
                               mono() - s->t0, 0 };
            int give_up = 0;
            char why[512] = "";
            if (transient && s->retry_after > o->max_retry_after) {
                give_up = 1;
                snprintf(why, sizeof why, "the server asks to retry after %.0f s (over --max-retry-after %.0f)",
                         s->retry_after, o->max_retry_after);
            } else if (transient && s->attempt > o->retries) {
                give_up = 1;
                snprintf(why, sizeof why, "gave up after %d attempts", s->attempt);
            }
            a.retry = transient && !give_up && !stopping;
            if (on_attempt(arg, &jobs[s->job], &a, err, errlen)) {
                rc = -1;
                stopping = 1;
                continue;
            }
            if (a.retry) {
                q[nq++] = (pending){ s->job, s->attempt, mono() + backoff(s->attempt, s->retry_after) };
                continue;
            }
            if (transient) {
                if (stopping) continue; /* not retried: the run is stopping anyway */
                snprintf(err, errlen, "%s: item %zu: %s; last: %s%s%ld", url, jobs[s->job].item, why,
                         transport[0] ? transport : "", transport[0] ? ", HTTP " : "HTTP ", status);
                rc = -1;
                stopping = 1;
                continue;
            }
            if (res == CURLE_OK && status >= 200 && status <= 299) {
                done[s->job] = 1;
                continue;
            }
            if (res != CURLE_OK) snprintf(err, errlen, "%s: item %zu: %s", url, jobs[s->job].item, transport);
            else snprintf(err, errlen, "%s: item %zu: HTTP %ld: %.300s", url, jobs[s->job].item, status,
                          s->len ? s->buf : "(empty body)");
            rc = -1;
            stopping = 1;
        }
        if (in_flight > 0 || nq > 0) {
            int timeout = 100;
            if (in_flight == 0 && nq > 0) {
                double t = mono(), soonest = 1e300;
                for (size_t i = 0; i < nq; i++) soonest = q[i].not_before < soonest ? q[i].not_before : soonest;
                double w = soonest - t;
                if (o->rate > 0 && last_start + 1.0 / o->rate - t > w) w = last_start + 1.0 / o->rate - t;
                timeout = w <= 0 ? 0 : w > 0.1 ? 100 : (int)(w * 1000) + 1;
            }
            curl_multi_poll(m, NULL, 0, timeout, NULL);
        }
    }
out:
    if (slots)
        for (long i = 0; i < conc; i++) {
            if (slots[i].h) {
                if (busy && busy[i]) curl_multi_remove_handle(m, slots[i].h);
                curl_easy_cleanup(slots[i].h);
            }
            free(slots[i].buf);
        }
    for (struct curl_slist *p = hdr; p; p = p->next) sodium_memzero(p->data, strlen(p->data));
    curl_slist_free_all(hdr);
    if (m) curl_multi_cleanup(m);
    free(slots);
    free(q);
    free(busy);
    return rc;
}
