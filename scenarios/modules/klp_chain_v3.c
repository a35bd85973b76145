// SPDX-License-Identifier: GPL-2.0
/* Cumulative livepatch for klp_chain (atomic replace): the chain's version 3. With
 * version 2 it makes a chain of replacements of any length (each replaces the other). */
#define CHAIN_VERSION 3
#define CHAIN_REPLACE
#include "klp_chain_patch.h"
MODULE_DESCRIPTION("klp-harness: klp_chain livepatch, version 3, replacing");
