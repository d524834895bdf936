"""`python -m bench.scale`: one operator process against a simulated fleet of LLMDeployments."""
