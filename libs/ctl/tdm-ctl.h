/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The control protocol: one JSON object per line over a unix socket.
 *
 *   request:  {"method":"protect","params":{"name":"kv1","host":"hostb"}}
 *   response: {"ok":true,"result":...}  or  {"ok":false,"error":"..."}
 *
 * Requests are checked whole: unknown methods, unknown, missing or
 * mistyped parameters all get an error and change nothing.
 */
#ifndef TDM_CTL_H
#define TDM_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#define TDM_CTL_MAX_LINE (1u << 20)
#define TDM_CTL_METHOD_MAX 32

struct tdm_ctl_req {
    char method[TDM_CTL_METHOD_MAX];
    yajl_val root;
    yajl_val params;            /* an object (possibly empty) */
};

void tdm_ctl_req_init(struct tdm_ctl_req *r);
void tdm_ctl_req_dispose(struct tdm_ctl_req *r);
/* Parse one request (without its newline). */
int tdm_ctl_req_parse(struct tdm_ctl_req *r, const char *text, size_t len,
                      char *err, size_t errlen);
/* Every parameter must be in the NULL-terminated list. */
int tdm_ctl_params_only(const struct tdm_ctl_req *r, const char *const *names,
                        char *err, size_t errlen);
/* *v_r = NULL when absent and not required. */
int tdm_ctl_param_str(const struct tdm_ctl_req *r, const char *name,
                      bool required, const char **v_r, char *err,
                      size_t errlen);
/* *v_r = def when absent. */
int tdm_ctl_param_u64(const struct tdm_ctl_req *r, const char *name,
                      uint64_t def, uint64_t min, uint64_t max, uint64_t *v_r,
                      char *err, size_t errlen);

/* Responses: begin gives a generator positioned to write the result value;
 * end closes it and returns the line (malloc'd, newline-terminated). */
yajl_gen tdm_ctl_reply_begin(void);
char *tdm_ctl_reply_end(yajl_gen g, size_t *len_r);
char *tdm_ctl_reply_error(const char *msg, size_t *len_r);

/* yajl_gen helpers */
void tdm_ctl_gen_str(yajl_gen g, const char *s);
void tdm_ctl_gen_kv_str(yajl_gen g, const char *k, const char *v);
void tdm_ctl_gen_kv_u64(yajl_gen g, const char *k, uint64_t v);

/* Client: build a request from method + a params object given as a
 * generator callback (may be NULL). */
char *tdm_ctl_request(const char *method,
                      void (*params)(yajl_gen g, void *arg), void *arg,
                      size_t *len_r);
/* Send one request line and read one response line. -1 with err on
 * failure to connect, send or receive (ECONNREFUSED/ENOENT: not running). */
int tdm_ctl_call(const char *path, const char *req, size_t len,
                 int timeout_ms, char **reply_r, char *err, size_t errlen);
/* Parse a response: ok_r, and result_r (owned by *root_r) or the error
 * message in err. Returns -1 only if the response itself is malformed. */
int tdm_ctl_reply_parse(const char *text, yajl_val *root_r, bool *ok_r,
                        yajl_val *result_r, char *err, size_t errlen);

#endif
