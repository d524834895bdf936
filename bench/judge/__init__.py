"""The judge service under overload: `python -m bench.judge [--quick]`."""
