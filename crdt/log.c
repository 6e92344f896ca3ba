#include "shoebox/log.h"
#include "shoebox/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static enum sbx_log_level current_level = SBX_LOG_INFO;

void sbx_log_set_level(enum sbx_log_level level) { current_level = level; }

int sbx_log_level_parse(const char *s)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

void sbx_log(enum sbx_log_level level, const char *fmt, ...)
{
    static const char *tags[] = {"debug", "info ", "warn ", "error"};
    if (level < current_level) return;
    char ts[32], line[2048];
    sbx_rfc3339(ts, sbx_now_ms());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One write per line so lines from several threads never interleave. */
    fprintf(stderr, "%s %s %s\n", ts, tags[level], line);
}
