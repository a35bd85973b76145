// SPDX-License-Identifier: GPL-2.0
/* Cumulative livepatch for klp_chain (atomic replace): the chain's version 2. */
#define CHAIN_VERSION 2
#define CHAIN_REPLACE
#include "klp_chain_patch.h"
MODULE_DESCRIPTION("klp-harness: klp_chain livepatch, version 2, replacing");
