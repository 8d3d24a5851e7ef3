"""The TF-LLMER study: datasets x backbones x variants x seeds with a selection grid
(:mod:`.spec`), run and resumed job by job (:mod:`.runner`), reported as STUDY.md
(:mod:`.report`)."""

from .report import collect, render_report
from .runner import DatasetCache, run_job, run_study
from .spec import VARIANT_LABELS, VARIANTS, DatasetSpec, Job, StudySpec, grid_points, setting_tag

__all__ = [
    "VARIANTS",
    "VARIANT_LABELS",
    "DatasetCache",
    "DatasetSpec",
    "Job",
    "StudySpec",
    "collect",
    "grid_points",
    "render_report",
    "run_job",
    "run_study",
    "setting_tag",
]
