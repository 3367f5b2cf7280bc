"""Evaluation of output folders against references (`uncertaintyseg evaluate`).

pairing (cases <-> results, reading), table (voxel metrics, Table 1), uncertainty_quality
(QU-BraTS, AUROC, ECE, Pearson, RMSD), lesionwise (BraTS 2023 and 2024+), triage, store
(cache, atomic writes), runner (scoring loop), summary and plots (files), report (HTML),
job (one run); metrics (Dice, HD95, Wilcoxon), explain (teaching figures), model_card.
See docs/EVALUATION.md.
"""
