"""A run's results as KernelCI's KCIDB JSON (schema v5.3, validated with kcidb-io before it
is written): what kernel CI dashboards read.

- a **checkout** per kernel source: the Debian source package and its version (or a
  distribution kernel's package), or a tree's git commit; ``--kernel-patch`` files in its
  misc;
- a **build** per arch: the image's kernel, with its config (name, and sha256 in misc) and
  compiler (the config's CONFIG_CC_VERSION_TEXT, buildinfo.py); its id is the image's
  cache key, the same in every run of that build;
- a **test** per scenario run, named ``livepatch.<topic>.<scenario>`` (the scenario's dirs
  under scenarios/ and its name, dot-separated), with its status, duration and the files
  of its artifacts (``output_files``).

Statuses, honestly: pass is PASS; a negative control caught (the wrong livepatch was
caught, as it must be) is PASS, said in misc; a declared known kernel failure is FAIL with
a comment saying it is known (the kernel is faulty there; it is not news); a failure that
came from a build (klp-build refused) or the guest (no boot, QEMU died, no answer) is ERROR:
the test could not judge the kernel; a run that Ctrl-C stopped is MISS; a skip is SKIP.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import quote

import jsonschema
from kcidb_io.schema import V5_3 as SCHEMA

from . import repeat
from .errors import HarnessError
from .outcome import Expected, Outcome, Status

ORIGIN = "klp_harness"
FILE = "kcidb.json"
Url = Callable[[Path], str]   # an artifact's path -> its URL


class KcidbError(HarnessError):
    """What the harness made is not valid KCIDB: a bug of ours, named by its place."""


def status(o: Outcome) -> Tuple[str, str]:
    """(KCIDB status, what it stands for when that is not plain) of an outcome."""
    if o.interrupted:
        return "MISS", "interrupted (Ctrl-C) before it ended"
    if o.status == Status.SKIP:
        return "SKIP", ""
    if o.status == Status.PASS:
        return "PASS", ""
    if o.status == Status.XFAIL and o.expected == Expected.CAUGHT:
        return "PASS", "negative control caught: the harness caught the wrong livepatch"
    if o.status == Status.XFAIL:
        return "FAIL", "known failure: the scenario declares this kernel failure known"
    if o.cause.infrastructure:
        return "ERROR", f"not judged: {o.cause} failure"
    return "FAIL", ""


def test_path(scenario_id: str) -> str:
    """``livepatch.<topic>.<scenario>``: each part as KCIDB's paths allow."""
    parts = [re.sub(r"[^A-Za-z0-9_-]", "_", p) for p in scenario_id.split("/") if p]
    return ".".join(["livepatch", *parts])


def _checkout(record: dict) -> Tuple[str, dict]:
    """(id, checkout) of the kernel source an image record names."""
    src = record.get("source") or {}
    patches = record.get("kernel_patches") or []
    if src.get("git_commit"):
        key = f"git-{src['git_commit']}" + ("-dirty" if src.get("dirty") == "yes" else "")
        body = {"tree_name": Path(src.get("tree", "tree")).name,
                "comment": f"the kernel tree {src.get('tree')} at {src['git_commit']}"}
        if re.fullmatch(r"[0-9a-f]{40}", src["git_commit"]):
            body["git_commit_hash"] = src["git_commit"]
    elif src.get("package"):
        key = f"{src['package']}={src.get('version', '')}"
        body = {"tree_name": src["package"], "comment": f"Debian's {src['package']} "
                f"{src.get('version', '')} ({src.get('suite', '')})"}
    else:
        key, body = f"{record.get('image', 'image')}-unknown", {
            "comment": "the kernel source is not known here"}
    if patches:
        key += "+" + "+".join(patches)
        body["comment"] += " + " + ", ".join(patches)
    body["misc"] = {"source": src, "kernel_patches": patches}
    cid = f"{ORIGIN}:{key}"
    return cid, {"id": cid, "origin": ORIGIN, "valid": True, **body}


def _build(arch: str, record: dict, checkout_id: str) -> dict:
    key = Path(record.get("image_dir", f"{record.get('image', 'image')}-{arch}")).name
    build = {"id": f"{ORIGIN}:{key}", "origin": ORIGIN, "checkout_id": checkout_id,
             "architecture": arch, "status": "PASS",
             "comment": f"image {record.get('image')} for {arch}: Linux "
                        f"{record.get('kernel', record.get('kernel_release', '?'))}",
             "misc": {k: record[k] for k in ("image", "kernel_release", "config_sha256",
                                             "qemu") if record.get(k)}}
    for field in ("compiler", "config_name"):
        if record.get(field):
            build[field] = record[field]
    return build


def _test(o: Outcome, run_key: str, build_id: str, url: Url) -> dict:
    kcidb_status, why = status(o)
    test = {"id": f"{ORIGIN}:{run_key}:{repeat.item_id(o.scenario, o.arch, o.run)}",
            "origin": ORIGIN, "build_id": build_id, "path": test_path(o.scenario),
            "status": kcidb_status, "duration": round(o.seconds, 3),
            "misc": {"scenario": o.scenario, "arch": o.arch, "klp_status": str(o.status)}}
    first = o.headline
    if why or (first and o.status != Status.PASS):
        test["comment"] = "; ".join(t for t in (why, first) if t)[:1000].replace("\0", "")
    for name, value in (("kernel", o.kernel), ("run", o.run), ("cause", str(o.cause)),
                        ("expected", str(o.expected))):
        if value:
            test["misc"][name] = value
    if o.artifacts and Path(o.artifacts).is_dir():
        test["output_files"] = [{"name": f.name, "url": url(f)}
                                for f in sorted(Path(o.artifacts).iterdir()) if f.is_file()]
    return test


def document(outcomes: List[Outcome], images: Dict[str, dict], run_key: str,
             url: Url) -> dict:
    """The KCIDB document of ``outcomes``; ``images``: each arch's record (versions.json's
    images), ``run_key`` names this run (or merge) in the tests' ids."""
    checkouts, builds = {}, {}
    for arch in dict.fromkeys([*images, *(o.arch for o in outcomes)]):
        record = images.get(arch, {"image": next(iter(images.values()), {}).get("image", "")
                                   if images else ""})
        cid, checkout = _checkout(record)
        checkouts.setdefault(cid, checkout)
        builds[arch] = _build(arch, record, cid)
        if arch not in images:   # every cell of it skipped before its image was needed
            builds[arch]["comment"] = f"{arch}: no image was made in this run"
            builds[arch].pop("status")
    data = {"version": {"major": SCHEMA.major, "minor": SCHEMA.minor},
            "checkouts": list(checkouts.values()),
            "builds": list(builds.values()),
            "tests": [_test(o, run_key, builds[o.arch]["id"], url) for o in outcomes]}
    validate(data)
    return data


def validate(data: dict) -> None:
    """kcidb-io's check against schema v5.3; a KcidbError naming the place otherwise."""
    try:
        SCHEMA.validate_exactly(data)
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path)
        raise KcidbError(f"KCIDB document invalid at {where or 'its top'}: {e.message}") \
            from None


def write(run_dir: Path, outcomes: List[Outcome], images: Dict[str, dict], run_key: str,
          base_url: Optional[str] = None) -> Path:
    """``kcidb.json`` in ``run_dir``. Artifacts' URLs are ``base_url`` + their path in the
    run dir when given (where a CI engine publishes it), else file: URLs."""
    top = Path(run_dir).resolve()

    def url(path: Path) -> str:
        path = Path(path).resolve()
        if base_url and path.is_relative_to(top):
            return base_url.rstrip("/") + "/" + quote(str(path.relative_to(top)))
        return path.as_uri()
    path = Path(run_dir) / FILE
    path.write_text(json.dumps(document(outcomes, images, run_key, url), indent=1) + "\n")
    return path
