"""What every layer shares and that imports nothing of the package: the metric's
direction, a trial's hyperparameters, the metric table, statistics, user-code errors.
"""
