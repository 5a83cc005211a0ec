/* SPDX-License-Identifier: LGPL-2.1-only */
/* ctlsend SOCKET 'RAW LINE': send one raw line to tandemd's control socket
 * and print the answer (for tests that feed it malformed requests). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "tdm-ctl.h"
#include "tdm-util.h"

int main(int argc, char **argv)
{
    char err[512], *reply, *line;
    size_t n;

    if (argc != 3) {
        fprintf(stderr, "usage: ctlsend SOCKET LINE\n");
        return 2;
    }
    n = strlen(argv[2]);
    line = tdm_malloc(n + 2);
    memcpy(line, argv[2], n);
    line[n] = '\n';
    if (tdm_ctl_call(argv[1], line, n + 1, 5000, &reply, err, sizeof(err)) < 0) {
        fprintf(stderr, "ctlsend: %s\n", err);
        return 1;
    }
    fputs(reply, stdout);
    free(reply);
    free(line);
    return 0;
}
