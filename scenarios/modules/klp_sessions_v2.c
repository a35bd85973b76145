// SPDX-License-Identifier: GPL-2.0
/* Cumulative livepatch for klp_sessions, state 0x5e55 version 2. */
#define STATE_VERSION 2
#include "klp_sessions_patch.h"
MODULE_DESCRIPTION("klp-harness: klp_sessions livepatch, state version 2");
