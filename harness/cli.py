"""The klp-harness command line."""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import List

from . import (bench, bisect, buildfigures, bundle, external, hosttools, image as imagemod,
               klpbuild, kselftest, merge, modules, options, phases, repeat, report,
               runrecord, shard)
from .errors import HarnessError, InputError
from .log import LOG, LOG_FORMAT
from .paths import PARITY_SCENARIOS as PARITY, SCENARIOS
from .scenario import Scenario, discover, known_upstream_failures
from .options import Options
from .outcome import Status
from .report import summary
from .scheduler import RunInterrupted
from .session import Session

STARTED = time.monotonic()   # the run's wall time counts from here (and ./klp's set-up)


# --arch of the commands that run klp-build: one arch, the one it supports by default.
KLP_BUILD_ARCH = {"action": "store", "default": "x86_64",
                  "help": "the image's architecture (default: x86_64, the one klp-build "
                          "supports)"}


def _arches(args) -> List[str]:
    return imagemod.arches_for(args.image, args.arch)


def _common(p: argparse.ArgumentParser) -> None:
    options.add_to_parser(p, options.IMAGE)


def _machine_opts(p: argparse.ArgumentParser) -> None:
    options.add_to_parser(p, options.MACHINE)


def _options(args) -> Options:
    """Session options from the flags of the option table that this command has."""
    return options.session_options(lambda dest: getattr(args, dest))


def cmd_setup(args) -> int:
    started = time.monotonic()
    recipe = imagemod.Recipe.load(imagemod.recipe_path(args.image))
    installed = hosttools.install_missing(
        hosttools.needed_to_run(_arches(args)) if args.run_only else
        hosttools.needed_for(_arches(args), recipe.builds_kernel,
                             klp_build=recipe.builds_kernel, tests=args.tests))
    print("host packages installed: " + (" ".join(installed) if installed else "none needed"))
    phases.record_external("host packages", time.monotonic() - started, phases.process_total())
    return 0


def cmd_images_build(args) -> int:
    imagemod.patched_source(args.image, args.kernel_patch, args.mirror)   # applies? first
    built = imagemod.build_all(args.image, _arches(args), args.mirror, args.kernel_tree,
                               args.kernel_patch)
    for a, img in built.items():
        print(f"{img.name} {a}: {img.dir} (kernel {img.kernel_name})")
    return 0


def cmd_images_figures(args) -> int:
    """Refresh the shipped build figures (images/build-figures.json) of an image's kernels
    from builds on this machine."""
    arches = [a for a in _arches(args) if a in imagemod.source_built_arches(args.image)]
    if not arches:
        raise HarnessError(f"image {args.image} builds no kernel from source: it has no "
                           "build figures")
    imagemod.build_all(args.image, arches, args.mirror)   # the missing ones, at once
    for a in arches:
        print(imagemod.record_figures(args.image, a, args.mirror))
    print(f"written: {imagemod.BUILD_FIGURES}")
    return 0


def cmd_validate(args) -> int:
    imagemod.recipe_path(args.image)   # an unknown image is an error, not "all valid"
    files = discover([Path(p) for p in args.files] or [SCENARIOS])
    known = modules.known_names(args.image)
    if known is None:
        print(f"note: module names not checked: no {args.image} image is built yet "
              f"(klp-harness images build --image {args.image})", file=sys.stderr)
    bad = 0
    for path in files:
        try:
            Scenario.load(path, known)
        except InputError as e:
            print(e, file=sys.stderr)
            bad += 1
    print(f"{len(files) - bad} valid, {bad} invalid scenario file(s)")
    return 2 if bad else 0


def _run_scenarios(args) -> List[Scenario]:
    """The scenarios `run` was given (all, unless --ko-dir asks for its modules only), the
    generic checks of --ko-dir's and of livepatches built from patches; all validated
    before anything boots."""
    if args.scenarios:
        files = discover([Path(p) for p in args.scenarios])
    else:
        files = [] if args.ko_dir else discover([SCENARIOS])
    files += external.write_scenarios(args.ko_dir, Path(args.artifacts))
    scenarios = [Scenario.load(path) for path in files]
    return scenarios + external.livepatch_checks(scenarios, Path(args.artifacts))


def _record_run(session: Session, args, arches: List[str], selection: List[str],
                mine: List[str], plan: shard.Plan) -> None:
    """run.json: what this run (or shard) is, for `klp-harness merge`."""
    runrecord.RunRecord(report.harness_version(), imagemod.recipe_path(args.image).stem,
                        arches, selection, mine, mine, plan.shard, plan.durations_sha256,
                        args.repeat, "run", session.run_id).write(session.run_dir)


def cmd_run(args) -> int:
    arches = _arches(args)
    scenarios = _run_scenarios(args)
    plan = options.shard_plan(lambda dest: getattr(args, dest))
    selection = [shard.cell(sc.id, a) for sc in scenarios for a in arches]
    if not selection:   # never "0 passed"
        raise HarnessError("nothing to run: no scenario selected (--ko-dir without modules?)")
    mine = plan.mine(selection)
    imagemod.patched_source(args.image, args.kernel_patch, args.mirror)   # applies? first
    session = Session(_options(args))
    _record_run(session, args, arches, selection, mine, plan)
    if plan.shard is not None:
        print(f"shard {plan.shard}: {len(mine)} of the selection's {len(set(selection))} "
              "cells", file=sys.stderr)
        if not mine:   # more shards than cells: this job has nothing to do, and says so
            return _empty_shard(session, plan, len(set(selection)))
    return _run_and_report(args, session, scenarios, arches,
                           set(mine) if plan.shard else None)


def _empty_shard(session: Session, plan: shard.Plan, cells: int) -> int:
    """A shard that got no cell (N > cells): exit 0, saying so; its run dir records it,
    and merge checks that the shards add up to the selection."""
    print(f"shard {plan.shard} has no cell to run: the selection has {cells} cell(s) for "
          f"{plan.shard.total} shards (nothing ran here; merge the shards' run dirs)")
    report.write(session.run_dir, [], summary([]))
    print(f"artifacts of this run: {session.run_dir}")
    session.close()
    return 0


def _run_and_report(args, session: Session, scenarios: List[Scenario], arches: List[str],
                    cells) -> int:
    """Run the scenarios (a shard's ``cells`` of them), print the summary, write the
    report; exit 1 if any failed, 130 if interrupted."""
    def show(outcome) -> None:
        print(f"{outcome.status.upper():4} "
              f"{repeat.item_id(outcome.scenario, outcome.arch, outcome.run)} "
              f"({outcome.seconds:.1f}s)" + (f"\n{outcome.message}" if outcome.message and
                                            outcome.status != Status.PASS else ""), flush=True)

    started = time.monotonic()
    interrupted = False
    try:
        outcomes = session.run_all(scenarios, arches, parallel=not args.serial, report=show,
                                   cells=cells)
    except RunInterrupted as e:   # Ctrl-C: what ran so far, then exit 130
        outcomes, interrupted = e.outcomes, True
    finally:
        session.close()
    print(f"# wall time {time.monotonic() - started:.1f}s for {len(arches)} arch(es)"
          + ("" if args.serial or len(arches) == 1 else ", in parallel"), file=sys.stderr)
    if interrupted:
        print(f"# interrupted (Ctrl-C): a partial summary of the {len(outcomes)} scenario "
              "run(s) that began")
    table = summary(outcomes, args.repeat)
    print(table)
    print(f"artifacts of this run: {session.run_dir}")
    page = report.write(session.run_dir, outcomes, table, interrupted)
    print(f"report: {page}")
    # Where the time went: on stderr beside the wall time, and phases.json in the run's dir.
    print(phases.finish(session.run_dir, STARTED, buildfigures.cores()),
          file=sys.stderr)
    if interrupted:
        return 130
    return 1 if any(o.status == Status.FAIL for o in outcomes) else 0


def cmd_kselftest(args) -> int:
    """Upstream's livepatch selftest scripts on each arch's guest: KTAP on stdout, wall
    times on stderr, KTAP and every script's output under <artifacts>/kselftest/<arch>/."""
    imagemod.patched_source(args.image, args.kernel_patch, args.mirror)   # applies? first
    session = Session(_options(args))
    all_ok = True
    try:
        session.prepare(_arches(args))   # every arch's image built at the same time
        for a in _arches(args):
            start = time.monotonic()
            guest = session.guest(a)
            ready = time.monotonic() - start
            report = kselftest.run(guest, session.state(a).image,
                                   known=known_upstream_failures(a, [PARITY]))
            saved = kselftest.save(report, session.run_dir / "kselftest" / a)
            print(report.ktap(), end="", flush=True)
            print(f"kselftest {a}: {time.monotonic() - start:.1f}s wall (guest ready "
                  f"{ready:.1f}s, install {report.setup_seconds:.1f}s, scripts "
                  f"{report.seconds - report.setup_seconds:.1f}s); output in {saved}",
                  file=sys.stderr, flush=True)
            all_ok = all_ok and report.ok
    finally:
        session.close()
    return 0 if all_ok else 1


def bisect_plan(args) -> bisect.Plan:
    """bisect-run's step: the table's options, as every front end makes them, and its own."""
    opts = _options(args)
    if opts.kernel_tree is None and not opts.module_dirs and not args.image_kernel:
        opts.kernel_tree = Path.cwd()   # git bisect run runs us at the top of the checkout
    return bisect.Plan(scenarios=[Path(p) for p in args.scenarios],
                       arch=args.arch or imagemod.arches_for(args.image)[0], options=opts,
                       workdir=args.workdir)


def cmd_bisect_run(args) -> int:
    """One step of `git bisect run`: exit 0 good, 1 bad, 125 skip, 128 abort (--repeat 0
    is a usage error, which main turns into an abort)."""
    return bisect.run(bisect_plan(args))


def cmd_livepatch_build(args) -> int:
    patches = tuple(Path(p) for p in args.patches)
    klpbuild.check_patches(patches)
    name = args.name or klpbuild.default_name(patches)
    if not klpbuild.NAME.fullmatch(name):
        raise HarnessError(f"--name {name!r}: a module name is lower-case letters, digits and "
                           "_, at most 55")
    image = imagemod.build(args.image, args.arch, args.mirror, args.kernel_tree)
    try:   # klpbuild.Unsupported (one line, exit 2) comes first, before anything is built
        ko = klpbuild.build(image, klpbuild.LivepatchSource(name, patches, not args.no_replace))
    except klpbuild.Refused as e:
        print(f"klp-harness: {e}", file=sys.stderr)
        return 1
    target = Path(args.output) / f"{name}.ko"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ko, target)
    print(f"{target} (livepatch {name} for {image.name} {image.arch}, kernel "
          f"{image.kernel_release})")
    return 0


def cmd_bench_boot(args) -> int:
    return bench.boot(_arches(args), _options(args), args.runs)


def cmd_bench_build(args) -> int:
    return bench.build(_arches(args), _options(args), args.touch)


def cmd_bench_parity(args) -> int:
    return bench.parity(_arches(args), _options(args))


def cmd_bench_klp_build(args) -> int:
    return bench.klp_build([args.arch], _options(args))


def cmd_bench_shadow(args) -> int:
    return bench.shadow(_arches(args), _options(args), args.count, args.reads)


def cmd_bench_transition(args) -> int:
    return bench.transition(_arches(args), _options(args), args.repeat)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="klp-harness", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_setup, _add_images, _add_validate, _add_run, _add_kselftest,
                _add_bisect_run, _add_livepatch, _add_bench, _add_bundle, _add_merge):
        add(sub)
    return p


def _add_setup(sub) -> None:
    s = sub.add_parser("setup", help="install missing host packages (apt-get; needs root)")
    _common(s)
    s.add_argument("--tests", action="store_true",
                   help="also what the harness's own tests need (./klp test): chromium, dpkg-deb")
    s.add_argument("--run-only", action="store_true",
                   help="only what runs imported bundles needs (QEMU): a test machine that "
                        "builds nothing")
    s.set_defaults(func=cmd_setup)


def _add_images(sub) -> None:
    images = sub.add_parser("images", help="image recipes and the cache").add_subparsers(
        dest="images_command", required=True)
    s = images.add_parser("build", help="build (or find cached) images")
    _common(s)
    options.add_to_parser(s, options.pick("kernel_patch"))
    s.set_defaults(func=cmd_images_build)
    s = images.add_parser("figures", help="measure an image's kernel builds (building them "
                                          "if need be) into images/build-figures.json, "
                                          "which a first build's progress estimate reads")
    _common(s)
    s.set_defaults(func=cmd_images_figures)


def _add_validate(sub) -> None:
    s = sub.add_parser("validate", help="check scenario files; exit 2 if any is invalid")
    s.add_argument("files", nargs="*", help="scenario files or directories (default: scenarios/)")
    options.add_to_parser(s, options.pick("image"))   # whose module names are known
    s.set_defaults(func=cmd_validate)


def _add_run(sub) -> None:
    s = sub.add_parser("run", help="run scenarios on booted guests and print a summary")
    _common(s)
    _machine_opts(s)
    # Every option the pytest plugin has: the two run the same scenarios.
    options.add_to_parser(s, options.pick("artifacts", "ko_dir", "modules", "pool",
                                          "kernel_patch", "repeat", "until_fail"))
    options.add_to_parser(s, options.SHARDS)
    s.add_argument("--serial", action="store_true",
                   help="one architecture after the other (default: one thread per arch)")
    s.add_argument("scenarios", nargs="*", help="scenario files or directories "
                                                "(default: every scenario under scenarios/)")
    s.set_defaults(func=cmd_run)


def _add_kselftest(sub) -> None:
    s = sub.add_parser("kselftest", help="run the image's upstream livepatch selftest "
                                         "scripts unmodified in the guest; print KTAP")
    _common(s)
    _machine_opts(s)
    options.add_to_parser(s, options.pick("artifacts", "kernel_patch"))
    s.set_defaults(func=cmd_kselftest)


def _add_bisect_run(sub) -> None:
    s = sub.add_parser("bisect-run", help="one step of `git bisect run`: build, boot, run "
                                          "scenarios; exit 0 good, 1 bad, 125 skip, 128 abort",
                       description=bisect.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_to_parser(s, options.pick("arch", "image", "mirror", "kernel_tree", "modules"),
                          arch={"action": "store",
                                "help": "guest architecture (default: the image's first)"},
                          kernel_tree={"help": "kernel tree to build (default: the current "
                                               "directory, unless --modules is given: then "
                                               "the image's own kernel)"},
                          modules={"help": "livepatch module sources (.c) of the checkout; "
                                           "repeatable"})
    s.add_argument("--image-kernel", action="store_true",
                   help="test against the image's own kernel, no kernel build: for a checkout "
                        "of scenarios and the patches their livepatches are built from "
                        "(implied by --modules)")
    options.add_to_parser(s, options.pick("build_dir"), build_dir={
        "help": "kernel build dir kept between steps (default: one in the cache per tree "
                "and arch)"})
    options.add_to_parser(s, options.pick("repeat"), repeat={
        "help": "run the scenarios N times (default 1), stopping at the first failed run: "
                "any failed run makes the step bad; the output gives each one's failed "
                "runs as k/N"})
    s.add_argument("--workdir", type=Path, metavar="DIR",
                   help="where bisect.log and the artifacts of failed runs go (default: "
                        "in the cache, per checkout and arch)")
    _machine_opts(s)
    s.add_argument("scenarios", nargs="+", help="scenario files or directories")
    s.set_defaults(func=cmd_bisect_run)


def _add_livepatch(sub) -> None:
    livepatch = sub.add_parser("livepatch", help="livepatch modules").add_subparsers(
        dest="livepatch_command", required=True)
    s = livepatch.add_parser(
        "build", help="build a livepatch module from source patches with the image kernel "
                      "source's own klp-build (x86_64, Linux 6.19 and later)")
    s.add_argument("patches", nargs="+", metavar="PATCH", help="patch files (unified diffs "
                   "against the image's kernel source), applied in order")
    s.add_argument("--name", help="the module's name (default: livepatch_<first patch's name>)")
    s.add_argument("--no-replace", action="store_true",
                   help="no atomic replace: the livepatch adds to those loaded before it")
    s.add_argument("-o", "--output", default=".", metavar="DIR",
                   help="where the .ko goes (default: the current directory)")
    options.add_to_parser(s, options.IMAGE, arch=KLP_BUILD_ARCH)
    s.set_defaults(func=cmd_livepatch_build)


def _add_bench(sub) -> None:
    benches = sub.add_parser("bench", help="benchmarks that print figures").add_subparsers(
        dest="bench_command", required=True)
    s = benches.add_parser("boot", help="median time from QEMU start to SSH answering")
    _common(s)
    _machine_opts(s)
    s.add_argument("--runs", type=int, default=5)
    s.set_defaults(func=cmd_bench_boot)
    s = benches.add_parser("build", help="cold kernel build time, and the rebuild after "
                                         "touching one file (scratch build dir)")
    _common(s)
    s.add_argument("--touch", default="kernel/livepatch/core.c",
                   help="source file touched before the rebuild (default: %(default)s)")
    s.set_defaults(func=cmd_bench_build)
    s = benches.add_parser("parity", help="upstream selftest scripts vs. our parity "
                                          "scenarios: wall times per arch, and all arches "
                                          "at once")
    _common(s)
    _machine_opts(s)
    options.add_to_parser(s, options.pick("artifacts", "pool"),
                          artifacts={"default": "artifacts/bench-parity"})
    s.set_defaults(func=cmd_bench_parity)
    s = benches.add_parser("klp-build", help="livepatches from patches: the first patch for "
                                             "an image (original build) and each further one")
    options.add_to_parser(s, options.IMAGE, arch=KLP_BUILD_ARCH)
    s.set_defaults(func=cmd_bench_klp_build)
    _add_bench_guest_figures(benches)


def _add_bench_guest_figures(benches) -> None:
    """The benchmarks of livepatching in a running guest."""
    s = benches.add_parser("transition", help="livepatch transition latency per arch, idle "
                                              "and under load, and a chain of 15 cumulative "
                                              "patches")
    _common(s)
    _machine_opts(s)
    # The table's --repeat (its check of N), meaning here the transitions timed.
    options.add_to_parser(s, options.pick("repeat"), repeat={
        "default": 5, "help": "transitions timed (default 5)"})
    s.set_defaults(func=cmd_bench_transition)
    s = benches.add_parser("shadow", help="cost of one shadow variable counter read, empty "
                                          "and with thousands of live variables")
    _common(s)
    _machine_opts(s)
    s.add_argument("--count", type=int, default=5000, help="live variables (default 5000)")
    s.add_argument("--reads", type=int, default=20, help="reads per figure (default 20)")
    options.add_to_parser(s, options.pick("artifacts"),
                          artifacts={"default": "artifacts/bench-shadow"})
    s.set_defaults(func=cmd_bench_shadow)


def cmd_bundle_export(args) -> int:
    """Write the bundle of an image's arches and the scenarios' modules (see bundle.py)."""
    files = discover([Path(p) for p in args.scenarios] or [SCENARIOS])
    scenarios = [Scenario.load(path) for path in files]
    started = time.monotonic()
    out = Path(args.output)
    m = bundle.export(args.image, _arches(args), scenarios, out, args.mirror)
    print(f"bundle {out}: image {m['image']} for {', '.join(m['arches'])}, "
          f"{len(m['entries'])} cache entries, {len(m['files'])} files, "
          f"{out.stat().st_size / 1e6:.1f} MB, in {time.monotonic() - started:.1f}s")
    return 0


def cmd_bundle_import(args) -> int:
    """Import a bundle into the cache ($KLP_HARNESS_CACHE), every file checked first."""
    started = time.monotonic()
    m = bundle.load(Path(args.file), args.image, args.arch or ())
    print(f"imported {args.file}: image {m['image']} for {', '.join(m['arches'])} "
          f"({len(m['files'])} files checked) in {time.monotonic() - started:.1f}s")
    return 0


def _add_bundle(sub) -> None:
    bundles = sub.add_parser("bundle", help="build once, test anywhere: what a test machine "
                                            "needs, as one file").add_subparsers(
        dest="bundle_command", required=True)
    s = bundles.add_parser("export", help="write the bundle of an image's arches and what "
                                          "the scenarios load (built first if missing)")
    options.add_to_parser(s, options.pick("arch", "image", "mirror"))
    s.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="the bundle: FILE.tar, or compressed: FILE.tar.gz, FILE.tar.xz")
    s.add_argument("scenarios", nargs="*", help="scenario files or dirs whose livepatches "
                                                "to include (default: all)")
    s.set_defaults(func=cmd_bundle_export)
    s = bundles.add_parser("import", help="import a bundle into the cache, checking every "
                                          "file; refused if made for another harness")
    s.add_argument("file", help="a bundle written by `bundle export`")
    options.add_to_parser(s, options.pick("arch", "image"), image={
        "default": None, "help": "refuse the bundle unless it holds this image"}, arch={
        "help": "refuse the bundle unless it holds this arch (repeatable)"})
    s.set_defaults(func=cmd_bundle_import)


def cmd_merge(args) -> int:
    """Join the run dirs of a sharded run's shards into one report (merge.py); exit 1 if a
    cell failed, as `run`, 2 if the run dirs do not make one run."""
    outcomes, table, page = merge.merge([Path(d) for d in args.run_dirs], Path(args.output),
                                        args.artifacts_url)
    print(table)
    print(f"merged {len(args.run_dirs)} run dir(s): {page}")
    return 1 if any(o.status == Status.FAIL for o in outcomes) else 0


def _add_merge(sub) -> None:
    s = sub.add_parser("merge", help="one report from the run dirs of a sharded run's "
                                     "shards; exit 1 if any cell failed, 2 if a shard is "
                                     "missing or of another run")
    s.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="a shard's run dir (artifacts/<run-id>), one per shard")
    s.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                   help="where the merged report goes (a new or empty dir)")
    s.add_argument("--artifacts-url", metavar="URL",
                   help="where OUT_DIR will be published, for kcidb.json's artifact URLs "
                        "(default: file: URLs of OUT_DIR)")
    s.set_defaults(func=cmd_merge)


def show_progress() -> None:
    """The harness's log records (progress, guests booted, ...) on stderr, once."""
    if not any(getattr(h, "klp_cli", False) for h in LOG.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(LOG_FORMAT)
        handler.klp_cli = True
        LOG.addHandler(handler)
        LOG.setLevel(logging.INFO)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    show_progress()
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:
        # A usage error under `git bisect run` must stop the bisection (exit 2 means "bad").
        if e.code and argv and argv[0] == "bisect-run":
            return bisect.ABORT
        raise
    try:
        return args.func(args)
    except HarnessError as e:
        print(f"klp-harness: error: {e}", file=sys.stderr)
        return bisect.ABORT if args.command == "bisect-run" else 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
