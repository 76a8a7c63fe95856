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

__all__ = ["check_attention", "check_cross_fusion_block", "check_pyramid_updown",
           "check_sam_step", "check_macc"]


class _Mismatch(Exception):
    """A wrong answer (as opposed to code that crashed)."""


def _verdict(name: str, trial, verbose: bool) -> bool:
    """Run `trial()`; print one verdict for exercise `name`; True if it passed."""
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
