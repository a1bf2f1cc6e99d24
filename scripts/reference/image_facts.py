#!/usr/bin/env python3
"""What an independent decoder (Pillow, with pillow-heif for HEIF) says about image files: one
JSON line per file with its format, size, frames and EXIF orientation, and whether Pillow could
open it and decode its pixels.

Usage (scripts/reference/setup-images installs the venv and the corpus):

    .cache/imgvenv/bin/python scripts/reference/image_facts.py FILE... > facts.jsonl
    .cache/imgvenv/bin/python scripts/reference/image_facts.py @list.txt > facts.jsonl

Sizes are as Pillow reports them: the stored size for JPEG, PNG, TIFF… (EXIF orientation not
applied) and the size after the container's rotation and crop for HEIF and AVIF.
"""

import json
import os
import sys

# Run directly, it re-executes itself with the venv's Python (scripts/reference/setup-*).
try:
    import pillow_heif  # noqa: F401
except ImportError:
    _venv = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".cache", "imgvenv")
    if os.path.isdir(_venv) and os.path.realpath(sys.prefix) != os.path.realpath(_venv):
        _python = os.path.join(_venv, "bin", "python")
        os.execv(_python, [_python, *sys.argv])
    raise
import warnings

from PIL import Image
import pillow_heif

pillow_heif.register_heif_opener()
Image.MAX_IMAGE_PIXELS = None
warnings.simplefilter("ignore")

# Pixels decoded at most per file (a 200-megapixel HEIC is opened, not decoded).
MAX_LOAD_PIXELS = 50_000_000


def facts(path):
    out = {"file": path, "open": False, "load": False}
    try:
        with Image.open(path) as im:
            out["open"] = True
            out["format"] = im.format
            out["width"], out["height"] = im.size
            out["frames"] = getattr(im, "n_frames", 1)
            try:
                out["orientation"] = im.getexif().get(0x0112)
            except Exception:
                out["orientation"] = None
            if im.size[0] * im.size[1] <= MAX_LOAD_PIXELS:
                im.load()
                out["load"] = True
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"[:200]
    return out


def main():
    paths = []
    for arg in sys.argv[1:]:
        if arg.startswith("@"):
            with open(arg[1:], encoding="utf-8") as listing:
                paths.extend(line.rstrip("\n") for line in listing if line.strip())
        else:
            paths.append(arg)
    for path in paths:
        print(json.dumps(facts(path)), flush=True)


if __name__ == "__main__":
    main()
