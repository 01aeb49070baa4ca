"""`python -m bench`: the delivery pipeline measured end to end against same-run baselines.

See `bench/__main__.py` for the command and README.md ("Benchmarks") for the figures.
"""
