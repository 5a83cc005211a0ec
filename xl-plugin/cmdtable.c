/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include <string.h>

#include "xl-tandem.h"

const struct xlt_cmd xlt_cmds[] = {
    {"create", cmd_create, "<domain.cfg>",
     "Create and start a domain (uvm driver) from a configuration file; it "
     "runs unprotected until 'protect'."},
    {"protect", cmd_protect,
     "[-i MS] [-H MS] [-t MS] <vm> <backup-host[:port]>",
     "Protect a running domain with a backup host: epochs every -i ms "
     "(default 25), heartbeats every -H ms (50), the peer declared lost "
     "after -t ms of silence (250)."},
    {"unprotect", cmd_unprotect, "<vm>",
     "Stop protecting a domain; it keeps running here and the backup drops "
     "its replica."},
    {"failover", cmd_failover, "<vm>",
     "Planned switch: the final epoch is sent with the domain suspended, the "
     "backup activates it, and this host's copy is destroyed."},
    {"destroy", cmd_destroy, "<vm>",
     "Destroy a domain (or drop a replica) on this host."},
    {"list", cmd_list, "", "List the domains this host runs or replicates."},
    {"status", cmd_status, "[-j] [<vm>]",
     "Show state and per-epoch figures (pause, dirty pages, bytes, ack "
     "time, held output)."},
    {"xs-protect", cmd_xs_protect,
     "[-n NAME] [-m MIB] [-i MS] [-H MS] [-t MS] [-S cooperative|pause] "
     "[-N KIND] <domain> [<backup-host[:port]>]",
     "Write a running Xen domain's protection into xenstore "
     "(tandem-xenstore(7)): tandemd attaches to it and, given a backup, "
     "protects it, now and after every restart. Memory defaults to the "
     "domain's maximum, the name to xl's."},
    {"xs-unprotect", cmd_xs_unprotect, "<name>",
     "Remove a domain's entry from xenstore: tandemd unprotects it and "
     "leaves it running."},
    {"xs-list", cmd_xs_list, "",
     "List the entries in xenstore with the state tandemd publishes."},
    {"version", cmd_version, "", "Show the versions of xl-tandem and tandemd."},
    {"help", cmd_help, "[command]", "Show help."},
    {NULL, NULL, NULL, NULL},
};

const struct xlt_cmd *xlt_cmd_find(const char *name)
{
    for (const struct xlt_cmd *c = xlt_cmds; c->name; c++)
        if (!strcmp(c->name, name))
            return c;
    return NULL;
}
