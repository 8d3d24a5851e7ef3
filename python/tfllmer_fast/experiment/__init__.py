"""The experiment layer: run configurations (:mod:`.config`, torch-free), one run
(:mod:`.run`), results files and tables (:mod:`.results`), plots, the study
(:mod:`.study`) and the command line (:mod:`.cli`).

Nothing is imported here: ``tfllmer_fast.experiment.config`` stays light (no torch) and
each module loads what it needs.
"""
