"""The klp-harness command line."""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List

from . import accel, arch as archmod, hosttools, image as imagemod, kernelbuild
from .errors import HarnessError, InputError
from .machine import Machine, MachineConfig
from .scenario import Scenario, discover
from .session import Options, Session, summary

SCENARIOS = imagemod.PROJECT / "scenarios"


def _arches(args) -> List[str]:
    return imagemod.arches_for(args.image, args.arch)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", action="append", metavar="ARCH",
                   help=f"guest architecture ({', '.join(archmod.NAMES)}); repeatable; "
                        "default: every one the image supports")
    p.add_argument("--image", default=imagemod.DEFAULT_IMAGE,
                   help=f"image recipe name under images/ (default: {imagemod.DEFAULT_IMAGE})")
    p.add_argument("--mirror", help="Debian mirror URL (default: this host's apt configuration, "
                                    "or $KLP_HARNESS_MIRROR)")
    p.add_argument("--kernel-tree", type=Path, metavar="PATH",
                   help="build the image's kernel from this local source tree instead of the "
                        "recipe's (images built from source only)")


def _machine_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                   help="auto: KVM if a probe boot works, else TCG (default)")
    p.add_argument("--smp", type=int, default=2, help="guest CPUs (default 2)")
    p.add_argument("--memory", type=int, default=512, help="guest memory in MiB (default 512)")


def cmd_setup(args) -> int:
    recipe = imagemod.Recipe.load(imagemod.recipe_path(args.image))
    installed = hosttools.install_missing(
        hosttools.needed_for(_arches(args), recipe.builds_kernel))
    print("host packages installed: " + (" ".join(installed) if installed else "none needed"))
    return 0


def cmd_images_build(args) -> int:
    for a in _arches(args):
        img = imagemod.build(args.image, a, args.mirror, args.kernel_tree)
        print(f"{img.name} {a}: {img.dir} (kernel {img.kernel_release})")
    return 0


def cmd_validate(args) -> int:
    files = discover([Path(p) for p in args.files] or [SCENARIOS])
    bad = 0
    for path in files:
        try:
            Scenario.load(path)
        except InputError as e:
            print(e, file=sys.stderr)
            bad += 1
    print(f"{len(files) - bad} valid, {bad} invalid scenario file(s)")
    return 2 if bad else 0


def cmd_run(args) -> int:
    arches = _arches(args)
    scenarios = []
    for path in discover([Path(p) for p in args.scenarios] or [SCENARIOS]):
        scenarios.append(Scenario.load(path))   # all validated before anything boots
    session = Session(Options(image=args.image, accel=args.accel, cpus=args.smp,
                              memory_mb=args.memory, mirror=args.mirror,
                              kernel_tree=args.kernel_tree,
                              artifacts=Path(args.artifacts)))
    outcomes = []
    try:
        for a in arches:
            for sc in scenarios:
                outcome = session.run_scenario(sc, a)
                outcomes.append(outcome)
                print(f"{outcome.status.upper():4} {sc.name}[{a}] ({outcome.seconds:.1f}s)"
                      + (f"\n{outcome.message}" if outcome.message and outcome.status != "pass"
                         else ""), flush=True)
    finally:
        session.close()
    print(summary(outcomes))
    return 1 if any(o.status == "fail" for o in outcomes) else 0


def cmd_bench_boot(args) -> int:
    for a in _arches(args):
        profile = archmod.get(a)
        img = imagemod.build(args.image, a, args.mirror, args.kernel_tree)
        chosen, why = accel.choose(profile, img, args.accel)
        print(f"# {a}: {why}", file=sys.stderr)
        times = []
        for i in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="klp-bench-") as work:
                start = time.monotonic()
                with Machine(img, profile, Path(work),
                             MachineConfig(cpus=args.smp, memory_mb=args.memory, accel=chosen)) as m:
                    times.append(time.monotonic() - start)
                    stages = " ".join(f"{k}={v:.2f}" for k, v in m.stage_times.items())
                print(f"# run {i + 1}: {times[-1]:.2f}s ({stages})", file=sys.stderr)
        print(f"boot-to-ssh {a} {statistics.median(times):.2f}")
    return 0


def cmd_bench_build(args) -> int:
    """Cold build in a scratch build dir, then a rebuild after touching one livepatch file.
    The cached build dirs are left alone."""
    for a in _arches(args):
        source, profile, fragments = imagemod.kernel_inputs(args.image, a, args.mirror,
                                                            args.kernel_tree)
        with tempfile.TemporaryDirectory(prefix="klp-bench-kbuild-") as scratch:
            cold = kernelbuild.build(source, profile, fragments, Path(scratch), force=True)
            print(f"kernel-build-cold {a} {cold.seconds:.1f}", flush=True)
            touched = source.tree / args.touch
            touched.touch()
            again = kernelbuild.build(source, profile, fragments, Path(scratch), force=True)
            print(f"kernel-rebuild-touch {a} {again.seconds:.1f}  # {args.touch}", flush=True)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="klp-harness", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("setup", help="install missing host packages (apt-get; needs root)")
    _common(s)
    s.set_defaults(func=cmd_setup)

    images = sub.add_parser("images", help="image recipes and the cache").add_subparsers(
        dest="images_command", required=True)
    s = images.add_parser("build", help="build (or find cached) images")
    _common(s)
    s.set_defaults(func=cmd_images_build)

    s = sub.add_parser("validate", help="check scenario files; exit 2 if any is invalid")
    s.add_argument("files", nargs="*", help="scenario files or directories (default: scenarios/)")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("run", help="run scenarios on booted guests and print a summary")
    _common(s)
    _machine_opts(s)
    s.add_argument("--artifacts", default="artifacts",
                   help="where failed scenarios leave logs (default: ./artifacts)")
    s.add_argument("scenarios", nargs="*", help="scenario files or directories "
                                                "(default: every scenario under scenarios/)")
    s.set_defaults(func=cmd_run)

    bench = sub.add_parser("bench", help="benchmarks that print figures").add_subparsers(
        dest="bench_command", required=True)
    s = bench.add_parser("boot", help="median time from QEMU start to SSH answering")
    _common(s)
    _machine_opts(s)
    s.add_argument("--runs", type=int, default=5)
    s.set_defaults(func=cmd_bench_boot)
    s = bench.add_parser("build", help="cold kernel build time, and the rebuild after "
                                       "touching one file (scratch build dir)")
    _common(s)
    s.add_argument("--touch", default="kernel/livepatch/core.c",
                   help="source file touched before the rebuild (default: %(default)s)")
    s.set_defaults(func=cmd_bench_build)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except HarnessError as e:
        print(f"klp-harness: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
