/*
** updates.c: model updates in the background (issue 18), only when the
** settings say `updates = daily` or `weekly` -- off by default, and then
** the server touches no network for it. On schedule (the last check's time
** is in models/updates.json, so a restart does not check again early) a
** thread runs the same check as `cairn models update --check`: the signed
** catalog, newer versions downloaded at update_rate and verified, paused on
** a metered connection. What is ready is offered in /api/status and the web
** UI; nothing is switched to until the user says so.
*/
#include "server/srv_int.h"
#include "models/models.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

static void *updates_main(void *arg)
{
    srv *s = arg;
    double cleaned = 0;
    while (!atomic_load(&s->stopping)) {
        /* retired versions go when their time is up, checks or not (no
        ** network: manifests and files only), looked at hourly */
        if (cn_now() - cleaned > 3600) {
            mdl_update_opts co;
            cn_err ce = {0};
            int removed = 0;
            cleaned = cn_now();
            if (!mdl_update_settings(&co, NULL, &ce) &&
                !mdl_cleanup(s->home, co.keep_s, &removed, &ce) && removed) {
                pthread_mutex_lock(&s->log_mu);
                fprintf(stderr, "cairn serve: %d retired model version%s deleted "
                                "(update_keep_days)\n", removed, removed == 1 ? "" : "s");
                pthread_mutex_unlock(&s->log_mu);
            }
        }
        json_t *st = mdl_update_state(s->home);
        int64_t last = json_integer_value(json_object_get(st, "checked_at"));
        json_decref(st);
        int64_t every = atomic_load(&s->update_interval);
        if (every > 0 && (int64_t)time(NULL) - last >= every) {
            mdl_update_opts o;
            cn_err err = {0};
            char url[2048], key[256];
            if (!cn_config_get("catalog_url", url, sizeof url) || !*url)
                snprintf(url, sizeof url, "%s", MDL_CATALOG_URL);
            const char *k = cn_config_get("catalog_key", key, sizeof key) && *key ? key : NULL;
            mdl_update *up = NULL;
            int n = 0;
            int rc = mdl_update_settings(&o, NULL, &err);
            if (!rc) {
                o.cancel = &s->update_cancel;
                rc = mdl_update_check(s->home, url, k, &o, &up, &n, &err);
            }
            pthread_mutex_lock(&s->log_mu);
            if (rc)
                fprintf(stderr, "cairn serve: model updates: %s (tried again at the next "
                                "check)\n", err.msg);
            for (int i = 0; i < n; i++)
                if (up[i].ready)
                    fprintf(stderr, "cairn serve: %s: an updated version is ready — `cairn models "
                                    "use %s@%s` (the current one stays as the fallback)\n",
                            up[i].name, up[i].name, up[i].version);
                else
                    fprintf(stderr, "cairn serve: %s: a newer version, not downloaded: %s\n",
                            up[i].name, up[i].note);
            pthread_mutex_unlock(&s->log_mu);
            free(up); /* a failed check (offline, say) counts as one: the schedule holds */
        }
        /* looked at every 15 s (a clock that jumps is noticed), and at once
        ** when the schedule is changed */
        for (int i = 0; i < 60 && !atomic_load(&s->stopping) &&
                        atomic_load(&s->update_interval) == every;
             i++)
            usleep(250000);
    }
    atomic_fetch_sub(&s->n_background, 1);
    return NULL;
}

static const char *schedule_name(int64_t every)
{
    return every == 0 ? "off" : every <= 86400 ? "daily" : "weekly";
}

void srv_updates_start(srv *s)
{
    mdl_update_opts o;
    cn_err err = {0};
    int64_t interval = 0;
    if (mdl_update_settings(&o, &interval, &err))
        fprintf(stderr, "cairn serve: model updates are off: %s\n", err.msg);
    atomic_store(&s->update_interval, interval);
    if (interval) /* off: the thread only waits, and nothing is asked of the network */
        fprintf(stderr, "cairn serve: checking for model updates %s (updates = %s in the "
                        "settings); new versions are downloaded and offered, never switched to "
                        "by themselves\n", schedule_name(interval), schedule_name(interval));
    pthread_t th;
    atomic_fetch_add(&s->n_background, 1);
    if (pthread_create(&th, NULL, updates_main, s) != 0)
        atomic_fetch_sub(&s->n_background, 1);
    else
        pthread_detach(th);
}

json_t *srv_updates_json(srv *s)
{
    json_t *st = mdl_update_state(s->home);
    json_object_set_new(st, "schedule", json_string(schedule_name(atomic_load(&s->update_interval))));
    return st;
}

/* POST /api/updates {"schedule": "off"|"daily"|"weekly"}: the web UI's
** switch, written to the settings file (a server bound to loopback only:
** it changes this machine's settings). Turning it on checks at once when
** no check was ever made. */
int srv_updates_set(srv_req *r)
{
    srv *s = r->s;
    if (!s->loopback)
        return srv_reply_errorf(r, 403, NULL, "the update schedule is set on the machine itself "
                                              "(updates = daily in the settings file)");
    json_t *o = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
    const char *v = json_string_value(json_object_get(o, "schedule"));
    int64_t every = 0;
    int ret;
    cn_err err = {0};
    if (!v || mdl_schedule(v, &every))
        ret = srv_reply_errorf(r, 400, "schedule", "schedule: expected off, daily or weekly");
    else if (cn_config_set("updates", v, &err))
        ret = srv_reply_errorf(r, 500, NULL, "the settings file: %s", err.msg);
    else {
        atomic_store(&s->update_interval, every);
        pthread_mutex_lock(&s->log_mu);
        fprintf(stderr, "cairn serve: model updates: %s (saved in the settings)\n", v);
        pthread_mutex_unlock(&s->log_mu);
        ret = srv_reply_json(r, 200, srv_updates_json(s));
    }
    json_decref(o);
    return ret;
}
