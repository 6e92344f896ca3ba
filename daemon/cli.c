/* shoebox: the command line. `init` works on the data dir directly; every
 * other command asks the running daemon over its control socket. */
#include "join.h"
#include "shoebox/datadir.h"
#include "shoebox/pair.h"
#include "shoebox/engine.h"
#include "shoebox/err.h"
#include "shoebox/identity.h"
#include "shoebox/import.h"
#include "shoebox/limits.h"
#include "shoebox/log.h"
#include "shoebox/passphrase.h"
#include "shoebox/store.h"
#include "shoebox/util.h"

#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct cli {
    const char *data_dir;
    bool json;
    int argc;     /* the command's own arguments, options removed */
    char **argv;
};

static _Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("shoebox: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* Takes "--name VALUE" (or --name=VALUE) out of the command's arguments. */
static const char *take_opt(struct cli *c, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < c->argc; i++) {
        const char *a = c->argv[i];
        const char *v = NULL;
        int used = 0;
        if (strcmp(a, name) == 0) {
            if (i + 1 >= c->argc) die("%s needs a value", name);
            v = c->argv[i + 1];
            used = 2;
        } else if (strncmp(a, name, n) == 0 && a[n] == '=') {
            v = a + n + 1;
            used = 1;
        } else {
            continue;
        }
        memmove(c->argv + i, c->argv + i + used, (size_t)(c->argc - i - used) * sizeof *c->argv);
        c->argc -= used;
        return v;
    }
    return NULL;
}

static bool take_flag(struct cli *c, const char *name)
{
    for (int i = 0; i < c->argc; i++) {
        if (strcmp(c->argv[i], name) != 0) continue;
        memmove(c->argv + i, c->argv + i + 1, (size_t)(c->argc - i - 1) * sizeof *c->argv);
        c->argc--;
        return true;
    }
    return false;
}

static void no_more_args(struct cli *c, int allowed)
{
    for (int i = 0; i < c->argc; i++)
        if (c->argv[i][0] == '-' && c->argv[i][1] == '-') die("unknown option %s", c->argv[i]);
    if (c->argc > allowed) die("unexpected argument '%s'", c->argv[allowed]);
}

/* Connects to the daemon and sends one request line; returns the socket. */
static int call_send(struct cli *c, const char *cmd, json_t *args)
{
    char path[4096];
    if (sbx_datadir_path(path, sizeof path, c->data_dir, SBX_FILE_CONTROL) != 0 ||
        strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        die("data dir path is too long");
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        struct stat st;
        char key[4096];
        sbx_datadir_path(key, sizeof key, c->data_dir, SBX_FILE_KEY);
        if (stat(key, &st) != 0)
            die("no library in %s; run 'shoebox --data %s init' first", c->data_dir, c->data_dir);
        die("the daemon is not running for %s; start it with 'shoeboxd --data %s'", c->data_dir,
            c->data_dir);
    }
    json_t *req = json_pack("{s:s, s:o}", "cmd", cmd, "args", args ? args : json_object());
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    size_t len = strlen(text);
    text[len] = '\n';
    for (size_t off = 0; off <= len;) {
        ssize_t w = write(fd, text + off, len + 1 - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) die("cannot talk to the daemon: %s", strerror(errno));
        off += (size_t)w;
    }
    sodium_memzero(text, len); /* it may carry a passphrase (unlock) */
    free(text);
    return fd;
}

/* Reads the answer to a request sent with call_send (closing the socket)
 * and returns its "result", or exits with the daemon's error. */
static json_t *call_recv(int fd)
{
    json_error_t jerr;
    FILE *f = fdopen(fd, "r");
    json_t *resp = json_loadf(f, JSON_DISABLE_EOF_CHECK, &jerr);
    fclose(f);
    if (!resp) die("the daemon closed the connection without an answer");
    if (!json_is_true(json_object_get(resp, "ok"))) {
        const char *e = json_string_value(json_object_get(resp, "error"));
        fprintf(stderr, "shoebox: %s\n", e ? e : "the daemon refused the request");
        json_decref(resp);
        exit(1);
    }
    json_t *result = json_incref(json_object_get(resp, "result"));
    json_decref(resp);
    return result;
}

/* Sends one request to the daemon and returns its "result" (or exits with
 * the daemon's error). */
static json_t *call(struct cli *c, const char *cmd, json_t *args)
{
    return call_recv(call_send(c, cmd, args));
}

static void print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    puts(s);
    free(s);
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static json_int_t jint(json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }

/* ---- passphrases ---- */

/* A passphrase from --passphrase-file FILE, else the environment variable
 * `env`, else the terminal (asked twice when `confirm`). */
static size_t get_passphrase(const char *file, const char *env, const char *prompt, bool confirm,
                             char out[SBX_PASSPHRASE_BUF])
{
    size_t len = 0;
    int rc;
    if (file) {
        rc = sbx_passphrase_read_file(file, out, &len);
        if (rc != 0)
            die("cannot use the passphrase file %s: %s", file,
                rc == SBX_EPERM    ? "others can read it (chmod 600 it)"
                : rc == SBX_EINVAL ? "it is empty"
                                   : sbx_strerror(rc));
        return len;
    }
    const char *v = getenv(env);
    if (v && *v) {
        len = strlen(v);
        if (len > SBX_MAX_PASSPHRASE) die("$%s is longer than %u bytes", env, SBX_MAX_PASSPHRASE);
        memcpy(out, v, len + 1);
        return len;
    }
    rc = sbx_passphrase_prompt(prompt, out, &len);
    if (rc == SBX_ENOENT) die("no passphrase: there is no terminal to ask on; give --passphrase-file FILE or set %s", env);
    if (rc != 0) die("no passphrase: %s", rc == SBX_EINVAL ? "it is empty" : sbx_strerror(rc));
    if (confirm) {
        char again[SBX_PASSPHRASE_BUF];
        size_t len2 = 0;
        rc = sbx_passphrase_prompt("Repeat it: ", again, &len2);
        bool same = rc == 0 && len2 == len && sodium_memcmp(again, out, len) == 0;
        sbx_passphrase_wipe(again);
        if (!same) {
            sbx_passphrase_wipe(out);
            die("the two passphrases differ; nothing changed");
        }
    }
    return len;
}

/* The --role of init and join: cache unless told otherwise. */
static enum sbx_role parse_role(const char *role_s)
{
    if (!role_s || strcmp(role_s, "cache") == 0) return SBX_ROLE_CACHE;
    if (strcmp(role_s, "full") == 0) return SBX_ROLE_FULL;
    die("--role is full or cache, not '%s'", role_s);
}

/* The --name of init and join, else the host name. */
static const char *device_name_or_host(const char *name, char host[SBX_MAX_NAME + 1])
{
    if (!name) {
        snprintf(host, SBX_MAX_NAME + 1, "device");
        gethostname(host, SBX_MAX_NAME);
        host[SBX_MAX_NAME] = '\0';
        name = host;
    }
    if (!*name || strlen(name) > SBX_MAX_NAME) die("--name must be 1 to %u bytes", SBX_MAX_NAME);
    return name;
}

/* ---- init ---- */

static int cmd_init(struct cli *c)
{
    const char *name = take_opt(c, "--name");
    const char *role_s = take_opt(c, "--role");
    const char *libname = take_opt(c, "--library-name");
    const char *pass_file = take_opt(c, "--passphrase-file");
    bool encrypt = take_flag(c, "--encrypt");
    bool plain = take_flag(c, "--no-encrypt");
    no_more_args(c, 0);
    if (encrypt && plain) die("--encrypt and --no-encrypt contradict each other");
    if (pass_file && !encrypt) die("--passphrase-file goes with --encrypt");
    enum sbx_role role = parse_role(role_s);
    char host[SBX_MAX_NAME + 1];
    name = device_name_or_host(name, host);
    char libdefault[128];
    if (!libname) {
        snprintf(libdefault, sizeof libdefault, "Photos");
        libname = libdefault;
    }

    int rc = sbx_mkdir_p(c->data_dir, 0700);
    if (rc != 0) die("cannot create data dir %s: %s", c->data_dir, sbx_strerror(rc));
    if (access(c->data_dir, W_OK | X_OK) != 0)
        die("no permission to write to data dir %s", c->data_dir);
    char keypath[4096], dbpath[4096];
    sbx_datadir_path(keypath, sizeof keypath, c->data_dir, SBX_FILE_KEY);
    sbx_datadir_path(dbpath, sizeof dbpath, c->data_dir, SBX_FILE_DB);
    struct stat st;
    if (stat(keypath, &st) == 0 || stat(dbpath, &st) == 0)
        die("%s already holds a library; nothing changed", c->data_dir);

    struct sbx_identity id;
    uint8_t storage_key[SBX_STORAGE_KEY_BYTES];
    if (encrypt) {
        /* The device key and a new storage key, sealed under the
         * passphrase (Argon2id); the database and blobs are encrypted
         * under subkeys of the storage key. */
        char pass[SBX_PASSPHRASE_BUF];
        size_t passlen = get_passphrase(pass_file, "SHOEBOX_PASSPHRASE", "Passphrase for the new library: ", true, pass);
        rc = sbx_identity_create_sealed(keypath, pass, passlen, NULL, &id, storage_key);
        sbx_passphrase_wipe(pass);
    } else {
        rc = sbx_identity_create(keypath, &id);
    }
    if (rc != 0) die("cannot create the device key %s: %s", keypath, sbx_strerror(rc));
    sbx_store *store = NULL;
    char err[512] = "";
    rc = sbx_store_open_key(&store, dbpath, SBX_STORE_CREATE, encrypt ? storage_key : NULL, err, sizeof err);
    sodium_memzero(storage_key, sizeof storage_key);
    if (rc == 0)
        rc = sbx_engine_create_library(store, &id, libname, name, role, sbx_now_ms());
    sbx_store_close(store);
    if (rc != 0) {
        /* Leave nothing half made: a later init must start from scratch. */
        unlink(keypath);
        sbx_store_remove_files(dbpath);
        sbx_identity_wipe(&id);
        die("cannot create the library: %s", err[0] ? err : sbx_strerror(rc));
    }
    sbx_identity_wipe(&id);
    if (c->json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "data_dir", c->data_dir, "name", name, "role",
                              role == SBX_ROLE_FULL ? "full" : "cache", "encrypted", encrypt);
        print_json(o);
        json_decref(o);
    } else {
        printf("initialised a new %slibrary in %s (device \"%s\", role %s)\n", encrypt ? "encrypted " : "",
               c->data_dir, name, role == SBX_ROLE_FULL ? "full" : "cache");
        printf("start the daemon with: shoeboxd --data %s\n", c->data_dir);
        if (encrypt)
            printf("it waits locked until 'shoebox unlock' (or give it --passphrase-file FILE);\n"
                   "without the passphrase nothing in %s can be read: keep it safe\n", c->data_dir);
    }
    return 0;
}

/* ---- unlock, passwd ---- */

static int cmd_unlock(struct cli *c)
{
    const char *pass_file = take_opt(c, "--passphrase-file");
    no_more_args(c, 0);
    json_t *st = call(c, "status", NULL);
    bool locked = json_is_true(json_object_get(st, "locked"));
    bool encrypted = json_is_true(json_object_get(st, "encrypted"));
    json_decref(st);
    if (!locked) die("%s", encrypted ? "the library is already unlocked" : "the library is not encrypted");
    char pass[SBX_PASSPHRASE_BUF], hex[2 * SBX_MAX_PASSPHRASE + 1];
    size_t len = get_passphrase(pass_file, "SHOEBOX_PASSPHRASE", "Passphrase: ", false, pass);
    sbx_hex_encode(hex, (const uint8_t *)pass, len);
    sbx_passphrase_wipe(pass);
    json_t *r = call(c, "unlock", json_pack("{s:s}", "passphrase_hex", hex));
    sodium_memzero(hex, sizeof hex);
    if (c->json) print_json(r);
    else printf("unlocked: device %s\n", jstr(r, "device_id"));
    json_decref(r);
    return 0;
}

/* The passphrase wraps the keys, not the data: changing it re-seals the
 * key file alone, so it works with the daemon running or not. */
static int cmd_passwd(struct cli *c)
{
    const char *old_file = take_opt(c, "--passphrase-file");
    const char *new_file = take_opt(c, "--new-passphrase-file");
    no_more_args(c, 0);
    char keypath[4096];
    sbx_datadir_path(keypath, sizeof keypath, c->data_dir, SBX_FILE_KEY);
    bool sealed = false;
    int rc = sbx_identity_probe(keypath, &sealed);
    if (rc == SBX_ENOENT) die("no library in %s", c->data_dir);
    if (rc != 0) die("cannot read the device key %s: %s", keypath, sbx_strerror(rc));
    if (!sealed) die("the library in %s is not encrypted (encryption is chosen at init)", c->data_dir);
    char old[SBX_PASSPHRASE_BUF], new_pass[SBX_PASSPHRASE_BUF];
    size_t oldlen = get_passphrase(old_file, "SHOEBOX_PASSPHRASE", "Current passphrase: ", false, old);
    size_t newlen = get_passphrase(new_file, "SHOEBOX_NEW_PASSPHRASE", "New passphrase: ", true, new_pass);
    rc = sbx_identity_rewrap(keypath, old, oldlen, new_pass, newlen, NULL);
    sbx_passphrase_wipe(old);
    sbx_passphrase_wipe(new_pass);
    if (rc == SBX_ECRYPTO) die("wrong passphrase; nothing changed");
    if (rc != 0) die("cannot change the passphrase: %s; nothing changed", sbx_strerror(rc));
    if (c->json) {
        json_t *o = json_pack("{s:b}", "changed", 1);
        print_json(o);
        json_decref(o);
    } else {
        printf("passphrase changed (the keys it wraps, and so the data, stay as they were)\n");
    }
    return 0;
}

/* ---- status ---- */

static int cmd_status(struct cli *c)
{
    no_more_args(c, 0);
    json_t *r = call(c, "status", NULL);
    if (c->json) {
        print_json(r);
    } else if (json_is_true(json_object_get(r, "locked"))) {
        printf("locked   the library is encrypted; run 'shoebox unlock' to open it\n");
    } else {
        printf("device   %s  \"%s\" (%s)\n", jstr(r, "device_id"), jstr(r, "device_name"), jstr(r, "role"));
        printf("library  %s  \"%s\"\n", jstr(r, "library_id"), jstr(r, "library_name"));
        printf("members  %lld   photos %lld   albums %lld   tags %lld\n", (long long)jint(r, "devices"),
               (long long)jint(r, "photos"), (long long)jint(r, "albums"), (long long)jint(r, "tags"));
        printf("log      %lld entries   digest %s\n", (long long)jint(r, "entries"), jstr(r, "state_digest"));
        printf("storage  %s\n", json_is_true(json_object_get(r, "encrypted")) ? "encrypted" : "not encrypted");
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(r, "peers"), i, v)
            printf("peer     %.7s  %-12s %s %s\n", jstr(v, "device_id"), jstr(v, "name"),
                   json_is_true(json_object_get(v, "connected")) ? "connected" : "offline  ",
                   json_is_string(json_object_get(v, "address")) ? jstr(v, "address") : "");
        json_array_foreach(json_object_get(r, "import_jobs"), i, v)
            printf("import   %s: %lld/%lld files, %.1f/%.1f MB\n", jstr(v, "phase"), (long long)jint(v, "files_done"),
                   (long long)jint(v, "files_total"), (double)jint(v, "bytes_done") / 1e6,
                   (double)jint(v, "bytes_total") / 1e6);
        json_t *rn = json_object_get(r, "renders");
        if (rn && (jint(rn, "pending") > 0 || jint(rn, "failed") > 0))
            printf("renders  %lld thumbnails to render, %lld failed\n", (long long)jint(rn, "pending"),
                   (long long)jint(rn, "failed"));
        json_array_foreach(json_object_get(r, "forks"), i, v)
            printf("FORK     device %s signed two entries with seq %lld: it is cloned or compromised\n",
                   jstr(v, "device_id"), (long long)jint(v, "seq"));
        json_array_foreach(json_object_get(r, "refused"), i, v)
            printf("refused  entry %lld of %s: %s\n", (long long)jint(v, "seq"), jstr(v, "device_id"),
                   jstr(v, "reason"));
    }
    json_decref(r);
    return 0;
}

/* ---- photos, albums, tags ---- */

static const char *need_arg(struct cli *c, int i, const char *what)
{
    if (i >= c->argc) die("missing %s", what);
    return c->argv[i];
}

static void print_photo_line(json_t *p)
{
    const char *when = json_is_string(json_object_get(p, "captured_at")) ? jstr(p, "captured_at") : "-";
    printf("%s  %-20s  %-24s %5lldx%-5lld %s\n", jstr(p, "id"), when, jstr(p, "file_name"),
           (long long)jint(p, "width"), (long long)jint(p, "height"), jstr(p, "mime_type"));
}

static int cmd_photos(struct cli *c)
{
    bool deleted = take_flag(c, "--deleted");
    no_more_args(c, 0);
    json_t *r = call(c, "photos", json_pack("{s:b}", "deleted", deleted));
    if (c->json) {
        print_json(r);
    } else {
        size_t i;
        json_t *p;
        json_array_foreach(r, i, p) print_photo_line(p);
        printf("%zu photo%s\n", json_array_size(r), json_array_size(r) == 1 ? "" : "s");
    }
    json_decref(r);
    return 0;
}

static int simple(struct cli *c, const char *cmd, json_t *args, const char *done_fmt)
{
    json_t *r = call(c, cmd, args);
    if (c->json) print_json(r);
    else if (done_fmt) printf(done_fmt, jstr(r, "id"));
    json_decref(r);
    return 0;
}

static int cmd_rm(struct cli *c)
{
    no_more_args(c, 1);
    return simple(c, "photo.delete", json_pack("{s:s}", "id", need_arg(c, 0, "PHOTO_ID")), "deleted %s\n");
}

static int cmd_restore(struct cli *c)
{
    no_more_args(c, 1);
    return simple(c, "photo.restore", json_pack("{s:s}", "id", need_arg(c, 0, "PHOTO_ID")), "restored %s\n");
}

static json_t *photo_list(struct cli *c, int from)
{
    json_t *arr = json_array();
    for (int i = from; i < c->argc; i++) json_array_append_new(arr, json_string(c->argv[i]));
    if (json_array_size(arr) == 0) die("give at least one PHOTO_ID");
    return arr;
}

static int cmd_album(struct cli *c)
{
    const char *sub = need_arg(c, 0, "album subcommand (create, add, remove, rename, delete)");
    if (strcmp(sub, "create") == 0) {
        no_more_args(c, 2);
        json_t *r = call(c, "album.create", json_pack("{s:s}", "name", need_arg(c, 1, "NAME")));
        if (c->json) print_json(r);
        else puts(jstr(r, "id"));
        json_decref(r);
        return 0;
    }
    if (strcmp(sub, "add") == 0 || strcmp(sub, "remove") == 0) {
        no_more_args(c, c->argc);
        const char *album = need_arg(c, 1, "ALBUM_ID");
        return simple(c, sub[0] == 'a' ? "album.add" : "album.remove",
                      json_pack("{s:s, s:o}", "album", album, "photos", photo_list(c, 2)), NULL);
    }
    if (strcmp(sub, "rename") == 0) {
        no_more_args(c, 3);
        return simple(c, "album.rename",
                      json_pack("{s:s, s:s}", "album", need_arg(c, 1, "ALBUM_ID"), "name", need_arg(c, 2, "NAME")), NULL);
    }
    if (strcmp(sub, "delete") == 0) {
        no_more_args(c, 2);
        return simple(c, "album.delete", json_pack("{s:s}", "album", need_arg(c, 1, "ALBUM_ID")), NULL);
    }
    die("unknown album subcommand '%s' (create, add, remove, rename, delete)", sub);
}

static int cmd_albums(struct cli *c)
{
    no_more_args(c, 0);
    json_t *r = call(c, "albums", NULL);
    if (c->json) {
        print_json(r);
    } else {
        size_t i;
        json_t *a;
        json_array_foreach(r, i, a)
            printf("%s  %-30s %zu photos\n", jstr(a, "id"), jstr(a, "name"), json_array_size(json_object_get(a, "photo_ids")));
    }
    json_decref(r);
    return 0;
}

static int cmd_tag(struct cli *c)
{
    no_more_args(c, 2);
    return simple(c, "tag", json_pack("{s:s, s:s}", "photo", need_arg(c, 0, "PHOTO_ID"), "label", need_arg(c, 1, "LABEL")),
                  NULL);
}

static int cmd_untag(struct cli *c)
{
    no_more_args(c, 2);
    return simple(c, "untag",
                  json_pack("{s:s, s:s}", "photo", need_arg(c, 0, "PHOTO_ID"), "label", need_arg(c, 1, "LABEL")), NULL);
}

/* ---- import ---- */

/* While the import runs, a terminal gets a progress line on stderr, redrawn
 * from import.progress (a second connection) every quarter second. */
static void import_wait(struct cli *c, int fd)
{
    bool tty = !c->json && isatty(STDERR_FILENO);
    int64_t first_ms = -1, first_bytes = 0;
    bool drawn = false;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, tty ? 250 : -1);
        if (n < 0 && errno == EINTR) continue;
        if (n != 0) break;
        json_t *r = call(c, "import.progress", NULL);
        if (json_is_true(json_object_get(r, "running"))) {
            struct sbx_import_progress pr = {
                .files_done = jint(r, "files_done"), .files_total = jint(r, "files_total"),
                .bytes_done = jint(r, "bytes_done"), .bytes_total = jint(r, "bytes_total"),
            };
            int64_t now = sbx_now_ms();
            /* The rate counts what this run moved, not what a resumed job
             * had done before. */
            if (first_ms < 0) {
                bool resumed = json_is_true(json_object_get(r, "resumed"));
                first_ms = resumed ? now : now - jint(r, "elapsed_ms");
                first_bytes = resumed ? pr.bytes_done : 0;
            }
            pr.rate_bytes = pr.bytes_done - first_bytes;
            pr.rate_ms = now - first_ms;
            struct winsize ws;
            unsigned width = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col - 1 : 79;
            char line[512];
            if (strcmp(jstr(r, "phase"), "scanning") == 0)
                snprintf(line, sizeof line, "scanning: %lld files, %lld entries read", (long long)pr.files_total,
                         (long long)pr.files_done);
            else
                sbx_import_progress_line(line, sizeof line, &pr, width);
            fprintf(stderr, "\r%s\033[K", line);
            fflush(stderr);
            drawn = true;
        }
        json_decref(r);
    }
    if (drawn) fprintf(stderr, "\r\033[K");
}

static int cmd_import(struct cli *c)
{
    no_more_args(c, c->argc);
    if (c->argc == 0) die("give at least one file, folder or Takeout zip to import");
    json_t *paths = json_array();
    for (int i = 0; i < c->argc; i++) {
        char *abs = realpath(c->argv[i], NULL);
        if (!abs) die("cannot import %s: %s", c->argv[i], strerror(errno));
        json_array_append_new(paths, json_string(abs));
        free(abs);
    }
    int fd = call_send(c, "import", json_pack("{s:o}", "paths", paths));
    import_wait(c, fd);
    json_t *r = call_recv(fd);
    if (c->json) {
        json_t *summary = json_pack("{s:O, s:O, s:O, s:O}", "imported", json_object_get(r, "imported"), "duplicates",
                                    json_object_get(r, "duplicates"), "skipped", json_object_get(r, "skipped"),
                                    "errors", json_object_get(r, "errors"));
        char *s = json_dumps(summary, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(summary);
    } else {
        printf("imported %lld, duplicates %lld, skipped %lld (%lld files, %.1f MB)%s\n", (long long)jint(r, "imported"),
               (long long)jint(r, "duplicates"), (long long)jint(r, "skipped"), (long long)jint(r, "files"),
               (double)jint(r, "bytes") / 1e6, json_is_true(json_object_get(r, "resumed")) ? ", resumed" : "");
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(r, "errors"), i, e) printf("  %s: %s\n", jstr(e, "path"), jstr(e, "reason"));
    }
    json_decref(r);
    return 0;
}

/* ---- pairing and devices ---- */

static int cmd_pair(struct cli *c)
{
    const char *ttl_s = take_opt(c, "--ttl");
    const char *png = take_opt(c, "--png");
    no_more_args(c, 0);
    long ttl = ttl_s ? strtol(ttl_s, NULL, 10) : 600;
    json_t *r = call(c, "pair", json_pack("{s:I}", "ttl", (json_int_t)ttl));
    const char *uri = jstr(r, "uri");
    if (png) {
        int rc = sbx_pair_qr_png(uri, png, 8);
        if (rc != 0) die("cannot write %s: %s", png, sbx_strerror(rc));
    }
    if (c->json) {
        print_json(r);
    } else {
        char *qr = NULL;
        if (sbx_pair_qr_text(uri, &qr) == 0) {
            fputs(qr, stdout);
            free(qr);
        }
        printf("Scan this code with the new device, or run there:\n  shoebox join '%s'\n", uri);
        printf("valid until %s, for one device\n", jstr(r, "expires_at"));
        printf("%s\n", uri);
    }
    json_decref(r);
    return 0;
}

static int cmd_join(struct cli *c)
{
    const char *name = take_opt(c, "--name");
    const char *role_s = take_opt(c, "--role");
    const char *pass_file = take_opt(c, "--passphrase-file");
    bool encrypt = take_flag(c, "--encrypt");
    no_more_args(c, 1);
    if (pass_file && !encrypt) die("--passphrase-file goes with --encrypt");
    const char *uri = need_arg(c, 0, "the invitation URI (shoebox://pair?...)");
    enum sbx_role role = parse_role(role_s);
    char host[SBX_MAX_NAME + 1];
    name = device_name_or_host(name, host);
    char err[512] = "", pass[SBX_PASSPHRASE_BUF];
    size_t passlen = 0;
    if (encrypt) passlen = get_passphrase(pass_file, "SHOEBOX_PASSPHRASE", "Passphrase for this device: ", true, pass);
    uint64_t received = 0;
    int rc = sbx_join_run(c->data_dir, uri, name, role, encrypt ? pass : NULL, passlen, &received, err, sizeof err);
    sbx_passphrase_wipe(pass);
    if (rc != 0) die("%s", err[0] ? err : sbx_strerror(rc));
    if (c->json) {
        json_t *o = json_pack("{s:s, s:s, s:I}", "data_dir", c->data_dir, "name", name, "bytes_received",
                              (json_int_t)received);
        print_json(o);
        json_decref(o);
    } else {
        printf("joined the library as \"%s\"; start the daemon with: shoeboxd --data %s --listen HOST:PORT\n", name,
               c->data_dir);
    }
    return 0;
}

static int cmd_devices(struct cli *c)
{
    no_more_args(c, 0);
    json_t *r = call(c, "devices", NULL);
    if (c->json) {
        print_json(r);
    } else {
        size_t i;
        json_t *d;
        json_array_foreach(r, i, d)
            printf("%s  %-16s %-5s %s%s%s\n", jstr(d, "device_id"), jstr(d, "name"), jstr(d, "role"),
                   json_is_true(json_object_get(d, "self")) ? "this device" : "",
                   json_is_true(json_object_get(d, "connected")) ? "connected" : "",
                   json_is_true(json_object_get(d, "removed")) ? "removed" : "");
    }
    json_decref(r);
    return 0;
}

static int cmd_device(struct cli *c)
{
    const char *sub = need_arg(c, 0, "device subcommand (remove)");
    if (strcmp(sub, "remove") != 0) die("unknown device subcommand '%s' (remove)", sub);
    no_more_args(c, 2);
    json_t *r = call(c, "device.remove", json_pack("{s:s}", "id", need_arg(c, 1, "DEVICE_ID")));
    if (c->json) print_json(r);
    else printf("removed %s: it can no longer connect or write\n", jstr(r, "device_id"));
    json_decref(r);
    return 0;
}

/* ---- share links ---- */

static void print_link(json_t *l)
{
    json_t *url = json_object_get(l, "url");
    const char *target = json_is_string(json_object_get(l, "album_id")) ? "album" : "photo";
    printf("%s  %-7s %s %s  expires %s  %s\n", jstr(l, "id"), jstr(l, "status"), target,
           jstr(l, json_is_string(json_object_get(l, "album_id")) ? "album_id" : "photo_id"),
           json_is_string(json_object_get(l, "expires_at")) ? jstr(l, "expires_at") : "never",
           json_is_string(url) ? json_string_value(url)
           : json_is_string(json_object_get(l, "path")) ? jstr(l, "path")
                                                        : "(made on another device: its token is shown there)");
}

static int cmd_share(struct cli *c)
{
    const char *sub = need_arg(c, 0, "share subcommand (create, list, revoke)");
    if (strcmp(sub, "create") == 0) {
        const char *album = take_opt(c, "--album");
        const char *photo = take_opt(c, "--photo");
        const char *expires = take_opt(c, "--expires");
        no_more_args(c, 1);
        if (!!album == !!photo) die("give --album ID or --photo ID");
        json_t *args = json_pack("{s:s}", album ? "album" : "photo", album ? album : photo);
        if (expires) json_object_set_new(args, "expires", json_string(expires));
        json_t *r = call(c, "share.create", args);
        if (c->json) {
            print_json(r);
        } else if (json_is_string(json_object_get(r, "url"))) {
            puts(jstr(r, "url"));
        } else {
            puts(jstr(r, "path"));
            fprintf(stderr, "shoebox: no share server address is known here: serve links with "
                            "'shoeboxd --public HOST:PORT [--public-url URL]' on any device of the library\n");
        }
        json_decref(r);
        return 0;
    }
    if (strcmp(sub, "list") == 0) {
        no_more_args(c, 1);
        json_t *r = call(c, "share.list", NULL);
        if (c->json) {
            print_json(r);
        } else {
            size_t i;
            json_t *l;
            json_array_foreach(r, i, l) print_link(l);
            printf("%zu share link%s\n", json_array_size(r), json_array_size(r) == 1 ? "" : "s");
        }
        json_decref(r);
        return 0;
    }
    if (strcmp(sub, "revoke") == 0) {
        no_more_args(c, 2);
        json_t *r = call(c, "share.revoke", json_pack("{s:s}", "id", need_arg(c, 1, "LINK_ID")));
        if (c->json) print_json(r);
        else printf("revoked %s: every device of the library refuses it once the revocation reaches it\n", jstr(r, "id"));
        json_decref(r);
        return 0;
    }
    die("unknown share subcommand '%s' (create, list, revoke)", sub);
}

static int cmd_rebuild(struct cli *c)
{
    no_more_args(c, 0);
    json_t *r = call(c, "rebuild", NULL);
    if (c->json) print_json(r);
    else printf("rebuilt the library from its log in %lld ms; digest %s (%s)\n", (long long)jint(r, "ms"),
                jstr(r, "state_digest"), json_is_true(json_object_get(r, "digest_unchanged")) ? "unchanged" : "CHANGED");
    json_decref(r);
    return 0;
}

/* ---- originals ---- */

static int cmd_get(struct cli *c)
{
    const char *out = take_opt(c, "--out");
    const char *timeout_s = take_opt(c, "--timeout");
    int64_t timeout_ms = (timeout_s ? atol(timeout_s) : 600) * 1000;
    no_more_args(c, 1);
    const char *id = need_arg(c, 0, "PHOTO_ID");
    if (!out) die("--out FILE is needed");
    char abs[4096];
    if (out[0] == '/') snprintf(abs, sizeof abs, "%s", out);
    else {
        char cwd[3000];
        if (!getcwd(cwd, sizeof cwd)) die("cannot read the current directory");
        snprintf(abs, sizeof abs, "%s/%s", cwd, out);
    }
    bool tty = isatty(STDERR_FILENO) && !c->json;
    int64_t start = sbx_now_ms();
    for (int i = 0;; i++) {
        json_t *r = call(c, "get", json_pack("{s:s}", "id", id));
        bool held = json_is_true(json_object_get(r, "held"));
        long long done = jint(r, "done"), size = jint(r, "size");
        if (tty && size > 0) {
            int width = 30, fill = (int)(done * width / (size ? size : 1));
            double secs = (double)(sbx_now_ms() - start) / 1000.0;
            fprintf(stderr, "\r[%.*s%*s] %5.1f%%  %.1f/%.1f MB  %.1f MB/s", fill,
                    "##############################", width - fill, "", size ? 100.0 * (double)done / (double)size : 0,
                    (double)done / 1e6, (double)size / 1e6, secs > 0 ? (double)done / 1e6 / secs : 0);
        }
        json_decref(r);
        if (held) break;
        if (sbx_now_ms() - start > timeout_ms)
            die("the original did not arrive in time (is a peer holding it online?)");
        usleep(200000);
    }
    json_t *r = call(c, "get", json_pack("{s:s, s:s}", "id", id, "out", abs));
    if (tty) fprintf(stderr, "\n");
    if (c->json) print_json(r);
    else printf("wrote %s (%lld bytes)\n", abs, (long long)jint(r, "size"));
    json_decref(r);
    return 0;
}

static int cmd_free_space(struct cli *c)
{
    const char *min = take_opt(c, "--min-full-peers");
    no_more_args(c, 0);
    json_t *r = call(c, "free_space", json_pack("{s:I}", "min_full", (json_int_t)(min ? atol(min) : 1)));
    if (c->json) print_json(r);
    else printf("freed %lld originals (%.1f MB): each is held by a full peer\n", (long long)jint(r, "freed"),
                (double)jint(r, "bytes") / 1e6);
    json_decref(r);
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(struct cli *c);
    const char *help;
} commands[] = {
    {"get", cmd_get, "get PHOTO_ID --out FILE [--timeout S]   fetch an original (from peers if needed)"},
    {"free-space", cmd_free_space, "free-space [--min-full-peers N]         delete local originals that full peers hold"},
    {"pair", cmd_pair, "pair [--ttl SECONDS] [--png FILE]        invite a new device: QR code and URI"},
    {"join", cmd_join, "join URI [--name NAME] [--role full|cache] [--encrypt [--passphrase-file FILE]]  join a library"},
    {"devices", cmd_devices, "devices [--json]                         the library's devices"},
    {"device", cmd_device, "device remove DEVICE_ID                  remove a device: it can no longer connect or write"},
    {"import", cmd_import, "import PATH... [--json]                  import photos and videos: files, folders, Google Takeout zips"},
    {"init", cmd_init, "init [--name NAME] [--role full|cache] [--encrypt [--passphrase-file FILE]]  create a library"},
    {"unlock", cmd_unlock, "unlock [--passphrase-file FILE]          open an encrypted library in a waiting daemon"},
    {"passwd", cmd_passwd, "passwd [--passphrase-file F] [--new-passphrase-file F]  change an encrypted library's passphrase"},
    {"status", cmd_status, "status [--json]                          this device, its library and peers"},
    {"photos", cmd_photos, "photos [--deleted] [--json]              list photos (newest first)"},
    {"rm", cmd_rm, "rm PHOTO_ID                              delete a photo (soft: restore brings it back)"},
    {"restore", cmd_restore, "restore PHOTO_ID                         restore a deleted photo"},
    {"album", cmd_album, "album create NAME | add ALBUM PHOTO... | remove ALBUM PHOTO... | rename ALBUM NAME | delete ALBUM"},
    {"albums", cmd_albums, "albums [--json]                          albums with their photo ids in order"},
    {"tag", cmd_tag, "tag PHOTO_ID LABEL                       tag a photo"},
    {"untag", cmd_untag, "untag PHOTO_ID LABEL                     remove a tag from a photo"},
    {"share", cmd_share, "share create (--album ID | --photo ID) [--expires DURATION] | list [--json] | revoke ID"},
    {"rebuild", cmd_rebuild, "rebuild                                  rebuild the model from the log (apps' feed cursors reset)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: shoebox [--data DIR] [--json] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < SBX_ARRAY_LEN(commands); i++) fprintf(f, "  %s\n", commands[i].help);
    fprintf(f, "\nIds print in full; a unique prefix is accepted.\n"
               "DIR defaults to $XDG_DATA_HOME/shoebox. Every command but init, join and passwd needs\n"
               "shoeboxd running. Passphrases come from --passphrase-file, else $SHOEBOX_PASSPHRASE\n"
               "(passwd: $SHOEBOX_NEW_PASSPHRASE for the new one), else the terminal.\n");
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) die("libsodium failed to initialise");
    sbx_log_set_level(SBX_LOG_WARN);
    struct cli c = {0};
    char default_dir[4096];
    int i = 1;
    /* Global options come before the command; --data and --json are also
     * taken after it, where people tend to type them. */
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) c.data_dir = argv[++i];
        else if (strncmp(argv[i], "--data=", 7) == 0) c.data_dir = argv[i] + 7;
        else if (strcmp(argv[i], "--json") == 0) c.json = true;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { usage(stdout); return 0; }
        else if (strcmp(argv[i], "--version") == 0) { printf("shoebox %s\n", SBX_VERSION); return 0; }
        else { fprintf(stderr, "shoebox: unknown option %s\n", argv[i]); usage(stderr); return 2; }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[i];
    c.argc = argc - i - 1;
    c.argv = argv + i + 1;
    const char *d = take_opt(&c, "--data");
    if (d) c.data_dir = d;
    if (take_flag(&c, "--json")) c.json = true;
    if (!c.data_dir) {
        if (sbx_datadir_default(default_dir, sizeof default_dir) != 0)
            die("no --data and no $XDG_DATA_HOME or $HOME");
        c.data_dir = default_dir;
    }
    for (size_t k = 0; k < SBX_ARRAY_LEN(commands); k++)
        if (strcmp(commands[k].name, name) == 0) return commands[k].fn(&c);
    fprintf(stderr, "shoebox: unknown command '%s'\n", name);
    usage(stderr);
    return 2;
}
