"""`gitexp init`: make a git repository ready for gitexp. Safe to run again."""

from __future__ import annotations

from gitexp.core.config import RESERVED_DIR
from gitexp.store.git import Repo

GITIGNORE_ENTRY = f"/{RESERVED_DIR}/"


def init_repository(repo: Repo) -> list[str]:
    """Initialises DVC if missing and ignores gitexp's reserved path. Returns what it did."""
    done = []
    if not (repo.root / ".dvc").is_dir():
        from dvc.repo import Repo as DvcRepo  # DVC only here: init handles data

        DvcRepo.init(str(repo.root))
        done.append("initialised DVC (.dvc/)")
    gitignore = repo.root / ".gitignore"
    text = gitignore.read_text() if gitignore.exists() else ""
    if GITIGNORE_ENTRY not in text.splitlines():
        sep = "" if not text or text.endswith("\n") else "\n"
        gitignore.write_text(f"{text}{sep}# gitexp's run records live in run commits only\n"
                             f"{GITIGNORE_ENTRY}\n")  # fmt: skip
        done.append(f"added {GITIGNORE_ENTRY} to .gitignore")
    done.append("gitexp is ready: record a run with 'gitexp run -- COMMAND'")
    return done
