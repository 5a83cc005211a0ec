/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tdm-ctl.h"
#include "tdm-util.h"

void tdm_ctl_req_init(struct tdm_ctl_req *r)
{
    memset(r, 0, sizeof(*r));
}

void tdm_ctl_req_dispose(struct tdm_ctl_req *r)
{
    if (r->root)
        yajl_tree_free(r->root);
    tdm_ctl_req_init(r);
}

int tdm_ctl_req_parse(struct tdm_ctl_req *r, const char *text, size_t len,
                      char *err, size_t errlen)
{
    char perr[256], *buf = NULL;
    yajl_val root = NULL, m, p;
    const char *mstr;
    int rc = -1;

    tdm_ctl_req_dispose(r);
    if (len > TDM_CTL_MAX_LINE)
        return tdm_errf(err, errlen, "request larger than %u bytes",
                        TDM_CTL_MAX_LINE);
    if (memchr(text, '\0', len))
        return tdm_errf(err, errlen, "request contains a NUL byte");
    buf = tdm_malloc(len + 1);
    memcpy(buf, text, len);
    buf[len] = '\0';
    perr[0] = '\0';
    root = yajl_tree_parse(buf, perr, sizeof(perr));
    if (!root) {
        char *nl = strchr(perr, '\n');
        if (nl)
            *nl = '\0';
        tdm_errf(err, errlen, "malformed JSON: %s", perr[0] ? perr : "?");
        goto out;
    }
    if (!YAJL_IS_OBJECT(root)) {
        tdm_errf(err, errlen, "a request is a JSON object");
        goto out;
    }
    for (size_t i = 0; i < root->u.object.len; i++) {
        const char *k = root->u.object.keys[i];
        if (strcmp(k, "method") && strcmp(k, "params")) {
            tdm_errf(err, errlen, "unknown request field '%s'", k);
            goto out;
        }
    }
    {
        const char *mp[] = {"method", NULL};
        m = yajl_tree_get(root, mp, yajl_t_any);
    }
    mstr = m && YAJL_IS_STRING(m) ? m->u.string : NULL;
    if (!mstr || !*mstr || strlen(mstr) >= TDM_CTL_METHOD_MAX) {
        tdm_errf(err, errlen, "'method' must be a short non-empty string");
        goto out;
    }
    {
        const char *pp[] = {"params", NULL};
        p = yajl_tree_get(root, pp, yajl_t_any);
    }
    if (p && !YAJL_IS_OBJECT(p)) {
        tdm_errf(err, errlen, "'params' must be an object");
        goto out;
    }
    tdm_strlcpy(r->method, mstr, sizeof(r->method));
    r->root = root;
    r->params = p;
    root = NULL;
    rc = 0;
out:
    if (root)
        yajl_tree_free(root);
    free(buf);
    return rc;
}

static yajl_val param(const struct tdm_ctl_req *r, const char *name)
{
    if (!r->params)
        return NULL;
    for (size_t i = 0; i < r->params->u.object.len; i++)
        if (!strcmp(r->params->u.object.keys[i], name))
            return r->params->u.object.values[i];
    return NULL;
}

int tdm_ctl_params_only(const struct tdm_ctl_req *r, const char *const *names,
                        char *err, size_t errlen)
{
    if (!r->params)
        return 0;
    for (size_t i = 0; i < r->params->u.object.len; i++) {
        const char *k = r->params->u.object.keys[i];
        bool known = false;
        for (size_t j = 0; names && names[j]; j++)
            known |= !strcmp(names[j], k);
        if (!known)
            return tdm_errf(err, errlen, "%s: unknown parameter '%s'",
                            r->method, k);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(r->params->u.object.keys[j], k))
                return tdm_errf(err, errlen, "%s: parameter '%s' given twice",
                                r->method, k);
    }
    return 0;
}

int tdm_ctl_param_str(const struct tdm_ctl_req *r, const char *name,
                      bool required, const char **v_r, char *err,
                      size_t errlen)
{
    yajl_val v = param(r, name);

    *v_r = NULL;
    if (!v) {
        if (required)
            return tdm_errf(err, errlen, "%s: parameter '%s' is required",
                            r->method, name);
        return 0;
    }
    if (!YAJL_IS_STRING(v))
        return tdm_errf(err, errlen, "%s: parameter '%s' must be a string",
                        r->method, name);
    *v_r = v->u.string;
    return 0;
}

int tdm_ctl_param_u64(const struct tdm_ctl_req *r, const char *name,
                      uint64_t def, uint64_t min, uint64_t max, uint64_t *v_r,
                      char *err, size_t errlen)
{
    yajl_val v = param(r, name);

    if (!v) {
        *v_r = def;
        return 0;
    }
    if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0 ||
        (uint64_t)YAJL_GET_INTEGER(v) < min ||
        (uint64_t)YAJL_GET_INTEGER(v) > max)
        return tdm_errf(err, errlen, "%s: parameter '%s' must be a whole "
                        "number from %llu to %llu", r->method, name,
                        (unsigned long long)min, (unsigned long long)max);
    *v_r = (uint64_t)YAJL_GET_INTEGER(v);
    return 0;
}

void tdm_ctl_gen_str(yajl_gen g, const char *s)
{
    yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

void tdm_ctl_gen_kv_str(yajl_gen g, const char *k, const char *v)
{
    tdm_ctl_gen_str(g, k);
    tdm_ctl_gen_str(g, v);
}

void tdm_ctl_gen_kv_u64(yajl_gen g, const char *k, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)v);

    tdm_ctl_gen_str(g, k);
    yajl_gen_number(g, num, (size_t)n);
}

yajl_gen tdm_ctl_reply_begin(void)
{
    yajl_gen g = yajl_gen_alloc(NULL);

    if (!g)
        fatalx("yajl_gen_alloc");
    yajl_gen_map_open(g);
    tdm_ctl_gen_str(g, "ok");
    yajl_gen_bool(g, 1);
    tdm_ctl_gen_str(g, "result");
    return g;
}

static char *gen_finish(yajl_gen g, size_t *len_r)
{
    const unsigned char *buf;
    size_t len;
    char *out;

    yajl_gen_map_close(g);
    yajl_gen_get_buf(g, &buf, &len);
    out = tdm_malloc(len + 2);
    memcpy(out, buf, len);
    out[len] = '\n';
    out[len + 1] = '\0';
    *len_r = len + 1;
    yajl_gen_free(g);
    return out;
}

char *tdm_ctl_reply_end(yajl_gen g, size_t *len_r)
{
    return gen_finish(g, len_r);
}

char *tdm_ctl_reply_error(const char *msg, size_t *len_r)
{
    yajl_gen g = yajl_gen_alloc(NULL);

    if (!g)
        fatalx("yajl_gen_alloc");
    yajl_gen_map_open(g);
    tdm_ctl_gen_str(g, "ok");
    yajl_gen_bool(g, 0);
    tdm_ctl_gen_kv_str(g, "error", msg);
    return gen_finish(g, len_r);
}

char *tdm_ctl_request(const char *method,
                      void (*params)(yajl_gen g, void *arg), void *arg,
                      size_t *len_r)
{
    yajl_gen g = yajl_gen_alloc(NULL);

    if (!g)
        fatalx("yajl_gen_alloc");
    yajl_gen_map_open(g);
    tdm_ctl_gen_kv_str(g, "method", method);
    tdm_ctl_gen_str(g, "params");
    yajl_gen_map_open(g);
    if (params)
        params(g, arg);
    yajl_gen_map_close(g);
    return gen_finish(g, len_r);
}

int tdm_ctl_call(const char *path, const char *req, size_t len,
                 int timeout_ms, char **reply_r, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    size_t got = 0, cap = 4096, off = 0;
    char *buf = NULL;
    int fd, rc = -1;

    *reply_r = NULL;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (!tdm_strlcpy(sun.sun_path, path, sizeof(sun.sun_path)))
        return tdm_errf(err, errlen, "socket path too long: %s", path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return tdm_errf(err, errlen, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        if (errno == ENOENT || errno == ECONNREFUSED)
            tdm_errf(err, errlen, "cannot connect to tandemd at %s: is it "
                     "running?", path);
        else
            tdm_errf(err, errlen, "cannot connect to tandemd at %s: %s", path,
                     strerror(errno));
        goto out;
    }
    while (off < len) {
        ssize_t r = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            tdm_errf(err, errlen, "send to %s: %s", path, strerror(errno));
            goto out;
        }
        off += (size_t)r;
    }
    buf = tdm_malloc(cap);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t r;
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr == 0) {
            tdm_errf(err, errlen, "no answer from tandemd within %d ms",
                     timeout_ms);
            goto out;
        }
        if (pr < 0 && errno == EINTR)
            continue;
        if (got + 1 >= cap) {
            if (cap >= TDM_CTL_MAX_LINE * 8) {
                tdm_errf(err, errlen, "answer too large");
                goto out;
            }
            cap *= 2;
            buf = tdm_realloc(buf, cap);
        }
        r = recv(fd, buf + got, cap - got - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            tdm_errf(err, errlen, "tandemd closed the connection without an "
                     "answer");
            goto out;
        }
        got += (size_t)r;
        buf[got] = '\0';
        if (memchr(buf, '\n', got))
            break;
    }
    *reply_r = buf;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

int tdm_ctl_reply_parse(const char *text, yajl_val *root_r, bool *ok_r,
                        yajl_val *result_r, char *err, size_t errlen)
{
    const char *okp[] = {"ok", NULL}, *resp[] = {"result", NULL},
               *errp[] = {"error", NULL};
    char perr[256];
    yajl_val root, ok, e;

    *root_r = NULL;
    *result_r = NULL;
    root = yajl_tree_parse(text, perr, sizeof(perr));
    if (!root || !YAJL_IS_OBJECT(root)) {
        if (root)
            yajl_tree_free(root);
        return tdm_errf(err, errlen, "malformed answer from tandemd");
    }
    ok = yajl_tree_get(root, okp, yajl_t_any);
    if (!ok || !(YAJL_IS_TRUE(ok) || YAJL_IS_FALSE(ok))) {
        yajl_tree_free(root);
        return tdm_errf(err, errlen, "malformed answer from tandemd");
    }
    *ok_r = YAJL_IS_TRUE(ok);
    if (*ok_r) {
        *result_r = yajl_tree_get(root, resp, yajl_t_any);
    } else {
        e = yajl_tree_get(root, errp, yajl_t_string);
        tdm_errf(err, errlen, "%s", e ? e->u.string : "unknown error");
    }
    *root_r = root;
    return 0;
}
