/* /healthz (the process answers), /readyz (it can take work: store reachable and not
 * full, default backend usable, not shutting down) and /v1/backends (what each backend
 * can do here). */
#include "api/health.h"

#include <stdio.h>
#include <stdlib.h>

#include "api/auth.h"
#include "src/backends.h"

api_result api_health_healthz(api_request *rq, api_response *rs)
{
    return api_respond_json(rs, 200, json_pack("{s:s}", "status", "ok"));
}

/* Each backend: name, whether jobs may name it (--backends), available, and why not (or,
 * when available, a caveat). Shown by /v1/backends and /readyz, so an operator sees e.g. a
 * fallback to rlimits. */
static json_t *backends_json(const config *cfg, const api_backend_checks *checks)
{
    json_t *list = json_array();
    for (const char *const *name = checks->names; *name; name++) {
        const char *why = NULL;
        bool ok = checks->available(*name, &why);
        const char *note = ok && checks->note ? checks->note(*name) : NULL;
        json_t *entry = json_pack("{s:s, s:b, s:b, s:s?, s:s?}", "name", *name, "enabled",
                                  config_backend_enabled(cfg, *name), "available", ok, "reason",
                                  ok ? NULL : (why ? why : "unknown reason"), "note", note);
        char *state = checks->state_json ? checks->state_json(*name) : NULL;
        json_t *parsed = state ? json_loads(state, 0, NULL) : NULL;
        free(state);
        if (parsed)
            json_object_set_new(entry, "state", parsed);
        json_array_append_new(list, entry);
    }
    return list;
}

/* How network-enabled jobs reach the outside and what they may not reach (the egress
 * policy): shown so an operator can check it without reading the configuration. */
static json_t *network_json(const api_backend_checks *checks)
{
    char *text = checks->network_json ? checks->network_json() : NULL;
    json_t *o = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return o ? o : json_pack("{s:b, s:s}", "available", false, "reason", "unknown");
}

/* The storage part of an authenticated /readyz: "ok", or "degraded" while the disk's
 * reserve is in use (jobs are still accepted), with the figures behind it. */
static json_t *storage_json(const store_storage *st)
{
    json_t *o = json_pack("{s:s, s:I, s:I, s:I}", "status", st->reason[0] ? "degraded" : "ok",
                          "used_bytes", (json_int_t)st->used_bytes, "evictable_bytes",
                          (json_int_t)st->evictable_bytes, "quota_bytes",
                          (json_int_t)st->quota_bytes);
    if (o && st->disk_watched) {
        json_object_set_new(o, "disk_free_bytes", json_integer((json_int_t)st->disk_free_bytes));
        json_object_set_new(o, "reserve_bytes", json_integer((json_int_t)st->reserve_bytes));
        json_object_set_new(o, "reserve_held", json_boolean(st->reserve_held));
    }
    if (o && st->reason[0])
        json_object_set_new(o, "reason", json_string(st->reason));
    return o;
}

/* /readyz answers probes that carry no token: without one it says ready or not and why,
 * but not the backends' state and counters (operational data, like /metrics). A store
 * that takes no new job (storage full, nothing left to evict) is not ready. */
api_result api_health_readyz(api_request *rq, api_response *rs)
{
    api_server *srv = rq->srv;
    if (atomic_load(&srv->refusing))
        return api_respond_errorf(rs, 503, "not_ready", "shutting down");
    char why[256] = "";
    if (store_ping(srv->st, why, sizeof why) != 0)
        return api_respond_errorf(rs, 503, "not_ready", "store: %s", why[0] ? why : "unavailable");
    store_storage storage;
    if (store_storage_state(srv->st, &storage) != 0)
        return api_respond_errorf(rs, 503, "not_ready", "store: %s", store_last_error(srv->st));
    if (storage.full)
        return api_respond_errorf(rs, 503, "not_ready", "storage full: %s", storage.reason);
    if (scheduler_claims_paused(srv->sch, why, sizeof why))
        return api_respond_errorf(rs, 503, "not_ready", "not taking jobs: %s", why);
    const char *bwhy = NULL;
    if (!srv->backends->available(srv->cfg->backend, &bwhy))
        return api_respond_errorf(rs, 503, "not_ready", "default backend '%s' is not available: %s",
                                  srv->cfg->backend, bwhy ? bwhy : "unknown reason");
    if (!api_auth_ok(srv->cfg->api_token, api_header(rq, MHD_HTTP_HEADER_AUTHORIZATION)))
        return api_respond_json(rs, 200, json_pack("{s:s}", "status", "ready"));
    return api_respond_json(rs, 200,
                            json_pack("{s:s, s:s, s:o, s:s, s:o, s:o, s:{s:s, s:b}}", "status", "ready",
                                      "store", "ok", "storage", storage_json(&storage),
                                      "default_backend", srv->cfg->backend, "backends",
                                      backends_json(srv->cfg, srv->backends), "network",
                                      network_json(srv->backends), "replica", "id",
                                      store_replica_id(srv->st), "shared_store",
                                      store_is_shared(srv->st)));
}

api_result api_health_backends(api_request *rq, api_response *rs)
{
    return api_respond_json(rs, 200,
                            json_pack("{s:s, s:o, s:o}", "default", rq->srv->cfg->backend, "backends",
                                      backends_json(rq->srv->cfg, rq->srv->backends), "network",
                                      network_json(rq->srv->backends)));
}
