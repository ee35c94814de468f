/* httptool: HTTP load, misbehaving clients, and a small epoll server, for
 * dom0 and the Linux PV DomU of `cargo xtask bench http` and the http
 * boot test. Static, no resolver (IPv4 literals only), timed with
 * CLOCK_MONOTONIC.
 *
 *   httptool load IP PORT PATH CONNS REQUESTS KEEPALIVE
 *        REQUESTS GETs of PATH from CONNS clients at once (epoll); with
 *        KEEPALIVE=1 each client keeps its connection, else one connection
 *        per request (`Connection: close`). Latency: from the request's
 *        send (keep-alive) or the connect (not) to its last body byte.
 *        A request fails on a refused/reset connection, an early close,
 *        a malformed response or 10 s without its answer.
 *   httptool hold IP PORT N MODE WAIT_MS
 *        N connections that misbehave: MODE idle (send nothing), half
 *        (half a request head, then nothing), drip (a head that never
 *        ends, one byte every 250 ms). Prints "HTTPTOOL hold-ready" once
 *        all are connected, then waits up to WAIT_MS for the server to
 *        close them: when (ms after each one's connect, and half's write)
 *        and what status it sent.
 *   httptool flood IP PORT N WAIT_MS
 *        N connections at once, sending nothing, for WAIT_MS: how many
 *        were refused (reset), answered 503 (with Retry-After), closed
 *        otherwise, or held open (accepted). Then each held one sends a
 *        GET / and must get 200: established connections still served.
 *   httptool pipe IP PORT N
 *        N pipelined requests in one go on one connection (every third for
 *        a missing page), the last with `Connection: close`; the answers
 *        must come in order: 200, 200, 404, ...
 *   httptool big IP PORT BYTES
 *        a request whose head carries a BYTES-long field: the status.
 *   httptool serve PORT [WORKERS]
 *        a small epoll HTTP/1.1 server (keep-alive, pipelining,
 *        Content-Length): GET /bench answers the guest's 128-byte body,
 *        anything else 404. WORKERS (default 1) processes, each with its
 *        own SO_REUSEPORT listener and epoll loop (the kernel spreads
 *        connections over them, as nginx's workers on several CPUs).
 *
 * Every mode prints one line: "HTTPTOOL <mode> key=value ...".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The same 128 bytes as the guest's BENCH_BODY (kernel/src/apps/http.rs). */
static const char BODY[] =
    "xenpv bench body: 128 bytes of text served by GET /bench, the same "
    "from the guest and from Linux.\n.............................\n";

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void die(const char *what) {
    printf("HTTPTOOL error %s errno=%d %s\n", what, errno, strerror(errno));
    fflush(stdout);
    exit(2);
}

static struct sockaddr_in addr_of(const char *ip, int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
        errno = EINVAL;
        die("address");
    }
    return a;
}

static void nonblock(int s) { fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK); }

static void nodelay(int s) {
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Starts a non-blocking connect; -1 when it failed at once. */
static int start_connect(const struct sockaddr_in *a) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s < 0) die("socket");
    nodelay(s);
    if (connect(s, (const struct sockaddr *)a, sizeof *a) < 0 && errno != EINPROGRESS) {
        close(s);
        return -1;
    }
    return s;
}

static int blocking_connect(const struct sockaddr_in *a) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) die("socket");
    nodelay(s);
    if (connect(s, (const struct sockaddr *)a, sizeof *a) < 0) die("connect");
    return s;
}

/* A response in buf[0..len]: 0 incomplete, -1 malformed, else its total
 * length; *status and *close (Connection: close) filled in. */
static long parse_response(const char *buf, long len, int *status, int *close_after) {
    const char *end = memmem(buf, (size_t)len, "\r\n\r\n", 4);
    if (!end) return len > 16384 ? -1 : 0;
    long head = end + 4 - buf;
    if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0) return -1;
    *status = atoi(buf + 9);
    long cl = -1;
    *close_after = 0;
    for (const char *p = buf; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        if (strncasecmp(p, "Content-Length:", 15) == 0) cl = atol(p + 15);
        if (strncasecmp(p, "Connection:", 11) == 0 && strncasecmp(p + 11, " close", 6) == 0)
            *close_after = 1;
        p = nl + 1;
    }
    if (cl < 0) return -1;
    return len >= head + cl ? head + cl : 0;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- load ---- */

struct client {
    int fd;
    int connected;
    uint64_t t0; /* latency start */
    uint64_t deadline;
    long len;
    int reqs;
    char buf[8192];
};

static int mode_load(const char *ip, int port, const char *path, int conns, long requests, int keep) {
    struct sockaddr_in a = addr_of(ip, port);
    char req[512];
    int reqlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", path, ip,
                          keep ? "" : "Connection: close\r\n");
    struct client *c = calloc((size_t)conns, sizeof *c);
    uint32_t *lat = calloc((size_t)requests, sizeof *lat);
    int ep = epoll_create1(0);
    if (!c || !lat || ep < 0) die("setup");
    long issued = 0, done = 0, ok = 0, failed = 0, non200 = 0, connects = 0, s503 = 0;
    long nlat = 0;
    uint64_t start = now_ns();

    /* Issues the next request on client i (connecting first if needed). */
    /* Failures by cause: connect refused/failed, closed before the
     * answer, reset, malformed answer, write failed, 10 s timeout. */
    long f_connect = 0, f_eof = 0, f_reset = 0, f_bad = 0, f_write = 0, f_timeout = 0;
    #define FAIL(i, why) do { why++; failed++; done++; close(c[i].fd); c[i].fd = -1; } while (0)
    for (int i = 0; i < conns; i++) c[i].fd = -1;
    for (;;) {
        for (int i = 0; i < conns; i++) {
            if (c[i].fd >= 0 || issued >= requests) continue;
            uint64_t t = now_ns();
            int s = start_connect(&a);
            connects++;
            issued++;
            if (s < 0) {
                f_connect++;
                failed++;
                done++;
                continue;
            }
            c[i] = (struct client){.fd = s, .t0 = t, .deadline = t + 10000000000ull};
            struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)i};
            epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
        }
        if (done >= requests) break;
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 100);
        uint64_t t = now_ns();
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            struct client *cl = &c[i];
            if (cl->fd < 0) continue;
            if (!cl->connected) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(cl->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err || (evs[k].events & (EPOLLERR | EPOLLHUP))) {
                    FAIL(i, f_connect);
                    continue;
                }
                cl->connected = 1;
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
                epoll_ctl(ep, EPOLL_CTL_MOD, cl->fd, &ev);
                if (write(cl->fd, req, (size_t)reqlen) != reqlen) {
                    FAIL(i, f_write);
                    continue;
                }
                if (keep) cl->t0 = now_ns();
                continue;
            }
            long r = read(cl->fd, cl->buf + cl->len, sizeof cl->buf - (size_t)cl->len);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                if (r == 0) FAIL(i, f_eof);
                else FAIL(i, f_reset);
                continue;
            }
            cl->len += r;
            int status = 0, close_after = 0;
            long total = parse_response(cl->buf, cl->len, &status, &close_after);
            if (total == 0) continue;
            if (total < 0) {
                FAIL(i, f_bad);
                continue;
            }
            done++;
            if (status == 200) ok++; else non200++;
            if (status == 503) s503++;
            if (nlat < requests) lat[nlat++] = (uint32_t)((t - cl->t0) / 1000);
            memmove(cl->buf, cl->buf + total, (size_t)(cl->len - total));
            cl->len -= total;
            cl->reqs++;
            if (keep && !close_after && issued < requests) {
                issued++;
                cl->t0 = now_ns();
                cl->deadline = cl->t0 + 10000000000ull;
                if (write(cl->fd, req, (size_t)reqlen) != reqlen) FAIL(i, f_write);
            } else {
                close(cl->fd);
                cl->fd = -1;
            }
        }
        for (int i = 0; i < conns; i++)
            if (c[i].fd >= 0 && t > c[i].deadline) FAIL(i, f_timeout);
    }
    uint64_t ns = now_ns() - start;
    qsort(lat, (size_t)nlat, sizeof *lat, cmp_u32);
    uint32_t p50 = nlat ? lat[nlat / 2] : 0, p99 = nlat ? lat[(nlat * 99) / 100] : 0;
    uint32_t mx = nlat ? lat[nlat - 1] : 0;
    printf("HTTPTOOL load conns=%d keepalive=%d requests=%ld ok=%ld failed=%ld non200=%ld "
           "status503=%ld connects=%ld ns=%llu per_s=%.1f p50_us=%u p99_us=%u max_us=%u "
           "fail_connect=%ld fail_eof=%ld fail_reset=%ld fail_bad=%ld fail_write=%ld "
           "fail_timeout=%ld\n",
           conns, keep, requests, ok, failed, non200, s503, connects, (unsigned long long)ns,
           (double)ok * 1e9 / (double)ns, p50, p99, mx, f_connect, f_eof, f_reset, f_bad, f_write,
           f_timeout);
    return failed == 0 && non200 == 0 ? 0 : 1;
}

/* ---- hold ---- */

static int mode_hold(const char *ip, int port, int n, const char *mode, int wait_ms) {
    struct sockaddr_in a = addr_of(ip, port);
    int *fd = calloc((size_t)n, sizeof *fd);
    long *closed_ms = calloc((size_t)n, sizeof *closed_ms);
    int *status = calloc((size_t)n, sizeof *status);
    static const char half[] = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    int drip = strcmp(mode, "drip") == 0;
    uint64_t *since = calloc((size_t)n, sizeof *since);
    for (int i = 0; i < n; i++) {
        fd[i] = blocking_connect(&a);
        if (strcmp(mode, "half") == 0 && write(fd[i], half, sizeof half - 1) < 0) die("write");
        /* Each connection's close is timed from here: the server's clock
         * for it started earlier only by the handshake's last leg. */
        since[i] = now_ns();
        closed_ms[i] = -1;
    }
    uint64_t t0 = now_ns();
    printf("HTTPTOOL hold-ready mode=%s conns=%d\n", mode, n);
    fflush(stdout);
    int open = n, resets = 0;
    uint64_t next_drip = t0;
    long dripped = 0;
    while (open > 0 && now_ns() - t0 < (uint64_t)wait_ms * 1000000ull) {
        if (drip && now_ns() >= next_drip) {
            for (int i = 0; i < n; i++)
                if (closed_ms[i] < 0) (void)!write(fd[i], dripped == 0 ? "G" : "x", 1);
            dripped++;
            next_drip += 250000000ull;
        }
        struct pollfd *p = calloc((size_t)n, sizeof *p);
        for (int i = 0; i < n; i++) p[i] = (struct pollfd){.fd = closed_ms[i] < 0 ? fd[i] : -1, .events = POLLIN};
        poll(p, (nfds_t)n, 50);
        for (int i = 0; i < n; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[4096];
            long r = read(fd[i], buf, sizeof buf);
            if (r > 0) {
                if (status[i] == 0 && r > 12 && memcmp(buf, "HTTP/1.", 7) == 0) status[i] = atoi(buf + 9);
                continue;
            }
            if (r < 0 && errno == ECONNRESET) resets++;
            closed_ms[i] = (long)((now_ns() - since[i]) / 1000000);
            open--;
        }
        free(p);
    }
    long mn = -1, mx = -1;
    int st408 = 0, st_other = 0, silent = 0;
    for (int i = 0; i < n; i++) {
        if (closed_ms[i] >= 0) {
            if (mn < 0 || closed_ms[i] < mn) mn = closed_ms[i];
            if (closed_ms[i] > mx) mx = closed_ms[i];
        }
        if (status[i] == 408) st408++;
        else if (status[i]) st_other++;
        else silent++;
        close(fd[i]);
    }
    printf("HTTPTOOL hold mode=%s conns=%d closed=%d min_ms=%ld max_ms=%ld status408=%d "
           "status_other=%d no_answer=%d resets=%d\n",
           mode, n, n - open, mn, mx, st408, st_other, silent, resets);
    return 0;
}

/* ---- flood ---- */

static int mode_flood(const char *ip, int port, int n, int wait_ms) {
    struct sockaddr_in a = addr_of(ip, port);
    int *fd = calloc((size_t)n, sizeof *fd);
    int *state = calloc((size_t)n, sizeof *state); /* 0 pending 1 open 2 refused 3 503 4 closed */
    int *retry = calloc((size_t)n, sizeof *retry);
    for (int i = 0; i < n; i++) {
        fd[i] = start_connect(&a);
        if (fd[i] < 0) state[i] = 2;
    }
    uint64_t t0 = now_ns();
    while (now_ns() - t0 < (uint64_t)wait_ms * 1000000ull) {
        struct pollfd *p = calloc((size_t)n, sizeof *p);
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd){.fd = state[i] <= 1 ? fd[i] : -1,
                                   .events = state[i] == 0 ? POLLOUT : POLLIN};
        poll(p, (nfds_t)n, 50);
        for (int i = 0; i < n; i++) {
            if (!p[i].revents) continue;
            if (state[i] == 0) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(fd[i], SOL_SOCKET, SO_ERROR, &err, &el);
                state[i] = err ? 2 : 1;
                continue;
            }
            char buf[1024];
            long r = read(fd[i], buf, sizeof buf - 1);
            if (r > 0) {
                buf[r] = 0;
                if (strncmp(buf, "HTTP/1.1 503", 12) == 0) {
                    state[i] = 3;
                    retry[i] = strcasestr(buf, "\r\nRetry-After: ") != NULL;
                }
                continue;
            }
            if (r < 0 && errno == EAGAIN) continue;
            /* A reset on an established connection that had no answer
             * counts as refused too (smoltcp resets a SYN-ACKed socket
             * only when aborting). */
            state[i] = (r < 0 && (errno == ECONNRESET || errno == ECONNREFUSED)) ? 2 : 4;
        }
        free(p);
    }
    int pending = 0, open = 0, refused = 0, s503 = 0, with_retry = 0, closed = 0, served = 0;
    for (int i = 0; i < n; i++) {
        switch (state[i]) {
        case 0: pending++; break;
        case 1: open++; break;
        case 2: refused++; break;
        case 3: s503++; with_retry += retry[i]; break;
        default: closed++;
        }
    }
    /* The accepted ones are still served. Every request is written
     * before any answer is read: one at a time, the last ones would sit
     * idle while the first are answered, and on a slow machine outlive
     * the guest's idle timeout (a timing the test must not depend on). */
    int *asked = calloc((size_t)n, sizeof *asked);
    for (int i = 0; i < n; i++) {
        if (state[i] != 1) continue;
        int fl = fcntl(fd[i], F_GETFL);
        fcntl(fd[i], F_SETFL, fl & ~O_NONBLOCK);
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fd[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char req[128];
        int l = snprintf(req, sizeof req, "GET /bench HTTP/1.1\r\nHost: %s\r\n\r\n", ip);
        asked[i] = write(fd[i], req, (size_t)l) == l;
    }
    for (int i = 0; i < n; i++) {
        if (!asked[i]) continue;
        char buf[4096];
        long len = 0;
        int status = 0, ca = 0;
        while (len < (long)sizeof buf) {
            long r = read(fd[i], buf + len, sizeof buf - (size_t)len);
            if (r <= 0) break;
            len += r;
            if (parse_response(buf, len, &status, &ca) > 0) break;
        }
        if (status == 200) served++;
    }
    free(asked);
    for (int i = 0; i < n; i++)
        if (fd[i] >= 0) close(fd[i]);
    printf("HTTPTOOL flood conns=%d open=%d refused=%d status503=%d retry_after=%d closed=%d "
           "pending=%d served_after=%d\n",
           n, open, refused, s503, with_retry, closed, pending, served);
    return 0;
}

/* ---- pipe ---- */

static int mode_pipe(const char *ip, int port, int n) {
    struct sockaddr_in a = addr_of(ip, port);
    int s = blocking_connect(&a);
    size_t cap = (size_t)n * 96 + 64, len = 0;
    char *out = malloc(cap);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, cap - len, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n",
                                i % 3 == 2 ? "/nope" : "/bench", ip,
                                i == n - 1 ? "Connection: close\r\n" : "");
    nonblock(s);
    size_t sent = 0, inlen = 0, incap = (size_t)n * 512 + 4096;
    char *in = malloc(incap);
    uint64_t t0 = now_ns();
    int eof = 0;
    while (!eof && now_ns() - t0 < 60000000000ull) {
        struct pollfd p = {.fd = s, .events = POLLIN | (sent < len ? POLLOUT : 0)};
        poll(&p, 1, 100);
        if (sent < len && (p.revents & POLLOUT)) {
            long w = write(s, out + sent, len - sent);
            if (w > 0) sent += (size_t)w;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            long r = read(s, in + inlen, incap - inlen);
            if (r > 0) inlen += (size_t)r;
            else if (r == 0 || errno != EAGAIN) eof = 1;
        }
    }
    int got = 0, bad = 0;
    size_t at = 0;
    while (at < inlen) {
        int status = 0, ca = 0;
        long t = parse_response(in + at, (long)(inlen - at), &status, &ca);
        if (t <= 0) {
            bad++;
            break;
        }
        int want = got % 3 == 2 ? 404 : 200;
        if (status != want) bad++;
        if (want == 200 && (t < 128 || memcmp(in + at + t - 128, BODY, 128) != 0)) bad++;
        got++;
        at += (size_t)t;
    }
    printf("HTTPTOOL pipe requests=%d sent_bytes=%zu responses=%d out_of_order=%d eof=%d\n", n, sent,
           got, bad, eof);
    return got == n && bad == 0 ? 0 : 1;
}

/* ---- big ---- */

static int mode_big(const char *ip, int port, int bytes) {
    struct sockaddr_in a = addr_of(ip, port);
    int s = blocking_connect(&a);
    char *req = malloc((size_t)bytes + 256);
    int l = snprintf(req, 256, "GET / HTTP/1.1\r\nHost: %s\r\nX-Big: ", ip);
    memset(req + l, 'b', (size_t)bytes);
    l += bytes;
    l += snprintf(req + l, 8, "\r\n\r\n");
    struct timeval tv = {.tv_sec = 20};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    long w = write(s, req, (size_t)l);
    char buf[4096];
    long len = 0, r;
    while ((r = read(s, buf + len, sizeof buf - 1 - (size_t)len)) > 0) len += r;
    buf[len] = 0;
    int status = len > 12 && memcmp(buf, "HTTP/1.", 7) == 0 ? atoi(buf + 9) : 0;
    printf("HTTPTOOL big bytes=%d written=%ld status=%d\n", bytes, w, status);
    return 0;
}

/* ---- serve ---- */

struct sconn {
    char in[8192];
    long inlen;
    char *out;
    long outlen, outcap;
    int closing;
};

static void queue(struct sconn *c, const char *p, long n) {
    if (c->outlen + n > c->outcap) {
        c->outcap = (c->outlen + n) * 2;
        c->out = realloc(c->out, (size_t)c->outcap);
    }
    memcpy(c->out + c->outlen, p, (size_t)n);
    c->outlen += n;
}

static int mode_serve(int port, int workers) {
    signal(SIGPIPE, SIG_IGN);
    if (workers < 1 || workers > 64) {
        errno = EINVAL;
        die("workers");
    }
    /* Workers 1..N-1 are children; this process is worker 0. */
    for (int w = 1; w < workers; w++) {
        pid_t p = fork();
        if (p < 0) die("fork");
        if (p == 0) break;
    }
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (workers > 1) setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1024) < 0) die("listen");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    struct sconn **conns = calloc(65536, sizeof *conns);
    printf("HTTPTOOL serve port=%d workers=%d\n", port, workers);
    fflush(stdout);
    for (;;) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, -1);
        for (int k = 0; k < n; k++) {
            int fd = evs[k].data.fd;
            if (fd == l) {
                int c;
                while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= 65536) {
                        close(c);
                        continue;
                    }
                    nodelay(c);
                    conns[c] = calloc(1, sizeof **conns);
                    struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
                }
                continue;
            }
            struct sconn *c = conns[fd];
            int dead = 0;
            if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                long r = read(fd, c->in + c->inlen, sizeof c->in - (size_t)c->inlen);
                if (r <= 0 && !(r < 0 && errno == EAGAIN)) dead = 1;
                if (r > 0) c->inlen += r;
                char *end;
                while (!c->closing && (end = memmem(c->in, (size_t)c->inlen, "\r\n\r\n", 4))) {
                    long head = end + 4 - c->in;
                    int bench = c->inlen > 11 && memcmp(c->in, "GET /bench ", 11) == 0;
                    int close_it = strcasestr(c->in, "\r\nConnection: close") != NULL &&
                                   strcasestr(c->in, "\r\nConnection: close") < end;
                    char h[256];
                    const char *body = bench ? BODY : "not found\n";
                    long bl = bench ? 128 : 10;
                    int hl = snprintf(h, sizeof h,
                                      "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: "
                                      "%ld\r\nConnection: %s\r\n\r\n",
                                      bench ? "200 OK" : "404 Not Found", bl,
                                      close_it ? "close" : "keep-alive");
                    queue(c, h, hl);
                    queue(c, body, bl);
                    memmove(c->in, c->in + head, (size_t)(c->inlen - head));
                    c->inlen -= head;
                    c->closing = close_it;
                }
                if (c->inlen == (long)sizeof c->in) dead = 1;
            }
            if (!dead && c->outlen > 0) {
                long w = write(fd, c->out, (size_t)c->outlen);
                if (w > 0) {
                    memmove(c->out, c->out + w, (size_t)(c->outlen - w));
                    c->outlen -= w;
                } else if (w < 0 && errno != EAGAIN) {
                    dead = 1;
                }
                struct epoll_event e = {.events = EPOLLIN | (c->outlen ? EPOLLOUT : 0), .data.fd = fd};
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
            }
            if (dead || (c->closing && c->outlen == 0)) {
                close(fd);
                free(c->out);
                free(c);
                conns[fd] = NULL;
            }
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 8 && strcmp(argv[1], "load") == 0)
        return mode_load(argv[2], atoi(argv[3]), argv[4], atoi(argv[5]), atol(argv[6]), atoi(argv[7]));
    if (argc >= 7 && strcmp(argv[1], "hold") == 0)
        return mode_hold(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5], atoi(argv[6]));
    if (argc >= 6 && strcmp(argv[1], "flood") == 0)
        return mode_flood(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
    if (argc >= 5 && strcmp(argv[1], "pipe") == 0)
        return mode_pipe(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc >= 5 && strcmp(argv[1], "big") == 0)
        return mode_big(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc >= 3 && strcmp(argv[1], "serve") == 0)
        return mode_serve(atoi(argv[2]), argc >= 4 ? atoi(argv[3]) : 1);
    fprintf(stderr, "usage: see the comment at the top of httptool.c\n");
    return 64;
}
