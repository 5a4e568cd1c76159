"""The dashboard's pages, listed once: the router (``Home.py``) and the Home page's cards use it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PageSpec:
    path: str  # relative to dashboard/
    title: str
    icon: str
    section: str  # navigation group ("" for none)
    blurb: str  # one line for the Home page's card


HOME = PageSpec("views/home.py", "Home", ":material/home:", "", "What the tool does, database and model")
COLLECTIONS = PageSpec(
    "views/collections.py",
    "Collections",
    ":material/photo_library:",
    "Images",
    "Create, fill and manage collections",
)
BROWSE = PageSpec(
    "views/browse.py",
    "Browse & search",
    ":material/grid_view:",
    "Images",
    "Thumbnails, neighbours, query by image",
)
MATCH = PageSpec(
    "views/match.py", "Match a video", ":material/movie:", "Videos", "Find collection images in a video"
)
LIBRARY = PageSpec(
    "views/library.py",
    "Video library",
    ":material/video_library:",
    "Videos",
    "Find where images appear across indexed videos",
)
LIBRARY_IMAGE_PARAM = "image"
"""The Video library's address parameter that opens it searching one collection image, by id."""
EXPLORE = PageSpec(
    "views/explore.py",
    "Explore an image",
    ":material/visibility:",
    "What the model sees",
    "PCA and similarity maps, per layer",
)
RENDER = PageSpec(
    "views/render.py",
    "Render videos",
    ":material/videocam:",
    "What the model sees",
    "Layer evolution and PCA videos",
)

PAGES: tuple[PageSpec, ...] = (HOME, COLLECTIONS, BROWSE, MATCH, LIBRARY, EXPLORE, RENDER)


def sections() -> dict[str, list[PageSpec]]:
    """Pages grouped by section, in order."""
    grouped: dict[str, list[PageSpec]] = {}
    for page in PAGES:
        grouped.setdefault(page.section, []).append(page)
    return grouped
