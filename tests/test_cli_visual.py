"""``python -m core visualize`` and ``python -m core render {layers,pca,match}``."""

from __future__ import annotations

import av
import pytest
from PIL import Image

from conftest import TEST_THRESHOLD
from core.cli import main
from core.cli.common import EXIT_ERROR
from core.matching.indexing import index_images
from core.matching.params import MatchParams
from core.matching.pipeline import match_video
from core.matching.sampling import Sampling


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def video_facts(path) -> tuple[str, str, int, tuple[int, int]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.name, s.codec_context.pix_fmt, s.frames, (s.width, s.height)


def test_visualize_writes_the_pictures(capsys, tiny_model_dir, image_folder, tmp_path):
    img = image_folder.paths[0]
    code, out, _ = run(capsys, "visualize", img, "--out", tmp_path / "vis", "--model", tiny_model_dir, "-q")
    assert code == 0
    assert "crop mode, 16x16 patches" in out
    for name in ("pca", "similarity", "overlay", "composite"):
        path = tmp_path / "vis" / f"alpha_{name}.png"
        assert str(path) in out
        with Image.open(path) as im:
            assert im.format == "PNG"
    with Image.open(tmp_path / "vis" / "alpha_pca.png") as im:
        assert im.size == (224, 224)


def test_visualize_full_mode_with_background_suppression(capsys, tiny_model_dir, image_folder, tmp_path):
    code, out, _ = run(
        capsys,
        "visualize",
        *image_folder.paths[:2],
        "--out",
        tmp_path,
        "--model",
        tiny_model_dir,
        "--mode",
        "full",
        "--short-side",
        "224",
        "--suppress-background",
    )
    assert code == 0 and out.count("full mode, 16x21 patches") == 2  # 240×320 → 224×294
    with Image.open(tmp_path / "beta_pca.png") as im:
        assert im.size == (294, 224)


def test_render_layers_with_gif(capsys, tiny_model_dir, image_folder, tmp_path):
    out_file = tmp_path / "layers.mp4"
    code, out, _ = run(
        capsys,
        "render",
        "layers",
        image_folder.paths[1],
        "--out",
        out_file,
        "--gif",
        "--panel-size",
        "112",
        "--model",
        tiny_model_dir,
        "-q",
    )
    assert code == 0
    assert f"{out_file}: 3 frames, 224x112, 2 fps" in out and "layers.gif" in out
    assert video_facts(out_file) == ("h264", "yuv420p", 3, (224, 112))
    with Image.open(tmp_path / "layers.gif") as gif:
        assert gif.n_frames == 3


def test_render_pca_side_by_side(capsys, tiny_model_dir, shots_video, tmp_path):
    out_file = tmp_path / "pca.mp4"
    code, out, err = run(
        capsys,
        "render",
        "pca",
        shots_video.path,
        "--out",
        out_file,
        "--side-by-side",
        "--max-frames",
        "7",
        "--panel-height",
        "96",
        "--fit-samples",
        "4",
        "--model",
        tiny_model_dir,
    )
    assert code == 0, err
    assert f"{out_file}: 7 frames, 192x96, 10 fps" in out
    assert video_facts(out_file) == ("h264", "yuv420p", 7, (192, 96))
    assert "fitting colours" in err and "rendering: 100%" in err  # a progress bar per stage


def test_render_match(capsys, index, extractor, image_folder, shots_video, tmp_path):
    index_images(index, "shots", [image_folder.folder], extractor)
    run_id = match_video(
        index,
        shots_video.path,
        "shots",
        extractor,
        sampling=Sampling.every(),
        params=MatchParams(threshold=TEST_THRESHOLD),
    ).run_id
    out_file = tmp_path / "match.mp4"
    code, out, err = run(
        capsys,
        "render",
        "match",
        run_id,
        "--db",
        index.path,
        "--out",
        out_file,
        "--panel-height",
        "90",
        "-q",
    )
    assert code == 0, err
    assert f"{out_file}: 40 frames, 240x90, 10 fps" in out
    assert video_facts(out_file) == ("h264", "yuv420p", 40, (240, 90))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["visualize", "{tmp}/missing.png", "--out", "{tmp}/o"], "missing.png: file not found"),
        (["render", "layers", "{tmp}/bad.png", "--out", "{tmp}/o.mp4"], "bad.png: not an image"),
        (["render", "layers", "{img}", "--out", "{tmp}/o.webm"], "must be an .mp4 file"),
        (["render", "pca", "{tmp}/bad.png", "--out", "{tmp}/o.mp4"], "Cannot open video"),
        (["render", "pca", "{video}", "--out", "{tmp}/o.mp4", "--max-frames", "0"], "max frames must be ≥ 1"),
        (["render", "match", "999", "--db", "{tmp}/i.sqlite", "--out", "{tmp}/o.mp4"], "No index database"),
        (["visualize", "{img}", "--out", "{tmp}/o", "--mode", "full", "--short-side", "4"], "patch size"),
    ],
)
def test_bad_input_gives_a_one_line_error(
    capsys, tiny_model_dir, image_folder, shots_video, tmp_path, argv, message
):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    fill = {"tmp": tmp_path, "img": image_folder.paths[0], "video": shots_video.path}
    args = [a.format(**fill) for a in argv]
    if args[0] != "render" or args[1] != "match":
        args += ["--model", str(tiny_model_dir)]
    code, out, err = run(capsys, *args, "-q")
    assert code == EXIT_ERROR
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not list(tmp_path.glob("o*"))
