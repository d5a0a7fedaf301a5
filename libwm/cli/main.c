/* wm: keygen, info, tokenize, detect, read, audit.  See wm.1 or `wm CMD --help`.
 *
 * Exit status: 0 success; 1 a watermark was found (only with
 * --fail-if-watermarked); 2 usage, input or output error. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage_main[] =
    "usage: wm COMMAND [OPTIONS]\n"
    "\n"
    "  keygen    create a secret watermark key file\n"
    "  info      show a key's public parameters and id\n"
    "  tokenize  print token ids of texts\n"
    "  detect    test texts, or a whole corpus, for the watermark\n"
    "  read      reading mode: an open-weight suspect's predictions on our outputs\n"
    "  audit     test a suspect model through its OpenAI-compatible API\n"
    "\n"
    "`wm COMMAND --help` for each; `man wm` for the whole story.\n"
    "Exit status: 0 success, 1 watermark found (with --fail-if-watermarked), 2 error.\n";


/* Every command's output goes through here: a write error anywhere (a full
 * disk, a closed pipe, /dev/full) is an error even when the failing write
 * was an early, silently buffered one. */
static int finish_output(int rc)
{
    errno = 0;
    int failed = fflush(stdout) != 0 || ferror(stdout);
    int e = errno;
    if (fclose(stdout) != 0 && !failed) failed = 1, e = errno;
    if (!failed) return rc;
    fprintf(stderr, "wm: writing standard output: %s\n", e ? strerror(e) : "write error");
    return EXIT_USAGE;
}

static int run_command(int argc, char **argv)
{
    if (argc < 2) return fputs(usage_main, stderr), EXIT_USAGE;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) return fputs(usage_main, stdout), 0;
    if (!strcmp(cmd, "--version")) return printf("wm (libwm) %s\n", wm_version()), 0;
    argv[1] = argv[0];
    argc--;
    argv++;
    optind = 1;
    if (!strcmp(cmd, "keygen")) return cmd_keygen(argc, argv);
    if (!strcmp(cmd, "info")) return cmd_info(argc, argv);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc, argv);
    if (!strcmp(cmd, "detect")) return cmd_detect(argc, argv);
    if (!strcmp(cmd, "read")) return cmd_read(argc, argv);
    if (!strcmp(cmd, "audit")) return cmd_audit(argc, argv);
    return die("unknown command '%s'; see `wm --help`", cmd);
}

int main(int argc, char **argv) { return finish_output(run_command(argc, argv)); }
