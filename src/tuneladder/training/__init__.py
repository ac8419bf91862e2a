"""Training one trial: the loop (``runner``), one step, metrics and losses,
optimizers, schedules, and the model check run before anything trains.
"""
