"""The matching stage: indexing collections (:mod:`~core.matching.indexing`), the options of a
run (:mod:`~core.matching.params`), frame sampling (:mod:`~core.matching.sampling`), cosine
search (:mod:`~core.matching.search`), time segments (:mod:`~core.matching.segments`), the
video pipeline (:mod:`~core.matching.pipeline`), stored runs (:mod:`~core.matching.runs`) and
their exports (:mod:`~core.matching.export`)."""
