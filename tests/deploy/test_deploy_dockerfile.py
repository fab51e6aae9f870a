"""deploy/Dockerfile, checked statically: no Docker engine runs where the tests run, so the
image itself is never built here. These tests pin the contract the manifests rely on."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass

import pytest
from deploy_support import DEPLOY, REPO, container, only

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|cc|make|cpp|python3?-dev|libc6-dev)\b")


@dataclass(frozen=True)
class Instruction:
    op: str
    args: str


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    body: tuple[Instruction, ...]

    def ops(self, op: str) -> list[str]:
        return [i.args for i in self.body if i.op == op]


def instructions(text: str) -> list[Instruction]:
    """Dockerfile lines -> instructions: comments dropped, backslash continuations joined."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        op, _, args = (pending + line).partition(" ")
        out.append(Instruction(op.upper(), args.strip()))
        pending = ""
    assert not pending, "dangling line continuation"
    return out


def stages() -> list[Stage]:
    args: dict[str, str] = {}
    found: list[Stage] = []
    current: list[Instruction] | None = None
    for ins in instructions(DOCKERFILE.read_text()):
        if ins.op == "ARG" and current is None:
            name, _, default = ins.args.partition("=")
            args[name] = default
        elif ins.op == "FROM":
            words = ins.args.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            current = []
            found.append(Stage(base, name, ()))
        else:
            assert current is not None, f"{ins.op} before FROM"
            current.append(ins)
            found[-1] = Stage(found[-1].base, found[-1].name, tuple(current))
    return found


@pytest.fixture(scope="module")
def final() -> Stage:
    return stages()[-1]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def test_multi_stage_on_slim_python_311() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    for stage in all_stages:
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", stage.base), stage.base
    assert all_stages[0].name == "builder"
    assert any("pip wheel" in r for r in all_stages[0].ops("RUN")), "wheels built in the builder"


def test_final_stage_installs_no_compiler(final: Stage) -> None:
    for run in final.ops("RUN"):
        for cmd in re.split(r"&&|;", run):
            words = shlex.split(cmd)
            if words[:2] == ["apt-get", "install"]:
                pkgs = [w for w in words[2:] if not w.startswith("-")]
                assert not [p for p in pkgs if COMPILERS.fullmatch(p)], pkgs
                # The only package it needs (to set the file capability) is removed again.
                assert pkgs == ["libcap2-bin"]
                assert "apt-get purge -y --auto-remove libcap2-bin" in run
    for copy in final.ops("COPY"):
        assert copy.startswith("--from=builder /opt/kdns "), copy


def test_builder_is_where_compilers_are(final: Stage) -> None:
    builder = stages()[0]
    assert any("build-essential" in r for r in builder.ops("RUN"))
    assert not any("build-essential" in r for r in final.ops("RUN"))


def test_runs_as_numeric_nonroot_user(final: Stage) -> None:
    assert final.ops("USER") == ["65532:65532"]
    # USER is the last identity switch: nothing after it runs as root.
    ops = [i.op for i in final.body]
    assert "RUN" not in ops[ops.index("USER") :]


def test_entrypoint_and_default_args_match_the_manifests(final: Stage) -> None:
    from deploy_support import render

    assert [exec_form(a) for a in final.ops("ENTRYPOINT")] == [["/opt/kdns/bin/kdns"]]
    (cmd,) = final.ops("CMD")
    dep = only(render(DEPLOY / "base"), "Deployment")
    assert exec_form(cmd) == container(dep)["args"] == ["-conf", "/etc/coredns/Corefile"]
    assert any(r == "ln -s /opt/kdns/bin/kdns /coredns" for r in final.ops("RUN")), "/coredns"


def test_exposes_coredns_ports(final: Stage) -> None:
    exposed = {p for e in final.ops("EXPOSE") for p in e.split()}
    assert exposed == {"53/udp", "53/tcp", "9153", "8080", "8181"}


def test_environment_for_a_read_only_root(final: Stage) -> None:
    env = dict(kv.split("=", 1) for e in final.ops("ENV") for kv in shlex.split(e))
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith("/opt/kdns/bin:")
    runs = " ".join(final.ops("RUN")) + " ".join(stages()[0].ops("RUN"))
    # Bytecode for the venv and the stdlib is made at build time, valid regardless of mtimes.
    assert runs.count("compileall") == 2
    assert runs.count("--invalidation-mode unchecked-hash") == 2
    assert "PROMETHEUS_MULTIPROC_DIR" not in DOCKERFILE.read_text()


def test_interpreter_gets_net_bind_service_file_capability(final: Stage) -> None:
    run = " ".join(final.ops("RUN"))
    assert 'setcap cap_net_bind_service=+ep "$(readlink -f /usr/local/bin/python3.11)"' in run
    assert "getcap" in run, "the build fails if the capability did not stick"


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins, '!' re-includes."""
    result = False
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        if (
            fnmatch.fnmatch(path, pat)
            or fnmatch.fnmatch(path, pat + "/*")
            or (pat.startswith("**/") and fnmatch.fnmatch("x/" + path, pat))
        ):
            result = not neg
    return result


def test_dockerignore_keeps_exactly_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [
        src
        for stage in stages()
        for c in stage.ops("COPY")
        if not c.startswith("--from")
        for src in c.split()[:-1]
    ]
    assert copied
    for src in copied:
        assert (REPO / src).exists(), src
        assert not ignored(src.rstrip("/"), patterns), f"{src} is excluded from the context"
    for kept_out in (".git", "tests", "loadtest", "deploy", "kdns/__pycache__/x.pyc"):
        assert ignored(kept_out, patterns), kept_out


def test_default_build_installs_no_optional_extras() -> None:
    # kubernetes-asyncio (the kubeconfig extra) would cost ~40 MiB of the 70Mi request.
    builder = stages()[0]
    assert builder.ops("ARG") == ['KDNS_EXTRAS=""']
    run = " ".join(builder.ops("RUN"))
    assert 'pip wheel --wheel-dir /wheels ".${KDNS_EXTRAS}"' in run
    assert '--no-index --find-links /wheels "kdns${KDNS_EXTRAS}"' in run
