/*
** update.c: newer versions of installed models (issue 18). The signed
** catalog names a file for each model; when it is not the installed one,
** that version is downloaded in the background (rate-limited, paused on a
** metered connection), verified like any pull, and kept as the model's
** staged version: offered, never switched to by itself. Versions beyond
** the current one and its fallback are retired at a switch and deleted
** once the switch has been in use for a while (mdl_cleanup).
**
** The state of the last check is kept in models/updates.json so that
** `cairn doctor`, `models list` and the server can say what is offered
** without touching the network.
*/
#include "models/models_int.h"

#include <errno.h>
#include <gio/gio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int mdl_parse_rate(const char *s, int64_t *out)
{
    while (*s == ' ')
        s++;
    if (!strcasecmp(s, "off") || !strcasecmp(s, "none") || !strcmp(s, "0")) {
        *out = 0;
        return CN_OK;
    }
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0 || v > 1e12)
        return CN_EINVAL;
    while (*end == ' ')
        end++;
    double mul = 1;
    if (!strncasecmp(end, "k", 1))
        mul = 1e3, end++;
    else if (!strncasecmp(end, "m", 1))
        mul = 1e6, end++;
    else if (!strncasecmp(end, "g", 1))
        mul = 1e9, end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (!strcmp(end, "/s") || !*end) {
        *out = (int64_t)(v * mul);
        return *out >= 1024 ? CN_OK : CN_EINVAL;
    }
    return CN_EINVAL;
}

int mdl_schedule(const char *name, int64_t *every_s)
{
    if (!strcmp(name, "off"))
        *every_s = 0;
    else if (!strcmp(name, "daily"))
        *every_s = 86400;
    else if (!strcmp(name, "weekly"))
        *every_s = 7 * 86400;
    else
        return CN_EINVAL;
    return CN_OK;
}

int mdl_update_settings(mdl_update_opts *o, int64_t *interval_s, cn_err *err)
{
    char v[64];
    memset(o, 0, sizeof *o);
    o->download = true;
    o->metered_override = -2;
    o->max_rate = 2000000;
    o->keep_s = 7 * 86400;
    if (interval_s)
        *interval_s = 0;
    if (cn_config_get("updates", v, sizeof v) && interval_s && mdl_schedule(v, interval_s))
        return cn_fail(err, CN_EINVAL, "settings: updates = %s: expected off, daily or weekly", v);
    if (cn_config_get("update_rate", v, sizeof v) && mdl_parse_rate(v, &o->max_rate))
        return cn_fail(err, CN_EINVAL, "settings: update_rate = %s: expected a rate such as "
                       "2MB/s, 500kB/s, or off", v);
    if (cn_config_get("update_keep_days", v, sizeof v)) {
        char *end;
        double d = strtod(v, &end);
        if (end == v || *end || d < 0 || d > 3650)
            return cn_fail(err, CN_EINVAL, "settings: update_keep_days = %s: expected 0 to 3650",
                           v);
        o->keep_s = (int64_t)(d * 86400);
    }
    return CN_OK;
}

/* ---- is the connection metered? (NetworkManager over D-Bus) ----------------------- */

int mdl_metered(char *why, size_t cap)
{
    GError *ge = NULL;
    GDBusConnection *bus = g_bus_get_sync(G_BUS_TYPE_SYSTEM, NULL, &ge);
    if (!bus) {
        snprintf(why, cap, "cannot tell whether the connection is metered (no system D-Bus: %s)",
                 ge ? ge->message : "?");
        g_clear_error(&ge);
        return -1;
    }
    GVariant *r = g_dbus_connection_call_sync(
        bus, "org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager",
        "org.freedesktop.DBus.Properties", "Get",
        g_variant_new("(ss)", "org.freedesktop.NetworkManager", "Metered"), G_VARIANT_TYPE("(v)"),
        G_DBUS_CALL_FLAGS_NONE, 2000, NULL, &ge);
    g_object_unref(bus);
    if (!r) {
        snprintf(why, cap, "cannot tell whether the connection is metered (NetworkManager does "
                           "not answer: %s)", ge ? ge->message : "?");
        g_clear_error(&ge);
        return -1;
    }
    GVariant *v = NULL;
    g_variant_get(r, "(v)", &v);
    guint32 m = v && g_variant_is_of_type(v, G_VARIANT_TYPE_UINT32) ? g_variant_get_uint32(v) : 0;
    if (v)
        g_variant_unref(v);
    g_variant_unref(r);
    /* NMMetered: 0 unknown, 1 yes, 2 no, 3 guess yes, 4 guess no */
    switch (m) {
    case 1: snprintf(why, cap, "NetworkManager says the connection is metered"); return 1;
    case 3: snprintf(why, cap, "NetworkManager guesses the connection is metered"); return 1;
    case 2: case 4: snprintf(why, cap, "NetworkManager says the connection is not metered"); return 0;
    default:
        snprintf(why, cap, "cannot tell whether the connection is metered (NetworkManager does "
                           "not know)");
        return -1;
    }
}

/* ---- what is offered ---------------------------------------------------------------- */

int mdl_updates(const char *home, const mdl_catalog *c, mdl_update **out, int *n, cn_err *err)
{
    *out = NULL;
    *n = 0;
    mdl_installed *ins = NULL;
    int k = 0, rc = mdl_list(home, &ins, &k, err);
    for (int i = 0; i < k && !rc; i++) {
        const mdl_entry *e = NULL;
        for (int j = 0; j < c->n && !e; j++)
            if (!strcmp(c->models[j].name, ins[i].name))
                e = &c->models[j];
        /* an imported file, one the catalog does not publish a digest for,
        ** or the version installed: nothing to offer */
        if (!e || !mdl_sha_ok(e->sha256) || !strcmp(e->sha256, ins[i].sha256) ||
            !strcmp(ins[i].source, "") || !strncmp(ins[i].source, "import:", 7))
            continue;
        mdl_update *p = cn_realloc_array(*out, (size_t)*n + 1, sizeof *p);
        if (!p) {
            rc = cn_fail(err, CN_ENOMEM, "out of memory");
            break;
        }
        *out = p;
        mdl_update *u = &p[(*n)++];
        memset(u, 0, sizeof *u);
        snprintf(u->name, sizeof u->name, "%s", ins[i].name);
        snprintf(u->sha256, sizeof u->sha256, "%s", e->sha256);
        snprintf(u->version, sizeof u->version, "%.12s", e->sha256);
        snprintf(u->current, sizeof u->current, "%.12s", ins[i].sha256);
        u->size = e->size;
        u->ready = ins[i].has_staged && !strcmp(ins[i].staged_sha256, e->sha256);
        u->entry = e;
    }
    free(ins);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- the state file ------------------------------------------------------------------- */

static void state_path(const char *home, char *out, size_t cap)
{
    snprintf(out, cap, "%s/models/updates.json", home);
}

json_t *mdl_update_state(const char *home)
{
    char p[PATH_MAX + 32];
    state_path(home, p, sizeof p);
    json_t *o = json_load_file(p, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    return o;
}

static int save_state(const char *home, json_t *o, cn_err *err)
{
    char p[PATH_MAX + 32];
    state_path(home, p, sizeof p);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!s)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    int rc = cn_write_atomic(p, s, strlen(s), 0600, err);
    free(s);
    return rc;
}

/* ---- a check ---------------------------------------------------------------------------- */

int mdl_update_check(const char *home, const char *url, const char *key_hex,
                     const mdl_update_opts *o, mdl_update **out, int *n, cn_err *err)
{
    *out = NULL;
    *n = 0;
    json_t *st = mdl_update_state(home);
    json_object_set_new(st, "checked_at", json_integer((json_int_t)time(NULL)));
    int n_models = 0;
    int64_t serial = 0;
    int rc = mdl_catalog_update(home, url, key_hex, &n_models, &serial, err);
    mdl_catalog *c = NULL;
    if (!rc)
        rc = mdl_catalog_load(home, key_hex, &c, err);
    if (!rc)
        rc = mdl_updates(home, c, out, n, err);
    char why[300] = "";
    int metered = -2;
    for (int i = 0; i < *n && !rc && o && o->download; i++) {
        mdl_update *u = &(*out)[i];
        if (u->ready)
            continue;
        if (metered == -2)
            metered = o->metered_override >= -1 ? o->metered_override : mdl_metered(why, sizeof why);
        if (metered == 1) {
            snprintf(u->note, sizeof u->note, "paused: %s", why[0] ? why : "metered connection");
            continue;
        }
        mdl_dl_opts d = {.fn = o->fn, .ctx = o->ctx, .cancel = o->cancel,
                         .max_rate = o->max_rate};
        cn_err e = {0};
        int r = mdl_stage(home, u->entry, &d, &e);
        if (r == CN_OK)
            u->ready = true;
        else
            snprintf(u->note, sizeof u->note, "%s", e.msg);
        if (o->cancel && __atomic_load_n(o->cancel, __ATOMIC_RELAXED))
            break;
    }
    if (!rc && o && o->keep_s >= 0) {
        int removed = 0;
        cn_err ce = {0};
        if (mdl_cleanup(home, o->keep_s, &removed, &ce) == CN_OK)
            json_object_set_new(st, "cleaned", json_integer(removed));
    }
    /* what is offered, for doctor, models list and the server */
    json_t *offers = json_array();
    for (int i = 0; i < *n; i++) {
        mdl_update *u = &(*out)[i];
        json_t *x = json_pack("{s:s, s:s, s:s, s:I, s:b}", "name", u->name, "version", u->version,
                              "current", u->current, "size", (json_int_t)u->size, "ready",
                              u->ready);
        if (u->note[0])
            json_object_set_new(x, "note", json_string(u->note));
        json_array_append_new(offers, x);
    }
    json_object_set_new(st, "offers", offers);
    if (rc)
        json_object_set_new(st, "error", json_string(err->msg));
    else
        json_object_del(st, "error");
    if (metered != -2)
        json_object_set_new(st, "metered", json_string(why));
    cn_err se = {0};
    save_state(home, st, &se);
    json_decref(st);
    mdl_catalog_free(c);
    /* the entries point into the catalog, freed now */
    for (int i = 0; i < *n; i++)
        (*out)[i].entry = NULL;
    return rc;
}
