"""EVATok stage 2 (non-model parts): candidate assignments, exact prefix-tree scoring, the score table,
proxy rewards / labels and quality-cost curves (paper Sec. 3.2, 4.5; ``research/evatok_impl.md`` Sec. 3).

Every name is exported lazily (module ``__getattr__``): importing ``hf_vidtok.evatok`` or
``hf_vidtok.evatok.assignments`` never imports ``hf_vidtok.models``, so models may use the assignments.
"""

import importlib

_LAZY = {
    # assignments.py (pure torch)
    "ancestor_node_ids": ".assignments",
    "assignment_lengths": ".assignments",
    "assignment_to_class": ".assignments",
    "assignment_to_level_indices": ".assignments",
    "candidate_assignments": ".assignments",
    "class_to_assignment": ".assignments",
    "normalize_levels": ".assignments",
    "num_prefix_nodes": ".assignments",
    "prefix_class_range": ".assignments",
    "prefix_ids": ".assignments",
    "uniform_class_ids": ".assignments",
    # score_table.py
    "ScoreTable": ".score_table",
    "ScoreTableWriter": ".score_table",
    "load_score_table": ".score_table",
    "score_table_schema": ".score_table",
    # reward.py
    "RewardStats": ".reward",
    "best_assignment": ".reward",
    "best_uniform_assignment": ".reward",
    "compute_reward_stats": ".reward",
    "proxy_reward": ".reward",
    "quality_scores": ".reward",
    "reward_percentile": ".reward",
    "threshold_assignment": ".reward",
    "uniform_assignment": ".reward",
    # curves.py
    "label_table": ".curves",
    "plot_quality_cost_curves": ".curves",
    "quality_cost_curves": ".curves",
    "write_quality_cost_curves": ".curves",
    # scoring.py
    "AssignmentScores": ".scoring",
    "BlockQualityMetric": ".scoring",
    "score_assignments": ".scoring",
    "score_assignments_brute_force": ".scoring",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
