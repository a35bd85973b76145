// SPDX-License-Identifier: GPL-2.0
/* Cumulative livepatch for klp_sessions, state 0x5e55 version 1. */
#define STATE_VERSION 1
#include "klp_sessions_patch.h"
MODULE_DESCRIPTION("klp-harness: klp_sessions livepatch, state version 1");
