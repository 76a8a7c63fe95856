"""`make zoo`: the shipped models of poster_lite/shipped/, made again from nothing (or exported).

    python tools/zoo.py                      # pretrain + train + export (about 70 min on 2 CPU cores)
    python tools/zoo.py --export-only        # convert the trained models already in the cache
    python tools/zoo.py --export-only --models poster-v2-nano   # only this one; the rest stay as shipped
    python tools/zoo.py --data /tmp/zoo      # work in another data folder (POSTER_LITE_DATA)

Steps, each skipped when its result is cached in the data folder ($POSTER_LITE_DATA, else
data/): pretrain the nano backbones (`pl.pretrain_backbones`, cache/backbones/poster-nano/),
train poster-nano, image-only-nano and poster-v2-nano with the default recipe
(`pl.trained_model(name, source="train")`, cache/models/<name>/best), then export. For a clean
regeneration use an empty data folder: nothing here deletes a cache.

A model with no trained run in the cache keeps its shipped file and manifest entry, and a file
whose exported bytes equal the shipped ones is not rewritten (nor re-scored): exporting one newly
trained model adds it and leaves the other shipped files byte for byte as they were.

Export writes into poster_lite/shipped/, each file atomically:
- <name>.safetensors: the trained weights, floating-point parameters in half precision,
  BatchNorm statistics in float32 (they are small and their precision matters);
- backbones-poster-nano.safetensors: ir50.pth and mobilefacenet_model_best.pth.tar of the
  cache, keys prefixed `ir50.` / `mobilefacenet.`;
- manifest.json: per model its config, classes, recipe, command, dates, the SynthFER test
  split's fingerprint and the test accuracy of the exported weights, measured here in float32
  through the fast inference path (`pl.fast(model, precision="fp32")`). That accuracy is what
  `pl.trained_model()` reports and what tests/test_shipped.py checks.
The files together must stay under 15 MB (checked).
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "poster_lite" / "shipped"
MODELS = ("poster-nano", "image-only-nano", "poster-v2-nano")
# image-only-nano shares poster-nano's IR-50, poster-v2-nano both of its backbones (a like-for-like V1 vs V2)
BACKBONE_PRESET = "poster-nano"
SIZE_LIMIT_MB = 15.0
# Kept at full precision: normalisation statistics (tiny, and half precision would shift them).
FLOAT32_SUFFIXES = ("running_mean", "running_var")


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def half(state: dict) -> dict:
    """Floating tensors to float16 except BatchNorm statistics; contiguous copies for safetensors."""
    import torch
    out = {}
    for key, value in state.items():
        value = value.detach().cpu()
        if value.is_floating_point() and not key.endswith(FLOAT32_SUFFIXES):
            value = value.to(torch.float16)
        out[key] = value.contiguous().clone()
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped_accuracy(name: str, test_set) -> float:
    """Test accuracy of the exported file, loaded as users load it, scored in float32."""
    import poster_lite as pl
    from poster_lite import shipped
    model = shipped.load_model(name)
    return pl.evaluate(pl.fast(model, device="cpu", precision="fp32"), test_set)["accuracy"]


def rebuilt_buffers(config: dict, state: dict) -> list:
    """Keys of integer tables (more than one element) that a model built from `config` computes itself
    and that equal the trained ones: POSTER V2's window attention stores each window's relative-position
    index (784 x 784 int64 for the nano's largest window, 5 MB of the 8.9 MB file). They are not learned,
    so they are not shipped; the loader takes them from the freshly built model (manifest: rebuilt_on_load)."""
    from poster_lite.config import config_from_dict
    from poster_lite.models import build_model

    fresh = build_model(config_from_dict(config)).state_dict()
    return [k for k, v in state.items()
            if not v.is_floating_point() and v.numel() > 1 and k in fresh and torch_equal(fresh[k], v)]


def torch_equal(a, b) -> bool:
    import torch
    return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))


def write_if_changed(tensors: dict, path: Path, metadata: dict) -> bool:
    """Write the safetensors file unless the same content is already there (then its date and the
    manifest entry that describes it stay as they are). Returns whether it wrote."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save

    from poster_lite.checkpoint import atomic_write
    metadata = {k: str(v) for k, v in metadata.items()}
    blob = save(tensors, metadata=metadata)
    if path.exists():
        # Compared by content, not bytes: safetensors may order the metadata differently run to run.
        with safe_open(str(path), "pt") as shipped_file:
            same = (shipped_file.metadata() or {}) == metadata and set(shipped_file.keys()) == set(tensors) and all(
                shipped_file.get_tensor(k).dtype == v.dtype and torch.equal(shipped_file.get_tensor(k), v)
                for k, v in tensors.items())
        if same:
            return False
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(blob))
    return True


def export_backbones(folder: Path, previous: dict) -> dict:
    """The pretrained nano backbones of `folder` as one safetensors file and its manifest entry
    (the previous entry when the bytes are the shipped ones)."""
    import torch

    from poster_lite.pretrain import IMAGE_FILE, LANDMARK_FILE

    image = torch.load(folder / IMAGE_FILE, map_location="cpu", weights_only=True)
    landmark = torch.load(folder / LANDMARK_FILE, map_location="cpu", weights_only=True)["state_dict"]
    tensors = {**{f"ir50.{k}": v for k, v in image.items()}, **{f"mobilefacenet.{k}": v for k, v in landmark.items()}}
    file_name = f"backbones-{BACKBONE_PRESET}.safetensors"
    wrote = write_if_changed(half(tensors), SHIPPED / file_name, {"preset": BACKBONE_PRESET, "format": "release layout"})
    if not wrote and previous.get("sha256") == sha256(SHIPPED / file_name):
        print(f"{file_name}: the cached backbones are the shipped ones (file unchanged)")
        return {**previous, "shared_by": list(MODELS)}
    report = json.loads((folder / "report.json").read_text())
    for part in report.values():          # where it was made is not part of what it is
        part.pop("file", None)
    print(f"exported {file_name}: {(SHIPPED / file_name).stat().st_size / 1e6:.2f} MB")
    return {"file": file_name, "sha256": sha256(SHIPPED / file_name), "shared_by": list(MODELS),
            "recipe": "pl.pretrain_backbones: IR-50 on SynthFER identities (CosFace), MobileFaceNet on its "
                      "68 landmarks, 2 epochs each",
            "command": "pl.pretrain_backbones('poster-nano', epochs=2)  # make zoo",
            "date": datetime.datetime.fromtimestamp((folder / IMAGE_FILE).stat().st_mtime,
                                                    datetime.timezone.utc).isoformat(timespec="seconds"),
            "report": report}


def export_model(name: str, best: Path, previous: dict, provenance: dict, test_set) -> dict:
    """One trained model of the cache (`best`) as <name>.safetensors and its manifest entry, with the
    test accuracy of the exported (half-precision) file: what users get. When the bytes are those
    already shipped, the previous entry stays (its accuracy was measured on these very weights)."""
    import poster_lite as pl
    from poster_lite.checkpoint import read_checkpoint_file
    from poster_lite.model_cache import RUN_SETTINGS
    from poster_lite.training.recipe import default_lr

    plan = RUN_SETTINGS["default"]
    contents = read_checkpoint_file(best)
    meta = contents["meta"]
    file_name = f"{name}.safetensors"
    rebuilt = rebuilt_buffers(meta["config"], contents["state_dict"])
    weights = {k: v for k, v in contents["state_dict"].items() if k not in rebuilt}
    wrote = write_if_changed(half(weights), SHIPPED / file_name, {"model": name})
    if not wrote and previous.get("sha256") == sha256(SHIPPED / file_name) and "test_accuracy" in previous:
        print(f"{file_name}: the cached {name} is the shipped one (file and entry unchanged)")
        return previous
    from poster_lite.model_cache import run_record

    run = run_record(best.parent)                     # {"history": ..., how the run ended}
    ending = {k: v for k, v in run.items() if k != "history"}
    entry = {"file": file_name, "sha256": sha256(SHIPPED / file_name), "config": meta["config"],
             "classes": meta["classes"], "channel_order": meta.get("channel_order", "rgb"),
             **({"rebuilt_on_load": rebuilt} if rebuilt else {}),
             # the training run's own recipe (pl.training.Recipe fields), and what it ran on
             "recipe": {**meta.get("recipe", {"lr": default_lr(pl.make_config(name)), "sam": plan["sam"]}),
                        "epochs": ending.get("max_epochs", plan["epochs"]), "patience": ending.get("patience"),
                        "train_images": "all SynthFER training faces",
                        "backbones": f"pretrained nano backbones (backbones-{BACKBONE_PRESET}.safetensors)",
                        "shipped_weights": "float16 (BatchNorm statistics float32)"},
             "batch_size": meta.get("batch_size", plan["batch_size"]), "training_precision": meta.get("precision"),
             "command": f"pl.trained_model({name!r}, source='train')  # make zoo",
             "date": datetime.datetime.fromtimestamp(best.stat().st_mtime,
                                                     datetime.timezone.utc).isoformat(timespec="seconds"),
             **provenance, "epoch": meta.get("epoch"),
             # validation metrics of the chosen epoch (a test score measured during training, in its
             # precision, is left out: test_accuracy below is the shipped file's)
             "metrics_at_training": {k: v for k, v in meta.get("metrics", {}).items() if not k.startswith("test")},
             "history": run.get("history", []), **ending}
    return entry


def write_manifest(manifest: dict) -> None:
    from poster_lite.checkpoint import atomic_write
    atomic_write(SHIPPED / "manifest.json", lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1) + "\n"))


def export(cache: Path, trained_on: Path, names=MODELS) -> dict:
    """Export the trained models `names` of `cache` (a data folder's cache/), which were trained on the
    SynthFER set in `trained_on`; they are scored on the set the current code draws (the default data
    folder's), which must have the same test split (checked by fingerprint).

    A model of `names` with no trained run in the cache keeps its shipped file and manifest entry, and
    so do the backbones; a file whose exported bytes equal the shipped ones is not rewritten. So exporting
    one newly trained model adds it and leaves every other shipped file byte for byte as it was."""
    import torch

    from poster_lite import shipped
    from poster_lite.data import data_dir, load

    SHIPPED.mkdir(parents=True, exist_ok=True)
    test_set = load("synthfer", split="test")           # drawn by this code (made or regenerated if stale)
    current = data_dir() / "synthfer"
    stamp = json.loads((current / "synthfer.json").read_text())
    fingerprint = shipped.split_fingerprint(current)
    if trained_on.resolve() != current.resolve():
        theirs = shipped.split_fingerprint(trained_on)     # read from the files: never regenerates that set
        if theirs != fingerprint:
            raise SystemExit(f"the models were trained with the SynthFER of {trained_on} (test split {theirs}); "
                             f"this code draws another test split ({fingerprint}): retrain with `make zoo`")
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    previous = shipped.manifest()
    provenance = {"dataset": {"name": "synthfer", "split": "test", "n": len(test_set), "seed": stamp["seed"],
                              "generator": stamp["generator"], "fingerprint": fingerprint},
                  "data": f"trained in {trained_on.parent}; scored on the test split drawn by this code "
                          "(same fingerprint)",
                  "exported": now, "git_commit": git_commit()}
    manifest = {"what": "small trained models shipped with poster-lite (read by pl.trained_model)",
                "regenerate": "make zoo (pretrain + train + export); make zoo ZOO_ARGS=--export-only",
                "exported": now, "git_commit": provenance["git_commit"],
                "data": "each model's `data` says where it was trained and how it was scored",
                "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                            "torch": torch.__version__},
                "backbones": {}, "models": {}}

    old_backbones = previous.get("backbones", {}).get(BACKBONE_PRESET, {})
    folder = cache / "backbones" / BACKBONE_PRESET
    if (folder / "report.json").exists():
        manifest["backbones"][BACKBONE_PRESET] = export_backbones(folder, old_backbones)
    elif old_backbones:
        manifest["backbones"][BACKBONE_PRESET] = {**old_backbones, "shared_by": list(MODELS)}
    for name in MODELS:
        old = dict(previous.get("models", {}).get(name, {}))
        if old:       # entries of older exports: where they were made was said once for all
            for key in ("data", "exported", "git_commit"):
                old.setdefault(key, previous.get(key))
        best = cache / "models" / name / "best"
        if name not in names or not best.exists():
            if old:
                manifest["models"][name] = old
                print(f"{name}: kept the shipped file and entry (no trained run in {best.parent} to export)")
            continue
        entry = export_model(name, best, old, provenance, test_set)
        manifest["models"][name] = entry
        if "test_accuracy" not in entry:
            write_manifest(manifest)           # the loader reads the new entry to score the exported file
            started = time.perf_counter()
            entry["test_accuracy"] = round(shipped_accuracy(name, test_set), 6)
            print(f"exported {entry['file']}: {(SHIPPED / entry['file']).stat().st_size / 1e6:.2f} MB, test "
                  f"accuracy {entry['test_accuracy']:.2%} (scored in {time.perf_counter() - started:.0f} s)")
    write_manifest(manifest)
    total = sum(p.stat().st_size for p in SHIPPED.glob("*.safetensors")) / 1e6
    if total > SIZE_LIMIT_MB:
        raise SystemExit(f"the shipped weights are {total:.1f} MB, over the {SIZE_LIMIT_MB} MB budget")
    changed = [n for n in manifest["models"]
               if previous.get("models", {}).get(n, {}).get("sha256") != manifest["models"][n]["sha256"]]
    print(f"shipped weights: {total:.2f} MB in all; manifest: {SHIPPED / 'manifest.json'}"
          + (f"; new or changed: {', '.join(changed)}" if changed else "; weights unchanged"))
    return manifest


def train_missing(names=MODELS) -> None:
    """Pretrain and train what the cache lacks (never replacing a cached result)."""
    import poster_lite as pl
    from poster_lite.pretrain import DEFAULT_PRETRAIN_EPOCHS, IMAGE_FILE, LANDMARK_FILE, backbone_dir

    folder = backbone_dir(BACKBONE_PRESET)
    if not ((folder / IMAGE_FILE).exists() and (folder / LANDMARK_FILE).exists()):
        started = time.perf_counter()
        pl.pretrain_backbones(BACKBONE_PRESET, epochs=DEFAULT_PRETRAIN_EPOCHS)     # as ensure_pretrained_backbones
        print(f"pretrained the {BACKBONE_PRESET} backbones in {(time.perf_counter() - started) / 60:.1f} min")
    for name in names:
        started = time.perf_counter()
        model = pl.trained_model(name, source="train")
        print(f"{name}: {model.meta.get('metrics', {})} ({(time.perf_counter() - started) / 60:.1f} min)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-only", action="store_true", help="only convert the cached trained models")
    parser.add_argument("--models", nargs="+", default=list(MODELS), metavar="NAME",
                        help=f"export (and train) only these (default: all of {', '.join(MODELS)}); "
                             "the others keep their shipped files")
    parser.add_argument("--data", type=Path,
                        help="data folder to train in (sets POSTER_LITE_DATA), or with --export-only to read "
                             "the trained models from (its SynthFER is only read, never regenerated)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"--models: {', '.join(unknown)} not among the shipped models ({', '.join(MODELS)})")
    if args.data and not args.export_only:
        os.environ["POSTER_LITE_DATA"] = str(args.data.expanduser().resolve())
    from poster_lite.data import data_dir
    where = args.data.expanduser().resolve() if args.data else data_dir()
    print(f"data folder: {where}")
    if not args.export_only:
        train_missing(args.models)
    cache = where / "cache"
    runs = [cache / "models" / n / "best" for n in args.models]
    if not any(p.exists() for p in runs):
        print(f"nothing to export: missing {[str(p) for p in runs]}; run `make zoo` without --export-only "
              "to train them", file=sys.stderr)
        return 2
    export(cache, where / "synthfer", tuple(args.models))
    return 0


if __name__ == "__main__":
    sys.exit(main())
