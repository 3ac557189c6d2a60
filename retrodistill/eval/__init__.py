"""Evaluation: measures (ir_measures), per-query scores, paired significance, tables and reports."""
