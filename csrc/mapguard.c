/** \file mapguard.c
 * Kernels over a read-only mapping of a file that may shrink under them.
 *
 * Why: the delta reads NEW through mapped windows instead of read(), which
 * saves the copy out of the page cache into a buffer too large to stay in
 * the CPU cache (~0.5 system-s per GiB here). But a mapped page past the
 * file's end - the file was truncated while we read it - raises SIGBUS on
 * access, which would kill the process.
 *
 * So every call that touches a mapping runs under a guard: the thread
 * sets a thread-local jump buffer (sigsetjmp) before the call, and the
 * process-wide SIGBUS handler, installed once, jumps back to it; the call
 * then returns PD_ERR_IO and the caller reports that NEW changed while it
 * was read. A SIGBUS on a thread outside a guarded call goes to the
 * handler that was there before (Python's faulthandler, or the default:
 * the process dies as it would have).
 *
 * What a jump abandons: the kernels guarded here take no locks and make no
 * allocations while they read the mapping, so leaving one midway loses
 * nothing but its own state - the job or hasher is unusable afterwards and
 * the caller discards it (it raises).
 *
 * pd_map_call runs any such function under the guard for the other C
 * files (copy.c's read-back of the patch's result, blake3.c's parallel
 * digest over a mapping, one guard per worker thread). Its function must
 * keep the same rules: no allocation, no lock, no thread started or joined
 * inside - whatever it needs is made before the call.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>

#include "internal.h"

/* The guarded call in progress on this thread, or NULL. Written before the
 * call touches the mapping, so the handler's read needs no allocation. */
static __thread sigjmp_buf *guard_jump;

static struct sigaction previous; /* SIGBUS's disposition before ours */
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int installed;

static void on_sigbus(int sig, siginfo_t *info, void *ctx)
{
    sigjmp_buf *jump = guard_jump;
    if (jump != NULL) {
        guard_jump = NULL;
        siglongjmp(*jump, 1);
    }
    /* not a guarded read: whatever handled SIGBUS before us */
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction != NULL) {
            previous.sa_sigaction(sig, info, ctx);
            return;
        }
    } else if (previous.sa_handler != SIG_DFL &&
               previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
        return;
    }
    /* the default: returning re-runs the faulting access, which now
     * terminates the process as it would have without us */
    signal(sig, SIG_DFL);
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &previous) == 0)
        installed = 1;
}

int pd_map_guard(void)
{
    pthread_once(&install_once, install);
    guard_jump = NULL; /* the thread's slot exists from here on */
    return installed ? PD_OK : PD_ERR_PARAM;
}

/* Run CALL under the guard; a SIGBUS inside returns FAULT instead. */
#define GUARDED(FAULT, CALL)                                                   \
    do {                                                                       \
        sigjmp_buf jump;                                                       \
        if (pd_map_guard() != PD_OK)                                           \
            return FAULT;                                                      \
        if (sigsetjmp(jump, 1)) {                                              \
            guard_jump = NULL;                                                 \
            return FAULT;                                                      \
        }                                                                      \
        guard_jump = &jump;                                                    \
        CALL;                                                                  \
        guard_jump = NULL;                                                     \
    } while (0)

int pd_delta_scan_mapped(pd_delta *d, const uint8_t *in, size_t in_len,
                         int eof, uint8_t *out, size_t out_cap,
                         size_t *in_used, size_t *out_used)
{
    int rc = PD_ERR_IO;
    GUARDED(PD_ERR_IO, rc = pd_delta_scan(d, in, in_len, eof, out, out_cap,
                                          in_used, out_used));
    return rc;
}

int pd_blake3_update_mapped(pd_blake3 *h, const uint8_t *data, size_t len)
{
    GUARDED(PD_ERR_IO, pd_blake3_update(h, data, len));
    return PD_OK;
}

int pd_delta_prescan_mapped(const pd_sigtable *t, const uint8_t *buf,
                            size_t len, size_t from, size_t to, uint64_t base,
                            uint64_t *hits, size_t cap, uint64_t *done_to,
                            size_t *count)
{
    size_t n = 0;
    GUARDED(PD_ERR_IO, n = pd_delta_prescan(t, buf, len, from, to, base, hits,
                                            cap, done_to));
    *count = n;
    return PD_OK;
}

int pd_rs_delta_scan_mapped(pd_rs_delta *d, const uint8_t *in, size_t in_len,
                            int eof, uint8_t *out, size_t out_cap,
                            size_t *in_used, size_t *out_used)
{
    int rc = PD_ERR_IO;
    GUARDED(PD_ERR_IO, rc = pd_rs_delta_scan(d, in, in_len, eof, out, out_cap,
                                             in_used, out_used));
    return rc;
}

int pd_map_call(void (*fn)(void *), void *arg)
{
    sigjmp_buf jump;
    if (pd_map_guard() != PD_OK)
        return PD_ERR_PARAM;
    /* a guard already set on this thread is put back afterwards */
    sigjmp_buf *volatile outer = guard_jump;
    if (sigsetjmp(jump, 1)) {
        guard_jump = outer;
        return PD_ERR_IO;
    }
    guard_jump = &jump;
    fn(arg);
    guard_jump = outer;
    return PD_OK;
}
