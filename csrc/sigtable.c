/** \file sigtable.c
 * The signature table: validate entries, deduplicate blocks, and index
 * them for the rolling search.
 *
 * Layout (see struct pd_sigtable in internal.h): per-block weak and strong
 * arrays in block order, used for continuation checks ("does NEW go on
 * with the next block of OLD?"), plus a sorted array of the distinct full
 * blocks with an open-addressing index from weak sum to the first entry of
 * its run, and a Bloom-style bit set in front of it. Most positions in
 * changed data miss, and the bit set (64 bits per distinct weak sum, so
 * about 1 in 64 false hits; 256 KiB for a 1 GiB basis at 32 KiB blocks,
 * sized for L2 cache) answers those with one load.
 */
#include "internal.h"

/* One distinct-block candidate while sorting. */
typedef struct {
    uint64_t weak;
    uint64_t idx;
    const uint8_t *strong;
    uint32_t slen;
} sort_item;

static int cmp_item(const void *a, const void *b)
{
    const sort_item *x = a, *y = b;
    if (x->weak != y->weak)
        return x->weak < y->weak ? -1 : 1;
    int c = memcmp(x->strong, y->strong, x->slen);
    if (c)
        return c;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

void pd_sigtable_free(pd_sigtable *t)
{
    if (!t)
        return;
    free(t->weak);
    free(t->strong);
    free(t->uweak);
    free(t->uidx);
    free(t->slot);
    free(t->bloom);
    free(t);
}

static uint64_t pow2_at_least(uint64_t v)
{
    uint64_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

pd_sigtable *pd_sigtable_new(const uint8_t *entries, uint64_t nblocks,
                             uint32_t block_len, uint32_t strong_len,
                             uint64_t basis_size, int *err)
{
    *err = PD_ERR_PARAM;
    if (block_len == 0 || strong_len < PD_MIN_STRONG ||
        strong_len > PD_MAX_STRONG)
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
    t->tail_len = (uint32_t)(basis_size % block_len);
    t->nfull = basis_size / block_len;
    pd_weak_out_table(block_len, t->out_tab);

    size_t entry = PD_WEAK_LEN + strong_len;
    t->weak = malloc((nblocks ? nblocks : 1) * sizeof *t->weak);
    t->strong = malloc((nblocks ? nblocks : 1) * strong_len);
    sort_item *items = malloc((t->nfull ? t->nfull : 1) * sizeof *items);
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
    qsort(items, t->nfull, sizeof *items, cmp_item);

    /* Keep the first (lowest index) of every run of identical blocks. */
    uint64_t nu = 0, nweak = 0;
    for (uint64_t i = 0; i < t->nfull; i++) {
        if (nu && items[nu - 1].weak == items[i].weak &&
            !memcmp(items[nu - 1].strong, items[i].strong, strong_len))
            continue;
        if (!nu || items[nu - 1].weak != items[i].weak)
            nweak++;
        items[nu++] = items[i];
    }
    t->nuniq = nu;
    t->uweak = malloc((nu ? nu : 1) * sizeof *t->uweak);
    t->uidx = malloc((nu ? nu : 1) * sizeof *t->uidx);
    uint64_t slots = pow2_at_least(2 * nweak < 16 ? 16 : 2 * nweak);
    t->tmask = slots - 1;
    t->slot = calloc(slots, sizeof *t->slot);
    /* 64 bits per distinct weak sum: about 1.5% false hits, and at most
     * 16 MiB of bit set (2^27 bits) for signatures of millions of blocks. */
    uint64_t bits = 64 * nweak < 4096 ? 4096 : 64 * nweak;
    if (bits > (1ULL << 27))
        bits = 1ULL << 27;
    bits = pow2_at_least(bits);
    unsigned lg = 0;
    while ((1ULL << lg) < bits)
        lg++;
    t->bloom_shift = 64 - lg;
    t->bloom = calloc(bits / 64, sizeof *t->bloom);
    if (!t->uweak || !t->uidx || !t->slot || !t->bloom)
        goto fail;
    for (uint64_t i = 0; i < nu; i++) {
        t->uweak[i] = items[i].weak;
        t->uidx[i] = items[i].idx;
        if (i && items[i - 1].weak == items[i].weak)
            continue;
        uint64_t s = pd_slot_of(t, items[i].weak);
        while (t->slot[s])
            s = (s + 1) & t->tmask;
        t->slot[s] = i + 1;
        uint64_t b = pd_bloom_bit(t, items[i].weak);
        t->bloom[b >> 6] |= 1ULL << (b & 63);
    }
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
    if (!pd_bloom_test(t, h))
        return -1;
    uint64_t s = pd_slot_of(t, h);
    for (;;) {
        uint64_t v = t->slot[s];
        if (!v)
            return -1;
        if (t->uweak[v - 1] == h) {
            /* Walk the run of distinct blocks sharing this weak sum. */
            uint64_t i = v - 1;
            for (int k = 0; k < PD_MAX_CANDIDATES && i < t->nuniq &&
                            t->uweak[i] == h;
                 k++, i++) {
                if (!*have_sh) {
                    pd_blake3_hash(data, t->block_len, sh, PD_HASH_LEN);
                    *have_sh = 1;
                }
                uint64_t b = t->uidx[i];
                if (!memcmp(sh, t->strong + b * t->strong_len,
                            t->strong_len))
                    return (int64_t)b;
            }
            return -1;
        }
        s = (s + 1) & t->tmask;
    }
}

int64_t pd_sigtable_find(const pd_sigtable *t, const uint8_t *data)
{
    if (!t->nuniq)
        return -1;
    uint8_t sh[PD_HASH_LEN];
    int have = 0;
    return pd_sigtable_match(t, pd_weak(data, t->block_len), data, sh, &have);
}

uint64_t pd_sigtable_unique(const pd_sigtable *t)
{
    return t->nuniq;
}
