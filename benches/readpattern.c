/* readpattern.c: ctstack pyramid's cold read pattern without ctstack, to tell what the
 * disk does with it from what ctstack adds (benches/results.md, "Two VM kinds").
 *
 *   readpattern READ_KIB HINT AHEAD MODE FILE...
 *
 * Files are taken in pairs; per pair both are opened, HINT 1 asks posix_fadvise(WILLNEED)
 * for each file's pixels (from byte 208 on, as the benchmark stacks lie) in one call, HINT
 * N > 1 in calls of N KiB, 0 not at all; AHEAD 1 also hints the pair after next. Two
 * threads read both files of the pair in pieces of READ_KIB (ctstack: 118) with pread:
 * MODE 0 in halves (thread 0 the first half of the rows, thread 1 the second, as rayon
 * splits a pair's bands), 1 the same with a file descriptor per thread, 2 in order
 * (thread t takes pieces t, t + 2, ...). Prints seconds and a checksum.
 *
 * build: cc -O3 -march=native -pthread -o readpattern benches/readpattern.c
 * e.g.   readpattern 118 1 1 0 STACK/slice_*  (ctstack's pattern, hints and halves)
 *        readpattern 118 0 0 2 STACK/slice_*  (in order, no hint)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
static size_t rd; static long fadv; static int ahead, sepfd; static char **files; static int n;
static const off_t OFF = 208; static off_t SPAN;
static void advise(int fd) {
    if (!fadv) return;
    if (fadv == 1) { posix_fadvise(fd, OFF, SPAN, POSIX_FADV_WILLNEED); return; }
    for (off_t o = OFF; o < OFF + SPAN; o += fadv << 10) {
        off_t l = (fadv << 10); if (o + l > OFF + SPAN) l = OFF + SPAN - o;
        posix_fadvise(fd, o, l, POSIX_FADV_WILLNEED);
    }
}
struct job { int fa, fb; off_t from, to; uint64_t sum; int step; };
static void *work(void *p) {
    struct job *j = p; uint16_t *buf = aligned_alloc(4096, rd + 4096);
    for (off_t o = j->from; o < j->to; o += rd * j->step) {
        size_t l = rd; if (o + l > j->to) l = j->to - o;
        int fds[2] = {j->fa, j->fb};
        for (int k = 0; k < 2; k++) {
            if (pread(fds[k], buf, l, OFF + o) != (ssize_t)l) { perror("pread"); exit(1); }
            for (size_t i = 0; i < l / 2; i++) j->sum += buf[i];
        }
    }
    free(buf); return 0;
}
int main(int argc, char **argv) {
    rd = (size_t)atoi(argv[1]) << 10; fadv = atol(argv[2]); ahead = atoi(argv[3]); sepfd = atoi(argv[4]);
    files = argv + 5; n = argc - 5;
    struct stat st; stat(files[0], &st); SPAN = st.st_size - OFF;
    struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a); uint64_t sum = 0;
    for (int p = 0; p + 1 < n; p += 2) {
        int fa = open(files[p], O_RDONLY), fb = open(files[p + 1], O_RDONLY);
        advise(fa); advise(fb);
        if (ahead && p + 5 < n) { for (int k = 4; k < 6; k++) { int f = open(files[p + k], O_RDONLY); advise(f); close(f); } }
        off_t half = (SPAN / 2) / rd * rd;
        struct job jobs[2] = {{fa, fb, 0, half, 0, 1}, {fa, fb, half, SPAN, 0, 1}};
        if (sepfd == 2) { jobs[0] = (struct job){fa, fb, 0, SPAN, 0, 2}; jobs[1] = (struct job){fa, fb, rd, SPAN, 0, 2}; }
        if (sepfd == 1) { jobs[1].fa = open(files[p], O_RDONLY); jobs[1].fb = open(files[p + 1], O_RDONLY); }
        pthread_t t; pthread_create(&t, 0, work, &jobs[1]); work(&jobs[0]); pthread_join(t, 0);
        sum += jobs[0].sum + jobs[1].sum;
        if (sepfd == 1) { close(jobs[1].fa); close(jobs[1].fb); }
        close(fa); close(fb);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.4f s sum %llu\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9, (unsigned long long)sum);
}
