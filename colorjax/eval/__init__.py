"""Evaluation: the metrics (pure functions of arrays), the evaluator that scores networks over
a held-out split, bootstrap statistics, full-resolution scoring of photos, and the report a
run writes."""
