// SPDX-License-Identifier: GPL-2.0
/* Negative control: klp_sessions_v2 with BUG_SETUP_ON_REPLACE (see klp_sessions_patch.h). */
#define STATE_VERSION 2
#define BUG_SETUP_ON_REPLACE 1
#include "klp_sessions_patch.h"
MODULE_DESCRIPTION("klp-harness negative control: BUG_SETUP_ON_REPLACE");
