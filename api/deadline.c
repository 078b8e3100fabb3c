/* Connections that do not finish their request (see deadline.h): the open connections, and
 * among them, oldest first, those whose current request is not fully received. A new or
 * newly idle connection beyond the limit shuts down the oldest of those at once; a thread
 * shuts down those past the header deadline and logs evictions. libmicrohttpd then sees
 * the end of the stream and closes them itself. */
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
#include "src/metrics.h"
#include "src/timeutil.h"

#define REAPER_PERIOD_US (250 * 1000)
/* Under attack evictions go on for as long as it lasts: one warning per period says so. */
#define EVICTION_LOG_PERIOD_MS (10 * 1000)

typedef struct conn_entry {
    struct conn_entry *prev, *next;   /* d->conns: every open connection */
    struct conn_entry *older, *newer; /* d->oldest..newest: requests not fully received */
    int fd;
    int64_t since_ms;  /* when the current request began (its first byte was due) */
    bool incomplete;   /* on the oldest..newest list */
    bool headers_in;   /* past the header deadline it is MHD's idle timeout that applies */
    bool cut;          /* shut down: MHD is closing it */
} conn_entry;

struct api_deadline {
    int64_t header_ms;
    unsigned max_incomplete;
    pthread_mutex_t lock;
    conn_entry *conns;
    /* Appended when a request begins, with the monotonic clock: ordered by since_ms. */
    conn_entry *oldest, *newest;
    unsigned n_incomplete;
    uint64_t evicted; /* since start; the reaper logs the increase */
    pthread_t thread;
    atomic_bool stop;
};

static conn_entry *entry_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The helpers below are called with d->lock held. */

static void incomplete_remove(api_deadline *d, conn_entry *c)
{
    if (!c->incomplete)
        return;
    if (c->older)
        c->older->newer = c->newer;
    else
        d->oldest = c->newer;
    if (c->newer)
        c->newer->older = c->older;
    else
        d->newest = c->older;
    c->older = c->newer = NULL;
    c->incomplete = false;
    d->n_incomplete--;
}

static void incomplete_append(api_deadline *d, conn_entry *c, int64_t now)
{
    incomplete_remove(d, c);
    c->since_ms = now;
    c->headers_in = false;
    c->older = d->newest;
    c->newer = NULL;
    if (d->newest)
        d->newest->newer = c;
    else
        d->oldest = c;
    d->newest = c;
    c->incomplete = true;
    d->n_incomplete++;
}

/* The entry stays in d->conns until MHD reports the close: until then its fd is ours. */
static void cut(api_deadline *d, conn_entry *c, const char *why)
{
    incomplete_remove(d, c);
    if (shutdown(c->fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
        log_warn("http: shutdown of %s connection: %s", why, strerror(errno));
    c->cut = true;
}

/* Makes room by closing the oldest incomplete requests; returns how many. */
static unsigned evict(api_deadline *d)
{
    unsigned n = 0;
    while (d->n_incomplete > d->max_incomplete && d->oldest) {
        cut(d, d->oldest, "an evicted");
        n++;
    }
    d->evicted += n;
    return n;
}

static void count_evicted(unsigned n)
{
    if (n)
        metrics_http_connections_evicted(n);
}

void api_deadline_headers_done(api_deadline *d, struct MHD_Connection *conn)
{
    conn_entry *c = entry_of(conn);
    if (!c)
        return;
    pthread_mutex_lock(&d->lock);
    c->headers_in = true;
    pthread_mutex_unlock(&d->lock);
}

void api_deadline_request_received(api_deadline *d, struct MHD_Connection *conn)
{
    conn_entry *c = entry_of(conn);
    if (!c)
        return;
    pthread_mutex_lock(&d->lock);
    incomplete_remove(d, c);
    pthread_mutex_unlock(&d->lock);
}

void api_deadline_next_request(api_deadline *d, struct MHD_Connection *conn)
{
    conn_entry *c = entry_of(conn);
    if (!c)
        return;
    unsigned n = 0;
    pthread_mutex_lock(&d->lock);
    if (!c->cut) {
        incomplete_append(d, c, time_monotonic_ms());
        n = evict(d);
    }
    pthread_mutex_unlock(&d->lock);
    count_evicted(n);
}

/* The entry is removed on MHD_CONNECTION_NOTIFY_CLOSED, which MHD calls before it closes
 * the socket: under the lock, nothing here shuts down a reused descriptor. */
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
        pthread_mutex_lock(&d->lock);
        c->next = d->conns;
        if (d->conns)
            d->conns->prev = c;
        d->conns = c;
        incomplete_append(d, c, time_monotonic_ms());
        unsigned n = evict(d);
        pthread_mutex_unlock(&d->lock);
        count_evicted(n);
        *socket_context = c;
        return;
    }
    conn_entry *c = *socket_context;
    if (!c)
        return;
    pthread_mutex_lock(&d->lock);
    incomplete_remove(d, c);
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
    uint64_t logged = 0;
    int64_t logged_at = 0;
    while (!atomic_load(&d->stop)) {
        usleep(REAPER_PERIOD_US);
        int64_t now = time_monotonic_ms();
        int late = 0;
        pthread_mutex_lock(&d->lock);
        /* Oldest first: the first one within the deadline ends the walk. Those whose body
         * is coming are left to MHD's idle timeout (and to eviction). */
        for (conn_entry *c = d->oldest, *newer; c && now - c->since_ms > d->header_ms; c = newer) {
            newer = c->newer;
            if (!c->headers_in) {
                cut(d, c, "a slow");
                late++;
            }
        }
        uint64_t evicted = d->evicted;
        unsigned max_incomplete = d->max_incomplete;
        pthread_mutex_unlock(&d->lock);
        if (late)
            log_debug("http: closed %d connection(s) whose request headers took over %llds", late,
                      (long long)(d->header_ms / 1000));
        if (evicted > logged && (logged == 0 || now - logged_at >= EVICTION_LOG_PERIOD_MS)) {
            log_warn("http: evicted %llu connection(s) since %s: over %u connections had an "
                     "incomplete request (slow or idle clients, or an attack); the oldest were closed",
                     (unsigned long long)(evicted - logged), logged ? "the last warning" : "start-up",
                     max_incomplete);
            logged = evicted;
            logged_at = now;
        }
    }
    return NULL;
}

api_deadline *api_deadline_start(int64_t header_ms, unsigned max_incomplete, char *err, size_t errlen)
{
    api_deadline *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->header_ms = header_ms;
    d->max_incomplete = max_incomplete > 0 ? max_incomplete : 1;
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
