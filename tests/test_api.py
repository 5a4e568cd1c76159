"""core.api: the Python API a notebook uses, with the tiny model, and its failure paths."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import core.api as webssl
from conftest import PARAMS, TEST_THRESHOLD, build_tiny_model, pattern_image, read_video
from core.errors import ImageLoadError, InvalidArgumentError, ModelLoadError, VideoOpenError
from core.matching.sampling import Sampling
from core.visual.maps import image_maps as core_image_maps
from db import ModelMismatchError, NotFoundError


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "api.sqlite"


@pytest.fixture
def matched(db_path, extractor, image_folder, shots_video):
    """The image folder indexed and the shots video matched every frame, through the API."""
    webssl.index_folder(image_folder.folder, "shots", db=db_path, model=extractor)
    run = webssl.match(
        shots_video.path, "shots", db=db_path, model=extractor, sampling=Sampling.every(), params=PARAMS
    )
    return run


# -- the model ------------------------------------------------------------------------------------
def test_load_model_from_a_folder_with_options(tiny_model_dir):
    fx = webssl.load_model(tiny_model_dir, device="cpu", precision="fp32", batch_size=3)
    assert isinstance(fx, webssl.FeatureExtractor)
    assert fx.batch_size == 3 and fx.precision == "fp32" and fx.device.type == "cpu"
    assert fx.model_id == str(tiny_model_dir.resolve())


def test_load_model_default_comes_from_the_environment(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("WEBSSL_MODEL", str(tiny_model_dir))
    assert webssl.load_model().model_id == str(tiny_model_dir.resolve())


@pytest.mark.parametrize(
    ("model", "message"),
    [("/definitely/no/such/folder", "does not exist"), ("nobody/no-such-model", "HF_HUB_OFFLINE")],
)
def test_load_model_says_what_is_wrong(model, message, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=message):
        webssl.load_model(model)
    with pytest.raises(ModelLoadError, match=message):  # at once, not when the weights are needed
        webssl.model_on_demand(model)


def test_a_model_on_demand_is_loaded_once_when_first_needed(tiny_model_dir):
    model = webssl.model_on_demand(tiny_model_dir, device="cpu", precision="fp32", batch_size=3)
    assert not model.loaded and model.setup.model_id == str(tiny_model_dir.resolve())
    stages = []
    fx = model.get(lambda event: stages.append(event.stage))
    assert model.loaded and fx.batch_size == 3 and model.get() is fx and stages == ["loading model"]
    assert (
        model.setup == fx.setup
        and fx.embed_key() == webssl.load_model(tiny_model_dir, device="cpu").embed_key()
    )


# -- images -----------------------------------------------------------------------------------------
def test_read_image_takes_files_pil_images_and_arrays(png_file, rgb_array):
    assert np.array_equal(webssl.read_image(png_file), rgb_array)
    assert np.array_equal(webssl.read_image(Image.fromarray(rgb_array)), rgb_array)
    assert webssl.read_image(rgb_array) is rgb_array
    with pytest.raises(ValueError, match="uint8 RGB"):
        webssl.read_image(rgb_array.astype(np.float32))
    with pytest.raises(ImageLoadError, match="file not found"):
        webssl.read_image(png_file.with_name("missing.png"))


def test_image_features_cls_patches_and_chosen_layers(extractor, image_folder):
    n = extractor.num_layers
    feats = webssl.image_features(extractor, image_folder.paths[0], layers=[1, -1])
    rows, cols = feats.grid
    assert feats.cls.shape == (extractor.hidden_size,)
    assert feats.patches.shape == (rows, cols, extractor.hidden_size)
    assert sorted(feats.layers) == [1, n]
    # the last layer after the final norm is the output's patch grid
    np.testing.assert_allclose(feats.layers[n], feats.patches, atol=1e-4)
    assert not np.allclose(feats.layers[1], feats.patches, atol=1e-2)
    # the same [CLS] as the extractor's own batched path
    np.testing.assert_allclose(feats.cls, extractor.cls_embeddings([image_folder.arrays[0]])[0], atol=1e-5)
    assert webssl.image_features(extractor, image_folder.arrays[0], patches=False).patches is None


@pytest.mark.parametrize("layer", [0, 99, -99])
def test_image_features_refuses_a_layer_that_does_not_exist(extractor, rgb_array, layer):
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        webssl.image_features(extractor, rgb_array, layers=[layer])


def test_maps_arrays_and_figure(extractor, image_folder):
    maps = webssl.image_maps(extractor, image_folder.paths[1], mode="full", short_side=112)
    direct = core_image_maps(extractor, image_folder.arrays[1], mode="full", short_side=112)
    assert np.array_equal(maps.pca, direct.pca) and np.allclose(maps.similarity, direct.similarity)
    assert maps.mode == "full" and maps.similarity.shape == maps.grid
    fig = webssl.maps_figure(maps, title="beta")
    assert len(fig.axes) >= 3 and fig._suptitle.get_text() == "beta"
    grids = webssl.layer_maps(extractor, image_folder.paths[1])
    assert len(grids) == extractor.num_layers and grids[0].dtype == np.uint8


# -- rendered videos ------------------------------------------------------------------------------
def test_render_layer_and_pca_videos(extractor, image_folder, shots_video, tmp_path):
    layers = webssl.render_layer_video(
        extractor, image_folder.paths[0], tmp_path / "layers.mp4", panel_size=64
    )
    facts, _ = read_video(layers.path)
    assert facts["codec"] == "h264" and facts["frames"] == extractor.num_layers == layers.frames
    side = webssl.render_pca_video(
        extractor, shots_video.path, tmp_path / "side.mp4", side_by_side=True, max_frames=6, panel_height=64
    )
    plain = webssl.render_pca_video(
        extractor, shots_video.path, tmp_path / "pca.mp4", max_frames=6, panel_height=64
    )
    assert side.frames == plain.frames == 6 and side.width == 2 * plain.width


# -- collections, runs, search ------------------------------------------------------------------
def test_index_folder_is_incremental_and_keeps_the_collection_model(db_path, extractor, image_folder):
    first = webssl.index_folder(image_folder.folder, "shots", db=db_path, model=extractor)
    assert len(first.added) == 4 and not first.failed
    again = webssl.index_folder([image_folder.folder], "shots", db=db_path, model=extractor)
    assert len(again.added) == 0 and len(again.already_indexed) == 4
    [coll] = webssl.collections(db=db_path)
    assert coll.name == "shots" and coll.image_count == 4 and coll.model_id == extractor.model_id


def test_index_folder_loads_the_model_it_is_given_by_name_or_loader(db_path, tiny_model_dir, image_folder):
    events = []
    report = webssl.index_folder(
        image_folder.paths[:2], "a", db=db_path, model=str(tiny_model_dir), progress=events.append
    )
    assert len(report.added) == 2 and events[0].stage == "loading model"
    # no model given: the collection's own is loaded
    assert len(webssl.index_folder(image_folder.paths[2], "a", db=db_path).added) == 1
    calls = []

    def loader():
        calls.append(1)
        return webssl.load_model(tiny_model_dir)

    assert len(webssl.index_folder(image_folder.paths[3], "a", db=db_path, model=loader).added) == 1
    assert calls == [1]


def png_bytes(seed: int) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(pattern_image(seed)).save(buf, "PNG")
    return buf.getvalue()


def test_indexing_with_nothing_new_does_not_load_the_model(db_path, tiny_model_dir, image_folder, tmp_path):
    """A nightly `index` of a folder that has not changed (or only moved) loaded the model all the
    same: 8-9 s and 2.8 GB for ViT-L here, for nothing. Now it loads when there is something to
    embed, and the model loaded then is checked against the collection's."""
    webssl.index_folder(image_folder.folder, "a", db=db_path, model=str(tiny_model_dir))
    events = []

    def never():
        raise AssertionError("the model must not load")

    again = webssl.index_folder(image_folder.folder, "a", db=db_path, model=never, progress=events.append)
    assert len(again.already_indexed) == 4 and "loading model" not in [e.stage for e in events]
    assert len(webssl.index_folder(image_folder.folder, "a", db=db_path).already_indexed) == 4  # its own
    moved = tmp_path / "moved"
    image_folder.folder.rename(moved)
    assert len(webssl.index_folder(moved, "a", db=db_path, model=never).moved) == 4
    (moved / "new.png").write_bytes(png_bytes(99))
    calls = []

    def loader():
        calls.append(1)
        return webssl.load_model(tiny_model_dir)

    report = webssl.index_folder(moved, "a", db=db_path, model=loader, progress=events.append)
    assert len(report.added) == 1 and calls == [1] and "loading model" in [e.stage for e in events]
    other_dir = build_tiny_model(tmp_path / "other", seed=1)
    (moved / "newer.png").write_bytes(png_bytes(98))
    with pytest.raises(ModelMismatchError, match="is bound to model"):
        webssl.index_folder(moved, "a", db=db_path, model=lambda: webssl.load_model(other_dir))
    assert webssl.collections(db=db_path)[0].image_count == 5


def test_a_collection_built_with_another_model_is_refused(
    db_path, extractor, image_folder, shots_video, tmp_path
):
    webssl.index_folder(image_folder.folder, "shots", db=db_path, model=extractor)
    other_dir = build_tiny_model(tmp_path / "other", seed=1)
    with pytest.raises(ModelMismatchError, match="is bound to model"):
        webssl.index_folder(image_folder.folder, "shots", db=db_path, model=str(other_dir))
    other = webssl.load_model(other_dir)
    with pytest.raises(ModelMismatchError):
        webssl.match(shots_video.path, "shots", db=db_path, model=other)
    with pytest.raises(ModelMismatchError):
        webssl.search(image_folder.paths[0], "shots", db=db_path, model=other)
    assert webssl.runs(db=db_path) == []


def test_bad_inputs_fail_before_the_model_loads(db_path, extractor, image_folder, shots_video, tmp_path):
    def never():
        raise AssertionError("the model must not load")

    with pytest.raises(FileNotFoundError, match="not/here"):
        webssl.index_folder("/definitely/not/here", "x", db=db_path, model=never)
    webssl.index_folder(image_folder.folder, "shots", db=db_path, model=extractor)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00" * 2000)
    with pytest.raises(VideoOpenError, match="Cannot open video"):
        webssl.match(corrupt, "shots", db=db_path, model=never)
    with pytest.raises(NotFoundError, match="nope"):
        webssl.match(shots_video.path, "nope", db=db_path, model=never)
    with pytest.raises(ImageLoadError):
        webssl.search(corrupt, "shots", db=db_path, model=never)
    assert webssl.runs(db=db_path) == []
    with pytest.raises(webssl.WebSSLError, match="No index database"):
        webssl.collections(db=tmp_path / "typo.sqlite")
    assert not (tmp_path / "typo.sqlite").exists()


def test_match_returns_the_run_with_its_tables(matched, shots_video):
    run = matched
    assert run.complete and run.frames_recorded == shots_video.frame_count
    assert run.summary is not None and run.summary.frames_computed == shots_video.frame_count
    frames = run.frames_dataframe()
    assert len(frames) == shots_video.frame_count
    assert frames["matched"].tolist() == run.view.matched().tolist()
    assert run.to_dataframe().equals(frames)
    # the shots of image 0 (frames 0..11) are matched to alpha.jpg
    assert set(frames.loc[frames.frame_index < 12, "image"]) == {"alpha.jpg"}
    assert (frames.loc[frames.matched, "score"] >= TEST_THRESHOLD).all()
    top = run.matches_dataframe()
    assert len(top) == shots_video.frame_count * PARAMS.top_k
    assert top.groupby("frame_index")["rank"].apply(list).iloc[0] == [1, 2, 3]
    segments = run.segments_dataframe()
    assert len(segments) == len(run.segments) >= 3
    assert segments.iloc[0]["image"] == "alpha.jpg" and segments.iloc[0]["start_frame"] == 0
    assert f"{len(run.segments)} segments" in repr(run)


def test_image_names_of_a_run_include_its_regions_images(matched):
    from dataclasses import replace

    from core.api import MatchRun
    from db import FrameRegions

    names = matched.image_names()
    absent = max(matched.view.image_paths) + 1  # an image found in a region only, in no top-k
    view = matched.view.with_paths({absent: "/elsewhere/extra.png"})
    region = FrameRegions(
        view.results.frame_index[:1].copy(),
        np.array([absent]),
        np.array([0.1], np.float32),
        np.zeros((1, 4), np.float32),
    )
    with_region = MatchRun(replace(view, regions=region))
    assert with_region.image_names() == {**names, absent: "extra.png"}


def test_match_options_override_single_defaults(db_path, extractor, image_folder, shots_video):
    webssl.index_folder(image_folder.folder, "shots", db=db_path, model=extractor)
    run = webssl.match(
        shots_video.path, "shots", db=db_path, model=extractor, threshold=0.97, top_k=2, max_frames=10
    )
    assert run.params == webssl.DEFAULTS.updated(threshold=0.97, top_k=2)
    assert run.frames_recorded == 10 and len(run.matches_dataframe()) <= 20


def test_relabel_and_load_run_agree_without_the_model(matched, db_path):
    strict = matched.relabel(threshold=0.9999)
    assert strict.matched_frames < matched.matched_frames
    again = webssl.load_run(matched.run_id, db=db_path)
    assert again.segments == matched.segments and again.summary is None
    assert (
        webssl.load_run(matched.run_id, db=db_path, threshold=0.9999).matched_frames == strict.matched_frames
    )
    assert [r.id for r in webssl.runs(db=db_path)] == [matched.run_id]
    assert strict.to_dict()["threshold"] == 0.9999
    with pytest.raises(NotFoundError):
        webssl.load_run(999, db=db_path)


def test_render_match_video_of_a_run(matched, db_path, tmp_path):
    result = webssl.render_match_video(
        matched, tmp_path / "run.mp4", db=db_path, max_frames=8, panel_height=64
    )
    facts, _ = read_video(result.path)
    assert facts["codec"] == "h264" and result.frames == 8
    by_id = webssl.render_match_video(
        matched.run_id, tmp_path / "run2.mp4", db=db_path, max_frames=4, panel_height=64
    )
    assert by_id.frames == 4 and by_id.width == result.width


def test_search_finds_the_image_itself_first(db_path, extractor, image_folder):
    webssl.index_folder(image_folder.folder, "shots", db=db_path, model=extractor)
    hits = webssl.search(image_folder.paths[2], "shots", db=db_path, model=extractor, k=2)
    assert [h.rank for h in hits] == [1, 2]
    assert hits[0].image == "gamma.jpg" and hits[0].score > 0.999 and hits[1].score < hits[0].score
    assert hits[0].path == str(image_folder.paths[2].resolve())
    # no model given: the collection's own is loaded
    assert webssl.search(image_folder.arrays[2], "shots", db=db_path, k=1)[0].image == "gamma.jpg"
    with pytest.raises(InvalidArgumentError):
        webssl.search(image_folder.paths[2], "shots", db=db_path, model=extractor, k=0)


def test_an_open_index_can_be_passed_and_stays_open(index, extractor, image_folder):
    webssl.index_folder(image_folder.folder, "shots", db=index, model=extractor)
    assert index.get_collection("shots").image_count == 4  # still open
