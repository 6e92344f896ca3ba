/* Recycled page-aligned chunk buffers (see shoebox/chunkbuf.h). Each one is
 * its own anonymous mapping rather than a heap block: page-aligned heap
 * blocks of a chunk's size fragment glibc's heap. */
#include "shoebox/chunkbuf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/mman.h>

#include "shoebox/limits.h"
#include "shoebox/util.h"

_Static_assert(SBX_CHUNKBUF_BYTES % 4096 == 0, "a buffer is whole pages");

/* Returned by the pool threads that wrote them, taken by the loop thread
 * that receives: a short critical section under one lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *spare[SBX_MAX_FREE_CHUNKBUFS];
static unsigned n_spare;

uint8_t *sbx_chunkbuf_get(void)
{
    uint8_t *b = NULL;
    pthread_mutex_lock(&lock);
    if (n_spare > 0) b = spare[--n_spare];
    pthread_mutex_unlock(&lock);
    if (b) return b;
    void *m = mmap(NULL, SBX_CHUNKBUF_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return m == MAP_FAILED ? NULL : m;
}

void sbx_chunkbuf_put(uint8_t *buf)
{
    if (!buf) return;
    SBX_ASSERT((uintptr_t)buf % 4096 == 0);
    pthread_mutex_lock(&lock);
    bool kept = n_spare < SBX_MAX_FREE_CHUNKBUFS;
    if (kept) spare[n_spare++] = buf;
    pthread_mutex_unlock(&lock);
    if (!kept) munmap(buf, SBX_CHUNKBUF_BYTES);
}

void sbx_chunkbuf_trim(void)
{
    uint8_t *drop[SBX_MAX_FREE_CHUNKBUFS];
    pthread_mutex_lock(&lock);
    unsigned n = n_spare;
    for (unsigned i = 0; i < n; i++) drop[i] = spare[i];
    n_spare = 0;
    pthread_mutex_unlock(&lock);
    for (unsigned i = 0; i < n; i++) munmap(drop[i], SBX_CHUNKBUF_BYTES);
}
