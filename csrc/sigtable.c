/** \file sigtable.c
 * The signature tables' weak-sum index (shared with the librsync table in
 * rs_job.c) and the native signature table built on it.
 *
 * Layout (see pd_windex and struct pd_sigtable in internal.h): per-block
 * weak and strong arrays in block order, used for continuation checks
 * ("does NEW go on with the next block of OLD?"), plus the index: the
 * distinct blocks sorted by (weak, strong, index), their runs of equal
 * weak sums grouped into buckets by a keyed mix, and a Bloom-style bit set
 * in front. Most positions in changed data miss, and the bit set (64 bits
 * per distinct weak sum, so about 1 in 64 false hits; 256 KiB for a 1 GiB
 * basis at 32 KiB blocks, sized for L2 cache) answers those with one load.
 *
 * Why buckets and a key: the weak sums come from whoever wrote the
 * signature. An unkeyed open-addressing table let a crafted 2 MB signature
 * whose sums all shared one slot take seconds to load and slowed every
 * lookup (quadratic in the signature). With the key random per process a
 * lookup is O(1) expected whatever the sums; with every bucket sorted by
 * weak sum and binary-searched when large, a lookup is O(log n) and the
 * build O(n log n) even for an author who knows the key. The build is a
 * sort plus a counting sort into buckets: no probing, no retries.
 *
 * Which block a window matches depends only on the sorted order of the
 * distinct blocks, never on the key or the bucket layout, so deltas are
 * byte-identical across processes, keys and backends.
 */
#include <errno.h>
#include <pthread.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* ---- the key ------------------------------------------------------------ */

static uint64_t g_key[2];
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

/* splitmix64 step, to spread a weak fallback seed over the key. */
static uint64_t spread(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void draw_key(uint64_t key[2])
{
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t r = getrandom(b + got, sizeof b - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got == sizeof b) {
        key[0] = pd_get_u64(b);
        key[1] = pd_get_u64(b + 8);
        return;
    }
    /* No kernel randomness (a very old kernel or a sandbox): a clock, the
     * process id and an address still differ per process. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                 ((uint64_t)getpid() << 17) ^ (uint64_t)(uintptr_t)&got;
    key[0] = spread(&s);
    key[1] = spread(&s);
}

static void init_key(void)
{
    draw_key(g_key);
}

void pd_table_key(uint64_t k0, uint64_t k1)
{
    pthread_once(&g_key_once, init_key);
    if (k0 == 0 && k1 == 0) {
        draw_key(g_key);
    } else {
        g_key[0] = k0;
        g_key[1] = k1;
    }
}

/* ---- the index ---------------------------------------------------------- */

static int cmp_item(const void *a, const void *b)
{
    const pd_witem *x = a, *y = b;
    if (x->weak != y->weak)
        return x->weak < y->weak ? -1 : 1;
    int c = memcmp(x->strong, y->strong, x->slen);
    if (c)
        return c;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static uint64_t pow2_at_least(uint64_t v)
{
    uint64_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

static unsigned log2_of(uint64_t pow2)
{
    unsigned lg = 0;
    while ((1ULL << lg) < pow2)
        lg++;
    return lg;
}

void pd_windex_free(pd_windex *x)
{
    free(x->uidx);
    free(x->runs);
    free(x->bucket);
    free(x->bloom);
    free(x->sieve);
    memset(x, 0, sizeof *x);
}

int pd_windex_build(pd_windex *x, pd_witem *items, uint64_t n)
{
    memset(x, 0, sizeof *x);
    pthread_once(&g_key_once, init_key);
    x->key0 = g_key[0];
    x->key1 = g_key[1];
    qsort(items, n, sizeof *items, cmp_item);

    /* Keep the first (lowest index) of every run of identical blocks. */
    uint64_t nu = 0, nruns = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (nu && items[nu - 1].weak == items[i].weak &&
            !memcmp(items[nu - 1].strong, items[i].strong, items[i].slen))
            continue;
        if (!nu || items[nu - 1].weak != items[i].weak)
            nruns++;
        items[nu++] = items[i];
    }
    x->nuniq = nu;
    x->nruns = nruns;
    uint64_t nb = pow2_at_least(nruns < 16 ? 16 : nruns);
    x->bucket_shift = 64 - log2_of(nb);
    /* 64 bits per distinct weak sum: about 0.1% false hits, and at most
     * 16 MiB of bit set (2^27 bits) for signatures of millions of blocks. */
    uint64_t bits = 64 * nruns < 4096 ? 4096 : 64 * nruns;
    if (bits > (1ULL << 27))
        bits = 1ULL << 27;
    bits = pow2_at_least(bits);
    x->bloom_shift = 64 - log2_of(bits);
    x->uidx = malloc((nu ? nu : 1) * sizeof *x->uidx);
    x->runs = malloc((nruns ? nruns : 1) * sizeof *x->runs);
    x->bucket = calloc(nb + 1, sizeof *x->bucket);
    x->bloom = calloc(bits / 64, sizeof *x->bloom);
    uint64_t sieve_bits = bits < (1ULL << 24) ? bits : 1ULL << 24;
    x->sieve_shift = 64 - log2_of(sieve_bits);
    x->sieve = calloc(sieve_bits / 64, sizeof *x->sieve);
    pd_wrun *byweak = malloc((nruns ? nruns : 1) * sizeof *byweak);
    if (!x->uidx || !x->runs || !x->bucket || !x->bloom || !x->sieve ||
        !byweak) {
        free(byweak);
        return PD_ERR_NOMEM;
    }

    /* The runs in weak-sum order, and the size of every bucket. */
    uint64_t r = 0;
    for (uint64_t i = 0; i < nu; i++) {
        x->uidx[i] = items[i].idx;
        if (i && items[i - 1].weak == items[i].weak) {
            if (byweak[r - 1].count < PD_MAX_CANDIDATES)
                byweak[r - 1].count++;
            continue;
        }
        uint64_t h = items[i].weak;
        byweak[r].weak = h;
        byweak[r].first = i;
        byweak[r].count = 1;
        r++;
        x->bucket[(pd_windex_mix(h, x->key0, x->key1) >> x->bucket_shift) +
                  1]++;
        uint64_t m = pd_bloom_mix(h);
        x->bloom[pd_bloom_word(x, m)] |= pd_bloom_mask(m);
        x->sieve[(h >> x->sieve_shift) >> 6] |= 1ULL << ((h >> x->sieve_shift) & 63);
    }
    /* Counting sort into buckets; taking the runs in weak order keeps every
     * bucket sorted by weak sum for the binary search. */
    for (uint64_t b = 0; b < nb; b++)
        x->bucket[b + 1] += x->bucket[b];
    uint64_t *fill = malloc(nb * sizeof *fill);
    if (!fill) {
        free(byweak);
        return PD_ERR_NOMEM;
    }
    memcpy(fill, x->bucket, nb * sizeof *fill);
    for (uint64_t i = 0; i < nruns; i++) {
        uint64_t b =
            pd_windex_mix(byweak[i].weak, x->key0, x->key1) >> x->bucket_shift;
        x->runs[fill[b]++] = byweak[i];
    }
    free(fill);
    free(byweak);
    return PD_OK;
}

/* ---- the native table --------------------------------------------------- */

void pd_sigtable_free(pd_sigtable *t)
{
    if (!t)
        return;
    free(t->weak);
    free(t->strong);
    pd_windex_free(&t->ix);
    free(t);
}

pd_sigtable *pd_sigtable_new(const uint8_t *entries, uint64_t nblocks,
                             uint32_t block_len, uint32_t strong_len,
                             int strong_kind, uint64_t basis_size, int *err)
{
    *err = PD_ERR_PARAM;
    if (block_len == 0 || !pd_strong_ok(strong_kind, strong_len))
        return NULL;
    /* The block count must be exactly what basis_size implies. */
    uint64_t want = basis_size / block_len + (basis_size % block_len != 0);
    if (nblocks != want) {
        *err = PD_ERR_SIGNATURE;
        return NULL;
    }
    if (nblocks > (SIZE_MAX / 64) / (PD_WEAK_LEN + strong_len)) {
        *err = PD_ERR_NOMEM;
        return NULL;
    }
    *err = PD_ERR_NOMEM;
    pd_sigtable *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->nblocks = nblocks;
    t->basis_size = basis_size;
    t->block_len = block_len;
    t->strong_len = strong_len;
    t->strong_kind = strong_kind;
    t->tail_len = (uint32_t)(basis_size % block_len);
    t->nfull = basis_size / block_len;
    pd_weak_out_table(block_len, t->out_tab);

    size_t entry = PD_WEAK_LEN + strong_len;
    t->weak = malloc((nblocks ? nblocks : 1) * sizeof *t->weak);
    t->strong = malloc((nblocks ? nblocks : 1) * strong_len);
    pd_witem *items = malloc((t->nfull ? t->nfull : 1) * sizeof *items);
    if (!t->weak || !t->strong || !items)
        goto fail;
    for (uint64_t i = 0; i < nblocks; i++) {
        t->weak[i] = pd_get_u64(entries + i * entry);
        memcpy(t->strong + i * strong_len, entries + i * entry + PD_WEAK_LEN,
               strong_len);
    }
    for (uint64_t i = 0; i < t->nfull; i++) {
        items[i].weak = t->weak[i];
        items[i].idx = i;
        items[i].strong = t->strong + i * strong_len;
        items[i].slen = strong_len;
    }
    if (pd_windex_build(&t->ix, items, t->nfull) != PD_OK)
        goto fail;
    free(items);
    *err = PD_OK;
    return t;

fail:
    free(items);
    pd_sigtable_free(t);
    return NULL;
}

int64_t pd_sigtable_match(const struct pd_sigtable *t, uint64_t h,
                          const uint8_t *data, uint8_t sh[PD_HASH_LEN],
                          int *have_sh)
{
    if (!pd_bloom_test(&t->ix, h))
        return -1;
    const pd_wrun *r = pd_windex_find(&t->ix, h);
    if (!r)
        return -1;
    if (!*have_sh) {
        pd_strong(t->strong_kind, data, t->block_len, sh, t->strong_len);
        *have_sh = 1;
    }
    return pd_windex_pick(&t->ix, r, sh, t->strong, t->strong_len);
}

int64_t pd_sigtable_find(const pd_sigtable *t, const uint8_t *data)
{
    if (!t->ix.nuniq)
        return -1;
    uint8_t sh[PD_HASH_LEN];
    int have = 0;
    return pd_sigtable_match(t, pd_weak(data, t->block_len), data, sh, &have);
}

uint64_t pd_sigtable_unique(const pd_sigtable *t)
{
    return t->ix.nuniq;
}
