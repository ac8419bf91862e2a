"""The workflow's rungs as functions: each workflow script calls one of these and
nothing else of the package.
"""
