// SPDX-License-Identifier: GPL-2.0
/*
 * klp_chain_fault: one call through klp_chain_outer() that sleeps in a page fault inside
 * it. Maps /sys/kernel/debug/klp_chain/fault_page (whose fault sleeps until klp_chain's
 * "release") and writes "1 ADDR" to /sys/kernel/klp_chain/call, so that klp_chain_hold()
 * reads the unmapped page. Prints the byte the page then holds (0).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void)
{
	int page = open("/sys/kernel/debug/klp_chain/fault_page", O_RDONLY);
	int call = open("/sys/kernel/klp_chain/call", O_WRONLY);
	char line[64];
	volatile char *at;

	if (page < 0 || call < 0) {
		perror("klp_chain_fault: open");
		return 1;
	}
	at = mmap(NULL, getpagesize(), PROT_READ, MAP_SHARED, page, 0);
	if (at == MAP_FAILED) {
		perror("klp_chain_fault: mmap");
		return 1;
	}
	snprintf(line, sizeof(line), "1 %lu", (unsigned long)at);
	if (write(call, line, strlen(line)) < 0) {
		perror("klp_chain_fault: write");
		return 1;
	}
	printf("%d\n", at[0]);
	return 0;
}
