"""Commands for pictures and rendered videos.

``python -m core visualize IMAGE --out DIR``: PCA map, patch-to-[CLS] similarity, overlay and
a composite figure per image.

``python -m core render layers IMAGE --out FILE.mp4 [--gif]``: one frame per layer.
``python -m core render pca VIDEO --out FILE.mp4 [--side-by-side]``: colour-stable PCA video.
``python -m core render match RUN_ID --out FILE.mp4``: frame | best database image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.common import (
    add_db_option,
    add_model_options,
    common_options,
    load_extractor,
    progress_bar,
)
from core.model.preprocess import FULL_SHORT_SIDE, MODES
from core.visual.layer_video import LAYER_FPS, LAYER_PANEL
from core.visual.pca_video import FIT_SAMPLES
from core.visual.render import PANEL_HEIGHT


def _add_resolution(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("resolution")
    g.add_argument(
        "--mode",
        choices=MODES,
        default=MODES[0],
        help="crop: the model's own centre crop (224 px, 16x16 patches); full: the whole image, aspect "
        "kept, at a higher resolution (default: %(default)s)",
    )
    g.add_argument(
        "--short-side",
        type=int,
        default=FULL_SHORT_SIDE,
        help="full mode: short side in pixels, rounded to the patch size (default: %(default)s)",
    )


def _describe(result) -> str:
    return f"{result.path}: {result.frames} frames, {result.width}x{result.height}, {result.fps:g} fps"


# -- commands ---------------------------------------------------------------------------------
def cmd_visualize(args: argparse.Namespace) -> int:
    from core.media.images import load_image
    from core.visual.figures import save_image_maps
    from core.visual.maps import image_maps

    images = [load_image(path) for path in args.images]  # fail on a bad file before loading the model
    fx = load_extractor(args)
    for path, img in zip(args.images, images, strict=True):
        maps = image_maps(
            fx,
            img.rgb,
            mode=args.mode,
            short_side=args.short_side,
            suppress_background=args.suppress_background,
        )
        paths = save_image_maps(maps, args.out, Path(path).stem)
        rows, cols = maps.grid
        print(f"{path}: {maps.mode} mode, {rows}x{cols} patches")
        for name, written in paths.items():
            print(f"  {name}: {written}")
    return 0


def cmd_render_layers(args: argparse.Namespace) -> int:
    from core.media.images import load_image
    from core.visual.layer_video import render_layers
    from core.visual.render import check_render_options

    check_render_options(args.out, fps=args.fps)
    img = load_image(args.image)  # fail on bad input before loading the model
    fx = load_extractor(args)
    with progress_bar(args) as bar:
        result = render_layers(
            fx,
            img.rgb,
            args.out,
            fps=args.fps,
            mode=args.mode,
            short_side=args.short_side,
            panel_size=args.panel_size,
            gif=args.gif,
            progress=bar,
        )
    print(_describe(result))
    if result.gif:
        print(f"{result.gif}: GIF")
    return 0


def cmd_render_pca(args: argparse.Namespace) -> int:
    from core.media.video import probe_video
    from core.visual.pca_video import render_pca_video
    from core.visual.render import check_render_options

    check_render_options(
        args.out,
        source=args.video,
        fps=args.fps,
        max_frames=args.max_frames,
        panel_height=args.panel_height,
        fit_samples=args.fit_samples,
        batch_size=args.batch_size,
    )
    probe_video(args.video, compute_hash=False)  # a bad video fails before the model loads
    fx = load_extractor(args)
    with progress_bar(args) as bar:
        result = render_pca_video(
            fx,
            args.video,
            args.out,
            side_by_side=args.side_by_side,
            max_frames=args.max_frames,
            fps=args.fps,
            panel_height=args.panel_height,
            fit_samples=args.fit_samples,
            batch_size=args.batch_size,
            mode=args.mode,
            short_side=args.short_side,
            progress=bar,
        )
    print(_describe(result))
    return 0


def cmd_render_match(args: argparse.Namespace) -> int:
    from core import api

    with progress_bar(args) as bar:
        result = api.render_match_video(
            args.run_id,
            args.out,
            db=args.db,
            threshold=args.threshold,
            max_frames=args.max_frames,
            fps=args.fps,
            panel_height=args.panel_height,
            progress=bar,
        )
    print(_describe(result))
    return 0


# -- parser -----------------------------------------------------------------------------------
def _video_options(
    p: argparse.ArgumentParser, *, panel: str = "--panel-height", default: int = PANEL_HEIGHT
) -> None:
    p.add_argument("--out", "-o", type=Path, required=True, metavar="FILE.mp4", help="the video to write")
    p.add_argument("--fps", type=float, default=None, help="output frame rate (default: the source's)")
    p.add_argument(
        panel,
        type=int,
        default=default,
        metavar="PX",
        help="height of a panel in pixels (default: %(default)s)",
    )


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``visualize`` and ``render {layers,pca,match}`` to the ``python -m core`` parser."""
    p = sub.add_parser(
        "visualize",
        parents=[common],
        help="PCA map, patch-to-[CLS] similarity and a composite figure of images (PNG)",
        description="Write <stem>_pca.png, <stem>_similarity.png, <stem>_overlay.png and "
        "<stem>_composite.png for every image into --out.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image file(s)")
    p.add_argument(
        "--out", "-o", type=Path, required=True, metavar="DIR", help="folder for the PNGs (created)"
    )
    p.add_argument(
        "--suppress-background",
        action="store_true",
        help="black out the background by thresholding the first PCA component (as in the DINOv2 paper)",
    )
    _add_resolution(p)
    add_model_options(p)
    p.set_defaults(func=cmd_visualize)

    render = sub.add_parser(
        "render", parents=[common], help="render videos: layer evolution, PCA of a video, matched video"
    )
    what = render.add_subparsers(dest="render_command", required=True, metavar="WHAT")
    common = common_options(nested=True)

    p = what.add_parser(
        "layers", parents=[common], help="one frame per transformer layer of an image (MP4, optional GIF)"
    )
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--out", "-o", type=Path, required=True, metavar="FILE.mp4", help="the video to write")
    p.add_argument("--fps", type=float, default=LAYER_FPS, help="layers per second (default: %(default)s)")
    p.add_argument(
        "--panel-size",
        type=int,
        default=LAYER_PANEL,
        metavar="PX",
        help="panel height (default: %(default)s)",
    )
    p.add_argument("--gif", action="store_true", help="also write FILE.gif")
    _add_resolution(p)
    add_model_options(p)
    p.set_defaults(func=cmd_render_layers)

    p = what.add_parser(
        "pca", parents=[common], help="PCA colours of a video's patch features, colour-stable across frames"
    )
    p.add_argument("video", metavar="VIDEO")
    _video_options(p)
    p.add_argument("--side-by-side", action="store_true", help="original | PCA")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    p.add_argument(
        "--fit-samples",
        type=int,
        default=FIT_SAMPLES,
        metavar="N",
        help="frames spread over the video that the colours are fitted on (default: %(default)s)",
    )
    _add_resolution(p)
    add_model_options(p)
    p.set_defaults(func=cmd_render_pca)

    p = what.add_parser(
        "match", parents=[common], help="a stored match run as video: frame | best database image (no model)"
    )
    p.add_argument("run_id", type=int, metavar="RUN_ID")
    _video_options(p)
    p.add_argument("--threshold", "-t", type=float, default=None, help="default: the run's threshold")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    add_db_option(p)
    p.set_defaults(func=cmd_render_match)
