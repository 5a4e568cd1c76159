"""dashboard/views (with Home.py, pages, widgets, match_launcher, run_explorer): every page, driven
with Streamlit's AppTest on a temp database and the tiny model."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TEST_THRESHOLD
from dashboard import keys, pages
from dashboard.run_explorer import RUN_TABS

streamlit_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = streamlit_testing.AppTest

HOME = Path(__file__).resolve().parents[1] / "dashboard" / "Home.py"
TIMEOUT = 90
EXPORT_TAB = RUN_TABS[-1]


@pytest.fixture
def env(tmp_path, monkeypatch, tiny_model_dir):
    """The dashboard's settings: a fresh database, data folder and the tiny model."""
    monkeypatch.setenv("WEBSSL_DB", str(tmp_path / "dash.sqlite"))
    monkeypatch.setenv("WEBSSL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WEBSSL_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("WEBSSL_DEVICE", "cpu")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WEBSSL_ALLOWED_DIRS", str(tmp_path))  # the test's images and videos live here
    return tmp_path


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(HOME), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def plain(elements) -> list[str]:
    """Texts with Markdown escapes removed."""
    return [e.value.replace("\\", "") for e in elements]


def wait_for_job(at: AppTest, key: str, timeout: float = 120) -> AppTest:
    """Rerun the page until the job stored under ``key`` has finished and been handled."""
    deadline = time.monotonic() + timeout
    while key in at.session_state:
        assert time.monotonic() < deadline, f"job {key} did not finish in {timeout} s"
        time.sleep(0.3)
        at.run()
        assert not at.exception, at.exception
    return at


def open_run_tab(at: AppTest, label: str) -> AppTest:
    """Open one of the run's tabs, as a click on it does (only the open tab is drawn)."""
    at.session_state[keys.RUN_TAB] = label
    at.run()
    assert not at.exception, at.exception
    return at


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def filled_db(env, image_folder, extractor):
    """A collection "posters" with the four test images, in the dashboard's database."""
    from core.config import default_db_path
    from core.matching.indexing import index_images
    from db import Index

    with Index(default_db_path()) as index:
        index_images(index, "posters", [image_folder.folder], extractor)
    return image_folder


@pytest.fixture
def stored_run(filled_db, shots_video, extractor):
    """A match run of the shots video against "posters" (every frame, test threshold)."""
    from core.config import default_db_path
    from core.matching.params import MatchParams
    from core.matching.pipeline import match_video
    from core.matching.sampling import Sampling
    from db import Index

    with Index(default_db_path()) as index:
        summary = match_video(
            index,
            shots_video.path,
            "posters",
            extractor,
            sampling=Sampling.every(),
            params=MatchParams(threshold=TEST_THRESHOLD, top_k=3),
        )
    return summary


# -- every page renders ------------------------------------------------------------------------------
PAGES = [p.path for p in pages.PAGES]


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_on_an_empty_database(env, page):
    at = open_app(page)
    assert not at.error, texts(at.error)


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_with_data(stored_run, page):
    at = open_app(page)
    assert not at.error, texts(at.error)


def test_home_shows_database_counts_and_model(stored_run):
    at = open_app()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Collections": "1", "Images": "4", "Videos": "1", "Runs": "1"}
    assert any("Weights available" in s for s in texts(at.success))
    assert any("dash.sqlite" in m for m in texts(at.markdown))


def test_home_explains_missing_weights(env, monkeypatch, tmp_path):
    monkeypatch.setenv("WEBSSL_MODEL", str(tmp_path / "no-such-model"))
    at = open_app()
    warning = " ".join(plain(at.warning))
    assert "does not exist" in warning and "WEBSSL_MODEL" in warning
    monkeypatch.setenv("WEBSSL_MODEL", "someone/not-downloaded-model")
    at = open_app()
    warning = " ".join(plain(at.warning))
    assert "hf download someone/not-downloaded-model" in warning and "HF_HUB_OFFLINE=1" in warning


# -- collections ---------------------------------------------------------------------------------------
def test_create_index_rename_delete_a_collection(env, image_folder):
    at = open_app("views/collections.py")
    at.text_input(key=keys.NEW_NAME).input("posters")
    at.button(key=keys.CREATE_BUTTON).click().run()
    assert not at.exception, at.exception
    assert any("Created collection" in s for s in texts(at.success))

    # the same name again: a clear error, no traceback
    at.text_input(key=keys.NEW_NAME).input("posters")
    at.button(key=keys.CREATE_BUTTON).click().run()
    assert any("already exists" in e for e in texts(at.error))

    # index a folder on the server, in the background
    at.text_input(key=keys.INDEX_FOLDER).input(str(image_folder.folder))
    at.button(key=keys.INDEX_FOLDER_BUTTON).click().run()
    assert keys.INDEX_JOB in at.session_state
    wait_for_job(at, keys.INDEX_JOB)
    assert any("4 added" in s for s in texts(at.success)), texts(at.success)
    assert at.dataframe[0].value["images"].tolist() == [4]
    # the picker tells the current count (it used to show the count before indexing)
    assert at.selectbox(key=keys.MANAGE_COLLECTION).options == ["posters"]
    assert any(c.startswith("4 images") for c in texts(at.caption))

    # a bad file in the folder is listed with its reason
    (image_folder.folder / "broken.jpg").write_bytes(b"not a jpeg")
    at.button(key=keys.INDEX_FOLDER_BUTTON).click().run()
    wait_for_job(at, keys.INDEX_JOB)
    assert any("1 failed" in s for s in texts(at.success))
    section = at.button_group(key=keys.MANAGE_TAB)
    section.set_value("failures").run()
    failures = [df.value for df in at.dataframe if "reason" in df.value.columns]
    assert failures and failures[0]["file"].str.endswith("broken.jpg").any()

    # rename; the section stays where the user is (tabs jumped back to "Add images")
    at.button_group(key=keys.MANAGE_TAB).set_value("admin").run()
    at.text_input(key=keys.RENAME_TO).input("renamed")
    at.button[[b.label for b in at.button].index("Rename")].click().run()
    assert any("Renamed" in s for s in texts(at.success))
    assert at.selectbox(key=keys.MANAGE_COLLECTION).value == "renamed"
    assert at.button_group(key=keys.MANAGE_TAB).value == "admin"
    at.text_input(key=keys.RENAME_TO).input("renamed").run()  # Enter in "New name"
    assert at.button_group(key=keys.MANAGE_TAB).value == "admin"

    # delete needs the name typed
    at.button[[b.label for b in at.button].index("Delete collection")].click().run()
    assert any("Nothing deleted" in w for w in texts(at.warning))
    assert at.button_group(key=keys.MANAGE_TAB).value == "admin"
    at.text_input(key=keys.DELETE_CONFIRM).input("renamed").run()
    at.button[[b.label for b in at.button].index("Delete collection")].click().run()
    assert not at.exception
    assert any("Deleted collection" in s for s in texts(at.success))
    from core.config import default_db_path
    from db import Index

    with Index(default_db_path()) as index:
        assert index.list_collections() == []


def test_a_running_job_shows_progress_and_can_be_cancelled(env):
    from core.progress import ProgressReporter
    from dashboard.state import get_jobs

    started = threading.Event()

    def slow(*, progress, cancel):
        reporter = ProgressReporter("indexing", "images", 100, progress, cancel)
        reporter.update(10)
        started.set()
        while True:
            reporter.check_cancelled()
            cancel.wait(0.02)

    at = open_app("views/collections.py")
    job = get_jobs().submit("index", "Indexing test files", slow)
    assert started.wait(30)
    at.session_state[keys.INDEX_JOB] = job.id
    at.run()
    assert not at.exception, at.exception
    bars = at.get("progress")
    assert bars and "Indexing: 10 / 100 images" in bars[0].proto.text
    at.button(key=keys.cancel_job(job.id)).click().run()
    wait_for_job(at, keys.INDEX_JOB)
    assert job.snapshot().status == "cancelled"
    assert any("cancelled" in w for w in texts(at.warning)), texts(at.warning)


def test_upload_images_and_index_them(env, image_folder):
    from core.config import data_dir

    at = open_app("views/collections.py")
    at.text_input(key=keys.NEW_NAME).input("uploads")
    at.button(key=keys.CREATE_BUTTON).click().run()
    files = [(p.name, p.read_bytes(), "image/jpeg") for p in image_folder.paths[:2]]
    files.append(("../../evil name.png", png(image_folder.arrays[3]), "image/png"))
    at.file_uploader(key=keys.image_upload(0)).set_value(files).run()
    at.button(key=keys.INDEX_UPLOADS).click().run()
    wait_for_job(at, keys.INDEX_JOB)
    assert any("3 added" in s for s in texts(at.success)), texts(at.success)
    stored = sorted(p.name for p in (data_dir() / "uploads" / "images").rglob("*") if p.is_file())
    assert stored == sorted(["alpha.jpg", "beta.png", "evil_name.png"])
    # the uploader was reset for the next batch
    assert at.file_uploader(key=keys.image_upload(1)) is not None


def test_prune_missing_files(filled_db):
    """Pruning shows what it would remove and removes it on a second click."""
    at = open_app("views/collections.py")
    filled_db.paths[0].unlink()
    at.button_group(key=keys.MANAGE_TAB).set_value("admin").run()
    at.button[[b.label for b in at.button].index("Prune missing files")].click().run()
    assert at.button_group(key=keys.MANAGE_TAB).value == "admin"
    assert any("1 of 4 files" in s and "alpha.jpg" in s for s in plain(at.warning)), plain(at.warning)
    assert not at.success
    at.button(key=keys.PRUNE_CONFIRM).click().run()
    assert any("Removed 1 images" in s and "alpha.jpg" in s for s in plain(at.success))


def test_prune_asks_twice_before_emptying_a_collection(filled_db):
    """Every file gone looks like an unmounted drive: removing them all needs a tick as well."""
    at = open_app("views/collections.py")
    for path in filled_db.paths:
        path.unlink()
    at.button_group(key=keys.MANAGE_TAB).set_value("admin").run()
    at.button[[b.label for b in at.button].index("Prune missing files")].click().run()
    assert any("None of the 4 files" in s and "mounted" in s for s in plain(at.warning)), plain(at.warning)
    assert at.button(key=keys.PRUNE_CONFIRM).disabled
    at.checkbox(key=keys.PRUNE_ALL).check().run()
    at.button(key=keys.PRUNE_CONFIRM).click().run()
    assert any("Removed 4 images" in s for s in plain(at.success)), plain(at.success)


def test_model_that_cannot_load_is_an_error_not_a_traceback(env, tmp_path):
    at = open_app("views/collections.py")
    at.text_input(key=keys.NEW_NAME).input("x")
    at.text_input(key=keys.NEW_MODEL).input(str(tmp_path / "missing-model"))
    at.button(key=keys.CREATE_BUTTON).click().run()
    assert not at.exception
    assert any("does not exist" in e for e in plain(at.error))


def test_missing_weights_say_what_to_do_in_the_dashboard(env):
    """The fix used to be a CLI flag (--model) that a dashboard user cannot pass (issue 10)."""
    at = open_app("views/collections.py")
    at.text_input(key=keys.NEW_NAME).input("x")
    at.text_input(key=keys.NEW_MODEL).input("someone/not-downloaded-model")
    at.button(key=keys.CREATE_BUTTON).click().run()
    error = " ".join(plain(at.error))
    assert "hf download someone/not-downloaded-model" in error
    assert "Model box" in error and "WEBSSL_MODEL" in error and "--model" not in error


# -- browse -----------------------------------------------------------------------------------------------
def test_browse_grid_filter_open_and_search(filled_db):
    at = open_app("views/browse.py")
    assert len(at.image) == 4  # thumbnails
    opens = [b for b in at.button if b.label == "Open"]
    assert len(opens) == 4
    at.text_input(key=keys.BROWSE_FILTER).input("gam").run()
    opens = [b for b in at.button if b.label == "Open"]
    assert len(opens) == 1
    opens[0].click().run()
    assert not at.exception
    assert "gamma.jpg" in plain(at.subheader)
    assert any("Nearest neighbours" in m for m in texts(at.markdown))
    at.button[[b.label for b in at.button].index("Close")].click().run()
    assert not any("Nearest neighbours" in m for m in texts(at.markdown))
    # search with a query image: the same picture comes first with a score of about 1
    at.file_uploader(key=keys.BROWSE_QUERY).set_value(("q.png", png(filled_db.arrays[1]), "image/png")).run()
    assert not at.exception, at.exception
    first = next(c for c in plain(at.caption) if "·" in c and "beta.png" in c)
    assert float(first.split("**")[1]) > 0.99


def widget_places(at: AppTest, prefix: str) -> dict[str, tuple[int, ...]]:
    """``key -> place in the page`` (the path of child indices) of widgets whose key starts with
    ``prefix``. The browser keeps an element whose place and kind stay; one that moves is built anew."""
    places: dict[str, tuple[int, ...]] = {}

    def walk(node, path: tuple[int, ...]) -> None:
        key = getattr(node, "key", None)
        if isinstance(key, str) and key.startswith(prefix):
            places[key] = path
        for index, child in getattr(node, "children", {}).items():
            walk(child, (*path, index))

    walk(at.main, ())
    return places


def test_an_opened_image_is_removed_from_its_collection(filled_db):
    """Curating a collection: a wrong image goes from Browse, with its matches in runs."""
    at = open_app("views/browse.py")
    at.text_input(key=keys.BROWSE_FILTER).input("beta").run()
    [b for b in at.button if b.label == "Open"][0].click().run()
    at.button(key=keys.BROWSE_REMOVE).click().run()
    assert not at.exception, at.exception
    assert any("Removed **beta.png** from **posters**" in s for s in plain(at.success)), plain(at.success)
    assert "beta.png" not in plain(at.subheader)  # closed
    at.text_input(key=keys.BROWSE_FILTER).input("").run()
    assert len([b for b in at.button if b.label == "Open"]) == 3
    from core.config import default_db_path
    from db import Index

    with Index(default_db_path()) as index:
        assert index.get_collection("posters").image_count == 3


def test_opening_an_image_leaves_the_grid_in_place(filled_db):
    """The opened image's details go in a slot that is there (empty) before: shown above the grid
    only once opened, they moved all 48 grid cards of a page, and the browser built them anew
    (an image's neighbours at 1M images: 0.87-1.13 s, 0.54-0.77 s in place)."""
    at = open_app("views/browse.py")
    before = widget_places(at, "grid-")
    assert len(before) == 4
    [b for b in at.button if b.label == "Open"][0].click().run()
    assert not at.exception, at.exception
    assert any("Nearest neighbours" in m for m in texts(at.markdown))
    assert widget_places(at, "grid-") == before


def test_a_notice_coming_and_going_leaves_the_run_in_place(stored_run):
    """A notice (a deleted run, a finished job) shows once above the run: the run's widgets keep
    their place when it goes, so the browser keeps the run's elements."""
    at = open_app("views/match.py")
    at.session_state[keys.notice(keys.MATCH_ADMIN_NOTICE)] = ("success", "Run #9 deleted.")
    at.run()
    assert "Run #9 deleted." in texts(at.success)
    run_widgets = f"thr-{stored_run.run_id}"
    with_notice = widget_places(at, run_widgets)
    assert with_notice
    at.run()
    assert "Run #9 deleted." not in texts(at.success)
    assert widget_places(at, run_widgets) == with_notice


def test_browse_rejects_a_bad_query_image(filled_db):
    at = open_app("views/browse.py")
    at.file_uploader(key=keys.BROWSE_QUERY).set_value(("q.png", b"not an image", "image/png")).run()
    assert not at.exception
    assert any("Cannot read this image" in e for e in texts(at.error))


# -- match ------------------------------------------------------------------------------------------------
def test_match_a_video_in_the_background(filled_db, shots_video):
    at = open_app("views/match.py")
    assert any("No runs yet" in i for i in texts(at.info))
    at.radio(key=keys.source_how(keys.MATCH_VIDEO)).set_value("Path on the server").run()
    at.text_input(key=keys.source_path(keys.MATCH_VIDEO)).input(str(shots_video.path))
    at.selectbox(key=keys.MATCH_SAMPLING).set_value("every")
    at.slider(key=keys.MATCH_THRESHOLD).set_value(TEST_THRESHOLD)
    at.run()
    at.button(key=keys.MATCH_GO).click().run()
    assert not at.exception, at.exception
    wait_for_job(at, keys.MATCH_JOB)
    assert any("Run #1 finished" in s for s in texts(at.success)), texts(at.success) + texts(at.error)
    assert at.session_state[keys.RUN] == 1
    assert timeline_data(at)["time_s"], "the timeline is drawn"
    segments = segments_data(at)
    assert [segments["images"][i][1] for i in segments["image"]] == ["alpha.jpg", "beta.png", "gamma.jpg"]


def test_match_a_folder_of_videos_in_the_background(filled_db, shots_video, tmp_path):
    """A folder on the server is a batch, as `match FOLDER` is: one run per video, the ones that
    cannot be read reported, a summary table; a second time, the done ones are skipped."""
    import shutil

    folder = tmp_path / "tonight"
    folder.mkdir()
    shutil.copy(shots_video.path, folder / "a.mp4")
    shutil.copy(shots_video.path, folder / "b.mp4")
    with open(folder / "b.mp4", "ab") as f:
        f.write(b"\0")  # other content: another video
    (folder / "broken.mp4").write_text("not a video")
    at = open_app("views/match.py")
    at.radio(key=keys.source_how(keys.MATCH_VIDEO)).set_value("Path on the server").run()
    at.text_input(key=keys.source_path(keys.MATCH_VIDEO)).input(str(folder))
    at.selectbox(key=keys.MATCH_SAMPLING).set_value("every")
    at.slider(key=keys.MATCH_THRESHOLD).set_value(TEST_THRESHOLD)
    at.run()
    assert any("3 video files" in c for c in plain(at.caption)), plain(at.caption)
    at.button(key=keys.MATCH_GO).click().run()
    assert not at.exception, at.exception
    wait_for_job(at, keys.MATCH_JOB)
    assert any("3 videos: 2 matched, 0 done before, 1 failed" in s for s in plain(at.success)), plain(
        at.success
    ) + plain(at.error)
    (table,) = [d.value for d in at.dataframe if "status" in d.value.columns]
    assert table["video"].tolist() == ["a.mp4", "b.mp4", "broken.mp4"]
    assert table["status"].tolist() == ["matched", "matched", "failed"]
    assert table["reason"][2].startswith("not a video")
    assert at.session_state[keys.RUN] in table["run"].tolist()
    at.session_state[keys.MATCH_LAUNCHER] = True  # a click on the expander
    at.run()
    at.button(key=keys.MATCH_GO).click().run()
    wait_for_job(at, keys.MATCH_JOB)
    assert any("2 done before" in s for s in plain(at.success)), plain(at.success)


def chart_types(at: AppTest) -> list[str]:
    """The Plotly trace types drawn on the page, one list entry per chart."""
    import json

    return [",".join(t["type"] for t in json.loads(c.proto.spec)["data"]) for c in at.get("plotly_chart")]


def test_only_the_open_tab_is_drawn(stored_run):
    """A long run's heat map and histogram cost seconds per rerun: they are built only when opened."""
    at = open_app("views/match.py")
    assert not any("heatmap" in t for t in chart_types(at))
    assert segments_data(at)["image"], "the Segments tab is open first"
    open_run_tab(at, "Heat map")
    assert any("heatmap" in t for t in chart_types(at))
    assert segments_data(at) is None
    open_run_tab(at, "Score histogram")
    assert not any("heatmap" in t for t in chart_types(at))
    assert any("bar" in t for t in chart_types(at))


def test_threshold_relabels_from_stored_scores(stored_run):
    at = open_app("views/match.py")
    run_id = stored_run.run_id
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Segments"] == "3"
    # above every score: nothing matches, no model needed
    at.slider(key=keys.run_threshold(run_id)).set_value(1.0).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Segments"] == "0"
    assert metrics["Matched frames"] == "0%"
    assert any("No segments at this threshold" in i for i in texts(at.info))
    # very low: every frame matches
    at.slider(key=keys.run_threshold(run_id)).set_value(0.0).run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Matched frames"] == "100%"
    (matched,) = [m for m in at.metric if m.label == "Matched frames"]
    assert matched.proto.help == "40 of 40 frames"


def test_frame_inspector_follows_the_slider(stored_run):
    at = open_app("views/match.py")
    run_id = stored_run.run_id
    at.slider(key=keys.run_frame(run_id)).set_value(20).run()
    assert not at.exception, at.exception
    captions = [c for img in at.image for c in img.captions]
    assert any(c.startswith("Frame 20 at 0:02.0") for c in captions), captions
    assert any("#1 beta.png" in c for c in plain(at.caption))


def component_data(at: AppTest, name: str) -> dict | None:
    """The data the page sent to one of its components (None where it is not drawn)."""
    import json

    found = [e for e in at.get("bidi_component") if e.proto.component_name == name]
    assert len(found) <= 1
    return json.loads(found[0].proto.json) if found else None


def timeline_data(at: AppTest) -> dict:
    """The data the page sent to its timeline (dashboard/timeline.js draws it)."""
    data = component_data(at, "webssl_lens.timeline")
    assert data is not None
    return data


def segments_data(at: AppTest) -> dict | None:
    """The data the page sent to its segments list (dashboard/segment_list.js draws it)."""
    return component_data(at, "webssl_lens.segments")


def click(at: AppTest, key: str, frame: int) -> None:
    """What the browser sends when a click in a component chooses a frame (a trigger value)."""
    at.session_state[key] = {"frame": frame}
    at.run()
    assert not at.exception, at.exception


def assert_inspected(at: AppTest, run_id: int, frame: int) -> None:
    """The inspector shows ``frame`` and its slider stands on it."""
    captions = [c for img in at.image for c in img.captions]
    assert any(c.startswith(f"Frame {frame} at ") for c in captions), captions
    assert at.slider(key=keys.run_frame(run_id)).value == frame


def test_a_click_on_the_timeline_inspects_that_frame(stored_run):
    """The browser sends the clicked point's frame once (a trigger value); the inspector, the
    timeline's frame line and the slider follow it."""
    at = open_app("views/match.py")
    run_id = stored_run.run_id
    data = timeline_data(at)
    assert data["threshold"] == pytest.approx(TEST_THRESHOLD)
    frame = data["frame_index"][-3]
    click(at, keys.run_timeline(run_id), frame)
    assert_inspected(at, run_id, frame)
    assert timeline_data(at)["selected_time"] == pytest.approx(data["time_s"][-3])


def test_a_click_on_a_segment_inspects_its_first_frame(stored_run):
    """The list sends the clicked segment's first frame once (a trigger value); the inspector, the
    slider, the timeline's frame line and the list's marked row follow it."""
    at = open_app("views/match.py")
    run_id = stored_run.run_id
    segments = segments_data(at)
    assert len(segments["image"]) >= 2 and segments["current"] is not None
    # a segment other than the one inspected first (the best frame's)
    target = 0 if segments["current"] != 0 else len(segments["image"]) - 1
    frame = segments["start_frame"][target]
    click(at, keys.run_segments(run_id), frame)
    assert_inspected(at, run_id, frame)
    assert segments_data(at)["current"] == target
    assert timeline_data(at)["selected_time"] == pytest.approx(segments["start_s"][target], abs=0.05)


def test_moving_the_threshold_redraws_the_timeline_in_place(stored_run):
    """The timeline keeps its identity when the threshold moves (a Plotly chart's follows its
    figure, so the browser rebuilt it on every move), and draws the new threshold and colours."""
    at = open_app("views/match.py")
    run_id = stored_run.run_id
    before, first = at.get("bidi_component")[0].proto.id, timeline_data(at)
    at.slider(key=keys.run_threshold(run_id)).set_value(0.995).run()
    assert not at.exception, at.exception
    data = timeline_data(at)
    assert at.get("bidi_component")[0].proto.id == before
    assert data["threshold"] == pytest.approx(0.995)
    matched = [k > 0 for k in data["kind"]]
    assert sum(matched) < sum(k > 0 for k in first["kind"])
    assert matched == [s is not None and s >= 0.995 for s in data["score"]]


@pytest.fixture
def long_run(env):
    """A 10-minute run (25 fps, 15,000 frames) written through the db API: long enough for a time
    window (the video file does not exist: the inspector says so)."""
    from conftest import synthetic_run
    from core.config import default_db_path
    from db import Index

    n = 15_000
    best = [(i // 3000) % 2 for i in range(n)]
    scores = [0.9 if (i // 1500) % 2 else 0.3 for i in range(n)]
    with Index(default_db_path()) as index:
        return synthetic_run(index, best, scores, threshold=0.5)


def test_a_drag_across_the_timeline_zooms_in(long_run):
    """The browser sends the dragged span once; the window slider takes it in whole seconds and the
    timeline shows that stretch alone, every frame a point once it is short enough."""
    run_id = long_run.run.id
    at = open_app("views/match.py")
    data = timeline_data(at)
    assert data["brush"] is True and len(data["time_s"]) == 600  # decimated, drags allowed
    assert any("drag across it to zoom in" in c for c in plain(at.caption))
    at.session_state[keys.run_timeline(run_id)] = {"window": [100.4, 119.2]}
    at.run()
    assert not at.exception, at.exception
    assert at.slider(key=keys.run_window(run_id)).value == (100.0, 120.0)
    data = timeline_data(at)
    assert 100.0 <= min(data["time_s"]) and max(data["time_s"]) <= 120.0
    assert len(data["time_s"]) == 20 * 25 + 1  # every frame of the window
    at.session_state[keys.run_timeline(run_id)] = {}  # a trigger value lasts one rerun in the browser
    at.button(key=keys.run_unzoom(run_id)).click().run()
    assert at.slider(key=keys.run_window(run_id)).value == (0.0, 600.0)


def test_zoom_on_frame_shows_the_minutes_around_the_inspected_frame(long_run):
    run_id = long_run.run.id
    at = open_app("views/match.py")
    at.slider(key=keys.run_frame(run_id)).set_value(9000).run()  # 6:00
    at.button(key=keys.run_zoom(run_id)).click().run()
    assert not at.exception, at.exception
    assert at.slider(key=keys.run_window(run_id)).value == (300.0, 420.0)
    assert timeline_data(at)["brush"] is True  # still long enough to drag in


def test_unreadable_thumbnails_show_as_empty_squares(long_run):
    """A thumbnail in the database that is not a picture (a damaged file, another tool's bytes)
    raised UnidentifiedImageError and took the Match page and an opened image's Browse view down."""
    at = open_app("views/match.py")
    thumbnails = [img for img in at.image if not any(c.startswith("Frame ") for c in img.captions)]
    assert thumbnails, "the inspector shows the frame's top images"
    at = open_app("views/browse.py")
    [b for b in at.button if b.label == "Open"][0].click().run()
    assert not at.exception, at.exception
    assert any("The original file is gone" in w for w in texts(at.warning))


def test_a_short_run_has_no_window_and_no_drag(stored_run):
    at = open_app("views/match.py")
    assert timeline_data(at)["brush"] is False
    assert not any("drag across" in c for c in plain(at.caption))
    with pytest.raises(KeyError):
        at.slider(key=keys.run_window(stored_run.run_id))


def test_past_runs_are_listed_and_reopened(stored_run, shots_video, extractor):
    from core.config import default_db_path
    from core.matching.params import MatchParams
    from core.matching.pipeline import match_video
    from core.matching.sampling import Sampling
    from db import Index

    with Index(default_db_path()) as index:
        second = match_video(
            index,
            shots_video.path,
            "posters",
            extractor,
            sampling=Sampling.every_nth(2),
            params=MatchParams(threshold=TEST_THRESHOLD),
        )
    at = open_app("views/match.py")
    picker = at.selectbox(key=keys.RUN)
    assert picker.options and len(picker.options) == 2
    assert at.session_state[keys.RUN] == second.run_id
    picker.set_value(stored_run.run_id).run()
    assert not at.exception
    (matched,) = [m for m in at.metric if m.label == "Matched frames"]
    assert matched.proto.help.endswith("of 40 frames")


def test_delete_a_run(stored_run):
    at = open_app("views/match.py")
    at.button(key=keys.run_delete(stored_run.run_id)).click().run()
    assert not at.exception, at.exception
    assert any(f"Deleted run #{stored_run.run_id}" in s for s in texts(at.success))
    assert any("No runs yet" in i for i in texts(at.info))


def test_match_needs_a_non_empty_collection(env):
    from core.config import default_db_path
    from core.matching.indexing import ensure_collection
    from core.model.features import FeatureExtractor
    from db import Index

    fx = FeatureExtractor.load(str(Path(__import__("os").environ["WEBSSL_MODEL"])), device="cpu")
    with Index(default_db_path()) as index:
        ensure_collection(index, "empty", fx)
    at = open_app("views/match.py")
    assert any("has no images yet" in w for w in texts(at.warning))
    assert at.button(key=keys.MATCH_GO).disabled


def test_match_asks_for_a_video(filled_db):
    at = open_app("views/match.py")
    at.button(key=keys.MATCH_GO).click().run()
    assert any("Choose a video first" in w for w in texts(at.warning))
    assert keys.MATCH_JOB not in at.session_state


def test_match_rejects_a_file_that_is_not_a_video(filled_db):
    at = open_app("views/match.py")
    at.file_uploader(key=keys.source_upload(keys.MATCH_VIDEO)).set_value(
        ("clip.mp4", b"not a video at all", "video/mp4")
    ).run()
    at.button(key=keys.MATCH_GO).click().run()
    assert not at.exception, at.exception
    assert any("Cannot open video" in e for e in texts(at.error)), texts(at.error)
    assert keys.MATCH_JOB not in at.session_state


def test_render_the_matched_video(stored_run):
    at = open_app("views/match.py")
    run_id = stored_run.run_id
    open_run_tab(at, EXPORT_TAB)
    at.button(key=keys.run_render(run_id)).click().run()
    wait_for_job(at, keys.run_render_job(run_id))
    assert any("Rendered 40 frames" in s for s in texts(at.success)), texts(at.success) + texts(at.error)
    assert at.get("video")


def test_a_render_notice_belongs_to_its_run(stored_run, shots_video, extractor):
    """Run #1's "Rendered 40 frames." used to show in run #2's Export tab, with no video there."""
    from core.config import default_db_path
    from core.matching.pipeline import match_video
    from core.matching.sampling import Sampling
    from db import Index

    at = open_app("views/match.py")
    open_run_tab(at, EXPORT_TAB)
    at.button(key=keys.run_render(stored_run.run_id)).click().run()
    wait_for_job(at, keys.run_render_job(stored_run.run_id))
    with Index(default_db_path()) as index:
        second = match_video(index, shots_video.path, "posters", extractor, sampling=Sampling.every_nth(4))
    at.run()
    at.selectbox(key=keys.RUN).set_value(second.run_id).run()
    assert at.session_state[keys.RUN_TAB] == EXPORT_TAB, "the open tab stays open from run to run"
    assert not any("Rendered" in s for s in texts(at.success))
    at.selectbox(key=keys.RUN).set_value(stored_run.run_id).run()
    assert any("Rendered 40 frames" in s for s in texts(at.success))


def test_downloads_do_not_rerun_the_page(stored_run):
    """A rerun after downloading the CSV dropped the JSON button's file (MediaFileStorageError)."""
    at = open_app("views/match.py")
    open_run_tab(at, EXPORT_TAB)
    buttons = [b for b in at.get("download_button")]
    assert {b.proto.label for b in buttons} >= {"CSV", "JSON", "EDL", "OTIO", "WebVTT"}
    assert all(b.proto.ignore_rerun for b in buttons)


# -- explore and render -------------------------------------------------------------------------------------
def test_explore_an_uploaded_image(env, image_folder):
    at = open_app("views/explore.py")
    at.file_uploader(key=keys.source_upload(keys.EXPLORE_SOURCE)).set_value(
        ("a.png", png(image_folder.arrays[0]), "image/png")
    ).run()
    assert not at.exception, at.exception
    assert at.slider(key=keys.EXPLORE_LAYER).value == 3  # the tiny model has 3 layers
    at.slider(key=keys.EXPLORE_LAYER).set_value(1).run()
    assert not at.exception
    at.radio(key=keys.EXPLORE_MODE).set_value("full").run()
    assert not at.exception, at.exception
    assert not at.error
    (button,) = [b for b in at.get("download_button") if b.proto.label == "Download the figure (PNG)"]
    assert button.proto.ignore_rerun


def test_explore_an_image_of_a_collection(filled_db):
    at = open_app("views/explore.py")
    at.radio(key=keys.source_how(keys.EXPLORE_SOURCE)).set_value("From a collection").run()
    assert not at.exception, at.exception
    assert at.selectbox(key=keys.source_image(keys.EXPLORE_SOURCE)).options
    assert at.slider(key=keys.EXPLORE_LAYER).value == 3


def test_render_layer_and_pca_videos(env, image_folder, shots_video):
    at = open_app("views/render.py")
    at.file_uploader(key=keys.source_upload(keys.LAYERS_SOURCE)).set_value(
        ("a.png", png(image_folder.arrays[0]), "image/png")
    )
    at.checkbox(key=keys.LAYERS_GIF).check().run()
    at.button(key=keys.LAYERS_GO).click().run()
    wait_for_job(at, keys.LAYERS_JOB)
    assert any("Rendered 3 frames" in s for s in texts(at.success)), texts(at.success) + texts(at.error)
    assert at.get("video")

    at.radio(key=keys.source_how(keys.PCA_SOURCE)).set_value("Path on the server").run()
    at.text_input(key=keys.source_path(keys.PCA_SOURCE)).input(str(shots_video.path))
    at.number_input(key=keys.PCA_MAX_FRAMES).set_value(6).run()
    at.button(key=keys.PCA_GO).click().run()
    wait_for_job(at, keys.PCA_JOB)
    assert any("Rendered 6 frames" in s for s in texts(at.success)), texts(at.success) + texts(at.error)


def test_match_options_start_at_the_core_defaults(filled_db):
    """The dashboard re-checked every 1.0 s while the CLI and README said 3 s (issue 8, defect 4)."""
    from core.matching.params import DEFAULTS
    from core.matching.sampling import DEFAULT_SAMPLING

    at = open_app("views/match.py")
    assert at.selectbox(key=keys.MATCH_SAMPLING).value == DEFAULT_SAMPLING.mode
    assert at.number_input(key=keys.MATCH_MAX_INTERVAL).value == DEFAULT_SAMPLING.max_interval_s
    assert at.slider(key=keys.MATCH_THRESHOLD).value == DEFAULTS.threshold
    assert at.number_input(key=keys.MATCH_TOP_K).value == DEFAULTS.top_k
    assert at.number_input(key=keys.MATCH_GAP).value == DEFAULTS.gap_tolerance_s
    assert at.number_input(key=keys.MATCH_MIN_DURATION).value == DEFAULTS.min_duration_s


def test_a_closed_launcher_is_not_drawn_and_keeps_its_values(stored_run, shots_video):
    """With runs to show, the "New match run" form is closed, and drawn only when opened (its
    widgets cost a page load ~0.1 s in the browser); what was typed or chosen in it survives
    closing it. A chosen upload keeps the form drawn (an upload cannot be restored)."""
    at = open_app("views/match.py")
    assert not at.get("selectbox") or keys.MATCH_SAMPLING not in [w.key for w in at.selectbox]
    assert keys.MATCH_TOP_K not in [w.key for w in at.number_input]
    at.session_state[keys.MATCH_LAUNCHER] = True  # a click on the expander
    at.run()
    assert not at.exception, at.exception
    at.selectbox(key=keys.MATCH_SAMPLING).set_value("every")
    at.number_input(key=keys.MATCH_TOP_K).set_value(7)
    at.checkbox(key=keys.MATCH_REGIONS).check()
    at.radio(key=keys.source_how(keys.MATCH_VIDEO)).set_value("Path on the server").run()
    at.text_input(key=keys.source_path(keys.MATCH_VIDEO)).input(str(shots_video.path)).run()
    assert not at.exception, at.exception
    at.session_state[keys.MATCH_LAUNCHER] = False
    at.run()
    assert keys.MATCH_TOP_K not in [w.key for w in at.number_input]
    at.run()  # a rerun that does not draw the form either (a threshold move, a click)
    at.session_state[keys.MATCH_LAUNCHER] = True
    at.run()
    assert not at.exception and not at.warning, (at.exception, texts(at.warning))
    assert at.selectbox(key=keys.MATCH_SAMPLING).value == "every"
    assert at.number_input(key=keys.MATCH_TOP_K).value == 7
    assert at.checkbox(key=keys.MATCH_REGIONS).value
    assert at.text_input(key=keys.source_path(keys.MATCH_VIDEO)).value == str(shots_video.path)
    # the values travel with the widgets: the browser forgot them when it dropped the form
    for widget in (
        at.text_input(key=keys.source_path(keys.MATCH_VIDEO)),
        at.number_input(key=keys.MATCH_TOP_K),
    ):
        assert widget.proto.set_value, widget.key
    # every value the form holds is one it keeps (the upload aside: below)
    (form,) = [e for e in at.expander if e.label == "New match run"]
    kinds = ("selectbox", "number_input", "slider", "checkbox", "radio", "text_input")
    drawn = {w.key for kind in kinds for w in form.get(kind)}
    assert keys.MATCH_TOP_K in drawn and drawn <= set(keys.MATCH_FORM), drawn - set(keys.MATCH_FORM)
    # a chosen upload keeps the form drawn while it is closed
    at.radio(key=keys.source_how(keys.MATCH_VIDEO)).set_value("Upload a file").run()
    at.file_uploader(key=keys.source_upload(keys.MATCH_VIDEO)).set_value(
        ("clip.mp4", shots_video.path.read_bytes(), "video/mp4")
    ).run()
    at.session_state[keys.MATCH_LAUNCHER] = False
    at.run()
    at.run()
    assert not at.exception, at.exception
    assert at.file_uploader(key=keys.source_upload(keys.MATCH_VIDEO)).value is not None


def test_home_links_every_page_once(env):
    at = open_app()
    links = [e.proto.page for e in at.get("page_link")]
    assert sorted(links) == sorted(Path(p.path).stem for p in pages.PAGES if p is not pages.HOME)


# -- issue 9: the server's folders, and hostile names --------------------------------------------------
def test_server_paths_outside_the_allowed_folders_are_refused(filled_db, shots_video, tmp_path, monkeypatch):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    monkeypatch.setenv("WEBSSL_ALLOWED_DIRS", str(allowed))
    at = open_app("views/collections.py")
    at.text_input(key=keys.INDEX_FOLDER).input(str(filled_db.folder))
    at.button(key=keys.INDEX_FOLDER_BUTTON).click().run()
    assert keys.INDEX_JOB not in at.session_state
    assert any(
        "may only read inside" in e.value and str(allowed) in e.value.replace("\\", "") for e in at.error
    )
    at = open_app("views/match.py")
    at.radio(key=keys.source_how(keys.MATCH_VIDEO)).set_value("Path on the server").run()
    at.text_input(key=keys.source_path(keys.MATCH_VIDEO)).input(str(shots_video.path)).run()
    assert any("WEBSSL_ALLOWED_DIRS" in e.value.replace("\\", "") for e in at.error)


def test_hostile_collection_names_show_as_text(env, extractor):
    from core.config import default_db_path
    from db import Index

    hostile = "![x](http://127.0.0.1:9/t.png) **bold** :red[x] <b>y</b>"
    with Index(default_db_path()) as index:
        index.create_collection(
            hostile, extractor.model_id, extractor.preprocessing.to_json(), extractor.hidden_size
        )
    at = open_app("views/collections.py")
    at.button_group(key=keys.MANAGE_TAB).set_value("admin").run()  # where the name is in labels
    shown = [e.value for kind in ("warning", "markdown", "caption", "subheader") for e in getattr(at, kind)]
    delete_label = [w.label for w in at.text_input if w.key == keys.DELETE_CONFIRM][0]
    for text in [*shown, delete_label]:
        assert "![x](" not in text and "**bold**" not in text and ":red[x]" not in text
    assert any("\\!\\[x\\]" in text for text in [*shown, delete_label])


def test_browse_pages_can_be_turned_below_the_grid(env, extractor):
    import io

    from PIL import Image

    from core.config import default_db_path
    from db import Index, NewImage

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 120, 200)).save(buf, "JPEG")
    with Index(default_db_path()) as index:
        coll = index.create_collection("many", extractor.model_id, extractor.preprocessing.to_json(), 48)
        rng = np.random.default_rng(0)
        items = [
            NewImage(f"/p/{i:03d}.jpg", f"{i:064x}", 40, 30, buf.getvalue(), rng.normal(size=48))
            for i in range(30)
        ]
        index.add_images(coll.id, items)
    at = open_app("views/browse.py")
    at.selectbox(key=keys.BROWSE_PAGE_SIZE).set_value(24).run()
    assert len(at.image) == 24
    at.button(key=keys.BROWSE_NEXT).click().run()
    assert at.number_input(key=keys.BROWSE_PAGE).value == 2 and len(at.image) == 6
    assert at.button(key=keys.BROWSE_NEXT).disabled
    at.button(key=keys.BROWSE_PREVIOUS).click().run()
    assert at.number_input(key=keys.BROWSE_PAGE).value == 1


def test_job_titles_are_plain_text(env, image_folder):
    """The Home jobs table showed literal backticks ("Indexing `many` into many2") (issue 10)."""
    at = open_app("views/collections.py")
    at.text_input(key=keys.NEW_NAME).input("many2")
    at.button(key=keys.CREATE_BUTTON).click().run()
    at.text_input(key=keys.INDEX_FOLDER).input(str(image_folder.folder))
    at.button(key=keys.INDEX_FOLDER_BUTTON).click().run()
    wait_for_job(at, keys.INDEX_JOB)
    home = open_app()
    jobs = [df.value for df in home.dataframe if "what" in df.value.columns]
    titles = jobs[0]["what"].tolist()
    assert f"Indexing {image_folder.folder.name} into many2" in titles
    assert not any("`" in t for t in titles)


def test_streamlit_does_not_collect_garbage_after_every_rerun():
    """A full gc.collect() after each 0.75 s progress rerun held the GIL: indexing with the page
    open took 2.15x the CLI's time (bench/dashboard_indexing.py: 0.88x without it)."""
    import tomllib

    config = tomllib.loads((HOME.parents[1] / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False


def test_evaluate_tab_uploads_truth_and_applies_the_calibrated_threshold(stored_run):
    at = open_run_tab(open_app("views/match.py"), "Evaluate")
    run_id = stored_run.run_id
    assert any("Upload a truth CSV" in i for i in texts(at.info))
    truth = b"image,start_s,end_s\nalpha.jpg,0,1.2\nbeta.png,1.8,2.8\ngamma.jpg,2.8,3.6\n"
    at.file_uploader(key=keys.run_truth_upload(run_id)).set_value(("truth.csv", truth, "text/csv")).run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Frame accuracy"] == "100.0%" and metrics["Micro AP"] == "1.000"
    calibrated = float(metrics["Threshold at 90% precision"])
    at.button(key=keys.run_apply_threshold(run_id)).click().run()
    assert not at.exception, at.exception
    assert at.slider(key=keys.run_threshold(run_id)).value == pytest.approx(calibrated, abs=0.005)


def test_evaluate_tab_explains_a_bad_truth_file(stored_run):
    at = open_run_tab(open_app("views/match.py"), "Evaluate")
    at.file_uploader(key=keys.run_truth_upload(stored_run.run_id)).set_value(
        ("truth.csv", b"nothing,useful\n1,2\n", "text/csv")
    ).run()
    assert not at.exception, at.exception
    assert any("header must name the columns" in e for e in texts(at.error))


def test_every_export_format_has_a_download(stored_run):
    from core.matching.export import EXPORT_FORMATS

    at = open_run_tab(open_app("views/match.py"), "Export & render")
    labels = [b.proto.label for b in at.get("download_button")]
    assert [f.label for f in EXPORT_FORMATS] == labels[: len(EXPORT_FORMATS)]


def test_inspector_shows_where_it_matched(stored_run):
    at = open_app("views/match.py")
    run_id = stored_run.run_id
    at.slider(key=keys.run_frame(run_id)).set_value(20).run()
    at.toggle(key=keys.run_overlay(run_id)).set_value(True).run()
    assert not at.exception, at.exception
    captions = [c for img in at.image for c in img.captions]
    assert any(c.startswith("Frame 20 at 0:02.0") and "where it fits" in c for c in captions), captions


def test_regions_on_a_large_collection_say_what_to_expect(env, extractor):
    """Ticking regions for a collection larger than region mode's candidates tells the user, before
    the run, that small pictures are rarely found there (the same note the CLI logs)."""
    from conftest import new_image
    from core.config import default_db_path
    from core.matching.regions import large_collection_note
    from db import Index

    with Index(default_db_path()) as index:
        coll = index.create_collection(
            "big", extractor.model_id, extractor.preprocessing.to_json(), extractor.hidden_size
        )
        index.add_images(coll.id, [new_image(i, dim=extractor.hidden_size) for i in range(65)])
    at = open_app("views/match.py")
    at.checkbox(key=keys.MATCH_REGIONS).check().run()
    assert not at.exception, at.exception
    assert large_collection_note(65) in texts(at.warning), texts(at.warning)


def test_match_with_regions_from_the_launcher(filled_db, shots_video):
    at = open_app("views/match.py")
    at.radio(key=keys.source_how(keys.MATCH_VIDEO)).set_value("Path on the server").run()
    at.text_input(key=keys.source_path(keys.MATCH_VIDEO)).input(str(shots_video.path))
    at.number_input(key=keys.MATCH_MAX_FRAMES).set_value(8)
    assert at.checkbox(key=keys.MATCH_REGIONS).value is False  # opt-in
    at.checkbox(key=keys.MATCH_REGIONS).check().run()
    at.button(key=keys.MATCH_GO).click().run()
    wait_for_job(at, keys.MATCH_JOB)
    assert any("Run #1 finished" in s for s in texts(at.success)), texts(at.success) + texts(at.error)
    from core.config import default_db_path
    from db import Index

    with Index(default_db_path()) as index:
        assert "regions" in index.get_run(1).params and len(index.load_frame_regions(1)) == 8
    # the inspector lists the frame's region beside the whole frame's top images
    at.run()
    assert any("images** and its region ·" in m for m in texts(at.markdown)), texts(at.markdown)
    cards = [c.value for c in at.caption if c.value.startswith("<span") and "&#9632;" in c.value]
    assert "region " in cards[0].split("</span>")[1] and "#1 " in cards[1], cards


# -- video library ----------------------------------------------------------------------------------
def test_library_indexing_again_loads_no_model(env, shots_video, monkeypatch):
    """A folder indexed before is found done from the model's config files: the job does not
    load the weights (8 s and 2.8 GB for ViT-L in int8) to find that out."""
    import dashboard.state as state

    at = open_app("views/library.py")
    at.text_input(key=keys.LIBRARY_FOLDER).input(str(shots_video.path.parent)).run()
    at.button(key=keys.LIBRARY_INDEX_BUTTON).click().run()
    wait_for_job(at, keys.LIBRARY_JOB)
    assert any("Indexing finished: 1 indexed" in s for s in texts(at.success)), texts(at.error)
    loads = []
    monkeypatch.setattr(state, "_load_extractor", lambda *a: loads.append(a) or pytest.fail("model loaded"))
    at.button(key=keys.LIBRARY_INDEX_BUTTON).click().run()
    wait_for_job(at, keys.LIBRARY_JOB)
    assert any("0 indexed, 1 already indexed" in s for s in texts(at.success)), texts(at.success) + texts(
        at.error
    )
    assert loads == []


def test_library_indexes_a_folder_and_finds_an_image(env, image_folder, shots_video):
    at = open_app("views/library.py")
    at.text_input(key=keys.LIBRARY_FOLDER).input(str(shots_video.path.parent)).run()
    at.button(key=keys.LIBRARY_INDEX_BUTTON).click().run()
    assert not at.exception, at.exception
    wait_for_job(at, keys.LIBRARY_JOB)
    assert any("Indexing finished: 1 indexed" in s for s in texts(at.success)), texts(at.success) + texts(
        at.error
    )
    assert at.metric[0].value == "1"
    at.slider(key=keys.LIBRARY_THRESHOLD).set_value(TEST_THRESHOLD)
    queries = [
        ("alpha.png", png(image_folder.arrays[0]), "image/png"),
        ("delta.png", png(image_folder.arrays[3]), "image/png"),
    ]
    at.file_uploader(key=keys.LIBRARY_QUERIES).set_value(queries).run()
    assert not at.exception, at.exception
    (table,) = [d.value for d in at.dataframe if "segments" in d.value.columns]
    assert table["video"].tolist() == [str(shots_video.path)] and table["segments"][0].startswith("0:00.0–")
    assert any("in no indexed video" in m for m in plain(at.markdown))  # delta.png
    # moving the threshold searches again without embedding the queries again
    from core.model.features import FeatureExtractor

    passes = []
    original = FeatureExtractor.cls_embeddings
    FeatureExtractor.cls_embeddings = lambda self, *a, **k: passes.append(1) or original(self, *a, **k)
    try:
        at.slider(key=keys.LIBRARY_THRESHOLD).set_value(0.99).run()
    finally:
        FeatureExtractor.cls_embeddings = original
    assert not at.exception and passes == []
    assert any("delta.png**: in no indexed video at ≥ 0.99" in m for m in plain(at.markdown))


def _image_ids() -> dict[str, int]:
    from core.config import default_db_path
    from db import Index

    with Index(default_db_path()) as index:
        coll = index.get_collection("posters")
        return {r.name: r.id for r in index.list_images(coll.id)}


def test_library_finds_a_collections_images_without_uploading_them(stored_run, shots_video, monkeypatch):
    """Images already in a collection are picked, not uploaded again, and searched by their
    stored embeddings: the model is not loaded for it."""
    import dashboard.state as state

    ids = _image_ids()
    at = open_app("views/library.py")
    monkeypatch.setattr(state, "load_extractor", lambda *a, **k: pytest.fail("no model needed"))
    at.slider(key=keys.LIBRARY_THRESHOLD).set_value(TEST_THRESHOLD)
    at.radio(key=keys.LIBRARY_SOURCE).set_value("Images of a collection").run()
    assert not at.exception, at.exception
    at.multiselect(key=keys.LIBRARY_PICKED).set_value([ids["alpha.jpg"], ids["delta.png"]]).run()
    assert not at.exception, at.exception
    (table,) = [d.value for d in at.dataframe if "segments" in d.value.columns]
    assert table["video"].tolist() == [str(shots_video.path)] and table["segments"][0].startswith("0:00.0–")
    assert any("delta.png**: in no indexed video" in m for m in plain(at.markdown))
    # the filter narrows the names to pick from, keeping the picks it still lists
    at.text_input(key=keys.LIBRARY_FILTER).input("alp").run()
    assert at.multiselect(key=keys.LIBRARY_PICKED).value == [ids["alpha.jpg"]]
    assert at.multiselect(key=keys.LIBRARY_PICKED).options == ["alpha.jpg"]


def test_an_image_opened_in_browse_links_to_its_search_in_the_library(stored_run, shots_video):
    ids = _image_ids()
    at = open_app("views/browse.py")
    [b for b in at.button if b.label == "Open"][0].click().run()
    (link,) = [e for e in at.get("page_link") if e.proto.label == "Find in the video library"]
    assert link.proto.page.endswith("library") and f"image={ids['alpha.jpg']}" in link.proto.query_string
    at = AppTest.from_file(str(HOME), default_timeout=TIMEOUT)
    at.query_params[pages.LIBRARY_IMAGE_PARAM] = str(ids["alpha.jpg"])
    at.run()
    at.switch_page("views/library.py").run()
    assert not at.exception, at.exception
    assert at.multiselect(key=keys.LIBRARY_PICKED).value == [ids["alpha.jpg"]]
    assert any("alpha.jpg**: in 1 video(s)" in m for m in plain(at.markdown)), plain(at.markdown)


def test_library_lists_matched_videos_and_removes_videos_from_it(stored_run, shots_video):
    """A matched video's cached frames are searched too: the page counts and lists it, and a
    video removed from the library is no longer searched (its run stays)."""
    at = open_app("views/library.py")
    assert at.metric[0].label == "Videos" and at.metric[0].value == "1"
    (table,) = [d.value for d in at.dataframe if "source" in d.value.columns]
    assert table["video"].tolist() == [str(shots_video.path)] and table["source"].tolist() == ["matched"]
    assert table["file"].tolist() == ["ok"]
    assert at.multiselect(key=keys.LIBRARY_REMOVE).options == [str(shots_video.path)]
    import os

    stat, original = shots_video.path.stat(), shots_video.path.read_bytes()
    shots_video.path.write_bytes(original + b"\0")  # the file changed since its frames were cached
    at.run()
    (table,) = [d.value for d in at.dataframe if "source" in d.value.columns]
    assert table["file"].tolist() == ["changed"]
    shots_video.path.write_bytes(original)
    os.utime(shots_video.path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    from core.media.files import file_sha256

    at.multiselect(key=keys.LIBRARY_REMOVE).set_value([file_sha256(shots_video.path)]).run()
    at.button(key=keys.LIBRARY_REMOVE_BUTTON).click().run()
    assert not at.exception, at.exception
    assert any("Removed 1 video(s) from the library" in s for s in texts(at.success)), texts(at.success)
    assert at.metric[0].value == "0"
    at.slider(key=keys.LIBRARY_THRESHOLD).set_value(TEST_THRESHOLD)
    at.radio(key=keys.LIBRARY_SOURCE).set_value("Images of a collection").run()
    assert not at.exception, at.exception
    assert any("No video frames are indexed for this collection's model" in i for i in texts(at.info))
    from core.config import default_db_path
    from db import Index

    with Index(default_db_path()) as index:
        assert len(index.list_runs()) == 1


def test_library_refuses_folders_outside_the_allowed_ones(env, tmp_path, monkeypatch):
    monkeypatch.setenv("WEBSSL_ALLOWED_DIRS", str(tmp_path / "allowed"))
    at = open_app("views/library.py")
    at.text_input(key=keys.LIBRARY_FOLDER).input("/etc").run()
    at.button(key=keys.LIBRARY_INDEX_BUTTON).click().run()
    assert not at.exception and keys.LIBRARY_JOB not in at.session_state
    assert at.error


def test_a_run_says_when_its_collection_has_changed_since(stored_run, tmp_path):
    """The run stays cached on the page, but a poster indexed since is news to it: the page says
    its results do not include the collection's new images, and one click searches the collection
    as it is now from the run's cached frames (the run brought up to date: no model, no decoding)."""
    from conftest import new_image
    from core.config import default_db_path
    from db import Index

    at = open_app("views/match.py")
    assert not any("changed since" in i for i in texts(at.info))
    with Index(default_db_path()) as index:
        coll = index.get_collection("posters")
        index.add_images(coll.id, [new_image(9, dim=coll.embed_dim)])
    at.run()
    assert not at.exception, at.exception
    assert any("posters has changed since this run" in i for i in plain(at.info)), plain(at.info)
    run_id = stored_run.run_id
    at.button(key=keys.run_search_again(run_id)).click().run()
    assert not at.exception, at.exception
    wait_for_job(at, keys.MATCH_JOB)  # a job: an every-frame 2-hour run has 216,000 frames to search
    with Index(default_db_path()) as index:
        (run,) = index.list_runs()  # brought up to date, not copied
    assert run.id == run_id and not run.collection_changed and run.stats["searched_again"] == 1
    assert at.session_state[keys.RUN] == run_id
    assert any(f"Run #{run_id}: posters searched as it is now" in s for s in plain(at.success)), plain(
        at.success
    )
    assert not any("changed since" in i for i in texts(at.info))


def test_a_run_whose_video_file_changed_says_its_frames_may_not_fit(stored_run, shots_video):
    at = open_app("views/match.py")
    assert not any("video file has changed" in w for w in texts(at.warning))
    original = shots_video.path.read_bytes()
    shots_video.path.write_bytes(original + b"\0")  # a re-export saved over it
    at.run()
    assert not at.exception, at.exception
    assert any("The video file has changed since this run" in w for w in texts(at.warning)), texts(at.warning)


def test_collections_bring_the_runs_of_a_changed_collection_up_to_date(stored_run):
    """After new images, the Collections page says how many runs searched the collection before it
    changed, and one click brings them up to date from their cached frames (a background job)."""
    from conftest import new_image
    from core.config import default_db_path
    from db import Index

    at = open_app("views/collections.py")
    assert keys.REFRESH_RUNS_BUTTON not in [b.key for b in at.button]
    with Index(default_db_path()) as index:
        coll = index.get_collection("posters")
        index.add_images(coll.id, [new_image(9, dim=coll.embed_dim)])
    at.run()
    assert any("1 match run searched posters before it changed" in i for i in plain(at.info)), plain(at.info)
    at.button(key=keys.REFRESH_RUNS_BUTTON).click().run()
    wait_for_job(at, keys.REFRESH_JOB)
    assert any("1 of 1 run brought up to date" in s for s in plain(at.success)), plain(at.success)
    assert keys.REFRESH_RUNS_BUTTON not in [b.key for b in at.button]
    with Index(default_db_path()) as index:
        assert not index.get_run(stored_run.run_id).collection_changed


@pytest.fixture
def region_run(filled_db, shots_video, extractor):
    """A region run of the shots video against "posters"."""
    from core.config import default_db_path
    from core.matching.params import MatchParams
    from core.matching.pipeline import match_video
    from core.matching.regions import RegionSettings
    from db import Index

    with Index(default_db_path()) as index:
        return match_video(
            index,
            shots_video.path,
            "posters",
            extractor,
            params=MatchParams(threshold=TEST_THRESHOLD, top_k=3),
            regions=RegionSettings(short_side=224),
            max_frames=12,
        )


def _add_poster() -> None:
    from conftest import new_image
    from core.config import default_db_path
    from db import Index

    with Index(default_db_path()) as index:
        coll = index.get_collection("posters")
        index.add_images(coll.id, [new_image(9, dim=coll.embed_dim)])


def _brought_up_to_date(run_id: int) -> None:
    from core.config import default_db_path
    from db import Index

    with Index(default_db_path()) as index:
        (run,) = index.list_runs()  # its place taken, not a run beside it
        assert run.id == run_id and not run.collection_changed and run.revision == 1
        assert run.params["regions"] and run.params["max_frames"] == 12  # its own options
        assert len(index.load_frame_regions(run_id)) > 0


def test_a_region_run_whose_collection_changed_is_matched_again_from_its_video(region_run):
    """A region run needs its video to look for new images: its view says so (and not that its
    frames come from the cache: region mode reads pixels), and one click matches the video again
    with the run's options, the new results taking the run's place."""
    at = open_app("views/match.py")
    _add_poster()
    at.run()
    assert any("A region run needs its video" in i for i in plain(at.info)), plain(at.info)
    assert not any("from the cache" in i for i in plain(at.info))
    at.button(key=keys.run_match_again(region_run.run_id)).click().run()
    assert not at.exception, at.exception
    wait_for_job(at, keys.MATCH_JOB)
    _brought_up_to_date(region_run.run_id)
    assert at.session_state[keys.RUN] == region_run.run_id
    assert any(f"Run #{region_run.run_id} finished" in s for s in plain(at.success)), plain(at.success)


def test_collections_match_again_the_runs_that_need_their_video_when_asked(region_run):
    at = open_app("views/collections.py")
    _add_poster()
    at.run()
    at.button(key=keys.REFRESH_RUNS_BUTTON).click().run()
    wait_for_job(at, keys.REFRESH_JOB)
    notices = plain(at.success) + plain(at.info) + plain(at.warning)
    assert any("0 of 1 run brought up to date" in s and "a region run" in s for s in notices), notices
    at.checkbox(key=keys.REFRESH_VIDEOS).check()
    at.button(key=keys.REFRESH_RUNS_BUTTON).click().run()
    wait_for_job(at, keys.REFRESH_JOB)
    assert any("1 matched again from their videos" in s for s in plain(at.success)), plain(at.success)
    _brought_up_to_date(region_run.run_id)
