/* The header deadline (see deadline.h): a list of open connections with the time their
 * current request's headers began, and a thread that shuts down those past the deadline;
 * libmicrohttpd then sees the end of the stream and closes them itself. */
#include "api/deadline.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "src/log.h"
#include "src/timeutil.h"

#define REAPER_PERIOD_US (250 * 1000)

typedef struct conn_entry {
    struct conn_entry *prev, *next;
    int fd;
    int64_t since_ms; /* when the current request's headers began; 0: they are in */
    bool cut;
} conn_entry;

struct api_deadline {
    int64_t header_ms;
    pthread_mutex_t lock;
    conn_entry *conns;
    pthread_t thread;
    atomic_bool stop;
};

static void set_clock(api_deadline *d, struct MHD_Connection *conn, int64_t since_ms)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_entry *c = ci ? ci->socket_context : NULL;
    if (!c)
        return;
    pthread_mutex_lock(&d->lock);
    c->since_ms = since_ms;
    pthread_mutex_unlock(&d->lock);
}

void api_deadline_headers_done(api_deadline *d, struct MHD_Connection *conn)
{
    set_clock(d, conn, 0);
}

void api_deadline_next_request(api_deadline *d, struct MHD_Connection *conn)
{
    set_clock(d, conn, time_monotonic_ms());
}

/* The entry is removed on MHD_CONNECTION_NOTIFY_CLOSED, which MHD calls before it closes
 * the socket: under the lock, the reaper never shuts down a reused descriptor. */
void api_deadline_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode toe)
{
    api_deadline *d = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_entry *c = ci ? calloc(1, sizeof *c) : NULL;
        if (!c)
            return; /* no deadline for this one; MHD's idle timeout still applies */
        c->fd = ci->connect_fd;
        c->since_ms = time_monotonic_ms();
        pthread_mutex_lock(&d->lock);
        c->next = d->conns;
        if (d->conns)
            d->conns->prev = c;
        d->conns = c;
        pthread_mutex_unlock(&d->lock);
        *socket_context = c;
        return;
    }
    conn_entry *c = *socket_context;
    if (!c)
        return;
    pthread_mutex_lock(&d->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        d->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&d->lock);
    free(c);
    *socket_context = NULL;
}

static void *reaper_main(void *arg)
{
    api_deadline *d = arg;
    while (!atomic_load(&d->stop)) {
        usleep(REAPER_PERIOD_US);
        int64_t now = time_monotonic_ms();
        int cut = 0;
        pthread_mutex_lock(&d->lock);
        for (conn_entry *c = d->conns; c; c = c->next) {
            if (c->since_ms != 0 && !c->cut && now - c->since_ms > d->header_ms) {
                if (shutdown(c->fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
                    log_warn("http: shutdown of a slow connection: %s", strerror(errno));
                c->cut = true;
                cut++;
            }
        }
        pthread_mutex_unlock(&d->lock);
        if (cut)
            log_debug("http: closed %d connection(s) whose request headers took over %llds", cut,
                      (long long)(d->header_ms / 1000));
    }
    return NULL;
}

api_deadline *api_deadline_start(int64_t header_ms, char *err, size_t errlen)
{
    api_deadline *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->header_ms = header_ms;
    atomic_init(&d->stop, false);
    pthread_mutex_init(&d->lock, NULL);
    int rc = pthread_create(&d->thread, NULL, reaper_main, d);
    if (rc != 0) {
        snprintf(err, errlen, "pthread_create (header deadline): %s", strerror(rc));
        pthread_mutex_destroy(&d->lock);
        free(d);
        return NULL;
    }
    return d;
}

void api_deadline_stop(api_deadline *d)
{
    if (!d)
        return;
    atomic_store(&d->stop, true);
    pthread_join(d->thread, NULL);
    for (conn_entry *c = d->conns, *next; c; c = next) { /* if MHD did not report a close */
        next = c->next;
        free(c);
    }
    pthread_mutex_destroy(&d->lock);
    free(d);
}
