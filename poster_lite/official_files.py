"""The authors' released files, downloaded only when asked: `pl.official.fetch(dest)` or
`poster-lite fetch-official DEST`.

The authors' README (github.com/zczcwh/POSTER) links two Google Drive folders: the pretrained
backbones (`ir50.pth`, IR-50 trained for face recognition; `mobilefacenet_model_best.pth.tar`,
MobileFaceNet trained for 68 landmarks) and the trained POSTER checkpoints (RAF-DB, AffectNet).
`fetch` lists both folders, downloads every checkpoint file in them with a progress bar and
verifies each one by loading it strictly into the matching preset (`load_official_weights`:
a missing, unexpected or misshapen key is an error). A file is written under its final name
only once it has loaded; a file already in `dest` is verified and kept, never overwritten.
Nothing here runs unless called: the notebooks and tests work offline.

Google Drive folders are listed and read with `gdown` (preinstalled on Colab; elsewhere
`pip install gdown`). Any other place that serves the files by name works too, with no extra
package: `fetch(dest, source="https://my.mirror/poster/")` (or `file:///...`, or the
environment variable POSTER_LITE_OFFICIAL_URL) reads `<source>/<name>` for each name in
`names` (default: the two backbones and `rafdb_best.pth`, the names the authors' README gives).
Without a network, `fetch` prints what it could not reach and where to get the files by hand,
and returns what it had.
"""
from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

# The links in the authors' README.
BACKBONES_FOLDER = "https://drive.google.com/drive/folders/1X9pE-NmyRwvBGpVzJOEvLqRPRfk_Siwq"
CHECKPOINTS_FOLDER = "https://drive.google.com/drive/folders/1jeCPTGjBL8YgKKB9YrI9TYZywme8gymv"
RELEASE_FOLDERS = (BACKBONES_FOLDER, CHECKPOINTS_FOLDER)
# The file names the README gives (the AffectNet checkpoints come from the folder's listing).
KNOWN_NAMES = ("ir50.pth", "mobilefacenet_model_best.pth.tar", "rafdb_best.pth")
CHECKPOINT_SUFFIXES = (".pth", ".pth.tar", ".pt")
ENV_SOURCE = "POSTER_LITE_OFFICIAL_URL"


@dataclass
class Fetched:
    """One verified file: where it is and what it holds."""
    name: str
    path: Path
    what: str              # e.g. "POSTER (8 blocks) trained on RAF-DB: 7 classes, token mixers"
    trained_on: str        # "RAF-DB", "AffectNet", "face recognition (IR-50)", "68 landmarks (MobileFaceNet)"
    status: str            # "downloaded" or "already there"


def default_dest() -> Path:
    """data/official/ in the data folder ($POSTER_LITE_DATA, else the checkout's data/)."""
    from .data import data_dir
    return data_dir() / "official"


# ------------------------------------------------------------------------------ verification
def describe_and_verify(path, preset: str = "poster-l") -> tuple:
    """Load `path` strictly into `preset` (architecture read from the file where the release
    varies it: depth, token mixers, classes). Returns (what, trained_on); raises UserError naming
    the file when it does not load."""
    from .models import build_model, load_official_weights
    from .models.official import _as_state_dict, read_checkpoint

    where = os.fspath(path)
    try:
        state = _as_state_dict(read_checkpoint(where), where)
    except (ValueError, FileNotFoundError) as e:
        raise UserError(str(e)) from None
    keys = list(state)
    try:
        if any(k.startswith("pyramid_fuse.") for k in keys):
            blocks = {int(k.split(".")[2]) for k in keys if k.startswith("pyramid_fuse.blocks.")}
            mix_tokens = any(k.startswith("pyramid_fuse.blocks.") and ".conv." in k for k in keys)
            num_classes = int(state["head.linear.weight"].shape[0])
            model = build_model(preset, depth=max(blocks) + 1, mix_tokens=mix_tokens, num_classes=num_classes)
            load_official_weights(model, state, verbose=False)
            # The RAF-DB release has token mixers and 7 classes; the AffectNet ones have none.
            trained_on = "RAF-DB" if mix_tokens else "AffectNet"
            what = (f"POSTER ({max(blocks) + 1} blocks) trained on {trained_on}: {num_classes} classes, "
                    f"{'token mixers' if mix_tokens else 'no token mixer'}")
        elif any(k.startswith(("input_layer.", "body.")) for k in keys):
            load_official_weights(build_model(preset), state, verbose=False)
            what, trained_on = "IR-50 image backbone", "face recognition (IR-50)"
        else:
            model = build_model(preset)
            load_official_weights(model, state, verbose=False)
            what, trained_on = "MobileFaceNet landmark backbone", "68 landmarks (MobileFaceNet)"
    except (ValueError, TypeError, RuntimeError, KeyError) as e:
        raise UserError(f"{where} does not load strictly into {preset}: {e}") from None
    return what, trained_on


# ------------------------------------------------------------------------------ downloading
def _download_url(url: str, target: Path, progress: bool) -> None:
    """Copy `url` to `target` with a progress bar (urllib: http, https, file)."""
    from tqdm.auto import tqdm

    with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
        size = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=size, unit="B", unit_scale=True, desc=target.name.removeprefix(".").removesuffix(".part"),
                  disable=not progress) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))


def _list_url_source(source: str, names) -> list:
    base = source if source.endswith("/") else source + "/"
    return [(name, base + urllib.request.pathname2url(name).lstrip("/")) for name in names]


def _gdown():
    try:
        import gdown
    except ImportError:
        raise UserError("listing the authors' Google Drive folders needs gdown (Colab has it): "
                        "pip install gdown; or download by hand from "
                        f"{BACKBONES_FOLDER} and {CHECKPOINTS_FOLDER}") from None
    return gdown


def _list_drive_folder(folder: str) -> list:
    """[(name, "gdrive:<id>")] of the checkpoint files in a public Drive folder."""
    gdown = _gdown()
    try:
        entries = gdown.download_folder(url=folder, skip_download=True, quiet=True)
    except OSError:                   # no network (requests' errors are OSErrors)
        raise
    except Exception as e:            # Drive changed its pages, or refused: say where to go by hand
        raise UserError(f"could not list {folder} with gdown {getattr(gdown, '__version__', '')} "
                        f"({type(e).__name__}: {e}); download the files from it by hand") from None
    return [(Path(e.path).name, f"gdrive:{e.id}") for e in entries or []
            if e.path.endswith(CHECKPOINT_SUFFIXES)]


def _download(location: str, target: Path, progress: bool) -> None:
    if location.startswith("gdrive:"):
        result = _gdown().download(id=location.removeprefix("gdrive:"), output=str(target), quiet=not progress)
        if not result:
            raise OSError(f"Google Drive refused the download of {location}")
    else:
        _download_url(location, target, progress)


_OFFLINE = (urllib.error.URLError, ConnectionError, TimeoutError, OSError)


def _offline_message(error, source) -> str:
    where = source or f"the authors' Google Drive folders ({BACKBONES_FOLDER}, {CHECKPOINTS_FOLDER})"
    return (f"could not download the official files: {type(error).__name__}: {error}\n"
            f"This machine seems to be offline (or {where} cannot be reached). Nothing was changed. "
            f"Download the files by hand from the authors' README (github.com/zczcwh/POSTER) and "
            f"load them with pl.load_official_weights; the notebooks work without them.")


def fetch(dest=None, names=None, source=None, preset: str = "poster-l", progress: bool = True) -> dict:
    """Download the authors' released backbones and checkpoints into `dest` and verify each.

    dest: folder (default data/official/ in the data folder); created if missing.
    names: only these file names (default: all checkpoints of the release folders; for a
        `source` URL, the backbones and rafdb_best.pth).
    source: a URL (http, https, file) that serves the files by name, instead of the authors'
        Google Drive folders; default $POSTER_LITE_OFFICIAL_URL, else the Drive folders.
    preset: the preset each file must load into strictly (the release's: poster-l).
    Returns {name: Fetched}. Offline, prints why and returns what was already there.
    """
    dest = Path(dest) if dest is not None else default_dest()
    source = source or os.environ.get(ENV_SOURCE) or None
    dest.mkdir(parents=True, exist_ok=True)
    fetched = {}
    try:
        if source:
            listing = _list_url_source(source, names or KNOWN_NAMES)
        else:
            listing = [entry for folder in RELEASE_FOLDERS for entry in _list_drive_folder(folder)]
            if names:
                listing = [entry for entry in listing if entry[0] in set(names)]
    except _OFFLINE as e:
        print(_offline_message(e, source))
        listing = [(name, None) for name in (names or KNOWN_NAMES)]      # still verify what is there
    for name, location in listing:
        target = dest / name
        if target.exists():                       # ours or the user's: verify, never overwrite
            what, trained_on = describe_and_verify(target, preset)
            fetched[name] = Fetched(name, target, what, trained_on, "already there")
            print(f"{name}: already in {dest}, verified ({what})")
            continue
        if location is None:
            continue
        part = dest / f".{name}.part"
        try:
            _download(location, part, progress)
        except urllib.error.HTTPError as e:       # reached, but the file is not there
            part.unlink(missing_ok=True)
            print(f"{name}: {location} answered HTTP {e.code} ({e.reason}); skipped")
            continue
        except _OFFLINE as e:
            part.unlink(missing_ok=True)
            print(_offline_message(e, source))
            break
        try:
            what, trained_on = describe_and_verify(part, preset)
        except UserError as e:
            part.unlink(missing_ok=True)          # we made it; a file that does not load is not kept
            raise UserError(f"{name} from {location} was downloaded but does not verify, so it was "
                            f"not kept: {e}") from None
        shutil.move(part, target)
        fetched[name] = Fetched(name, target, what, trained_on, "downloaded")
        print(f"{name}: downloaded to {target}, verified ({what})")
    return fetched
