/*
 * Replay fuzz inputs through LLVMFuzzerTestOneInput without libFuzzer.
 *
 * Usage: replay PATH...
 * Each PATH is an input file or a directory whose regular files (not
 * recursively, dot files skipped) are inputs.  Every input is copied into
 * a buffer of exactly its size, so ASan catches reads past its end, and
 * handed to the fuzz target, which aborts on a property violation.
 * Exits non-zero if a path cannot be read or no input was found.
 *
 * Copyright (c) 2026 The memexpose authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz-wire.h"

static unsigned long replayed;
static const char *current;

/* The fuzz target reports a violation with abort(): name the input. */
static void on_abort(int sig)
{
    static const char msg[] = "replay: property violated by input: ";

    /* write() only: we are in a signal handler.  Failures are ignored. */
    if (current &&
        write(STDERR_FILENO, msg, sizeof(msg) - 1) > 0 &&
        write(STDERR_FILENO, current, strlen(current)) > 0 &&
        write(STDERR_FILENO, "\n", 1) > 0) {
        /* Reported. */
    }
    /* SA_RESETHAND restored the default action: die of the signal. */
    raise(sig);
}

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t size = 0, cap = 0, n;
    uint8_t chunk[4096];
    uint8_t *exact;

    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (size + n > cap) {
            cap = (size + n) * 2;
            buf = realloc(buf, cap);
            if (!buf) {
                fprintf(stderr, "replay: out of memory\n");
                exit(1);
            }
        }
        memcpy(buf + size, chunk, n);
        size += n;
    }
    if (ferror(f)) {
        fprintf(stderr, "replay: %s: read error\n", path);
        fclose(f);
        free(buf);
        return -1;
    }
    fclose(f);

    /* Exactly sized copy (at least 1 byte so malloc never returns NULL). */
    exact = malloc(size ? size : 1);
    if (!exact) {
        fprintf(stderr, "replay: out of memory\n");
        exit(1);
    }
    if (size) {
        memcpy(exact, buf, size);
    }
    free(buf);

    current = path;
    LLVMFuzzerTestOneInput(exact, size);
    current = NULL;
    free(exact);
    replayed++;
    return 0;
}

static int replay_dir(const char *path)
{
    DIR *dir = opendir(path);
    struct dirent *de;
    struct stat st;
    char *file;
    int ret = 0;

    if (!dir) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        file = malloc(strlen(path) + strlen(de->d_name) + 2);
        if (!file) {
            fprintf(stderr, "replay: out of memory\n");
            exit(1);
        }
        sprintf(file, "%s/%s", path, de->d_name);
        if (stat(file, &st) < 0) {
            fprintf(stderr, "replay: %s: %s\n", file, strerror(errno));
            ret = -1;
        } else if (S_ISREG(st.st_mode) && replay_file(file) < 0) {
            ret = -1;
        }
        free(file);
    }
    closedir(dir);
    return ret;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    struct stat st;
    int i, ret = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE-OR-DIR...\n", argv[0]);
        return 2;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_abort;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGABRT, &sa, NULL);
    for (i = 1; i < argc; i++) {
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            ret = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (replay_dir(argv[i]) < 0) {
                ret = 1;
            }
        } else if (replay_file(argv[i]) < 0) {
            ret = 1;
        }
    }
    printf("replayed %lu inputs\n", replayed);
    if (replayed == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        ret = 1;
    }
    return ret;
}
