"""Running trials: sweep workers and their GPU lanes, collecting a rung, and reading
where a ladder stands (status, the terminal's progress lines).
"""
