"""The options of a run, declared once: the command line (cli), the pytest plugin and
bisect-run all add them from this table, and Options (what a Session runs with) is made
from their values.

An option's ``dest`` is its name on the command line's namespace (``args.<dest>``); under
pytest it is ``klp_<dest>`` (pytest's namespace is shared with other plugins), and its flag
is ``pytest_flag`` where the plain one would clash with pytest's own (``--artifacts``).
A front end takes options by dest (``pick("image", "mirror")``): a name the table lacks is
an error when the parser is made, not an option silently missing.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

from . import arch as archmod, image as imagemod, shard as shardmod
from .machine import MIN_MEMORY_MB


@dataclass
class Options:
    image: str = imagemod.DEFAULT_IMAGE
    accel: str = "auto"
    cpus: int = 2
    memory_mb: int = 512
    mirror: Optional[str] = None
    kernel_tree: Optional[Path] = None
    kernel_patches: List[Path] = field(default_factory=list)   # applied to the recipe's source
    build_dir: Optional[Path] = None    # the kernel tree's build dir, if not the cache's
    artifacts: Path = Path("artifacts")
    module_dirs: List[Path] = field(default_factory=list)   # more module sources (.c)
    ko_dirs: List[Path] = field(default_factory=list)       # modules built elsewhere (.ko)
    worker: str = ""                    # names this process's machines (pytest-xdist)
    pool: int = 0                       # guests per arch for run_all (0: pool.size decides)
    run_id: str = ""                    # this run's dir under artifacts (default: a new one)
    repeat: int = 1                     # runs of each scenario x arch (repeat.py)
    until_fail: bool = False            # a scenario x arch stops at its first failed run


# The values' converters (argparse's type=): a bad value is a usage error before anything
# boots.
def _whole_number(text: str, least: int, what: str) -> int:
    """``text`` as a whole number of at least ``least``; else a usage error saying ``what``
    the value must be."""
    if not text.isdigit() or int(text) < least:
        raise argparse.ArgumentTypeError(f"{what}, got {text!r}")
    return int(text)


def cpu_count(text: str) -> int:
    """--smp's value: a whole number of guest CPUs, 1 or more."""
    return _whole_number(text, 1, "guest CPUs must be a whole number of 1 or more")


def memory_size(text: str) -> int:
    """--memory's value: MiB of guest memory, at least MIN_MEMORY_MB."""
    return _whole_number(text, MIN_MEMORY_MB, f"guest memory is a number of MiB of at least "
                         f"{MIN_MEMORY_MB} (the kernel and its initramfs must fit)")


def patch_file(text: str) -> Path:
    """--kernel-patch's value: a file that exists (whether it applies is checked against
    the kernel source, before anything builds)."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no patch file {text!r}")
    return path.resolve()


def guests_arg(text: str) -> int:
    """--pool's value: guests per arch, 1 or more."""
    return _whole_number(text, 1, "guests per architecture must be a whole number of 1 or more")


def repeat_count(text: str) -> int:
    """--repeat's value: runs of each scenario on each arch, 1 or more."""
    return _whole_number(text, 1, "--repeat takes a whole number of runs of 1 or more")


def shard_spec(text: str) -> "shardmod.Shard":
    """--shard's value: K/N, shard K of N (1 <= K <= N)."""
    try:
        return shardmod.parse(text)
    except shardmod.ShardError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def shard_total(text: str) -> int:
    """--shard-total's value: the number of shards, 1 or more."""
    return _whole_number(text, 1, "--shard-total takes a whole number of shards of 1 or more")


def module_dir(text: str) -> Path:
    """--modules' value, absolute: its modules are built elsewhere (make M=), and a bisect
    step names its checkout by it."""
    return Path(text).resolve()


@dataclass(frozen=True)
class Option:
    flag: str
    dest: str
    field: Optional[str]            # the Options field it sets (None: not one)
    help: str
    kwargs: Dict[str, Any] = field(default_factory=dict)   # argparse's: type, default, ...
    pytest_flag: Optional[str] = None
    pytest: bool = True             # the pytest plugin has it too

    def argparse_kwargs(self, **overrides) -> Dict[str, Any]:
        kwargs = dict(self.kwargs, dest=self.dest, help=self.help)
        kwargs.update(overrides)
        return kwargs


ALL = [
    Option("--arch", "arch", None,
           f"guest architecture ({', '.join(archmod.NAMES)}); repeatable; default: every one "
           "the image supports", {"action": "append", "metavar": "ARCH"}),
    Option("--image", "image", "image",
           f"image recipe: a name under images/, or a recipe file's path (default: "
           f"{imagemod.DEFAULT_IMAGE})", {"default": imagemod.DEFAULT_IMAGE}),
    Option("--mirror", "mirror", "mirror",
           "Debian mirror URL (default: this host's apt configuration, or "
           "$KLP_HARNESS_MIRROR)"),
    Option("--kernel-tree", "kernel_tree", "kernel_tree",
           "build the image's kernel from this local source tree instead of the recipe's "
           "(images built from source only)", {"type": Path, "metavar": "PATH"}),
    Option("--kernel-patch", "kernel_patch", "kernel_patches",
           "apply this patch (unified diff, -p1) to the image's kernel source before building "
           "it: a kernel of its own, built from a copy of the unpatched build; repeatable, "
           "applied in order (images built from source only)",
           {"action": "append", "type": patch_file, "default": [], "metavar": "FILE"}),
    # Not under pytest: one build dir holds one arch's kernel, and pytest boots every arch
    # the image supports unless told otherwise; bisect-run tests one arch.
    Option("--build-dir", "build_dir", "build_dir",
           "the kernel's build dir (default: one in the cache per tree and arch)",
           {"type": Path, "metavar": "DIR"}, pytest=False),
    Option("--accel", "accel", "accel", "auto: KVM if a probe boot works, else TCG (default)",
           {"choices": ("auto", "kvm", "tcg"), "default": "auto"}),
    Option("--smp", "smp", "cpus", "guest CPUs (default 2)",
           {"type": cpu_count, "default": 2}),
    Option("--memory", "memory", "memory_mb",
           f"guest memory in MiB (default 512, at least {MIN_MEMORY_MB})",
           {"type": memory_size, "default": 512}),
    Option("--artifacts", "artifacts", "artifacts",
           "where each run leaves its artifacts (a dir per run; default: ./artifacts)",
           {"default": "artifacts"}, pytest_flag="--klp-artifacts"),
    Option("--modules", "modules", "module_dirs",
           "more module sources (.c), built for the image's kernel: scenarios load their "
           "modules by name; repeatable",
           {"action": "append", "type": module_dir, "default": [], "metavar": "DIR"}),
    Option("--ko-dir", "ko_dir", "ko_dirs",
           "livepatch modules built for the image's kernel (.ko files): each runs through "
           "scenarios/generic/livepatch-module.yaml; repeatable",
           {"action": "append", "type": Path, "default": [], "metavar": "DIR"}),
    Option("--pool", "pool", "pool",
           "guests per architecture, each running its share of the scenarios (pytest -n "
           "auto: default one per host core, as far as the host's memory holds them; "
           "klp-harness run: default 1)",
           {"type": guests_arg, "default": 0, "metavar": "K"}),
    Option("--repeat", "repeat", "repeat",
           "run each scenario on each arch N times, spread over the pool; the summary, the "
           "report and JUnit give each one's failed runs as k/N with a 95%% interval "
           "(Python tests run once; default 1)",
           {"type": repeat_count, "default": 1, "metavar": "N"}),
    Option("--until-fail", "until_fail", "until_fail",
           "with --repeat: a scenario stops on an arch at its first failed run (fail, or "
           "xfail: a known failure); that run's artifacts are kept, its later runs not run",
           {"action": "store_true"}),
    # Not fields of Options: a front end runs its shard's part of the selection (shard.py).
    Option("--shard", "shard", None,
           "run shard K of N of the selection (1 <= K <= N), split by expected durations, the "
           "same way on every job; default: $CI_NODE_INDEX/$CI_NODE_TOTAL (GitLab "
           "`parallel:`), or $JOB_COMPLETION_INDEX + 1 of --shard-total (a Kubernetes Indexed "
           "Job); `klp-harness merge` joins the shards' run dirs",
           {"type": shard_spec, "metavar": "K/N"}),
    Option("--shard-total", "shard_total", None,
           f"the number of shards beside $JOB_COMPLETION_INDEX (default: "
           f"${shardmod.TOTAL_ENV})", {"type": shard_total, "metavar": "N"}),
    Option("--shard-durations", "shard_durations", None,
           "expected durations the split goes by, over the shipped ones: a file of "
           "{\"cells\": {cell: seconds}}, or a previous run's outcomes.json (or its dir); "
           "the same on every shard", {"type": Path, "metavar": "FILE"}),
]
_BY_DEST = {opt.dest: opt for opt in ALL}


def pick(*dests: str) -> List[Option]:
    """The table's options named by dest, in that order; a name it lacks is an error."""
    unknown = [d for d in dests if d not in _BY_DEST]
    if unknown:
        raise ValueError(f"no option {', '.join(map(repr, unknown))} in the table "
                         f"(it has {', '.join(_BY_DEST)})")
    return [_BY_DEST[d] for d in dests]


# The groups that subcommands share.
IMAGE = pick("arch", "image", "mirror", "kernel_tree")   # which image, built from what
MACHINE = pick("accel", "smp", "memory")                 # the guest's QEMU machine
# Which part of the selection: `run` and pytest. Not bisect-run: a step's verdict must
# judge every scenario it is given (a good third is no good commit).
SHARDS = pick("shard", "shard_total", "shard_durations")


def shard_plan(value: Callable[[str], Any]) -> "shardmod.Plan":
    """The shard plan of the SHARDS options' values (``value(dest)``); a ShardError for
    the engine's variables or a durations file that are wrong."""
    return shardmod.plan(value("shard"), value("shard_total"), value("shard_durations"))


def add_to_parser(parser, options: Iterable[Option], **overrides: Dict[str, Any]) -> None:
    """Add ``options`` to an argparse parser; ``overrides`` maps a dest to changed kwargs
    (e.g. bisect-run's single --arch), and must name only options added."""
    options = list(options)
    stray = set(overrides) - {opt.dest for opt in options}
    if stray:
        raise ValueError(f"overrides for options not added: {', '.join(sorted(stray))}")
    for opt in options:
        parser.add_argument(opt.flag, **opt.argparse_kwargs(**overrides.get(opt.dest, {})))


def add_to_pytest(group) -> None:
    """The options pytest has, as the pytest plugin's (dest klp_<dest>)."""
    for opt in ALL:
        if opt.pytest:
            group.addoption(opt.pytest_flag or opt.flag,
                            **opt.argparse_kwargs(dest=f"klp_{opt.dest}"))


def session_options(value: Callable[[str], Any], **extra) -> Options:
    """Options from the options' values (``value(dest)``), for those present."""
    fields = {}
    for opt in ALL:
        if opt.field is None:
            continue
        try:
            fields[opt.field] = value(opt.dest)
        except (AttributeError, KeyError, ValueError):   # a front end without that option
            continue
    if "artifacts" in fields:
        fields["artifacts"] = Path(fields["artifacts"])
    fields.update(extra)
    return Options(**fields)
