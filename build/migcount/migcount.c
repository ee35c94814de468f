/* migcount: counts the pages of each pre-copy round of a live migration,
 * for `cargo xtask bench migrate` (build/src/migbench.rs). dom0 runs
 *
 *     xl migrate -s "" NAME "migcount | xl migrate-receive"
 *
 * so the sender's stream goes through it on its way to the receiver:
 * every byte is copied from stdin to stdout as it comes, and the libxc
 * part of the stream (docs/specs/libxc-migration-stream.pandoc in Xen's
 * tree: the image header "\xff x8 XENF", a domain header, then records
 * of a 32-bit type and length, bodies padded to 8 bytes) is followed on
 * the way. A PAGE_DATA record (type 1) carries a batch of pfns (count,
 * reserved, then `count` 64-bit pfns with the page type in bits 63:60)
 * and one 4 KiB page for each that has data. libxc's save sends every
 * round's dirty pages in increasing pfn order (it walks the dirty bitmap
 * from pfn 0), so a batch whose first pfn is not above the last batch's
 * last pfn starts a new round; the last round is the one sent after the
 * guest suspended. At the END record (type 0) it prints to stderr
 *
 *     MIGCOUNT rounds=N pages=P1,P2,...,PN pfns=F1,...,FN bytes=B
 *
 * (pages with data, pfns named, and stream bytes so far). xl's stderr
 * holds it. A stream that ends without its END record, or whose
 * receiver goes away (a failed migration), gets the same line at the
 * end, with " end=0". Nothing of
 * the stream is changed.
 *
 *     migcount hold ROUND PFN HELD GO
 *
 * also holds the stream at the first batch of round ROUND (or later)
 * whose first pfn is PFN or more: it creates the file HELD and stops
 * reading until the file GO exists (at most 600 s), so the sender stays
 * blocked there (its pipe is shrunk to one page) while dom0 does
 * something to the guest, which keeps running (tests/tests/
 * mobility_balloon.rs: `xl mem-set` during the pre-copy, once round 1
 * has gone past every pfn the balloon uses). The MIGCOUNT line then
 * ends with " held_round=R held_pfn=F held_ms=T".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUNDS 64
#define PFN_MASK ((1ull << 52) - 1)

static uint64_t pages[MAX_ROUNDS], pfns[MAX_ROUNDS];
static int rounds;
static uint64_t last_pfn;
static int have_last;
static unsigned long long total;

enum state { SEARCH, SKIP_HEADERS, REC_HDR, PAGE_HDR, PAGE_PFNS, SKIP };
static enum state st = SEARCH;
static unsigned char acc[8 * 1024 + 16];
static size_t acc_len, want;
static uint64_t skip;
static uint32_t rec_len, batch_count;
static unsigned char window[12];
static size_t window_len;
/* Holding: the round to hold at (0: none), the two files, how long. */
static int hold_round;
static uint64_t hold_pfn, held_at_pfn;
static const char *held_file, *go_file;
static int held, hold_due, held_in_round;
static long long held_ms = -1;

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p) {
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static uint64_t padded(uint32_t len) {
    return (uint64_t)len + ((8 - len % 8) % 8);
}

static int in_stream;

static void report(int ended) {
    fprintf(stderr, "MIGCOUNT rounds=%d pages=", rounds);
    for (int i = 0; i < rounds; i++) fprintf(stderr, "%s%llu", i ? "," : "", (unsigned long long)pages[i]);
    fprintf(stderr, " pfns=");
    for (int i = 0; i < rounds; i++) fprintf(stderr, "%s%llu", i ? "," : "", (unsigned long long)pfns[i]);
    fprintf(stderr, " bytes=%llu", total);
    if (hold_round)
        fprintf(stderr, " held_round=%d held_pfn=%llu held_ms=%lld", held_in_round,
                (unsigned long long)held_at_pfn, held_ms);
    fprintf(stderr, "%s\n", ended ? "" : " end=0");
}

static long long ms_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Round hold_round has begun: say so, wait for the go file. */
static void hold(void) {
    long long t0 = ms_now();
    FILE *f = fopen(held_file, "w");
    if (f) {
        fprintf(f, "round %d pfn %llu after %llu bytes\n", held_in_round, (unsigned long long)held_at_pfn, total);
        fclose(f);
    }
    while (access(go_file, F_OK) != 0 && ms_now() - t0 < 600000) usleep(20000);
    held_ms = ms_now() - t0;
}

static void batch(void) {
    /* acc holds count pfns. */
    uint64_t first = le64(acc) & PFN_MASK;
    if (!have_last || first <= last_pfn || rounds == 0) {
        if (rounds < MAX_ROUNDS) rounds++;
    }
    uint64_t data_pages = (rec_len - 8 - 8ull * batch_count) / 4096;
    if (hold_round && !held && !hold_due && rounds >= hold_round && first >= hold_pfn) {
        hold_due = 1;
        held_at_pfn = first;
        held_in_round = rounds;
    }
    pages[rounds - 1] += data_pages;
    pfns[rounds - 1] += batch_count;
    last_pfn = le64(acc + 8 * (batch_count - 1)) & PFN_MASK;
    have_last = 1;
}

/* Feeds one byte to the parser. */
static void feed(unsigned char b) {
    switch (st) {
    case SEARCH: {
        static const unsigned char sig[12] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'X', 'E', 'N', 'F'};
        if (window_len == 12) {
            memmove(window, window + 1, 11);
            window_len = 11;
        }
        window[window_len++] = b;
        if (window_len == 12 && !memcmp(window, sig, 12)) {
            /* The rest of the image header (12 bytes), the domain header (16). */
            skip = 12 + 16;
            st = SKIP_HEADERS;
            in_stream = 1;
            rounds = 0;
            have_last = 0;
            memset(pages, 0, sizeof pages);
            memset(pfns, 0, sizeof pfns);
            window_len = 0;
        }
        return;
    }
    case SKIP_HEADERS:
    case SKIP:
        if (--skip == 0) {
            st = REC_HDR;
            acc_len = 0;
            want = 8;
        }
        return;
    default:
        break;
    }
    acc[acc_len++] = b;
    if (acc_len < want) return;
    switch (st) {
    case REC_HDR: {
        uint32_t type = le32(acc);
        rec_len = le32(acc + 4);
        acc_len = 0;
        if (type == 0) { /* END */
            report(1);
            in_stream = 0;
            st = SEARCH;
            window_len = 0;
        } else if (type == 1 && rec_len >= 8) {
            st = PAGE_HDR;
            want = 8;
        } else if (rec_len == 0) {
            want = 8;
        } else {
            skip = padded(rec_len);
            st = SKIP;
        }
        return;
    }
    case PAGE_HDR:
        batch_count = le32(acc);
        acc_len = 0;
        if (batch_count == 0 || batch_count > 1024 || 8 + 8ull * batch_count > rec_len) {
            /* Not a batch as libxc writes them: skip the record. */
            skip = padded(rec_len) - 8;
            st = skip ? SKIP : REC_HDR;
            want = 8;
            return;
        }
        st = PAGE_PFNS;
        want = 8 * batch_count;
        return;
    case PAGE_PFNS:
        batch();
        acc_len = 0;
        skip = padded(rec_len) - 8 - 8ull * batch_count;
        want = 8;
        st = skip ? SKIP : REC_HDR;
        return;
    default:
        return;
    }
}

int main(int argc, char **argv) {
    static unsigned char buf[1 << 16];
    signal(SIGPIPE, SIG_IGN);
    if (argc == 6 && !strcmp(argv[1], "hold")) {
        hold_round = atoi(argv[2]);
        hold_pfn = strtoull(argv[3], NULL, 0);
        held_file = argv[4];
        go_file = argv[5];
        /* One page of pipe: held, the sender gets no further ahead. */
        fcntl(0, F_SETPIPE_SZ, 4096);
    } else if (argc != 1) {
        fprintf(stderr, "usage: migcount [hold ROUND PFN HELD GO]\n");
        return 2;
    }
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(1, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                /* The receiver went away (a failed migration): say what
                 * went through. */
                perror("migcount: write");
                if (in_stream) report(0);
                return 1;
            }
            off += w;
        }
        total += (unsigned long long)n;
        for (ssize_t i = 0; i < n; i++) feed(buf[i]);
        if (hold_due && !held) {
            held = 1;
            hold();
        }
    }
    if (in_stream) {
        report(0);
    }
    return 0;
}
