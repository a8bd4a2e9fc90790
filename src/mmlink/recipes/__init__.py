"""Recipes: a paper's multi-stage procedure as one resumable command over mmlink's parts (synth, generate, the
world-fact scorer, train). `mmlink.recipes.cadvi`: CaD-VI Phase 2 (annotate → filter → mix → train).

Kept light on purpose (no torch import): ``python -m mmlink.recipes.cadvi`` imports this package first.
"""
