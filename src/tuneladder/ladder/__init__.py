"""The ladder's own table: its rungs (names, rules, outputs, trial counts), the
experiment config that sets them, and the jobs' measured times.
"""
