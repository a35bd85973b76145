// SPDX-License-Identifier: GPL-2.0
/* Cumulative livepatch for klp_sessions without the state: refused while a patch has it. */
#define STATE_VERSION 0
#include "klp_sessions_patch.h"
MODULE_DESCRIPTION("klp-harness: klp_sessions livepatch without the state");
