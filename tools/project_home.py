"""The project's home, read from pyproject.toml's [project.urls], and every link derived from it.

    python tools/project_home.py          # prints the home and the links derived from it

One place says where poster-lite lives: `Repository` in pyproject.toml. The Colab badges of
the notebooks (and of the student versions in labs/), the install line of every notebook's
setup cell, `make book`'s links and the README's links are all built from it by the
functions below; tests/test_home.py fails when a file disagrees with them.
"""
from __future__ import annotations

import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
BRANCH = "main"          # the branch whose archive Colab installs and whose notebooks the badges open


def _read_toml(path: pathlib.Path) -> dict:
    try:
        import tomllib
    except ImportError:          # Python 3.10
        import tomli as tomllib
    return tomllib.loads(path.read_text(encoding="utf-8"))


def urls(pyproject: pathlib.Path = REPO / "pyproject.toml") -> dict:
    return _read_toml(pyproject)["project"]["urls"]


def repository() -> str:
    """https://github.com/OWNER/NAME, no trailing slash."""
    url = urls()["Repository"].rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"pyproject.toml [project.urls] Repository must be https://github.com/OWNER/NAME, got {url!r}")
    return url


def slug() -> str:
    """OWNER/NAME."""
    return repository().removeprefix("https://github.com/")


def install_archive() -> str:
    """What a notebook's setup cell pip-installs on Colab: the branch's archive (a plain pip requirement)."""
    return f"{repository()}/archive/refs/heads/{BRANCH}.zip"


def colab_url(path: str) -> str:
    """The Colab link that opens `path` (e.g. notebooks/00_tour.ipynb) from the repository's branch."""
    return f"https://colab.research.google.com/github/{slug()}/blob/{BRANCH}/{path}"


def colab_badge(path: str) -> str:
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(path)})"


def main() -> int:
    print(f"home:            {repository()}")
    print(f"Colab install:   {install_archive()}")
    print(f"badge (00):      {colab_badge('notebooks/00_tour.ipynb')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
