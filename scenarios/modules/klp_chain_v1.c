// SPDX-License-Identifier: GPL-2.0
/* Livepatch for klp_chain: klp_chain_outer() and klp_chain_inner() version 1. */
#define CHAIN_VERSION 1
#include "klp_chain_patch.h"
MODULE_DESCRIPTION("klp-harness: klp_chain livepatch, version 1");
