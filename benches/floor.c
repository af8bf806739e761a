/*
 * floor.c: lower bounds for benches/compare.py, timed as whole processes.
 *
 *   floor mmap     THREADS FILE...   map every file (MAP_POPULATE), sum it as
 *                                    u16 words, unmap: every input byte read once
 *   floor read     THREADS FILE...   the same with read() in 1 MiB chunks into
 *                                    one reused buffer per thread, each chunk
 *                                    summed while it is in cache: the best floor
 *                                    measured here (a map faults every page; one
 *                                    read of a whole 15 MB file, or 4 MiB chunks,
 *                                    fall out of cache before they are summed).
 *                                    compare.py's "x floor" is relative to it
 *   floor readwrite-sync THREADS OUTDIR BYTES FILE...
 *                                    readwrite, each output synced (fdatasync)
 *                                    before it is closed: the I/O a pyramid that
 *                                    makes its level-1 files durable must do
 *   floor store THREADS OUTDIR LIST FILE...
 *                                    the floor of an uncompressed OME-Zarr store:
 *                                    reads every input once and writes the files
 *                                    LIST names (lines "BYTES RELATIVE/PATH": a
 *                                    store's chunk files, their sizes and folders),
 *                                    each under a temporary name, synced
 *                                    (fdatasync) and renamed into place, every
 *                                    folder synced at the end: the least a writer
 *                                    whose every file is atomic and durable does.
 *                                    Outputs are dealt to the input pairs in
 *                                    proportion
 *   floor store-batch THREADS OUTDIR LIST FILE...
 *                                    the same, but each output's writeback only
 *                                    started (sync_file_range) as it is written
 *                                    and every output synced once all are written,
 *                                    as ctstack syncs a level's chunks in a batch
 *   floor write    OUTDIR COUNT BYTES  write COUNT files of BYTES bytes each
 *                                    (OUTDIR/000000.bin ...) with write(): the
 *                                    cost of putting level 1 on disk (page cache)
 *   floor crop THREADS OUTDIR OFFSET WIDTH BPS X0 X1 Y0 Y1 FILE...
 *                                    the floor of a crop: for each file (one
 *                                    strip of WIDTH samples of BPS bytes per row
 *                                    at OFFSET), read exactly the box's bytes,
 *                                    one pread per row (a whole-width box: one
 *                                    pread), and write them to OUTDIR/<i:06>.bin
 *                                    with write(); prints the bytes and their sum
 *   floor resident FILE...           print the fraction of the files' pages that
 *                                    are in the page cache (mincore); compare.py
 *                                    uses it to check that --cold eviction worked
 *   floor spawn RESULT CMD ARG...    run CMD, wait4 for it, write "SECONDS MAXRSS_KIB"
 *                                    to the file RESULT, exit with CMD's status.
 *                                    compare.py starts every contender through this:
 *                                    a child forked from the Python harness would
 *                                    report the harness's RSS as its ru_maxrss
 *                                    (Linux keeps the pre-exec high-water mark),
 *                                    a child forked from this small process does not
 *
 * The read modes print the total sum (as a check that both read the same bytes
 * and so the compiler cannot drop the loop). Files are dealt round-robin to
 * THREADS pthreads. Built by compare.py with `cc -O3 -march=native -pthread`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (1u << 20)
#define BLOCK 4096 /* u16 words summed into a u32 before widening: 4096*65535 < 2^32 */

static void die(const char *what, const char *path) {
    fprintf(stderr, "floor: %s %s: %s\n", what, path ? path : "", strerror(errno));
    exit(1);
}

/* Sum of n u16 words; written so that -O3 vectorizes the inner loop. */
static uint64_t sum_u16(const uint16_t *p, size_t n) {
    uint64_t total = 0;
    while (n >= BLOCK) {
        uint32_t acc = 0;
        for (size_t i = 0; i < BLOCK; i++) acc += p[i];
        total += acc;
        p += BLOCK;
        n -= BLOCK;
    }
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) acc += p[i];
    return total + acc;
}

/* Bytes as little-endian u16 words; an odd trailing byte counts as its own value. */
static uint64_t sum_bytes(const unsigned char *b, size_t len) {
    uint64_t s = 0;
    size_t words = len / 2;
    if (((uintptr_t)b & 1) == 0) {
        s = sum_u16((const uint16_t *)b, words);
    } else {
        for (size_t i = 0; i < words; i++) s += (uint64_t)b[2 * i] | ((uint64_t)b[2 * i + 1] << 8);
    }
    if (len & 1) s += b[len - 1];
    return s;
}

/* Reads the open `fd` to its end in READ_BUF chunks into `buf`, adding the
 * words to *sum and the bytes to *bytes. */
static void read_sum(int fd, const char *path, unsigned char *buf, uint64_t *sum, uint64_t *bytes) {
    for (;;) {
        ssize_t got = read(fd, buf, READ_BUF);
        if (got < 0) {
            if (errno == EINTR) continue;
            die("read", path);
        }
        if (got == 0) break;
        *sum += sum_bytes(buf, (size_t)got);
        *bytes += (size_t)got;
    }
}

struct job {
    int mode_mmap;
    int tid, nthreads;
    char **files;
    int nfiles;
    uint64_t sum;
    uint64_t bytes;
};

static void *worker(void *arg) {
    struct job *j = arg;
    unsigned char *buf = NULL;
    if (!j->mode_mmap) {
        if (posix_memalign((void **)&buf, 4096, READ_BUF) != 0) die("posix_memalign", NULL);
    }
    for (int i = j->tid; i < j->nfiles; i += j->nthreads) {
        const char *path = j->files[i];
        int fd = open(path, O_RDONLY);
        if (fd < 0) die("open", path);
        if (j->mode_mmap) {
            struct stat st;
            if (fstat(fd, &st) != 0) die("fstat", path);
            size_t len = (size_t)st.st_size;
            if (len > 0) {
                void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
                if (m == MAP_FAILED) die("mmap", path);
                j->sum += sum_bytes(m, len);
                j->bytes += len;
                munmap(m, len);
            }
        } else {
            read_sum(fd, path, buf, &j->sum, &j->bytes);
        }
        close(fd);
    }
    free(buf);
    return NULL;
}

static int run_read(int mode_mmap, int nthreads, char **files, int nfiles) {
    if (nthreads < 1) nthreads = 1;
    if (nthreads > nfiles) nthreads = nfiles > 0 ? nfiles : 1;
    pthread_t th[256];
    struct job jobs[256];
    if (nthreads > 256) nthreads = 256;
    for (int t = 0; t < nthreads; t++) {
        jobs[t] = (struct job){mode_mmap, t, nthreads, files, nfiles, 0, 0};
        if (pthread_create(&th[t], NULL, worker, &jobs[t]) != 0) die("pthread_create", NULL);
    }
    uint64_t sum = 0, bytes = 0;
    for (int t = 0; t < nthreads; t++) {
        pthread_join(th[t], NULL);
        sum += jobs[t].sum;
        bytes += jobs[t].bytes;
    }
    printf("files %d bytes %llu sum %llu\n", nfiles, (unsigned long long)bytes, (unsigned long long)sum);
    return 0;
}

/* A buffer of `bytes` output bytes, not all zero, so no file system can treat
 * the output as sparse. */
static unsigned char *output_buffer(long long bytes) {
    unsigned char *buf = malloc((size_t)bytes > 0 ? (size_t)bytes : 1);
    if (!buf) die("malloc", NULL);
    for (long long i = 0; i < bytes; i++) buf[i] = (unsigned char)(i * 131 + 7);
    return buf;
}

/* The store floors' outputs: path relative to OUTDIR and size of each. */
static char **list_paths;
static long long *list_bytes;

/* Reads LIST ("BYTES RELATIVE/PATH" lines) into list_paths / list_bytes;
 * returns the count and sets *largest. */
static long read_list(const char *list, long long *largest) {
    FILE *f = fopen(list, "r");
    if (!f) die("fopen", list);
    long n = 0, cap = 0;
    long long bytes;
    char rel[4096];
    *largest = 0;
    while (fscanf(f, "%lld %4095s", &bytes, rel) == 2) {
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            list_paths = realloc(list_paths, (size_t)cap * sizeof *list_paths);
            list_bytes = realloc(list_bytes, (size_t)cap * sizeof *list_bytes);
            if (!list_paths || !list_bytes) die("realloc", NULL);
        }
        list_paths[n] = strdup(rel);
        list_bytes[n] = bytes;
        if (bytes > *largest) *largest = bytes;
        n++;
    }
    fclose(f);
    return n;
}

/* mkdir -p of the folder holding `path` (errors but EEXIST are fatal). */
static void make_parents(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) die("mkdir", dir);
        *p = '/';
    }
}

static void sync_folder(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0 || fsync(fd) != 0) die("fsync", dir);
    close(fd);
}

/* Whether write_file syncs each output (fdatasync) before closing it: the
 * readwrite-sync floor, what a pyramid that makes its outputs durable must do.
 * 2: it only starts the output's writeback (sync_file_range), and the store
 * floor syncs every output once all are written (a batch: the disk merges the
 * writes, one journal commit covers many files). */
static int sync_outputs;

static void write_file(const char *path, const unsigned char *buf, long long bytes) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) die("open", path);
    long long off = 0;
    while (off < bytes) {
        ssize_t put = write(fd, buf + off, (size_t)(bytes - off));
        if (put < 0) {
            if (errno == EINTR) continue;
            die("write", path);
        }
        off += put;
    }
    if (sync_outputs == 2) sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    else if (sync_outputs && fdatasync(fd) != 0) die("fdatasync", path);
    if (close(fd) != 0) die("close", path);
}

static int run_write(const char *dir, long count, long long bytes) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) die("mkdir", dir);
    unsigned char *buf = output_buffer(bytes);
    char path[4096];
    for (long k = 0; k < count; k++) {
        snprintf(path, sizeof path, "%s/%06ld.bin", dir, k);
        write_file(path, buf, bytes);
    }
    free(buf);
    printf("files %ld bytes %lld\n", count, (long long)count * bytes);
    return 0;
}

/* Read a pair of input files, then write one output of `bytes`: what level 1 of
 * a pyramid costs in I/O alone (reads into a reused 1 MiB buffer, summed; the
 * output written from a filled buffer, as run_write does). Thread t takes pairs
 * t, t + n, ... */
struct pair_job {
    int tid, nthreads;
    char **files;
    int nfiles;
    const char *dir;
    const unsigned char *out;
    long long out_bytes;
    long outputs;   /* outputs in all, dealt to the pairs in proportion */
    int atomic;     /* each output written under a temporary name, then renamed */
    uint64_t sum, bytes;
};


static void *pair_worker(void *arg) {
    struct pair_job *j = arg;
    unsigned char *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, READ_BUF) != 0) die("posix_memalign", NULL);
    int pairs = (j->nfiles + 1) / 2;
    char path[4096];
    for (int k = j->tid; k < pairs; k += j->nthreads) {
        for (int i = 2 * k; i < 2 * k + 2 && i < j->nfiles; i++) {
            int fd = open(j->files[i], O_RDONLY);
            if (fd < 0) die("open", j->files[i]);
            read_sum(fd, j->files[i], buf, &j->sum, &j->bytes);
            close(fd);
        }
        long first = (long)((long long)k * j->outputs / pairs);
        long end = (long)((long long)(k + 1) * j->outputs / pairs);
        for (long o = first; o < end; o++) {
            snprintf(path, sizeof path, "%s/%06ld.bin", j->dir, o);
            if (j->atomic) {
                char temp[4200];
                snprintf(path, sizeof path, "%s/%s", j->dir, list_paths[o]);
                make_parents(path);
                snprintf(temp, sizeof temp, "%s.tmp", path);
                write_file(temp, j->out, list_bytes[o]);
                if (rename(temp, path) != 0) die("rename", temp);
            } else {
                write_file(path, j->out, j->out_bytes);
            }
        }
    }
    free(buf);
    return NULL;
}

/* Reads every input once and writes `outputs` files of `out_bytes` (one per
 * input pair for readwrite and readwrite-sync); `atomic`: the store floor. */
static int run_readwrite(int nthreads, const char *dir, long outputs, long long out_bytes, int atomic,
                         char **files, int nfiles) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) die("mkdir", dir);
    unsigned char *out = output_buffer(out_bytes);
    if (nthreads < 1) nthreads = 1;
    if (nthreads > 256) nthreads = 256;
    pthread_t th[256];
    struct pair_job jobs[256];
    for (int t = 0; t < nthreads; t++) {
        jobs[t] = (struct pair_job){t, nthreads, files, nfiles, dir, out, out_bytes, outputs, atomic, 0, 0};
        if (pthread_create(&th[t], NULL, pair_worker, &jobs[t]) != 0) die("pthread_create", NULL);
    }
    uint64_t sum = 0, bytes = 0;
    for (int t = 0; t < nthreads; t++) {
        pthread_join(th[t], NULL);
        sum += jobs[t].sum;
        bytes += jobs[t].bytes;
    }
    free(out);
    char path[4096], last[4096] = "";
    if (sync_outputs == 2) {
        for (long o = 0; o < outputs; o++) {
            snprintf(path, sizeof path, "%s/%s", dir, list_paths[o]);
            int fd = open(path, O_RDONLY);
            if (fd < 0 || fdatasync(fd) != 0) die("fdatasync", path);
            close(fd);
        }
    }
    if (atomic) {
        /* Every folder that received a file (LIST lists a folder's files together). */
        for (long o = 0; o < outputs; o++) {
            snprintf(path, sizeof path, "%s/%s", dir, list_paths[o]);
            char *slash = strrchr(path, '/');
            *slash = 0;
            if (strcmp(path, last) != 0) {
                sync_folder(path);
                snprintf(last, sizeof last, "%s", path);
            }
        }
        sync_folder(dir);
    }
    printf("files %d bytes %llu sum %llu outputs %ld of %lld bytes\n", nfiles,
           (unsigned long long)bytes, (unsigned long long)sum, outputs, out_bytes);
    return 0;
}

struct crop_job {
    int tid, nthreads;
    char **files;
    int nfiles;
    const char *dir;
    long long offset, width, bps, x0, x1, y0, y1;
    uint64_t sum, bytes;
};

static void *crop_worker(void *arg) {
    struct crop_job *j = arg;
    long long row = (j->x1 - j->x0) * j->bps, rows = j->y1 - j->y0;
    unsigned char *buf = malloc((size_t)(row * rows) > 0 ? (size_t)(row * rows) : 1);
    if (!buf) die("malloc", NULL);
    char path[4096];
    for (int i = j->tid; i < j->nfiles; i += j->nthreads) {
        int fd = open(j->files[i], O_RDONLY);
        if (fd < 0) die("open", j->files[i]);
        int whole = j->x0 == 0 && j->x1 == j->width;
        for (long long y = 0; y < rows; y += whole ? rows : 1) {
            long long want = whole ? row * rows : row;
            long long at = j->offset + ((j->y0 + y) * j->width + j->x0) * j->bps;
            long long got = 0;
            while (got < want) {
                ssize_t n = pread(fd, buf + y * row + got, (size_t)(want - got), at + got);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) die("pread", j->files[i]);
                got += n;
            }
        }
        close(fd);
        j->sum += sum_bytes(buf, (size_t)(row * rows));
        j->bytes += (uint64_t)(row * rows);
        snprintf(path, sizeof path, "%s/%06d.bin", j->dir, i);
        write_file(path, buf, row * rows);
    }
    free(buf);
    return NULL;
}

static int run_crop(int nthreads, const char *dir, long long *v, char **files, int nfiles) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) die("mkdir", dir);
    if (nthreads < 1) nthreads = 1;
    if (nthreads > 256) nthreads = 256;
    pthread_t th[256];
    struct crop_job jobs[256];
    for (int t = 0; t < nthreads; t++) {
        jobs[t] = (struct crop_job){t, nthreads, files, nfiles, dir, v[0], v[1], v[2], v[3], v[4], v[5], v[6], 0, 0};
        if (pthread_create(&th[t], NULL, crop_worker, &jobs[t]) != 0) die("pthread_create", NULL);
    }
    uint64_t sum = 0, bytes = 0;
    for (int t = 0; t < nthreads; t++) {
        pthread_join(th[t], NULL);
        sum += jobs[t].sum;
        bytes += jobs[t].bytes;
    }
    printf("files %d bytes %llu sum %llu\n", nfiles, (unsigned long long)bytes, (unsigned long long)sum);
    return 0;
}

static int run_resident(char **files, int nfiles) {
    long page = sysconf(_SC_PAGESIZE);
    unsigned long long total = 0, resident = 0;
    for (int i = 0; i < nfiles; i++) {
        int fd = open(files[i], O_RDONLY);
        if (fd < 0) die("open", files[i]);
        struct stat st;
        if (fstat(fd, &st) != 0) die("fstat", files[i]);
        size_t len = (size_t)st.st_size;
        if (len > 0) {
            void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
            if (m == MAP_FAILED) die("mmap", files[i]);
            size_t pages = (len + page - 1) / page;
            unsigned char *vec = malloc(pages);
            if (!vec) die("malloc", NULL);
            if (mincore(m, len, vec) != 0) die("mincore", files[i]);
            for (size_t p = 0; p < pages; p++) resident += vec[p] & 1;
            total += pages;
            free(vec);
            munmap(m, len);
        }
        close(fd);
    }
    printf("%.4f\n", total ? (double)resident / (double)total : 0.0);
    return 0;
}

static int run_spawn(const char *result, char **cmd) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) die("fork", NULL);
    if (pid == 0) {
        execvp(cmd[0], cmd);
        fprintf(stderr, "floor spawn: exec %s: %s\n", cmd[0], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) die("wait4", NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    FILE *f = fopen(result, "w");
    if (!f) die("fopen", result);
    fprintf(f, "%.9f %ld\n", secs, ru.ru_maxrss);
    if (fclose(f) != 0) die("fclose", result);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "floor spawn: %s killed by signal %d\n", cmd[0], WTERMSIG(status));
        return 128 + WTERMSIG(status);
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc >= 3 && (!strcmp(argv[1], "mmap") || !strcmp(argv[1], "read")))
        return run_read(!strcmp(argv[1], "mmap"), atoi(argv[2]), argv + 3, argc - 3);
    if (argc == 5 && !strcmp(argv[1], "write"))
        return run_write(argv[2], atol(argv[3]), atoll(argv[4]));
    if (argc >= 6 && !strcmp(argv[1], "readwrite-sync")) {
        sync_outputs = 1;
        return run_readwrite(atoi(argv[2]), argv[3], (argc - 4) / 2, atoll(argv[4]), 0, argv + 5, argc - 5);
    }
    if (argc >= 6 && !strcmp(argv[1], "readwrite"))
        return run_readwrite(atoi(argv[2]), argv[3], (argc - 4) / 2, atoll(argv[4]), 0, argv + 5, argc - 5);
    if (argc >= 6 && (!strcmp(argv[1], "store") || !strcmp(argv[1], "store-batch"))) {
        sync_outputs = !strcmp(argv[1], "store") ? 1 : 2;
        long long largest;
        long count = read_list(argv[4], &largest);
        return run_readwrite(atoi(argv[2]), argv[3], count, largest, 1, argv + 5, argc - 5);
    }
    if (argc >= 12 && !strcmp(argv[1], "crop")) {
        long long v[7];
        for (int i = 0; i < 7; i++) v[i] = atoll(argv[4 + i]);
        return run_crop(atoi(argv[2]), argv[3], v, argv + 11, argc - 11);
    }
    if (argc >= 2 && !strcmp(argv[1], "resident"))
        return run_resident(argv + 2, argc - 2);
    if (argc >= 4 && !strcmp(argv[1], "spawn"))
        return run_spawn(argv[2], argv + 3);
    fprintf(stderr,
            "usage: floor mmap|read THREADS FILE... | floor write OUTDIR COUNT BYTES | "
            "floor readwrite[-sync] THREADS OUTDIR BYTES FILE... | "
            "floor store[-batch] THREADS OUTDIR LIST FILE... | "
            "floor crop THREADS OUTDIR OFFSET WIDTH BPS X0 X1 Y0 Y1 FILE... | "
            "floor resident FILE... | floor spawn RESULT CMD ARG...\n");
    return 2;
}
