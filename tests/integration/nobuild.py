"""A machine that cannot build: this host's programs without the build tools, for the tests
of what a test machine runs from a bundle (test_bundle.py, test_shards.py)."""
import os
import re
from pathlib import Path

# What a build needs and a test machine has not: compilers (cross ones too), make, the
# assembler and linker, the kernel build's and klp-build's tools, the package fetcher.
BUILD_TOOLS = re.compile(r"gcc|g\+\+|clang|^cc$|^c\+\+$|^cpp|make|^ld|^as$|-as$|objtool|"
                         r"flex|bison|yacc|mmdebstrap|cpio|bwrap|recountdiff|^patch$|"
                         r"-linux-gnu")


def no_build_tools_path(tmp_path: Path) -> str:
    """A PATH of this host's programs but the build tools (links in a dir of its own)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        for program in sorted(Path(d).glob("*")) if Path(d).is_dir() else []:
            target = bin_dir / program.name
            if not BUILD_TOOLS.search(program.name) and not target.exists():
                target.symlink_to(program)
    return str(bin_dir)
