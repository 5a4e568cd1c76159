"""The visualisation stage: PCA colours (:mod:`~core.visual.pca`), a drawing kit
(:mod:`~core.visual.drawing`), one colour per image (:mod:`~core.visual.colours`), an image's
maps (:mod:`~core.visual.maps`) and figures (:mod:`~core.visual.figures`), and rendered videos
(:mod:`~core.visual.render` and the three renders beside it)."""
