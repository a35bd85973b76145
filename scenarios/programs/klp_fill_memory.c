// SPDX-License-Identifier: GPL-2.0
/*
 * klp_fill_memory MB: takes anonymous memory (populated by the kernel, which is much faster
 * under emulation than touching it), half of what is left above the mark each time, down
 * to a megabyte, until the kernel's MemAvailable is down to MB megabytes; prints "filled N
 * MB, MemAvailable K kB" and keeps it until killed. It makes itself the OOM killer's first choice
 * (oom_score_adj 1000), so that if memory does run out, the filler goes, not the guest's
 * sshd or shell.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define MB (1024L * 1024)

static long mem_available_kb(void)
{
	char line[128];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	long leave_kb, filled = 0, kb;
	FILE *adj;

	if (argc != 2 || atol(argv[1]) <= 0) {
		fprintf(stderr, "usage: klp_fill_memory MB (the MemAvailable to leave)\n");
		return 2;
	}
	leave_kb = atol(argv[1]) * 1024;
	adj = fopen("/proc/self/oom_score_adj", "w");
	if (adj) {
		fputs("1000", adj);
		fclose(adj);
	}
	while ((kb = mem_available_kb()) > leave_kb) {
		long mb = (kb - leave_kb) / 1024 / 2;
		char *chunk;

		if (mb < 1)
			mb = 1;
		chunk = mmap(NULL, mb * MB, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (chunk == MAP_FAILED)
			break;
		filled += mb;
	}
	printf("filled %ld MB, MemAvailable %ld kB\n", filled, mem_available_kb());
	fflush(stdout);
	for (;;)
		pause();
}
