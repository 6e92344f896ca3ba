/* shoeboxd: the shoebox daemon. One per data dir; runs in the foreground. */
#include "daemon.h"

#include "shoebox/api.h"
#include "shoebox/datadir.h"
#include "shoebox/err.h"
#include "shoebox/log.h"
#include "shoebox/passphrase.h"

#include <getopt.h>
#include <malloc.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoeboxd [--data DIR] [--listen HOST:PORT] [--api HOST:PORT] [--public HOST:PORT]\n"
            "                [--passphrase-file FILE] [--log-level LEVEL] ...\n"
            "\n"
            "Runs the shoebox daemon for the library in DIR (default $XDG_DATA_HOME/shoebox)\n"
            "in the foreground. SIGINT or SIGTERM stops it cleanly.\n"
            "  --data DIR           data directory made by 'shoebox init'\n"
            "  --listen HOST:PORT   address peers connect to\n"
            "  --log-level LEVEL    debug, info, warn or error (default info)\n"
            "  --no-discovery       do not announce or look for peers on the LAN\n"
            "  --trash-days N       deleted photos keep their original this long (default 30)\n"
            "  --cache-quota-mb N   keep at most N MB of originals, evicting the least recently\n"
            "                       used ones that a full peer holds (default: no quota)\n"
            "  --upnp, --no-upnp    map the listen port on the router (default: on for\n"
            "                       role full, off for cache)\n"
            "  --max-future SECONDS refuse (for now) entries stamped this far ahead of\n"
            "                       the local clock (default 86400)\n"
            "  --passphrase-file FILE  the passphrase of an encrypted library (first line,\n"
            "                       file mode 0600), for unattended starts; without it an\n"
            "                       encrypted library waits locked for 'shoebox unlock'\n"

            "  --api HOST:PORT      the local HTTP API (default 127.0.0.1:%u; 'off' for\n"
            "                       the unix socket DIR/api.sock only); bearer token in\n"
            "                       DIR/api-token\n"
            "  --public HOST:PORT   serve share links (GET /s/TOKEN) there (default off)\n"
            "  --public-url URL     the base of printed share links (default from --public)\n"
            "  --tls-cert FILE      PEM certificate chain for the share server (with\n"
            "  --tls-key FILE       its key): HTTPS and HTTP/2\n",
            SBX_API_DEFAULT_PORT);
}

int main(int argc, char **argv)
{
    /* Blob transfers allocate and free 1 MiB chunk buffers hundreds of
     * times a second. glibc's defaults would map and unmap each one (or
     * trim the heap after it), and the kernel would zero fresh pages every
     * time: a third of a sending daemon's CPU, measured. Buffers up to
     * 4 MiB come from the heap instead, and freed memory is kept for reuse
     * up to 32 MiB; the peak (what RSS limits are about) does not change. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 32 << 20);
    /* libuv's thread pool (4 threads by default) runs transfer jobs,
     * store jobs, upload chunk writes and completions, and `get --out`
     * copies: a few long copies of videos must not hold all of it. 8
     * threads leave room; the user's own setting wins. */
    setenv("UV_THREADPOOL_SIZE", "8", 0);
    /* An import holds a batch of temp files open per thread (up to
     * SBX_MAX_BLOB_BATCH x SBX_MAX_IMPORT_THREADS = 512) beside peer and API
     * connections; the usual soft limit of 1024 descriptors is too close.
     * The soft limit goes up to the hard one (no privilege needed). */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"log-level", required_argument, NULL, 'v'},
        {"max-future", required_argument, NULL, 'f'},
        {"no-discovery", no_argument, NULL, 'D'},
        {"trash-days", required_argument, NULL, 'T'},
        {"cache-quota-mb", required_argument, NULL, 'Q'},
        {"upnp", no_argument, NULL, 'U'},
        {"no-upnp", no_argument, NULL, 'u'},
        {"passphrase-file", required_argument, NULL, 'p'},
        /* The API's options have codes past any letter. */
        {"api", required_argument, NULL, 256},
        {"public", required_argument, NULL, 257},
        {"public-url", required_argument, NULL, 258},
        {"tls-cert", required_argument, NULL, 259},
        {"tls-key", required_argument, NULL, 260},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct sbx_daemon_options opt = {.upnp = -1, .trash_days = -1, .cache_quota_mb = -1};
    const char *pass_file = NULL;
    char default_dir[4096];
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': opt.data_dir = optarg; break;
        case 'l': opt.listen = optarg; break;
        case 'v':
            if (sbx_log_level_parse(optarg) < 0) {
                fprintf(stderr, "shoeboxd: unknown log level '%s'\n", optarg);
                return 2;
            }
            sbx_log_set_level((enum sbx_log_level)sbx_log_level_parse(optarg));
            break;
        case 'f': {
            char *end = NULL;
            unsigned long long secs = strtoull(optarg, &end, 10);
            if (!end || *end || secs == 0 || secs > 10ull * 365 * 86400) {
                fprintf(stderr, "shoeboxd: --max-future takes 1 to 315360000 seconds\n");
                return 2;
            }
            opt.max_future_ms = secs * 1000;
            break;
        }
        case 'D': opt.no_discovery = true; break;
        case 'T':
        case 'Q': {
            char *end = NULL;
            long long v = strtoll(optarg, &end, 10);
            if (!end || *end || v < 0 || v > 100000000) {
                fprintf(stderr, "shoeboxd: --%s takes a number of %s\n", c == 'T' ? "trash-days" : "cache-quota-mb",
                        c == 'T' ? "days" : "MB");
                return 2;
            }
            if (c == 'T') opt.trash_days = v;
            else opt.cache_quota_mb = v;
            break;
        }
        case 'U': opt.upnp = 1; break;
        case 'u': opt.upnp = 0; break;
        case 'p': pass_file = optarg; break;
        case 256: opt.api_listen = optarg; break;
        case 257: opt.public_listen = optarg; break;
        case 258: opt.public_url = optarg; break;
        case 259: opt.tls_cert = optarg; break;
        case 260: opt.tls_key = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("shoeboxd %s\n", SBX_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!opt.data_dir) {
        if (sbx_datadir_default(default_dir, sizeof default_dir) != 0) {
            fprintf(stderr, "shoeboxd: no --data and no $XDG_DATA_HOME or $HOME\n");
            return 2;
        }
        opt.data_dir = default_dir;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "shoeboxd: libsodium failed to initialise\n");
        return 1;
    }

    static char pass[SBX_PASSPHRASE_BUF];
    if (pass_file) {
        size_t len = 0;
        int prc = sbx_passphrase_read_file(pass_file, pass, &len);
        if (prc != 0) {
            fprintf(stderr, "shoeboxd: cannot use the passphrase file %s: %s\n", pass_file,
                    prc == SBX_EPERM ? "others can read it (chmod 600 it)" : sbx_strerror(prc));
            return 1;
        }
        opt.passphrase = pass;
        opt.passphrase_len = len;
    }

    uv_loop_t loop;
    uv_loop_init(&loop);
    static struct sbx_daemon d;
    char err[1024] = "";
    int rc = sbx_daemon_open(&d, &loop, &opt, err, sizeof err);
    sbx_passphrase_wipe(pass);
    if (rc != 0) {
        fprintf(stderr, "shoeboxd: %s\n", err[0] ? err : sbx_strerror(rc));
        sbx_daemon_stop(&d);
        uv_run(&loop, UV_RUN_DEFAULT);
        sbx_daemon_close(&d);
        uv_loop_close(&loop);
        return 1;
    }
    sbx_info("shoeboxd %s serving %s", SBX_VERSION, d.data_dir);
    uv_run(&loop, UV_RUN_DEFAULT);
    sbx_daemon_close(&d);
    uv_loop_close(&loop);
    sbx_info("stopped");
    return 0;
}
