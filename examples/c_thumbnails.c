/* Build the thumbnail pyramid of a CT stack the way CTHarvester does, from C:
 * start the build as a job (so a GUI thread would stay free), show a progress
 * bar by polling, cancel on Ctrl-C, then load the smallest level as a volume.
 *
 * Build it against the installed library (README, "Building and linking from C"):
 *
 *   cargo cinstall --release --prefix "$HOME/.local"
 *   export PKG_CONFIG_PATH="$HOME/.local/lib/pkgconfig"
 *   cc -std=c11 -Wall examples/c_thumbnails.c $(pkg-config --cflags --libs ctstack) -o c_thumbnails
 *   ./c_thumbnails fixtures/stack target/c-pyramid 80
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
    ctstack_pyramid_options_init(&options);
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
    ctstack_job_free(job);

    /* The smallest level is the highest-numbered directory with a 000000.tif. */
    char path[4096];
    int level = 0;
    for (int k = 1; k < 64; k++) {
        snprintf(path, sizeof path, "%s/%d/000000.tif", argv[2], k);
        FILE *f = fopen(path, "rb");
        if (!f) break;
        fclose(f);
        level = k;
    }
    if (level == 0) {
        fprintf(stderr, "no levels written (the slices already fit)\n");
        return 0;
    }
    /* Load it as a volume: slices in order, each read into its plane. */
    size_t count = 0, plane = 0;
    unsigned char *volume = NULL;
    uint32_t width = 0, height = 0, bits = 0;
    for (;; count++) {
        snprintf(path, sizeof path, "%s/%d/%06zu.tif", argv[2], level, count);
        ctstack_slice *s = NULL;
        if (ctstack_slice_open(path, &s) != CTSTACK_OK) break;
        width = ctstack_slice_width(s), height = ctstack_slice_height(s), bits = ctstack_slice_bits(s);
        plane = (size_t)width * height * bits / 8;
        unsigned char *grown = realloc(volume, (count + 1) * plane);
        if (!grown) return 1;
        volume = grown;
        ctstack_slice_read(s, volume + count * plane, plane);
        ctstack_slice_free(s);
    }
    printf("level %d: volume of %zu x %u x %u, %u-bit, %zu bytes\n", level, count, height, width, bits,
           count * plane);
    free(volume);
    return 0;
}
