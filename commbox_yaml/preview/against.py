"""The project as of a git ref: its requests, to show what changed since (`--against REF`).

The ref's tree is exported with `git archive` into a temporary folder (nothing in the
repository is touched: no worktree, no checkout) and built there as the project is built
now, with the same variables: a `--var-file` (a path in the project) is read as of the ref too.
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from commbox_yaml.build import build
from commbox_yaml.errors import UserError
from commbox_yaml.plan import Against, Previous
from commbox_yaml.project import PROJECT_FILE, Project, load_project
from commbox_yaml.variables import load_variables


def requests_at(
    ref: str, project: Project, var_files: Sequence[str], cli_vars: Sequence[str]
) -> Against:
    """Build the project as of `ref`, with the same variables (var files are paths in the
    project, so they are read as of `ref` too); its requests by key."""
    top = _toplevel(project.root)
    commit = _commit(top, ref)
    with _exported(top, commit, project.root) as old_root:
        if old_root is None:
            return Against(ref, commit, existed=False)
        old = load_project(old_root)
        result = build(old, load_variables(old, var_files, cli_vars))
        if result.problems:
            first = result.problems[0]
            raise UserError(
                f"the project as of {ref} does not validate ({len(result.problems)} error(s); "
                f"the first: {first.message}); compare against a ref where it does"
            )
        return Against(
            ref,
            commit,
            {
                r.key: Previous(r.fingerprint, r.stream, dict(r.shown_body))
                for r in result.messages.requests()
            },
        )


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise UserError("--against needs git, and git is not installed") from None


def _toplevel(root: Path) -> Path:
    done = _git(root, "rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise UserError(
            f"--against compares with a git ref, but {root} is not in a git repository; "
            "run it in a clone of the repository"
        )
    return Path(done.stdout.decode().strip())


def _commit(top: Path, ref: str) -> str:
    if ref.startswith("-"):  # never an option to git
        raise UserError(f"--against {ref!r} is not a git ref; give a branch, tag or commit")
    done = _git(top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if done.returncode != 0:
        raise UserError(
            f"--against: no commit is named {ref!r} in this repository; give a branch, tag or "
            "commit (in CI, fetch it first: git fetch origin main, then --against origin/main)"
        )
    return done.stdout.decode().strip()


@contextmanager
def _exported(top: Path, commit: str, root: Path) -> Iterator[Path | None]:
    """The project's folder as of `commit`, in a temporary folder; None when it had no
    commbox.yaml then."""
    relative = root.resolve().relative_to(top.resolve())
    where = [] if relative == Path(".") else ["--", relative.as_posix()]
    with tempfile.TemporaryDirectory(prefix="commbox-against-") as tmp:
        archive = Path(tmp) / "tree.tar"  # a file, never the output of this process
        done = _git(top, "archive", "--format=tar", f"--output={archive}", commit, *where)
        if done.returncode != 0:  # the folder did not exist at that commit
            yield None
            return
        tree = Path(tmp) / "tree"
        with tarfile.open(archive) as opened:
            _extract(opened, tree)
        old_root = tree / relative
        yield old_root if (old_root / PROJECT_FILE).is_file() else None


def _extract(archive: tarfile.TarFile, into: Path) -> None:
    """Extract refusing absolute paths, `..` and links that lead out (tarfile's "data"
    filter; checked by hand on a Python without it, before 3.11.4)."""
    if hasattr(tarfile, "data_filter"):
        archive.extractall(into, filter="data")
        return
    for member in archive.getmembers():
        target = (into / member.name).resolve()
        linked = (target.parent / member.linkname).resolve() if member.issym() else target
        inside = target.is_relative_to(into.resolve()) and linked.is_relative_to(into.resolve())
        if not inside or member.islnk() or member.isdev():
            raise UserError(
                f"--against: the tree of the ref holds {member.name!r}, which leads out"
            )
    archive.extractall(into)
