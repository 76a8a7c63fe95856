"""Course labs: the self-checks accept correct code and reject stubs and the usual mistakes;
the instructor notebooks' solutions pass their checks; `make labs` stubs every solution.
"""
import ast
import math
import pathlib
import sys
from collections import OrderedDict
from functools import partial

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from poster_lite import lab_checks
from poster_lite.models.fusion import CrossFusionBlock
from poster_lite.models.ir50 import IRUnit as PackageIRUnit
from poster_lite.models.mobilefacenet import DepthwiseSeparable as PackageInvertedResidual
from poster_lite.models.poster import PosterModel

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import make_labs  # noqa: E402

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def not_done(*args, **kwargs):
    raise NotImplementedError("Exercise: write this")


# ------------------------------------------------- correct implementations, written independently
def attention(q, k, v, num_heads):
    B, Nq, d = q.shape
    out = torch.empty_like(q)
    size = d // num_heads
    for h in range(num_heads):             # one head at a time, the slow and obvious way
        part = slice(h * size, (h + 1) * size)
        weights = torch.softmax(q[..., part] @ k[..., part].transpose(1, 2) / math.sqrt(size), dim=-1)
        out[..., part] = weights @ v[..., part]
    return out


def block_forward(x, block):
    """CrossFusionBlock's output computed from its layers."""
    half = x.shape[1] // 2
    x_img, x_lm = x[:, :half], x[:, half:]

    def update(branch, own, own_normed, other_normed):
        queries = other_normed if block.swap else own_normed
        k, v = branch.attn.kv(own_normed).chunk(2, dim=-1)
        y = own + branch.attn.proj(attention(queries, k, v, branch.attn.num_heads))
        return y + branch.mlp(branch.mlp_norm(y))

    n_img, n_lm = block.img.norm(x).split(half, dim=1)
    new_img = update(block.img, x_img, n_img, n_lm)
    n_img, n_lm = block.lm.norm(x).split(half, dim=1)
    new_lm = update(block.lm, x_lm, n_lm, n_img)
    out = torch.cat([new_img, new_lm], dim=1)
    return block.token_mixer(out) if block.token_mixer is not None else out


def pyramid_down(x, weight, bias):
    return F.conv1d(x, weight, bias, stride=weight.shape[-1])


def pyramid_up(x, weight, bias):
    return F.conv_transpose1d(x, weight, bias, stride=weight.shape[-1])


def sam_step(model, loss_fn, inputs, targets, optimizer, rho):
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    scale = rho / torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    moves = [p.grad * scale for p in params]
    with torch.no_grad():
        for p, e in zip(params, moves):
            p += e
    optimizer.zero_grad()
    loss_fn(model(inputs), targets).backward()
    with torch.no_grad():
        for p, e in zip(params, moves):
            p -= e
    optimizer.step()
    optimizer.zero_grad()
    return loss.detach()


class IRUnit(nn.Module):
    """BN, conv, PReLU, strided conv, BN, plus a shortcut; the `stride_at` and `shortcut`
    switches make the usual slips."""

    def __init__(self, in_ch, out_ch, stride, stride_at="conv2", shortcut=True, slopes=None):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride if stride_at == "conv1" else 1, 1, bias=False)
        self.act = nn.PReLU(slopes or out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride if stride_at == "conv2" else 1, 1, bias=False)
        self.bn_out = nn.BatchNorm2d(out_ch)
        self.use_shortcut = shortcut
        if in_ch == out_ch:
            self.shortcut = nn.MaxPool2d(1, stride)
        else:
            self.shortcut = nn.Sequential()
            self.shortcut.add_module("conv", nn.Conv2d(in_ch, out_ch, 1, stride, bias=False))
            self.shortcut.add_module("bn", nn.BatchNorm2d(out_ch))

    def forward(self, x):
        y = self.bn_out(self.conv2(self.act(self.conv1(self.bn_in(x)))))
        return y + self.shortcut(x) if self.use_shortcut else y


def conv_bn(in_ch, out_ch, kernel=1, stride=1, groups=1, act=True):
    layers = [("conv", nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False)),
              ("bn", nn.BatchNorm2d(out_ch))]
    return nn.Sequential(OrderedDict(layers + ([("act", nn.PReLU(out_ch))] if act else [])))


class InvertedResidual(nn.Module):
    """expand, depthwise, linear project, plus the input when asked; switches for the slips."""

    def __init__(self, in_ch, out_ch, expand, stride, residual, groups=True, project_act=False,
                 stride_at="depthwise", always_add=False):
        super().__init__()
        self.expand = conv_bn(in_ch, expand, stride=stride if stride_at == "expand" else 1)
        self.depthwise = conv_bn(expand, expand, 3, stride if stride_at == "depthwise" else 1,
                                 groups=expand if groups else 1)
        self.project = conv_bn(expand, out_ch, act=project_act)
        self.add = residual or (always_add and in_ch == out_ch and stride == 1)

    def forward(self, x):
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.add else y


def pyramid_block_forward(levels, block, order="smallest first", blocks_first=True):
    """A PyramidBlock's output from its layers."""
    outs = [level(x) for level, x in zip(block.levels, levels)] if blocks_first else list(levels)
    steps = range(len(block.upsample))
    for k in (reversed(steps) if order == "smallest first" else steps):
        outs[k] = outs[k] + block.upsample[k](outs[k + 1])
    if not blocks_first:
        outs = [level(x) for level, x in zip(block.levels, outs)]
    return outs


def poster_forward(images, model, class_token="mean", pos_embed="image", se=True, resize="nearest"):
    """PosterModel's logits from its layers, written out; the keywords make the usual slips."""
    cfg, fusion = model.config, model.fusion
    if images.shape[-1] != cfg.backbone_size:
        images = F.interpolate(images, size=(cfg.backbone_size, cfg.backbone_size), mode=resize)
    fmap = model.image_backbone(images)
    B = fmap.shape[0]
    image = model.image_proj(fmap.reshape(B, 49, -1))                  # the release's raw reshape
    landmark = model.landmark_backbone(images).reshape(B, -1, 49).permute(0, 2, 1)

    def prepend(tokens):
        first = tokens.mean(1, keepdim=True) if class_token == "mean" else fusion.learned_cls_token.expand(B, 1, -1)
        return torch.cat([first, tokens], dim=1)

    image, landmark = prepend(image), prepend(landmark)
    image = image + fusion.image_pos_embed
    if pos_embed == "both":
        landmark = landmark + fusion.image_pos_embed
    x = torch.cat([image, landmark], dim=1)
    levels = [x, *(down(x) for down in fusion.downsample)]
    for block in fusion.blocks:
        levels = block(levels)
    token = fusion.norm(levels[0])[:, 0]
    if se:
        token = token * torch.sigmoid(model.se.fc2(torch.relu(model.se.fc1(token))))
    return model.head(token)


def mean_class_accuracy(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]))


# ------------------------------------------------------------------ the usual mistakes
def attention_without_scaling(q, k, v, num_heads):
    return lab_checks.reference_attention(q * math.sqrt(q.shape[-1] // num_heads), k, v, num_heads)


def attention_single_head(q, k, v, num_heads):
    return lab_checks.reference_attention(q, k, v, 1)


def block_without_swap(x, block):
    swap, block.swap = block.swap, False
    try:
        return block_forward(x, block)
    finally:
        block.swap = swap


def block_ignoring_token_mixer(x, block):
    mixer, block.token_mixer = block.token_mixer, None
    try:
        return block_forward(x, block)
    finally:
        block.token_mixer = mixer


def pyramid_down_by_averaging(x, weight, bias):
    B, T, d = x.shape
    return x.reshape(B, T, d // weight.shape[-1], weight.shape[-1]).mean(-1)


def sgd_step(model, loss_fn, inputs, targets, optimizer, rho):
    optimizer.zero_grad()
    loss_fn(model(inputs), targets).backward()
    optimizer.step()


def sam_without_restoring(model, loss_fn, inputs, targets, optimizer, rho):
    optimizer.zero_grad()
    loss_fn(model(inputs), targets).backward()
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))
    with torch.no_grad():
        for p in model.parameters():
            p += rho * p.grad / norm
    optimizer.zero_grad()
    loss_fn(model(inputs), targets).backward()
    optimizer.step()


def sam_with_accumulated_gradients(model, loss_fn, inputs, targets, optimizer, rho):
    optimizer.zero_grad()
    loss_fn(model(inputs), targets).backward()
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))
    moves = [rho * p.grad / norm for p in model.parameters()]
    with torch.no_grad():
        for p, e in zip(model.parameters(), moves):
            p += e
    loss_fn(model(inputs), targets).backward()         # zero_grad forgotten: g + g' is used
    with torch.no_grad():
        for p, e in zip(model.parameters(), moves):
            p -= e
    optimizer.step()


def sam_with_per_tensor_norm(model, loss_fn, inputs, targets, optimizer, rho):
    optimizer.zero_grad()
    loss_fn(model(inputs), targets).backward()
    moves = [rho * p.grad / p.grad.norm() for p in model.parameters()]
    with torch.no_grad():
        for p, e in zip(model.parameters(), moves):
            p += e
    optimizer.zero_grad()
    loss_fn(model(inputs), targets).backward()
    with torch.no_grad():
        for p, e in zip(model.parameters(), moves):
            p -= e
    optimizer.step()


def plain_accuracy(y_true, y_pred):
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def macc_in_percent(y_true, y_pred):
    return 100 * mean_class_accuracy(y_true, y_pred)


CHECKS = {
    "IR unit": (lab_checks.check_ir_unit, (IRUnit,),
                [(not_done,), (partial(IRUnit, stride_at="conv1"),), (partial(IRUnit, shortcut=False),),
                 (partial(IRUnit, slopes=1),)]),
    "inverted residual": (lab_checks.check_inverted_residual, (InvertedResidual,),
                          [(not_done,), (partial(InvertedResidual, groups=False),),
                           (partial(InvertedResidual, project_act=True),),
                           (partial(InvertedResidual, stride_at="expand"),),
                           (partial(InvertedResidual, always_add=True),)]),
    "pyramid block": (lab_checks.check_pyramid_block, (pyramid_block_forward,),
                      [(not_done,), (partial(pyramid_block_forward, order="largest first"),),
                       (partial(pyramid_block_forward, blocks_first=False),),
                       (lambda levels, block: [level(x) for level, x in zip(block.levels, levels)],)]),
    "POSTER forward": (lab_checks.check_poster_forward, (poster_forward,),
                       [(not_done,), (partial(poster_forward, class_token="learned"),),
                        (partial(poster_forward, pos_embed="both"),), (partial(poster_forward, se=False),),
                        (partial(poster_forward, resize="bilinear"),)]),
    "attention": (lab_checks.check_attention, (attention,),
                  [(not_done,), (attention_without_scaling,), (attention_single_head,)]),
    "cross-fusion block": (lab_checks.check_cross_fusion_block, (block_forward,),
                           [(not_done,), (block_without_swap,), (block_ignoring_token_mixer,)]),
    "pyramid": (lab_checks.check_pyramid_updown, (pyramid_down, pyramid_up),
                [(not_done, pyramid_up), (pyramid_down, not_done), (pyramid_down_by_averaging, pyramid_up),
                 (pyramid_down, lambda x, w, b: x.repeat_interleave(w.shape[-1], dim=-1))]),
    "SAM": (lab_checks.check_sam_step, (sam_step,),
            [(not_done,), (sgd_step,), (sam_without_restoring,), (sam_with_accumulated_gradients,),
             (sam_with_per_tensor_norm,)]),
    "mAcc": (lab_checks.check_macc, (mean_class_accuracy,), [(not_done,), (plain_accuracy,), (macc_in_percent,)]),
}


@pytest.mark.parametrize("name", CHECKS)
def test_check_accepts_a_correct_implementation(name, capsys, one_thread):
    check, correct, _ = CHECKS[name]
    assert check(*correct) is True
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize("name", CHECKS)
def test_check_rejects_stubs_and_common_mistakes(name, capsys, one_thread):
    check, _, wrongs = CHECKS[name]
    for wrong in wrongs:
        assert check(*wrong) is False, f"{name}: {[w.__name__ for w in wrong]} was accepted"
        out = capsys.readouterr().out
        assert ("not implemented yet" if not_done in wrong else "❌") in out, out


def test_checks_accept_the_package_modules(one_thread):
    """The self-checks compare with the package, so the package's own layers must pass them."""
    assert lab_checks.check_ir_unit(PackageIRUnit, verbose=False) is True
    assert lab_checks.check_inverted_residual(PackageInvertedResidual, verbose=False) is True
    assert lab_checks.check_cross_fusion_block(CrossFusionBlock, verbose=False) is True
    assert lab_checks.check_pyramid_block(lambda levels, block: block(levels), verbose=False) is True
    assert lab_checks.check_poster_forward(PosterModel, verbose=False) is True
    assert lab_checks.check_poster_forward(lambda images, model: model(images), verbose=False) is True


def test_check_hints_name_the_slip(capsys, one_thread):
    lab_checks.check_poster_forward(partial(poster_forward, class_token="learned"))
    assert "MEAN of its 49 tokens" in capsys.readouterr().out
    lab_checks.check_pyramid_block(partial(pyramid_block_forward, order="largest first"))
    assert "SMALLEST first" in capsys.readouterr().out
    lab_checks.check_inverted_residual(partial(InvertedResidual, groups=False))
    assert "groups=channels" in capsys.readouterr().out
    lab_checks.check_ir_unit(partial(IRUnit, slopes=1))
    assert "one slope per channel" in capsys.readouterr().out


def test_a_check_restores_the_thread_count():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        lab_checks.check_ir_unit(not_done, verbose=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_layer_checks_name_the_differing_parameters(capsys):
    class Renamed(nn.Module):
        def __init__(self, in_ch, out_ch, stride):
            super().__init__()
            self.first = nn.Conv2d(in_ch, out_ch, 3, stride, 1)

        def forward(self, x):
            return self.first(x)

    assert lab_checks.check_ir_unit(Renamed) is False
    out = capsys.readouterr().out
    assert "Only in yours: first.weight" in out and "bn_in.weight" in out


def test_cross_fusion_check_takes_a_class_with_the_package_names():
    assert lab_checks.check_cross_fusion_block(CrossFusionBlock, verbose=False) is True

    class WrongNames(nn.Module):
        def __init__(self, dim, num_heads, mlp_ratio, num_tokens, swap=True, mix_tokens=True):
            super().__init__()
            self.layer = nn.Linear(dim, dim)

        def forward(self, x):
            return self.layer(x)

    assert lab_checks.check_cross_fusion_block(WrongNames, verbose=False) is False


def test_check_reports_a_crash_without_raising(capsys):
    def broken(q, k, v, num_heads):
        return q @ k          # wrong shapes: matmul fails inside
    assert lab_checks.check_attention(broken) is False
    assert "raised RuntimeError" in capsys.readouterr().out


# ----------------------------------------------------------- the notebooks' exercises
def _cells(path):
    return nbformat.read(path, as_version=4).cells


def _exercises(cells, tag="solution"):
    """[(solution cell source, check cell source)] in notebook order.

    The convention: every code cell tagged `solution` is followed, before the next
    solution, by a code cell tagged `check` whose last expression is a self-check's
    verdict (True when the solution is right).
    """
    pairs, pending = [], None
    for i, cell in enumerate(cells):
        tags = cell.metadata.get("tags", [])
        if tag in tags:
            assert pending is None, f"the solution cell before cell {i} has no cell tagged 'check' after it"
            pending = cell.source
        elif "check" in tags:
            assert pending is not None, f"cell {i} is tagged 'check' but no solution cell comes before it"
            pairs.append((pending, cell.source))
            pending = None
    assert pending is None, "the last solution cell has no cell tagged 'check' after it"
    return pairs


def _imports_before_exercises(cells):
    """The notebook's own import statements (not its other setup), as one source."""
    imports = []
    for cell in cells:
        if "solution" in cell.metadata.get("tags", []):
            break
        if cell.cell_type == "code":
            imports += [ast.unparse(n) for n in ast.parse(cell.source).body
                        if isinstance(n, (ast.Import, ast.ImportFrom))]
    return "\n".join(imports)


def _run_exercises(cells, capsys, tag="solution"):
    """Run the imports, then in notebook order every cell tagged `tag` or `given` (code an
    exercise builds on, e.g. the layers whose forward pass the student writes) and every
    check; [(the check's verdict, what it printed)]."""
    namespace = {"__name__": "lab"}
    exec(_imports_before_exercises(cells), namespace)
    results = []
    for cell in cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type != "code":
            continue
        if tag in tags or "given" in tags:
            exec(cell.source, namespace)
        elif "check" in tags:
            *statements, last = ast.parse(cell.source).body
            exec(compile(ast.Module(statements, []), "check", "exec"), namespace)
            verdict = eval(compile(ast.Expression(last.value), "check", "eval"), namespace)
            results.append((verdict, capsys.readouterr().out))
    return results


NOTEBOOKS_WITH_EXERCISES = [p for p in NOTEBOOKS
                            if any("solution" in c.metadata.get("tags", []) for c in _cells(p))]


def test_some_notebooks_have_exercises():
    assert NOTEBOOKS_WITH_EXERCISES


@pytest.mark.parametrize("path", NOTEBOOKS_WITH_EXERCISES, ids=[p.stem for p in NOTEBOOKS_WITH_EXERCISES])
def test_instructor_solutions_pass_their_checks(path, capsys):
    cells = _cells(path)
    results = _run_exercises(cells, capsys)
    assert len(results) == len(_exercises(cells))
    for passed, printed in results:
        assert passed is True, printed


@pytest.mark.parametrize("path", NOTEBOOKS_WITH_EXERCISES, ids=[p.stem for p in NOTEBOOKS_WITH_EXERCISES])
def test_student_stubs_fail_their_checks(path, capsys):
    lab, count = make_labs.make_lab(nbformat.read(path, as_version=4))
    cells = lab.cells
    pairs = _exercises(cells, tag="exercise")          # make_labs tags the stubbed cells "exercise"
    assert count == len(pairs) == len(_exercises(_cells(path)))
    for passed, printed in _run_exercises(cells, capsys, tag="exercise"):
        assert passed is False and "not implemented yet" in printed, printed


def test_stub_keeps_signatures_docstrings_and_imports():
    source = '''import math
from torch import nn

SCALE = 3

def area(r):
    """Area of a circle."""
    return math.pi * r * r * SCALE

class Layer(nn.Module):
    """A layer."""
    size = 4

    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)

    def forward(self, x):
        return self.fc(x)
'''
    stub = make_labs.stub_source(source)
    namespace = {}
    exec(stub, namespace)
    assert namespace["area"].__doc__ == "Area of a circle." and "math" in namespace
    assert "SCALE" not in namespace and "math.pi" not in stub and "nn.Linear" not in stub
    with pytest.raises(NotImplementedError, match="Exercise: write area"):
        namespace["area"](1.0)
    with pytest.raises(NotImplementedError, match="Layer.__init__"):
        namespace["Layer"](3)
    assert make_labs.stub_source("x = 1").count("NotImplementedError") == 1


def test_make_labs_names_a_solution_cell_that_is_not_python():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("%pip install something")]
    nb.cells[1].metadata["tags"] = ["solution"]
    with pytest.raises(ValueError, match="solution cell 1 is not plain Python"):
        make_labs.make_lab(nb)


def test_make_labs_writes_clean_student_notebooks(tmp_path):
    assert make_labs.main(["--out", str(tmp_path)]) == 0
    for path in NOTEBOOKS:
        lab = nbformat.read(tmp_path / path.name, as_version=4)
        original = nbformat.read(path, as_version=4)
        solutions = [c for c in original.cells if "solution" in c.metadata.get("tags", [])]
        assert not any("solution" in c.metadata.get("tags", []) for c in lab.cells)
        stubs = [c for c in lab.cells if "exercise" in c.metadata.get("tags", [])]
        assert len(stubs) == len(solutions)
        for stub, solution in zip(stubs, solutions):
            assert "NotImplementedError" in stub.source and stub.source != solution.source
        assert all(not c.get("outputs") for c in lab.cells if c.cell_type == "code")
