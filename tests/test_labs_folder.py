"""The student versions committed in labs/: one per notebook, exactly what `make labs` makes of it,
with a badge that opens the student version, and runnable: no cell outside a self-check lets an
unfinished exercise stop the lab. Also the self-checks added for notebooks 00, 01, 07 and 08:
each accepts a correct answer and rejects a stub and the usual slips.
"""
import ast
import math
import pathlib
import shutil
import subprocess
import sys

import nbformat
import numpy as np
import pytest
import torch

from poster_lite import lab_checks
from poster_lite.data.labels import AFFECTNET_TO_CLASSES

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import make_labs  # noqa: E402

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LABS = REPO / "labs"
IDS = [p.stem for p in NOTEBOOKS]
REMAKE = "run `make labs` (or .venv/bin/python tools/make_labs.py) and commit labs/"


def _read(path):
    return nbformat.read(path, as_version=4)


def _as_compared(nb):
    return [(c.cell_type, c.source, c.metadata.get("tags", []), c.get("id")) for c in nb.cells]


# ------------------------------------------------------------------- the committed folder
def test_every_notebook_has_its_lab_and_nothing_else():
    assert LABS.is_dir(), f"labs/ is missing: {REMAKE}"
    assert sorted(p.stem for p in LABS.glob("*.ipynb")) == IDS, f"labs/ and notebooks/ differ: {REMAKE}"


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout")
def test_labs_are_not_ignored_by_git():
    ignored = subprocess.run(["git", "check-ignore", "-q", "labs/00_tour.ipynb"], cwd=REPO)
    assert ignored.returncode == 1, "labs/ is git-ignored: the student badges would open nothing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_lab_is_what_make_labs_makes_of_the_notebook(path):
    want, _ = make_labs.make_lab(_read(path))
    have = _read(LABS / path.name)
    assert _as_compared(have) == _as_compared(want), f"labs/{path.name} is out of date: {REMAKE}"
    assert have.metadata == want.metadata, f"labs/{path.name} has other notebook metadata: {REMAKE}"
    assert not any(c.get("outputs") or c.get("execution_count") for c in have.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_lab_opens_as_the_student_version(path):
    lab = _read(LABS / path.name)
    opening = lab.cells[0].source
    assert f"/blob/main/labs/{path.name}" in opening and "/notebooks/" not in opening, \
        f"labs/{path.name}: its Colab badge should open the student version"
    stubs = [c for c in lab.cells if "exercise" in c.metadata.get("tags", [])]
    if stubs:
        assert lab.cells[1].source.startswith("**Student version.**")
        assert all("NotImplementedError" in c.source for c in stubs)
        assert not [c for c in lab.cells if "solution" in c.metadata.get("tags", [])]


def _names_defined(source: str) -> set:
    return {node.name for node in ast.parse(source).body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def _rebound(source: str) -> set:
    """Names a cell binds at its top level (a later definition replaces the exercise's)."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name)}
    return names


def _catches_not_implemented(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(c, ast.Name) and c.id in ("NotImplementedError", "Exception", "RuntimeError")
               for c in caught)


def _is_check_call(node) -> bool:
    """A call of a self-check (`lab_checks.check_x(...)`): it reports an unfinished exercise itself."""
    if not isinstance(node, ast.Call):
        return False
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    return name.startswith("check_")


def _check_verdicts(source: str) -> set:
    """Names a cell binds to a self-check's verdict (`done = lab_checks.check_x(...)`)."""
    return {target.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Assign)
            and any(_is_check_call(n) for n in ast.walk(node.value))
            for target in node.targets if isinstance(target, ast.Name)}


def _unguarded_uses(source: str, names: set, verdicts: frozenset = frozenset()) -> list:
    """(line, name) of every call of `names` that can raise a stub's NotImplementedError uncaught:
    not inside a try that catches it, not an argument of a self-check, not in the branch that a
    self-check's verdict chose (`mine if check(mine) else theirs`, `if done: ...`)."""
    found = []
    verdicts = set(verdicts) | _check_verdicts(source)

    def decided_by_check(test) -> bool:
        return any(_is_check_call(n) or (isinstance(n, ast.Name) and n.id in verdicts) for n in ast.walk(test))

    def visit(node, guarded):
        if isinstance(node, ast.If) and decided_by_check(node.test):
            for child in node.orelse:
                visit(child, guarded)
            return
        if isinstance(node, ast.Try):
            inner = guarded or any(_catches_not_implemented(h) for h in node.handlers)
            for child in node.body:
                visit(child, inner)
            for child in node.handlers + node.orelse + node.finalbody:
                visit(child, guarded)
            return
        if _is_check_call(node):
            return
        if isinstance(node, ast.IfExp) and decided_by_check(node.test):
            visit(node.orelse, guarded)
            return
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names
                and not guarded):
            found.append((node.lineno, node.func.id))
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(ast.parse(source), False)
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_an_unfinished_exercise_never_stops_the_lab(path):
    """A stub raises NotImplementedError when called. Its self-check reports that kindly; every
    other cell that uses an exercise's function or class must catch it, so that a student who
    skips an exercise can still run the rest of the notebook."""
    lab = _read(LABS / path.name)
    stubs, verdicts, problems = set(), set(), []
    for i, cell in enumerate(lab.cells):
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        if "exercise" in tags:
            stubs |= _names_defined(cell.source)
            continue
        if "check" not in tags:
            problems += [f"cell {i} line {line}: {name}"
                         for line, name in _unguarded_uses(cell.source, stubs, frozenset(verdicts))]
        verdicts |= _check_verdicts(cell.source)
        stubs -= _rebound(cell.source)
    assert not problems, (f"labs/{path.name}: these uses of an exercise's code stop the student version "
                          f"while the exercise is unfinished (wrap them in try/except NotImplementedError): "
                          f"{problems}")


def test_the_guard_finder_sees_guarded_and_unguarded_uses():
    source = ("try:\n    a = f(1)\nexcept NotImplementedError:\n    a = None\n"
              "b = f(2)\n"
              "try:\n    c = f(3)\nexcept ValueError:\n    pass\n"
              "g = f if lab_checks.check_f(f) else len\n"
              "same = g is f\n"
              "lab_checks.check_f(f(4))\n"
              "done = lab_checks.check_f(f)\n"
              "if done:\n    f(5)\nelse:\n    f(6)\n")
    assert _unguarded_uses(source, {"f"}) == [(5, "f"), (7, "f"), (17, "f")]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_lab_runs_top_to_bottom_with_every_exercise_unfinished(tmp_path):
    """The student version of 03 (two exercises, and cells that fall back when they are not done)
    runs in SMOKE mode, and each of its self-checks says the exercise is not done yet."""
    import tour

    lab = LABS / "03_cross_fusion.ipynb"
    run_dir = tmp_path / "labs"           # papermill runs in the notebook's folder: give it a copy
    run_dir.mkdir()
    shutil.copy(lab, run_dir / lab.name)
    row = tour.execute(run_dir / lab.name, tmp_path / "out", {"SMOKE": 1}, cell_timeout=300, html=False)
    assert row["status"] == "ok", row["error"]
    executed = _read(tmp_path / "out" / lab.name)
    checks = [c for c in executed.cells if "check" in c.metadata.get("tags", [])]
    printed = ["".join(o.get("text", "") for o in c.outputs) for c in checks]
    assert printed and all("not implemented yet" in text for text in printed), printed


# ------------------------------------------------------------- the self-checks these labs use
def not_done(*args, **kwargs):
    raise NotImplementedError("Exercise: write this")


def expression_verdict(logits, classes, k=3):
    p = torch.softmax(logits.double(), 0)
    order = torch.argsort(p, descending=True)[:k]
    return [(classes[int(i)], float(p[i])) for i in order]


def verdict_that_overflows(logits, classes, k=3):
    e = logits.double().exp()
    p = e / e.sum()
    order = torch.argsort(logits, descending=True)[:k]
    return [(classes[int(i)], float(p[i])) for i in order]


def verdict_least_probable_first(logits, classes, k=3):
    return expression_verdict(logits, classes, k)[::-1]


def class_weights(counts):
    counts = np.asarray(counts, dtype=float)
    return torch.tensor(counts.sum() / (len(counts) * counts))


def inverse_counts(counts):
    return torch.tensor(1 / np.asarray(counts, dtype=float))


def split_by_identity(identities, val_fraction=0.2, seed=0):
    identities = np.asarray(identities)
    people = np.unique(identities)
    chosen = np.random.default_rng(seed).permutation(people)[:round(val_fraction * len(people))]
    val = np.isin(identities, chosen)
    return np.flatnonzero(~val), np.flatnonzero(val)


def split_by_image(identities, val_fraction=0.2, seed=0):
    order = np.random.default_rng(seed).permutation(len(identities))
    cut = int(val_fraction * len(identities))
    return np.sort(order[cut:]), np.sort(order[:cut])


def faces_needed(gap, accuracy):
    return math.ceil(8 * accuracy * (1 - accuracy) / gap ** 2 - 1e-9)


def faces_without_sqrt2(gap, accuracy):
    return math.ceil(4 * accuracy * (1 - accuracy) / gap ** 2)


def faces_for_one_standard_error(gap, accuracy):
    return math.ceil(2 * accuracy * (1 - accuracy) / gap ** 2)


def faces_not_rounded(gap, accuracy):
    return 8 * accuracy * (1 - accuracy) / gap ** 2 + 0.5


def affectnet_to_ours(label):
    return AFFECTNET_TO_CLASSES[label]


def affectnet_unchanged(label):
    return label


def affectnet_counted_from_one(label):
    return AFFECTNET_TO_CLASSES[label] + 1


def affectnet_contempt_dropped(label):
    return None if label == 7 else AFFECTNET_TO_CLASSES[label]


CHECKS = {
    "expression_verdict": (lab_checks.check_expression_verdict, expression_verdict,
                           [not_done, verdict_that_overflows, verdict_least_probable_first]),
    "class_weights": (lab_checks.check_class_weights, class_weights, [not_done, inverse_counts]),
    "split_by_identity": (lab_checks.check_split_by_identity, split_by_identity, [not_done, split_by_image]),
    "test_faces_needed": (lab_checks.check_test_faces_needed, faces_needed,
                          [not_done, faces_without_sqrt2, faces_for_one_standard_error, faces_not_rounded]),
    "affectnet_to_ours": (lab_checks.check_affectnet_to_ours, affectnet_to_ours,
                          [not_done, affectnet_unchanged, affectnet_counted_from_one, affectnet_contempt_dropped]),
}


@pytest.mark.parametrize("name", CHECKS)
def test_new_check_accepts_a_correct_answer(name, capsys):
    check, correct, _ = CHECKS[name]
    assert check(correct) is True
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize("name", CHECKS)
def test_new_check_rejects_a_stub_and_the_usual_slips(name, capsys):
    check, _, wrongs = CHECKS[name]
    for wrong in wrongs:
        assert check(wrong) is False, f"{name}: {wrong.__name__} was accepted"
        out = capsys.readouterr().out
        assert ("not implemented yet" if wrong is not_done else "❌") in out, out


def test_slips_get_a_hint(capsys):
    lab_checks.check_test_faces_needed(faces_without_sqrt2)
    lab_checks.check_affectnet_to_ours(affectnet_unchanged)
    lab_checks.check_expression_verdict(verdict_that_overflows)
    out = capsys.readouterr().out
    assert out.count("Hint:") == 3, out
