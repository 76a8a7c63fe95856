"""The fast inference path agrees with the faithful one (correctness only, no timing)."""
import copy

import pytest
import torch

import poster_lite as pl
from poster_lite.device import resolve_precision
from poster_lite.fast import FastModel, fast, fold_batchnorm

# bf16 keeps 8 bits of mantissa: logits of a small model drift by ~1e-2.
BF16_LOGIT_TOL = 0.1


@pytest.fixture
def trained_like_nano():
    """A nano model with non-trivial BatchNorm statistics (as after training)."""
    torch.manual_seed(0)
    model = pl.build_model("poster-nano").eval()
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
            m.weight.data.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return model


def test_bn_folding_is_exact_in_fp32(trained_like_nano):
    x = torch.randn(4, 3, 112, 112)
    folded = fold_batchnorm(copy.deepcopy(trained_like_nano))
    n_bn = lambda m: sum(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())
    assert n_bn(folded) < n_bn(trained_like_nano)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), trained_like_nano(x), rtol=0, atol=1e-5)


def test_fast_fp32_matches(trained_like_nano):
    x = torch.randn(4, 3, 112, 112)
    f = fast(trained_like_nano, precision="fp32")
    with torch.no_grad():
        torch.testing.assert_close(f(x), trained_like_nano(x), rtol=0, atol=1e-5)


def test_fast_bf16_agrees_on_top1(trained_like_nano):
    torch.manual_seed(3)
    x = torch.randn(16, 3, 112, 112)
    f = fast(trained_like_nano, precision="bf16")
    assert f.precision == "bf16" and next(f.model.parameters()).dtype == torch.bfloat16
    with torch.no_grad():
        ref = trained_like_nano(x)
    out = f(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert (out - ref).abs().max().item() < BF16_LOGIT_TOL
    # Top-1 may only differ where the faithful model itself hesitates.
    top2 = ref.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 2 * BF16_LOGIT_TOL
    assert torch.equal(out.argmax(1)[clear], ref.argmax(1)[clear])
    torch.testing.assert_close(f.forward_features(x), trained_like_nano.forward_features(x),
                               rtol=0.05, atol=0.1)


def test_switch_is_respected(trained_like_nano, monkeypatch):
    assert fast(trained_like_nano, enabled=False) is trained_like_nano
    monkeypatch.setenv("POSTER_LITE_FAST", "0")
    assert fast(trained_like_nano) is trained_like_nano
    monkeypatch.delenv("POSTER_LITE_FAST")
    f = fast(trained_like_nano, precision="fp32")
    assert isinstance(f, FastModel) and f.precision == "fp32"
    assert next(f.model.parameters()).dtype == torch.float32
    # The original is untouched (still has its BatchNorms, still trainable).
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in trained_like_nano.modules())
    assert trained_like_nano.head.weight.requires_grad
    with pytest.raises(RuntimeError, match="inference only"):
        f.train()


def test_precision_names():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("auto", cpu) in ("bf16", "fp32")
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("int8", cpu)


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_bf16_training_on_cpu_uses_the_explicit_attention_then_restores_it(precision, one_thread):
    """The fused CPU kernel's bf16 backward is slow for small heads: bf16 training on a
    CPU runs the explicit path (same maths), and the model comes back with fused attention."""
    torch.manual_seed(0)
    model = pl.build_model("poster-nano")
    seen = []
    attention = next(iter(model.attention_modules().values()))
    attention.register_forward_pre_hook(lambda module, args: seen.append(module.fused))
    data = torch.utils.data.TensorDataset(torch.randn(8, 3, 112, 112), torch.arange(8) % 7)
    pl.train(model, data, data, epochs=1, batch_size=4, precision=precision, progress=False, sam=False,
             allow_random_landmarks=True)
    training_calls = seen[:2]                     # two training batches come before the evaluations
    assert training_calls == ([False, False] if precision == "bf16" else [True, True])
    assert all(m.fused for m in model.modules() if hasattr(m, "fused"))
