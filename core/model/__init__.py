"""The model stage: loading a DINOv2-family backbone (:mod:`~core.model.source`,
:mod:`~core.model.loading`, :mod:`~core.model.precision`, :mod:`~core.model.int8`), running it
fast on the CPU (:mod:`~core.model.linear`, :mod:`~core.model.heap`), its preprocessing
(:mod:`~core.model.preprocess`), features (:mod:`~core.model.features`) and a video's frames as
batches of model input (:mod:`~core.model.frames`)."""
