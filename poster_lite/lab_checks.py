"""Self-checks for the course labs: run a student's implementation against a reference.

Each `check_*` function takes the student's code, tries it on small seeded inputs,
compares the result with a reference computed independently, prints a friendly
verdict and returns True (correct) or False. A check never raises because of the
student's code: a NotImplementedError means "not done yet", any other error is
reported with its message, so a lab notebook keeps running past an unfinished
exercise.

    from poster_lite import lab_checks
    lab_checks.check_attention(my_attention)      # prints "✅ attention: ..." or what went wrong
"""
from __future__ import annotations

import copy
import inspect
import traceback

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["check_ir_unit", "check_inverted_residual", "check_attention", "check_cross_fusion_block",
           "check_pyramid_updown", "check_pyramid_block", "check_poster_forward", "check_sam_step",
           "check_macc"]


class _Mismatch(Exception):
    """A wrong answer (as opposed to code that crashed)."""


def _verdict(name: str, trial, verbose: bool) -> bool:
    """Run `trial()`; print one verdict for exercise `name`; True if it passed."""
    # The trials use tiny tensors, for which extra threads only wait on each other (on a busy
    # machine a check ran 7 to 30 times slower with two threads than with one).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        detail = trial()
    except NotImplementedError as e:
        message = f"⏳ {name}: not implemented yet ({e or 'NotImplementedError'}). Fill in the exercise cell and run it again."
        ok = False
    except _Mismatch as e:
        message = f"❌ {name}: {e}"
        ok = False
    except Exception as e:  # the student's code crashed: show where, briefly
        where = traceback.extract_tb(e.__traceback__)[-1]
        message = (f"❌ {name}: your code raised {type(e).__name__}: {e}\n"
                   f"   (at line {where.lineno}: {where.line})")
        ok = False
    else:
        message = f"✅ {name}: correct. {detail or ''}".rstrip()
        ok = True
    finally:
        torch.set_num_threads(threads)
    if verbose:
        print(message)
    return ok


def _as_tensor(value, what: str) -> torch.Tensor:
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        value = value[0]   # allow (output, attention weights)
    if not isinstance(value, torch.Tensor):
        raise _Mismatch(f"{what} should be a torch.Tensor, got {type(value).__name__}")
    return value


def _compare(got: torch.Tensor, want: torch.Tensor, what: str, atol: float = 1e-5) -> None:
    if tuple(got.shape) != tuple(want.shape):
        raise _Mismatch(f"{what} has shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    err = (got.detach().to(want.dtype) - want).abs().max().item()
    if not err <= atol * max(1.0, want.abs().max().item()):   # also catches NaN
        raise _Mismatch(f"{what} has the right shape but wrong values (largest difference {err:.3g})")


# ----------------------------------------------------------- shared by the layer checks
def _scramble(module: nn.Module) -> None:
    """Random values where PyTorch starts layers at constants.

    A fresh BatchNorm in eval mode is the identity, PReLU starts at one slope (0.25)
    everywhere, LayerNorm at (1, 0), most biases at 0: a missing or misplaced layer
    of those kinds would go unnoticed. Convolution and linear weights keep their
    (already random) initialisation, so a deep stack stays at a sane scale.
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.copy_(1 + 0.2 * torch.randn_like(m.weight))
                m.bias.copy_(0.2 * torch.randn_like(m.bias))
                m.running_mean.copy_(0.2 * torch.randn_like(m.running_mean))
                m.running_var.copy_(0.5 + torch.rand_like(m.running_var))
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(0.05 + 0.5 * torch.rand_like(m.weight))   # one slope per channel
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(1 + 0.3 * torch.randn_like(m.weight))
                m.bias.copy_(0.3 * torch.randn_like(m.bias))
            elif getattr(m, "bias", None) is not None and isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d,
                                                                        nn.ConvTranspose1d)):
                m.bias.copy_(0.1 * torch.randn_like(m.bias))


def _build(cls, what: str, *args, **kwargs) -> nn.Module:
    mine = cls(*args, **kwargs)
    if not isinstance(mine, nn.Module):
        raise _Mismatch(f"{what} should be an nn.Module subclass, got {type(mine).__name__}")
    return mine


def _share_weights(mine: nn.Module, ref: nn.Module, what: str, hints: dict | None = None) -> None:
    """Load `ref`'s weights into the student's module strictly, or say exactly what differs.

    `hints` maps a fragment of a parameter name to advice shown when that name is
    missing, extra or of another shape.
    """
    theirs, yours = ref.state_dict(), mine.state_dict()
    only_yours = [k for k in yours if k not in theirs]
    only_theirs = [k for k in theirs if k not in yours]
    wrong = [k for k in theirs if k in yours and tuple(yours[k].shape) != tuple(theirs[k].shape)]
    if not (only_yours or only_theirs or wrong):
        mine.load_state_dict(theirs, strict=True)
        return
    advice = " ".join(text for fragment, text in (hints or {}).items()
                      if any(fragment in k for k in only_yours + only_theirs + wrong))
    if only_yours or only_theirs:
        problem = (f"the parameter names differ from poster_lite's {what}, so its weights cannot be "
                   f"loaded into yours. Only in yours: {_few(only_yours)}; only in poster_lite's: "
                   f"{_few(only_theirs)}")
    else:
        shapes = [f"{k} is {tuple(yours[k].shape)}, poster_lite's {tuple(theirs[k].shape)}" for k in wrong]
        problem = f"some layers have other shapes than in poster_lite's {what}: {_few(shapes, 3)}"
    raise _Mismatch(f"{problem}.{' Hint: ' + advice if advice else ''}")


# ------------------------------------------------------------------------- IR unit
def check_ir_unit(cls, verbose: bool = True) -> bool:
    """IR-50's unit, built as `cls(in_ch, out_ch, stride)`, against poster_lite's IRUnit.

    BN -> 3x3 conv (stride 1) -> PReLU -> 3x3 conv (stride) -> BN, plus the shortcut:
    `MaxPool2d(1, stride)` when in_ch == out_ch, else a strided 1x1 conv + BN. Layer
    names as in `poster_lite.models.ir50.IRUnit` (bn_in, conv1, act, conv2, bn_out,
    shortcut[.conv, .bn]), since its weights are loaded into yours. Tried in eval mode
    with random BatchNorm statistics and PReLU slopes, with and without a change of
    width, at stride 1 and 2.
    """
    from .models.ir50 import IRUnit

    hints = {"shortcut.": "when the width changes, the shortcut is a Sequential with `conv` (1x1, "
                          "stride, no bias) and `bn`; when it does not, MaxPool2d(1, stride), which has no weights.",
             "act.": "PReLU learns one slope per channel: nn.PReLU(out_ch).",
             "conv": "both 3x3 convolutions have no bias (a BatchNorm follows or precedes them)."}

    def trial():
        torch.manual_seed(17)
        for in_ch, out_ch, stride in [(16, 16, 1), (16, 16, 2), (8, 16, 2), (16, 8, 1)]:
            ref = IRUnit(in_ch, out_ch, stride)
            _scramble(ref)
            mine = _build(cls, "IRUnit", in_ch, out_ch, stride)
            _share_weights(mine, ref, "IRUnit", hints)
            x = torch.randn(2, in_ch, 14, 14)
            with torch.no_grad():
                want = ref.eval()(x)
                got = _as_tensor(mine.eval()(x.clone()), "The unit's output")
            try:
                _compare(got, want, f"IRUnit({in_ch}, {out_ch}, stride={stride}): the output")
            except _Mismatch as e:
                raise _Mismatch(f"{e}. The order is BN, conv3x3, PReLU, conv3x3 with the stride, BN; "
                                "then add the shortcut of the unit's INPUT") from None
        return "Matches poster_lite's IRUnit with and without a width change, at stride 1 and 2."
    return _verdict("IR unit", trial, verbose)


# ------------------------------------------------------------------ inverted residual
def check_inverted_residual(cls, verbose: bool = True) -> bool:
    """MobileFaceNet's unit, built as `cls(in_ch, out_ch, expand, stride, residual)`.

    expand (1x1 conv, BN, PReLU to `expand` channels) -> depthwise (3x3 conv with
    groups=expand and the stride, BN, PReLU) -> project (1x1 conv, BN, NO activation),
    plus the input when `residual`. Layer names as in poster_lite's
    `mobilefacenet.DepthwiseSeparable` (expand/depthwise/project, each conv, bn[, act]).
    Tried in eval mode with random BatchNorm statistics and PReLU slopes.
    """
    from .models.mobilefacenet import DepthwiseSeparable

    hints = {"depthwise.conv": "a depthwise convolution has groups=channels: one 3x3 filter per channel, "
                               "a weight of shape channels x 1 x 3 x 3.",
             "project.act": "the project step is linear (MobileNetV2's linear bottleneck): conv and BN, no PReLU.",
             "act.": "PReLU learns one slope per channel: nn.PReLU(channels).",
             "conv.bias": "the convolutions have no bias (a BatchNorm follows each)."}

    def trial():
        torch.manual_seed(19)
        for in_ch, out_ch, expand, stride, residual in [(16, 16, 32, 1, True), (16, 32, 64, 2, False),
                                                        (16, 16, 24, 1, False), (8, 8, 8, 2, False)]:
            ref = DepthwiseSeparable(in_ch, out_ch, expand, stride, residual)
            _scramble(ref)
            mine = _build(cls, "the inverted residual", in_ch, out_ch, expand, stride, residual)
            _share_weights(mine, ref, "DepthwiseSeparable", hints)
            x = torch.randn(2, in_ch, 14, 14)
            with torch.no_grad():
                want = ref.eval()(x)
                got = _as_tensor(mine.eval()(x.clone()), "The unit's output")
            try:
                _compare(got, want, f"({in_ch}, {out_ch}, expand={expand}, stride={stride}, "
                                    f"residual={residual}): the output")
            except _Mismatch as e:
                hint = ""
                if not residual and got.shape == x.shape and (got - want - x).abs().max() < 1e-4:
                    hint = ". Hint: add the input only when residual=True"
                elif residual and (got - (want - x)).abs().max() < 1e-4:
                    hint = ". Hint: with residual=True the input is added to the projection's output"
                raise _Mismatch(f"{e}{hint}") from None
        return "Matches poster_lite's DepthwiseSeparable (expand, depthwise, project) with and without the residual."
    return _verdict("inverted residual", trial, verbose)


# ---------------------------------------------------------------------------- attention
def reference_attention(q, k, v, num_heads):
    """Multi-head scaled dot-product attention (no projections). B x N x d in, B x Nq x d out."""
    B, Nq, d = q.shape
    heads = lambda t: t.reshape(B, t.shape[1], num_heads, d // num_heads).transpose(1, 2)
    out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))
    return out.transpose(1, 2).reshape(B, Nq, d)


def check_attention(fn, verbose: bool = True) -> bool:
    """`fn(q, k, v, num_heads)`: q is B x Nq x d, k and v are B x Nk x d.

    Split d into `num_heads` heads of d / num_heads, compute softmax(q k^T / sqrt(head
    size)) v per head, and merge the heads back: B x Nq x d. Returning (output,
    weights) is fine too. Tried with queries and keys of different lengths and with
    1, 4 and 8 heads.
    """
    def trial():
        g = torch.Generator().manual_seed(7)
        for B, Nq, Nk, d, h in [(2, 5, 5, 16, 1), (2, 3, 6, 32, 4), (1, 50, 50, 64, 8)]:
            q, k, v = (torch.randn(B, n, d, generator=g) for n in (Nq, Nk, Nk))
            want = reference_attention(q, k, v, h)
            got = _as_tensor(fn(q.clone(), k.clone(), v.clone(), h), "The output")
            try:
                _compare(got, want, f"With {h} head(s), q {tuple(q.shape)}, k {tuple(k.shape)}: the output")
            except _Mismatch as e:
                hint = _attention_hint(got, q, k, v, h)
                raise _Mismatch(f"{e}{hint}") from None
        return "Shapes and values match for 1, 4 and 8 heads."
    return _verdict("attention", trial, verbose)


def _attention_hint(got, q, k, v, h):
    """Name the usual slip when the output matches a common wrong variant."""
    B, Nq, d = q.shape
    if got.shape != (B, Nq, d):
        return ""
    scaled = lambda s: reference_attention(q * s, k, v, h)
    if (got - scaled((d // h) ** 0.5 / d ** 0.5)).abs().max() < 1e-4:
        return ". Hint: scale by 1 / sqrt(head size), not 1 / sqrt(d)."
    if (got - scaled((d // h) ** 0.5)).abs().max() < 1e-4:
        return ". Hint: the scores need dividing by sqrt(head size)."
    if h > 1 and (got - reference_attention(q, k, v, 1)).abs().max() < 1e-4:
        return ". Hint: the heads were not split; each head attends with its own slice of d."
    return ""


# ------------------------------------------------------------------ cross-fusion block
def check_cross_fusion_block(cls_or_fn, verbose: bool = True) -> bool:
    """Compare with poster_lite's CrossFusionBlock sharing the same weights.

    Either a class, built as `cls(dim=..., num_heads=..., mlp_ratio=..., num_tokens=...)`
    with the same parameter names as `poster_lite.models.fusion.CrossFusionBlock`
    (its state dict is loaded into yours), or a function `fn(x, block)` that computes
    the block's output for tokens x (B x 100 x d) from the layers of `block`, a
    CrossFusionBlock. Tried with the query swap on and off, with and without the
    token mixer.
    """
    from .models.fusion import CrossFusionBlock

    def trial():
        torch.manual_seed(3)
        dim, heads, tokens = 32, 4, 100
        for swap in (True, False):
            for mix in (True, False):
                ref = CrossFusionBlock(dim, heads, 2.0, tokens, swap=swap, mix_tokens=mix).eval()
                _randomise(ref)
                x = torch.randn(2, tokens, dim)
                with torch.no_grad():
                    want = ref(x)
                    got = _as_tensor(_run_block(cls_or_fn, ref, dim, heads, tokens, swap, mix, x),
                                     "The block's output")
                _compare(got, want, f"With swap={swap}, mix_tokens={mix}: the output", atol=1e-4)
        return "Matches poster_lite's CrossFusionBlock with and without the swap and the token mixer."
    return _verdict("cross-fusion block", trial, verbose)


def _randomise(module: nn.Module) -> None:
    # LayerNorms start at (1, 0), which would hide a missing or swapped norm; random
    # values make every parameter matter.
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.copy_(1 + 0.3 * torch.randn_like(m.weight))
                m.bias.copy_(0.3 * torch.randn_like(m.bias))
            elif isinstance(m, (nn.Linear, nn.Conv1d)):
                m.weight.copy_(0.2 * torch.randn_like(m.weight))
                m.bias.copy_(0.2 * torch.randn_like(m.bias))


def _run_block(cls_or_fn, ref, dim, heads, tokens, swap, mix, x):
    if inspect.isclass(cls_or_fn):
        wanted = dict(dim=dim, num_heads=heads, mlp_ratio=2.0, num_tokens=tokens,
                      swap=swap, mix_tokens=mix)
        accepted = inspect.signature(cls_or_fn).parameters
        if not any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
            wanted = {k: v for k, v in wanted.items() if k in accepted}
        if "swap" not in wanted and not swap:
            raise _Mismatch("your class takes no `swap` argument; add swap=True to its __init__ "
                            "so the check can also try the no-swap variant")
        if "mix_tokens" not in wanted and not mix:
            raise _Mismatch("your class takes no `mix_tokens` argument; add mix_tokens=True to its "
                            "__init__ so the check can also try a block without the token mixer")
        mine = cls_or_fn(**wanted)
        result = mine.load_state_dict(ref.state_dict(), strict=False)
        if result.missing_keys or result.unexpected_keys:
            # missing: in the student's module only; unexpected: in poster_lite's only.
            raise _Mismatch(
                "the parameter names differ from poster_lite's CrossFusionBlock, so the weights "
                f"cannot be shared. Only in yours: {_few(result.missing_keys)}; "
                f"only in poster_lite's: {_few(result.unexpected_keys)}")
        return mine.eval()(x)
    return cls_or_fn(x, ref)


def _few(names, shown=5):
    if not names:
        return "nothing"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


# ------------------------------------------------------------------------- pyramid
def check_pyramid_updown(down_fn, up_fn, verbose: bool = True) -> bool:
    """The pyramid's two moves over the EMBEDDING axis, tokens acting as channels.

    `down_fn(x, weight, bias)`: x is B x T x d; weight (T x T x r) and bias (T) are
    those of `nn.Conv1d(T, T, kernel_size=r, stride=r)`; return B x T x d/r.
    `up_fn(x, weight, bias)`: x is B x T x d; weight (T x T x r) and bias (T) are those
    of `nn.ConvTranspose1d(T, T, kernel_size=r, stride=r)`; return B x T x d*r.
    The ratio r is weight.shape[-1]. Tried with r = 2 and 4, T = 100, d = 512.
    """
    def trial():
        torch.manual_seed(11)
        T = 100
        for r in (2, 4):
            down = nn.Conv1d(T, T, r, r)
            up = nn.ConvTranspose1d(T, T, r, r)
            x = torch.randn(2, T, 512)
            small = torch.randn(2, T, 512 // r)
            with torch.no_grad():
                got = _as_tensor(down_fn(x.clone(), down.weight.detach().clone(), down.bias.detach().clone()),
                                 "down_fn's output")
                _compare(got, down(x), f"down_fn with ratio {r} (2 x {T} x 512 in)")
                got = _as_tensor(up_fn(small.clone(), up.weight.detach().clone(), up.bias.detach().clone()),
                                 "up_fn's output")
                _compare(got, up(small), f"up_fn with ratio {r} (2 x {T} x {512 // r} in)")
        return "Both moves match nn.Conv1d / nn.ConvTranspose1d for ratios 2 and 4."
    return _verdict("pyramid down/up", trial, verbose)


def check_pyramid_block(cls_or_fn, verbose: bool = True) -> bool:
    """One pyramid block's forward, against poster_lite's PyramidBlock sharing its weights.

    Either a class, built as `cls(dims=..., num_heads=..., num_tokens=..., mlp_ratio=...,
    swap=..., mix_tokens=...)` with the parameter names of
    `poster_lite.models.pyramid.PyramidBlock` (`levels[k]`: one CrossFusionBlock per
    embedding size; `upsample[k]`: ConvTranspose1d from level k+1 up to level k), or a
    function `fn(levels, block)` computing the block's output from the layers of
    `block`, a PyramidBlock. Input and output: a list of B x T x dims[k] tensors,
    largest first. Each level runs its own block, then the levels are added upwards,
    smallest first. Tried with 2, 3 and 4 levels, the swap on and off, with and
    without the token mixer.
    """
    from .config import make_config
    from .models.pyramid import PyramidBlock

    def trial():
        torch.manual_seed(23)
        for dims, swap, mix in [((32, 16, 8), True, True), ((32, 16), False, False),
                                ((64, 32, 16, 8), True, True)]:
            cfg = make_config("poster-nano", pyramid_dims=dims, num_heads=4, mix_tokens=mix, landmark_channels=dims[0])
            ref = PyramidBlock(cfg, drop_path=0.0, swap=swap)
            _scramble(ref)
            ref.eval()
            levels = [torch.randn(2, cfg.num_tokens, d) for d in dims]
            with torch.no_grad():
                want = ref([x.clone() for x in levels])
                if inspect.isclass(cls_or_fn):
                    wanted = dict(dims=dims, num_heads=4, num_tokens=cfg.num_tokens, mlp_ratio=cfg.mlp_ratio,
                                  swap=swap, mix_tokens=mix)
                    accepted = inspect.signature(cls_or_fn).parameters
                    if not any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
                        missing = [k for k in wanted if k not in accepted]
                        if missing:
                            raise _Mismatch(f"your class takes no {', '.join(missing)} argument(s); the check "
                                            f"builds it as cls({', '.join(wanted)})")
                    mine = _build(cls_or_fn, "the pyramid block", **wanted)
                    _share_weights(mine, ref, "PyramidBlock")
                    got = mine.eval()([x.clone() for x in levels])
                else:
                    got = cls_or_fn([x.clone() for x in levels], ref)
            if not isinstance(got, (list, tuple)) or len(got) != len(dims):
                raise _Mismatch(f"with {len(dims)} levels the block should return a list of {len(dims)} "
                                f"tensors (every level, largest first), got {type(got).__name__}"
                                + (f" of length {len(got)}" if isinstance(got, (list, tuple)) else ""))
            where = f"With levels {dims}, swap={swap}, mix_tokens={mix}"
            for k, (g, w) in enumerate(zip(got, want)):
                try:
                    _compare(_as_tensor(g, f"level {k}"), w, f"{where}: level {k} (d={dims[k]})")
                except _Mismatch as e:
                    raise _Mismatch(f"{e}{_pyramid_hint(ref, levels, got)}") from None
        return "Matches poster_lite's PyramidBlock with 2, 3 and 4 levels."
    return _verdict("pyramid block", trial, verbose)


def _pyramid_hint(ref, levels, got):
    with torch.no_grad():
        outs = [block(x) for block, x in zip(ref.levels, levels)]
        largest_first = list(outs)
        for k in range(len(ref.upsample)):
            largest_first[k] = largest_first[k] + ref.upsample[k](largest_first[k + 1])
        no_blocks = list(levels)
        for k in reversed(range(len(ref.upsample))):
            no_blocks[k] = no_blocks[k] + ref.upsample[k](no_blocks[k + 1])
    close = lambda a, b: isinstance(a, torch.Tensor) and a.shape == b.shape and (a - b).abs().max() < 1e-4
    if close(got[0], largest_first[0]) and len(levels) > 2:
        return (". Hint: add the levels upwards SMALLEST first (level k+1 into level k for k from the "
                "second-largest down to 0), so the smallest level's result reaches the largest in this block")
    if close(got[0], no_blocks[0]):
        return ". Hint: run each level's cross-fusion block first, then add the upsampled levels"
    if all(close(g, o) for g, o in zip(got, outs)):
        return ". Hint: after the cross-fusion blocks, add each smaller level, upsampled, into the next larger one"
    return ""


# ------------------------------------------------------------------------ the model
def check_poster_forward(cls_or_fn, verbose: bool = True) -> bool:
    """POSTER's whole forward pass, against poster_lite's PosterModel sharing its weights.

    Either a class built as `cls(config)` (a PosterConfig) with the parameter names of
    `poster_lite.PosterModel`, whose forward maps images B x 3 x S x S to logits, or a
    function `fn(images, model)` computing the logits from the layers of `model`, a
    PosterModel. The forward: resize to config.backbone_size (nearest), both
    backbones, image tokens projected, each stream's class token = the mean of its 49
    tokens, the position embedding added to the image stream only, the two streams
    concatenated, the smaller pyramid levels made by the down convolutions, the
    pyramid blocks, the final LayerNorm, the image class token (position 0), the SE
    gate x * sigmoid(fc2(relu(fc1(x)))) and the head. Tried on poster-nano variants
    (112 and 224 px inputs, 3 and 2 levels), with every weight random.
    """
    from .config import make_config
    from .models.poster import PosterModel

    def trial():
        for seed, overrides in enumerate([{}, dict(input_size=224), dict(depth=1, pyramid_dims=(128, 64),
                                                                          mix_tokens=False)]):
            torch.manual_seed(29 + seed)
            cfg = make_config("poster-nano", **overrides)
            ref = PosterModel(cfg)
            _scramble(ref)
            with torch.no_grad():   # the two token-sized parameters: clearly nonzero
                ref.fusion.image_pos_embed.normal_(0, 0.5)
                ref.fusion.learned_cls_token.normal_(0, 1.0)
            ref.eval()
            x = torch.randn(2, 3, cfg.input_size, cfg.input_size)
            with torch.no_grad():
                want = ref(x)
                if inspect.isclass(cls_or_fn):
                    mine = _build(cls_or_fn, "your POSTER", cfg)
                    _share_weights(mine, ref, "PosterModel")
                    got = _as_tensor(mine.eval()(x.clone()), "The logits")
                else:
                    got = _as_tensor(cls_or_fn(x.clone(), ref), "The logits")
            where = (f"On poster-nano{' with ' + str(overrides) if overrides else ''} "
                     f"({cfg.input_size} px input): the logit tensor")
            try:
                _compare(got, want, where)
            except _Mismatch as e:
                raise _Mismatch(f"{e}{_forward_hint(ref, x, got)}") from None
        return "Logits match poster_lite's PosterModel on three poster-nano variants."
    return _verdict("POSTER forward", trial, verbose)


def _forward_by_hand(model, x, *, learned_cls=False, pos_on_both=False, se=True, resize="nearest",
                     final_norm=True, pool="class token"):
    """POSTER's forward written out from the layers of `model`, with one slip switched on."""
    from .models.poster import image_tokens_from_map

    cfg, f = model.config, model.fusion
    small = x if x.shape[-1] == cfg.backbone_size else F.interpolate(x, size=cfg.backbone_size, mode=resize)
    img = model.image_proj(image_tokens_from_map(model.image_backbone(small), cfg.image_tokens))
    lm = model.landmark_backbone(small).flatten(2).transpose(1, 2)               # B x 49 x d

    def with_class_token(t):
        first = f.learned_cls_token.expand(t.shape[0], -1, -1) if learned_cls else t.mean(1, keepdim=True)
        return torch.cat([first, t], dim=1)

    img, lm = with_class_token(img) + f.image_pos_embed, with_class_token(lm)
    if pos_on_both:
        lm = lm + f.image_pos_embed
    seq = torch.cat([img, lm], dim=1)
    levels = [seq] + [down(seq) for down in f.downsample]
    for block in f.blocks:
        levels = block(levels)
    out = f.norm(levels[0]) if final_norm else levels[0]
    feature = out[:, 0] if pool == "class token" else out.mean(1)
    if se:
        feature = model.se(feature)
    return model.head(feature)


def _forward_hint(model, x, got):
    slips = [(dict(learned_cls=True), "each stream's class token is the MEAN of its 49 tokens; the learned "
                                      "`learned_cls_token` is defined but never used"),
             (dict(pos_on_both=True), "the position embedding is added to the image stream only"),
             (dict(se=False), "the image class token goes through the SE gate, x * sigmoid(fc2(relu(fc1(x)))), "
                              "before the head"),
             (dict(resize="bilinear"), "resize with F.interpolate(images, size=backbone_size) and no mode: "
                                       "nearest, i.e. every second pixel"),
             (dict(final_norm=False), "apply the final LayerNorm (fusion.norm) to the largest level before "
                                      "taking the class token"),
             (dict(pool="mean"), "the classifier reads the image class token (position 0), not a mean over tokens")]
    with torch.no_grad():
        for slip, advice in slips:
            try:
                variant = _forward_by_hand(model, x, **slip)
            except Exception:   # a hint is a courtesy; never let it hide the real verdict
                continue
            if variant.shape == got.shape and (variant - got).abs().max() < 1e-4:
                return f". Hint: {advice}"
    return ""


# ----------------------------------------------------------------------------- SAM
def check_sam_step(fn, verbose: bool = True) -> bool:
    """`fn(model, loss_fn, inputs, targets, optimizer, rho)` performs ONE SAM step.

    Sharpness-aware minimisation: compute the gradient g at the weights w; move to
    w + rho * g / ||g|| (||g|| is the norm over ALL parameters together); compute the
    gradient there; go back to w and let `optimizer` step with that second gradient.
    The check runs your step on a tiny network with SGD and compares the new weights
    with a hand computation. Returning the loss at w is optional.
    """
    def trial():
        torch.manual_seed(5)
        net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
        inputs = torch.randn(16, 6, dtype=torch.float64)
        targets = torch.randint(0, 3, (16,))
        lr, rho = 0.5, 0.3
        want, loss_at_w, plain = _sam_by_hand(net, inputs, targets, lr, rho)

        student = copy.deepcopy(net)
        optimizer = torch.optim.SGD(student.parameters(), lr=lr)
        returned = fn(student, nn.CrossEntropyLoss(), inputs, targets, optimizer, rho)
        got = [p.detach() for p in student.parameters()]
        if all((g - p).abs().max() < 1e-9 for g, p in zip(got, net.parameters())):
            raise _Mismatch("the weights did not change: did the optimizer step?")
        if all((g - p).abs().max() < 1e-7 for g, p in zip(got, plain)):
            raise _Mismatch("the weights moved exactly like one plain SGD step: the second "
                            "gradient must be taken at the perturbed weights w + rho * g / ||g||")
        for i, (g, w) in enumerate(zip(got, want)):
            try:
                _compare(g, w, f"parameter {i} after the step", atol=1e-7)
            except _Mismatch as e:
                raise _Mismatch(f"{e}. Common slips: not restoring w before optimizer.step(), "
                                "forgetting zero_grad() between the two backward passes, or a "
                                "per-tensor instead of a global gradient norm") from None
        if isinstance(returned, (torch.Tensor, float, int)) and not isinstance(returned, bool):
            if abs(float(returned) - loss_at_w) > 1e-6:
                raise _Mismatch(f"the weights are right, but the returned loss {float(returned):.6f} "
                                f"is not the loss at the original weights ({loss_at_w:.6f})")
        return "The new weights match a hand-computed SAM step."
    return _verdict("SAM step", trial, verbose)


def _sam_by_hand(net, inputs, targets, lr, rho):
    """(weights after SAM + SGD, loss at w, weights after a plain SGD step)."""
    w = [p.detach().clone() for p in net.parameters()]

    def loss_and_grads(weights):
        params = [t.clone().requires_grad_(True) for t in weights]
        h = torch.tanh(inputs @ params[0].T + params[1])
        loss = F.cross_entropy(h @ params[2].T + params[3], targets)
        return loss.item(), torch.autograd.grad(loss, params)

    loss_at_w, g = loss_and_grads(w)
    norm = torch.sqrt(sum((gi ** 2).sum() for gi in g))
    _, g_sharp = loss_and_grads([wi + rho * gi / norm for wi, gi in zip(w, g)])
    sam = [wi - lr * gi for wi, gi in zip(w, g_sharp)]
    plain = [wi - lr * gi for wi, gi in zip(w, g)]
    return sam, loss_at_w, plain


# ---------------------------------------------------------------------------- mAcc
def check_macc(fn, verbose: bool = True) -> bool:
    """`fn(y_true, y_pred)` -> mean class accuracy, a fraction in 0..1.

    The accuracy of each class (correct / samples of that class), averaged over the
    classes that occur in y_true, so a rare class counts as much as a common one.
    Tried on imbalanced labels given as lists, NumPy arrays and torch tensors.
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    def trial():
        rng = np.random.default_rng(13)
        cases = []
        for n, classes in [(40, 3), (500, 7), (60, 8)]:
            weights = rng.dirichlet(np.ones(classes) * 0.7)
            y_true = rng.choice(classes, size=n, p=weights)
            y_true[:classes] = np.arange(classes)          # every class occurs
            y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, classes, n))
            cases.append((y_true, y_pred))
        cases.append((np.array([0, 0, 0, 0, 0, 0, 1, 2]), np.zeros(8, dtype=int)))   # always "0"
        kinds = [lambda a: a.tolist(), lambda a: a, torch.as_tensor]
        for i, (y_true, y_pred) in enumerate(cases):
            want = balanced_accuracy_score(y_true, y_pred)
            convert = kinds[i % len(kinds)]
            got = fn(convert(y_true.copy()), convert(y_pred.copy()))
            try:
                got = float(got)
            except (TypeError, ValueError):
                raise _Mismatch(f"expected a number, got {type(got).__name__}") from None
            if abs(got - want) > 1e-6:
                hint = ""
                if abs(got - 100 * want) < 1e-4:
                    hint = " Hint: return a fraction in 0..1, not a percentage."
                elif abs(got - accuracy_score(y_true, y_pred)) < 1e-9:
                    hint = " Hint: that is the plain accuracy; average the per-class accuracies instead."
                raise _Mismatch(f"on case {i + 1} ({len(y_true)} samples, {len(set(y_true.tolist()))} "
                                f"classes) you returned {got:.4f}, expected {want:.4f}.{hint}")
        return "Matches sklearn's balanced_accuracy_score on imbalanced labels."
    return _verdict("mean class accuracy", trial, verbose)


# ------------------------------------------------------ 00: from logits to a verdict
def check_expression_verdict(fn, verbose: bool = True) -> bool:
    """`fn(logits, classes, k)` -> the k most probable classes as [(name, probability)], best first.

    Compared with torch.softmax on random logits and on logits of +-1000, where a softmax
    that does not subtract the largest logit first overflows to NaN.
    """
    names = ["Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral"]

    def trial():
        torch.manual_seed(1)
        for logits in (torch.randn(7) * 3, torch.tensor([1000.0, 999.0, 0, 0, 0, 0, -1000.0])):
            got = list(fn(logits.clone(), names, 3))
            want = torch.softmax(logits.double(), 0)
            top = torch.argsort(want, descending=True)[:3]
            if len(got) != 3:
                raise _Mismatch(f"expected 3 (name, probability) pairs, got {len(got)}")
            if [name for name, _ in got] != [names[int(i)] for i in top]:
                raise _Mismatch(f"wrong classes or order: {got}; the most probable comes first")
            probabilities = [float(p) for _, p in got]
            if any(np.isnan(probabilities)):
                raise _Mismatch("NaN probabilities for logits of ±1000. Hint: subtract the largest logit "
                                "before exp(): the softmax is the same and exp() cannot overflow.")
            if any(abs(p - float(want[i])) > 1e-6 for p, i in zip(probabilities, top)):
                raise _Mismatch(f"wrong probabilities: {got}")
        return "Also for logits of ±1000."
    return _verdict("expression_verdict", trial, verbose)


# ------------------------------------------------------- 01: class weights and splits
def check_class_weights(fn, verbose: bool = True) -> bool:
    """`fn(counts)` -> inverse-frequency weights N / (C * n_c), one per class.

    Balanced counts give ones; RAF-DB's training counts give the formula's weights, and
    every class then weighs the same in total.
    """
    from .data.labels import RAF_DB_COUNTS

    def trial():
        ones = torch.as_tensor(fn([50] * 7), dtype=torch.float64)
        if tuple(ones.shape) != (7,):
            raise _Mismatch(f"expected 7 weights, got shape {tuple(ones.shape)}")
        if not torch.allclose(ones, torch.ones(7, dtype=torch.float64)):
            raise _Mismatch(f"a balanced set should give all ones, got {ones.numpy().round(3)}")
        counts = list(RAF_DB_COUNTS["train"])
        weights = torch.as_tensor(fn(counts), dtype=torch.float64)
        want = sum(counts) / (len(counts) * torch.tensor(counts, dtype=torch.float64))
        if not torch.allclose(weights, want, rtol=1e-5):
            hint = ""
            if torch.allclose(weights, 1 / torch.tensor(counts, dtype=torch.float64), rtol=1e-5):
                hint = " Hint: 1 / n_c has the right shape but not the scale: multiply by N / C."
            raise _Mismatch(f"RAF-DB weights {weights.numpy().round(3)}, expected {want.numpy().round(3)}.{hint}")
        return f"On RAF-DB fear weighs {float(weights[1]):.2f}, happiness {float(weights[3]):.2f}."
    return _verdict("class_weights", trial, verbose)


def check_split_by_identity(fn, verbose: bool = True) -> bool:
    """`fn(identities, val_fraction, seed)` -> (train indices, val indices): a partition of all
    images with no person in both and about `val_fraction` of the people in val, the same
    for the same seed."""
    def trial():
        rng = np.random.default_rng(3)
        identities = rng.integers(1000, 1100, size=2000)            # 100 people, ~20 images each
        train_idx, val_idx = (np.asarray(a) for a in fn(identities, 0.2, 0))
        if len(np.intersect1d(train_idx, val_idx)):
            raise _Mismatch("an image is in both splits")
        if not np.array_equal(np.sort(np.concatenate([train_idx, val_idx])), np.arange(len(identities))):
            raise _Mismatch("the two splits together should hold every image exactly once")
        shared = set(identities[train_idx]) & set(identities[val_idx])
        if shared:
            raise _Mismatch(f"{len(shared)} people appear in both splits, e.g. {sorted(shared)[:3]}. "
                            "Hint: choose people first, then take all their images.")
        share = len(set(identities[val_idx])) / len(set(identities))
        if not 0.15 <= share <= 0.25:
            raise _Mismatch(f"{share:.0%} of the people are in val, expected about 20%")
        if not np.array_equal(np.asarray(fn(identities, 0.2, 0)[1]), val_idx):
            raise _Mismatch("the same seed should give the same split")
        return f"{len(train_idx)} train / {len(val_idx)} val images, {share:.0%} of the people in val."
    return _verdict("split_by_identity", trial, verbose)


# ------------------------------------------------- 07: how many test faces for a finding
def check_test_faces_needed(fn, verbose: bool = True) -> bool:
    """`fn(gap, accuracy)` -> the smallest number n of test faces for which a difference of
    `gap` between two rows (both fractions) clears notebook 07's noise bar,
    2 * sqrt(2) * sqrt(p (1 - p) / n): twice the standard error of a difference of two
    rows of about accuracy p, each measured on n faces."""
    def bar(p, n):
        return 2 * np.sqrt(2) * np.sqrt(p * (1 - p) / n)

    def trial():
        for gap, p in [(0.0085, 0.90), (0.036, 0.45), (0.10, 0.5), (0.02, 0.7)]:
            got = fn(gap, p)
            try:
                n = int(got)
            except (TypeError, ValueError):
                raise _Mismatch(f"expected a whole number of faces, got {type(got).__name__}") from None
            if n != got:
                raise _Mismatch(f"expected a whole number of faces, got {got}. Hint: round up (math.ceil).")
            if n >= 1 and bar(p, n) <= gap * (1 + 1e-9) and (n == 1 or bar(p, n - 1) > gap * (1 - 1e-9)):
                continue
            want = int(np.ceil(8 * p * (1 - p) / gap ** 2 - 1e-9))
            hints = {int(np.ceil(4 * p * (1 - p) / gap ** 2)): "the bar is for a difference of two rows, "
                     "so one row's standard error is multiplied by sqrt(2) (and by 2 for the bar)",
                     int(np.ceil(2 * p * (1 - p) / gap ** 2)): "the bar is twice the standard error "
                     "of the difference, not one",
                     int(np.ceil(8 * p * (1 - p) / (100 * gap) ** 2)): "gap and accuracy are fractions here, "
                     "not percentage points"}
            hint = hints.get(n, "")
            raise _Mismatch(f"for a gap of {gap} at accuracy {p} you returned {n}, expected {want}."
                            + (f" Hint: {hint}." if hint else ""))
        return (f"A 0.85-point gap at 90% accuracy needs {int(fn(0.0085, 0.90)):,} test faces per row "
                "to be a finding.")
    return _verdict("test_faces_needed", trial, verbose)


# ------------------------------------------------------------ 08: AffectNet's labels
def check_affectnet_to_ours(fn, verbose: bool = True) -> bool:
    """`fn(label)` -> the package's class index (RAF-DB's order, Contempt last) for an
    AffectNet label (0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger,
    7 Contempt). Compared with the loader's own table for all eight labels."""
    from .data.labels import AFFECTNET_ORDER, AFFECTNET_TO_CLASSES, CLASSES_8

    def trial():
        got = [fn(label) for label in range(8)]
        if got == list(range(8)):
            raise _Mismatch("you returned every label unchanged. Hint: AffectNet counts Neutral first, "
                            "the package counts Surprise first (RAF-DB's order).")
        if got == [k + 1 for k in AFFECTNET_TO_CLASSES]:
            raise _Mismatch("every index is one too high. Hint: the package counts from 0 (RAF-DB's label "
                            "file counts from 1).")
        for label, (mine, want) in enumerate(zip(got, AFFECTNET_TO_CLASSES)):
            if mine != want:
                name = CLASSES_8[mine] if isinstance(mine, int) and 0 <= mine < len(CLASSES_8) else repr(mine)
                raise _Mismatch(f"AffectNet's {label} ({AFFECTNET_ORDER[label]}) became {mine} ({name}); "
                                f"expected {want} ({CLASSES_8[want]})")
        return "All eight AffectNet labels land on the package's classes."
    return _verdict("affectnet_to_ours", trial, verbose)


# ------------------------------------------------ 09: POSTER V2's window cross-attention
def check_window_cross_attention(cls_or_fn, verbose: bool = True) -> bool:
    """POSTER V2's window cross-attention against poster_lite's WindowCrossAttention.

    Either a class, built as `cls(dim=..., num_heads=..., window=...)` with the package's
    names (`relative_position_bias_table`, (2w-1)^2 x heads; the buffer
    `relative_position_index`, w*w x w*w; `kv` = Linear(C, 2C), keys then values; `proj`),
    whose `forward(queries, context)` maps windows x w*w x C to windows x w*w x C; or a
    function `fn(queries, context, attn)` that computes the output from the layers of
    `attn`, a WindowCrossAttention. Tried at three sizes with a random bias table, so a
    missing or transposed position bias, swapped keys and values or a missing scale show.
    """
    from .models.window_attention import WindowCrossAttention

    def trial():
        torch.manual_seed(9)
        for dim, heads, window, windows in [(32, 2, 4, 3), (24, 3, 3, 2), (16, 1, 5, 1)]:
            ref = WindowCrossAttention(dim, heads, window, fused=False).eval()
            _randomise(ref)
            with torch.no_grad():
                ref.relative_position_bias_table.normal_()      # zeros at first: any bias would pass
            cells = window * window
            queries, context = torch.randn(windows, cells, dim), torch.randn(windows, cells, dim)
            with torch.no_grad():
                want = ref(queries, context)
                got = _as_tensor(_run_window_attention(cls_or_fn, ref, dim, heads, window, queries, context),
                                 "The attention's output")
                where = f"With C={dim}, {heads} head(s), a {window}x{window} window: the output"
                if tuple(got.shape) == tuple(want.shape) and not torch.allclose(got.to(want.dtype), want,
                                                                               atol=1e-5, rtol=0):
                    slip = _window_slip(ref, queries, context, got)
                    if slip:
                        raise _Mismatch(f"{where} has the right shape but wrong values. Hint: {slip}.")
                _compare(got, want, where, atol=1e-5)
        return ("Matches poster_lite's WindowCrossAttention: landmark queries as they are, keys and values "
                "from one Linear, and the relative position bias of every cell pair.")
    return _verdict("window cross-attention", trial, verbose)


def _run_window_attention(cls_or_fn, ref, dim, heads, window, queries, context):
    if not inspect.isclass(cls_or_fn):
        return cls_or_fn(queries, context, ref)
    wanted = dict(dim=dim, num_heads=heads, window=window)
    accepted = inspect.signature(cls_or_fn).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        wanted = {k: v for k, v in wanted.items() if k in accepted}
    mine = _build(cls_or_fn, "your window cross-attention", **wanted)
    index = dict(mine.named_buffers()).get("relative_position_index")
    if index is not None:
        # The buffer is about to be overwritten by poster_lite's: check the student's own first.
        want = ref.relative_position_index
        if tuple(index.shape) != tuple(want.shape):
            raise _Mismatch(f"relative_position_index is {tuple(index.shape)}, expected {tuple(want.shape)}: "
                            "one row and one column per cell of the window (w*w of each)")
        if not torch.equal(index.long(), want):
            hint = ("it is transposed: the offset is (row of the query cell - row of the key cell, and the "
                    "same for columns), shifted by w-1" if torch.equal(index.long().T, want) else
                    "index[p, q] = (i_p - i_q + w - 1) * (2w - 1) + (j_p - j_q + w - 1) for cells "
                    "p = (i_p, j_p) and q = (i_q, j_q), numbered row by row")
            raise _Mismatch(f"relative_position_index differs from poster_lite's. Hint: {hint}.")
    _share_weights(mine, ref, "WindowCrossAttention", {
        "relative_position_index": "register the index with self.register_buffer(...) (persistent): "
                                   "the release's checkpoints hold it.",
        "bias_table": "the table has (2w-1)^2 rows (one per offset) and one column per head.",
        "kv": "keys and values come from one nn.Linear(C, 2C) named kv; the queries have no projection.",
    })
    return mine.eval()(queries, context)


def _window_by_hand(attn, queries, context, bias="index", swap_kv=False, scale=True):
    B, N, C = context.shape
    h = attn.num_heads
    q = queries.reshape(B, N, h, C // h).transpose(1, 2)
    k, v = attn.kv(context).reshape(B, N, 2, h, C // h).permute(2, 0, 3, 1, 4)
    if swap_kv:
        k, v = v, k
    scores = q @ k.transpose(-2, -1) * (attn.scale if scale else 1.0)
    table = attn.relative_position_bias_table
    if bias == "index":
        scores = scores + table[attn.relative_position_index].permute(2, 0, 1)
    elif bias == "transposed":
        scores = scores + table[attn.relative_position_index.T].permute(2, 0, 1)
    elif bias == "no permute":
        scores = scores + table[attn.relative_position_index].reshape(h, N, N)
    out = scores.softmax(-1) @ v
    return attn.proj(out.transpose(1, 2).reshape(B, N, C))


def _window_slip(ref, queries, context, got) -> str:
    slips = [(dict(bias="none"), "the relative position bias is missing: add table[index] (heads x N x N) "
                                 "to the scaled scores before the softmax"),
             (dict(bias="transposed"), "the bias is transposed: use index[query cell, key cell], "
                                       "not index[key cell, query cell]"),
             (dict(bias="no permute"), "the bias table[index] is N x N x heads; move the head axis first "
                                       "(permute(2, 0, 1)) instead of reshaping it"),
             (dict(swap_kv=True), "keys and values are swapped: the first C outputs of kv are the keys"),
             (dict(scale=False), "the scores are not scaled by head_dim ** -0.5")]
    for flags, hint in slips:
        if ref.num_heads == 1 and "bias" in flags and flags["bias"] == "no permute":
            continue                  # the same numbers with a single head
        if torch.allclose(got.to(queries.dtype), _window_by_hand(ref, queries, context, **flags), atol=1e-5):
            return hint
    return ""


# ---------------------------------------------------------- 05: one step of POSTER's training
def check_training_step(fn, verbose: bool = True) -> bool:
    """`fn(net, images, labels, optimizer, sam)` performs ONE training step of POSTER's recipe.

    The loss is CE + 2 x label-smoothed CE (smoothing 0.2). The step: clear the gradients;
    forward and backward at the weights w; `sam.ascend()` (to w + e, gradients cleared);
    forward and backward at w + e; `sam.restore()` (back to w); `optimizer.step()`, which
    moves w with the gradient taken at w + e. Returning the loss at w (a number, a tensor,
    or (loss, logits)) is optional.

    The check runs your step on a small random network whose parameters still hold the
    gradients of an earlier step (as they do in a training loop), with SGD as the optimiser
    (its step shows the gradient directly; in training it is Adam), and compares the weights
    afterwards with those of poster_lite's own `training_step` from the same start.
    """
    from .losses import PosterLoss
    from .sam import SAM
    from .training.loop import training_step

    def trial():
        torch.manual_seed(12)
        net = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 7))
        net[0].requires_grad_(False)                     # frozen, like POSTER's landmark network
        images, labels = torch.randn(28, 12), torch.arange(28) % 7
        lr, rho = 0.5, 0.2
        stale = [torch.randn_like(p) for p in net.parameters() if p.requires_grad]

        def start():
            """A copy of the network holding the earlier step's gradients, its SGD and its SAM."""
            copied = copy.deepcopy(net).train()
            params = [p for p in copied.parameters() if p.requires_grad]
            for p, g in zip(params, stale):
                p.grad = g.clone()
            optimizer = torch.optim.SGD(params, lr=lr)
            return copied, optimizer, SAM(optimizer, rho)

        reference, optimizer, sam = start()
        want_loss, _ = training_step(reference, images, labels, PosterLoss(0.2, 2.0), optimizer, sam)
        want = [p.detach() for p in reference.parameters()]
        mine, optimizer, sam = start()
        returned = fn(mine, images, labels, optimizer, sam)
        got = [p.detach() for p in mine.parameters()]
        if any(tuple(g.shape) != tuple(w.shape) for g, w in zip(got, want)):
            raise _Mismatch("the network's parameters changed shape")
        if not _same_weights(got, want):
            if _same_weights(got, [p.detach() for p in net.parameters()]):
                raise _Mismatch("the weights did not change: the step ends with optimizer.step()")
            slip = _training_step_slip(net, images, labels, lr, rho, stale, got)
            largest = max((g - w).abs().max().item() for g, w in zip(got, want))
            raise _Mismatch(f"the weights after your step differ from poster_lite's training_step "
                            f"(largest difference {largest:.3g}). " + (f"Hint: {slip}." if slip else
                            "Check the order: zero_grad, loss at w, backward, sam.ascend(), loss at w + e, "
                            f"backward, sam.restore(), optimizer.step(); use the `sam` passed in (rho = {rho} "
                            "here) and POSTER's loss, CE + 2 x LSCE(0.2)."))
        if isinstance(returned, (tuple, list)) and returned:
            returned = returned[0]
        if isinstance(returned, (torch.Tensor, float, int)) and not isinstance(returned, bool):
            value = float(returned.detach() if isinstance(returned, torch.Tensor) else returned)
            if abs(value - want_loss.item()) > 1e-5 * max(1.0, abs(want_loss.item())):
                raise _Mismatch(f"the weights are right, but the returned loss {value:.5f} is not the loss "
                                f"at the starting weights w ({want_loss.item():.5f}): return the first pass's loss")
        return "Same weights as poster_lite's training_step after one SAM step with POSTER's loss."
    return _verdict("training step", trial, verbose)


def _same_weights(got, want, atol: float = 1e-5) -> bool:
    return all(torch.allclose(g.float(), w.float(), atol=atol, rtol=0) for g, w in zip(got, want))


def _step_by_hand(net, images, labels, lr, rho, stale, loss_fn, clear_first=True, ascend=True, restore=True,
                  clear_between=True):
    """The weights after one SGD step, SAM's pieces switched on and off one at a time."""
    net = copy.deepcopy(net).train()
    params = [p for p in net.parameters() if p.requires_grad]

    def gradient():
        return torch.autograd.grad(loss_fn(net(images), labels), params)

    grads = [(0 if clear_first else s) + g for s, g in zip(stale, gradient())]
    if ascend:
        norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
        offsets = [rho * g / norm for g in grads]
        with torch.no_grad():
            for p, e in zip(params, offsets):
                p.add_(e)
        grads = [(0 if clear_between else g) + g2 for g, g2 in zip(grads, gradient())]
        if restore:
            with torch.no_grad():
                for p, e in zip(params, offsets):
                    p.sub_(e)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(lr * g)
    return [p.detach() for p in net.parameters()]


def _training_step_slip(net, images, labels, lr, rho, stale, got) -> str:
    """The usual slip that gives exactly the student's weights, as a hint ("" if none does)."""
    from .losses import LabelSmoothingCrossEntropy, PosterLoss

    poster = PosterLoss(0.2, 2.0)
    smoothed = LabelSmoothingCrossEntropy(0.2)
    slips = [
        (dict(ascend=False), "your weights moved like one plain step with the gradient at w. SAM steps with the "
                             "gradient at w + e: after the first backward call sam.ascend(), run the second forward "
                             "and backward there, then sam.restore(), and only then optimizer.step()"),
        (dict(restore=False), "the step was taken from w + e instead of w: call sam.restore() after the second "
                              "backward, before optimizer.step()"),
        (dict(clear_first=False), "the gradients left over from the previous step were added to the first pass: "
                                  "start the step with optimizer.zero_grad()"),
        (dict(clear_between=False), "the second gradient was added to the first: clear the gradients between the "
                                    "passes (sam.ascend() does it for you)"),
    ]
    for flags, hint in slips:
        if _same_weights(got, _step_by_hand(net, images, labels, lr, rho, stale, poster, **flags)):
            return hint
    wrong_losses = [
        ("plain cross-entropy", nn.CrossEntropyLoss()),
        ("CE + 1 x LSCE(0.2)", PosterLoss(0.2, 1.0)),
        ("CE + 2 x CE (no label smoothing)", PosterLoss(0.0, 2.0)),
        ("2 x LSCE(0.2) without the plain CE", lambda logits, y: 2 * smoothed(logits, y)),
        ("LSCE(0.2) alone", smoothed),
    ]
    for name, loss_fn in wrong_losses:
        if _same_weights(got, _step_by_hand(net, images, labels, lr, rho, stale, loss_fn)):
            return (f"your step matches SAM with the loss {name}. POSTER's loss is CE + 2 x LSCE(0.2): "
                    "F.cross_entropy(logits, labels) + 2 * F.cross_entropy(logits, labels, label_smoothing=0.2)")
    return ""
