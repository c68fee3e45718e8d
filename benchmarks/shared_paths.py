"""Where the benchmarks find the shared data: the paths given on the command line, or ``$REIDGRAPH_SHARED``.

No benchmark assumes where the shared data lives. Where ``REIDGRAPH_SHARED`` names the shared folder
(holding ``features/``, ``datasets/``, ``weights/``), a path left off the command line defaults to its
place under it; otherwise the path is required. Help texts write that folder as ``SHARED``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ENV = "REIDGRAPH_SHARED"
FEATURE_SETS = ("osnet_x0_25_msmt17", "omz_0277")
"""The feature folders under ``SHARED/features``, one per backbone."""
TRAIN_FILES = {"CUHK03 OSNet": "osnet_x0_25_msmt17/cuhk03_labeled", "CUHK03 omz": "omz_0277/cuhk03_labeled",
               "Market-1501 OSNet": "osnet_x0_25_msmt17/market1501"}
"""The three shared feature sets, each ``SHARED/features/<value>_{train,val}.npz``."""
EPILOG = (f"environment: {ENV}=DIR names the shared data folder (SHARED in the examples above,\n"
          "holding features/, datasets/, weights/); where it is set, a path left off the command line\n"
          "defaults to its place under it, otherwise the path is required.")


def shared(*parts: str) -> Path | None:
    """``$REIDGRAPH_SHARED/<parts...>``, or None where the variable is unset or empty."""
    root = os.environ.get(ENV)
    return Path(root).joinpath(*parts) if root else None


def add_feature_folders(parser: argparse.ArgumentParser, holding: str) -> None:
    """The positional ``FOLDER ...`` argument (feature folders holding ``holding``) and the :data:`EPILOG`."""
    parser.add_argument("folders", nargs="*", metavar="FOLDER",
                        help=f"feature folders with {holding} (default, where {ENV} is set: "
                             f"SHARED/features/{{{','.join(FEATURE_SETS)}}})")
    parser.epilog = EPILOG


def feature_folders(given: list, parser: argparse.ArgumentParser) -> list[str]:
    """The feature folders given on the command line, else ``SHARED/features/<each of FEATURE_SETS>``."""
    if given:
        return [str(f) for f in given]
    if shared() is None:
        parser.error(f"give the feature folders (e.g. SHARED/features/{FEATURE_SETS[0]}), or set {ENV}")
    return [str(shared("features", name)) for name in FEATURE_SETS]


def folders_and_out(description: str, holding: str) -> tuple[list[Path], str | None]:
    """The command line of a benchmark over feature folders that each hold ``holding``: the folders, each
    checked, and ``--out``. A folder without ``holding`` ends the program with one line and exit code 2."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_feature_folders(parser, holding)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    folders = [Path(f) for f in feature_folders(args.folders, parser)]
    missing = [str(f) for f in folders if not (f / holding).is_file()]
    if missing:
        print(f"{parser.prog}: no {holding} in {', '.join(missing)}", file=sys.stderr)
        sys.exit(2)
    return folders, args.out


def shared_folder_and_out(description: str) -> tuple[Path, str | None]:
    """The command line of a benchmark over the shared folder: ``--shared`` (default ``$REIDGRAPH_SHARED``;
    required otherwise, refused in one line with exit code 2) and ``--out``."""
    parser = argparse.ArgumentParser(description=description, epilog=EPILOG)
    parser.add_argument("--shared", type=Path, default=shared(),
                        help="the shared folder holding features/ (required where REIDGRAPH_SHARED is unset)")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    if args.shared is None:
        parser.error("--shared: give the shared folder holding features/, or set REIDGRAPH_SHARED")
    return args.shared, args.out
