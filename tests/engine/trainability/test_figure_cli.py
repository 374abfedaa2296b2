"""``python -m engine.trainability figure``: a figure for a paper from stored grid folders (one folder: the map;
several: the zoom path), in PNG, SVG or PDF at the asked size and DPI; every bad input one line and exit 2."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from engine.trainability import figures
from engine.trainability.__main__ import main
from engine.trainability.presets import preset
from engine.trainability.results import MEASURE, run_to_dir
from engine.trainability.views import zoom_view

ROOT = Path(__file__).resolve().parents[3]
PROG = "python -m engine.trainability"


@pytest.fixture(scope="module")
def grids(tmp_path_factory) -> list[Path]:
    """Three levels of a real zoom (tanh preset, 16 x 16, 40 steps), each a grid folder as the CLI writes it."""
    base = preset("tanh", resolution=16, steps=40)
    view = (*base.x_range, *base.y_range)
    out = []
    for k in range(3):
        folder = tmp_path_factory.mktemp(f"level{k}")
        run_to_dir(dataclasses.replace(base, x_range=view[:2], y_range=view[2:]), folder)
        out.append(folder)
        view = zoom_view(view, (view[0] + view[1]) / 2 + 0.3, (view[2] + view[3]) / 2 - 0.2, 2)
    return out


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_one_result_is_the_map_at_the_asked_size_and_dpi(grids, tmp_path, capsys):
    out = tmp_path / "map.png"
    code, text, err = run(["figure", "--result", grids[0], "--width", 5, "--height", 4, "--dpi", 120,
                           "--out", out], capsys)
    assert code == 0, err
    assert "map" in text and str(out) in text
    img = Image.open(io.BytesIO(out.read_bytes()))
    assert img.format == "PNG" and img.size == (600, 480)
    # the same bytes the engine's figure function makes from the stored measure (the CLI adds nothing)
    from engine.trainability.results import load

    stored = load(grids[0])
    assert out.read_bytes() == figures.map_figure(stored.spec, stored.measure, fmt="png", width_in=5, height_in=4,
                                                  dpi=120)


def test_format_from_the_flag_or_the_extension(grids, tmp_path, capsys):
    pdf = tmp_path / "figure.bin"
    assert run(["figure", "--result", grids[0], "--fmt", "PDF", "--dpi", 72, "--out", pdf], capsys)[0] == 0
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF")
    svg = tmp_path / "figure.svg"
    assert run(["figure", "--result", grids[0], "--out", svg], capsys)[0] == 0
    root = ET.fromstring(svg.read_bytes())
    assert root.tag.endswith("svg")
    text = svg.read_text()
    assert "log₁₀ input-layer learning rate" in text and "log₁₀ lr₀ ∈ [−3.0, 6.0]" in text  # axes, view
    assert "16 × 16 px" in text


def test_several_results_are_the_zoom_path_with_its_boxes(grids, tmp_path, capsys):
    out = tmp_path / "path.svg"
    code, text, err = run(["figure", *[a for g in grids for a in ("--result", g)], "--width", 9, "--dpi", 100,
                           "--out", out], capsys)
    assert code == 0, err
    assert "zoom path of 3 levels" in text
    svg = out.read_text()
    ET.fromstring(svg)
    assert 'id="zoom-box-0"' in svg and 'id="zoom-box-1"' in svg and 'id="zoom-box-2"' not in svg
    png = tmp_path / "path.png"
    assert run(["figure", "--result", grids[0], "--result", grids[1], "--width", 6, "--dpi", 100, "--columns", 1,
                "--out", png], capsys)[0] == 0
    w, h = Image.open(png).size
    assert w == 600 and h > w  # one column: the two panels stacked


def _damaged(grids, tmp_path) -> Path:
    import shutil

    folder = tmp_path / "damaged"
    shutil.copytree(grids[0], folder)
    data = (folder / MEASURE).read_bytes()
    (folder / MEASURE).write_bytes(data[: len(data) // 2])
    return folder


BAD = [
    (["--out", "{tmp}/x.jpg"], "--fmt"),
    (["--fmt", "tiff", "--out", "{tmp}/x.png"], "fmt"),
    (["--out", "{tmp}/x"], "--fmt"),
    (["--dpi", "5000", "--out", "{tmp}/x.png"], "dpi"),
    (["--dpi", "nan", "--out", "{tmp}/x.png"], "dpi"),
    (["--width", "0", "--out", "{tmp}/x.png"], "width_in"),
    (["--width", "40", "--height", "40", "--dpi", "600", "--out", "{tmp}/x.png"], "megapixels"),
    (["--columns", "2", "--out", "{tmp}/x.png"], "--columns"),
    (["--result", "{g1}", "--height", "3", "--out", "{tmp}/x.png"], "--height"),
    (["--result", "{g1}", "--columns", "0", "--out", "{tmp}/x.png"], "columns"),
    (["--title", "x" * 300, "--out", "{tmp}/x.png"], "title"),
    (["--out", "{tmp}"], "--out"),
    (["--out", "{tmp}/missing/x.png"], "--out"),
    (["--out", "/proc/x.png"], "--out"),
]


@pytest.mark.parametrize("extra,word", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(grids, tmp_path, capsys, extra, word):
    argv = ["figure", "--result", grids[0], *[a.format(tmp=tmp_path, g1=grids[1]) for a in extra]]
    try:
        code, _, err = run(argv, capsys)
    except SystemExit as exc:  # argparse's own errors exit directly, as every CLI of the lab does
        code, err = exc.code, capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(PROG) and "error:" in lines[0], err
    assert word in lines[0], lines[0]
    assert "Traceback" not in err
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob(".x*"))


def test_missing_or_damaged_result_is_one_line_and_exit_2(grids, tmp_path, capsys):
    for folder, word in ((tmp_path / "nope", "not a folder"), (_damaged(grids, tmp_path), MEASURE)):
        code, _, err = run(["figure", "--result", folder, "--out", tmp_path / "x.png"], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and word in err, err
    too_many = [a for _ in range(figures.MAX_LEVELS + 1) for a in ("--result", grids[0])]
    code, _, err = run(["figure", *too_many, "--out", tmp_path / "x.png"], capsys)
    assert code == 2 and "--result" in err
    assert not (tmp_path / "x.png").exists()


def test_as_a_real_command(grids, tmp_path):
    out = tmp_path / "map.pdf"
    done = subprocess.run([sys.executable, "-m", "engine.trainability", "figure", "--result", str(grids[0]),
                           "--dpi", "300", "--width", "7", "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"%PDF")
    bad = subprocess.run([sys.executable, "-m", "engine.trainability", "figure", "--result", str(grids[0]),
                          "--dpi", "1", "--out", str(tmp_path / "x.pdf")], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "dpi" in bad.stderr
