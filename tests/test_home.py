"""The project's home is said once (pyproject.toml [project.urls]); every badge, Colab install line
and README link agrees with it (tools/project_home.py derives them)."""
import pathlib
import re
import sys

import nbformat
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import project_home  # noqa: E402

SOURCES = sorted((REPO / "tools" / "notebook_sources").glob("[0-9][0-9]_*.py"))
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LABS = sorted((REPO / "labs").glob("[0-9][0-9]_*.ipynb"))
URL = re.compile(r"https?://[^\s)\"'<>\]]+")
BADGE = re.compile(r"\[!\[Open In Colab\]\(https://colab\.research\.google\.com/assets/colab-badge\.svg\)\]\(([^)]+)\)")


def text_of(path: pathlib.Path) -> str:
    if path.suffix == ".ipynb":
        return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
    return path.read_text(encoding="utf-8")


def project_urls_in(text: str) -> list:
    """URLs that claim to be the project's: on GitHub or Colab-over-GitHub, naming poster-lite."""
    found = []
    for url in URL.findall(text):
        url = url.rstrip(".,;:`")
        if ("github.com" in url or "colab.research.google.com/github" in url) and \
                re.search(r"poster[-_]?lite", url, re.IGNORECASE):
            found.append(url)
    return found


def derived(url: str) -> bool:
    """True when `url` is the repository, a page under it, or a Colab link into it."""
    home = project_home.repository()
    return url == home or url.startswith(home + "/") or \
        url.startswith(f"https://colab.research.google.com/github/{project_home.slug()}/blob/{project_home.BRANCH}/")


def test_home_is_declared_once_in_pyproject():
    urls = project_home.urls()
    assert urls["Repository"] == urls["Homepage"], "Homepage and Repository name different places"
    assert project_home.repository() == "https://github.com/poster-lite/poster-lite"
    assert project_home.install_archive().endswith((".zip", ".tar.gz")), "Colab installs an archive pip can read"


@pytest.mark.parametrize("path", SOURCES + NOTEBOOKS + LABS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_badge_and_install_line_come_from_the_home(path):
    text = text_of(path)
    folder = "labs" if path.parent.name == "labs" else "notebooks"
    target = f"{folder}/{path.stem}.ipynb"
    badges = BADGE.findall(text)
    assert badges == [project_home.colab_url(target)], \
        f"{path.name}: its Colab badge should open {project_home.colab_url(target)}, found {badges}"
    install = f'"POSTER_LITE_INSTALL", "{project_home.install_archive()}"'
    assert install in text, f"{path.name}: the setup cell should install {project_home.install_archive()} " \
                            f"unless $POSTER_LITE_INSTALL says otherwise"
    assert "git+https://" not in text, f"{path.name}: installs from git, not from the archive of the home"
    stray = [u for u in project_urls_in(text) if not derived(u)]
    assert not stray, f"{path.name}: links to the project that do not derive from {project_home.repository()}: {stray}"


def test_readme_links_and_install_lines_come_from_the_home():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    stray = [u for u in project_urls_in(readme) if not derived(u)]
    assert not stray, f"README.md: links to the project that do not derive from {project_home.repository()}: {stray}"
    installs = [line for line in readme.splitlines() if re.search(r"pip install\b.*https?://", line)]
    assert installs, "README.md shows no pip install of the project from its home"
    for line in installs:
        assert project_home.install_archive() in line or f"git+{project_home.repository()}" in line, \
            f"README.md installs from somewhere else: {line.strip()}"
    # The "Run on Colab" section opens every notebook (and its student version when labs/ exists).
    for path in NOTEBOOKS:
        assert project_home.colab_url(f"notebooks/{path.name}") in readme, f"README.md: no Colab link to {path.name}"
    for path in LABS:
        assert project_home.colab_url(f"labs/{path.name}") in readme, f"README.md: no Colab link to labs/{path.name}"


def test_a_wrong_home_is_caught(tmp_path):
    """The checks above would notice a badge or install line that names another place."""
    wrong = "https://colab.research.google.com/github/someone-else/poster-lite/blob/main/notebooks/00_tour.ipynb"
    assert not derived(wrong)
    assert not derived("https://github.com/poster-lite/poster-lite-old/archive/refs/heads/main.zip")
    assert derived(project_home.install_archive())
    assert project_urls_in(f"see [here]({wrong}).") == [wrong]


def test_book_links_come_from_the_home():
    import book
    page = book.colab_link("00_tour.ipynb")
    assert page == project_home.colab_url("notebooks/00_tour.ipynb")
