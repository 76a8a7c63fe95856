"""`poster-lite fetch-official [DEST]`: download and verify the authors' released files (pl.official.fetch).

    poster-lite fetch-official                       # into data/official/
    poster-lite fetch-official models/ --only rafdb_best.pth
    poster-lite fetch-official --source https://my.mirror/poster/   # a mirror that serves the files by name
"""
from __future__ import annotations

from .options import preset


def add_parsers(sub, parents) -> None:
    p = sub.add_parser("fetch-official", parents=parents,
                       help="download the authors' backbones and RAF-DB/AffectNet checkpoints, each verified")
    p.add_argument("dest", nargs="?", default=None, help="folder for the files (default data/official/)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="only these file names, e.g. rafdb_best.pth")
    p.add_argument("--source", default=None,
                   help="a URL serving the files by name instead of the authors' Google Drive folders "
                        "(default $POSTER_LITE_OFFICIAL_URL)")
    p.add_argument("--preset", type=preset, default="poster-l",
                   help="the preset each file must load into strictly (default poster-l, the release's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..official_files import fetch

    got = fetch(args.dest, names=args.only, source=args.source, preset=args.preset, progress=not args.quiet)
    for item in got.values():
        print(f"  {item.name:<36} {item.status:<14} {item.what}")
    # offline or nothing found: fetch has said why; nothing to use is a problem of the environment
    return 0 if got else 2
