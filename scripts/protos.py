"""The contract's tooling: regenerate generated/ from protos/, and check the contract.

python scripts/protos.py generate   # the one command that rewrites generated/
python scripts/protos.py check      # generated/ is fresh, buf lint, buf breaking
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import grpc_tools
import openapi
from google.api import annotations_pb2

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GENERATED = ROOT / "generated"
# Inside the package, so the server finds it as package data.
DESCRIPTOR_SET = Path("conversations") / "v4" / "conversation_service.binpb"
OPENAPI = Path("conversations") / "v4" / "openapi.json"
GENERATED_BY = "Generated from protos/ by scripts/protos.py."
BIN = Path(sys.executable).parent

# google/protobuf/*.proto ships with grpcio-tools, google/api/*.proto with
# googleapis-common-protos: nothing is downloaded.
WELL_KNOWN_PROTOS = Path(grpc_tools.__file__).parent / "_proto"
GOOGLEAPIS_PROTOS = Path(annotations_pb2.__file__).parent.parent.parent
# buf's second module (see buf.yaml): the google/api protos the contract imports.
BUF_DEPS = ROOT / "build" / "buf-deps"


def protoc(protos: Path, *args: str) -> None:
    files = sorted(str(p.relative_to(protos)) for p in protos.rglob("*.proto"))
    command = [sys.executable, "-m", "grpc_tools.protoc", f"-I{protos}"]
    command += [f"-I{GOOGLEAPIS_PROTOS}", f"-I{WELL_KNOWN_PROTOS}", *args, *files]
    subprocess.run(command, check=True, cwd=protos)


# Envoy's transcoder needs these to turn error details into JSON: without them
# an INVALID_ARGUMENT answer is a 400 with an empty body.
ERROR_PROTOS = ("google/rpc/status.proto", "google/rpc/error_details.proto")


def descriptor_set(protos: Path, out: Path) -> Path:
    # Envoy's transcoder and `buf breaking` load it, both need the imports;
    # server reflection serves it, with the comments, to grpcurl `describe`.
    protoc(
        protos,
        f"--descriptor_set_out={out}",
        "--include_imports",
        "--include_source_info",
        *ERROR_PROTOS,
    )
    return out


def generate(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    protoc(PROTOS, f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}")
    descriptor_set(PROTOS, out / DESCRIPTOR_SET)
    (out / OPENAPI).write_text(openapi.render((out / DESCRIPTOR_SET).read_bytes()))
    # Regular packages, so importlib.resources finds their files (package data).
    for package in (Path("conversations"), Path("conversations") / "v4"):
        (out / package / "__init__.py").write_text(
            '"""Generated from protos/ by scripts/protos.py."""\n'
        )


def differences(expected: Path, actual: Path) -> list[str]:
    """Files that differ between two trees, or stand in only one of them."""
    found: list[str] = []

    def walk(cmp: filecmp.dircmp[str], prefix: str) -> None:
        found.extend(prefix + name for name in cmp.left_only + cmp.right_only + cmp.diff_files)
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(filecmp.dircmp(expected, actual, ignore=["__pycache__"]), "")
    return found


def check_fresh() -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "generated"
        generate(fresh)
        stale = differences(fresh, GENERATED)
    for name in stale:
        print(f"stale: generated/{name}", file=sys.stderr)
    if stale:
        print("generated/ is stale: run `make generate` and commit it", file=sys.stderr)
    return not stale


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def breaking_baseline() -> str | None:
    """The revision whose contract the current one must stay compatible with.

    With uncommitted changes to protos/ that is HEAD; otherwise the revision
    before the last commit that changed protos/. None when there is none.
    """
    head = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", "HEAD:protos"], cwd=ROOT, capture_output=True
    )
    if head.returncode != 0:
        return None
    if git("status", "--porcelain", "--", "protos"):
        return "HEAD"
    last_change = git("log", "-1", "--format=%H", "--", "protos")
    if not last_change:
        return None
    parents = git("log", "-1", "--format=%P", last_change).split()
    if not parents or not git("ls-tree", parents[0], "protos"):
        return None
    return parents[0]


def check_breaking(against: str | None) -> bool:
    if against is None:
        print("buf breaking: no earlier contract in git history to compare with")
        return True
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "archive", against, "protos"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        baseline = descriptor_set(Path(tmp) / "protos", Path(tmp) / "baseline.binpb")
        with tempfile.NamedTemporaryFile(suffix=".binpb") as current:
            descriptor_set(PROTOS, Path(current.name))
            result = subprocess.run(
                [BIN / "buf", "breaking", current.name, "--against", baseline], cwd=ROOT
            )
    print(f"buf breaking against {against}: {'ok' if result.returncode == 0 else 'FAILED'}")
    return result.returncode == 0


def check_lint() -> bool:
    shutil.rmtree(BUF_DEPS, ignore_errors=True)
    (BUF_DEPS / "google" / "api").mkdir(parents=True)
    for name in ("annotations.proto", "http.proto", "field_behavior.proto"):
        shutil.copy(GOOGLEAPIS_PROTOS / "google" / "api" / name, BUF_DEPS / "google" / "api")
    result = subprocess.run([BIN / "buf", "lint", "protos"], cwd=ROOT)
    print(f"buf lint: {'ok' if result.returncode == 0 else 'FAILED'}")
    return result.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("generate", help="rewrite generated/ from protos/")
    check = commands.add_parser("check", help="generated/ is fresh; buf lint; buf breaking")
    check.add_argument("--against", help="git revision for buf breaking (default: see code)")
    args = parser.parse_args()
    if args.command == "generate":
        generate(GENERATED)
        print("regenerated generated/ from protos/")
        return 0
    results = [check_fresh(), check_lint(), check_breaking(args.against or breaking_baseline())]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
