/* Build the thumbnail pyramid of a CT stack the way CTHarvester does, from C:
 * start the build as a job (so a GUI thread would stay free), show a progress
 * bar by polling, cancel on Ctrl-C, report what was kept and rebuilt, then load the
 * smallest level as a volume through the read-back API.
 *
 * Build it against the installed library: docs/c.md, "Building and linking from C",
 * gives the commands (cargo cinstall with --prefix and --libdir, then cc through
 * pkg-config), and tests/c_pkgconfig.rs runs them on this file.
 *
 * Portable C11 plus one sleep call: nanosleep on POSIX systems, Sleep on Windows.
 */
#ifndef _WIN32
#define _POSIX_C_SOURCE 200809L
#endif
#include <ctstack.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef _WIN32
#include <windows.h>
#else
#include <time.h>
#endif

/* Lets the progress loop breathe between polls. */
static void sleep_100ms(void) {
#ifdef _WIN32
    Sleep(100);
#else
    nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
#endif
}

static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s INPUT_DIR OUTPUT_DIR [MIN_SIZE]\n", argv[0]);
        return 2;
    }
    /* Options start from the defaults (min_size CTSTACK_DEFAULT_MIN_SIZE, one thread
     * per core, ...); set only what differs. */
    ctstack_pyramid_options options;
    ctstack_pyramid_options_init(&options, sizeof options);
    options.output_dir = argv[2];
    if (argc > 3) options.min_size = (uint32_t)strtoul(argv[3], NULL, 10); /* 0 is refused */
    signal(SIGINT, on_sigint); /* ISO C: available on Windows too */

    ctstack_job *job = NULL;
    if (ctstack_job_start(argv[1], &options, &job) != CTSTACK_OK) {
        fprintf(stderr, "cannot start: %s\n", ctstack_last_error());
        return 1;
    }
    uint64_t done = 0, total = 0;
    while (ctstack_job_progress(job, &done, &total)) {
        if (interrupted) ctstack_job_cancel(job); /* the job stops at the next slice */
        int width = total ? (int)(40 * done / total) : 0;
        fprintf(stderr, "\r[%.*s%*s] %llu/%llu", width, "########################################",
                40 - width, "", (unsigned long long)done, (unsigned long long)total);
        sleep_100ms();
    }
    int32_t status = ctstack_job_wait(job);
    fprintf(stderr, "\n");
    if (status != CTSTACK_OK) {
        fprintf(stderr, "%s: %s\n", status == CTSTACK_ERR_CANCELLED ? "cancelled" : "failed",
                ctstack_job_error(job));
        ctstack_job_free(job);
        return 1;
    }
    ctstack_job_report report = {.struct_size = sizeof report};
    if (ctstack_job_report_get(job, &report) == CTSTACK_OK) {
        fprintf(stderr, "%llu slices rebuilt, %llu kept, %llu removed\n", (unsigned long long)report.rebuilt,
                (unsigned long long)report.kept, (unsigned long long)report.removed);
        for (uint32_t i = 0; i < report.warnings; i++) fprintf(stderr, "warning: %s\n", ctstack_job_warning(job, i));
    }
    ctstack_job_free(job);

    /* The smallest level, read back by the pyramid's manifest (not by folder names: a folder
     * may hold stale or foreign files) as one contiguous (count, height, width) volume. */
    ctstack_pyramid *pyramid = NULL;
    if (ctstack_pyramid_open(argv[2], &pyramid) != CTSTACK_OK) {
        fprintf(stderr, "cannot open the pyramid: %s\n", ctstack_last_error());
        return 1;
    }
    uint32_t level = ctstack_pyramid_level_count(pyramid);
    if (level == 0) {
        fprintf(stderr, "no levels written (the slices already fit)\n");
        ctstack_pyramid_free(pyramid);
        return 0;
    }
    ctstack_level_info info;
    ctstack_pyramid_level(pyramid, level, &info);
    void *volume = malloc(info.bytes ? info.bytes : 1);
    if (!volume || ctstack_pyramid_read_level(pyramid, level, volume, info.bytes) != CTSTACK_OK) {
        fprintf(stderr, "cannot read level %u: %s\n", level, volume ? ctstack_last_error() : "out of memory");
        free(volume);
        ctstack_pyramid_free(pyramid);
        return 1;
    }
    printf("level %u: volume of %llu x %u x %u, %d-bit, %llu bytes\n", level, (unsigned long long)info.count,
           info.height, info.width, info.sample_type == CTSTACK_SAMPLE_U8 ? 8 : 16, (unsigned long long)info.bytes);
    free(volume);
    ctstack_pyramid_free(pyramid);
    return 0;
}
