/*
 * unsynced_aof.so - emulate a host crash for redis's append-only file (workerlab faults).
 *
 * A process crash (kill -9) loses nothing redis has write()n: the kernel keeps it. A host
 * crash (power loss, kernel panic) loses what was written but not yet fsync()ed. To show
 * that on one machine, this LD_PRELOAD library keeps every write to an open "*.incr.aof"
 * file in redis's own memory until redis fsyncs (or fdatasyncs) that file; then it writes
 * the buffered bytes for real and syncs. kill -9 of such a redis loses exactly the
 * unsynced tail, as a host crash would: with appendfsync always nothing, with everysec
 * up to about a second.
 *
 * Built by workerlab/faults/shim.py with: cc -shared -fPIC -O2 -o unsynced_aof.so unsynced_aof.c -ldl -lpthread
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FD 65536

struct pending { char *buf; size_t len, cap; };

static struct pending *tracked[MAX_FD];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);

static void init(void) {
    if (real_write) return;
    real_write = dlsym(RTLD_NEXT, "write");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_close = dlsym(RTLD_NEXT, "close");
    real_open = dlsym(RTLD_NEXT, "open");
    real_open64 = dlsym(RTLD_NEXT, "open64");
    real_openat = dlsym(RTLD_NEXT, "openat");
}

static int is_incr_aof(const char *path) {
    size_t n = path ? strlen(path) : 0;
    return n > 9 && strcmp(path + n - 9, ".incr.aof") == 0;
}

static void track(int fd, const char *path) {
    if (fd < 0 || fd >= MAX_FD || !is_incr_aof(path)) return;
    pthread_mutex_lock(&lock);
    if (!tracked[fd]) tracked[fd] = calloc(1, sizeof(struct pending));
    pthread_mutex_unlock(&lock);
}

/* Write out what is pending for fd; the lock is held. */
static int flush_locked(int fd) {
    struct pending *p = tracked[fd];
    size_t done = 0;
    while (p && done < p->len) {
        ssize_t n = real_write(fd, p->buf + done, p->len - done);
        if (n < 0) return -1;
        done += (size_t)n;
    }
    if (p) p->len = 0;
    return 0;
}

static int open_mode(int flags, va_list ap) {
    return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...) {
    init();
    va_list ap; va_start(ap, flags); int mode = open_mode(flags, ap); va_end(ap);
    int fd = real_open(path, flags, mode);
    track(fd, path);
    return fd;
}

int open64(const char *path, int flags, ...) {
    init();
    va_list ap; va_start(ap, flags); int mode = open_mode(flags, ap); va_end(ap);
    int fd = real_open64 ? real_open64(path, flags, mode) : real_open(path, flags, mode);
    track(fd, path);
    return fd;
}

int openat(int dirfd, const char *path, int flags, ...) {
    init();
    va_list ap; va_start(ap, flags); int mode = open_mode(flags, ap); va_end(ap);
    int fd = real_openat(dirfd, path, flags, mode);
    track(fd, path);
    return fd;
}

ssize_t write(int fd, const void *buf, size_t count) {
    init();
    if (fd >= 0 && fd < MAX_FD && tracked[fd]) {
        pthread_mutex_lock(&lock);
        struct pending *p = tracked[fd];
        if (p) {
            if (p->len + count > p->cap) {
                size_t cap = p->cap ? p->cap : 65536;
                while (cap < p->len + count) cap *= 2;
                char *grown = realloc(p->buf, cap);
                if (!grown) { pthread_mutex_unlock(&lock); return real_write(fd, buf, count); }
                p->buf = grown; p->cap = cap;
            }
            memcpy(p->buf + p->len, buf, count);
            p->len += count;
            pthread_mutex_unlock(&lock);
            return (ssize_t)count;
        }
        pthread_mutex_unlock(&lock);
    }
    return real_write(fd, buf, count);
}

static int sync_with(int fd, int (*real)(int)) {
    init();
    if (fd >= 0 && fd < MAX_FD && tracked[fd]) {
        pthread_mutex_lock(&lock);
        int rc = flush_locked(fd);
        pthread_mutex_unlock(&lock);
        if (rc < 0) return -1;
    }
    return real(fd);
}

int fsync(int fd) { init(); return sync_with(fd, real_fsync); }
int fdatasync(int fd) { init(); return sync_with(fd, real_fdatasync); }

int close(int fd) {
    init();
    if (fd >= 0 && fd < MAX_FD && tracked[fd]) {
        pthread_mutex_lock(&lock);
        flush_locked(fd);  /* an orderly close (AOF rotation) keeps its data */
        struct pending *p = tracked[fd];
        tracked[fd] = NULL;
        pthread_mutex_unlock(&lock);
        if (p) { free(p->buf); free(p); }
    }
    return real_close(fd);
}
