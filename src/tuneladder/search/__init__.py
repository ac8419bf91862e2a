"""Where to look next: the space, sweep and seed plans, successive halving, TPE rounds,
selection and narrowing, the sensitivity plan. Imports no torch and no rung names: the
stage passes them in.
"""
