/* wm audit's HTTP client (audit_http.c, libcurl's multi interface): POSTs
 * JSON bodies to one URL, up to `concurrency` at once, at most `rate` new
 * requests a second, with connect and total timeouts.  A dropped
 * connection, a timeout, a truncated body, 429 and 5xx are retried with
 * exponential backoff and full jitter (base 0.5 s, cap 60 s), never sooner
 * than the server's Retry-After (seconds or an HTTP date; longer than
 * max_retry_after is an error); any other status is an error.  Every
 * attempt, retried or not, is handed to the caller (the journal) before
 * anything else happens to it. */
#ifndef WM_CLI_AUDIT_HTTP_H
#define WM_CLI_AUDIT_HTTP_H

#include <stddef.h>

typedef struct http_opts {
    long concurrency;        /* requests in flight */
    double rate;             /* new requests a second (0: no limit) */
    double connect_timeout;  /* seconds */
    double timeout;          /* seconds, whole request */
    long retries;            /* further attempts after the first */
    double max_retry_after;  /* seconds */
} http_opts;

typedef struct http_job {
    size_t item;
    const char *body;
    size_t len;
} http_job;

typedef struct http_attempt {
    int attempt;             /* 1, 2, ... */
    long status;             /* HTTP status, 0 when none came */
    const char *transport;   /* "" or libcurl's error */
    double retry_after;      /* seconds asked by the server, -1 none */
    const char *body;        /* the response body (NUL-terminated) */
    size_t len;
    double seconds;
    int retry;               /* 1: it will be retried */
} http_attempt;

/* What the caller says of an attempt: 0 go on, -1 stop the run (message in
 * err).  A 2xx attempt the caller accepts ends its job. */
typedef int (*http_on_attempt)(void *arg, const http_job *job, const http_attempt *a, char *err, size_t errlen);
/* Before each new request: 1 start it, 0 the budget is spent (stop
 * starting; those in flight finish). */
typedef int (*http_may_start)(void *arg);

/* Run jobs[0..n); api_key may be NULL (no Authorization header).  Stops
 * starting new requests when *stop becomes nonzero (a signal) or may_start
 * says so; requests in flight always finish and are handed over.  *done[i]
 * = 1 for each job that got an accepted 2xx.  0, 1 (stopped early: budget
 * or signal), or -1 with the reason in err. */
int http_run(const char *url, const char *api_key, const http_opts *o, const http_job *jobs, size_t n,
             unsigned char *done, http_on_attempt on_attempt, http_may_start may_start, void *arg,
             volatile int *stop, char *err, size_t errlen);

/* curl_global_init once; 0 or -1. */
int http_global_init(void);

#endif
