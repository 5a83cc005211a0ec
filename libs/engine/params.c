/* SPDX-License-Identifier: LGPL-2.1-only */
/* Engine parameters and names: no event loop needed (the daemon's
 * configuration parser checks parameters with these). */
#include "config.h"

#include <stdio.h>

#include "tdm-engine.h"

void tdm_engine_params_default(struct tdm_engine_params *p)
{
    p->interval_ms = TDM_DEFAULT_INTERVAL_MS;
    p->heartbeat_ms = TDM_DEFAULT_HEARTBEAT_MS;
    p->timeout_ms = TDM_DEFAULT_TIMEOUT_MS;
}

int tdm_engine_params_check(const struct tdm_engine_params *p, char *err,
                            size_t errlen)
{
    if (p->interval_ms < 1 || p->interval_ms > 10000)
        return tdm_errf(err, errlen, "interval %u ms is out of range (1..10000)",
                    p->interval_ms);
    if (p->heartbeat_ms < 5 || p->heartbeat_ms > 10000)
        return tdm_errf(err, errlen, "heartbeat %u ms is out of range (5..10000)",
                    p->heartbeat_ms);
    if (p->timeout_ms < 2 * p->heartbeat_ms || p->timeout_ms > 600000)
        return tdm_errf(err, errlen, "timeout %u ms must be at least twice the "
                    "heartbeat (%u ms) and at most 600000", p->timeout_ms,
                    p->heartbeat_ms);
    return 0;
}

void tdm_host_config_default(struct tdm_host_config *hc)
{
    memset(hc, 0, sizeof(*hc));
    tdm_strlcpy(hc->listen_addr, "0.0.0.0", sizeof(hc->listen_addr));
    hc->listen_port = TDM_DEFAULT_PORT;
    hc->accept_replicas = true;
    tdm_strlcpy(hc->disk_dir, TDM_DEFAULT_DISK_DIR, sizeof(hc->disk_dir));
    tdm_strlcpy(hc->nbdkit, "nbdkit", sizeof(hc->nbdkit));
    tdm_strlcpy(hc->nbdkit_plugin, TDM_DEFAULT_NBDKIT_PLUGIN,
                sizeof(hc->nbdkit_plugin));
    hc->disk_hold_max = TDM_DEFAULT_DISK_HOLD_MAX;
}

const char *tdm_role_name(enum tdm_role r)
{
    return r == TDM_ROLE_PRIMARY ? "primary" : "backup";
}

const char *tdm_state_name(enum tdm_state s)
{
    switch (s) {
    case TDM_ST_UNPROTECTED: return "unprotected";
    case TDM_ST_CONNECTING: return "connecting";
    case TDM_ST_SYNCING: return "syncing";
    case TDM_ST_PROTECTED: return "protected";
    case TDM_ST_RECEIVING: return "receiving";
    case TDM_ST_REPLICA: return "replica";
    case TDM_ST_ACTIVATING: return "activating";
    case TDM_ST_STOPPED: return "stopped";
    }
    return "?";
}

