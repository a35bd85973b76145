"""Whether a scenario runs on an arch and image: one gate, asked before anything builds or
boots (the arch alone), and again once the arch's image and modules are made.

What only the running guest can tell (its shadow counter, a scenario's `requires.guest`
check, a sysfs attribute a step looks at) stays with the runner.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from . import klpbuild
from .kernelsource import version_tuple
from .skips import Skip

if TYPE_CHECKING:
    from .image import Image
    from .modules import ModuleCatalog
    from .scenario import Scenario

UPSTREAM_PREFIX = "test_klp_"   # upstream's selftest modules; ours are klp_*


def skip(scenario: "Scenario", arch: str, image: Optional["Image"] = None,
         catalog: Optional["ModuleCatalog"] = None) -> Optional[Skip]:
    """Why ``scenario`` does not run on ``arch`` (with ``image`` and its ``catalog``, when
    they are made), or None if it does."""
    req = scenario.requires
    if arch not in req.arches:
        return Skip(f"scenario requires {', '.join(req.arches)}",
                    f"are for {', '.join(req.arches)} only (requires.arches)")
    if image is None:
        return None
    newer = newer_selftest_modules(scenario, catalog) if catalog is not None else None
    return _kernel(scenario, image) or newer or _klp_build(scenario, image)


def _kernel(scenario: "Scenario", image: "Image") -> Optional[Skip]:
    req = scenario.requires
    if req.kernel and version_tuple(image.kernel_release) < version_tuple(req.kernel):
        return Skip(f"needs kernel {req.kernel} or newer; the image has "
                    f"{image.kernel_release}", f"need Linux {req.kernel} or newer")
    config = image.config_symbols()
    missing = tuple(s for s in req.config if config.get(s) not in ("y", "m"))
    if missing:
        return Skip(f"the image's kernel config lacks {', '.join(missing)}",
                    f"need kernel config {', '.join(missing)}", missing, image.name)
    return None


def newer_selftest_modules(scenario: "Scenario", catalog: "ModuleCatalog") -> Optional[Skip]:
    """Why a scenario cannot run on this image because it loads upstream selftest modules
    (test_klp_*) that this kernel's own selftests do not have yet (e.g. test_klp_syscall on
    6.1): a newer kernel's test, skipped. Other unknown names stay errors (check_modules)."""
    missing = [m for m in scenario.modules if m not in catalog.names()]
    if not missing or not all(m.startswith(UPSTREAM_PREFIX) for m in missing):
        return None
    return Skip(f"the selftests of this kernel ({catalog.image.kernel_release}, image "
                f"{catalog.image.name}) have no {', '.join(missing)}: the scenario is for a "
                "newer kernel's selftests",
                f"need selftest modules of a newer kernel ({', '.join(missing)})")


def _klp_build(scenario: "Scenario", image: "Image") -> Optional[Skip]:
    # Asked before the module check (Scenario.check_modules): what a scenario loads beside
    # its livepatches may be a module only the images klp-build serves have.
    if not scenario.livepatches:
        return None
    why = klpbuild.unsupported_skip(image)
    if why is None:
        return None
    return Skip(f"its livepatches are built from patches by klp-build: {why.reason}",
                why.group, why.config, why.image)
