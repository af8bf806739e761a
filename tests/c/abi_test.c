/* A C consumer of the ctstack ABI, compiled with -Wall -Werror by tests/c_abi.rs.
 * usage: abi_test FIXTURES_DIR SCRATCH_DIR
 * Prints "N passed, 0 failed" and exits 0 when every check holds. */
#include "ctstack.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int passed = 0, failed = 0;
static const char *fixtures, *scratch;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (cond) {                                                         \
            passed++;                                                       \
        } else {                                                            \
            failed++;                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fprintf(stderr, "\n");                                          \
        }                                                                   \
    } while (0)

static char *path_of(const char *dir, const char *name) {
    static char buf[8][1024];
    static int next = 0;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* ctstack_pyramid_build / ctstack_job_start(_files) with only output_dir and min_size set. */
static ctstack_pyramid_options options_with(const char *output_dir, uint32_t min_size) {
    ctstack_pyramid_options o;
    ctstack_pyramid_options_init(&o, sizeof o);
    o.output_dir = output_dir;
    o.min_size = min_size;
    return o;
}

static ctstack_status build(const char *input_dir, const char *output_dir, uint32_t min_size,
                            ctstack_progress_fn progress, void *user_data) {
    ctstack_pyramid_options o = options_with(output_dir, min_size);
    return ctstack_pyramid_build(input_dir, &o, progress, user_data);
}

static ctstack_status start(const char *input_dir, const char *output_dir, uint32_t min_size, ctstack_job **job) {
    ctstack_pyramid_options o = options_with(output_dir, min_size);
    return ctstack_job_start(input_dir, &o, job);
}

static ctstack_status start_files(const char *const *paths, size_t n_paths, const char *output_dir,
                                  uint32_t min_size, ctstack_job **job) {
    ctstack_pyramid_options o = options_with(output_dir, min_size);
    return ctstack_job_start_files(paths, n_paths, &o, job);
}

static ctstack_slice *open_ok(const char *name) {
    ctstack_slice *s = NULL;
    int32_t st = ctstack_slice_open(path_of(fixtures, name), &s);
    CHECK(st == CTSTACK_OK && s != NULL, "open %s: %d %s", name, st, ctstack_last_error());
    return s;
}

/* The process-wide mmap policy: auto by default, which maps a local file; always maps
 * it; never reads everything. Leaves the policy at always for the checks below. */
static void test_mmap_policy(void) {
    const char *plain = "slices/tifffile_u16_le_1strip.tif";
    CHECK(ctstack_mmap_policy() == CTSTACK_MMAP_AUTO, "default policy %d", ctstack_mmap_policy());
    ctstack_slice *s = open_ok(plain);
    CHECK(ctstack_slice_is_zero_copy(s) == 1, "auto maps a local file");
    ctstack_slice_free(s);
    CHECK(ctstack_set_mmap_policy(3) == CTSTACK_ERR_INVALID_ARGUMENT && ctstack_mmap_policy() == CTSTACK_MMAP_AUTO,
          "policy 3 is refused and changes nothing");
    CHECK(strstr(ctstack_last_error(), "mmap policy 3") != NULL, "%s", ctstack_last_error());
    CHECK(ctstack_set_mmap_policy(-1) == CTSTACK_ERR_INVALID_ARGUMENT, "policy -1 refused");
    CHECK(ctstack_set_mmap_policy(CTSTACK_MMAP_NEVER) == CTSTACK_OK && ctstack_mmap_policy() == CTSTACK_MMAP_NEVER,
          "never");
    s = open_ok(plain);
    CHECK(ctstack_slice_is_zero_copy(s) == 0, "never maps nothing");
    ctstack_slice_free(s);
    CHECK(ctstack_set_mmap_policy(CTSTACK_MMAP_ALWAYS) == CTSTACK_OK && ctstack_mmap_policy() == CTSTACK_MMAP_ALWAYS,
          "always");
    s = open_ok(plain);
    CHECK(ctstack_slice_is_zero_copy(s) == 1, "always maps even a small file");
    ctstack_slice_free(s);
}

static void test_slices(void) {
    CHECK(strlen(ctstack_version()) > 0, "empty version");

    ctstack_slice *s = open_ok("slices/tifffile_u16_le_1strip.tif");
    CHECK(ctstack_slice_width(s) == 67 && ctstack_slice_height(s) == 45, "size %ux%u",
          ctstack_slice_width(s), ctstack_slice_height(s));
    CHECK(ctstack_slice_bits(s) == 16, "bits %u", ctstack_slice_bits(s));
    CHECK(ctstack_slice_is_zero_copy(s) == 1, "a plain tifffile slice is zero-copy");

    const void *data = NULL;
    size_t len = 0;
    CHECK(ctstack_slice_data(s, &data, &len) == CTSTACK_OK && data && len == 67 * 45 * 2, "data %zu", len);
    uint16_t *copy = malloc(len);
    CHECK(ctstack_slice_read(s, copy, len) == CTSTACK_OK, "read: %s", ctstack_last_error());
    CHECK(memcmp(copy, data, len) == 0, "read() differs from data()");
    uint16_t lo = 65535, hi = 0;
    for (size_t i = 0; i < len / 2; i++) {
        if (copy[i] < lo) lo = copy[i];
        if (copy[i] > hi) hi = copy[i];
    }
    CHECK(lo == 0 && hi == 65535, "fixture holds 0 and 65535 (got %u..%u)", lo, hi);
    /* An unaligned destination works too. */
    unsigned char *odd = malloc(len + 1);
    CHECK(ctstack_slice_read(s, odd + 1, len) == CTSTACK_OK && memcmp(odd + 1, data, len) == 0, "unaligned read");
    free(odd);
    CHECK(ctstack_slice_read(s, copy, len - 2) == CTSTACK_ERR_MISMATCH, "short dst_len");
    CHECK(strstr(ctstack_last_error(), "tifffile_u16_le_1strip.tif") != NULL, "message names file: %s",
          ctstack_last_error());

    /* The big-endian copy of other pixels is served from a copy, not the map. */
    ctstack_slice *be = open_ok("slices/tifffile_u16_be.tif");
    CHECK(ctstack_slice_is_zero_copy(be) == 0, "big-endian is not zero-copy");
    const void *bedata = NULL;
    size_t belen = 0;
    CHECK(ctstack_slice_data(be, &bedata, &belen) == CTSTACK_OK && belen == len, "be data");

    /* average_pair against a naive reference, a with itself and a with b. */
    size_t ow = 67 / 2, oh = 45 / 2;
    uint16_t *avg = malloc(ow * oh * 2);
    const uint16_t *a = data, *b = bedata;
    CHECK(ctstack_average_pair(s, be, avg, ow * oh * 2) == CTSTACK_OK, "average: %s", ctstack_last_error());
    int bad = 0;
    for (size_t y = 0; y < oh; y++)
        for (size_t x = 0; x < ow; x++) {
            uint32_t sum = 4;
            for (int dy = 0; dy < 2; dy++)
                for (int dx = 0; dx < 2; dx++)
                    sum += a[(2 * y + dy) * 67 + 2 * x + dx] + b[(2 * y + dy) * 67 + 2 * x + dx];
            if (avg[y * ow + x] != (uint16_t)(sum >> 3)) bad++;
        }
    CHECK(bad == 0, "%d averaged pixels differ from the reference", bad);
    CHECK(ctstack_average_pair(s, s, avg, ow * oh * 2) == CTSTACK_OK, "a == b allowed");
    CHECK(ctstack_average_pair(s, s, avg, ow * oh * 2 + 2) == CTSTACK_ERR_MISMATCH, "wrong dst_len");

    ctstack_slice *small = open_ok("slices/tifffile_bigtiff_u16_le.tif");
    CHECK(ctstack_average_pair(s, small, avg, ow * oh * 2) == CTSTACK_ERR_MISMATCH, "size mismatch");
    CHECK(strstr(ctstack_last_error(), "tifffile_bigtiff_u16_le.tif") != NULL, "names both: %s",
          ctstack_last_error());
    ctstack_slice *u8 = open_ok("slices/tifffile_u8.tif");
    CHECK(ctstack_slice_bits(u8) == 8, "8-bit");
    CHECK(ctstack_average_pair(s, u8, avg, ow * oh * 2) == CTSTACK_ERR_MISMATCH, "depth mismatch");

    free(avg);
    free(copy);
    ctstack_slice_free(small);
    ctstack_slice_free(u8);
    ctstack_slice_free(be);
    ctstack_slice_free(s);
}

static void test_errors(void) {
    ctstack_slice *s = (ctstack_slice *)1;
    CHECK(ctstack_slice_open(path_of(fixtures, "no_such_slice_0042.tif"), &s) == CTSTACK_ERR_IO, "missing");
    CHECK(s == NULL, "*out is NULL after a failure");
    CHECK(strstr(ctstack_last_error(), "no_such_slice_0042.tif") != NULL, "%s", ctstack_last_error());
    CHECK(ctstack_slice_open(path_of(fixtures, "malformed/strip_offset_past_eof.tif"), &s) == CTSTACK_ERR_FORMAT,
          "malformed");
    CHECK(strstr(ctstack_last_error(), "starts past the end of the file") != NULL, "%s", ctstack_last_error());
    CHECK(ctstack_slice_open(path_of(fixtures, "unsupported/pillow_rgb_u8.tif"), &s) == CTSTACK_ERR_UNSUPPORTED,
          "rgb");
    CHECK(strstr(ctstack_last_error(), "RGB") != NULL, "%s", ctstack_last_error());
    CHECK(ctstack_slice_open(NULL, &s) == CTSTACK_ERR_INVALID_ARGUMENT, "NULL path");
    CHECK(ctstack_slice_open(path_of(fixtures, "slices/tifffile_u8.tif"), NULL) == CTSTACK_ERR_INVALID_ARGUMENT,
          "NULL out");
    CHECK(ctstack_slice_open("\xff\xfe.tif", &s) == CTSTACK_ERR_INVALID_ARGUMENT, "non-UTF-8 path");
    CHECK(ctstack_slice_width(NULL) == 0 && ctstack_slice_bits(NULL) == 0, "getters on NULL");
    CHECK(ctstack_slice_read(NULL, &s, 1) == CTSTACK_ERR_INVALID_ARGUMENT, "read NULL");
    CHECK(ctstack_average_pair(NULL, NULL, NULL, 0) == CTSTACK_ERR_INVALID_ARGUMENT, "average NULL");
    CHECK(build(NULL, NULL, 0, NULL, NULL) == CTSTACK_ERR_INVALID_ARGUMENT, "pyramid NULL");
    CHECK(build(path_of(fixtures, "stack"), NULL, 0xFFFFFFFFu, NULL, NULL) ==
              CTSTACK_ERR_INVALID_ARGUMENT,
          "min_size out of range");
    CHECK(build(path_of(fixtures, "stack"), NULL, 0, NULL, NULL) == CTSTACK_ERR_INVALID_ARGUMENT,
          "min_size 0 is invalid");
    CHECK(strcmp(ctstack_status_name(CTSTACK_ERR_IO), "CTSTACK_ERR_IO") == 0, "status name");
    CHECK(strcmp(ctstack_status_name(CTSTACK_OK), "CTSTACK_OK") == 0, "status name OK");
    CHECK(strcmp(ctstack_status_name(99), "CTSTACK_UNKNOWN_STATUS") == 0, "unknown status name");
    CHECK(ctstack_slice_sample_type(NULL) == 0, "sample type of NULL");
    {
        /* Options: defaults from init; a zero struct_size and bad values are refused. */
        ctstack_pyramid_options o;
        memset(&o, 0, sizeof o);
        CHECK(ctstack_pyramid_build(path_of(fixtures, "stack"), &o, NULL, NULL) == CTSTACK_ERR_INVALID_ARGUMENT,
              "uninitialised options");
        /* An older caller's shorter struct is never overrun, and its size is what struct_size says. */
        unsigned char older[sizeof o + 16];
        memset(older, 0xAB, sizeof older);
        size_t old_size = offsetof(ctstack_pyramid_options, threads);
        ctstack_pyramid_options_init((ctstack_pyramid_options *)older, old_size);
        int untouched = 1;
        for (size_t i = old_size; i < sizeof older; i++) untouched &= older[i] == 0xAB;
        size_t written_size;
        memcpy(&written_size, older, sizeof written_size);
        CHECK(untouched && written_size == old_size, "init wrote past the caller's size");
        ctstack_pyramid_options_init(&o, sizeof o);
        CHECK(o.struct_size == sizeof o && o.min_size == CTSTACK_DEFAULT_MIN_SIZE && o.min_levels == 0 &&
                  o.threads == 0 && o.mmap_policy == ctstack_mmap_policy() && o.strict == 0 && o.output_dir == NULL,
              "option defaults");
        o.mmap_policy = 7;
        CHECK(ctstack_pyramid_build(path_of(fixtures, "stack"), &o, NULL, NULL) == CTSTACK_ERR_INVALID_ARGUMENT,
              "bad mmap policy option");
        ctstack_pyramid_options_init(&o, sizeof o);
        o.min_size = 0;
        ctstack_job *none = NULL;
        CHECK(ctstack_job_start(path_of(fixtures, "stack"), &o, &none) == CTSTACK_ERR_INVALID_ARGUMENT && !none,
              "bad options fail the start, not the job");
    }
    ctstack_slice_free(NULL);
    ctstack_job_free(NULL);
    ctstack_job_cancel(NULL);
    CHECK(ctstack_job_progress(NULL, NULL, NULL) == 0, "progress NULL");
    CHECK(strcmp(ctstack_job_error(NULL), "") == 0, "job_error NULL");
}

struct progress_log {
    uint64_t last_done, last_total, calls, cancel_at;
    int backwards;
};

static int32_t on_progress(uint64_t done, uint64_t total, void *user) {
    struct progress_log *log = user;
    if (done < log->last_done || done > total) log->backwards = 1;
    log->last_done = done;
    log->last_total = total;
    log->calls++;
    return log->cancel_at && done >= log->cancel_at;
}

/* Each failure kind has its own status and name: limits exceeded is not unsupported (a bomb
 * must not be handed to a weaker decoder); a folder in the wrong state (no slices, an
 * unfinished pyramid) is not an invalid argument. */
static void test_error_kinds(void) {
    const char *names[] = {"CTSTACK_OK",
                           "CTSTACK_ERR_IO",
                           "CTSTACK_ERR_FORMAT",
                           "CTSTACK_ERR_UNSUPPORTED",
                           "CTSTACK_ERR_MISMATCH",
                           "CTSTACK_ERR_CANCELLED",
                           "CTSTACK_ERR_INVALID_ARGUMENT",
                           "CTSTACK_ERR_INTERNAL",
                           "CTSTACK_ERR_LIMITS_EXCEEDED",
                           "CTSTACK_ERR_STATE"};
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        CHECK(strcmp(ctstack_status_name(i), names[i]) == 0, "name of %d: %s", i, ctstack_status_name(i));
    CHECK(CTSTACK_ERR_INTERNAL == 7 && CTSTACK_ERR_LIMITS_EXCEEDED == 8 && CTSTACK_ERR_STATE == 9, "numbers");
    CHECK(strcmp(ctstack_status_name(10), "CTSTACK_UNKNOWN_STATUS") == 0, "10 is none yet");
    CHECK(ctstack_abi_version() ==
              ((uint32_t)CTSTACK_ABI_VERSION_MAJOR << 16 | (uint32_t)CTSTACK_ABI_VERSION_MINOR << 8 |
               (uint32_t)CTSTACK_ABI_VERSION_PATCH),
          "the library's ABI version %x is the header's", ctstack_abi_version());

    ctstack_slice *s = (ctstack_slice *)1;
    int32_t st = ctstack_slice_open(path_of(fixtures, "malformed/bomb_deflate_60000x60000.tif"), &s);
    CHECK(st == CTSTACK_ERR_LIMITS_EXCEEDED && s == NULL, "bomb: %d %s", st, ctstack_last_error());
    CHECK(strstr(ctstack_last_error(), "bomb_deflate_60000x60000.tif") != NULL, "%s", ctstack_last_error());

    /* An input folder with no slices: the call is right, the folder is not. */
    const char *empty = path_of(scratch, "kinds_empty");
    CHECK(mkdir(empty, 0755) == 0, "mkdir %s", empty);
    ctstack_pyramid_options o;
    ctstack_pyramid_options_init(&o, sizeof o);
    o.output_dir = path_of(scratch, "kinds_empty_out");
    st = ctstack_pyramid_build(empty, &o, NULL, NULL);
    CHECK(st == CTSTACK_ERR_STATE, "empty folder: %d %s", st, ctstack_last_error());
    CHECK(strstr(ctstack_last_error(), "no slice files") != NULL, "%s", ctstack_last_error());

    /* A build cancelled half-way leaves a pyramid that cannot be opened until built again. */
    o.output_dir = path_of(scratch, "kinds_incomplete");
    o.min_size = 80;
    struct progress_log stop = {.cancel_at = 3};
    st = ctstack_pyramid_build(path_of(fixtures, "stack"), &o, on_progress, &stop);
    CHECK(st == CTSTACK_ERR_CANCELLED, "cancel: %d", st);
    ctstack_pyramid *p = (ctstack_pyramid *)1;
    st = ctstack_pyramid_open(o.output_dir, &p);
    CHECK(st == CTSTACK_ERR_STATE && p == NULL, "incomplete: %d %s", st, ctstack_last_error());
    CHECK(strstr(ctstack_last_error(), "incomplete") != NULL, "%s", ctstack_last_error());
    CHECK(ctstack_pyramid_build(path_of(fixtures, "stack"), &o, NULL, NULL) == CTSTACK_OK, "build again: %s",
          ctstack_last_error());
    CHECK(ctstack_pyramid_open(o.output_dir, &p) == CTSTACK_OK && p, "complete: %s", ctstack_last_error());
    ctstack_pyramid_free(p);
}

/* A stack of an 8- and a 16-bit slice: refused with a pointer to options.depth, built at the
 * depth asked for; a depth other than 0, 8 or 16 is an invalid argument. */
static void test_depth_conversion(void) {
    const char *mixed[2] = {path_of(fixtures, "slices/tifffile_u16_le_1strip.tif"),
                            path_of(fixtures, "slices/tifffile_u8.tif")};
    ctstack_pyramid_options o = options_with(path_of(scratch, "depth_refused"), 10);
    int32_t st = ctstack_pyramid_build_files(mixed, 2, &o, NULL, NULL);
    CHECK(st == CTSTACK_ERR_MISMATCH && strstr(ctstack_last_error(), "options.depth") != NULL, "mixed: %d %s", st,
          ctstack_last_error());
    o.depth = 12;
    CHECK(ctstack_pyramid_build_files(mixed, 2, &o, NULL, NULL) == CTSTACK_ERR_INVALID_ARGUMENT, "depth 12");
    const uint32_t depths[2] = {8, 16};
    const int32_t types[2] = {CTSTACK_SAMPLE_U8, CTSTACK_SAMPLE_U16};
    for (int i = 0; i < 2; i++) {
        o.depth = depths[i];
        o.output_dir = path_of(scratch, depths[i] == 8 ? "depth8" : "depth16");
        CHECK(ctstack_pyramid_build_files(mixed, 2, &o, NULL, NULL) == CTSTACK_OK, "depth %u: %s", depths[i],
              ctstack_last_error());
        ctstack_pyramid *p = NULL;
        ctstack_level_info info;
        CHECK(ctstack_pyramid_open(o.output_dir, &p) == CTSTACK_OK && ctstack_pyramid_level(p, 1, &info) == CTSTACK_OK,
              "open depth %u: %s", depths[i], ctstack_last_error());
        CHECK(info.sample_type == types[i] && info.count == 1, "depth %u: level 1 type %d count %llu", depths[i],
              info.sample_type, (unsigned long long)info.count);
        ctstack_pyramid_free(p);
    }
}

static int same_slice_file(const char *x, const char *y) {
    ctstack_slice *a = NULL, *b = NULL;
    int same = 0;
    if (ctstack_slice_open(x, &a) == CTSTACK_OK && ctstack_slice_open(y, &b) == CTSTACK_OK) {
        const void *da, *db;
        size_t la, lb;
        ctstack_slice_data(a, &da, &la);
        ctstack_slice_data(b, &db, &lb);
        same = la == lb && memcmp(da, db, la) == 0;
    }
    ctstack_slice_free(a);
    ctstack_slice_free(b);
    return same;
}

static int matches_reference(const char *out) {
    char ours[1024], ref[1024];
    int ok = 1;
    for (int j = 0; j < 11; j++) {
        snprintf(ours, sizeof ours, "%s/1/%06d.tif", out, j);
        snprintf(ref, sizeof ref, "%s/stack_reference/1/%06d.tif", fixtures, j);
        ok &= same_slice_file(ours, ref);
    }
    for (int j = 0; j < 6; j++) {
        snprintf(ours, sizeof ours, "%s/2/%06d.tif", out, j);
        snprintf(ref, sizeof ref, "%s/stack_reference/2/%06d.tif", fixtures, j);
        ok &= same_slice_file(ours, ref);
    }
    return ok;
}

static void test_pyramid(void) {
    struct progress_log log = {0};
    const char *out = path_of(scratch, "blocking");
    int32_t st = build(path_of(fixtures, "stack"), out, 80, on_progress, &log);
    CHECK(st == CTSTACK_OK, "build: %d %s", st, ctstack_last_error());
    CHECK(log.last_done == 17 && log.last_total == 17 && !log.backwards, "progress %llu/%llu",
          (unsigned long long)log.last_done, (unsigned long long)log.last_total);
    CHECK(matches_reference(out), "blocking build differs from the reference");

    /* Options: threads and min_size through the struct give the same pyramid; min_levels = 1 builds
     * level 1 of a stack that already fits min_size (301x203 under 500), and nothing deeper. */
    ctstack_pyramid_options o;
    ctstack_pyramid_options_init(&o, sizeof o);
    o.output_dir = path_of(scratch, "options");
    o.min_size = 80;
    o.threads = 1;
    st = ctstack_pyramid_build(path_of(fixtures, "stack"), &o, NULL, NULL);
    CHECK(st == CTSTACK_OK && matches_reference(o.output_dir), "options build: %d %s", st, ctstack_last_error());
    char level[4096];
    /* Selection: slice_0000..slice_0009 of the 21 give 5 level-1 slices, equal to the reference's
     * first five (level-1 slice j depends only on inputs 2j and 2j+1). */
    ctstack_pyramid_options_init(&o, sizeof o);
    CHECK(o.prefix == NULL && o.extension == NULL && o.index_first == -1 && o.index_last == -1 &&
              o.index_width == 0,
          "selection defaults");
    o.output_dir = path_of(scratch, "selected");
    o.min_size = 80;
    o.prefix = "slice_";
    o.extension = "TIF";
    o.index_first = 0;
    o.index_last = 9;
    o.index_width = 4;
    st = ctstack_pyramid_build(path_of(fixtures, "stack"), &o, NULL, NULL);
    snprintf(level, sizeof level, "%s/1/%06d.tif", o.output_dir, 4);
    CHECK(st == CTSTACK_OK && same_slice_file(level, path_of(fixtures, "stack_reference/1/000004.tif")),
          "selection: %d %s", st, ctstack_last_error());
    snprintf(level, sizeof level, "%s/1/%06d.tif", o.output_dir, 5);
    FILE *beyond = fopen(level, "r");
    CHECK(beyond == NULL, "the selection built slice 5 of level 1");
    if (beyond) fclose(beyond);
    o.index_first = 5;
    o.index_last = 4;
    CHECK(ctstack_pyramid_build(path_of(fixtures, "stack"), &o, NULL, NULL) == CTSTACK_ERR_INVALID_ARGUMENT,
          "inverted range");
    ctstack_pyramid_options_init(&o, sizeof o);
    o.output_dir = path_of(scratch, "min_levels");
    o.min_levels = 1;
    st = ctstack_pyramid_build(path_of(fixtures, "stack"), &o, NULL, NULL);
    snprintf(level, sizeof level, "%s/1/%06d.tif", o.output_dir, 10);
    CHECK(st == CTSTACK_OK && same_slice_file(level, path_of(fixtures, "stack_reference/1/000010.tif")),
          "min_levels 1: %d %s", st, ctstack_last_error());
    snprintf(level, sizeof level, "%s/2/000000.tif", o.output_dir);
    FILE *deeper = fopen(level, "r");
    CHECK(deeper == NULL, "min_levels 1 built level 2");
    if (deeper) fclose(deeper);

    struct progress_log stop = {.cancel_at = 3};
    st = build(path_of(fixtures, "stack"), path_of(scratch, "cancelled"), 80, on_progress, &stop);
    CHECK(st == CTSTACK_ERR_CANCELLED, "cancel via callback: %d", st);
    CHECK(stop.last_done == 3, "stopped at %llu", (unsigned long long)stop.last_done);

    /* The job API: poll from this thread until done. */
    ctstack_job *job = NULL;
    const char *jout = path_of(scratch, "job");
    CHECK(start(path_of(fixtures, "stack"), jout, 80, &job) == CTSTACK_OK && job, "start");
    uint64_t done = 0, total = 0, seen = 0;
    int went_back = 0;
    while (ctstack_job_progress(job, &done, &total) == 1) {
        went_back |= done < seen;
        seen = done;
    }
    CHECK(!went_back, "job progress went back");
    ctstack_job_progress(job, &done, &total);
    CHECK(done == 17 && total == 17, "job progress %llu/%llu", (unsigned long long)done,
          (unsigned long long)total);
    CHECK(ctstack_job_wait(job) == CTSTACK_OK, "job: %s", ctstack_job_error(job));
    CHECK(ctstack_job_wait(job) == CTSTACK_OK, "wait twice");
    CHECK(strcmp(ctstack_job_error(job), "") == 0, "no error");
    CHECK(matches_reference(jout), "job output differs from the reference");
    ctstack_job_free(job);

    /* A job from an explicit file list. */
    const char *names[21];
    char storage[21][1024];
    for (int i = 0; i < 21; i++) {
        snprintf(storage[i], sizeof storage[i], "%s/stack/slice_%04d.tif", fixtures, i);
        names[i] = storage[i];
    }
    const char *fout = path_of(scratch, "files");
    CHECK(start_files(names, 21, fout, 80, &job) == CTSTACK_OK, "start_files");
    CHECK(ctstack_job_wait(job) == CTSTACK_OK, "files job: %s", ctstack_job_error(job));
    CHECK(matches_reference(fout), "file-list job differs from the reference");
    ctstack_job_free(job);
    CHECK(start_files(names, 21, NULL, 80, &job) == CTSTACK_ERR_INVALID_ARGUMENT && !job,
          "output_dir required");

    /* A failing job reports its message; a cancelled one says so; free on a running job joins it. */
    CHECK(start(path_of(fixtures, "no_such_dir"), NULL, CTSTACK_DEFAULT_MIN_SIZE, &job) == CTSTACK_OK,
          "start bad");
    CHECK(ctstack_job_wait(job) == CTSTACK_ERR_STATE, "missing dir");
    CHECK(strstr(ctstack_job_error(job), "no_such_dir") != NULL, "%s", ctstack_job_error(job));
    ctstack_job_free(job);
    CHECK(start(path_of(fixtures, "stack"), path_of(scratch, "jobcancel"), 1, &job) == CTSTACK_OK,
          "start 2");
    ctstack_job_cancel(job);
    st = ctstack_job_wait(job);
    CHECK(st == CTSTACK_ERR_CANCELLED || st == CTSTACK_OK, "cancelled job: %d", st);
    if (st == CTSTACK_ERR_CANCELLED) CHECK(strstr(ctstack_job_error(job), "cancelled") != NULL, "message");
    ctstack_job_free(job);
    CHECK(start(path_of(fixtures, "stack"), path_of(scratch, "jobfree"), 1, &job) == CTSTACK_OK,
          "start 3");
    ctstack_job_free(job);
}

/* A built pyramid read back: its levels from the manifest, every level equal to the reference
 * slices laid end to end; the errors of the read-back calls. */
static void test_read_back(void) {
    const char *out = path_of(scratch, "read_back");
    CHECK(build(path_of(fixtures, "stack"), out, 80, NULL, NULL) == CTSTACK_OK, "build: %s",
          ctstack_last_error());
    ctstack_pyramid *p = NULL;
    CHECK(ctstack_pyramid_open(out, &p) == CTSTACK_OK && p, "open: %s", ctstack_last_error());
    CHECK(ctstack_pyramid_level_count(p) == 2, "levels %u", ctstack_pyramid_level_count(p));
    const uint32_t want[3][3] = {{0, 0, 0}, {150, 101, 11}, {75, 50, 6}};
    for (uint32_t k = 1; k <= 2; k++) {
        ctstack_level_info info;
        CHECK(ctstack_pyramid_level(p, k, &info) == CTSTACK_OK, "level %u: %s", k, ctstack_last_error());
        CHECK(info.k == k && info.width == want[k][0] && info.height == want[k][1] && info.count == want[k][2] &&
                  info.sample_type == CTSTACK_SAMPLE_U16 && info.bytes == 2ull * info.width * info.height * info.count,
              "level %u: %ux%u x %llu type %d", k, info.width, info.height, (unsigned long long)info.count,
              info.sample_type);
        uint16_t *volume = malloc(info.bytes);
        CHECK(ctstack_pyramid_read_level(p, k, volume, info.bytes) == CTSTACK_OK, "read %u: %s", k,
              ctstack_last_error());
        size_t plane = (size_t)info.width * info.height * 2;
        for (uint64_t j = 0; j < info.count; j++) {
            char ref[1024];
            snprintf(ref, sizeof ref, "%s/stack_reference/%u/%06llu.tif", fixtures, k, (unsigned long long)j);
            ctstack_slice *r = NULL;
            const void *data = NULL;
            size_t len = 0;
            CHECK(ctstack_slice_open(ref, &r) == CTSTACK_OK && ctstack_slice_data(r, &data, &len) == CTSTACK_OK,
                  "reference %s", ref);
            CHECK(len == plane && memcmp((const char *)volume + j * plane, data, plane) == 0,
                  "level %u slice %llu differs from the reference", k, (unsigned long long)j);
            ctstack_slice_free(r);
        }
        CHECK(ctstack_pyramid_read_level(p, k, volume, info.bytes - 2) == CTSTACK_ERR_MISMATCH, "short buffer");
        CHECK(ctstack_pyramid_read_level(p, k, NULL, info.bytes) == CTSTACK_ERR_INVALID_ARGUMENT, "NULL buffer");
        free(volume);
    }
    ctstack_level_info info;
    CHECK(ctstack_pyramid_level(p, 0, &info) == CTSTACK_ERR_INVALID_ARGUMENT, "level 0");
    CHECK(ctstack_pyramid_level(p, 3, &info) == CTSTACK_ERR_INVALID_ARGUMENT, "level 3");
    CHECK(ctstack_pyramid_level(p, 1, NULL) == CTSTACK_ERR_INVALID_ARGUMENT, "info NULL");
    ctstack_pyramid_free(p);
    ctstack_pyramid_free(NULL);
    CHECK(ctstack_pyramid_level_count(NULL) == 0, "count NULL");
    p = (ctstack_pyramid *)1;
    CHECK(ctstack_pyramid_open(fixtures, &p) == CTSTACK_ERR_STATE && p == NULL, "no manifest");
    CHECK(strstr(ctstack_last_error(), "ctstack.json") != NULL, "%s", ctstack_last_error());
    CHECK(ctstack_pyramid_open(NULL, &p) == CTSTACK_ERR_INVALID_ARGUMENT, "open NULL");
}

/* A finished job's report: levels, counts kept / rebuilt / removed, warnings, output folder;
 * a rerun keeps everything, force rebuilds everything. */
static void test_job_report(void) {
    const char *out = path_of(scratch, "report");
    ctstack_pyramid_options o;
    ctstack_pyramid_options_init(&o, sizeof o);
    o.output_dir = out;
    o.min_size = 80;
    CHECK(o.force == 0, "force defaults to off");
    const uint64_t rebuilt[3] = {17, 0, 17};
    for (int round = 0; round < 3; round++) {
        o.force = round == 2;
        ctstack_job *job = NULL;
        CHECK(ctstack_job_start(path_of(fixtures, "stack"), &o, &job) == CTSTACK_OK, "start");
        CHECK(ctstack_job_wait(job) == CTSTACK_OK, "job: %s", ctstack_job_error(job));
        ctstack_job_report r = {.struct_size = sizeof r};
        CHECK(ctstack_job_report_get(job, &r) == CTSTACK_OK, "report: %s", ctstack_last_error());
        CHECK(r.levels == 2 && r.rebuilt == rebuilt[round] && r.kept == 17 - rebuilt[round] && r.removed == 0,
              "round %d: %u levels, %llu rebuilt, %llu kept, %llu removed", round, r.levels,
              (unsigned long long)r.rebuilt, (unsigned long long)r.kept, (unsigned long long)r.removed);
        CHECK(r.warnings == 0 && strcmp(ctstack_job_warning(job, 0), "") == 0, "warnings %u", r.warnings);
        CHECK(r.elapsed_seconds >= 0.0, "elapsed");
        /* A TIFF pyramid records no voxel size: the report's voxel fields are 0 and "". */
        CHECK(r.voxel_size_source == CTSTACK_VOXEL_SIZE_UNKNOWN && r.voxel_size[0] == 0.0 &&
                  r.voxel_size_from != NULL && r.voxel_size_from[0] == '\0',
              "pyramid voxel size source %d", r.voxel_size_source);
        CHECK(strcmp(ctstack_job_output_dir(job), out) == 0, "output dir %s", ctstack_job_output_dir(job));
        r.struct_size = 4;
        CHECK(ctstack_job_report_get(job, &r) == CTSTACK_ERR_INVALID_ARGUMENT, "struct_size 4");
        CHECK(ctstack_job_report_get(job, NULL) == CTSTACK_ERR_INVALID_ARGUMENT, "report NULL");
        ctstack_job_free(job);
    }
    /* A gap in the numbering is a warning of the report; a failed job reports its status. */
    const char *names[20];
    char storage[20][1024];
    for (int i = 0, n = 0; i < 21; i++) {
        if (i == 8) continue;
        snprintf(storage[n], sizeof storage[n], "%s/stack/slice_%04d.tif", fixtures, i);
        names[n] = storage[n];
        n++;
    }
    ctstack_job *job = NULL;
    o.force = 0;
    o.output_dir = path_of(scratch, "report_gap");
    CHECK(ctstack_job_start_files(names, 20, &o, &job) == CTSTACK_OK, "start gap");
    CHECK(ctstack_job_wait(job) == CTSTACK_OK, "gap job: %s", ctstack_job_error(job));
    ctstack_job_report r = {.struct_size = sizeof r};
    CHECK(ctstack_job_report_get(job, &r) == CTSTACK_OK && r.warnings == 1, "gap warnings %u", r.warnings);
    CHECK(strstr(ctstack_job_warning(job, 0), "number 8 is missing") != NULL, "%s", ctstack_job_warning(job, 0));
    ctstack_job_free(job);
    CHECK(start(path_of(fixtures, "no_such_dir"), NULL, 80, &job) == CTSTACK_OK, "start bad");
    CHECK(ctstack_job_wait(job) == CTSTACK_ERR_STATE, "missing dir");
    CHECK(ctstack_job_report_get(job, &r) == CTSTACK_ERR_STATE, "a failed job's report is its status");
    CHECK(strcmp(ctstack_job_output_dir(job), "") == 0, "no output dir");
    ctstack_job_free(job);
    CHECK(ctstack_job_report_get(NULL, &r) == CTSTACK_ERR_INVALID_ARGUMENT, "job NULL");
    CHECK(strcmp(ctstack_job_warning(NULL, 0), "") == 0, "warning NULL");
}

/* A slab build: slabs of 4 inputs (2^L, L = 2) in any order, one of them twice (a retried task),
 * then the finish step; the pyramid equals the reference and the report is a whole run's. */
static int finish_report(ctstack_job *job, ctstack_job_report *r) {
    r->struct_size = sizeof *r;
    int32_t st = ctstack_job_wait(job);
    if (st != CTSTACK_OK) return st;
    return ctstack_job_report_get(job, r);
}

static void test_slabs(void) {
    /* Own buffers: path_of's are reused after a few calls. */
    char out[1024], files_out[1024], stack[1024], record[1100];
    snprintf(out, sizeof out, "%s/slabs", scratch);
    snprintf(files_out, sizeof files_out, "%s/slabs_files", scratch);
    snprintf(stack, sizeof stack, "%s/stack", fixtures);
    ctstack_pyramid_options o;
    ctstack_pyramid_options_init(&o, sizeof o);
    CHECK(o.slab_start == 0 && o.slab_end == 0, "slab defaults");
    o.output_dir = out;
    o.min_size = 80;
    uint64_t n_inputs = 0, alignment = 0;
    CHECK(ctstack_pyramid_slab_alignment(stack, &o, &n_inputs, &alignment) == CTSTACK_OK && n_inputs == 21 &&
              alignment == 4,
          "slab geometry %llu %llu: %s", (unsigned long long)n_inputs, (unsigned long long)alignment,
          ctstack_last_error());
    const uint64_t starts[] = {20, 16, 12, 8, 4, 0, 0};
    for (int i = 0; i < 7; i++) {
        o.slab_start = starts[i];
        o.slab_end = starts[i] + 4 < 21 ? starts[i] + 4 : 21;
        int32_t st = ctstack_pyramid_build(stack, &o, NULL, NULL);
        CHECK(st == CTSTACK_OK, "slab %llu: %d %s", (unsigned long long)o.slab_start, st, ctstack_last_error());
    }
    o.slab_start = 1;
    o.slab_end = 5;
    CHECK(ctstack_pyramid_build(stack, &o, NULL, NULL) == CTSTACK_ERR_INVALID_ARGUMENT,
          "a misaligned slab");
    o.slab_start = 8;
    o.slab_end = 4;
    CHECK(ctstack_pyramid_build(stack, &o, NULL, NULL) == CTSTACK_ERR_INVALID_ARGUMENT,
          "an inverted slab");
    ctstack_job *job = NULL;
    CHECK(ctstack_job_start_finish(stack, &o, &job) == CTSTACK_ERR_INVALID_ARGUMENT && !job,
          "finish with slab fields set");
    o.slab_start = o.slab_end = 0;
    CHECK(ctstack_job_start_finish(stack, &o, &job) == CTSTACK_OK, "start finish");
    ctstack_job_report r;
    int32_t st = finish_report(job, &r);
    CHECK(st == CTSTACK_OK && r.levels == 2 && r.rebuilt == 17 && r.kept == 0 && r.removed == 0,
          "finish: %d %s, %llu rebuilt, %llu kept", st, ctstack_job_error(job), (unsigned long long)r.rebuilt,
          (unsigned long long)r.kept);
    ctstack_job_free(job);
    CHECK(matches_reference(o.output_dir), "slab build differs from the reference");
    snprintf(record, sizeof record, "%s/.ctstack-slab-000000000-000000004.json", out);
    FILE *left = fopen(record, "r");
    CHECK(left == NULL, "finish left a slab record");
    if (left) fclose(left);

    /* A file list, slabs of 8; finishing before the last slab fails and changes nothing. */
    const char *names[21];
    char storage[21][1024];
    for (int i = 0; i < 21; i++) {
        snprintf(storage[i], sizeof storage[i], "%s/stack/slice_%04d.tif", fixtures, i);
        names[i] = storage[i];
    }
    o.output_dir = files_out;
    CHECK(ctstack_pyramid_slab_alignment_files(names, 21, &o, NULL, &alignment) == CTSTACK_OK && alignment == 4,
          "file-list slab geometry: %s", ctstack_last_error());
    CHECK(ctstack_pyramid_slab_alignment_files(names, 0, &o, NULL, NULL) == CTSTACK_ERR_INVALID_ARGUMENT,
          "no files");
    for (uint64_t start = 0; start < 21; start += 8) {
        if (start == 16) {
            ctstack_pyramid_options whole = o;
            whole.slab_start = whole.slab_end = 0;
            CHECK(ctstack_job_start_finish_files(names, 21, &whole, &job) == CTSTACK_OK, "start early finish");
            st = finish_report(job, &r);
            CHECK(st == CTSTACK_ERR_STATE && strstr(ctstack_job_error(job), "inputs 16..18") != NULL,
                  "early finish: %d %s", st, ctstack_job_error(job));
            ctstack_job_free(job);
        }
        o.slab_start = start;
        o.slab_end = start + 8 < 21 ? start + 8 : 21;
        st = ctstack_pyramid_build_files(names, 21, &o, NULL, NULL);
        CHECK(st == CTSTACK_OK, "file slab %llu: %d %s", (unsigned long long)start, st, ctstack_last_error());
    }
    o.slab_start = o.slab_end = 0;
    CHECK(ctstack_job_start_finish_files(names, 21, &o, &job) == CTSTACK_OK, "start finish files");
    st = finish_report(job, &r);
    CHECK(st == CTSTACK_OK && r.rebuilt == 17, "finish files: %d %s", st, ctstack_job_error(job));
    ctstack_job_free(job);
    CHECK(matches_reference(o.output_dir), "file-list slab build differs from the reference");
}

struct reader {
    const ctstack_slice *shared;
    const char *own_path;
    const void *want;
    size_t len;
    int ok;
};

static void *read_in_thread(void *arg) {
    struct reader *r = arg;
    r->ok = 1;
    void *buf = malloc(r->len);
    for (int i = 0; i < 50; i++) {
        r->ok &= ctstack_slice_read(r->shared, buf, r->len) == CTSTACK_OK && memcmp(buf, r->want, r->len) == 0;
        ctstack_slice *own = NULL;
        r->ok &= ctstack_slice_open(r->own_path, &own) == CTSTACK_OK;
        r->ok &= ctstack_slice_read(own, buf, r->len) == CTSTACK_OK && memcmp(buf, r->want, r->len) == 0;
        ctstack_slice_free(own);
        /* Errors are per thread: a failure here must not disturb the others. */
        r->ok &= ctstack_slice_open("missing.tif", &own) == CTSTACK_ERR_IO;
        r->ok &= strstr(ctstack_last_error(), "missing.tif") != NULL;
    }
    free(buf);
    return NULL;
}

static void test_threads(void) {
    ctstack_slice *s = open_ok("slices/tifffile_u16_le_strips8.tif");
    const void *data;
    size_t len;
    ctstack_slice_data(s, &data, &len);
    pthread_t threads[4];
    struct reader readers[4];
    for (int i = 0; i < 4; i++) {
        readers[i] = (struct reader){s, path_of(fixtures, "slices/tifffile_u16_le_strips8.tif"), data, len, 0};
        pthread_create(&threads[i], NULL, read_in_thread, &readers[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        CHECK(readers[i].ok, "thread %d read differently", i);
    }
    ctstack_slice_free(s);
}

static int32_t cancel_at_first(uint64_t done, uint64_t total, void *user_data) {
    (void)total;
    int *calls = user_data;
    ++*calls;
    return done >= 1;
}

/* A crop: plan, shape, names, read into an array (against the slices' own pixels),
 * write the files on a job, errors for a box outside the stack and a missing pyramid,
 * cancel from the callback. */
static void test_crop(void) {
    ctstack_crop_options o;
    ctstack_crop_options_init(&o, sizeof o);
    CHECK(o.struct_size == sizeof o && o.level == 0 && o.x1 == 0 && o.index_first == -1, "crop defaults");
    o.x0 = 10;
    o.x1 = 50;
    o.y0 = 20;
    o.y1 = 40;
    o.z0 = 3;
    o.z1 = 7;
    o.output_dir = path_of(scratch, "crop");
    ctstack_crop *crop = NULL;
    int32_t st = ctstack_crop_plan(path_of(fixtures, "stack"), &o, &crop);
    CHECK(st == CTSTACK_OK && crop, "crop plan: %s", ctstack_last_error());
    uint64_t count = 0;
    uint32_t h = 0, w = 0;
    int32_t type = 0;
    CHECK(ctstack_crop_shape(crop, &count, &h, &w, &type) == CTSTACK_OK && count == 4 && h == 20 && w == 40 &&
              type == CTSTACK_SAMPLE_U16,
          "shape %llu x %ux%u type %d", (unsigned long long)count, h, w, type);
    CHECK(strcmp(ctstack_crop_output_name(crop, 0), "slice_0003.tif") == 0, "name %s",
          ctstack_crop_output_name(crop, 0));
    CHECK(strcmp(ctstack_crop_output_name(crop, 4), "") == 0, "no name 4");
    uint16_t *volume = malloc(4 * 20 * 40 * 2);
    CHECK(ctstack_crop_read(crop, volume, 4 * 20 * 40 * 2 - 2, NULL, NULL) == CTSTACK_ERR_MISMATCH, "short dst");
    CHECK(ctstack_crop_read(crop, volume, 4 * 20 * 40 * 2, NULL, NULL) == CTSTACK_OK, "read: %s",
          ctstack_last_error());
    int same = 1;
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "stack/slice_%04d.tif", 3 + i);
        ctstack_slice *s = open_ok(name);
        uint16_t *whole = malloc(301 * 203 * 2);
        ctstack_slice_read(s, whole, 301 * 203 * 2);
        for (int y = 0; y < 20; y++)
            for (int x = 0; x < 40; x++)
                same &= volume[(i * 20 + y) * 40 + x] == whole[(20 + y) * 301 + 10 + x];
        free(whole);
        ctstack_slice_free(s);
    }
    CHECK(same, "the array is the box of the slices");
    /* A strided part of the same crop: [1:4:2, 3:20:8, 5:40:10] of the volume above. */
    {
        uint64_t start[3] = {1, 3, 5}, end[3] = {4, 20, 40}, step[3] = {2, 8, 10};
        uint16_t part[2 * 3 * 4];
        CHECK(ctstack_crop_read_box(crop, start, end, step, part, sizeof part) == CTSTACK_OK, "read_box: %s",
              ctstack_last_error());
        int same_part = 1;
        for (int i = 0; i < 2; i++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 4; x++)
                    same_part &= part[(i * 3 + y) * 4 + x] == volume[((1 + 2 * i) * 20 + 3 + 8 * y) * 40 + 5 + 10 * x];
        CHECK(same_part, "read_box is numpy's strided slice of the crop");
        CHECK(ctstack_crop_read_box(crop, start, end, step, part, sizeof part - 2) == CTSTACK_ERR_MISMATCH,
              "read_box: short dst");
        uint64_t past[3] = {0, 0, 41};
        CHECK(ctstack_crop_read_box(crop, start, past, step, part, sizeof part) == CTSTACK_ERR_INVALID_ARGUMENT,
              "read_box: past the crop");
    }
    int calls = 0;
    CHECK(ctstack_crop_read(crop, volume, 4 * 20 * 40 * 2, cancel_at_first, &calls) == CTSTACK_ERR_CANCELLED &&
              calls >= 2,
          "cancel from the callback (%d calls)", calls);
    ctstack_job *job = NULL;
    CHECK(ctstack_crop_start(crop, &job) == CTSTACK_OK && job, "crop start");
    ctstack_crop_free(crop);
    CHECK(ctstack_job_wait(job) == CTSTACK_OK, "crop job: %s", ctstack_job_error(job));
    ctstack_job_report r;
    r.struct_size = sizeof r;
    CHECK(ctstack_job_report_get(job, &r) == CTSTACK_OK && r.rebuilt == 4, "crop report: %llu files",
          (unsigned long long)r.rebuilt);
    uint64_t done = 0, total = 0;
    CHECK(ctstack_job_progress(job, &done, &total) == 0 && done == 4 && total == 4, "progress %llu/%llu",
          (unsigned long long)done, (unsigned long long)total);
    ctstack_job_free(job);
    ctstack_slice *out = NULL;
    CHECK(ctstack_slice_open(path_of(scratch, "crop/slice_0006.tif"), &out) == CTSTACK_OK &&
              ctstack_slice_width(out) == 40 && ctstack_slice_height(out) == 20,
          "written: %s", ctstack_last_error());
    uint16_t last[800];
    ctstack_slice_read(out, last, sizeof last);
    CHECK(memcmp(last, volume + 3 * 800, sizeof last) == 0, "the file is the array's last plane");
    ctstack_slice_free(out);
    free(volume);
    /* An output changed since ctstack wrote it is not ctstack's: a rerun stops before writing anything. */
    FILE *edited = fopen(path_of(scratch, "crop/slice_0006.tif"), "wb");
    CHECK(edited && fputs("the user's", edited) >= 0 && fclose(edited) == 0, "edit an output");
    o.output_dir = path_of(scratch, "crop");
    CHECK(ctstack_crop_plan(path_of(fixtures, "stack"), &o, &crop) == CTSTACK_OK && crop, "plan again: %s",
          ctstack_last_error());
    CHECK(ctstack_crop_start(crop, &job) == CTSTACK_OK && job, "start again");
    ctstack_crop_free(crop);
    CHECK(ctstack_job_wait(job) == CTSTACK_ERR_STATE &&
              strstr(ctstack_job_error(job),
                     "slice_0006.tif is at an output name of the crop, and ctstack did not write it") != NULL,
          "edited output: %s", ctstack_job_error(job));
    ctstack_job_free(job);
    FILE *kept = fopen(path_of(scratch, "crop/slice_0006.tif"), "rb");
    char back[16] = {0};
    CHECK(kept && fread(back, 1, sizeof back - 1, kept) == 10 && strcmp(back, "the user's") == 0, "kept: %s", back);
    if (kept)
        fclose(kept);
    /* A box outside the stack, a missing pyramid: invalid arguments naming what is wrong. */
    o.x1 = 302;
    CHECK(ctstack_crop_plan(path_of(fixtures, "stack"), &o, &crop) == CTSTACK_ERR_INVALID_ARGUMENT && !crop &&
              strstr(ctstack_last_error(), "x 0..301") != NULL,
          "out of bounds: %s", ctstack_last_error());
    o.x1 = 0;
    o.level = 1;
    CHECK(ctstack_crop_plan(path_of(fixtures, "stack"), &o, &crop) == CTSTACK_ERR_STATE &&
              strstr(ctstack_last_error(), "build") != NULL,
          "no pyramid: %s", ctstack_last_error());
    o.level = 0;
    o.format = 7;
    CHECK(ctstack_crop_plan(path_of(fixtures, "stack"), &o, &crop) == CTSTACK_ERR_INVALID_ARGUMENT, "format 7");
    o.format = CTSTACK_CROP_FORMAT_PNG;
    o.name_prefix = "../up_";
    CHECK(ctstack_crop_plan(path_of(fixtures, "stack"), &o, &crop) == CTSTACK_ERR_INVALID_ARGUMENT &&
              strstr(ctstack_last_error(), "output folder") != NULL,
          "a prefix that leaves the folder: %s", ctstack_last_error());
    CHECK(ctstack_crop_plan(path_of(fixtures, "stack"), &o, NULL) == CTSTACK_ERR_INVALID_ARGUMENT, "NULL out");
    ctstack_crop_free(NULL);
}

/* Whether the files at x and y exist and hold the same bytes. */
static int same_bytes(const char *x, const char *y) {
    FILE *a = fopen(x, "rb"), *b = fopen(y, "rb");
    int same = a != NULL && b != NULL;
    while (same) {
        int ca = fgetc(a), cb = fgetc(b);
        if (ca != cb) same = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (a) fclose(a);
    if (b) fclose(b);
    return same;
}

/* A gap in the numbering (slice_0005.tif missing, issue 26): refused by default, naming it;
 * with skip_missing, left out with a warning, every output its own number's pixels. */
static void test_crop_gap(void) {
    char gap[1024]; /* path_of's buffers are reused */
    snprintf(gap, sizeof gap, "%s", path_of(scratch, "crop_gap"));
    mkdir(gap, 0755);
    for (int i = 0; i <= 20; i++) {
        if (i == 5) continue;
        char name[64], from[1024], to[1100];
        snprintf(name, sizeof name, "stack/slice_%04d.tif", i);
        snprintf(from, sizeof from, "%s", path_of(fixtures, name));
        snprintf(to, sizeof to, "%s/slice_%04d.tif", gap, i);
        CHECK(symlink(from, to) == 0, "symlink %s", to);
    }
    ctstack_crop_options o;
    ctstack_crop_options_init(&o, sizeof o);
    CHECK(o.skip_missing == 0, "skip_missing defaults to 0");
    o.z0 = 3;
    o.z1 = 8;
    o.output_dir = path_of(scratch, "crop_gap_out");
    ctstack_crop *crop = NULL;
    CHECK(ctstack_crop_plan(gap, &o, &crop) == CTSTACK_ERR_STATE && !crop &&
              strstr(ctstack_last_error(), "number 5 (slice_0005.tif)") != NULL,
          "a gap is refused: %s", ctstack_last_error());
    o.skip_missing = 1;
    CHECK(ctstack_crop_plan(gap, &o, &crop) == CTSTACK_OK && crop, "skip: %s", ctstack_last_error());
    uint64_t count = 0;
    ctstack_crop_shape(crop, &count, NULL, NULL, NULL);
    CHECK(count == 4 && strcmp(ctstack_crop_output_name(crop, 2), "slice_0006.tif") == 0, "%llu slices, %s",
          (unsigned long long)count, ctstack_crop_output_name(crop, 2));
    const char *warning = ctstack_crop_warning(crop, 0);
    CHECK(warning != NULL && strstr(warning, "slice_0005.tif") != NULL && ctstack_crop_warning(crop, 1) == NULL,
          "the warning: %s", warning ? warning : "(none)");
    ctstack_job *job = NULL;
    CHECK(ctstack_crop_start(crop, &job) == CTSTACK_OK, "start");
    ctstack_crop_free(crop);
    CHECK(ctstack_job_wait(job) == CTSTACK_OK, "gap job: %s", ctstack_job_error(job));
    ctstack_job_report r;
    r.struct_size = sizeof r;
    CHECK(ctstack_job_report_get(job, &r) == CTSTACK_OK && r.rebuilt == 4 && r.warnings >= 1 &&
              strstr(ctstack_job_warning(job, 0), "slice_0005.tif") != NULL,
          "the report's warning: %s", ctstack_job_warning(job, 0));
    ctstack_job_free(job);
    CHECK(same_slice_file(path_of(scratch, "crop_gap_out/slice_0006.tif"), path_of(fixtures, "stack/slice_0006.tif")),
          "slice_0006.tif is slice_0006's pixels");
    struct stat st;
    CHECK(stat(path_of(scratch, "crop_gap_out/slice_0005.tif"), &st) != 0, "no slice_0005.tif");
}


/* An OME-Zarr build as a job, and the same store built by slabs (prepare, two slabs in reverse order,
 * finish): the files are the same bytes. Bad options fail the start call. */
static void test_zarr(void) {
    ctstack_pyramid_options p;
    ctstack_pyramid_options_init(&p, sizeof p);
    p.min_size = 80;
    ctstack_zarr_options z;
    ctstack_zarr_options_init(&z, sizeof z);
    CHECK(z.ngff == 5 && z.chunks[0] == 16 && z.compression == 2 && z.blosc_compressor == 0
              && z.blosc_shuffle == 2 && z.blosc_level == 5 && z.step == CTSTACK_ZARR_WHOLE,
          "defaults");
    z.chunks[0] = 4, z.chunks[1] = 64, z.chunks[2] = 64;
    char whole[1024], slabs[1024];
    snprintf(whole, sizeof whole, "%s", path_of(scratch, "zarr_whole/s.ome.zarr"));
    snprintf(slabs, sizeof slabs, "%s", path_of(scratch, "zarr_slabs/s.ome.zarr"));
    z.store = whole;
    ctstack_job *job = NULL;
    CHECK(ctstack_zarr_job_start(path_of(fixtures, "stack"), &p, &z, &job) == CTSTACK_OK, "start: %s",
          ctstack_last_error());
    ctstack_job_report r = {.struct_size = sizeof r};
    CHECK(finish_report(job, &r) == CTSTACK_OK, "zarr job: %s", ctstack_job_error(job));
    /* 3 arrays (21, 10 and 5 planes: in z the planes that average exactly 2^k slices): 6x4x5 + 3x2x3 +
     * 2x1x2 chunks, 3 array metadata files, the root group (written twice, one file). */
    CHECK(r.levels == 2 && r.rebuilt == 120 + 18 + 4 + 3 + 1 && r.kept == 0, "%u levels, %llu written, %llu kept",
          r.levels, (unsigned long long)r.rebuilt, (unsigned long long)r.kept);
    CHECK(strcmp(ctstack_job_output_dir(job), whole) == 0, "store %s", ctstack_job_output_dir(job));
    /* The fixture's slices carry no size and no scanner's file is beside them: unknown, 1, 1, 1. */
    CHECK(r.voxel_size_source == CTSTACK_VOXEL_SIZE_UNKNOWN && r.voxel_size[0] == 1.0 &&
              r.voxel_size_from != NULL && r.voxel_size_from[0] == '\0',
          "voxel size source %d (%s)", r.voxel_size_source, r.voxel_size_from ? r.voxel_size_from : "NULL");
    ctstack_job_free(job);
    /* A size given in the options: the report says so (issue 27: where the size came from). */
    char given[1024];
    snprintf(given, sizeof given, "%s", path_of(scratch, "zarr_given/s.ome.zarr"));
    z.store = given;
    z.voxel_size[0] = 5.0, z.voxel_size[1] = 2.5, z.voxel_size[2] = 2.5;
    CHECK(ctstack_zarr_job_start(path_of(fixtures, "stack"), &p, &z, &job) == CTSTACK_OK, "start given");
    ctstack_job_report g = {.struct_size = sizeof g};
    CHECK(finish_report(job, &g) == CTSTACK_OK, "zarr job given: %s", ctstack_job_error(job));
    CHECK(g.voxel_size_source == CTSTACK_VOXEL_SIZE_GIVEN && g.voxel_size[0] == 5.0 && g.voxel_size[2] == 2.5 &&
              strcmp(g.voxel_size_from, "given") == 0,
          "given: source %d (%s)", g.voxel_size_source, g.voxel_size_from);
    ctstack_job_free(job);
    z.voxel_size[0] = 0, z.voxel_size[1] = 0, z.voxel_size[2] = 0;

    uint64_t n = 0, align = 0;
    z.store = slabs;
    CHECK(ctstack_zarr_slab_alignment(path_of(fixtures, "stack"), NULL, 0, &p, &z, &n, &align) == CTSTACK_OK,
          "alignment: %s", ctstack_last_error());
    CHECK(n == 21 && align == 16, "%llu inputs, alignment %llu", (unsigned long long)n, (unsigned long long)align);
    const int32_t steps[4] = {CTSTACK_ZARR_PREPARE, CTSTACK_ZARR_SLAB, CTSTACK_ZARR_SLAB, CTSTACK_ZARR_FINISH};
    const uint64_t starts[4] = {0, 16, 0, 0}, ends[4] = {0, 21, 16, 0};
    for (int i = 0; i < 4; i++) {
        z.step = steps[i], z.slab_start = starts[i], z.slab_end = ends[i];
        CHECK(ctstack_zarr_job_start(path_of(fixtures, "stack"), &p, &z, &job) == CTSTACK_OK, "start step %d", i);
        CHECK(ctstack_job_wait(job) == CTSTACK_OK, "step %d: %s", i, ctstack_job_error(job));
        ctstack_job_free(job);
    }
    const char *files[] = {"zarr.json", "0/zarr.json", "0/c/0/0/0", "0/c/5/3/4", "1/c/2/1/2", "2/c/1/0/1"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char a[1100], b[1100];
        snprintf(a, sizeof a, "%s/%s", whole, files[i]);
        snprintf(b, sizeof b, "%s/%s", slabs, files[i]);
        CHECK(same_bytes(a, b), "%s differs between the whole and the slab build", files[i]);
    }
    /* A slab off the alignment fails in the job; bad options fail the start. */
    z.step = CTSTACK_ZARR_SLAB, z.slab_start = 8, z.slab_end = 16;
    CHECK(ctstack_zarr_job_start(path_of(fixtures, "stack"), &p, &z, &job) == CTSTACK_OK, "start bad slab");
    CHECK(ctstack_job_wait(job) == CTSTACK_ERR_INVALID_ARGUMENT, "slab 8..16 accepted");
    ctstack_job_free(job);
    z.step = CTSTACK_ZARR_WHOLE;
    z.ngff = 3;
    CHECK(ctstack_zarr_job_start(path_of(fixtures, "stack"), &p, &z, &job) == CTSTACK_ERR_INVALID_ARGUMENT && job == NULL,
          "ngff 3 accepted");
    z.ngff = 5;
    /* A store inside the input folder is refused (no option replaces one), and nothing is written. */
    char inside[1024];
    snprintf(inside, sizeof inside, "%s", path_of(fixtures, "stack/inside.ome.zarr"));
    z.store = inside;
    CHECK(ctstack_zarr_job_start(path_of(fixtures, "stack"), &p, &z, &job) == CTSTACK_OK, "start inside");
    CHECK(ctstack_job_wait(job) == CTSTACK_ERR_INVALID_ARGUMENT, "a store inside the input accepted");
    CHECK(strstr(ctstack_job_error(job), "inside the input folder") != NULL, "%s", ctstack_job_error(job));
    ctstack_job_free(job);
    FILE *made = fopen(path_of(fixtures, "stack/inside.ome.zarr/zarr.json"), "rb");
    CHECK(made == NULL, "a store was written inside the input");
    if (made) fclose(made);
    z.store = NULL;
    CHECK(ctstack_zarr_job_start(path_of(fixtures, "stack"), &p, &z, &job) == CTSTACK_ERR_INVALID_ARGUMENT, "no store");
    CHECK(ctstack_zarr_job_start(path_of(fixtures, "stack"), &p, NULL, &job) == CTSTACK_ERR_INVALID_ARGUMENT, "NULL");
}

/* Copies the file `from` to `to`; whether it did. */
static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[65536];
    size_t n;
    int ok = in != NULL && out != NULL;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out) ok &= fclose(out) == 0;
    return ok;
}

/* The command line's three traps, said in C's words: a one-page file as input is refused unless
 * options.single_page; a default output folder that cannot be created names options.output_dir;
 * a missing input folder is CTSTACK_ERR_STATE (the CLI's status 3). */
static void test_same_words(void) {
    const char *one = path_of(path_of(fixtures, "stack"), "slice_0000.tif");
    ctstack_pyramid_options o = options_with(path_of(scratch, "onepage"), 80);
    CHECK(ctstack_pyramid_build(one, &o, NULL, NULL) == CTSTACK_ERR_INVALID_ARGUMENT, "one page");
    CHECK(strstr(ctstack_last_error(), "options.single_page = 1") != NULL, "%s", ctstack_last_error());
    CHECK(strstr(ctstack_last_error(), "/stack)") != NULL, "names the folder: %s", ctstack_last_error());
    o.single_page = 1;
    CHECK(ctstack_pyramid_build(one, &o, NULL, NULL) == CTSTACK_OK, "single_page: %s", ctstack_last_error());

    /* The default output folder <scan>/.thumbnail cannot be made (here: a file holds its name, as a
     * read-only scan folder refuses it, even to root). */
    const char *scan = path_of(scratch, "roscan");
    CHECK(mkdir(scan, 0755) == 0, "mkdir");
    CHECK(copy_file(one, path_of(scan, "slice_0000.tif")), "copy");
    CHECK(copy_file(one, path_of(scan, "slice_0001.tif")), "copy");
    FILE *f = fopen(path_of(scan, ".thumbnail"), "w");
    CHECK(f != NULL && fclose(f) == 0, "touch");
    CHECK(build(scan, NULL, 80, NULL, NULL) == CTSTACK_ERR_IO, "default output");
    CHECK(strstr(ctstack_last_error(), "options.output_dir = DIR") != NULL, "%s", ctstack_last_error());

    CHECK(build(path_of(scratch, "no_such_scan"), path_of(scratch, "x"), 80, NULL, NULL) == CTSTACK_ERR_STATE,
          "missing: %s", ctstack_last_error());
    CHECK(strstr(ctstack_last_error(), "does not exist") != NULL, "%s", ctstack_last_error());
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s FIXTURES_DIR SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    fixtures = argv[1];
    scratch = argv[2];
    test_mmap_policy();
    test_slices();
    test_errors();
    test_error_kinds();
    test_depth_conversion();
    test_pyramid();
    test_read_back();
    test_job_report();
    test_slabs();
    test_threads();
    test_crop();
    test_crop_gap();
    test_zarr();
    test_same_words();
    /* The same pyramid with every file read, not mapped. */
    CHECK(ctstack_set_mmap_policy(CTSTACK_MMAP_NEVER) == CTSTACK_OK, "never");
    const char *never = path_of(scratch, "never");
    CHECK(build(path_of(fixtures, "stack"), never, 80, NULL, NULL) == CTSTACK_OK, "never: %s",
          ctstack_last_error());
    CHECK(matches_reference(never), "pyramid with policy never differs from the reference");
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
