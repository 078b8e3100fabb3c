/* The SQLite store's room: the storage quota and the disk. What the jobs hold is counted
 * (migration 004's triggers); new data that does not fit first evicts the output, then the
 * results, of the oldest finished jobs, else is refused. A reserve file is given back when
 * the disk fills anyway, so that deletes, evictions and job endings still commit. Also the
 * retention deletes of old finished jobs. */
#include "src/store_sqlite.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "src/log.h"

#define EVICT_BATCH 64          /* jobs evicted per transaction */

/* The storage totals, kept by the triggers of migration 004. */
#define SQL_STORAGE_USED "SELECT used_bytes, evictable_bytes FROM storage_usage WHERE id = 1"
#define SQL_FREELIST "PRAGMA freelist_count"
/* Partial indexes of migration 004: only jobs that hold something to evict. */
#define SQL_OLDEST_OUTPUTS                                                                  \
    "SELECT id, output_stored_bytes FROM jobs WHERE finished_at_ms IS NOT NULL"             \
    " AND output_stored_bytes > 0 ORDER BY finished_at_ms, seq LIMIT ?1"
#define SQL_OLDEST_RESULTS                                                                  \
    "SELECT id, result_stored_bytes FROM jobs WHERE finished_at_ms IS NOT NULL"             \
    " AND result_stored_bytes > 0 ORDER BY finished_at_ms, seq LIMIT ?1"
#define SQL_EVICT_OUTPUT                                                                    \
    "UPDATE jobs SET stored_bytes = MAX(stored_bytes - output_stored_bytes, 0),"            \
    " output_stored_bytes = 0, output_evicted = 1"                                          \
    " WHERE id = ?1 AND finished_at_ms IS NOT NULL"
#define SQL_EVICT_RESULT                                                                    \
    "UPDATE jobs SET stored_bytes = MAX(stored_bytes - result_stored_bytes, 0),"            \
    " result_stored_bytes = 0, result_json = NULL, result_evicted = 1"                      \
    " WHERE id = ?1 AND finished_at_ms IS NOT NULL AND result_stored_bytes > 0"
#define SQL_DELETE_OLD_OUTPUT                                                               \
    "DELETE FROM job_output WHERE job_id IN (SELECT id FROM jobs WHERE finished_at_ms < ?1" \
    " AND status IN " FINAL_STATUSES ")"
#define SQL_DELETE_OLD_JOBS                                                                 \
    "DELETE FROM jobs WHERE finished_at_ms < ?1 AND status IN " FINAL_STATUSES

/* The one-row totals: what the jobs hold, and what of it eviction could free (the output
 * and results of finished jobs). Caller holds c->mu. */
static store_rc used_locked(sq_conn *c, uint64_t *used, uint64_t *evictable)
{
    sqlite3_stmt *st = SQ_STMT(c, STORAGE_USED);
    if (!st)
        return STORE_ERROR;
    store_rc r = STORE_OK;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *used = sq_col_u64(st, 0);
        *evictable = sq_col_u64(st, 1);
    } else if (rc == SQLITE_DONE) {
        store_set_error("reading the storage total: its row is missing");
        r = STORE_ERROR;
    } else {
        r = sq_error(c, "reading the storage total");
    }
    sq_done(st);
    return r;
}

/* What the disk can still take for the store: its free blocks plus the database's free
 * pages (new rows reuse them without growing the file). While the reserve is given back,
 * its size is not counted: using the reserve is not room. Takes the reserve again first
 * when the disk has room for it and as much besides. False when the disk is not watched
 * or cannot be read. Caller holds c->mu. */
static bool disk_room_locked(sq_store *s, sq_conn *c, uint64_t *room, uint64_t *total)
{
    if (!s->rsv)
        return false;
    uint64_t size = reserve_size(s->rsv);
    if (!reserve_held(s->rsv) && reserve_restore(s->rsv, size))
        log_info("storage: the disk has room again; the %llu-byte reserve is set aside again",
                 (unsigned long long)size);
    uint64_t avail = 0;
    if (reserve_disk(s->rsv, &avail, total) != 0) {
        log_warn("storage: statvfs of the data folder: %s", strerror(errno));
        return false;
    }
    int64_t pages = 0;
    sqlite3_stmt *st = SQ_STMT(c, FREELIST);
    if (st && sqlite3_step(st) == SQLITE_ROW)
        pages = sqlite3_column_int64(st, 0);
    sq_done(st);
    uint64_t r = avail + (uint64_t)(pages > 0 ? pages : 0) * s->page_size;
    if (!reserve_held(s->rsv))
        r = r > size ? r - size : 0;
    *room = r;
    return true;
}

store_rc sq_admit(sq_store *s, sq_conn *c, uint64_t add, bool check_quota, uint64_t *shortfall)
{
    *shortfall = 0;
    store_rc r = STORE_OK;
    if (check_quota && s->quota_bytes) {
        uint64_t used = 0, evictable = 0;
        if ((r = used_locked(c, &used, &evictable)) != STORE_OK)
            return r;
        if (used + add > s->quota_bytes) {
            *shortfall = used + add - s->quota_bytes;
            store_set_error("the storage quota is used up: jobs hold %llu of %llu bytes and "
                            "%llu more were needed", (unsigned long long)used,
                            (unsigned long long)s->quota_bytes, (unsigned long long)add);
            r = STORE_NO_SPACE;
        }
    }
    uint64_t room = 0, total = 0;
    if (disk_room_locked(s, c, &room, &total)) {
        uint64_t want = add + reserve_size(s->rsv);
        if (room < want) {
            if (want - room > *shortfall)
                *shortfall = want - room;
            store_set_error("the disk of the data folder is full: %llu bytes free for the "
                            "store, %llu needed besides the %llu kept free",
                            (unsigned long long)room, (unsigned long long)add,
                            (unsigned long long)reserve_size(s->rsv));
            r = STORE_NO_SPACE;
        }
    }
    return r;
}

void sq_note_refusal(sq_store *s, store_rc r)
{
    if (r == STORE_NO_SPACE && !s->refusing) {
        s->refusing = true;
        log_warn("storage full: %s (after evicting what finished jobs held); new data is "
                 "refused, new jobs get 507", store_error_text());
    } else if (r == STORE_OK && s->refusing) {
        s->refusing = false;
        log_info("storage: room again; new jobs are accepted");
    }
}

bool sq_use_reserve(sq_store *s)
{
    if (!reserve_release(s->rsv))
        return false;
    log_warn("storage: the disk of the data folder is full: released the %llu-byte reserve so "
             "that jobs can end and be deleted; new jobs get 507 until there is room again",
             (unsigned long long)reserve_size(s->rsv));
    /* Frames already copied into the database can then be overwritten instead of the WAL
     * growing into what the reserve just gave back. */
    (void)sqlite3_wal_checkpoint_v2(s->writer.db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return true;
}

/* secure_delete=FAST while deleting or evicting: content inside the pages that stay is
 * still overwritten, freed pages are not zeroed. Zeroing writes every freed page to the
 * WAL, so deleting N bytes would need N bytes of free disk and a full disk could never be
 * emptied through the API. The pages freed hold no secret: a job's env values were zeroed
 * (secure_delete=ON) when it ended. */
void sq_fast_delete(sq_conn *c, bool fast)
{
    if (sq_exec(c, fast ? "PRAGMA secure_delete=FAST" : "PRAGMA secure_delete=ON") != SQLITE_OK)
        log_error("job store: PRAGMA secure_delete=%s: %s", fast ? "FAST" : "ON",
                  sqlite3_errmsg(c->db));
}

/* ---- eviction ------------------------------------------------------------------------ */

typedef struct victim {
    char id[JOB_ID_LEN + 1];
    uint64_t bytes;
} victim;

/* The oldest finished jobs that hold an output (or a result): at most EVICT_BATCH, no
 * more than needed to free want bytes. Returns how many (*sum: their bytes), or -1. */
static int pick_victims(sq_conn *c, bool outputs, uint64_t want, victim *v, uint64_t *sum)
{
    *sum = 0;
    sqlite3_stmt *st = outputs ? SQ_STMT(c, OLDEST_OUTPUTS) : SQ_STMT(c, OLDEST_RESULTS);
    if (!st)
        return -1;
    int n = 0;
    int rc = sqlite3_bind_int(st, 1, EVICT_BATCH);
    while (rc == SQLITE_OK && *sum < want && n < EVICT_BATCH &&
           (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        snprintf(v[n].id, sizeof v[n].id, "%s", id ? id : "");
        v[n].bytes = sq_col_u64(st, 1);
        *sum += v[n].bytes;
        n++;
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK && rc != SQLITE_DONE) {
        sq_error(c, "choosing jobs to evict");
        n = -1;
    }
    sq_done(st);
    return n;
}

typedef struct evict_args {
    bool outputs;
    const victim *v;
    int n;
} evict_args;

static store_rc run_for_id(sq_conn *c, sqlite3_stmt *st, const char *id)
{
    if (!st)
        return STORE_ERROR;
    int rc = sq_bind_text(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    store_rc r = rc == SQLITE_DONE ? STORE_OK : sq_error(c, "evicting");
    sq_done(st);
    return r;
}

/* One transaction: the outputs (or results) of these jobs go, and each says so. A job's
 * output chunks go only when its row said it is finished. */
static store_rc evict_batch(sq_store *s, sq_conn *c, void *arg, uint64_t *shortfall)
{
    evict_args *a = arg;
    store_rc r = STORE_OK;
    for (int i = 0; r == STORE_OK && i < a->n; i++) {
        const char *id = a->v[i].id;
        if (!a->outputs) {
            r = run_for_id(c, SQ_STMT(c, EVICT_RESULT), id);
        } else if ((r = run_for_id(c, SQ_STMT(c, EVICT_OUTPUT), id)) == STORE_OK &&
                   sqlite3_changes(c->db) > 0) {
            r = run_for_id(c, SQ_STMT(c, DELETE_OUTPUT), id);
        }
    }
    return r;
}

/* Frees at least want bytes, or all it can: the outputs of the oldest finished jobs first,
 * then their results; each batch one transaction (a full disk may use the reserve: this
 * frees space). Returns the bytes freed. Caller holds the writer's mutex, outside a
 * transaction. */
static uint64_t evict_locked(sq_store *s, uint64_t want)
{
    sq_conn *c = &s->writer;
    uint64_t freed = 0, jobs[2] = {0, 0};
    /* The caller's reason for evicting stays the error to report; eviction's own failures
     * go to the log. */
    char reason[1024];
    snprintf(reason, sizeof reason, "%s", store_error_text());
    sq_write_plan plan = {SQ_ROOM_RESERVE, 2, 0};
    sq_fast_delete(c, true);
    for (int pass = 0; pass < 2 && freed < want; pass++) {
        bool outputs = pass == 0;
        for (;;) {
            victim v[EVICT_BATCH];
            uint64_t sum = 0;
            int n = pick_victims(c, outputs, want - freed, v, &sum);
            if (n <= 0)
                break;
            evict_args a = {outputs, v, n};
            if (sq_write(s, &plan, evict_batch, &a) != STORE_OK) {
                log_error("storage: cannot evict: %s", store_error_text());
                pass = 2;
                break;
            }
            freed += sum;
            jobs[pass] += (uint64_t)n;
            if (freed >= want)
                break;
        }
    }
    sq_fast_delete(c, false);
    store_set_error("%s", reason);
    if (jobs[0] || jobs[1]) {
        atomic_fetch_add(&s->evicted_outputs, jobs[0]);
        atomic_fetch_add(&s->evicted_results, jobs[1]);
        log_info("storage: evicted the output of %llu and the result of %llu finished job(s), "
                 "oldest first (%llu bytes)", (unsigned long long)jobs[0],
                 (unsigned long long)jobs[1], (unsigned long long)freed);
    }
    return freed;
}

/* Data is not thrown away for a request that would be refused anyway: a non-essential
 * write evicts only when that can free enough. */
bool sq_make_room(sq_store *s, uint64_t want, bool essential)
{
    uint64_t used = 0, evictable = 0;
    if (used_locked(&s->writer, &used, &evictable) != STORE_OK)
        evictable = 0;
    if ((essential || evictable >= want) && evictable > 0 &&
        evict_locked(s, want + store_eviction_slack(s->quota_bytes)) > 0)
        return true;
    return essential && sq_use_reserve(s);
}

store_rc sq_make_room_op(void *self, uint64_t bytes)
{
    sq_store *s = self;
    sq_conn *c = &s->writer;
    sq_lock(c);
    uint64_t shortfall = 0;
    store_rc r = sq_admit(s, c, bytes, true, &shortfall);
    if (r == STORE_NO_SPACE && sq_make_room(s, shortfall, false))
        r = sq_admit(s, c, bytes, true, &shortfall);
    sq_unlock(c);
    return r;
}

/* ---- configuration and state --------------------------------------------------------- */

int sq_set_storage(void *self, const store_storage_options *o, char *err, size_t errlen)
{
    sq_store *s = self;
    s->quota_bytes = o->quota_bytes;
    if (!o->reserve_path)
        return 0;
    sq_conn *c = &s->writer;
    sq_lock(c);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, "PRAGMA page_size", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        s->page_size = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sq_unlock(c);
    if (rc != SQLITE_ROW || !s->page_size) {
        snprintf(err, errlen, "reading the database page size: %s", sqlite3_errmsg(c->db));
        return -1;
    }
    s->rsv = reserve_open(o->reserve_path, o->reserve_bytes, err, errlen);
    return s->rsv ? 0 : -1;
}

typedef struct state_args {
    sq_store *s;
    store_storage *out;
    uint64_t room, evictable;
} state_args;

static store_rc read_usage(sq_conn *c, void *arg)
{
    state_args *a = arg;
    store_rc r = used_locked(c, &a->out->used_bytes, &a->evictable);
    if (r == STORE_OK)
        a->out->disk_watched = disk_room_locked(a->s, c, &a->room, &a->out->disk_total_bytes);
    return r;
}

/* Full: less than SQ_MIN_ROOM (a quarter of a small quota) left even after evicting all
 * there is to evict. */
static void judge_fullness(const sq_store *s, store_storage *out, uint64_t room,
                           uint64_t evictable)
{
    uint64_t min_quota_room = s->quota_bytes / 4 < SQ_MIN_ROOM ? s->quota_bytes / 4 : SQ_MIN_ROOM;
    uint64_t kept = out->used_bytes > evictable ? out->used_bytes - evictable : 0;
    bool over_quota = s->quota_bytes && kept + min_quota_room > s->quota_bytes;
    bool disk_full = out->disk_watched && room + evictable < out->reserve_bytes + SQ_MIN_ROOM;
    out->full = over_quota || disk_full;
    out->evictable_bytes = evictable;
    if (out->full && disk_full)
        snprintf(out->reason, sizeof out->reason, "the disk of the data folder is full");
    else if (out->full)
        snprintf(out->reason, sizeof out->reason,
                 "the storage quota is used up by queued and running jobs and the scripts "
                 "and inputs of finished ones");
    else if (out->disk_watched && !out->reserve_held && out->reserve_bytes)
        snprintf(out->reason, sizeof out->reason,
                 "the disk was full: its reserve is in use until %llu bytes are free again",
                 (unsigned long long)(2 * out->reserve_bytes));
}

int sq_storage_state(void *self, store_storage *out)
{
    sq_store *s = self;
    out->quota_bytes = s->quota_bytes;
    out->evicted_outputs = atomic_load(&s->evicted_outputs);
    out->evicted_results = atomic_load(&s->evicted_results);
    state_args a = {s, out, 0, 0};
    if (sq_read(s, false, read_usage, &a) != STORE_OK)
        return -1;
    if (out->disk_watched) {
        out->disk_free_bytes = a.room;
        out->reserve_bytes = reserve_size(s->rsv);
        out->reserve_held = reserve_held(s->rsv);
    }
    judge_fullness(s, out, a.room, a.evictable);
    return 0;
}

/* ---- retention ----------------------------------------------------------------------- */

typedef struct retention_args {
    int64_t cutoff_ms;
    int64_t deleted;
} retention_args;

/* One attempt, in the write transaction: the old jobs' output, then the jobs. */
static store_rc delete_old(sq_store *s, sq_conn *c, void *arg, uint64_t *shortfall)
{
    retention_args *a = arg;
    sqlite3_stmt *steps[] = {SQ_STMT(c, DELETE_OLD_OUTPUT), SQ_STMT(c, DELETE_OLD_JOBS)};
    for (size_t i = 0; i < 2; i++) {
        sqlite3_stmt *st = steps[i];
        if (!st)
            return STORE_ERROR;
        int rc = sqlite3_bind_int64(st, 1, a->cutoff_ms);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        store_rc r = rc == SQLITE_DONE ? STORE_OK : sq_error(c, "deleting old jobs");
        a->deleted = sqlite3_changes(c->db);
        sq_done(st);
        if (r != STORE_OK)
            return r;
    }
    return STORE_OK;
}

int64_t sq_delete_finished_before(void *self, int64_t cutoff_ms)
{
    sq_store *s = self;
    retention_args a = {cutoff_ms, -1};
    sq_write_plan plan = {SQ_ROOM_RESERVE, 2, 0};
    sq_lock(&s->writer);
    sq_fast_delete(&s->writer, true);
    store_rc r = sq_write(s, &plan, delete_old, &a);
    sq_fast_delete(&s->writer, false);
    sq_unlock(&s->writer);
    return r == STORE_OK ? a.deleted : -1;
}
