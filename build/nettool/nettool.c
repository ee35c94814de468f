/* nettool: a small static TCP measuring tool for dom0 and the Linux PV
 * DomU of `cargo xtask bench net` and the net boot test (busybox nc moves
 * 1 KiB per syscall and measures itself). 64 KiB per call, timed with
 * CLOCK_MONOTONIC, IPv4 literals only (no resolver: static glibc's NSS
 * is not needed).
 *
 *   nettool send IP PORT BYTES        write BYTES, half-close, wait for EOF
 *   nettool recv IP PORT BYTES        read BYTES, byte i must be i % 251
 *   nettool rr IP PORT COUNT SIZE     COUNT request/responses of SIZE bytes
 *   nettool echo IP PORT TRIPS MAX SEED CONNS [LPORT,LPORT,...]
 *                                     TRIPS round trips of 1..MAX random
 *                                     bytes over CONNS parallel connections,
 *                                     each byte checked; with LPORTs, the
 *                                     connections are made from these local
 *                                     ports (one each: CONNS of them), so
 *                                     the flows (and the queues they hash
 *                                     to) are known in advance
 *   nettool serve                     echo on 7, discard on 9, source on 19
 *   nettool ping IP INTERVAL_MS FILE  ICMP echo every INTERVAL_MS until
 *                                     SIGTERM; after each reply FILE holds
 *                                     its arrival time (CLOCK_BOOTTIME ms,
 *                                     the clock of /proc/uptime, right-
 *                                     aligned in 20 columns); one line per
 *                                     outage (no reply for 3 intervals)
 *                                     when it ends, a summary at the end
 *
 * Every mode prints one line: "NETTOOL <mode> key=value ...".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void die(const char *what) {
    printf("NETTOOL error %s errno=%d %s\n", what, errno, strerror(errno));
    fflush(stdout);
    exit(2);
}

/* How long a connect may take, and a send or receive may make no
 * progress, before the tool gives up (seconds). */
#define CONNECT_S 10
#define IO_S 30

/* Connects to ip:port, from local port lport unless it is 0. */
static int dial_from(const char *ip, int port, int lport) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
        errno = EINVAL;
        die("address");
    }
    for (int attempt = 0;; attempt++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0) die("socket");
        if (lport != 0) {
            struct sockaddr_in l;
            int one = 1;
            setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            memset(&l, 0, sizeof l);
            l.sin_family = AF_INET;
            l.sin_port = htons((uint16_t)lport);
            if (bind(s, (struct sockaddr *)&l, sizeof l) != 0) die("bind");
        }
        /* A peer that is gone (a guest that crashed) must end the tool,
         * not hang it: connect gives up after CONNECT_S, and once
         * connected a send or receive that makes no progress for IO_S
         * fails. Only a refusal (the listener not up yet) is retried. */
        struct timeval tv = {CONNECT_S, 0};
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
            struct timeval io = {IO_S, 0};
            setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &io, sizeof io);
            setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &io, sizeof io);
            return s;
        }
        int e = errno;
        close(s);
        errno = e;
        if (e != ECONNREFUSED || attempt >= 20) die("connect");
        usleep(200000);
    }
}

static int dial(const char *ip, int port) { return dial_from(ip, port, 0); }

static uint64_t rng;
static uint64_t next_rand(void) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

/* Writes out[0..n) and reads n bytes back into in, interleaved (so
 * neither side's buffers need to hold the whole message). */
static int trip(int s, const unsigned char *out, unsigned char *in, size_t n) {
    size_t sent = 0, got = 0;
    while (got < n) {
        struct pollfd p = {s, POLLIN | (sent < n ? POLLOUT : 0), 0};
        if (poll(&p, 1, 30000) <= 0) return -1;
        if (sent < n && (p.revents & POLLOUT)) {
            size_t k = n - sent < CHUNK ? n - sent : CHUNK;
            ssize_t w = send(s, out + sent, k, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN) return -1;
            if (w > 0) sent += (size_t)w;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(s, in + got, n - got, MSG_DONTWAIT);
            if (r == 0) return -1;
            if (r < 0 && errno != EAGAIN) return -1;
            if (r > 0) got += (size_t)r;
        }
    }
    return 0;
}

static int mode_send(const char *ip, int port, uint64_t bytes) {
    static unsigned char buf[CHUNK];
    for (int i = 0; i < CHUNK; i++) buf[i] = (unsigned char)i;
    int s = dial(ip, port);
    uint64_t t0 = now_ns(), left = bytes;
    while (left > 0) {
        ssize_t w = write(s, buf, left < CHUNK ? left : CHUNK);
        if (w <= 0) die("write");
        left -= (uint64_t)w;
    }
    shutdown(s, SHUT_WR);
    while (read(s, buf, sizeof buf) > 0) {
    }
    uint64_t ns = now_ns() - t0;
    printf("NETTOOL send bytes=%llu ns=%llu mibps=%.2f\n", (unsigned long long)bytes,
           (unsigned long long)ns, bytes / 1048576.0 / (ns / 1e9));
    return 0;
}

static int mode_recv(const char *ip, int port, uint64_t bytes) {
    static unsigned char buf[CHUNK];
    int s = dial(ip, port);
    uint64_t t0 = now_ns(), got = 0, bad = 0;
    while (got < bytes) {
        uint64_t want = bytes - got < CHUNK ? bytes - got : CHUNK;
        ssize_t r = read(s, buf, want);
        if (r <= 0) break;
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != (unsigned char)((got + (uint64_t)i) % 251)) bad++;
        got += (uint64_t)r;
    }
    uint64_t ns = now_ns() - t0;
    close(s);
    printf("NETTOOL recv bytes=%llu ns=%llu mibps=%.2f bad=%llu\n", (unsigned long long)got,
           (unsigned long long)ns, got / 1048576.0 / (ns / 1e9), (unsigned long long)bad);
    return got == bytes && bad == 0 ? 0 : 1;
}

static int mode_rr(const char *ip, int port, long count, size_t size) {
    unsigned char *out = malloc(size), *in = malloc(size);
    for (size_t i = 0; i < size; i++) out[i] = (unsigned char)(i * 7);
    int s = dial(ip, port);
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    long bad = 0, done = 0;
    uint64_t t0 = now_ns();
    for (; done < count; done++) {
        out[0] = (unsigned char)done;
        if (trip(s, out, in, size) != 0) break;
        if (memcmp(out, in, size) != 0) bad++;
    }
    uint64_t ns = now_ns() - t0;
    close(s);
    printf("NETTOOL rr count=%ld size=%zu ns=%llu per_s=%.1f bad=%ld\n", done, size,
           (unsigned long long)ns, done / (ns / 1e9), bad);
    return done == count && bad == 0 ? 0 : 1;
}

static int mode_echo(const char *ip, int port, long trips, size_t max, uint64_t seed, int conns,
                     const char *lports) {
    int local[256] = {0};
    if (conns < 1 || conns > 256) {
        errno = EINVAL;
        die("connections");
    }
    if (lports) {
        /* One local port per connection, comma-separated. */
        const char *p = lports;
        for (int c = 0; c < conns; c++) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v <= 0 || v > 65535 || (*end != ',' && *end != 0) ||
                (c + 1 < conns) != (*end == ',')) {
                errno = EINVAL;
                die("local ports (one per connection)");
            }
            local[c] = (int)v;
            p = end + 1;
        }
    }
    for (int c = 0; c < conns; c++) {
        if (fork() != 0) continue;
        rng = seed * 1000003u + (uint64_t)c + 1;
        unsigned char *out = malloc(max), *in = malloc(max);
        long mine = trips / conns + (c < trips % conns ? 1 : 0), done = 0, bad = 0;
        uint64_t bytes = 0;
        int s = dial_from(ip, port, local[c]);
        for (; done < mine; done++) {
            size_t n = (size_t)(next_rand() % max) + 1;
            for (size_t i = 0; i < n; i++) out[i] = (unsigned char)next_rand();
            if (trip(s, out, in, n) != 0) {
                bad++;
                break;
            }
            if (memcmp(out, in, n) != 0) bad++;
            bytes += n;
        }
        struct sockaddr_in me;
        socklen_t melen = sizeof me;
        int lport = getsockname(s, (struct sockaddr *)&me, &melen) == 0 ? ntohs(me.sin_port) : 0;
        close(s);
        printf("NETTOOL echo conn=%d trips=%ld bad=%ld bytes=%llu lport=%d\n", c + 1, done, bad,
               (unsigned long long)bytes, lport);
        fflush(stdout);
        _exit(bad == 0 && done == mine ? 0 : 1);
    }
    int rc = 0, st;
    while (wait(&st) > 0)
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) rc = 1;
    return rc;
}

static void serve_conn(int c, int port) {
    static unsigned char buf[CHUNK];
    if (port == 19) {
        uint64_t off = 0;
        for (;;) {
            for (int i = 0; i < CHUNK; i++) buf[i] = (unsigned char)((off + (uint64_t)i) % 251);
            ssize_t w = send(c, buf, CHUNK, MSG_NOSIGNAL);
            if (w <= 0) break;
            off += (uint64_t)w; /* the next chunk's pattern starts at off */
        }
    } else {
        ssize_t r;
        while ((r = read(c, buf, sizeof buf)) > 0) {
            if (port == 7) {
                for (ssize_t o = 0; o < r;) {
                    ssize_t w = send(c, buf + o, (size_t)(r - o), MSG_NOSIGNAL);
                    if (w <= 0) return;
                    o += w;
                }
            }
        }
    }
}

static int mode_serve(void) {
    int ports[3] = {7, 9, 19}, fds[3];
    signal(SIGCHLD, SIG_IGN);
    for (int i = 0; i < 3; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)ports[i]);
        if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0) die("listen");
        fds[i] = s;
    }
    printf("NETTOOL serve ready ports=7,9,19\n");
    fflush(stdout);
    for (;;) {
        struct pollfd p[3];
        for (int i = 0; i < 3; i++) p[i] = (struct pollfd){fds[i], POLLIN, 0};
        if (poll(p, 3, -1) < 0) continue;
        for (int i = 0; i < 3; i++) {
            if (!(p[i].revents & POLLIN)) continue;
            int c = accept(fds[i], NULL, NULL);
            if (c < 0) continue;
            if (fork() == 0) {
                int one = 1;
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                serve_conn(c, ports[i]);
                _exit(0);
            }
            close(c);
        }
    }
}

static uint64_t boot_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_BOOTTIME, &t);
    return (uint64_t)t.tv_sec * 1000ull + (uint64_t)t.tv_nsec / 1000000ull;
}

static volatile sig_atomic_t ping_stop;
static void on_term(int sig) {
    (void)sig;
    ping_stop = 1;
}

static uint16_t icmp_sum(const void *data, size_t n) {
    const uint8_t *b = data;
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(b[i] << 8 | b[i + 1]);
    if (n & 1) sum += (uint32_t)(b[n - 1] << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return htons((uint16_t)~sum);
}

/* A running ping that keeps the time of its last reply in a file a shell
 * can read without forking, and reports every outage. */
static int mode_ping(const char *ip, long interval_ms, const char *path) {
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    if (inet_pton(AF_INET, ip, &to.sin_addr) != 1 || interval_ms < 1) {
        errno = EINVAL;
        die("address or interval");
    }
    int s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (s < 0) die("raw socket");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die("file");
    char line[32];
    snprintf(line, sizeof line, "%20llu\n", 0ull);
    if (pwrite(fd, line, 21, 0) != 21) die("file write");
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    uint16_t id = (uint16_t)getpid();
    uint64_t sent = 0, replies = 0, outages = 0, max_gap = 0, last = 0;
    uint64_t next = boot_ms();
    while (!ping_stop) {
        uint64_t now = boot_ms();
        if (now >= next) {
            unsigned char pkt[8 + 16];
            memset(pkt, 0, sizeof pkt);
            pkt[0] = ICMP_ECHO;
            pkt[4] = (unsigned char)(id >> 8);
            pkt[5] = (unsigned char)id;
            pkt[6] = (unsigned char)(sent >> 8);
            pkt[7] = (unsigned char)sent;
            memcpy(pkt + 8, &now, sizeof now);
            uint16_t c = icmp_sum(pkt, sizeof pkt);
            memcpy(pkt + 2, &c, 2);
            /* A vif being detached makes sends fail now and then: fine. */
            sendto(s, pkt, sizeof pkt, 0, (struct sockaddr *)&to, sizeof to);
            sent++;
            next += (uint64_t)interval_ms;
            if (next < now) next = now + (uint64_t)interval_ms;
        }
        struct pollfd p = {s, POLLIN, 0};
        uint64_t wait = next > now ? next - now : 0;
        if (poll(&p, 1, (int)wait) <= 0) continue;
        unsigned char buf[1500];
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t r = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        if (r < 20) continue;
        size_t ihl = (size_t)(buf[0] & 0x0f) * 4;
        if ((size_t)r < ihl + 8 || from.sin_addr.s_addr != to.sin_addr.s_addr) continue;
        const unsigned char *icmp = buf + ihl;
        if (icmp[0] != ICMP_ECHOREPLY || (uint16_t)(icmp[4] << 8 | icmp[5]) != id) continue;
        uint64_t t = boot_ms();
        if (last && t - last > 3 * (uint64_t)interval_ms) {
            outages++;
            if (t - last > max_gap) max_gap = t - last;
            printf("NETTOOL ping outage from_ms=%llu to_ms=%llu ms=%llu\n", (unsigned long long)last,
                   (unsigned long long)t, (unsigned long long)(t - last));
        }
        last = t;
        replies++;
        snprintf(line, sizeof line, "%20llu\n", (unsigned long long)t);
        if (pwrite(fd, line, 21, 0) != 21) die("file write");
    }
    printf("NETTOOL ping sent=%llu replies=%llu outages=%llu max_gap_ms=%llu\n",
           (unsigned long long)sent, (unsigned long long)replies, (unsigned long long)outages,
           (unsigned long long)max_gap);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 5 && !strcmp(argv[1], "send")) return mode_send(argv[2], atoi(argv[3]), strtoull(argv[4], 0, 0));
    if (argc >= 5 && !strcmp(argv[1], "recv")) return mode_recv(argv[2], atoi(argv[3]), strtoull(argv[4], 0, 0));
    if (argc >= 6 && !strcmp(argv[1], "rr")) return mode_rr(argv[2], atoi(argv[3]), atol(argv[4]), (size_t)atol(argv[5]));
    if (argc >= 8 && !strcmp(argv[1], "echo"))
        return mode_echo(argv[2], atoi(argv[3]), atol(argv[4]), (size_t)atol(argv[5]), strtoull(argv[6], 0, 0), atoi(argv[7]),
                         argc >= 9 ? argv[8] : NULL);
    if (argc >= 2 && !strcmp(argv[1], "serve")) return mode_serve();
    if (argc >= 5 && !strcmp(argv[1], "ping")) return mode_ping(argv[2], atol(argv[3]), argv[4]);
    fprintf(stderr, "usage: nettool send|recv IP PORT BYTES | rr IP PORT COUNT SIZE | echo IP PORT TRIPS MAX SEED CONNS [LPORT,...] | serve | ping IP INTERVAL_MS FILE\n");
    return 64;
}
