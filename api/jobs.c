/* The job endpoints: submit (with idempotency and ?wait=), list with filters and cursor,
 * get (with ?wait=), cancel and delete (logs: api/logs.c).
 * Each maps the store's and scheduler's answers onto the contract's statuses and codes. */
#include "api/jobs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/render.h"
#include "src/log.h"
#include "src/timeutil.h"

static api_result respond_store_error(api_response *rs, api_server *srv, const char *what)
{
    return api_respond_store_error(rs, srv->st, what);
}

/* The store had no room (quota or disk) even after evicting: 507, never 500. Nothing was
 * written, so the same request may be sent again; Retry-After gives running jobs time to
 * end (their output becomes evictable) or an operator time to delete. */
static api_result respond_no_space(api_response *rs, api_server *srv, const char *what,
                                   const char *advice)
{
    api_respond_errorf(rs, 507, "insufficient_storage", "%s: storage full: %s; %s", what,
                       store_last_error(srv->st), advice);
    api_response_header(rs, MHD_HTTP_HEADER_RETRY_AFTER, "%d", API_STORAGE_RETRY_AFTER_S);
    return API_RESPOND;
}

static api_result respond_not_found(api_response *rs, const char *id)
{
    return api_respond_errorf(rs, 404, "not_found", "job %s not found", id);
}

/* A job whose result the store read only in part: the document without it, then the
 * result's stored JSON text streamed in (api/body.c), so that a result as large as
 * max_output_bytes is never held, parsed or serialised whole. */
static void respond_streamed_job(store *st, api_response *rs, unsigned int status, const job *j)
{
    static const char key[] = ",\"result\":";
    json_t *doc = api_render_job(j, true);
    char *head = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    api_body *b = head ? api_body_new(st, j->id) : NULL;
    /* head is "{...}": the result goes where its closing brace was. */
    if (b && api_body_text(b, head, strlen(head) - 1) == 0 &&
        api_body_text(b, key, sizeof key - 1) == 0 && api_body_result(b, 0, j->result_bytes) == 0 &&
        api_body_text(b, "}", 1) == 0)
        api_respond_stream(rs, status, "application/json", b);
    else {
        api_body_free(b);
        api_respond_json(rs, status, NULL); /* a 500: out of memory */
    }
    free(head);
}

/* The job (full form) with the given status; 201 carries its Location. */
static api_result respond_job(store *st, api_response *rs, unsigned int status, const job *j)
{
    if (api_job_result_inline(j))
        api_respond_json(rs, status, api_render_job(j, true));
    else
        respond_streamed_job(st, rs, status, j);
    if (rs->status == 201)
        api_response_header(rs, MHD_HTTP_HEADER_LOCATION, "/v1/jobs/%s", j->id);
    return API_RESPOND;
}

/* Reads the job again and answers with it (after a wait, or when a wait found it final). */
static api_result respond_current(api_request *rq, api_response *rs, unsigned int status,
                                  const char *id)
{
    job j;
    job_init(&j);
    store_rc rc = store_get_job(rq->srv->st, id, &j);
    if (rc == STORE_NOT_FOUND)
        return respond_not_found(rs, id);
    if (rc != STORE_OK)
        return respond_store_error(rs, rq->srv, "reading the job");
    respond_job(rq->srv->st, rs, status, &j);
    job_free(&j);
    return API_RESPOND;
}

typedef struct final_check {
    store *st;
    const char *id;
} final_check;

/* Runs under the waiter lock: a job that ended (or vanished) meanwhile is not waited for. */
static bool job_is_final_now(void *ctx)
{
    final_check *c = ctx;
    job j;
    job_init(&j);
    store_rc rc = store_get_job(c->st, c->id, &j);
    bool final = rc != STORE_OK || job_status_is_final(j.status);
    job_free(&j);
    return final;
}

/* ?wait=: suspends the request while the job is not final. API_SUSPENDED, or
 * API_CONTINUE when the caller should answer now. */
static api_result wait_for_job(api_request *rq, const job *j, double wait, unsigned int status)
{
    if (wait <= 0 || job_status_is_final(j->status))
        return API_CONTINUE;
    api_server *srv = rq->srv;
    final_check c = {srv->st, j->id};
    int64_t deadline = rq->started_ms + (int64_t)(wait * 1000.0);
    if (!api_waiters_suspend(srv->waiters, &rq->waiter, rq->conn, j->id, deadline,
                             job_is_final_now, &c))
        return API_CONTINUE;
    rq->suspended_once = true;
    rq->wait_status = status;
    atomic_fetch_add(&srv->waiting_requests, 1);
    return API_SUSPENDED;
}

/* The handler of a request that was suspended by ?wait= and has been resumed. */
api_result api_jobs_resumed(api_request *rq, api_response *rs)
{
    return respond_current(rq, rs, rq->wait_status, rq->waiter.job_id);
}

/* Answers with *j after an optional wait; after a wait that did not suspend, the job is
 * read again because the check may have found it just ended. */
static api_result answer_maybe_waiting(api_request *rq, api_response *rs, const job *j,
                                       double wait, unsigned int status)
{
    api_result r = wait_for_job(rq, j, wait, status);
    if (r == API_SUSPENDED)
        return r;
    if (wait > 0 && !job_status_is_final(j->status))
        return respond_current(rq, rs, status, j->id);
    return respond_job(rq->srv->st, rs, status, j);
}

api_result api_jobs_create(api_request *rq, api_response *rs)
{
    api_server *srv = rq->srv;
    const config *cfg = srv->cfg;
    if (atomic_load(&srv->refusing))
        return api_respond_errorf(rs, 503, "shutting_down",
                                  "the service is shutting down and accepts no new jobs");
    api_error e;
    api_error_clear(&e);
    double wait;
    if (api_parse_wait(api_query(rq, "wait"), &wait, &e) < 0)
        return api_respond_error(rs, &e);
    const char *key = api_header(rq, "Idempotency-Key");
    if (key && api_check_idempotency_key(key, &e) < 0)
        return api_respond_error(rs, &e);

    job j;
    if (api_parse_job_request(cfg, srv->backends, rq->body, rq->body_len, key, &j, &e) < 0)
        return api_respond_error(rs, &e);
    job_new_id(j.id);
    j.status = JOB_QUEUED;
    j.created_at_ms = time_now_ms();

    job existing;
    job_init(&existing);
    api_result r;
    switch (store_insert_job(srv->st, &j, cfg->max_queued, &existing)) {
    case STORE_OK:
        scheduler_notify(srv->sch);
        log_info("job %s queued (backend %s)", j.id, j.backend);
        r = answer_maybe_waiting(rq, rs, &j, wait, 201);
        break;
    case STORE_EXISTS:
        r = answer_maybe_waiting(rq, rs, &existing, wait, 200);
        break;
    case STORE_CONFLICT:
        r = api_respond_errorf(rs, 409, "idempotency_conflict",
                               "Idempotency-Key was already used with a different request body");
        break;
    case STORE_FULL:
        r = api_respond_errorf(rs, 429, "queue_full",
                               "the queue is full (%" PRId64 " jobs queued); retry later",
                               cfg->max_queued);
        api_response_header(rs, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        break;
    case STORE_NO_SPACE:
        r = respond_no_space(rs, srv, "the job was not queued",
                             "the output and results of finished jobs were evicted as far as "
                             "they go: retry later, or delete finished jobs");
        break;
    default:
        r = respond_store_error(rs, srv, "queueing the job");
        break;
    }
    job_free(&existing);
    job_free(&j);
    return r;
}

api_result api_jobs_get(api_request *rq, api_response *rs)
{
    api_error e;
    api_error_clear(&e);
    double wait;
    if (api_parse_wait(api_query(rq, "wait"), &wait, &e) < 0)
        return api_respond_error(rs, &e);
    const char *id = rq->match.job_id;
    job j;
    job_init(&j);
    store_rc rc = store_get_job(rq->srv->st, id, &j);
    api_result r;
    if (rc == STORE_NOT_FOUND)
        r = respond_not_found(rs, id);
    else if (rc != STORE_OK)
        r = respond_store_error(rs, rq->srv, "reading the job");
    else
        r = answer_maybe_waiting(rq, rs, &j, wait, 200);
    job_free(&j);
    return r;
}

api_result api_jobs_list(api_request *rq, api_response *rs)
{
    api_error e;
    api_error_clear(&e);
    store_filter f = {0};
    size_t limit;
    int64_t before;
    bool has_label, has_status;
    char key[API_MAX_LABEL_KEY + 1], val[API_MAX_LABEL_VALUE + 1];
    if (api_parse_status(api_query(rq, "status"), &has_status, &f.status, &e) < 0 ||
        api_parse_label(api_query(rq, "label"), key, val, &has_label, &e) < 0 ||
        api_parse_limit(api_query(rq, "limit"), &limit, &e) < 0 ||
        api_parse_cursor(api_query(rq, "cursor"), &before, &e) < 0)
        return api_respond_error(rs, &e);
    f.has_status = has_status;
    if (has_label) {
        f.label_key = key;
        f.label_value = val;
    }
    job_list list = {0};
    if (store_list_jobs(rq->srv->st, &f, before, limit, &list) != STORE_OK)
        return respond_store_error(rs, rq->srv, "listing jobs");
    json_t *jobs = json_array();
    for (size_t i = 0; jobs && i < list.count; i++) {
        if (json_array_append_new(jobs, api_render_job(&list.items[i], false)) < 0) {
            json_decref(jobs);
            jobs = NULL;
        }
    }
    json_t *next = json_null();
    if (list.next_seq > 0) {
        char cursor[32];
        api_format_cursor(list.next_seq, cursor, sizeof cursor);
        next = json_string(cursor);
    }
    job_list_free(&list);
    return api_respond_json(rs, 200, json_pack("{s:o, s:o}", "jobs", jobs, "next_cursor", next));
}

api_result api_jobs_delete(api_request *rq, api_response *rs)
{
    const char *id = rq->match.job_id;
    switch (store_delete_job(rq->srv->st, id)) {
    case STORE_OK:
        log_info("job %s deleted", id);
        return api_respond_empty(rs, 204);
    case STORE_NOT_FOUND:
        return respond_not_found(rs, id);
    case STORE_CONFLICT:
        return api_respond_errorf(rs, 409, "job_not_finished",
                                  "job %s has not finished; cancel it first", id);
    case STORE_NO_SPACE:
        return respond_no_space(rs, rq->srv, "the job was not deleted",
                                "the disk lacks even the little room a delete needs: free "
                                "space on it, then retry");
    default:
        return respond_store_error(rs, rq->srv, "deleting the job");
    }
}

api_result api_jobs_cancel(api_request *rq, api_response *rs)
{
    const char *id = rq->match.job_id;
    job j;
    job_init(&j);
    api_result r;
    switch (scheduler_cancel(rq->srv->sch, id, &j)) {
    case CANCEL_DONE:
        log_info("job %s cancelled", id);
        r = respond_job(rq->srv->st, rs, 200, &j);
        break;
    case CANCEL_FINISHED:
        r = api_respond_errorf(rs, 409, "job_finished", "job %s already finished (%s)", id,
                               job_status_name(j.status));
        break;
    case CANCEL_NOT_FOUND:
        r = respond_not_found(rs, id);
        break;
    default:
        r = api_respond_store_error(rs, rq->srv->st, "cancelling the job");
        break;
    }
    job_free(&j);
    return r;
}
