""".gitlab-ci.yml and the README's pipelines for other engines, read as data: what each
job must do for the shards to add up to the whole selection. The pipeline itself runs in
tests/integration/test_gitlab_pipeline.py; this catches a drift in seconds (an arch added
to the default image without a build job, a shard count that disagrees with the command).
"""
import copy
import re
from pathlib import Path
from typing import List

import yaml

from harness import image as imagemod

PROJECT = Path(__file__).resolve().parents[2]
PIPELINE = yaml.safe_load((PROJECT / ".gitlab-ci.yml").read_text())
# An image named with a registry host (`registry.example:5000/x`, `mirror.example/x`) ties the
# file to one; the project names none.
HOSTED = re.compile(r"^[^/\s]+[.:][^/\s]*/")


def gitlab_problems(doc: dict, arches: List[str]) -> List[str]:
    """What the GitLab pipeline ``doc`` gets wrong for an image of ``arches``."""
    problems = []
    if doc["stages"] != ["build", "test", "report"]:
        problems.append(f"stages {doc['stages']}")
    if doc["variables"]["KLP_ARCHES"].split() != arches:
        problems.append(f"KLP_ARCHES defaults to {doc['variables']['KLP_ARCHES']}")
    for a in arches:
        job = doc.get(f"build:{a}", {})
        if job.get("variables", {}).get("ARCH") != a or a not in str(job.get("rules")):
            problems.append(f"no build job for {a} (with its rule)")
    test = doc["test"]
    if not isinstance(test.get("parallel"), int) or test["parallel"] < 2:
        problems.append(f"test: parallel is {test.get('parallel')}")
    script = " ".join(test["script"])
    if "KLP_HARNESS_CACHE=" not in script or "bundle import" not in script:
        problems.append("test: no import into a fresh cache")
    if test["variables"].get("KLP_HARNESS_SETUP") != "run-only":
        problems.append("test: sets up more than a test machine needs")
    if test["artifacts"].get("when") != "always":
        problems.append("test: a failed shard's run dir is not published")
    report = doc["report"]
    if report.get("needs") != ["test"] or report.get("when") != "always":
        problems.append("report: does not run after every shard, failed ones too")
    if "merge" not in " ".join(report["script"]) or \
            report["artifacts"]["reports"]["junit"] != "merged/junit.xml":
        problems.append("report: no merged JUnit report")
    images = [job.get("image") for job in doc.values() if isinstance(job, dict)]
    problems += [f"image {i} names a registry" for i in images if i and HOSTED.search(i)]
    return problems


def test_the_gitlab_pipeline_covers_the_default_image():
    recipe = imagemod.Recipe.load(imagemod.recipe_path(imagemod.DEFAULT_IMAGE))
    assert gitlab_problems(PIPELINE, recipe.arches) == []


def test_a_pipeline_that_drifted_is_caught():
    """The negative controls: each a copy of the pipeline with one thing wrong."""
    arches = PIPELINE["variables"]["KLP_ARCHES"].split()
    broken = copy.deepcopy(PIPELINE)
    del broken["build:s390x"]
    broken["test"]["parallel"] = 1
    broken["report"]["when"] = "on_success"
    broken["default"]["image"] = "registry.example:5000/debian:12"
    assert gitlab_problems(broken, arches) == [
        "no build job for s390x (with its rule)", "test: parallel is 1",
        "report: does not run after every shard, failed ones too",
        "image registry.example:5000/debian:12 names a registry"]
    assert gitlab_problems(PIPELINE, arches + ["riscv64"]) == [
        "KLP_ARCHES defaults to x86_64 ppc64le s390x arm64", "no build job for riscv64 "
        "(with its rule)"]


def readme_blocks() -> List[dict]:
    """The YAML blocks of the README's "Scaling out" section, parsed."""
    text = (PROJECT / "README.md").read_text()
    section = text[text.index("## Scaling out"):]
    section = section[:section.index("\n## ", 1)]
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, re.S)]


def test_the_readme_pipelines_agree_with_their_commands():
    """GitHub Actions: the matrix has one entry per shard of --shard K/N; Kubernetes:
    completions is the N of --shard-total N."""
    blocks = readme_blocks()
    github = next(b for b in blocks if "jobs" in b)
    shards = github["jobs"]["test"]["strategy"]["matrix"]["shard"]
    run = github["jobs"]["test"]["steps"][2]["run"]
    total = int(re.search(r"--shard \$\{\{ matrix.shard \}\}/(\d+)", run).group(1))
    assert shards == list(range(1, total + 1))
    job = next(b for b in blocks if b.get("kind") == "Job")
    assert job["spec"]["completionMode"] == "Indexed"
    args = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert f"--shard-total {job['spec']['completions']} " in args
