/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the klp_sessions target module and the livepatches for it share.
 *
 * The target keeps "sessions": objects created and freed on request, through
 * /proc/klp_sessions ("create N", "destroy N" for the newest N, "destroy all", and
 * "cycle N": N short-lived ones, within the write).
 * Opening the file renders one line per session with klp_session_render(), the
 * function the livepatches replace; sessions are freed by klp_session_destroy().
 */
#ifndef KLP_SESSIONS_H
#define KLP_SESSIONS_H

#include <linux/list.h>
#include <linux/types.h>

struct klp_session {
	struct list_head list;
	int id;
};

#define KLP_SESSION_LINE 160	/* room for one rendered line */

/* In the target; what the livepatches replace. */
int klp_session_render(struct klp_session *s, char *buf, size_t size);
void klp_session_destroy(struct klp_session *s);

#endif
