"""`pl.official.fetch`: downloads on request, verifies strictly, keeps nothing that does not load, and
says so clearly when offline. The download is a local stand-in (an http.server on 127.0.0.1 serving
files this test makes in the release's layouts with seeded weights); no test touches the network."""
import functools
import http.server
import socket
import threading

import pytest
import torch

import poster_lite as pl
from poster_lite import official_files
from poster_lite.errors import UserError
from poster_lite.models.official import to_release_state_dict
from poster_lite.pretrain import build_image_backbone, build_landmark_backbone

PRESET = "poster-nano"      # the release's layouts at nano size: the same loader, small files


def _seeded(module, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.02)
    return module


def make_release(folder):
    """ir50.pth, mobilefacenet_model_best.pth.tar, rafdb_best.pth and an 8-class AffectNet checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(to_release_state_dict(_seeded(build_image_backbone(PRESET), 1)), folder / "ir50.pth")
    torch.save({"state_dict": to_release_state_dict(_seeded(build_landmark_backbone(PRESET), 2))},
               folder / "mobilefacenet_model_best.pth.tar")
    raf = _seeded(pl.build_model(PRESET), 3)
    torch.save({"iter": 1, "model_state_dict": {"module." + k: v for k, v in to_release_state_dict(raf).items()}},
               folder / "rafdb_best.pth")
    aff = _seeded(pl.build_model(PRESET, num_classes=8, mix_tokens=False), 4)
    torch.save({"iter": 1, "model_state_dict": {"module." + k: v for k, v in to_release_state_dict(aff).items()}},
               folder / "affectnet_8_best.pth")
    return folder


@pytest.fixture
def server(tmp_path):
    """A local http server over tmp_path/served; yields its base URL."""
    served = make_release(tmp_path / "served")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", served
    httpd.shutdown()
    httpd.server_close()


def test_fetch_downloads_verifies_and_describes_each_file(server, tmp_path, capsys):
    url, _ = server
    dest = tmp_path / "official"
    got = official_files.fetch(dest, source=url, preset=PRESET, progress=False,
                            names=["ir50.pth", "mobilefacenet_model_best.pth.tar", "rafdb_best.pth",
                                   "affectnet_8_best.pth"])
    assert set(got) == {"ir50.pth", "mobilefacenet_model_best.pth.tar", "rafdb_best.pth", "affectnet_8_best.pth"}
    assert all(f.status == "downloaded" and f.path.is_file() for f in got.values())
    assert got["rafdb_best.pth"].trained_on == "RAF-DB" and "7 classes" in got["rafdb_best.pth"].what
    assert got["affectnet_8_best.pth"].trained_on == "AffectNet" and "8 classes" in got["affectnet_8_best.pth"].what
    assert got["ir50.pth"].what == "IR-50 image backbone"
    assert sorted(p.name for p in dest.iterdir()) == sorted(got), "no partial files left behind"
    # The downloaded checkpoint is the one served: it loads and gives the served model's weights.
    raf = pl.build_model(PRESET)
    pl.load_official_weights(raf, dest / "rafdb_best.pth", verbose=False)
    assert torch.equal(raf.head.weight, _seeded(pl.build_model(PRESET), 3).head.weight)
    # A second call finds them, verifies them and downloads nothing.
    again = official_files.fetch(dest, source=url, preset=PRESET, progress=False, names=["rafdb_best.pth"])
    assert again["rafdb_best.pth"].status == "already there"
    assert "verified" in capsys.readouterr().out


def test_default_names_are_the_readmes(server, tmp_path):
    url, _ = server
    got = official_files.fetch(tmp_path / "d", source=url, preset=PRESET, progress=False)
    assert sorted(got) == sorted(official_files.KNOWN_NAMES)


def test_a_file_that_does_not_load_strictly_is_refused_and_not_kept(server, tmp_path):
    url, served = server
    broken = torch.load(served / "rafdb_best.pth", weights_only=True)
    broken["model_state_dict"].pop(next(k for k in broken["model_state_dict"] if "head" in k))
    torch.save(broken, served / "rafdb_best.pth")
    dest = tmp_path / "official"
    with pytest.raises(UserError, match="rafdb_best.pth.*does not verify"):
        official_files.fetch(dest, source=url, preset=PRESET, progress=False, names=["rafdb_best.pth"])
    assert list(dest.iterdir()) == [], "the bad download is removed, nothing else written"


def test_a_file_already_there_is_never_overwritten(server, tmp_path):
    url, _ = server
    dest = tmp_path / "official"
    dest.mkdir()
    (dest / "rafdb_best.pth").write_bytes(b"my own notes, not a checkpoint")
    with pytest.raises(UserError, match="rafdb_best.pth"):
        official_files.fetch(dest, source=url, preset=PRESET, progress=False, names=["rafdb_best.pth"])
    assert (dest / "rafdb_best.pth").read_bytes() == b"my own notes, not a checkpoint"


def test_offline_prints_a_clear_message_and_changes_nothing(tmp_path, capsys):
    with socket.socket() as s:                # a port nobody listens on: connection refused, like offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "official"
    got = official_files.fetch(dest, source=f"http://127.0.0.1:{port}/", preset=PRESET, progress=False)
    out = capsys.readouterr().out
    assert got == {}
    assert "offline" in out and "by hand" in out
    assert list(dest.iterdir()) == []


def test_missing_file_on_the_server_is_skipped_with_its_status(server, tmp_path, capsys):
    url, _ = server
    got = official_files.fetch(tmp_path / "d", source=url, preset=PRESET, progress=False, names=["nope.pth"])
    assert got == {} and "HTTP 404" in capsys.readouterr().out


def test_the_drive_release_is_listed_then_downloaded(server, tmp_path, monkeypatch):
    """Without a source, the authors' two Drive folders are listed (here: a stand-in listing)."""
    url, _ = server
    listed = []

    def listing(folder):
        listed.append(folder)
        names = ["ir50.pth", "mobilefacenet_model_best.pth.tar"] if folder == official_files.BACKBONES_FOLDER \
            else ["rafdb_best.pth", "affectnet_8_best.pth"]
        return [(name, url + name) for name in names]

    monkeypatch.setattr(official_files, "_list_drive_folder", listing)
    monkeypatch.delenv(official_files.ENV_SOURCE, raising=False)
    got = official_files.fetch(tmp_path / "d", preset=PRESET, progress=False)
    assert listed == list(official_files.RELEASE_FOLDERS)
    assert len(got) == 4


def test_command_line_fetch_official(server, tmp_path, monkeypatch, capsys):
    from poster_lite.cli import main
    url, _ = server
    monkeypatch.setenv(official_files.ENV_SOURCE, url)
    code = main(["fetch-official", str(tmp_path / "d"), "--preset", PRESET, "--quiet"])
    assert code == 0
    assert (tmp_path / "d" / "rafdb_best.pth").is_file()


def test_the_package_exposes_it_as_pl_official():
    assert pl.official is official_files and callable(pl.official.fetch)


def test_the_upload_widget_says_which_model_answers_and_what_it_learned_from():
    from poster_lite.widgets import UploadPredictor, model_origin
    release = pl.build_model(PRESET)
    release.meta = {"source": "authors' release", "classes": ["a"] * 7, "channel_order": "bgr"}
    assert "authors' released" in model_origin(release) and "RAF-DB (real photos)" in model_origin(release)
    shipped_like = pl.build_model(PRESET)
    shipped_like.meta = {"source": "shipped", "metrics": {"test_accuracy": 0.6}, "classes": ["a"] * 7}
    assert "SynthFER (drawn faces" in model_origin(shipped_like) and "60%" in model_origin(shipped_like)
    widget = UploadPredictor(model=release)
    assert "RAF-DB" in widget.controls["answering"].value
