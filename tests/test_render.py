"""core.visual.render: what every rendered video shares (options checked up front)."""

from __future__ import annotations

import pytest

from conftest import pattern_image
from core.errors import InvalidArgumentError, VideoOpenError
from core.visual.layer_video import render_layers
from core.visual.pca_video import render_pca_video


def test_bad_render_arguments_fail_up_front(extractor, shots_video, tmp_path):
    img = pattern_image(0)
    with pytest.raises(InvalidArgumentError, match=r"\.mp4"):
        render_layers(extractor, img, tmp_path / "layers.avi")
    with pytest.raises(InvalidArgumentError, match="fps"):
        render_layers(extractor, img, tmp_path / "layers.mp4", fps=0)
    with pytest.raises(VideoOpenError, match="file not found"):
        render_pca_video(extractor, tmp_path / "missing.mp4", tmp_path / "out.mp4")
    with pytest.raises(InvalidArgumentError, match="max frames"):
        render_pca_video(extractor, tmp_path / "missing.mp4", tmp_path / "out.mp4", max_frames=0)
    with pytest.raises(InvalidArgumentError, match="is the source video"):
        render_pca_video(extractor, shots_video.path, shots_video.path)
    assert shots_video.path.stat().st_size > 0
    assert sorted(tmp_path.glob("*.mp4")) == [shots_video.path]
