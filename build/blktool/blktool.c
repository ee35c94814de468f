/* blktool: block-device throughput and IOPS for the Linux PV DomU of
 * `cargo xtask bench blk` (busybox dd cannot do random I/O at a queue
 * depth, and fio is not in the ramdisk). O_DIRECT, so the page cache
 * measures nothing; queue depth > 1 through the kernel's native AIO
 * (io_submit), called directly (no libaio). Same tests and random
 * offsets as the Rust guest's `blk.mode=bench`.
 *
 *   blktool DEV SPAN_BYTES IOS   -> one BLKTOOL line per test
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + t.tv_nsec;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void line(const char *test, uint64_t bytes, uint64_t ios, uint64_t ns) {
    if (!ns) ns = 1;
    printf("BLKTOOL test=%s bytes=%llu ios=%llu ns=%llu kib_s=%llu iops=%llu\n", test,
           (unsigned long long)bytes, (unsigned long long)ios, (unsigned long long)ns,
           (unsigned long long)(bytes * 1000000000ull / 1024 / ns),
           (unsigned long long)(ios * 1000000000ull / ns));
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: blktool DEV SPAN_BYTES IOS\n");
        return 2;
    }
    const char *dev = argv[1];
    uint64_t span = strtoull(argv[2], 0, 0) / 4096 * 4096;
    uint64_t ios = strtoull(argv[3], 0, 0);
    uint64_t blocks = span / 4096;
    int fd = open(dev, O_RDWR | O_DIRECT);
    if (fd < 0) {
        perror(dev);
        printf("BLKTOOL test=error open\n");
        return 1;
    }
    const size_t chunk = 1 << 20;
    unsigned char *buf;
    if (posix_memalign((void **)&buf, 4096, chunk)) return 1;
    for (size_t i = 0; i < chunk; i++) buf[i] = (unsigned char)(i * 131 + 7);

    for (int w = 1; w >= 0; w--) {
        uint64_t t0 = now_ns();
        for (uint64_t off = 0; off < span; off += chunk) {
            size_t n = span - off < chunk ? span - off : chunk;
            ssize_t r = w ? pwrite(fd, buf, n, off) : pread(fd, buf, n, off);
            if (r != (ssize_t)n) {
                printf("BLKTOOL test=error seq %s at %llu\n", w ? "write" : "read",
                       (unsigned long long)off);
                return 1;
            }
        }
        if (w) fdatasync(fd);
        line(w ? "seq-write" : "seq-read", span, (span + chunk - 1) / chunk, now_ns() - t0);
    }

    aio_context_t ctx = 0;
    if (syscall(SYS_io_setup, 32, &ctx) < 0) {
        perror("io_setup");
        printf("BLKTOOL test=error io_setup\n");
        return 1;
    }
    struct iocb cbs[32], *cbp[32];
    struct io_event evs[32];
    int depths[2] = {1, 32};
    for (int di = 0; di < 2; di++) {
        int depth = depths[di];
        for (int w = 0; w <= 1; w++) {
            uint64_t t0 = now_ns();
            uint64_t left = ios;
            while (left > 0) {
                int n = left < (uint64_t)depth ? (int)left : depth;
                for (int i = 0; i < n; i++) {
                    uint64_t off = (next() % blocks) * 4096;
                    if (depth == 1) {
                        ssize_t r = w ? pwrite(fd, buf, 4096, off) : pread(fd, buf, 4096, off);
                        if (r != 4096) {
                            printf("BLKTOOL test=error rand at %llu\n", (unsigned long long)off);
                            return 1;
                        }
                        continue;
                    }
                    memset(&cbs[i], 0, sizeof cbs[i]);
                    cbs[i].aio_fildes = fd;
                    cbs[i].aio_lio_opcode = w ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
                    cbs[i].aio_buf = (uint64_t)(uintptr_t)(buf + i * 4096);
                    cbs[i].aio_nbytes = 4096;
                    cbs[i].aio_offset = off;
                    cbp[i] = &cbs[i];
                }
                if (depth > 1) {
                    if (syscall(SYS_io_submit, ctx, n, cbp) != n) {
                        perror("io_submit");
                        printf("BLKTOOL test=error io_submit\n");
                        return 1;
                    }
                    int got = 0;
                    while (got < n) {
                        long r = syscall(SYS_io_getevents, ctx, 1, n - got, evs, NULL);
                        if (r <= 0) {
                            printf("BLKTOOL test=error io_getevents\n");
                            return 1;
                        }
                        for (long k = 0; k < r; k++)
                            if (evs[k].res != 4096) {
                                printf("BLKTOOL test=error aio res %lld\n", (long long)evs[k].res);
                                return 1;
                            }
                        got += r;
                    }
                }
                left -= n;
            }
            char name[32];
            snprintf(name, sizeof name, "rand-%s-qd%d", w ? "write" : "read", depth);
            line(name, ios * 4096, ios, now_ns() - t0);
        }
    }
    fdatasync(fd);
    printf("BLKTOOL test=done\n");
    return 0;
}
