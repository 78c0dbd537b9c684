"""Comparing two runs: the statistics and the verdicts of the regression gate."""
